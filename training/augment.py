"""DiffAugment (Zhao et al., "Differentiable Augmentation for Data-Efficient GAN Training",
NeurIPS 2020): the same random, differentiable transformations applied to reals and fakes
before D in the loss, so D never sees an unaugmented image and G's gradients flow through
the augmentation. Usable with every model (--augment).

A policy is a comma-separated list of ops, each with an optional parameter:
  translation[=ratio]   shift by integers up to ratio * size on each axis, zero fill (1/8)
  cutout[=fraction]     zero a square of half the size at a random centre, on that fraction
                        of the batch (1: every image; TransGAN uses 0.3)
  color                 brightness (+U[-0.5, 0.5]), saturation (x U[0, 2]), contrast
                        (x U[0.5, 1.5]) per image
Images are NCHW floats in [-1, 1]. Each op is a pure function of the images and explicit
random parameters (sample_* draws them), so tests can fix the parameters.
"""

import tensorflow.compat.v1 as tf

OPS = ("translation", "cutout", "color")
DEFAULTS = dict(translation=0.125, cutout=1.0, color=None)


def parse_policy(policy):
    """'translation=0.2,cutout,color' -> [("translation", 0.2), ("cutout", 1.0), ("color", None)].
    Raises ValueError naming the bad item."""
    out = []
    for item in [p.strip() for p in (policy or "").split(",") if p.strip()]:
        name, _, param = item.partition("=")
        name = name.strip()
        if name not in OPS:
            raise ValueError("unknown op %r; choose from %s" % (name, ", ".join(OPS)))
        if any(n == name for n, _ in out):
            raise ValueError("%s given twice" % name)
        if name == "color":
            if param:
                raise ValueError("color takes no parameter")
            out.append((name, None))
            continue
        try:
            value = float(param) if param else DEFAULTS[name]
        except ValueError:
            raise ValueError("%s=%s: not a number" % (name, param)) from None
        if not 0 < value <= 1:
            raise ValueError("%s=%s: must be in (0, 1]" % (name, param))
        out.append((name, value))
    return out


# ----------------------------------------------------------------------------
# Ops on explicit parameters.


def brightness(x, u):
    """x + (u - 0.5); u [B] in [0, 1)."""
    return x + (u[:, None, None, None] - 0.5)


def saturation(x, u):
    """Scale the deviation from the channel mean by 2u."""
    mean = tf.reduce_mean(x, axis=1, keepdims=True)
    return (x - mean) * (2.0 * u[:, None, None, None]) + mean


def contrast(x, u):
    """Scale the deviation from the image mean by u + 0.5."""
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    return (x - mean) * (u[:, None, None, None] + 0.5) + mean


def shift_matrix(shift, size):
    """[B, size, size] one-hot rows: row i picks source i - shift (all zero outside)."""
    src = tf.range(size)[None, :, None] - shift[:, None, None]                 # [B, size, 1]
    return tf.cast(tf.equal(src, tf.range(size)[None, None, :]), tf.float32)   # [B, size, size]


def translate(x, ty, tx):
    """out[b, c, i, j] = x[b, c, i - ty[b], j - tx[b]], zero where that is outside; ty, tx int [B].
    A product with one-hot shift matrices, so the gradient is the reverse shift."""
    h, w = x.shape.as_list()[2], x.shape.as_list()[3]
    sy, sx = shift_matrix(ty, h), shift_matrix(tx, w)                          # [B, h, h], [B, w, w]
    out = tf.einsum("bik,bckl->bcil", sy, x)
    return tf.einsum("bcil,bjl->bcij", out, sx)


def cutout_mask(cy, cx, apply, h, w):
    """[B, 1, h, w] float: 0 inside the square of side (h/2, w/2) whose top-left is
    (cy - h/4, cx - w/4), for images where apply; 1 elsewhere."""
    ch, cw = h // 2, w // 2
    ys = tf.range(h)[None, :, None] - (cy - ch // 2)[:, None, None]            # [B, h, 1]
    xs = tf.range(w)[None, None, :] - (cx - cw // 2)[:, None, None]            # [B, 1, w]
    inside = tf.logical_and(tf.logical_and(ys >= 0, ys < ch), tf.logical_and(xs >= 0, xs < cw))
    inside = tf.logical_and(inside, apply[:, None, None])
    return 1.0 - tf.cast(inside, tf.float32)[:, None]


# ----------------------------------------------------------------------------
# Sampling.


def sample_params(x, policy, seed=None):
    """Random parameters of each op of a parsed policy for the batch of x: {name: tuple}."""
    b = tf.shape(x)[0]
    h, w = x.shape.as_list()[2], x.shape.as_list()[3]
    params = {}
    for name, value in policy:
        if name == "color":
            params[name] = tuple(tf.random_uniform([b], seed=seed) for _ in range(3))
        elif name == "translation":
            sy, sx = int(h * value + 0.5), int(w * value + 0.5)
            params[name] = (tf.random_uniform([b], -sy, sy + 1, dtype=tf.int32, seed=seed),
                            tf.random_uniform([b], -sx, sx + 1, dtype=tf.int32, seed=seed))
        elif name == "cutout":
            params[name] = (tf.random_uniform([b], 0, h + (1 - (h // 2) % 2), dtype=tf.int32, seed=seed),
                            tf.random_uniform([b], 0, w + (1 - (w // 2) % 2), dtype=tf.int32, seed=seed),
                            tf.random_uniform([b], seed=seed) < value)
    return params


def apply(x, policy, params):
    """The ops of a parsed policy on x [B, C, h, w] with the given parameters, in policy order."""
    for name, _value in policy:
        p = params[name]
        if name == "color":
            x = contrast(saturation(brightness(x, p[0]), p[1]), p[2])
        elif name == "translation":
            x = translate(x, p[0], p[1])
        elif name == "cutout":
            x = x * cutout_mask(p[0], p[1], p[2], x.shape.as_list()[2], x.shape.as_list()[3])
    return x


def diff_augment(x, policy):
    """x augmented with fresh random parameters; x itself when the policy is empty/None."""
    parsed = parse_policy(policy) if isinstance(policy, str) or policy is None else policy
    if not parsed:
        return x
    with tf.name_scope("DiffAugment"):
        return apply(x, parsed, sample_params(x, parsed))
