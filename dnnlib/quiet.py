"""A quiet, honest start: TensorFlow's known-harmless start-up noise is dropped where it is
emitted, and everything else it prints still shows.

TensorFlow 2.x writes its C++ start-up lines (oneDNN notes, "Could not find cuda drivers",
the CPU-feature banner, `failed call to cuInit` on a machine without a GPU) straight to file
descriptor 2 before its logging is initialised, so TF_CPP_MIN_LOG_LEVEL does not hide them.
`install()` (called by `import dnnlib`) adds an import hook that runs the first
`import tensorflow` and the first device probe with fd 2 redirected to a temporary file,
then writes back every line that is not one of the KNOWN_NOISE patterns; it also turns off
the `Instructions for updating:` deprecation blocks, which describe TensorFlow's own API
plans, not anything the user can act on. DNNLIB_TF_VERBOSE=1 shows everything."""

import contextlib
import importlib.util
import os
import re
import sys
import tempfile

VERBOSE_ENV = "DNNLIB_TF_VERBOSE"
KNOWN_NOISE = re.compile("|".join([
    r"All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    r"oneDNN custom operations are on",
    r"Could not find cuda drivers on your machine",
    r"cpu_feature_guard\.cc",
    r"^To enable the following instructions: .* rebuild TensorFlow",
    r"failed call to cuInit",
    r"Unable to register cu(DNN|FFT|BLAS) factory",
    r"computation placer already registered",
    r"TF-TRT Warning: Could not find TensorRT",
]))


def verbose():
    return os.environ.get(VERBOSE_ENV, "").strip() not in ("", "0")


@contextlib.contextmanager
def filtered_stderr(pattern=KNOWN_NOISE):
    """Run the body with fd 2 captured; afterwards write the lines not matching `pattern` to
    sys.stderr (so a Logger's file gets them too). Real errors are never lost: whatever the
    body raises, the captured text is written back first."""
    if verbose():
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # No usable fd 2 (embedded interpreters).
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", "replace")
            kept = [line for line in text.splitlines() if line.strip() and not pattern.search(line)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")
                sys.stderr.flush()


def _after_import():
    """Deprecation blocks off, and the first device probe (the cuInit line) done quietly."""
    if verbose():
        return
    try:
        from tensorflow.python.util import deprecation
        deprecation._PRINT_DEPRECATION_WARNINGS = False
    except ImportError:
        pass
    tf = sys.modules.get("tensorflow")
    if tf is not None and hasattr(tf, "config"):
        with filtered_stderr():
            try:
                tf.config.list_physical_devices("GPU")   # Lists devices; does not create them.
            except Exception:  # Reported again, in full, wherever devices are really used.
                pass


class _QuietTensorFlowImport:
    """sys.meta_path hook: the first `import tensorflow` runs under filtered_stderr()."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        uninstall()
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def quiet_exec_module(module):
            with filtered_stderr():
                exec_module(module)
            _after_import()
        spec.loader.exec_module = quiet_exec_module
        return spec


_hook = _QuietTensorFlowImport()


def install():
    """Add the import hook (once; nothing to do when TensorFlow is already imported)."""
    if "tensorflow" not in sys.modules and _hook not in sys.meta_path:
        sys.meta_path.insert(0, _hook)


def uninstall():
    if _hook in sys.meta_path:
        sys.meta_path.remove(_hook)
