"""upfirdn_2d and its helpers (impl='ref') against independent numpy/scipy computations; gradients
against finite differences; the CUDA path's gradient formulas with the kernel emulated by 'ref'."""

import numpy as np
import pytest
import scipy.signal
import tensorflow.compat.v1 as tf

from dnnlib.tflib.ops import upfirdn_2d as ufd

#----------------------------------------------------------------------------
# Independent numpy reference: explicit zero insertion, zero pad / crop, scipy convolution, stride.

def np_upfirdn(x, k, upx=1, upy=1, downx=1, downy=1, padx0=0, padx1=0, pady0=0, pady1=0):
    major, h, w, minor = x.shape
    u = np.zeros([major, h * upy, w * upx, minor], np.float64)
    u[:, ::upy, ::upx, :] = x
    u = np.pad(u, [[0, 0], [max(pady0, 0), max(pady1, 0)], [max(padx0, 0), max(padx1, 0)], [0, 0]])
    u = u[:, max(-pady0, 0): u.shape[1] - max(-pady1, 0), max(-padx0, 0): u.shape[2] - max(-padx1, 0)]
    out = []
    for m in range(major):
        chans = [scipy.signal.convolve2d(u[m, :, :, c], k, mode="valid")[::downy, ::downx] for c in range(minor)]
        out.append(np.stack(chans, axis=-1))
    return np.stack(out)


def nchw_to_minor(x):  # NCHW -> [N*C, H, W, 1] for np_upfirdn
    n, c, h, w = x.shape
    return x.reshape(n * c, h, w, 1)


def norm_k(k):
    k = np.asarray(k, np.float64)
    k = np.outer(k, k) if k.ndim == 1 else k
    return k / k.sum()


#----------------------------------------------------------------------------

def _random_case(rng):
    while True:
        kh, kw = rng.randint(1, 5, size=2)
        upx, upy, downx, downy = rng.randint(1, 4, size=4)
        pads = rng.randint(-2, 4, size=4)
        h, w = rng.randint(2, 6, size=2)
        if h * upy + pads[2] + pads[3] >= kh and w * upx + pads[0] + pads[1] >= kw:
            return dict(shape=[2, h, w, int(rng.randint(1, 3))], k=rng.randn(kh, kw).astype(np.float32),
                        upx=upx, upy=upy, downx=downx, downy=downy,
                        padx0=pads[0], padx1=pads[1], pady0=pads[2], pady1=pads[3])


def test_upfirdn_2d_ref_matches_numpy(tf_session):
    rng = np.random.RandomState(0)
    cases = [_random_case(rng) for _ in range(14)]
    outs, expected = [], []
    for c in cases:
        x = rng.randn(*c["shape"]).astype(np.float32)
        kw = {n: int(c[n]) for n in ("upx", "upy", "downx", "downy", "padx0", "padx1", "pady0", "pady1")}
        outs.append(ufd.upfirdn_2d(tf.constant(x), c["k"], impl="ref", **kw))
        expected.append(np_upfirdn(x.astype(np.float64), c["k"].astype(np.float64), **kw))
    for got, want in zip(tf_session.run(outs), expected):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("data_format", ["NCHW", "NHWC"])
