"""Crash safety: SIGKILL at random moments, then resume; and exact restoration of the
optimizer state, counters and networks from a snapshot."""

import glob
import os
import pickle
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import dnnlib.tflib as tflib
from training import misc, snapshot
from training.training_loop import NonFiniteLossError, training_loop
from tests import train_nets_runner as runner

RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train_nets_runner.py")


def _start(run_dir, dataset, total_kimg, log_path, g_lr=0.002):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=runner.REPO)
    log = open(log_path, "w")
    return subprocess.Popen([sys.executable, RUNNER, run_dir, dataset, str(total_kimg), str(g_lr)],
                            stdout=log, stderr=subprocess.STDOUT, cwd=runner.REPO, env=env), log


def _check_all_snapshots_load(run_dir):
    """Every network pickle loads as (G, D, Gs) and every state file unpickles."""
    snaps = snapshot.list_snapshots(run_dir)
    for _kimg, path in snaps:
        with tf.Graph().as_default(), tflib.create_session().as_default():
            G, D, Gs = misc.load_network_pkl(path)
            assert G.name == "G" and D.name == "D" and Gs.name == "Gs"
        state = snapshot.load_state(snapshot.state_path_for(path))
        assert state["cur_nimg"] // 1000 == _kimg
    return snaps


def _resumed_at(log_text):
    match = re.search(r"Resumed at kimg ([\d.]+), tick (\d+) \((\d+) of (\d+) ", log_text)
    return None if match is None else (float(match.group(1)), int(match.group(2)), int(match.group(3)), int(match.group(4)))


def test_sigkill_at_random_moments_then_resume(tmp_path):
    dataset = runner.make_color_dataset(str(tmp_path / "color"))
    run_dir = str(tmp_path / "run")
    os.makedirs(run_dir)
    rnd = np.random.RandomState(int(time.time()) % 1000)
    last_kimg = None
    for attempt in range(3):
        before = snapshot.latest_resumable(run_dir)
        # Read now: the attempt may prune this snapshot (keep-last-3) before it is killed.
        before_kimg = snapshot.load_state(before[1])["cur_nimg"] / 1000 if before is not None else None
        proc, log = _start(run_dir, dataset, 100000, str(tmp_path / ("log%d.txt" % attempt)))
        # Wait for the first tick of this attempt, then kill at a random moment after it.
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None:
            text = open(log.name).read()
            if "tick " in text:
                break
            time.sleep(0.1)
        time.sleep(rnd.uniform(0.0, 1.5))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        log.close()
        text = open(log.name).read()
        assert "tick " in text, text[-2000:]
        if before is not None:   # This attempt resumed from the snapshot that was newest.
            kimg, _tick, restored, total = _resumed_at(text)
            assert kimg == before_kimg
            assert restored == total and total > 0
        snaps = _check_all_snapshots_load(run_dir)
        assert snaps, "no snapshot after attempt %d" % attempt
        assert len(snaps) <= 3                          # keep_snapshots
        if last_kimg is not None:
            assert snaps[-1][0] >= last_kimg            # Progress never goes backwards.
        last_kimg = snaps[-1][0]

    # Final rerun to completion: resumes from the newest snapshot; ticks keep counting.
    net_path, state_path = snapshot.latest_resumable(run_dir)
    state = snapshot.load_state(state_path)
    proc, log = _start(run_dir, dataset, state["cur_nimg"] / 1000 + 2, str(tmp_path / "final.txt"))
    assert proc.wait(timeout=120) == 0
    log.close()
    text = open(log.name).read()
    kimg, tick, restored, total = _resumed_at(text)
    assert (kimg, tick) == (state["cur_nimg"] / 1000, state["cur_tick"])
    assert restored == total
    final_state = snapshot.load_state(snapshot.latest_resumable(run_dir)[1])
    assert final_state["cur_tick"] == state["cur_tick"] + 2
    assert final_state["cur_nimg"] == state["cur_nimg"] + 2000
    assert os.path.isfile(os.path.join(run_dir, "network-final.pkl"))
    assert not glob.glob(os.path.join(run_dir, ".*.tmp-*"))    # No temporaries left behind.


