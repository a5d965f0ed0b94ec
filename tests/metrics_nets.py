"""Tiny stand-in networks for the metric tests, pickled in the official tflib.Network format:
a generator (GANsformer-style kwargs: return_ws / take_ws / randomize_noise), a feature net
(standing in for inception_v3_features.pkl / vgg16.pkl), a softmax net (for
inception_v3_softmax.pkl) and a perceptual distance (for vgg16_zhang_perceptual.pkl).
The pickles carry this module's source, as official ones carry theirs."""

import numpy as np
import tensorflow.compat.v1 as tf


def _pooled(images, grid):
    """[B, C, H, W] -> [B, C*grid*grid] block means (area resize, any H and W)."""
    x = tf.transpose(tf.cast(images, tf.float32), [0, 2, 3, 1])
    x = tf.image.resize(x, [grid, grid], method=tf.image.ResizeMethod.AREA)
    return tf.reshape(x, [-1, int(images.shape[1]) * grid * grid])


def tiny_generator(latents_in, labels_in, num_components=2, z_dim=4, w_dim=5, num_layers=3, resolution=8,
                   num_channels=3, scale=1.0, is_validation=False, truncation_psi=None, return_ws=False,
                   take_ws=False, randomize_noise=True, is_template_graph=False, components=None):
    """z [B, K, z_dim] -> images [B, C, R, R] (scale * tanh of a linear map of w, plus noise)."""
    del is_validation, is_template_graph, components
    K, L, R, C = num_components, num_layers, resolution, num_channels
    labels_in.set_shape([None, 0])
    if take_ws:
        latents_in.set_shape([None, K, L, w_dim])
        ws = latents_in
    else:
        latents_in.set_shape([None, K, z_dim])
        w_map = tf.get_variable("map/weight", [z_dim, w_dim], initializer=tf.initializers.random_normal())
        w = tf.nn.leaky_relu(tf.tensordot(latents_in, w_map, axes=[[2], [0]]), 0.2)      # [B, K, w_dim]
        ws = tf.tile(w[:, :, np.newaxis, :], [1, 1, L, 1])                                  # [B, K, L, w_dim]
        w_avg = tf.get_variable("dlatent_avg", [w_dim], initializer=tf.initializers.zeros(), trainable=False)
        if truncation_psi is not None and truncation_psi != 1:
            ws = w_avg + (ws - w_avg) * truncation_psi
    w_syn = tf.get_variable("synthesis/weight", [K * L * w_dim, C * R * R],
                            initializer=tf.initializers.random_normal(stddev=0.3))
    images = tf.reshape(tf.matmul(tf.reshape(ws, [-1, K * L * w_dim]), w_syn), [-1, C, R, R])
    strength = tf.get_variable("synthesis/noise_strength", [], initializer=tf.initializers.constant(0.2))
    const_noise = tf.get_variable("synthesis/noise0", [1, 1, R, R], initializer=tf.initializers.random_normal(),
                                  trainable=False)
    noise = tf.random_normal([tf.shape(images)[0], 1, R, R]) if randomize_noise else const_noise
    images = scale * tf.tanh(images + strength * noise)
    images = tf.identity(images, name="images_out")
    maps = tf.zeros([1], name="maps_out")
    if return_ws:
        return images, maps, tf.identity(ws, name="ws_out")
    return images, maps


def feature_net(images_in, num_channels=3, num_features=12, grid=4, softmax=False, is_template_graph=False,
                components=None):
    """uint8-valued images [B, C, H, W] -> [B, num_features] (softmax probabilities if asked)."""
    del is_template_graph, components
    images_in.set_shape([None, num_channels, None, None])
    x = _pooled(images_in, grid) * (2 / 255) - 1
    weight = tf.get_variable("weight", [num_channels * grid * grid, num_features],
                             initializer=tf.initializers.random_normal(stddev=0.5))
    out = tf.matmul(x, weight)
    return tf.nn.softmax(out * 3) if softmax else tf.tanh(out)


def perceptual_distance(images_a, images_b, num_channels=3, grid=4, is_template_graph=False, components=None):
    """Squared distance of block means, images in [0, 255] -> [B] (a quadratic stand-in for LPIPS)."""
    del is_template_graph, components
    images_a.set_shape([None, num_channels, None, None])
    images_b.set_shape([None, num_channels, None, None])
    scale = tf.get_variable("scale", [], initializer=tf.initializers.constant(1.0 / 255))
    diff = (_pooled(images_a, grid) - _pooled(images_b, grid)) * scale
    return tf.reduce_sum(tf.square(diff), axis=1)
