"""Run directories and `submit_run`: each run gets `<run_dir_root>/<NNNNN>-<run_desc>`,
with its configuration, a tee of the console in `log.txt`, and markers for start, stop and
completion. Local runs only (no cluster submission)."""

import copy
import datetime
import getpass
import inspect
import os
import pickle
import platform
import pprint
import re
import shutil
import traceback
from typing import Any, Tuple

from .. import util
from ..util import EasyDict

try:
    import fcntl  # POSIX: serialises run-id allocation between processes.
except ImportError:  # Windows: the exclusive mkdir retry loop alone keeps ids distinct.
    fcntl = None


class SubmitConfig(EasyDict):
    """Where and how a run is executed. Fields set by submit_run are marked (out)."""

    def __init__(self, **kwargs):
        super().__init__()
        self.run_dir_root = "results"    # Parent directory of the run directories.
        self.run_desc = ""               # Description appended to the run id: 00012-<run_desc>.
        self.run_dir_ignore = ["__pycache__", "*.pyproj", "*.sln", "*.suo", ".cache", ".idea", ".vs", ".vscode", "_cudacache"]
                                         # Patterns skipped when copying directories in run_dir_extra_files.
        self.run_dir_extra_files = []    # Files/dirs copied into the run dir: paths or (src, name-in-run-dir) pairs.
        self.num_gpus = 1                # Number of GPUs the run uses.
        self.print_info = False          # Print the submit config before the run starts.
        self.run_dir = None              # An existing run dir to resume in (append to its log); None = new one.
        self.run_id = None               # (out) Number of the run dir.
        self.run_name = None             # (out) Name of the run dir, e.g. 00012-stylegan2-ffhq.
        self.run_func_name = None        # (out) Dotted name of the function that is run.
        self.run_func_kwargs = None      # (out) Its keyword arguments.
        self.task_name = None            # (out) <user_name>-<run_name>.
        self.host_name = platform.node() or "localhost"
        self.user_name = None            # None = the login name.
        self.start_time = None           # (out) Start of the run, ISO format.
        self.update(kwargs)


_RUN_DIR_RE = re.compile(r"^(\d+)")


def get_next_run_id(run_dir_root: str) -> int:
    """1 + the largest leading number among the directories in run_dir_root (0 when none)."""
    if not os.path.isdir(run_dir_root):
        return 0
    ids = []
    for name in os.listdir(run_dir_root):
        match = _RUN_DIR_RE.match(name)
        if match and os.path.isdir(os.path.join(run_dir_root, name)):
            ids.append(int(match.group(1)))
    return max(ids) + 1 if ids else 0


def _sanitize_desc(desc: str) -> str:
    return re.sub(r"[^0-9A-Za-z._+-]", "_", desc or "").strip("_")


def create_run_dir(run_dir_root: str, run_desc: str) -> Tuple[int, str]:
    """Create `<run_dir_root>/<NNNNN>-<run_desc>` with the next free number and return
    (run_id, path). Safe when several processes start runs at once: the number is chosen
    under a file lock where available, and the exclusive mkdir retries on collision."""
    os.makedirs(run_dir_root, exist_ok=True)
    desc = _sanitize_desc(run_desc)
    lock_file = open(os.path.join(run_dir_root, ".run_id.lock"), "a") if fcntl is not None else None
    try:
        if lock_file is not None:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
        for _ in range(1000):
            run_id = get_next_run_id(run_dir_root)
            run_name = f"{run_id:05d}-{desc}" if desc else f"{run_id:05d}"
            path = os.path.join(run_dir_root, run_name)
            try:
                os.makedirs(path, exist_ok=False)
            except FileExistsError:
                continue  # another process took this number; look again
            return run_id, path
        raise RuntimeError(f"could not create a run directory in {run_dir_root}")
    finally:
        if lock_file is not None:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
            lock_file.close()


def _now() -> str:
    return datetime.datetime.now().isoformat(timespec="seconds")


def _copy_extra_files(submit_config: SubmitConfig) -> None:
    for entry in submit_config.run_dir_extra_files:
        src, name = entry if isinstance(entry, (tuple, list)) else (entry, os.path.basename(os.path.normpath(entry)))
        dst = os.path.join(submit_config.run_dir, name)
        if os.path.isdir(src):
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns(*submit_config.run_dir_ignore), dirs_exist_ok=True)
        else:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copyfile(src, dst)


