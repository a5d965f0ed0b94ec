"""TensorFlow helpers: session set-up in compat.v1 graph mode, shapes, scopes, variables,
and image conversion. Works on TF 2.x through `tensorflow.compat.v1` and on TF 1.15."""

import os
from typing import Any, Iterable, List, Union

import numpy as np
import tensorflow.compat.v1 as tf

TfExpression = Union[tf.Tensor, tf.Variable, tf.Operation]
"""A TensorFlow expression."""

TfExpressionEx = Union[TfExpression, int, float, np.ndarray]
"""A TensorFlow expression or a value convertible to one."""

_v2_disabled = False


def disable_v2_behavior():
    """Switch TF 2.x to TF 1.x semantics (graph mode, ref variables, v1 shapes) once.

    Must run before the first graph is built; importing dnnlib.tflib does it."""
    global _v2_disabled
    if not _v2_disabled:
        if hasattr(tf, "disable_v2_behavior"):
            # Its "non-resource variables are deprecated" notice is expected here: keep it quiet.
            verbosity = tf.logging.get_verbosity()
            tf.logging.set_verbosity(tf.logging.ERROR)
            try:
                tf.disable_v2_behavior()
            finally:
                tf.logging.set_verbosity(verbosity)
        _v2_disabled = True


def run(*args, **kwargs) -> Any:
    """Run the given expressions in the default session."""
    assert_tf_initialized()
    return tf.get_default_session().run(*args, **kwargs)


def is_tf_expression(x: Any) -> bool:
    """Is x a TensorFlow tensor, variable or operation?"""
    return isinstance(x, (tf.Tensor, tf.Variable, tf.Operation))


def shape_to_list(shape: Iterable) -> List[Union[int, None]]:
    """A TensorShape (or list of Dimensions/ints) as a list of ints, None for unknown dims."""
    shape = tf.TensorShape(shape)
    if shape.dims is None:
        return None
    return [tf.compat.dimension_value(dim) for dim in shape.dims]


def flatten(x: TfExpressionEx) -> TfExpression:
    """x reshaped to one dimension."""
    with tf.name_scope("Flatten"):
        return tf.reshape(x, [-1])


def log2(x: TfExpressionEx) -> TfExpression:
    with tf.name_scope("Log2"):
        return tf.log(x) * np.float32(1.0 / np.log(2.0))


def exp2(x: TfExpressionEx) -> TfExpression:
    with tf.name_scope("Exp2"):
        return tf.exp(x * np.float32(np.log(2.0)))


def lerp(a: TfExpressionEx, b: TfExpressionEx, t: TfExpressionEx) -> TfExpressionEx:
    """Linear interpolation a + (b - a) * t."""
    with tf.name_scope("Lerp"):
        return a + (b - a) * t


def lerp_clip(a: TfExpressionEx, b: TfExpressionEx, t: TfExpressionEx) -> TfExpression:
    """Linear interpolation with t clipped to [0, 1]."""
    with tf.name_scope("LerpClip"):
        return a + (b - a) * tf.clip_by_value(t, 0.0, 1.0)


def absolute_name_scope(scope: str) -> tf.name_scope:
    """A name scope that ignores the current one (a trailing slash makes it absolute)."""
    return tf.name_scope(scope + "/")


def absolute_variable_scope(scope: str, **kwargs) -> tf.variable_scope:
    """A variable scope that ignores the current one, without opening a name scope."""
    kwargs.setdefault("reuse", None)
    return tf.variable_scope(tf.VariableScope(name=scope, **kwargs), auxiliary_name_scope=False)


