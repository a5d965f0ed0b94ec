"""training/networks_transgan.py (TransGAN), training/augment.py (DiffAugment) and the loop options they
brought (--d-steps, --clip-grad-norm, non-lazy GP): window partition/merge, grid attention
against a numpy full attention with cross-window pairs masked out, the relative-position index,
pixel shuffle and bicubic against independent computations, every trainable reached, the
WGAN-GP-eps terms, DiffAugment ops against numpy, the window-attention view (heat maps against
a brute-force full attention, the softmaxes found in a built G), and a CLI run whose snapshot
run_generator.py loads. Tiny, deliberately unequal sizes."""

import glob
import os
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import tensorflow.compat.v1 as tf

import dnnlib
import dnnlib.tflib as tflib
from dnnlib.util import UserError
from training import augment, options
from training import networks_transgan as transgan
from training import window_attention
from training import loss as loss_lib
from training import training_loop as tl

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# G: 4x4 tokens of width 48 -> bicubic to 8x8 (48) -> pixel shuffle to 16x16 (12); 3 heads,
# 4x4 windows above width 4, cross-attention to 2 latent tokens. D: 2x2 patches (8x8 tokens of
# width 6), 4x4 patches (4x4 tokens of width 9; 15 after concatenation).
TINY_G = dict(resolution=16, num_channels=3, c_dim=2, latent_size=7, bottom_width=4, embed_dim=48, depths=[1, 2],
              num_heads=3, mlp_ratio=2, window_size=4, grid_above=4, bicubic_stages=1, antialias=True,
              latent_tokens=2)
TINY_D = dict(resolution=16, num_channels=3, c_dim=2, patch_size=2, scale_dims=[6, 9], depths=[1, 1], num_heads=3,
              mlp_ratio=2, window_size=4, grid_above=4)


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# ----------------------------------------------------------------------------
# Token-grid operations.


def test_window_partition_and_merge_are_inverses(tf_session):
    x = np.random.RandomState(0).randn(2, 8, 12, 5).astype(np.float32)        # h != w, both multiples of W
    t = transgan.window_partition(tf.constant(x), 4)
    back = transgan.window_merge(t, 4, 8, 12)
    t_np, back_np = tf_session.run([t, back])
    assert t_np.shape == (2 * 2 * 3, 16, 5)
    np.testing.assert_array_equal(back_np, x)
    # Window (1, 2) of image 1 holds rows 4..7, columns 8..11, row-major.
    np.testing.assert_array_equal(t_np[1 * 6 + 1 * 3 + 2], x[1, 4:8, 8:12].reshape(16, 5))


def test_relative_position_index_matches_brute_force():
    for window in (1, 2, 3):
        index = transgan.relative_position_index(window)
        cells = [(y, x) for y in range(window) for x in range(window)]
        offsets = sorted({(qy - ky, qx - kx) for qy, qx in cells for ky, kx in cells})
        assert len(offsets) == (2 * window - 1) ** 2
        for q, (qy, qx) in enumerate(cells):
            for k, (ky, kx) in enumerate(cells):
                assert index[q, k] == offsets.index((qy - ky, qx - kx))   # row-major over (dy, dx)


