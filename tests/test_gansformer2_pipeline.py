"""GANsformer2's execution stage through the tools: the structural loss terms against numpy on
the real networks, the CLI (training on a tiny dataset with layouts, then layout-to-image,
restyle and the layout metrics on its snapshot), label-PNG layout sources and bad input."""

import json
import os

os.environ.setdefault("DNNLIB_OPS_IMPL", "ref")

import numpy as np
import PIL.Image
import pytest
import tensorflow.compat.v1 as tf

import dnnlib.tflib as tflib
import run_generator
import run_training
from dnnlib.util import UserError
from training import layout_generation, loss as loss_lib, options, segmenter
from training.data import layouts as lay
from training.data.scenes import create_scenes, render_scenes

S, NC, R, B = 4, 6, 16, 4
TINY = ["--resolution", "16", "--channel-max", "16", "--d-channel-max", "16", "--latent-size", "16",
        "--mapping-num-layers", "1"]


def _softplus(x):
    return np.logaddexp(0.0, x)


def _nets():
    gkw, dkw = options.resolve_model("gansformer2", channel_base=256, channel_max=16, latent_size=16,
                                     mapping_num_layers=1, d_segment_res=3, noise_mode="const")
    geo = dict(resolution=R, num_channels=3, max_segments=S - 1, num_categories=NC)
    G = tflib.Network("G", func_name="training.networks_gansformer2.Generator", **dict(gkw, **geo))
    D = tflib.Network("D", func_name="training.networks_gansformer2.Discriminator", **dict(dkw, **geo))
    return G, D


def _cond(seed):
    """A batch of real scene layouts (the scenes' own) as the networks' inputs."""
    _, _, (maps, cats) = render_scenes(B, resolution=R, seed=seed, max_objects=S - 1, return_layouts=True)
    layout, segments = segmenter.layout_inputs_np(*segmenter.batch_layouts(maps, cats, S - 1))
    return (tf.zeros([B, 0]), tf.constant(layout), tf.constant(segments)), layout, segments


def _masked_mean(values, layout, segments):
    valid = (segments[..., 0] >= 0) & (layout.sum(axis=(2, 3)) > 0)
    return (values * valid).sum(axis=1, keepdims=True) / np.maximum(valid.sum(axis=1, keepdims=True), 1)


def test_segment_fidelity_terms_equal_numpy(tf_session):
    """D_loss = logistic on the global scores + w * the mean over real segments of logistic on the
    segment scores, from D's own outputs on the reals and on G(z)."""
    G, D = _nets()
    cond, layout, segments = _cond(1)
    z = tf.constant(np.random.RandomState(2).randn(B, S + 1, 16).astype(np.float32))
    reals = tf.constant(np.random.RandomState(3).uniform(-1, 1, [B, 3, R, R]).astype(np.float32))
    weight = 0.7
    loss, reg = loss_lib.D_loss(G, D, reals, cond, B, loss="logistic", reg="none", gamma=0.0,
                                segment_weight=weight, latents=z)
    fakes = G.get_output_for(z, *cond, is_training=True, return_as_list=True)[0]
    real_out = D.get_output_for(reals, *cond, is_training=True, return_as_list=True)
    fake_out = D.get_output_for(fakes, *cond, is_training=True, return_as_list=True)
    tflib.init_uninitialized_vars()
    got, (rs, rseg), (fs, fseg) = tf_session.run([loss, real_out, fake_out])
    assert reg is None
    expected = _softplus(fs) + _softplus(-rs) + weight * _masked_mean(_softplus(fseg) + _softplus(-rseg), layout,
                                                                       segments)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert np.abs(rseg[segments[..., 0] < 0]).max() == 0    # empty slots score 0


