"""Legacy (TF-1) network pickles made by the tests themselves: a StyleGAN2-shaped module
source written the TF-1 way, the official pickle state of G, D and Gs with variables from
numpy, and a numpy forward pass of the same tiny networks to check what the loaded networks
compute."""

import copyreg
import pickle

import numpy as np

from dnnlib.tflib.network import Network

# Sizes (deliberately unequal): z 6, w 5, feature maps 4, RGB, 4x4, 2 style layers.
LATENT, DLATENT, NF, CHANNELS, RES, NUM_WS = 6, 5, 4, 3, 4, 2

# TF-1 source in the shape of StyleGAN2's networks_stylegan2.py: `import tensorflow as tf`,
# `import tensorflow.contrib`, tf.get_variable, Dimension.value, tf.rsqrt, tf.to_float,
# tf.random_normal, tf.VERSION, np.fromstring/tostring, tf.contrib.layers norms, a
# tf.contrib reference in a branch that does not run, and old kwarg names.
LEGACY_SOURCE = '''\
"""Tiny StyleGAN2-style networks, TF 1.x."""

import numpy as np
import tensorflow as tf
import tensorflow.contrib  # requires TensorFlow 1.x!
import dnnlib
import dnnlib.tflib as tflib
from dnnlib.tflib.ops.upfirdn_2d import upsample_2d, downsample_2d, upsample_conv_2d, conv_downsample_2d
from dnnlib.tflib.ops.fused_bias_act import fused_bias_act
from training import misc

_TF_VERSION = tf.VERSION
_ONE = np.fromstring(np.array([1.0], dtype=np.float32).tostring(), dtype=np.float32)[0]

def get_weight(shape, gain=1, use_wscale=True, lrmul=1, weight_var='weight'):
    fan_in = np.prod(shape[:-1])
    he_std = gain / np.sqrt(fan_in)
    init_std = 1.0 / lrmul
    runtime_coef = he_std * lrmul
    init = tf.initializers.random_normal(0, init_std)
    return tf.get_variable(weight_var, shape=shape, initializer=init) * runtime_coef

def dense_layer(x, fmaps, gain=1, lrmul=1, weight_var='weight'):
    if len(x.shape) > 2:
        x = tf.reshape(x, [-1, np.prod([d.value for d in x.shape[1:]])])
    w = get_weight([x.shape[1].value, fmaps], gain=gain, lrmul=lrmul, weight_var=weight_var)
    w = tf.cast(w, x.dtype)
    return tf.matmul(x, w)

def conv2d_layer(x, fmaps, kernel, gain=1, lrmul=1, weight_var='weight'):
    w = get_weight([kernel, kernel, x.shape[1].value, fmaps], gain=gain, lrmul=lrmul, weight_var=weight_var)
    return tf.nn.conv2d(x, tf.cast(w, x.dtype), data_format='NCHW', strides=[1,1,1,1], padding='SAME')

def apply_bias_act(x, act='linear', alpha=None, gain=None, lrmul=1, bias_var='bias'):
    b = tf.get_variable(bias_var, shape=[x.shape[1]], initializer=tf.initializers.zeros()) * lrmul
    return fused_bias_act(x, b=tf.cast(b, x.dtype), act=act, alpha=alpha, gain=gain)

def modulated_conv2d_layer(x, y, fmaps, kernel, demodulate=True, weight_var='weight', mod_weight_var='mod_weight', mod_bias_var='mod_bias'):
    w = get_weight([kernel, kernel, x.shape[1].value, fmaps], weight_var=weight_var)
    ww = w[np.newaxis] # [BkkIO]
    s = dense_layer(y, fmaps=x.shape[1].value, weight_var=mod_weight_var) # [BI]
    s = apply_bias_act(s, bias_var=mod_bias_var) + 1 # [BI]
    ww *= tf.cast(s[:, np.newaxis, np.newaxis, :, np.newaxis], w.dtype) # [BkkIO]
    if demodulate:
        d = tf.rsqrt(tf.reduce_sum(tf.square(ww), axis=[1,2,3]) + 1e-8) # [BO]
    x *= tf.cast(s[:, :, np.newaxis, np.newaxis], x.dtype) # [BIhw]
    x = tf.nn.conv2d(x, tf.cast(w, x.dtype), data_format='NCHW', strides=[1,1,1,1], padding='SAME')
    if demodulate:
        x *= tf.cast(d[:, :, np.newaxis, np.newaxis], x.dtype) # [BOhw]
    return x

def minibatch_stddev_layer(x, group_size=4, num_new_features=1):
    group_size = tf.minimum(group_size, tf.shape(x)[0])
    s = x.shape # [NCHW]
    y = tf.reshape(x, [group_size, -1, num_new_features, s[1]//num_new_features, s[2], s[3]]) # [GMncHW]
    y = tf.cast(y, tf.float32)
    y -= tf.reduce_mean(y, axis=0, keepdims=True)
    y = tf.reduce_mean(tf.square(y), axis=0)
    y = tf.sqrt(y + 1e-8)
    y = tf.reduce_mean(y, axis=[2,3,4], keepdims=True)
    y = tf.reduce_mean(y, axis=[2])
    y = tf.cast(y, x.dtype)
    y = tf.tile(y, [group_size, 1, s[2], s[3]])
    return tf.concat([x, y], axis=1)

def G_main(latents_in, labels_in, truncation_psi=0.5, truncation_cutoff=None, dlatent_avg_beta=0.995,
        is_training=False, is_validation=False, return_dlatents=False, is_template_graph=False,
        components=dnnlib.EasyDict(), mapping_func='G_mapping', synthesis_func='G_synthesis', **kwargs):
    if 'synthesis' not in components:
        components.synthesis = tflib.Network('G_synthesis', func_name=globals()[synthesis_func], **kwargs)
    num_layers = components.synthesis.input_shape[1]
    dlatent_size = components.synthesis.input_shape[2]
    if 'mapping' not in components:
        components.mapping = tflib.Network('G_mapping', func_name=globals()[mapping_func], dlatent_broadcast=num_layers, **kwargs)
    lod_in = tf.get_variable('lod', initializer=np.float32(0), trainable=False)
    dlatent_avg = tf.get_variable('dlatent_avg', shape=[dlatent_size], initializer=tf.initializers.zeros(), trainable=False)
    dlatents = components.mapping.get_output_for(latents_in, labels_in, is_training=is_training, **kwargs)
    dlatents = tf.cast(dlatents, tf.float32)
    if dlatent_avg_beta is not None and is_training:
        with tf.variable_scope('DlatentAvg'):
            batch_avg = tf.reduce_mean(dlatents[:, 0], axis=0)
            update_op = tf.assign(dlatent_avg, tflib.lerp(batch_avg, dlatent_avg, dlatent_avg_beta))
            with tf.control_dependencies([update_op]):
                dlatents = tf.identity(dlatents)
    if truncation_psi is not None and not is_training:
        with tf.variable_scope('Truncation'):
            layer_idx = np.arange(num_layers)[np.newaxis, :, np.newaxis]
            layer_psi = np.ones(layer_idx.shape, dtype=np.float32)
            if truncation_cutoff is None:
                layer_psi *= truncation_psi
            else:
                layer_psi = tf.where(layer_idx < truncation_cutoff, layer_psi * truncation_psi, layer_psi)
            dlatents = tflib.lerp(dlatent_avg, dlatents, layer_psi)
    images_out = components.synthesis.get_output_for(dlatents, is_training=is_training, force_clean_graph=is_template_graph, **kwargs)
    images_out = tf.identity(images_out, name='images_out')
    if return_dlatents:
        return images_out, dlatents
    return images_out

def G_mapping(latents_in, labels_in, latent_size=512, label_size=0, dlatent_size=512, dlatent_broadcast=None,
        mapping_layers=8, mapping_lrmul=0.01, normalize_latents=True, dtype='float32', **_kwargs):
    latents_in.set_shape([None, latent_size])
    labels_in.set_shape([None, label_size])
    x = tf.to_float(latents_in)
    if normalize_latents:
        with tf.variable_scope('Normalize'):
            x *= tf.rsqrt(tf.reduce_mean(tf.square(x), axis=1, keepdims=True) + 1e-8)
    for layer_idx in range(mapping_layers):
        with tf.variable_scope('Dense%d' % layer_idx):
            x = apply_bias_act(dense_layer(x, fmaps=dlatent_size, lrmul=mapping_lrmul), act='lrelu', lrmul=mapping_lrmul)
    x = tf.contrib.layers.layer_norm(x, begin_norm_axis=-1, begin_params_axis=-1)
    if dlatent_broadcast is not None:
        with tf.variable_scope('Broadcast'):
            x = tf.tile(x[:, np.newaxis], [1, dlatent_broadcast, 1])
    assert x.dtype == tf.as_dtype(dtype)
    return tf.identity(x, name='dlatents_out')

def G_synthesis(dlatents_in, dlatent_size=512, num_channels=3, resolution=4, fmap_base=16, fmap_max=512,
        randomize_noise=True, architecture='skip', **_kwargs):
    assert resolution == 4
    num_layers = 2
    nf = min(fmap_base // 4, fmap_max)
    dlatents_in.set_shape([None, num_layers, dlatent_size])
    dlatents_in = tf.cast(dlatents_in, 'float32')
    noise_inputs = [tf.get_variable('noise0', shape=[1, 1, 4, 4], initializer=tf.initializers.random_normal(), trainable=False)]
    with tf.variable_scope('4x4'):
        with tf.variable_scope('Const'):
            x = tf.get_variable('const', shape=[1, nf, 4, 4], initializer=tf.initializers.random_normal())
            x = tf.tile(x, [tf.shape(dlatents_in)[0], 1, 1, 1])
        with tf.variable_scope('Conv'):
            x = modulated_conv2d_layer(x, dlatents_in[:, 0], fmaps=nf, kernel=3)
            if randomize_noise:
                noise = tf.random_normal([tf.shape(x)[0], 1, x.shape[2], x.shape[3]], dtype=x.dtype)
            else:
                noise = noise_inputs[0]
            noise_strength = tf.get_variable('noise_strength', shape=[], initializer=tf.initializers.zeros())
            x += noise * noise_strength
            x = apply_bias_act(x, act='lrelu')
            x = tf.contrib.layers.instance_norm(x, data_format='NCHW')
        if architecture == 'tf1_only':
            x = tf.contrib.framework.sort(x)
            bytes_in_use = tf.contrib.memory_stats.MaxBytesInUse()
        with tf.variable_scope('ToRGB'):
            x = modulated_conv2d_layer(x, dlatents_in[:, 1], fmaps=num_channels, kernel=1, demodulate=False)
            x = apply_bias_act(x) * _ONE
    images_out = misc.crop_tensor(x, None)
    return tf.identity(images_out, name='images_out')

def D_stylegan2(images_in, labels_in, num_channels=3, resolution=4, label_size=0, fmap_base=16, fmap_max=512,
        mbstd_group_size=4, mbstd_num_features=1, **_kwargs):
    images_in.set_shape([None, num_channels, resolution, resolution])
    labels_in.set_shape([None, label_size])
    images_in = tf.cast(images_in, 'float32')
    nf = min(fmap_base // 4, fmap_max)
    with tf.variable_scope('4x4'):
        with tf.variable_scope('FromRGB'):
            x = apply_bias_act(conv2d_layer(images_in, fmaps=nf, kernel=1), act='lrelu')
        if mbstd_group_size > 1:
            with tf.variable_scope('MinibatchStddev'):
                x = minibatch_stddev_layer(x, mbstd_group_size, mbstd_num_features)
        with tf.variable_scope('Conv'):
            x = apply_bias_act(conv2d_layer(x, fmaps=nf, kernel=3), act='lrelu')
        with tf.variable_scope('Dense0'):
            x = apply_bias_act(dense_layer(x, fmaps=nf), act='lrelu')
    with tf.variable_scope('Output'):
        x = apply_bias_act(dense_layer(x, fmaps=max(labels_in.shape[1], 1)))
        if label_size:
            x = tf.reduce_sum(x * labels_in, axis=1, keepdims=True)
    return tf.identity(x, name='scores_out')
'''