def test_grid_attention_equals_masked_full_attention(tf_session):
    """Windows of 2x2 on a 4x4 grid: numpy attention over all 16 tokens, with the relative
    bias inside a window and -inf between windows, gives the same output."""
    B, h, w, C, N, W = 2, 4, 4, 6, 2, 2
    rnd = np.random.RandomState(1)
    x = rnd.randn(B, h * w, C).astype(np.float32)
    with tf.variable_scope("att"):
        out = transgan.grid_self_attention(tf.constant(x), h, w, N, W, True, "a")
    tf_session.run(tf.global_variables_initializer())
    var = {v.name.split("att/a/")[1][:-2]: v for v in tf.global_variables()}
    table = rnd.randn((2 * W - 1) ** 2, N).astype(np.float32)
    tflib.set_vars({var["rel_pos_table"]: table})
    got = tf_session.run(out)
    val = {k: tf_session.run(v) for k, v in var.items()}

    qkv = x @ val["self/qkv/weight"] + val["self/qkv/bias"]                     # [B, T, 3C]
    q, k, v = [a.reshape(B, h * w, N, C // N).transpose(0, 2, 1, 3) for a in np.split(qkv, 3, axis=-1)]
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(C // N)                      # [B, N, T, T]
    for p in range(h * w):
        for r in range(h * w):
            (py, px), (ry, rx) = divmod(p, w), divmod(r, w)
            if (py // W, px // W) != (ry // W, rx // W):
                scores[:, :, p, r] = -np.inf
            else:
                dy, dx = py % W - ry % W, px % W - rx % W
                scores[:, :, p, r] += table[(dy + W - 1) * (2 * W - 1) + dx + W - 1]
    att = _softmax(scores) @ v                                                  # [B, N, T, H]
    expected = att.transpose(0, 2, 1, 3).reshape(B, h * w, C) @ val["self/proj/weight"] + val["self/proj/bias"]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_pixel_shuffle_is_a_numpy_reshape(tf_session):
    B, h, w, C = 2, 2, 3, 8
    x = np.random.RandomState(2).randn(B, h * w, C).astype(np.float32)
    got = tf_session.run(transgan.pixel_shuffle(tf.constant(x), h, w))
    expected = np.zeros([B, 2 * h * 2 * w, C // 4], np.float32)
    for y in range(h):
        for xx in range(w):
            for i in range(2):
                for j in range(2):
                    cell = (2 * y + i) * (2 * w) + 2 * xx + j
                    expected[:, cell] = x[:, y * w + xx, (i * 2 + j) * (C // 4):(i * 2 + j + 1) * (C // 4)]
    np.testing.assert_array_equal(got, expected)


def test_bicubic_matches_tf_image_resize(tf_session):
    import tensorflow as tf2                # the TF 2 API's resize (a different kernel implementation)
    if not hasattr(tf2.image, "ResizeMethod") or not hasattr(tf2.image.ResizeMethod, "BICUBIC"):
        pytest.skip("no TF 2 image.resize")
    h, w, C = 4, 6, 3
    x = np.random.RandomState(3).randn(2, h, w, C).astype(np.float32)
    ours = transgan.bicubic_upsample(tf.constant(x.reshape(2, h * w, C)), h, w, 2)
    ref = tf2.image.resize(tf.constant(x), [2 * h, 2 * w], method="bicubic")
    got, expected = tf_session.run([ours, ref])
    np.testing.assert_allclose(got.reshape(2, 2 * h, 2 * w, C), expected, rtol=1e-4, atol=1e-4)
    pooled = tf_session.run(transgan.average_pool(tf.constant(x.reshape(2, h * w, C)), h, w))
    np.testing.assert_allclose(pooled, x.reshape(2, h // 2, 2, w // 2, 2, C).mean(axis=(2, 4)).reshape(2, -1, C),
                               rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------
# The networks.


def test_every_trainable_gets_a_gradient(tf_session):
    G = tflib.Network("G", func_name=transgan.Generator, **TINY_G)
    D = tflib.Network("D", func_name=transgan.Discriminator, **TINY_D)
    z = tf.constant(np.random.RandomState(4).randn(3, 7).astype(np.float32))
    c = tf.constant(np.eye(2, dtype=np.float32)[[0, 1, 0]])
    fakes = G.get_output_for(z, c, is_training=True)
    assert fakes.shape.as_list() == [None, 3, 16, 16] or fakes.shape.as_list()[1:] == [3, 16, 16]
    scores = D.get_output_for(fakes, c, is_training=True)
    trainables = list(G.trainables.values()) + list(D.trainables.values())
    names = list(G.trainables) + ["D/" + n for n in D.trainables]
    grads = tf.gradients(tf.reduce_sum(tf.square(scores)), trainables)
    tflib.init_uninitialized_vars()
    values = tf_session.run(grads)
    dead = [n for n, g in zip(names, values) if g is None or not np.any(g != 0)]
    assert not dead, dead
    assert any("rel_pos_table" in n for n in names) and any("cross_attention" in n for n in names)
    assert any("class_token" in n for n in D.trainables) and tf_session.run(scores).shape == (3, 1)


def test_pixel_norm_and_full_attention_build(tf_session):
    G = tflib.Network("G", func_name=transgan.Generator, **dict(TINY_G, token_norm="pixel", grid_above=16,
                                                                latent_tokens=0, antialias=False))
    images = G.run(np.zeros([2, 7], np.float32), np.zeros([2, 2], np.float32))
    assert images.shape == (2, 3, 16, 16) and np.isfinite(images).all()
    assert not any("gamma" in n for n in G.vars)                               # pixel norm has no parameters


def test_presets_resolve_and_are_validated():
    for preset, res in (("TransGAN", 32), ("TransGAN-256", 256), ("TransGAN-256", 32)):
        gkw, dkw = options.resolve_model(preset, resolution=res)
        assert gkw["embed_dim"] == 1024 and dkw["patch_size"] in (2, 4)
    opts = options.resolve({"baseline": "TransGAN", "dataset": "cifar10"})
    assert (opts.d_steps, opts.g_lr, opts.adam_beta1, opts.clip_grad_norm, opts.d_reg_interval) == (4, 1e-4, 0.0, 5.0, 1)
    assert (opts.g_loss, opts.d_loss, opts.d_reg, opts.gamma) == ("wgan", "wgan", "gp", 10.0)
    assert opts.G_args["func_name"] == "training.networks_transgan.Generator" and opts.G_args["depths"] == [5, 4, 2]
    main = options.resolve({"baseline": "TransGAN"})                            # the scenes main job
    assert main.main_job and main.G_args["embed_dim"] == 256 and main.D_args["scale_dims"] == [48, 16]
    typed = options.resolve({"baseline": "TransGAN", "d_steps": 1, "embed_dim": 512})
    assert typed.d_steps == 1 and typed.G_args["embed_dim"] == 512


@pytest.mark.parametrize("over, fragment", [
    (dict(num_heads=5), "num_heads: 5 does not divide"), (dict(window_size=12), "window_size: 12"),
    (dict(grid_above=4), "window_size: 16 is larger than the 8x8"), (dict(depths=[2, 0]), "depths"),
    (dict(d_patch_size=32), "d_patch_size"), (dict(embed_dim=40), "embed_dim: 40"), (dict(ratio=0.5), "ratio"),
    (dict(token_norm="batch"), "token_norm"), (dict(d_depths=[1, 1, 1]), "d_depths: 3 entries"),
    (dict(kmeans=True), "unknown network option 'kmeans'")])
def test_bad_transgan_options_name_the_option(over, fragment):
    with pytest.raises(UserError, match=fragment):
        options.resolve_model("TransGAN", resolution=32, **over)


# ----------------------------------------------------------------------------
# The window-attention view of run_generator.py attention-maps.


def _brute_force_heatmaps(probs, batch, width, window, queries):
    """The full [w*w, w*w] head-averaged attention of each image, pixel pair by pixel pair
    (zero across windows), then each query's row as a [w, w] map."""
    per_row, maps = width // window, np.zeros([batch, len(queries), width, width])
    for b in range(batch):
        full = np.zeros([width * width, width * width])
        for p in range(width * width):
            for r in range(width * width):
                (py, px), (ry, rx) = divmod(p, width), divmod(r, width)
                if (py // window, px // window) == (ry // window, rx // window):
                    g = b * per_row * per_row + (py // window) * per_row + px // window
                    tp, tr = (py % window) * window + px % window, (ry % window) * window + rx % window
                    full[p, r] = probs[g, :, tp, tr].mean()
        for q, (y, x) in enumerate(queries):
            maps[b, q] = full[y * width + x].reshape(width, width)
    return maps


@pytest.mark.parametrize("width, window", [(6, 2), (5, 5)])      # 9 windows per image; one full window
def test_window_heatmaps_match_brute_force(width, window):
    batch, heads, tokens = 2, 3, window * window
    windows = batch * (width // window) ** 2
    probs = _softmax(np.random.RandomState(9).randn(windows, heads, tokens, tokens))
    queries = [(0, 0), (3, 4), (width - 1, 1), (2, width - 1)]
    got = window_attention.window_heatmaps(probs, batch, width, window, queries)
    assert got.shape == (batch, len(queries), width, width)
    np.testing.assert_allclose(got, _brute_force_heatmaps(probs, batch, width, window, queries), rtol=1e-5, atol=1e-7)


def test_window_attention_tensors_of_a_tiny_generator(tf_session):
    G = tflib.Network("G", func_name=transgan.Generator, **TINY_G)
    assert window_attention.has_window_attention(G)
    z = tf.constant(np.random.RandomState(10).randn(2, 7).astype(np.float32))
    c = tf.constant(np.eye(2, dtype=np.float32))
    images, found = window_attention.window_attention_tensors(G, z, c)
    # Stages 4x4 (1 block, one full 4x4 window), 8x8 and 16x16 (2 blocks, 4 and 16 windows of 4x4).
    assert [(w, b) for w, b, _ in found] == [(4, 0), (8, 0), (8, 1), (16, 0), (16, 1)]
    tflib.init_uninitialized_vars()
    values = tf_session.run([p for _, _, p in found])
    for (width, _, _), probs in zip(found, values):
        assert probs.shape == (2 * (width // 4) ** 2, 3, 16, 16)
        np.testing.assert_allclose(probs.sum(axis=-1), 1, rtol=1e-5)
    cross = [op for op in tf.get_default_graph().get_operations() if op.type == "Softmax" and "cross_attention" in op.name]
    assert cross and not any("cross_attention" in p.name for _, _, p in found)
    assert tf_session.run(images).shape == (2, 3, 16, 16)


# ----------------------------------------------------------------------------
# Loss and loop options.


def test_wgan_gp_eps_on_a_linear_d(tf_session):
    """D(x) = x·w + b: loss = D(fake) - D(real) + 1e-3 D(real)^2, GP = 10 (||w|| - 1)^2 exactly."""
    from tests.train_nets_tiny import D_tiny, FuncNet, G_tiny
    B, C, R, Z = 3, 3, 4, 5
    G = FuncNet("G", G_tiny, [[None, Z], [None, 0]], num_channels=C, resolution=R, latent_size=Z)
    D = FuncNet("D", D_tiny, [[None, C, R, R], [None, 0]], num_channels=C, resolution=R, linear=True)
    rnd = np.random.RandomState(5)
    reals_np, z_np = rnd.randn(B, C, R, R).astype(np.float32), rnd.randn(B, Z).astype(np.float32)
    loss, reg = loss_lib.D_loss(G, D, tf.constant(reals_np), tf.zeros([B, 0]), B, loss="wgan", reg="gp", gamma=10.0,
                                augment="", latents=tf.constant(z_np))
    fakes = G.get_output_for(tf.constant(z_np), tf.zeros([B, 0]), is_training=True)[0]
    tf_session.run(tf.global_variables_initializer())
    w_var = [v for v in tf.global_variables() if "out_weight" in v.name][0]
    w = rnd.randn(C * R * R, 1).astype(np.float32)
    w *= 2.5 / np.linalg.norm(w)
    tflib.set_vars({w_var: w})
    loss_np, reg_np, fakes_np = tf_session.run([loss, reg, fakes])
    d = lambda x: x.reshape(B, -1) @ w
    np.testing.assert_allclose(loss_np, d(fakes_np) - d(reals_np) + 1e-3 * d(reals_np) ** 2, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(reg_np, np.full([B, 1], 10.0 * 1.5 ** 2), rtol=1e-4)


def test_gp_with_interval_one_joins_the_d_step(tf_session):
    cfg = dnnlib.EasyDict(G_loss_args=dict(loss="wgan", pl_weight=0.0, augment="translation"),
                          D_loss_args=dict(loss="wgan", reg="gp", gamma=10.0, augment="translation,cutout,color"),
                          minibatch_multiplier=1, G_lrate=1e-3, D_lrate=1e-3, beta1=0.0, beta2=0.99, epsilon=1e-8,
                          G_reg_interval=4, D_reg_interval=1, d_steps=2, clip_grad_norm=5.0)
    G = tflib.Network("G", func_name="tests.train_nets_tiny.G_tiny", num_channels=3, resolution=8, latent_size=6)
    D = tflib.Network("D", func_name="tests.train_nets_tiny.D_tiny", num_channels=3, resolution=8)
    reals = tf.constant(np.random.RandomState(6).randn(4, 3, 8, 8).astype(np.float32))
    ops = tl.build_training_graph(G, D, ["/cpu:0"], 4, lambda t: (reals, tf.zeros([4, 0])),
                                  lambda t, n: tf.zeros([n, 0]), cfg)
    assert ops.D_reg is None and ops.D_reg_folded and ops.G_reg is None
    tflib.init_uninitialized_vars()
    sums = dict(G_loss=[], D_loss=[], G_reg=[], D_reg=[])
    for count in range(4):
        tl.run_minibatch(ops, cfg, count, sums)
    assert len(sums["G_loss"]) == 2 and len(sums["D_loss"]) == 4 and len(sums["D_reg"]) == 4   # d_steps = 2
    assert all(np.isfinite(v).all() for v in sums.values() for v in v)


def test_clip_grad_norm_scales_the_step(tf_session):
    var = tf.Variable(np.zeros(4, np.float32), name="w")
    target = np.array([30.0, -40.0, 0.0, 0.0], np.float32)                      # gradient of -w·t is -t: norm 50
    opt = tflib.Optimizer(name="Clip", tf_optimizer="tf.train.GradientDescentOptimizer", learning_rate=0.1,
                          clip_grad_norm=5.0)
    opt.register_gradients(-tf.reduce_sum(var * target), {"w": var})
    step = opt.apply_updates()
    tflib.init_uninitialized_vars()
    tf_session.run(step)
    np.testing.assert_allclose(tf_session.run(var), 0.1 * target * (5.0 / 50.0), rtol=1e-5)


# ----------------------------------------------------------------------------
# DiffAugment.


def test_diff_augment_ops_match_numpy(tf_session):
    rnd = np.random.RandomState(7)
    B, C, H, W = 3, 3, 6, 8
    x = rnd.randn(B, C, H, W).astype(np.float32)
    u = [rnd.rand(B).astype(np.float32) for _ in range(3)]
    ty, tx = np.array([1, -2, 0], np.int32), np.array([0, 3, -1], np.int32)
    cy, cx, on = np.array([0, 3, 5], np.int32), np.array([2, 7, 4], np.int32), np.array([True, True, False])
    xt = tf.constant(x)
    got = tf_session.run(dict(
        color=augment.contrast(augment.saturation(augment.brightness(xt, u[0]), u[1]), u[2]),
        translation=augment.translate(xt, ty, tx), cutout=xt * augment.cutout_mask(cy, cx, on, H, W)))
    e = x + (u[0][:, None, None, None] - 0.5)
    e = (e - e.mean(1, keepdims=True)) * 2 * u[1][:, None, None, None] + e.mean(1, keepdims=True)
    e = (e - e.mean((1, 2, 3), keepdims=True)) * (u[2][:, None, None, None] + 0.5) + e.mean((1, 2, 3), keepdims=True)
    np.testing.assert_allclose(got["color"], e, rtol=1e-5, atol=1e-5)
    shifted = np.zeros_like(x)
    for b in range(B):
        for i in range(H):
            for j in range(W):
                if 0 <= i - ty[b] < H and 0 <= j - tx[b] < W:
                    shifted[b, :, i, j] = x[b, :, i - ty[b], j - tx[b]]
    np.testing.assert_array_equal(got["translation"], shifted)
    cut = x.copy()
    for b in range(B):
        if on[b]:
            y0, x0 = cy[b] - H // 4, cx[b] - W // 4          # a (H/2) x (W/2) square around the centre
            cut[b, :, max(y0, 0):max(y0 + H // 2, 0), max(x0, 0):max(x0 + W // 2, 0)] = 0
    np.testing.assert_array_equal(got["cutout"], cut)


def test_diff_augment_keeps_gradients_and_is_off_when_empty(tf_session):
    rnd = np.random.RandomState(8)
    x0 = rnd.randn(2, 3, 4, 4)
    weights = rnd.randn(2, 3, 4, 4)
    u = [tf.constant(rnd.rand(2).astype(np.float32)) for _ in range(3)]
    x = tf.placeholder(tf.float64, [2, 3, 4, 4])
    f = lambda v: augment.contrast(augment.saturation(augment.brightness(v, tf.cast(u[0], v.dtype)),
                                                      tf.cast(u[1], v.dtype)), tf.cast(u[2], v.dtype))
    y = tf.reduce_sum(f(x) * weights)
    grad = tf_session.run(tf.gradients(y, x)[0], {x: x0})
    direction, eps = rnd.randn(*x0.shape), 1e-4
    fd = (tf_session.run(y, {x: x0 + eps * direction}) - tf_session.run(y, {x: x0 - eps * direction})) / (2 * eps)
    np.testing.assert_allclose(np.sum(grad * direction), fd, rtol=1e-6)
    xt = tf.constant(x0.astype(np.float32))
    assert augment.diff_augment(xt, "") is xt and augment.diff_augment(xt, None) is xt
    out = tf_session.run(augment.diff_augment(xt, "translation=0.25,cutout=0.5,color"))
    assert out.shape == x0.shape and np.isfinite(out).all()
    with pytest.raises(ValueError, match="unknown op 'flip'"):
        augment.parse_policy("flip")
    with pytest.raises(UserError, match="--augment cutout=2"):
        options.validate(train=dict(augment="cutout=2"))


# ----------------------------------------------------------------------------
# End to end: the CLI trains a tiny TransGAN, run_generator.py uses its snapshot.


def test_cli_run_writes_snapshots_that_run_generator_loads(tmp_path):
    from tests.train_nets_runner import make_color_dataset
    make_color_dataset(str(tmp_path / "data" / "colors"), num=64, res=8)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)
    argv = [sys.executable, os.path.join(REPO, "run_training.py"), "--baseline", "TransGAN",
            "--data-dir", str(tmp_path / "data"), "--dataset", "colors", "--resolution", "8", "--result-dir", str(tmp_path / "results"),
            "--total-kimg", "0.032", "--kimg-per-tick", "0.016", "--snapshot-ticks", "1", "--batch-size", "8",
            "--batch-gpu", "8", "--grid-size", "2,1", "--latent-size", "8", "--bottom-width", "4", "--embed-dim", "16",
            "--depths", "1,1", "--num-heads", "2", "--window-size", "4", "--grid-above", "4", "--d-scale-dims", "6,4",
            "--d-depths", "1,1", "--d-steps", "2"]
    done = subprocess.run(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert done.returncode == 0, done.stdout[-3000:]
    snaps = sorted(glob.glob(str(tmp_path / "results" / "*" / "network-snapshot-*.pkl")))
    assert snaps, done.stdout[-2000:]
    gen = [sys.executable, os.path.join(REPO, "run_generator.py")]
    out = tmp_path / "out"
    for sub in (["generate-images", "--seeds", "0-2"], ["interpolate", "--seeds", "1,2", "--density", "3"]):
        done = subprocess.run(gen + sub + ["--network", snaps[-1], "--outdir", str(out)], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert done.returncode == 0, done.stdout[-2000:]
    assert len(glob.glob(str(out / "seed*.png"))) == 3 and glob.glob(str(out / "interpolations-z" / "1-2" / "*.png"))
    done = subprocess.run(gen + ["attention-maps", "--seeds", "1", "--network", snaps[-1], "--outdir", str(out)],
                          cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    # Stages 4x4 and 8x8 of one block each: 2 rows; the image and 4 queries: 5 columns of 8x8 tiles.
    view = np.asarray(PIL.Image.open(out / "window_attention" / "seed0001.png"))
    assert view.shape == (2 * 8, 5 * 8, 3)
    np.testing.assert_array_equal(view[2, 8 + 2], [0, 255, 0])        # query 1 marked at pixel (2, 2)
