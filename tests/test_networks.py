"""training/networks.py + training/options.py: every preset builds and trains (forward and
backward, every trainable variable reached) at 16x16, 32x32 and 32x64 (width 64, height 32);
truncation, style / component mixing, determinism, pickles, preset validation.

Tiny, deliberately unequal sizes: k = 3 latents of width 8 (latent_size 24), 2 heads, <= 32
channels, 2 mapping layers."""

import os
import pickle

os.environ.setdefault("DNNLIB_OPS_IMPL", "ref")

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import dnnlib
import dnnlib.tflib as tflib
from training import networks, options

TINY = dict(channel_base=128, channel_max=32, components_num=3, latent_size=24, num_heads=2,
            mapping_num_layers=2)
# Per-preset tiny overrides: SAGAN attends at 8x8 (its 32x32 default exceeds a 16-px image).
TINY_PRESET = dict(SAGAN=dict(components_num=1), GAN=dict(components_num=1), StyleGAN2=dict(components_num=1))
GEOMETRIES = [(16, 1.0), (32, 1.0), (64, 0.5)]      # (width, height / width)
# The presets of this family (training/networks.py); other families have their own tests.
NETWORKS_PRESETS = [name for name, row in options.PRESETS.items() if row["family"] == "networks"]
# Extra option sets at 16x16 for options no preset turns on.
EXTRAS = {
    "kitchen_sink": ("gansformer", dict(iterative=True, kmeans_iters=2, ltnt_gate=True, img_gate=True, img2ltnt=True,
                                       ltnt2ltnt=True, component_dropout=0.3, component_mixing=0.5, mapping_dim=12,
                                       c_dim=2, g_architecture="skip", pos_type="trainable", integration="both",
                                       norm="instance", d_transformer=True, d_ltnt2ltnt=True, d_img2img=3,
                                       d_use_pos=True, d_start_res=3, d_architecture="skip")),
    "sagan_transformer": ("simplex", dict(g_img2img=3, use_pos=True, pos_type="linear", g_architecture="orig",
                                          latent_stem=True, noise_mode="const", d_architecture="orig")),
    "kgan_max_same": ("kGAN", dict(merge_type="max", merge_same=True, merge_layer=2, g_architecture="resnet")),
    "kgan_leaves": ("kGAN", dict(merge_type="leaves", merge_layer=0, pos_type="trainable2d")),
    "kgan_sum": ("kGAN", dict(merge_type="sum", merge_layer=-1)),
    "shared_mapping": ("gansformer", dict(mapping_shared_dim=20, mapping_ltnt2ltnt=False)),
}


def build_kwargs(preset, resolution, ratio, **extra):
    over = dict(TINY, resolution=resolution, ratio=ratio, style_mixing=0.0)
    over.update(TINY_PRESET.get(preset, {}))
    if preset == "SAGAN":
        over["g_img2img"] = 3
    over.update(extra)
    return options.resolve_model(preset, **over)


def train_graph(gkw, dkw):
    """G and D Networks, their logistic losses on placeholders, and gradients of every trainable."""
    G = tflib.Network("G", func_name=networks.Generator, **gkw)
    D = tflib.Network("D", func_name=networks.Discriminator, **dkw)
    c_dim = gkw.get("c_dim", 0)
    z = tf.placeholder(tf.float32, [None] + G.input_shape[1:])
    c = tf.placeholder(tf.float32, [None, c_dim])
    reals = tf.placeholder(tf.float32, [None] + D.input_shape[1:])
    fakes = G.get_output_for(z, c, is_training=True)[0]
    fake_scores = D.get_output_for(fakes, c, is_training=True)
    real_scores = D.get_output_for(reals, c, is_training=True)
    g_loss = tf.reduce_mean(tf.nn.softplus(-fake_scores))
    d_loss = tf.reduce_mean(tf.nn.softplus(fake_scores) + tf.nn.softplus(-real_scores))
    # One backward pass for both losses (the G loss alone reaches G's variables; the D loss adds
    # D's gradients and G terms through the fakes, which cannot hide an unreachable variable).
    g_vars, d_vars = list(G.trainables.items()), list(D.trainables.items())
    grads = tf.gradients(g_loss + d_loss, [v for _, v in g_vars + d_vars])
    names = ["G/" + n for n, _ in g_vars] + ["D/" + n for n, _ in d_vars]
    tflib.init_uninitialized_vars()
    return dnnlib.EasyDict(G=G, D=D, z=z, c=c, reals=reals, fakes=fakes, grads=grads, names=names, c_dim=c_dim,
                           losses=[g_loss, d_loss])


