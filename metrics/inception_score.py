"""Inception Score (Salimans et al. 2016; REFERENCE.md §7): exp(E_x KL(p(y|x) || p(y)))
over the softmax outputs of Inception-v3, averaged over splits; generated images only."""

import numpy as np

from metrics import metric_base


def inception_score(probs, num_splits=10):
    """Mean and std over `num_splits` equal parts of [N, classes] softmax outputs."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] < num_splits:
        raise ValueError("probs must be [N >= num_splits, classes], got shape %s" % (probs.shape,))
    n = probs.shape[0]
    scores = []
    for i in range(num_splits):
        part = probs[i * n // num_splits:(i + 1) * n // num_splits]
        marginal = part.mean(axis=0, keepdims=True)
        kl = part * (np.log(part) - np.log(marginal))
        scores.append(np.exp(np.mean(np.sum(kl, axis=1))))
    return float(np.mean(scores)), float(np.std(scores))


class IS(metric_base.MetricBase):
    def __init__(self, num_splits=10, feature_net="inception_v3_softmax.pkl", **kwargs):
        super().__init__(feature_net=feature_net, **kwargs)
        self.num_splits = num_splits

    def _evaluate(self, Gs, Gs_kwargs, num_gpus):
        net = metric_base.load_feature_net(self.feature_net, self._nets_dir)
        probs = self._compute_fake_features(Gs, Gs_kwargs, net, num_gpus)
        mean, std = inception_score(probs, self.num_splits)
        self._report_result(mean, suffix="_mean")
        self._report_result(std, suffix="_std")
