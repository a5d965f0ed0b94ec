"""Miscellaneous utilities shared by the whole code base (no TensorFlow here)."""

import argparse
import glob
import hashlib
import importlib
import inspect
import os
import pickle
import re
import sys
import tempfile
import time
import types
import urllib.parse
import urllib.request
from html import unescape as html_unescape
from typing import Any, Optional, Tuple

import requests

class EasyDict(dict):
    """A dict whose items can also be read and written as attributes."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name)

    def __setattr__(self, name, value):
        self[name] = value

    def __delattr__(self, name):
        del self[name]


def apply_umask_mode(fd: int) -> None:
    """Give a file made by tempfile.mkstemp (always 0600) the mode a plain open() would, so
    files renamed into place (snapshots, caches, logs) follow the user's umask."""
    mask = os.umask(0)
    os.umask(mask)
    os.fchmod(fd, 0o666 & ~mask)


def _fsync_dir(dirname: str) -> None:
    # Make a rename durable (after a power loss the directory entry could otherwise be the old one).
    try:
        fd = os.open(dirname, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # Some file systems cannot fsync a directory.
    finally:
        os.close(fd)


def atomic_write(path: str, write_func, mode: str = "wb") -> str:
    """Write a file so that nothing half-written ever carries its name: `write_func(file)`
    fills a temporary `.<name>.tmp-XXXX` beside `path` (mode "wb" or "w"), which is flushed,
    fsynced and renamed into place, and the directory is fsynced. The file gets the mode
    open() would give (umask). Any exception from write_func removes the temporary and leaves
    an existing file untouched. Creates the directory if missing; returns path."""
    directory, basename = os.path.split(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, temp_path = tempfile.mkstemp(prefix=f".{basename[:200]}.tmp-", dir=directory)  # Within NAME_MAX.
    apply_umask_mode(fd)
    try:
        with os.fdopen(fd, mode) as file:
            write_func(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_path, path)
    finally:
        if os.path.exists(temp_path):
            os.remove(temp_path)
    _fsync_dir(directory)
    return path


def atomic_write_pickle(obj: Any, path: str) -> str:
    """Pickle obj (highest protocol) to path with atomic_write."""
    return atomic_write(path, lambda file: pickle.dump(obj, file, protocol=pickle.HIGHEST_PROTOCOL))


class UserError(Exception):
    """Bad input from the user (a wrong path, an unknown option, a corrupt file).

    Command-line tools catch it once in main(), print its message as one line and exit 1.
    Programmer errors stay asserts."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors (unknown option, bad value) become one UserError line and exit 1,
    as every other bad input, instead of the usage text and exit 2."""

    def error(self, message):
        raise UserError("%s: %s (see --help)" % (self.prog, message))


def arg_number(kind=int, low=None, above=None, high=None, below=None):
    """An argparse `type=` for a number of `kind` (int or float) in a range: NaN, Inf, text and
    out-of-range values become one error line naming the flag (ArgumentParser.error), before
    anything is built or written. low/high are inclusive bounds, above/below exclusive."""
    import math

    def parse(text):
        try:
            value = kind(str(text).strip())
        except ValueError:
            raise argparse.ArgumentTypeError("%r is not %s" % (text, "a whole number" if kind is int else "a number"))
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError("%r is not a finite number" % text)
        for bound, bad, word in ((low, lambda v, b: v < b, ">="), (above, lambda v, b: v <= b, ">"),
                                 (high, lambda v, b: v > b, "<="), (below, lambda v, b: v >= b, "<")):
            if bound is not None and bad(value, bound):
                raise argparse.ArgumentTypeError("%s must be %s %s" % (text, word, bound))
        return value
    parse.__name__ = kind.__name__   # argparse names the type in its messages
    return parse


def _nearest_existing(path):
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def _check_writable_place(path, what):
    parent = _nearest_existing(os.path.dirname(os.path.abspath(path)))
    if not os.path.isdir(parent):
        raise UserError("%s %s: %s is a file, so no folder can be made there; choose another path"
                        % (what, path, parent))
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError("%s %s: %s is not writable; choose another path" % (what, path, parent))


def check_output_dir(path, what="output folder"):
    """UserError unless `path` is an existing writable folder or can be made as one (checked
    before any work, so a bad path costs nothing); nothing is created here."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError("%s %s is an existing file, not a folder; choose another path" % (what, path))
    _check_writable_place(path if os.path.isdir(path) else os.path.join(path, "x"), what)
    return path


def check_output_file(path, what="output file"):
    """UserError unless `path` can be written as a file (not a folder; a writable place)."""
    if os.path.isdir(path):
        raise UserError("%s %s is an existing folder, not a file; give a file name" % (what, path))
    _check_writable_place(path, what)
    return path


def check_pickle_file(path, what):
    """UserError unless `path` holds one complete pickle stream (walked opcode by opcode, nothing
    is unpickled or imported), so a damaged or truncated file is reported before a run starts."""
    import pickletools
    try:
        with open(path, "rb") as f:
            for _ in pickletools.genops(f):
                pass
    except OSError as error:
        raise UserError("%s %s: cannot load it (%s)" % (what, path, error.strerror or error)) from None
    except Exception as error:   # genops raises ValueError, EOFError, struct.error, ... on damage
        raise UserError("%s %s: cannot load it (not a complete pickle: %s)" % (what, path, error)) from None
    return path


def run_cli(func, *args, prefix="error", **kwargs):
    """A command-line tool's work: func's return value (None -> 0) as the exit code, or, for a
    UserError, one line `<prefix>: <message>` on stderr and exit code 1."""
    try:
        return func(*args, **kwargs) or 0
    except UserError as err:
        print("%s: %s" % (prefix, err), file=sys.stderr)
        return 1
    except OSError as err:
        if err.filename is None:   # Not about a path the user gave: a real bug, with its traceback.
            raise
        # A place the user named cannot be read or written (missing, not writable, disk full).
        print("%s: %s: %s" % (prefix, err.strerror or type(err).__name__, err.filename), file=sys.stderr)
        return 1


# ------------------------------------------------------------------------------------------
# Console logging and time formatting.

class _StreamTee:
    """Writes text to an original stream and to the Logger's file."""

    def __init__(self, logger: "Logger", stream):
        self._logger = logger
        self._stream = stream

    def write(self, text: str) -> int:
        self._logger._write(text, self._stream)
        return len(text)

    def flush(self) -> None:
        self._logger.flush()

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name):  # encoding, errors, fileno, ... of the original stream
        return getattr(self._stream, name)


class Logger:
    """Tees everything written to sys.stdout and sys.stderr into a text file.

    While active, console output still appears as before. `close()` (or leaving a `with`
    block) flushes the file and restores the original streams."""

    def __init__(self, file_name: Optional[str] = None, file_mode: str = "w", should_flush: bool = True):
        self.file = open(file_name, file_mode, encoding="utf-8") if file_name is not None else None
        self.should_flush = should_flush
        self.stdout = sys.stdout
        self.stderr = sys.stderr
        self._stderr_tee = _StreamTee(self, self.stderr)
        sys.stdout = self
        sys.stderr = self._stderr_tee

    def __enter__(self) -> "Logger":
        return self

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        self.close()

    def _write(self, text: str, stream) -> None:
        if not text:
            return
        if self.file is not None:
            self.file.write(text)
        stream.write(text)
        if self.should_flush:
            self.flush()

    def write(self, text: str) -> int:
        """Write to the file and to the original stdout."""
        self._write(text, self.stdout)
        return len(text)

    def write_file_only(self, text: str) -> None:
        """Write to the file alone (e.g. a traceback that the caller prints anyway)."""
        if self.file is not None and text:
            self.file.write(text)
            self.file.flush()

    def flush(self) -> None:
        if self.file is not None:
            self.file.flush()
        self.stdout.flush()
        self.stderr.flush()

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name):  # encoding, errors, fileno, ... of the original stdout
        stdout = self.__dict__.get("stdout")
        if stdout is None:
            raise AttributeError(name)
        return getattr(stdout, name)

    def close(self) -> None:
        """Flush, restore sys.stdout/sys.stderr (if still ours) and close the file."""
        if self.file is None and sys.stdout is not self:
            return
        self.flush()
        if sys.stdout is self:
            sys.stdout = self.stdout
        if sys.stderr is self._stderr_tee:
            sys.stderr = self.stderr
        if self.file is not None:
            self.file.close()
            self.file = None