def test_helpers_match_numpy(tf_session, data_format):
    rng = np.random.RandomState(1)
    x = rng.randn(2, 3, 6, 5).astype(np.float32)  # NCHW
    xt = tf.constant(x if data_format == "NCHW" else x.transpose(0, 2, 3, 1))
    k2d = rng.rand(3, 3).astype(np.float32) + 0.1
    ops, wants = [], []

    def add(op, want):
        ops.append(op)
        wants.append(want)

    xm = nchw_to_minor(x.astype(np.float64))
    kw = dict(data_format=data_format, impl="ref")
    # filter_2d: table of REFERENCE 3.2 (pads kh//2, (kh-1)//2), gain applied.
    for k, gain in (([1, 3, 3, 1], 1), (k2d, 2.0), ([1, 2, 1], 1)):
        kn = norm_k(k)
        kh = kn.shape[0]
        add(ufd.filter_2d(xt, k, gain=gain, **kw), gain * np_upfirdn(xm, kn, padx0=kh // 2, padx1=(kh - 1) // 2,
                                                                     pady0=kh // 2, pady1=(kh - 1) // 2))
    # Odd symmetric filter: same as scipy's centred "same" convolution.
    add(ufd.filter_2d(xt, [1, 2, 1], **kw),
        np.stack([scipy.signal.convolve2d(img[:, :, 0], norm_k([1, 2, 1]), mode="same") for img in xm])[..., None])
    # Nearest upsampling = np.repeat; box downsampling = block mean; times gain.
    add(ufd.upsample_2d(xt, None, factor=3, gain=0.5, **kw), 0.5 * xm.repeat(3, axis=1).repeat(3, axis=2))
    add(ufd.downsample_2d(xt, None, factor=2, gain=1.5, **kw),
        1.5 * xm[:, :6, :4].reshape(6, 3, 2, 2, 2, 1).mean(axis=(2, 4)))
    # FIR up/down sampling with the table's pads.
    for k, f in (([1, 3, 3, 1], 2), (k2d, 2), ([1, 3, 3, 1], 3)):
        kn = norm_k(k)
        p = kn.shape[0] - f
        add(ufd.upsample_2d(xt, k, factor=f, **kw),
            f * f * np_upfirdn(xm, kn, upx=f, upy=f, padx0=(p + 1) // 2 + f - 1, padx1=p // 2,
                               pady0=(p + 1) // 2 + f - 1, pady1=p // 2))
        add(ufd.downsample_2d(xt, k, factor=f, **kw),
            np_upfirdn(xm, kn, downx=f, downy=f, padx0=(p + 1) // 2, padx1=p // 2, pady0=(p + 1) // 2, pady1=p // 2))
    for got, want in zip(tf_session.run(ops), wants):
        want = want.reshape(2, 3, want.shape[1], want.shape[2])
        if data_format == "NHWC":
            want = want.transpose(0, 2, 3, 1)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def np_conv_same(x, w, groups=1):
    """NCHW cross-correlation with zero 'same' padding (odd kernel), w [kh, kw, inC, outC]."""
    return np_correlate(x, w, groups=groups, pad=w.shape[0] // 2)


def np_correlate(x, w, stride=1, groups=1, pad=0):
    """NCHW 'valid' cross-correlation after zero padding by pad, with stride and groups;
    w [kh, kw, inC, outC]; input channel group g feeds output channel group g."""
    in_c, out_c = w.shape[2], w.shape[3]
    per_g = out_c // groups
    return np.stack([np.stack([
        sum(scipy.signal.correlate2d(np.pad(img[(o // per_g) * in_c + i], pad), w[:, :, i, o], mode="valid")
            for i in range(in_c))[::stride, ::stride]
        for o in range(out_c)]) for img in x])


@pytest.mark.parametrize("data_format", ["NCHW", "NHWC"])
@pytest.mark.parametrize("conv,groups", [(3, 1), (1, 1), (3, 2)])
def test_upsample_conv_2d_matches_numpy(tf_session, data_format, conv, groups):
    rng = np.random.RandomState(2 + conv + groups)
    in_c, out_c, f, gain = 2, 4, 2, 1.3
    x = rng.randn(2, in_c * groups, 4, 6).astype(np.float64)
    w = rng.randn(conv, conv, in_c, out_c)
    k = [1, 3, 3, 1]
    to_fmt = (lambda a: a) if data_format == "NCHW" else (lambda a: a.transpose(0, 2, 3, 1))
    got = tf_session.run(ufd.upsample_conv_2d(tf.constant(to_fmt(x).astype(np.float32)), w.astype(np.float32), k,
                                              factor=f, gain=gain, data_format=data_format, impl="ref"))
    kn = norm_k(k) * gain * f * f
    # Semantics: upsample_2d (zero insertion + FIR) then a "same" convolution; exact away from the
    # border, where the fused op keeps the filter tails that a separate upsample would crop.
    ups = np_upfirdn(nchw_to_minor(x), kn, upx=f, upy=f, padx0=2, padx1=1, pady0=2, pady1=1)
    semantic = np_conv_same(ups.reshape(2, in_c * groups, 8, 12), w, groups)
    m = conv // 2
    gi = got if data_format == "NCHW" else got.transpose(0, 3, 1, 2)
    np.testing.assert_allclose(gi[:, :, m:8 - m, m:12 - m], semantic[:, :, m:8 - m, m:12 - m], rtol=1e-4, atol=1e-4)
    # Whole output: stride-f transposed convolution (zero insertion + full convolution with w, whose
    # in/out roles swap), then the FIR filter with the pads of REFERENCE 3.2's table.
    zi = np.zeros([2, in_c * groups, (4 - 1) * f + 1, (6 - 1) * f + 1])
    zi[:, :, ::f, ::f] = x
    tconv = np_correlate(zi, w, groups=groups, pad=conv - 1)  # = true convolution with flipped w
    p = (4 - f) - (conv - 1)
    full = np_upfirdn(nchw_to_minor(tconv), kn, padx0=(p + 1) // 2 + f - 1, padx1=p // 2 + 1,
                      pady0=(p + 1) // 2 + f - 1, pady1=p // 2 + 1).reshape(2, out_c, 8, 12)
    np.testing.assert_allclose(gi, full, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("data_format", ["NCHW", "NHWC"])
@pytest.mark.parametrize("conv", [3, 1])
def test_conv_downsample_2d_matches_numpy(tf_session, data_format, conv):
    rng = np.random.RandomState(7 + conv)
    in_c, out_c, f, gain = 2, 3, 2, 0.7
    x = rng.randn(2, in_c, 8, 10)
    w = rng.randn(conv, conv, in_c, out_c)
    k = [1, 3, 3, 1]
    to_fmt = (lambda a: a) if data_format == "NCHW" else (lambda a: a.transpose(0, 2, 3, 1))
    got = tf_session.run(ufd.conv_downsample_2d(tf.constant(to_fmt(x).astype(np.float32)), w.astype(np.float32), k,
                                                factor=f, gain=gain, data_format=data_format, impl="ref"))
    gi = got if data_format == "NCHW" else got.transpose(0, 3, 1, 2)
    kn = norm_k(k) * gain
    # Semantics: a "same" convolution then downsample_2d; exact away from the border.
    conv_out = np_conv_same(x, w)
    semantic = np_upfirdn(nchw_to_minor(conv_out), kn, downx=f, downy=f, padx0=1, padx1=1, pady0=1, pady1=1)
    semantic = semantic.reshape(2, out_c, 4, 5)
    m = 1 if conv > 1 else 0
    np.testing.assert_allclose(gi[:, :, m:4 - m, m:5 - m], semantic[:, :, m:4 - m, m:5 - m], rtol=1e-4, atol=1e-4)
    # Whole output: FIR filter with the table's pads, then a stride-f 'valid' correlation with w.
    p = (4 - f) + (conv - 1)
    filt = np_upfirdn(nchw_to_minor(x), kn, padx0=(p + 1) // 2, padx1=p // 2, pady0=(p + 1) // 2, pady1=p // 2)
    filt = filt.reshape(2, in_c, filt.shape[1], filt.shape[2])
    np.testing.assert_allclose(gi, np_correlate(filt, w, stride=f), rtol=1e-4, atol=1e-4)

#----------------------------------------------------------------------------
# Gradients.

def _finite_diff(sess, loss, x_ph, x0, eps=1e-2):
    grad = np.zeros_like(x0, dtype=np.float64)
    flat = x0.reshape(-1)
    for i in range(flat.size):
        xp, xm = flat.copy(), flat.copy()
        xp[i] += eps
        xm[i] -= eps
        lp = sess.run(loss, {x_ph: xp.reshape(x0.shape)})
        lm = sess.run(loss, {x_ph: xm.reshape(x0.shape)})
        grad.reshape(-1)[i] = (lp - lm) / (2 * eps)
    return grad


UFD_ARGS = dict(upx=2, upy=1, downx=1, downy=2, padx0=1, padx1=-1, pady0=2, pady1=0)


@pytest.mark.parametrize("path", ["ref", "cuda_formula"])
def test_upfirdn_2d_gradients(tf_session, monkeypatch, path):
    rng = np.random.RandomState(3)
    k = rng.randn(3, 2).astype(np.float64)
    x0 = rng.randn(1, 3, 4, 2)
    if path == "ref":
        op = lambda x: ufd.upfirdn_2d(x, k, impl="ref", **UFD_ARGS)
    else:  # the CUDA path's explicit gradients, with its kernel emulated by the spec
        monkeypatch.setattr(ufd, "_kernel", ufd._upfirdn_2d_ref)
        args = [UFD_ARGS[n] for n in ("upx", "upy", "downx", "downy", "padx0", "padx1", "pady0", "pady1")]
        op = lambda x: ufd._upfirdn_2d_cuda(x, k, *args)
    x = tf.placeholder(tf.float64, x0.shape)
    y = op(x)
    # First order: the Jacobian against finite differences.
    theo, num = tf.test.compute_gradient(x, list(x0.shape), y, y.shape.as_list(), x_init_value=x0)
    np.testing.assert_allclose(theo, num, rtol=1e-6, atol=1e-6)
    # Second order: gradient of a squared gradient norm against finite differences.
    f = tf.reduce_sum(tf.square(y) * tf.constant(rng.rand(*y.shape.as_list())))
    g = tf.gradients(f, x)[0]
    h = tf.reduce_sum(tf.square(g))  # quadratic in x: central differences are exact
    dh = tf.gradients(h, x)[0]
    np.testing.assert_allclose(tf_session.run(dh, {x: x0}), _finite_diff(tf_session, h, x, x0), rtol=1e-4, atol=1e-4)

#----------------------------------------------------------------------------
# The separable fast form (_upfirdn_2d_sep, what impl='ref' runs for separable filters) against
# the spec (_upfirdn_2d_ref): values, first- and second-order gradients, on random cases.

def _assert_same_values_and_gradients(sess, x, x0, y_ref, y_other, rng):
    """y_other == y_ref at x0, with the first- and second-order gradients of a random weighting."""
    weights = tf.constant(rng.rand(*([x0.shape[0]] + y_ref.shape.as_list()[1:])))
    outs = []
    for y in (y_ref, y_other):
        g = tf.gradients(tf.reduce_sum(tf.square(y) * weights), x)[0]
        dh = tf.gradients(tf.reduce_sum(tf.square(g)), x)[0]
        outs.append(sess.run([y, g, dh], {x: x0}))
    for a, b in zip(*outs):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-6 * max(1.0, np.abs(a).max()))


@pytest.mark.parametrize("seed", range(6))
def test_separable_form_matches_spec(tf_session, seed):
    rng = np.random.RandomState(100 + seed)
    c = _random_case(rng)
    k = np.outer(rng.randn(c["k"].shape[0]), rng.randn(c["k"].shape[1])).astype(np.float32)
    factors = ufd._separable(k)
    assert factors is not None
    args = [int(c[n]) for n in ("upx", "upy", "downx", "downy", "padx0", "padx1", "pady0", "pady1")]
    shape = list(c["shape"])
    shape[3] = [1, 3][seed % 2]           # the NCHW helpers' minor=1 and a true minor axis
    x0 = rng.randn(*shape)
    x = tf.placeholder(tf.float64, [None] + shape[1:])   # a dynamic batch, as in the networks
    y_ref = ufd._upfirdn_2d_ref(x, k, *args)
    y_sep = ufd._upfirdn_2d_sep(x, factors[0], factors[1], *args)
    assert y_sep.shape.as_list()[1:] == y_ref.shape.as_list()[1:]
    _assert_same_values_and_gradients(tf_session, x, x0, y_ref, y_sep, rng)


@pytest.mark.parametrize("down,pads,size", [(1, (2, 1, 1, 2), 19), (2, (1, 1, 0, 2), 32), (1, (0, 0, 3, 0), 20)])
def test_depthwise_form_matches_spec(tf_session, down, pads, size):
    """Without upsampling, NHWC outputs of DEPTHWISE_MIN_SIZE and more run as one depthwise conv:
    values, first- and second-order gradients against the spec, on a random separable filter."""
    rng = np.random.RandomState(size + down)
    k = np.outer(rng.randn(4), rng.randn(3))
    padx0, padx1, pady0, pady1 = pads
    args = (1, 1, down, down, padx0, padx1, pady0, pady1)
    x0 = rng.randn(2, size + 1, size, 5)
    x = tf.placeholder(tf.float64, [None, size + 1, size, 5])
    y_ref = ufd._upfirdn_2d_ref(x, k, *args)
    assert min(y_ref.shape.as_list()[1:3]) >= ufd.DEPTHWISE_MIN_SIZE
    factors = ufd._separable(k)
    y_dw = ufd._upfirdn_2d_sep(x, factors[0], factors[1], *args)
    assert y_dw.op.type == "DepthwiseConv2dNative"
    _assert_same_values_and_gradients(tf_session, x, x0, y_ref, y_dw, rng)


def test_non_separable_or_dynamic_filters_use_the_spec():
    assert ufd._separable(np.array([[1.0, 2.0], [3.0, 5.0]])) is None
    assert ufd._separable(tf.constant([[1.0]])) is None
    ky, kx = ufd._separable(np.outer([1, 3, 3, 1], [1, 2, 1]) / 32.0)
    np.testing.assert_allclose(np.outer(ky, kx), np.outer([1, 3, 3, 1], [1, 2, 1]) / 32.0, rtol=1e-12)

#----------------------------------------------------------------------------
# Argument errors.

@pytest.mark.parametrize("call,name", [
    (lambda x: ufd.upfirdn_2d(tf.zeros([2, 4, 4]), [[1.0]], impl="ref"), "x"),
    (lambda x: ufd.upfirdn_2d(x, np.ones([2, 2, 2]), impl="ref"), "k"),
    (lambda x: ufd.upfirdn_2d(x, [[1.0]], upx=0, impl="ref"), "upx"),
    (lambda x: ufd.upfirdn_2d(x, [[1.0]], downy=1.5, impl="ref"), "downy"),
    (lambda x: ufd.upfirdn_2d(x, [[1.0]], padx0=-9, impl="ref"), "empty"),
    (lambda x: ufd.upfirdn_2d(x, [[1.0]], impl="gpu"), "impl"),
    (lambda x: ufd.upsample_2d(x, factor=0, impl="ref"), "factor"),
    (lambda x: ufd.downsample_2d(x, factor=2.0, impl="ref"), "factor"),
    (lambda x: ufd.filter_2d(x, np.ones([2, 3]), impl="ref"), "k"),
    (lambda x: ufd.filter_2d(x, [1, 1], data_format="NCWH", impl="ref"), "data_format"),
    (lambda x: ufd.upsample_conv_2d(x, np.ones([3, 2, 1, 1], np.float32), impl="ref"), "w"),
    (lambda x: ufd.conv_downsample_2d(x, np.ones([3, 3, 3, 1], np.float32), impl="ref"), "w"),
])
def test_bad_arguments_raise_value_error(tf_session, call, name):
    x = tf.zeros([1, 4, 4, 1])
    with pytest.raises(ValueError, match=name):
        call(x)
