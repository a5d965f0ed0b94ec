"""Attention structure of GANsformer generators (attn_scenes): does each pixel attend to one
latent, and do the latents' regions follow the objects of the generated image?

For each generated image and attention layer (heads averaged; the maps are G's maps_out
[B, k, La, N, h, w], the probability of each pixel over the k region latents):
  maxprob  mean over pixels of the largest probability (1/k: uniform, 1: one latent per pixel)
  entropy  mean over pixels of the entropy over latents, in nats (log k: uniform, 0: one-hot)
  ari      adjusted Rand index between the argmax-latent partition of the pixels and the
           image's object partition (background + one segment per object), per image;
           images with no object pixels have nothing to agree with and are left out
  fgari    the same on object pixels only (the "FG-ARI" of object-discovery papers: does each
           object get its own latent, whatever the background does); images with fewer than 2
           object pixels are left out
  nmi      normalized mutual information (arithmetic mean normalisation) of the same two
           partitions as ari
ARI and NMI are computed here in numpy (no scikit-learn). With no image to score (e.g. an
untrained G draws no objects) ari/fgari/nmi are 0: no agreement was observed.

What the numbers mean, measured on 500 real 32x32 scenes with one-hot partitions in place of
attention: purely positional regions (2x4 blocks) give ari 0.02, fgari 0.35 (objects far apart
fall in different blocks); object vs background alone gives ari 0.96, fgari 0.10; one region
per object gives 1 and 1. So ari mostly says whether objects and background get different
latents, and fgari whether objects get different latents from each other, above the
positional 0.35. An untrained main-job G scores ari and fgari about 0.05.

The object partition uses how the embedded scenes are drawn (training/data/scenes.py):
background channels stay in [BG_LOW, BG_HIGH] and every palette colour has a channel >= 170,
so a pixel whose brightest channel is above the midpoint is an object pixel, and objects in
one scene have distinct palette colours, so an object pixel's segment is its nearest palette
colour. The layer reported is the last (at the output resolution, as run_generator.py's
attention maps), unless `layer` picks another; None picks the most decided one (highest mean
maxprob, as the training loop's attention grids do), which is noisier: trained main-job
generators show their object structure in the last layer while an earlier one is more decided."""

import numpy as np
import tensorflow.compat.v1 as tf

import dnnlib.tflib as tflib
from dnnlib.util import UserError
from metrics import metric_base
from training.data import scenes
from training.visuals import crop_to_ratio

# Halfway between the brightest background channel (110) and the dimmest palette colour's
# brightest channel (170).
OBJECT_LEVEL = (scenes.BG_HIGH + int(scenes.PALETTE.max(axis=1).min())) / 2.0

# ------------------------------------------------------------------------------------------
# Partitions and their agreement (numpy).


def object_segments(images_u8):
    """uint8 [B, 3, H, W] scenes -> int [B, H, W]: 0 background, 1 + nearest palette index for
    object pixels (brightest channel above OBJECT_LEVEL)."""
    images = np.asarray(images_u8, np.float32)
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError("images must be [B, 3, H, W], got shape %s" % (images.shape,))
    is_object = images.max(axis=1) > OBJECT_LEVEL                                  # [B, H, W]
    dist = np.square(images[:, np.newaxis] - scenes.PALETTE.astype(np.float32)[np.newaxis, :, :, None, None])
    nearest = dist.sum(axis=2).argmin(axis=1)                                       # [B, H, W]
    return np.where(is_object, nearest + 1, 0)


def _contingency(a, b):
    """Contingency table [Ca, Cb] of two flat integer labelings (labels renumbered)."""
    _, a = np.unique(a, return_inverse=True)
    _, b = np.unique(b, return_inverse=True)
    nb = int(b.max()) + 1 if b.size else 1
    table = np.bincount(a * nb + b, minlength=(int(a.max()) + 1 if a.size else 1) * nb)
    return table.reshape(-1, nb).astype(np.float64)


def adjusted_rand_index(a, b):
    """ARI (Hubert & Arabie 1985) of two labelings of the same items: 1 for identical
    partitions (up to renaming), about 0 for independent ones. Two single-cluster labelings
    give 1 (scikit-learn's convention)."""
    a, b = np.ravel(a), np.ravel(b)
    if a.shape != b.shape:
        raise ValueError("labelings differ in size: %d vs %d" % (a.size, b.size))
    table = _contingency(a, b)
    pairs = lambda n: n * (n - 1) / 2
    index = pairs(table).sum()
    sum_a, sum_b = pairs(table.sum(axis=1)).sum(), pairs(table.sum(axis=0)).sum()
    expected = sum_a * sum_b / max(pairs(float(a.size)), 1.0)
    max_index = (sum_a + sum_b) / 2
    if max_index == expected:   # Both partitions trivial (one cluster, or all singletons) and equal.
        return 1.0
    return float((index - expected) / (max_index - expected))