def feed(t, batch, rnd):
    return {t.z: rnd.randn(batch, *t.G.input_shape[1:]).astype(np.float32),
            t.c: np.eye(max(t.c_dim, 1), dtype=np.float32)[rnd.randint(max(t.c_dim, 1), size=batch)][:, :t.c_dim],
            t.reals: rnd.randn(batch, *t.D.input_shape[1:]).astype(np.float32)}


def check_training_step(t, height, width):
    rnd = np.random.RandomState(0)
    for batch in (4, 1):
        fakes, losses, grads = tf.get_default_session().run([t.fakes, t.losses, t.grads], feed(t, batch, rnd))
        assert fakes.shape == (batch, 3, height, width)
        assert all(np.isfinite(x).all() for x in [fakes] + losses + grads)
        if batch == 4:      # a dead option shows up as an all-zero gradient
            dead = [n for n, g in zip(t.names, grads) if not np.any(g != 0)]
            assert not dead, "trainables without gradient: %s" % dead


@pytest.mark.parametrize("preset", NETWORKS_PRESETS)
def test_networks_preset_trains_16(tf_session, preset):
    """G and D losses at 16x16: forward, backward, every trainable reached."""
    gkw, dkw = build_kwargs(preset, 16, 1.0)
    check_training_step(train_graph(gkw, dkw), 16, 16)


@pytest.mark.parametrize("preset", NETWORKS_PRESETS)
@pytest.mark.parametrize("resolution,ratio", [(32, 1.0), (64, 0.5)])
def test_networks_preset_forward_backward(tf_session, preset, resolution, ratio):
    """32x32 and 32x64 (height x width): G and D separately (cheaper graphs), attention at 4-8 px
    only; every trainable still gets a gradient and the shapes are right."""
    gkw, dkw = build_kwargs(preset, resolution, ratio, g_end_res=4 if preset != "SAGAN" else 8)
    G = tflib.Network("G", func_name=networks.Generator, **gkw)
    D = tflib.Network("D", func_name=networks.Discriminator, **dkw)
    height = int(resolution * ratio)
    z = tf.placeholder(tf.float32, [None] + G.input_shape[1:])
    images = G.get_output_for(z, tf.zeros([tf.shape(z)[0], 0]), is_training=True)[0]
    probe = tf.placeholder(tf.float32, [None, 3, height, resolution])
    reals = tf.placeholder(tf.float32, [None, 3, height, resolution])
    scores = D.get_output_for(reals, tf.zeros([tf.shape(reals)[0], 0]), is_training=True)
    g_grads = tf.gradients(tf.reduce_sum(images * probe), list(G.trainables.values()))
    d_grads = tf.gradients(tf.reduce_sum(scores), [reals] + list(D.trainables.values()))
    tflib.init_uninitialized_vars()
    rnd = np.random.RandomState(0)
    for batch in (4, 1):
        out = tf_session.run([images, scores, g_grads, d_grads], {
            z: rnd.randn(batch, *G.input_shape[1:]), probe: rnd.randn(batch, 3, height, resolution),
            reals: rnd.randn(batch, 3, height, resolution)})
        assert out[0].shape == (batch, 3, height, resolution) and out[1].shape == (batch, 1)
        assert out[3][0].shape == (batch, 3, height, resolution)
        grads = out[2] + out[3][1:]
        assert all(np.isfinite(g).all() for g in grads)
        names = list(G.trainables) + list(D.trainables)
        assert not [n for n, g in zip(names, grads) if not np.any(g != 0)]


@pytest.mark.parametrize("name", list(EXTRAS))
def test_networks_extra_options_train(tf_session, name):
    preset, extra = EXTRAS[name]
    gkw, dkw = build_kwargs(preset, 16, 1.0, **extra)
    t = train_graph(gkw, dkw)
    check_training_step(t, 16, 16)


