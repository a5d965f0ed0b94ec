"""bench/quality.py's offline parts: the curves PNG and table from a results dict, and the object
statistics of real scenes (the training runs themselves are exercised by its --smoke)."""

import importlib.util
import os

import numpy as np
from PIL import Image

from training.data.scenes import render_scenes


def _quality():
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench", "quality.py")
    spec = importlib.util.spec_from_file_location("bench_quality", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_curves_png_and_table(tmp_path):
    quality = _quality()
    points = lambda scale, attn: [dict(kimg=k, fid_scenes=900.0 * scale / (k + 1), pr_scenes_precision=0.1 * k,
                                       pr_scenes_recall=0.0, object_fraction=0.2,
                                       **(dict(attn_scenes_ari=0.05 * k, attn_scenes_maxprob=0.5) if attn else {}))
                                  for k in (0, 4, 8)]
    results = dict(reals=dict(object_fraction=0.25),
                   configs=dict(gansformer=dict(points=points(1, True)), stylegan2=dict(points=points(2, False))))
    quality.plot(results, str(tmp_path / "curves.png"))
    image = np.asarray(Image.open(str(tmp_path / "curves.png")).convert("RGB"))
    assert image.shape[0] > 300 and image.shape[1] > 600 and image.std() > 10
    lines = quality.table(results).splitlines()
    assert len(lines) == 2 + 3 and lines[-1].startswith("| 8 | 100 / 0.80 / 0.00 / 0.40 / 0.20 | 200 / 0.80")
    assert " - / 0.20 |" in lines[-1]    # no attention score for StyleGAN2


def test_object_stats_of_real_scenes():
    images, _ = render_scenes(32, 32, seed=4)
    stats = _quality().object_stats(images)
    assert 0.05 < stats["object_fraction"] < 0.6 and 1 <= stats["objects"] <= 5
