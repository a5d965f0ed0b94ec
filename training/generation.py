"""Generation and visualization from a trained generator (ours, official GANsformer or
official StyleGAN2 pickles): images from seeds, attention maps, interpolations, style
mixing and noise variation (REFERENCE.md §8). run_generator.py is the command line.

Everything streams in minibatches and writes each image as soon as it exists, so the
number of images does not grow host memory."""

import os

import numpy as np

from dnnlib.util import UserError
from training import window_attention
from training.visuals import blend, crop_to_ratio, render_maps, save_gif, save_image, save_image_grid, to_uint8

# ------------------------------------------------------------------------------------------
# A uniform view of the generator kinds.


class GeneratorView:
    """Wraps Gs with the calls generation needs, whichever code base built it.

    ws: the per-layer latents after mapping and truncation: [B, K, L, D] for GANsformer
    generators, [B, L, D] for StyleGAN2."""

    def __init__(self, Gs, batch_size=8):
        self.Gs = Gs
        self.batch_size = max(int(batch_size), 1)
        self.z_shape = list(Gs.input_shapes[0][1:])
        self.c_dim = int(Gs.input_shapes[1][1]) if len(Gs.input_shapes) > 1 and Gs.input_shapes[1] else 0
        nets = [Gs] + ([Gs.components.synthesis] if "synthesis" in Gs.components else [])
        accepts = lambda name: any(net.accepts_kwarg(name) for net in nets)
        self.gansformer = Gs.accepts_kwarg("take_ws")  # ours and official GANsformer (return_ws / take_ws)
        # Layout-to-image networks (GANsformer2) take (layout, segments) after the labels.
        self.layout_slots = int(Gs.input_shapes[2][1]) if "layout_in" in Gs.input_names else 0
        self.num_categories = Gs.static_kwargs.get("num_categories")
        # Maps [B, k, L_att, N, H, W]; generators without attention give none or k = 0.
        maps_shape = Gs.output_shapes[1] if len(Gs.output_shapes) > 1 else None
        self.has_maps = bool(maps_shape) and len(maps_shape) == 6 and maps_shape[1] != 0 and maps_shape[2] != 0
        if accepts("noise_mode"):
            self._noise = {"const": dict(noise_mode="const"), "random": dict(noise_mode="random")}
        elif accepts("randomize_noise"):
            self._noise = {"const": dict(randomize_noise=False), "random": dict(randomize_noise=True)}
        else:
            self._noise = {"const": {}, "random": {}}

    def latents(self, seeds):
        """z for each seed: RandomState(seed).randn(*z_shape) (StyleGAN2's convention)."""
        return np.stack([np.random.RandomState(seed).randn(*self.z_shape) for seed in seeds]).astype(np.float32)

    def labels(self, num, class_idx=None):
        if self.c_dim == 0:
            if class_idx is not None:
                raise UserError("--class: this network is unconditional (no labels)")
            return np.zeros([num, 0], np.float32)
        if class_idx is None:
            raise UserError("--class: this network is conditional on %d classes; give --class" % self.c_dim)
        if not 0 <= class_idx < self.c_dim:
            raise UserError("--class: %d is outside 0..%d" % (class_idx, self.c_dim - 1))
        labels = np.zeros([num, self.c_dim], np.float32)
        labels[:, class_idx] = 1
        return labels

    def _run(self, *arrays, noise="const", **kwargs):
        kwargs.update(self._noise[noise])
        return self.Gs.run(*arrays, minibatch_size=self.batch_size, return_as_list=True, **kwargs)

    def render(self, z, layout, segments, psi, noise="const"):
        """Images [B, C, H, W] of a layout-to-image network for z [B, S+1, Z] and layouts."""
        return _finite(self._run(z, self.labels(len(z)), layout, segments, truncation_psi=psi, noise=noise)[0])

    def images_and_maps(self, z, labels, psi, noise="const"):
        """(images [B, C, H, W] in [-1, 1], maps [B, k, L_att, N, H, W] or None)."""
        outs = self._run(z, labels, truncation_psi=psi, noise=noise)
        return _finite(outs[0]), (outs[1] if self.has_maps else None)

    def ws(self, z, labels, psi):
        """Truncated per-layer latents for z."""
        if self.gansformer:
            return self._run(z, labels, truncation_psi=psi, return_ws=True)[-1]
        if "synthesis" not in self.Gs.components:
            raise UserError("--space w: this network has no mapping network (no w space; TransGAN maps z "
                            "directly); use --space z")
        return self._run(z, labels, truncation_psi=psi, return_dlatents=True)[-1]

    def synthesize(self, ws, labels, noise="const"):
        """(images, maps or None) from per-layer latents."""
        if self.gansformer:
            outs = self._run(ws, labels, take_ws=True, noise=noise)
            return _finite(outs[0]), (outs[1] if self.has_maps else None)
        syn = self.Gs.components.synthesis
        kwargs = dict(self._noise[noise])
        return _finite(syn.run(ws, minibatch_size=self.batch_size, **kwargs)), None


