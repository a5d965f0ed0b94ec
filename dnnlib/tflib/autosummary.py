"""Scalar statistics for TensorBoard, averaged across devices and steps.

`autosummary(name, value)` can be called anywhere: on a tensor from any device or tower
(the statistics accumulate in the graph each time the returned tensor is evaluated) or on a
Python/numpy value (recorded at once). Each name keeps [count, sum, sum of squares] in
float64; `save_summaries()` writes the mean since the previous save as one TensorBoard
scalar per name and starts over. Layout: the tag is the name itself ('Loss/G/loss',
'Progress/kimg', 'Metrics/fid50k'), value = mean over all recorded elements; names with
nothing recorded in the period are not written. `get_averages()` gives the same means to
print, so the console and TensorBoard agree.

    loss = autosummary('Loss/G/loss', loss)   # in the graph, once per tower
    autosummary('Progress/kimg', cur_nimg / 1000.0)
    values = save_summaries(summary_writer, cur_nimg)   # {name: mean}, then reset
"""

import re
from typing import Any, Dict, Optional

import numpy as np
import tensorflow.compat.v1 as tf

from . import tfutil
from ..util import EasyDict

_py_moments: Dict[str, np.ndarray] = {}  # name -> [count, sum, sum of squares] of Python values


def _graph_state(graph: tf.Graph) -> EasyDict:
    state = getattr(graph, "_autosummary_state", None)
    if state is None:
        state = graph._autosummary_state = EasyDict(vars={}, names=None, read=None, read_reset=None,
                                                     extra=None, initialized=False)
    return state


def _scope_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_./-]", "_", name)


def _accumulator(graph: tf.Graph, name: str) -> tf.Variable:
    state = _graph_state(graph)
    if name not in state.vars:
        # Outside any control flow, dependency or tower device: one float64 variable per
        # name on the CPU, shared by all towers (resource variables update atomically).
        with graph.as_default(), tf.control_dependencies(None), tf.device("/cpu:0"), \
                tfutil.absolute_name_scope("Autosummary/" + _scope_name(name)):
            state.vars[name] = tf.Variable(np.zeros(3, np.float64), dtype=tf.float64, trainable=False,
                                           name="moments", use_resource=True)
        # Initialise at once when a session is at hand, so names added after the loop's
        # init_uninitialized_vars() still work; otherwise the loop's initialisation does it.
        # Not while a cond/while_loop is being built: the graph is locked then (deadlock).
        session = tf.get_default_session()
        in_control_flow = getattr(graph, "_get_control_flow_context", lambda: None)() is not None
        if session is not None and session.graph is graph and not in_control_flow:
            session.run(state.vars[name].initializer)
        else:
            state.initialized = False
    return state.vars[name]


def autosummary(name: str, value: Any, passthru: Any = None, condition: Any = True) -> Any:
    """Record `value` (scalar or tensor; tensors count each element) under `name`.

    Tensor value or tensor condition: returns `passthru` (default `value`) as a tensor that
    records the statistics when evaluated (only where `condition` is true). Python/numpy
    value: recorded now (unless `condition` is false); returns `passthru` or `value`."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    result = value if passthru is None else passthru

    if not tfutil.is_tf_expression(value) and not tfutil.is_tf_expression(condition):
        if condition:
            array = np.asarray(value, dtype=np.float64)
            moments = np.array([array.size, array.sum(), np.square(array).sum()], np.float64)
            _py_moments[name] = _py_moments.get(name, np.zeros(3, np.float64)) + moments
        return result

    if isinstance(condition, (bool, np.bool_)) and not condition:
        return result  # nothing is recorded, and no ops are built
    graph = tf.get_default_graph()
    var = _accumulator(graph, name)
    with tf.name_scope("Autosummary_" + _scope_name(name).replace("/", "_")):
        # Reduce on the value's own device; only three numbers travel to the CPU.
        x = tf.cast(tf.convert_to_tensor(value), tf.float64)
        moments = tf.stack([tf.cast(tf.size(x), tf.float64), tf.reduce_sum(x), tf.reduce_sum(tf.square(x))])

        def update():
            with tf.device(var.device):
                return tf.group(var.assign_add(moments, read_value=False))

        if tfutil.is_tf_expression(condition):
            update_op = tf.cond(tf.cast(condition, tf.bool), update, tf.no_op)
        else:
            update_op = update()
        with tf.control_dependencies([update_op]):
            return tf.identity(result)


def finalize_autosummaries() -> None:
    """Build (or rebuild, when names were added) the ops that read the accumulators of the
    default graph and reset them. save_summaries() calls it as needed."""
    graph = tf.get_default_graph()
    state = _graph_state(graph)
    names = sorted(state.vars)
    if state.names == names:
        return
    with tf.control_dependencies(None), tf.device("/cpu:0"), tfutil.absolute_name_scope("Autosummary/_Finalize"):
        if names:
            reads = [state.vars[name].read_value() for name in names]
            state.read = tf.stack(reads)  # peek, without reset
            # Reset only after the values are read (resource reads are snapshots).
            with tf.control_dependencies(reads):
                resets = [state.vars[name].assign(np.zeros(3, np.float64), read_value=False) for name in names]
            state.read_reset = (tf.stack(reads), tf.group(*resets))
        state.extra = tf.summary.merge_all()  # other summaries in the graph (e.g. histograms)
    state.names = names


def _collect_moments(reset: bool) -> Dict[str, np.ndarray]:
    """name -> [count, sum, sum of squares] over Python values and the default graph."""
    totals = {name: m.copy() for name, m in _py_moments.items()}
    graph = tf.get_default_graph()
    state = _graph_state(graph)
    if state.vars:
        finalize_autosummaries()
        if not state.initialized:
            tfutil.init_uninitialized_vars([state.vars[name] for name in state.names])
            state.initialized = True
        values = tfutil.run(state.read_reset)[0] if reset else tfutil.run(state.read)
        for name, moments in zip(state.names, values):
            totals[name] = totals.get(name, np.zeros(3, np.float64)) + moments
    if reset:
        _py_moments.clear()
    return {name: m for name, m in totals.items() if m[0] > 0}


def _means(moments: Dict[str, np.ndarray]) -> Dict[str, float]:
    return {name: float(m[1] / m[0]) for name, m in sorted(moments.items())}


def get_averages() -> Dict[str, float]:
    """{name: mean since the last save}, without resetting (for the console tick line)."""
    return _means(_collect_moments(reset=False))


def get_stats() -> Dict[str, EasyDict]:
    """{name: EasyDict(count, mean, std)} since the last save, without resetting."""
    stats = {}
    for name, (count, total, total_sq) in sorted(_collect_moments(reset=False).items()):
        mean = total / count
        stats[name] = EasyDict(count=int(count), mean=float(mean),
                               std=float(np.sqrt(max(total_sq / count - mean * mean, 0.0))))
    return stats


def save_summaries(file_writer: Optional[Any], global_step: Optional[int] = None) -> Dict[str, float]:
    """Write each name's mean since the previous call as a TensorBoard scalar (tag = name)
    through a tf.summary.FileWriter (None = only reset), reset the statistics, and return
    {name: mean} as written."""
    means = _means(_collect_moments(reset=True))
    if file_writer is not None:
        state = _graph_state(tf.get_default_graph())
        if state.extra is not None:
            file_writer.add_summary(tfutil.run(state.extra), global_step)
        summary = tf.Summary(value=[tf.Summary.Value(tag=name, simple_value=mean) for name, mean in means.items()])
        file_writer.add_summary(summary, global_step)
        file_writer.flush()
    return means
