"""The semantic-matching segmenter of GANsformer2 (issue 14) and its loss and metric math.

GANsformer2's execution stage (layout -> image) adds to G's loss a semantic-matching term: a
segmentation network trained on the dataset's own layouts predicts the per-pixel CATEGORY map of the
generated image, and its cross-entropy against the source layout's category map is added to G's
loss. The same network gives the layout-fidelity metric: mean IoU between its prediction on
generated images and the source layouts, from one confusion matrix accumulated over all images.

Self-contained (numpy and tensorflow.compat.v1 only): network pickles carry this module's source.
Trained by scripts/train_segmenter.py on a dataset's layouts; the embedded scenes' segmenter ships
as metrics/data/scenes_segmenter.pkl.

Axis letters: B batch, C image channels, S layout slots (K+1: slot 0 = background), NC categories
(0 = background), H/W image size, F feature maps.

Layout formats:
  reader (training/dataset.py, layouts="index"/"onehot"): segments int32 [B,H,W] slot index map,
      categories int32 [B,S] (slot 0: 0, empty slots: -1), depths float32 [B,S], onehot float32 [B,S,H,W];
  network side (GANsformer2's G, this loss): layout float32 [B,S,H,W] per-slot masks (one-hot or
      soft), segments float32 [B,S,2] = stack([float(category), depth], -1)."""

import numpy as np
import tensorflow.compat.v1 as tf


# ------------------------------------------------------------------------------------------
# Layout formats: the reader's dict -> the network-side (layout, segments) pair.

def layout_inputs(layout_dict):
    """(layout float32 [B,S,H,W], segments float32 [B,S,2]) from the reader's layout dict (TF).

    Uses `onehot` when the reader serves it (layouts="onehot"), else one-hot encodes `segments`."""
    categories = layout_dict["categories"]                                          # [B,S] int32
    num_slots = categories.shape.as_list()[1]
    if "onehot" in layout_dict:
        layout = tf.cast(layout_dict["onehot"], tf.float32)                          # [B,S,H,W]
    else:
        layout = tf.one_hot(tf.cast(layout_dict["segments"], tf.int32), num_slots, axis=1,
                            dtype=tf.float32)                                        # [B,S,H,W]
    segments = tf.stack([tf.cast(categories, tf.float32), tf.cast(layout_dict["depths"], tf.float32)],
                        axis=-1)                                                     # [B,S,2]
    return layout, segments


def layout_inputs_np(segments_map, categories, depths):
    """Numpy twin of `layout_inputs` on batched reader arrays: segments_map int [B,H,W],
    categories int [B,S], depths float [B,S] -> (layout float32 [B,S,H,W], segments float32 [B,S,2])."""
    segments_map = np.asarray(segments_map).astype(np.int64)
    categories = np.asarray(categories)
    num_slots = categories.shape[1]
    layout = np.eye(num_slots, dtype=np.float32)[segments_map].transpose(0, 3, 1, 2)  # [B,H,W,S] -> [B,S,H,W]
    segments = np.stack([categories.astype(np.float32), np.asarray(depths, np.float32)], axis=-1)  # [B,S,2]
    return layout, segments


def batch_layouts(segment_maps, category_lists, max_segments):
    """Per-image layouts (training/data/layouts.py: segments [H,W] 0..n, categories [n]) -> the
    reader's batched arrays (segments int32 [B,H,W], categories int32 [B,K+1], depths float32 [B,K+1]),
    with the reader's conventions: slot 0 = background (category 0, depth 0); slot i <= n has
    depth i / n (1 = frontmost); empty slots category -1, depth 0."""
    segment_maps = np.asarray(segment_maps).astype(np.int32)
    b, k1 = len(segment_maps), max_segments + 1
    categories = np.full([b, k1], -1, np.int32)
    depths = np.zeros([b, k1], np.float32)
    categories[:, 0] = 0
    for i, cats in enumerate(category_lists):
        n = len(cats)
        if n > max_segments:
            raise ValueError("image %d has %d segments, more than max_segments %d" % (i, n, max_segments))
        categories[i, 1:n + 1] = cats
        depths[i, 1:n + 1] = np.arange(1, n + 1, dtype=np.float32) / max(n, 1)
    return segment_maps, categories, depths


