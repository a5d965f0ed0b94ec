"""training/networks_gansformer2.py (GANsformer2's execution stage, layout-to-image): the layout
assigns pixels to latents (changing one slot's latent or category changes its segment far more
than the rest), the gated assignment is the area-averaged layout, empty slots change nothing,
segment_average / the semantic maps against numpy, every trainable reached, w_avg tracking and
truncation, the preset and its validation, pickles. Tiny, deliberately unequal sizes: 16x16,
S = 4 slots (background, 2 segments, 1 empty), 3 categories, 12-wide latents, 32/32/16 channels."""

import pickle

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import dnnlib.tflib as tflib
from dnnlib.util import UserError
from training import networks_gansformer2 as g2
from training import options

B, S, NC, RES, Z, C_DIM = 3, 4, 3, 16, 12, 2
TINY = dict(resolution=RES, num_channels=3, max_segments=S - 1, num_categories=NC, c_dim=C_DIM, channel_base=128,
            channel_max=32)
TINY_G = dict(TINY, latent_size=Z, mapping_num_layers=2)
TINY_D = dict(TINY, segment_res=3)
CONST = dict(noise_mode="const", is_validation=True)     # deterministic, no truncation


def make_inputs(seed=0):
    """z [B, S+1, Z], labels [B, C_DIM], one-hot layout [B, S, H, W], segments [B, S, 2]: slot 0
    background (category 0), slot 1 a wide band (category 1), slot 2 a tall band in front of it
    (category 2; wide vs tall, so a transposed layout would fail), slot 3 empty (category -1, no
    pixels); each image shifted a little."""
    rnd = np.random.RandomState(seed)
    index = np.zeros([B, RES, RES], np.int64)
    for b in range(B):
        index[b, 1 + b:7 + b, 1:15] = 1
        index[b, 5:15, 9 - b:13 - b] = 2
    layout = np.eye(S, dtype=np.float32)[index].transpose(0, 3, 1, 2)           # [B, S, H, W]
    segments = np.tile(np.array([[0, 0], [1, 0.5], [2, 1], [-1, 0]], np.float32), [B, 1, 1])
    z = rnd.randn(B, S + 1, Z).astype(np.float32)
    labels = np.eye(C_DIM, dtype=np.float32)[[0, 1, 0]]
    return z, labels, layout, segments


def region_ratio(a, b, mask):
    """Mean |a - b| inside mask / outside it (a, b [B, C, H, W]; mask [B, H, W] of 0/1)."""
    diff = np.abs(a - b).mean(axis=1)
    return diff[mask > 0].mean() / diff[mask == 0].mean()


