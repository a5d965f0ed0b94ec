"""Does it learn? Trains the GANsformer main job, the StyleGAN2 and TransGAN baselines on the embedded
scenes for the same kimg (through run_training.py) and prints JSON with the losses per tick
and image statistics of each fakes grid over time, next to the same statistics of the reals.

Image statistics use how the scenes are drawn (training/data/scenes.py): background channels stay
at or below 110 and every object colour has a channel >= 170, so a pixel is an object pixel
when its brightest channel is >= 140; objects per image = connected object regions.

    python bench/learn.py --kimg 20            # the three presets, ~20 kimg each (not in CI: long)
    python bench/learn.py --kimg 4 --metrics fid_scenes   # with the scene FID at the end
    python bench/learn.py --smoke              # 1 kimg each, a quick end-to-end check
"""

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image
from scipy import ndimage

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRESETS = {"gansformer": [], "stylegan2": ["--baseline", "StyleGAN2"], "transgan": ["--baseline", "TransGAN"]}
TICK_RE = re.compile(r"^tick\s+(\d+)\s+kimg\s+([\d.]+).*?sec/kimg\s+([\d.]+)(.*?)host")


def grid_cells(path, cell):
    """A grid PNG cut into [N, cell, cell, 3] images."""
    img = np.asarray(Image.open(path).convert("RGB"))
    rows, cols = img.shape[0] // cell, img.shape[1] // cell
    return np.stack([img[r * cell:(r + 1) * cell, c * cell:(c + 1) * cell] for r in range(rows) for c in range(cols)])


def image_stats(images):
    """Statistics of uint8 [N, H, W, 3] scenes."""
    obj = images.max(axis=3) >= 140
    counts = [ndimage.label(m)[1] for m in obj]
    return dict(object_pixel_fraction=float(obj.mean()), objects_per_image=float(np.mean(counts)),
                mean_rgb=[float(x) for x in images.reshape(-1, 3).mean(axis=0)],
                pixel_std=float(images.std()))


def parse_ticks(log_text):
    ticks = []
    for line in log_text.splitlines():
        m = TICK_RE.search(line)
        if m:
            losses = dict(re.findall(r"(\w+_\w+)\s+(-?[\d.eE+-]+)", m.group(4)))
            ticks.append(dict(tick=int(m.group(1)), kimg=float(m.group(2)), sec_per_kimg=float(m.group(3)),
                              **{k: float(v) for k, v in losses.items()}))
    return ticks


def train(preset, kimg, data_dir, result_dir, res, metrics=""):
    cmd = [sys.executable, os.path.join(REPO, "run_training.py"), "--data-dir", data_dir, "--result-dir", result_dir,
           "--total-kimg", str(kimg), "--restart", "--resolution", str(res)] + PRESETS[preset]
    if metrics:   # evaluated at the last snapshot only
        cmd += ["--metrics", metrics, "--snapshot-ticks", str(max(int(kimg), 1))]
    subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    run_dir = sorted(glob.glob(os.path.join(result_dir, "*")), key=os.path.getmtime)[-1]
    with open(os.path.join(run_dir, "log.txt")) as f:
        ticks = parse_ticks(f.read())
    snaps = []
    for path in sorted(glob.glob(os.path.join(run_dir, "fakes*.png"))):
        tag = os.path.basename(path)[5:-4]
        snaps.append(dict(kimg=0 if tag == "init" else int(tag), **image_stats(grid_cells(path, res))))
    reals = image_stats(grid_cells(os.path.join(run_dir, "reals.png"), res))
    scores = {}
    for path in glob.glob(os.path.join(run_dir, "metric-*.txt")):
        with open(path) as f:
            scores[os.path.basename(path)[7:-4]] = f.read().strip().splitlines()
    return dict(preset=preset, run_dir=run_dir, ticks=ticks, fakes=sorted(snaps, key=lambda s: s["kimg"]), reals=reals,
                metrics=scores)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kimg", type=float, default=20)
    parser.add_argument("--presets", default="gansformer,stylegan2,transgan")
    parser.add_argument("--metrics", default="", help="e.g. fid_scenes: evaluated at the end of each run")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--data-dir", default=os.path.join(REPO, "datasets"))
    parser.add_argument("--result-dir", default=None, help="default: a temporary folder")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.kimg = 1
    result_dir = args.result_dir or tempfile.mkdtemp(prefix="learn-")
    out = [train(p, args.kimg, args.data_dir, os.path.join(result_dir, p), args.resolution, args.metrics)
           for p in args.presets.split(",")]
    print(json.dumps(dict(benchmark="learn", kimg=args.kimg, resolution=args.resolution, runs=out), indent=2))


if __name__ == "__main__":
    main()