def category_map_np(segments_map, categories):
    """Per-pixel category ids int64 [B,H,W] of reader arrays (segments [B,H,W], categories [B,S]):
    the category of each pixel's slot (-1 where the slot is empty, ignored by `confusion`)."""
    segments_map = np.asarray(segments_map).astype(np.int64)
    categories = np.asarray(categories).astype(np.int64)
    return np.take_along_axis(categories, segments_map.reshape(len(segments_map), -1), axis=1) \
        .reshape(segments_map.shape)


# ------------------------------------------------------------------------------------------
# Semantic-matching loss (TF).

def category_targets(layout, segments, num_categories):
    """Soft per-pixel category targets float32 [B,NC,H,W] = sum_s layout_s * onehot(category_s).

    layout float32 [B,S,H,W] per-slot masks; segments float32 [B,S,2], [...,0] = category id as a
    float (0 background, >= 1 objects, -1 = empty slot: one_hot of -1 is zero, so it adds nothing)."""
    cats = tf.cast(tf.round(segments[:, :, 0]), tf.int32)                             # [B,S]
    onehot = tf.one_hot(cats, num_categories, dtype=tf.float32)                      # [B,S,NC]
    return tf.einsum("bshw,bsc->bchw", tf.cast(layout, tf.float32), onehot)          # [B,NC,H,W]


def semantic_matching_loss(logits, targets):
    """Per-sample cross-entropy float32 [B,1]: the mean over pixels of -sum_c t_c log softmax(logits)_c.

    logits [B,NC,H,W] (the segmenter's), targets [B,NC,H,W] (`category_targets`, same size)."""
    logits.shape.assert_is_compatible_with(targets.shape)
    log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=1)                # [B,NC,H,W]
    ce = -tf.reduce_sum(tf.cast(targets, tf.float32) * log_probs, axis=1)            # [B,H,W]
    return tf.reduce_mean(ce, axis=[1, 2])[:, None]                                  # [B,1]


# ------------------------------------------------------------------------------------------
# Layout-fidelity metric math (numpy).

def confusion(pred_map, target_map, num_categories):
    """Confusion matrix int64 [NC,NC] (rows: target category, columns: predicted) of integer maps
    of one shape; pixels whose target is outside 0..NC-1 (e.g. -1 = void) are ignored. Sum the
    matrices of all batches, then take `mean_iou`."""
    pred = np.asarray(pred_map).astype(np.int64).reshape(-1)
    target = np.asarray(target_map).astype(np.int64).reshape(-1)
    if pred.shape != target.shape:
        raise ValueError("pred_map %s and target_map %s differ in size" % (np.shape(pred_map), np.shape(target_map)))
    keep = (target >= 0) & (target < num_categories)
    pred, target = pred[keep], target[keep]
    if pred.size and (pred.min() < 0 or pred.max() >= num_categories):
        raise ValueError("predicted categories must lie in 0..%d" % (num_categories - 1))
    return np.bincount(target * num_categories + pred, minlength=num_categories ** 2) \
        .reshape(num_categories, num_categories)


def iou_per_category(confusion_matrix):
    """IoU float64 [NC] = TP / (TP + FP + FN) per category; NaN where the category is in neither map."""
    c = np.asarray(confusion_matrix, np.float64)
    tp = np.diag(c)
    union = c.sum(axis=0) + c.sum(axis=1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.maximum(union, 1e-300), np.nan)


def mean_iou(confusion_matrix):
    """Mean IoU over the categories present in the target or the prediction (NaN if none)."""
    iou = iou_per_category(confusion_matrix)
    return float(np.nanmean(iou)) if np.any(np.isfinite(iou)) else float("nan")


# ------------------------------------------------------------------------------------------
# The U-Net. Computed in NHWC inside (measured: TF's CPU convolutions run ~2x faster in NHWC than in
# NCHW; on GPUs grappler's layout optimizer picks the layout); NCHW at the interface like the rest.

