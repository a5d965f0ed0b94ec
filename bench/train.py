"""Training speed on CPU: G forward images/s and training-step images/s, plus parameter counts.

Fixed configurations (compared side by side with other implementations; keep them stable):
  gansformer  the official default preset as for FFHQ (16 region latents + global, latent 512,
             resnet G, kmeans, layer norm with mul integration, mapping self-attention,
             latent positions), StyleGAN2 resnet D;
  stylegan2  the StyleGAN2 baseline;
  transgan   the TransGAN preset (CIFAR-10 sizes; transgan-mainjob: its scenes main-job sizing),
             timed with the same logistic step (its recipe's 4 D steps per G step are not);
each at 32x32 and 64x64 with default channels, and at 256x256 with channel_base 8192,
channel_max 128. Batch 8, 2 CPU threads, warm-up then the median of --reps repetitions.
The training step = G forward, D on fakes and on reals, backward of the non-saturating G
loss and the logistic D loss, Adam on both (no regularization, no EMA), run as the loop
does: the G step, then the D step.

Beside images/s each result has the FLOPs of one G forward and one training step (multiply-adds
x 2 of the Conv2D / Conv2DBackprop* / MatMul / BatchMatMul ops that the fetch runs, counted from
the graph's static shapes), the achieved GFLOP/s, and its ratio to this machine's measured
convolution peak (one large NHWC 3x3 conv alone, same threads: `conv_peak_gflops`). peak_rss_mb
is the process's VmHWM over the configuration (reset before each where Linux allows).

    python bench/train.py                      # all configurations (long at 256)
    python bench/train.py --res 32,64 --reps 3
    python bench/train.py --smoke              # tiny, fast
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow.compat.v1 as tf  # noqa: E402

import dnnlib.tflib as tflib  # noqa: E402
from training import loss as loss_lib  # noqa: E402
from training import options  # noqa: E402

CONFIGS = {"gansformer": "gansformer", "stylegan2": "StyleGAN2", "mainjob": "gansformer", "transgan": "TransGAN",
           "transgan-mainjob": "TransGAN"}
CHANNELS = {32: {}, 64: {}, 256: dict(channel_base=8192, channel_max=128)}


def net_kwargs(config, res, smoke, channels=None):
    if CONFIGS[config] == "TransGAN":    # its preset (CIFAR sizes), or its scenes main-job sizing
        row = options.FAMILY_RECIPES["networks_transgan"]["scenes"] if config == "transgan-mainjob" else {}
        extra = {k: v for k, v in row.items() if k not in options.training_defaults()}
        if smoke:
            extra = dict(latent_size=32, embed_dim=64, depths=[1], d_scale_dims=[16, 16], d_depths=[1])
        gkw, dkw = options.resolve_model("TransGAN", resolution=res, **extra)
        return gkw, dkw, extra
    extra = dict(CHANNELS.get(res, {}), **(channels or {}))
    if config == "mainjob":   # run_training.py's main job (not one of the fixed comparisons).
        row = options.RECIPES["scenes"]
        extra = dict(row["gansformer"], channel_base=row["cbase"], channel_max=row["cmax"])
    if smoke:
        extra = dict(channel_base=256, channel_max=32)
        if config == "gansformer":
            extra.update(components_num=4, latent_size=64)
    gkw, dkw = options.resolve_model(CONFIGS[config], resolution=res, d_mbstd_group_size=4, **extra)
    return gkw, dkw, extra


def count(net, trainable=True):
    vs = net.trainables if trainable else net.vars
    return int(sum(np.prod(v.shape.as_list()) for v in vs.values()))


# Multiply-add ops and the input whose shape, with the op's output, fixes the count.
_FLOP_OPS = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter", "MatMul", "BatchMatMul",
             "BatchMatMulV2", "BatchMatMulV3", "DepthwiseConv2dNative")


def _dims(shape, batch):
    dims = shape.as_list() if shape.ndims is not None else None
    return None if dims is None else [batch if d is None else d for d in dims]


def op_flops(op, batch):
    """FLOPs (2 x multiply-adds) of one Conv/MatMul op from static shapes (None dims = batch)."""
    t = op.type
    if t == "Conv2D" or t == "DepthwiseConv2dNative":
        out, w = _dims(op.outputs[0].shape, batch), _dims(op.inputs[1].shape, batch)
        per_out = w[0] * w[1] * (w[2] if t == "Conv2D" else 1)
        return 2 * int(np.prod(out)) * per_out
    if t in ("Conv2DBackpropInput", "Conv2DBackpropFilter"):
        dy = _dims(op.inputs[2].shape, batch)
        w = _dims(op.inputs[1].shape if t == "Conv2DBackpropInput" else op.outputs[0].shape, batch)
        return 2 * int(np.prod(dy)) * w[0] * w[1] * w[2]
    a, out = _dims(op.inputs[0].shape, batch), _dims(op.outputs[0].shape, batch)
    if t == "MatMul":
        k = a[0] if op.get_attr("transpose_a") else a[1]
    else:
        adj = op.get_attr("adj_x")
        k = a[-2] if adj else a[-1]
    return 2 * int(np.prod(out)) * k


def step_ops(fetches):
    """Every op the fetches depend on (data and control inputs)."""
    todo = [f.op if hasattr(f, "op") else f for f in fetches]
    seen = set()
    while todo:
        op = todo.pop()
        if op not in seen:
            seen.add(op)
            todo.extend(i.op for i in op.inputs)
            todo.extend(op.control_inputs)
    return list(seen)


def flop_ops(fetches):
    """The multiply-add ops the fetches depend on. Products with a constant float operand are the
    FIR filters (upfirdn_2d's band matrices or depthwise form), an implementation detail: left out
    so counts compare across implementations. Constant integer inputs (a conv gradient's sizes)
    are not operands."""
    return [op for op in step_ops(fetches) if op.type in _FLOP_OPS
            and not any(i.op.type == "Const" and i.dtype.is_floating for i in op.inputs)]


def graph_flops(fetches, batch):
    """Summed op_flops over flop_ops(fetches)."""
    return sum(op_flops(op, batch) for op in flop_ops(fetches))


def conv_peak_gflops(threads, reps=5):
    """GFLOP/s of one large 3x3 conv (NHWC [8, 32, 32, 512] -> 512), best of reps: what this
    machine's TF convolution reaches, the denominator of the efficiency ratios."""
    graph = tf.Graph()
    with graph.as_default():
        sess = tflib.create_session({"intra_op_parallelism_threads": threads,
                                     "inter_op_parallelism_threads": 1, "rnd.tf_random_seed": None})
        x = tf.Variable(tf.random_normal([8, 32, 32, 512]))
        w = tf.Variable(tf.random_normal([3, 3, 512, 512]))
        y = tf.nn.conv2d(x, w, strides=[1, 1, 1, 1], padding="SAME", data_format="NHWC")
        flops = op_flops(y.op, 8)
        sess.run(tf.global_variables_initializer())
        best, _, _ = time_op(lambda: sess.run(y.op), 1, reps, best=True)
        sess.close()
    return flops / best / 1e9


def reset_peak_rss():
    try:  # Linux >= 4.0: "5" resets VmHWM to the current RSS.
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_rss_mb():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def time_op(run_once, warmup, reps, best=False):
    """(median or best wall seconds, all wall seconds, median CPU seconds) of run_once."""
    for _ in range(warmup):
        run_once()
    times, cpu = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        run_once()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return (min(times) if best else statistics.median(times)), times, statistics.median(cpu)


def build_step(config, res, batch, gkw, dkw):
    """In the default graph and session: (G, D, G forward, G train op, D train op) of the
    benchmark's protocol (logistic losses, Adam, no regularization, no EMA)."""
    tf.set_random_seed(1)
    family = options.PRESETS[CONFIGS[config]]["family"]
    G = tflib.Network("G", func_name="training.%s.Generator" % family, num_channels=3, c_dim=0, **gkw)
    D = tflib.Network("D", func_name="training.%s.Discriminator" % family, num_channels=3, c_dim=0, **dkw)
    labels = tf.zeros([batch, 0])
    z = loss_lib.sample_latents(G, batch)
    fwd = G.get_output_for(z, labels, is_validation=True, return_as_list=True)[0]
    reals = tf.random_uniform([batch, 3, res, res], -1.0, 1.0)
    G_opt = tflib.Optimizer(name="TrainG", learning_rate=0.002, beta1=0.0, beta2=0.99, epsilon=1e-8)
    D_opt = tflib.Optimizer(name="TrainD", learning_rate=0.002, beta1=0.0, beta2=0.99, epsilon=1e-8)
    G_loss, _ = loss_lib.G_loss(G, D, labels, batch, loss="logistic_ns", pl_weight=0.0)
    D_loss, _ = loss_lib.D_loss(G, D, reals, labels, batch, loss="logistic", reg="none", gamma=0.0)
    G_opt.register_gradients(tf.reduce_mean(G_loss), G.trainables)
    D_opt.register_gradients(tf.reduce_mean(D_loss), D.trainables)
    G_train, D_train = G_opt.apply_updates(), D_opt.apply_updates()
    tflib.init_uninitialized_vars()
    return G, D, fwd, G_train, D_train


def bench_session(threads):
    return tflib.create_session({"intra_op_parallelism_threads": threads,
                                 "inter_op_parallelism_threads": 1, "rnd.tf_random_seed": None})


def bench_one(config, res, batch, threads, warmup, reps, smoke, peak=None, channels=None):
    reset_peak_rss()
    gkw, dkw, extra = net_kwargs(config, res, smoke, channels)
    graph = tf.Graph()
    with graph.as_default():
        sess = bench_session(threads)
        with sess.as_default():
            G, D, fwd, G_train, D_train = build_step(config, res, batch, gkw, dkw)
            fwd_flops = graph_flops([fwd], batch)
            step_flops = graph_flops([G_train], batch) + graph_flops([D_train], batch)
            fwd_s, fwd_all, fwd_cpu = time_op(lambda: sess.run(fwd), warmup, reps)
            step_s, step_all, step_cpu = time_op(lambda: (sess.run(G_train), sess.run(D_train)), warmup, reps)
            out = dict(config=config, resolution=res, batch=batch, threads=threads, channels=extra or "default",
                       G_params=count(G), D_params=count(D), G_vars_total=count(G, False),
                       G_forward_img_per_s=batch / fwd_s, train_step_img_per_s=batch / step_s,
                       G_forward_s=fwd_all, train_step_s=step_all,
                       # CPU seconds per call: with the machine shared, wall time overstates cost.
                       G_forward_cpu_s=fwd_cpu, train_step_cpu_s=step_cpu,
                       G_forward_gflop=fwd_flops / 1e9, train_step_gflop=step_flops / 1e9,
                       G_forward_gflops=fwd_flops / fwd_s / 1e9, train_step_gflops=step_flops / step_s / 1e9,
                       # Best repetition, the least disturbed by other load on a shared machine.
                       G_forward_best_s=min(fwd_all), train_step_best_s=min(step_all),
                       peak_rss_mb=peak_rss_mb())
            if peak:
                out.update(G_forward_efficiency=out["G_forward_gflops"] / peak,
                           train_step_efficiency=out["train_step_gflops"] / peak)
        sess.close()
    return out


def add_step_args(parser, res):
    """The options bench/train.py and bench/conv_bound.py share: which steps, how timed."""
    parser.add_argument("--configs", default="gansformer,stylegan2")
    parser.add_argument("--res", default=res)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=5)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_step_args(parser, "32,64,256")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="tiny networks at 16x16, one repetition")
    parser.add_argument("--channel-base", type=int, default=None, help="override the channels at every --res")
    parser.add_argument("--channel-max", type=int, default=None, help="override the channels at every --res")
    parser.add_argument("--no-peak", action="store_true", help="skip the convolution peak measurement")
    args = parser.parse_args()
    configs = args.configs.split(",")
    resolutions = [int(r) for r in args.res.split(",")]
    if args.smoke:
        resolutions, args.warmup, args.reps = [16], 1, 1
    peak = None if (args.no_peak or args.smoke) else conv_peak_gflops(args.threads)
    channels = {k: v for k, v in (("channel_base", args.channel_base), ("channel_max", args.channel_max))
                if v is not None}
    results = []
    for config in configs:
        for res in resolutions:
            results.append(bench_one(config, res, args.batch, args.threads, args.warmup, args.reps, args.smoke, peak,
                                     channels))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(json.dumps(dict(benchmark="train", tensorflow=tf.__version__, machine=platform.machine(),
                          cpu_count=os.cpu_count(), load_average=load, smoke=args.smoke,
                          conv_peak_gflops=peak, results=results), indent=2))


if __name__ == "__main__":
    main()
