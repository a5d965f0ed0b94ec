"""TransGAN's grid self-attention as pictures: where a query pixel looks, per stage and block.

TransGAN has no latents attending over image regions (what `run_generator.py attention-maps`
shows for the GANsformer), but each generator block's self-attention among image tokens is
worth seeing. The probabilities are read from the softmax ops of a graph built here, found by
op type and name, so TransGAN pickles of any age (they carry their own module source) work.

Shapes: B batch, G windows per image, N heads, T = W*W tokens per window (W window side),
Q query points, w token-grid width of a stage, R image width."""

import re

import numpy as np
import tensorflow.compat.v1 as tf

from training.visuals import blend, crop_to_ratio, save_image_grid, to_uint8

# The self-attention softmax of block b at stage w: `stage<w>x<w>/block<b>/attention/self/Softmax`
# (TF may suffix a scope with _<n> when a graph builds G twice). Cross-attention lives in
# `block<b>/cross_attention/`, which the `/attention/` part excludes.
SOFTMAX_NAME = re.compile(r"stage(\d+)x\d+(?:_\d+)?/block(\d+)(?:_\d+)?/attention(?:_\d+)?/self(?:_\d+)?/Softmax$")

# Default query points as (row, column) fractions of the image: the centres of its quadrants.
DEFAULT_QUERIES = ((0.25, 0.25), (0.25, 0.75), (0.75, 0.25), (0.75, 0.75))


# ------------------------------------------------------------------------------------------
# Numpy: one block's window probabilities -> heat maps over the token grid.


def window_heatmaps(probs, batch, width, window, queries):
    """probs [B*G, N, T, T] of one block, windows ordered as networks_transgan.window_partition
    (row-major over windows, each row-major) -> [B, Q, w, w]: for each query token (row, col)
    the head-averaged attention over the grid; zero outside the query's window, which the
    query cannot see."""
    per_row = width // window                                                     # windows per grid row
    probs = np.asarray(probs, np.float32).mean(axis=1)                            # [B*G, T, T]
    probs = probs.reshape(batch, per_row, per_row, window * window, window * window)
    maps = np.zeros([batch, len(queries), width, width], np.float32)
    for q, (row, col) in enumerate(queries):
        wy, wx = row // window, col // window
        token = (row % window) * window + col % window                            # index inside the window
        cells = probs[:, wy, wx, token].reshape(batch, window, window)            # [B, W, W]
        maps[:, q, wy * window:(wy + 1) * window, wx * window:(wx + 1) * window] = cells
    return maps


# ------------------------------------------------------------------------------------------
# TensorFlow: find the softmax ops.


def _matching_softmaxes(ops):
    """[(stage width, block, probs tensor)] of the self-attention softmaxes among ops."""
    found = []
    for op in ops:
        match = SOFTMAX_NAME.search(op.name) if op.type == "Softmax" else None
        if match:
            found.append((int(match.group(1)), int(match.group(2)), op.outputs[0]))
    return sorted(found, key=lambda item: item[:2])


def has_window_attention(Gs):
    """Whether Gs is a TransGAN-style generator: its template graph has block self-attention.
    (The build module's name cannot tell: an unpickled network's module is an anonymous copy.)"""
    return bool(_matching_softmaxes(Gs.list_ops()))


def window_attention_tensors(Gs, latents, labels):
    """Build Gs on latents and labels in the default graph -> (images [B, C, R, R],
    [(stage width, block, probs [B*G, N, T, T])] bottom stage first). Only the ops this call
    adds are searched, so the template and earlier builds do not count twice."""
    graph = tf.get_default_graph()
    start = len(graph.get_operations())
    images = Gs.get_output_for(latents, labels, is_validation=True, return_as_list=True)[0]
    return images, _matching_softmaxes(graph.get_operations()[start:])


# ------------------------------------------------------------------------------------------
# Rendering: one PNG per seed, rows (stage, block), columns the image then each query.


def heat_colours(values):
    """[..., H, W] in [0, 1] -> RGB [..., 3, H, W] in [-1, 1]: black -> red -> yellow."""
    red, green = np.clip(2 * values, 0, 1), np.clip(2 * values - 1, 0, 1)
    return np.stack([red, green, np.zeros_like(values)], axis=-3) * 2 - 1


