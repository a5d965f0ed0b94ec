"""The training loop (REFERENCE.md §5.2): G/D towers on each device through tflib.Optimizer,
lazy regularization, the Gs moving average, tick lines, crash-safe snapshots and resume.

Read top to bottom: set-up, networks, graph, resume, then the loop itself.
"""

import json
import os
import time

import numpy as np
import tensorflow.compat.v1 as tf

import dnnlib
import dnnlib.tflib as tflib
from dnnlib.tflib import autosummary
from dnnlib.util import UserError

from training import loss as loss_lib
from training import snapshot
from training import visuals

NET_DRANGE = (-1, 1)  # Networks see images in [-1, 1].

# ----------------------------------------------------------------------------
# Graph construction (one tower per device).


def process_reals(images, dynamic_range, mirror_augment):
    """uint8 (or float in dynamic_range) NCHW reals -> float32 in [-1, 1], optional flips."""
    with tf.name_scope("ProcessReals"):
        images = tf.cast(images, tf.float32)
        lo, hi = dynamic_range
        images = (images - lo) * ((NET_DRANGE[1] - NET_DRANGE[0]) / (hi - lo)) + NET_DRANGE[0]
        if mirror_augment:
            flip = tf.random_uniform([tf.shape(images)[0], 1, 1, 1]) < 0.5
            images = tf.where(tf.broadcast_to(flip, tf.shape(images)), tf.reverse(images, axis=[3]), images)
        return images


def build_training_graph(G, D, devices, batch_gpu, get_reals, get_fake_labels, cfg,
                         latents_for=None):
    """Towers of losses on each device, registered with G/D optimizers (+ lazy-reg ones).

    get_reals(tower) -> (reals float [-1,1], labels); get_fake_labels(tower, n) -> labels;
    latents_for(tower, which, n) -> z or None (tests pass fixed latents).
    Returns an EasyDict of ops and mean losses to fetch."""
    num_rounds = cfg.minibatch_multiplier
    g_reg_on = cfg.G_loss_args.get("pl_weight", 0) > 0
    d_reg_on = cfg.D_loss_args.get("reg", "r1") != "none" and cfg.D_loss_args.get("gamma", 0) > 0

    opt_common = dict(beta1=cfg.beta1, beta2=cfg.beta2, epsilon=cfg.epsilon)
    G_opt = tflib.Optimizer(name="TrainG", learning_rate=cfg.G_lrate, minibatch_multiplier=num_rounds,
                            reg_interval=cfg.G_reg_interval, **opt_common)
    D_opt = tflib.Optimizer(name="TrainD", learning_rate=cfg.D_lrate, minibatch_multiplier=num_rounds,
                            reg_interval=cfg.D_reg_interval, **opt_common)
    G_reg_opt = tflib.Optimizer(name="RegG", share=G_opt, learning_rate=cfg.G_lrate,
                                minibatch_multiplier=num_rounds, reg_interval=cfg.G_reg_interval, **opt_common)
    D_reg_opt = tflib.Optimizer(name="RegD", share=D_opt, learning_rate=cfg.D_lrate,
                                minibatch_multiplier=num_rounds, reg_interval=cfg.D_reg_interval, **opt_common)

    stats = dnnlib.EasyDict(G_loss=[], D_loss=[], G_reg=[], D_reg=[])
    for tower, device in enumerate(devices):
        with tf.name_scope("Tower%d" % tower), tf.device(device):
            G_t = G if tower == 0 else G.clone(G.name + "_shadow%d" % tower)
            D_t = D if tower == 0 else D.clone(D.name + "_shadow%d" % tower)
            reals, labels = get_reals(tower)
            z = latents_for(tower, "G", batch_gpu) if latents_for else None
            with tf.name_scope("G_loss"):
                G_loss, G_reg = loss_lib.G_loss(G_t, D_t, get_fake_labels(tower, batch_gpu), batch_gpu,
                                                latents=z, **cfg.G_loss_args)
            z = latents_for(tower, "D", batch_gpu) if latents_for else None
            with tf.name_scope("D_loss"):
                D_loss, D_reg = loss_lib.D_loss(G_t, D_t, reals, labels, batch_gpu, latents=z, **cfg.D_loss_args)
            G_loss = tf.reduce_mean(G_loss)
            D_loss = tf.reduce_mean(D_loss)
            G_opt.register_gradients(G_loss, G_t.trainables)
            D_opt.register_gradients(D_loss, D_t.trainables)
            stats.G_loss.append(G_loss)
            stats.D_loss.append(D_loss)
            if g_reg_on and G_reg is not None:
                G_reg = tf.reduce_mean(G_reg)
                G_reg_opt.register_gradients(G_reg * cfg.G_reg_interval, G_t.trainables)
                stats.G_reg.append(G_reg)
            if d_reg_on and D_reg is not None:
                D_reg = tf.reduce_mean(D_reg)
                D_reg_opt.register_gradients(D_reg * cfg.D_reg_interval, D_t.trainables)
                stats.D_reg.append(D_reg)

    ops = dnnlib.EasyDict()
    ops.G_train = G_opt.apply_updates()
    ops.D_train = D_opt.apply_updates()
    ops.G_reg = G_reg_opt.apply_updates() if stats.G_reg else None
    ops.D_reg = D_reg_opt.apply_updates() if stats.D_reg else None
    mean = lambda xs: tf.add_n(xs) / len(xs) if xs else None
    ops.G_loss, ops.D_loss = mean(stats.G_loss), mean(stats.D_loss)
    ops.G_reg_value, ops.D_reg_value = mean(stats.G_reg), mean(stats.D_reg)
    ops.optimizers = [G_opt, D_opt, G_reg_opt, D_reg_opt]
    return ops


