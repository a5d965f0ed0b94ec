"""TensorFlow helpers of the StyleGAN2 layout, running on TF 2.x through
`tensorflow.compat.v1` in graph mode (and on TF 1.15). Importing this package switches
v2 behaviour off, as graph-mode code and official pickles expect."""

from . import tfutil
tfutil.disable_v2_behavior()

from . import autosummary
from . import network
from . import optimizer
from .tfutil import *
from .network import Network
from .optimizer import Optimizer
