"""Improved precision and recall (Kynkäänniemi et al. 2019; REFERENCE.md §7).

Each set's manifold is the union of balls around its samples with radius = distance to the
k-th nearest other sample. Precision = fraction of fakes inside the real manifold, recall =
fraction of reals inside the fake manifold. Distances are computed block by block, with
both the row and the column block size honoured (the official code ignores the column
size, bug 10.2-13), so memory stays bounded by row_batch_size x col_batch_size."""

import numpy as np
import tensorflow.compat.v1 as tf

import dnnlib.tflib as tflib
from metrics import metric_base


class DistanceBlock:
    """Squared Euclidean distances between two blocks of rows, in float32 on one device."""

    def __init__(self, num_features, device=None):
        with tf.device(device), tf.name_scope("DistanceBlock"):
            self._rows = tf.placeholder(tf.float32, [None, num_features], name="rows")
            self._cols = tf.placeholder(tf.float32, [None, num_features], name="cols")
            row_norms = tf.reduce_sum(tf.square(self._rows), axis=1, keepdims=True)     # [R, 1]
            col_norms = tf.reduce_sum(tf.square(self._cols), axis=1, keepdims=True)     # [C, 1]
            dots = tf.matmul(self._rows, self._cols, transpose_b=True)                   # [R, C]
            # Round-off can make |a|² - 2ab + |b|² slightly negative for near-equal rows.
            self._dist = tf.maximum(row_norms - 2 * dots + tf.transpose(col_norms), 0.0)

    def __call__(self, rows, cols):
        return tflib.run(self._dist, {self._rows: rows, self._cols: cols})


def _blocks(n, size):
    if size < 1:
        raise ValueError("batch size must be >= 1, got %r" % size)
    return [(start, min(start + size, n)) for start in range(0, n, size)]


def knn_radii(features, k, distance, row_batch_size, col_batch_size):
    """Distance from each row to its k-th nearest other row ([N] float32); the row itself
    is among the candidates at distance 0, so the k-th neighbour is item k of the sorted row."""
    n = features.shape[0]
    if n <= k:
        raise ValueError("need more than k=%d samples, got %d" % (k, n))
    radii = np.empty(n, dtype=np.float32)
    for r0, r1 in _blocks(n, row_batch_size):
        best = None  # The k+1 smallest distances seen so far per row, unordered.
        for c0, c1 in _blocks(n, col_batch_size):
            dist = distance(features[r0:r1], features[c0:c1])
            cand = dist if best is None else np.concatenate([best, dist], axis=1)
            keep = min(k + 1, cand.shape[1])
            best = np.partition(cand, keep - 1, axis=1)[:, :keep]
        radii[r0:r1] = np.partition(best, k, axis=1)[:, k]
    return radii


def manifold_coverage(ref_features, ref_radii, query_features, distance, row_batch_size, col_batch_size):
    """Fraction of query rows within ref_radii[j] of some reference row j."""
    inside = np.zeros(query_features.shape[0], dtype=bool)
    for r0, r1 in _blocks(query_features.shape[0], row_batch_size):
        for c0, c1 in _blocks(ref_features.shape[0], col_batch_size):
            dist = distance(query_features[r0:r1], ref_features[c0:c1])
            inside[r0:r1] |= np.any(dist <= ref_radii[np.newaxis, c0:c1], axis=1)
    return float(inside.mean())


def precision_recall(real_features, fake_features, k=3, row_batch_size=10000, col_batch_size=10000,
                     distance=None):
    """(precision, recall) of fake_features against real_features ([N, F] each).
    `distance(a, b)` returns squared distances; default: a DistanceBlock in the default graph."""
    real_features = np.asarray(real_features, dtype=np.float32)
    fake_features = np.asarray(fake_features, dtype=np.float32)
    if distance is None:
        device = "/gpu:0" if metric_base.list_devices(1)[0].startswith("/gpu") else "/cpu:0"
        distance = DistanceBlock(real_features.shape[1], device)
    batches = dict(row_batch_size=row_batch_size, col_batch_size=col_batch_size)
    real_radii = knn_radii(real_features, k, distance, **batches)
    fake_radii = knn_radii(fake_features, k, distance, **batches)
    precision = manifold_coverage(real_features, real_radii, fake_features, distance, **batches)
    recall = manifold_coverage(fake_features, fake_radii, real_features, distance, **batches)
    return precision, recall


class PR(metric_base.MetricBase):
    def __init__(self, nhood_size=3, row_batch_size=10000, col_batch_size=10000, feature_net="vgg16.pkl", **kwargs):
        super().__init__(feature_net=feature_net, **kwargs)
        self.nhood_size = nhood_size
        self.row_batch_size = row_batch_size
        self.col_batch_size = col_batch_size

    def _evaluate(self, Gs, Gs_kwargs, num_gpus):
        net = metric_base.load_feature_net(self.feature_net, self._nets_dir)
        real = self._cached_real_features(net, num_gpus)
        fake = self._compute_fake_features(Gs, Gs_kwargs, net, num_gpus)
        precision, recall = precision_recall(real, fake, self.nhood_size, self.row_batch_size, self.col_batch_size)
        self._report_result(precision, suffix="_precision")
        self._report_result(recall, suffix="_recall")
