"""Build, cache and load the CUDA ops (REFERENCE.md section 3.3), and pick an op implementation.

`get_plugin(cuda_file)` compiles `<op>.cu` into a TensorFlow op library at first use:
  1. nvcc compiles the file's kernel half (`__CUDACC__`; kernel headers only, no TF headers);
  2. the host C++ compiler compiles its op-wrapper half with `tf.sysconfig.get_compile_flags()`;
  3. both are linked with `tf.sysconfig.get_link_flags()` and a static cudart, so the library
     loads on a machine without CUDA libraries.
The library is cached as `<cache>/<op>_<hash>.so`, the hash covering the source, the local headers
it includes, the TF version and the full commands; it is built in a temporary directory and renamed
into place, so parallel processes are safe. Cache directory: $DNNLIB_CUDA_CACHE_DIR, else
`$XDG_CACHE_HOME/dnnlib/cuda_ops` (default `~/.cache`). GPU architecture: $DNNLIB_CUDA_ARCH (e.g.
`sm_90`), else the first visible GPU's, else the lowest one the installed nvcc supports.

`select_impl(impl, cuda_file)` implements the fallback: 'cuda' turns into 'ref' (one warning per
reason and process) when no GPU is visible, nvcc is missing or the build fails; $DNNLIB_OPS_IMPL
(`ref` or `cuda`) overrides the caller's choice, and a forced `cuda` that cannot work raises.
"""

import glob
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import warnings

import tensorflow.compat.v1 as tf

from . import tfutil

IMPL_ENV = "DNNLIB_OPS_IMPL"
CACHE_ENV = "DNNLIB_CUDA_CACHE_DIR"
ARCH_ENV = "DNNLIB_CUDA_ARCH"
VERBOSE = False

_plugins = {}          # cuda_file -> loaded module
_build_errors = {}     # cuda_file -> CustomOpError, so a failed build is not retried per call
_warned = set()        # fallback reasons already warned about
_impl_cache = {}       # (impl, env value, cuda_file) -> chosen impl


class CustomOpError(RuntimeError):
    """The CUDA op cannot be built or loaded here; the message says why."""


#----------------------------------------------------------------------------
# Tools and the target architecture.

def find_nvcc():
    """Path of nvcc ($CUDA_HOME/bin, PATH, /usr/local/cuda/bin) or None."""
    for root in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")):
        if root and os.path.isfile(os.path.join(root, "bin", "nvcc")):
            return os.path.join(root, "bin", "nvcc")
    found = shutil.which("nvcc")
    if found:
        return found
    return "/usr/local/cuda/bin/nvcc" if os.path.isfile("/usr/local/cuda/bin/nvcc") else None


def _run(cmd, what):
    return _wait(_start(cmd), cmd, what)


def _start(cmd):
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)


def _wait(proc, cmd, what):
    out = proc.communicate()[0]
    if proc.returncode != 0:
        tail = "\n".join(out.strip().splitlines()[-25:])
        raise CustomOpError("%s failed (exit %d): %s\n%s" % (what, proc.returncode, " ".join(cmd), tail))
    return out


