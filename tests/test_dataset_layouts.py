"""Scene layouts in the datasets (issue 14): 2x2 majority down-sampling equals an independent count;
the scenes' layouts are their drawn pixels; records round-trip layouts exactly at every level (numpy
and TF reader, raw and compact, shards); the reader's one-hot/categories/depths equal numpy and
mirror with the image; old records without layouts load (same reader graph); label PNGs pair with
images (index, Cityscapes instance, COCO panoptic), and a missing or mis-sized one is one line
naming both files; display/extract write coloured layouts."""

import collections
import json
import os

import numpy as np
import PIL.Image
import pytest
import tensorflow.compat.v1 as tf

import dnnlib
import dataset_tool
from training import dataset as dataset_mod
from training import visuals
from training.data import layouts as lay
from training.data import records as fmt
from training.data import scenes
from training.data.writer import DatasetWriter


def _majority_ref(seg, factor):
    """Independent reference: chained 2x2 blocks, most frequent value, ties to the highest."""
    seg = np.asarray(seg)
    while factor > 1:
        h, w = seg.shape[-2] // 2, seg.shape[-1] // 2
        out = np.zeros(seg.shape[:-2] + (h, w), np.uint8)
        for idx in np.ndindex(*out.shape):
            *lead, y, x = idx
            block = seg[tuple(lead)][2 * y:2 * y + 2, 2 * x:2 * x + 2].ravel().tolist()
            counts = collections.Counter(block)
            out[idx] = max(counts, key=lambda v: (counts[v], v))
        seg, factor = out, factor // 2
    return seg


def test_majority_downsampling_equals_counting():
    rnd = np.random.RandomState(0)
    seg = rnd.randint(0, 4, size=(3, 8, 16)).astype(np.uint8)
    seg[0, :4, :4] = 200  # large ids too
    for factor in (2, 4, 8):
        np.testing.assert_array_equal(lay.downsample(seg, factor), _majority_ref(seg, factor))
    # Ties go to the frontmost segment; a 3-1 block keeps its majority.
    np.testing.assert_array_equal(lay.downsample_2x(np.array([[0, 2], [2, 0]])), [[2]])
    np.testing.assert_array_equal(lay.downsample_2x(np.array([[5, 1], [1, 1]])), [[1]])


def test_scene_layouts_are_the_drawn_pixels():
    images, labels, (segments, categories) = scenes.render_scenes(120, 32, seed=2, max_objects=6,
                                                                  return_layouts=True)
    plain_images, plain_labels = scenes.render_scenes(120, 32, seed=2, max_objects=6)
    np.testing.assert_array_equal(images, plain_images)
    np.testing.assert_array_equal(labels, plain_labels)
    for img, objs, seg, cats in zip(images, scenes.decode_labels(labels, 6), segments, categories):
        assert len(cats) == len(objs) and seg.max() == len(objs)
        for s, (shape, colour, *_) in enumerate(objs, 1):
            painted = (img == scenes.PALETTE[colour][:, None, None]).all(axis=0)
            np.testing.assert_array_equal(seg == s, painted)      # colour covers exactly segment s
            assert cats[s - 1] == scenes.SHAPES.index(shape) + 1   # category = shape (0 = background)
        assert img[:, seg == 0].max(initial=0) <= scenes.BG_HIGH  # background pixels are background


def _read(path, n, lod=0, **kwargs):
    kwargs = dict(dict(shuffle_mb=0, repeat=False, layouts="onehot"), **kwargs)
    ds = dataset_mod.TFRecordDataset(path, **kwargs)
    return ds, ds.get_minibatch_np(n, lod=lod)


