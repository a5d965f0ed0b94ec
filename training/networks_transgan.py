"""TransGAN (Jiang, Chang & Wang, "Two Pure Transformers Can Make One Strong GAN, and That Can
Scale Up", NeurIPS 2021) as tflib.Network build functions: a convolution-free generator that
grows a token grid stage by stage (pixel shuffle or bicubic upsampling between stages), grid
self-attention (attention inside non-overlapping windows above a width threshold) with a
learnable relative position bias, and a multi-scale discriminator.

Self-contained on purpose: pickles carry this module's source, so it imports only numpy and tf
(plus the standard library). At build time Generator and Discriminator pass their options to
training.validation.validate (family "networks_transgan"), as the GANsformer's build functions do.

Axis legend (every shape comment below):
  B   batch              Z   latent width (z, plus labels when conditional)
  h/w token-grid height / width      T   tokens (h*w, or a window's W*W; +1 with the class token)
  C   token width        N   heads   H   head width (C/N)     M   MLP width (C * mlp_ratio)
  W   window side        G   windows per image ((h/W)*(w/W))  X   leading axes folded into one
  Tz  latent tokens (cross-attention keys)                    P   patch side   Ci  image channels
"""

import numpy as np
import tensorflow.compat.v1 as tf

TOKEN_NORMS = ("layer", "pixel", "none")

# ----------------------------------------------------------------------------
# Shape helpers and primitives (xavier-uniform init, as the paper's code).


def assert_shape(x, shape, name):
    """Check x against shape (None = any) and name the tensor and scope on mismatch."""
    actual = x.shape.as_list()
    ok = len(actual) == len(shape) and all(s is None or a is None or a == s for a, s in zip(actual, shape))
    if not ok:
        raise ValueError("%s: expected shape %s, got %s (scope %r)" % (name, shape, actual, tf.get_variable_scope().name))


def as_list(value):
    """An int or a sequence of ints -> list (the CLI gives '5' as 5 and '5,4' as [5, 4])."""
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)]


def dense(x, fmaps, name, use_bias=True):
    """[..., Ci] -> [..., fmaps], xavier-uniform weight, zero bias."""
    with tf.variable_scope(name):
        c_in = x.shape.as_list()[-1]
        w = tf.get_variable("weight", [c_in, fmaps], initializer=tf.glorot_uniform_initializer())
        y = tf.tensordot(x, w, axes=[[x.shape.ndims - 1], [0]]) if x.shape.ndims > 2 else tf.matmul(x, w)
        if use_bias:
            y += tf.get_variable("bias", [fmaps], initializer=tf.zeros_initializer())
        return y


def gelu(x):
    return 0.5 * x * (1.0 + tf.math.erf(x / np.sqrt(2.0)))


def normalize(x, kind, name):
    """Pre-norm of a block over the token width: layer norm (learned scale and shift), pixel
    norm (the paper's parameter-free token-wise scaling, x / sqrt(mean(x^2) + eps)) or none."""
    if kind == "none":
        return x
    if kind == "pixel":
        return x * tf.rsqrt(tf.reduce_mean(tf.square(x), axis=-1, keepdims=True) + 1e-8)
    with tf.variable_scope(name):
        c = x.shape.as_list()[-1]
        mean, var = tf.nn.moments(x, axes=[-1], keep_dims=True)
        gamma = tf.get_variable("gamma", [c], initializer=tf.ones_initializer())
        beta = tf.get_variable("beta", [c], initializer=tf.zeros_initializer())
        return (x - mean) * tf.rsqrt(var + 1e-5) * gamma + beta


def position_embedding(num_tokens, width, name):
    """A learnable absolute position embedding [1, T, C] (truncated normal, std 0.02)."""
    return tf.get_variable(name, [1, num_tokens, width], initializer=tf.truncated_normal_initializer(stddev=0.02))


# ----------------------------------------------------------------------------
# Token-grid resampling: pixel shuffle, bicubic, anti-aliasing, pooling. Tokens are [B, h*w, C]
# in row-major order (row y, column x -> token y*w + x).


