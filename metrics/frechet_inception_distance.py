"""Fréchet Inception Distance (Heusel et al. 2017; REFERENCE.md §7):
||mu_r - mu_f||² + Tr(S_r + S_f - 2 sqrtm(S_f S_r)) over Inception-v3 pool features."""

import warnings

import numpy as np
import scipy.linalg

from metrics import metric_base


def feature_stats(features):
    """Mean and covariance (np.cov, N-1 normalisation) of [N, F] features, in float64."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError("features must be [N >= 2, F], got shape %s" % (features.shape,))
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu_real, sigma_real, mu_fake, sigma_fake):
    """FID from feature statistics; the real part of the matrix square root is kept, since
    round-off can leave a tiny imaginary component."""
    mean_term = np.square(mu_fake - mu_real).sum()
    with warnings.catch_warnings():
        # Fewer images than feature dimensions make the covariances singular; sqrtm warns and
        # can return NaN/inf there, so retry with a tiny ridge on both diagonals.
        warnings.simplefilter("ignore")
        sqrt_prod, _err = scipy.linalg.sqrtm(np.dot(sigma_fake, sigma_real), disp=False)
        if not np.all(np.isfinite(sqrt_prod)):
            ridge = np.eye(sigma_real.shape[0]) * 1e-6
            sqrt_prod, _err = scipy.linalg.sqrtm(np.dot(sigma_fake + ridge, sigma_real + ridge), disp=False)
    return float(np.real(mean_term + np.trace(sigma_fake + sigma_real - 2 * sqrt_prod)))


class FID(metric_base.MetricBase):
    """FID between num_images real and generated images."""

    def __init__(self, feature_net="inception_v3_features.pkl", **kwargs):
        super().__init__(feature_net=feature_net, **kwargs)

    def _evaluate(self, Gs, Gs_kwargs, num_gpus):
        net = metric_base.load_feature_net(self.feature_net, self._nets_dir)
        mu_real, sigma_real = self._cached_real_features(net, num_gpus, postprocess=feature_stats)
        mu_fake, sigma_fake = feature_stats(self._compute_fake_features(Gs, Gs_kwargs, net, num_gpus))
        self._report_result(frechet_distance(mu_real, sigma_real, mu_fake, sigma_fake))