def _split_time(seconds: float):
    s = max(int(round(seconds)), 0)
    return s // 86400, (s // 3600) % 24, (s // 60) % 60, s % 60, s


def _format_duration(seconds: float, max_fields: int) -> str:
    # Largest non-zero unit first, then up to max_fields - 1 smaller units, zero-padded.
    fields = _split_time(seconds)[:4]
    first = next((i for i, value in enumerate(fields) if value), 3)
    shown = list(zip(fields, "dhms"))[first:first + max_fields]
    return " ".join(("%d%s" if i == 0 else "%02d%s") % field for i, field in enumerate(shown))


def format_time(seconds: float) -> str:
    """Human-readable duration: '12s', '3m 05s', '2h 03m 04s', '1d 02h 03m'."""
    return _format_duration(seconds, 3)


def format_time_brief(seconds: float) -> str:
    """Shorter duration for tight columns: '12s', '3m 05s', '2h 03m', '1d 02h'."""
    return _format_duration(seconds, 2)


# ------------------------------------------------------------------------------------------
# Objects by dotted name: presets and pickles refer to functions as 'module.sub.func'.

def get_module_from_obj_name(obj_name: str) -> Tuple[types.ModuleType, str]:
    """Split 'pkg.module.obj.attr' into (imported module, 'obj.attr'), trying the longest
    importable module prefix first. Errors raised while importing an existing module pass
    through; a name with no importable prefix raises ValueError."""
    if not isinstance(obj_name, str) or not obj_name:
        raise ValueError(f"obj_name must be a non-empty dotted name, got {obj_name!r}")
    parts = obj_name.split(".")
    for i in range(len(parts), 0, -1):
        module_name = ".".join(parts[:i])
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            # Only 'this prefix is not a module' moves on; a missing dependency inside an
            # existing module is a real error.
            if error.name is not None and not module_name.startswith(error.name):
                raise
            continue
        local_name = ".".join(parts[i:])
        try:
            get_obj_from_module(module, local_name)
        except AttributeError:
            continue
        return module, local_name
    raise ValueError(f"obj_name: cannot find '{obj_name}' (no importable module defines it)")


