"""Images on disk: dynamic range, grids, PIL conversion, atomic PNG/GIF output, cropping to
an aspect ratio, and the rendering of attention maps (a colour per latent component) shared
by the training loop's attention grids and run_generator.py's attention maps, and of scene
layouts (a colour per segment, the same palette) for dataset_tool's display and extract.

Numpy and Pillow only (no TensorFlow); training.misc re-exports the StyleGAN2 names
(adjust_dynamic_range, create_image_grid, convert_to_pil_image, save_image_grid) that
official code imports from it."""

import colorsys
import os

import numpy as np
import PIL.Image

from dnnlib.util import atomic_write

# ------------------------------------------------------------------------------------------
# Dynamic range, grids, files (numpy, NCHW).


def adjust_dynamic_range(data, drange_in, drange_out):
    """Linearly map values from drange_in (lo, hi) to drange_out (lo, hi), in float32."""
    if tuple(drange_in) != tuple(drange_out):
        scale = (np.float32(drange_out[1]) - np.float32(drange_out[0])) / (
            np.float32(drange_in[1]) - np.float32(drange_in[0]))
        bias = np.float32(drange_out[0]) - np.float32(drange_in[0]) * scale
        data = data * scale + bias
    return data


def to_uint8(images, drange=(-1, 1)):
    """Float NCHW in drange -> uint8 NCHW (rounded, clipped)."""
    images = adjust_dynamic_range(np.asarray(images, np.float32), drange, (0, 255))
    return np.rint(images).clip(0, 255).astype(np.uint8)


