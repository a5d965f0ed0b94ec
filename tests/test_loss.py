"""training/loss.py against independent numpy computations on stand-in networks."""

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from training import loss as loss_lib
from tests.train_nets_tiny import D_tiny, FuncNet, G_tiny

B, C, R, Z = 5, 3, 4, 6


def _softplus(x):
    return np.logaddexp(0.0, x)


def _nets(linear_d):
    G = FuncNet("G", G_tiny, [[None, Z], [None, 0]], num_channels=C, resolution=R, latent_size=Z)
    D = FuncNet("D", D_tiny, [[None, C, R, R], [None, 0]], num_channels=C, resolution=R, linear=linear_d)
    return G, D


@pytest.mark.parametrize("kind", loss_lib.G_LOSSES)
def test_g_losses_match_numpy(tf_session, kind):
    scores = np.random.RandomState(1).randn(B, 1).astype(np.float32) * 3
    got = tf_session.run(loss_lib.g_loss_from_scores(tf.constant(scores), kind))
    expected = {"logistic_ns": _softplus(-scores), "logistic": -_softplus(scores),
                "hinge": -np.maximum(0, 1 + scores), "wgan": -scores}[kind]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", loss_lib.D_LOSSES)
def test_d_losses_match_numpy(tf_session, kind):
    rnd = np.random.RandomState(2)
    real, fake = [rnd.randn(B, 1).astype(np.float32) * 3 for _ in range(2)]
    got = tf_session.run(loss_lib.d_loss_from_scores(tf.constant(real), tf.constant(fake), kind))
    expected = {"logistic": _softplus(fake) + _softplus(-real),
                "hinge": np.maximum(0, 1 + fake) + np.maximum(0, 1 - real),
                "wgan": fake - real + 0.001 * real ** 2}[kind]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_unknown_loss_names_raise(tf_session):
    with pytest.raises(ValueError, match="unknown loss"):
        loss_lib.g_loss_from_scores(tf.zeros([2, 1]), "softmax")
    with pytest.raises(ValueError, match="unknown regularizer"):
        G, D = _nets(True)
        loss_lib.D_loss(G, D, tf.zeros([2, C, R, R]), tf.zeros([2, 0]), 2, loss="logistic", reg="l2", gamma=1.0)


@pytest.mark.parametrize("reg", ["r1", "r2", "gp"])
def test_regularizers_on_linear_d(tf_session, reg):
    """For D(x) = x·w + b, ∂D/∂x = w for every sample: R1 = R2 = γ/2·||w||², GP = γ(||w||−1)²."""
    G, D = _nets(linear_d=True)
    gamma = 7.0
    reals = tf.constant(np.random.RandomState(3).randn(B, C, R, R).astype(np.float32))
    loss, penalty = loss_lib.D_loss(G, D, reals, tf.zeros([B, 0]), B, loss="logistic", reg=reg, gamma=gamma)
    tf_session.run(tf.global_variables_initializer())
    # Fix ||w|| = 2.5: a random init can put ||w|| within 1e-3 of 1,
    # where GP's (||w|| - 1)^2 loses its digits to float32 cancellation.
    w_var = [v for v in tf.global_variables() if v.name == "D/out_weight:0"][0]
    w0 = np.random.RandomState(5).randn(*w_var.shape.as_list())
    w_var.load((w0 * 2.5 / np.linalg.norm(w0)).astype(np.float32), tf_session)
    w = tf_session.run(w_var)
    got = tf_session.run(penalty)
    grad_norm = np.sqrt(np.sum(np.float64(w) ** 2))
    norm2 = grad_norm ** 2
    expected = gamma * 0.5 * norm2 if reg != "gp" else gamma * (np.sqrt(norm2 + 1e-8) - 1) ** 2
    assert got.shape == (B, 1)
    np.testing.assert_allclose(got[:, 0], expected, rtol=1e-4)


