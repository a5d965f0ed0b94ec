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


def generate(G, latents, labels, **kwargs):
    """G's images in training mode; G may return (images, attention maps, ...)."""
    outs = G.get_output_for(latents, labels, is_training=True, return_as_list=True, **kwargs)
    return outs


def discriminate(D, images, labels, augment=None):
    """D's scores [B, 1] on images, DiffAugment-ed first when a policy is given (so that every
    image D sees in training, reals, fakes and interpolates alike, is augmented)."""
    if augment:    # The ops need static sizes; the reader's reals have none.
        images = tf.reshape(images, [-1] + list(D.input_shapes[0][1:]))
    outs = D.get_output_for(diff_augment(images, augment), labels, is_training=True, return_as_list=True)
    return outs[0]


def path_length_penalty(G, latents, labels, pl_decay=0.01, pl_weight=2.0, noise=None):
    """StyleGAN2 path-length regularizer on a separate batch (REFERENCE §5.1).

    ws is [B, L, D] (StyleGAN2) or [B, K, L, D] (k latents): the length sums squared
    gradients over features and latents and averages over the L broadcast layers.
    noise: the N(0, I) image-space directions (drawn here when None).
    Returns (penalty [B, 1] times pl_weight, lengths [B])."""
    outs = generate(G, latents, labels, return_ws=True)
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


def G_loss(G, D, labels, minibatch_size, *, loss, pl_weight, augment=None,
           pl_minibatch_shrink=2, pl_decay=0.01, latents=None, pl_latents=None):
    """G's loss and (when pl_weight > 0) path-length regularizer, per sample.

    labels: [B, c_dim] labels for the fakes (the real batch's); latents default to N(0, I);
    augment: a DiffAugment policy applied before D (None or "" = off)."""
    if latents is None:
        latents = sample_latents(G, minibatch_size)
    fakes = generate(G, latents, labels)[0]
    scores = discriminate(D, fakes, labels, augment)
    loss_out = g_loss_from_scores(scores, loss)
    reg = None
    if pl_weight > 0:
        pl_batch = max(minibatch_size // pl_minibatch_shrink, 1)
        if pl_latents is None:
            pl_latents = sample_latents(G, pl_batch)
        reg, _ = path_length_penalty(G, pl_latents, labels[:pl_batch], pl_decay, pl_weight)
    return loss_out, reg


def D_loss(G, D, reals, labels, minibatch_size, *, loss, reg, gamma, augment=None, latents=None):
    """D's loss and regularizer (r1 on reals, r2 on fakes, gp on interpolations, none).
    loss="wgan" with reg="gp", gamma=10 is TransGAN's WGAN-GP-eps (the 1e-3 E[D(x)^2] drift
    term is part of the wgan loss). augment: a DiffAugment policy applied before D."""
    if reg not in D_REGS:
        raise ValueError("d reg: unknown regularizer %r; choose one of %s" % (reg, ", ".join(D_REGS)))
    if latents is None:
        latents = sample_latents(G, minibatch_size)
    fakes = generate(G, latents, labels)[0]
    real_scores = discriminate(D, reals, labels, augment)
    fake_scores = discriminate(D, fakes, labels, augment)
    loss_out = d_loss_from_scores(real_scores, fake_scores, loss)
    if reg == "none" or gamma == 0:
        return loss_out, None
    if reg == "r1":
        return loss_out, r1_penalty(real_scores, reals, gamma)
    if reg == "r2":
        return loss_out, r1_penalty(fake_scores, fakes, gamma)
    # gp: WGAN-GP, γ/t²·(||∇D(x̂)|| − t)² with t = 1 on a random lerp of reals and fakes.
    target = 1.0
    alpha = tf.random_uniform([tf.shape(reals)[0], 1, 1, 1], 0.0, 1.0, dtype=reals.dtype)
    mixed = reals + (fakes - reals) * alpha
    mixed_scores = discriminate(D, mixed, labels, augment)
    norms = tf.sqrt(gradient_square_sum(mixed_scores, mixed) + 1e-8)
    return loss_out, tf.square(norms - target) * (gamma / target ** 2)
