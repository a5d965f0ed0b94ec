"""The metric formulas against independent numpy/scipy computations (no networks)."""

import warnings

import numpy as np
import pytest
import scipy.linalg
import scipy.stats

from dnnlib.util import UserError
from metrics import metric_base, metric_defaults
from metrics.frechet_inception_distance import feature_stats, frechet_distance
from metrics.inception_score import inception_score
from metrics.kernel_inception_distance import kernel_inception_distance
from metrics.perceptual_path_length import filter_percentiles
from metrics.precision_recall import precision_recall


def _random_features(rnd, n, dim, scale=1.0):
    mixing = rnd.randn(dim, dim) * scale
    return rnd.randn(n, dim) @ mixing + rnd.randn(dim)


#----------------------------------------------------------------------------
# FID

def _fid_by_eigenvalues(x, y):
    # Tr sqrtm(S_y S_x) = sum sqrt(eig(S_x^1/2 S_y S_x^1/2)), a symmetric problem: no sqrtm of a
    # non-symmetric product, so this is independent of the implementation's route.
    mu_x, mu_y = x.mean(0), y.mean(0)
    cx = (x - mu_x).T @ (x - mu_x) / (len(x) - 1)
    cy = (y - mu_y).T @ (y - mu_y) / (len(y) - 1)
    evals, evecs = scipy.linalg.eigh(cx)
    root_cx = evecs @ np.diag(np.sqrt(np.maximum(evals, 0))) @ evecs.T
    inner = scipy.linalg.eigvalsh(root_cx @ cy @ root_cx)
    return np.sum((mu_x - mu_y) ** 2) + np.trace(cx) + np.trace(cy) - 2 * np.sum(np.sqrt(np.maximum(inner, 0)))


def test_fid_matches_independent_eigenvalue_computation():
    rnd = np.random.RandomState(1)
    real = _random_features(rnd, 300, 9)
    fake = _random_features(rnd, 250, 9, scale=1.7)
    fid = frechet_distance(*feature_stats(real), *feature_stats(fake))
    expected = _fid_by_eigenvalues(real, fake)
    assert expected > 1.0
    assert fid == pytest.approx(expected, rel=1e-7)


def test_fid_identical_sets_zero_and_shift_gives_squared_norm():
    rnd = np.random.RandomState(2)
    real = _random_features(rnd, 400, 7)
    stats = feature_stats(real)
    assert abs(frechet_distance(*stats, *stats)) < 1e-8 * np.trace(stats[1])
    shift = rnd.randn(7) * 3
    fid = frechet_distance(*stats, *feature_stats(real + shift))
    assert fid == pytest.approx(np.sum(shift ** 2), rel=1e-6)


