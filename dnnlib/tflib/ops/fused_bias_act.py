"""Fused bias + activation + gain (REFERENCE.md section 3.1): y = gain * act(x + b).

Two implementations with the same values and gradients: impl='ref' (plain TF ops, the spec) and
impl='cuda' (one CUDA kernel, fused_bias_act.cu, built by custom_ops). 'cuda' falls back to 'ref'
with one warning when it cannot be used; $DNNLIB_OPS_IMPL=ref|cuda forces one (custom_ops).
"""

import os

import numpy as np
import tensorflow.compat.v1 as tf

from .. import custom_ops

#----------------------------------------------------------------------------
# Activations: (kernel id, default alpha, default gain, reference function, cuda ref kind).
# ref kind 'y': the backward pass recovers f(z) from the output; 'z': it needs z = x + b itself.

def _lrelu(x, alpha):
    # One LeakyRelu op (its gradient one LeakyReluGrad, differentiable again) instead of
    # Greater + Mul + Select and two Selects back: 1-2% of a CPU training step. Same values
    # and the same slope at 0 (alpha); other slopes keep the select (older kernels take a max).
    if 0 <= alpha <= 1:
        return tf.nn.leaky_relu(x, alpha=alpha)
    return tf.where(x > 0, x, x * alpha)

activation_funcs = {
    "linear":   dict(cuda_idx=1, def_alpha=None, def_gain=1.0,        ref="y", func=lambda x, a: x),
    "relu":     dict(cuda_idx=2, def_alpha=None, def_gain=np.sqrt(2), ref="y", func=lambda x, a: tf.nn.relu(x)),
    "lrelu":    dict(cuda_idx=3, def_alpha=0.2,  def_gain=np.sqrt(2), ref="y", func=_lrelu),
    "tanh":     dict(cuda_idx=4, def_alpha=None, def_gain=1.0,        ref="y", func=lambda x, a: tf.nn.tanh(x)),
    "sigmoid":  dict(cuda_idx=5, def_alpha=None, def_gain=1.0,        ref="y", func=lambda x, a: tf.nn.sigmoid(x)),
    "elu":      dict(cuda_idx=6, def_alpha=None, def_gain=1.0,        ref="y", func=lambda x, a: tf.nn.elu(x)),
    "selu":     dict(cuda_idx=7, def_alpha=None, def_gain=1.0,        ref="y", func=lambda x, a: tf.nn.selu(x)),
    "softplus": dict(cuda_idx=8, def_alpha=None, def_gain=1.0,        ref="y", func=lambda x, a: tf.nn.softplus(x)),
    "swish":    dict(cuda_idx=9, def_alpha=None, def_gain=np.sqrt(2), ref="z", func=lambda x, a: x * tf.nn.sigmoid(x)),
}

_CUDA_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fused_bias_act.cu")

#----------------------------------------------------------------------------

def fused_bias_act(x, b=None, axis=1, act="linear", alpha=None, gain=None, impl="cuda"):
    r"""Adds bias `b` to `x`, applies activation `act`, and scales by `gain`.

    Steps: (1) x + b, b broadcast along `axis`; (2) act(.), using `alpha` for lrelu; (3) * gain.

    Args:
        x:     Input tensor of any rank and shape.
        b:     Bias, 1-D of size x.shape[axis], or None.
        axis:  The axis of x that b runs along (negative counts from the end).
        act:   'linear', 'relu', 'lrelu', 'tanh', 'sigmoid', 'elu', 'selu', 'softplus' or 'swish'.
        alpha: lrelu slope (None = 0.2); ignored by the other activations.
        gain:  Output scale (None = the activation's default: sqrt(2) for relu/lrelu/swish, else 1).
        impl:  'cuda' (falls back to 'ref' when unavailable) or 'ref'.

    Returns:
        A tensor of the shape and dtype of x. Differentiable twice for both impls.

    Raises:
        ValueError: unknown act or impl, axis out of range, b not 1-D or of the wrong size.
    """
    x = tf.convert_to_tensor(x)
    if act not in activation_funcs:
        raise ValueError("act must be one of %s, got %r" % (sorted(activation_funcs), act))
    rank = x.shape.ndims
    if rank is None or rank < 1:
        raise ValueError("x must have a known rank >= 1, got shape %s" % x.shape)
    if not isinstance(axis, (int, np.integer)) or not -rank <= axis < rank:
        raise ValueError("axis must be an int in [%d, %d) for x of rank %d, got %r" % (-rank, rank, rank, axis))
    axis = int(axis) % rank
    if b is not None:
        b = tf.convert_to_tensor(b, dtype=x.dtype)
        if b.shape.ndims != 1:
            raise ValueError("b must be 1-D, got shape %s" % b.shape)
        b_size, x_size = b.shape.as_list()[0], x.shape.as_list()[axis]
        if b_size is not None and x_size is not None and b_size != x_size:
            raise ValueError("b must have x.shape[axis] = %d elements, got %d" % (x_size, b_size))
    spec = activation_funcs[act]
    alpha = float(alpha if alpha is not None else (spec["def_alpha"] or 0))
    gain = float(gain if gain is not None else spec["def_gain"])
    if custom_ops.select_impl(impl, _CUDA_FILE) == "cuda":
        return _fused_bias_act_cuda(x, b, axis, act, alpha, gain)
    return _fused_bias_act_ref(x, b, axis, act, alpha, gain)

