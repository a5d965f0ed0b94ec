"""attn_scenes (metrics/attention_structure.py): ARI/NMI against hand-computed values and on
constructed partitions, concentration of constructed maps, the object partition of real
scenes, and the metric end to end on a tiny untrained GANsformer pickle."""

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import dnnlib
import dnnlib.tflib as tflib
from dnnlib.util import UserError
from metrics import metric_base, metric_defaults
from metrics.attention_structure import adjusted_rand_index, attention_stats, normalized_mutual_info, object_segments
from training import misc
from training.data.scenes import PALETTE, decode_labels, render_scenes


def test_ari_and_nmi_known_values():
    # scikit-learn's documented examples: a refinement of a 2-cluster labeling.
    assert adjusted_rand_index([0, 0, 1, 1], [0, 0, 1, 2]) == pytest.approx(4 / 7)
    assert normalized_mutual_info([0, 0, 1, 1], [0, 0, 1, 2]) == pytest.approx(0.8)
    assert adjusted_rand_index([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(-0.5)
    assert adjusted_rand_index([3, 3, 3], [1, 1, 1]) == 1.0                # both trivial and equal
    assert adjusted_rand_index([0, 0, 0, 0], [0, 0, 1, 1]) == pytest.approx(0.0)


def test_ari_and_nmi_perfect_and_random_partitions():
    rnd = np.random.RandomState(0)
    truth = rnd.randint(0, 6, size=20000)
    renamed = np.array([5, 3, 9, 0, 1, 7])[truth]                             # same partition, other names
    assert adjusted_rand_index(truth, renamed) == pytest.approx(1.0)
    assert normalized_mutual_info(truth, renamed) == pytest.approx(1.0)
    unrelated = rnd.randint(0, 8, size=truth.size)
    assert abs(adjusted_rand_index(truth, unrelated)) < 0.005
    assert normalized_mutual_info(truth, unrelated) < 0.005
    noisy = np.where(rnd.rand(truth.size) < 0.3, unrelated, truth)            # in between
    assert 0.2 < adjusted_rand_index(truth, noisy) < 0.9


def _blocks(batch=3, k=5, size=12):
    """Object segments [B, H, W] of 3 vertical bands (0 = background) and one-hot maps that
    follow them ([B, k, H, W], latent 4 - segment)."""
    segments = np.zeros([batch, size, size], int)
    segments[:, :, 4:8], segments[:, :, 8:] = 2, 7
    latent = np.select([segments == 0, segments == 2], [4, 1], 0)
    return segments, np.eye(k)[latent].transpose(0, 3, 1, 2)


def test_attention_stats_on_constructed_maps():
    k = 5
    segments, onehot = _blocks(k=k)
    stats = attention_stats(onehot, segments)
    for key, value in dict(maxprob=1, entropy=0, ari=1, fgari=1, nmi=1).items():
        np.testing.assert_allclose(stats[key], value, atol=1e-9, err_msg=key)

    uniform = attention_stats(np.full_like(onehot, 0.3), segments)            # unnormalised on purpose
    np.testing.assert_allclose(uniform["entropy"], np.log(k), rtol=1e-9)
    np.testing.assert_allclose(uniform["maxprob"], 1 / k, rtol=1e-9)
    np.testing.assert_allclose(uniform["ari"], 0, atol=1e-9)                 # argmax: one region

    rnd = np.random.RandomState(1)
    random = attention_stats(rnd.dirichlet(np.ones(k), size=(3, 12, 12)).transpose(0, 3, 1, 2), segments)
    assert np.all(np.abs(random["ari"]) < 0.1) and np.all(np.abs(random["fgari"]) < 0.1)
    assert np.all(random["entropy"] < np.log(k)) and np.all(random["maxprob"] > 1 / k)

    # One latent per object but the background split in two: FG-ARI stays 1, ARI drops.
    split = onehot.copy()
    split[:, :, :6, :4] = np.eye(k)[3][None, :, None, None]
    stats = attention_stats(split, segments)
    np.testing.assert_allclose(stats["fgari"], 1, atol=1e-9)
    assert np.all(stats["ari"] < 0.9)

    # No object pixels: nothing to agree with (NaN, left out of the means).
    empty = attention_stats(onehot, np.zeros_like(segments))
    assert np.all(np.isnan(empty["ari"])) and np.all(np.isnan(empty["fgari"]))


def test_object_segments_of_real_scenes():
    images, labels = render_scenes(16, 32, seed=3)
    segments = object_segments(images)
    for seg, objects in zip(segments, decode_labels(labels, 5)):
        assert sorted(np.unique(seg[seg > 0]) - 1) == sorted(colour for _, colour, *_ in objects)
    # Background pixels are the dim ones; object pixels carry their palette colour exactly.
    bright = images.max(axis=1)
    assert np.all(bright[segments == 0] <= 110)
    colours = images.transpose(0, 2, 3, 1)[segments > 0]
    np.testing.assert_array_equal(colours, PALETTE[segments[segments > 0] - 1])


@pytest.fixture(scope="module")
def tiny_pickles(tmp_path_factory):
    """A tiny untrained GANsformer (k=3, two attention layers at 16 px) and a generator without
    attention maps, pickled."""
    from tests import metrics_nets
    from training import networks, options
    root = tmp_path_factory.mktemp("attn")
    with tf.Graph().as_default(), tflib.create_session().as_default():
        tf.set_random_seed(3)
        gkw, _ = options.resolve_model("gansformer", channel_base=128, channel_max=16, components_num=3,
                                       latent_size=24, num_heads=2, mapping_num_layers=1, resolution=16, ratio=1.0)
        G = tflib.Network("G", func_name=networks.Generator, **gkw)
        plain = tflib.Network("G", func_name=metrics_nets.tiny_generator, resolution=16)
        tflib.init_uninitialized_vars()
        (root / "layers.txt").write_text(str(G.output_shapes[1][2]))      # La
        misc.save_pkl((G, G, G), str(root / "gansformer.pkl"))
        misc.save_pkl((plain, plain, plain), str(root / "plain.pkl"))
    return root


def test_attn_scenes_end_to_end(tiny_pickles, tmp_path):
    kwargs = metric_defaults.get_metric_kwargs("attn_scenes", num_images=20)[0]
    kwargs.minibatch_per_gpu = 8                                  # 20 = 8 + 8 + 4: a partial last batch
    metric = dnnlib.util.call_func_by_name(**kwargs)
    metric.run(str(tiny_pickles / "gansformer.pkl"), run_dir=str(tmp_path), tf_config={"rnd.tf_random_seed": 1})
    values = {r.name: r.value for r in metric.list_results()}
    assert sorted(values) == ["attn_scenes_" + s for s in ("ari", "entropy", "fgari", "layer", "maxprob", "nmi")]
    assert 1 / 3 - 1e-6 <= values["attn_scenes_maxprob"] <= 1
    assert 0 <= values["attn_scenes_entropy"] <= np.log(3) + 1e-6
    assert -1 <= values["attn_scenes_ari"] <= 1 and 0 <= values["attn_scenes_nmi"] <= 1
    num_layers = int((tiny_pickles / "layers.txt").read_text())
    assert num_layers >= 2 and values["attn_scenes_layer"] == num_layers - 1      # the last layer by default
    line = (tmp_path / "metric-attn_scenes.txt").read_text()
    assert "attn_scenes_maxprob" in line and "attn_scenes_layer" in line

    decided = dnnlib.util.call_func_by_name(**dict(kwargs, layer=None))        # the most decided layer instead
    decided.run(str(tiny_pickles / "gansformer.pkl"), log_results=False, tf_config={"rnd.tf_random_seed": 1})
    chosen = {r.name: r.value for r in decided.list_results()}
    assert chosen["attn_scenes_maxprob"] >= values["attn_scenes_maxprob"] - 1e-9

    with pytest.raises(UserError, match="no attention maps"):
        metric_base.evaluate_metrics("attn_scenes", str(tiny_pickles / "plain.pkl"), num_images=4)


def test_training_rejects_attn_scenes_without_attention():
    from training import options
    with pytest.raises(UserError, match="attn_scenes: the StyleGAN2 preset has no attention"):
        options.resolve(dict(baseline="StyleGAN2", metrics=["attn_scenes"]))
    assert options.resolve(dict(metrics=["attn_scenes"])).metrics == ["attn_scenes"]