# Static kwargs as official pickles store them (old names: latent_size, dlatent_size, label_size,
# fmap_base, mbstd_num_features).
G_KWARGS = dict(num_channels=CHANNELS, resolution=RES, label_size=0, latent_size=LATENT,
                dlatent_size=DLATENT, mapping_layers=2, fmap_base=4 * NF, fmap_max=NF)
D_KWARGS = dict(num_channels=CHANNELS, resolution=RES, label_size=0, fmap_base=4 * NF, fmap_max=NF,
                mbstd_group_size=2, mbstd_num_features=1)

VARIABLE_SHAPES = dict(
    G_mapping={"Dense0/weight": [LATENT, DLATENT], "Dense0/bias": [DLATENT],
               "Dense1/weight": [DLATENT, DLATENT], "Dense1/bias": [DLATENT],
               "LayerNorm/beta": [DLATENT], "LayerNorm/gamma": [DLATENT]},
    G_synthesis={"noise0": [1, 1, RES, RES], "4x4/Const/const": [1, NF, RES, RES],
                 "4x4/Conv/weight": [3, 3, NF, NF], "4x4/Conv/mod_weight": [DLATENT, NF],
                 "4x4/Conv/mod_bias": [NF], "4x4/Conv/noise_strength": [], "4x4/Conv/bias": [NF],
                 "4x4/Conv/InstanceNorm/beta": [NF], "4x4/Conv/InstanceNorm/gamma": [NF],
                 "4x4/ToRGB/weight": [1, 1, NF, CHANNELS], "4x4/ToRGB/mod_weight": [DLATENT, NF],
                 "4x4/ToRGB/mod_bias": [NF], "4x4/ToRGB/bias": [CHANNELS]},
    G={"lod": [], "dlatent_avg": [DLATENT]},
    D={"4x4/FromRGB/weight": [1, 1, CHANNELS, NF], "4x4/FromRGB/bias": [NF],
       "4x4/Conv/weight": [3, 3, NF + 1, NF], "4x4/Conv/bias": [NF],
       "4x4/Dense0/weight": [NF * RES * RES, NF], "4x4/Dense0/bias": [NF],
       "Output/weight": [NF, 1], "Output/bias": [1]},
)