def get_obj_from_module(module: types.ModuleType, obj_name: str) -> Any:
    """Follow 'a.b.c' attributes from a module ('' gives the module itself)."""
    obj = module
    if obj_name:
        for part in obj_name.split("."):
            obj = getattr(obj, part)
    return obj


def get_obj_by_name(name: str) -> Any:
    """The Python object named by a fully qualified dotted name."""
    module, local_name = get_module_from_obj_name(name)
    return get_obj_from_module(module, local_name)


def call_func_by_name(*args, func_name: str = None, **kwargs) -> Any:
    """Call the function (or class) named by `func_name` with the remaining arguments."""
    if func_name is None:
        raise ValueError("func_name must be given")
    func = get_obj_by_name(func_name)
    if not callable(func):
        raise ValueError(f"func_name: '{func_name}' is not callable")
    return func(*args, **kwargs)


def construct_class_by_name(*args, class_name: str = None, **kwargs) -> Any:
    """Instantiate the class named by `class_name` with the remaining arguments."""
    return call_func_by_name(*args, func_name=class_name, **kwargs)


def get_module_dir_by_obj_name(obj_name: str) -> str:
    """Directory of the module that defines the named object."""
    module, _ = get_module_from_obj_name(obj_name)
    return os.path.dirname(inspect.getfile(module))


