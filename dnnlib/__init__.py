"""dnnlib: the small support library (utilities, run directories, TF helpers) that the
StyleGAN2 code layout and its pickles rely on. Module paths here are an interface:
official pickles import `dnnlib`, `dnnlib.tflib` and `dnnlib.EasyDict`."""

import os

# Hide TensorFlow's C++ start-up INFO lines (CUDA probing, oneDNN notes) unless the user asked
# for them; must be set before TensorFlow is first imported.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
# The start-up lines that level does not hide (printed before TF's logging starts): dnnlib/quiet.py.
from . import quiet
quiet.install()

from . import util
from .util import EasyDict, UserError

submit_config = None  # Set by dnnlib.submission while a run is active.

from . import submission
from .submission import RunContext, SubmitConfig, make_run_dir_path, submit_run
