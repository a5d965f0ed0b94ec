"""Perceptual path length (Karras et al. 2019; REFERENCE.md §7): LPIPS distance between
images at nearby points t, t+eps of random latent interpolations, divided by eps², with
the 1st-99th percentile kept. 'w' space lerps the mapped latents, 'z' space slerps z."""

import re

import numpy as np
import tensorflow.compat.v1 as tf

import dnnlib.tflib as tflib
from dnnlib.util import UserError
from metrics import metric_base


def normalize(v):
    return v / tf.sqrt(tf.reduce_sum(tf.square(v), axis=-1, keepdims=True))


def slerp(a, b, t):
    """Spherical interpolation of unit-normalised a, b (t broadcasts over the last axis)."""
    a, b = normalize(a), normalize(b)
    d = tf.reduce_sum(a * b, axis=-1, keepdims=True)
    p = t * tf.math.acos(d)
    c = normalize(b - d * a)
    return normalize(a * tf.math.cos(p) + c * tf.math.sin(p))


def filter_percentiles(distances, lo=1, hi=99):
    """Mean of the distances between the lo-th ('lower') and hi-th ('higher') percentiles."""
    distances = np.asarray(distances, dtype=np.float64)
    lo_val = np.percentile(distances, lo, method="lower")
    hi_val = np.percentile(distances, hi, method="higher")
    return float(np.mean(distances[(distances >= lo_val) & (distances <= hi_val)]))


def _noise_vars(network):
    # Per-layer constant noise inputs: 'noise<i>' variables that are not trained.
    trainables = set(getattr(network, "trainables", {}).values())
    return [var for name, var in network.vars.items()
            if re.fullmatch(r"noise\d+", name.split("/")[-1]) and var not in trainables]


def _fixed_noise_kwargs(network):
    """Kwargs that make the generator read its constant noise variables instead of fresh noise:
    both images of a pair must see the same noise, or PPL measures noise / eps²."""
    static = network.static_kwargs
    if static.get("noise_mode") in ("const", "none") or static.get("local_noise", True) is False:
        return {}                              # Built with fixed or no noise already.
    if network.accepts_kwarg("randomize_noise"):
        return dict(randomize_noise=False)     # StyleGAN2 spelling.
    if network.accepts_kwarg("noise_mode"):
        return dict(noise_mode="const")        # GANsformer spelling.
    raise UserError("PPL: generator %s has no randomize_noise / noise_mode option, so the two images of a "
                    "pair cannot share their noise inputs" % network.name)