def is_top_level_function(obj: Any) -> bool:
    """True for a function defined at the top level of its module (so it can be named)."""
    return (callable(obj) and getattr(obj, "__module__", None) in sys.modules
            and getattr(obj, "__name__", None) in sys.modules[obj.__module__].__dict__
            and sys.modules[obj.__module__].__dict__[obj.__name__] is obj)


def get_top_level_function_name(obj: Any) -> str:
    """Fully qualified name of a top-level function; '__main__' becomes the script's name."""
    if not is_top_level_function(obj):
        raise ValueError(f"obj: {obj!r} is not a top-level function of an importable module")
    module = obj.__module__
    if module == "__main__":
        main_file = getattr(sys.modules[module], "__file__", None)
        if main_file:
            module = os.path.splitext(os.path.basename(main_file))[0]
    return module + "." + obj.__name__


# ------------------------------------------------------------------------------------------
# Downloads: open_url with a cache, retries, Google Drive handling and checksums.

_RETRY_BASE_DELAY = 0.5     # Seconds before the 2nd attempt; grows linearly, capped below.
_RETRY_MAX_DELAY = 5.0
_CONNECT_TIMEOUT = 15.0     # Seconds; a stalled server counts as a failed attempt.
_READ_TIMEOUT = 60.0
_HTML_SNIFF_BYTES = 1 << 20 # HTML answers up to this size are checked for Drive pages.


def make_cache_dir_path(*paths: str) -> str:
    """A path in dnnlib's cache: $DNNLIB_CACHE_DIR, else the user's cache dir
    ($XDG_CACHE_HOME or ~/.cache, %LOCALAPPDATA% on Windows) + '/dnnlib'."""
    root = os.environ.get("DNNLIB_CACHE_DIR")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME")
        if not base and sys.platform == "win32":
            base = os.environ.get("LOCALAPPDATA")
        if not base:
            base = os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "dnnlib")
    return os.path.join(root, *paths)


def is_url(obj: Any, allow_file_urls: bool = False) -> bool:
    """True for an 'http://' or 'https://' URL with a host ('file://' too if allowed)."""
    if not isinstance(obj, str) or "://" not in obj:
        return False
    if obj.startswith("file://"):
        return allow_file_urls
    try:
        parsed = urllib.parse.urlparse(obj)
    except ValueError:
        return False
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)


def _sanitize_file_name(name: str) -> str:
    name = re.sub(r"[^0-9A-Za-z._-]", "_", urllib.parse.unquote(name)).strip("._")
    return name[:128] or "download"


def _url_file_name(url: str) -> str:
    return _sanitize_file_name(os.path.basename(urllib.parse.urlparse(url).path))


def _file_url_to_path(url: str) -> str:
    parsed = urllib.parse.urlparse(url)
    path = urllib.request.url2pathname(parsed.path)
    if parsed.netloc and parsed.netloc != "localhost":  # file://server/share (Windows UNC)
        path = "//" + parsed.netloc + path
    return path


def _md5_of_file(path: str) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class _RetryableError(Exception):
    """A failed attempt worth repeating (network trouble, 5xx, truncated transfer)."""


