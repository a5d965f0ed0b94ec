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

With --all-ops every other op the step runs that yields floats (element-wise, reductions,
transposes, pads, the FIR filters' band matrices, softmax, ...) is timed alone the same way
(integer inputs, i.e. shapes, axes and paddings, take the values they have in the step):

  other_s            those ops alone, back to back, with their multiplicities
  all_bound_s        bound_s + other_s: the step with no executor overhead, each op at its own speed
  all_bound_vs_peak  step FLOPs / all_bound_s over the peak: the most a step made of these ops can
                     reach without fusing them (what bench/train.py's efficiency is capped by)
  untimed_ops        {type: count} of the ops left out (stateful: Adam updates, random numbers;
                     control flow; integer-only shape arithmetic)

    python bench/conv_bound.py --configs gansformer,stylegan2 --res 32
    python bench/conv_bound.py --configs stylegan2 --res 256 --all-ops
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


def standalone(op, batch, values=None):
    """The op rebuilt in the current graph (same type and attributes, inputs by position) on
    variables of its input shapes. `values` (tensor name -> value of an integer input, or shape
    of a float one, as in the step) where given; else float inputs take their static shapes
    (None = batch) and integer ones (the size inputs of the conv gradients) the op's output shape."""
    values = values or {}
    out_shape = bench_train._dims(op.outputs[0].shape, batch)
    inputs = []
    for i, tensor in enumerate(op.inputs):
        if tensor.dtype.is_integer:
            inputs.append(tf.constant(values.get(tensor.name, out_shape), dtype=tensor.dtype))
        else:
            shape = values.get(tensor.name, bench_train._dims(tensor.shape, batch))
            inputs.append(tf.Variable(tf.random_normal(shape, dtype=tensor.dtype), name="in_%d" % i).read_value())
    # Underscore attributes are graph bookkeeping (placement, oneDNN rewrites), not the op's.
    attrs = {k: v for k, v in op.node_def.attr.items() if not k.startswith("_")}
    return tf.get_default_graph().create_op(op.type, inputs, dtypes=[o.dtype for o in op.outputs],
                                            attrs=attrs).outputs[0]


def time_alone(op, batch, threads, reps, values=None):
    """Best wall seconds of op alone, in a fresh graph and session, less the cost of a
    session call that only reads its inputs (the call a step pays once, not once per op; the
    reads that in a step are the previous ops' outputs)."""
    with tf.Graph().as_default():
        sess = bench_train.bench_session(threads)
        out = standalone(op, batch, values)
        idle = tf.group(*out.op.inputs)
        sess.run(tf.global_variables_initializer())
        best, _, _ = bench_train.time_op(lambda: sess.run(out.op), 2, reps, best=True)
        overhead, _, _ = bench_train.time_op(lambda: sess.run(idle), 2, reps, best=True)
        sess.close()
    return max(best - overhead, 0.0)


# Never timed alone: no data work of their own (bookkeeping, control flow) or not rebuildable.
_NOT_TIMED = {"Const", "Placeholder", "VarHandleOp", "VariableV2", "ReadVariableOp", "Identity", "NoOp",
              "Switch", "Merge", "Enter", "Exit", "NextIteration", "LoopCond", "ControlTrigger", "StopGradient"}


def timeable(op):
    """An op with float outputs, float or integer inputs, no state, outside control flow (whose
    tensors a plain run cannot fetch): it can be rebuilt alone and its time is data work."""
    if op.type in _NOT_TIMED or op.op_def.is_stateful or not op.outputs or not op.outputs[0].dtype.is_floating:
        return False
    return op._get_control_flow_context() is None and all(
        (t.dtype.is_floating or t.dtype.is_integer) and not t.dtype._is_ref_dtype for t in op.inputs)


def step_values(ops):
    """{tensor name: value} of the ops' integer inputs and {name: shape} of their float inputs,
    as they are in the step (one run of the default session)."""
    inputs = sorted({t for op in ops for t in op.inputs}, key=lambda t: t.name)
    fetches = [t if t.dtype.is_integer else tf.shape(t) for t in inputs]
    return {t.name: v.tolist() for t, v in zip(inputs, tf.get_default_session().run(fetches))}


def other_ops_bound(fetch_groups, flop_set, batch, threads, reps):
    """(seconds by type, untimed counts by type) of the ops outside flop_set that the fetches
    run, each distinct one (type, input shapes and integer values, attributes) timed alone."""
    ops = [op for fetches in fetch_groups for op in bench_train.step_ops(fetches) if op not in flop_set]
    timed, untimed = [], collections.Counter()
    for op in ops:
        if timeable(op):
            timed.append(op)
        else:
            untimed[op.type] += 1
    values = step_values(timed)
    groups = collections.OrderedDict()
    for op in timed:
        groups.setdefault((signature(op, batch), tuple(str(values[t.name]) for t in op.inputs)), []).append(op)
    by_type = collections.Counter()
    for members in groups.values():
        try:
            by_type[members[0].type] += time_alone(members[0], batch, threads, reps, values) * len(members)
        except (ValueError, TypeError, RuntimeError, tf.errors.OpError):   # not rebuildable alone after all
            print("conv_bound: %s (%s) not timed alone" % (members[0].name, members[0].type), file=sys.stderr)
            untimed[members[0].type] += len(members)
    return by_type, untimed


def bound_one(config, res, batch, threads, reps, smoke, peak, all_ops=False):
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
        if all_ops:
            with sess.as_default():
                other, untimed = other_ops_bound([[G_train], [D_train]], set(ops), batch, threads, reps)
        sess.close()
    bound_s = sum(by_type.values())
    out = dict(config=config, resolution=res, batch=batch, threads=threads, ops=len(ops), distinct_ops=len(groups),
               step_gflop=flops / 1e9, step_best_s=step_s, bound_s=bound_s, bound_gflops=flops / bound_s / 1e9,
               step_gflops=flops / step_s / 1e9, step_vs_bound=bound_s / step_s,
               bound_s_by_type={k: round(v, 4) for k, v in by_type.most_common()})
    if all_ops:
        other_s = sum(other.values())
        out.update(other_s=other_s, all_bound_s=bound_s + other_s, all_bound_gflops=flops / (bound_s + other_s) / 1e9,
                   step_vs_all_bound=(bound_s + other_s) / step_s,
                   other_s_by_type={k: round(v, 4) for k, v in other.most_common(15)},
                   untimed_ops=dict(untimed.most_common()))
    if peak:
        out.update(conv_peak_gflops=peak, bound_vs_peak=out["bound_gflops"] / peak, step_vs_peak=out["step_gflops"] / peak)
        if all_ops:
            out.update(all_bound_vs_peak=out["all_bound_gflops"] / peak)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    bench_train.add_step_args(parser, "32")
    parser.add_argument("--smoke", action="store_true", help="tiny networks at 16x16, 2 repetitions")
    parser.add_argument("--all-ops", action="store_true", help="also time every other float op of the step alone")
    args = parser.parse_args()
    resolutions = [16] if args.smoke else [int(r) for r in args.res.split(",")]
    reps = 2 if args.smoke else args.reps
    peak = None if args.smoke else bench_train.conv_peak_gflops(args.threads)
    results = []
    for config in args.configs.split(","):
        for res in resolutions:
            results.append(bound_one(config, res, args.batch, args.threads, reps, args.smoke, peak, args.all_ops))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    print(json.dumps(dict(benchmark="conv_bound", tensorflow=tf.__version__, cpu_count=os.cpu_count(),
                          load_average=os.getloadavg(), smoke=args.smoke, results=results), indent=2))


if __name__ == "__main__":
    main()
