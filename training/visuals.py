"""Sample grids written during training: fakes from Gs and, for the GANsformer, a soft
colouring of which latent each pixel attends to."""

import colorsys
import os

import numpy as np


def latent_palette(k):
    """k distinct RGB colours in [0, 255] (evenly spaced hues)."""
    return np.array([colorsys.hsv_to_rgb(i / max(k, 1), 0.75, 1.0) for i in range(k)],
                    np.float32) * 255.0


def render_attention(maps, layer=None):
    """maps [B, k, L_att, N, H, W] -> uint8 RGB [B, 3, H, W]: each pixel coloured by the
    attention-weighted mean of the latents' colours (heads averaged, one layer; None = the
    layer whose attention is most decided, i.e. the highest mean max-probability)."""
    if layer is None:
        per_layer = maps.mean(axis=3)                              # [B, k, L, H, W]
        layer = int(np.argmax(per_layer.max(axis=1).mean(axis=(0, 2, 3))))
    probs = maps[:, :, layer].mean(axis=2)                         # [B, k, H, W]
    probs = probs / np.maximum(probs.sum(axis=1, keepdims=True), 1e-8)
    palette = latent_palette(probs.shape[1])                       # [k, 3]
    rgb = np.einsum("bkhw,kc->bchw", probs, palette)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def has_attention_maps(maps):
    return maps is not None and getattr(maps, "ndim", 0) == 6 and maps.shape[1] > 0


def save_fakes(Gs, latents, labels, run_dir, tag, grid_size, G_args=None):
    """fakes<tag>.png and, when G returns attention maps, attention<tag>.png."""
    from training import misc
    outs = Gs.run(latents, labels, is_validation=True, minibatch_size=8, return_as_list=True)
    images = outs[0]
    misc.save_image_grid(images, os.path.join(run_dir, "fakes%s.png" % tag), drange=(-1, 1),
                         grid_size=grid_size)
    maps = outs[1] if len(outs) > 1 else None
    if has_attention_maps(maps):
        misc.save_image_grid(render_attention(maps), os.path.join(run_dir, "attention%s.png" % tag),
                             drange=(0, 255), grid_size=grid_size)
