"""Procedural multi-object scenes: the embedded default dataset (no download needed).

Each image shows `min_objects..max_objects` flat-colored shapes (circle, square, triangle,
diamond, cross) with random sizes and positions, painted in order so later objects occlude
earlier ones, on a dim vertical-gradient background. Every object in one image has its own
palette color, so objects stay distinguishable. An object left less than `min_visible`
(fraction of its own area) visible is re-placed (a few rounds) and otherwise removed, so the
labels always describe what is visible. Rendering is vectorised over batches of images;
the output is a function of `seed` only (batch size does not matter).

Label layout (float32 [N, label_size], label_size = (M+1) + M*(S+P+3), M = max_objects,
S = len(SHAPES), P = len(PALETTE)):
  [0 : M+1]           one-hot object count (0..M)
  then for slot j = 0..M-1 (drawing order, bottom to top; all zero when j >= count):
  [S]                 one-hot shape (SHAPES order)
  [P]                 one-hot color (PALETTE order)
  [3]                 center x, center y, radius, as fractions of the image width/height

Layouts (`render_scenes(..., return_layouts=True)`, written by create_scenes; format in
training/data/layouts.py): segment s = the s-th present object in drawing order (1 = bottom), so the
depth order is exact; its category is 1 + its SHAPES index (0 = background). Ground truth by
construction: segment s covers exactly the pixels painted in object s's colour.
"""

import numpy as np

SHAPES = ("circle", "square", "triangle", "diamond", "cross")
PALETTE = np.array([
    [230, 25, 45], [60, 200, 75], [40, 90, 230], [255, 225, 25], [245, 130, 48],
    [145, 30, 180], [70, 240, 240], [240, 50, 230], [250, 250, 250], [170, 110, 40],
], np.uint8)
# Background channels stay in [BG_LOW, BG_HIGH], below every palette color's brightest
# channel (>= 170), so a pixel's color tells object from background.
BG_LOW, BG_HIGH = 20, 110


def label_size(max_objects):
    return (max_objects + 1) + max_objects * (len(SHAPES) + len(PALETTE) + 3)


def decode_labels(labels, max_objects):
    """Per image a list of (shape name, palette index, cx, cy, radius) and the count."""
    out = []
    s, p = len(SHAPES), len(PALETTE)
    for row in np.asarray(labels):
        count = int(np.argmax(row[:max_objects + 1]))
        objs = []
        for j in range(count):
            o = row[max_objects + 1 + j * (s + p + 3):][:s + p + 3]
            objs.append((SHAPES[int(np.argmax(o[:s]))], int(np.argmax(o[s:s + p])), *map(float, o[s + p:])))
        out.append(objs)
    return out


def _shape_masks(shape_id, cx, cy, r, coords):
    """Boolean [B,R,R] masks; shape_id/cx/cy/r are [B] (fractions of the image size)."""
    xx, yy = coords
    mask = np.zeros((len(shape_id),) + xx.shape, bool)
    for s in range(len(SHAPES)):
        rows = np.nonzero(shape_id == s)[0]
        if len(rows) == 0:
            continue
        dx = xx[None] - cx[rows, None, None]
        dy = yy[None] - cy[rows, None, None]
        rr = r[rows, None, None]
        adx, ady = np.abs(dx), np.abs(dy)
        if s == 0:
            m = dx * dx + dy * dy <= rr * rr
        elif s == 1:
            m = np.maximum(adx, ady) <= rr * 0.85
        elif s == 2:  # Upward triangle: apex at cy - r, base at cy + 0.7 r, half-width 0.95 r.
            m = (dy <= rr * 0.7) & (adx <= (dy + rr) * (0.95 / 1.7))
        elif s == 3:
            m = adx + ady <= rr
        else:
            m = ((adx <= rr * 0.33) & (ady <= rr)) | ((ady <= rr * 0.33) & (adx <= rr))
        mask[rows] = m
    return mask


