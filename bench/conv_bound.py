"""What the training step's own multiply-add ops can reach on this CPU: the bound that the
efficiency ratio of bench/train.py is measured against.

bench/train.py divides the step's GFLOP/s by the peak of one large 3x3 conv. A step is made of
many smaller ops (4x4 and 8x8 layers, 1x1 convs, their two gradients, attention matmuls) that
run below that peak even alone. This script builds the same step graph (bench/train.py's
protocol), takes every Conv2D / Conv2DBackprop* / MatMul / BatchMatMul op it runs (the ops
bench/train.py counts FLOPs of), times each distinct one alone on random inputs of its shapes
(best of --reps, same threads), and sums the times with their multiplicities:

  bound_s            the step's multiply-adds if each ran alone at its own speed, back to back
                     (each op's time less an empty session call's)
  bound_gflops       step FLOPs / bound_s: the step's attainable GFLOP/s
  bound_vs_peak      bound_gflops / the one-large-conv peak
  step_vs_bound      bound_s / the measured step time: how much of the attainable the step gets

    python bench/conv_bound.py --configs gansformer,stylegan2 --res 32
    python bench/conv_bound.py --smoke
"""

import argparse
import collections
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import train as bench_train  # noqa: E402  (bench/train.py: the step graph, FLOP counts, timing)
from train import tf  # noqa: E402


def signature(op, batch):
    """Hashable (type, input shapes, attrs) of op: equal signatures time the same."""
    shapes = tuple(tuple(bench_train._dims(i.shape, batch) or ()) for i in op.inputs)
    attrs = tuple(sorted((k, str(op.get_attr(k))) for k in op.node_def.attr if k != "T"))
    return op.type, shapes, tuple(bench_train._dims(op.outputs[0].shape, batch)), attrs


def standalone(op, batch):
    """The op rebuilt in the current graph on variables of its input shapes (size inputs, e.g.
    Conv2DBackpropInput's input_sizes, as constants from its output shape)."""
    args = {}
    out_shape = bench_train._dims(op.outputs[0].shape, batch)
    for arg, tensor in zip(op.op_def.input_arg, op.inputs):
        if tensor.dtype.is_integer:
            args[arg.name] = tf.constant(out_shape, dtype=tensor.dtype)
        else:
            shape = bench_train._dims(tensor.shape, batch)
            args[arg.name] = tf.Variable(tf.random_normal(shape, dtype=tensor.dtype), name="in_" + arg.name)
    # The op's own attributes (strides, padding, transposes, ...); dtypes are inferred from the
    # inputs, and underscore attributes are graph bookkeeping.
    settable = {a.name for a in op.op_def.attr if a.type != "type"}
    attrs = {k: op.get_attr(k) for k in op.node_def.attr if k in settable}
    return getattr(tf.raw_ops, op.type)(**args, **attrs)


def time_alone(op, batch, threads, reps):
    """Best wall seconds of op alone, in a fresh graph and session, less the cost of a
    session call that runs nothing (which a step pays once, not once per op)."""
    with tf.Graph().as_default():
        sess = bench_train.bench_session(threads)
        out, idle = standalone(op, batch), tf.no_op()
        sess.run(tf.global_variables_initializer())
        best, _, _ = bench_train.time_op(lambda: sess.run(out.op), 2, reps, best=True)
        overhead, _, _ = bench_train.time_op(lambda: sess.run(idle), 2, reps, best=True)
        sess.close()
    return max(best - overhead, 0.0)


def bound_one(config, res, batch, threads, reps, smoke, peak):
    gkw, dkw, _ = bench_train.net_kwargs(config, res, smoke)
    with tf.Graph().as_default():
        sess = bench_train.bench_session(threads)
        with sess.as_default():
            _, _, _, G_train, D_train = bench_train.build_step(config, res, batch, gkw, dkw)
            step_s, _, _ = bench_train.time_op(lambda: (sess.run(G_train), sess.run(D_train)), 2, reps, best=True)
            ops = bench_train.flop_ops([G_train]) + bench_train.flop_ops([D_train])
            flops = sum(bench_train.op_flops(op, batch) for op in ops)
            groups = collections.OrderedDict()
            for op in ops:
                groups.setdefault(signature(op, batch), []).append(op)
        by_type = collections.Counter()
        for members in groups.values():
            seconds = time_alone(members[0], batch, threads, reps) * len(members)
            by_type[members[0].type] += seconds
        sess.close()
    bound_s = sum(by_type.values())
    out = dict(config=config, resolution=res, batch=batch, threads=threads, ops=len(ops), distinct_ops=len(groups),
               step_gflop=flops / 1e9, step_best_s=step_s, bound_s=bound_s, bound_gflops=flops / bound_s / 1e9,
               step_gflops=flops / step_s / 1e9, step_vs_bound=bound_s / step_s,
               bound_s_by_type={k: round(v, 4) for k, v in by_type.most_common()})
    if peak:
        out.update(conv_peak_gflops=peak, bound_vs_peak=out["bound_gflops"] / peak, step_vs_peak=out["step_gflops"] / peak)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    bench_train.add_step_args(parser, "32")
    parser.add_argument("--smoke", action="store_true", help="tiny networks at 16x16, 2 repetitions")
    args = parser.parse_args()
    resolutions = [16] if args.smoke else [int(r) for r in args.res.split(",")]
    reps = 2 if args.smoke else args.reps
    peak = None if args.smoke else bench_train.conv_peak_gflops(args.threads)
    results = []
    for config in args.configs.split(","):
        for res in resolutions:
            results.append(bound_one(config, res, args.batch, args.threads, reps, args.smoke, peak))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    print(json.dumps(dict(benchmark="conv_bound", tensorflow=tf.__version__, cpu_count=os.cpu_count(),
                          load_average=os.getloadavg(), smoke=args.smoke, results=results), indent=2))


if __name__ == "__main__":
    main()
