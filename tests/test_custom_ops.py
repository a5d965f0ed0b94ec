"""custom_ops: building the .cu files into TF op libraries (needs nvcc; skipped without), the
build cache, the GPU architecture choice, the impl selection and its fallback, and the standalone
CUDA kernel test program."""

import concurrent.futures
import os
import re
import shutil
import subprocess
import warnings

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from dnnlib.tflib import custom_ops
from dnnlib.tflib.ops import fused_bias_act as fba
from dnnlib.tflib.ops import upfirdn_2d as ufd

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NVCC = custom_ops.find_nvcc()
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc not installed: the CUDA build cannot be tested")


@pytest.fixture
def fresh_state(monkeypatch):
    """Forget earlier impl decisions and warnings; no forced impl unless the test sets one."""
    monkeypatch.setattr(custom_ops, "_warned", set())
    monkeypatch.setattr(custom_ops, "_impl_cache", {})
    monkeypatch.setattr(custom_ops, "_build_errors", {})
    monkeypatch.setattr(custom_ops, "_plugins", {})
    monkeypatch.delenv(custom_ops.IMPL_ENV, raising=False)
    return monkeypatch

#----------------------------------------------------------------------------
# Building and loading (uses the normal cache directory, so only the first run compiles).

@needs_nvcc
def test_both_ops_build_load_and_register(tf_session):
    with concurrent.futures.ThreadPoolExecutor(2) as pool:  # first run: build both side by side
        list(pool.map(custom_ops.build_library, [fba._CUDA_FILE, ufd._CUDA_FILE]))
    fba_lib = custom_ops.get_plugin(fba._CUDA_FILE)
    ufd_lib = custom_ops.get_plugin(ufd._CUDA_FILE)
    for path in (custom_ops.build_library(fba._CUDA_FILE), custom_ops.build_library(ufd._CUDA_FILE)):
        assert os.path.isfile(path) and path.startswith(custom_ops.cache_dir())
    # The ops are registered: graph nodes of their types build, with the shape functions' output.
    x = tf.zeros([2, 3, 5, 1])
    y = ufd_lib.up_fir_dn2d(x=x, k=tf.ones([4, 4]), upx=2, upy=2, downx=1, downy=1,
                            padx0=2, padx1=1, pady0=1, pady1=0)
    assert y.op.type == "UpFirDn2D"
    assert y.shape.as_list() == [2, (3 * 2 + 1 + 0 - 4) // 1 + 1, (5 * 2 + 2 + 1 - 4) + 1, 1]
    e = tf.constant([], tf.float32)
    z = fba_lib.fused_bias_act(x=x, b=tf.zeros([3]), ref=e, grad=0, axis=1, act=3, alpha=0.2, gain=1.0)
    assert z.op.type == "FusedBiasAct" and z.shape.as_list() == [2, 3, 5, 1]
    if not custom_ops.visible_gpu_compute_capabilities():
        with pytest.raises(tf.errors.OpError, match="(?i)kernel|device"):  # GPU-only kernels
            tf_session.run(z)


@needs_nvcc
def test_cache_key_follows_source_and_included_headers(tmp_path):
    for name in ("fused_bias_act.cu", "fused_bias_act_kernel.cuh"):
        shutil.copy(os.path.join(os.path.dirname(fba._CUDA_FILE), name), str(tmp_path / name))
    cu = str(tmp_path / "fused_bias_act.cu")
    commands, _ = custom_ops.build_commands(cu, "<out>", arch="sm_80")
    key0 = custom_ops._cache_key(cu, commands, "<out>")
    assert custom_ops._cache_key(cu, commands, "<out>") == key0
    with open(str(tmp_path / "fused_bias_act_kernel.cuh"), "a") as f:
        f.write("\n// edited\n")
    key1 = custom_ops._cache_key(cu, commands, "<out>")
    assert key1 != key0
    commands_86, _ = custom_ops.build_commands(cu, "<out>", arch="sm_86")
    assert custom_ops._cache_key(cu, commands_86, "<out>") != key1
    # Flags come from tf.sysconfig, not hard-coded.
    assert all(flag in commands[1] for flag in tf.sysconfig.get_compile_flags())
    assert all(flag in commands[2] for flag in tf.sysconfig.get_link_flags())


@needs_nvcc
def test_gpu_arch_choice(fresh_state):
    listed = subprocess.run([NVCC, "--list-gpu-arch"], stdout=subprocess.PIPE, universal_newlines=True).stdout
    archs = sorted(int(a) for a in re.findall(r"compute_(\d+)", listed))
    fresh_state.delenv(custom_ops.ARCH_ENV, raising=False)
    fresh_state.setattr(custom_ops, "visible_gpu_compute_capabilities", lambda: [])
    assert custom_ops.gpu_arch(NVCC) == "sm_%d" % archs[0]  # compile-only: the lowest supported
    fresh_state.setattr(custom_ops, "visible_gpu_compute_capabilities", lambda: [(archs[-1] // 10, archs[-1] % 10)])
    assert custom_ops.gpu_arch(NVCC) == "sm_%d" % archs[-1]
    fresh_state.setattr(custom_ops, "visible_gpu_compute_capabilities", lambda: [(99, 9)])  # newer than nvcc
    assert custom_ops.gpu_arch(NVCC) == "sm_%d" % archs[-1]
    fresh_state.setenv(custom_ops.ARCH_ENV, "sm_123")
    assert custom_ops.gpu_arch(NVCC) == "sm_123"


def test_failed_build_is_reported_and_atomic(fresh_state, tmp_path):
    bad = tmp_path / "broken.cu"
    bad.write_text("this is not C++\n")
    fresh_state.setenv(custom_ops.CACHE_ENV, str(tmp_path / "cache"))
    with pytest.raises(custom_ops.CustomOpError, match="broken.cu|nvcc"):
        custom_ops.get_plugin(str(bad))
    leftovers = os.listdir(str(tmp_path / "cache")) if (tmp_path / "cache").exists() else []
    assert leftovers == []  # no half-built library, no temp dir left behind

#----------------------------------------------------------------------------
# Implementation choice.

def test_cpu_fallback_is_one_line_of_ours_not_a_warning(fresh_state, capsys):
    fresh_state.setattr(custom_ops, "visible_gpu_compute_capabilities", lambda: [])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert custom_ops.select_impl("cuda", fba._CUDA_FILE) == "ref"
        assert custom_ops.select_impl("cuda", ufd._CUDA_FILE) == "ref"
        assert custom_ops.select_impl("cuda", fba._CUDA_FILE) == "ref"
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and "no GPU" in lines[0] and "impl='ref'" in lines[0]
    assert custom_ops.select_impl("ref", fba._CUDA_FILE) == "ref"


def test_fallback_reasons_missing_nvcc_and_failed_build(fresh_state, tmp_path):
    fresh_state.setattr(custom_ops, "visible_gpu_compute_capabilities", lambda: [(8, 0)])
    fresh_state.setattr(custom_ops, "find_nvcc", lambda: None)
    with pytest.warns(RuntimeWarning, match="nvcc not found"):
        assert custom_ops.select_impl("cuda", fba._CUDA_FILE) == "ref"
    fresh_state.setattr(custom_ops, "_impl_cache", {})

    def failing_build(cuda_file):
        raise custom_ops.CustomOpError("nvcc (kernels) failed (exit 1): boom")
    fresh_state.setattr(custom_ops, "find_nvcc", lambda: "/usr/bin/nvcc")
    fresh_state.setattr(custom_ops, "build_library", failing_build)
    with pytest.warns(RuntimeWarning, match="building upfirdn_2d.cu failed"):
        assert custom_ops.select_impl("cuda", ufd._CUDA_FILE) == "ref"


def test_environment_variable_forces_an_impl(fresh_state, tf_session):
    fresh_state.setattr(custom_ops, "visible_gpu_compute_capabilities", lambda: [])
    fresh_state.setenv(custom_ops.IMPL_ENV, "ref")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # forced ref: no fallback warning
        assert custom_ops.select_impl("cuda", fba._CUDA_FILE) == "ref"
        y = fba.fused_bias_act(np.array([[-1.0, 2.0]], np.float32), act="lrelu")  # default impl='cuda'
    np.testing.assert_allclose(tf_session.run(y), [[-0.2 * np.sqrt(2), 2 * np.sqrt(2)]], rtol=1e-6)
    fresh_state.setenv(custom_ops.IMPL_ENV, "cuda")
    with pytest.raises(custom_ops.CustomOpError, match="DNNLIB_OPS_IMPL=cuda.*no GPU"):
        custom_ops.select_impl("ref", fba._CUDA_FILE)
    fresh_state.setenv(custom_ops.IMPL_ENV, "fast")
    with pytest.raises(ValueError, match="DNNLIB_OPS_IMPL"):
        custom_ops.select_impl("cuda", fba._CUDA_FILE)

#----------------------------------------------------------------------------
# The standalone kernel test program and, on a GPU, cuda against ref.

@needs_nvcc
def test_standalone_cuda_kernel_program(tmp_path):
    exe = str(tmp_path / "test_kernels")
    subprocess.run([NVCC, "-I", os.path.join(REPO, "dnnlib", "tflib", "ops"), "-o", exe,
                    os.path.join(REPO, "tests", "cuda", "test_kernels.cu")], check=True)
    proc = subprocess.run([exe], stdout=subprocess.PIPE, universal_newlines=True)
    assert "FAIL" not in proc.stdout, proc.stdout
    assert sum(line.startswith("PASS ") for line in proc.stdout.splitlines()) == 27 + 9
    gpu = bool(custom_ops.visible_gpu_compute_capabilities())
    assert proc.returncode == (0 if gpu else 2), proc.stdout


@pytest.mark.skipif(not custom_ops.visible_gpu_compute_capabilities(), reason="needs a GPU to run the CUDA ops")
def test_cuda_matches_ref_on_gpu(fresh_state, tf_session):
    rng = np.random.RandomState(0)
    x = tf.constant(rng.randn(2, 3, 9, 7).astype(np.float32))
    b = tf.constant(rng.randn(3).astype(np.float32))
    k = rng.rand(5, 3)
    pairs = []
    for impl in ("ref", "cuda"):
        y1 = fba.fused_bias_act(x, b, act="swish", impl=impl)
        y2 = ufd.upsample_2d(x, [1, 3, 3, 1], impl=impl)
        y3 = ufd.upfirdn_2d(tf.reshape(x, [6, 9, 7, 1]), k, upx=3, downy=2, padx0=2, pady1=-1, impl=impl)
        loss = tf.reduce_sum(tf.square(y1)) + tf.reduce_sum(tf.square(y2)) + tf.reduce_sum(tf.square(y3))
        g = tf.gradients(loss, x)[0]
        pairs.append([y1, y2, y3, g, tf.gradients(tf.reduce_sum(tf.square(g)), x)[0]])
    ref, cuda = tf_session.run(pairs)
    for a, b in zip(ref, cuda):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4)