@pytest.mark.parametrize("keep", [1, 3])
def test_keep_snapshots_is_never_exceeded_and_a_failed_save_keeps_the_newest(tmp_path, monkeypatch, keep):
    """save_snapshot(keep=N) has at most N snapshots on disk at every moment, counted right after
    each rename into place (keep 1: the new one lands before the old one goes, so 2 there), also
    when the save of a new one dies midway (an unpicklable network); the newest one survives."""
    run = str(tmp_path)
    on_disk = []
    real_replace = os.replace

    def replace_and_count(src, dst):
        real_replace(src, dst)
        on_disk.append(len(snapshot.list_snapshots(run)))
    monkeypatch.setattr(snapshot.os, "replace", replace_and_count)
    state = dict(cur_nimg=0, cur_tick=0)
    for kimg in range(1, 5):
        snapshot.save_snapshot(run, kimg, ("G%d" % kimg, "D", "Gs"), dict(state, cur_nimg=kimg * 1000), keep=keep)
        assert [k for k, _ in snapshot.list_snapshots(run)] == list(range(max(1, kimg - keep + 1), kimg + 1))
    assert max(on_disk) == max(keep, 2)
    with pytest.raises(Exception):
        snapshot.save_snapshot(run, 5, (lambda: None, "D", "Gs"), dict(state, cur_nimg=5000), keep=keep)
    kimgs = [k for k, _ in snapshot.list_snapshots(run)]
    assert len(kimgs) <= keep and kimgs[-1] == 4
    assert not glob.glob(os.path.join(run, ".*.tmp-*"))


def test_resume_restores_optimizer_state_counters_and_networks(tmp_path):
    dataset = runner.make_color_dataset(str(tmp_path / "color"))
    run_dir = str(tmp_path / "run")
    os.makedirs(run_dir)
    with tf.Graph().as_default(), tflib.create_session().as_default():
        training_loop(run_dir=run_dir, **runner.loop_kwargs(dataset, 2))
    net_path, state_path = snapshot.latest_resumable(run_dir)
    state = snapshot.load_state(state_path)
    adam = {k: v for k, v in state["tf_vars"].items() if re.search(r"/Train[GD]_opt0(_1)?:0$", k)}  # Adam m, v
    assert adam and any(np.abs(v).sum() > 0 for v in adam.values())   # Real moments were saved.
    assert state["cur_nimg"] == 2000 and state["cur_tick"] == 2
    # Lazy regularization: D's main step every minibatch (125 of 16 images), R1 every 16th.
    counts = {k.split("/")[0]: int(v) for k, v in state["tf_vars"].items() if k.endswith("update_count:0")}
    assert counts == {"TrainG": 125, "TrainD": 125, "RegD": 8}

    with tf.Graph().as_default(), tflib.create_session().as_default():
        # total_kimg reached: the loop builds everything, restores, and trains no further.
        again = training_loop(run_dir=run_dir, resume=net_path, **runner.loop_kwargs(dataset, 2))
        values = dict(zip([v.name for v in again.state_vars], tflib.run(again.state_vars)))
        assert set(values) == set(state["tf_vars"])
        for name, value in state["tf_vars"].items():
            np.testing.assert_array_equal(values[name], value, err_msg=name)
        assert (again.cur_nimg, again.cur_tick) == (2000, 2)
        with open(net_path, "rb") as f:
            saved = pickle.load(f)
        for net, ref in zip(again.networks, saved):
            for name, var in net.vars.items():
                np.testing.assert_array_equal(tflib.run(var), ref.get_var(name), err_msg=net.name + "/" + name)


def test_non_finite_loss_stops_and_keeps_last_good_snapshot(tmp_path):
    dataset = runner.make_color_dataset(str(tmp_path / "color"))
    run_dir = str(tmp_path / "run")
    os.makedirs(run_dir)
    with tf.Graph().as_default(), tflib.create_session().as_default():
        training_loop(run_dir=run_dir, **runner.loop_kwargs(dataset, 1))
    good = snapshot.latest_resumable(run_dir)
    good_bytes = open(good[0], "rb").read()
    # Resume with a huge (finite, so valid) G learning rate: the next step overflows G's weights.
    with tf.Graph().as_default(), tflib.create_session().as_default():
        with pytest.raises(NonFiniteLossError) as info:
            training_loop(run_dir=run_dir, resume=good[0], **runner.loop_kwargs(dataset, 4, g_lr=1e38))
    message = str(info.value)
    assert "non-finite" in message and good[0] in message and "\n" not in message
    assert snapshot.latest_resumable(run_dir)[0] == good[0]
    assert open(good[0], "rb").read() == good_bytes