def test_r1_matches_finite_differences_on_nonlinear_d(tf_session):
    G, D = _nets(linear_d=False)
    gamma = 3.0
    reals_np = np.random.RandomState(4).randn(B, C, R, R).astype(np.float32)
    reals = tf.placeholder(tf.float32, [B, C, R, R])
    _loss, penalty = loss_lib.D_loss(G, D, reals, tf.zeros([B, 0]), B, loss="logistic", reg="r1", gamma=gamma)
    scores = D.get_output_for(reals, tf.zeros([B, 0]))
    tf_session.run(tf.global_variables_initializer())
    got = tf_session.run(penalty, {reals: reals_np})[:, 0]

    # Central differences of each sample's score, one pixel at a time (in float64 sums).
    eps = 1e-2
    grads = np.zeros_like(reals_np, dtype=np.float64)
    flat = reals_np.reshape(B, -1)
    for i in range(flat.shape[1]):
        plus, minus = flat.copy(), flat.copy()
        plus[:, i] += eps
        minus[:, i] -= eps
        s_plus = tf_session.run(scores, {reals: plus.reshape(reals_np.shape)})[:, 0]
        s_minus = tf_session.run(scores, {reals: minus.reshape(reals_np.shape)})[:, 0]
        grads.reshape(B, -1)[:, i] = (s_plus - s_minus) / (2 * eps)
    expected = gamma / 2 * np.sum(grads.reshape(B, -1) ** 2, axis=1)
    np.testing.assert_allclose(got, expected, rtol=2e-2)


def test_d_loss_uses_reals_and_fakes(tf_session):
    """D_loss equals the logistic formula on D's own scores of the reals and of G(z)."""
    G, D = _nets(linear_d=False)
    rnd = np.random.RandomState(5)
    reals = tf.constant(rnd.randn(B, C, R, R).astype(np.float32))
    z = tf.constant(rnd.randn(B, Z).astype(np.float32))
    loss, reg = loss_lib.D_loss(G, D, reals, tf.zeros([B, 0]), B, loss="logistic", reg="none", gamma=0.0, latents=z)
    assert reg is None
    real_s = D.get_output_for(reals, tf.zeros([B, 0]))
    fake_s = D.get_output_for(G.get_output_for(z, tf.zeros([B, 0]))[0], tf.zeros([B, 0]))
    tf_session.run(tf.global_variables_initializer())
    got, rs, fs = tf_session.run([loss, real_s, fake_s])
    np.testing.assert_allclose(got, _softplus(fs) + _softplus(-rs), rtol=1e-5)


def test_path_length_penalty_matches_analytic(tf_session):
    """G_tiny: images = mean_L(ws)·W, so ∂Σ(img·y)/∂ws_l = W·y / L for each of the L layers:
    len = ||W·y||/L with y = noise/sqrt(HW); pl_mean moves 1% toward mean(len) per call."""
    G, _ = _nets(True)
    L = 2
    rnd = np.random.RandomState(6)
    z = tf.constant(rnd.randn(B, Z).astype(np.float32))
    noise_np = rnd.randn(B, C, R, R).astype(np.float32)
    penalty, lengths = loss_lib.path_length_penalty(G, z, tf.zeros([B, 0]), pl_decay=0.01, pl_weight=2.0,
                                                    noise=tf.constant(noise_np))
    tf_session.run(tf.global_variables_initializer())
    W = tf_session.run([v for v in tf.global_variables() if v.name == "G/img_weight:0"][0])
    y = noise_np.reshape(B, -1) / np.sqrt(R * R)
    expected_len = np.linalg.norm(y @ W.T, axis=1) / L
    pl_mean_var = [v for v in tf.global_variables() if "pl_mean" in v.name][0]

    got_pen, got_len = tf_session.run([penalty, lengths])
    np.testing.assert_allclose(got_len, expected_len, rtol=1e-4)
    mean1 = 0.01 * expected_len.mean()
    np.testing.assert_allclose(got_pen[:, 0], 2.0 * (expected_len - mean1) ** 2, rtol=1e-3)
    np.testing.assert_allclose(tf_session.run(pl_mean_var), mean1, rtol=1e-4)
    tf_session.run(penalty)   # A second step moves pl_mean further toward mean(len).
    np.testing.assert_allclose(tf_session.run(pl_mean_var), mean1 + 0.01 * (expected_len.mean() - mean1), rtol=1e-4)


def test_g_loss_returns_path_reg_only_when_weighted(tf_session):
    G, D = _nets(False)
    labels = tf.zeros([4, 0])
    _, reg0 = loss_lib.G_loss(G, D, labels, 4, loss="logistic_ns", pl_weight=0.0)
    loss, reg = loss_lib.G_loss(G, D, labels, 4, loss="logistic_ns", pl_weight=2.0)
    assert reg0 is None
    tf_session.run(tf.global_variables_initializer())
    loss_v, reg_v = tf_session.run([loss, reg])
    assert loss_v.shape == (4, 1) and reg_v.shape == (2, 1)   # pl batch = B / 2
    assert np.all(loss_v > 0) and np.all(np.isfinite(reg_v))