def test_networks_unused_variables_not_created(tf_session):
    """kmeans replaces Q.K^T: no latent keys / to_pos; no mod_* without styles; no Const with a latent stem."""
    nets = {}
    for name, preset, extra in (("kmeans", "gansformer", {}), ("keys", "simplex", dict(use_pos=True)),
                                ("gan", "GAN", dict(components_num=1))):
        gkw, _ = build_kwargs(preset, 16, 1.0, **extra)
        nets[name] = list(tflib.Network("G_" + name, func_name=networks.Generator, **gkw).vars)
    l2n = lambda names, part: [n for n in names if "AttLayer_l2n/" in n and part in n]
    assert not l2n(nets["kmeans"], "weight_key") and not l2n(nets["kmeans"], "to_pos")
    assert l2n(nets["kmeans"], "toasgn_init")
    assert len(l2n(nets["keys"], "weight_key")) == 5 and len(l2n(nets["keys"], "weight_to_pos")) == 5
    assert not l2n(nets["keys"], "toasgn_init")
    assert not [n for n in nets["gan"] if "mod_weight" in n or "Const" in n or "AttLayer" in n]
    assert [n for n in nets["gan"] if n.endswith("4x4/Dense/weight")]
    # mapping_num_layers is honoured (§10.2.6): 2 plain layers; resnet: 1 block of 2 + Dense0, per path.
    dense = lambda names: sorted(n for n in names if n.startswith("G_mapping/") and n.endswith("/weight"))
    assert dense(nets["gan"]) == ["G_mapping/Dense0/weight", "G_mapping/Dense1/weight"]
    assert [n for n in dense(nets["kmeans"]) if "Dense" in n] == [
        "G_mapping/Dense0/weight", "G_mapping/Dense0_0/weight", "G_mapping/Dense0_1/weight",
        "G_mapping/global/Dense0/weight", "G_mapping/global/Dense0_0/weight", "G_mapping/global/Dense0_1/weight"]


# ----------------------------------------------------------------------------
# Generator behaviour: truncation, mixing, determinism, pickles.


def make_G(preset="gansformer", **extra):
    gkw, _ = build_kwargs(preset, 16, 1.0, **dict(dict(attention_dropout=0.0, noise_mode="const"), **extra))
    G = tflib.Network("G", func_name=networks.Generator, **gkw)
    tflib.init_uninitialized_vars()
    return G


def _map(G, z, pos, mask):
    zt = tf.constant(z)
    ws = G.components.mapping.get_output_for(zt, tf.zeros([len(z), 0]), tf.constant(pos), tf.constant(mask))
    return tf.get_default_session().run(ws)


def test_networks_truncation(tf_session):
    G = make_G()
    rnd = np.random.RandomState(1)
    avg = rnd.randn(8).astype(np.float32)
    tflib.set_vars({G.vars["dlatent_avg"]: avg})
    z = rnd.randn(3, 4, 8).astype(np.float32)
    c = np.zeros([3, 0], np.float32)
    _, _, ws0 = G.run(z, c, truncation_psi=0.0, return_ws=True)
    np.testing.assert_allclose(ws0, np.broadcast_to(avg, ws0.shape), atol=1e-6)
    plain = _map(G, z, G.vars["ltnt_emb/emb"].eval(), np.ones([3, 1, 3], np.float32))
    _, _, ws_half = G.run(z, c, truncation_psi=0.5, truncation_cutoff=2, return_ws=True)
    np.testing.assert_allclose(ws_half[:, :, :2], avg + 0.5 * (plain[:, :, :2] - avg), atol=1e-5)
    np.testing.assert_allclose(ws_half[:, :, 2:], plain[:, :, 2:], atol=1e-5)
    _, _, ws_val = G.run(z, c, truncation_psi=0.0, is_validation=True, return_ws=True)
    np.testing.assert_allclose(ws_val, plain, atol=1e-5)