# ----------------------------------------------------------------------------
# Helpers for state, memory and formatting.


def state_variables(networks):
    """Global variables that resume must restore besides the networks' own: optimizer
    moments and counters, the path-length mean. Autosummary accumulators are excluded."""
    net_vars = set()
    for net in networks:
        net_vars.update(v.name for v in net.vars.values())
    out = []
    for var in tf.global_variables():
        if var.name in net_vars or var.name.startswith("Autosummary"):
            continue
        if "_shadow" in var.name.split("/")[0]:
            continue  # Tower clones are recopied from G/D.
        out.append(var)
    return out


def host_rss_bytes():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _fmt_time(seconds):
    return dnnlib.util.format_time(seconds)


class NonFiniteLossError(UserError):
    """A loss became NaN or Inf; the run stops and keeps its last good snapshot."""


def load_network_values(path):
    """{local var name: value} of G, D and Gs in a network pickle, loaded in a graph of its
    own so the training graph holds no extra variables."""
    from training import misc
    with tf.Graph().as_default(), tflib.create_session().as_default() as sess:
        nets = misc.load_network_pkl(path)
        values = [dict(zip(net.vars.keys(), tflib.run(list(net.vars.values())))) for net in nets]
    sess.close()
    return values


def set_network_values(net, values):
    """Assign by name; names missing on either side or with another shape are skipped.
    Returns (copied, total)."""
    pairs = {var: values[name] for name, var in net.vars.items()
             if name in values and tuple(var.shape.as_list()) == tuple(np.shape(values[name]))}
    tflib.set_vars(pairs)
    return len(pairs), len(net.vars)


# ----------------------------------------------------------------------------
# The loop.


