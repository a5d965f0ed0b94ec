"""Layout-to-image generation (GANsformer2's execution stage, run_generator.py layout-to-image and
restyle): layouts read from a dataset with layouts or a folder of label PNGs, rendered by a
layout-to-image network, and one segment's latent changed while the rest stays.

A layout here is (name, segments uint8 [R, R], categories int64 [n]) as training/data/layouts.py
defines it; the network sees it as (layout one-hot [B, S, R, R], segments [B, S, 2]) with S =
max_segments + 1 slots (training/segmenter.layout_inputs_np)."""

import glob
import os

import numpy as np

from dnnlib.util import UserError
from training.visuals import render_layout, save_image, save_image_grid, to_uint8

# ------------------------------------------------------------------------------------------
# Reading layouts.


def read_layouts(source, resolution, limit=None):
    """[(name, segments [R, R], categories [n])] from a dataset folder with layouts (its level of
    width `resolution`) or a folder of label PNGs (square, `resolution` times a power of two,
    majority down-sampled); the first `limit` of them (None = all)."""
    if not os.path.isdir(source):
        raise UserError("--layouts %s: no such folder (give a dataset with layouts or a folder of label PNGs)"
                        % source)
    if glob.glob(os.path.join(source, "*.tfrecords*")):
        return _dataset_layouts(source, resolution, limit)
    paths = sorted(glob.glob(os.path.join(source, "*.png")))[:limit]
    if not paths:
        raise UserError("--layouts %s: holds neither TFRecords nor label PNGs" % source)
    return [_png_layout(path, resolution) for path in paths]


def _dataset_layouts(source, resolution, limit):
    from training.data import records
    files = records.DatasetFiles(source)
    log2 = int(np.log2(resolution))
    if log2 not in files.available_log2():
        raise UserError("--layouts %s: no %dx%d level for this %dx%d network" % (source, resolution, resolution,
                                                                                resolution, resolution))
    return [("%s%04d" % (files.name, i), segments, categories) for i, (_image, (segments, categories))
            in enumerate(records.iter_images(files, log2, max_images=limit, with_layouts=True))]


def _png_layout(path, resolution):
    """One label PNG (the mapping of create_from_images --layouts) at the network's width."""
    from training.data import layouts as lay
    from training.data.sources import BadImage, open_pil
    try:
        pil = open_pil(path, path)
        ids, category_of = lay.read_label_image(pil, path)
        segments, categories = lay.from_ids(ids, category_of, path)
    except BadImage as error:
        raise UserError("--layouts: %s" % error) from None
    h, w = segments.shape
    factor = w // resolution
    if h != w or factor < 1 or factor * resolution != w or factor & (factor - 1):
        raise UserError("--layouts: %s is %dx%d; this network needs square layouts of %d times a power of two"
                        % (path, w, h, resolution))
    return os.path.splitext(os.path.basename(path))[0], lay.downsample(segments, factor), categories


def network_inputs(view, layouts):
    """(layout one-hot [N, S, R, R], segments [N, S, 2]) of layouts for view's network; UserError
    naming the layout when it has more segments or other categories than the network takes."""
    from training import segmenter
    k, num_categories = view.layout_slots - 1, view.num_categories
    for name, _segments, categories in layouts:
        if len(categories) > k:
            raise UserError("--layouts: %s has %d segments; this network takes at most %d" % (name, len(categories), k))
        if len(categories) and (categories.min() < 1 or categories.max() >= num_categories):
            raise UserError("--layouts: %s has categories %s; this network knows 1..%d"
                            % (name, sorted(set(categories.tolist())), num_categories - 1))
    arrays = segmenter.batch_layouts([s for _, s, _ in layouts], [c for _, _, c in layouts], k)
    return segmenter.layout_inputs_np(*arrays)


# ------------------------------------------------------------------------------------------
# The two commands.


def layout_to_image(view, layouts, seeds, outdir, truncation_psi=0.7):
    """<name>.png (the layout, coloured) and <name>-seed<s>.png per layout and seed; grid.png: a row
    per layout, the layout first."""
    os.makedirs(outdir, exist_ok=True)
    layout, segments = network_inputs(view, layouts)
    coloured = render_layout(layout.argmax(axis=1), view.layout_slots - 1)        # uint8 [N, 3, R, R]
    rows = []
    for i, (name, _, _) in enumerate(layouts):
        save_image(coloured[i], os.path.join(outdir, "%s.png" % name))
        n = len(seeds)
        images = view.render(view.latents(seeds), layout[i:i + 1].repeat(n, 0), segments[i:i + 1].repeat(n, 0),
                             truncation_psi)
        images = to_uint8(images)
        for seed, image in zip(seeds, images):
            save_image(image, os.path.join(outdir, "%s-seed%04d.png" % (name, seed)))
        rows.append(np.concatenate([coloured[i:i + 1], images]))
    save_image_grid(np.concatenate(rows), os.path.join(outdir, "grid.png"), drange=(0, 255),
                    grid_size=(len(seeds) + 1, len(layouts)))


def restyle(view, layout_entry, seed, segment, new_seeds, outdir, truncation_psi=0.7):
    """Segment `segment`'s latent (0 = background) drawn from each of new_seeds, every other latent
    from seed: restyle.png (layout, the original, the restyled images) and diff.png (per-pixel
    change); returns the mean change inside the segment / outside it, per new seed."""
    name, seg_map, categories = layout_entry
    if not 0 <= segment <= len(categories):
        raise UserError("--segment %d: layout %s has segments 0 (background) to %d" % (segment, name, len(categories)))
    layout, segments = network_inputs(view, [layout_entry])
    z = view.latents([seed] * (len(new_seeds) + 1))
    z[1:, segment] = view.latents(new_seeds)[:, segment]
    images = view.render(z, layout.repeat(len(z), 0), segments.repeat(len(z), 0), truncation_psi)
    change = np.abs(images[1:] - images[:1]).mean(axis=1)                          # [M, R, R]
    inside = seg_map == segment
    ratios = [float(c[inside].mean() / max(c[~inside].mean(), 1e-8)) if (~inside).any() else float("inf")
              for c in change]
    os.makedirs(outdir, exist_ok=True)
    coloured = render_layout(seg_map[None], view.layout_slots - 1)
    save_image_grid(np.concatenate([coloured, to_uint8(images)]), os.path.join(outdir, "restyle.png"),
                    drange=(0, 255), grid_size=(len(images) + 1, 1))
    heat = change / max(change.max(), 1e-8)
    save_image_grid(np.repeat(heat[:, None], 3, axis=1), os.path.join(outdir, "diff.png"), drange=(0, 1),
                    grid_size=(len(heat), 1))
    for new_seed, ratio in zip(new_seeds, ratios):
        print("segment %d of %s, seed %d -> %d: change inside / outside the segment = %.2f"
              % (segment, name, seed, new_seed, ratio))
    return ratios
