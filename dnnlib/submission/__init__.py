"""Local run submission: run directories, run context, console log."""

from . import run_context
from . import submit
from .run_context import RunContext
from .submit import SubmitConfig, create_run_dir, get_next_run_id, make_run_dir_path, submit_run