class PPL(metric_base.MetricBase):
    def __init__(self, epsilon=1e-4, space="w", sampling="end", crop=True, feature_net="vgg16_zhang_perceptual.pkl",
                 **kwargs):
        if space not in ("z", "w"):
            raise ValueError("space must be 'z' or 'w', got %r" % space)
        if sampling not in ("full", "end"):
            raise ValueError("sampling must be 'full' or 'end', got %r" % sampling)
        super().__init__(feature_net=feature_net, **kwargs)
        self.epsilon = epsilon
        self.space = space
        self.sampling = sampling
        self.crop = crop

    def _interpolated_images(self, Gs, Gs_kwargs, minibatch):
        """Images at t and t+eps for `minibatch` pairs, interleaved [2*minibatch, C, H, W]."""
        Gs_kwargs = {k: v for k, v in Gs_kwargs.items() if k not in ("randomize_noise", "noise_mode")}
        latents = tf.random_normal([minibatch * 2] + Gs.input_shape[1:])
        lerp_t = tf.random_uniform([minibatch], 0.0, 1.0 if self.sampling == "full" else 0.0)
        labels = self._random_labels_tf(Gs, minibatch)
        labels = tf.reshape(tf.tile(labels, [1, 2]), [minibatch * 2, -1])

        # Two ways into w: GANsformer-style top-level kwargs (return_ws / take_ws), or
        # StyleGAN2-style mapping and synthesis components.
        if Gs.accepts_kwarg("take_ws"):
            fixed_noise = _fixed_noise_kwargs(Gs)

            def to_w(z):
                return Gs.get_output_for(z, labels, return_ws=True, return_as_list=True, **Gs_kwargs)[-1]

            def synthesize(w):
                return Gs.get_output_for(w, labels, take_ws=True, return_as_list=True, **fixed_noise,
                                         **Gs_kwargs)[0]
            noise_vars = _noise_vars(Gs)
        elif "mapping" in Gs.components and "synthesis" in Gs.components:
            fixed_noise = _fixed_noise_kwargs(Gs.components.synthesis)

            def to_w(z):
                return Gs.components.mapping.get_output_for(z, labels, **Gs_kwargs)

            def synthesize(w):
                return Gs.components.synthesis.get_output_for(w, return_as_list=True, **fixed_noise, **Gs_kwargs)[0]
            noise_vars = _noise_vars(Gs.components.synthesis)
        else:
            raise UserError("PPL needs a generator with a mapping network (take_ws / return_ws kwargs or "
                            "mapping + synthesis components); %s has neither" % Gs.name)

        def t_shape(x):  # lerp_t broadcast over all but the batch axis.
            return tf.reshape(lerp_t, [-1] + [1] * (len(x.shape) - 1))

        if self.space == "w":
            w01 = tf.cast(to_w(latents), tf.float32)
            w0, w1 = w01[0::2], w01[1::2]
            w_e0 = tflib.lerp(w0, w1, t_shape(w0))
            w_e1 = tflib.lerp(w0, w1, t_shape(w0) + self.epsilon)
            w_e01 = tf.reshape(tf.stack([w_e0, w_e1], axis=1), [-1] + tflib.shape_to_list(w01.shape)[1:])
        else:
            z0, z1 = latents[0::2], latents[1::2]
            z_e0 = slerp(z0, z1, t_shape(z0))
            z_e1 = slerp(z0, z1, t_shape(z0) + self.epsilon)
            w_e01 = to_w(tf.reshape(tf.stack([z_e0, z_e1], axis=1), [-1] + Gs.input_shape[1:]))

        # Re-draw the constant noise once per minibatch, so both images of a pair share it.
        with tf.control_dependencies([var.initializer for var in noise_vars]):
            return tf.cast(synthesize(w_e01), tf.float32)

    def _evaluate(self, Gs, Gs_kwargs, num_gpus):
        distance_measure = metric_base.load_feature_net(self.feature_net, self._nets_dir)
        exprs = []
        for tower, device in enumerate(metric_base.list_devices(num_gpus)):
            with tf.device(device):
                Gs_tower = Gs if tower == 0 else Gs.clone()
                measure_tower = distance_measure if tower == 0 else distance_measure.clone()
                images = self._interpolated_images(Gs_tower, Gs_kwargs, self.minibatch_per_gpu)
                if self.crop:  # StyleGAN2's face region: rows 3/8-7/8, columns 2/8-6/8.
                    c = int(images.shape[2]) // 8
                    images = images[:, :, c * 3:c * 7, c * 2:c * 6]
                factor = int(images.shape[2]) // 256
                if factor > 1:  # VGG was trained at 224 px: box-downsample to at most 256.
                    s = tflib.shape_to_list(images.shape)
                    images = tf.reshape(images, [-1, s[1], s[2] // factor, factor, s[3] // factor, factor])
                    images = tf.reduce_mean(images, axis=[3, 5])
                images = (images + 1) * (255 / 2)
                dist = measure_tower.get_output_for(images[0::2], images[1::2])
                exprs.append(tf.reshape(dist, [-1]) * (1 / self.epsilon ** 2))
        with tf.device("/cpu:0"):
            distances_expr = tf.concat(exprs, axis=0)
        distances = self._run_in_minibatches(distances_expr, "pairs")
        self._report_result(filter_percentiles(distances))
