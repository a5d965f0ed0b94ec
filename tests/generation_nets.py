"""A generator whose attention maps are known by construction, for the attention-map
rendering tests: k = 2 latents; in layer 0 latent 0 owns the left half of the image when
z[:, 0, 0] > 0 and the right half otherwise; in layer 1 it owns the top half."""

import numpy as np
import tensorflow.compat.v1 as tf


def G_known_maps(latents_in, labels_in, resolution=8, is_training=False, is_validation=False, truncation_psi=0.7,
                 noise_mode="random", is_template_graph=False, components=None):
    k, width = 2, resolution
    latents_in.set_shape([None, k + 1, 4])
    labels_in.set_shape([None, 0])
    gain = tf.get_variable("gain", shape=[3], initializer=tf.initializers.ones())
    level = tf.tanh(tf.reduce_mean(latents_in, axis=[1, 2]))                       # [B]
    images = level[:, None, None, None] * gain[None, :, None, None] * tf.ones([1, 3, width, width])
    left = np.zeros([width, width], np.float32)
    left[:, :width // 2] = 1
    top = left.T.copy()
    sign = tf.cast(latents_in[:, 0, 0] > 0, tf.float32)[:, None, None]              # [B, 1, 1]
    own0 = sign * left + (1 - sign) * (1 - left)                                     # [B, H, W]
    layer0 = tf.stack([own0, 1 - own0], axis=1)                                      # [B, k, H, W]
    layer1 = tf.tile(tf.constant(np.stack([top, 1 - top])[None]), [tf.shape(latents_in)[0], 1, 1, 1])
    maps = tf.stack([layer0, layer1], axis=2)[:, :, :, None]                         # [B, k, 2, 1, H, W]
    return tf.identity(images, name="images_out"), tf.identity(maps, name="maps_out")