def _finite(images):
    """NaN/Inf pixels would be saved as black: a damaged network is an error, not an image."""
    if not np.all(np.isfinite(images)):
        raise UserError("the network produced NaN/Inf pixels (damaged weights?); no image was written")
    return images


# ------------------------------------------------------------------------------------------
# The subcommands of run_generator.py. Each takes a GeneratorView and writes under outdir.


def batches(items, size):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def generate_images(view, seeds, outdir, truncation_psi=0.7, class_idx=None, ratio=1.0, grid=False):
    """seed%04d.png per seed (and grid.png of all of them with grid=True)."""
    os.makedirs(outdir, exist_ok=True)
    kept = []
    for chunk in batches(seeds, view.batch_size):
        images, _ = view.images_and_maps(view.latents(chunk), view.labels(len(chunk), class_idx), truncation_psi)
        images = to_uint8(crop_to_ratio(images, ratio))
        for seed, image in zip(chunk, images):
            save_image(image, os.path.join(outdir, "seed%04d.png" % seed))
        if grid:
            kept.append(images)
    if grid:
        save_image_grid(np.concatenate(kept), os.path.join(outdir, "grid.png"), drange=(0, 255))


def attention_maps(view, seeds, outdir, truncation_psi=0.7, class_idx=None, ratio=1.0, blending_alpha=0.3,
                   all_layers=True):
    """Attention of each pixel over the k latent components, a colour per component.

    Last attention layer, head 0 (REFERENCE §8): softmaps/ (probability-weighted colours),
    maps/ (colour of the most attended latent), softblends/ and blends/ (blended over the
    image). With all_layers: layer_maps/seed<s>/l<layer>_h<head>.png (soft) for every layer
    and head, and all.png (rows: layers, columns: heads, blended). TransGAN, without latent
    maps, gets its window self-attention instead (window_attention_maps)."""
    if not view.has_maps:
        if not window_attention.has_window_attention(view.Gs):
            raise UserError("attention-maps: this network has no attention maps (neither latents over image regions, "
                            "as GANsformer generators with transformer layers have, nor TransGAN's window "
                            "self-attention; StyleGAN2 has no attention); try generate-images")
        return window_attention_maps(view, seeds, outdir, class_idx, ratio, blending_alpha)
    for sub in ("softmaps", "maps", "softblends", "blends"):
        os.makedirs(os.path.join(outdir, sub), exist_ok=True)
    for chunk in batches(seeds, view.batch_size):
        images, maps = view.images_and_maps(view.latents(chunk), view.labels(len(chunk), class_idx), truncation_psi)
        images = crop_to_ratio(images, ratio)
        maps = crop_to_ratio(maps, ratio)                                          # [B, k, L_att, N, H, W]
        last = maps[:, :, -1, 0]                                                   # [B, k, H, W]
        outputs = dict(softmaps=render_maps(last, soft=True), maps=render_maps(last, soft=False))
        outputs["softblends"] = blend(outputs["softmaps"], images, blending_alpha)
        outputs["blends"] = blend(outputs["maps"], images, blending_alpha)
        for sub, rendered in outputs.items():
            for seed, image in zip(chunk, to_uint8(rendered)):
                save_image(image, os.path.join(outdir, sub, "seed%04d.png" % seed))
        if all_layers:
            _save_layer_maps(maps, images, chunk, outdir, blending_alpha)