def usable_cpus() -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup CPU quota (cgroup v2
    cpu.max or v1 cfs_quota_us), which TF's own thread count (the affinity mask) ignores."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    for path, split in (("/sys/fs/cgroup/cpu.max", None), ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "cpu.cfs_period_us")):
        try:
            with open(path) as f:
                fields = f.read().split()
            if split:
                with open(os.path.join(os.path.dirname(path), split)) as f:
                    fields.append(f.read().strip())
            if fields[0] not in ("max", "-1"):
                n = min(n, max(1, -(-int(fields[0]) // int(fields[1]))))
            break
        except (OSError, ValueError, IndexError):
            continue
    return n


def _sanitize_tf_config(config_dict: dict = None) -> dict:
    # Defaults; entries given by the caller override them.
    cfg = dict()
    # One compute thread per usable core in every session the tools make (loop, generation,
    # metrics); a quota-limited container would otherwise get one per visible CPU. bench/train.py:
    # 2 cores, 2/2 threads vs 2/1 vs TF's default, the same step time within noise.
    cfg["intra_op_parallelism_threads"] = usable_cpus()
    cfg["inter_op_parallelism_threads"] = usable_cpus()
    cfg["rnd.np_random_seed"] = None            # Seed for NumPy. None = keep as is.
    cfg["rnd.tf_random_seed"] = "auto"          # Seed for TF. "auto" = drawn from NumPy, None = keep as is.
    cfg["env.TF_CPP_MIN_LOG_LEVEL"] = "1"       # 0 = all TF logging, 1 = hide info, 2 = hide warnings, 3 = hide errors.
    cfg["graph_options.place_pruned_graph"] = True  # Build only the ops a session actually runs.
    cfg["gpu_options.allow_growth"] = True      # Take GPU memory as needed instead of all at once.
    cfg["allow_soft_placement"] = True          # Fall back to another device when an op has no kernel for the requested one.

    # Older keys that official configs use.
    if config_dict and "env.TF_CPP_MIN_LOG_LEVEL" not in config_dict and "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        cfg["env.TF_CPP_MIN_LOG_LEVEL"] = os.environ["TF_CPP_MIN_LOG_LEVEL"]
    if config_dict is not None:
        cfg.update(config_dict)
    return cfg


def init_tf(config_dict: dict = None) -> None:
    """Initialise TF for graph mode: v2 behaviour off, seeds, logging, a default session.

    Safe to call repeatedly; only the first call with no default session creates one."""
    if tf.get_default_session() is not None:
        return

    cfg = _sanitize_tf_config(config_dict)
    for key, value in cfg.items():
        fields = key.split(".")
        if fields[0] == "env":
            assert len(fields) == 2
            os.environ[fields[1]] = str(value)

    disable_v2_behavior()

    np_random_seed = cfg["rnd.np_random_seed"]
    if np_random_seed is not None:
        np.random.seed(np_random_seed)
    tf_random_seed = cfg["rnd.tf_random_seed"]
    if tf_random_seed == "auto":
        tf_random_seed = np.random.randint(1 << 31)
    if tf_random_seed is not None:
        tf.set_random_seed(tf_random_seed)

    create_session(cfg, force_as_default=True)


def assert_tf_initialized():
    """Fail with a clear message when no default session exists."""
    if tf.get_default_session() is None:
        raise RuntimeError("No default TensorFlow session found. Please call dnnlib.tflib.init_tf().")


def create_session(config_dict: dict = None, force_as_default: bool = False) -> tf.Session:
    """A tf.Session from a dict of dotted ConfigProto field names ('gpu_options.allow_growth')."""
    disable_v2_behavior()
    cfg = _sanitize_tf_config(config_dict)
    config_proto = tf.ConfigProto()
    for key, value in cfg.items():
        fields = key.split(".")
        if fields[0] in ("rnd", "env"):
            continue
        obj = config_proto
        for field in fields[:-1]:
            obj = getattr(obj, field)
        if fields[-1] == "device_count":  # e.g. {"CPU": 2} for virtual CPU devices.
            for dev, count in value.items():
                obj.device_count[dev] = count
        else:
            setattr(obj, fields[-1], value)
    session = tf.Session(config=config_proto)

    if force_as_default:
        # Enter the session's context for good, as a `with` block that never ends would.
        session._default_session = session.as_default()
        session._default_session.enforce_nesting = False
        session._default_session.__enter__()
    return session


def init_uninitialized_vars(target_vars: List[tf.Variable] = None) -> None:
    """Run the initializers of those target variables (default: all global ones) that are
    not yet initialized, in one session call."""
    assert_tf_initialized()
    if target_vars is None:
        target_vars = tf.global_variables()
    target_vars = list(target_vars)
    if not target_vars:
        return

    with tf.control_dependencies(None):
        checks = [tf.is_variable_initialized(var) for var in target_vars]
    flags = run(checks)
    init_ops = [var.initializer for var, done in zip(target_vars, flags) if not done]
    if init_ops:
        run(init_ops)


def _setter_for(var: tf.Variable):
    # One placeholder + assign per variable and graph, cached so repeated set_vars calls
    # do not grow the graph.
    graph = var.graph
    cache = getattr(graph, "_tflib_setters", None)
    if cache is None:
        cache = graph._tflib_setters = {}
    key = var.name
    if key not in cache:
        with tf.control_dependencies(None), absolute_name_scope(var.name.split(":")[0] + "_setter"):
            value = tf.placeholder(var.dtype, var.shape, "new_value")
            cache[key] = (value, tf.assign(var, value))
    return cache[key]


def set_vars(var_to_value_dict: dict) -> None:
    """Assign numpy values to variables in one session call: {tf.Variable: np.ndarray}."""
    assert_tf_initialized()
    ops = []
    feed = {}
    for var, value in var_to_value_dict.items():
        assert is_tf_expression(var)
        placeholder, op = _setter_for(var)
        ops.append(op)
        feed[placeholder] = value
    if ops:
        run(ops, feed)


def create_var_with_large_initial_value(initial_value: np.ndarray, *args, **kwargs):
    """A variable initialised from a large numpy array without embedding the array in the
    graph (a GraphDef is limited to 2 GB): created with zeros, then assigned."""
    assert_tf_initialized()
    assert isinstance(initial_value, np.ndarray)
    zeros = tf.zeros(initial_value.shape, initial_value.dtype)
    var = tf.Variable(zeros, *args, **kwargs)
    run(var.initializer)
    set_vars({var: initial_value})
    return var


def convert_images_from_uint8(images, drange=(-1, 1), nhwc_to_nchw=False):
    """uint8 images in [0, 255] to float32 in drange; optionally NHWC to NCHW."""
    images = tf.cast(images, tf.float32)
    if nhwc_to_nchw:
        images = tf.transpose(images, [0, 3, 1, 2])
    return images * ((drange[1] - drange[0]) / 255) + drange[0]


def convert_images_to_uint8(images, drange=(-1, 1), nchw_to_nhwc=False, shrink=1):
    """Float NCHW images in drange to uint8 in [0, 255], rounding to nearest.

    shrink > 1 averages shrink x shrink pixel blocks first; nchw_to_nhwc transposes."""
    images = tf.cast(images, tf.float32)
    if shrink > 1:
        # Block mean through a reshape: NCHW avg_pool has no CPU kernel.
        s = shape_to_list(images.shape)
        images = tf.reshape(images, [-1, s[1], s[2] // shrink, shrink, s[3] // shrink, shrink])
        images = tf.reduce_mean(images, axis=[3, 5])
    if nchw_to_nhwc:
        images = tf.transpose(images, [0, 2, 3, 1])
    scale = 255 / (drange[1] - drange[0])
    images = images * scale + (0.5 - drange[0] * scale)
    return tf.saturate_cast(images, tf.uint8)


def list_gpus() -> list:
    """The physical GPUs TensorFlow sees (tf.config PhysicalDevice list; empty without GPU or
    when TF cannot list them). Does not create the runtime's devices, so virtual-device setup
    may still follow."""
    try:
        return tf.config.experimental.list_physical_devices("GPU")
    except (RuntimeError, ValueError):
        return []


def tower_devices(num_towers: int) -> List[str]:
    """Device names for num_towers towers: '/gpu:i' when a GPU is visible, else '/cpu:0' for
    every tower (CPU-only machines, tests). Whether enough GPUs exist is the caller's check."""
    if num_towers is None or num_towers < 1:
        raise ValueError(f"num_gpus must be >= 1, got {num_towers}")
    has_gpu = bool(list_gpus())
    return ["/gpu:%d" % i if has_gpu else "/cpu:0" for i in range(num_towers)]


def get_device_memory_bytes() -> int:
    """Peak bytes in use on the first GPU, 0 when there is none or TF cannot tell."""
    try:
        if not list_gpus():
            return 0
        return int(tf.config.experimental.get_memory_info("GPU:0")["peak"])
    except Exception:  # Older TF or no memory stats: report nothing rather than fail the run.
        return 0
