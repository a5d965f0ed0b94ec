"""training/data/scenes.py: deterministic per seed; labels describe what is drawn (object colors, count,
positions, shapes); create_scenes writes exactly render_scenes' images and labels."""

import os

import numpy as np

from training.data import scenes
from training.data import records as fmt


def _object_colors(image_chw):
    """Palette indices present in an image (background channels never exceed BG_HIGH)."""
    pixels = image_chw.reshape(3, -1).T
    pixels = pixels[pixels.max(axis=1) > scenes.BG_HIGH]
    uniq = np.unique(pixels, axis=0)
    return sorted(int(np.argmax((scenes.PALETTE == u).all(axis=1))) for u in uniq
                  if (scenes.PALETTE == u).all(axis=1).any()), len(uniq)


def test_deterministic_per_seed():
    a_img, a_lab = scenes.render_scenes(40, 32, seed=7)
    b_img, b_lab = scenes.render_scenes(40, 32, seed=7)
    c_img, c_lab = scenes.render_scenes(40, 32, seed=8)
    np.testing.assert_array_equal(a_img, b_img)
    np.testing.assert_array_equal(a_lab, b_lab)
    assert not np.array_equal(a_img, c_img)


def test_labels_match_drawn_colors_and_counts():
    images, labels = scenes.render_scenes(300, 32, seed=1, min_objects=1, max_objects=6)
    decoded = scenes.decode_labels(labels, 6)
    counts = labels[:, :7].argmax(axis=1)
    assert counts.min() >= 1 and counts.max() <= 6 and len(np.unique(counts)) >= 5
    for img, objs, count in zip(images, decoded, counts):
        present, num_non_bg = _object_colors(img)
        assert num_non_bg == len(present)  # Every non-background pixel has a palette color.
        assert len(objs) == count == len(present)
        assert sorted(o[1] for o in objs) == present
    # Background pixels stay dim: the gradient never reaches object brightness.
    bg = images.transpose(0, 2, 3, 1).reshape(-1, 3)
    assert bg.max(axis=1).min() >= scenes.BG_LOW


def test_single_object_position_size_and_shape():
    images, labels = scenes.render_scenes(400, 64, seed=2, min_objects=1, max_objects=1, min_radius=0.15,
                                          max_radius=0.25)
    # Fraction of the bounding box an ideal shape fills (geometry in scenes._shape_masks).
    fill = {"circle": (0.7, 0.86), "square": (0.95, 1.01), "triangle": (0.4, 0.62), "diamond": (0.4, 0.62),
            "cross": (0.45, 0.65)}
    seen = set()
    for img, objs in zip(images, scenes.decode_labels(labels, 1)):
        (shape, color, cx, cy, r), = objs
        mask = (img.transpose(1, 2, 0) == scenes.PALETTE[color]).all(axis=2)
        ys, xs = np.nonzero(mask)
        x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
        assert abs((x0 + x1) / 2 / 64 - cx) < 2 / 64, shape
        assert x1 - x0 <= 2 * r * 64 + 1 and x1 - x0 >= 1.6 * r * 64, shape
        lo, hi = fill[shape]
        assert lo <= mask.sum() / ((x1 - x0) * (y1 - y0)) <= hi, shape
        seen.add(shape)
    assert seen == set(scenes.SHAPES)


def test_create_scenes_writes_render_output(tmp_path):
    out = str(tmp_path / "scenes")
    scenes.create_scenes(out, num_images=30, resolution=16, seed=4, batch_size=16, verbose=False)
    imgs = np.stack(list(fmt.iter_images(fmt.DatasetFiles(out))))
    a_img, a_lab = scenes.render_scenes(16, 16, seed=[4, 0])
    b_img, b_lab = scenes.render_scenes(14, 16, seed=[4, 1])
    np.testing.assert_array_equal(imgs, np.concatenate([a_img, b_img]))
    np.testing.assert_array_equal(np.load(os.path.join(out, "scenes-rxx.labels")), np.concatenate([a_lab, b_lab]))
    small = np.stack(list(fmt.iter_images(fmt.DatasetFiles(out), log2_res=2)))
    ref = np.rint(imgs.astype(np.float64).reshape(30, 3, 4, 4, 4, 4).mean(axis=(3, 5))).astype(np.uint8)
    np.testing.assert_array_equal(small, ref)