CATEGORY_NAMES = ("background",) + SHAPES


def render_scenes(num_images, resolution=64, seed=0, min_objects=1, max_objects=5, min_radius=0.08,
                  max_radius=0.2, min_visible=0.3, replace_rounds=3, return_layouts=False):
    """(images uint8 [N,3,R,R], labels float32 [N, label_size(max_objects)]), deterministic in seed;
    return_layouts: also (segments uint8 [N,R,R], N category arrays) as a third element."""
    if not 0 <= min_objects <= max_objects <= len(PALETTE):
        raise ValueError("need 0 <= min_objects <= max_objects <= %d, got %d, %d" % (len(PALETTE), min_objects,
                                                                                     max_objects))
    if not 0 < min_radius <= max_radius <= 0.5:
        raise ValueError("need 0 < min_radius <= max_radius <= 0.5, got %g, %g" % (min_radius, max_radius))
    rnd = np.random.RandomState(seed)
    n, m, res = num_images, max_objects, resolution
    count = rnd.randint(min_objects, max_objects + 1, size=n)
    shape_id = rnd.randint(0, len(SHAPES), size=(n, m))
    color_id = np.argsort(rnd.rand(n, len(PALETTE)), axis=1)[:, :m]  # Distinct colors per image.
    radius = rnd.uniform(min_radius, max_radius, size=(n, m)).astype(np.float32)
    center = rnd.uniform(0, 1, size=(n, m, 2)).astype(np.float32) * (1 - 2 * radius[..., None]) + radius[..., None]
    bg_top = rnd.randint(BG_LOW, BG_HIGH + 1, size=(n, 3))
    bg_bottom = rnd.randint(BG_LOW, BG_HIGH + 1, size=(n, 3))
    replace = rnd.uniform(0, 1, size=(replace_rounds, n, m, 3)).astype(np.float32)

    coords1 = (np.arange(res, dtype=np.float32) + 0.5) / res
    coords = (np.broadcast_to(coords1[None, :], (res, res)), np.broadcast_to(coords1[:, None], (res, res)))
    present = np.arange(m)[None, :] < count[:, None]
    masks = [_shape_masks(shape_id[:, j], center[:, j, 0], center[:, j, 1], radius[:, j], coords) for j in range(m)]
    area = np.stack([mk.sum(axis=(1, 2)) for mk in masks], axis=1)
    ids = _paint_ids(masks, present)
    for rnd_i in range(replace_rounds + 1):
        visible = np.stack([(ids == j).sum(axis=(1, 2)) for j in range(m)], axis=1)
        bad = present & (visible < min_visible * np.maximum(area, 1))
        if not bad.any():
            break
        if rnd_i == replace_rounds:
            present &= ~bad  # Still hidden after the re-placements: drop it.
        else:
            u = replace[rnd_i]
            new_r = min_radius + u[..., 2] * (max_radius - min_radius)
            new_c = u[..., :2] * (1 - 2 * new_r[..., None]) + new_r[..., None]
            radius = np.where(bad, new_r, radius).astype(np.float32)
            center = np.where(bad[..., None], new_c, center).astype(np.float32)
            for j in range(m):
                rows = np.nonzero(bad[:, j])[0]
                if len(rows):
                    masks[j][rows] = _shape_masks(shape_id[rows, j], center[rows, j, 0], center[rows, j, 1],
                                                  radius[rows, j], coords)
                    area[rows, j] = masks[j][rows].sum(axis=(1, 2))
        ids = _paint_ids(masks, present)

    # Colors: a vertical gradient background, then each visible object's palette color.
    t = coords1[None, :, None, None]
    bg = np.rint(bg_top[:, None, None, :] * (1 - t) + bg_bottom[:, None, None, :] * t).astype(np.uint8)
    images = np.broadcast_to(bg, (n, res, res, 3)).copy()
    obj = ids >= 0
    img_idx = np.broadcast_to(np.arange(n)[:, None, None], ids.shape)
    images[obj] = PALETTE[color_id[img_idx[obj], ids[obj]]]
    images = images.transpose(0, 3, 1, 2)

    labels = _make_labels(present, shape_id, color_id, center, radius, m)
    if not return_layouts:
        return np.ascontiguousarray(images), labels
    # Segment of slot j = its rank among the image's present objects (drawing order), 1-based.
    rank = np.where(present, np.cumsum(present, axis=1), 0)                          # [N, M]
    segments = np.where(obj, rank[img_idx, np.maximum(ids, 0)], 0).astype(np.uint8)  # [N, R, R]
    categories = [shape_id[i, present[i]].astype(np.int64) + 1 for i in range(n)]
    return np.ascontiguousarray(images), labels, (segments, categories)


