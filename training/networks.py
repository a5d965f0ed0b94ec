"""GANsformer generator and discriminator, and the baselines (GAN, StyleGAN2, k-GAN, SAGAN), as
tflib.Network build functions (REFERENCE.md §1-2).

Self-contained on purpose: pickles carry this module's source, so it imports only numpy, tf,
dnnlib, dnnlib.tflib and dnnlib.tflib.ops (plus the standard library). The one exception is
deliberate: at build time Generator and Discriminator pass their options to
training.validation.validate, the validator the CLI and the loop use, so a snapshot is built under
exactly the checks a new run gets (pickles of this file are loaded within this codebase; official
pickles carry their own source).

Axis legend: each letter has this one meaning in every shape comment and docstring below.
  B   batch                 K   latents per sample: k region latents + 1 global one (transformer),
                                k parallel images (k-GAN), else 1
  k   region latents (G, 0 without the transformer) or aggregators (D)
  L   style inputs of G (2*log2(width) - 1)        La  attention layers stacked in maps_out
  D   latent width (G: w_dim; D: aggregator width) Z   width of a latent entering the mapping MLP
  U   mapping-MLP width (mapping_dim, else D)      Kc  stem constants (K for k-GAN, else 1)
  N   attention heads   H  head width   A  attention width (N*H)   E  centroid width (H, or 2H)
  F / T    from / to lengths of an attention layer (h*w image cells, or latents)
  Df / Dt  from / to feature widths               Pf / Pt  from / to position widths
  C   channels          I / O  a conv's input / output channels    kh / kw  its kernel size
  h / w    image height / width (h' / w' after up- or down-sampling)
  P   positional-encoding width                   n   encoding directions (pos_directions_num)
  G   minibatch-stddev group (B = G*M)            M   groups in the batch    S  stddev features
  X   leading axes folded into one

Decisions that depart from the official code (REFERENCE §10.2) are marked "Fix:" below.
Non-square images: `resolution` is the width and `ratio` = height / width; every resolution
holds a true h x w grid with h = ratio * w (stem 4*ratio x 4), so 4 * ratio must be an integer
(0.25, 0.5, 0.75, 1, 2, ...). Scope names keep the width ("64x64" for a 32x64 block), so the
variable names stay those of square models.
"""

import inspect

import numpy as np
import tensorflow.compat.v1 as tf

import dnnlib
import dnnlib.tflib as tflib
from dnnlib.tflib.ops.upfirdn_2d import upsample_2d, downsample_2d, upsample_conv_2d, conv_downsample_2d
from dnnlib.tflib.ops.fused_bias_act import fused_bias_act

# ----------------------------------------------------------------------------
# Shape helpers.


def shape_list(x):
    """Static dims where known, dynamic scalars elsewhere."""
    static = x.shape.as_list()
    dynamic = tf.shape(x)
    return [d if d is not None else dynamic[i] for i, d in enumerate(static)]


def assert_shape(x, shape, name):
    """Check x against shape (None = any) and name the tensor and scope on mismatch."""
    actual = x.shape.as_list()
    ok = len(actual) == len(shape) and all(s is None or a is None or a == s for a, s in zip(actual, shape))
    if not ok:
        raise ValueError("%s: expected shape %s, got %s (scope %r)" % (name, shape, actual, tf.get_variable_scope().name))


def nearest_upsample(x, fh, fw):
    """[..., h, w] -> [..., h*fh, w*fw] by repeating cells."""
    if fh == 1 and fw == 1:
        return x
    s = shape_list(x)
    h, w = s[-2], s[-1]
    x = tf.reshape(x, [-1, h, 1, w, 1])                                       # [X, h, 1, w, 1]
    x = tf.tile(x, [1, 1, fh, 1, fw])                                        # [X, h, fh, w, fw]
    return tf.reshape(x, s[:-2] + [h * fh, w * fw])


# ----------------------------------------------------------------------------
# Primitives (REFERENCE §1.1): equalized learning rate, dense, conv, modulated conv, bias_act.


def get_weight(shape, gain=1.0, lrmul=1.0, weight_var="weight"):
    """Equalized lr: stored N(0, 1/lrmul), used times he_std * lrmul."""
    fan_in = np.prod(shape[:-1])
    he_std = gain / np.sqrt(fan_in)
    init = tf.initializers.random_normal(0, 1.0 / lrmul)
    return tf.get_variable(weight_var, shape=shape, initializer=init) * (he_std * lrmul)


def dense(x, fmaps, gain=1.0, lrmul=1.0, weight_var="weight"):
    """[B, ...] -> [B, fmaps] (input flattened), no bias."""
    if x.shape.ndims > 2:
        x = tf.reshape(x, [-1, int(np.prod(x.shape.as_list()[1:]))])
    w = get_weight([x.shape.as_list()[1], fmaps], gain=gain, lrmul=lrmul, weight_var=weight_var)
    return tf.matmul(x, w)


def bias_act(x, act="linear", lrmul=1.0, bias_var="bias", alpha=None, gain=None, axis=1):
    """fused_bias_act with a zero-initialised bias (times lrmul) on `axis`, the channel axis
    (channel_axis(data_format) for images)."""
    b = tf.get_variable(bias_var, shape=[x.shape.as_list()[axis]], initializer=tf.initializers.zeros()) * lrmul
    return fused_bias_act(x, b=b, axis=axis, act=act, alpha=alpha, gain=gain)


def dense_layer(x, fmaps, act="linear", lrmul=1.0, name=None, gain=1.0, use_bias=True):
    """dense + bias + act; variables weight[_name] / bias[_name]."""
    suffix = "" if name is None else "_" + name
    x = dense(x, fmaps, gain=gain, lrmul=lrmul, weight_var="weight" + suffix)
    return bias_act(x, act, lrmul, bias_var="bias" + suffix) if use_bias else x


def dense_tokens(x, fmaps, name, act="linear", lrmul=1.0, use_bias=True):
    """[B, T, Dt] -> [B, T, fmaps] with one weight shared over tokens (T static); name None
    gives plain weight / bias variables."""
    T, din = x.shape.as_list()[1:]
    y = dense_layer(tf.reshape(x, [-1, din]), fmaps, act=act, lrmul=lrmul, name=name, use_bias=use_bias)
    return tf.reshape(y, [-1, T, fmaps])


def on_cpu(x):
    """Whether x's ops run on a CPU: its device scope says so, or it has none and no GPU is visible.
    The fast form of a conv differs by device (see conv2d, modulated_conv2d); values do not."""
    if x.device:
        return "CPU" in x.device.upper()
    if "gpu_visible" not in _DEVICE_CACHE:
        _DEVICE_CACHE["gpu_visible"] = bool(tf.config.experimental.list_physical_devices("GPU"))
    return not _DEVICE_CACHE["gpu_visible"]


_DEVICE_CACHE = {}


# ----------------------------------------------------------------------------
# Image layout. NCHW is the layout of the networks' inputs and outputs (StyleGAN2, its pickles) and
# of every image tensor on a GPU (the fused modulated conv folds the batch into NCHW channels).
# On a CPU, TF's convolutions and their gradients run NHWC natively, so G and D carry NHWC between
# their blocks there and transpose only at their boundaries (the stem, ToRGB's 3 channels, the
# 4x4 dense layer): a transpose pair per conv and per gradient saved (bench/train.py, issue 10).
# The blocks take `data_format` (default NCHW, a transpose pair around each CPU conv as before).


def image_format(t):
    """The layout images take between the blocks of a network whose ops run where t's do: NHWC on
    a CPU, NCHW elsewhere. t: a tensor created in the network's own device scope."""
    return "NHWC" if on_cpu(t) else "NCHW"


def to_format(x, src, dst):
    """A 4-D image from layout src to dst (NCHW / NHWC); x itself when they agree."""
    if src == dst:
        return x
    return tf.transpose(x, [0, 2, 3, 1] if dst == "NHWC" else [0, 3, 1, 2])


def channel_axis(data_format):
    return 1 if data_format == "NCHW" else 3


def image_dims(x, data_format):
    """(C, h, w) of an image [B, C, h, w] (NCHW) or [B, h, w, C] (NHWC)."""
    _, a, b, c = x.shape.as_list()
    return (a, b, c) if data_format == "NCHW" else (c, a, b)


def per_channel(v, data_format):
    """v [B, C] -> [B, C, 1, 1] (NCHW) or [B, 1, 1, C] (NHWC), to scale images channel-wise."""
    return v[:, :, np.newaxis, np.newaxis] if data_format == "NCHW" else v[:, np.newaxis, np.newaxis, :]


def _conv_any(x, w, up, down, resample_kernel, data_format):
    """x [B, I, h, w] -> [B, O, h', w'] (NHWC: [B, h, w, I] -> [B, h', w', O]), convolved with
    w [kh, kw, I, O] ("SAME"), 2x up or down. NCHW on a CPU convolves in NHWC between two
    transposes: they cost less than the NCHW conversions TF would insert (bench: 1.05-1.25x per
    layer fwd+bwd on 2 cores); carrying NHWC (image_format) saves the transposes too."""
    if data_format == "NCHW" and on_cpu(x):
        x = _conv_any(to_format(x, "NCHW", "NHWC"), w, up, down, resample_kernel, "NHWC")
        return to_format(x, "NHWC", "NCHW")
    if up:
        return upsample_conv_2d(x, w, k=resample_kernel, data_format=data_format)
    if down:
        return conv_downsample_2d(x, w, k=resample_kernel, data_format=data_format)
    return tf.nn.conv2d(x, w, strides=[1, 1, 1, 1], padding="SAME", data_format=data_format)


