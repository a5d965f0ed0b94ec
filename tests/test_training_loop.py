"""The training graph and loop on tiny stand-in networks: multi-device and accumulation
equivalence, reals processing, that training measurably moves G (through the Gs average)
toward the data, TensorBoard scalars, and abort.txt."""

import glob
import os
import time

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import dnnlib
import dnnlib.tflib as tflib
from training import training_loop as tl

TINY_G = "tests.train_nets_tiny.G_tiny"
TINY_D = "tests.train_nets_tiny.D_tiny"
C, R, Z = 3, 4, 6


def _cfg(**kw):
    cfg = dnnlib.EasyDict(G_loss_args=dict(loss="logistic_ns", pl_weight=0.0),
                          D_loss_args=dict(loss="logistic", reg="r1", gamma=5.0),
                          minibatch_multiplier=1, G_lrate=0.01, D_lrate=0.01, beta1=0.0, beta2=0.99,
                          epsilon=1e-8, G_reg_interval=4, D_reg_interval=16)
    cfg.update(kw)
    return cfg


def _one_step(num_devices, batch_gpu, reals_np, z_np, init=None, multiplier=1):
    """Build towers on num_devices virtual CPUs, run G, D and D-reg steps once per round;
    returns (initial values, values after the step) of G and D by name."""
    graph = tf.Graph()
    with graph.as_default():
        sess = tflib.create_session({"device_count": {"CPU": 2}, "rnd.tf_random_seed": None})
        with sess.as_default():
            tf.set_random_seed(1)
            with tf.device("/cpu:0"):
                G = tflib.Network("G", func_name=TINY_G, num_channels=C, resolution=R, latent_size=Z)
                D = tflib.Network("D", func_name=TINY_D, num_channels=C, resolution=R)
            nets = {"G": G, "D": D}
            if init is not None:
                tflib.set_vars({net.vars[k]: init[n][k] for n, net in nets.items() for k in net.vars})
            start = {n: dict(zip(net.vars, tflib.run(list(net.vars.values())))) for n, net in nets.items()}
            # Each round feeds its own slice of the fixed batch (gradient accumulation).
            round_ph = tf.placeholder(tf.int32, [])

            def by_round(arr, tower):
                branches = []
                for r in range(multiplier):
                    lo = (r * num_devices + tower) * batch_gpu
                    branches.append(tf.constant(arr[lo:lo + batch_gpu]))
                return tf.gather(tf.stack(branches), round_ph)

            get_reals = lambda t: (by_round(reals_np, t), tf.zeros([batch_gpu, 0]))
            get_labels = lambda t, n: tf.zeros([n, 0])
            latents_for = lambda t, which, n: by_round(z_np[which], t)
            devices = ["/cpu:%d" % i for i in range(num_devices)]
            ops = tl.build_training_graph(G, D, devices, batch_gpu, get_reals, get_labels,
                                          _cfg(minibatch_multiplier=multiplier), latents_for=latents_for)
            tflib.init_uninitialized_vars()
            for r in range(multiplier):
                tflib.run(ops.G_train, {round_ph: r})
            for r in range(multiplier):
                tflib.run(ops.D_train, {round_ph: r})
            for r in range(multiplier):
                tflib.run(ops.D_reg, {round_ph: r})
            end = {n: dict(zip(net.vars, tflib.run(list(net.vars.values())))) for n, net in nets.items()}
        sess.close()
    return start, end