def _cuda_root(nvcc):
    """The toolkit directory holding include/ and the static cudart (nvcc may be a wrapper script)."""
    candidates = [os.path.dirname(os.path.dirname(os.path.realpath(nvcc)))]
    try:  # wrapper scripts: ask nvcc where its target directory is
        out = subprocess.run([nvcc, "--dryrun", "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             universal_newlines=True).stdout
        candidates += re.findall(r"TOP=(\S+)", out)
    except OSError:
        pass
    candidates += sorted(glob.glob("/usr/local/cuda*"), reverse=True)
    for root in candidates:
        if os.path.isfile(os.path.join(root, "include", "cuda_runtime.h")):
            return root
    return candidates[0]


def _static_cudart(cuda_root):
    for sub in ("lib64", "lib", "targets/x86_64-linux/lib", "targets/sbsa-linux/lib"):
        path = os.path.join(cuda_root, sub, "libcudart_static.a")
        if os.path.isfile(path):
            return path
    raise CustomOpError("libcudart_static.a not found under %s" % cuda_root)


def visible_gpu_compute_capabilities():
    """[(major, minor)] of the GPUs TensorFlow sees (empty without GPU)."""
    caps = []
    for gpu in tfutil.list_gpus():
        cap = None
        if hasattr(tf.config.experimental, "get_device_details"):
            cap = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        if cap is None and shutil.which("nvidia-smi"):
            out = subprocess.run(["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"],
                                 stdout=subprocess.PIPE, universal_newlines=True).stdout.split()
            cap = tuple(int(v) for v in out[0].split(".")) if out else None
        if cap is not None:
            caps.append(tuple(cap))
    return caps


def _nvcc_archs(nvcc):
    out = _run([nvcc, "--list-gpu-arch"], "nvcc --list-gpu-arch")
    return sorted({int(m) for m in re.findall(r"compute_(\d+)", out)})


def gpu_arch(nvcc):
    """`sm_XY` to build for: $DNNLIB_CUDA_ARCH, the first visible GPU, else nvcc's lowest."""
    if os.environ.get(ARCH_ENV):
        return os.environ[ARCH_ENV]
    supported = _nvcc_archs(nvcc)
    if not supported:
        raise CustomOpError("`%s --list-gpu-arch` lists no architecture" % nvcc)
    caps = visible_gpu_compute_capabilities()
    if not caps:
        return "sm_%d" % supported[0]
    want = caps[0][0] * 10 + caps[0][1]
    # Newer GPU than this nvcc knows: the highest supported arch still embeds PTX the driver can JIT.
    usable = [a for a in supported if a <= want]
    if not usable:
        raise CustomOpError("GPU compute capability %d.%d is older than any architecture nvcc supports (%s)"
                            % (caps[0][0], caps[0][1], ", ".join("sm_%d" % a for a in supported)))
    return "sm_%d" % usable[-1]


#----------------------------------------------------------------------------
# Build and cache.

def cache_dir():
    if os.environ.get(CACHE_ENV):
        return os.environ[CACHE_ENV]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "dnnlib", "cuda_ops")


def _local_includes(path, seen=None):
    """The file and every `#include "..."` next to it, recursively (their content is hashed)."""
    seen = [] if seen is None else seen
    if path in seen or not os.path.isfile(path):
        return seen
    seen.append(path)
    with open(path, encoding="utf-8") as f:
        for name in re.findall(r'^\s*#\s*include\s+"([^"]+)"', f.read(), flags=re.M):
            _local_includes(os.path.join(os.path.dirname(path), name), seen)
    return seen


def build_commands(cuda_file, out_dir, nvcc=None, arch=None):
    """The three commands (nvcc, host C++, link) that turn cuda_file into out_dir/<op>.so."""
    nvcc = nvcc or find_nvcc()
    if nvcc is None:
        raise CustomOpError("nvcc not found (set CUDA_HOME or put nvcc on PATH)")
    arch = arch or gpu_arch(nvcc)
    root = _cuda_root(nvcc)
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or "g++"
    src_dir = os.path.dirname(os.path.abspath(cuda_file))
    name = os.path.splitext(os.path.basename(cuda_file))[0]
    kernel_obj = os.path.join(out_dir, name + "_kernels.o")
    op_obj = os.path.join(out_dir, name + "_op.o")
    lib = os.path.join(out_dir, name + ".so")
    return [
        [nvcc, "-c", "-x", "cu", cuda_file, "-o", kernel_obj, "-arch=" + arch, "-O3", "-DNDEBUG",
         "-Xcompiler", "-fPIC", "-I", src_dir, "--disable-warnings"],
        [cxx, "-c", "-x", "c++", cuda_file, "-o", op_obj, "-fPIC", "-O2", "-DNDEBUG", "-I", src_dir, "-w"]
        + tf.sysconfig.get_compile_flags(),
        [cxx, "-shared", op_obj, kernel_obj, "-o", lib] + tf.sysconfig.get_link_flags()
        + [_static_cudart(root), "-ldl", "-lpthread", "-lrt"],
    ], lib


def _cache_key(cuda_file, commands, out_dir):
    h = hashlib.sha256()
    for path in _local_includes(os.path.abspath(cuda_file)):
        h.update(os.path.basename(path).encode())
        with open(path, "rb") as f:
            h.update(f.read())
    h.update(tf.version.VERSION.encode() if hasattr(tf, "version") else tf.VERSION.encode())
    h.update(_run([commands[0][0], "--version"], "nvcc --version").encode())  # a toolkit upgraded in place
    for cmd in commands:  # temp dir names vary per build: hash the commands without them
        h.update(" ".join(cmd).replace(out_dir, "<out>").encode())
    return h.hexdigest()[:20]


def build_library(cuda_file):
    """Path of the compiled, cached op library for cuda_file (built now if missing)."""
    cuda_file = os.path.abspath(cuda_file)
    name = os.path.splitext(os.path.basename(cuda_file))[0]
    directory = cache_dir()
    os.makedirs(directory, exist_ok=True)
    placeholder = os.path.join(directory, "<tmp>")
    commands, _ = build_commands(cuda_file, placeholder)  # tmp dir names kept out of the hash
    target = os.path.join(directory, "%s_%s.so" % (name, _cache_key(cuda_file, commands, placeholder)))
    if os.path.isfile(target):
        return target
    tmp_dir = tempfile.mkdtemp(prefix=name + "_build_", dir=directory)
    try:
        commands = [[arg.replace(placeholder, tmp_dir) for arg in cmd] for cmd in commands]
        lib = os.path.join(tmp_dir, name + ".so")
        if VERBOSE:
            print("\n".join(" ".join(shlex.quote(c) for c in cmd) for cmd in commands))
        # The kernel and wrapper objects are independent: compile them side by side, then link.
        procs = [_start(cmd) for cmd in commands[:2]]
        try:
            for proc, cmd, what in zip(procs, commands, ("nvcc (kernels)", "host compiler (TF op wrapper)")):
                _wait(proc, cmd, "%s for %s" % (what, os.path.basename(cuda_file)))
        finally:
            for proc in procs:  # after a failure, stop the other compiler
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        _run(commands[2], "link for %s" % os.path.basename(cuda_file))
        os.replace(lib, target)  # atomic: a half-built library never carries the final name
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return target


def get_plugin(cuda_file):
    """Load (building if needed) the op library of cuda_file; raises CustomOpError with the reason."""
    cuda_file = os.path.abspath(cuda_file)
    if cuda_file in _plugins:
        return _plugins[cuda_file]
    if cuda_file in _build_errors:
        raise _build_errors[cuda_file]
    try:
        path = build_library(cuda_file)
        try:
            plugin = tf.load_op_library(path)
        except (tf.errors.NotFoundError, tf.errors.OpError, OSError) as e:
            raise CustomOpError("tf.load_op_library(%s) failed: %s" % (path, e))
    except CustomOpError as e:
        _build_errors[cuda_file] = e
        raise
    _plugins[cuda_file] = plugin
    return plugin


#----------------------------------------------------------------------------
# Implementation choice with fallback.

_NO_GPU = "no GPU visible to TensorFlow"


def _cuda_unavailable_reason(cuda_file):
    if not visible_gpu_compute_capabilities():
        return _NO_GPU
    if find_nvcc() is None:
        return "nvcc not found (set CUDA_HOME or put nvcc on PATH)"
    try:
        get_plugin(cuda_file)
    except CustomOpError as e:
        return "building %s failed: %s" % (os.path.basename(cuda_file), e)
    return None


def select_impl(impl, cuda_file):
    """'ref' or 'cuda' for an op whose caller asked for impl (see the module docstring)."""
    if impl not in ("ref", "cuda"):
        raise ValueError("impl must be 'ref' or 'cuda', got %r" % (impl,))
    forced = os.environ.get(IMPL_ENV, "").strip().lower()
    if forced not in ("", "ref", "cuda"):
        raise ValueError("environment variable %s must be 'ref' or 'cuda', got %r" % (IMPL_ENV, forced))
    key = (impl, forced, os.path.abspath(cuda_file))
    if key in _impl_cache:
        return _impl_cache[key]
    wanted = forced or impl
    chosen = wanted
    if wanted == "cuda":
        reason = _cuda_unavailable_reason(cuda_file)
        if reason is not None:
            if forced:
                raise CustomOpError("%s=cuda, but the CUDA op cannot be used: %s" % (IMPL_ENV, reason))
            if reason not in _warned and reason == _NO_GPU:
                # Expected on a CPU machine, not a problem: one informative line, no warning.
                _warned.add(reason)
                print("CPU only (no GPU visible): using the pure-TensorFlow ops (impl='ref').", flush=True)
            elif reason not in _warned:
                _warned.add(reason)
                warnings.warn("dnnlib custom ops: using impl='ref' (pure TF) instead of 'cuda': %s. "
                              "Set %s=ref to silence this." % (reason.splitlines()[0], IMPL_ENV),
                              RuntimeWarning, stacklevel=3)
            chosen = "ref"
    _impl_cache[key] = chosen
    return chosen