def test_fid_with_fewer_images_than_features_is_finite_and_close():
    """Singular covariances (10 images, 32 features; tests and tiny runs hit this): a finite
    value within 1e-3 of the eigenvalue route, with no warning printed."""
    rnd = np.random.RandomState(3)
    real, fake = _random_features(rnd, 10, 32), _random_features(rnd, 10, 32, scale=1.3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fid = frechet_distance(*feature_stats(real), *feature_stats(fake))
    assert np.isfinite(fid)
    assert fid == pytest.approx(_fid_by_eigenvalues(real, fake), rel=1e-3)


#----------------------------------------------------------------------------
# IS

def test_inception_score_matches_scipy_entropy():
    rnd = np.random.RandomState(3)
    logits = rnd.randn(53, 11) * 2  # 53 rows: splits of unequal size (5 and 6 rows).
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    scores = []
    for i in range(10):
        part = probs[i * 53 // 10:(i + 1) * 53 // 10]
        marginal = part.mean(0)
        scores.append(np.exp(np.mean([scipy.stats.entropy(p, marginal) for p in part])))
    mean, std = inception_score(probs, num_splits=10)
    assert mean == pytest.approx(np.mean(scores), rel=1e-10)
    assert std == pytest.approx(np.std(scores), rel=1e-8)
    assert mean > 1.5


#----------------------------------------------------------------------------
# KID

def _mmd2_unbiased(x, y):
    dim = x.shape[1]
    kernel = lambda a, b: (np.dot(a, b) / dim + 1) ** 3
    m = len(x)
    kxx = sum(kernel(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kyy = sum(kernel(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kxy = sum(kernel(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return kxx + kyy - 2 * kxy


def test_kid_matches_direct_unbiased_mmd():
    rnd = np.random.RandomState(4)
    real = rnd.randn(30, 5)
    fake = rnd.randn(30, 5) * 1.3 + 0.4
    # Subsets of the full size are permutations: the unbiased MMD² does not depend on order.
    kid = kernel_inception_distance(real, fake, num_subsets=3, max_subset_size=1000)
    assert kid == pytest.approx(_mmd2_unbiased(fake, real), rel=1e-9)
    assert kid > 0.05

    # Proper subsets: the average of the direct MMD² over the same random draws.
    kid_sub = kernel_inception_distance(real, fake, num_subsets=4, max_subset_size=12, rnd=np.random.RandomState(7))
    draws = np.random.RandomState(7)
    expected = []
    for _ in range(4):
        x = fake[draws.choice(30, 12, replace=False)]
        y = real[draws.choice(30, 12, replace=False)]
        expected.append(_mmd2_unbiased(x, y))
    assert kid_sub == pytest.approx(np.mean(expected), rel=1e-9)


#----------------------------------------------------------------------------
# Precision / recall

def _brute_force_pr(real, fake, k):
    def radii(x):
        d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
        return np.sort(d, axis=1)[:, k]  # Item 0 is the sample itself.

    d_fr = ((fake[:, None, :] - real[None, :, :]) ** 2).sum(-1)
    precision = np.mean(np.any(d_fr <= radii(real)[None, :], axis=1))
    recall = np.mean(np.any(d_fr.T <= radii(fake)[None, :], axis=1))
    return precision, recall


@pytest.mark.parametrize("row_batch, col_batch", [(1000, 1000), (7, 5), (4, 11)])
def test_precision_recall_matches_brute_force_knn(tf_session, row_batch, col_batch):
    rnd = np.random.RandomState(5)
    real = rnd.randn(23, 6).astype(np.float32)
    fake = (rnd.randn(19, 6) * 0.8 + 0.6).astype(np.float32)
    expected = _brute_force_pr(real.astype(np.float64), fake.astype(np.float64), k=3)
    assert 0 < expected[0] < 1 and 0 < expected[1] < 1  # A case where neither is trivial.

    seen_shapes = []
    from metrics.precision_recall import DistanceBlock
    block = DistanceBlock(6)

    def distance(a, b):
        seen_shapes.append(a.shape[:1] + b.shape[:1])
        return block(a, b)

    result = precision_recall(real, fake, k=3, row_batch_size=row_batch, col_batch_size=col_batch,
                              distance=distance)
    assert result == pytest.approx(expected, abs=1e-12)
    # Both block sizes honoured (official bug 13 ignored the column size).
    assert max(s[0] for s in seen_shapes) == min(row_batch, 23)
    assert max(s[1] for s in seen_shapes) == min(col_batch, 23)

    # The default distance (a DistanceBlock built inside) gives the same.
    assert precision_recall(real, fake, 3, row_batch, col_batch) == pytest.approx(expected, abs=1e-12)


#----------------------------------------------------------------------------
# PPL filtering, cropping, names, feature-network lookup

def test_ppl_percentile_filter_matches_sorted_selection():
    rnd = np.random.RandomState(6)
    d = np.exp(rnd.randn(1000) * 2)
    s = np.sort(d)
    lo, hi = s[int(np.floor(0.01 * 999))], s[int(np.ceil(0.99 * 999))]
    expected = d[(d >= lo) & (d <= hi)].mean()
    assert filter_percentiles(d) == pytest.approx(expected, rel=1e-12)
    assert filter_percentiles(d) < d.mean()  # The long tail was cut.


def test_metric_registry_names_and_counts():
    kwargs = metric_defaults.get_metric_kwargs("fid50k,pr50k3,ppl_wend", num_images=1000)
    assert [k.name for k in kwargs] == ["fid1k", "pr1k3", "ppl_wend"]
    assert all(k.num_images == 1000 for k in kwargs)
    assert metric_defaults.get_metric_kwargs(["is50k"])[0].num_images == 50000
    assert metric_defaults.get_metric_kwargs("pr50k3", num_images=24)[0].name == "pr24_3"
    with pytest.raises(UserError, match="fid5k0"):
        metric_defaults.get_metric_kwargs("fid5k0")


def test_feature_net_lookup_local_dir_env_and_missing(tmp_path, monkeypatch):
    (tmp_path / "vgg16.pkl").write_bytes(b"x")
    assert metric_base.resolve_feature_net("vgg16.pkl", nets_dir=str(tmp_path)) == str(tmp_path / "vgg16.pkl")
    monkeypatch.setenv(metric_base.METRIC_NETS_DIR_ENV, str(tmp_path))
    assert metric_base.resolve_feature_net("vgg16.pkl") == str(tmp_path / "vgg16.pkl")
    with pytest.raises(UserError, match="inception_v3_features.pkl.*nvlabs-fi-cdn"):
        metric_base.resolve_feature_net("inception_v3_features.pkl")
    # URLs go through open_url (file:// works offline).
    url = (tmp_path / "vgg16.pkl").as_uri()
    assert open(metric_base.resolve_feature_net(url), "rb").read() == b"x"
