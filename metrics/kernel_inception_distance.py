"""Kernel Inception Distance (Bińkowski et al. 2018): unbiased MMD² with the polynomial
kernel k(x, y) = (x·y / F + 1)³ over Inception features, averaged over random subsets."""

import numpy as np

from metrics import metric_base


def kernel_inception_distance(real_features, fake_features, num_subsets=100, max_subset_size=1000, rnd=None):
    """Mean unbiased MMD² over `num_subsets` random subsets of m = min(N_r, N_f, max) rows."""
    real_features = np.asarray(real_features, dtype=np.float64)
    fake_features = np.asarray(fake_features, dtype=np.float64)
    if real_features.shape[1] != fake_features.shape[1]:
        raise ValueError("real and fake features differ in width: %d vs %d"
                         % (real_features.shape[1], fake_features.shape[1]))
    rnd = np.random.RandomState(123) if rnd is None else rnd
    dim = real_features.shape[1]
    m = min(real_features.shape[0], fake_features.shape[0], max_subset_size)
    if m < 2:
        raise ValueError("KID needs at least 2 samples per set")
    total = 0.0
    for _subset in range(num_subsets):
        x = fake_features[rnd.choice(fake_features.shape[0], m, replace=False)]
        y = real_features[rnd.choice(real_features.shape[0], m, replace=False)]
        within = (x @ x.T / dim + 1) ** 3 + (y @ y.T / dim + 1) ** 3
        between = (x @ y.T / dim + 1) ** 3
        # Off-diagonal means of the within-set kernels, minus twice the cross mean.
        total += (within.sum() - np.diag(within).sum()) / (m * (m - 1)) - between.sum() * 2 / (m * m)
    return float(total / num_subsets)


class KID(metric_base.MetricBase):
    def __init__(self, num_subsets=100, max_subset_size=1000, feature_net="inception_v3_features.pkl", **kwargs):
        super().__init__(feature_net=feature_net, **kwargs)
        self.num_subsets = num_subsets
        self.max_subset_size = max_subset_size

    def _evaluate(self, Gs, Gs_kwargs, num_gpus):
        net = metric_base.load_feature_net(self.feature_net, self._nets_dir)
        real = self._cached_real_features(net, num_gpus)
        fake = self._compute_fake_features(Gs, Gs_kwargs, net, num_gpus)
        kid = kernel_inception_distance(real, fake, self.num_subsets, self.max_subset_size)
        self._report_result(kid, fmt="%-10.6f")  # KID values are small: more digits.
