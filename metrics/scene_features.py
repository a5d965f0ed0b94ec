"""The offline feature network of the embedded scenes dataset: a small convolutional
classifier (build function for tflib.Network; its source travels in the pickle, so this
module imports only numpy and TensorFlow).

Trained by scripts/train_scene_classifier.py on the scene labels (object count, colours,
shapes, colour-shape pairs, coarse positions) and shipped as metrics/data/scenes_classifier.pkl.
Its penultimate layer gives `fid_scenes` and `pr_scenes`: numbers that rank models on this
dataset with no download, and that are NOT comparable to Inception-based FID/PR."""

import numpy as np
import tensorflow.compat.v1 as tf


def _conv3x3(x, fmaps):
    """3x3 convolution, NCHW, He-initialised; weight [3, 3, Cin, Cout], bias [Cout]."""
    cin = int(x.shape[1])
    w = tf.get_variable("weight", [3, 3, cin, fmaps], initializer=tf.initializers.random_normal(0, np.sqrt(2 / (9 * cin))))
    b = tf.get_variable("bias", [fmaps], initializer=tf.initializers.zeros())
    x = tf.nn.conv2d(x, w, strides=[1, 1, 1, 1], padding="SAME", data_format="NCHW")
    return x + tf.reshape(b, [1, -1, 1, 1])


def _dense(x, fmaps, gain=np.sqrt(2)):
    w = tf.get_variable("weight", [int(x.shape[1]), fmaps],
                        initializer=tf.initializers.random_normal(0, gain / np.sqrt(int(x.shape[1]))))
    b = tf.get_variable("bias", [fmaps], initializer=tf.initializers.zeros())
    return tf.matmul(x, w) + b


def _downsample2x(x):
    """2x2 box average through a reshape (NCHW avg_pool has no CPU kernel)."""
    c, h, w = [int(d) for d in x.shape[1:]]
    return tf.reduce_mean(tf.reshape(x, [-1, c, h // 2, 2, w // 2, 2]), axis=[3, 5])


def scenes_classifier(images_in,                       # uint8-valued images [B, C, H, W], any H and W.
                      num_channels=3,                  # Image channels.
                      resolution=64,                   # Images are area-resized to this size first.
                      widths=(16, 32, 64, 128),        # Conv widths; each stage halves the size.
                      feature_dim=128,                 # Width of the penultimate layer (the features).
                      num_outputs=87,                  # Logits of the training heads (see the script).
                      return_logits=False,             # False: features [B, feature_dim]; True: logits.
                      is_template_graph=False, components=None):
    """Features (or, for training, logits) of scene images."""
    del is_template_graph, components
    images_in.set_shape([None, num_channels, None, None])
    x = tf.cast(images_in, tf.float32) * (2 / 255) - 1
    # Compare plain ints: with v1 shapes `Dimension(None) != 64` is None (falsy), which would skip
    # the resize for run-time placeholders of unknown size.
    height, width = x.shape.as_list()[2:]
    if height != resolution or width != resolution:  # Other sizes, unknown sizes, non-square crops.
        x = tf.transpose(x, [0, 2, 3, 1])
        x = tf.image.resize(x, [resolution, resolution], method=tf.image.ResizeMethod.AREA)
        x = tf.transpose(x, [0, 3, 1, 2])
    x.set_shape([None, num_channels, resolution, resolution])

    for i, fmaps in enumerate(widths):
        with tf.variable_scope("Conv%d" % i):
            x = _downsample2x(tf.nn.leaky_relu(_conv3x3(x, fmaps), 0.2))          # [B, fmaps, R/2^(i+1), ...]
    x = tf.reshape(x, [-1, int(np.prod(x.shape[1:]))])                              # [B, C*h*w]
    with tf.variable_scope("Features"):
        features = tf.nn.leaky_relu(_dense(x, feature_dim), 0.2)                   # [B, feature_dim]
    with tf.variable_scope("Logits"):
        logits = _dense(features, num_outputs, gain=1.0)                           # [B, num_outputs]
    return tf.identity(logits if return_logits else features, name="logits_out" if return_logits else "features_out")
