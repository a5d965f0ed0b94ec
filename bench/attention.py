#!/usr/bin/env python
"""Attention cost benchmark (CPU). Prints one JSON object. --smoke runs a tiny version fast.

  bipartite: one AttLayer_l2n (image features [B, n*n, C] attend to k latents) as the grid
             grows; SAGAN: one image self-attention layer (AttLayer_n2n) on the same grids.
             Per grid: median forward time (ms) and matmul FLOPs counted from the graph
             (2*m*n*k for every MatMul / BatchMatMul), and flops / pixel.
  generator: forward images/s of G (Gs mode: no dropout, truncation on) per preset at the given
             resolutions and batch, after one warm-up run.

Bipartite attention is O(n^2 * k * C) (linear in pixels); SAGAN is O(n^4 * C) (quadratic)."""

import argparse
import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("DNNLIB_OPS_IMPL", "ref")

import numpy as np  # noqa: E402


def matmul_flops(graph, scope):
    """2*m*n*k summed over the MatMul / BatchMatMul ops under scope (static shapes)."""
    total = 0
    for op in graph.get_operations():
        if not op.name.startswith(scope) or op.type not in ("MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3"):
            continue
        a = op.inputs[0].shape.as_list()
        out = op.outputs[0].shape.as_list()
        transpose_a = op.get_attr("transpose_a") if op.type == "MatMul" else op.get_attr("adj_x")
        inner = a[-2] if transpose_a else a[-1]
        total += 2 * int(np.prod(out)) * inner
    return total


def time_run(sess, fetch, repeats):
    sess.run(fetch)                                   # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        sess.run(fetch)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def bench_layer(kind, grid, k, channels, latent_dim, batch, repeats):
    import tensorflow.compat.v1 as tf
    import dnnlib.tflib as tflib
    from training import networks
    with tf.Graph().as_default() as graph, tflib.create_session().as_default() as sess:
        rnd = np.random.RandomState(0)
        feats = tf.constant(rnd.randn(batch, grid * grid, channels).astype(np.float32))       # [B, F, C]
        with tf.variable_scope("pos"):
            pos = networks.grid_positions(grid, grid, latent_dim)
        with tf.variable_scope("layer"):
            if kind == "bipartite":
                latents = tf.constant(rnd.randn(batch, k, latent_dim).astype(np.float32))    # [B, k, D]
                out, _, _ = networks.attention_layer(feats, latents, channels, "l2n", from_pos=pos)
            else:
                out, _, _ = networks.attention_layer(feats, feats, channels, "n2n", from_pos=pos, to_pos=pos)
        sess.run(tf.global_variables_initializer())
        flops = matmul_flops(graph, "layer/")
        seconds = time_run(sess, out.op, repeats)
    return dict(grid=grid, pixels=grid * grid, ms=round(seconds * 1e3, 3), mflops=round(flops / 1e6, 3),
                flops_per_pixel=round(flops / (grid * grid)))


def bench_generator(preset, resolution, batch, repeats, overrides):
    import tensorflow.compat.v1 as tf
    import dnnlib.tflib as tflib
    from training import networks, options
    over = dict(overrides)
    if preset == "SAGAN":
        over["g_img2img"] = min(5, int(np.log2(resolution)))
    gkw, _ = options.resolve_model(preset, resolution=resolution, **over)
    with tf.Graph().as_default(), tflib.create_session().as_default() as sess:
        G = tflib.Network("G", func_name=networks.Generator, **gkw)
        z = tf.random_normal([batch] + G.input_shape[1:])
        images = G.get_output_for(z, tf.zeros([batch, gkw.get("c_dim", 0)]))[0]
        tflib.init_uninitialized_vars()
        seconds = time_run(sess, images.op, repeats)
    return dict(preset=preset, resolution=resolution, batch=batch, images_per_s=round(batch / seconds, 3))


def linear_fit_ratio(rows):
    """Time per pixel at the largest grid over time per pixel at the second grid (1 = linear)."""
    a, b = rows[1], rows[-1]
    return round((b["ms"] / b["pixels"]) / (a["ms"] / a["pixels"]), 3)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one repeat")
    parser.add_argument("--grids", type=int, nargs="+", default=[8, 16, 32, 64, 128])
    parser.add_argument("--sagan-max-grid", type=int, default=64,
                        help="largest grid timed for SAGAN (its F x F score matrix grows as n^4); FLOPs of larger "
                             "grids are counted by formula")
    parser.add_argument("--k", type=int, default=16, help="latents of the bipartite layer")
    parser.add_argument("--channels", type=int, default=128, help="image feature width C")
    parser.add_argument("--latent-dim", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--resolutions", type=int, nargs="+", default=[32, 256])
    parser.add_argument("--presets", nargs="+", default=None)
    parser.add_argument("--channel-max", type=int, default=512, help="G width cap (512 = official)")
    args = parser.parse_args()
    from training import options
    names = args.presets or [n for n, row in options.PRESETS.items() if row["family"] == "networks"]
    overrides = dict(channel_max=args.channel_max)
    if args.smoke:
        args.grids, args.sagan_max_grid, args.repeats, args.channels, args.batch = [4, 8, 16], 16, 1, 16, 2
        args.resolutions, overrides = [16], dict(channel_base=256, channel_max=16, latent_size=64,
                                                 mapping_num_layers=2)
    result = dict(config=dict(k=args.k, channels=args.channels, latent_dim=args.latent_dim, batch=args.batch,
                              repeats=args.repeats, smoke=args.smoke, generator_overrides=overrides))
    result["bipartite"] = [bench_layer("bipartite", g, args.k, args.channels, args.latent_dim, args.batch, args.repeats)
                           for g in args.grids]
    sagan = [bench_layer("sagan", g, args.k, args.channels, args.latent_dim, args.batch, args.repeats)
             for g in args.grids if g <= args.sagan_max_grid]
    for g in args.grids:
        if g > args.sagan_max_grid:       # Q.K^T and P.V dominate: 2 * 2 * B * F^2 * C, plus the projections
            f = g * g
            flops = 4 * args.batch * f * f * args.channels + 2 * args.batch * f * args.channels * (
                args.channels * 3 + args.latent_dim * 2 + args.channels)
            sagan.append(dict(grid=g, pixels=f, ms=None, mflops=round(flops / 1e6, 3), flops_per_pixel=flops // f,
                              note="not timed; flops by formula"))
    result["sagan"] = sagan
    result["bipartite_time_per_pixel_ratio_last_vs_second"] = linear_fit_ratio(result["bipartite"])
    result["generator"] = [bench_generator(p, r, args.batch, max(1, args.repeats // 2), overrides)
                           for r in args.resolutions for p in names]
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
