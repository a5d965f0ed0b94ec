"""The training loop (REFERENCE.md §5.2): G/D towers on each device through tflib.Optimizer,
lazy regularization, the Gs moving average, tick lines, crash-safe snapshots and resume.

Read top to bottom: set-up, networks, graph, resume, then the loop itself.
"""

import contextlib
import json
import os
import pickle
import time

import numpy as np
import tensorflow.compat.v1 as tf

import dnnlib
import dnnlib.tflib as tflib
from dnnlib.tflib import autosummary
from dnnlib.util import UserError
from metrics import metric_base

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


def build_training_graph(G, D, devices, batch_gpu, get_reals, get_fake_cond, cfg,
                         latents_for=None):
    """Towers of losses on each device, registered with G/D optimizers (+ lazy-reg ones).

    get_reals(tower) -> (reals float [-1,1], cond); get_fake_cond(tower, n) -> cond (loss.as_cond:
    labels, or labels with a layout);
    latents_for(tower, which, n) -> z or None (tests pass fixed latents).
    A regularizer with interval 1 is not lazy: it joins its loss in one step (TransGAN's GP).
    Returns an EasyDict of ops and mean losses to fetch."""
    num_rounds = cfg.minibatch_multiplier
    g_reg_on = cfg.G_loss_args.get("pl_weight", 0) > 0
    d_reg_on = cfg.D_loss_args.get("reg", "r1") != "none" and cfg.D_loss_args.get("gamma", 0) > 0
    g_fold, d_fold = cfg.G_reg_interval == 1, cfg.D_reg_interval == 1

    opt_common = dict(beta1=cfg.beta1, beta2=cfg.beta2, epsilon=cfg.epsilon, clip_grad_norm=cfg.get("clip_grad_norm"))
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
            reals, cond = get_reals(tower)
            z = latents_for(tower, "G", batch_gpu) if latents_for else None
            with tf.name_scope("G_loss"):
                G_loss, G_reg = loss_lib.G_loss(G_t, D_t, get_fake_cond(tower, batch_gpu), batch_gpu,
                                                latents=z, **cfg.G_loss_args)
            z = latents_for(tower, "D", batch_gpu) if latents_for else None
            with tf.name_scope("D_loss"):
                D_loss, D_reg = loss_lib.D_loss(G_t, D_t, reals, cond, batch_gpu, latents=z, **cfg.D_loss_args)
            G_loss = tf.reduce_mean(G_loss)
            D_loss = tf.reduce_mean(D_loss)
            G_reg = tf.reduce_mean(G_reg) if g_reg_on and G_reg is not None else None
            D_reg = tf.reduce_mean(D_reg) if d_reg_on and D_reg is not None else None
            G_opt.register_gradients(G_loss + G_reg if g_fold and G_reg is not None else G_loss, G_t.trainables)
            D_opt.register_gradients(D_loss + D_reg if d_fold and D_reg is not None else D_loss, D_t.trainables)
            stats.G_loss.append(G_loss)
            stats.D_loss.append(D_loss)
            if G_reg is not None:
                if not g_fold:
                    G_reg_opt.register_gradients(G_reg * cfg.G_reg_interval, G_t.trainables)
                stats.G_reg.append(G_reg)
            if D_reg is not None:
                if not d_fold:
                    D_reg_opt.register_gradients(D_reg * cfg.D_reg_interval, D_t.trainables)
                stats.D_reg.append(D_reg)

    ops = dnnlib.EasyDict()
    ops.G_train = G_opt.apply_updates()
    ops.D_train = D_opt.apply_updates()
    ops.G_reg = G_reg_opt.apply_updates() if stats.G_reg and not g_fold else None
    ops.D_reg = D_reg_opt.apply_updates() if stats.D_reg and not d_fold else None
    ops.G_reg_folded = bool(stats.G_reg) and g_fold      # its value is fetched with the main step
    ops.D_reg_folded = bool(stats.D_reg) and d_fold
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


def ema_beta(batch_size, ema_kimg, rampup, cur_nimg):
    """Gs <- G + (Gs - G) * beta after a minibatch: a half-life of ema_kimg, or with rampup > 0 of
    at most rampup * the images shown before it (StyleGAN2-ADA's ramp-up: early on G moves fast,
    and a long average would keep Gs near the untrained network)."""
    half_life = ema_kimg * 1000.0
    if rampup > 0:
        half_life = min(half_life, cur_nimg * rampup)
    return 0.5 ** (batch_size / half_life) if half_life > 0 else 0.0