def random_values(net: str, rng: np.random.RandomState) -> dict:
    """Stored values: nothing at its initial value, so a variable that failed to load shows."""
    return {name: np.asarray(rng.randn(*shape) * 0.7 + (1.0 if name.endswith("gamma") else 0.0), np.float32)
            for name, shape in VARIABLE_SHAPES[net].items()}


def NetworkState(state: dict) -> Network:
    """An unbuilt dnnlib.tflib.network.Network that pickles exactly as an official one whose
    __getstate__ returned `state` (NEWOBJ of the class, then BUILD with the state dict)."""
    obj = object.__new__(Network)
    obj.__reduce_ex__ = lambda protocol: (copyreg.__newobj__, (Network,), state)
    return obj


def network_state(name, func_name, static_kwargs, values, components=None, version=4, source=LEGACY_SOURCE):
    state = dict(version=version, name=name, static_kwargs=dict(static_kwargs), build_module_src=source,
                 build_func_name=func_name, variables=[(k, v) for k, v in values.items()])
    if components is not None:
        state["components"] = components
    return state


def legacy_generator_state(values: dict, name="G") -> dict:
    """values: {'G', 'G_mapping', 'G_synthesis'} -> {local name: array}."""
    mapping = NetworkState(network_state("G_mapping", "G_mapping", dict(G_KWARGS, dlatent_broadcast=NUM_WS),
                                         values["G_mapping"], components={}))
    synthesis = NetworkState(network_state("G_synthesis", "G_synthesis", G_KWARGS, values["G_synthesis"],
                                           components={}))
    return network_state(name, "G_main", G_KWARGS, values["G"], components=dict(mapping=mapping, synthesis=synthesis))


