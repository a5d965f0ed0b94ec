"""Bipartite attention (training/networks.py, REFERENCE §1.6-1.7): one layer against an
independent numpy computation; attention maps (shape, sum to 1); simplex keeps the latents,
duplex updates them.

Unequal sizes on purpose: B 3, F 12 (a 3x4 grid), T 5 latents, image width 6, latent width 7,
attention width 8 with 2 heads, positions of width 10 / 9."""

import os

os.environ.setdefault("DNNLIB_OPS_IMPL", "ref")

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import dnnlib.tflib as tflib
from training import networks, options

B, F, T, DF, DT, DIM, HEADS, PF, PT = 3, 12, 5, 6, 7, 8, 2, 10, 9


def np_dense(x, w, b):
    """Equalized-lr dense (gain 1, lrmul 1): x . w / sqrt(fan_in) + b."""
    return x @ (w / np.sqrt(w.shape[0])) + b


def np_softmax(s):
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def np_attention(v, frm, to, fpos, tpos, mask, integration, norm, kmeans, iters):
    """REFERENCE §1.6-1.7 in numpy, from the layer's variables v (dict local name -> value)."""
    H = DIM // HEADS
    heads = lambda t: t.reshape(t.shape[0], t.shape[1], HEADS, H).transpose(0, 2, 1, 3)   # [B, N, len, H]
    q0 = np_dense(frm, v["weight_query"], v["bias_query"])                  # [B, F, dim]
    pos_q = np_dense(fpos, v["weight_from_pos"], v["bias_from_pos"])        # [F, dim]
    q = q0 + pos_q
    val = heads(np_dense(to, v["weight_value"], v["bias_value"]))          # [B, N, T, H]
    bias = (1 - mask)[:, :, None, :] * -10000.0                             # [B, 1, 1, T]
    if not kmeans:
        # The layer has no key biases; an arbitrary one here must not change the probabilities.
        key_bias = np.random.RandomState(11).randn(DIM) * 3
        k = np_dense(to, v["weight_key"], key_bias) + np_dense(tpos, v["weight_to_pos"], 0.0)
        p = np_softmax(heads(q) @ heads(k).transpose(0, 1, 3, 2) / np.sqrt(H) + bias)
    else:
        e = np.concatenate([heads(q0), heads(np.broadcast_to(pos_q, q0.shape))], axis=-1)   # [B, N, F, 2H]
        cent = np.broadcast_to(v["toasgn_init"], (B,) + v["toasgn_init"].shape[1:])       # [B, N, T, 2H]
        for i in range(iters):
            if i > 0:
                a = p / (p.sum(2, keepdims=True) + 1e-8)
                cent = a.transpose(0, 1, 3, 2) @ e
            s = (e * v["iter_%d/st_weights" % i]) @ cent.transpose(0, 1, 3, 2)
            p = np_softmax(s / np.sqrt(H) + bias)
    ctx = (p @ val).transpose(0, 2, 1, 3).reshape(B, F, DIM)               # [B, F, dim]
    x = frm.copy()
    if norm:
        axis = 1 if norm == "instance" else 2
        if integration in ("add", "both"):
            x = x - x.mean(axis, keepdims=True)
        if integration in ("mul", "both"):
            x = x / np.sqrt((x ** 2).mean(axis, keepdims=True) + 1e-8)
    g = np_dense(ctx, v["weight_out"], v["bias_out"])
    if integration == "add":
        return x + g, p
    if integration == "mul":
        return x * (1 + g), p
    return x * (1 + g[..., :DF]) + g[..., DF:], p


