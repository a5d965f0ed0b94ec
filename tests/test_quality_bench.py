"""bench/quality.py's offline parts: the curves PNG and table from a results dict, and the object
statistics of real scenes (the training runs themselves are exercised by its --smoke)."""

import importlib.util
import os

import numpy as np
from PIL import Image

from training.data.scenes import render_scenes


def _bench(name):
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench", name + ".py")
    spec = importlib.util.spec_from_file_location("bench_" + name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _quality():
    return _bench("quality")


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


def _write_quality(folder, seed, curves):
    import json
    os.makedirs(str(folder), exist_ok=True)
    configs = {name: dict(points=[dict(kimg=k, fid_scenes=v) for k, v in curve.items()]) for name, curve in curves.items()}
    with open(os.path.join(str(folder), "quality.json"), "w") as f:
        json.dump(dict(settings=dict(seed=seed), configs=configs), f)


def test_seed_summary_against_numpy(tmp_path, capsys):
    import json
    import pytest
    seeds = _bench("quality_seeds")
    rng = np.random.RandomState(3)
    gf = {s: dict(zip((4, 8, 12), rng.uniform(50, 500, 3))) for s in (1, 2)}
    sg = {s: dict(zip((4, 8, 12), rng.uniform(50, 500, 3))) for s in (1, 2)}
    # Seed 1: StyleGAN2 in one folder, the GANsformer under an old name in another (merged, renamed);
    # seed 2 evaluated every 8 kimg only for the reference, so only kimg 8 is common to all.
    _write_quality(tmp_path / "a", 1, dict(stylegan2=sg[1]))
    _write_quality(tmp_path / "b", 1, dict(old=gf[1], gansformer={4: 1.0, 8: 1.0, 12: 1.0}))
    _write_quality(tmp_path / "c", 2, dict(gansformer=gf[2], stylegan2={8: sg[2][8]}))
    seeds.main([str(tmp_path / "a"), str(tmp_path / "b") + ":old=gansformer", str(tmp_path / "c"),
                "--ratio", "0.9", "--png", str(tmp_path / "s.png")])
    out = capsys.readouterr().out
    summary = json.loads(out[out.index("{"):])["summaries"][0]
    assert [r["kimg"] for r in summary["points"]] == [8.0]
    row = summary["points"][0]
    values, refs = [gf[1][8], gf[2][8]], [sg[1][8], sg[2][8]]
    assert np.allclose(row["fid"], values) and np.allclose(row["ref"], refs)
    assert np.isclose(row["geomean_fid"], np.sqrt(values[0] * values[1]))
    assert np.isclose(row["geomean_ratio"], np.sqrt(values[0] / refs[0] * values[1] / refs[1]))
    within = [v <= 0.9 * r for v, r in zip(values, refs)]
    assert summary["points_within"] == sum(within) and summary["points_total"] == 2
    assert summary["seeds_within_everywhere"] == [s for s, ok in zip((1, 2), within) if ok]
    assert Image.open(str(tmp_path / "s.png")).size[0] > 600
    with pytest.raises(SystemExit, match="no quality.json"):
        seeds.main([str(tmp_path / "missing")])
    with pytest.raises(SystemExit, match="is a folder"):
        seeds.main([str(tmp_path / "a"), "--png", str(tmp_path)])
    with pytest.raises(SystemExit, match="in none of the runs"):
        seeds.main([str(tmp_path / "a"), "--configs", "duplex"])