def normalized_mutual_info(a, b):
    """NMI = I(a; b) / mean(H(a), H(b)) in [0, 1]; 1 when both labelings are one cluster."""
    table = _contingency(np.ravel(a), np.ravel(b))
    p = table / table.sum()
    pa, pb = p.sum(axis=1), p.sum(axis=0)
    h = lambda q: -np.sum(q[q > 0] * np.log(q[q > 0]))
    ha, hb = h(pa), h(pb)
    if ha == 0 and hb == 0:
        return 1.0
    nz = p > 0
    mutual = np.sum(p[nz] * np.log(p[nz] / np.outer(pa, pb)[nz]))
    return float(max(mutual, 0.0) / ((ha + hb) / 2))


def attention_stats(probs, segments):
    """Per image, of one layer's attention probs [B, k, H, W] (over the k latents) against
    object segments [B, H, W] (0 = background): dict of [B] arrays maxprob, entropy (nats),
    ari, fgari, nmi; NaN where an image is left out (see the module docstring)."""
    probs = np.asarray(probs, np.float64)
    probs = probs / np.maximum(probs.sum(axis=1, keepdims=True), 1e-12)
    logs = np.log(np.maximum(probs, 1e-30))
    stats = dict(maxprob=probs.max(axis=1).mean(axis=(1, 2)), entropy=-(probs * logs).sum(axis=1).mean(axis=(1, 2)))
    argmax = probs.argmax(axis=1)                                                    # [B, H, W]
    ari, fgari, nmi = (np.full(len(probs), np.nan) for _ in range(3))
    for i, (regions, objects) in enumerate(zip(argmax, segments)):
        regions, objects = regions.ravel(), np.ravel(objects)
        fg = objects > 0
        if fg.any():
            ari[i] = adjusted_rand_index(regions, objects)
            nmi[i] = normalized_mutual_info(regions, objects)
        if fg.sum() >= 2:
            fgari[i] = adjusted_rand_index(regions[fg], objects[fg])
    stats.update(ari=ari, fgari=fgari, nmi=nmi)
    return stats


def attention_maps_shape(Gs):
    """Gs's maps_out shape [B, k, La, N, h, w]; UserError when it has no latent-to-region maps."""
    shape = Gs.output_shapes[1] if len(Gs.output_shapes) > 1 else None
    if shape is None or len(shape) != 6 or not shape[1] or not shape[2]:
        raise UserError("attn_scenes: this network has no attention maps of latents over image regions (only "
                        "GANsformer generators with transformer layers have them; StyleGAN2 has none and "
                        "TransGAN's self-attention is among image tokens)")
    return shape

# ------------------------------------------------------------------------------------------


class AttentionStructure(metric_base.MetricBase):
    """attn_scenes: attention concentration and agreement of regions with objects (see above)."""

    def __init__(self, layer=-1, **kwargs):
        super().__init__(**kwargs)
        self.layer = layer  # An index into La (-1: the last); None: the most decided layer.

    def _evaluate(self, Gs, Gs_kwargs, num_gpus):
        del num_gpus  # One tower: the maps travel to the host, which does the work.
        attention_maps_shape(Gs)
        latents = tf.random_normal([self.minibatch_per_gpu] + Gs.input_shape[1:])
        cond = self._fake_cond_tf(Gs, self.minibatch_per_gpu)
        images, maps = Gs.get_output_for(latents, *cond, return_as_list=True, **Gs_kwargs)[:2]
        images = tflib.convert_images_to_uint8(crop_to_ratio(tf.cast(images, tf.float32), self._get_ratio()))
        maps = crop_to_ratio(tf.reduce_mean(tf.cast(maps, tf.float32), axis=3), self._get_ratio())  # [B, k, La, h, w]
        per_layer = None        # {stat: list over layers of [num_images] arrays}
        done = 0
        self._start_progress("fakes")
        while done < self.num_images:
            images_np, maps_np = tflib.run([images, maps])
            take = min(self.num_images - done, len(images_np))
            if images_np.shape[1] != 3:
                raise UserError("attn_scenes: needs RGB scenes, the generator makes %d-channel images"
                                % images_np.shape[1])
            segments = object_segments(images_np[:take])
            if maps_np.shape[-2:] != segments.shape[-2:]:
                raise UserError("attn_scenes: maps of %s pixels do not match images of %s"
                                % (maps_np.shape[-2:], segments.shape[-2:]))
            layers = [attention_stats(maps_np[:take, :, l], segments) for l in range(maps_np.shape[2])]
            if per_layer is None:
                per_layer = {key: [[] for _ in layers] for key in layers[0]}
            for l, stats in enumerate(layers):
                for key, value in stats.items():
                    per_layer[key][l].append(value)
            done += take
            self._report_progress("fakes", done, self.num_images)

        per_layer = {key: [np.concatenate(v) for v in lists] for key, lists in per_layer.items()}
        layer = self.layer if self.layer is not None else int(np.argmax([v.mean() for v in per_layer["maxprob"]]))
        for key in ("maxprob", "entropy", "ari", "fgari", "nmi"):
            values = per_layer[key][layer]
            values = values[np.isfinite(values)]
            self._report_result(values.mean() if len(values) else 0.0, suffix="_" + key)
        self._report_result(layer % len(per_layer["maxprob"]), suffix="_layer", fmt="%-3d")
