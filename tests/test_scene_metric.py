"""The shipped offline scene metric (metrics/data/scenes_classifier.pkl) separates real
held-out scenes from noise and from an untrained generator, directly and through the
fid_scenes / pr_scenes pipeline with no feature-network download."""

import os

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import dnnlib
import dnnlib.tflib as tflib
from metrics import metric_base, metric_defaults
from metrics.frechet_inception_distance import feature_stats, frechet_distance
from metrics.precision_recall import precision_recall
from training import misc
from training.data.scenes import render_scenes

N = 256
RES = 64


def _untrained_generator():
    """A randomly initialised GANsformer at 64 px (tiny widths), as training starts from."""
    from training import networks, options
    gkw, _ = options.resolve_model("gansformer", channel_base=256, channel_max=32, components_num=3, latent_size=24,
                             num_heads=2, mapping_num_layers=2, resolution=RES, ratio=1.0)
    return tflib.Network("G", func_name=networks.Generator, **gkw)


@pytest.fixture(scope="module")
def shipped_net_path():
    path = metric_base.resolve_feature_net("scenes_classifier.pkl", nets_dir=os.devnull)
    assert path == os.path.join(metric_base.SHIPPED_NETS_DIR, "scenes_classifier.pkl")
    assert os.path.getsize(path) < 4 << 20  # A few MB at most.
    return path


def test_scene_features_rank_real_far_better_than_noise_and_untrained_g(tf_session, shipped_net_path):
    net = misc.load_pkl(shipped_net_path)
    real_a, _ = render_scenes(N, RES, seed=[555, 0])
    real_b, _ = render_scenes(N, RES, seed=[556, 0])   # Held out: seeds unseen in training.
    noise = np.random.RandomState(0).randint(0, 256, size=real_a.shape).astype(np.uint8)
    G = _untrained_generator()
    tflib.init_uninitialized_vars()
    z = np.random.RandomState(1).randn(N, *G.input_shape[1:]).astype(np.float32)
    fakes = G.run(z, None, is_validation=True, minibatch_size=64, return_as_list=True)[0]  # Images, maps.
    fakes = np.clip(np.rint(fakes * 127.5 + 127.5), 0, 255).astype(np.uint8)

    feats = {name: net.run(images, minibatch_size=128)
             for name, images in [("a", real_a), ("b", real_b), ("noise", noise), ("untrained", fakes)]}
    assert feats["a"].shape == (N, net.output_shape[1])
    stats_a = feature_stats(feats["a"])
    fid = {name: frechet_distance(*stats_a, *feature_stats(feats[name])) for name in ("b", "noise", "untrained")}
    assert fid["b"] * 10 < fid["noise"] and fid["b"] * 10 < fid["untrained"], fid

    pr = {name: precision_recall(feats["a"], feats[name], k=3, row_batch_size=100, col_batch_size=100)
          for name in ("b", "noise", "untrained")}
    assert pr["b"][0] > 0.6 and pr["b"][1] > 0.6, pr
    assert pr["noise"][0] < 0.25 and pr["untrained"][0] < 0.25, pr


def test_fid_scenes_pipeline_runs_offline(tmp_path, monkeypatch, shipped_net_path):
    monkeypatch.setenv(metric_base.METRIC_NETS_DIR_ENV, str(tmp_path))  # Empty: the shipped file must be used.
    from training.data.scenes import create_scenes
    create_scenes(str(tmp_path / "data" / "scenes"), num_images=64, resolution=RES, seed=9, verbose=False)
    with tf.Graph().as_default(), tflib.create_session().as_default():
        tf.set_random_seed(2)
        G = _untrained_generator()
        tflib.init_uninitialized_vars()
        misc.save_pkl((G, G, G), str(tmp_path / "untrained.pkl"))
    values = {}
    for name in ("fid_scenes", "pr_scenes"):
        metric = dnnlib.util.call_func_by_name(**metric_defaults.get_metric_kwargs([name], num_images=48)[0])
        metric.run(str(tmp_path / "untrained.pkl"), run_dir=str(tmp_path), data_dir=str(tmp_path / "data"),
                   dataset_args=dict(tfrecord_dir="scenes"), cache_dir=str(tmp_path / "cache"))
        values.update({r.name: r.value for r in metric.list_results()})
    # The same 48-image measurement between two sets of held-out reals, directly (at this count
    # FID carries a large bias, so the pipeline's value is compared with it, not with zero).
    with tf.Graph().as_default(), tflib.create_session().as_default():
        net = misc.load_pkl(shipped_net_path)
        real_a, real_b = [net.run(render_scenes(48, RES, seed=[s, 0])[0], minibatch_size=48) for s in (557, 558)]
        real_fid = frechet_distance(*feature_stats(real_a), *feature_stats(real_b))
        real_precision, _ = precision_recall(real_a, real_b, k=3, row_batch_size=100, col_batch_size=100)
    assert values["fid_scenes"] > 2 * real_fid, (values, real_fid)
    assert values["pr_scenes_precision"] < real_precision - 0.3, (values, real_precision)
    assert os.path.isfile(str(tmp_path / "metric-fid_scenes.txt"))


def test_scene_features_resize_small_images_of_unknown_size(tf_session, shipped_net_path):
    # Network.run feeds placeholders of unknown height/width: 8x8 images must be resized to the
    # classifier's 64x64 like a numpy pixel-repeat upsampling (AREA resize at an integer factor).
    net = misc.load_pkl(shipped_net_path)
    small = render_scenes(4, resolution=8, seed=5)[0]                               # uint8 [4, 3, 8, 8]
    big = np.repeat(np.repeat(small, 8, axis=2), 8, axis=3)                          # [4, 3, 64, 64]
    np.testing.assert_allclose(net.run(small, minibatch_size=4), net.run(big, minibatch_size=4),
                               rtol=1e-4, atol=1e-4)