#----------------------------------------------------------------------------

def _broadcast_bias(b, axis, rank):
    return tf.reshape(b, [-1 if i == axis else 1 for i in range(rank)])


def _fused_bias_act_ref(x, b, axis, act, alpha, gain):
    """The spec in plain TF ops; TF autodiff gives first and second order gradients."""
    # (tf.nn.bias_add was measured: oneDNN fuses it into the convs, no faster on 2 cores.)
    if b is not None:
        x = x + _broadcast_bias(b, axis, x.shape.ndims)
    x = activation_funcs[act]["func"](x, alpha)
    if gain != 1:
        x = x * tf.cast(gain, x.dtype)
    return x

#----------------------------------------------------------------------------

def _kernel(x, b, ref, grad, axis, act, alpha, gain):
    """One FusedBiasAct kernel call (empty b / ref = none). Tests may replace this function."""
    return custom_ops.get_plugin(_CUDA_FILE).fused_bias_act(
        x=x, b=b, ref=ref, grad=grad, axis=axis, act=activation_funcs[act]["cuda_idx"], alpha=alpha, gain=gain)


def _fused_bias_act_cuda(x, b, axis, act, alpha, gain):
    """The CUDA kernel with gradients that call the kernel again (REFERENCE 3.1, with the second
    order of 10.2 item 16 fixed). With z = x + b:
        dx = gain f'(z) dy,  db = sum(dx) over all axes but `axis`;
        d_dy = gain f'(z) d_dx,  d_x = gain f''(z) dy d_dx,  d_b = sum(d_x)
    (d_db reaches d_dx through the gradient of that sum). No third order."""
    rank = x.shape.ndims
    empty = tf.constant([], dtype=x.dtype)
    has_b = b is not None
    b_in = b if has_b else empty
    smooth = act not in ("linear", "relu", "lrelu")  # f'' is not identically 0
    kw = dict(axis=axis, act=act, alpha=alpha, gain=gain)

    def reduce_to_bias(t):
        return tf.reduce_sum(t, [i for i in range(rank) if i != axis])

    def call(v, bias, ref, grad):
        out = _kernel(v, bias, ref, grad, **kw)
        out.set_shape(x.shape)
        return out

    @tf.custom_gradient
    def func_zero(x, b_in):
        y = call(x, b_in, empty, 0)
        if act == "linear":
            ref = empty
        elif activation_funcs[act]["ref"] == "y":
            ref = y
        else:  # swish: its derivatives need z, after the bias (the official code passed x)
            ref = x + _broadcast_bias(b_in, axis, rank) if has_b else x

        @tf.custom_gradient
        def func_one(dy, x, b_in):  # x and b_in are here only to receive second-order gradients
            dx = call(dy, empty, ref, 1)

            def grad2(d_dx):
                d_dy = call(d_dx, empty, ref, 1)
                if not smooth:
                    return d_dy, tf.zeros_like(x), tf.zeros_like(b_in)
                d_x = call(d_dx * dy, empty, ref, 2)
                d_b = reduce_to_bias(d_x) if has_b else tf.zeros_like(b_in)
                return d_dy, d_x, d_b
            return dx, grad2

        def grad(dy):
            dx = func_one(dy, x, b_in)
            db = reduce_to_bias(dx) if has_b else tf.zeros_like(b_in)
            return dx, db
        return y, grad

    return func_zero(x, b_in)
