"""GANsformer2's execution stage (layout -> image) learning on the embedded scenes: the stage with
and without semantic matching, and the unconditional GANsformer (the main job), each trained
the same kimg with the same seed through run_training.py, then evaluated on held-out layouts
(a scenes set of another seed): miou_scenes (the shipped segmenter's categories on the fakes
against their source layouts), fid_scenes and div_scenes. Point 0 is each run after one
minibatch (an untrained network: the chance level of miou_scenes). Writes learn_layout.json and
grid.png (rows: a held-out layout, then images of it from four seeds) per layout configuration.

    python bench/learn_layout.py --kimg 8                 # ~ 15-20 minutes on 2 cores
    python bench/learn_layout.py --configs gansformer2 --kimg 2 --num-images 256

Rerun the same command to continue: trained runs resume, evaluated points are kept."""

import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import quality  # noqa: E402  (bench/quality.py: train, speed, json helpers)

SEGMENTER = os.path.join(REPO, "metrics", "data", "scenes_segmenter.pkl")
CONFIGS = {
    "gansformer2": ["--gansformer2", "execution", "--semantic-weight", "1", "--segmenter", SEGMENTER],
    "gansformer2-nosem": ["--gansformer2", "execution", "--semantic-weight", "0"],
    "gansformer": [],
}
HELDOUT = "scenes_heldout"


def ensure_heldout(data_dir, num_images=2000, seed=456):
    """Held-out scenes with layouts (a seed unlike the training set's 123)."""
    path = os.path.join(data_dir, HELDOUT)
    if not os.path.isdir(path):
        from training.data.scenes import create_scenes
        create_scenes(path, num_images=num_images, resolution=64, seed=seed, verbose=False)
    return path


def evaluate(pkl, data_dir, num_images, seed, layouts):
    from metrics import metric_base
    common = dict(data_dir=data_dir, dataset_args=dict(tfrecord_dir=HELDOUT), tf_config={"rnd.tf_random_seed": seed})
    names = "fid_scenes,miou_scenes,div_scenes" if layouts else "fid_scenes"
    values = metric_base.evaluate_metrics(names, pkl, num_images=num_images, **common)
    return values


def picture(pkl, data_dir, out_dir, seeds="0-3", count=6):
    """grid.png of run_generator.py layout-to-image on held-out layouts."""
    cmd = [sys.executable, os.path.join(REPO, "run_generator.py"), "layout-to-image", "--network", pkl,
           "--layouts", os.path.join(data_dir, HELDOUT), "--count", str(count), "--seeds", seeds,
           "--truncation-psi", "1", "--outdir", out_dir]
    subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return os.path.join(out_dir, "grid.png")


def run_config(name, flags, args):
    """Points {0, kimg} of one configuration (resumable through its points.json)."""
    from training import snapshot
    folder = os.path.join(args.out, name)
    os.makedirs(folder, exist_ok=True)
    state_path = os.path.join(folder, "points.json")
    state = quality.read_json(state_path, dict(flags=flags, points={}))
    layouts = name.startswith("gansformer2")
    log_path = os.path.join(folder, "train.log")
    for kimg, result_dir in ((0, os.path.join(folder, "init")), (args.kimg, folder)):
        key = "%g" % kimg
        if key in state["points"]:
            continue
        quality.log("%s: training to %s kimg ..." % (name, key))
        run_dir = quality.train(flags, result_dir, args.data_dir, kimg or 0.016, args.every, args.seed, log_path)
        pkl = snapshot.list_snapshots(run_dir)[-1][1]
        start = time.time()
        point = dict(network=pkl, **evaluate(pkl, args.data_dir, args.num_images, args.seed, layouts))
        point["eval_sec"] = round(time.time() - start, 1)
        if kimg:
            point["sec_per_kimg"] = quality.speed(run_dir)
            if layouts:
                point["grid"] = picture(pkl, args.data_dir, os.path.join(folder, "layout-to-image"))
        state["points"][key] = point
        quality.write_json(state_path, state)
        quality.log("%s kimg %s: %s" % (name, key, {k: v for k, v in point.items() if isinstance(v, float)}))
    return state


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated names of " + ", ".join(CONFIGS))
    parser.add_argument("--kimg", type=float, default=8)
    parser.add_argument("--every", type=int, default=4, help="snapshot every this many kimg")
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--num-images", type=int, default=1000, help="fakes (and held-out reals) per metric")
    parser.add_argument("--data-dir", default=os.path.join(REPO, "datasets"))
    parser.add_argument("--out", default=os.path.join(REPO, "results", "learn_layout"))
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        raise SystemExit("--configs: unknown %s; choose from %s" % (", ".join(unknown), ", ".join(CONFIGS)))
    ensure_heldout(args.data_dir)
    results = {name: run_config(name, CONFIGS[name], args)["points"] for name in names}
    out = dict(benchmark="learn_layout", kimg=args.kimg, seed=args.seed, num_images=args.num_images,
               heldout=HELDOUT, results=results)
    quality.write_json(os.path.join(args.out, "learn_layout.json"), out)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
