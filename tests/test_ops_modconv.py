"""The device-chosen forms of training/networks.py's conv primitives against each other: the CPU
form (unfused modulated conv, NHWC convolution between transposes) and the GPU form (fused grouped
modulated conv, NCHW), on random inputs with deliberately unequal sizes: values and gradients with
respect to the inputs and every variable."""

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from training import networks


def _values_and_grads(sess, build, cpu, monkeypatch, inputs, seed):
    monkeypatch.setattr(networks, "on_cpu", lambda x: cpu)
    with tf.variable_scope("cpu%d" % cpu):
        out = build(*inputs)
    variables = sorted(tf.trainable_variables("cpu%d/" % cpu), key=lambda v: v.name)
    weights = tf.constant(np.random.RandomState(seed).randn(*out.shape.as_list()), out.dtype)
    grads = tf.gradients(tf.reduce_sum(out * weights), list(inputs) + variables)
    sess.run(tf.variables_initializer(variables))
    return variables, out, grads


@pytest.mark.parametrize("case", [
    dict(kind="mod", up=False, demodulate=True, kernel=3),
    dict(kind="mod", up=True, demodulate=True, kernel=3),
    dict(kind="mod", up=False, demodulate=False, kernel=1),
    dict(kind="conv", up=False, down=False, kernel=3),
    dict(kind="conv", up=True, down=False, kernel=3),
    dict(kind="conv", up=False, down=True, kernel=3),
    dict(kind="conv", up=False, down=False, kernel=1),
])
def test_cpu_and_gpu_forms_agree(tf_session, monkeypatch, case):
    rng = np.random.RandomState(7)
    x = tf.constant(rng.randn(3, 5, 6, 8).astype(np.float32))     # [B, I, h, w], h != w
    y = tf.constant(rng.randn(3, 7).astype(np.float32))           # [B, D]
    if case["kind"] == "mod":
        build = lambda x, y: networks.modulated_conv2d(x, y, 4, case["kernel"], up=case["up"],
                                                       demodulate=case["demodulate"], resample_kernel=[1, 3, 3, 1])
        inputs = (x, y)
    else:
        build = lambda x: networks.conv2d(x, 4, case["kernel"], up=case["up"], down=case["down"],
                                          resample_kernel=[1, 3, 3, 1])
        inputs = (x,)
    gpu_vars, gpu_out, gpu_grads = _values_and_grads(tf_session, build, False, monkeypatch, inputs, 1)
    cpu_vars, cpu_out, cpu_grads = _values_and_grads(tf_session, build, True, monkeypatch, inputs, 1)
    assert [v.name[5:] for v in cpu_vars] == [v.name[5:] for v in gpu_vars]
    assert [v.shape.as_list() for v in cpu_vars] == [v.shape.as_list() for v in gpu_vars]
    for a, b in zip(cpu_vars, gpu_vars):   # the same weights on both sides
        tf_session.run(a.assign(b))
    ref = tf_session.run([gpu_out] + gpu_grads)
    got = tf_session.run([cpu_out] + cpu_grads)
    assert got[0].shape == ref[0].shape
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * max(1.0, np.abs(b).max()))