def area_average(x, f):
    b, s, h, w = x.shape
    return x.reshape(b, s, h // f, f, w // f, f).mean(axis=(3, 5))


# ----------------------------------------------------------------------------
# Pure functions against numpy.


def test_segment_average_area_downsample_and_semantic_maps_match_numpy(tf_session):
    rnd = np.random.RandomState(1)
    feats = rnd.randn(2, 5, 4, 6).astype(np.float32)                             # [B, C, h, w], h != w
    masks = rnd.rand(2, 3, 4, 6).astype(np.float32)
    masks[1, 2] = 0                                                              # an empty mask
    _, _, layout, segments = make_inputs()
    got = tf_session.run(dict(avg=g2.segment_average(tf.constant(feats), tf.constant(masks)),
                              down=g2.area_downsample(tf.constant(layout), 4),
                              sem=g2.semantic_maps(tf.constant(layout), tf.constant(segments), NC)))
    expected = np.einsum("bshw,bchw->bsc", masks, feats) / (masks.sum(axis=(2, 3))[:, :, None] + 1e-8)
    np.testing.assert_allclose(got["avg"], expected, rtol=1e-5, atol=1e-6)
    assert not np.any(got["avg"][1, 2])
    np.testing.assert_allclose(got["down"], area_average(layout, 4), rtol=1e-6)
    index = layout.argmax(axis=1)                                                # [B, H, W]: slot of each pixel
    cats, depth = got["sem"]
    np.testing.assert_array_equal(cats, np.eye(NC)[segments[:, :, 0].astype(int)[np.arange(B)[:, None, None], index]]
                                  .transpose(0, 3, 1, 2))
    np.testing.assert_allclose(depth[:, 0], segments[:, :, 1][np.arange(B)[:, None, None], index])


# ----------------------------------------------------------------------------
# The generator: layout attention.


def segment_ratios(G, z, labels, layout, segments):
    """{slot j: inside / outside ratio when only z_j changes, "category": when segment 1's
    category changes 1 -> 2} for G."""
    base = G.run(z, labels, layout, segments, **CONST)[0]
    ratios = {}
    for j in (1, 2):
        z2 = z.copy()
        z2[:, j] = np.random.RandomState(10 + j).randn(B, Z)
        ratios[j] = region_ratio(base, G.run(z2, labels, layout, segments, **CONST)[0], layout[:, j])
    seg2 = segments.copy()
    seg2[:, 1, 0] = 2
    ratios["category"] = region_ratio(base, G.run(z, labels, layout, seg2, **CONST)[0], layout[:, 1])
    return ratios


def test_a_slot_latent_and_category_change_their_segment(tf_session):
    """With layout attention at the output width only, the assignment alone confines each slot's
    effect to its segment (and the 3x3 convs' one-pixel band): ratios of 5-18 over init seeds.
    With attention at every width (the preset), the low widths' area-averaged cells and convs
    and the duplex update of the neighbouring latents spread it more at init: ratios of 2.4-8."""
    z, labels, layout, segments = make_inputs()
    sharp = segment_ratios(tflib.Network("Gs", func_name=g2.Generator, **dict(TINY_G, start_res=4)),
                           z, labels, layout, segments)
    G = tflib.Network("G", func_name=g2.Generator, **TINY_G)
    every = segment_ratios(G, z, labels, layout, segments)
    print("inside / outside mean |diff|: attention at 16x16 only %s; at every width %s" % (sharp, every))
    assert min(sharp.values()) > 3, sharp
    assert min(every.values()) > 1.5, every

    # maps_out: each layer's layout, area-averaged to its width and nearest-upsampled, times one
    # gate per image, slot and layer (sigmoid(1) at the start); zero for the empty slot.
    maps = G.run(z, labels, layout, segments, **CONST)[1]
    assert maps.shape == (B, S, 5, 1, RES, RES)
    for layer, width in enumerate([4, 8, 8, 16, 16]):
        f = RES // width
        expected = np.repeat(np.repeat(area_average(layout, f), f, axis=2), f, axis=3)   # [B, S, H, W]
        got = maps[:, :, layer, 0]
        gate = got.sum(axis=(2, 3)) / np.maximum(expected.sum(axis=(2, 3)), 1e-8)       # [B, S]
        np.testing.assert_allclose(got, expected * gate[:, :, None, None], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(gate[:, :3], 1 / (1 + np.exp(-1)), rtol=1e-4)
        assert not np.any(got[:, 3])


def test_empty_slots_have_no_effect(tf_session):
    """Another latent, depth and even layout mass for the empty slot (category -1) change nothing,
    and the output equals that of the same weights built with one slot fewer."""
    G = tflib.Network("G", func_name=g2.Generator, **TINY_G)
    D = tflib.Network("D", func_name=g2.Discriminator, **TINY_D)
    z, labels, layout, segments = make_inputs()
    images, maps, latents = G.run(z, labels, layout, segments, **CONST)
    z2, layout2, seg2 = z.copy(), layout.copy(), segments.copy()
    z2[:, 3] += 3.0
    seg2[:, 3, 1] = 0.7
    layout2[:, 3] = np.random.RandomState(2).rand(B, RES, RES)
    out2 = G.run(z2, labels, layout2, seg2, **CONST)
    np.testing.assert_allclose(out2[0], images, rtol=0, atol=1e-6)
    assert not np.any(out2[1][:, 3]) and not np.any(out2[2][:, 3]) and not np.any(latents[:, 3])

    G3 = G.clone("G3", max_segments=S - 2)                                       # no variable depends on S
    G3.copy_vars_from(G)
    z3 = np.concatenate([z[:, :S - 1], z[:, S:]], axis=1)                          # drop slot 3's latent
    fewer = G3.run(z3, labels, layout[:, :S - 1], segments[:, :S - 1], **CONST)[0]
    np.testing.assert_allclose(fewer, images, rtol=1e-4, atol=1e-4)

    scores, seg_scores = D.run(images, labels, layout, segments)
    scores2, seg_scores2 = D.run(images, labels, layout2, seg2)
    np.testing.assert_allclose(scores2, scores, rtol=1e-5, atol=1e-6)
    assert scores.shape == (B, 1) and seg_scores.shape == (B, S)
    assert np.all(seg_scores[:, :3] != 0) and not np.any(seg_scores[:, 3]) and not np.any(seg_scores2[:, 3])
    seg_empty = segments.copy()
    seg_empty[0, 3] = [1, 0.9]                                                   # a category but no pixels
    assert D.run(images, labels, layout, seg_empty)[1][0, 3] == 0


def test_w_avg_tracking_and_truncation(tf_session):
    """img2ltnt off: latents_out are the slot styles. One training step with w_avg_beta 0 sets the
    slot average to the mean style of the used slots; psi 0 then puts every used slot on it."""
    G = tflib.Network("G", func_name=g2.Generator, **dict(TINY_G, img2ltnt=False, w_avg_beta=0.0))
    z, labels, layout, segments = make_inputs()
    fetch = G.get_output_for(*[tf.constant(a) for a in (z, labels, layout, segments)], is_training=True)[2]
    styles = tf_session.run(fetch)                                               # [B, S, D]
    s_avg, g_avg = tf_session.run([G.vars["slot_dlatent_avg"], G.vars["dlatent_avg"]])
    np.testing.assert_allclose(s_avg, styles[:, :3].mean(axis=(0, 1)), rtol=1e-5, atol=1e-6)
    assert np.any(g_avg != 0)
    truncated = G.run(z, labels, layout, segments, truncation_psi=0.0, noise_mode="const")[2]
    np.testing.assert_allclose(truncated[:, :3], np.broadcast_to(s_avg, [B, 3, Z]), rtol=1e-5, atol=1e-6)
    assert not np.any(truncated[:, 3])


# ----------------------------------------------------------------------------
# Training signal, presets, pickles.


def test_every_trainable_gets_a_gradient(tf_session):
    G = tflib.Network("G", func_name=g2.Generator, **TINY_G)
    D = tflib.Network("D", func_name=g2.Discriminator, **TINY_D)
    z, labels, layout, segments = [tf.constant(a) for a in make_inputs()]
    fakes = G.get_output_for(z, labels, layout, segments, is_training=True)[0]
    scores, seg_scores = D.get_output_for(fakes, labels, layout, segments, is_training=True)
    loss = tf.reduce_sum(tf.square(scores)) + tf.reduce_sum(tf.square(seg_scores))
    names = list(G.trainables) + ["D/" + n for n in D.trainables]
    grads = tf.gradients(loss, list(G.trainables.values()) + list(D.trainables.values()))
    values = tf_session.run(grads)
    dead = [n for n, g in zip(names, values) if g is None or not np.any(g != 0)]
    assert not dead, dead
    for part in ("LayoutAttention/weight_gate", "SegmentUpdate", "CategoryEmbedding", "LabelConcat",
                 "D/SegmentScores/CategoryEmbedding", "D/SegmentScores/weight_out"):
        assert any(part in n for n in names), part


def test_preset_resolves_and_builds(tf_session):
    opts = options.resolve({"gansformer2": "execution"})                          # the scenes main job
    assert opts.main_job and opts.G_args["func_name"] == "training.networks_gansformer2.Generator"
    assert (opts.G_args["latent_size"], opts.G_args["channel_base"], opts.G_args["channel_max"]) == (128, 2048, 64)
    assert opts.D_args["segment_res"] == 3 and opts.G_args["img2ltnt"] is True
    g_flags, d_flags = options.model_flag_names()
    assert "segment_res" in d_flags and not {"max_segments", "num_categories"} & set(g_flags + d_flags)
    geometry = dict(resolution=32, num_channels=3, max_segments=5, num_categories=4)
    G = tflib.Network("G", **dict(opts.G_args, **geometry))
    D = tflib.Network("D", **dict(opts.D_args, **geometry))
    assert G.output_shapes[1] == [None, 6, 7, 1, 32, 32] and D.output_shapes == [[None, 1], [None, 6]]
    assert G.input_shapes[0] == [None, 7, 128]


@pytest.mark.parametrize("over, fragment", [
    (dict(max_segments=0), "max_segments: 0 must be >= 1"), (dict(max_segments=300), "max_segments: 300"),
    (dict(num_categories=1), "num_categories: 1"), (dict(d_segment_res=6), "d_segment_res: 6 is outside 2..5"),
    (dict(ratio=0.5), "ratio: 0.5; GANsformer2 builds square"), (dict(end_res=2), "end_res: 2"),
    (dict(integration="cat"), "integration"), (dict(resolution=24), "resolution: 24"),
    (dict(kmeans=True), "unknown network option 'kmeans'")])
def test_bad_options_name_the_option(over, fragment):
    with pytest.raises(UserError, match=fragment):
        options.resolve_model("gansformer2", **dict(dict(resolution=32), **over))


def test_build_functions_validate():
    with tf.Graph().as_default():
        with pytest.raises(UserError, match="max_segments: 0"):
            g2.Generator(tf.zeros([1, 2, 4]), tf.zeros([1, 0]), tf.zeros([1, 1, 16, 16]), tf.zeros([1, 1, 2]),
                         **dict(TINY_G, max_segments=0, c_dim=0))
        with pytest.raises(UserError, match="d_segment_res: 5"):
            g2.Discriminator(tf.zeros([1, 3, 16, 16]), tf.zeros([1, 2]), tf.zeros([1, S, 16, 16]),
                             tf.zeros([1, S, 2]), **dict(TINY_D, segment_res=5))


def test_pickles_round_trip(tf_session):
    G = tflib.Network("G", func_name=g2.Generator, **TINY_G)
    D = tflib.Network("D", func_name=g2.Discriminator, **TINY_D)
    z, labels, layout, segments = make_inputs(3)
    G2, D2 = pickle.loads(pickle.dumps(G)), pickle.loads(pickle.dumps(D))
    for a, b in zip(G.run(z, labels, layout, segments, **CONST), G2.run(z, labels, layout, segments, **CONST)):
        np.testing.assert_array_equal(a, b)
    images = G.run(z, labels, layout, segments, **CONST)[0]
    for a, b in zip(D.run(images, labels, layout, segments), D2.run(images, labels, layout, segments)):
        np.testing.assert_array_equal(a, b)
    assert G2.output_names == ["images_out", "maps_out", "latents_out"]
    assert D2.output_names == ["scores_out", "segment_scores_out"]