def mark_point(tile, row, col):
    """A green cross (arms about R/32, at least 1 pixel) on an RGB tile [3, H, W] in [-1, 1]."""
    arm = max(1, tile.shape[-1] // 32)
    green = np.array([-1, 1, -1], np.float32)[:, None]
    tile[:, row, max(col - arm, 0):col + arm + 1] = green
    tile[:, max(row - arm, 0):row + arm + 1, col] = green


def query_pixels(resolution, queries=DEFAULT_QUERIES):
    """(row, col) pixels of fractional query points."""
    return [(min(int(fy * resolution), resolution - 1), min(int(fx * resolution), resolution - 1))
            for fy, fx in queries]


def render_block(image, heat, pixels, alpha):
    """One row: image [C, R, R] in [-1, 1] and heat [Q, w, w] -> tiles [1+Q, 3, R, R] in [-1, 1]:
    the image, then each map nearest-upsampled (a token covers its patch of pixels), scaled to
    its maximum, coloured, blended with the image (alpha = image weight), its query marked."""
    scale = image.shape[-1] // heat.shape[-1]
    heat = heat.repeat(scale, axis=-2).repeat(scale, axis=-1)                     # [Q, R, R]
    heat = heat / np.maximum(heat.max(axis=(1, 2), keepdims=True), 1e-12)
    images = np.repeat(image[None], len(pixels) + 1, axis=0)                      # [1+Q, C, R, R]
    colours = np.concatenate([np.zeros([1, 3] + list(heat.shape[1:]), np.float32), heat_colours(heat)])
    weights = np.array([1.0] + [alpha] * len(pixels), np.float32)[:, None, None, None]   # image weight 1: itself
    tiles = blend(colours, images, weights)
    for tile, (row, col) in zip(tiles[1:], pixels):
        mark_point(tile, row, col)
    return tiles


def render_seeds(images, blocks, alpha, queries=DEFAULT_QUERIES):
    """images [B, C, R, R] in [-1, 1] and blocks [(stage width, probs [B*G, N, T, T])] -> per
    image, tiles [rows*(1+Q), 3, R, R] in [-1, 1] (a row per block, narrowest stage first)."""
    resolution = images.shape[-1]
    pixels = query_pixels(resolution, queries)
    heats = []
    for width, probs in blocks:
        window = int(round(np.sqrt(probs.shape[-1])))
        tokens = [(row * width // resolution, col * width // resolution) for row, col in pixels]
        heats.append(window_heatmaps(probs, len(images), width, window, tokens))  # [B, Q, w, w]
    return [np.concatenate([render_block(image, heat[i], pixels, alpha) for heat in heats])
            for i, image in enumerate(images)]


def save_seed(tiles, path, num_queries, ratio=1.0):
    """Tiles [rows*(1+Q), 3, R, R] in [-1, 1] as one grid PNG, each tile cropped to ratio."""
    rows = len(tiles) // (num_queries + 1)
    save_image_grid(to_uint8(crop_to_ratio(tiles, ratio)), path, drange=(0, 255), grid_size=(num_queries + 1, rows))


def attention_runner(Gs, z_shape, c_dim):
    """A function (latents, labels) -> (images, [(stage width, probs [B*G, 1, T, T])]) running one
    graph built here; heads are averaged in the graph, so 1/N of the probabilities is fetched
    (window_heatmaps's mean over the single head is then a no-op)."""
    latents = tf.placeholder(tf.float32, [None] + list(z_shape), name="window_attention_latents")
    labels = tf.placeholder(tf.float32, [None, c_dim], name="window_attention_labels")
    images, found = window_attention_tensors(Gs, latents, labels)
    widths = [width for width, _, _ in found]
    fetch = [tf.reduce_mean(probs, axis=1, keepdims=True) for _, _, probs in found]

    def run(z, c):
        out_images, probs = tf.get_default_session().run([images, fetch], {latents: z, labels: c})
        return out_images, list(zip(widths, probs))
    return run