def pixel_shuffle(x, h, w):
    """Depth-to-space 2x: [B, h*w, C] -> [B, 2h*2w, C/4]; channel (i*2 + j)*C/4 + c of cell
    (y, x) becomes channel c of cell (2y + i, 2x + j)."""
    c = x.shape.as_list()[-1]
    x = tf.reshape(x, [-1, h, w, 2, 2, c // 4])                                  # [B, h, w, 2, 2, C/4]
    x = tf.transpose(x, [0, 1, 3, 2, 4, 5])                                      # [B, h, 2, w, 2, C/4]
    return tf.reshape(x, [-1, 4 * h * w, c // 4])                               # [B, 2h*2w, C/4]


def bicubic_upsample(x, h, w, factor=2):
    """[B, h*w, C] -> [B, (factor h)*(factor w), C] by bicubic interpolation (half-pixel
    centres, as tf.image.resize)."""
    c = x.shape.as_list()[-1]
    grid = tf.reshape(x, [-1, h, w, c])                                          # [B, h, w, C]
    grid = tf.image.resize_bicubic(grid, [h * factor, w * factor], half_pixel_centers=True)
    return tf.reshape(grid, [-1, h * factor * w * factor, c])


def average_pool(x, h, w, factor=2):
    """[B, h*w, C] -> [B, (h/f)*(w/f), C]: mean over factor x factor cells."""
    c = x.shape.as_list()[-1]
    x = tf.reshape(x, [-1, h // factor, factor, w // factor, factor, c])         # [B, h/f, f, w/f, f, C]
    return tf.reshape(tf.reduce_mean(x, axis=[2, 4]), [-1, (h // factor) * (w // factor), c])


def antialias_resample(x, h, w):
    """The 256 recipe's anti-aliasing before a pixel shuffle: bicubic 4x up, 4x average pool."""
    return average_pool(bicubic_upsample(x, h, w, 4), 4 * h, 4 * w, 4)


# ----------------------------------------------------------------------------
# Grid self-attention (paper §3.3) with a learnable relative position bias (Swin-style).


def window_partition(x, window):
    """[B, h, w, C] -> [B*G, W*W, C]: non-overlapping W x W windows, each row-major."""
    _, h, w, c = x.shape.as_list()
    x = tf.reshape(x, [-1, h // window, window, w // window, window, c])         # [B, h/W, W, w/W, W, C]
    x = tf.transpose(x, [0, 1, 3, 2, 4, 5])                                      # [B, h/W, w/W, W, W, C]
    return tf.reshape(x, [-1, window * window, c])                              # [B*G, W*W, C]


def window_merge(t, window, h, w):
    """Inverse of window_partition: [B*G, W*W, C] -> [B, h, w, C]."""
    c = t.shape.as_list()[-1]
    t = tf.reshape(t, [-1, h // window, w // window, window, window, c])         # [B, h/W, w/W, W, W, C]
    t = tf.transpose(t, [0, 1, 3, 2, 4, 5])                                      # [B, h/W, W, w/W, W, C]
    return tf.reshape(t, [-1, h, w, c])


def relative_position_index(window):
    """[W*W, W*W] int: for query q and key k of a window, the row of the (2W-1)^2 bias table
    of their offset: (dy + W - 1) * (2W - 1) + (dx + W - 1), with (dy, dx) = q - k."""
    ys, xs = np.meshgrid(np.arange(window), np.arange(window), indexing="ij")
    coords = np.stack([ys.ravel(), xs.ravel()])                                  # [2, T]
    rel = coords[:, :, None] - coords[:, None, :]                                 # [2, T, T]
    return ((rel[0] + window - 1) * (2 * window - 1) + rel[1] + window - 1).astype(np.int32)


def split_heads(t, num_heads):
    """[X, T, C] -> [X, N, T, H]."""
    _, n, c = t.shape.as_list()
    return tf.transpose(tf.reshape(t, [-1, n, num_heads, c // num_heads]), [0, 2, 1, 3])


def multihead_attention(queries, keys, num_heads, name, bias=None):
    """Scaled dot-product attention of queries [X, T, C] over keys [X, Tk, Ck] (values from
    the keys), plus an additive score bias [N, T, Tk]; output [X, T, C] after a projection."""
    with tf.variable_scope(name):
        _, t, c = queries.shape.as_list()
        if keys is queries:
            qkv = dense(queries, 3 * c, "qkv")                                   # [X, T, 3C]
            q, k, v = tf.split(qkv, 3, axis=-1)                                  # [X, T, C] each
        else:
            q = dense(queries, c, "q")                                           # [X, T, C]
            k, v = tf.split(dense(keys, 2 * c, "kv"), 2, axis=-1)                # [X, Tk, C] each
        q, k, v = [split_heads(a, num_heads) for a in (q, k, v)]                 # [X, N, T|Tk, H]
        scores = tf.matmul(q, k, transpose_b=True) * (1.0 / np.sqrt(c // num_heads))   # [X, N, T, Tk]
        if bias is not None:
            scores += bias[None]
        probs = tf.nn.softmax(scores, axis=-1)
        out = tf.matmul(probs, v)                                                # [X, N, T, H]
        out = tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [-1, t, c])            # [X, T, C]
        return dense(out, c, "proj")


def relative_bias(window, num_heads):
    """[N, W*W, W*W] score bias gathered from a learnable [(2W-1)^2, N] table."""
    table = tf.get_variable("rel_pos_table", [(2 * window - 1) ** 2, num_heads],
                            initializer=tf.truncated_normal_initializer(stddev=0.02))
    bias = tf.gather(table, relative_position_index(window).ravel())             # [T*T, N]
    return tf.transpose(tf.reshape(bias, [window * window, window * window, num_heads]), [2, 0, 1])


def attended_window(h, w, window_size, grid_above):
    """Window side of a stage's self-attention: the whole grid up to grid_above wide (standard
    attention), else window_size (grid self-attention)."""
    return window_size if w > grid_above else w


def grid_self_attention(x, h, w, num_heads, window, rel_pos, name):
    """Self-attention of tokens [B, h*w, C] inside W x W windows (one window = full attention;
    h = w is checked by the options). Returns [B, h*w, C]."""
    with tf.variable_scope(name):
        c = x.shape.as_list()[-1]
        t = window_partition(tf.reshape(x, [-1, h, w, c]), window)               # [B*G, W*W, C]
        bias = relative_bias(window, num_heads) if rel_pos else None
        t = multihead_attention(t, t, num_heads, "self", bias)                   # [B*G, W*W, C]
        return tf.reshape(window_merge(t, window, h, w), [-1, h * w, c])


def transformer_block(x, h, w, num_heads, mlp_ratio, window, norm, rel_pos, name, context=None):
    """Pre-norm block: x + attention(norm(x)) [+ cross-attention to context], x + MLP(norm(x))
    (GELU). x [B, h*w, C] grid tokens; context [B, Tz, C] latent tokens or None."""
    with tf.variable_scope(name):
        c = x.shape.as_list()[-1]
        assert_shape(x, [None, h * w, c], "block input")
        x += grid_self_attention(normalize(x, norm, "norm1"), h, w, num_heads, window, rel_pos, "attention")
        if context is not None:
            x += multihead_attention(normalize(x, norm, "norm_cross"), context, num_heads, "cross_attention")
        with tf.variable_scope("mlp"):
            y = gelu(dense(normalize(x, norm, "norm2"), int(c * mlp_ratio), "fc1"))   # [B, T, M]
            x += dense(y, c, "fc2")
        return x


def class_token_block(x, num_heads, mlp_ratio, norm, name):
    """The discriminator's last block: full attention over [class token; tokens], no
    relative bias (the class token has no grid offset). x [B, 1+T, C]."""
    with tf.variable_scope(name):
        c = x.shape.as_list()[-1]
        y = normalize(x, norm, "norm1")
        x += multihead_attention(y, y, num_heads, "attention")
        with tf.variable_scope("mlp"):
            x += dense(gelu(dense(normalize(x, norm, "norm2"), int(c * mlp_ratio), "fc1")), c, "fc2")
        return x


# ----------------------------------------------------------------------------
# Generator (paper §3.1, Fig. 2): z -> tokens at bottom_width, stages of blocks, upsampling
# between stages, a 1x1 projection to the image.


def stage_plan(resolution, bottom_width, embed_dim, bicubic_stages):
    """[(width of the grid, token width C, upsampling into the stage: None | "bicubic" |
    "shuffle")] per stage, from bottom_width to resolution."""
    plan, width, dim = [(bottom_width, embed_dim, None)], bottom_width, embed_dim
    while width < resolution:
        width *= 2
        if len(plan) <= bicubic_stages:
            plan.append((width, dim, "bicubic"))
        else:
            dim //= 4
            plan.append((width, dim, "shuffle"))
    return plan


def stage_depths(depths, num_stages):
    """Blocks per stage: the listed ones from the bottom, the last repeated for stages beyond
    the list; entries beyond the top stage are unused (a preset fits every resolution)."""
    depths = as_list(depths)
    return [depths[min(i, len(depths) - 1)] for i in range(num_stages)]


def Generator(latents_in, labels_in,
              num_channels=3,          # Image channels.
              resolution=32,           # Image width (power of two).
              ratio=1.0,               # Height / width; TransGAN builds square images (1).
              c_dim=0,                 # Label width; 0 = unconditional (labels join z).
              latent_size=256,         # Width of z.
              bottom_width=8,          # Token grid width of the first stage (a linear layer on z makes it).
              embed_dim=1024,          # Token width of the first stage; each pixel shuffle divides it by 4.
              depths=(5, 4, 2),        # Transformer blocks per stage from the bottom (the last repeats; extra ones unused).
              num_heads=4,             # Attention heads.
              mlp_ratio=4,             # MLP width / token width in each block.
              token_norm="layer",      # Pre-norm of each block: layer | pixel (token-wise scaling) | none.
              window_size=16,          # Grid self-attention: window side W.
              grid_above=32,           # Stages wider than this attend within W x W windows; up to it, full attention.
              rel_pos=True,            # Learnable relative position bias ((2W-1)^2 x heads table) in each block.
              bicubic_stages=0,        # The first this many upsamplings (at most all) are bicubic 2x at constant width (256 recipe: 2).
              antialias=False,         # Bicubic 4x up + 4x average pool before the last two pixel shuffles (if any).
              latent_tokens=0,         # Each block cross-attends to this many tokens embedding z; 0 = off (256 recipe).
              truncation_psi=None,     # Accepted for the tools; TransGAN has no mapping network, so no truncation.
              is_training=False,       # Unused (no dropout); accepted as the loop passes it.
              is_validation=False,     # Unused; accepted as the metrics pass it.
              is_template_graph=False, components=None):
    """latents_in z [B, latent_size], labels_in [B, c_dim] -> images_out [B, C, R, R]."""
    from training import validation    # The one validator (build time only; see the module docstring).
    validation.validate(G={n: v for n, v in locals().items() if n not in (
        "latents_in", "labels_in", "is_template_graph", "components", "validation")}, family="networks_transgan")
    latents_in.set_shape([None, latent_size])
    labels_in.set_shape([None, c_dim])
    plan = stage_plan(resolution, bottom_width, embed_dim, bicubic_stages)
    depth = stage_depths(depths, len(plan))
    shuffles = [i for i, (_w, _c, up) in enumerate(plan) if up == "shuffle"]
    z = tf.cast(latents_in, tf.float32)
    if c_dim:
        z = tf.concat([z, tf.cast(labels_in, tf.float32)], axis=1)              # [B, Z]

    with tf.variable_scope("input"):
        x = dense(z, bottom_width * bottom_width * embed_dim, "linear")          # [B, h*w*C]
        x = tf.reshape(x, [-1, bottom_width * bottom_width, embed_dim])          # [B, T, C]
    for s, (width, dim, up) in enumerate(plan):
        with tf.variable_scope("stage%dx%d" % (width, width)):
            prev = width // 2
            if up == "bicubic":
                x = bicubic_upsample(x, prev, prev)
            elif up == "shuffle":
                if antialias and s in shuffles[-2:]:
                    x = antialias_resample(x, prev, prev)
                x = pixel_shuffle(x, prev, prev)
            assert_shape(x, [None, width * width, dim], "stage input")
            x += position_embedding(width * width, dim, "pos_embed")
            context = None
            if latent_tokens:
                context = tf.reshape(dense(z, latent_tokens * dim, "latent_embed"), [-1, latent_tokens, dim])  # [B, Tz, C]
            window = attended_window(width, width, window_size, grid_above)
            for b in range(depth[s]):
                x = transformer_block(x, width, width, num_heads, mlp_ratio, window, token_norm, rel_pos,
                                      "block%d" % b, context)
    with tf.variable_scope("to_rgb"):
        rgb = dense(x, num_channels, "proj")                                     # [B, R*R, Ci]
        images = tf.transpose(tf.reshape(rgb, [-1, resolution, resolution, num_channels]), [0, 3, 1, 2])
    images_out = tf.identity(images, name="images_out")
    assert images_out.dtype == tf.float32
    return images_out



# ----------------------------------------------------------------------------
# Discriminator (paper §3.2): multi-scale patch tokens, blocks per scale with 2x token pooling
# and concatenation of the next scale, a class token, a last block, layer norm, linear head.


def patch_tokens(images, patch, dim, name):
    """[B, R, R, Ci] (NHWC) -> [B, (R/P)^2, dim]: non-overlapping P x P patches, flattened and
    linearly embedded (a P x P stride-P convolution)."""
    with tf.variable_scope(name):
        _, r, _, ci = images.shape.as_list()
        n = r // patch
        x = tf.reshape(images, [-1, n, patch, n, patch, ci])                    # [B, h, P, w, P, Ci]
        x = tf.reshape(tf.transpose(x, [0, 1, 3, 2, 4, 5]), [-1, n * n, patch * patch * ci])   # [B, T, P*P*Ci]
        return dense(x, dim, "embed") + position_embedding(n * n, dim, "pos_embed")


def Discriminator(images_in, labels_in,
                  num_channels=3,        # Image channels.
                  resolution=32,         # Image width (power of two).
                  ratio=1.0,             # Height / width; square images only (1).
                  c_dim=0,               # Label width; 0 = unconditional (else a projection term on the class token).
                  patch_size=2,          # Patch side at the finest scale; scale i cuts patches of patch_size * 2^i.
                  scale_dims=(288, 96),  # Token width of each scale's patch embedding, finest first (widths add up).
                  depths=(3, 3),         # Blocks per scale (the last repeats for more scales).
                  num_heads=4,           # Attention heads.
                  mlp_ratio=4,           # MLP width / token width in each block.
                  token_norm="layer",    # Pre-norm of each block: layer | pixel | none.
                  window_size=16,        # Grid self-attention window side.
                  grid_above=32,         # Token grids wider than this attend within windows.
                  rel_pos=True,          # Learnable relative position bias in the grid blocks.
                  is_training=False,     # Unused (no dropout); accepted as the loop passes it.
                  is_template_graph=False, components=None):
    """images_in [B, C, R, R], labels_in [B, c_dim] -> scores_out [B, 1]."""
    from training import validation
    validation.validate(D={n: v for n, v in locals().items() if n not in (
        "images_in", "labels_in", "is_template_graph", "components", "validation")}, family="networks_transgan")
    images_in.set_shape([None, num_channels, resolution, resolution])
    labels_in.set_shape([None, c_dim])
    dims = as_list(scale_dims)
    depth = stage_depths(depths, len(dims))
    images = tf.transpose(tf.cast(images_in, tf.float32), [0, 2, 3, 1])          # [B, R, R, Ci]

    x, width = None, resolution // patch_size
    for s, dim in enumerate(dims):
        with tf.variable_scope("scale%d" % s):
            tokens = patch_tokens(images, patch_size * 2 ** s, dim, "patches")   # [B, h*w, dim]
            if x is None:
                x = tokens
            else:
                x = tf.concat([average_pool(x, 2 * width, 2 * width), tokens], axis=-1)   # [B, h*w, C]
            assert_shape(x, [None, width * width, sum(dims[:s + 1])], "scale input")
            window = attended_window(width, width, window_size, grid_above)
            for b in range(depth[s]):
                x = transformer_block(x, width, width, num_heads, mlp_ratio, window, token_norm, rel_pos, "block%d" % b)
        width //= 2
    c = sum(dims)
    with tf.variable_scope("head"):
        cls = tf.get_variable("class_token", [1, 1, c], initializer=tf.truncated_normal_initializer(stddev=0.02))
        x = tf.concat([tf.tile(cls, [tf.shape(x)[0], 1, 1]), x], axis=1)         # [B, 1+T, C]
        x = class_token_block(x, num_heads, mlp_ratio, token_norm, "last_block")
        feat = normalize(x[:, 0], "layer", "norm")                              # [B, C]
        scores = dense(feat, 1, "out")                                           # [B, 1]
        if c_dim:
            embed = dense(tf.cast(labels_in, tf.float32), c, "label_embed", use_bias=False)   # [B, C]
            scores += tf.reduce_sum(embed * feat, axis=1, keepdims=True)
    scores_out = tf.identity(scores, name="scores_out")
    assert scores_out.dtype == tf.float32
    return scores_out
