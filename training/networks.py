"""GANformer generator and discriminator, and the baselines (GAN, StyleGAN2, k-GAN, SAGAN), as
tflib.Network build functions (REFERENCE.md §1-2).

Self-contained on purpose: pickles carry this module's source, so it imports only numpy, tf,
dnnlib, dnnlib.tflib and dnnlib.tflib.ops (plus the standard library).

Axis legend used in the shape comments:
  B batch          K latents (k region latents + 1 global one with the transformer)
  L broadcast layers (2*log2(resolution) - 1)      D latent width (w_dim)
  N attention heads   H head width   F / T from / to lengths (attention)   E centroid width
  C channels       h / w image height / width      P positional-encoding width

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
    x = tf.reshape(x, [-1, h, 1, w, 1])                                       # [M, h, 1, w, 1]
    x = tf.tile(x, [1, 1, fh, 1, fw])                                        # [M, h, fh, w, fw]
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


def bias_act(x, act="linear", lrmul=1.0, bias_var="bias", alpha=None, gain=None):
    """fused_bias_act with a zero-initialised bias on axis 1 (times lrmul)."""
    b = tf.get_variable(bias_var, shape=[x.shape.as_list()[1]], initializer=tf.initializers.zeros()) * lrmul
    return fused_bias_act(x, b=b, act=act, alpha=alpha, gain=gain)


def dense_layer(x, fmaps, act="linear", lrmul=1.0, name=None, gain=1.0, use_bias=True):
    """dense + bias + act; variables weight[_name] / bias[_name]."""
    suffix = "" if name is None else "_" + name
    x = dense(x, fmaps, gain=gain, lrmul=lrmul, weight_var="weight" + suffix)
    return bias_act(x, act, lrmul, bias_var="bias" + suffix) if use_bias else x


def dense_tokens(x, fmaps, name, act="linear", lrmul=1.0, use_bias=True):
    """[B, T, Din] -> [B, T, fmaps] with one weight shared over tokens (T static); name None
    gives plain weight / bias variables."""
    T, din = x.shape.as_list()[1:]
    y = dense_layer(tf.reshape(x, [-1, din]), fmaps, act=act, lrmul=lrmul, name=name, use_bias=use_bias)
    return tf.reshape(y, [-1, T, fmaps])


def conv2d(x, fmaps, kernel, up=False, down=False, resample_kernel=None, gain=1.0, lrmul=1.0, weight_var="weight"):
    """Plain equalized-lr conv, NCHW, optional 2x up / down through the FIR ops."""
    w = get_weight([kernel, kernel, x.shape.as_list()[1], fmaps], gain=gain, lrmul=lrmul, weight_var=weight_var)
    if up:
        return upsample_conv_2d(x, w, k=resample_kernel)
    if down:
        return conv_downsample_2d(x, w, k=resample_kernel)
    return tf.nn.conv2d(x, w, strides=[1, 1, 1, 1], padding="SAME", data_format="NCHW")


def modulated_conv2d(x, y, fmaps, kernel, up=False, demodulate=True, resample_kernel=None, fused=True,
                     modulate=True, weight_var="weight"):
    """StyleGAN2 modulated conv. x [B, I, h, w], y [B, D] style -> [B, O, h', w'].

    modulate=False (baselines without styles) is a plain conv and creates no mod_* variables."""
    if not modulate:
        return conv2d(x, fmaps, kernel, up=up, resample_kernel=resample_kernel, weight_var=weight_var)
    cin = x.shape.as_list()[1]
    w = get_weight([kernel, kernel, cin, fmaps], weight_var=weight_var)          # [kh, kw, I, O]
    ww = w[np.newaxis]                                                           # [1, kh, kw, I, O]
    s = bias_act(dense(y, cin, weight_var="mod_weight"), bias_var="mod_bias") + 1.0   # [B, I]
    ww = ww * s[:, np.newaxis, np.newaxis, :, np.newaxis]                        # [B, kh, kw, I, O]
    if demodulate:
        d = tf.rsqrt(tf.reduce_sum(tf.square(ww), axis=[1, 2, 3]) + 1e-8)         # [B, O]
        ww = ww * d[:, np.newaxis, np.newaxis, np.newaxis, :]                    # [B, kh, kw, I, O]
    # upsample_conv_2d needs static channel counts, which the batch-folded layout lacks when
    # the batch is dynamic, so up-sampling convs scale activations instead (same result).
    fused = fused and not (up and x.shape.as_list()[0] is None)
    if fused:
        h, wd = x.shape.as_list()[2:]
        x = tf.reshape(x, [1, -1, h, wd])                                        # [1, B*I, h, w]
        wf = tf.reshape(tf.transpose(ww, [1, 2, 3, 0, 4]), [kernel, kernel, cin, -1])   # [kh, kw, I, B*O]
    else:
        x = x * s[:, :, np.newaxis, np.newaxis]                                  # [B, I, h, w]
        wf = w
    if up:
        x = upsample_conv_2d(x, wf, k=resample_kernel)
    else:
        x = tf.nn.conv2d(x, wf, strides=[1, 1, 1, 1], padding="SAME", data_format="NCHW")
    if fused:
        x = tf.reshape(x, [-1, fmaps] + x.shape.as_list()[2:])                   # [B, O, h', w']
    elif demodulate:
        x = x * d[:, :, np.newaxis, np.newaxis]
    return x


def minibatch_stddev(x, group_size=4, num_new_features=1):
    """Append the per-group stddev as num_new_features channels. x [B, C, h, w] -> [B, C+n, h, w]."""
    group = tf.minimum(group_size, tf.shape(x)[0])        # B must be divisible by the group
    _, c, h, w = x.shape.as_list()
    n = num_new_features
    y = tf.reshape(x, [group, -1, n, c // n, h, w])                              # [G, M, n, c, h, w]
    y -= tf.reduce_mean(y, axis=0, keepdims=True)
    y = tf.sqrt(tf.reduce_mean(tf.square(y), axis=0) + 1e-8)                    # [M, n, c, h, w]
    y = tf.reduce_mean(y, axis=[2, 3, 4])                                        # [M, n]
    y = tf.reshape(y, [-1, n, 1, 1])                                             # [M, n, 1, 1]
    y = tf.tile(y, [group, 1, h, w])                                             # [B, n, h, w]
    return tf.concat([x, y], axis=1)


# ----------------------------------------------------------------------------
# Positional encodings (REFERENCE §1.8), for an h x w grid, flattened row-major -> [h*w, P].


def grid_positions(h, w, dim, pos_type="sinus", pos_init="uniform", directions=2):
    """Grid encodings [h*w, dim]; the trainable kinds create variables in the current scope."""
    init = tf.random_uniform_initializer() if pos_init == "uniform" else tf.initializers.random_normal()
    ys, xs = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")     # [h, w] each
    coords = np.stack([xs.ravel(), ys.ravel()], axis=1)                                  # [hw, 2]
    thetas = np.pi * np.arange(directions) / directions
    proj = coords @ np.stack([np.cos(thetas), np.sin(thetas)], axis=0)                   # [hw, n]
    if pos_type == "sinus":
        per_dir = dim // directions                       # sin and cos halves
        i = np.arange(per_dir // 2)
        freq = proj[:, :, None] / (10000.0 ** (2 * directions * i / dim))                # [hw, n, P/2n]
        enc = np.concatenate([np.sin(freq), np.cos(freq)], axis=2)                       # [hw, n, P/n]
        return tf.constant(enc.reshape(h * w, dim).astype(np.float32))
    if pos_type == "linear":
        emb = tf.get_variable("emb", [directions, dim // directions], initializer=init)     # [n, P/n]
        enc = tf.constant(proj[:, :, None].astype(np.float32)) * emb[None]               # [hw, n, P/n]
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


def attention_dropout_fn(probs, rate):
    """Inverted dropout twice at rate/2: cells, then whole to-elements for all from-elements."""
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


def integrate(x, ctx, integration, norm):
    """Update from-features x [B, F, Df] with the attended context ctx [B, F, dim]."""
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
    """One transformer layer under scope AttLayer_<name>.

    from_tensor [B, F, Df], to_tensor [B, T, Dt], from_pos [F, P1], to_pos [T, P2], mask [B, 1, T].
    kmeans: scores are E . centroids^T with E = [content, position] parts of the queries; the
    latent keys and to_pos are then unused and *not created* (Fix, §10.2.8). assignments
    [B, N, T, F] (previous layer's, iterative kmeans) seed the centroids; without them the
    centroids are the trainable toasgn_init [1, N, T, E].
    Returns (updated from [B, F, Df], probabilities [B, N, F, T], assignments [B, N, T, F])."""
    F, _ = from_tensor.shape.as_list()[1:]
    T = to_tensor.shape.as_list()[1]
    if dim % num_heads != 0:
        raise ValueError("num_heads: attention width %d is not divisible by %d heads (AttLayer_%s)" % (dim, num_heads, name))
    N, H = num_heads, dim // num_heads

    def split_heads(t, length):                                                  # [B, len, dim] -> [B, N, len, H]
        return tf.transpose(tf.reshape(t, [-1, length, N, H]), [0, 2, 1, 3])

    with tf.variable_scope("AttLayer_" + name):
        q = dense_tokens(from_tensor, dim, "query")                             # [B, F, dim]
        q0 = q
        if from_pos is not None:
            q += dense_tokens(from_pos[np.newaxis], dim, "from_pos")            # + [1, F, dim]
        v = split_heads(dense_tokens(to_tensor, dim, "value"), T)               # [B, N, T, H]
        if not kmeans:
            # No key biases: a bias b shared by every key adds q.b to a whole row of scores,
            # which the softmax over keys cancels (its gradient is zero).
            k = dense_tokens(to_tensor, dim, "key", use_bias=False)             # [B, T, dim]
            if to_pos is not None:
                k += dense_tokens(to_pos[np.newaxis], dim, "to_pos", use_bias=False)
            scores = tf.matmul(split_heads(q, F), split_heads(k, T), transpose_b=True)   # [B, N, F, T]
            probs = attention_dropout_fn(masked_softmax(scores / np.sqrt(H), mask), attention_dropout)
        else:
            # Fix §10.2.8: content and position halves concatenated per head, not across heads.
            e = split_heads(q0, F)                                               # [B, N, F, H]
            if from_pos is not None:
                e = tf.concat([e, split_heads(q - q0, F)], axis=-1)              # [B, N, F, E=2H]
            ew = e.shape.as_list()[-1]
            if assignments is None:
                init = tf.get_variable("toasgn_init", [1, N, T, ew], initializer=tf.initializers.random_normal())
                centroids = tf.tile(init, [tf.shape(e)[0], 1, 1, 1])             # [B, N, T, E]
            else:
                centroids = tf.matmul(assignments, e)                            # [B,N,T,F].[B,N,F,E] -> [B,N,T,E]
            for i in range(kmeans_iters):
                with tf.variable_scope("iter_%d" % i):
                    if i > 0:
                        a = probs / (tf.reduce_sum(probs, axis=2, keepdims=True) + 1e-8)   # [B, N, F, T]
                        centroids = tf.matmul(a, e, transpose_a=True)             # [B, N, T, E]
                    st = tf.get_variable("st_weights", [N, 1, ew], initializer=tf.initializers.ones())
                    scores = tf.matmul(e * st, centroids, transpose_b=True)      # [B, N, F, T]
                    probs = attention_dropout_fn(masked_softmax(scores / np.sqrt(H), mask), attention_dropout)
        if to_gate:
            g = dense_tokens(to_tensor, N, "e_cont")                            # [B, T, N]
            if to_pos is not None:
                g += dense_tokens(to_pos[np.newaxis], N, "e_pos")
            probs *= tf.sigmoid(tf.transpose(g, [0, 2, 1]))[:, :, np.newaxis, :]   # [B, N, 1, T]
        if from_gate:
            g = dense_tokens(from_tensor, N, "n_cont")                          # [B, F, N]
            if from_pos is not None:
                g += dense_tokens(from_pos[np.newaxis], N, "n_pos")
            probs *= tf.sigmoid(tf.transpose(g, [0, 2, 1]) + 1.0)[:, :, :, np.newaxis]   # [B, N, F, 1]
        ctx = tf.matmul(probs, v)                                                # [B, N, F, H]
        ctx = tf.reshape(tf.transpose(ctx, [0, 2, 1, 3]), [-1, F, dim])          # [B, F, dim]
        out = integrate(from_tensor, ctx, integration, norm)                     # [B, F, Df]
        new_assign = tf.transpose(probs / (tf.reduce_sum(probs, axis=2, keepdims=True) + 1e-8), [0, 1, 3, 2])
    return out, probs, new_assign                                                # new_assign [B, N, T, F]


def latent_update(latents, to_tensor, name, from_pos=None, to_pos=None, mask=None, num_heads=1, attention_dropout=0.0):
    """REFERENCE §1.7 nnlayer: attention (add, no norm) -> Dense<name>_0 (lrelu) -> Dense<name>_1,
    residual leaky ReLU. latents [B, k, D] -> [B, k, D]."""
    d = latents.shape.as_list()[2]
    h, _, _ = attention_layer(latents, to_tensor, d, name, from_pos=from_pos, to_pos=to_pos, mask=mask,
                              num_heads=num_heads, attention_dropout=attention_dropout)
    with tf.variable_scope("Dense%s_0" % name):
        h = dense_tokens(h, d, None, act="lrelu")
    with tf.variable_scope("Dense%s_1" % name):
        h = dense_tokens(h, d, None, act="linear")
    return tf.nn.leaky_relu(h + latents, alpha=0.2)


def image_self_attention(x, pos, num_heads, attention_dropout):
    """SAGAN image self-attention (AttLayer_n2n, add, grid positions). x [B, C, h, w]."""
    _, c, h, w = x.shape.as_list()
    feats = tf.reshape(tf.transpose(x, [0, 2, 3, 1]), [-1, h * w, c])            # [B, F, C]
    feats, _, _ = attention_layer(feats, feats, c, "n2n", from_pos=pos, to_pos=pos, num_heads=num_heads,
                                  attention_dropout=attention_dropout)
    return tf.transpose(tf.reshape(feats, [-1, h, w, c]), [0, 3, 1, 2])           # [B, C, h, w]


# ----------------------------------------------------------------------------
# Mapping network (REFERENCE §1.4): z [B, K, z_dim] -> ws [B, K, L, w_dim].


def _mlp(x, num_layers, width, lrmul, act, resnet, attend=None):
    """Plain: Dense0..Dense{n-1}. Resnet: n/2 blocks Dense{i}_0, Dense{i}_1 with residual, then
    Dense{n/2-1}. attend(x, i) optionally runs before dense layer / block i. x [M, Din]."""
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
              mapping_resnet=False,       # Residual MLP blocks (GANformer preset).
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
    x = latents_in                                                                # [B, K, z]
    if c_dim:
        # Fix §10.2.7: labels join every latent on the feature axis (StyleGAN2), not as an extra latent.
        with tf.variable_scope("LabelConcat"):
            wl = tf.get_variable("weight", [c_dim, z_dim], initializer=tf.initializers.random_normal())
            y = tf.matmul(labels_in, wl)                                          # [B, z]
        x = tf.concat([x, tf.tile(y[:, np.newaxis], [1, K, 1])], axis=2)          # [B, K, 2z]
    if normalize_latents:
        x *= tf.rsqrt(tf.reduce_mean(tf.square(x), axis=2, keepdims=True) + 1e-8)
    if mapping_dim or (mapping_resnet and x.shape.as_list()[2] != width):
        with tf.variable_scope("map_start"):
            x = dense_tokens(x, width, None, act="linear")                          # [B, K, width]
    din = x.shape.as_list()[2]

    def attend_latents(rows, i):                                              # rows [B*k, width]
        t = tf.reshape(rows, [-1, k, rows.shape.as_list()[1]])                    # [B, k, width]
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
            joint = tf.reshape(x[:, :n_rows], [-1, n_rows * din])                # [B, k*din]
            with tf.variable_scope("inmap"):
                joint = dense_layer(joint, mapping_shared_dim, act="linear")
            joint = _mlp(joint, mapping_num_layers, mapping_shared_dim, mapping_lrmul, act, mapping_resnet)
            with tf.variable_scope("outmap"):
                joint = dense_layer(joint, n_rows * width, act="linear")
            outs.append(tf.reshape(joint, [-1, n_rows, width]))                  # [B, k, width]
        else:
            rows = tf.reshape(x[:, :n_rows], [-1, din])                          # [B*k, din], MLP shared over latents
            rows = _mlp(rows, mapping_num_layers, width, mapping_lrmul, act, mapping_resnet, attend)
            outs.append(tf.reshape(rows, [-1, n_rows, width]))                   # [B, k, width]
    if global_latent:
        with tf.variable_scope("global"):
            g = _mlp(x[:, -1], mapping_num_layers, width, mapping_lrmul, act, mapping_resnet)   # [B, width]
        outs.append(g[:, np.newaxis])
    x = tf.concat(outs, axis=1) if len(outs) > 1 else outs[0]                     # [B, K, width]
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
    (images_out [B, C, h, w], maps_out [B, k, L_att, N, h, w], latents_out [B, k, D]).

    k = K - 1 region latents with the transformer (the last latent is global), else 0 and
    maps_out is an empty [B, 0, 0, N, h, w] tensor. latents_out: region latents after the last
    layer (unchanged ws[:, :-1, -1] in simplex; updated in duplex with img2ltnt / ltnt2ltnt)."""
    R = int(np.log2(resolution))
    if 2 ** R != resolution or R < 2:
        raise ValueError("resolution: %r is not a power of two >= 4" % resolution)
    h0 = stem_height(ratio)
    if architecture not in ARCHITECTURES:
        raise ValueError("architecture: unknown %r (orig, skip, resnet)" % architecture)
    if integration not in INTEGRATIONS or norm not in NORMS or noise_mode not in NOISE_MODES:
        raise ValueError("integration / norm / noise_mode: %r / %r / %r not in %s / %s / %s"
                         % (integration, norm, noise_mode, INTEGRATIONS, NORMS, NOISE_MODES))
    if merge_type not in MERGE_TYPES:
        raise ValueError("merge_type: unknown %r (%s)" % (merge_type, ", ".join(MERGE_TYPES)))
    K, D, L = num_latents, w_dim, 2 * R - 1
    k = K - 1 if transformer else 0
    num_convs = 2 * R - 3
    dlatents_in.set_shape([None, K, L, D])
    latent_pos.set_shape([k, D])
    component_mask.set_shape([None, 1, k])
    P = pos_dim or D
    act = "lrelu"
    nf = lambda r: channels(r, channel_base, channel_max)
    size = lambda r: (h0 * 2 ** (r - 2), 2 ** r)
    att_res = [r for r in range(2, R + 1) if transformer and start_res <= r < end_res]
    for r in att_res:
        if nf(r) % num_heads:
            raise ValueError("num_heads: %d does not divide %d channels at %dx%d" % (num_heads, nf(r), 2 ** r, 2 ** r))
    if att_res or img2img:
        check_pos_dim(P, pos_type, pos_directions_num)
    if img2img and not 2 <= img2img <= R:
        raise ValueError("img2img: log2 width %d is outside 2..%d" % (img2img, R))
    batch = tf.shape(dlatents_in)[0]

    # Global styles [B', L, D]: the global latent (transformer), each latent (k-GAN, B' = B*K), or the only one.
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
    # latent_pos feeds the key positions (not with kmeans) and the latent gate / latent updates.
    to_pos = latent_pos if use_pos and (not kmeans or ltnt_gate) else None
    lat_pos = latent_pos if use_pos else None

    state = dnnlib.EasyDict(latents=None, assign=None, maps=[], styles=styles, merged=not kgan)
    # The latent updates after the last attention layer would have no consumer: skip them there.
    last_att_conv = max([j for j in range(num_convs) if (j + 5) // 2 in att_res], default=-1)

    def attend(x, j, r):
        """l2n attention and latent updates at conv j. x [B, C, h, w]."""
        c, (h, w) = x.shape.as_list()[1], size(r)
        feats = tf.reshape(tf.transpose(x, [0, 2, 3, 1]), [-1, h * w, c])        # [B, F, C]
        lat = state.latents if state.latents is not None else region[:, :, j + 1]   # [B, k, D]
        assign = None
        if kmeans and iterative and state.assign is not None:
            a, (ph, pw) = state.assign                                           # [B, N, T, ph*pw]
            a = tf.reshape(a, [-1, num_heads, k, ph, pw])
            a = tf.reshape(nearest_upsample(a, h // ph, w // pw), [-1, num_heads, k, h * w])   # [B, N, T, F]
            assign = a
        feats, probs, new_assign = attention_layer(
            feats, lat, c, "l2n", from_pos=grid_pos[r], to_pos=to_pos, mask=component_mask, num_heads=num_heads,
            attention_dropout=attention_dropout, integration=integration, norm=norm, kmeans=kmeans,
            kmeans_iters=kmeans_iters, assignments=assign, from_gate=img_gate, to_gate=ltnt_gate)
        state.assign = (new_assign, (h, w))
        # Duplex latent updates (one head: the latent width need not divide by num_heads).
        if img2ltnt and j != last_att_conv:
            lat = latent_update(lat, feats, "n2l", from_pos=lat_pos, to_pos=grid_pos[r], num_heads=1,
                                attention_dropout=attention_dropout)
        if ltnt2ltnt and j != last_att_conv:
            lat = latent_update(lat, lat, "l2l", from_pos=lat_pos, to_pos=lat_pos, mask=component_mask,
                                num_heads=1, attention_dropout=attention_dropout)
        if (img2ltnt or ltnt2ltnt) and j != last_att_conv:
            state.latents = lat
        # Maps: [B, N, F, k] -> [B, N, k, h, w] -> nearest-upsampled to the output grid.
        m = tf.reshape(tf.transpose(probs, [0, 1, 3, 2]), [-1, num_heads, k, h, w])
        fh = size(R)[0] // h
        state.maps.append(nearest_upsample(m, fh, fh))
        return tf.transpose(tf.reshape(feats, [-1, h, w, c]), [0, 3, 1, 2])     # [B, C, h, w]

    def layer(x, j, r, fmaps, up=False, first_at_res=False):
        """Conv j at log2 width r: modconv -> [attention] -> [SAGAN] -> noise -> bias + lrelu."""
        x = modulated_conv2d(x, state.styles[:, j + 1], fmaps, 3, up=up, resample_kernel=resample_kernel,
                             fused=fused_modconv, modulate=style)
        if r in att_res:
            x = attend(x, j, r)
        if img2img == r and first_at_res:
            x = image_self_attention(x, grid_pos[r], num_heads, attention_dropout)
        if local_noise and noise_mode != "none":
            if noise_mode == "random":
                noise = tf.random_normal([tf.shape(x)[0], 1] + x.shape.as_list()[2:])
            else:
                noise = noise_vars[j]
            strength = tf.get_variable("noise_strength", shape=[], initializer=tf.initializers.zeros())
            x += noise * strength
        return bias_act(x, act=act)

    def merge(x):
        """k-GAN: [B*K, C, h, w] -> [B, C, h, w], weighting the K parallel images; styles and the
        RGB running sum follow with the weights' spatial means."""
        with tf.variable_scope("Merge"):
            _, c, h, w = x.shape.as_list()
            if merge_type == "sum":
                wts = tf.ones([batch, K, 1, h, w])
            else:
                s = conv2d(x, 1, 1)                                               # [B*K, 1, h, w]
                if merge_type == "leaves":
                    # softmax and max are unchanged by a shift shared by all K scores, so a bias
                    # there would be a variable with zero gradient; the sigmoid alphas are not.
                    s = bias_act(s)
                s = tf.reshape(s, [-1, K, 1, h, w])                               # [B, K, 1, h, w]
                if merge_same:
                    s = tf.reduce_mean(s, axis=[3, 4], keepdims=True)
                if merge_type == "softmax":
                    wts = tf.nn.softmax(s, axis=1)
                elif merge_type == "max":                 # one-hot forward, softmax gradient (straight-through)
                    soft = tf.nn.softmax(s, axis=1)
                    wts = tf.one_hot(tf.argmax(s, axis=1), K, axis=1) + soft - tf.stop_gradient(soft)
                else:                                     # leaves: back-to-front alpha compositing, latent 0 opaque
                    alphas = tf.concat([tf.ones_like(s[:, :1]), tf.sigmoid(s[:, 1:])], axis=1)
                    rest = tf.math.cumprod(1.0 - alphas, axis=1, exclusive=True, reverse=True)
                    wts = alphas * rest
                wts = tf.broadcast_to(wts, [batch, K, 1, h, w])
            mean_w = tf.reduce_mean(wts, axis=[2, 3, 4])                           # [B, K]
            mean_w /= tf.reduce_sum(mean_w, axis=1, keepdims=True) + 1e-8
            st = tf.reshape(state.styles, [-1, K, L, D])
            state.styles = tf.reduce_sum(st * mean_w[:, :, None, None], axis=1)   # [B, L, D]
            if state.rgb is not None:
                y = state.rgb
                y = tf.reshape(y, [-1, K] + y.shape.as_list()[1:])
                if y.shape.as_list()[3:] == [h, w]:
                    state.rgb = tf.reduce_sum(y * wts, axis=1)
                else:
                    state.rgb = tf.reduce_sum(y * mean_w[:, :, None, None, None], axis=1)
            state.merged = True
            return tf.reduce_sum(tf.reshape(x, [-1, K, c, h, w]) * wts, axis=1)  # [B, C, h, w]

    def torgb(x, r):
        """ToRGB at log2 width r; the final one adds the extra 3x3 modconv with the transformer."""
        with tf.variable_scope("ToRGB"):
            if r == R and transformer and r <= end_res:
                with tf.variable_scope("extraLayer"):
                    x = modulated_conv2d(x, state.styles[:, 2 * r - 3], nf(r), 3, resample_kernel=resample_kernel,
                                         fused=fused_modconv, modulate=style)
            t = modulated_conv2d(x, state.styles[:, 2 * r - 2], num_channels, 1, demodulate=False,
                                 fused=fused_modconv, modulate=style)
            return bias_act(t)


    state.rgb = None
    # 4x4 (4*ratio x 4) stem.
    with tf.variable_scope("4x4"):
        c0 = nf(2)
        if latent_stem:
            with tf.variable_scope("Dense"):
                x = dense(state.styles[:, 0], c0 * h0 * 4, gain=np.sqrt(2) / 4)   # [B', C*h0*4]
                x = bias_act(tf.reshape(x, [-1, c0, h0, 4]), act=act)
        else:
            with tf.variable_scope("Const"):
                nconst = 1 if state.merged else K        # Fix §10.2.10: one constant per k-GAN image
                const = tf.get_variable("const", shape=[nconst, c0, h0, 4], initializer=tf.initializers.random_normal())
                x = tf.reshape(tf.tile(const[np.newaxis], [batch, 1, 1, 1, 1]), [-1, c0, h0, 4])   # [B', C, h0, 4]
        with tf.variable_scope("Conv"):
            x = layer(x, 0, 2, c0, first_at_res=True)
        if architecture == "skip" or R == 2:
            state.rgb = torgb(x, 2)
        if not state.merged and (merge_layer == 0 or R == 2):
            x = merge(x)
    for r in range(3, R + 1):
        with tf.variable_scope("%dx%d" % (2 ** r, 2 ** r)):
            t = x
            with tf.variable_scope("Conv0_up"):
                x = layer(x, 2 * r - 5, r, nf(r), up=True, first_at_res=True)
            with tf.variable_scope("Conv1"):
                x = layer(x, 2 * r - 4, r, nf(r))
            if architecture == "resnet":
                with tf.variable_scope("Skip"):
                    t = conv2d(t, nf(r), 1, up=True, resample_kernel=resample_kernel)
                x = (x + t) * (1 / np.sqrt(2))
            if architecture == "skip":
                with tf.variable_scope("Upsample"):
                    state.rgb = upsample_2d(state.rgb, k=resample_kernel) + torgb(x, r)
            elif r == R:
                state.rgb = torgb(x, R)
            if not state.merged and (merge_layer in (2 * r - 5, 2 * r - 4) or r == R):
                x = merge(x)
    images = state.rgb
    if tanh:
        images = tf.tanh(images)
    H, W = size(R)
    if state.maps:
        maps = tf.stack(state.maps, axis=1)                                      # [B, L_att, N, k, H, W]
        maps = tf.transpose(maps, [0, 3, 1, 2, 4, 5])                            # [B, k, L_att, N, H, W]
    else:
        maps = tf.zeros([batch, k, 0, num_heads, H, W])
    latents_out = state.latents if state.latents is not None else region[:, :, -1]   # [B, k, D]
    assert_shape(images, [None, num_channels, H, W], "images_out")
    assert images.dtype == tf.float32
    return (tf.identity(images, name="images_out"), tf.identity(maps, name="maps_out"),
            tf.identity(latents_out, name="latents_out"))


# ----------------------------------------------------------------------------
# Generator (REFERENCE §1.3): mapping + synthesis, w_avg, truncation, style / component mixing.


def _params(func):
    return [p for p in inspect.signature(func).parameters.values()
            if p.kind == p.POSITIONAL_OR_KEYWORD and p.default is not p.empty]


def _default(func, name):
    return inspect.signature(func).parameters[name].default


# Sub-network options the Generator derives itself (not settable by the user).
G_DERIVED = ("num_latents", "z_dim", "w_dim", "c_dim", "num_broadcast", "global_latent", "transformer",
             "is_template_graph", "components")


def generator_option_names():
    """Every option Generator accepts: its own and the routed mapping / synthesis ones."""
    own = [p.name for p in _params(Generator) if p.name not in ("is_template_graph", "components")]
    routed = [p.name for f in (G_mapping, G_synthesis) for p in _params(f) if p.name not in G_DERIVED]
    return sorted(set(own + routed))


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
              transformer=False,          # GANformer: k region latents + 1 global latent, bipartite attention.
              randomize_noise=None,       # StyleGAN2 spelling: True = noise_mode random, False = const.
              is_template_graph=False, components=None,
              **kwargs):                  # Routed to G_mapping / G_synthesis by their signatures.
    """latents_in z [B, K, z_dim] ([B, z_dim] when K = 1), labels_in [B, c_dim] ->
    (images_out [B, C, h, w], maps_out [B, k, L_att, N, h, w][, ws_out [B, K, L, D]]).
    K = k + 1 with the transformer (the last latent is global), else k (1, or k-GAN images)."""
    map_names = set(p.name for p in _params(G_mapping)) - set(G_DERIVED)
    syn_names = set(p.name for p in _params(G_synthesis)) - set(G_DERIVED)
    unknown = sorted(set(kwargs) - map_names - syn_names)
    if unknown:
        raise ValueError("Generator: unknown option(s) %s" % ", ".join(unknown))
    kgan = kwargs.get("kgan", False)
    if components_num < 1 or latent_size % components_num:
        raise ValueError("latent_size: %d is not divisible by components_num %d" % (latent_size, components_num))
    if components_num > 1 and not (transformer or kgan):
        raise ValueError("components_num: %d latents need transformer or kgan" % components_num)
    if transformer and kgan:
        raise ValueError("kgan: k-GAN and transformer cannot be combined")
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
        z = latents_in[:, np.newaxis] if latents_in.shape.ndims == 2 else latents_in         # [B, K, z]
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
    R = int(np.log2(resolution))
    if 2 ** R != resolution or R < 2:
        raise ValueError("resolution: %r is not a power of two >= 4" % resolution)
    if architecture not in ARCHITECTURES:
        raise ValueError("architecture: unknown %r (orig, skip, resnet)" % architecture)
    h0 = stem_height(ratio)
    size = lambda r: (h0 * 2 ** (r - 2), 2 ** r)
    nf = lambda stage: max(min(channel_base // 2 ** stage, channel_max), 1)      # = C(stage + 1)
    images_in.set_shape([None, num_channels] + list(size(R)))
    labels_in.set_shape([None, c_dim])
    act = "lrelu"
    drop = attention_dropout if is_training else 0.0
    att_res = [r for r in range(3, R + 1) if transformer and start_res <= r < end_res]
    if transformer:
        if latent_size % components_num:
            raise ValueError("latent_size: %d is not divisible by components_num %d" % (latent_size, components_num))
        a_dim = latent_size // components_num
        if a_dim % num_heads:
            raise ValueError("num_heads: %d does not divide the aggregator width %d" % (num_heads, a_dim))
        P = pos_dim or a_dim
        check_pos_dim(P, pos_type, pos_directions_num)
        agg = tf.get_variable("aggregators", [components_num, a_dim], initializer=tf.random_uniform_initializer())
        agg = tf.tile(agg[np.newaxis], [tf.shape(images_in)[0], 1, 1])            # [B, k, a]
        lat_pos = None
        if use_pos and att_res:
            with tf.variable_scope("ltnt_emb"):
                lat_pos = tf.get_variable("emb", [components_num, a_dim], initializer=tf.random_uniform_initializer())
    if img2img:
        if not 3 <= img2img <= R:
            raise ValueError("img2img: log2 width %d is outside 3..%d" % (img2img, R))
        P = pos_dim or (latent_size // components_num)
        check_pos_dim(P, pos_type, pos_directions_num)
    grid_pos = {}
    for r in sorted(set(att_res + ([img2img] if img2img else []))):
        with tf.variable_scope("pos_emb%d" % r):
            grid_pos[r] = grid_positions(*size(r), P, pos_type, pos_init, pos_directions_num)

    def fromrgb(x, y, r):
        with tf.variable_scope("FromRGB"):
            t = bias_act(conv2d(y, nf(r - 1), 1), act=act)
            return t if x is None else x + t

    x, y = None, images_in
    for r in range(R, 2, -1):
        with tf.variable_scope("%dx%d" % (2 ** r, 2 ** r)):
            if architecture == "skip" or r == R:
                x = fromrgb(x, y, r)
            if r in att_res:
                c, (h, w) = nf(r - 1), size(r)
                feats = tf.reshape(tf.transpose(x, [0, 2, 3, 1]), [-1, h * w, c])   # [B, F, C]
                agg, _, _ = attention_layer(agg, feats, a_dim, "n2l", from_pos=lat_pos, to_pos=grid_pos[r],
                                            num_heads=num_heads, attention_dropout=drop)
                if ltnt2ltnt:
                    agg, _, _ = attention_layer(agg, agg, a_dim, "l2l", from_pos=lat_pos, to_pos=lat_pos,
                                                num_heads=num_heads, attention_dropout=drop)
            if img2img == r:
                x = image_self_attention(x, grid_pos[r], num_heads, drop)
            t = x
            with tf.variable_scope("Conv0"):
                x = bias_act(conv2d(x, nf(r - 1), 3), act=act)
            with tf.variable_scope("Conv1_down"):
                x = bias_act(conv2d(x, nf(r - 2), 3, down=True, resample_kernel=resample_kernel), act=act)
            if architecture == "resnet":
                with tf.variable_scope("Skip"):
                    t = conv2d(t, nf(r - 2), 1, down=True, resample_kernel=resample_kernel)
                x = (x + t) * (1 / np.sqrt(2))
        if architecture == "skip":
            y = downsample_2d(y, k=resample_kernel)
    with tf.variable_scope("4x4"):
        if architecture == "skip" or R == 2:
            x = fromrgb(x, y, 2)
        if mbstd_group_size > 1:
            with tf.variable_scope("MinibatchStddev"):
                x = minibatch_stddev(x, mbstd_group_size, mbstd_num_channels)
        with tf.variable_scope("Conv"):
            x = bias_act(conv2d(x, nf(1), 3), act=act)
        with tf.variable_scope("Dense0"):
            x = dense_layer(x, nf(0), act=act)                                    # [B, nf0]
    if transformer:
        with tf.variable_scope("ComponentScores"):
            a = tf.transpose(agg, [0, 2, 1])[:, :, :, np.newaxis]                 # [B, a, k, 1]
            if mbstd_group_size > 1:
                a = minibatch_stddev(a, mbstd_group_size, 1)                      # [B, a+1, k, 1]
            a = tf.reshape(tf.transpose(a[:, :, :, 0], [0, 2, 1]), [-1, a.shape.as_list()[1]])   # [B*k, a+1]
            with tf.variable_scope("Dense"):
                a = dense_layer(a, a_dim, act=act)
            with tf.variable_scope("Output"):
                a = dense_layer(a, 1)                                             # [B*k, 1]
            x = tf.concat([x, tf.reshape(a, [-1, components_num])], axis=1)        # [B, nf0 + k]
    with tf.variable_scope("Output"):
        x = dense_layer(x, max(c_dim, 1))
        if c_dim:
            x = tf.reduce_sum(x * labels_in, axis=1, keepdims=True)
    assert x.dtype == tf.float32
    return tf.identity(x, name="scores_out")