def _paint_ids(masks, present):
    """Index map [B,R,R] of the topmost present object per pixel (-1 = background)."""
    ids = np.full(masks[0].shape, -1, np.int8)
    for j, mk in enumerate(masks):
        ids[mk & present[:, j, None, None]] = j
    return ids


def _make_labels(present, shape_id, color_id, center, radius, m):
    n = len(present)
    s, p = len(SHAPES), len(PALETTE)
    labels = np.zeros((n, label_size(m)), np.float32)
    # Compact the present objects to the front, keeping drawing order.
    order = np.argsort(~present, axis=1, kind="stable")
    count = present.sum(axis=1)
    labels[np.arange(n), count] = 1
    for slot in range(m):
        src = order[:, slot]
        rows = np.nonzero(slot < count)[0]
        base = m + 1 + slot * (s + p + 3)
        labels[rows, base + shape_id[rows, src[rows]]] = 1
        labels[rows, base + s + color_id[rows, src[rows]]] = 1
        labels[rows, base + s + p] = center[rows, src[rows], 0]
        labels[rows, base + s + p + 1] = center[rows, src[rows], 1]
        labels[rows, base + s + p + 2] = radius[rows, src[rows]]
    return labels


def create_scenes(tfrecord_dir, num_images=20000, resolution=64, seed=123, min_objects=1, max_objects=5,
                  min_radius=0.08, max_radius=0.2, storage="raw", shards=1, overwrite=False, batch_size=500,
                  verbose=True):
    """Write the procedural scenes dataset to tfrecord_dir (atomically; see DatasetWriter).

    Batch b uses seed (seed, b), so the dataset depends on seed and batch_size only."""
    from training.data.writer import DatasetWriter
    if num_images < 1:
        raise ValueError("num_images must be >= 1, got %d" % num_images)
    if resolution < 4 or resolution & (resolution - 1):
        raise ValueError("resolution must be a power of two >= 4, got %d" % resolution)
    meta = dict(source="scenes", seed=seed, min_objects=min_objects, max_objects=max_objects,
                label_layout="count one-hot [%d], then per slot: shape one-hot %s, color one-hot [%d], cx, cy, radius"
                % (max_objects + 1, list(SHAPES), len(PALETTE)),
                layouts=dict(category_names=list(CATEGORY_NAMES), depth="drawing order (exact)"))
    with DatasetWriter(tfrecord_dir, storage=storage, shards=shards, overwrite=overwrite, meta=meta,
                       progress_every=5000 if verbose else 0) as writer:
        for b, start in enumerate(range(0, num_images, batch_size)):
            k = min(batch_size, num_images - start)
            images, labels, layouts = render_scenes(
                k, resolution, seed=[seed & 0xFFFFFFFF, b], min_objects=min_objects, max_objects=max_objects,
                min_radius=min_radius, max_radius=max_radius, return_layouts=True)
            writer.add_images(images, labels, layouts)
    if verbose:
        print("Wrote %d scenes at %dx%d to %s" % (num_images, resolution, resolution, tfrecord_dir))
    return tfrecord_dir