def test_networks_shared_mapping_mixes_latents(tf_session):
    """Per-latent mapping: changing latent 0's z moves only w_0. mapping_shared_dim maps the region
    latents jointly: the same change moves every region w, and k latents come out (not k + 1)."""
    rnd = np.random.RandomState(4)
    z = rnd.randn(2, 4, 8).astype(np.float32)
    z_other = z.copy()
    z_other[:, 0] += 1.0
    moved = {}
    for name, extra in (("per_latent", {}), ("joint", dict(mapping_shared_dim=20))):
        with tf.Graph().as_default(), tflib.create_session().as_default():
            G = make_G(mapping_ltnt2ltnt=False, **extra)
            pos, mask = np.zeros([3, 8], np.float32), np.ones([2, 1, 3], np.float32)   # unused without ltnt2ltnt
            ws, ws_other = _map(G, z, pos, mask), _map(G, z_other, pos, mask)
        assert ws.shape[:2] == (2, 4)
        moved[name] = np.abs(ws - ws_other).max(axis=(0, 2, 3))                    # per latent
        if extra:
            assert [n for n in G.vars if n.endswith("inmap/weight")] and [n for n in G.vars if n.endswith("outmap/weight")]
    assert moved["per_latent"][0] > 1e-3 and np.all(moved["per_latent"][1:] < 1e-6)
    assert np.all(moved["joint"][:3] > 1e-4) and moved["joint"][3] < 1e-6          # the global latent stays apart


def first_diff(a, b, axis):
    """Per sample, the first index along axis where a and b differ (len if none)."""
    other = tuple(i for i in range(1, a.ndim) if i != axis)
    diff = np.any(np.abs(a - b) > 1e-5, axis=other)                       # [B, len]
    return diff, np.where(diff.any(1), diff.argmax(1), diff.shape[1])


def test_networks_style_and_component_mixing(tf_session):
    G = make_G(style_mixing=1.0, w_avg_beta=None)
    rnd = np.random.RandomState(2)
    z = rnd.randn(16, 4, 8).astype(np.float32)
    c = np.zeros([16, 0], np.float32)
    plain = _map(G, z, G.vars["ltnt_emb/emb"].eval(), np.ones([16, 1, 3], np.float32))
    L = plain.shape[2]
    cutoffs = set()
    for _ in range(4):
        _, _, ws = G.run(z, c, is_training=True, return_ws=True, minibatch_size=16)
        diff, cut = first_diff(ws, plain, axis=2)
        assert np.all(cut == cut[0]) and 1 <= cut[0] <= L - 1    # one cutoff per batch, in 1..L-1
        assert diff[:, cut[0]:].all()                              # every layer after it comes from z2
        cutoffs.add(int(cut[0]))
    assert len(cutoffs) > 1
    _, _, ws = G.run(z, c, is_training=True, return_ws=True, style_mixing=0.0, component_mixing=1.0, minibatch_size=16)
    diff, cut = first_diff(ws, plain, axis=1)
    assert np.all(cut == cut[0]) and 1 <= cut[0] <= 3 and diff[:, cut[0]:].all()


def test_networks_same_seed_same_images_and_pickle(tf_session):
    G = make_G("duplex", noise_mode="random")
    tflib.set_vars({v: 0.5 for n, v in G.vars.items() if n.endswith("noise_strength")})   # 0 at init
    c = np.zeros([2, 0], np.float32)
    z = lambda seed: np.random.RandomState(seed).randn(2, 4, 8).astype(np.float32)
    a, maps = G.run(z(5), c, randomize_noise=False)      # call-time option routed to synthesis
    b, _ = G.run(z(5), c, randomize_noise=False)
    other, _ = G.run(z(6), c, randomize_noise=False)
    noisy1, _ = G.run(z(5), c)
    noisy2, _ = G.run(z(5), c)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - other).max() > 1e-3 and np.abs(noisy1 - noisy2).max() > 1e-6
    data = pickle.dumps(G)
    with tf.Graph().as_default(), tflib.create_session().as_default():
        G2 = pickle.loads(data)
        a2, maps2 = G2.run(z(5), c, randomize_noise=False)
        assert sorted(G2.vars) == sorted(G.vars)
    np.testing.assert_allclose(a2, a, atol=1e-6)
    np.testing.assert_allclose(maps2, maps, atol=1e-6)


# ----------------------------------------------------------------------------
# Preset table and validation.


def test_presets_table_and_resolution():
    assert {"gansformer", "simplex", "duplex", "GAN", "StyleGAN2", "kGAN", "SAGAN"} <= set(options.PRESETS)
    keys = [sorted(row) for row in options.PRESETS.values()]
    assert all(k == keys[0] for k in keys)
    gkw, dkw = options.resolve_model("gansformer", resolution=64, ratio=0.5, d_architecture="skip", mbstd_group_size=2)
    assert gkw["architecture"] == "resnet" and dkw["architecture"] == "skip"
    assert gkw["kmeans"] and gkw["transformer"] and not dkw["transformer"]
    assert dkw["ratio"] == gkw["ratio"] == 0.5 and dkw["mbstd_group_size"] == 2 and "mbstd_group_size" not in gkw
    g_ok = set(options.g_options())
    assert set(gkw) <= g_ok and set(dkw) <= set(options.d_options())


