"""autosummary: averages across towers and steps, written to and read back from TensorBoard
event files."""

import glob

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import dnnlib.tflib as tflib
from dnnlib.tflib import autosummary as autosum


@pytest.fixture
def two_cpu_session():
    autosum._py_moments.clear()
    graph = tf.Graph()
    with graph.as_default():
        session = tflib.create_session({"device_count": {"CPU": 2}})
        with session.as_default():
            yield session
        session.close()
    autosum._py_moments.clear()


def _read_events(log_dir):
    """[(step, tag, value)] from every event file in log_dir."""
    records = []
    for path in sorted(glob.glob(log_dir + "/events.out.tfevents.*")):
        for event in tf.train.summary_iterator(path):
            for value in event.summary.value:
                records.append((event.step, value.tag, value.simple_value))
    return records


def test_two_towers_average_and_reset(two_cpu_session, tmp_path):
    placeholders, outputs = [], []
    for device in range(2):
        with tf.device(f"/cpu:{device}"), tf.name_scope(f"tower{device}"):
            x = tf.placeholder(tf.float32, [None], name="x")
            loss = tf.reduce_mean(tf.square(x))  # the per-tower loss, summarised per element
            placeholders.append(x)
            outputs.append(autosum.autosummary("Loss/G/loss", tf.square(x), passthru=loss))
            outputs.append(autosum.autosummary("Loss/never", x, condition=False))
            outputs.append(autosum.autosummary("Loss/positive_only", x, condition=tf.reduce_min(x) > 0))
    assert outputs[0].device.endswith("CPU:0") and outputs[3].device.endswith("CPU:1")
    tflib.init_uninitialized_vars()
    writer = tf.summary.FileWriter(str(tmp_path))
    rng = np.random.RandomState(1)

    def run_steps(num_steps):
        squares, positives = [], []
        for _ in range(num_steps):
            # Unequal tower batches: the average must weight by element count.
            feeds = [rng.randn(3).astype(np.float32), (rng.randn(5) + 0.5).astype(np.float32)]
            tf.get_default_session().run(outputs, dict(zip(placeholders, feeds)))
            squares += [np.square(f.astype(np.float64)) for f in feeds]
            positives += [f.astype(np.float64) for f in feeds if f.min() > 0]
        return np.mean(np.concatenate(squares)), positives

    expected1, positives1 = run_steps(4)
    autosum.autosummary("Metrics/fid", 12.0)
    autosum.autosummary("Metrics/fid", np.array([13.0, 14.0]))
    autosum.autosummary("Metrics/skipped", 5.0, condition=False)
    printed = autosum.get_averages()
    assert printed == pytest.approx(autosum.get_averages())  # peeking does not reset
    written1 = autosum.save_summaries(writer, global_step=100)
    assert written1 == pytest.approx(printed)
    expected2, positives2 = run_steps(3)
    written2 = autosum.save_summaries(writer, global_step=200)
    writer.close()

    records = _read_events(str(tmp_path))
    by_step = {}
    for step, tag, value in records:
        by_step.setdefault(step, {})[tag] = value
    assert by_step[100]["Loss/G/loss"] == pytest.approx(expected1, rel=1e-6)
    assert by_step[100]["Metrics/fid"] == pytest.approx(13.0)
    # After saving, only the new steps count.
    assert by_step[200]["Loss/G/loss"] == pytest.approx(expected2, rel=1e-6)
    assert "Metrics/fid" not in by_step[200]
    for step in (100, 200):
        assert "Loss/never" not in by_step[step] and "Metrics/skipped" not in by_step[step]
    for step, positives in ((100, positives1), (200, positives2)):
        if positives:
            assert by_step[step]["Loss/positive_only"] == pytest.approx(np.mean(np.concatenate(positives)), rel=1e-6)
        else:
            assert "Loss/positive_only" not in by_step[step]
    assert positives1 or positives2  # the seed gives at least one all-positive batch
    assert written2["Loss/G/loss"] == pytest.approx(expected2, rel=1e-6)
    assert not any(name.startswith("Autosummary/Loss/never") for name in
                   [v.name for v in tf.global_variables()])


def test_passthru_value_and_late_names(two_cpu_session):
    x = tf.constant([1.0, 2.0, 6.0])
    y = autosum.autosummary("A/x", x)
    session = tf.get_default_session()
    tflib.init_uninitialized_vars()
    np.testing.assert_array_equal(session.run(y), [1.0, 2.0, 6.0])
    assert autosum.save_summaries(None) == pytest.approx({"A/x": 3.0})
    # A name added after the first save is picked up by the next one.
    z = autosum.autosummary("A/z", tf.constant(4.0))
    session.run([y, z])
    assert autosum.get_stats()["A/x"].std == pytest.approx(np.std([1.0, 2.0, 6.0]))
    assert autosum.save_summaries(None) == pytest.approx({"A/x": 3.0, "A/z": 4.0})
    assert autosum.save_summaries(None) == {}
    assert autosum.autosummary("Py/value", 2.5) == 2.5


def test_inside_cond_and_while_loop(two_cpu_session):
    # Accumulators are created outside the control-flow context (else cond/while would
    # own them); the updates run only where the branch or iteration does.
    flag = tf.placeholder(tf.bool, [])
    x = tf.constant(2.0)
    out = tf.cond(flag, lambda: autosum.autosummary("C/in_cond", x * 3), lambda: x)
    loop = tf.while_loop(lambda i: i < 4, lambda i: [autosum.autosummary("C/loop", tf.cast(i, tf.float32),
                                                                         passthru=i + 1)], [tf.constant(0)])
    tflib.init_uninitialized_vars()
    session = tf.get_default_session()
    session.run(out, {flag: True})
    session.run(out, {flag: False})
    assert session.run(loop) == 4
    assert autosum.save_summaries(None) == pytest.approx({"C/in_cond": 6.0, "C/loop": np.mean([0, 1, 2, 3])})
