"""The semantic-matching segmenter (issue 14): its loss and metric math against numpy, the layout
format conversions against the reader, the U-Net's shapes and gradients, a tiny run of
scripts/train_segmenter.py, and the shipped metrics/data/scenes_segmenter.pkl on unseen scenes."""

import importlib.util
import os

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import dnnlib.tflib as tflib
from training import dataset as dataset_mod
from training import misc, segmenter
from training.data import layouts as lay
from training.data import records, scenes
from training.data.writer import DatasetWriter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = os.path.join(ROOT, "metrics", "data", "scenes_segmenter.pkl")


def _script():
    spec = importlib.util.spec_from_file_location("train_segmenter", os.path.join(ROOT, "scripts", "train_segmenter.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


# ------------------------------------------------------------------------------------------
# Loss and metric math.

def test_category_targets_and_loss_match_numpy(tf_session):
    rnd = np.random.RandomState(0)
    b, s, nc, h, w = 3, 5, 4, 6, 7                                      # Unequal sizes: a swapped axis fails.
    layout = _softmax(rnd.randn(b, s, h, w), axis=1).astype(np.float32)
    cats = rnd.randint(1, nc, size=(b, s))
    cats[:, 0] = 0
    cats[0, 3:] = -1                                                    # Empty slots add nothing.
    cats[2, 1] = -1
    segments = np.stack([cats.astype(np.float32), rnd.rand(b, s).astype(np.float32)], axis=-1)
    want = np.zeros((b, nc, h, w), np.float32)
    for i in range(b):
        for j in range(s):
            if cats[i, j] >= 0:
                want[i, cats[i, j]] += layout[i, j]
    targets = segmenter.category_targets(tf.constant(layout), tf.constant(segments), nc)
    got = tflib.run(targets)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert got[0].sum(axis=0).max() < 1 - 1e-3                          # Row 0's empty slots held mass.

    logits = rnd.randn(b, nc, h, w).astype(np.float32) * 3
    log_p = np.log(_softmax(logits.astype(np.float64), axis=1))
    want_loss = -(want * log_p).sum(axis=1).mean(axis=(1, 2))[:, None]
    loss = tflib.run(segmenter.semantic_matching_loss(tf.constant(logits), targets))
    assert loss.shape == (b, 1)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5)


def test_mean_iou_matches_brute_force():
    rnd = np.random.RandomState(1)
    nc = 6
    pred = rnd.randint(0, 5, size=(4, 9, 11))                           # Category 5 in neither map.
    target = np.where(rnd.rand(4, 9, 11) < 0.6, pred, rnd.randint(0, 5, size=pred.shape))
    target[0, 0, :4] = -1                                               # Void pixels are ignored.
    keep = target >= 0
    ious = []
    for c in range(nc):
        union = ((pred == c) | (target == c))[keep].sum()
        if union:
            ious.append(((pred == c) & (target == c))[keep].sum() / union)
    conf = segmenter.confusion(pred, target, nc)
    assert conf.shape == (nc, nc) and conf.sum() == keep.sum()
    assert np.isnan(segmenter.iou_per_category(conf)[5])
    np.testing.assert_allclose(segmenter.mean_iou(conf), np.mean(ious), rtol=1e-12)
    # Accumulating over batches = one matrix over all images; identical maps score 1.
    parts = segmenter.confusion(pred[:2], target[:2], nc) + segmenter.confusion(pred[2:], target[2:], nc)
    np.testing.assert_array_equal(parts, conf)
    assert segmenter.mean_iou(segmenter.confusion(target[1:], target[1:], nc)) == 1.0
    with pytest.raises(ValueError):
        segmenter.confusion(pred + 2, target, nc)                       # Prediction 6 is out of range.


# ------------------------------------------------------------------------------------------
# Layout formats.

def test_layout_inputs_agree_with_the_reader(tmp_path, tf_session):
    out = str(tmp_path / "scenes")
    n = 5
    scenes.create_scenes(out, num_images=n, resolution=8, seed=2, max_objects=3, verbose=False)
    _, _, (seg_ref, cats_ref) = scenes.render_scenes(n, 8, seed=[2, 0], max_objects=3, return_layouts=True)
    ds = dataset_mod.TFRecordDataset(out, layouts="onehot", shuffle_mb=0, repeat=False, max_segments=4)
    ds.configure(n)
    _, _, layout_tf = ds.get_minibatch_tf()
    by_onehot = segmenter.layout_inputs(layout_tf)
    by_index = segmenter.layout_inputs({k: v for k, v in layout_tf.items() if k != "onehot"})
    read, (lo_a, sg_a), (lo_b, sg_b) = tflib.run([layout_tf, by_onehot, by_index])
    lo_np, sg_np = segmenter.layout_inputs_np(read["segments"], read["categories"], read["depths"])
    assert lo_np.shape == (n, 5, 8, 8) and sg_np.shape == (n, 5, 2) and lo_np.dtype == sg_np.dtype == np.float32
    for lo, sg in ((lo_a, sg_a), (lo_b, sg_b)):
        np.testing.assert_array_equal(lo, lo_np)
        np.testing.assert_array_equal(sg, sg_np)
    np.testing.assert_array_equal(lo_np, read["onehot"])
    # batch_layouts builds the reader's arrays from per-image layouts; category maps follow the slots.
    seg_b, cats_b, depths_b = segmenter.batch_layouts(seg_ref, cats_ref, 4)
    np.testing.assert_array_equal(seg_b, read["segments"])
    np.testing.assert_array_equal(cats_b, read["categories"])
    np.testing.assert_allclose(depths_b, read["depths"], rtol=1e-6)
    cmap = segmenter.category_map_np(seg_b, cats_b)
    want = np.stack([np.concatenate([[0], c])[s] for s, c in zip(seg_ref, cats_ref)])
    np.testing.assert_array_equal(cmap, want)
    # The targets of a one-hot layout are the one-hot category map.
    targets = tflib.run(segmenter.category_targets(tf.constant(lo_np), tf.constant(sg_np), 6))
    np.testing.assert_array_equal(targets, np.eye(6, dtype=np.float32)[cmap].transpose(0, 3, 1, 2))


# ------------------------------------------------------------------------------------------
# The network.

@pytest.mark.parametrize("res", [16, 32])
def test_segmenter_shapes_and_gradients(tf_session, res):
    net = tflib.Network("Seg", func_name=segmenter.Segmenter, num_categories=5, base_channels=4, max_channels=6,
                        depth=3)
    images = tf.constant(np.random.RandomState(res).uniform(-1, 1, (3, 3, res, res)).astype(np.float32))
    logits = net.get_output_for(images)
    assert logits.dtype == tf.float32 and logits.shape.as_list() == [3, 5, res, res]
    targets = tf.one_hot(tf.zeros([3, res, res], tf.int32), 5, axis=1)
    loss = tf.reduce_sum(segmenter.semantic_matching_loss(logits, targets))
    names = list(net.trainables.keys())
    grads = tf.gradients(loss, list(net.trainables.values()))
    assert len(names) == 2 * (3 * 2 + 2 + 3 * 2) + 2                  # (down, bottom, up) x 2 convs + head.
    assert all(g is not None for g in grads), [n for n, g in zip(names, grads) if g is None]
    tflib.init_uninitialized_vars()
    out, grad_values = tflib.run([logits, grads])
    assert out.shape == (3, 5, res, res) and np.all(np.isfinite(out))
    assert all(np.abs(g).max() > 0 for g in grad_values)
    # Run-time sizes (the template has none) and the size check.
    assert net.run(np.zeros((2, 3, 8, 8), np.float32)).shape == (2, 5, 8, 8)
    with pytest.raises(ValueError, match="multiple of 2\\^depth"):
        net.get_output_for(tf.zeros([1, 3, 12, 12]))


# ------------------------------------------------------------------------------------------
# The training script.

def test_train_script_tiny_run_and_bad_input(tmp_path, tf_session, capsys):
    data = str(tmp_path / "tiny")
    scenes.create_scenes(data, num_images=48, resolution=16, seed=7, max_objects=3, verbose=False)
    script = _script()
    out = str(tmp_path / "seg.pkl")
    args = script.build_parser().parse_args([
        "--dataset-dir", data, "--resolutions", "8,16", "--steps", "60", "--batch-size", "8", "--lrate", "5e-3",
        "--base-channels", "6", "--max-channels", "8", "--depth", "2", "--heldout-fraction", "0.25",
        "--out", out, "--print-every", "1000"])
    result = script.train(args)
    losses = [v for _, v in result["losses"]]
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:10]), losses
    assert set(result["heldout"]) == {8, 16}
    with tf.Graph().as_default(), tflib.create_session().as_default():
        net = misc.load_pkl(out)
        assert net.run(np.zeros((2, 3, 16, 16), np.float32)).shape == (2, 6, 16, 16)

    plain = str(tmp_path / "plain")                                     # A dataset without layouts.
    with DatasetWriter(plain) as writer:
        writer.add_images(np.zeros((4, 3, 8, 8), np.uint8))
    capsys.readouterr()
    for argv, message in [(["--dataset-dir", str(tmp_path / "missing")], "not found"),
                          (["--dataset-dir", plain], "has no layouts"),
                          (["--dataset-dir", data, "--resolutions", "64"], "has no 64x64 level"),
                          (["--dataset-dir", data, "--resolutions", "12"], "--resolutions"),
                          (["--dataset-dir", data, "--resolutions", "8", "--depth", "4"], "2^--depth")]:
        assert script.main(argv + ["--out", out]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err and "Traceback" not in err, err


# ------------------------------------------------------------------------------------------
# The shipped segmenter of the embedded scenes.

def test_shipped_segmenter_on_unseen_scenes(tf_session):
    assert os.path.getsize(SHIPPED) < 3 << 20
    net = misc.load_pkl(SHIPPED)
    images, _, (segments, categories) = scenes.render_scenes(48, 64, seed=[789, 0], return_layouts=True)
    maps = np.stack([np.concatenate([[0], c])[s] for s, c in zip(segments, categories)])
    # 32x32 as the reader serves the 64x64 dataset's lod 1: box-averaged images, majority layouts.
    images32 = records.to_uint8(records.box_downscale_2x(images.astype(np.float32)))
    maps32 = np.stack([np.concatenate([[0], c])[s] for s, c in zip(lay.downsample(segments, 2), categories)])
    for imgs, target in ((images, maps), (images32, maps32)):
        logits = net.run(imgs.astype(np.float32) * (2 / 255) - 1, minibatch_size=48)
        miou = segmenter.mean_iou(segmenter.confusion(np.argmax(logits, axis=1), target, 6))
        assert miou > 0.8, (imgs.shape, miou)
