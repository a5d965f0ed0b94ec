"""training/dataset.py: images in -> dataset_tool -> TFRecordDataset -> the same pixels and labels
(shards, grayscale, non-square native and padded, raw and compact storage), lower levels equal an
independent numpy box average, labels/max_images/resolution selection, mirror augment."""

import os

import numpy as np
import PIL.Image
import pytest
import tensorflow.compat.v1 as tf

import dnnlib
import dataset_tool
from training import dataset as dataset_mod


def _box(images_nchw, factor):
    """Independent reference: factor x factor block mean, round half to even, uint8."""
    n, c, h, w = images_nchw.shape
    x = images_nchw.astype(np.float64).reshape(n, c, h // factor, factor, w // factor, factor).mean(axis=(3, 5))
    return np.rint(x).astype(np.uint8)


def _read_all(path, n, lod=0, **kwargs):
    kwargs = dict(dict(shuffle_mb=0, repeat=False, max_label_size="full"), **kwargs)
    ds = dataset_mod.TFRecordDataset(path, **kwargs)
    images, labels = ds.get_minibatch_np(n, lod=lod)
    return ds, images, labels


def _write_folder(folder, images_nhwc):
    os.makedirs(folder)
    for i, img in enumerate(images_nhwc):
        PIL.Image.fromarray(img[:, :, 0] if img.shape[2] == 1 else img).save(os.path.join(folder, "%03d.png" % i))


@pytest.mark.parametrize("storage", ["raw", "compact"])
@pytest.mark.parametrize("channels", [1, 3])
def test_round_trip_folder_with_shards_and_levels(tmp_path, tf_session, storage, channels):
    rnd = np.random.RandomState(channels)
    n = 7
    images = rnd.randint(0, 256, (n, 16, 16, channels), dtype=np.uint8)
    _write_folder(str(tmp_path / "imgs"), images)
    out = str(tmp_path / "ds")
    assert dataset_tool.main(["create_from_images", out, str(tmp_path / "imgs"), "--shards", "3",
                              "--storage", storage]) == 0
    order = np.arange(n)
    np.random.RandomState(123).shuffle(order)  # The documented write order (--seed 123).
    expected = images[order].transpose(0, 3, 1, 2)
    for lod in range(3):
        ds, got, labels = _read_all(out, n, lod=lod)
        assert ds.shape == [channels, 16, 16] and ds.storage == storage and ds.label_size == 0
        assert labels.shape == (n, 0)
        np.testing.assert_array_equal(got, _box(expected, 2 ** lod))


@pytest.mark.parametrize("storage", ["raw", "compact"])
def test_round_trip_npy_labels_non_square_native(tmp_path, tf_session, storage):
    rnd = np.random.RandomState(5)
    n = 6
    images = rnd.randint(0, 256, (n, 16, 32, 3), dtype=np.uint8)  # H=16, W=32: ratio 0.5.
    labels = rnd.rand(n, 4).astype(np.float32)
    np.save(str(tmp_path / "x.npy"), images)
    np.save(str(tmp_path / "y.npy"), labels)
    out = str(tmp_path / "ds")
    assert dataset_tool.main(["create_from_npy", out, str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy"),
                              "--ratio", "0.5", "--shuffle", "0", "--shards", "2", "--storage", storage]) == 0
    ds, got, got_labels = _read_all(out, n, lod=1)
    assert ds.shape == [3, 16, 32] and ds.resolution == 32 and ds.ratio == 0.5
    np.testing.assert_array_equal(got, _box(images.transpose(0, 3, 1, 2), 2))
    np.testing.assert_array_equal(got_labels, labels)
    # Shuffled reading keeps each image with its own label.
    ds2, shuffled, shuffled_labels = _read_all(out, n, shuffle_mb=1, seed=1)
    idx = [int(np.argmax((labels == l).all(axis=1))) for l in shuffled_labels]
    assert sorted(idx) == list(range(n))
    np.testing.assert_array_equal(shuffled, images.transpose(0, 3, 1, 2)[idx])


def test_padded_square_ratio(tmp_path, tf_session):
    images = np.random.RandomState(2).randint(0, 256, (3, 8, 16, 3), dtype=np.uint8)
    np.save(str(tmp_path / "x.npy"), images)
    out = str(tmp_path / "ds")
    assert dataset_tool.main(["create_from_npy", out, str(tmp_path / "x.npy"), "--ratio", "0.5",
                              "--ratio-mode", "pad", "--shuffle", "0"]) == 0
    ds, got, _ = _read_all(out, 3)
    assert ds.shape == [3, 16, 16] and ds.ratio == 0.5
    np.testing.assert_array_equal(got[:, :, 4:12], images.transpose(0, 3, 1, 2))
    assert not got[:, :, :4].any() and not got[:, :, 12:].any()


def test_labels_max_images_resolution_and_random_labels(tmp_path, tf_session):
    from training.data.scenes import create_scenes, label_size
    out = str(tmp_path / "scenes")
    create_scenes(out, num_images=20, resolution=16, seed=3, max_objects=3, verbose=False)
    all_labels = np.load(os.path.join(out, "scenes-rxx.labels"))
    ds, full, labels = _read_all(out, 20)
    assert labels.shape == (20, label_size(3))
    np.testing.assert_array_equal(labels, all_labels)
    ds, img5, lab5 = _read_all(out, 5, max_images=5, max_label_size=2, resolution=8)
    assert ds.shape == [3, 8, 8] and ds.label_size == 2
    np.testing.assert_array_equal(img5, _box(full[:5], 2))
    np.testing.assert_array_equal(lab5, all_labels[:5, :2])
    rand = ds.get_random_labels_np(50)
    assert rand.shape == (50, 2) and all((lab5 == r).all(axis=1).any() for r in rand)
    rand_tf = tf_session.run(ds.get_random_labels_tf(50))
    assert all((lab5 == r).all(axis=1).any() for r in rand_tf)
    ds, _, no_labels = _read_all(out, 4, max_label_size=0)
    assert no_labels.shape == (4, 0) and ds.get_random_labels_np(3).shape == (3, 0)
    with pytest.raises(dnnlib.UserError, match="no resolution 64"):
        dataset_mod.TFRecordDataset(out, resolution=64)


def test_mirror_augment_flips_about_half(tmp_path, tf_session):
    images = np.random.RandomState(0).randint(0, 256, (1, 8, 8, 3), dtype=np.uint8)
    np.save(str(tmp_path / "x.npy"), images)
    out = str(tmp_path / "ds")
    assert dataset_tool.main(["create_from_npy", out, str(tmp_path / "x.npy")]) == 0
    ds = dataset_mod.TFRecordDataset(out, mirror_augment=True, shuffle_mb=0, repeat=True)
    got, _ = ds.get_minibatch_np(400)
    orig = images.transpose(0, 3, 1, 2)[0]
    same = np.array([np.array_equal(g, orig) for g in got])
    flipped = np.array([np.array_equal(g, orig[:, :, ::-1]) for g in got])
    assert np.all(same ^ flipped)  # Every image is the original or its mirror, never both.
    assert 140 <= flipped.sum() <= 260  # Binomial(400, 0.5): mean 200, sd 10.


def test_buffers_hold_at_most_one_pass(tmp_path, tf_session):
    """Default shuffle_mb / prefetch_mb on a 20-image dataset: the shuffle and prefetch buffers
    hold at most 20 images (5 with max_images=5), not 4 GiB / 2 GiB of repeated images."""
    from training.data.scenes import create_scenes
    out = str(tmp_path / "scenes")
    create_scenes(out, num_images=20, resolution=16, seed=1, verbose=False)

    def buffer_sizes(**kwargs):
        graph = tf.Graph()
        with graph.as_default():
            dataset_mod.TFRecordDataset(out, **kwargs)
            ops = [op for op in graph.get_operations() if op.type.startswith(("PrefetchDataset", "ShuffleDataset"))]
            with tf.Session(graph=graph) as sess:
                return {(op.type.rstrip("V0123456789"), int(sess.run(op.inputs[1]))) for op in ops}, len(ops)

    sizes, count = buffer_sizes(resolution=16)
    assert count >= 2 and sizes == {("PrefetchDataset", 20), ("ShuffleDataset", 20)}   # every level
    sizes, _ = buffer_sizes(resolution=16, max_images=5)
    assert sizes == {("PrefetchDataset", 5), ("ShuffleDataset", 5)}
    sizes, _ = buffer_sizes(resolution=16, prefetch_mb=0, shuffle_mb=0)
    assert sizes == set()


def test_reader_errors(tmp_path):
    with pytest.raises(dnnlib.UserError, match="not found"):
        dataset_mod.load_dataset(data_dir=str(tmp_path), tfrecord_dir="missing")
    os.makedirs(str(tmp_path / "empty"))
    with pytest.raises(dnnlib.UserError, match="no <name>-rXX.tfrecords"):
        dataset_mod.TFRecordDataset(str(tmp_path / "empty"))


def test_jpeg_compact_matches_raw(tmp_path, tf_session):
    from training.data.scenes import render_scenes
    os.makedirs(str(tmp_path / "imgs"))
    for i, img in enumerate(render_scenes(5, 32, seed=0)[0]):
        PIL.Image.fromarray(img.transpose(1, 2, 0)).save(str(tmp_path / "imgs" / ("%d.jpg" % i)), quality=80)
    for storage in ("raw", "compact"):
        assert dataset_tool.main(["create_from_images", str(tmp_path / storage), str(tmp_path / "imgs"),
                                  "--storage", storage, "--shuffle", "0"]) == 0
    # Compact keeps the JPEG bytes as they are (smaller than the raw top level)...
    assert os.path.getsize(str(tmp_path / "compact" / "compact-r05.tfrecords")) < \
        os.path.getsize(str(tmp_path / "raw" / "raw-r05.tfrecords"))
    # ...and the reader's decode equals Pillow's (used for raw) exactly.
    _, raw, _ = _read_all(str(tmp_path / "raw"), 5)
    _, compact, _ = _read_all(str(tmp_path / "compact"), 5)
    np.testing.assert_array_equal(raw, compact)