def write_legacy_pickle(path, G_values, D_values, Gs_values, d_version=4):
    """(G, D, Gs) pickled as official network pickles are."""
    nets = (NetworkState(legacy_generator_state(G_values, "G")),
            NetworkState(network_state("D", "D_stylegan2", D_KWARGS, D_values, components={}, version=d_version)),
            NetworkState(legacy_generator_state(Gs_values, "Gs")))
    with open(path, "wb") as file:
        pickle.dump(nets, file, protocol=pickle.HIGHEST_PROTOCOL)


# -- numpy forward passes of LEGACY_SOURCE ---------------------------------------------------

def _lrelu(x):
    return np.where(x >= 0, x, 0.2 * x) * np.sqrt(2)


def _conv2d_same(x, w):
    """Cross-correlation as tf.nn.conv2d NCHW 'SAME', stride 1; w [kh, kw, I, O]."""
    kh, kw = w.shape[:2]
    ph, pw = (kh - 1) // 2, (kw - 1) // 2
    xp = np.pad(x, [(0, 0), (0, 0), (ph, kh - 1 - ph), (pw, kw - 1 - pw)])
    h, w_ = x.shape[2], x.shape[3]
    out = np.zeros([x.shape[0], w.shape[3], h, w_])
    for dy in range(kh):
        for dx in range(kw):
            out += np.einsum("bihw,io->bohw", xp[:, :, dy:dy + h, dx:dx + w_], w[dy, dx])
    return out


