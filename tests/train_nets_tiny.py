"""Tiny stand-in G and D for the training tests: build functions for tflib.Network (their
source travels in pickles, so this module imports only numpy, tf and nothing else), and a
plain Python wrapper for the loss-formula tests that need no Network at all."""

import numpy as np
import tensorflow.compat.v1 as tf


def G_tiny(latents_in, labels_in, num_channels=3, resolution=8, c_dim=0, latent_size=6,
           num_layers=2, is_training=False, is_validation=False, return_ws=False, **_kwargs):
    """z [B, latent_size] -> ws [B, num_layers, latent_size] -> images [B, C, R, R] through
    one dense layer per output; returns (images, zero maps[, ws])."""
    latents_in.set_shape([None, latent_size])
    labels_in.set_shape([None, c_dim])
    w_map = tf.get_variable("map_weight", [latent_size, latent_size],
                            initializer=tf.initializers.random_normal(0, 1.0 / np.sqrt(latent_size)))
    ws = tf.tile(tf.matmul(latents_in, w_map)[:, None, :], [1, num_layers, 1])   # [B, L, D]
    ws = tf.identity(ws, name="ws")
    w_img = tf.get_variable("img_weight", [latent_size, num_channels * resolution * resolution],
                            initializer=tf.initializers.random_normal(0, 0.5 / np.sqrt(latent_size)))
    bias = tf.get_variable("img_bias", [num_channels, 1, 1], initializer=tf.initializers.zeros())
    h = tf.reduce_mean(ws, axis=1)                                                 # [B, D]
    images = tf.reshape(tf.matmul(h, w_img), [-1, num_channels, resolution, resolution]) + bias
    images = tf.identity(images, name="images_out")
    maps = tf.zeros([1], name="maps_out")
    return (images, maps, ws) if return_ws else (images, maps)


def D_tiny(images_in, labels_in, num_channels=3, resolution=8, c_dim=0, hidden=8,
           linear=False, **_kwargs):
    """images [B, C, R, R] -> scores [B, 1]: a linear map (linear=True, so ∂D/∂x is the
    weight) or one hidden lrelu layer."""
    images_in.set_shape([None, num_channels, resolution, resolution])
    labels_in.set_shape([None, c_dim])
    x = tf.reshape(images_in, [-1, num_channels * resolution * resolution])
    n_in = num_channels * resolution * resolution
    if not linear:
        w0 = tf.get_variable("hidden_weight", [n_in, hidden],
                             initializer=tf.initializers.random_normal(0, 1.0 / np.sqrt(n_in)))
        b0 = tf.get_variable("hidden_bias", [hidden], initializer=tf.initializers.zeros())
        x = tf.nn.leaky_relu(tf.matmul(x, w0) + b0, 0.2)
        n_in = hidden
    w1 = tf.get_variable("out_weight", [n_in, 1], initializer=tf.initializers.random_normal(0, 1.0 / np.sqrt(n_in)))
    b1 = tf.get_variable("out_bias", [1], initializer=tf.initializers.zeros())
    return tf.identity(tf.matmul(x, w1) + b1, name="scores_out")


class FuncNet:
    """Just enough of tflib.Network for training.loss: input_shapes and get_output_for,
    running a build function under one reused variable scope."""

    def __init__(self, name, func, input_shapes, **static_kwargs):
        self.name, self.func, self.input_shapes, self.static_kwargs = name, func, input_shapes, static_kwargs
        self._built = False

    def get_output_for(self, *inputs, return_as_list=False, **dynamic_kwargs):
        kwargs = dict(self.static_kwargs, **dynamic_kwargs)
        with tf.variable_scope(self.name, reuse=tf.AUTO_REUSE):
            outs = self.func(*inputs, **kwargs)
        outs = list(outs) if isinstance(outs, (tuple, list)) else [outs]
        return outs if return_as_list else (outs[0] if len(outs) == 1 else tuple(outs))