@pytest.mark.parametrize("preset,over,fragment", [
    ("nope", {}, "unknown preset"),
    ("gansformer", dict(kmeans_itres=2), "unknown network option 'kmeans_itres'"),
    ("StyleGAN2", dict(kmeans=True), "kmeans: needs transformer"),
    ("StyleGAN2", dict(components_num=4), "need transformer=True or kgan"),
    ("kGAN", dict(transformer=True), "cannot be combined"),
    ("gansformer", dict(latent_size=30, components_num=4), "not divisible"),
    ("gansformer", dict(ratio=0.3), "ratio"),
    ("gansformer", dict(resolution=48), "power of two"),
    ("gansformer", dict(iterative=True, kmeans=False), "iterative: needs kmeans"),
    ("SAGAN", dict(resolution=16), "g_img2img"),
    ("gansformer", dict(integration="sum"), "integration"),
    ("gansformer", dict(mapping_shared_dim=16), "mapping_shared_dim"),
    ("gansformer", dict(architecture="skip", g_architecture="orig"), "give one"),
    ("gansformer", dict(num_heads=3, channel_max=32, channel_base=128, components_num=3, latent_size=24), "num_heads"),
])
def test_presets_reject_bad_options(preset, over, fragment):
    with pytest.raises(dnnlib.util.UserError, match=fragment):
        options.resolve_model(preset, **over)


# ----------------------------------------------------------------------------
# Primitives against independent computations.


def test_networks_modulated_conv_matches_numpy(tf_session):
    """Fused (grouped) and non-fused modulated convs equal a numpy per-sample conv with
    w' = w * s, demodulated by rsqrt(sum w'^2) (REFERENCE §1.1)."""
    rnd = np.random.RandomState(4)
    x, y = rnd.randn(3, 5, 6, 7).astype(np.float32), rnd.randn(3, 4).astype(np.float32)
    outs = []
    for fused in (True, False):
        with tf.variable_scope("fused%d" % fused):
            outs.append(networks.modulated_conv2d(tf.constant(x), tf.constant(y), 2, 3, fused=fused))
    tf_session.run(tf.global_variables_initializer())
    got = tf_session.run(outs)
    v = {n: var.eval() for n, var in ((v.name.split("/", 1)[1][:-2], v) for v in tf.global_variables()
                                      if v.name.startswith("fused1/"))}
    tflib.set_vars({var: v[var.name.split("/", 1)[1][:-2]] for var in tf.global_variables()
                    if var.name.startswith("fused0/")})
    got[1] = tf_session.run(outs[1])
    w = v["weight"] / np.sqrt(3 * 3 * 5)                                    # [3, 3, I, O]
    s = y @ (v["mod_weight"] / np.sqrt(4)) + v["mod_bias"] + 1              # [B, I]
    want = np.zeros([3, 2, 6, 7])
    xp = np.pad(x, [(0, 0), (0, 0), (1, 1), (1, 1)])
    for b in range(3):
        wb = w * s[b][None, None, :, None]
        wb = wb / np.sqrt((wb ** 2).sum(axis=(0, 1, 2)) + 1e-8)
        for i in range(6):
            for j in range(7):
                want[b, :, i, j] = np.einsum("chw,hwco->o", xp[b, :, i:i + 3, j:j + 3], wb)
    np.testing.assert_allclose(got[0], want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got[1], want, rtol=1e-4, atol=1e-4)


def test_networks_minibatch_stddev_matches_numpy(tf_session):
    x = np.random.RandomState(5).randn(4, 6, 3, 5).astype(np.float32)
    got = tf_session.run(networks.minibatch_stddev(tf.constant(x), group_size=2, num_new_features=2))
    g = x.reshape(2, 2, 2, 3, 3, 5)                                          # [G, M, n, c, h, w]
    std = np.sqrt(((g - g.mean(0)) ** 2).mean(0) + 1e-8).mean(axis=(2, 3, 4))   # [M, n]
    want = np.concatenate([x, np.tile(std, (2, 1))[:, :, None, None] * np.ones([4, 2, 3, 5])], axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
