"""Losses and regularizers for G and D (REFERENCE.md §5.1).

Each public loss returns `(loss, reg)`: per-sample tensors `[B, 1]` (or None for no
regularizer) that the training loop averages per device tower and hands to tflib.Optimizer.
The formulas on scores are split from the network plumbing so they can be checked alone.
"""

import tensorflow.compat.v1 as tf

from training.augment import diff_augment

G_LOSSES = ("logistic_ns", "logistic", "hinge", "wgan")
D_LOSSES = ("logistic", "hinge", "wgan")
D_REGS = ("r1", "r2", "gp", "none")

# ----------------------------------------------------------------------------
# Formulas on discriminator scores.


def g_loss_from_scores(fake_scores, loss="logistic_ns"):
    """G loss per sample from D's scores on fakes."""
    if loss == "logistic_ns":          # Non-saturating: -log sigmoid(D(G(z))).
        return tf.nn.softplus(-fake_scores)
    if loss == "logistic":             # Saturating: log(1 - sigmoid(D(G(z)))).
        return -tf.nn.softplus(fake_scores)
    if loss == "hinge":
        return -tf.maximum(0.0, 1.0 + fake_scores)
    if loss == "wgan":
        return -fake_scores
    raise ValueError("g loss: unknown loss %r; choose one of %s" % (loss, ", ".join(G_LOSSES)))


def d_loss_from_scores(real_scores, fake_scores, loss="logistic", wgan_epsilon=0.001):
    """D loss per sample from its scores on reals and fakes."""
    if loss == "logistic":
        return tf.nn.softplus(fake_scores) + tf.nn.softplus(-real_scores)
    if loss == "hinge":
        return tf.nn.relu(1.0 + fake_scores) + tf.nn.relu(1.0 - real_scores)
    if loss == "wgan":                 # The epsilon term keeps real scores near 0 (StyleGAN2 D_wgan).
        return fake_scores - real_scores + wgan_epsilon * tf.square(real_scores)
    raise ValueError("d loss: unknown loss %r; choose one of %s" % (loss, ", ".join(D_LOSSES)))


def gradient_square_sum(scores, images):
    """Σ over C,H,W of (∂ΣD/∂x)² per sample -> [B, 1]."""
    grads = tf.gradients(tf.reduce_sum(scores), [images])[0]
    return tf.reduce_sum(tf.square(grads), axis=[1, 2, 3])[:, None]


def r1_penalty(scores, images, gamma):
    """γ/2 · Σ (∂D(x)/∂x)² (R1 on reals, R2 when given fakes)."""
    return gradient_square_sum(scores, images) * (gamma * 0.5)


# ----------------------------------------------------------------------------
# Network plumbing.


def sample_latents(G, minibatch_size):
    """z ~ N(0, I) shaped as G's first input with the given batch."""
    return tf.random_normal([minibatch_size] + list(G.input_shapes[0][1:]))


def as_cond(cond):
    """The inputs of G and D after their first (the conditioning): labels alone, or a tuple
    (labels, layout [B,S,H,W], segments [B,S,2]) for the layout families (GANsformer2)."""
    return tuple(cond) if isinstance(cond, (tuple, list)) else (cond,)


def generate(G, latents, cond, **kwargs):
    """G's images in training mode; G may return (images, attention maps, ...)."""
    outs = G.get_output_for(latents, *as_cond(cond), is_training=True, return_as_list=True, **kwargs)
    return outs


def discriminate_all(D, images, cond, augment=None):
    """(scores [B, 1], segment scores [B, S] or None) of D on images, DiffAugment-ed first when a
    policy is given (so that every image D sees in training, reals, fakes and interpolates
    alike, is augmented; validation allows only colour with layouts, which stay aligned)."""
    if augment:    # The ops need static sizes; the reader's reals have none.
        images = tf.reshape(images, [-1] + list(D.input_shapes[0][1:]))
    outs = D.get_output_for(diff_augment(images, augment), *as_cond(cond), is_training=True, return_as_list=True)
    return outs[0], (outs[1] if "segment_scores_out" in getattr(D, "output_names", ()) else None)


def discriminate(D, images, cond, augment=None):
    """D's scores [B, 1] on images (see discriminate_all)."""
    return discriminate_all(D, images, cond, augment)[0]


# ----------------------------------------------------------------------------
# GANsformer2's structural terms: segment fidelity (D scores every segment of the layout) and
# semantic matching (a frozen segmenter's cross-entropy against the source layout).


def segment_mean(values, cond):
    """Mean over each sample's real segments (category >= 0, non-empty mask) of values [B, S] -> [B, 1]."""
    layout, segments = cond[1], cond[2]
    valid = tf.cast(tf.logical_and(segments[:, :, 0] >= 0, tf.reduce_sum(layout, axis=[2, 3]) > 0), tf.float32)
    return tf.reduce_sum(values * valid, axis=1, keepdims=True) / tf.maximum(
        tf.reduce_sum(valid, axis=1, keepdims=True), 1.0)


def semantic_matching(segmenter, images, cond):
    """Cross-entropy [B, 1] of the segmenter's categories on images against the layout's."""
    from training import segmenter as seg_lib
    layout, segments = cond[1], cond[2]
    logits = segmenter.get_output_for(images)
    num_categories = logits.shape.as_list()[1]
    return seg_lib.semantic_matching_loss(logits, seg_lib.category_targets(layout, segments, num_categories))


