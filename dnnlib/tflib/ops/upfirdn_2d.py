"""2-D FIR filtering with up/downsampling (REFERENCE.md section 3.2) and the resampling helpers
built on it: filter_2d, upsample_2d, downsample_2d, upsample_conv_2d, conv_downsample_2d.

upfirdn_2d has impl='ref' (plain TF ops) and impl='cuda' (upfirdn_2d.cu, built by custom_ops);
'cuda' falls back to 'ref' with one warning when it cannot be used, and $DNNLIB_OPS_IMPL=ref|cuda
forces one. Both are differentiable to any order the helpers need.

'ref' has two forms with the same values: `_upfirdn_2d_ref`, the spec (zero insertion, padding and
one 2-D convolution per image and channel), and `_upfirdn_2d_sep`, used when the filter is a static
separable one (all StyleGAN2 filters are) and the images are at most SEP_MAX_SIZE wide and high:
each axis's upsampling, padding, filtering and downsampling is one constant banded matrix, so the
op is two matrix products whose gradients are matrix products too (no pads, slices or 1-channel
convolutions, which cost 16% of a CPU training step). Measured on 2 CPU cores, forward+backward:
14x faster at 32x32 up, 26x at 16x16 down, 2.3x at 256x256 up (B*C = 4096, 4096, 512). On NHWC
images without upsampling and outputs of 16x16 and more (the filters around the networks' strided
and transposed convolutions), the separable form is one depthwise convolution instead, O(taps) per
output sample where the banded matrices take O(size): 1.5x (16x16) to 4.5x (256x256) faster again.
"""

import functools
import os

import numpy as np
import tensorflow.compat.v1 as tf

from .. import custom_ops

_CUDA_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "upfirdn_2d.cu")

#----------------------------------------------------------------------------

def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError("%s must be an int >= %d, got %r" % (name, minimum, value))
    return int(value)


def _static_shape(x, name, rank):
    """x's shape as a list (numpy arrays too), or ValueError naming x when its rank is not `rank`."""
    if isinstance(x, np.ndarray):
        shape = list(x.shape)
    else:
        shape = x.shape.as_list() if x.shape.ndims is not None else None
    if shape is None or len(shape) != rank:
        raise ValueError("%s must have rank %d, got shape %s" % (name, rank, x.shape))
    return shape


def upfirdn_2d(x, k, upx=1, upy=1, downx=1, downy=1, padx0=0, padx1=0, pady0=0, pady1=0, impl="cuda"):
    r"""Pad, upsample, FIR-filter and downsample a batch of 2-D images.

    Steps, per image and channel:
      1. Upsample by inserting up-1 zeros after each input sample.
      2. Pad with zeros by pad0 before and pad1 after (negative values crop).
      3. Convolve (true convolution, not correlation) with k, keeping only full overlaps.
      4. Downsample by keeping every down-th sample, starting at the first.

    Args:
        x:      [majorDim, inH, inW, minorDim]; inH, inW and minorDim must be static.
        k:      2-D FIR filter [firH, firW] (numpy array or constant).
        upx, upy, downx, downy: Integer factors >= 1.
        padx0, padx1, pady0, pady1: Integer paddings (may be negative).
        impl:   'cuda' (falls back to 'ref' when unavailable) or 'ref'.

    Returns:
        [majorDim, outH, outW, minorDim], outH = (inH*upy + pady0 + pady1 - firH) // downy + 1.

    Raises:
        ValueError: wrong ranks, factors, paddings, or an empty output.
    """
    x = tf.convert_to_tensor(x)
    _, in_h, in_w, minor = _static_shape(x, "x", 4)
    if in_h is None or in_w is None or minor is None:
        raise ValueError("x must have static inH, inW and minorDim, got shape %s" % x.shape)
    k = np.asarray(k, dtype=np.float32) if not tf.is_tensor(k) else k
    kernel_h, kernel_w = _static_shape(k, "k", 2)
    if kernel_h is None or kernel_w is None or kernel_h < 1 or kernel_w < 1:
        raise ValueError("k must have a static, non-empty shape, got %s" % (k.shape,))
    upx, upy = _check_int("upx", upx, 1), _check_int("upy", upy, 1)
    downx, downy = _check_int("downx", downx, 1), _check_int("downy", downy, 1)
    pads = [_check_int(n, v, -2 ** 30) for n, v in
            (("padx0", padx0), ("padx1", padx1), ("pady0", pady0), ("pady1", pady1))]
    padx0, padx1, pady0, pady1 = pads
    if in_h * upy + pady0 + pady1 < kernel_h or in_w * upx + padx0 + padx1 < kernel_w:
        raise ValueError("upfirdn_2d output would be empty: x %s, k %dx%d, up (%d,%d), pads (%d,%d,%d,%d)"
                         % (x.shape, kernel_h, kernel_w, upx, upy, padx0, padx1, pady0, pady1))
    args = (upx, upy, downx, downy, padx0, padx1, pady0, pady1)
    if custom_ops.select_impl(impl, _CUDA_FILE) == "cuda":
        return _upfirdn_2d_cuda(x, k, *args)
    factors = _separable(k)
    if factors is not None and max(in_h * upy, in_w * upx, in_h, in_w) <= SEP_MAX_SIZE:
        return _upfirdn_2d_sep(x, factors[0], factors[1], *args)
    return _upfirdn_2d_ref(x, k, *args)


