"""TF-1 compatibility for the source code stored in official pickles (REFERENCE.md §10.1).

Official StyleGAN2 / GANsformer pickles carry TF-1 module source (`import tensorflow as tf`,
the TF-1 `contrib.layers` norms and `contrib.memory_stats`, NumPy 1 calls). `patch_tf1_source`
rewrites it so that `tf` is `tf1_compat` below: tensorflow.compat.v1 plus hand-written
contrib norms with the same variable names; Network's import handler applies it to every
unpickled state. Re-saved networks keep the patched source, which imports `tf1_compat` from
here (older re-saves import it from dnnlib.tflib.network, which re-exports it)."""

import re
import types

import tensorflow.compat.v1 as tf

from . import tfutil


def _contrib_layer_norm(inputs, center=True, scale=True, activation_fn=None, reuse=None,
                        variables_collections=None, outputs_collections=None, trainable=True,
                        begin_norm_axis=1, begin_params_axis=-1, scope=None):
    """TF-1 contrib.layers.layer_norm: moments over axes >= begin_norm_axis, variables
    LayerNorm/{beta,gamma} of shape inputs.shape[begin_params_axis:], epsilon 1e-12."""
    with tf.variable_scope(scope, default_name="LayerNorm", values=[inputs], reuse=reuse):
        shape = inputs.shape
        rank = shape.ndims
        norm_axis = begin_norm_axis % rank
        params_axis = begin_params_axis % rank
        params_shape = tfutil.shape_to_list(shape[params_axis:])
        beta = tf.get_variable("beta", params_shape, inputs.dtype.base_dtype, tf.zeros_initializer(),
                               trainable=trainable) if center else None
        gamma = tf.get_variable("gamma", params_shape, inputs.dtype.base_dtype, tf.ones_initializer(),
                                trainable=trainable) if scale else None
        mean, variance = tf.nn.moments(inputs, list(range(norm_axis, rank)), keep_dims=True)
        outputs = tf.nn.batch_normalization(inputs, mean, variance, offset=beta, scale=gamma,
                                            variance_epsilon=1e-12)
        return activation_fn(outputs) if activation_fn is not None else outputs


def _channel_params_shape(inputs, data_format):
    # (channel axis, broadcast shape of per-channel parameters) for NCHW/NC... or N...C.
    rank = inputs.shape.ndims
    channels_first = data_format is not None and data_format.startswith("NC")
    axis = 1 if channels_first else rank - 1
    broadcast = [1] * rank
    broadcast[axis] = tfutil.shape_to_list(inputs.shape)[axis]
    return axis, broadcast


def _contrib_instance_norm(inputs, center=True, scale=True, epsilon=1e-6, activation_fn=None,
                           param_initializers=None, reuse=None, variables_collections=None,
                           outputs_collections=None, trainable=True, data_format="NHWC", scope=None):
    """TF-1 contrib.layers.instance_norm: per-sample, per-channel moments over the spatial
    axes; variables InstanceNorm/{beta,gamma} of shape [C]."""
    with tf.variable_scope(scope, default_name="InstanceNorm", values=[inputs], reuse=reuse):
        axis, broadcast = _channel_params_shape(inputs, data_format)
        channels = broadcast[axis]
        inits = param_initializers or {}
        beta = gamma = None
        if center:
            beta = tf.reshape(tf.get_variable("beta", [channels], inputs.dtype.base_dtype,
                                              inits.get("beta", tf.zeros_initializer()), trainable=trainable), broadcast)
        if scale:
            gamma = tf.reshape(tf.get_variable("gamma", [channels], inputs.dtype.base_dtype,
                                               inits.get("gamma", tf.ones_initializer()), trainable=trainable), broadcast)
        moment_axes = [i for i in range(1, inputs.shape.ndims) if i != axis]
        mean, variance = tf.nn.moments(inputs, moment_axes, keep_dims=True)
        outputs = tf.nn.batch_normalization(inputs, mean, variance, beta, gamma, epsilon)
        return activation_fn(outputs) if activation_fn is not None else outputs