def test_semantic_matching_term_equals_numpy(tf_session):
    """G_loss = non-saturating loss + w * the segmenter's cross-entropy on the fakes against the
    layout's categories (segment term off)."""
    G, D = _nets()
    cond, layout, segments = _cond(4)
    seg = tflib.Network("Seg", func_name="training.segmenter.Segmenter", num_categories=NC, base_channels=4,
                        max_channels=8, depth=2)
    z = tf.constant(np.random.RandomState(5).randn(B, S + 1, 16).astype(np.float32))
    loss, _ = loss_lib.G_loss(G, D, cond, B, loss="logistic_ns", pl_weight=0.0, segment_weight=0.0,
                              semantic_weight=2.0, segmenter=seg, latents=z)
    fakes = G.get_output_for(z, *cond, is_training=True, return_as_list=True)[0]
    scores = D.get_output_for(fakes, *cond, is_training=True, return_as_list=True)[0]
    logits = seg.get_output_for(fakes)
    tflib.init_uninitialized_vars()
    got, s, lg = tf_session.run([loss, scores, logits])
    targets = np.einsum("bshw,bsc->bchw", layout, np.eye(NC)[np.maximum(segments[..., 0], 0).astype(int)]
                        * (segments[..., 0:1] >= 0))
    logp = lg - lg.max(axis=1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(axis=1, keepdims=True))
    ce = -(targets * logp).sum(axis=1).mean(axis=(1, 2))[:, None]
    np.testing.assert_allclose(got, _softplus(-s) + 2.0 * ce, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------------
# The command line, on one tiny run.


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("g2")
    data = root / "data"
    create_scenes(str(data / "tiny"), num_images=64, resolution=32, seed=7, max_objects=3, verbose=False)
    seg_pkl = str(root / "seg.pkl")
    with tf.Graph().as_default(), tflib.create_session().as_default():
        from training import misc
        net = tflib.Network("Segmenter", func_name="training.segmenter.Segmenter", num_categories=NC,
                            base_channels=4, max_channels=8, depth=2)
        tflib.init_uninitialized_vars()
        misc.save_pkl(net, seg_pkl)
    rc = run_training.main(["--gansformer2", "execution", "--data-dir", str(data), "--dataset", "tiny",
                            "--result-dir", str(root / "res"), "--total-kimg", "0.016", "--kimg-per-tick", "0.016",
                            "--batch-size", "8", "--batch-gpu", "8", "--semantic-weight", "1",
                            "--segmenter", seg_pkl] + TINY)
    assert rc == 0
    run_dir = [d for d in (root / "res").iterdir() if d.is_dir()][0]
    return dict(root=root, data=data, run_dir=run_dir, pkl=str(run_dir / "network-final.pkl"), seg=seg_pkl)


def test_cli_run_writes_layout_grids_and_snapshots(trained):
    run_dir = trained["run_dir"]
    for name in ("layouts.png", "fakesinit.png", "attentioninit.png", "network-final.pkl"):
        assert (run_dir / name).is_file(), name
    opts = json.loads((run_dir / "training_options.json").read_text())
    assert opts["semantic_weight"] == 1.0 and opts["segmenter"] == trained["seg"]
    assert opts["G_args"]["func_name"] == "training.networks_gansformer2.Generator"


def test_layout_to_image_and_restyle(trained, tmp_path, capsys):
    out = tmp_path / "l2i"
    assert run_generator.main(["layout-to-image", "--network", trained["pkl"], "--layouts", str(trained["data"] / "tiny"),
                               "--count", "2", "--seeds", "0-2", "--outdir", str(out)]) == 0
    names = sorted(os.listdir(out))
    assert names == ["grid.png", "tiny0000-seed0000.png", "tiny0000-seed0001.png", "tiny0000-seed0002.png",
                     "tiny0000.png", "tiny0001-seed0000.png", "tiny0001-seed0001.png", "tiny0001-seed0002.png",
                     "tiny0001.png"]
    assert PIL.Image.open(out / "grid.png").size == (4 * 16, 2 * 16)
    a, b = (np.asarray(PIL.Image.open(out / n), np.float32) for n in ("tiny0000-seed0000.png", "tiny0000-seed0001.png"))
    assert np.abs(a - b).mean() > 0.1                          # seeds differ
    assert run_generator.main(["restyle", "--network", trained["pkl"], "--layouts", str(trained["data"] / "tiny"),
                               "--segment", "1", "--seeds", "3", "--new-seeds", "4,5", "--outdir",
                               str(tmp_path / "rs")]) == 0
    ratios = [float(line.rsplit("=", 1)[1]) for line in capsys.readouterr().out.splitlines() if "inside / outside" in line]
    assert len(ratios) == 2 and min(ratios) > 1.5              # the restyled segment changes most


def test_layout_metrics_run_on_the_snapshot(trained):
    from metrics import metric_base
    common = dict(data_dir=str(trained["data"]), dataset_args=dict(tfrecord_dir="tiny"),
                  nets_dir=str(trained["root"]), cache_dir=str(trained["root"] / "cache"))
    os.rename(trained["seg"], str(trained["root"] / "scenes_segmenter.pkl"))
    try:
        values = metric_base.evaluate_metrics("miou_scenes", trained["pkl"], num_images=32, **common)
    finally:
        os.rename(str(trained["root"] / "scenes_segmenter.pkl"), trained["seg"])
    assert 0.0 <= values["miou_scenes"] <= 1.0
    values = metric_base.evaluate_metrics("div_scenes", trained["pkl"], num_images=16, **common)
    assert values["div_scenes"] > 0                            # images of one layout differ


def test_generator_commands_refuse_the_wrong_kind_of_network(trained):
    with pytest.raises(UserError, match="renders layouts"):
        run_generator.run(run_generator.build_parser().parse_args(
            ["generate-images", "--network", trained["pkl"], "--seeds", "1", "--outdir", "/tmp/unused-g2"]))
    assert not os.path.exists("/tmp/unused-g2")


# ------------------------------------------------------------------------------------------
# Layout sources and bad input.


class _View:
    layout_slots, num_categories = S, NC


def test_label_png_folder_is_read_at_the_network_width(tmp_path):
    """A 32x32 index PNG for a 16x16 network: the layout of from_ids, majority down-sampled."""
    ids = np.zeros([32, 32], np.uint8)
    ids[4:20, 2:12], ids[10:30, 16:30] = 2, 5
    PIL.Image.fromarray(ids, "L").save(tmp_path / "a.png")
    (name, seg, cats), = layout_generation.read_layouts(str(tmp_path), 16)
    ref_seg, ref_cats = lay.from_ids(ids.astype(np.int64), lambda i: i, "a")
    assert name == "a" and list(cats) == list(ref_cats)
    np.testing.assert_array_equal(seg, lay.downsample(ref_seg, 2))
    layout, segments = layout_generation.network_inputs(_View, [(name, seg, cats)])
    assert layout.shape == (1, S, 16, 16) and np.allclose(layout.sum(axis=1), 1)
    assert list(segments[0, :, 0]) == [0] + list(cats) + [-1] * (S - 1 - len(cats))


def test_bad_layout_sources(tmp_path):
    PIL.Image.fromarray(np.zeros([24, 24], np.uint8), "L").save(tmp_path / "odd.png")
    with pytest.raises(UserError, match="odd.png is 24x24"):
        layout_generation.read_layouts(str(tmp_path), 16)
    with pytest.raises(UserError, match="no such folder"):
        layout_generation.read_layouts(str(tmp_path / "missing"), 16)
    ids = (np.arange(16 * 16).reshape(16, 16) % 7).astype(np.int64)            # 6 segments, 3 slots
    with pytest.raises(UserError, match="x has 6 segments; this network takes at most 3"):
        layout_generation.network_inputs(_View, [("x", *lay.from_ids(ids, lambda i: 1, "x"))])
    with pytest.raises(UserError, match=r"y has categories \[9\]; this network knows 1..5"):
        layout_generation.network_inputs(_View, [("y", *lay.from_ids(ids % 2, lambda i: 9, "y"))])


@pytest.mark.parametrize("flags, message", [
    (["--augment", "translation"], "move the image off its layout"),
    (["--semantic-weight", "1"], "needs --segmenter"),
    (["--segmenter", "/no/such.pkl"], "no such file"),
])
def test_bad_training_options_fail_before_anything_is_written(tmp_path, capsys, flags, message):
    rc = run_training.main(["--gansformer2", "execution", "--data-dir", str(tmp_path), "--dataset", "none",
                            "--result-dir", str(tmp_path / "res"), "--dry-run"] + flags)
    assert rc == 1 and message in capsys.readouterr().err
    assert not (tmp_path / "res").exists()


def test_damaged_segmenter_is_one_line(trained, tmp_path, capsys):
    bad = tmp_path / "seg.pkl"
    bad.write_bytes(b"not a pickle")
    rc = run_training.main(["--gansformer2", "execution", "--data-dir", str(trained["data"]), "--dataset", "tiny",
                            "--result-dir", str(tmp_path / "res"), "--total-kimg", "0.008", "--semantic-weight", "1",
                            "--segmenter", str(bad)] + TINY)
    err = capsys.readouterr().err
    assert rc == 1 and "--segmenter %s: cannot load it" % bad in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "res").exists()   # refused before the run directory is made
    # A truncated copy of the real segmenter: the same one line, still before anything is written.
    with open(trained["seg"], "rb") as f:
        bad.write_bytes(f.read()[:-40])
    rc = run_training.main(["--gansformer2", "execution", "--data-dir", str(trained["data"]), "--dataset", "tiny",
                            "--result-dir", str(tmp_path / "res"), "--semantic-weight", "1", "--segmenter", str(bad)]
                           + TINY)
    err = capsys.readouterr().err
    assert rc == 1 and "not a complete pickle" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "res").exists()


def test_semantic_matching_needs_a_layout_model(tmp_path, capsys):
    rc = run_training.main(["--baseline", "StyleGAN2", "--segmenter", "x.pkl", "--result-dir", str(tmp_path / "r"),
                            "--dry-run"])
    assert rc == 1 and "needs a layout-to-image model" in capsys.readouterr().err


def test_dataset_without_layouts_is_one_line(tmp_path, capsys):
    import dataset_tool
    images = tmp_path / "images"
    images.mkdir()
    for i in range(4):
        PIL.Image.fromarray(np.full([16, 16, 3], 40 * i, np.uint8)).save(images / ("%d.png" % i))
    assert dataset_tool.main(["create_from_images", str(tmp_path / "data" / "plain"), str(images)]) == 0
    rc = run_training.main(["--gansformer2", "execution", "--data-dir", str(tmp_path / "data"), "--dataset", "plain",
                            "--result-dir", str(tmp_path / "res"), "--total-kimg", "0.008"] + TINY)
    err = capsys.readouterr().err
    assert rc == 1 and "has no layouts" in err and len(err.strip().splitlines()) == 1, err