def _upfirdn_2d_ref(x, k, upx, upy, downx, downy, padx0, padx1, pady0, pady1):
    """The spec in plain TF ops; TF autodiff differentiates it to any order."""
    _, in_h, in_w, minor = x.shape.as_list()
    k = tf.cast(tf.convert_to_tensor(k), x.dtype)
    kernel_h, kernel_w = k.shape.as_list()

    # 1. Zero insertion: a new axis after each spatial axis, padded with up-1 zeros.
    x = tf.reshape(x, [-1, in_h, 1, in_w, 1, minor])
    x = tf.pad(x, [[0, 0], [0, 0], [0, upy - 1], [0, 0], [0, upx - 1], [0, 0]])
    x = tf.reshape(x, [-1, in_h * upy, in_w * upx, minor])

    # 2. Pad (positive parts) and crop (negative parts).
    x = tf.pad(x, [[0, 0], [max(pady0, 0), max(pady1, 0)], [max(padx0, 0), max(padx1, 0)], [0, 0]])
    h, w = in_h * upy + max(pady0, 0) + max(pady1, 0), in_w * upx + max(padx0, 0) + max(padx1, 0)
    x = x[:, max(-pady0, 0): h - max(-pady1, 0), max(-padx0, 0): w - max(-padx1, 0), :]
    h, w = h - max(-pady0, 0) - max(-pady1, 0), w - max(-padx0, 0) - max(-padx1, 0)

    # 3+4. Each (image, channel) as its own 1-channel image; conv2d correlates, so flip k for a
    # true convolution; a VALID conv with stride down keeps samples 0, down, 2*down, ...
    x = tf.transpose(x, [0, 3, 1, 2])
    x = tf.reshape(x, [-1, h, w, 1])
    w_flip = tf.reshape(k[::-1, ::-1], [kernel_h, kernel_w, 1, 1])
    x = tf.nn.conv2d(x, w_flip, strides=[1, downy, downx, 1], padding="VALID", data_format="NHWC")
    out_h, out_w = (h - kernel_h) // downy + 1, (w - kernel_w) // downx + 1
    x = tf.reshape(x, [-1, minor, out_h, out_w])
    return tf.transpose(x, [0, 2, 3, 1])


# The banded-matrix form costs O(size) multiply-adds per output sample against the spec's O(taps),
# but runs as dense matrix products; on 2 CPU cores it still won 1.5-2.3x at 256 (fwd+bwd).
SEP_MAX_SIZE = 512
# Without upsampling, NHWC outputs this wide and high or more are filtered by a depthwise convolution.
DEPTHWISE_MIN_SIZE = 16


def _separable(k):
    """(ky, kx) with k == outer(ky, kx) up to float32 round-off, for a static k; else None."""
    if tf.is_tensor(k):
        return None
    k = np.asarray(k, dtype=np.float64)
    r, c = np.unravel_index(np.argmax(np.abs(k)), k.shape)
    if k[r, c] == 0:
        return None
    ky, kx = k[:, c] / k[r, c], k[r, :]
    if not np.allclose(np.outer(ky, kx), k, rtol=1e-6, atol=1e-7 * abs(k[r, c])):
        return None
    return ky, kx