def _modconv(x, y, weight, mod_weight, mod_bias, demodulate):
    w = weight / np.sqrt(np.prod(weight.shape[:-1]))
    s = y @ (mod_weight / np.sqrt(mod_weight.shape[0])) + mod_bias + 1              # [B, I]
    x = _conv2d_same(x * s[:, :, None, None], w)
    if demodulate:
        ww = w[None] * s[:, None, None, :, None]                                      # [B, k, k, I, O]
        x = x / np.sqrt((ww ** 2).sum(axis=(1, 2, 3)) + 1e-8)[:, :, None, None]
    return x


def numpy_generator(values: dict, z: np.ndarray, psi=0.5) -> np.ndarray:
    """Images [B, 3, 4, 4] of G_main with randomize_noise=False, truncation psi (all layers)."""
    m, s = values["G_mapping"], values["G_synthesis"]
    x = z.astype(np.float64) / np.sqrt(np.mean(z.astype(np.float64) ** 2, axis=1, keepdims=True) + 1e-8)
    lrmul = 0.01
    for i in range(2):
        w = m["Dense%d/weight" % i]
        x = _lrelu(x @ (w / np.sqrt(w.shape[0]) * lrmul) + m["Dense%d/bias" % i] * lrmul)
    x = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-12)
    x = x * m["LayerNorm/gamma"] + m["LayerNorm/beta"]
    ws = np.repeat(x[:, None], NUM_WS, axis=1)
    avg = values["G"]["dlatent_avg"]
    ws = avg + (ws - avg) * psi

    x = np.tile(s["4x4/Const/const"], [len(z), 1, 1, 1]).astype(np.float64)
    x = _modconv(x, ws[:, 0], s["4x4/Conv/weight"], s["4x4/Conv/mod_weight"], s["4x4/Conv/mod_bias"], True)
    x = x + s["noise0"] * s["4x4/Conv/noise_strength"]
    x = _lrelu(x + s["4x4/Conv/bias"][None, :, None, None])
    mean, var = x.mean(axis=(2, 3), keepdims=True), x.var(axis=(2, 3), keepdims=True)
    x = (x - mean) / np.sqrt(var + 1e-6)
    x = x * s["4x4/Conv/InstanceNorm/gamma"][None, :, None, None] + s["4x4/Conv/InstanceNorm/beta"][None, :, None, None]
    x = _modconv(x, ws[:, 1], s["4x4/ToRGB/weight"], s["4x4/ToRGB/mod_weight"], s["4x4/ToRGB/mod_bias"], False)
    return x + s["4x4/ToRGB/bias"][None, :, None, None]


def numpy_discriminator(values: dict, images: np.ndarray, group=2) -> np.ndarray:
    """Scores [B, 1] of D_stylegan2 (mbstd group 2, one stddev feature)."""
    d = values
    scaled = lambda w: w / np.sqrt(np.prod(w.shape[:-1]))
    x = _lrelu(_conv2d_same(images.astype(np.float64), scaled(d["4x4/FromRGB/weight"]))
               + d["4x4/FromRGB/bias"][None, :, None, None])
    b, c, h, w = x.shape
    y = x.reshape(group, b // group, 1, c, h, w)
    y = np.sqrt(((y - y.mean(axis=0, keepdims=True)) ** 2).mean(axis=0) + 1e-8)    # [M, n, c, h, w]
    y = y.mean(axis=(2, 3, 4))                                                      # [M, n]
    y = np.tile(y[:, :, None, None], [group, 1, h, w])                              # [B, n, h, w]
    x = np.concatenate([x, y], axis=1)
    x = _lrelu(_conv2d_same(x, scaled(d["4x4/Conv/weight"])) + d["4x4/Conv/bias"][None, :, None, None])
    x = _lrelu(x.reshape(b, -1) @ scaled(d["4x4/Dense0/weight"]) + d["4x4/Dense0/bias"])
    return x @ scaled(d["Output/weight"]) + d["Output/bias"]