def window_attention_maps(view, seeds, outdir, class_idx=None, ratio=1.0, blending_alpha=0.3):
    """TransGAN, which has no latent maps: window_attention/seed%04d.png, where each default
    query point (the centres of the image quadrants) attends in every generator block's window
    self-attention (rows: stage and block, narrowest stage at the top; columns: the image, then
    one per query)."""
    run = window_attention.attention_runner(view.Gs, view.z_shape, view.c_dim)
    folder = os.path.join(outdir, "window_attention")
    os.makedirs(folder, exist_ok=True)
    num_queries = len(window_attention.DEFAULT_QUERIES)
    for chunk in batches(seeds, view.batch_size):
        images, blocks = run(view.latents(chunk), view.labels(len(chunk), class_idx))
        for seed, tiles in zip(chunk, window_attention.render_seeds(_finite(images), blocks, blending_alpha)):
            window_attention.save_seed(tiles, os.path.join(folder, "seed%04d.png" % seed), num_queries, ratio)


def _save_layer_maps(maps, images, seeds, outdir, alpha):
    num_layers, num_heads = maps.shape[2], maps.shape[3]
    for i, seed in enumerate(seeds):
        folder = os.path.join(outdir, "layer_maps", "seed%04d" % seed)
        os.makedirs(folder, exist_ok=True)
        tiles = []
        for layer in range(num_layers):
            soft = render_maps(maps[i:i + 1, :, layer].transpose(2, 1, 0, 3, 4)[:, :, 0], soft=True)  # [N, 3, H, W]
            for head in range(num_heads):
                save_image(to_uint8(soft[head]), os.path.join(folder, "l%d_h%d.png" % (layer, head)))
            tiles.append(blend(soft, np.repeat(images[i:i + 1], num_heads, axis=0), alpha))
        save_image_grid(to_uint8(np.concatenate(tiles)), os.path.join(folder, "all.png"), drange=(0, 255),
                             grid_size=(num_heads, num_layers))