@pytest.mark.parametrize("storage", ["raw", "compact"])
def test_layout_records_round_trip_every_level(tmp_path, tf_session, storage):
    out = str(tmp_path / "scenes")
    n = 7
    scenes.create_scenes(out, num_images=n, resolution=16, seed=5, max_objects=4, storage=storage, shards=2,
                         verbose=False)
    _, _, (segments, categories) = scenes.render_scenes(n, 16, seed=[5, 0], max_objects=4, return_layouts=True)
    files = fmt.DatasetFiles(out)
    k = max(len(c) for c in categories)
    assert files.has_layouts and files.layout_info()["max_segments"] == k
    assert files.layout_info()["category_names"][1:] == list(scenes.SHAPES)
    for lod in range(3):
        ref = _majority_ref(segments, 2 ** lod)
        got = list(fmt.iter_images(files, 4 - lod, with_layouts=True))
        np.testing.assert_array_equal(np.stack([s for _, (s, _) in got]), ref)
        assert all(np.array_equal(c, r) for (_, (_, c)), r in zip(got, categories))
        ds, (images, _, layout) = _read(out, n, lod=lod)
        assert layout["segments"].dtype == np.int32 and layout["segments"].shape == (n, 16 >> lod, 16 >> lod)
        np.testing.assert_array_equal(layout["segments"], ref)
        np.testing.assert_array_equal(images, np.stack([im for im, _ in got]))


def test_reader_onehot_categories_depths_and_mirror(tmp_path, tf_session):
    out = str(tmp_path / "scenes")
    n = 6
    scenes.create_scenes(out, num_images=n, resolution=8, seed=1, max_objects=3, verbose=False)
    _, _, (segments, categories) = scenes.render_scenes(n, 8, seed=[1, 0], max_objects=3, return_layouts=True)
    ds, (_, _, layout) = _read(out, n, max_segments=5)
    k1 = 6
    np.testing.assert_array_equal(layout["onehot"], np.eye(k1, dtype=np.float32)[segments].transpose(0, 3, 1, 2))
    cats = np.full((n, k1), -1, np.int32)
    depths = np.zeros((n, k1), np.float32)
    cats[:, 0] = 0
    for i, c in enumerate(categories):
        cats[i, 1:len(c) + 1] = c
        depths[i, 1:len(c) + 1] = np.arange(1, len(c) + 1) / len(c)
    np.testing.assert_array_equal(layout["categories"], cats)
    np.testing.assert_allclose(layout["depths"], depths, rtol=1e-6)
    with pytest.raises(dnnlib.UserError, match="max_segments 1"):
        dataset_mod.TFRecordDataset(out, layouts="index", max_segments=1)
    # Mirror augment flips each layout with its image; 'index' serves no one-hot.
    ds = dataset_mod.TFRecordDataset(out, layouts="index", mirror_augment=True, shuffle_mb=0, seed=3)
    images, _, layout = ds.get_minibatch_np(40)
    assert "onehot" not in layout
    ref_img, _ = scenes.render_scenes(n, 8, seed=[1, 0], max_objects=3)
    flips = 0
    for i in range(40):
        flipped = not np.array_equal(images[i], ref_img[i % n])
        flips += flipped
        want = segments[i % n][:, ::-1] if flipped else segments[i % n]
        np.testing.assert_array_equal(layout["segments"][i], want)
    assert 0 < flips < 40


def _graph_ops(path, **kwargs):
    graph = tf.Graph()
    with graph.as_default():
        ds = dataset_mod.TFRecordDataset(path, shuffle_mb=0, **kwargs)
        return sorted(op.type for op in graph.get_operations()), ds


def test_old_records_without_layouts_still_load(tmp_path, tf_session):
    images, labels, layouts = scenes.render_scenes(4, 8, seed=0, return_layouts=True)
    old, new = str(tmp_path / "old"), str(tmp_path / "new")
    with DatasetWriter(old) as w:           # the format written before layouts existed
        w.add_images(images, labels)
    with DatasetWriter(new) as w:
        w.add_images(images, labels, layouts)
    files = fmt.DatasetFiles(old)
    assert not files.has_layouts and "layouts" not in files.meta
    np.testing.assert_array_equal(np.stack(list(fmt.iter_images(files))), images)
    # Without a request the reader builds the same graph and serves (images, labels) on both.
    ops_old, _ = _graph_ops(old)
    ops_new, _ = _graph_ops(new)
    assert ops_old == ops_new
    for path in (old, new):
        ds = dataset_mod.TFRecordDataset(path, shuffle_mb=0, repeat=False, max_label_size="full")
        got = ds.get_minibatch_np(4)
        assert len(got) == 2
        np.testing.assert_array_equal(got[0], images)
        np.testing.assert_array_equal(got[1], labels)
    with pytest.raises(dnnlib.UserError, match="has no layouts"):
        dataset_mod.TFRecordDataset(old, layouts="index")
    assert dataset_tool.main(["info", old]) == 0
    assert dataset_tool.main(["compare", new, new]) == 0
    assert dataset_tool.main(["compare", old, new]) == 1      # same images, layouts only in one
    assert dataset_tool.main(["compare", old, new, "--ignore-labels"]) == 0