def _conv(x, fmaps, kernel=3, gain=np.sqrt(2)):
    """kernel x kernel convolution, NHWC, He-initialised; weight [k, k, Cin, Cout], bias [Cout]."""
    cin = x.shape.as_list()[3]
    w = tf.get_variable("weight", [kernel, kernel, cin, fmaps],
                        initializer=tf.initializers.random_normal(0, gain / np.sqrt(kernel * kernel * cin)))
    b = tf.get_variable("bias", [fmaps], initializer=tf.initializers.zeros())
    return tf.nn.conv2d(x, w, strides=[1, 1, 1, 1], padding="SAME", data_format="NHWC") + b


def _block(x, fmaps, num_convs):
    for i in range(num_convs):
        with tf.variable_scope("Conv%d" % i):
            x = tf.nn.leaky_relu(_conv(x, fmaps), 0.2)
    return x


def _downsample2x(x):
    """2x2 box average, NHWC, any (even) run-time size."""
    s = tf.shape(x)
    c = x.shape.as_list()[3]
    x = tf.reshape(x, [s[0], s[1] // 2, 2, s[2] // 2, 2, c])                           # [B,h/2,2,w/2,2,F]
    return tf.reduce_mean(x, axis=[2, 4])                                            # [B,h/2,w/2,F]


def _upsample2x(x):
    """Nearest-neighbour 2x up-sampling, NHWC, any run-time size."""
    s = tf.shape(x)
    c = x.shape.as_list()[3]
    x = tf.tile(x[:, :, None, :, None, :], [1, 1, 2, 1, 2, 1])                        # [B,h,2,w,2,F]
    return tf.reshape(x, [s[0], s[1] * 2, s[2] * 2, c])                               # [B,2h,2w,F]


def Segmenter(images_in,                  # Images float32 [B, C, H, W] in [-1, 1]; H = W a multiple of 2^depth.
              num_channels=3,             # C.
              num_categories=6,           # NC: output logits per pixel (0 = background).
              base_channels=16,           # Feature maps at full resolution; doubled at each level down.
              max_channels=64,            # Cap on the feature maps of any level.
              depth=3,                    # Down-samplings (levels below the input; >= 1).
              convs_per_block=2,          # 3x3 convs per encoder/decoder block.
              is_template_graph=False, components=None):
    """Per-pixel category logits float32 [B, NC, H, W] of images (a small fully-convolutional U-Net:
    conv blocks, 2x box down-sampling, nearest up-sampling with skip concatenation, 1x1 head)."""
    del is_template_graph, components
    if depth < 1 or convs_per_block < 1 or base_channels < 1 or max_channels < 1 or num_categories < 2:
        raise ValueError("Segmenter: need depth >= 1, convs_per_block >= 1, channels >= 1, num_categories >= 2")
    images_in.set_shape([None, num_channels, None, None])
    height, width = images_in.shape.as_list()[2:]
    for size in (height, width):
        if size is not None and size % 2 ** depth:
            raise ValueError("Segmenter: image size %s is not a multiple of 2^depth = %d" % (size, 2 ** depth))
    fmaps = [min(base_channels << i, max_channels) for i in range(depth + 1)]

    x = tf.transpose(tf.cast(images_in, tf.float32), [0, 2, 3, 1])                   # [B,H,W,C]
    skips = []
    for level in range(depth):                                                       # Encoder.
        with tf.variable_scope("Down%d" % level):
            x = _block(x, fmaps[level], convs_per_block)                             # [B,H/2^l,W/2^l,F_l]
        skips.append(x)
        x = _downsample2x(x)                                                         # [B,H/2^(l+1),...,F_l]
    with tf.variable_scope("Bottom"):
        x = _block(x, fmaps[depth], convs_per_block)                                 # [B,H/2^d,W/2^d,F_d]
    for level in reversed(range(depth)):                                             # Decoder.
        with tf.variable_scope("Up%d" % level):
            x = tf.concat([_upsample2x(x), skips[level]], axis=3)                   # [B,H/2^l,W/2^l,F_l+1 + F_l]
            x = _block(x, fmaps[level], convs_per_block)                             # [B,H/2^l,W/2^l,F_l]
    with tf.variable_scope("Logits"):
        x = _conv(x, num_categories, kernel=1, gain=1.0)                             # [B,H,W,NC]
    logits = tf.transpose(x, [0, 3, 1, 2])                                           # [B,NC,H,W]
    logits.set_shape([None, num_categories, height, width])
    assert logits.dtype == tf.float32
    return tf.identity(logits, name="logits_out")
