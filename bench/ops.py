"""Throughput of the custom ops' 'ref' implementation (pure TF) on CPU for the layer shapes of a
256x256 generator / discriminator (REFERENCE.md 1.1: C(res) = min(16384 // 2^(log2(res)-1), 512)).

Per resolution 4..256: fused_bias_act (lrelu) on [B, C, res, res]; upsample_conv_2d 3x3 from
[B, C(res/2), res/2, res/2] to C(res); upsample_2d of RGB [B, 3, res/2, res/2]; and, as in D,
downsample_2d of [B, C, res, res] and conv_downsample_2d 3x3 to C(res/2).
Prints one JSON object. --smoke: resolutions 4..16, batch 1, one timed run.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np
import tensorflow.compat.v1 as tf

import dnnlib.tflib as tflib
from dnnlib.tflib.ops.fused_bias_act import fused_bias_act
from dnnlib.tflib.ops.upfirdn_2d import conv_downsample_2d, downsample_2d, upsample_2d, upsample_conv_2d

FIR = [1, 3, 3, 1]


def channels(res):
    return min(16384 // 2 ** (int(np.log2(res)) - 1), 512)


def build_cases(resolutions, batch):
    """[(res, op name, input shape, output tensor)] on random inputs held in variables."""
    rng = np.random.RandomState(0)

    def var(shape):
        return tf.Variable(rng.randn(*shape).astype(np.float32), trainable=False)

    cases = []
    for res in resolutions:
        c = channels(res)
        x = var([batch, c, res, res])
        cases.append((res, "fused_bias_act_lrelu", x, fused_bias_act(x, var([c]), act="lrelu", impl="ref")))
        cases.append((res, "downsample_2d", x, downsample_2d(x, FIR, impl="ref")))
        if res >= 8:
            c_in = channels(res // 2)
            xl = var([batch, c_in, res // 2, res // 2])
            w = var([3, 3, c_in, c])
            cases.append((res, "upsample_conv_2d_3x3", xl, upsample_conv_2d(xl, w, FIR, impl="ref")))
            rgb = var([batch, 3, res // 2, res // 2])
            cases.append((res, "upsample_2d_rgb", rgb, upsample_2d(rgb, FIR, impl="ref")))
            wd = var([3, 3, c, channels(res // 2)])
            cases.append((res, "conv_downsample_2d_3x3", x, conv_downsample_2d(x, wd, FIR, impl="ref")))
    return cases


def time_op(sess, op, min_runs, min_seconds):
    sess.run(op.op)  # warm-up
    times = []
    start = time.time()
    while len(times) < min_runs or (time.time() - start < min_seconds and len(times) < 50):
        t0 = time.perf_counter()
        sess.run(op.op)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), len(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny, fast run (CI)")
    parser.add_argument("--batch", type=int, default=2, help="minibatch size (default 2)")
    parser.add_argument("--max-res", type=int, default=256, help="largest resolution (default 256)")
    args = parser.parse_args()
    if args.smoke:
        resolutions, batch, min_runs, min_seconds = [4, 8, 16], 1, 1, 0.0
    else:
        resolutions = [2 ** r for r in range(2, int(np.log2(args.max_res)) + 1)]
        batch, min_runs, min_seconds = args.batch, 3, 1.0

    tflib.init_tf({"device_count": {"GPU": 0}})
    cases = build_cases(resolutions, batch)
    sess = tf.get_default_session()
    sess.run(tf.global_variables_initializer())
    results = []
    t_start = time.time()
    for res, name, x, y in cases:
        seconds, runs = time_op(sess, y, min_runs, min_seconds)
        results.append(dict(res=res, op=name, input="x".join(map(str, x.shape.as_list())),
                            output="x".join(map(str, y.shape.as_list())),
                            ms=round(seconds * 1e3, 3), images_per_s=round(batch / seconds, 2),
                            mb_out_per_s=round(int(np.prod(y.shape.as_list())) * 4 / seconds / 1e6, 1), runs=runs))
    print(json.dumps(dict(bench="ops_ref_cpu", tf=tf.version.VERSION, impl="ref", batch=batch, smoke=args.smoke,
                          cpu_threads=os.cpu_count(), total_s=round(time.time() - t_start, 1),
                          results=results), indent=1))


if __name__ == "__main__":
    main()
