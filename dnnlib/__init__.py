"""dnnlib: the small support library (utilities, run directories, TF helpers) that the
StyleGAN2 code layout and its pickles rely on. Module paths here are an interface:
official pickles import `dnnlib`, `dnnlib.tflib` and `dnnlib.EasyDict`."""

from . import util
from .util import EasyDict, UserError

submit_config = None  # Set by dnnlib.submission while a run is active.

from . import submission
from .submission import RunContext, SubmitConfig, make_run_dir_path, submit_run
