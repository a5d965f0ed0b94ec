"""fused_bias_act (impl='ref') against numpy formulas for every activation; first- and
second-order gradients against finite differences; and the CUDA path's hand-written gradients
(REFERENCE 3.1, second order fixed per 10.2 item 16) with the kernel emulated in TF."""

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from dnnlib.tflib.ops import fused_bias_act as fba

SELU_SCALE, SELU_ALPHA = 1.0507009873554805, 1.6732632423543772


def np_sigmoid(z):
    return 1 / (1 + np.exp(-z))


NP_ACTS = {  # act: (numpy function of z and alpha, default alpha, default gain)
    "linear":   (lambda z, a: z, None, 1.0),
    "relu":     (lambda z, a: np.maximum(z, 0), None, np.sqrt(2)),
    "lrelu":    (lambda z, a: np.where(z > 0, z, a * z), 0.2, np.sqrt(2)),
    "tanh":     (lambda z, a: np.tanh(z), None, 1.0),
    "sigmoid":  (lambda z, a: np_sigmoid(z), None, 1.0),
    "elu":      (lambda z, a: np.where(z >= 0, z, np.expm1(np.minimum(z, 0))), None, 1.0),
    "selu":     (lambda z, a: SELU_SCALE * np.where(z >= 0, z, SELU_ALPHA * np.expm1(np.minimum(z, 0))), None, 1.0),
    "softplus": (lambda z, a: np.log1p(np.exp(z)), None, 1.0),
    "swish":    (lambda z, a: z * np_sigmoid(z), None, np.sqrt(2)),
}
SHAPE = [3, 4, 5]


def _bias_shape(axis):
    return [-1 if i == axis % 3 else 1 for i in range(3)]


@pytest.mark.parametrize("act", sorted(NP_ACTS))
def test_values_match_numpy(tf_session, act):
    rng = np.random.RandomState(sorted(NP_ACTS).index(act))
    func, def_alpha, def_gain = NP_ACTS[act]
    x = rng.randn(*SHAPE).astype(np.float32) * 2
    ops, wants = [], []
    for axis in (0, 1, 2, -1):
        b = rng.randn(SHAPE[axis]).astype(np.float32)
        z = x.astype(np.float64) + b.reshape(_bias_shape(axis))
        ops.append(fba.fused_bias_act(x, b, axis=axis, act=act, impl="ref"))  # defaults
        wants.append(def_gain * func(z, def_alpha if def_alpha is not None else 0))
        ops.append(fba.fused_bias_act(x, b, axis=axis, act=act, alpha=0.35, gain=0.6, impl="ref"))
        wants.append(0.6 * func(z, 0.35 if act == "lrelu" else None))
    ops.append(fba.fused_bias_act(x, None, act=act, impl="ref"))  # no bias
    wants.append(def_gain * func(x.astype(np.float64), def_alpha))
    for got, want in zip(tf_session.run(ops), wants):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("alpha", [0.0, 0.2, 1.0, 1.5, -0.3])
def test_lrelu_values_and_gradient_for_any_slope(tf_session, alpha):
    """Slopes in [0, 1] take the LeakyRelu op, others the select: both match numpy, gradient too."""
    x = np.array([-2.0, -0.5, 0.0, 0.5, 3.0], np.float32)
    xt = tf.constant(x)
    y = fba.fused_bias_act(xt, None, axis=0, act="lrelu", alpha=alpha, gain=1.0, impl="ref")
    got, grad = tf_session.run([y, tf.gradients(tf.reduce_sum(y * np.arange(1, 6)), xt)[0]])
    np.testing.assert_allclose(got, np.where(x > 0, x, alpha * x), rtol=1e-6)
    np.testing.assert_allclose(grad, np.arange(1, 6) * np.where(x > 0, 1.0, alpha), rtol=1e-6)

#----------------------------------------------------------------------------
# The CUDA kernel's contract (act*10 + grad cases), in TF ops, so the CUDA path's gradient
# wiring runs without a GPU.

def emulated_kernel(x, b, ref, grad, axis, act, alpha, gain):
    if grad == 0:
        v = x + fba._broadcast_bias(b, axis, x.shape.ndims) if b.shape[0].value != 0 else x
        return fba._fused_bias_act_ref(v, None, axis, act, alpha, gain)
    d = x
    r = ref if act == "swish" else ref / gain
    one = tf.ones_like(d)
    if act == "linear":
        out = d if grad == 1 else tf.zeros_like(d)
    elif act in ("relu", "lrelu"):
        slope = 0.0 if act == "relu" else alpha
        out = tf.where(r > 0, d, slope * d) if grad == 1 else tf.zeros_like(d)
    elif act == "tanh":
        out = d * (1 - r * r) * (one if grad == 1 else -2 * r)
    elif act == "sigmoid":
        out = d * r * (1 - r) * (one if grad == 1 else 1 - 2 * r)
    elif act in ("elu", "selu"):
        c = 1.0 if act == "elu" else SELU_SCALE * SELU_ALPHA
        neg = d * (r + c)
        pos = d * (1.0 if act == "elu" else SELU_SCALE) if grad == 1 else tf.zeros_like(d)
        out = tf.where(r >= 0, pos, neg)
    elif act == "softplus":
        e = tf.exp(-r)
        out = d * (1 - e) if grad == 1 else d * e * (1 - e)
    else:  # swish, r = z
        e = tf.exp(r)
        q = e + 1
        out = d * e * (r + q) / (q * q) if grad == 1 else d * e * (r * (2 - q) + 2 * q) / (q * q * q)
    return out * gain


