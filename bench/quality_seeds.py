"""bench/quality.py's curves over several seeds: one quality.json per seed (its --out), each
configuration's fid_scenes at every evaluated kimg set against a reference configuration of the
same seed (StyleGAN2 by default). Prints JSON (per configuration: the per-seed values and ratios,
their geometric means, how many points are at most --ratio x the reference, on which seeds every
point is, and whether the geometric-mean curve falls) and a markdown table; --png draws the
geometric-mean curves with bench/quality.py's plot.

    python bench/quality_seeds.py results/quality40:nostyle-nodrop=gansformer results/quality40_seed1000e8 \\
        results/quality40_seed2000 results/quality40_seed3000 results/quality40_seed4000 \\
        --configs gansformer,gf-dlr4 --from-kimg 8 --png seeds.png

(results/quality40, seed 1000, trained today's main job as nostyle-nodrop; the rename says so.)

The kimgs compared are those that every seed's run of the configuration and of the reference
evaluated; --from-kimg leaves out the first points ("past the first few kimg").
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import quality  # noqa: E402  (bench/quality.py: its plot)


def load_seed(spec):
    """(seed, {config: {kimg: fid_scenes}}) from a quality.json or the folder holding one;
    spec = PATH[:OLD=NEW,...] renames configurations (a run of today's main job under an old name)."""
    path, _, renames = spec.partition(":")
    aliases = dict(r.split("=", 1) for r in renames.split(",") if "=" in r)
    if renames and len(aliases) != len(renames.split(",")):
        raise SystemExit("%s: expected PATH[:OLD=NEW,...]" % spec)
    path = os.path.join(path, "quality.json") if os.path.isdir(path) else path
    if not os.path.isfile(path):
        raise SystemExit("%s: no quality.json (a bench/quality.py --out folder?)" % path)
    try:
        with open(path) as f:
            results = json.load(f)
        curves = {aliases.get(name, name): {float(pt["kimg"]): float(pt["fid_scenes"]) for pt in cfg.get("points", [])
                                            if pt.get("fid_scenes") is not None}
                  for name, cfg in results["configs"].items() if name in aliases or name not in aliases.values()}
        return results.get("settings", {}).get("seed", path), curves
    except (ValueError, KeyError, TypeError) as error:
        raise SystemExit("%s: not a bench/quality.py result (%s)" % (path, error))


def merge_seeds(loaded):
    """Runs of the same seed (e.g. a configuration added under another --out) as one."""
    merged = {}
    for seed, curves in loaded:
        for name, curve in curves.items():
            merged.setdefault(seed, {}).setdefault(name, {}).update(curve)
    return sorted(merged.items(), key=lambda item: str(item[0]))


def geomean(values):
    return float(np.exp(np.mean(np.log(values))))


def aggregate(seeds, name, ref, ratio, from_kimg=0.0):
    """One configuration over the seeds that ran it and the reference: per kimg the values,
    the ratios to the reference, their geometric means; the count of points at most `ratio`."""
    runs = [(seed, curves[name], curves[ref]) for seed, curves in seeds if name in curves and ref in curves]
    # Only the kimgs every seed evaluated (runs evaluated every 4 and every 8 kimg meet at 8, 16, ...).
    kimgs = sorted(k for k in set.intersection(*[set(c) & set(r) for _, c, r in runs]) if k >= from_kimg) if runs else []
    table, within, total, seeds_every = [], 0, 0, []
    for seed, curve, ref_curve in runs:
        ok = [curve[k] <= ratio * ref_curve[k] for k in kimgs]
        within, total = within + sum(ok), total + len(ok)
        if kimgs and all(ok):
            seeds_every.append(seed)
    for k in kimgs:
        pairs = [(seed, c[k], r[k]) for seed, c, r in runs]
        table.append(dict(kimg=k, seeds=[s for s, _, _ in pairs], fid=[v for _, v, _ in pairs],
                          ref=[r for _, _, r in pairs], ratio=[v / r for _, v, r in pairs],
                          geomean_fid=geomean([v for _, v, _ in pairs]), geomean_ref=geomean([r for _, _, r in pairs]),
                          geomean_ratio=geomean([v / r for _, v, r in pairs])))
    means = [row["geomean_fid"] for row in table]
    return dict(config=name, reference=ref, seeds=[s for s, _, _ in runs], points=table,
                points_within=within, points_total=total, seeds_within_everywhere=seeds_every,
                geomean_falls=bool(len(means) > 1 and all(b < a for a, b in zip(means, means[1:]))))


def markdown(summaries, ratio):
    lines = ["| config | kimg | fid per seed | reference per seed | geomean fid / ref | geomean ratio |",
             "| --- | --- | --- | --- | --- | --- |"]
    for s in summaries:
        for row in s["points"]:
            lines.append("| %s | %g | %s | %s | %.0f / %.0f | %.2f |" % (
                s["config"], row["kimg"], ", ".join("%.0f" % v for v in row["fid"]),
                ", ".join("%.0f" % v for v in row["ref"]), row["geomean_fid"], row["geomean_ref"],
                row["geomean_ratio"]))
        lines.append("| %s | | points at most %gx %s: %d of %d; every point on seeds %s | | geomean falls: %s | |"
                     % (s["config"], ratio, s["reference"], s["points_within"], s["points_total"],
                        ", ".join(map(str, s["seeds_within_everywhere"])) or "none", s["geomean_falls"]))
    return "\n".join(lines)


def plot_geomeans(summaries, path):
    """Panels through bench/quality.py's plot: the geometric-mean fid_scenes of each configuration
    and of the reference, then each seed's curves."""
    seeds = sorted({seed for s in summaries for seed in s["seeds"]}, key=str)
    configs = {}

    def add(name, rows, key_all, key_seed):
        points = configs.setdefault(name, dict(points=[]))["points"]
        for r in rows:
            pt = dict(kimg=r["kimg"], fid_geomean=r[key_all])
            pt.update({"fid_%s" % seed: v for seed, v in zip(r["seeds"], r[key_seed])})
            points.append(pt)

    for s in summaries:
        add(s["config"], s["points"], "geomean_fid", "fid")
        if s["reference"] not in configs:
            add(s["reference"], s["points"], "geomean_ref", "ref")
    curves = [("fid_geomean", "fid_scenes, geometric mean over seeds (log)", True)] + [
        ("fid_%s" % seed, "fid_scenes, seed %s (log)" % seed, True) for seed in seeds]
    quality.plot(dict(configs=configs), path, curves=curves)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="PATH[:OLD=NEW,...]",
                        help="bench/quality.py --out folders (or their quality.json); runs of one seed are merged")
    parser.add_argument("--configs", default="gansformer", help="comma-separated configurations to summarize")
    parser.add_argument("--ref", default="stylegan2", help="the configuration each is compared with, seed by seed")
    parser.add_argument("--ratio", type=float, default=0.8, help="a point counts when fid <= ratio x the reference's")
    parser.add_argument("--from-kimg", type=float, default=0.0, help="leave out points before this kimg")
    parser.add_argument("--png", default=None, help="draw the geometric-mean curves here")
    args = parser.parse_args(argv)
    if not (np.isfinite(args.ratio) and args.ratio > 0):
        raise SystemExit("--ratio: %r is not a positive number" % args.ratio)
    if args.png and os.path.isdir(args.png):
        raise SystemExit("--png %s: is a folder; give the PNG's file name" % args.png)
    seeds = merge_seeds([load_seed(p) for p in args.runs])
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    missing = [n for n in names + [args.ref] if not any(n in curves for _, curves in seeds)]
    if missing:
        raise SystemExit("--configs/--ref: %s in none of the runs" % ", ".join(missing))
    summaries = [aggregate(seeds, n, args.ref, args.ratio, args.from_kimg) for n in names]
    if args.png:
        plot_geomeans(summaries, args.png)
    print(markdown(summaries, args.ratio))
    print(json.dumps(dict(benchmark="quality_seeds", ratio=args.ratio, summaries=summaries), indent=1))


if __name__ == "__main__":
    sys.exit(main())
