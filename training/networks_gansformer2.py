"""GANsformer2's execution stage (Hudson & Zitnick, "Compositional Transformers for Scene
Generation", NeurIPS 2021; REFERENCE.md §12) as tflib.Network build functions: layout-to-image.

Generator: per segment slot a style latent (MLP of [z, category embedding, depth]) and a global
style (MLP of the global z and labels) that modulates every conv as in StyleGAN2. At each conv
in start_res <= log2 width < end_res, the *given* layout is the latent -> pixel assignment of the
bipartite attention, scaled by a learnable sigmoid gate per slot and layer; each pixel's context
is the gated sum of its slots' values, integrated into the features (networks.integrate). Then
each latent is updated from the features of its own segment (the layout again as the attention:
a masked average over the segment's pixels, then networks.latent_update's residual MLP).
Discriminator: a StyleGAN2 resnet D over the image concatenated with its semantic map
(per-pixel category one-hot and depth) -> a global score, plus a score per segment from its
masked-average features at log2 width segment_res (dense + a category projection term).
Not here: the planning stage (layout generation) and the hierarchical noise the paper adds to
generated (soft) layouts before D; this stage is trained on the dataset's layouts.

This module imports training.networks' blocks (modulated_conv2d, conv2d, dense_tokens,
dense_layer, bias_act, integrate, the mapping MLP _mlp, synthesis_stem, torgb_block,
minibatch_stddev, nearest_upsample, ...) instead of copying them: a pickle carries this file's
source only, so it runs against the training.networks of the codebase that loads it (pickles of
this family are loaded within this codebase, as the build-time validation already assumes).

Slots: S = max_segments + 1 per image. Slot 0 is the background, slots 1..n the segments back
to front, empty slots after. segments_in[..., 0] is the category as a float (0 background,
>= 1 objects, -1 empty slot), segments_in[..., 1] the depth in [0, 1] (1 = frontmost). Empty
slots (category -1) get zero style, zero assignment and zero segment score: they have no effect.

Axis legend (every shape comment below):
  B   batch              S   segment slots (max_segments + 1)     NC  categories (0 = background)
  Z   latent width (latent_size; also the style width D and the category embedding's)
  D   style width (= Z)  U   mapping-MLP input width              La  layout-attention layers
  C   channels           F   h*w cells of a feature map           h/w a feature map's height / width
  H/W output height / width                                        f   a down-sampling factor
"""

import numpy as np
import tensorflow.compat.v1 as tf

from dnnlib.tflib.ops.upfirdn_2d import upsample_2d
from training.networks import (_mlp, assert_shape, bias_act, channels, conv2d, dense_layer, dense_tokens,
                               image_to_tokens, integrate, minibatch_stddev, modulated_conv2d, nearest_upsample,
                               synthesis_stem, tokens_to_image, torgb_block)

# ----------------------------------------------------------------------------
# Layout helpers: pure tensor functions, no variables.


