"""The whole metric pipeline on stand-in networks pickled in the official format
(tests/metrics_nets.py in place of Inception / VGG16), on a tiny TFRecord dataset: real
statistics, generated images, the cache, result files, the CLI and its errors."""

import os
import pickle
import re

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import dnnlib
import dnnlib.tflib as tflib
import metrics_nets
from metrics import metric_base, metric_defaults
from metrics.frechet_inception_distance import feature_stats

NUM_REALS = 40
RES = 8


def _pickle(obj, path):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Dataset, feature-network pickles and generator pickles, made once for the module."""
    root = tmp_path_factory.mktemp("metrics")
    from training.data.scenes import create_scenes
    create_scenes(str(root / "data" / "tiny"), num_images=NUM_REALS, resolution=RES, seed=5, verbose=False)

    nets_dir = root / "nets"
    nets_dir.mkdir()
    with tf.Graph().as_default(), tflib.create_session().as_default():
        tf.set_random_seed(1)
        feat = tflib.Network("Inception", func_name=metrics_nets.feature_net, num_features=12)
        soft = tflib.Network("Softmax", func_name=metrics_nets.feature_net, num_features=10, softmax=True)
        vgg = tflib.Network("VGG", func_name=metrics_nets.feature_net, num_features=8)
        lpips = tflib.Network("LPIPS", func_name=metrics_nets.perceptual_distance)
        for net, name in [(feat, "inception_v3_features.pkl"), (soft, "inception_v3_softmax.pkl"),
                          (vgg, "vgg16.pkl"), (lpips, "vgg16_zhang_perceptual.pkl")]:
            _pickle(net, str(nets_dir / name))
        G = tflib.Network("G", func_name=metrics_nets.tiny_generator, resolution=RES)
        # Same structure in both pickles (3 distinct networks), so a fixed graph seed gives the same draws.
        _pickle((G, feat, G.clone("Gs")), str(root / "network-snapshot-000001.pkl"))
        _pickle((G, feat, G.clone("Gs", scale=2.0)), str(root / "network-scaled.pkl"))
        flat = G.clone("G0")  # Outputs exactly 0 -> uint8 128 everywhere.
        flat.set_var("synthesis/weight", np.zeros(flat.get_var("synthesis/weight").shape, np.float32))
        flat.set_var("synthesis/noise_strength", np.float32(0))
        _pickle((flat, feat, flat), str(root / "network-flat.pkl"))
    return dnnlib.EasyDict(root=root, data_dir=str(root / "data"), nets_dir=str(nets_dir),
                           pkl=str(root / "network-snapshot-000001.pkl"), scaled=str(root / "network-scaled.pkl"),
                           flat=str(root / "network-flat.pkl"), cache=str(root / "cache"))


def _metric(name, num_images=NUM_REALS, **overrides):
    kwargs = metric_defaults.get_metric_kwargs([name], num_images=num_images)[0]
    kwargs.update(overrides)
    return dnnlib.util.call_func_by_name(**kwargs)


def _run(metric, env, network=None, run_dir=None, **kwargs):
    args = dict(run_dir=run_dir, data_dir=env.data_dir, dataset_args=dict(tfrecord_dir="tiny"),
                cache_dir=env.cache, nets_dir=env.nets_dir, tf_config={"rnd.tf_random_seed": 7})
    args.update(kwargs)
    metric.run(network or env.pkl, **args)
    return {r.name: r.value for r in metric.list_results()}


def _all_real_features(env, rows=slice(None)):
    """Stand-in Inception features of every dataset image (rows cropped), computed apart from the metric code."""
    from training.data import records
    files = records.DatasetFiles(os.path.join(env.data_dir, "tiny"))
    images = np.stack([img for img in records.iter_images(files)])
    assert images.shape == (NUM_REALS, 3, RES, RES)
    with tf.Graph().as_default(), tflib.create_session().as_default():
        net = metric_base.load_feature_net("inception_v3_features.pkl", env.nets_dir)
        flat = np.full((1, 3, RES, RES), 128, np.uint8)
        return net.run(images[:, :, rows]), net.run(flat[:, :, rows])[0]


def test_fid_end_to_end_cache_and_result_file(env, tmp_path, capsys):
    run_dir = str(tmp_path)
    fid = _metric("fid50k")
    results = _run(fid, env, network=env.flat, run_dir=run_dir, verbose=True)
    assert fid.reals_computed == NUM_REALS

    # The cached real statistics equal those of the stand-in features of the whole dataset
    # (one pass over the file; order does not matter for mean and covariance).
    real_features, flat_feature = _all_real_features(env)
    cache_files = os.listdir(env.cache)
    assert len(cache_files) == 1 and cache_files[0].endswith("-fid40-tiny.pkl")
    cache_file = os.path.join(env.cache, cache_files[0])
    with open(cache_file, "rb") as f:
        mu, sigma = pickle.load(f)
    mu_ref, sigma_ref = feature_stats(real_features)
    np.testing.assert_allclose(mu, mu_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sigma, sigma_ref, rtol=1e-4, atol=1e-7)

    # The flat generator makes one image: its features have zero covariance, so
    # FID = |mu_r - f|² + Tr(S_r) exactly.
    expected = np.sum((mu_ref - flat_feature) ** 2) + np.trace(sigma_ref)
    assert results["fid40"] == pytest.approx(expected, rel=1e-4)

    lines = open(os.path.join(run_dir, "metric-fid40.txt")).read().splitlines()
    assert len(lines) == 1
    assert re.fullmatch(r"network-flat {18} time \S+ +fid40 [0-9.]+ *", lines[0]), lines[0]
    out = capsys.readouterr().out
    assert "fid40: reals  40/40 images" in out and "fid40: fakes  40/40 images" in out

    # Second run: the reals come from the cache (nothing recomputed, file untouched).
    mtime = os.stat(cache_file).st_mtime_ns
    fid_again = _metric("fid50k")
    again = _run(fid_again, env, network=env.flat, run_dir=run_dir)
    assert fid_again.reals_computed == 0
    assert os.stat(cache_file).st_mtime_ns == mtime
    assert again["fid40"] == pytest.approx(results["fid40"], rel=1e-6)
    assert len(open(os.path.join(run_dir, "metric-fid40.txt")).read().splitlines()) == 2

    # Another option (mirror) is another cache entry.
    fid_mirror = _metric("fid50k")
    _run(fid_mirror, env, network=env.flat, mirror_augment=True)
    assert fid_mirror.reals_computed == NUM_REALS and len(os.listdir(env.cache)) == 2


def test_ratio_crops_reals_and_fakes(env):
    # ratio 0.5 at 8 px: rows 2..5 of reals and fakes (REFERENCE §7, GANsformer; exact rows).
    fid = _metric("fid50k")
    result = _run(fid, env, network=env.flat, ratio=0.5)["fid40"]
    real_features, flat_feature = _all_real_features(env, rows=slice(2, 6))
    mu, sigma = feature_stats(real_features)
    assert result == pytest.approx(np.sum((mu - flat_feature) ** 2) + np.trace(sigma), rel=1e-4)
    full = _run(_metric("fid50k"), env, network=env.flat)["fid40"]
    assert abs(result - full) > 1e-3 * full  # The crop changed what was measured.


def test_all_metrics_run_on_a_generator(env, tmp_path):
    names = ["fid50k", "is50k", "pr50k3", "kid50k", "ppl_wend", "ppl_zfull"]
    values = {}
    for name in names:
        metric = _metric(name, num_images=24, minibatch_per_gpu=5)  # 24 = 4 full minibatches + a partial one.
        values.update(_run(metric, env, run_dir=str(tmp_path)))
    assert sorted(values) == sorted(["fid24", "is24_mean", "is24_std", "pr24_3_precision", "pr24_3_recall",
                                     "kid24", "ppl_wend", "ppl_zfull"])
    assert values["fid24"] > 0 and 1 <= values["is24_mean"] <= 10
    assert 0 <= values["pr24_3_precision"] <= 1 and 0 <= values["pr24_3_recall"] <= 1
    assert np.isfinite(values["kid24"]) and values["ppl_wend"] > 0 and values["ppl_zfull"] > 0
    assert sorted(os.listdir(str(tmp_path))) == sorted("metric-%s.txt" % n for n in
                                                       ["fid24", "is24", "pr24_3", "kid24", "ppl_wend", "ppl_zfull"])


def test_ppl_scales_with_squared_image_scale_and_uses_shared_noise(env):
    # The scaled generator multiplies images by 2: LPIPS stand-in (quadratic) -> 4x, with the same
    # random draws (fixed graph seed). Fresh noise per image would add noise/eps² ~ 1e8 instead.
    base = _run(_metric("ppl_wend", num_images=16), env, network=env.pkl)["ppl_wend"]
    scaled = _run(_metric("ppl_wend", num_images=16), env, network=env.scaled)["ppl_wend"]
    assert scaled == pytest.approx(4 * base, rel=1e-3)
    assert base < 1e5


def test_two_towers_match_the_plain_path(env):
    one = _run(_metric("fid50k", num_images=16), env, network=env.flat)["fid16"]
    two = _run(_metric("fid50k", num_images=16), env, network=env.flat, num_gpus=2)["fid16"]
    assert two == pytest.approx(one, rel=1e-5)  # Same (flat) fakes, reals from the cache.


def test_training_loop_entry_point(env, tmp_path):
    # training_loop (and run_metrics.py) call metric_base.evaluate_metrics(names, snapshot, run_dir=...,
    # dataset_args=dict(..., shuffle_mb=0), num_gpus=..., **metric_args); here with the loop's arguments.
    metric_args = dict(num_images=NUM_REALS, data_dir=env.data_dir, cache_dir=env.cache, nets_dir=env.nets_dir)
    values = metric_base.evaluate_metrics(["fid50k"], env.flat, run_dir=str(tmp_path),
                                          dataset_args=dict(dict(tfrecord_dir="tiny"), shuffle_mb=0), num_gpus=1,
                                          **metric_args)
    real_features, flat_feature = _all_real_features(env)
    mu, sigma = feature_stats(real_features)
    assert list(values) == ["fid40"]
    assert values["fid40"] == pytest.approx(np.sum((mu - flat_feature) ** 2) + np.trace(sigma), rel=1e-4)
    assert os.path.isfile(str(tmp_path / "metric-fid40.txt"))


def test_cli_runs_and_reports_errors(env, tmp_path, capsys, monkeypatch):
    import run_metrics
    monkeypatch.setenv("DNNLIB_CACHE_DIR", str(tmp_path / "dnnlib-cache"))
    args = ["--network", env.pkl, "--metrics", "fid50k,is50k", "--num-images", "20", "--data-dir", env.data_dir,
            "--dataset", "tiny", "--metric-nets-dir", env.nets_dir, "--result-dir", str(tmp_path)]
    assert run_metrics.main(args) == 0
    out = capsys.readouterr().out
    assert re.search(r"network-snapshot-000001 +time \S+ +fid20 [0-9.]+", out)
    assert re.search(r"is20_mean [0-9.]+ +is20_std [0-9.]+", out)
    assert os.path.isdir(str(tmp_path / "dnnlib-cache" / "metrics"))

    def error_of(argv):
        assert run_metrics.main(argv) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err
        return err

    base = ["--network", env.pkl, "--data-dir", env.data_dir, "--dataset", "tiny", "--metric-nets-dir", env.nets_dir]
    assert "nothing.pkl" in error_of(["--network", str(tmp_path / "nothing.pkl")])
    assert "--dataset nope" in error_of(base[:4] + ["--dataset", "nope"])
    assert "fid77" in error_of(base + ["--metrics", "fid77"])
    empty = tmp_path / "empty-nets"
    empty.mkdir()
    msg = error_of(base[:6] + ["--metric-nets-dir", str(empty), "--metrics", "fid50k", "--num-images", "8"])
    assert "inception_v3_features.pkl" in msg and "https://" in msg
    (empty / "inception_v3_features.pkl").write_bytes(b"not a pickle")
    msg = error_of(base[:6] + ["--metric-nets-dir", str(empty), "--metrics", "fid50k", "--num-images", "8"])
    assert "Cannot load feature network" in msg