def test_two_devices_equal_one_device_same_global_batch():
    rnd = np.random.RandomState(0)
    reals = rnd.randn(8, C, R, R).astype(np.float32)
    z = {"G": rnd.randn(8, Z).astype(np.float32), "D": rnd.randn(8, Z).astype(np.float32)}
    start, single = _one_step(1, 8, reals, z)
    _, double = _one_step(2, 4, reals, z, init=start)
    _, accum = _one_step(1, 4, reals, z, init=start, multiplier=2)   # gradient accumulation
    moved = 0
    for net in ("G", "D"):
        for name in single[net]:
            np.testing.assert_allclose(double[net][name], single[net][name], rtol=1e-5, atol=1e-6,
                                       err_msg="%s/%s differs between 2x4 and 1x8" % (net, name))
            np.testing.assert_allclose(accum[net][name], single[net][name], rtol=1e-5, atol=1e-6,
                                       err_msg="%s/%s differs between 1x4x2 rounds and 1x8" % (net, name))
            moved += not np.allclose(single[net][name], start[net][name])
    assert moved >= 4   # The step really changed the weights of both networks.


def test_process_reals_maps_range_and_flips(tf_session):
    x = np.random.RandomState(1).randint(0, 256, size=(64, 1, 2, 3)).astype(np.uint8)
    out = tf_session.run(tl.process_reals(tf.constant(x), [0, 255], mirror_augment=False))
    np.testing.assert_allclose(out, x / 127.5 - 1, atol=1e-6)
    flipped = tf_session.run(tl.process_reals(tf.constant(x), [0, 255], mirror_augment=True))
    same = np.all(flipped == out, axis=(1, 2, 3))
    mirrored = np.all(flipped == out[..., ::-1], axis=(1, 2, 3))
    assert np.all(same | mirrored) and 10 < mirrored.sum() < 54


def test_training_moves_generated_color_to_the_data(tmp_path):
    """On single-colour data the mean colour of Gs's fakes grid moves to the data's colour
    (measured on fakesinit.png vs the last fakes grid the loop wrote)."""
    from PIL import Image
    from tests import train_nets_runner as runner
    dataset = runner.make_color_dataset(str(tmp_path / "color"))
    run_dir = str(tmp_path / "run")
    os.makedirs(run_dir)
    with tf.Graph().as_default(), tflib.create_session().as_default():
        result = tl.training_loop(run_dir=run_dir, **runner.loop_kwargs(
            dataset, 6, g_lr=0.01, G_smoothing_kimg=0.05, snapshot_ticks=6))
    assert result.cur_tick == 6
    target = np.array(runner.COLOR, np.float64)
    mean_color = lambda name: np.asarray(Image.open(os.path.join(run_dir, name)).convert("RGB"),
                                         np.float64).reshape(-1, 3).mean(axis=0)
    before = np.linalg.norm(mean_color("fakesinit.png") - target)
    after = np.linalg.norm(mean_color("fakes000006.png") - target)
    assert before > 60, before          # The untrained G is far from the colour...
    assert after < 0.25 * before, (before, after)   # ...and training brings it close.
    # The tick and snapshot outputs exist: TensorBoard events with the loss scalars.
    events = [f for f in os.listdir(run_dir) if f.startswith("events.out.tfevents")]
    assert events
    tags = set()
    for event in tf.train.summary_iterator(os.path.join(run_dir, events[0])):
        tags.update(v.tag for v in event.summary.value)
    assert {"Loss/G/loss", "Loss/D/loss", "Loss/D/reg", "Timing/sec_per_kimg", "Progress/kimg"} <= tags


@pytest.mark.parametrize("ema_kimg,rampup,cur_nimg", [(0.5, 0.0, 0), (0.5, 0.0, 4000), (10.0, 0.05, 0),
                                                     (10.0, 0.05, 2000), (10.0, 0.05, 400000), (0.0, 0.05, 8000)])
def test_ema_beta_has_the_asked_half_life(ema_kimg, rampup, cur_nimg):
    """beta ** (half-life / batch) = 1/2, with the half-life in images = ema_kimg * 1000, capped by
    rampup * images shown; a zero half-life is beta 0 (Gs copies G)."""
    batch = 16
    beta = tl.ema_beta(batch, ema_kimg, rampup, cur_nimg)
    half_life = ema_kimg * 1000 if rampup == 0 else min(ema_kimg * 1000, rampup * cur_nimg)
    if half_life == 0:
        assert beta == 0.0
    else:
        assert 0 < beta < 1 and abs(beta ** (half_life / batch) - 0.5) < 1e-9