def _band_matrix(n_in, k1, up, down, pad0, pad1):
    """A [n_in, n_out] with x @ A = the 1-D upfirdn of x along its last axis (steps 1-4 of
    upfirdn_2d on one axis: y[o] = sum_t xpad[o*down + t] * k1[K-1-t], xpad the zero-inserted,
    padded x), as a float64 numpy array."""
    taps = len(k1)
    n_out = (n_in * up + pad0 + pad1 - taps) // down + 1
    a = np.zeros([n_in, n_out])
    for o in range(n_out):
        for t in range(taps):
            pos = o * down + t - pad0             # index in the zero-inserted signal
            if pos >= 0 and pos % up == 0 and pos // up < n_in:
                a[pos // up, o] += k1[taps - 1 - t]
    return a


def _upfirdn_2d_sep(x, ky, kx, upx, upy, downx, downy, padx0, padx1, pady0, pady1):
    """upfirdn_2d for k = outer(ky, kx), as a product with one banded matrix per axis; same values
    as _upfirdn_2d_ref up to float32 round-off, differentiable to any order."""
    _, in_h, in_w, minor = x.shape.as_list()
    ax = _band_matrix(in_w, kx, upx, downx, padx0, padx1)                     # [inW, outW]
    ay = _band_matrix(in_h, ky, upy, downy, pady0, pady1)                     # [inH, outH]
    out_h, out_w = ay.shape[1], ax.shape[1]
    if minor == 1:   # NCHW images (each channel its own image): W is the last axis.
        y = tf.matmul(tf.reshape(x, [-1, in_w]), tf.constant(ax, x.dtype))   # [M*inH, outW]
        y = tf.reshape(y, [-1, in_h, out_w])                                  # [M, inH, outW]
        y = tf.matmul(tf.constant(ay.T, x.dtype), y)                          # [M, outH, outW]
        return tf.reshape(y, [-1, out_h, out_w, 1])
    if (upx == upy == 1 and min(padx0, padx1, pady0, pady1) >= 0 and min(out_h, out_w) >= DEPTHWISE_MIN_SIZE
            and _depthwise_differentiable()):
        return _depthwise_fir(x, ky, kx, downx, downy, padx0, padx1, pady0, pady1)
    # NHWC: each axis is a middle axis, contracted by one broadcast batched product with no
    # transposes (2x faster than transposing to NCHW and back, forward+backward, on 2 CPU cores).
    y = tf.reshape(x, [-1, in_w, minor])                                      # [M*inH, inW, minor]
    y = tf.matmul(tf.constant(ax.T, x.dtype), y)                              # [outW, inW] x -> [M*inH, outW, minor]
    y = tf.reshape(y, [-1, in_h, out_w * minor])                              # [M, inH, outW*minor]
    y = tf.matmul(tf.constant(ay.T, x.dtype), y)                              # [outH, inH] x -> [M, outH, outW*minor]
    return tf.reshape(y, [-1, out_h, out_w, minor])


def _depthwise_fir(x, ky, kx, downx, downy, padx0, padx1, pady0, pady1):
    """upfirdn_2d without upsampling on NHWC images as one depthwise convolution (the same filter
    on every channel, stride = down): O(taps) multiply-adds per output where the band matrices
    take O(size); forward+backward on 2 CPU cores 1.5x (16x16, 512 channels) to 4.5x (256x256,
    32 channels) faster than them, slower at 8x8."""
    minor = x.shape.as_list()[3]
    k = np.outer(ky, kx)[::-1, ::-1]         # depthwise_conv2d correlates: flip for a convolution
    w = np.tile(k[:, :, np.newaxis, np.newaxis], [1, 1, minor, 1])              # [kh, kw, C, 1]
    x = tf.pad(x, [[0, 0], [pady0, pady1], [padx0, padx1], [0, 0]])
    return tf.nn.depthwise_conv2d(x, tf.constant(w, x.dtype), [1, downy, downx, 1], "VALID")


@functools.lru_cache(maxsize=None)
def _depthwise_differentiable():
    """Whether this TensorFlow differentiates depthwise convolutions twice (R1 needs the gradient
    of their input gradient); else the band matrices stay."""
    try:
        from tensorflow.python.framework import ops as tf_ops
        return tf_ops._gradient_registry.lookup("DepthwiseConv2dNativeBackpropInput") is not None
    except (ImportError, AttributeError, LookupError):
        return False


def _kernel(x, k, upx, upy, downx, downy, padx0, padx1, pady0, pady1):
    """One UpFirDn2D kernel call. Tests may replace this function."""
    return custom_ops.get_plugin(_CUDA_FILE).up_fir_dn2d(
        x=x, k=k, upx=upx, upy=upy, downx=downx, downy=downy, padx0=padx0, padx1=padx1, pady0=pady0, pady1=pady1)


def _upfirdn_2d_cuda(x, k, upx, upy, downx, downy, padx0, padx1, pady0, pady1):
    """The CUDA kernel; its gradient is upfirdn_2d itself with the flipped filter, up and down
    swapped and the paddings of REFERENCE 3.2, so it is differentiable to any order."""
    _, in_h, in_w, minor = x.shape.as_list()
    k_np = None if tf.is_tensor(k) else np.asarray(k, dtype=np.float32)
    k_t = tf.cast(tf.convert_to_tensor(k), x.dtype)
    kernel_h, kernel_w = k_t.shape.as_list()
    out_h = (in_h * upy + pady0 + pady1 - kernel_h) // downy + 1
    out_w = (in_w * upx + padx0 + padx1 - kernel_w) // downx + 1
    gpadx0 = kernel_w - padx0 - 1
    gpady0 = kernel_h - pady0 - 1
    gpadx1 = in_w * upx - out_w * downx + padx0 - upx + 1
    gpady1 = in_h * upy - out_h * downy + pady0 - upy + 1
    k_flip = k_np[::-1, ::-1].copy() if k_np is not None else k_t[::-1, ::-1]

    @tf.custom_gradient
    def func(x):
        y = _kernel(x, k_t, upx, upy, downx, downy, padx0, padx1, pady0, pady1)
        y.set_shape([x.shape[0], out_h, out_w, minor])

        def grad(dy):
            dx = _upfirdn_2d_cuda(dy, k_flip, downx, downy, upx, upy, gpadx0, gpadx1, gpady0, gpady1)
            dx.set_shape(x.shape)
            return dx
        return y, grad
    return func(x)

#----------------------------------------------------------------------------
# Helpers on NCHW or NHWC images.

def _setup_kernel(k, name="k"):
    """Numpy float32 2-D filter, normalised to sum 1; a 1-D k becomes its outer product."""
    k = np.asarray(k, dtype=np.float32)
    if k.ndim == 1:
        k = np.outer(k, k)
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] < 1:
        raise ValueError("%s must be a non-empty 1-D or square 2-D filter, got shape %s" % (name, k.shape))
    total = np.sum(k)
    if total == 0:
        raise ValueError("%s must not sum to zero" % name)
    return k / total