def area_downsample(masks, factor):
    """[B, S, H, W] -> [B, S, H/f, W/f]: the mean of each f x f block, so a one-hot layout becomes
    each slot's fraction of the cell (soft layouts stay distributions over S)."""
    if factor == 1:
        return masks
    _, s, hh, ww = masks.shape.as_list()
    x = tf.reshape(masks, [-1, s, hh // factor, factor, ww // factor, factor])   # [B, S, h, f, w, f]
    return tf.reduce_mean(x, axis=[3, 5])                                        # [B, S, h, w]


def segment_average(features, masks, eps=1e-8):
    """Masked average of the features over each slot's mask: f_s = sum_p L_s(p) F(p) / (sum_p L_s(p) + eps).
    features [B, C, h, w], masks [B, S, h, w] -> [B, S, C] (zero where a mask is empty)."""
    _, c, h, w = features.shape.as_list()
    s = masks.shape.as_list()[1]
    assert_shape(masks, [None, s, h, w], "masks")
    m = tf.reshape(masks, [-1, s, h * w])                                        # [B, S, F]
    f = tf.reshape(features, [-1, c, h * w])                                     # [B, C, F]
    sums = tf.matmul(m, f, transpose_b=True)                                     # [B,S,F].[B,C,F]^T -> [B, S, C]
    return sums / (tf.reduce_sum(m, axis=2, keepdims=True) + eps)                # / [B, S, 1]


def slot_mask(segments):
    """[B, S, 2] -> float32 [B, S]: 1 for slots in use (category >= 0), 0 for empty ones."""
    return tf.cast(segments[:, :, 0] >= 0, tf.float32)


def category_onehot(segments, num_categories):
    """[B, S, 2] -> [B, S, NC]; empty slots (-1) and ids >= NC give zero rows."""
    cats = tf.cast(tf.round(segments[:, :, 0]), tf.int32)                        # [B, S]
    return tf.one_hot(cats, num_categories, dtype=tf.float32)                    # [B, S, NC]


def category_embedding(segments, num_categories, width):
    """A learnt row per category (scope CategoryEmbedding, weight [NC, width]) for each slot:
    [B, S, 2] -> [B, S, width], zero for empty slots. A one-hot matmul, not a gather, so the
    gradient is a dense tensor like every other one."""
    with tf.variable_scope("CategoryEmbedding"):
        table = tf.get_variable("weight", [num_categories, width], initializer=tf.initializers.random_normal())
    s = segments.shape.as_list()[1]
    onehot = tf.reshape(category_onehot(segments, num_categories), [-1, num_categories])   # [B*S, NC]
    return tf.reshape(tf.matmul(onehot, table), [-1, s, width])                  # [B*S, Z] -> [B, S, Z]


def semantic_maps(layout, segments, num_categories):
    """What D sees beside the image (slot ids are per image; only categories are semantic):
    layout [B, S, H, W], segments [B, S, 2] -> (category maps [B, NC, H, W] = sum_s layout_s
    onehot(category_s), depth map [B, 1, H, W] = sum_s layout_s depth_s)."""
    _, s, hh, ww = layout.shape.as_list()
    onehot = category_onehot(segments, num_categories)                           # [B, S, NC]
    flat = tf.reshape(layout, [-1, s, hh * ww])                                  # [B, S, H*W]
    cats = tf.matmul(onehot, flat, transpose_a=True)                             # [B,S,NC]^T.[B,S,H*W] -> [B, NC, H*W]
    depth = tf.reduce_sum(layout * segments[:, :, 1, np.newaxis, np.newaxis], axis=1, keepdims=True)   # [B, 1, H, W]
    return tf.reshape(cats, [-1, num_categories, hh, ww]), depth


# ----------------------------------------------------------------------------
# Style latents (§12 execution): slot styles from [z, category, depth], a global style from z (+ labels).


def pixel_norm(x):
    return x * tf.rsqrt(tf.reduce_mean(tf.square(x), axis=-1, keepdims=True) + 1e-8)


def slot_styles(z, segments, num_categories, num_layers, lrmul):
    """Scope SlotMapping: z [B, S, Z], segments [B, S, 2] -> styles [B, S, D], zero for empty slots.
    One MLP shared by the slots maps [pixel_norm(z), embedding(category), depth]."""
    s, zdim = z.shape.as_list()[1:]
    with tf.variable_scope("SlotMapping"):
        x = tf.concat([pixel_norm(z), category_embedding(segments, num_categories, zdim),
                       segments[:, :, 1:2]], axis=2)                             # [B, S, U = 2Z+1]
        rows = tf.reshape(x, [-1, 2 * zdim + 1])                                 # [B*S, U]
        rows = _mlp(rows, num_layers, zdim, lrmul, "lrelu", False)               # [B*S, D]
    return tf.reshape(rows, [-1, s, zdim]) * slot_mask(segments)[:, :, np.newaxis]   # [B, S, D]


def global_style(z, labels, num_layers, lrmul):
    """Scope GlobalMapping: z [B, Z], labels [B, c_dim] -> [B, D]; labels join z as in G_mapping."""
    zdim, c_dim = z.shape.as_list()[1], labels.shape.as_list()[1]
    with tf.variable_scope("GlobalMapping"):
        if c_dim:
            with tf.variable_scope("LabelConcat"):
                wl = tf.get_variable("weight", [c_dim, zdim], initializer=tf.initializers.random_normal())
            z = tf.concat([z, tf.matmul(labels, wl)], axis=1)                    # [B, 2Z]
        return _mlp(pixel_norm(z), num_layers, zdim, lrmul, "lrelu", False)      # [B, D]


def track_and_truncate(slot_w, global_w, valid, is_training, truncate, w_avg_beta, psi):
    """w_avg tracking in training (dlatent_avg: global styles; slot_dlatent_avg: styles of used
    slots) and, when truncate (inference), truncation toward them by psi.
    slot_w [B, S, D], global_w [B, D], valid [B, S] -> (slot_w, global_w)."""
    d = global_w.shape.as_list()[1]
    zeros = tf.initializers.zeros()
    g_avg = tf.get_variable("dlatent_avg", [d], initializer=zeros, trainable=False)
    s_avg = tf.get_variable("slot_dlatent_avg", [d], initializer=zeros, trainable=False)
    if is_training and w_avg_beta is not None:
        batch_g = tf.reduce_mean(global_w, axis=0)                                                  # [D]
        batch_s = tf.reduce_sum(slot_w, axis=[0, 1]) / tf.maximum(tf.reduce_sum(valid), 1.0)        # [D]
        updates = [tf.assign(g_avg, batch_g + w_avg_beta * (g_avg - batch_g)),
                   tf.assign(s_avg, batch_s + w_avg_beta * (s_avg - batch_s))]
        with tf.control_dependencies(updates):
            return tf.identity(slot_w), tf.identity(global_w)
    if truncate and psi is not None and psi != 1:
        global_w = g_avg + (global_w - g_avg) * psi
        slot_w = (s_avg + (slot_w - s_avg) * psi) * valid[:, :, np.newaxis]
    return slot_w, global_w


# ----------------------------------------------------------------------------
# Layout attention: the given layout assigns pixels to latents; gates scale each latent.


def gate_logits(latents):
    """[B, S, D] -> [B, S]: a linear function of each latent (weight_gate, bias_gate; equalized lr).
    The weight starts at zero, so every gate starts at sigmoid(1) ~ 0.73 (+1 as networks' image
    gate) and learns from there; a random start would saturate some gates (logits of a few units)."""
    d = latents.shape.as_list()[2]
    w = tf.get_variable("weight_gate", [d, 1], initializer=tf.initializers.zeros()) * (1 / np.sqrt(d))
    b = tf.get_variable("bias_gate", [1], initializer=tf.initializers.zeros())
    logits = tf.matmul(tf.reshape(latents, [-1, d]), w) + b                     # [B*S, 1]
    return tf.reshape(logits, [-1, latents.shape.as_list()[1]])                  # [B, S]


def layout_attention(x, latents, masks, valid, integration="mul", norm="layer"):
    """Scope LayoutAttention: pixels <- latents with the layout as the assignment.

    Args:
      x: float32 [B, C, h, w].
      latents: float32 [B, S, D].
      masks: float32 [B, S, h, w], the layout at h x w (area average).
      valid: float32 [B, S], 0 for empty slots.
      integration, norm: networks.integrate's options.

    Returns:
      (x: float32 [B, C, h, w], assignment: float32 [B, S, h, w] = masks * gate * valid).
    """
    _, c, h, w = x.shape.as_list()
    s = latents.shape.as_list()[1]
    assert_shape(masks, [None, s, h, w], "masks")
    with tf.variable_scope("LayoutAttention"):
        gate = tf.sigmoid(gate_logits(latents) + 1.0) * valid                    # [B, S]
        assign = masks * gate[:, :, np.newaxis, np.newaxis]                       # [B, S, h, w]
        values = dense_tokens(latents, c, "value")                               # [B, S, C]
        ctx = tf.matmul(tf.reshape(assign, [-1, s, h * w]), values, transpose_a=True)   # [B,S,F]^T.[B,S,C] -> [B, F, C]
        feats = integrate(image_to_tokens(x), ctx, integration, norm)            # [B, F, C]
    return tokens_to_image(feats, h, w), assign


def segment_update(latents, x, masks, valid):
    """Scope SegmentUpdate: latents <- pixels, each latent attending to its own segment only (the
    layout as the attention, i.e. the masked average of the features), then networks.latent_update's
    residual MLP (value + latent, Dense_0 lrelu, Dense_1, leaky ReLU of the sum).
    latents [B, S, D], x [B, C, h, w], masks [B, S, h, w], valid [B, S] -> [B, S, D]."""
    d = latents.shape.as_list()[2]
    with tf.variable_scope("SegmentUpdate"):
        h = latents + dense_tokens(segment_average(x, masks), d, "value")       # [B, S, D]
        h = dense_tokens(h, d, "0", act="lrelu")                                 # [B, S, D]
        h = dense_tokens(h, d, "1")                                              # [B, S, D]
        return tf.nn.leaky_relu(h + latents, alpha=0.2) * valid[:, :, np.newaxis]


# ----------------------------------------------------------------------------
# Generator.


def conv_layers(r):
    """(conv index j, scope, up) of the convs at log2 width r, as networks.G_synthesis."""
    return [(0, "Conv", False)] if r == 2 else [(2 * r - 5, "Conv0_up", True), (2 * r - 4, "Conv1", False)]


def synthesis_conv(x, style, fmaps, up, noise, attention, conv_kw):
    """Modulated 3x3 conv by the global style -> [layout attention] -> [noise] -> bias + lrelu.
    attention: (latents, masks, valid, integration, norm) or None. Returns (x, assignment or None)."""
    x = modulated_conv2d(x, style, fmaps, 3, up=up, **conv_kw)                  # [B, O, h, w]
    assign = None
    if attention is not None:
        x, assign = layout_attention(x, *attention)
    if noise is not None:
        if isinstance(noise, str):                                               # "random"
            noise = tf.random_normal([tf.shape(x)[0], 1] + x.shape.as_list()[2:])   # [B, 1, h, w]
        x += noise * tf.get_variable("noise_strength", shape=[], initializer=tf.initializers.zeros())
    return bias_act(x, act="lrelu"), assign


def Generator(latents_in, labels_in, layout_in, segments_in,
              max_segments=8,          # Segment slots besides the background, S - 1 (set from the dataset).
              num_categories=8,        # NC: semantic categories, 0 = background (set from the dataset).
              resolution=256,          # Image width (power of two).
              ratio=1.0,               # Height / width; square images only (1).
              num_channels=3,          # Image channels.
              c_dim=0,                 # Label width; 0 = unconditional (labels join the global latent).
              latent_size=512,         # Z: width of each latent, style and category embedding.
              mapping_num_layers=8,    # Dense layers of the slot and global mapping MLPs.
              mapping_lrmul=0.01,      # Learning-rate multiplier of the mapping MLPs.
              channel_base=16 << 10,   # C(res) = min(channel_base / 2^(res-1), channel_max).
              channel_max=512,         # Most channels of any layer.
              resample_kernel=(1, 3, 3, 1),  # FIR filter of up-sampling.
              fused_modconv=True,      # Modulated conv as one grouped conv (GPU; CPU always scales activations).
              noise_mode="random",     # random | const | none.
              start_res=0,             # First log2 width with layout attention.
              end_res=8,               # Layout attention below this log2 width (exclusive).
              integration="mul",       # add | mul | both: how the attended context updates the features.
              norm="layer",            # None | instance | layer, before the integration.
              img2ltnt=True,           # Update the latents from their segments' features after each attention layer.
              w_avg_beta=0.995,        # Decay of the dlatent_avg tracking; None = no tracking.
              truncation_psi=0.7,      # Truncation at inference; 1 or None = off.
              randomize_noise=None,    # StyleGAN2 spelling: True = noise_mode random, False = const.
              is_training=False,       # Training: w_avg tracking on, truncation off.
              is_validation=False,     # Validation (metrics): truncation off.
              is_template_graph=False, components=None):
    """latents_in z [B, S+1, Z] (the last is the global latent), labels_in [B, c_dim], layout_in
    [B, S, H, W], segments_in [B, S, 2] -> (images_out [B, C, H, W], maps_out [B, S, La, 1, H, W]:
    the gated assignment of each attention layer, nearest-upsampled; latents_out [B, S, D]: the
    slot latents the last attention layer read)."""
    from training import validation    # The one validator (build time only; see the module docstring).
    validation.validate(G={n: v for n, v in locals().items() if n not in (
        "latents_in", "labels_in", "layout_in", "segments_in", "is_template_graph", "components", "validation")},
        family="networks_gansformer2")
    R, S, Z = int(np.log2(resolution)), max_segments + 1, latent_size
    latents_in.set_shape([None, S + 1, Z])
    labels_in.set_shape([None, c_dim])
    layout_in.set_shape([None, S, resolution, resolution])
    segments_in.set_shape([None, S, 2])
    if randomize_noise is not None:
        noise_mode = "random" if randomize_noise else "const"
    valid = slot_mask(segments_in)                                               # [B, S]
    slot_w = slot_styles(latents_in[:, :S], segments_in, num_categories, mapping_num_layers, mapping_lrmul)
    style = global_style(latents_in[:, S], labels_in, mapping_num_layers, mapping_lrmul)   # [B, D]
    slot_w, style = track_and_truncate(slot_w, style, valid, is_training, not (is_training or is_validation),
                                       w_avg_beta, truncation_psi)

    nf = lambda r: channels(r, channel_base, channel_max)
    att_res = [r for r in range(2, R + 1) if start_res <= r < end_res]
    last_att = max(j for r in att_res for j, _, _ in conv_layers(r))
    noise_vars = []
    if noise_mode != "none":
        for j in range(2 * R - 3):     # one per conv, as networks.G_synthesis (fixed noise for noise_mode const)
            size = 2 ** ((j + 5) // 2)
            noise_vars.append(tf.get_variable("noise%d" % j, shape=[1, 1, size, size], trainable=False,
                                              initializer=tf.initializers.random_normal()))
    conv_kw = dict(resample_kernel=resample_kernel, fused=fused_modconv)
    layout = layout_in * valid[:, :, np.newaxis, np.newaxis]                    # [B, S, H, W], empty slots 0
    x = rgb = None
    latents, maps = slot_w, []
    for r in range(2, R + 1):
        with tf.variable_scope("%dx%d" % (2 ** r, 2 ** r)):
            masks = area_downsample(layout, 2 ** (R - r))                        # [B, S, h, w]
            if r == 2:
                x = synthesis_stem(style, nf(2), 4)                              # [B, C, 4, 4]
            for j, scope, up in conv_layers(r):
                noise = None if not noise_vars else "random" if noise_mode == "random" else noise_vars[j]
                att = (latents, masks, valid, integration, norm) if r in att_res else None
                with tf.variable_scope(scope):
                    x, assign = synthesis_conv(x, style, nf(r), up, noise, att, conv_kw)
                    if assign is not None:
                        maps.append(nearest_upsample(assign, 2 ** (R - r), 2 ** (R - r)))   # [B, S, H, W]
                        if img2ltnt and j != last_att:   # after the last layer no conv would read them
                            latents = segment_update(latents, x, masks, valid)
            y = torgb_block(x, style, num_channels, resample_kernel=resample_kernel, fused_modconv=fused_modconv)
            if rgb is not None:
                with tf.variable_scope("Upsample"):
                    y += upsample_2d(rgb, k=resample_kernel)
            rgb = y                                                              # [B, C, h, w] (skip architecture)

    maps = tf.transpose(tf.stack(maps, axis=1), [0, 2, 1, 3, 4])                # [B, La, S, H, W] -> [B, S, La, H, W]
    maps = maps[:, :, :, np.newaxis]                                             # [B, S, La, 1, H, W]
    assert_shape(rgb, [None, num_channels, resolution, resolution], "images_out")
    assert rgb.dtype == tf.float32
    return (tf.identity(rgb, name="images_out"), tf.identity(maps, name="maps_out"),
            tf.identity(latents, name="latents_out"))


# ----------------------------------------------------------------------------
# Discriminator: image + semantic map -> StyleGAN2 resnet D -> global score; segment fidelity.


def resnet_block(x, fmaps_mid, fmaps_out, resample_kernel):
    """Conv0 (3x3) -> Conv1_down (3x3, 2x down) plus a 1x1 down-sampled skip, scaled by 1/sqrt(2).
    x [B, C, h, w] -> [B, fmaps_out, h/2, w/2]."""
    t = x
    with tf.variable_scope("Conv0"):
        x = bias_act(conv2d(x, fmaps_mid, 3), act="lrelu")
    with tf.variable_scope("Conv1_down"):
        x = bias_act(conv2d(x, fmaps_out, 3, down=True, resample_kernel=resample_kernel), act="lrelu")
    with tf.variable_scope("Skip"):
        t = conv2d(t, fmaps_out, 1, down=True, resample_kernel=resample_kernel)
    return (x + t) * (1 / np.sqrt(2))


def segment_scores(features, layout, segments, num_categories):
    """Scope SegmentScores: per slot, dense(f_s) + <embedding(category_s), f_s> with f_s the
    masked average of features [B, C, h, w] over the slot's layout (area average to h x w).
    layout [B, S, H, W], segments [B, S, 2] -> [B, S]; 0 for empty slots and empty masks."""
    c, h = features.shape.as_list()[1:3]
    hh = layout.shape.as_list()[2]
    with tf.variable_scope("SegmentScores"):
        f = segment_average(features, area_downsample(layout, hh // h))          # [B, S, C]
        scores = dense_tokens(f, 1, "out")[:, :, 0]                              # [B, S]
        scores += tf.reduce_sum(category_embedding(segments, num_categories, c) * f, axis=2)   # [B, S]
    area = tf.reduce_sum(layout, axis=[2, 3])                                    # [B, S]
    return scores * slot_mask(segments) * tf.cast(area > 0, tf.float32)


def Discriminator(images_in, labels_in, layout_in, segments_in,
                  max_segments=8,         # Segment slots besides the background (set from the dataset).
                  num_categories=8,       # NC: semantic categories, 0 = background (set from the dataset).
                  resolution=256,         # Image width (power of two).
                  ratio=1.0,              # Height / width; square images only (1).
                  num_channels=3,         # Image channels.
                  c_dim=0,                # Label width; 0 = unconditional (else a projection of the score).
                  channel_base=16 << 10,  # Channel formula as in the Generator.
                  channel_max=512,
                  resample_kernel=(1, 3, 3, 1),
                  mbstd_group_size=4,     # Minibatch-stddev group (min(group, batch)); 0 = no mbstd layer.
                  mbstd_num_channels=1,   # Minibatch-stddev features.
                  segment_res=4,          # log2 width of the feature level where segments are scored (3 = 8x8).
                  is_training=False,      # Unused (no dropout); accepted as the loop passes it.
                  is_template_graph=False, components=None):
    """images_in [B, C, H, W], labels_in [B, c_dim], layout_in [B, S, H, W], segments_in [B, S, 2]
    -> (scores_out [B, 1], segment_scores_out [B, S])."""
    from training import validation
    validation.validate(D={n: v for n, v in locals().items() if n not in (
        "images_in", "labels_in", "layout_in", "segments_in", "is_template_graph", "components", "validation")},
        family="networks_gansformer2")
    R, S = int(np.log2(resolution)), max_segments + 1
    images_in.set_shape([None, num_channels, resolution, resolution])
    labels_in.set_shape([None, c_dim])
    layout_in.set_shape([None, S, resolution, resolution])
    segments_in.set_shape([None, S, 2])
    nf = lambda r: channels(r, channel_base, channel_max)
    layout = layout_in * slot_mask(segments_in)[:, :, np.newaxis, np.newaxis]   # [B, S, H, W], empty slots 0
    cats, depth = semantic_maps(layout, segments_in, num_categories)             # [B, NC, H, W], [B, 1, H, W]
    y = tf.concat([images_in, cats, depth], axis=1)                              # [B, C+NC+1, H, W]

    def fromrgb(y):
        with tf.variable_scope("FromRGB"):
            return bias_act(conv2d(y, nf(R), 1), act="lrelu")                   # [B, C(R), H, W]

    x = seg_feats = None
    for r in range(R, 2, -1):
        with tf.variable_scope("%dx%d" % (2 ** r, 2 ** r)):
            x = fromrgb(y) if r == R else x
            seg_feats = x if r == segment_res else seg_feats                     # [B, C(r), h, w]
            x = resnet_block(x, nf(r), nf(r - 1), resample_kernel)               # [B, C(r-1), h/2, w/2]
    with tf.variable_scope("4x4"):
        x = fromrgb(y) if R == 2 else x
        seg_feats = x if segment_res == 2 else seg_feats                         # [B, C(2), 4, 4]
        if mbstd_group_size > 1:
            with tf.variable_scope("MinibatchStddev"):
                x = minibatch_stddev(x, mbstd_group_size, mbstd_num_channels)
        with tf.variable_scope("Conv"):
            x = bias_act(conv2d(x, nf(2), 3), act="lrelu")
        with tf.variable_scope("Dense0"):
            x = dense_layer(x, nf(1), act="lrelu")                              # [B, C]
    with tf.variable_scope("Output"):
        x = dense_layer(x, max(c_dim, 1))
        if c_dim:
            x = tf.reduce_sum(x * labels_in, axis=1, keepdims=True)              # [B, 1]
    seg = segment_scores(seg_feats, layout, segments_in, num_categories)         # [B, S]
    assert x.dtype == tf.float32 and seg.dtype == tf.float32
    return tf.identity(x, name="scores_out"), tf.identity(seg, name="segment_scores_out")