def _find_drive_confirm_url(url: str, response, html: str) -> Optional[str]:
    """The URL that gets past Google Drive's 'cannot scan for viruses' page, or None."""
    # Older Drive: a cookie 'download_warning_<...>=<token>' to echo back as confirm=<token>.
    for name, value in response.cookies.items():
        if name.startswith("download_warning"):
            return _with_query(url, confirm=value)
    # Newer Drive: a form with hidden fields (id, export, confirm, uuid) and an action URL.
    form = re.search(r'<form[^>]*id="download-form"[^>]*action="([^"]+)"[^>]*>(.*?)</form>', html, re.S)
    if form:
        fields = dict(re.findall(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"', form.group(2)))
        action = urllib.parse.urljoin(url, html_unescape(form.group(1)))
        return action + ("&" if "?" in action else "?") + urllib.parse.urlencode(fields)
    # In between: a link carrying confirm=<token>.
    link = re.search(r'href="([^"]*confirm=[0-9A-Za-z_-]+[^"]*)"', html)
    if link:
        return urllib.parse.urljoin(url, html_unescape(link.group(1)))
    token = re.search(r"confirm=([0-9A-Za-z_-]+)", html)
    if token:
        return _with_query(url, confirm=token.group(1))
    return None


def _with_query(url: str, **params: str) -> str:
    parsed = urllib.parse.urlparse(url)
    query = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
    query.update(params)
    return urllib.parse.urlunparse(parsed._replace(query=urllib.parse.urlencode(query)))


def _is_drive_page(html: str) -> bool:
    return "Google Drive" in html or "download_warning" in html or "download-form" in html


def _content_disposition_name(response) -> Optional[str]:
    header = response.headers.get("Content-Disposition", "")
    match = re.search(r"filename\*=UTF-8''([^;]+)", header) or re.search(r'filename="?([^";]+)"?', header)
    return _sanitize_file_name(match.group(1)) if match else None


def _download_once(session, url: str, cache_dir: str, url_md5: str, md5: Optional[str]) -> str:
    """One attempt: fetch `url` (following Drive confirmation pages) into the cache and
    return the cached path. The file appears under its final name only when complete."""
    request_url = url
    for _ in range(4):  # the first answer may be a Drive page that points to the real file
        try:
            response = session.get(request_url, stream=True, timeout=(_CONNECT_TIMEOUT, _READ_TIMEOUT))
        except requests.exceptions.RequestException as error:
            raise _RetryableError(_describe_request_error(error)) from error
        with response:
            if response.status_code >= 500 or response.status_code == 429:
                raise _RetryableError(f"HTTP {response.status_code} {response.reason}")
            if response.status_code >= 400:
                raise UserError(f"Download of {url} failed: HTTP {response.status_code} {response.reason}"
                                f"; check the URL, or pass a local path to the file instead")
            content_type = response.headers.get("Content-Type", "")
            length = response.headers.get("Content-Length")
            if "text/html" in content_type and (length is None or int(length) <= _HTML_SNIFF_BYTES):
                body = _read_body(response)
                html = body.decode("utf-8", errors="replace")
                if _is_drive_page(html):
                    if "quota exceeded" in html.lower() or "too many users have viewed or downloaded" in html.lower():
                        raise UserError(
                            f"Google Drive download quota exceeded for {url}; try again in a day, or download "
                            f"the file in a browser and put it at {os.path.join(cache_dir, url_md5 + '_' + _url_file_name(url))}"
                            f" (or pass its local path)")
                    next_url = _find_drive_confirm_url(request_url, response, html)
                    if next_url is not None and next_url != request_url:
                        request_url = next_url
                        continue
                    raise _RetryableError("Google Drive answered with a page that has no download link")
                return _store(iter([body]), response, url, cache_dir, url_md5, md5, expected_length=None)
            return _store(response.iter_content(chunk_size=1 << 20), response, url, cache_dir, url_md5, md5,
                          expected_length=int(length) if length and "Content-Encoding" not in response.headers else None)
    raise _RetryableError("too many Google Drive confirmation pages")


def _read_body(response) -> bytes:
    try:
        return response.content
    except requests.exceptions.RequestException as error:
        raise _RetryableError(_describe_request_error(error)) from error


def _describe_request_error(error: Exception) -> str:
    # requests nests the useful reason (e.g. 'Connection refused') deep in its message.
    text = str(error)
    for reason in ("Connection refused", "Name or service not known", "Temporary failure in name resolution",
                   "timed out", "Network is unreachable", "Connection reset", "IncompleteRead"):
        if reason in text:
            return reason
    return type(error).__name__ + (": " + text.splitlines()[0][:200] if text else "")


def _store(chunks, response, url, cache_dir, url_md5, md5, expected_length) -> str:
    name = _content_disposition_name(response) or _url_file_name(url)
    final_path = os.path.join(cache_dir, f"{url_md5}_{name}")

    def write(f):  # Raising here (broken transfer, bad checksum) leaves nothing in the cache.
        digest = hashlib.md5()
        size = 0
        try:
            for chunk in chunks:
                f.write(chunk)
                digest.update(chunk)
                size += len(chunk)
        except requests.exceptions.RequestException as error:
            raise _RetryableError(_describe_request_error(error)) from error
        if expected_length is not None and size != expected_length:
            raise _RetryableError(f"transfer broke off after {size} of {expected_length} bytes")
        if md5 is not None and digest.hexdigest() != md5.lower():
            raise UserError(f"Checksum mismatch for {url}: expected md5 {md5.lower()}, got {digest.hexdigest()}"
                            f"; the file may be corrupt or have changed on the server")
    return atomic_write(final_path, write)


def open_url(url: str, cache_dir: Optional[str] = None, num_attempts: int = 10, verbose: bool = True,
             return_filename: bool = False, md5: Optional[str] = None) -> Any:
    """Open a local path, a file:// URL or an http(s) URL; returns a binary file object, or
    the local file name if `return_filename`.

    http(s) downloads go into a cache directory (`cache_dir`, default
    make_cache_dir_path('downloads'), i.e. $DNNLIB_CACHE_DIR/downloads) as
    '<md5 of url>_<file name>', so the second call reads the cached copy. Transient failures
    are retried `num_attempts` times; Google Drive's confirmation page is followed; an
    optional `md5` hex digest is checked. Errors a user can act on raise UserError."""
    if num_attempts < 1:
        raise ValueError(f"num_attempts must be >= 1, got {num_attempts}")
    if not isinstance(url, (str, os.PathLike)):
        raise ValueError(f"url must be a string or path, got {type(url).__name__}")
    url = os.fspath(url)

    # Local files are read in place.
    if not is_url(url, allow_file_urls=True):
        if "://" in url:
            raise UserError(f"Unsupported URL scheme in {url}; use http(s)://, file:// or a local path")
        path = url
    elif url.startswith("file://"):
        path = _file_url_to_path(url)
    else:
        path = None
    if path is not None:
        if not os.path.isfile(path):
            raise UserError(f"File not found: {path}")
        if md5 is not None and _md5_of_file(path) != md5.lower():
            raise UserError(f"Checksum mismatch for {path}: expected md5 {md5.lower()}, got {_md5_of_file(path)}")
        return path if return_filename else open(path, "rb")

    if cache_dir is None:
        cache_dir = make_cache_dir_path("downloads")
    url_md5 = hashlib.md5(url.encode("utf-8")).hexdigest()
    expected_path = os.path.join(cache_dir, f"{url_md5}_{_url_file_name(url)}")

    # A cache hit never touches the network (a copy with a wrong checksum is fetched again).
    cached = sorted(glob.glob(os.path.join(glob.escape(cache_dir), url_md5 + "_*")))
    cached = [p for p in cached if md5 is None or _md5_of_file(p) == md5.lower()]
    if cached:
        return cached[0] if return_filename else open(cached[0], "rb")

    if verbose:
        print(f"Downloading {url} ...", end="", flush=True)
    last_reason = "unknown error"
    with requests.Session() as session:
        for attempt in range(num_attempts):
            if attempt > 0:
                time.sleep(min(_RETRY_BASE_DELAY * attempt, _RETRY_MAX_DELAY))
            try:
                path = _download_once(session, url, cache_dir, url_md5, md5)
                break
            except _RetryableError as error:
                last_reason = str(error)
            except UserError:
                if verbose:
                    print(" failed")
                raise
        else:
            if verbose:
                print(" failed")
            raise UserError(f"Could not download {url} ({last_reason}; {num_attempts} attempt(s)). Without network "
                            f"access, put the file at {expected_path} or pass a local path instead")
    if verbose:
        print(" done")
    return path if return_filename else open(path, "rb")