def _contrib_batch_norm(inputs, decay=0.999, center=True, scale=False, epsilon=0.001, activation_fn=None,
                        param_initializers=None, param_regularizers=None, updates_collections=tf.GraphKeys.UPDATE_OPS,
                        is_training=True, reuse=None, variables_collections=None, outputs_collections=None,
                        trainable=True, batch_weights=None, fused=None, data_format="NHWC",
                        zero_debias_moving_mean=False, scope=None, **_unused):
    """TF-1 contrib.layers.batch_norm: batch moments when training (moving-average updates go to
    `updates_collections`), moving moments otherwise; variables BatchNorm/{beta,gamma,
    moving_mean,moving_variance} of shape [C]."""
    with tf.variable_scope(scope, default_name="BatchNorm", values=[inputs], reuse=reuse):
        axis, broadcast = _channel_params_shape(inputs, data_format)
        channels = broadcast[axis]
        dtype = inputs.dtype.base_dtype
        inits = param_initializers or {}
        beta = gamma = None
        if center:
            beta = tf.get_variable("beta", [channels], dtype, inits.get("beta", tf.zeros_initializer()), trainable=trainable)
        if scale:
            gamma = tf.get_variable("gamma", [channels], dtype, inits.get("gamma", tf.ones_initializer()), trainable=trainable)
        moving_mean = tf.get_variable("moving_mean", [channels], dtype, inits.get("moving_mean", tf.zeros_initializer()),
                                      trainable=False)
        moving_variance = tf.get_variable("moving_variance", [channels], dtype,
                                          inits.get("moving_variance", tf.ones_initializer()), trainable=False)
        if is_training:
            moment_axes = [i for i in range(inputs.shape.ndims) if i != axis]
            mean, variance = tf.nn.moments(inputs, moment_axes)
            if updates_collections is not None:
                for var, value in ((moving_mean, mean), (moving_variance, variance)):
                    tf.add_to_collection(updates_collections, tf.assign_sub(var, (var - value) * (1 - decay)))
        else:
            mean, variance = moving_mean, moving_variance
        reshape = lambda t: None if t is None else tf.reshape(t, broadcast)
        outputs = tf.nn.batch_normalization(inputs, reshape(mean), reshape(variance), reshape(beta),
                                            reshape(gamma), epsilon)
        return activation_fn(outputs) if activation_fn is not None else outputs


class _Namespace(types.SimpleNamespace):
    """Attribute bag standing for a TF-1 module below `tf` (path relative to it); a missing
    attribute names the TF-1 API that is not emulated."""

    def __init__(self, path, **attrs):
        super().__init__(**attrs)
        self._path = path

    def __getattr__(self, name):
        raise AttributeError(f"tf.{self._path}.{name} is a TF-1 API that has no TF-2 emulation here")


def _zero_bytes(*_args, **_kwargs):
    # TF-1 contrib.memory_stats ops: TF 2 has no graph op for them; report 0 bytes.
    return tf.constant(0, tf.int64)


class _TF1Compat(types.ModuleType):
    """What `tf` means in patched TF-1 source: tensorflow.compat.v1 plus TF-1 `contrib.layers`
    norms (same variable names), `contrib.memory_stats` (zeros) and `tf.VERSION`."""

    def __init__(self):
        super().__init__("tf1_compat")
        self.VERSION = getattr(tf, "VERSION", None) or tf.version.VERSION
        self.contrib = _Namespace(
            "contrib",
            layers=_Namespace("contrib.layers", layer_norm=_contrib_layer_norm,
                              instance_norm=_contrib_instance_norm, batch_norm=_contrib_batch_norm),
            memory_stats=_Namespace("contrib.memory_stats", MaxBytesInUse=_zero_bytes,
                                    BytesInUse=_zero_bytes, BytesLimit=_zero_bytes))

    def __getattr__(self, name):
        return getattr(tf, name)


tf1_compat = _TF1Compat()

_TF1_SOURCE_PATCHES = [
    # `import tensorflow as tf` -> tensorflow.compat.v1 plus the contrib shim.
    (re.compile(r"^([ \t]*)import tensorflow as tf[ \t]*(#.*)?$", re.M),
     r"\1from dnnlib.tflib.tf1_compat import tf1_compat as tf"),
    # `import tensorflow.contrib  # requires TF 1.x` -> nothing (kept as `pass` for indentation).
    (re.compile(r"^([ \t]*)import tensorflow\.contrib[\w.]*[ \t]*(#.*)?$", re.M),
     r"\1pass  # TF-1 contrib import removed"),
    # NumPy 2 removed the binary mode of fromstring, and tostring.
    (re.compile(r"\b(np|numpy)\.fromstring\("), r"\1.frombuffer("),
    (re.compile(r"\.tostring\(\)"), r".tobytes()"),
]


def patch_tf1_source(source: str) -> str:
    """TF-1 module source rewritten for TF 2.x graph mode (idempotent)."""
    for pattern, replacement in _TF1_SOURCE_PATCHES:
        source = pattern.sub(replacement, source)
    return source