def _make_inputs(rng, act, shape=(2, 3)):
    """z = x + b kept away from the kinks of relu/lrelu/elu/selu, so finite differences hold."""
    b = rng.randn(shape[1])
    z = rng.uniform(0.3, 1.5, size=shape) * rng.choice([-1, 1], size=shape)
    return z - b, b


def _grad_graph(x, b, act, path, alpha, gain, c):
    y = (fba._fused_bias_act_cuda if path == "cuda" else fba._fused_bias_act_ref)(x, b, 1, act, alpha, gain)
    f = tf.reduce_sum(y * c)
    gx, gb = tf.gradients(f, [x, b], unconnected_gradients="zero")
    h = tf.reduce_sum(tf.square(gx)) + tf.reduce_sum(tf.square(gb) * 0.5)  # needs second order
    return y, gx, gb, h, tf.gradients(h, [x, b], unconnected_gradients="zero")


def _finite_diff(sess, h, ph, x0, feed, eps=1e-5):
    out = np.zeros_like(x0)
    for i in range(x0.size):
        d = np.zeros_like(x0).reshape(-1)
        d[i] = eps
        d = d.reshape(x0.shape)
        out.reshape(-1)[i] = (sess.run(h, {**feed, ph: x0 + d}) - sess.run(h, {**feed, ph: x0 - d})) / (2 * eps)
    return out


@pytest.mark.parametrize("act", sorted(NP_ACTS))
def test_gradients_first_and_second_order(tf_session, monkeypatch, act):
    monkeypatch.setattr(fba, "_kernel", emulated_kernel)
    rng = np.random.RandomState(10 + sorted(NP_ACTS).index(act))
    x0, b0 = _make_inputs(rng, act)
    alpha, gain = (0.3, 1.4) if act in ("lrelu", "swish") else (0.0, NP_ACTS[act][2])
    c = tf.constant(rng.randn(*x0.shape))
    x = tf.placeholder(tf.float64, x0.shape)
    b = tf.placeholder(tf.float64, b0.shape)
    feed = {x: x0, b: b0}
    ref = _grad_graph(x, b, act, "ref", alpha, gain, c)
    cuda = _grad_graph(x, b, act, "cuda", alpha, gain, c)
    ref_v, cuda_v = tf_session.run([ref, cuda], feed)
    # Ref first-order gradients and second-order gradients against finite differences.
    f_ref = tf.reduce_sum(ref[0] * c)
    num_gx = _finite_diff(tf_session, f_ref, x, x0, feed)
    num_gb = _finite_diff(tf_session, f_ref, b, b0, feed)
    np.testing.assert_allclose(ref_v[1], num_gx, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ref_v[2], num_gb, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ref_v[4][0], _finite_diff(tf_session, ref[3], x, x0, feed), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ref_v[4][1], _finite_diff(tf_session, ref[3], b, b0, feed), rtol=1e-4, atol=1e-6)
    # The CUDA path (kernel emulated) gives the same values and gradients of both orders.
    for got, want in zip(cuda_v[:4], ref_v[:4]):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)
    for got, want in zip(cuda_v[4], ref_v[4]):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)


def test_first_order_matches_compute_gradient_on_other_axis(tf_session):
    rng = np.random.RandomState(5)
    x0 = rng.randn(2, 3, 4)
    x = tf.placeholder(tf.float64, x0.shape)
    y = fba.fused_bias_act(x, tf.constant(rng.randn(4)), axis=2, act="softplus", gain=0.8, impl="ref")
    theo, num = tf.test.compute_gradient(x, list(x0.shape), y, list(x0.shape), x_init_value=x0)
    np.testing.assert_allclose(theo, num, rtol=1e-5, atol=1e-6)

#----------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,name", [
    (dict(act="gelu"), "act"),
    (dict(act="relu", impl="gpu"), "impl"),
    (dict(axis=3), "axis"),
    (dict(b=np.zeros([5], np.float32)), "b"),
    (dict(b=np.zeros([4, 1], np.float32)), "b"),
])
def test_bad_arguments_raise_value_error(tf_session, kwargs, name):
    x = tf.zeros([2, 4, 3])
    with pytest.raises(ValueError, match=name):
        fba.fused_bias_act(x, **{"impl": "ref", **kwargs})