def create_image_grid(images, grid_size=None):
    """Tile images [N, C, H, W] (or [N, H, W]) row by row into one [C, gh*H, gw*W] image.
    grid_size (gw, gh) defaults to gw = ceil(sqrt(N)), gh = ceil(N / gw); empty cells are 0."""
    images = np.asarray(images)
    if images.ndim not in (3, 4):
        raise ValueError(f"images must be [N, C, H, W] or [N, H, W], got shape {images.shape}")
    num, img_h, img_w = images.shape[0], images.shape[-2], images.shape[-1]
    if grid_size is not None:
        grid_w, grid_h = (int(v) for v in grid_size)
    else:
        grid_w = max(int(np.ceil(np.sqrt(num))), 1)
        grid_h = max((num - 1) // grid_w + 1, 1)
    if grid_w * grid_h < num:
        raise ValueError(f"grid_size {grid_w}x{grid_h} holds fewer than {num} images")
    grid = np.zeros(list(images.shape[1:-2]) + [grid_h * img_h, grid_w * img_w], dtype=images.dtype)
    for idx in range(num):
        x, y = (idx % grid_w) * img_w, (idx // grid_w) * img_h
        grid[..., y:y + img_h, x:x + img_w] = images[idx]
    return grid


def convert_to_pil_image(image, drange=(0, 1)):
    """A CHW (C = 1, 3, 4) or HW float image in drange as a PIL image (rounded to uint8)."""
    image = np.asarray(image)
    if image.ndim == 3:
        if image.shape[0] == 1:
            image = image[0]
        elif image.shape[0] in (3, 4):
            image = image.transpose(1, 2, 0)  # CHW -> HWC
        else:
            raise ValueError(f"image must have 1, 3 or 4 channels (CHW), got shape {image.shape}")
    elif image.ndim != 2:
        raise ValueError(f"image must be CHW or HW, got shape {image.shape}")
    image = adjust_dynamic_range(image.astype(np.float32), drange, [0, 255])
    image = np.rint(image).clip(0, 255).astype(np.uint8)
    mode = "L" if image.ndim == 2 else {3: "RGB", 4: "RGBA"}[image.shape[2]]
    return PIL.Image.fromarray(image, mode)


def save_image_grid(images, filename, drange=(0, 1), grid_size=None):
    """Save images [N, C, H, W] in drange as one grid image, atomically; the format comes
    from the file extension."""
    pil = convert_to_pil_image(create_image_grid(images, grid_size), drange)
    ext = os.path.splitext(filename)[1].lower()
    fmt = PIL.Image.registered_extensions().get(ext)
    if fmt is None:
        raise ValueError(f"filename: unknown image extension '{ext}' in {filename}")
    atomic_write(filename, lambda file: pil.save(file, format=fmt))


def save_image(image_u8, path):
    """Save one uint8 CHW image (1, 3 or 4 channels) atomically."""
    save_image_grid(image_u8[np.newaxis], path, drange=(0, 255), grid_size=(1, 1))


def save_gif(frames_u8, path, duration_ms=50):
    """Save uint8 CHW frames as an animated GIF (looping), atomically."""
    pils = [convert_to_pil_image(frame, drange=(0, 255)).convert("RGB") for frame in frames_u8]
    atomic_write(path, lambda file: pils[0].save(file, format="GIF", save_all=True, append_images=pils[1:],
                                                 duration=duration_ms, loop=0))


# ------------------------------------------------------------------------------------------
# Cropping to an aspect ratio.


def ratio_rows(height, width, ratio):
    """(start, end) rows of the centre crop with height = round(ratio * width), as the networks
    build non-square images (h = ratio * w, exact at power-of-two widths since 4 * ratio is an
    integer) and the datasets pad them (REFERENCE §6); exact, unlike official bug 10.2-9.
    Images already at (or below) that height keep all their rows."""
    if not 0 < ratio <= 1:
        raise ValueError("ratio must be in (0, 1], got %r" % ratio)
    rows = max(min(int(round(width * ratio)), height), 1)
    start = (height - rows) // 2
    return start, start + rows


def crop_to_ratio(images, ratio):
    """The centre rows of images [..., H, W] (numpy, or TF with static H and W) for aspect ratio
    height/width = `ratio` (see ratio_rows); None or 1: unchanged."""
    if ratio is None or ratio == 1.0:
        return images
    height, width = int(images.shape[-2]), int(images.shape[-1])
    start, end = ratio_rows(height, width, ratio)
    if end - start == height:
        return images
    return images[..., start:end, :]


# ------------------------------------------------------------------------------------------
# Attention maps: a distinct colour per latent component.


def palette(k):
    """k colours evenly spaced in hue (HLS, lightness 0.5, saturation 0.8), RGB in [-1, 1]."""
    rgb = [colorsys.hls_to_rgb(i / max(k, 1), 0.5, 0.8) for i in range(k)]
    return np.array(rgb, np.float32) * 2 - 1                                        # [k, 3]


def render_maps(probs, soft=True):
    """probs [B, k, H, W] (attention over the k latents per pixel) -> RGB [B, 3, H, W] in
    [-1, 1]: soft = probability-weighted mean of the latents' colours, hard = the colour
    of the most attended latent."""
    probs = np.asarray(probs, np.float32)
    colours = palette(probs.shape[1])
    if soft:
        weights = probs / np.maximum(probs.sum(axis=1, keepdims=True), 1e-8)
    else:
        weights = np.eye(probs.shape[1], dtype=np.float32)[probs.argmax(axis=1)]    # [B, H, W, k]
        weights = weights.transpose(0, 3, 1, 2)
    return np.einsum("bkhw,kc->bchw", weights, colours)


def blend(maps_rgb, images, alpha):
    """(1 - alpha) * map + alpha * image, both in [-1, 1]; grayscale images become RGB."""
    if images.shape[1] == 1:
        images = np.repeat(images, 3, axis=1)
    return (1 - alpha) * maps_rgb + alpha * images[:, :3]


def render_attention(maps, layer=-1):
    """maps [B, k, L_att, N, H, W] -> uint8 RGB [B, 3, H, W]: each pixel coloured by the
    attention-weighted mean of the latents' colours (heads averaged, one layer). Default: the
    last layer, the one attn_scenes scores and attention-maps shows (issue 15: a more decided
    middle layer of the main job was a fixed positional partition, the same in every image,
    while the last layer is where regions follow objects); None = the most decided layer
    (highest mean max-probability)."""
    if layer is None:
        per_layer = maps.mean(axis=3)                              # [B, k, L, H, W]
        layer = int(np.argmax(per_layer.max(axis=1).mean(axis=(0, 2, 3))))
    probs = maps[:, :, layer].mean(axis=2)                         # [B, k, H, W]
    return to_uint8(render_maps(probs, soft=True))


def has_attention_maps(maps):
    return maps is not None and getattr(maps, "ndim", 0) == 6 and maps.shape[1] > 0


# ------------------------------------------------------------------------------------------
# Scene layouts (GANsformer2): a colour per segment, the attention maps' palette.


def layout_palette(num_segments):
    """uint8 [K+1, 3]: black for the background (0), then palette(K) for segments 1..K."""
    colours = to_uint8(palette(num_segments).reshape(num_segments, 3, 1, 1)).reshape(num_segments, 3)
    return np.concatenate([np.zeros([1, 3], np.uint8), colours])


def render_layout(segments, num_segments):
    """Segment maps [B, H, W] (0 = background, 1..K) -> uint8 RGB [B, 3, H, W]; colours depend only
    on the segment index and K, so one dataset's layouts share a colour key."""
    segments = np.asarray(segments)
    return layout_palette(num_segments)[segments.clip(0, num_segments)].transpose(0, 3, 1, 2)


def layout_to_pil(segments, num_segments):
    """One [H, W] segment map as a palette ("P") PIL image: viewers show the colours, and reading a
    saved PNG as an index image gives the segment ids back (dataset_tool create_from_images --layouts)."""
    pil = PIL.Image.fromarray(np.asarray(segments, np.uint8), "P")
    pil.putpalette(layout_palette(num_segments).reshape(-1).tolist())
    return pil


# ------------------------------------------------------------------------------------------
# Sample grids written during training.


def save_fakes(Gs, latents, cond, run_dir, tag, grid_size, G_args=None):
    """fakes<tag>.png and, when G returns attention maps, attention<tag>.png (coloured as
    run_generator.py's attention maps). cond: labels, or (labels, layout [B,S,H,W], segments) for
    a layout family, whose grid layouts are written once as layouts.png beside the fakes."""
    cond = tuple(cond) if isinstance(cond, (tuple, list)) else (cond,)
    outs = Gs.run(latents, *cond, is_validation=True, minibatch_size=8, return_as_list=True)
    images = outs[0]
    save_image_grid(images, os.path.join(run_dir, "fakes%s.png" % tag), drange=(-1, 1), grid_size=grid_size)
    maps = outs[1] if len(outs) > 1 else None
    if has_attention_maps(maps):
        save_image_grid(render_attention(maps), os.path.join(run_dir, "attention%s.png" % tag),
                        drange=(0, 255), grid_size=grid_size)
    layouts_png = os.path.join(run_dir, "layouts.png")
    if len(cond) > 1 and not os.path.exists(layouts_png):
        layout = np.asarray(cond[1])
        save_image_grid(render_layout(layout.argmax(axis=1), layout.shape[1] - 1), layouts_png, drange=(0, 255),
                        grid_size=grid_size)