def _save(path, array, mode=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    PIL.Image.fromarray(array, mode).save(path)


def test_create_from_images_with_label_pngs(tmp_path, tf_session):
    rnd = np.random.RandomState(0)
    imgs, lbls = str(tmp_path / "imgs"), str(tmp_path / "labels")
    # a/x: an 8-bit index map (value = category), resized 16 -> 8 by nearest neighbour.
    index = np.zeros((16, 16), np.uint8)
    index[:, 8:] = 7          # 128 pixels: the back segment
    index[2:6, 2:6] = 33      # 16 pixels: in front
    _save(os.path.join(imgs, "a", "x.png"), rnd.randint(0, 256, (16, 16, 3), dtype=np.uint8))
    _save(os.path.join(lbls, "a", "x.png"), index)
    # Cityscapes names and instanceIds: 26001, 26002 = two cars (26), 7 = road.
    inst = np.zeros((16, 16), np.int32)
    inst[8:] = 7
    inst[:4, :4] = 26001
    inst[:4, 12:] = 26002
    inst[:4, 10:12] = 26002
    _save(os.path.join(imgs, "b", "aachen_000000_000019_leftImg8bit.png"), rnd.randint(0, 256, (16, 16, 3),
                                                                                     dtype=np.uint8))
    _save(os.path.join(lbls, "b", "aachen_000000_000019_gtFine_instanceIds.png"), inst.astype(np.uint16))
    # COCO panoptic: RGB ids with categories from the JSON.
    pan = np.zeros((16, 16, 3), np.uint8)
    pan[:, :12] = (1, 1, 0)       # id 257
    pan[:3, :3] = (5, 0, 0)       # id 5
    _save(os.path.join(imgs, "z", "c.jpg"), rnd.randint(0, 256, (16, 16, 3), dtype=np.uint8))
    _save(os.path.join(lbls, "z", "c.png"), pan)
    with open(os.path.join(lbls, "panoptic.json"), "w") as f:
        json.dump({"annotations": [{"file_name": "c.png", "segments_info": [
            {"id": 257, "category_id": 184}, {"id": 5, "category_id": 1}]}]}, f)
    out = str(tmp_path / "ds")
    assert dataset_tool.main(["create_from_images", out, imgs, "--layouts", lbls, "--shuffle", "0",
                              "--resolution", "8"]) == 0
    files = fmt.DatasetFiles(out)
    got = [l for _, l in fmt.iter_images(files, with_layouts=True)]
    assert files.layout_info()["max_segments"] == 3 and "mapping" in files.layout_info()
    # a/x.png: category 7 (larger, segment 1 = back), 33 in front; nearest resize of the index map.
    seg, cats = got[0]
    np.testing.assert_array_equal(cats, [7, 33])
    want = np.zeros((8, 8), np.uint8)
    want[:, 4:] = 1
    want[1:3, 1:3] = 2
    np.testing.assert_array_equal(seg, want)
    # Cityscapes instances: road (the largest) at the back, then the cars by area (26002 is larger).
    seg, cats = got[1]
    np.testing.assert_array_equal(cats, [7, 26, 26])
    assert (seg[4:] == 1).all() and (seg[:2, 5:] == 2).all() and (seg[:2, :2] == 3).all()
    # Panoptic: id 257 (category 184) at the back, id 5 (category 1) in front.
    seg, cats = got[2]
    np.testing.assert_array_equal(cats, [184, 1])
    assert seg[0, 0] == 2 and seg[5, 5] == 1 and seg[5, 7] == 0
    # The reader serves the same layouts.
    _, (_, _, layout) = _read(out, 3)
    np.testing.assert_array_equal(layout["segments"], np.stack([s for s, _ in got]))
    # Compact storage keeping the original image bytes (no resize) stores the same layouts as raw.
    for storage in ("raw", "compact"):
        assert dataset_tool.main(["create_from_images", str(tmp_path / storage), imgs, "--layouts", lbls,
                                  "--storage", storage]) == 0
    assert dataset_tool.main(["compare", str(tmp_path / "raw"), str(tmp_path / "compact")]) == 0
    raw_files = fmt.DatasetFiles(str(tmp_path / "raw"))
    _, (_, _, layout) = _read(str(tmp_path / "compact"), 3, lod=1)
    np.testing.assert_array_equal(layout["segments"],
                                  [s for _, (s, _) in fmt.iter_images(raw_files, 3, with_layouts=True)])


@pytest.mark.parametrize("case", ["missing", "mis_sized"])
def test_label_errors_are_one_line_naming_both_files(tmp_path, capsys, case):
    imgs, lbls = str(tmp_path / "imgs"), str(tmp_path / "labels")
    for name in ("p.png", "q.png"):
        _save(os.path.join(imgs, name), np.zeros((8, 8, 3), np.uint8))
    _save(os.path.join(lbls, "p.png"), np.zeros((8, 8), np.uint8))
    if case == "mis_sized":
        _save(os.path.join(lbls, "q.png"), np.zeros((8, 16), np.uint8))
    out = str(tmp_path / "ds")
    assert dataset_tool.main(["create_from_images", out, imgs, "--layouts", lbls]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ")
    assert os.path.join(imgs, "q.png") in err and "q.png" in err.replace(os.path.join(imgs, "q.png"), "")
    assert ("not found" if case == "missing" else "16x8 but image") in err
    assert sorted(os.listdir(str(tmp_path))) == ["imgs", "labels"]   # nothing left behind
    # --ignore-errors skips the unpaired image.
    assert dataset_tool.main(["create_from_images", out, imgs, "--layouts", lbls, "--ignore-errors"]) == 0
    assert sum(1 for _ in fmt.iter_images(fmt.DatasetFiles(out))) == 1


def test_display_and_extract_write_coloured_layouts(tmp_path):
    out = str(tmp_path / "scenes")
    scenes.create_scenes(out, num_images=4, resolution=8, seed=2, max_objects=3, verbose=False)
    _, _, (segments, _) = scenes.render_scenes(4, 8, seed=[2, 0], max_objects=3, return_layouts=True)
    k = fmt.DatasetFiles(out).layout_info()["max_segments"]
    grid = str(tmp_path / "grid.png")
    assert dataset_tool.main(["display", out, "--out", grid, "--grid", "2x2"]) == 0
    got = np.asarray(PIL.Image.open(str(tmp_path / "grid_layouts.png")).convert("RGB")).transpose(2, 0, 1)
    np.testing.assert_array_equal(got, visuals.create_image_grid(visuals.render_layout(segments, k), (2, 2)))
    ext = str(tmp_path / "ext")
    assert dataset_tool.main(["extract", out, ext, "--resolution", "4"]) == 0
    assert sorted(os.listdir(ext))[:2] == ["img00000000.png", "img00000001.png"] and len(os.listdir(ext)) == 8
    pil = PIL.Image.open(os.path.join(ext, "layout00000002.png"))
    assert pil.mode == "P"
    np.testing.assert_array_equal(np.asarray(pil), _majority_ref(segments[2], 2))  # values = segment ids
    np.testing.assert_array_equal(np.asarray(pil.convert("RGB")),
                                  visuals.render_layout(_majority_ref(segments[2:3], 2), k)[0].transpose(1, 2, 0))
