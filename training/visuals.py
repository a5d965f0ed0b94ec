"""Sample grids written during training: fakes from Gs and, for the GANsformer, which latent
each pixel attends to (coloured as run_generator.py's attention maps: training.generation)."""

import os

import numpy as np

from training import generation, misc


def render_attention(maps, layer=None):
    """maps [B, k, L_att, N, H, W] -> uint8 RGB [B, 3, H, W]: each pixel coloured by the
    attention-weighted mean of the latents' colours (heads averaged, one layer; None = the
    layer whose attention is most decided, i.e. the highest mean max-probability, since early
    in training the last layer is still nearly uniform)."""
    if layer is None:
        per_layer = maps.mean(axis=3)                              # [B, k, L, H, W]
        layer = int(np.argmax(per_layer.max(axis=1).mean(axis=(0, 2, 3))))
    probs = maps[:, :, layer].mean(axis=2)                         # [B, k, H, W]
    return generation.to_uint8(generation.render_maps(probs, soft=True))


def has_attention_maps(maps):
    return maps is not None and getattr(maps, "ndim", 0) == 6 and maps.shape[1] > 0


def save_fakes(Gs, latents, labels, run_dir, tag, grid_size, G_args=None):
    """fakes<tag>.png and, when G returns attention maps, attention<tag>.png."""
    outs = Gs.run(latents, labels, is_validation=True, minibatch_size=8, return_as_list=True)
    images = outs[0]
    misc.save_image_grid(images, os.path.join(run_dir, "fakes%s.png" % tag), drange=(-1, 1),
                         grid_size=grid_size)
    maps = outs[1] if len(outs) > 1 else None
    if has_attention_maps(maps):
        misc.save_image_grid(render_attention(maps), os.path.join(run_dir, "attention%s.png" % tag),
                             drange=(0, 255), grid_size=grid_size)