def conv2d(x, fmaps, kernel, up=False, down=False, resample_kernel=None, gain=1.0, lrmul=1.0, weight_var="weight",
           data_format="NCHW"):
    """Plain equalized-lr conv, optional 2x up / down through the FIR ops.
    x [B, I, h, w] -> [B, O, h', w'] (data_format NHWC: [B, h, w, I] -> [B, h', w', O])."""
    cin = image_dims(x, data_format)[0]
    w = get_weight([kernel, kernel, cin, fmaps], gain=gain, lrmul=lrmul, weight_var=weight_var)
    return _conv_any(x, w, up, down, resample_kernel, data_format)


def modulated_conv2d(x, y, fmaps, kernel, up=False, demodulate=True, resample_kernel=None, fused=True,
                     modulate=True, weight_var="weight", data_format="NCHW"):
    """StyleGAN2 modulated conv. x [B, I, h, w], y [B, D] style -> [B, O, h', w']
    (data_format NHWC: [B, h, w, I] -> [B, h', w', O], always the unfused form).

    modulate=False (baselines without styles) is a plain conv and creates no mod_* variables."""
    if not modulate:
        return conv2d(x, fmaps, kernel, up=up, resample_kernel=resample_kernel, weight_var=weight_var,
                      data_format=data_format)
    cin = image_dims(x, data_format)[0]
    w = get_weight([kernel, kernel, cin, fmaps], weight_var=weight_var)          # [kh, kw, I, O]
    s = bias_act(dense(y, cin, weight_var="mod_weight"), bias_var="mod_bias") + 1.0   # [B, I]
    # upsample_conv_2d needs static channel counts, which the batch-folded layout lacks when
    # the batch is dynamic, so up-sampling convs scale activations instead (same result).
    fused = fused and not (up and x.shape.as_list()[0] is None)
    # On CPU the fused form's grouped (transposed) conv takes slow paths and its per-sample
    # weights [B, kh, kw, I, O] outweigh the activations: scale the activations, one batched conv,
    # demodulate after (as the PyTorch port trains). Same values; bench/train.py. The fused form
    # folds the batch into NCHW channels, so NHWC images take the unfused form too.
    fused = fused and not on_cpu(x) and data_format == "NCHW"
    if fused:
        ww = w[np.newaxis] * s[:, np.newaxis, np.newaxis, :, np.newaxis]        # [B, kh, kw, I, O]
        if demodulate:
            d = tf.rsqrt(tf.reduce_sum(tf.square(ww), axis=[1, 2, 3]) + 1e-8)     # [B, O]
            ww = ww * d[:, np.newaxis, np.newaxis, np.newaxis, :]                # [B, kh, kw, I, O]
    elif demodulate:
        # sum over kh, kw, I of (w s)^2 = s^2 @ sum over kh, kw of w^2: no [B, kh, kw, I, O] tensor.
        d = tf.rsqrt(tf.matmul(tf.square(s), tf.reduce_sum(tf.square(w), axis=[0, 1])) + 1e-8)  # [B, O]
    if fused:
        h, wd = x.shape.as_list()[2:]
        x = tf.reshape(x, [1, -1, h, wd])                                        # [1, B*I, h, w]
        wf = tf.reshape(tf.transpose(ww, [1, 2, 3, 0, 4]), [kernel, kernel, cin, -1])   # [kh, kw, I, B*O]
    else:
        x = x * per_channel(s, data_format)                                      # [B, I, h, w]
        wf = w
    x = _conv_any(x, wf, up, False, resample_kernel, data_format)
    if fused:
        x = tf.reshape(x, [-1, fmaps] + x.shape.as_list()[2:])                   # [B, O, h', w']
    elif demodulate:
        x = x * per_channel(d, data_format)
    return x