def training_loop(*,
                  G_args,             # Generator build kwargs (func_name + options); geometry comes from the data.
                  D_args,             # Discriminator build kwargs, likewise.
                  dataset_args,       # training.dataset.load_dataset kwargs (tfrecord_dir, resolution, buffers).
                  G_loss_args,        # training.loss.G_loss kwargs (loss, pl_weight).
                  D_loss_args,        # training.loss.D_loss kwargs (loss, reg, gamma).
                  batch_size,         # Global minibatch: num_gpus x batch_gpu x accumulation rounds.
                  batch_gpu,          # Per-device minibatch of one round.
                  num_gpus,           # Towers, one per device.
                  device_type,        # "gpu", or "cpu" for virtual CPU devices.
                  device_ids,         # Device numbers of the towers (len num_gpus).
                  total_kimg,         # Length: thousands of real images shown.
                  kimg_per_tick,      # One progress line every this many kimg.
                  snapshot_ticks,     # Snapshot, fakes and metrics every this many ticks; 0 = only at the end.
                  keep_snapshots,     # Keep the newest N network snapshots; 0 = all.
                  G_lrate,            # Adam learning rate of G.
                  D_lrate,            # Adam learning rate of D.
                  beta1,              # Adam beta1 (both).
                  beta2,              # Adam beta2 (both).
                  epsilon,            # Adam epsilon (both).
                  G_reg_interval,     # Lazy G regularization every N minibatches; 1 = not lazy (in the G step).
                  D_reg_interval,     # Lazy D regularization every N minibatches; 1 = not lazy (in the D step).
                  d_steps,            # D steps per G step (each a minibatch of reals); 1 = alternate.
                  clip_grad_norm,     # Clip each step's gradients to this global norm; 0 = off.
                  G_smoothing_kimg,   # Half-life of the Gs moving average; 0 = Gs copies G.
                  G_smoothing_rampup, # Half-life at most this fraction of the images shown so far; 0 = off.
                  mirror_augment,     # Flip reals horizontally with probability 1/2.
                  metrics,            # Metric names (metrics/metric_defaults.py) at each snapshot.
                  seed,               # Seed of numpy and TF randomness.
                  grid_size,          # (columns, rows) of the fakes grids.
                  tf_config,          # tflib.init_tf config dict.
                  run_dir=None,       # Where to write; None = submit_config.run_dir.
                  submit_config=None, # dnnlib.submission run config (when submitted).
                  resume=None,        # Network snapshot of ours to continue from (its state lies beside it).
                  pretrained_pkl=None,  # Network pickle (ours or official) to initialize from, by name.
                  max_ticks=None,     # Stop after this many ticks (tests); None = run to total_kimg.
                  metric_args=None,   # Extra metric kwargs (tests: fewer images).
                  options_to_save=None):  # Resolved options, written to training_options.json.
    """Train G and D in run_dir (default: the submitted run's). The keywords come from
    training.options.loop_kwargs() (the recipe table); the loop has no defaults of its own."""
    from training import validation
    checked = dict(batch_size=batch_size, batch_gpu=batch_gpu, num_devices=num_gpus, total_kimg=total_kimg,
                   kimg_per_tick=kimg_per_tick, keep_snapshots=keep_snapshots, g_lr=G_lrate, d_lr=D_lrate,
                   ema_kimg=G_smoothing_kimg, ema_rampup=G_smoothing_rampup, g_reg_interval=G_reg_interval,
                   d_reg_interval=D_reg_interval,
                   grid_size=grid_size, metrics=list(metrics), g_loss=G_loss_args.get("loss"),
                   d_loss=D_loss_args.get("loss"), d_reg=D_loss_args.get("reg"), d_steps=d_steps,
                   clip_grad_norm=clip_grad_norm, augment=D_loss_args.get("augment"))
    validation.validate(train={k: v for k, v in checked.items() if v is not None})
    assert len(device_ids) == num_gpus, (device_ids, num_gpus)
    run_dir = run_dir or submit_config.run_dir
    tflib.init_tf(tf_config)
    if options_to_save is not None:
        save_options(run_dir, options_to_save)
    cfg = dnnlib.EasyDict(G_loss_args=dict(G_loss_args), D_loss_args=dict(D_loss_args),
                          minibatch_multiplier=batch_size // (batch_gpu * num_gpus),
                          G_lrate=G_lrate, D_lrate=D_lrate, beta1=beta1, beta2=beta2, epsilon=epsilon,
                          G_reg_interval=G_reg_interval, D_reg_interval=D_reg_interval, d_steps=d_steps,
                          clip_grad_norm=clip_grad_norm or None)
    snapshot.remove_stale_temporaries(run_dir)
    abort_file = os.path.join(run_dir, "abort.txt")
    if os.path.exists(abort_file):   # It stopped the previous session; rerunning means continue.
        os.remove(abort_file)

    # Set-up: progress, data, networks, graph, fixed sample latents.
    progress = resume_progress(resume, seed)
    devices = ["/%s:%d" % (device_type, i) for i in device_ids]
    layouts = validation.takes_layouts(validation.family_of(G_args.get("func_name")))
    training_set = load_training_set(dataset_args, mirror_augment, (seed + progress.cur_nimg) % (1 << 31), layouts)
    G, D, Gs = build_networks(G_args, D_args, training_set, devices[0], resume or pretrained_pkl)
    if cfg.G_loss_args.get("segmenter"):
        cfg.G_loss_args["segmenter"] = load_segmenter(cfg.G_loss_args["segmenter"], training_set, devices[0])
    ops = build_training_graph(G, D, devices, batch_gpu, *reader_inputs(training_set), cfg)
    with tf.device(devices[0]):
        Gs_beta = tf.placeholder(tf.float32, [], name="Gs_beta")
        Gs_update = Gs.setup_as_moving_average_of(G, beta=Gs_beta)
    tflib.init_uninitialized_vars()
    extra_vars = state_variables([G, D, Gs])
    restore_state_variables(progress, extra_vars)
    grid = sample_grid(progress, G, training_set, grid_size)
    if progress.cur_nimg == 0:
        with reading_records(dataset_args):
            reals_np = training_set.get_minibatch_np(min(grid_size[0] * grid_size[1], 64))[0]
        visuals.save_image_grid(reals_np, os.path.join(run_dir, "reals.png"),
                                drange=training_set.dynamic_range, grid_size=None)
        visuals.save_fakes(Gs, grid.latents, grid.cond, run_dir, "init", grid_size, G_args)
    training_set.configure(batch_gpu)  # After the grid: get_minibatch_np reconfigures the reader.

    def write_snapshot():
        state_out = dict(seed=seed, grid_latents=grid.latents, grid_labels=grid.cond[0], grid_cond=grid.cond, cur_nimg=progress.cur_nimg,
                         cur_tick=progress.cur_tick, elapsed_time=progress.elapsed(),
                         np_rng_state=progress.rng.get_state(),
                         tf_vars=dict(zip([v.name for v in extra_vars], tflib.run(extra_vars))))
        return snapshot.save_snapshot(run_dir, progress.cur_nimg // 1000, (G, D, Gs), state_out, keep=keep_snapshots)

    # The loop: minibatches until a tick is due, then the tick line, snapshots and metrics.
    print("Training for %g kimg (from %g) with batch %d = %d device(s) x %d x %d rounds..."
          % (total_kimg, progress.cur_nimg / 1000, batch_size, num_gpus, batch_gpu, cfg.minibatch_multiplier))
    summary_writer = tf.summary.FileWriter(run_dir)
    total_nimg = int(total_kimg * 1000)
    progress.start_tick()
    minibatch_count = progress.cur_nimg // batch_size
    sums = dict(G_loss=[], D_loss=[], G_reg=[], D_reg=[])
    last_snapshot = None
    done = progress.cur_nimg >= total_nimg
    while not done:
        with reading_records(dataset_args):
            run_minibatch(ops, cfg, minibatch_count, sums)
        tflib.run(Gs_update, {Gs_beta: ema_beta(batch_size, G_smoothing_kimg, G_smoothing_rampup, progress.cur_nimg)})
        minibatch_count += 1
        progress.cur_nimg += batch_size
        check_finite(sums, run_dir, progress.cur_nimg)
        abort = os.path.exists(abort_file)
        done = progress.cur_nimg >= total_nimg or abort
        if progress.cur_nimg < progress.tick_start_nimg + kimg_per_tick * 1000 and not done:
            continue

        progress.cur_tick += 1
        report_tick(progress, sums, total_nimg)
        if snapshot_ticks and (progress.cur_tick % snapshot_ticks == 0 or done):
            last_snapshot = write_snapshot()
            visuals.save_fakes(Gs, grid.latents, grid.cond, run_dir, "%06d" % (progress.cur_nimg // 1000),
                               grid_size, G_args)
            if metrics:  # As run_metrics.py does; each result is appended to run_dir/metric-<name>.txt.
                values = metric_base.evaluate_metrics(
                    metrics, last_snapshot, run_dir=run_dir, dataset_args=dict(dataset_args, shuffle_mb=0),
                    num_gpus=num_gpus if device_type == "gpu" else 1, **(metric_args or {}))
                for name, value in values.items():
                    autosummary.autosummary("Metrics/" + name, value)
        autosummary.save_summaries(summary_writer, progress.cur_nimg // 1000)
        summary_writer.flush()
        sums = {k: [] for k in sums}
        progress.start_tick()
        if max_ticks is not None and progress.cur_tick >= max_ticks:
            break
        if abort:
            print("abort.txt found in %s: stopped after a snapshot." % run_dir)

    if progress.cur_nimg >= total_nimg:
        last_snapshot = dnnlib.util.atomic_write_pickle((G, D, Gs), os.path.join(run_dir, "network-final.pkl"))
    summary_writer.close()
    return dnnlib.EasyDict(cur_nimg=progress.cur_nimg, cur_tick=progress.cur_tick, last_snapshot=last_snapshot,
                           state_vars=extra_vars, networks=(G, D, Gs))


# ----------------------------------------------------------------------------
# The loop's phases.


class Progress:
    """Images shown, ticks, time and the numpy RNG of a run; from the state file beside the
    resumed snapshot, or fresh."""

    def __init__(self, state, seed):
        self.state = state
        self.cur_nimg = state["cur_nimg"] if state else 0
        self.cur_tick = state["cur_tick"] if state else 0
        self.elapsed_before = state["elapsed_time"] if state else 0.0
        self.rng = np.random.RandomState(seed)
        if state:
            self.rng.set_state(state["np_rng_state"])
        self.start_time = time.time()
        self.start_tick()

    def start_tick(self):
        self.tick_start_nimg, self.tick_start_time = self.cur_nimg, time.time()

    def elapsed(self):
        return self.elapsed_before + (time.time() - self.start_time)


def resume_progress(resume, seed):
    state = snapshot.load_state(snapshot.state_path_for(resume)) if resume is not None else None
    progress = Progress(state, seed)
    # Graph-mode op RNG cannot be saved; reseed it from (seed, progress) so a resumed run is
    # deterministic given where it resumed.
    tf.set_random_seed((seed * 1000003 + progress.cur_nimg) % (1 << 31))
    np.random.seed(progress.rng.randint(1 << 31))
    return progress


def load_training_set(dataset_args, mirror_augment, seed, layouts=False):
    """The reader; with layouts (a layout family's networks) it also serves one-hot layouts."""
    from training import dataset as dataset_lib
    training_set = dataset_lib.load_dataset(verbose=True, mirror_augment=mirror_augment, seed=seed,
                                            layouts="onehot" if layouts else None, **dataset_args)
    print("Dataset: %s, %d channels, %dx%d, %d label dims"
          % (dataset_args.get("tfrecord_dir"), training_set.shape[0], training_set.shape[1],
             training_set.shape[2], training_set.label_size))
    return training_set


def build_networks(G_args, D_args, training_set, device, source):
    """G, D and Gs on device, their geometry from the stored records (resolution = width, ratio =
    height / width: true non-square records; padded squares train as squares), initialized from
    source (a snapshot or pickle) when given."""
    geometry = dict(num_channels=training_set.shape[0], resolution=training_set.resolution,
                    ratio=training_set.shape[1] / training_set.shape[2], c_dim=training_set.label_size)
    if training_set.layouts:    # A layout family: slots and categories from the dataset.
        geometry.update(max_segments=training_set.max_segments,
                        num_categories=int(training_set.layout_info["num_categories"]))
    with tf.device(device):
        G = tflib.Network("G", **dict(G_args, **geometry))
        D = tflib.Network("D", **dict(D_args, **geometry))
        Gs = G.clone("Gs")
    if source:
        print("Loading networks from %s" % source)
        for dst, values in zip((G, D, Gs), load_network_values(source)):
            copied, total = set_network_values(dst, values)
            print("  %s: %d of %d variables copied" % (dst.name, copied, total))
    G.print_layers()
    D.print_layers()
    return G, D, Gs


def reader_inputs(training_set):
    """(get_reals, get_fake_cond) for build_training_graph, from the reader. The conditioning
    (loss.as_cond) is the labels, or with layouts (labels, layout, segments): the fakes of the G
    step then render the layouts of another minibatch of reals."""
    def get_reals(tower):
        element = training_set.get_minibatch_tf()
        reals = process_reals(element[0], training_set.dynamic_range, False)  # Mirrored by the reader.
        if not training_set.layouts:
            return reals, element[1]
        from training import segmenter
        return reals, (element[1],) + tuple(segmenter.layout_inputs(element[2]))

    def get_fake_cond(tower, n):
        if training_set.layouts:
            return get_reals(tower)[1]
        return training_set.get_random_labels_tf(n)
    return get_reals, get_fake_cond


def load_segmenter(path, training_set, device):
    """The frozen segmenter of the semantic-matching loss (scripts/train_segmenter.py), checked
    against the dataset's categories."""
    from training import misc
    try:
        with tf.device(device):
            net = misc.load_pkl(path)
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, AttributeError, ImportError, KeyError) as error:
        raise UserError("--segmenter %s: cannot load it (%s: %s)" % (path, type(error).__name__, error)) from None
    categories = int(training_set.layout_info["num_categories"])
    if not isinstance(net, tflib.Network) or net.output_shape[1] != categories:
        raise UserError("--segmenter %s: expected a segmenter network of %d categories (the dataset's), got %s"
                        % (path, categories, getattr(net, "output_shape", type(net).__name__)))
    print("Semantic matching: segmenter %s" % path)
    return net


def restore_state_variables(progress, extra_vars):
    if not progress.state:
        return
    by_name = {v.name: v for v in extra_vars}
    restore = {by_name[n]: val for n, val in progress.state["tf_vars"].items() if n in by_name}
    tflib.set_vars(restore)
    print("Resumed at kimg %.3f, tick %d (%d of %d optimizer/state variables restored)"
          % (progress.cur_nimg / 1000, progress.cur_tick, len(restore), len(extra_vars)))


def sample_grid(progress, G, training_set, grid_size):
    """Fixed latents and conditioning (loss.as_cond) of the fakes grids (kept across resumes, so
    grids compare); a layout family renders the layouts of a minibatch of reals."""
    state = progress.state
    if state and "grid_latents" in state:
        return dnnlib.EasyDict(latents=state["grid_latents"], cond=state.get("grid_cond", (state["grid_labels"],)))
    num = grid_size[0] * grid_size[1]
    latents = progress.rng.randn(num, *G.input_shape[1:]).astype(np.float32)
    if training_set.layouts:
        from training import segmenter
        _, labels, layout = training_set.get_minibatch_np(num)
        cond = (labels,) + tuple(segmenter.layout_inputs_np(layout["segments"], layout["categories"], layout["depths"]))
        return dnnlib.EasyDict(latents=latents, cond=cond)
    labels = training_set.get_random_labels_np(num) if training_set.label_size else np.zeros([num, 0], np.float32)
    return dnnlib.EasyDict(latents=latents, cond=(labels,))


def run_minibatch(ops, cfg, minibatch_count, sums):
    """One minibatch: per accumulation round [G, [G reg]], D, [D reg]; losses appended to sums.
    G steps on every d_steps-th minibatch only (d_steps D steps per G step); folded (non-lazy)
    regularizers are fetched with their main step."""
    g_step = minibatch_count % cfg.d_steps == 0
    g_count = minibatch_count // cfg.d_steps
    run_g_reg = g_step and ops.G_reg is not None and g_count % cfg.G_reg_interval == 0
    run_d_reg = ops.D_reg is not None and minibatch_count % cfg.D_reg_interval == 0
    for _round in range(cfg.minibatch_multiplier):
        if g_step:
            run_step(ops, "G", run_g_reg, sums)
        run_step(ops, "D", run_d_reg, sums)


def run_step(ops, net, run_lazy_reg, sums):
    """net's ("G" or "D") main step with its folded regularizer, then its lazy one when due."""
    train, loss, reg, reg_value, folded = (ops[net + part] for part in ("_train", "_loss", "_reg", "_reg_value",
                                                                        "_reg_folded"))
    fetched = tflib.run([train, loss] + ([reg_value] if folded else []))
    sums[net + "_loss"].append(fetched[1])
    if folded:
        sums[net + "_reg"].append(fetched[2])
    if run_lazy_reg:
        sums[net + "_reg"].append(tflib.run([reg, reg_value])[1])


@contextlib.contextmanager
def reading_records(dataset_args):
    """A record whose payload is damaged (the framing is checked before training) surfaces only
    when the reader reaches it: one line naming the dataset instead of a TF traceback. Other
    InvalidArgumentErrors are not about the data and propagate unchanged."""
    try:
        yield
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as error:
        message = str(error.message).splitlines()[0]
        if not isinstance(error, tf.errors.DataLossError) and not any(
                word in message for word in ("record", "Example", "PNG", "JPEG", "decode", "Decode")):
            raise
        raise UserError("dataset %s has a damaged record (%s); reconvert it with dataset_tool.py"
                        % (dataset_args.get("tfrecord_dir"), message)) from None


def check_finite(sums, run_dir, cur_nimg):
    bad = [k for k, v in sums.items() if v and not np.isfinite(v[-1])]
    if bad:
        last = snapshot.latest_resumable(run_dir)
        raise NonFiniteLossError(
            "non-finite %s at kimg %.1f: training stopped; the last good snapshot is %s; "
            "lower --g-lr/--d-lr or raise --gamma and resume"
            % (", ".join(bad), cur_nimg / 1000, last[0] if last else "none (no snapshot yet)"))


def report_tick(progress, sums, total_nimg):
    """The tick line and its autosummaries (console and TensorBoard agree)."""
    tick_time = time.time() - progress.tick_start_time
    tick_kimg = (progress.cur_nimg - progress.tick_start_nimg) / 1000.0
    sec_per_kimg = tick_time / max(tick_kimg, 1e-9)
    means = {k: float(np.mean(v)) for k, v in sums.items() if v}
    rss = host_rss_bytes() / 2 ** 30
    devmem = tflib.get_device_memory_bytes() / 2 ** 30
    total_time = progress.elapsed()
    eta = max(total_nimg - progress.cur_nimg, 0) / 1000.0 * sec_per_kimg
    line = ("tick %-5d kimg %-8.1f time %-12s sec/tick %-7.1f sec/kimg %-7.2f img/s %-7.1f ETA %-12s"
            % (progress.cur_tick, progress.cur_nimg / 1000.0, _fmt_time(total_time), tick_time, sec_per_kimg,
               tick_kimg * 1000 / max(tick_time, 1e-9), _fmt_time(eta)))
    line += " ".join("%s %-7.4f" % (k, v) for k, v in means.items())
    line += " host %.2fGB dev %.2fGB" % (rss, devmem)
    print(line, flush=True)
    scalars = {"Progress/tick": progress.cur_tick, "Progress/kimg": progress.cur_nimg / 1000.0,
               "Timing/total_hours": total_time / 3600.0, "Timing/sec_per_tick": tick_time,
               "Timing/sec_per_kimg": sec_per_kimg, "Resources/host_rss_gb": rss,
               "Resources/device_mem_gb": devmem}
    for k, v in means.items():
        scalars["Loss/" + k.replace("_", "/")] = v
    for name, value in scalars.items():
        autosummary.autosummary(name, value)


def save_options(run_dir, options):
    """Write the resolved options as JSON (temporary name + rename)."""
    dnnlib.util.atomic_write(os.path.join(run_dir, "training_options.json"),
                             lambda f: json.dump(options, f, indent=2, sort_keys=True, default=str), mode="w")