def _gs_distance_to_g(run_dir):
    """Mean |Gs - G| over G's trainables in the last snapshot of run_dir."""
    from training import misc
    with tf.Graph().as_default(), tflib.create_session().as_default():
        G, _, Gs = misc.load_network_pkl(sorted(glob.glob(os.path.join(run_dir, "network-snapshot-*.pkl")))[-1])
        names = sorted(G.trainables)
        values = tflib.run([G.vars[n] for n in names] + [Gs.vars[n] for n in names])
    return np.mean([np.mean(np.abs(a - b)) for a, b in zip(values[:len(names)], values[len(names):])])


def test_ema_rampup_lets_gs_follow_g_early(tmp_path):
    """With a 100-kimg half-life Gs stays near the untrained G over 2 kimg; with the ramp-up
    (half-life <= 5% of the images shown) it follows G closely."""
    from tests import train_nets_runner as runner
    dataset = runner.make_color_dataset(str(tmp_path / "color"))
    distance = {}
    for rampup in (0.0, 0.05):
        run_dir = str(tmp_path / ("run%g" % rampup))
        os.makedirs(run_dir)
        with tf.Graph().as_default(), tflib.create_session().as_default():
            tl.training_loop(run_dir=run_dir, **runner.loop_kwargs(
                dataset, 2, g_lr=0.01, G_smoothing_kimg=100.0, G_smoothing_rampup=rampup, snapshot_ticks=2))
        distance[rampup] = _gs_distance_to_g(run_dir)
    assert distance[0.05] < 0.2 * distance[0.0], distance


def test_abort_file_stops_with_a_snapshot(tmp_path):
    import threading
    from tests import train_nets_runner as runner
    from training import snapshot
    dataset = runner.make_color_dataset(str(tmp_path / "color"))
    run_dir = str(tmp_path / "run")
    os.makedirs(run_dir)
    open(os.path.join(run_dir, "abort.txt"), "w").close()   # A stale one from an earlier session is cleared.

    def abort_after_first_tick():
        while not glob.glob(os.path.join(run_dir, "network-snapshot-*.pkl")):
            time.sleep(0.05)
        open(os.path.join(run_dir, "abort.txt"), "w").close()

    watcher = threading.Thread(target=abort_after_first_tick, daemon=True)
    watcher.start()
    with tf.Graph().as_default(), tflib.create_session().as_default():
        result = tl.training_loop(run_dir=run_dir, **runner.loop_kwargs(dataset, 10000))
    assert result.cur_nimg < 10000 * 1000 and result.cur_tick >= 2
    last = snapshot.latest_resumable(run_dir)
    assert snapshot.load_state(last[1])["cur_nimg"] == result.cur_nimg      # Snapshot at the stop.
    assert not os.path.exists(os.path.join(run_dir, "network-final.pkl"))


def test_attention_rendering_colours_pixels_by_their_latent():
    from training.visuals import palette as latent_palette, render_attention
    rnd = np.random.RandomState(2)
    maps = rnd.rand(2, 3, 4, 2, 5, 5)                 # [B, k, L_att, N, H, W]
    maps[:, :, 1] = 0
    maps[:, 2, 1, :, :, :3] = 1                      # layer 1: latent 2 owns the left columns,
    maps[:, 0, 1, :, :, 3:] = 1                      # latent 0 the rest (a decided layer)
    maps[:, :, 3] = 0
    maps[:, 1, 3, :, :2] = 1                         # last layer: latent 1 owns the top rows,
    maps[:, 2, 3, :, 2:] = 1                         # latent 2 the rest (less decided in layer 2)
    maps /= maps.sum(axis=1, keepdims=True)
    palette = (latent_palette(3) + 1) * 127.5                    # [k, 3] in [0, 255]
    colour = lambda i: palette[i][None, :, None, None]
    rgb = render_attention(maps)                                 # default: the last layer
    assert rgb.shape == (2, 3, 5, 5) and rgb.dtype == np.uint8
    assert np.abs(rgb[:, :, :2] - colour(1)).max() <= 0.5 + 1e-3
    assert np.abs(rgb[:, :, 2:] - colour(2)).max() <= 0.5 + 1e-3
    maps[:, :, 3] = 1.0 / 3                          # now layer 1 is the most decided one
    decided = render_attention(maps, layer=None)
    assert np.abs(decided[:, :, :, :3] - colour(2)).max() <= 0.5 + 1e-3
    assert np.abs(decided[:, :, :, 3:] - colour(0)).max() <= 0.5 + 1e-3