def _accepts_submit_config(func) -> bool:
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False
    return "submit_config" in params or any(p.kind == p.VAR_KEYWORD for p in params.values())


def submit_run(submit_config: SubmitConfig, run_func_name: str, **run_func_kwargs) -> Any:
    """Run `run_func_name(**run_func_kwargs)` in a run directory and return its result.

    Creates `<run_dir_root>/<NNNNN>-<run_desc>` (or uses `submit_config.run_dir` when it
    names an existing directory: resume, appending to its log), writes submit_config.pkl /
    .txt and run.txt, tees the console into log.txt, passes `submit_config` to the function
    when it takes that argument, and writes _finished.txt when it returns. An exception is
    written to log.txt and re-raised."""
    import dnnlib  # the package exposes the active submit_config to make_run_dir_path

    submit_config = copy.deepcopy(submit_config)
    func = util.get_obj_by_name(run_func_name)
    submit_config.run_func_name = run_func_name
    submit_config.run_func_kwargs = run_func_kwargs
    if submit_config.user_name is None:
        try:
            submit_config.user_name = getpass.getuser()
        except (KeyError, OSError):
            submit_config.user_name = "user"

    resuming = submit_config.run_dir is not None
    if resuming:
        if not os.path.isdir(submit_config.run_dir):
            raise util.UserError(f"Run directory to resume in does not exist: {submit_config.run_dir}")
        submit_config.run_name = os.path.basename(os.path.normpath(submit_config.run_dir))
        match = _RUN_DIR_RE.match(submit_config.run_name)
        submit_config.run_id = int(match.group(1)) if match else None
    else:
        submit_config.run_id, submit_config.run_dir = create_run_dir(submit_config.run_dir_root, submit_config.run_desc)
        submit_config.run_name = os.path.basename(submit_config.run_dir)
    submit_config.task_name = f"{submit_config.user_name}-{submit_config.run_name}"
    submit_config.start_time = _now()

    _copy_extra_files(submit_config)
    try:
        config_bytes = pickle.dumps(submit_config, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as error:
        raise ValueError(f"run_func_kwargs: cannot be pickled into submit_config.pkl ({error})") from error
    util.atomic_write(os.path.join(submit_config.run_dir, "submit_config.pkl"), lambda f: f.write(config_bytes))
    util.atomic_write(os.path.join(submit_config.run_dir, "submit_config.txt"),
                      lambda f: f.write(pprint.pformat(dict(submit_config), indent=4, width=160).encode("utf-8")))
    run_txt = os.path.join(submit_config.run_dir, "run.txt")
    with open(run_txt, "a", encoding="utf-8") as f:
        f.write(f"task_name: {submit_config.task_name}\nhost_name: {submit_config.host_name}\n"
                f"start_time: {submit_config.start_time}\n")

    logger = util.Logger(os.path.join(submit_config.run_dir, "log.txt"), file_mode="a" if resuming else "w")
    previous_config = dnnlib.submit_config
    dnnlib.submit_config = submit_config
    status = "failed"
    try:
        if submit_config.print_info:
            print(f"Run directory: {submit_config.run_dir}")
            pprint.pprint(dict(submit_config), indent=4, width=160)
        if _accepts_submit_config(func) and "submit_config" not in run_func_kwargs:
            result = func(submit_config=submit_config, **run_func_kwargs)
        else:
            result = func(**run_func_kwargs)
        status = "finished"
        return result
    except BaseException as error:
        # The caller sees the exception; the run dir keeps its traceback.
        status = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
        logger.write_file_only(traceback.format_exc())
        raise
    finally:
        from .run_context import RunContext
        RunContext._close_for(submit_config)
        logger.close()
        dnnlib.submit_config = previous_config
        with open(run_txt, "a", encoding="utf-8") as f:
            f.write(f"stop_time: {_now()}\nstatus: {status}\n")
        if status == "finished":
            with open(os.path.join(submit_config.run_dir, "_finished.txt"), "w", encoding="utf-8") as f:
                f.write(f"{_now()}\n")


def make_run_dir_path(*paths: str) -> str:
    """A path inside the current run directory (the working directory when no run is active)."""
    import dnnlib
    config = dnnlib.submit_config
    root = config.run_dir if config is not None and config.run_dir else os.getcwd()
    return os.path.join(root, *paths)
