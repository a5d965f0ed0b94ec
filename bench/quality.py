"""Model quality on the embedded scenes: named configurations trained side by side (same data,
seed and kimg, through run_training.py), each snapshot evaluated with fid_scenes, pr_scenes and
attn_scenes plus the fakes' object statistics; writes quality.json and quality.png (the curves,
drawn with PIL) and keeps every point's fakes<kimg>.png / attention<kimg>.png in the run dirs
(samples-<kimg>.png: their first rows, side by side).

    python bench/quality.py --kimg 12 --every 4          # gansformer, stylegan2, simplex, duplex
    python bench/quality.py --configs gansformer,stylegan2 --kimg 40 --every 4 --out results/quality
    python bench/quality.py --config lr1e3="--g-lr 0.001 --d-lr 0.001" --configs gansformer,lr1e3
    python bench/quality.py --smoke                      # one tiny GANsformer for one minibatch, ~30 s

Rerun the same command to continue (Ctrl-C, kill): each configuration resumes from its last
snapshot and evaluated points are kept; a larger --kimg extends the curves. Point 0 is a copy of
the run after one minibatch (its own throwaway run; --no-init skips it). --round-kimg R trains all
configurations R kimg at a time, so their curves grow together (each round restarts the runs).

Object statistics use how the scenes are drawn (metrics/attention_structure.object_segments):
object_fraction = share of object pixels, objects = distinct object colours per image.
"""

import argparse
import glob
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

CONFIGS = {
    "gansformer": [],                                   # the main job (run_training.py defaults)
    "stylegan2": ["--baseline", "StyleGAN2"],           # same recipe row: 32x32, 64 channels, batch 16
    "simplex": ["--gansformer", "simplex"],
    "duplex": ["--gansformer", "duplex"],
}
# --smoke: the GANsformer at 16x16 with 16 channels and 2 region latents (the recipe's other columns stay).
SMOKE_FLAGS = ["--resolution", "16", "--channel-max", "16", "--d-channel-max", "16", "--components-num", "2",
               "--latent-size", "16", "--mapping-num-layers", "1"]
CURVES = [("fid_scenes", "fid_scenes (log)", True), ("pr_scenes_precision", "precision", False),
          ("pr_scenes_recall", "recall", False), ("object_fraction", "object pixel fraction (reals dashed)", False),
          ("attn_scenes_ari", "attention ARI", False), ("attn_scenes_fgari", "attention FG-ARI", False),
          ("attn_scenes_maxprob", "attention max prob", False), ("fid_scenes_G", "fid_scenes of G, no EMA (log)", True)]
TICK_RE = re.compile(r"^tick\s+\d+\s+kimg\s+([\d.]+).*?sec/kimg\s+([\d.]+)(.*?)host")


def log(text):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), text), flush=True)


def write_json(path, value):
    from dnnlib.util import atomic_write
    atomic_write(path, lambda f: json.dump(value, f, indent=1, sort_keys=True), mode="w")


def read_json(path, default):
    if not os.path.isfile(path):
        return default
    with open(path) as f:
        return json.load(f)

# ------------------------------------------------------------------------------------------
# Training, through run_training.py (one process per call: a fresh graph; resume is its own).