def _check_format(data_format):
    if data_format not in ("NCHW", "NHWC"):
        raise ValueError("data_format must be 'NCHW' or 'NHWC', got %r" % (data_format,))


def _simple_upfirdn_2d(x, k, up=1, down=1, pad0=0, pad1=0, data_format="NCHW", impl="cuda"):
    """upfirdn_2d on [N,C,H,W] (each channel an image) or [N,H,W,C] (C as the minor axis)."""
    _check_format(data_format)
    x = tf.convert_to_tensor(x)
    shape = _static_shape(x, "x", 4)
    if data_format == "NCHW":
        _, c, h, w = shape
        if None in (c, h, w):
            raise ValueError("x must have static C, H, W, got shape %s" % x.shape)
        y = tf.reshape(x, [-1, h, w, 1])
        y = upfirdn_2d(y, k, upx=up, upy=up, downx=down, downy=down,
                       padx0=pad0, padx1=pad1, pady0=pad0, pady1=pad1, impl=impl)
        return tf.reshape(y, [-1, c] + y.shape.as_list()[1:3])
    return upfirdn_2d(x, k, upx=up, upy=up, downx=down, downy=down,
                      padx0=pad0, padx1=pad1, pady0=pad0, pady1=pad1, impl=impl)


def filter_2d(x, k, gain=1, data_format="NCHW", impl="cuda"):
    """Filter images with the FIR filter k (normalised, times gain), keeping their size.

    x: [N,C,H,W] or [N,H,W,C]; k: 1-D (separable) or square 2-D filter. Returns x's shape."""
    k = _setup_kernel(k) * gain
    p = k.shape[0] - 1
    return _simple_upfirdn_2d(x, k, pad0=(p + 1) // 2, pad1=p // 2, data_format=data_format, impl=impl)


def upsample_2d(x, k=None, factor=2, gain=1, data_format="NCHW", impl="cuda"):
    """Upsample images by an integer factor with the FIR filter k ([1]*factor = nearest).

    x: [N,C,H,W] or [N,H,W,C]. Returns [N,C,H*factor,W*factor] (or NHWC)."""
    factor = _check_int("factor", factor, 1)
    k = _setup_kernel([1] * factor if k is None else k) * (gain * factor ** 2)
    p = k.shape[0] - factor
    return _simple_upfirdn_2d(x, k, up=factor, pad0=(p + 1) // 2 + factor - 1, pad1=p // 2,
                              data_format=data_format, impl=impl)


def downsample_2d(x, k=None, factor=2, gain=1, data_format="NCHW", impl="cuda"):
    """Downsample images by an integer factor after filtering with k ([1]*factor = box).

    x: [N,C,H,W] or [N,H,W,C]. Returns [N,C,H//factor,W//factor] (or NHWC)."""
    factor = _check_int("factor", factor, 1)
    k = _setup_kernel([1] * factor if k is None else k) * gain
    p = k.shape[0] - factor
    return _simple_upfirdn_2d(x, k, down=factor, pad0=(p + 1) // 2, pad1=p // 2,
                              data_format=data_format, impl=impl)


def _conv_weight_shape(w, x, data_format):
    w = tf.convert_to_tensor(w)
    conv_h, conv_w, in_c, out_c = _static_shape(w, "w", 4)
    if conv_h != conv_w or conv_h is None:
        raise ValueError("w must be a square [kh, kw, inC, outC] kernel, got shape %s" % w.shape)
    x_c = _static_shape(x, "x", 4)[1 if data_format == "NCHW" else 3]
    if x_c is None or in_c is None or x_c % in_c != 0 or out_c % (x_c // in_c) != 0:
        raise ValueError("w's input channels (%s) must divide x's channels (%s) and its output channels %s "
                         "the group count" % (in_c, x_c, out_c))
    return w, conv_h, in_c, out_c, x_c // in_c


def upsample_conv_2d(x, w, k=None, factor=2, gain=1, data_format="NCHW", impl="cuda"):
    """Upsample by factor, then convolve with w ("SAME"), fused as one transposed convolution
    followed by a FIR filter. w: [kh, kw, inC, outC]; x's channels may be a multiple g of inC
    (grouped convolution, g groups, as the fused modulated conv uses).

    x: [N,C,H,W] or [N,H,W,C]. Returns [N,outC,H*factor,W*factor] (or NHWC)."""
    _check_format(data_format)
    x = tf.convert_to_tensor(x)
    factor = _check_int("factor", factor, 1)
    w, conv, in_c, out_c, groups = _conv_weight_shape(w, x, data_format)
    k = _setup_kernel([1] * factor if k is None else k) * (gain * factor ** 2)
    p = (k.shape[0] - factor) - (conv - 1)

    # conv2d_transpose is the adjoint of a conv whose filter is w flipped spatially with in/out
    # swapped; grouped layout [kh, kw, inC, g, outC/g] -> [kh, kw, outC/g, g*inC].
    # tf.reverse, not w[::-1, ::-1]: a negative-stride slice of a large kernel (and its gradient)
    # runs ~30x slower on CPU (3x3x512x512: 8.6 ms vs 0.2 ms), 3% of a 32x32 training step.
    w = tf.reshape(tf.reverse(w, [0, 1]), [conv, conv, in_c, groups, out_c // groups])
    w = tf.reshape(tf.transpose(w, [0, 1, 4, 3, 2]), [conv, conv, out_c // groups, groups * in_c])
    if data_format == "NCHW":
        h, wd = x.shape.as_list()[2:4]
        strides = [1, 1, factor, factor]
        out_shape = [tf.shape(x)[0], out_c, (h - 1) * factor + conv, (wd - 1) * factor + conv]
    else:
        h, wd = x.shape.as_list()[1:3]
        strides = [1, factor, factor, 1]
        out_shape = [tf.shape(x)[0], (h - 1) * factor + conv, (wd - 1) * factor + conv, out_c]
    x = tf.nn.conv2d_transpose(x, w, output_shape=tf.stack(out_shape), strides=strides,
                               padding="VALID", data_format=data_format)
    return _simple_upfirdn_2d(x, k, pad0=(p + 1) // 2 + factor - 1, pad1=p // 2 + 1,
                              data_format=data_format, impl=impl)


def conv_downsample_2d(x, w, k=None, factor=2, gain=1, data_format="NCHW", impl="cuda"):
    """Convolve with w ("SAME"), then downsample by factor, fused as a FIR filter followed by
    one strided convolution. w: [kh, kw, inC, outC].

    x: [N,C,H,W] or [N,H,W,C]. Returns [N,outC,H//factor,W//factor] (or NHWC)."""
    _check_format(data_format)
    x = tf.convert_to_tensor(x)
    factor = _check_int("factor", factor, 1)
    w, conv, _, _, _ = _conv_weight_shape(w, x, data_format)
    k = _setup_kernel([1] * factor if k is None else k) * gain
    p = (k.shape[0] - factor) + (conv - 1)
    x = _simple_upfirdn_2d(x, k, pad0=(p + 1) // 2, pad1=p // 2, data_format=data_format, impl=impl)
    strides = [1, 1, factor, factor] if data_format == "NCHW" else [1, factor, factor, 1]
    return tf.nn.conv2d(x, w, strides=strides, padding="VALID", data_format=data_format)
