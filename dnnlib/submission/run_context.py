"""RunContext: progress, elapsed time and the stop request of the active run."""

import os
import time
from typing import Any, Optional

from ..util import EasyDict


class RunContext:
    """Handle the training loop uses to report progress and to ask whether to stop.

    A stop is requested by `request_stop()` or by creating `abort.txt` in the run dir."""

    _current: Optional["RunContext"] = None

    def __init__(self, submit_config: Optional[EasyDict] = None, config_module: Any = None):
        if submit_config is None:
            import dnnlib
            submit_config = dnnlib.submit_config
        self.submit_config = submit_config
        self.config_module = config_module
        self.run_dir = getattr(submit_config, "run_dir", None) if submit_config is not None else None
        self.start_time = time.time()
        self.last_update_time = self.start_time
        self.last_update_interval = 0.0
        self.progress = EasyDict(loss_value=None, cur_epoch=0, max_epoch=None)
        self._stop_requested = False
        RunContext._current = self

    def __enter__(self) -> "RunContext":
        return self

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        self.close()

    def update(self, loss_value: Any = None, cur_epoch: Any = 0, max_epoch: Any = None) -> None:
        """Record progress (cheap: no file is written)."""
        now = time.time()
        self.last_update_interval = now - self.last_update_time
        self.last_update_time = now
        self.progress = EasyDict(loss_value=loss_value, cur_epoch=cur_epoch, max_epoch=max_epoch)

    def request_stop(self) -> None:
        self._stop_requested = True

    def should_stop(self) -> bool:
        """True once a stop was requested or `abort.txt` exists in the run dir."""
        if not self._stop_requested and self.run_dir and os.path.exists(os.path.join(self.run_dir, "abort.txt")):
            self._stop_requested = True
        return self._stop_requested

    def get_time_since_start(self) -> float:
        return time.time() - self.start_time

    def get_time_since_last_update(self) -> float:
        return time.time() - self.last_update_time

    def get_last_update_interval(self) -> float:
        return self.last_update_interval

    def close(self) -> None:
        if RunContext._current is self:
            RunContext._current = None

    @staticmethod
    def get() -> "RunContext":
        """The active context, or a new one for the active submit_config."""
        if RunContext._current is None:
            RunContext()
        return RunContext._current

    @staticmethod
    def _close_for(submit_config: EasyDict) -> None:
        # submit_run ends the context its run created, so the next run starts fresh.
        current = RunContext._current
        if current is not None and current.submit_config is submit_config:
            current.close()
