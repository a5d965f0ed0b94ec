#!/usr/bin/env python
"""Dataset benchmark: conversion and reader throughput at 64x64 and 256x256, raw and compact
storage, and the peak RSS of a conversion at two image counts (streaming => about equal).
Prints one JSON object. --smoke runs a tiny version fast.

  conversion: create_scenes (render + write) and create_from_npy (write only) images/s
  reader:     TFRecordDataset minibatches of 32 (shuffle + prefetch on, 2 threads) images/s,
              after warm-up, median of repeats
  rss:        peak resident memory (MiB) of a fresh `create_scenes` / `create_from_npy` process"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _quiet(fn, *args, **kwargs):
    import contextlib
    import io
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kwargs)


def bench_conversion(tmp, res, n, storage):
    from training.data.scenes import create_scenes, render_scenes
    import dataset_tool
    out = os.path.join(tmp, "scenes%d%s" % (res, storage))
    t = time.time()
    create_scenes(out, num_images=n, resolution=res, storage=storage, verbose=False)
    scenes_ips = n / (time.time() - t)
    npy = os.path.join(tmp, "x%d.npy" % res)
    if not os.path.exists(npy):
        np.save(npy, render_scenes(n, res, seed=0)[0])
    t = time.time()
    rc = _quiet(dataset_tool.main, ["create_from_npy", os.path.join(tmp, "npy%d%s" % (res, storage)), npy,
                                    "--storage", storage])
    assert rc == 0
    npy_ips = n / (time.time() - t)
    return out, dict(create_scenes_images_per_s=round(scenes_ips, 1), create_from_npy_images_per_s=round(npy_ips, 1))


def bench_reader(path, batches, repeats):
    import dnnlib.tflib as tflib
    import tensorflow.compat.v1 as tf
    from training.dataset import TFRecordDataset
    with tf.Graph().as_default(), tflib.create_session().as_default():
        ds = TFRecordDataset(path, max_label_size="full", shuffle_mb=64, prefetch_mb=64, num_threads=2)
        ds.configure(32)
        batch = ds.get_minibatch_tf()
        for _ in range(3):
            tflib.run(batch)
        times = []
        for _ in range(repeats):
            t = time.time()
            for _ in range(batches):
                tflib.run(batch)
            times.append(time.time() - t)
    return round(32 * batches / float(np.median(times)), 1)


def peak_rss_mib(command_args):
    """Peak RSS (MiB) of a fresh python process running dataset_tool.py with these arguments.

    Read as VmHWM from /proc: unlike ru_maxrss, which Linux carries across fork+exec, it
    belongs to the new process image only, so the (large) benchmark parent does not leak in."""
    code = ("import sys, runpy; sys.argv = ['dataset_tool.py'] + %r; sys.path.insert(0, %r)\n"
            "try:\n runpy.run_path(%r, run_name='__main__')\nexcept SystemExit:\n pass\n"
            "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])"
            % (command_args, REPO, os.path.join(REPO, "dataset_tool.py")))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return round(int(out.strip().splitlines()[-1]) / 1024, 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, no RSS measurement, well under a minute")
    parser.add_argument("--no-rss", action="store_true", help="skip the peak-RSS measurement")
    args = parser.parse_args()
    sizes = {64: 200, 256: 40} if args.smoke else {64: 4000, 256: 400}
    batches, repeats = (5, 2) if args.smoke else (40, 3)
    import tensorflow.compat.v1  # noqa: F401  Import once up front, so no timing includes it.
    tmp = tempfile.mkdtemp(prefix="bench_dataset_")
    result = dict(machine=dict(cpus=os.cpu_count()), conversion={}, reader={})
    try:
        for res, n in sizes.items():
            for storage in ("raw", "compact"):
                path, conv = bench_conversion(tmp, res, n, storage)
                result["conversion"]["%dx%d_%s" % (res, res, storage)] = dict(conv, images=n)
                result["reader"]["%dx%d_%s" % (res, res, storage)] = bench_reader(path, batches, repeats)
        if not args.no_rss and not args.smoke:  # Each measurement starts a fresh TF process (~10 s).
            counts = (1000, 20000)
            rss = {}
            for n in counts:
                out = os.path.join(tmp, "rss%d" % n)
                rss["create_scenes_%d" % n] = peak_rss_mib(["create_scenes", out, "--num-images", str(n)])
                from training.data.scenes import render_scenes
                npy = os.path.join(tmp, "rss%d.npy" % n)
                np.save(npy, np.concatenate([render_scenes(min(1000, n - i), 64, seed=[0, i])[0]
                                             for i in range(0, n, 1000)]))
                rss["create_from_npy_%d" % n] = peak_rss_mib(["create_from_npy", out + "npy", npy])
            result["peak_rss_mib_64x64"] = rss
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result["units"] = "images/s; MiB"
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