def minibatch_stddev(x, group_size=4, num_new_features=1, data_format="NCHW"):
    """Append the per-group stddev as S = num_new_features channels. x [B, C, h, w] -> [B, C+S, h, w]
    (data_format NHWC: [B, h, w, C] -> [B, h, w, C+S])."""
    group = tf.minimum(group_size, tf.shape(x)[0])        # B must be divisible by the group
    c, h, w = image_dims(x, data_format)
    n = num_new_features
    nchw = data_format == "NCHW"          # shapes: NCHW | NHWC
    y = tf.reshape(x, [group, -1, n, c // n, h, w] if nchw else [group, -1, h, w, n, c // n])
    y -= tf.reduce_mean(y, axis=0, keepdims=True)                               # [G, M, S, C/S, h, w] | [G,M,h,w,S,C/S]
    y = tf.sqrt(tf.reduce_mean(tf.square(y), axis=0) + 1e-8)                    # [M, S, C/S, h, w] | [M, h, w, S, C/S]
    y = tf.reduce_mean(y, axis=[2, 3, 4] if nchw else [1, 2, 4])                 # [M, S]
    y = tf.reshape(y, [-1, n, 1, 1] if nchw else [-1, 1, 1, n])                  # [M, S, 1, 1] | [M, 1, 1, S]
    y = tf.tile(y, [group, 1, h, w] if nchw else [group, h, w, 1])              # [B, S, h, w] | [B, h, w, S]
    return tf.concat([x, y], axis=channel_axis(data_format))


# ----------------------------------------------------------------------------
# Positional encodings (REFERENCE §1.8), for an h x w grid, flattened row-major -> [h*w, P].


def grid_positions(h, w, dim, pos_type="sinus", pos_init="uniform", directions=2):
    """Grid encodings [h*w, P] (P = dim); the trainable kinds create variables in the current scope."""
    init = tf.random_uniform_initializer() if pos_init == "uniform" else tf.initializers.random_normal()
    ys, xs = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")     # [h, w] each
    coords = np.stack([xs.ravel(), ys.ravel()], axis=1)                                  # [h*w, 2]
    thetas = np.pi * np.arange(directions) / directions
    proj = coords @ np.stack([np.cos(thetas), np.sin(thetas)], axis=0)                   # [h*w, 2].[2, n] -> [h*w, n]
    if pos_type == "sinus":
        per_dir = dim // directions                       # sin and cos halves
        i = np.arange(per_dir // 2)
        freq = proj[:, :, None] / (10000.0 ** (2 * directions * i / dim))                # [h*w, n, P/2n]
        enc = np.concatenate([np.sin(freq), np.cos(freq)], axis=2)                       # [h*w, n, P/n]
        return tf.constant(enc.reshape(h * w, dim).astype(np.float32))
    if pos_type == "linear":
        emb = tf.get_variable("emb", [directions, dim // directions], initializer=init)     # [n, P/n]
        enc = tf.constant(proj[:, :, None].astype(np.float32)) * emb[None]               # [h*w, n, P/n]
        return tf.reshape(enc, [h * w, dim])
    if pos_type == "trainable":
        x_emb = tf.get_variable("x_emb", [w, dim // 2], initializer=init)
        y_emb = tf.get_variable("y_emb", [h, dim // 2], initializer=init)
        enc = tf.concat([tf.tile(x_emb[None], [h, 1, 1]), tf.tile(y_emb[:, None], [1, w, 1])], axis=2)   # [h, w, P]
        return tf.reshape(enc, [h * w, dim])
    if pos_type == "trainable2d":
        return tf.reshape(tf.get_variable("emb", [h, w, dim], initializer=init), [h * w, dim])
    raise ValueError("pos_type: unknown %r (sinus, linear, trainable, trainable2d)" % pos_type)


POS_TYPES = ("sinus", "linear", "trainable", "trainable2d")


def check_pos_dim(dim, pos_type, directions):
    if pos_type == "sinus" and dim % (2 * directions) != 0:
        raise ValueError("pos_dim: %d is not divisible by 2 * pos_directions_num = %d" % (dim, 2 * directions))
    if pos_type == "linear" and dim % directions != 0:
        raise ValueError("pos_dim: %d is not divisible by pos_directions_num = %d" % (dim, directions))
    if pos_type == "trainable" and dim % 2 != 0:
        raise ValueError("pos_dim: %d must be even for trainable positions" % dim)
    if pos_type not in POS_TYPES:
        raise ValueError("pos_type: unknown %r (choose from %s)" % (pos_type, ", ".join(POS_TYPES)))


# ----------------------------------------------------------------------------
# Bipartite attention (REFERENCE §1.6-1.7): one transformer layer, from -> to.


def split_heads(t, num_heads):
    """[B, F, A] -> [B, N, F, H] with H = A / N (F and A static)."""
    length, width = t.shape.as_list()[1:]
    t = tf.reshape(t, [-1, length, num_heads, width // num_heads])                # [B, F, N, H]
    return tf.transpose(t, [0, 2, 1, 3])                                         # [B, N, F, H]


def merge_heads(t):
    """[B, N, F, H] -> [B, F, A] with A = N * H (N, F and H static)."""
    _, heads, length, width = t.shape.as_list()
    t = tf.transpose(t, [0, 2, 1, 3])                                            # [B, F, N, H]
    return tf.reshape(t, [-1, length, heads * width])                            # [B, F, A]


def attention_dropout_fn(probs, rate):
    """Inverted dropout twice at rate/2: cells, then whole to-elements for all from-elements.
    probs [B, N, F, T]."""
    if not rate:
        return probs
    s = tf.shape(probs)
    probs = tf.nn.dropout(probs, rate=rate / 2)
    return tf.nn.dropout(probs, rate=rate / 2, noise_shape=[s[0], s[1], 1, s[3]])


def masked_softmax(scores, mask):
    """scores [B, N, F, T], mask [B, 1, T] of 0/1 or None -> probabilities over T."""
    if mask is not None:
        scores += (1.0 - mask[:, :, np.newaxis, :]) * -10000.0   # masked latents get ~0 weight
    return tf.nn.softmax(scores, axis=-1)


def normalize_over_from(probs):
    """probs [B, N, F, T] -> the same divided by their sum over F (each to-element's weights sum to 1)."""
    return probs / (tf.reduce_sum(probs, axis=2, keepdims=True) + 1e-8)


def key_probs(queries, to_tensor, to_pos, num_heads, mask, attention_dropout):
    """Attention probabilities from query . key scores (REFERENCE §1.6): keys are projected from
    the to-elements (plus their positions); creates weight_key [, weight_to_pos] in the current scope.

    Args:
      queries: float32 [B, F, A], the from-elements' queries with their positions added.
      to_tensor: float32 [B, T, Dt].
      to_pos: float32 [T, Pt], or None for keys without positions.
      num_heads: N, which divides A.
      mask: float32 [B, 1, T] of 0/1, or None.
      attention_dropout: rate of attention_dropout_fn (0 = none).

    Returns:
      float32 [B, N, F, T]: softmax over T of the scores / sqrt(H), masked, after dropout.
    """
    assert_shape(queries, [None, None, None], "queries")
    assert_shape(to_tensor, [None, None, None], "to_tensor")
    A = queries.shape.as_list()[2]
    # No key biases: a bias b shared by every key adds q.b to a whole row of scores, which the
    # softmax over keys cancels (its gradient is zero).
    keys = dense_tokens(to_tensor, A, "key", use_bias=False)                     # [B, T, A]
    if to_pos is not None:
        keys += dense_tokens(to_pos[np.newaxis], A, "to_pos", use_bias=False)    # + [1, T, A]
    scores = tf.matmul(split_heads(queries, num_heads), split_heads(keys, num_heads),
                       transpose_b=True)                                         # [B,N,F,H].[B,N,T,H]^T -> [B, N, F, T]
    return attention_dropout_fn(masked_softmax(scores / np.sqrt(A // num_heads), mask), attention_dropout)


def centroid_probs(queries, query_pos, num_to, num_heads, mask, attention_dropout, kmeans_iters=1,
                   assignments=None):
    """Attention probabilities from k-means scores (duplex, REFERENCE §1.7): each from-element
    against T centroids of the from-elements themselves, re-centred kmeans_iters times. The
    to-elements enter only through the centroid seeds (Fix §10.2.8: no latent keys, no to_pos).
    Creates [toasgn_init] and iter_<i>/st_weights in the current scope.

    Args:
      queries: float32 [B, F, A], the from-elements' queries *without* positions.
      query_pos: float32 [1, F, A], the projected from-positions, or None. Fix §10.2.8: they are
        concatenated to the content part per head (E = 2H), not across heads.
      num_to: T, the number of centroids (to-elements).
      num_heads: N, which divides A.
      mask: float32 [B, 1, T] of 0/1, or None.
      attention_dropout: rate of attention_dropout_fn (0 = none).
      kmeans_iters: k-means iterations (>= 1).
      assignments: float32 [B, N, T, F], the previous layer's normalized assignments (iterative
        k-means), which seed the centroids; None seeds them with the trainable toasgn_init [1, N, T, E].

    Returns:
      float32 [B, N, F, T]: softmax over T of the last iteration's scores / sqrt(H), masked, after dropout.
    """
    assert_shape(queries, [None, None, None], "queries")
    F, A = queries.shape.as_list()[1:]
    N, H, T = num_heads, A // num_heads, num_to
    if query_pos is not None:
        assert_shape(query_pos, [1, F, A], "query_pos")
    if assignments is not None:
        assert_shape(assignments, [None, N, T, F], "assignments")
    e = split_heads(queries, N)                                                  # [B, N, F, H]
    if query_pos is not None:
        pos = tf.tile(query_pos, [tf.shape(queries)[0], 1, 1])                   # [B, F, A]
        e = tf.concat([e, split_heads(pos, N)], axis=-1)                         # [B, N, F, E=2H]
    E = e.shape.as_list()[-1]
    if assignments is None:
        init = tf.get_variable("toasgn_init", [1, N, T, E], initializer=tf.initializers.random_normal())
        centroids = tf.tile(init, [tf.shape(e)[0], 1, 1, 1])                     # [B, N, T, E]
    else:
        centroids = tf.matmul(assignments, e)                                    # [B,N,T,F].[B,N,F,E] -> [B, N, T, E]
    for i in range(kmeans_iters):
        with tf.variable_scope("iter_%d" % i):
            if i > 0:
                a = normalize_over_from(probs)                                   # [B, N, F, T]
                centroids = tf.matmul(a, e, transpose_a=True)                    # [B,N,F,T]^T.[B,N,F,E] -> [B, N, T, E]
            st = tf.get_variable("st_weights", [N, 1, E], initializer=tf.initializers.ones())
            # (e * st) . c^T == e . (c * st)^T: scaling the T centroids, not the F elements, is the cheaper side.
            scores = tf.matmul(e, centroids * st, transpose_b=True)              # [B,N,F,E].[B,N,T,E]^T -> [B, N, F, T]
            probs = attention_dropout_fn(masked_softmax(scores / np.sqrt(H), mask), attention_dropout)
    return probs


def integrate(x, ctx, integration, norm):
    """Update from-features x [B, F, Df] with the attended context ctx [B, F, A]."""
    df = x.shape.as_list()[2]
    if norm is not None:
        axis = 1 if norm == "instance" else 2
        if integration in ("add", "both"):
            x -= tf.reduce_mean(x, axis=axis, keepdims=True)
        if integration in ("mul", "both"):
            x *= tf.rsqrt(tf.reduce_mean(tf.square(x), axis=axis, keepdims=True) + 1e-8)
    if integration == "both":
        g = dense_tokens(ctx, 2 * df, "out")                                    # [B, F, 2Df]
        gain, bias = g[:, :, :df], g[:, :, df:]
        return x * (1.0 + gain) + bias
    g = dense_tokens(ctx, df, "out")                                            # [B, F, Df]
    return x * (1.0 + g) if integration == "mul" else x + g


def attention_layer(from_tensor, to_tensor, dim, name, from_pos=None, to_pos=None, mask=None, num_heads=1,
                    attention_dropout=0.0, integration="add", norm=None, kmeans=False, kmeans_iters=1,
                    assignments=None, from_gate=False, to_gate=False):
    """One transformer layer from -> to under the variable scope AttLayer_<name> (REFERENCE §1.6-1.7):
    queries from the from-elements attend to the to-elements (key_probs, or centroid_probs with
    kmeans), optional sigmoid gates scale the probabilities, and the attended values update the
    from-elements (integrate).

    Args:
      from_tensor: float32 [B, F, Df].
      to_tensor: float32 [B, T, Dt].
      dim: A, the attention width (queries, keys, values); num_heads must divide it.
      name: scope suffix (l2n, n2l, l2l, n2n, or the mapping layer's index).
      from_pos: float32 [F, Pf] or None: projected and added to the queries (kmeans: concatenated).
      to_pos: float32 [T, Pt] or None: projected and added to the keys, and to the to-gate.
        With kmeans the keys and to_pos projection are unused and *not created* (Fix §10.2.8).
      mask: float32 [B, 1, T] of 0/1 or None: masked to-elements get ~0 probability.
      num_heads: N.
      attention_dropout: dropout rate of the probabilities (0 = none).
      integration: add | mul | both, how the context updates the from-elements (integrate).
      norm: None | instance | layer, applied to the from-elements before the integration.
      kmeans: centroid scores (duplex) instead of query . key scores.
      kmeans_iters: k-means iterations (kmeans only).
      assignments: float32 [B, N, T, F] or None: the previous layer's assignments seeding the
        centroids (iterative kmeans); None: the trainable toasgn_init.
      from_gate: multiply the probabilities by a per-from-element, per-head sigmoid gate.
      to_gate: multiply them by a per-to-element, per-head sigmoid gate.

    Returns:
      (from_tensor updated: float32 [B, F, Df], probabilities: float32 [B, N, F, T],
       assignments: float32 [B, N, T, F], the probabilities normalized over F, for the next layer).

    Raises:
      ValueError: dim does not divide by num_heads, or a tensor has the wrong shape.
    """
    assert_shape(from_tensor, [None, None, None], "from_tensor")
    assert_shape(to_tensor, [None, None, None], "to_tensor")
    F, T = from_tensor.shape.as_list()[1], to_tensor.shape.as_list()[1]
    if dim % num_heads != 0:
        raise ValueError("num_heads: attention width %d is not divisible by %d heads (AttLayer_%s)" % (dim, num_heads, name))
    N = num_heads
    for t, shape, what in ((from_pos, [F, None], "from_pos"), (to_pos, [T, None], "to_pos"),
                           (mask, [None, 1, T], "mask"), (assignments, [None, N, T, F], "assignments")):
        if t is not None:
            assert_shape(t, shape, what)

    with tf.variable_scope("AttLayer_" + name):
        queries = dense_tokens(from_tensor, dim, "query")                       # [B, F, A]
        query_pos = None
        if from_pos is not None:
            query_pos = dense_tokens(from_pos[np.newaxis], dim, "from_pos")     # [1, F, A]
        values = split_heads(dense_tokens(to_tensor, dim, "value"), N)          # [B, N, T, H]
        if kmeans:
            probs = centroid_probs(queries, query_pos, T, N, mask, attention_dropout, kmeans_iters, assignments)
        else:
            if query_pos is not None:
                queries += query_pos                                             # [B, F, A]
            probs = key_probs(queries, to_tensor, to_pos, N, mask, attention_dropout)   # [B, N, F, T]
        if to_gate:
            g = dense_tokens(to_tensor, N, "e_cont")                            # [B, T, N]
            if to_pos is not None:
                g += dense_tokens(to_pos[np.newaxis], N, "e_pos")               # + [1, T, N]
            probs *= tf.sigmoid(tf.transpose(g, [0, 2, 1]))[:, :, np.newaxis, :]   # [B, N, 1, T]
        if from_gate:
            g = dense_tokens(from_tensor, N, "n_cont")                          # [B, F, N]
            if from_pos is not None:
                g += dense_tokens(from_pos[np.newaxis], N, "n_pos")             # + [1, F, N]
            probs *= tf.sigmoid(tf.transpose(g, [0, 2, 1]) + 1.0)[:, :, :, np.newaxis]   # [B, N, F, 1]
        ctx = merge_heads(tf.matmul(probs, values))                              # [B,N,F,T].[B,N,T,H] -> [B, F, A]
        out = integrate(from_tensor, ctx, integration, norm)                     # [B, F, Df]
        new_assign = tf.transpose(normalize_over_from(probs), [0, 1, 3, 2])      # [B, N, T, F]
    return out, probs, new_assign


def latent_update(latents, to_tensor, name, from_pos=None, to_pos=None, mask=None, num_heads=1, attention_dropout=0.0):
    """REFERENCE §1.7 nnlayer: attention (add, no norm) -> Dense<name>_0 (lrelu) -> Dense<name>_1,
    residual leaky ReLU. latents [B, k, D], to_tensor [B, T, Dt] -> [B, k, D]."""
    d = latents.shape.as_list()[2]
    assert_shape(latents, [None, None, d], "latents")
    h, _, _ = attention_layer(latents, to_tensor, d, name, from_pos=from_pos, to_pos=to_pos, mask=mask,
                              num_heads=num_heads, attention_dropout=attention_dropout)
    with tf.variable_scope("Dense%s_0" % name):
        h = dense_tokens(h, d, None, act="lrelu")                               # [B, k, D]
    with tf.variable_scope("Dense%s_1" % name):
        h = dense_tokens(h, d, None, act="linear")                              # [B, k, D]
    return tf.nn.leaky_relu(h + latents, alpha=0.2)


def image_to_tokens(x, data_format="NCHW"):
    """[B, C, h, w] -> [B, F = h*w, C], row-major cells (NHWC [B, h, w, C]: a reshape)."""
    c, h, w = image_dims(x, data_format)
    return tf.reshape(to_format(x, data_format, "NHWC"), [-1, h * w, c])          # [B, h, w, C] -> [B, F, C]


def tokens_to_image(t, h, w, data_format="NCHW"):
    """[B, F = h*w, C] -> [B, C, h, w] (NHWC [B, h, w, C]: a reshape)."""
    c = t.shape.as_list()[2]
    return to_format(tf.reshape(t, [-1, h, w, c]), "NHWC", data_format)           # [B, h, w, C] -> [B, C, h, w]


def image_self_attention(x, pos, num_heads, attention_dropout, data_format="NCHW"):
    """SAGAN image self-attention (AttLayer_n2n, add, grid positions). x [B, C, h, w] (or NHWC), pos [h*w, P]."""
    c, h, w = image_dims(x, data_format)
    assert_shape(pos, [h * w, None], "pos")
    feats = image_to_tokens(x, data_format)                                      # [B, F, C]
    feats, _, _ = attention_layer(feats, feats, c, "n2n", from_pos=pos, to_pos=pos, num_heads=num_heads,
                                  attention_dropout=attention_dropout)
    return tokens_to_image(feats, h, w, data_format)                              # [B, C, h, w]


# ----------------------------------------------------------------------------
# Mapping network (REFERENCE §1.4): z [B, K, z_dim] -> ws [B, K, L, D].


def _mlp(x, num_layers, width, lrmul, act, resnet, attend=None):
    """Plain: Dense0..Dense{n-1}. Resnet: n/2 blocks Dense{i}_0, Dense{i}_1 with residual, then
    Dense{n/2-1}. attend(x, i) optionally runs before dense layer / block i. x [X, Z] -> [X, width]."""
    if not resnet:
        for i in range(num_layers):
            if attend is not None:
                x = attend(x, i)
            with tf.variable_scope("Dense%d" % i):
                x = dense_layer(x, width, act=act, lrmul=lrmul)
        return x
    for i in range(num_layers // 2):
        x_in = x
        if attend is not None:
            x = attend(x, i)
        with tf.variable_scope("Dense%d_0" % i):
            x = dense_layer(x, width, act=act, lrmul=lrmul)
        with tf.variable_scope("Dense%d_1" % i):
            x = dense_layer(x, width, act="linear", lrmul=lrmul)
        x = tf.nn.leaky_relu(x + x_in, alpha=0.2)
    with tf.variable_scope("Dense%d" % (num_layers // 2 - 1)):
        return dense_layer(x, width, act=act, lrmul=lrmul)


def G_mapping(latents_in, labels_in, latent_pos, component_mask,
              num_latents=1,              # K: latents per sample (set by Generator).
              z_dim=512,                  # Width of each input latent (set by Generator).
              w_dim=512,                  # Width of each output latent (set by Generator).
              c_dim=0,                    # Label width, 0 = no labels (set by Generator).
              num_broadcast=17,           # L: copies of each w, one per style input (set by Generator).
              global_latent=False,        # Last latent is the global one, mapped by its own MLP (set by Generator).
              normalize_latents=True,     # Pixel-norm every input latent (Fix §10.2.7: the global one too).
              mapping_num_layers=8,       # Dense layers (resnet: n/2 residual blocks + 1 dense).
              mapping_dim=None,           # MLP width; None = w_dim (else map_start / map_end projections).
              mapping_lrmul=0.01,         # Learning-rate multiplier of the MLP.
              mapping_nonlinearity="lrelu",  # Activation of the MLP.
              mapping_resnet=False,       # Residual MLP blocks (GANsformer preset).
              mapping_shared_dim=0,       # >0: map the latents jointly at this width (inmap -> MLP -> outmap).
              mapping_ltnt2ltnt=False,    # Region latents self-attend before each block (needs global_latent).
              num_heads=1,                # Heads of that self-attention.
              use_pos=False,              # Add latent_pos embeddings in that self-attention.
              attention_dropout=0.12,     # Dropout of that self-attention (0 at inference).
              is_template_graph=False, components=None):
    """latents_in [B, K, z_dim], labels_in [B, c_dim], latent_pos [K-1, w_dim] (or [0, w_dim]),
    component_mask [B, 1, K-1] -> dlatents_out [B, K, L, w_dim]."""
    K = num_latents
    k = K - 1 if global_latent else 0
    latents_in.set_shape([None, K, z_dim])
    labels_in.set_shape([None, c_dim])
    latent_pos.set_shape([k, w_dim])
    component_mask.set_shape([None, 1, k])
    width = mapping_dim or w_dim
    act = mapping_nonlinearity
    x = latents_in                                                                # [B, K, Z]
    if c_dim:
        # Fix §10.2.7: labels join every latent on the feature axis (StyleGAN2), not as an extra latent.
        with tf.variable_scope("LabelConcat"):
            wl = tf.get_variable("weight", [c_dim, z_dim], initializer=tf.initializers.random_normal())
            y = tf.matmul(labels_in, wl)                                          # [B, z_dim]
        x = tf.concat([x, tf.tile(y[:, np.newaxis], [1, K, 1])], axis=2)          # [B, K, Z = 2*z_dim]
    if normalize_latents:
        x *= tf.rsqrt(tf.reduce_mean(tf.square(x), axis=2, keepdims=True) + 1e-8)
    if mapping_dim or (mapping_resnet and x.shape.as_list()[2] != width):
        with tf.variable_scope("map_start"):
            x = dense_tokens(x, width, None, act="linear")                          # [B, K, Z = U]
    din = x.shape.as_list()[2]

    def attend_latents(rows, i):                                              # rows [B*k, U]
        t = tf.reshape(rows, [-1, k, rows.shape.as_list()[1]])                    # [B, k, U]
        pos = latent_pos if use_pos else None
        t, _, _ = attention_layer(t, t, t.shape.as_list()[2], str(i), from_pos=pos, to_pos=pos,
                                  mask=component_mask, num_heads=num_heads, attention_dropout=attention_dropout)
        return tf.reshape(t, [-1, t.shape.as_list()[2]])
    attend = attend_latents if mapping_ltnt2ltnt and k > 0 else None

    outs = []
    if k > 0 or not global_latent:
        n_rows = k if global_latent else K
        if mapping_shared_dim:
            # Fix §10.2.6: the joint map ends in n_rows*width values reshaped to the n_rows latents
            # (the official code reshaped (K-1)*D values into K latents).
            # k below: the latents mapped here (all K without a global latent).
            joint = tf.reshape(x[:, :n_rows], [-1, n_rows * din])                # [B, k*Z]
            with tf.variable_scope("inmap"):
                joint = dense_layer(joint, mapping_shared_dim, act="linear")
            joint = _mlp(joint, mapping_num_layers, mapping_shared_dim, mapping_lrmul, act, mapping_resnet)
            with tf.variable_scope("outmap"):
                joint = dense_layer(joint, n_rows * width, act="linear")
            outs.append(tf.reshape(joint, [-1, n_rows, width]))                  # [B, k, U]
        else:
            rows = tf.reshape(x[:, :n_rows], [-1, din])                          # [B*k, Z], MLP shared over latents
            rows = _mlp(rows, mapping_num_layers, width, mapping_lrmul, act, mapping_resnet, attend)
            outs.append(tf.reshape(rows, [-1, n_rows, width]))                   # [B, k, U]
    if global_latent:
        with tf.variable_scope("global"):
            g = _mlp(x[:, -1], mapping_num_layers, width, mapping_lrmul, act, mapping_resnet)   # [B, U]
        outs.append(g[:, np.newaxis])
    x = tf.concat(outs, axis=1) if len(outs) > 1 else outs[0]                     # [B, K, U]
    if mapping_dim:
        with tf.variable_scope("map_end"):
            x = dense_tokens(x, w_dim, None, act="linear")                          # [B, K, D]
    with tf.variable_scope("Broadcast"):
        x = tf.tile(x[:, :, np.newaxis], [1, 1, num_broadcast, 1])              # [B, K, L, D]
    assert x.dtype == tf.float32
    return tf.identity(x, name="dlatents_out")


# ----------------------------------------------------------------------------
# Synthesis network (REFERENCE §1.5, §1.7): ws [B, K, L, D] -> images [B, C, h, w].


def channels(res, channel_base, channel_max):
    """C(res) = min(channel_base / 2^(res-1), channel_max), at least 1 (res = log2 width)."""
    return max(min(channel_base // 2 ** (res - 1), channel_max), 1)


def stem_height(ratio):
    """Rows of the 4-column stem: 4 * ratio, which must be a positive integer."""
    h0 = 4.0 * ratio
    if h0 < 1 or abs(h0 - round(h0)) > 1e-6:
        raise ValueError("ratio: %r must make 4 * ratio a positive integer (e.g. 0.5, 0.75, 1)" % ratio)
    return int(round(h0))


MERGE_TYPES = ("sum", "softmax", "max", "leaves")
ARCHITECTURES = ("orig", "skip", "resnet")
INTEGRATIONS = ("add", "mul", "both")
NORMS = (None, "instance", "layer")
NOISE_MODES = ("random", "const", "none")


# ----------------------------------------------------------------------------
# Synthesis blocks (REFERENCE §1.5, §1.7): tensors in, tensors out, no shared state. Each opens
# the variable scopes of the official layout, so pickled variable names stay the same.


def synthesis_stem(style, fmaps, stem_h, num_const=1, latent_stem=False):
    """The input of the 4x4 block (stem_h x 4): a dense layer of the first style (latent_stem, scope
    Dense) or learnt constants (Const/const [Kc, C, stem_h, 4]; Fix §10.2.10: one per k-GAN image).

    style [B*Kc, D] (Kc = num_const) -> x [B*Kc, C, stem_h, 4]."""
    assert_shape(style, [None, None], "style")
    if latent_stem:
        with tf.variable_scope("Dense"):
            x = dense(style, fmaps * stem_h * 4, gain=np.sqrt(2) / 4)               # [B*Kc, C*stem_h*4]
            return bias_act(tf.reshape(x, [-1, fmaps, stem_h, 4]), act="lrelu")     # [B*Kc, C, stem_h, 4]
    with tf.variable_scope("Const"):
        const = tf.get_variable("const", shape=[num_const, fmaps, stem_h, 4],
                                initializer=tf.initializers.random_normal())
        x = tf.tile(const[np.newaxis], [tf.shape(style)[0] // num_const, 1, 1, 1, 1])   # [B, Kc, C, stem_h, 4]
        return tf.reshape(x, [-1, fmaps, stem_h, 4])                                  # [B*Kc, C, stem_h, 4]


def bipartite_attention(x, latents, grid_pos, mask, key_pos=None, latent_pos=None, assignments=None,
                        img2ltnt=False, ltnt2ltnt=False, num_heads=1, attention_dropout=0.0, integration="add",
                        norm=None, kmeans=False, kmeans_iters=1, img_gate=False, ltnt_gate=False,
                        data_format="NCHW"):
    """One bipartite step at a synthesis conv (REFERENCE §1.7): the image cells attend to the
    region latents (AttLayer_l2n); in duplex the latents are then updated from the image
    (img2ltnt: AttLayer_n2l, Densen2l_*) and among themselves (ltnt2ltnt: AttLayer_l2l, Densel2l_*),
    with one head, since the latent width need not divide by num_heads.

    Args:
      x: float32 [B, C, h, w] ([B, h, w, C] with data_format NHWC, where the tokens are a reshape).
      latents: float32 [B, k, D].
      grid_pos: float32 [h*w, P], the grid encodings.
      mask: float32 [B, 1, k] of 0/1 (component dropout).
      key_pos: float32 [k, D] or None: latent positions of the l2n keys and latent gate.
      latent_pos: float32 [k, D] or None: latent positions of the latent updates.
      assignments: float32 [B, N, k, h', w'] or None: the previous layer's (iterative kmeans),
        nearest-upsampled here to h x w.
      img2ltnt, ltnt2ltnt: run these latent updates.
      the rest: attention_layer's options for l2n.

    Returns:
      (x: float32 [B, C, h, w] (in data_format), latents: float32 [B, k, D] (updated, or the input),
       assignments: float32 [B, N, k, h, w], maps: float32 [B, N, k, h, w] (the l2n probabilities)).
    """
    c, h, w = image_dims(x, data_format)
    k = latents.shape.as_list()[1]
    assert_shape(latents, [None, k, None], "latents")
    assert_shape(grid_pos, [h * w, None], "grid_pos")
    assert_shape(mask, [None, 1, k], "mask")
    feats = image_to_tokens(x, data_format)                                         # [B, F, C]
    if assignments is not None:
        assert_shape(assignments, [None, num_heads, k, None, None], "assignments")
        ph, pw = assignments.shape.as_list()[3:]
        assignments = nearest_upsample(assignments, h // ph, w // pw)               # [B, N, k, h, w]
        assignments = tf.reshape(assignments, [-1, num_heads, k, h * w])           # [B, N, k, F]
    feats, probs, assignments = attention_layer(
        feats, latents, c, "l2n", from_pos=grid_pos, to_pos=key_pos, mask=mask, num_heads=num_heads,
        attention_dropout=attention_dropout, integration=integration, norm=norm, kmeans=kmeans,
        kmeans_iters=kmeans_iters, assignments=assignments, from_gate=img_gate, to_gate=ltnt_gate)
    if img2ltnt:
        latents = latent_update(latents, feats, "n2l", from_pos=latent_pos, to_pos=grid_pos, num_heads=1,
                                attention_dropout=attention_dropout)
    if ltnt2ltnt:
        latents = latent_update(latents, latents, "l2l", from_pos=latent_pos, to_pos=latent_pos, mask=mask,
                                num_heads=1, attention_dropout=attention_dropout)
    maps = tf.reshape(tf.transpose(probs, [0, 1, 3, 2]), [-1, num_heads, k, h, w])  # [B, N, k, F] -> [B, N, k, h, w]
    assignments = tf.reshape(assignments, [-1, num_heads, k, h, w])               # [B, N, k, F] -> [B, N, k, h, w]
    return tokens_to_image(feats, h, w, data_format), latents, assignments, maps


def synthesis_layer(x, style, fmaps, up=False, noise=None, latents=None, attention=None, sagan=None,
                    resample_kernel=None, fused_modconv=True, modulate=True, data_format="NCHW"):
    """One conv of G (REFERENCE §1.5, §1.7): modulated conv -> [bipartite attention] ->
    [SAGAN self-attention] -> [noise] -> bias + leaky ReLU.

    Args:
      x: float32 [B, I, h, w] (before the 2x up-sampling when up).
      style: float32 [B, D].
      fmaps: O.
      up: up-sample 2x in the conv.
      noise: None (no noise, no noise_strength variable), "random", or a float32 [1, 1, h', w'].
      latents: float32 [B, k, D] for the bipartite attention, or None: no bipartite attention.
      attention: dict of bipartite_attention's other arguments (given with latents).
      sagan: dict of image_self_attention's arguments (pos, num_heads, attention_dropout), or None.
      resample_kernel, fused_modconv, modulate: modulated_conv2d's options.
      data_format: x's layout and the output's (NCHW, or NHWC: [B, h, w, I] -> [B, h', w', O]).

    Returns:
      (x: float32 [B, O, h', w'], latents, assignments, maps): bipartite_attention's last three,
      or None each without the bipartite attention.
    """
    assert_shape(x, [None, None, None, None], "x")
    assert_shape(style, [None, None], "style")
    x = modulated_conv2d(x, style, fmaps, 3, up=up, resample_kernel=resample_kernel, fused=fused_modconv,
                         modulate=modulate, data_format=data_format)                 # [B, O, h', w']
    assignments = maps = None
    if latents is not None:
        x, latents, assignments, maps = bipartite_attention(x, latents, data_format=data_format, **attention)
    if sagan is not None:
        x = image_self_attention(x, data_format=data_format, **sagan)
    if noise is not None:
        _, h, w = image_dims(x, data_format)
        if isinstance(noise, str):                                                  # "random"
            noise = tf.random_normal([tf.shape(x)[0], 1, h, w])                     # [B, 1, h', w']
        if data_format == "NHWC":
            noise = tf.reshape(noise, [-1, h, w, 1])                                # one channel: a reshape
        strength = tf.get_variable("noise_strength", shape=[], initializer=tf.initializers.zeros())
        x += noise * strength
    return bias_act(x, act="lrelu", axis=channel_axis(data_format)), latents, assignments, maps


def torgb_block(x, style, num_channels, extra_style=None, resample_kernel=None, fused_modconv=True, modulate=True,
                data_format="NCHW"):
    """ToRGB (scope ToRGB): [extraLayer: a 3x3 modulated conv by extra_style, the GANsformer's last
    block] -> 1x1 modulated conv by style without demodulation -> bias.
    x [B, C, h, w], style [B, D], extra_style [B, D] or None -> rgb [B, num_channels, h, w]
    (data_format NHWC: x and rgb [B, h, w, .])."""
    assert_shape(x, [None, None, None, None], "x")
    assert_shape(style, [None, None], "style")
    c = image_dims(x, data_format)[0]
    conv_kw = dict(fused=fused_modconv, modulate=modulate, data_format=data_format)
    with tf.variable_scope("ToRGB"):
        if extra_style is not None:
            with tf.variable_scope("extraLayer"):
                x = modulated_conv2d(x, extra_style, c, 3, resample_kernel=resample_kernel, **conv_kw)   # [B, C, h, w]
        y = modulated_conv2d(x, style, num_channels, 1, demodulate=False, **conv_kw)
        return bias_act(y, axis=channel_axis(data_format))                           # [B, num_channels, h, w]


def kgan_merge(x, styles, rgb, num_images, merge_type="sum", merge_same=False):
    """k-GAN merge (scope Merge): the K parallel images are weighted per pixel (per image with
    merge_same) and summed; styles and the RGB running sum follow.

    Args:
      x: float32 [B*K, C, h, w] features of the K images of each sample.
      styles: float32 [B*K, L, D].
      rgb: float32 [B*K, 3, h', w'] (the skip architecture's running sum) or None.
      num_images: K.
      merge_type: sum | softmax | max (one-hot forward, softmax gradient) | leaves (back-to-front
        alpha compositing, image 0 opaque).
      merge_same: one weight per image (spatial mean of the scores) instead of per pixel.

    Returns:
      (x: float32 [B, C, h, w], styles: float32 [B, L, D] weighted by the weights' spatial means,
       rgb: float32 [B, 3, h', w'], per-pixel weights where h' x w' = h x w, else their means; or None).
    """
    K = num_images
    _, c, h, w = x.shape.as_list()
    assert_shape(x, [None, c, h, w], "x")
    assert_shape(styles, [None, None, None], "styles")
    L, D = styles.shape.as_list()[1:]
    batch = tf.shape(x)[0] // K
    with tf.variable_scope("Merge"):
        if merge_type == "sum":
            wts = tf.ones([batch, K, 1, h, w])
        else:
            s = conv2d(x, 1, 1)                                                     # [B*K, 1, h, w]
            if merge_type == "leaves":
                # softmax and max are unchanged by a shift shared by all K scores, so a bias
                # there would be a variable with zero gradient; the sigmoid alphas are not.
                s = bias_act(s)
            s = tf.reshape(s, [-1, K, 1, h, w])                                     # [B, K, 1, h, w]
            if merge_same:
                s = tf.reduce_mean(s, axis=[3, 4], keepdims=True)                   # [B, K, 1, 1, 1]
            if merge_type == "softmax":
                wts = tf.nn.softmax(s, axis=1)
            elif merge_type == "max":
                soft = tf.nn.softmax(s, axis=1)
                wts = tf.one_hot(tf.argmax(s, axis=1), K, axis=1) + soft - tf.stop_gradient(soft)
            else:
                alphas = tf.concat([tf.ones_like(s[:, :1]), tf.sigmoid(s[:, 1:])], axis=1)
                rest = tf.math.cumprod(1.0 - alphas, axis=1, exclusive=True, reverse=True)
                wts = alphas * rest
            wts = tf.broadcast_to(wts, [batch, K, 1, h, w])                         # [B, K, 1, h, w]
        mean_w = tf.reduce_mean(wts, axis=[2, 3, 4])                                # [B, K]
        mean_w /= tf.reduce_sum(mean_w, axis=1, keepdims=True) + 1e-8
        styles = tf.reshape(styles, [-1, K, L, D])                                  # [B, K, L, D]
        styles = tf.reduce_sum(styles * mean_w[:, :, None, None], axis=1)           # [B, L, D]
        if rgb is not None:
            y = tf.reshape(rgb, [-1, K] + rgb.shape.as_list()[1:])                  # [B, K, 3, h', w']
            if y.shape.as_list()[3:] == [h, w]:
                rgb = tf.reduce_sum(y * wts, axis=1)                                # [B, 3, h, w]
            else:
                rgb = tf.reduce_sum(y * mean_w[:, :, None, None, None], axis=1)     # [B, 3, h', w']
        x = tf.reduce_sum(tf.reshape(x, [-1, K, c, h, w]) * wts, axis=1)            # [B, C, h, w]
    return x, styles, rgb


def G_synthesis(dlatents_in, latent_pos, component_mask,
                num_latents=1,            # K (set by Generator).
                w_dim=512,                # D (set by Generator).
                resolution=1024,          # Output width (power of two).
                ratio=1.0,                # Height / width; 4 * ratio must be an integer.
                num_channels=3,           # Image channels.
                channel_base=16 << 10,    # C(res) = min(channel_base / 2^(res-1), channel_max).
                channel_max=512,          # Most channels of any layer.
                architecture="skip",      # orig | skip | resnet.
                resample_kernel=(1, 3, 3, 1),  # FIR filter of up/down-sampling.
                fused_modconv=True,       # Modulated conv as one grouped conv.
                latent_stem=False,        # Stem from a dense layer of the global latent instead of a constant.
                style=True,               # Modulate convs by the global latent (False: plain convs, no mod_* vars).
                local_noise=True,         # Per-pixel noise inputs (noise<i> vars, noise_strength).
                noise_mode="random",      # random | const | none (dynamic if local_noise).
                tanh=False,               # tanh on the output.
                transformer=False,        # Bipartite attention between region latents and image features.
                num_heads=1,              # Attention heads.
                attention_dropout=0.12,   # Attention dropout (Generator sets 0 outside training).
                ltnt_gate=False,          # Gate on latent columns of the attention.
                img_gate=False,           # Gate on image rows of the attention.
                integration="add",        # add | mul | both.
                norm=None,                # None | instance | layer, before integration.
                kmeans=False,             # Duplex centroid scores instead of latent keys.
                kmeans_iters=1,           # k-means iterations per layer.
                iterative=False,          # Carry centroid assignments to the next attention layer.
                start_res=0,              # First log2 width with attention.
                end_res=8,                # Attention below this log2 width (exclusive).
                img2img=0,                # log2 width of SAGAN image self-attention; 0 = none (needs no transformer).
                img2ltnt=False,           # Duplex: update region latents from the image (AttLayer_n2l).
                ltnt2ltnt=False,          # Region latents self-attend after each attention layer (AttLayer_l2l).
                use_pos=False,            # Latent position embeddings (latent_pos) in the attention.
                pos_dim=None,             # P of grid encodings; None = w_dim.
                pos_type="sinus",         # sinus | linear | trainable | trainable2d.
                pos_init="uniform",       # uniform | normal, for the trainable kinds.
                pos_directions_num=2,     # Directions of sinus / linear encodings.
                kgan=False,               # k-GAN: K images in parallel, merged.
                merge_layer=-1,           # Merge after the block holding conv j (0 = stem); -1 or >= convs: at the end.
                merge_type="sum",         # sum | softmax | max | leaves.
                merge_same=False,         # One merge weight per image instead of per pixel.
                is_template_graph=False, components=None):
    """dlatents_in [B, K, L, D], latent_pos [k, D], component_mask [B, 1, k] ->
    (images_out [B, C, h, w], maps_out [B, k, La, N, h, w], latents_out [B, k, D]).

    k = K - 1 region latents with the transformer (the last latent is global), else 0 and
    maps_out is an empty [B, 0, 0, N, h, w] tensor. latents_out: region latents after the last
    layer (unchanged ws[:, :-1, -1] in simplex; updated in duplex with img2ltnt / ltnt2ltnt)."""
    # Options were checked together by Generator (validate_options) before this is built.
    R = int(np.log2(resolution))
    h0 = stem_height(ratio)
    K, D, L = num_latents, w_dim, 2 * R - 1
    k = K - 1 if transformer else 0
    num_convs = 2 * R - 3
    dlatents_in.set_shape([None, K, L, D])
    latent_pos.set_shape([k, D])
    component_mask.set_shape([None, 1, k])
    P = pos_dim or D
    nf = lambda r: channels(r, channel_base, channel_max)
    size = lambda r: (h0 * 2 ** (r - 2), 2 ** r)
    att_res = [r for r in range(2, R + 1) if transformer and start_res <= r < end_res]
    batch = tf.shape(dlatents_in)[0]
    fmt = image_format(batch)     # the layout of x between the blocks; rgb and the stem stay NCHW

    # Styles [B, L, D]: the global latent (transformer) or the only one; k-GAN: every latent,
    # [B*K, L, D] until kgan_merge.
    if transformer:
        styles = dlatents_in[:, -1]
    elif kgan:
        styles = tf.reshape(dlatents_in, [-1, L, D])                             # [B*K, L, D]
    else:
        styles = dlatents_in[:, 0]
    region = dlatents_in[:, :k]                                                   # [B, k, L, D]

    # Noise inputs: noise<j> [1, 1, h, w] for conv j (Fix: exactly one per conv, none unused).
    noise_vars = []
    if local_noise and noise_mode != "none":
        for j in range(num_convs):
            h, w = size((j + 5) // 2)
            noise_vars.append(tf.get_variable("noise%d" % j, shape=[1, 1, h, w], trainable=False,
                                              initializer=tf.initializers.random_normal()))
    # Grid encodings, created once per resolution under pos_emb<res>.
    grid_pos = {}
    for r in sorted(set(att_res + ([img2img] if img2img else []))):
        with tf.variable_scope("pos_emb%d" % r):
            grid_pos[r] = grid_positions(*size(r), P, pos_type, pos_init, pos_directions_num)

    conv_kw = dict(resample_kernel=resample_kernel, fused_modconv=fused_modconv, modulate=style, data_format=fmt)
    # latent_pos feeds the key positions (not with kmeans) and the latent gate / latent updates.
    att_kw = dict(mask=component_mask, key_pos=latent_pos if use_pos and (not kmeans or ltnt_gate) else None,
                  latent_pos=latent_pos if use_pos else None, num_heads=num_heads,
                  attention_dropout=attention_dropout, integration=integration, norm=norm, kmeans=kmeans,
                  kmeans_iters=kmeans_iters, img_gate=img_gate, ltnt_gate=ltnt_gate)
    # The latent updates after the last attention layer would have no consumer: skip them there.
    last_att_conv = max([j for j in range(num_convs) if (j + 5) // 2 in att_res], default=-1)
    out_h, out_w = size(R)

    def conv_layers(r):
        """(conv index j, scope, up) of the convs at log2 width r."""
        return [(0, "Conv", False)] if r == 2 else [(2 * r - 5, "Conv0_up", True), (2 * r - 4, "Conv1", False)]

    def layer(x, style, j, r, up, latents, assign):
        """Conv j at log2 width r. latents: the duplex latents so far (None: ws layer j + 1);
        assign: the last attention layer's assignments. Returns (x, latents, assign, map or None)."""
        lat = att = sagan = None
        if r in att_res:
            updates = j != last_att_conv
            lat = latents if latents is not None else region[:, :, j + 1]      # [B, k, D]
            att = dict(att_kw, grid_pos=grid_pos[r], assignments=assign if kmeans and iterative else None,
                       img2ltnt=img2ltnt and updates, ltnt2ltnt=ltnt2ltnt and updates)
        if img2img == r and (up or r == 2):
            sagan = dict(pos=grid_pos[r], num_heads=num_heads, attention_dropout=attention_dropout)
        noise = None if not noise_vars else "random" if noise_mode == "random" else noise_vars[j]
        x, lat, new_assign, m = synthesis_layer(x, style, nf(r), up=up, noise=noise, latents=lat, attention=att,
                                                sagan=sagan, **conv_kw)
        if att is None:
            return x, latents, assign, None
        return x, (lat if (img2ltnt or ltnt2ltnt) and updates else latents), new_assign, m

    def block(x, styles, r, latents, assign):
        """Log2 width r: [stem], its convs, [resnet skip].
        Returns (x, latents, assign, maps: list of [B, N, k, h, w] at the output size)."""
        maps = []
        if r == 2:
            x = synthesis_stem(styles[:, 0], nf(2), h0, num_const=K if kgan else 1, latent_stem=latent_stem)
            x = to_format(x, "NCHW", fmt)
        t = x
        for j, scope, up in conv_layers(r):
            with tf.variable_scope(scope):
                x, latents, assign, m = layer(x, styles[:, j + 1], j, r, up, latents, assign)
            if m is not None:
                maps.append(nearest_upsample(m, out_h // size(r)[0], out_h // size(r)[0]))
        if architecture == "resnet" and r > 2:
            with tf.variable_scope("Skip"):
                t = conv2d(t, nf(r), 1, up=True, resample_kernel=resample_kernel, data_format=fmt)
            x = (x + t) * (1 / np.sqrt(2))
        return x, latents, assign, maps

    def torgb(x, rgb, styles, r):
        """The RGB image so far (NCHW): skip adds this resolution's ToRGB to the upsampled sum."""
        extra = styles[:, 2 * r - 3] if transformer and r == R and r <= end_res else None
        y = lambda: to_format(torgb_block(x, styles[:, 2 * r - 2], num_channels, extra, **conv_kw), fmt, "NCHW")
        if architecture == "skip" and r > 2:
            with tf.variable_scope("Upsample"):
                return upsample_2d(rgb, k=resample_kernel) + y()
        return y()

    x = rgb = latents = assign = None
    maps, merged = [], not kgan
    for r in range(2, R + 1):
        with tf.variable_scope("%dx%d" % (2 ** r, 2 ** r)):
            x, latents, assign, block_maps = block(x, styles, r, latents, assign)
            maps += block_maps
            if architecture == "skip" or r == R:
                rgb = torgb(x, rgb, styles, r)
            if not merged and (merge_layer in [j for j, _, _ in conv_layers(r)] or r == R):
                x, styles, rgb = kgan_merge(to_format(x, fmt, "NCHW"), styles, rgb, K, merge_type, merge_same)
                x, merged = to_format(x, "NCHW", fmt), True

    images = tf.tanh(rgb) if tanh else rgb
    if maps:
        maps = tf.stack(maps, axis=1)                                            # [B, La, N, k, h, w]
        maps = tf.transpose(maps, [0, 3, 1, 2, 4, 5])                            # [B, k, La, N, h, w]
    else:
        maps = tf.zeros([batch, k, 0, num_heads, out_h, out_w])
    latents_out = latents if latents is not None else region[:, :, -1]           # [B, k, D]
    assert_shape(images, [None, num_channels, out_h, out_w], "images_out")
    assert images.dtype == tf.float32
    return (tf.identity(images, name="images_out"), tf.identity(maps, name="maps_out"),
            tf.identity(latents_out, name="latents_out"))


# ----------------------------------------------------------------------------
# Generator (REFERENCE §1.3): mapping + synthesis, w_avg, truncation, style / component mixing.


def validate_options(**parts):
    """training.validation.validate: the one validator of option combinations, shared with the
    CLI and the training loop (imported here, at build time, so the check is the same)."""
    from training import validation
    validation.validate(**parts)


def _params(func):
    return [p for p in inspect.signature(func).parameters.values()
            if p.kind == p.POSITIONAL_OR_KEYWORD and p.default is not p.empty]


def _default(func, name):
    return inspect.signature(func).parameters[name].default


# Sub-network options the Generator derives itself (not settable by the user).
G_DERIVED = ("num_latents", "z_dim", "w_dim", "c_dim", "num_broadcast", "global_latent", "transformer",
             "is_template_graph", "components")


def latent_pos_used(opts):
    """Whether any layer reads the region-latent embeddings ltnt_emb (so G creates them)."""
    get = lambda f, n: opts.get(n, _default(f, n))
    if not opts.get("transformer", False) or not get(G_synthesis, "use_pos"):
        return False
    return bool(get(G_mapping, "mapping_ltnt2ltnt") or not get(G_synthesis, "kmeans") or get(G_synthesis, "ltnt_gate")
                or get(G_synthesis, "img2ltnt") or get(G_synthesis, "ltnt2ltnt"))


def Generator(latents_in, labels_in,
              is_training=False,          # Training: mixing and w_avg tracking on, truncation off.
              is_validation=False,        # Validation (metrics): truncation off.
              return_ws=False,            # Also return the ws fed to synthesis [B, K, L, D].
              take_ws=False,              # latents_in are ws [B, K, L, D]: skip mapping, mixing and truncation.
              truncation_psi=0.7,         # Truncation at inference; 1 or None = off, 0 = every w at w_avg.
              truncation_cutoff=None,     # Truncate only layers below this index; None = all.
              w_avg_beta=0.995,           # Decay of the dlatent_avg tracking; None = no tracking.
              style_mixing=0.9,           # Probability of style mixing in training; 0 = off.
              component_mixing=0.0,       # Probability of component mixing in training; 0 = off.
              component_dropout=0.0,      # Rate of dropping region latents in training; 0 = off.
              components_num=1,           # k: region latents (transformer) or parallel images (kgan).
              latent_size=512,            # Total latent width; each latent has latent_size / k.
              c_dim=0,                    # Label width; 0 = unconditional.
              transformer=False,          # GANsformer: k region latents + 1 global latent, bipartite attention.
              randomize_noise=None,       # StyleGAN2 spelling: True = noise_mode random, False = const.
              is_template_graph=False, components=None,
              **kwargs):                  # Routed to G_mapping / G_synthesis by their signatures.
    """latents_in z [B, K, z_dim] ([B, z_dim] when K = 1), labels_in [B, c_dim] ->
    (images_out [B, C, h, w], maps_out [B, k, La, N, h, w][, ws_out [B, K, L, D]]).
    K = k + 1 with the transformer (the last latent is global), else k (1, or k-GAN images)."""
    map_names = set(p.name for p in _params(G_mapping)) - set(G_DERIVED)
    syn_names = set(p.name for p in _params(G_synthesis)) - set(G_DERIVED)
    unknown = sorted(set(kwargs) - map_names - syn_names)
    if unknown:
        raise ValueError("Generator: unknown option(s) %s" % ", ".join(unknown))
    validate_options(G=dict(kwargs, components_num=components_num, latent_size=latent_size, transformer=transformer))
    K = components_num + 1 if transformer else components_num
    k = K - 1 if transformer else 0
    z_dim = w_dim = latent_size // components_num
    resolution = kwargs.get("resolution", _default(G_synthesis, "resolution"))
    L = 2 * int(np.log2(resolution)) - 1
    if randomize_noise is not None:
        kwargs["noise_mode"] = "random" if randomize_noise else "const"
    mkw = {n: v for n, v in kwargs.items() if n in map_names}
    skw = {n: v for n, v in kwargs.items() if n in syn_names}
    if components is None:
        components = dnnlib.EasyDict()
    if "mapping" not in components:
        components.mapping = tflib.Network("G_mapping", func_name=G_mapping, num_latents=K, z_dim=z_dim, w_dim=w_dim,
                                           c_dim=c_dim, num_broadcast=L, global_latent=transformer, **mkw)
    if "synthesis" not in components:
        components.synthesis = tflib.Network("G_synthesis", func_name=G_synthesis, num_latents=K, w_dim=w_dim,
                                             transformer=transformer, **skw)
    # Routed options given at call time (e.g. noise_mode) reach the sub-networks too.
    no_dropout = {} if is_training else dict(attention_dropout=0.0)   # no attention dropout at inference
    mdyn, sdyn = dict(mkw, **no_dropout), dict(skw, **no_dropout)

    batch = tf.shape(latents_in)[0]
    labels_in.set_shape([None, c_dim])
    dlatent_avg = tf.get_variable("dlatent_avg", shape=[w_dim], initializer=tf.initializers.zeros(), trainable=False)
    if latent_pos_used(dict(kwargs, transformer=transformer)):
        with tf.variable_scope("ltnt_emb"):
            latent_pos = tf.get_variable("emb", shape=[k, w_dim], initializer=tf.random_uniform_initializer())
    else:
        latent_pos = tf.zeros([k, w_dim])
    # Fix §10.2.11: component dropout only in training.
    if is_training and component_dropout > 0:
        mask = tf.cast(tf.random_uniform([batch, 1, k]) >= component_dropout, tf.float32)   # [B, 1, k]
    else:
        mask = tf.ones([batch, 1, k])

    if take_ws:
        latents_in.set_shape([None, K, L, w_dim])
        ws = latents_in
    else:
        # One latent: z is [B, z_dim] (StyleGAN2 layout); a [B, 1, z_dim] tensor is accepted too.
        latents_in.set_shape([None, z_dim] if K == 1 and latents_in.shape.ndims != 3 else [None, K, z_dim])
        z = latents_in[:, np.newaxis] if latents_in.shape.ndims == 2 else latents_in         # [B, K, z_dim]
        ws = components.mapping.get_output_for(z, labels_in, latent_pos, mask, **mdyn)        # [B, K, L, D]
        if is_training and w_avg_beta is not None:
            # One centre for all latents: mean of ws[:, :, 0] over batch and K (§1.3.5).
            batch_avg = tf.reduce_mean(ws[:, :, 0], axis=[0, 1])                               # [D]
            update = tf.assign(dlatent_avg, batch_avg + w_avg_beta * (dlatent_avg - batch_avg))
            with tf.control_dependencies([update]):
                ws = tf.identity(ws)
        if is_training and (style_mixing > 0 or (component_mixing > 0 and K > 1)):
            ws2 = components.mapping.get_output_for(tf.random_normal(tf.shape(z)), labels_in, latent_pos, mask,
                                                    **mdyn)
            if style_mixing > 0:
                # Layers below a random cutoff in 1..L-1 keep ws, the rest come from ws2 (prob style_mixing).
                cutoff = tf.cond(tf.random_uniform([]) < style_mixing,
                                 lambda: tf.random_uniform([], 1, L, dtype=tf.int32), lambda: L)
                layer_idx = np.arange(L)[np.newaxis, np.newaxis, :, np.newaxis]
                ws = tf.where(tf.broadcast_to(layer_idx < cutoff, tf.shape(ws)), ws, ws2)
            if component_mixing > 0 and K > 1:
                cutoff = tf.cond(tf.random_uniform([]) < component_mixing,
                                 lambda: tf.random_uniform([], 1, K, dtype=tf.int32), lambda: K)
                comp_idx = np.arange(K)[np.newaxis, :, np.newaxis, np.newaxis]
                ws = tf.where(tf.broadcast_to(comp_idx < cutoff, tf.shape(ws)), ws, ws2)
        if not is_training and not is_validation and truncation_psi is not None and truncation_psi != 1:
            layer_idx = np.arange(L)[np.newaxis, np.newaxis, :, np.newaxis]
            cutoff = L if truncation_cutoff is None else truncation_cutoff
            psi = np.where(layer_idx < cutoff, truncation_psi, 1.0).astype(np.float32)      # [1, 1, L, 1]
            ws = dlatent_avg + (ws - dlatent_avg) * psi

    images, maps, _ = components.synthesis.get_output_for(ws, latent_pos, mask, **sdyn)
    images = tf.identity(images, name="images_out")
    maps = tf.identity(maps, name="maps_out")
    assert images.dtype == tf.float32
    if return_ws:
        return images, maps, tf.identity(ws, name="ws_out")
    return images, maps


# ----------------------------------------------------------------------------
# Discriminator (REFERENCE §2): StyleGAN2 D with optional aggregator-latent attention.


def Discriminator(images_in, labels_in,
                  num_channels=3,         # Image channels.
                  resolution=1024,        # Image width (power of two).
                  ratio=1.0,              # Height / width, as in G_synthesis.
                  c_dim=0,                # Label width; 0 = unconditional.
                  architecture="resnet",  # orig | skip | resnet.
                  channel_base=16 << 10,  # Channel formula as in G_synthesis.
                  channel_max=512,
                  mbstd_group_size=4,     # Minibatch-stddev group (min(group, batch)); 0 = no mbstd layer.
                  mbstd_num_channels=1,   # Minibatch-stddev features.
                  resample_kernel=(1, 3, 3, 1),
                  transformer=False,      # Aggregator latents attend to the image (d_transformer).
                  components_num=1,       # k aggregators.
                  latent_size=512,        # Total aggregator width; each has latent_size / k.
                  num_heads=1,            # Heads of the aggregator attention.
                  attention_dropout=0.12, # Its dropout, only when is_training (Fix §10.2.11).
                  start_res=0,            # First log2 width with attention.
                  end_res=8,              # Attention below this log2 width.
                  ltnt2ltnt=False,        # Aggregators self-attend after each attention layer.
                  img2img=0,              # log2 width of SAGAN image self-attention; 0 = none.
                  use_pos=False,          # Aggregator position embeddings.
                  pos_dim=None,           # P of grid encodings; None = aggregator width.
                  pos_type="sinus",
                  pos_init="uniform",
                  pos_directions_num=2,
                  is_training=False,      # Attention dropout on.
                  is_template_graph=False, components=None):
    """images_in [B, C, h, w], labels_in [B, c_dim] -> scores_out [B, 1]."""
    validate_options(D={n: v for n, v in locals().items() if n not in ("images_in", "labels_in", "components")})
    R = int(np.log2(resolution))
    h0 = stem_height(ratio)
    size = lambda r: (h0 * 2 ** (r - 2), 2 ** r)
    nf = lambda stage: max(min(channel_base // 2 ** stage, channel_max), 1)      # = C(stage + 1)
    images_in.set_shape([None, num_channels] + list(size(R)))
    labels_in.set_shape([None, c_dim])
    act = "lrelu"
    fmt = image_format(tf.shape(images_in))   # the layout of x between the blocks; images y stay NCHW
    cax = channel_axis(fmt)
    drop = attention_dropout if is_training else 0.0
    att_res = [r for r in range(3, R + 1) if transformer and start_res <= r < end_res]
    if transformer:
        a_dim = latent_size // components_num
        P = pos_dim or a_dim
        agg = tf.get_variable("aggregators", [components_num, a_dim], initializer=tf.random_uniform_initializer())
        agg = tf.tile(agg[np.newaxis], [tf.shape(images_in)[0], 1, 1])            # [B, k, D]
        lat_pos = None
        if use_pos and att_res:
            with tf.variable_scope("ltnt_emb"):
                lat_pos = tf.get_variable("emb", [components_num, a_dim], initializer=tf.random_uniform_initializer())
    if img2img:
        P = pos_dim or (latent_size // components_num)
    grid_pos = {}
    for r in sorted(set(att_res + ([img2img] if img2img else []))):
        with tf.variable_scope("pos_emb%d" % r):
            grid_pos[r] = grid_positions(*size(r), P, pos_type, pos_init, pos_directions_num)

    def fromrgb(x, y, r):
        with tf.variable_scope("FromRGB"):
            t = bias_act(conv2d(to_format(y, "NCHW", fmt), nf(r - 1), 1, data_format=fmt), act=act, axis=cax)
            return t if x is None else x + t

    x, y = None, images_in
    for r in range(R, 2, -1):
        with tf.variable_scope("%dx%d" % (2 ** r, 2 ** r)):
            if architecture == "skip" or r == R:
                x = fromrgb(x, y, r)
            if r in att_res:
                feats = image_to_tokens(x, fmt)                                  # [B, F, C]
                agg, _, _ = attention_layer(agg, feats, a_dim, "n2l", from_pos=lat_pos, to_pos=grid_pos[r],
                                            num_heads=num_heads, attention_dropout=drop)
                if ltnt2ltnt:
                    agg, _, _ = attention_layer(agg, agg, a_dim, "l2l", from_pos=lat_pos, to_pos=lat_pos,
                                                num_heads=num_heads, attention_dropout=drop)
            if img2img == r:
                x = image_self_attention(x, grid_pos[r], num_heads, drop, data_format=fmt)
            t = x
            with tf.variable_scope("Conv0"):
                x = bias_act(conv2d(x, nf(r - 1), 3, data_format=fmt), act=act, axis=cax)
            with tf.variable_scope("Conv1_down"):
                x = conv2d(x, nf(r - 2), 3, down=True, resample_kernel=resample_kernel, data_format=fmt)
                x = bias_act(x, act=act, axis=cax)
            if architecture == "resnet":
                with tf.variable_scope("Skip"):
                    t = conv2d(t, nf(r - 2), 1, down=True, resample_kernel=resample_kernel, data_format=fmt)
                x = (x + t) * (1 / np.sqrt(2))
        if architecture == "skip":
            y = downsample_2d(y, k=resample_kernel)
    with tf.variable_scope("4x4"):
        if architecture == "skip" or R == 2:
            x = fromrgb(x, y, 2)
        if mbstd_group_size > 1:
            with tf.variable_scope("MinibatchStddev"):
                x = minibatch_stddev(x, mbstd_group_size, mbstd_num_channels, data_format=fmt)
        with tf.variable_scope("Conv"):
            x = bias_act(conv2d(x, nf(1), 3, data_format=fmt), act=act, axis=cax)
        with tf.variable_scope("Dense0"):
            x = dense_layer(to_format(x, fmt, "NCHW"), nf(0), act=act)           # flattened C-major: [B, C]
    if transformer:
        with tf.variable_scope("ComponentScores"):
            a = tf.transpose(agg, [0, 2, 1])[:, :, :, np.newaxis]                 # [B, D, k, 1]
            if mbstd_group_size > 1:
                a = minibatch_stddev(a, mbstd_group_size, 1)                      # [B, D+1, k, 1]
            a = tf.reshape(tf.transpose(a[:, :, :, 0], [0, 2, 1]), [-1, a.shape.as_list()[1]])   # [B*k, D+1]
            with tf.variable_scope("Dense"):
                a = dense_layer(a, a_dim, act=act)
            with tf.variable_scope("Output"):
                a = dense_layer(a, 1)                                             # [B*k, 1]
            x = tf.concat([x, tf.reshape(a, [-1, components_num])], axis=1)        # [B, C + k]
    with tf.variable_scope("Output"):
        x = dense_layer(x, max(c_dim, 1))
        if c_dim:
            x = tf.reduce_sum(x * labels_in, axis=1, keepdims=True)
    assert x.dtype == tf.float32
    return tf.identity(x, name="scores_out")