def train(flags, result_dir, data_dir, total_kimg, every, seed, log_path):
    """Train (or continue) the run of `flags` in result_dir to total_kimg; its run dir."""
    cmd = [sys.executable, os.path.join(REPO, "run_training.py"), "--data-dir", data_dir, "--result-dir", result_dir,
           "--total-kimg", "%g" % total_kimg, "--kimg-per-tick", "1", "--snapshot-ticks", str(every),
           "--keep-snapshots", "0", "--seed", str(seed)] + list(flags)
    with open(log_path, "a") as out:
        out.write("\n$ %s\n" % " ".join(shlex.quote(c) for c in cmd))
        out.flush()
        proc = subprocess.run(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        with open(log_path) as f:
            tail = f.read().strip().splitlines()[-5:]
        raise SystemExit("training failed (exit %d), see %s:\n  %s" % (proc.returncode, log_path, "\n  ".join(tail)))
    runs = sorted(d for d in glob.glob(os.path.join(result_dir, "[0-9]*-*")) if os.path.isdir(d))
    return max(runs, key=lambda d: max([os.path.getmtime(p) for p in glob.glob(os.path.join(d, "*"))] + [0]))


def ticks(run_dir):
    """[{kimg, sec_per_kimg, G_loss, D_loss, ...}] of the run's tick lines (log.txt)."""
    path = os.path.join(run_dir, "log.txt")
    if not os.path.isfile(path):
        return []
    out = {}
    with open(path) as f:
        for m in map(TICK_RE.search, f):
            if m:
                losses = {k: float(v) for k, v in re.findall(r"(\w+_\w+)\s+(-?[\d.eE+-]+)", m.group(3))}
                out[float(m.group(1))] = dict(kimg=float(m.group(1)), sec_per_kimg=float(m.group(2)), **losses)
    return [out[k] for k in sorted(out)]   # a resumed tick logged twice counts once


def speed(run_dir):
    """Median sec/kimg over the run's full ticks (None before the first)."""
    values = [t["sec_per_kimg"] for t in ticks(run_dir) if t["kimg"] >= 1]
    return float(np.median(values)) if values else None


def losses_since(run_dir, lo, hi):
    """Mean G_loss, D_loss, D_reg over the ticks in (lo, hi] kimg."""
    sel = [t for t in ticks(run_dir) if lo < t["kimg"] <= hi + 0.5]
    return {k: float(np.mean([t[k] for t in sel if k in t])) for k in ("G_loss", "D_loss", "D_reg")
            if any(k in t for t in sel)}

# ------------------------------------------------------------------------------------------
# Evaluation of one snapshot.


def evaluate(pkl, run_dir, data_dir, num_images, attn_images, seed, has_attention, eval_g=False):
    """{name: value} of fid_scenes, pr_scenes, attn_scenes (when the model has maps) and the
    object statistics of 256 fakes; with eval_g also fid_scenes_G and attn_scenes_*_G, of the
    raw G (no moving average) of the same snapshot."""
    from dnnlib.util import UserError
    from metrics import metric_base
    common = dict(run_dir=run_dir, data_dir=data_dir, dataset_args=dict(tfrecord_dir="scenes"),
                  tf_config={"rnd.tf_random_seed": seed})   # the same latents at every point
    values = metric_base.evaluate_metrics("fid_scenes,pr_scenes", pkl, num_images=num_images, **common)
    if has_attention:
        try:
            values.update(metric_base.evaluate_metrics("attn_scenes", pkl, num_images=attn_images, **common))
        except UserError as err:
            if "no attention maps" not in str(err):
                raise
    values.update(fake_object_stats(pkl, seed))
    if eval_g:
        import dnnlib.tflib as tflib
        import tensorflow.compat.v1 as tf
        from training import misc
        raw = os.path.join(run_dir, ".raw-G.pkl")
        with tf.Graph().as_default(), tflib.create_session().as_default():
            G, D, _Gs = misc.load_network_pkl(pkl)
            misc.save_pkl((G, D, G), raw)
        try:
            raw_values = metric_base.evaluate_metrics("fid_scenes", raw, num_images=num_images,
                                                      **dict(common, run_dir=None))
            if "attn_scenes_maxprob" in values:
                raw_values.update(metric_base.evaluate_metrics("attn_scenes", raw, num_images=attn_images,
                                                               **dict(common, run_dir=None)))
        finally:
            os.remove(raw)
        values.update({name + "_G": value for name, value in raw_values.items()})
    return values


def object_stats(images_u8):
    from metrics.attention_structure import object_segments
    segments = object_segments(images_u8)
    return dict(object_fraction=float((segments > 0).mean()),
                objects=float(np.mean([len(np.unique(s[s > 0])) for s in segments])),
                brightness=float(images_u8.mean()))


def fake_object_stats(pkl, seed, num=256):
    import dnnlib.tflib as tflib
    import tensorflow.compat.v1 as tf
    from training import misc
    with tf.Graph().as_default(), tflib.create_session().as_default():
        _G, _D, Gs = misc.load_network_pkl(pkl)
        z = np.random.RandomState(seed).randn(num, *Gs.input_shape[1:]).astype(np.float32)
        images = Gs.run(z, np.zeros([num, 0], np.float32), is_validation=True, minibatch_size=64,
                        return_as_list=True)[0]
    return object_stats(np.rint(np.clip(images * 127.5 + 127.5, 0, 255)).astype(np.uint8))


def real_object_stats(data_dir, resolution, num=256):
    import dnnlib.tflib as tflib
    import tensorflow.compat.v1 as tf
    from training import dataset
    with tf.Graph().as_default(), tflib.create_session().as_default():
        data = dataset.load_dataset(data_dir=data_dir, tfrecord_dir="scenes", resolution=resolution, shuffle_mb=0,
                                    prefetch_mb=0, max_label_size=0, verbose=False)
        images, _ = data.get_minibatch_np(num)
        data.close()
    return object_stats(np.asarray(images))

# ------------------------------------------------------------------------------------------
# The curves (PIL).


def plot(results, path, panel=(300, 200), curves=CURVES):
    """One panel per (key, title, log_y) of curves, a line per configuration of results."""
    from PIL import Image, ImageDraw, ImageFont
    font = ImageFont.load_default()
    colours = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189), (140, 86, 75),
               (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]
    names = sorted(results["configs"])
    cols, rows = 4, (len(curves) + 3) // 4
    legend_h = 16 * ((len(names) + 3) // 4) + 8
    img = Image.new("RGB", (cols * panel[0], rows * panel[1] + legend_h), "white")
    draw = ImageDraw.Draw(img)
    for i, name in enumerate(names):
        x, y = 10 + (i % 4) * (img.width // 4), 6 + 16 * (i // 4)
        draw.line([x, y + 6, x + 20, y + 6], fill=colours[i % len(colours)], width=3)
        draw.text((x + 26, y), name, fill="black", font=font)
    reals = results.get("reals", {})
    for p, (key, title, log_y) in enumerate(curves):
        ox, oy = (p % cols) * panel[0], legend_h + (p // cols) * panel[1]
        left, top, right, bottom = ox + 60, oy + 18, ox + panel[0] - 12, oy + panel[1] - 26
        draw.text((ox + 60, oy + 3), title, fill="black", font=font)
        series = {n: [(pt["kimg"], pt[key]) for pt in results["configs"][n]["points"]
                      if pt.get(key) is not None and (not log_y or pt[key] > 0)] for n in names}
        values = [v for s in series.values() for _, v in s] + ([reals[key]] if key in reals else [])
        kimgs = [k for s in series.values() for k, _ in s]
        draw.rectangle([left, top, right, bottom], outline=(120, 120, 120))
        if not values:
            continue
        lo, hi = min(values), max(values)
        if log_y:
            lo, hi = np.log10(lo), np.log10(hi)
        if hi - lo < 1e-9:
            lo, hi = lo - 0.5, hi + 0.5
        lo, hi = lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)
        kmax = max(kimgs + [1])
        sx = lambda k: left + (right - left) * k / kmax
        sy = lambda v: bottom - (bottom - top) * ((np.log10(v) if log_y else v) - lo) / (hi - lo)
        for t in np.linspace(lo, hi, 5):
            ty = bottom - (bottom - top) * (t - lo) / (hi - lo)
            draw.line([left - 3, ty, left, ty], fill="black")
            draw.text((ox + 4, ty - 5), "%.3g" % (10 ** t if log_y else t), fill="black", font=font)
        kstep = next(s for s in (1, 2, 4, 5, 10, 20, 25, 50, 100, 200, 500, 1000, 10 ** 9) if kmax / s <= 6)
        for t in range(0, int(kmax) + 1, kstep):
            draw.line([sx(t), bottom, sx(t), bottom + 3], fill="black")
            draw.text((sx(t) - 6, bottom + 5), str(t), fill="black", font=font)
        draw.text((right - 30, bottom + 14), "kimg", fill=(90, 90, 90), font=font)
        if key in reals:   # the reals' value, dashed
            ry = sy(reals[key])
            for x in range(int(left), int(right), 8):
                draw.line([x, ry, min(x + 4, right), ry], fill=(90, 90, 90))
        for i, name in enumerate(names):
            pts = [(sx(k), sy(v)) for k, v in sorted(series[name])]
            colour = colours[i % len(colours)]
            if len(pts) > 1:
                draw.line(pts, fill=colour, width=2)
            for x, y in pts:
                draw.ellipse([x - 2.5, y - 2.5, x + 2.5, y + 2.5], fill=colour)
    from dnnlib.util import atomic_write
    atomic_write(path, lambda f: img.save(f, format="PNG"))


def montage(results, path, kimg, rows=1):
    """The first `rows` rows of each configuration's fakes and attention grids at `kimg`, one
    labelled band per configuration (the grids themselves stay in the run dirs)."""
    from PIL import Image, ImageDraw
    bands = []
    for name in sorted(results["configs"]):
        pt = next((p for p in results["configs"][name]["points"] if p["kimg"] == kimg), None)
        grids = [Image.open(pt[g]).convert("RGB") for g in ("fakes", "attention") if pt and pt.get(g)]
        if not grids:
            continue
        cell = grids[0].height // 4 if grids[0].height % 4 == 0 else grids[0].height   # 8x4 grids by default
        grids = [g.crop((0, 0, g.width, min(cell * rows, g.height))) for g in grids]
        band = Image.new("RGB", (110 + sum(g.width + 6 for g in grids), grids[0].height), "white")
        ImageDraw.Draw(band).text((4, 4), "%s\n%g kimg" % (name, kimg), fill="black")
        x = 110
        for g in grids:
            band.paste(g, (x, 0))
            x += g.width + 6
        bands.append(band)
    if bands:
        img = Image.new("RGB", (max(b.width for b in bands), sum(b.height + 4 for b in bands)), "white")
        y = 0
        for b in bands:
            img.paste(b, (0, y))
            y += b.height + 4
        from dnnlib.util import atomic_write
        atomic_write(path, lambda f: img.save(f, format="PNG"))


def table(results):
    """Markdown table: kimg x configs of fid / precision / recall / ARI / object fraction."""
    names = sorted(results["configs"])
    kimgs = sorted(set(pt["kimg"] for n in names for pt in results["configs"][n]["points"]))
    lines = ["| kimg | " + " | ".join("%s fid / P / R / ari / obj" % n for n in names) + " |",
             "| --- |" + " --- |" * len(names)]
    for k in kimgs:
        cells = []
        for n in names:
            pt = next((p for p in results["configs"][n]["points"] if p["kimg"] == k), None)
            f = lambda key, fmt: (fmt % pt[key]) if pt and pt.get(key) is not None else "-"
            cells.append("%s / %s / %s / %s / %s" % (f("fid_scenes", "%.0f"), f("pr_scenes_precision", "%.2f"),
                                                     f("pr_scenes_recall", "%.2f"), f("attn_scenes_ari", "%.2f"),
                                                     f("object_fraction", "%.2f")))
        lines.append("| %g | %s |" % (k, " | ".join(cells)))
    return "\n".join(lines)

# ------------------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="gansformer,stylegan2,simplex,duplex",
                        help="comma-separated names of CONFIGS or of --config entries")
    parser.add_argument("--config", action="append", default=[], metavar="NAME=FLAGS",
                        help="an extra configuration: run_training.py flags (quoted); repeatable")
    parser.add_argument("--kimg", type=float, default=12, help="training length of every configuration")
    parser.add_argument("--every", type=int, default=4, help="evaluate every this many kimg (snapshot ticks)")
    parser.add_argument("--round-kimg", type=float, default=None, help="train all configs this many kimg at a time")
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--num-images", type=int, default=2000, help="fakes (and reals) for fid/pr_scenes")
    parser.add_argument("--attn-images", type=int, default=500, help="fakes for attn_scenes")
    parser.add_argument("--no-init", action="store_true", help="no kimg-0 point")
    parser.add_argument("--eval-g", action="store_true",
                        help="also fid_scenes and attn_scenes of G without the moving average (<name>_G)")
    parser.add_argument("--data-dir", default=os.path.join(REPO, "datasets"),
                        help="holds scenes/ (made by run_training.py if missing)")
    parser.add_argument("--out", default=os.path.join(REPO, "results", "quality"))
    parser.add_argument("--smoke", action="store_true", help="tiny data, networks and counts (< 1 minute)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    configs = dict(CONFIGS)
    for entry in args.config:
        name, sep, flags = entry.partition("=")
        if not sep or not re.match(r"^[\w.+-]+$", name):
            raise SystemExit("--config %r: expected NAME=FLAGS (NAME letters, digits, ._+-)" % entry)
        configs[name] = shlex.split(flags)
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    unknown = [n for n in names if n not in configs]
    if unknown:
        raise SystemExit("--configs: unknown %s; choose from %s or add --config NAME=FLAGS"
                         % (", ".join(unknown), ", ".join(configs)))
    extra = []
    if args.smoke:
        from training.data.scenes import create_scenes
        if names != ["gansformer"] and args.configs != parse_args([]).configs:
            raise SystemExit("--smoke trains the gansformer configuration only")
        names = ["gansformer"]
        args.out = tempfile.mkdtemp(prefix="quality-smoke-") if args.out == parse_args([]).out else args.out
        args.data_dir = os.path.join(args.out, "datasets")
        if not os.path.isdir(os.path.join(args.data_dir, "scenes")):
            create_scenes(os.path.join(args.data_dir, "scenes"), num_images=128, resolution=16, seed=7, verbose=False)
        args.kimg, args.every, args.no_init, args.num_images, args.attn_images = 0.016, 1, True, 32, 8
        extra = SMOKE_FLAGS
    os.makedirs(args.out, exist_ok=True)
    settings = dict(kimg=args.kimg, every=args.every, seed=args.seed, num_images=args.num_images,
                    attn_images=args.attn_images, data_dir=os.path.abspath(args.data_dir))

    states = {}
    for name in names:
        state_path = os.path.join(args.out, name, "points.json")
        state = read_json(state_path, dict(flags=configs[name] + extra, seed=args.seed, num_images=args.num_images,
                                           attn_images=args.attn_images, points=[], has_attention=True))
        for key, value in (("flags", configs[name] + extra), ("seed", args.seed), ("num_images", args.num_images)):
            if state[key] != value:
                raise SystemExit("%s: %s was %r, now %r; use another --out to compare different settings"
                                 % (state_path, key, state[key], value))
        states[name] = state
        os.makedirs(os.path.join(args.out, name), exist_ok=True)

    def evaluate_new(name, run_dir, only_kimg=None):
        from training import snapshot
        state, path = states[name], os.path.join(args.out, name, "points.json")
        done = {pt["kimg"] for pt in state["points"]}
        for snap_kimg, pkl in snapshot.list_snapshots(run_dir):
            kimg = only_kimg if only_kimg is not None else snap_kimg
            if kimg in done:
                continue
            start = time.time()
            values = evaluate(pkl, run_dir, args.data_dir, args.num_images, args.attn_images, args.seed,
                              state["has_attention"], args.eval_g)
            previous = max([pt["kimg"] for pt in state["points"] if pt["kimg"] < kimg], default=0)
            values.update(losses_since(run_dir, previous, kimg) if only_kimg is None else {})
            state["has_attention"] = "attn_scenes_maxprob" in values
            grids = {g: os.path.join(run_dir, "%s%06d.png" % (g, snap_kimg)) for g in ("fakes", "attention")}
            state["points"].append(dict(kimg=kimg, network=pkl, eval_sec=round(time.time() - start, 1),
                                        **{g: p for g, p in grids.items() if os.path.isfile(p)}, **values))
            state["points"].sort(key=lambda pt: pt["kimg"])
            state["sec_per_kimg"] = speed(run_dir) if only_kimg is None else state.get("sec_per_kimg")
            write_json(path, state)
            log("%-12s kimg %-5g fid_scenes %-8.1f P %.2f R %.2f ari %s objects %.2f (eval %.0f s)"
                % (name, kimg, values["fid_scenes"], values["pr_scenes_precision"], values["pr_scenes_recall"],
                   "%.3f" % values["attn_scenes_ari"] if "attn_scenes_ari" in values else "-",
                   values["object_fraction"], time.time() - start))
            summarize(args, names, states, settings)

    # Point 0: a throwaway run of one minibatch with the same flags and seed.
    for name in names if not args.no_init else []:
        if not any(pt["kimg"] == 0 for pt in states[name]["points"]):
            log("%s: kimg 0 (one minibatch) ..." % name)
            init_dir = os.path.join(args.out, name, "init")
            run_dir = train(states[name]["flags"], init_dir, args.data_dir, 0.016, 1, args.seed,
                            os.path.join(args.out, name, "train.log"))
            evaluate_new(name, run_dir, only_kimg=0)

    step = args.round_kimg or args.kimg
    target = 0.0
    while target < args.kimg:
        target = min(target + step, args.kimg)
        for name in names:
            run_dir = states[name].get("run_dir")
            from training import snapshot
            if run_dir and os.path.isdir(run_dir) and max([k for k, _ in snapshot.list_snapshots(run_dir)],
                                                          default=-1) >= target:
                evaluate_new(name, run_dir)   # trained already (a rerun): only what is not evaluated
                continue
            log("%s: training to %g kimg ..." % (name, target))
            run_dir = train(states[name]["flags"], os.path.join(args.out, name), args.data_dir, target, args.every,
                            args.seed, os.path.join(args.out, name, "train.log"))
            states[name]["run_dir"] = run_dir
            evaluate_new(name, run_dir)
    results = summarize(args, names, states, settings)
    print(table(results))
    print(json.dumps(dict(benchmark="quality", json=os.path.join(args.out, "quality.json"),
                          png=os.path.join(args.out, "quality.png"), smoke=bool(args.smoke)), indent=1))


def summarize(args, names, states, settings):
    """quality.json and quality.png from every configuration's points.json under --out (also
    those of other invocations, so configurations can be trained by separate processes)."""
    configs = {}
    for path in sorted(glob.glob(os.path.join(args.out, "*", "points.json"))):
        configs[os.path.basename(os.path.dirname(path))] = read_json(path, {})
    configs.update({n: states[n] for n in names})
    results_path = os.path.join(args.out, "quality.json")
    reals = read_json(results_path, {}).get("reals")
    if reals is None:
        resolution = next((int(a) for f, a in zip(states[names[0]]["flags"], states[names[0]]["flags"][1:])
                           if f == "--resolution"), 32)
        reals = real_object_stats(args.data_dir, resolution)
    results = dict(benchmark="quality", settings=settings, reals=reals, configs=configs)
    write_json(results_path, results)
    plot(results, os.path.join(args.out, "quality.png"))
    for kimg in sorted(set(pt["kimg"] for c in configs.values() for pt in c.get("points", []))):
        montage(results, os.path.join(args.out, "samples-%06d.png" % kimg), kimg)
    return results


if __name__ == "__main__":
    main()