def test_metrics_at_snapshots_go_through_the_metric_entry_point(tmp_path, monkeypatch):
    """At each snapshot the loop evaluates its metrics with metric_base.evaluate_metrics (the
    function run_metrics.py calls), here the offline scene metric on the snapshot just written:
    results go to metric-<name>.txt and to TensorBoard as Metrics/<name>."""
    from metrics import metric_base
    from tests import train_nets_runner as runner
    calls, evaluate = [], metric_base.evaluate_metrics

    def recording(names, network_pkl, **kwargs):
        calls.append((list(names), network_pkl, kwargs))
        return evaluate(names, network_pkl, **kwargs)
    monkeypatch.setattr(metric_base, "evaluate_metrics", recording)
    dataset = runner.make_color_dataset(str(tmp_path / "color"))
    run_dir = str(tmp_path / "run")
    os.makedirs(run_dir)
    with tf.Graph().as_default(), tflib.create_session().as_default():
        result = tl.training_loop(run_dir=run_dir, **runner.loop_kwargs(
            dataset, 1, metrics=["fid_scenes"], metric_args=dict(num_images=16, cache_dir=str(tmp_path / "cache"))))
    assert len(calls) == result.cur_tick == 1
    names, network_pkl, kwargs = calls[0]
    assert names == ["fid_scenes"] and network_pkl == os.path.join(run_dir, "network-snapshot-000001.pkl")
    assert kwargs["run_dir"] == run_dir and kwargs["dataset_args"]["shuffle_mb"] == 0
    with open(os.path.join(run_dir, "metric-fid_scenes.txt")) as f:
        lines = f.read().splitlines()
    assert len(lines) == 1 and float(lines[0].split()[-1]) > 0
    events = [f for f in os.listdir(run_dir) if f.startswith("events.out.tfevents")]
    tags = {v.tag for e in tf.train.summary_iterator(os.path.join(run_dir, events[0])) for v in e.summary.value}
    assert "Metrics/fid_scenes" in tags


def test_damaged_record_payload_is_one_user_error(tmp_path):
    """A flipped byte inside a record's data (its framing intact, so the up-front check passes)
    stops training with one line naming the dataset, not a TF traceback."""
    from dnnlib.util import UserError
    from tests import train_nets_runner as runner
    dataset = runner.make_color_dataset(str(tmp_path / "color"), num=64)
    path = glob.glob(os.path.join(dataset, "*-r03.tfrecords"))[0]
    data = bytearray(open(path, "rb").read())
    record = len(data) // 64                 # equal records: u64 length, u32 CRC, data, u32 CRC
    data[48 * record + 12 + 20] ^= 0xFF      # inside record 48's data (the first is parsed up front)
    open(path, "wb").write(bytes(data))
    run_dir = str(tmp_path / "run")
    os.makedirs(run_dir)
    with tf.Graph().as_default(), tflib.create_session().as_default():
        with pytest.raises(UserError) as info:
            tl.training_loop(run_dir=run_dir, **runner.loop_kwargs(dataset, 1))
    message = str(info.value)
    assert "has a damaged record" in message and dataset in message and "\n" not in message