def path_length_penalty(G, latents, cond, pl_decay=0.01, pl_weight=2.0, noise=None):
    """StyleGAN2 path-length regularizer on a separate batch (REFERENCE §5.1).

    ws is [B, L, D] (StyleGAN2) or [B, K, L, D] (k latents): the length sums squared
    gradients over features and latents and averages over the L broadcast layers.
    noise: the N(0, I) image-space directions (drawn here when None).
    Returns (penalty [B, 1] times pl_weight, lengths [B])."""
    outs = generate(G, latents, cond, return_ws=True)
    images, ws = outs[0], outs[-1]
    shape = tf.shape(images)
    if noise is None:
        noise = tf.random_normal(shape)
    noise = noise / tf.sqrt(tf.cast(shape[2] * shape[3], tf.float32))
    grads = tf.gradients(tf.reduce_sum(images * noise), [ws])[0]
    rank = grads.shape.ndims
    layer_axis = rank - 2                      # L is next to last in both layouts.
    sum_axes = [a for a in range(1, rank) if a != layer_axis]
    lengths = tf.sqrt(tf.reduce_mean(tf.reduce_sum(tf.square(grads), axis=sum_axes), axis=1))
    with tf.control_dependencies(None):
        pl_mean_var = tf.Variable(0.0, name="pl_mean", trainable=False, dtype=tf.float32)
    pl_mean = pl_mean_var + pl_decay * (tf.reduce_mean(lengths) - pl_mean_var)
    with tf.control_dependencies([tf.assign(pl_mean_var, pl_mean)]):
        penalty = tf.square(lengths - pl_mean)
    return penalty[:, None] * pl_weight, lengths


def G_loss(G, D, cond, minibatch_size, *, loss, pl_weight, augment=None, segment_weight=0.0,
           semantic_weight=0.0, segmenter=None, pl_minibatch_shrink=2, pl_decay=0.01, latents=None, pl_latents=None):
    """G's loss and (when pl_weight > 0) path-length regularizer, per sample.

    cond: the fakes' conditioning (as_cond: labels [B, c_dim], or with layouts); latents default
    to N(0, I); augment: a DiffAugment policy applied before D (None or "" = off).
    Layout families: + segment_weight x the same loss on D's segment scores (mean over the
    segments), + semantic_weight x the segmenter's cross-entropy against the layout."""
    if latents is None:
        latents = sample_latents(G, minibatch_size)
    fakes = generate(G, latents, cond)[0]
    scores, segment_scores = discriminate_all(D, fakes, cond, augment)
    loss_out = g_loss_from_scores(scores, loss)
    if segment_scores is not None and segment_weight:
        loss_out += segment_weight * segment_mean(g_loss_from_scores(segment_scores, loss), cond)
    if segmenter is not None and semantic_weight:
        loss_out += semantic_weight * semantic_matching(segmenter, fakes, cond)
    reg = None
    if pl_weight > 0:
        pl_batch = max(minibatch_size // pl_minibatch_shrink, 1)
        if pl_latents is None:
            pl_latents = sample_latents(G, pl_batch)
        pl_cond = tuple(c[:pl_batch] for c in as_cond(cond))
        reg, _ = path_length_penalty(G, pl_latents, pl_cond, pl_decay, pl_weight)
    return loss_out, reg


def D_loss(G, D, reals, cond, minibatch_size, *, loss, reg, gamma, augment=None, segment_weight=0.0, latents=None):
    """D's loss and regularizer (r1 on reals, r2 on fakes, gp on interpolations, none).
    loss="wgan" with reg="gp", gamma=10 is TransGAN's WGAN-GP-eps (the 1e-3 E[D(x)^2] drift
    term is part of the wgan loss). augment: a DiffAugment policy applied before D.
    cond: the reals' conditioning, also the fakes' (a layout family renders the reals' layouts).
    With segment scores: + segment_weight x the same loss per segment (mean over the segments),
    and the regularizers act on the global score + segment_weight x the mean segment score."""
    if reg not in D_REGS:
        raise ValueError("d reg: unknown regularizer %r; choose one of %s" % (reg, ", ".join(D_REGS)))
    if latents is None:
        latents = sample_latents(G, minibatch_size)
    fakes = generate(G, latents, cond)[0]

    def scored(images):
        """(global scores, scores the regularizers differentiate, per-segment scores or None)."""
        scores, seg = discriminate_all(D, images, cond, augment)
        if seg is None or not segment_weight:
            return scores, scores, None
        return scores, scores + segment_weight * segment_mean(seg, cond), seg

    real_scores, real_total, real_seg = scored(reals)
    fake_scores, fake_total, fake_seg = scored(fakes)
    loss_out = d_loss_from_scores(real_scores, fake_scores, loss)
    if real_seg is not None:
        loss_out += segment_weight * segment_mean(d_loss_from_scores(real_seg, fake_seg, loss), cond)
    if reg == "none" or gamma == 0:
        return loss_out, None
    if reg == "r1":
        return loss_out, r1_penalty(real_total, reals, gamma)
    if reg == "r2":
        return loss_out, r1_penalty(fake_total, fakes, gamma)
    # gp: WGAN-GP, γ/t²·(||∇D(x̂)|| − t)² with t = 1 on a random lerp of reals and fakes.
    target = 1.0
    alpha = tf.random_uniform([tf.shape(reals)[0], 1, 1, 1], 0.0, 1.0, dtype=reals.dtype)
    mixed = reals + (fakes - reals) * alpha
    norms = tf.sqrt(gradient_square_sum(scored(mixed)[1], mixed) + 1e-8)
    return loss_out, tf.square(norms - target) * (gamma / target ** 2)