def training_loop(run_dir=None, submit_config=None, G_args=None, D_args=None,
                  dataset_args=None, G_loss_args=None, D_loss_args=None,
                  batch_size=32, batch_gpu=4, num_gpus=1, device_type="gpu", device_ids=None,
                  total_kimg=25000, kimg_per_tick=4, snapshot_ticks=3, keep_snapshots=10,
                  G_lrate=0.002, D_lrate=0.002, beta1=0.0, beta2=0.99, epsilon=1e-8,
                  G_reg_interval=4, D_reg_interval=16, G_smoothing_kimg=10.0,
                  mirror_augment=False, metrics=(), resume=None, pretrained_pkl=None,
                  seed=1000, grid_size=(8, 4), max_ticks=None, tf_config=None,
                  metric_args=None, options_to_save=None):
    """Train G and D in run_dir (default: the submitted run's). resume: a network snapshot
    of ours to continue from (its training state lies beside it)."""
    if run_dir is None:
        run_dir = submit_config.run_dir
    tflib.init_tf(tf_config)
    if options_to_save is not None:
        save_options(run_dir, options_to_save)
    from training import dataset as dataset_lib
    from training import misc

    if batch_size % (batch_gpu * num_gpus) != 0:
        raise UserError("--batch-size %d must be a multiple of --batch-gpu %d x %d devices"
                        % (batch_size, batch_gpu, num_gpus))
    cfg = dnnlib.EasyDict(G_loss_args=dict(G_loss_args or {}), D_loss_args=dict(D_loss_args or {}),
                          minibatch_multiplier=batch_size // (batch_gpu * num_gpus),
                          G_lrate=G_lrate, D_lrate=D_lrate, beta1=beta1, beta2=beta2, epsilon=epsilon,
                          G_reg_interval=G_reg_interval, D_reg_interval=D_reg_interval)
    snapshot.remove_stale_temporaries(run_dir)
    abort_file = os.path.join(run_dir, "abort.txt")
    if os.path.exists(abort_file):   # It stopped the previous session; rerunning means continue.
        os.remove(abort_file)

    # Resume: progress and RNG come from the state file beside the snapshot.
    state = None
    if resume is not None:
        state = snapshot.load_state(snapshot.state_path_for(resume))
    cur_nimg = state["cur_nimg"] if state else 0
    cur_tick = state["cur_tick"] if state else 0
    elapsed_before = state["elapsed_time"] if state else 0.0
    rng = np.random.RandomState(seed)
    if state:
        rng.set_state(state["np_rng_state"])
    # Graph-mode op RNG cannot be saved; reseed it from (seed, progress) so a resumed run is
    # deterministic given where it resumed.
    tf.set_random_seed((seed * 1000003 + cur_nimg) % (1 << 31))
    np.random.seed(rng.randint(1 << 31))

    device_ids = list(device_ids) if device_ids is not None else list(range(num_gpus))
    assert len(device_ids) == num_gpus, (device_ids, num_gpus)
    devices = ["/%s:%d" % (device_type, i) for i in device_ids]

    # Dataset.
    training_set = dataset_lib.load_dataset(verbose=True, mirror_augment=mirror_augment,
                                            seed=(seed + cur_nimg) % (1 << 31), **dataset_args)
    print("Dataset: %s, %d channels, %dx%d, %d label dims"
          % (dataset_args.get("tfrecord_dir"), training_set.shape[0], training_set.shape[1],
             training_set.shape[2], training_set.label_size))

    # Networks. Their geometry comes from the stored records: resolution = width, ratio =
    # height / width (true non-square records; padded squares train as squares, ratio 1).
    geometry = dict(num_channels=training_set.shape[0], resolution=training_set.resolution,
                    ratio=training_set.shape[1] / training_set.shape[2], c_dim=training_set.label_size)
    with tf.device(devices[0]):
        G = tflib.Network("G", **dict(G_args, **geometry))
        D = tflib.Network("D", **dict(D_args, **geometry))
        Gs = G.clone("Gs")
    source = resume or pretrained_pkl
    if source:
        print("Loading networks from %s" % source)
        for dst, values in zip((G, D, Gs), load_network_values(source)):
            copied, total = set_network_values(dst, values)
            print("  %s: %d of %d variables copied" % (dst.name, copied, total))
    G.print_layers()
    D.print_layers()

    # Graph: towers, optimizers, EMA.
    def get_reals(tower):
        images, labels = training_set.get_minibatch_tf()
        return process_reals(images, training_set.dynamic_range, False), labels  # Mirrored by the reader.

    def get_fake_labels(tower, n):
        return training_set.get_random_labels_tf(n)

    ops = build_training_graph(G, D, devices, batch_gpu, get_reals, get_fake_labels, cfg)
    Gs_beta = 0.5 ** (batch_size / (G_smoothing_kimg * 1000.0)) if G_smoothing_kimg > 0 else 0.0
    with tf.device(devices[0]):
        Gs_update = Gs.setup_as_moving_average_of(G, beta=Gs_beta)
    tflib.init_uninitialized_vars()
    extra_vars = state_variables([G, D, Gs])
    if state:
        by_name = {v.name: v for v in extra_vars}
        restore = {by_name[n]: val for n, val in state["tf_vars"].items() if n in by_name}
        tflib.set_vars(restore)
        print("Resumed at kimg %.3f, tick %d (%d of %d optimizer/state variables restored)"
              % (cur_nimg / 1000, cur_tick, len(restore), len(extra_vars)))

    # Fixed grid latents, so successive fakes grids are comparable.
    grid_w, grid_h = grid_size
    if state and "grid_latents" in state:
        grid_latents, grid_labels = state["grid_latents"], state["grid_labels"]
    else:
        grid_latents = rng.randn(grid_w * grid_h, *G.input_shape[1:]).astype(np.float32)
        grid_labels = training_set.get_random_labels_np(grid_w * grid_h) \
            if training_set.label_size else np.zeros([grid_w * grid_h, 0], np.float32)
    if cur_nimg == 0:
        reals_np, _ = training_set.get_minibatch_np(min(grid_w * grid_h, 64))
        misc.save_image_grid(reals_np, os.path.join(run_dir, "reals.png"),
                             drange=training_set.dynamic_range, grid_size=None)
        visuals.save_fakes(Gs, grid_latents, grid_labels, run_dir, "init", grid_size, G_args)
    training_set.configure(batch_gpu)  # After the grid: get_minibatch_np reconfigures the reader.

    summary_writer = tf.summary.FileWriter(run_dir)
    total_nimg = int(total_kimg * 1000)
    save_state = dict(seed=seed, grid_latents=grid_latents, grid_labels=grid_labels)

    def write_snapshot():
        state_out = dict(save_state, cur_nimg=cur_nimg, cur_tick=cur_tick,
                         elapsed_time=elapsed_before + (time.time() - start_time),
                         np_rng_state=rng.get_state(),
                         tf_vars=dict(zip([v.name for v in extra_vars], tflib.run(extra_vars))))
        path = snapshot.save_snapshot(run_dir, cur_nimg // 1000, (G, D, Gs), state_out)
        snapshot.prune_snapshots(run_dir, keep_snapshots)
        return path

    # The loop.
    print("Training for %g kimg (from %g) with batch %d = %d device(s) x %d x %d rounds..."
          % (total_kimg, cur_nimg / 1000, batch_size, num_gpus, batch_gpu, cfg.minibatch_multiplier))
    start_time = time.time()
    tick_start_time = start_time
    tick_start_nimg = cur_nimg
    minibatch_count = cur_nimg // batch_size
    sums = dict(G_loss=[], D_loss=[], G_reg=[], D_reg=[])
    last_snapshot = None
    done = cur_nimg >= total_nimg
    while not done:
        # One minibatch: per round G, [G reg], D, [D reg]; then the moving average.
        run_g_reg = ops.G_reg is not None and minibatch_count % G_reg_interval == 0
        run_d_reg = ops.D_reg is not None and minibatch_count % D_reg_interval == 0
        for _round in range(cfg.minibatch_multiplier):
            g_vals = tflib.run([ops.G_train, ops.G_loss])
            sums["G_loss"].append(g_vals[1])
            if run_g_reg:
                sums["G_reg"].append(tflib.run([ops.G_reg, ops.G_reg_value])[1])
            sums["D_loss"].append(tflib.run([ops.D_train, ops.D_loss])[1])
            if run_d_reg:
                sums["D_reg"].append(tflib.run([ops.D_reg, ops.D_reg_value])[1])
        tflib.run(Gs_update)
        minibatch_count += 1
        cur_nimg += batch_size

        bad = [k for k, v in sums.items() if v and not np.isfinite(v[-1])]
        if bad:
            last = snapshot.latest_resumable(run_dir)
            raise NonFiniteLossError(
                "non-finite %s at kimg %.1f: training stopped; the last good snapshot is %s; "
                "lower --g-lr/--d-lr or raise --gamma and resume"
                % (", ".join(bad), cur_nimg / 1000, last[0] if last else "none (no snapshot yet)"))

        abort = os.path.exists(abort_file)
        done = cur_nimg >= total_nimg or abort
        if cur_nimg < tick_start_nimg + kimg_per_tick * 1000 and not done:
            continue

        # Tick: one line, autosummaries, TensorBoard.
        cur_tick += 1
        now = time.time()
        tick_time = now - tick_start_time
        tick_kimg = (cur_nimg - tick_start_nimg) / 1000.0
        sec_per_kimg = tick_time / max(tick_kimg, 1e-9)
        means = {k: float(np.mean(v)) for k, v in sums.items() if v}
        rss = host_rss_bytes() / 2 ** 30
        devmem = tflib.get_device_memory_bytes() / 2 ** 30
        total_time = elapsed_before + (now - start_time)
        eta = max(total_nimg - cur_nimg, 0) / 1000.0 * sec_per_kimg
        line = ("tick %-5d kimg %-8.1f time %-12s sec/tick %-7.1f sec/kimg %-7.2f img/s %-7.1f ETA %-12s"
                % (cur_tick, cur_nimg / 1000.0, _fmt_time(total_time), tick_time, sec_per_kimg,
                   tick_kimg * 1000 / max(tick_time, 1e-9), _fmt_time(eta)))
        line += " ".join("%s %-7.4f" % (k, v) for k, v in means.items())
        line += " host %.2fGB dev %.2fGB" % (rss, devmem)
        print(line, flush=True)
        scalars = {"Progress/tick": cur_tick, "Progress/kimg": cur_nimg / 1000.0,
                   "Timing/total_hours": total_time / 3600.0, "Timing/sec_per_tick": tick_time,
                   "Timing/sec_per_kimg": sec_per_kimg, "Resources/host_rss_gb": rss,
                   "Resources/device_mem_gb": devmem}
        for k, v in means.items():
            scalars["Loss/" + k.replace("_", "/")] = v
        for name, value in scalars.items():
            autosummary.autosummary(name, value)

        if snapshot_ticks and (cur_tick % snapshot_ticks == 0 or done):
            last_snapshot = write_snapshot()
            visuals.save_fakes(Gs, grid_latents, grid_labels, run_dir, "%06d" % (cur_nimg // 1000),
                               grid_size, G_args)
            metric_gpus = num_gpus if device_type == "gpu" else 1
            for name, value in _run_metrics(metrics, last_snapshot, run_dir, dataset_args,
                                            metric_gpus, metric_args).items():
                autosummary.autosummary("Metrics/" + name, value)
        autosummary.save_summaries(summary_writer, cur_nimg // 1000)
        summary_writer.flush()
        sums = {k: [] for k in sums}
        tick_start_nimg = cur_nimg
        tick_start_time = time.time()
        if max_ticks is not None and cur_tick >= max_ticks:
            break
        if abort:
            print("abort.txt found in %s: stopped after a snapshot." % run_dir)

    if cur_nimg >= total_nimg:
        final = os.path.join(run_dir, "network-final.pkl")
        snapshot.atomic_write_pickle((G, D, Gs), final)
        last_snapshot = final
    summary_writer.close()
    return dnnlib.EasyDict(cur_nimg=cur_nimg, cur_tick=cur_tick, last_snapshot=last_snapshot,
                           state_vars=extra_vars, networks=(G, D, Gs))


def _run_metrics(names, network_pkl, run_dir, dataset_args, num_gpus, metric_args):
    """Evaluate the named metrics (metrics/metric_defaults.py) on a snapshot, each appending
    to run_dir/metric-<name>.txt; returns {name: value} for TensorBoard."""
    if not names:
        return {}
    from metrics import metric_base, metric_defaults
    group = metric_base.MetricGroup(metric_defaults.get_metric_kwargs(list(names)))
    group.run(network_pkl, run_dir=run_dir, dataset_args=dict(dataset_args, shuffle_mb=0), num_gpus=num_gpus,
              **(metric_args or {}))
    return {res.name: res.value for metric in group.metrics for res in metric.list_results()}


def save_options(run_dir, options):
    """Write the resolved options as JSON (temporary name + rename)."""
    path = os.path.join(run_dir, "training_options.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(options, f, indent=2, sort_keys=True, default=str)
    os.replace(tmp, path)
