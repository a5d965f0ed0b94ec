"""G forward time and peak memory versus resolution: TransGAN with grid self-attention,
TransGAN with full attention at every stage, and the GANsformer (bipartite attention), on CPU.

Each (model, resolution) runs in a fresh subprocess so its peak resident memory (VmHWM) is its
own. The TransGAN configuration is fixed and narrow so every resolution fits: bottom 8x8 tokens
of width 64, bicubic upsampling at constant width up to the last two stages, then two pixel
shuffles (64 -> 16 -> 4), one block per stage, 2 heads, windows of 8 wherever the grid is wider
than 8 (grid) or never (full). The GANsformer is the `gansformer` preset with channel_base 2048,
channel_max 64, k = 8. Time per output pixel against pixels gives a log-log slope: about 0 for a
cost linear in pixels (grid attention), about 1 for a quadratic one (full attention).

    python bench/transgan_scaling.py                   # 32..256 (full attention up to 128)
    python bench/transgan_scaling.py --smoke           # 16 and 32, one repetition
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = ("transgan_grid", "transgan_full", "gansformer")


def model_kwargs(model, res):
    from training import options
    if model == "gansformer":
        gkw, _ = options.resolve_model("gansformer", resolution=res, channel_base=2048, channel_max=64,
                                       components_num=8, latent_size=128, mapping_ltnt2ltnt=False)
        return "training.networks.Generator", gkw
    ups = int(np.log2(res // 8))
    gkw, _ = options.resolve_model("TransGAN", resolution=res, latent_size=64, embed_dim=64, depths=[1], num_heads=2,
                                   window_size=8, grid_above=8 if model == "transgan_grid" else 1 << 20,
                                   bicubic_stages=max(ups - 2, 0))
    return "training.networks_transgan.Generator", gkw


def child(model, res, batch, reps, threads):
    """Runs in the subprocess: build, warm up, time; print one JSON line."""
    import time
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow.compat.v1 as tf
    import dnnlib.tflib as tflib
    func, gkw = model_kwargs(model, res)
    tflib.init_tf({"intra_op_parallelism_threads": threads, "inter_op_parallelism_threads": 1})
    G = tflib.Network("G", func_name=func, num_channels=3, **gkw)
    z = tf.random_normal([batch] + G.input_shape[1:])
    out = G.get_output_for(z, tf.zeros([batch, 0]), is_validation=True, return_as_list=True)[0]
    tflib.init_uninitialized_vars()
    tflib.run(out)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        tflib.run(out)
        times.append(time.perf_counter() - start)
    peak = 0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    print(json.dumps(dict(model=model, resolution=res, batch=batch, forward_s=float(np.median(times)),
                          s_per_megapixel=float(np.median(times)) / (batch * res * res / 1e6), peak_rss_mb=peak)))


def slope(rows):
    """Log-log slope of time per pixel against pixels (0: linear cost, 1: quadratic)."""
    if len(rows) < 2:
        return None
    x = np.log([r["resolution"] ** 2 for r in rows])
    y = np.log([r["s_per_megapixel"] for r in rows])
    return float(np.polyfit(x, y, 1)[0])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--res", default="32,64,128,256")
    parser.add_argument("--full-max", type=int, default=128, help="largest resolution for full attention")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child[0], int(args.child[1]), args.batch, args.reps, args.threads)
    if args.smoke:
        args.res, args.reps, args.batch = "16,32", 1, 1
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
    results = {m: [] for m in MODELS}
    for model in MODELS:
        for res in [int(r) for r in args.res.split(",")]:
            if model == "transgan_full" and res > args.full_max:
                continue
            done = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", model, str(res),
                                   "--batch", str(args.batch), "--reps", str(args.reps), "--threads", str(args.threads)],
                                  cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            if done.returncode:
                results[model].append(dict(resolution=res, error=done.stderr.strip().splitlines()[-1:]))
                continue
            results[model].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(done.stdout.strip(), file=sys.stderr, flush=True)
    ok = {m: [r for r in rows if "error" not in r] for m, rows in results.items()}
    print(json.dumps(dict(benchmark="transgan_scaling", batch=args.batch, threads=args.threads, smoke=args.smoke,
                          loglog_slope_time_per_pixel={m: slope(rows) for m, rows in ok.items()},
                          results=results), indent=2))


if __name__ == "__main__":
    main()