@pytest.mark.parametrize("integration,norm", [("add", None), ("mul", "layer"), ("both", "instance")])
@pytest.mark.parametrize("kmeans,iters", [(False, 1), (True, 1), (True, 2)])
def test_attention_layer_matches_numpy(tf_session, integration, norm, kmeans, iters):
    rnd = np.random.RandomState(7)
    frm, to = rnd.randn(B, F, DF).astype(np.float32), rnd.randn(B, T, DT).astype(np.float32)
    fpos, tpos = rnd.randn(F, PF).astype(np.float32), rnd.randn(T, PT).astype(np.float32)
    mask = np.ones([B, 1, T], np.float32)
    mask[1, 0, 2] = 0                                                        # one latent dropped in sample 1
    with tf.variable_scope("test"):
        out, probs, _ = networks.attention_layer(
            tf.constant(frm), tf.constant(to), DIM, "x", from_pos=tf.constant(fpos), to_pos=tf.constant(tpos),
            mask=tf.constant(mask), num_heads=HEADS, integration=integration, norm=norm, kmeans=kmeans,
            kmeans_iters=iters)
    variables = {v.name[len("test/AttLayer_x/"):-2]: v for v in tf.global_variables()}
    assert ("weight_key" in variables) != kmeans and ("weight_to_pos" in variables) != kmeans
    assert "bias_key" not in variables and "bias_to_pos" not in variables
    tf_session.run(tf.global_variables_initializer())
    # Non-trivial st_weights and biases, so a skipped term changes the result.
    tflib.set_vars({var: rnd.randn(*var.shape.as_list()).astype(np.float32) for var in variables.values()})
    values = {n: var.eval() for n, var in variables.items()}
    got_out, got_p = tf_session.run([out, probs])
    want_out, want_p = np_attention(values, frm, to, fpos, tpos, mask, integration, norm, kmeans, iters)
    np.testing.assert_allclose(got_p, want_p, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got_out, want_out, rtol=1e-4, atol=1e-4)
    assert got_p[1, :, :, 2].max() < 1e-3                                   # the masked latent gets ~0


def synthesis_outputs(preset, **extra):
    """(G, maps [B, k, L_att, N, h, w], ws, latents_out) of a tiny 16x8 (ratio 0.5) generator."""
    gkw, _ = options.resolve_model(preset, resolution=16, ratio=0.5, channel_base=128, channel_max=32, components_num=3,
                             latent_size=24, num_heads=2, mapping_num_layers=2, noise_mode="const", **extra)
    G = tflib.Network("G", func_name=networks.Generator, **gkw)
    tflib.init_uninitialized_vars()
    z = tf.constant(np.random.RandomState(3).randn(2, 4, 8).astype(np.float32))
    _, maps, ws = G.get_output_for(z, tf.zeros([2, 0]), truncation_psi=1.0, return_ws=True)
    k = 3
    pos = G.vars["ltnt_emb/emb"] if "ltnt_emb/emb" in G.vars else tf.zeros([k, 8])
    _, _, lat = G.components.synthesis.get_output_for(ws, pos, tf.ones([2, 1, k]), attention_dropout=0.0)
    return G, *tf.get_default_session().run([maps, ws, lat])


@pytest.mark.parametrize("preset", ["simplex", "duplex"])
def test_attention_maps_and_latents(tf_session, preset):
    G, maps, ws, lat = synthesis_outputs(preset)
    # 16 px wide, attention below log2 width 8: 4x4 Conv + 2 per block at 8 and 16 = 5 layers.
    assert maps.shape == (2, 3, 5, 2, 8, 16)
    np.testing.assert_allclose(maps.sum(axis=1), 1.0, atol=1e-5)            # softmax over the latents
    assert maps.min() >= 0 and maps.std() > 0
    if preset == "simplex":
        np.testing.assert_array_equal(lat, ws[:, :-1, -1])                  # latents pass through untouched
    else:
        assert np.abs(lat - ws[:, :-1, -1]).max() > 1e-3                     # img2ltnt rewrote them


def test_attention_maps_without_transformer(tf_session):
    gkw, _ = options.resolve_model("StyleGAN2", resolution=16, ratio=0.5, channel_base=128, channel_max=32,
                             latent_size=24, mapping_num_layers=2)
    G = tflib.Network("G", func_name=networks.Generator, **gkw)
    tflib.init_uninitialized_vars()
    images, maps = G.run(np.zeros([2, 24], np.float32), np.zeros([2, 0], np.float32))
    assert images.shape == (2, 3, 8, 16) and maps.shape == (2, 0, 0, 1, 8, 16)


def test_attention_grid_positions_sinus_formula():
    """REFERENCE §1.8 sinus encoding for an h x w grid, rebuilt by hand."""
    h, w, P = 3, 5, 8
    with tf.Graph().as_default(), tf.Session() as sess:
        got = sess.run(networks.grid_positions(h, w, P))
    cx, cy = np.linspace(-1, 1, w), np.linspace(-1, 1, h)
    f = lambda c: c[:, None] / 10000.0 ** (4 * np.arange(P // 4) / P)
    want = np.zeros([h, w, P])
    for y in range(h):
        for x in range(w):
            want[y, x] = np.concatenate([np.sin(f(cx)[x]), np.cos(f(cx)[x]), np.sin(f(cy)[y]), np.cos(f(cy)[y])])
    np.testing.assert_allclose(got, want.reshape(h * w, P), atol=1e-6)