def slerp(a, b, t):
    """Spherical interpolation along the last axis (per latent component); lerp where a
    and b are (anti)parallel."""
    a_n = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b_n = b / np.linalg.norm(b, axis=-1, keepdims=True)
    omega = np.arccos(np.clip(np.sum(a_n * b_n, axis=-1, keepdims=True), -1, 1))
    sin = np.sin(omega)
    safe = np.where(sin > 1e-6, sin, 1.0)
    out = (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / safe
    return np.where(sin > 1e-6, out, a + (b - a) * t)


def interpolate(view, seeds, outdir, space="z", component=None, density=8, truncation_psi=0.7, class_idx=None,
                ratio=1.0):
    """Frames between consecutive seeds: slerp in z or lerp in w; all latents at once, or
    only latent `component` (the others stay at the first seed's). For each pair
    <a>-<b>: frame%03d.png, strip.png (the frames in a row) and anim.gif (50 ms)."""
    if len(seeds) < 2:
        raise UserError("interpolate: --seeds needs at least two seeds (e.g. 1,2 or 1-4)")
    if space not in ("z", "w"):
        raise UserError("interpolate: --space must be z or w, not %r" % space)
    if density < 2:
        raise UserError("interpolate: --density must be at least 2 (frames per pair), not %d" % density)
    num_latents = view.z_shape[0] if len(view.z_shape) == 2 else 1
    if component is not None and not 0 <= component < num_latents:
        raise UserError("interpolate: --component %d is outside 0..%d (this network has %d latent components)"
                        % (component, num_latents - 1, num_latents))
    if component is not None and num_latents == 1:
        component = None
    ts = np.linspace(0, 1, density, dtype=np.float32)
    name = "interpolations-%s%s" % (space, "" if component is None else "-c%d" % component)
    for a, b in zip(seeds[:-1], seeds[1:]):
        z = view.latents([a, b])
        labels = view.labels(density, class_idx)
        if space == "z":
            ends = z if len(view.z_shape) == 2 else z[:, np.newaxis]                # [2, K, z]
            frames = np.stack([slerp(ends[0], ends[1], t) for t in ts])           # [F, K, z]
            if component is not None:
                frames[:, np.arange(num_latents) != component] = ends[0][np.arange(num_latents) != component]
            images, _ = view.images_and_maps(frames.reshape([density] + view.z_shape), labels, truncation_psi)
        else:
            ws = view.ws(z, view.labels(2, class_idx), truncation_psi)            # [2, K, L, D] or [2, L, D]
            frames = np.stack([ws[0] + (ws[1] - ws[0]) * t for t in ts])
            if component is not None:
                keep = np.arange(num_latents) != component
                frames[:, keep] = ws[0][keep]
            images, _ = view.synthesize(frames, labels)
        images = to_uint8(crop_to_ratio(images, ratio))
        folder = os.path.join(outdir, name, "%d-%d" % (a, b))
        os.makedirs(folder, exist_ok=True)
        for i, image in enumerate(images):
            save_image(image, os.path.join(folder, "frame%03d.png" % i))
        save_image_grid(images, os.path.join(folder, "strip.png"), drange=(0, 255), grid_size=(density, 1))
        save_gif(images, os.path.join(folder, "anim.gif"))


def style_mixing_example(view, row_seeds, col_seeds, col_styles, outdir, truncation_psi=0.7, class_idx=None,
                         ratio=1.0):
    """<row>-<col>.png: the row seed's latents with the layers col_styles taken from the
    column seed's (all latent components together), and grid.png with the originals in the
    first row and column and a black corner."""
    seeds = list(dict.fromkeys(row_seeds + col_seeds))
    ws = {}
    for chunk in batches(seeds, view.batch_size):
        for seed, w in zip(chunk, view.ws(view.latents(chunk), view.labels(len(chunk), class_idx), truncation_psi)):
            ws[seed] = w
    num_layers = next(iter(ws.values())).shape[-2]
    bad = [s for s in col_styles if s >= num_layers]
    if bad:
        raise UserError("style-mixing-example: --col-styles %s outside 0..%d (this network has %d layers)"
                        % (bad, num_layers - 1, num_layers))
    os.makedirs(outdir, exist_ok=True)
    rendered = {}
    originals, _ = view.synthesize(np.stack([ws[s] for s in seeds]), view.labels(len(seeds), class_idx))
    originals = dict(zip(seeds, to_uint8(crop_to_ratio(originals, ratio))))
    pairs = [(r, c) for r in row_seeds for c in col_seeds]
    for chunk in batches(pairs, view.batch_size):
        mixed = np.stack([ws[r] for r, _ in chunk])
        mixed[..., col_styles, :] = np.stack([ws[c] for _, c in chunk])[..., col_styles, :]
        images, _ = view.synthesize(mixed, view.labels(len(chunk), class_idx))
        for (r, c), image in zip(chunk, to_uint8(crop_to_ratio(images, ratio))):
            save_image(image, os.path.join(outdir, "%d-%d.png" % (r, c)))
            rendered[(r, c)] = image
    blank = np.zeros_like(originals[seeds[0]])
    grid = [blank] + [originals[c] for c in col_seeds]
    for r in row_seeds:
        grid += [originals[r]] + [rendered[(r, c)] for c in col_seeds]
    save_image_grid(np.stack(grid), os.path.join(outdir, "grid.png"), drange=(0, 255),
                         grid_size=(len(col_seeds) + 1, len(row_seeds) + 1))


def noise_variation(view, seeds, outdir, num_samples=16, truncation_psi=0.7, class_idx=None, ratio=1.0):
    """For each seed, the same latents with num_samples draws of the per-pixel noise:
    seed%04d.png (the samples in a grid) and seed%04d-std.png (per-pixel standard
    deviation of the channel mean over the samples, x4, as gray)."""
    if num_samples < 2:
        raise UserError("noise-variation: --num-samples must be at least 2, not %d" % num_samples)
    os.makedirs(outdir, exist_ok=True)
    for seed in seeds:
        ws = view.ws(view.latents([seed]), view.labels(1, class_idx), truncation_psi)
        repeated = np.repeat(ws, num_samples, axis=0)
        images, _ = view.synthesize(repeated, view.labels(num_samples, class_idx), noise="random")
        images = crop_to_ratio(images, ratio)
        save_image_grid(to_uint8(images), os.path.join(outdir, "seed%04d.png" % seed), drange=(0, 255))
        std = images.mean(axis=1).std(axis=0)                                      # [H, W] in [-1, 1] units
        save_image(to_uint8(np.clip(4 * std, 0, 1)[np.newaxis], drange=(0, 1)),
                   os.path.join(outdir, "seed%04d-std.png" % seed))
