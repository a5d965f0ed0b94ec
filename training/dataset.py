"""TFRecordDataset: the multi-resolution TFRecord reader (REFERENCE.md §6, StyleGAN2 loader API)
on tf.data in compat.v1 graph mode. Format: training/data/records.py.

Per level of detail (lod = top log2 - level log2) a pipeline: read (shards interleaved round-robin,
which restores the written order so labels line up) -> take(max_images) -> parse/decode
(num_threads in parallel; compact storage decodes PNG/JPEG and box-downsamples) -> zip labels ->
shuffle -> repeat -> prefetch -> batch(placeholder) -> optional mirror; one reinitialisable
iterator switches between them in configure(minibatch_size, lod).

Layouts (GANsformer2; training/data/layouts.py), only when asked for with `layouts=`: each element
gains a third item, a dict (K = max segments per image, dataset.json or `max_segments`):
  segments    int32 [B,H,W]      0 = background, 1..n = segments back to front (mirrored with the image)
  categories  int32 [B,K+1]      slot 0: 0 (background), slots 1..n: the segments' categories, empty: -1
  depths      float32 [B,K+1]    slot i <= n: i / n (0 = background, 1 = frontmost), empty: 0
  onehot      float32 [B,K+1,H,W] (layouts="onehot" only) one_hot(segments, K+1), channel first
Without `layouts` the graph is the one built for datasets that have none."""

import os

import numpy as np
import tensorflow.compat.v1 as tf

import dnnlib
import dnnlib.tflib as tflib
from training.data import records as fmt


class TFRecordDataset:
    def __init__(self,
                 tfrecord_dir,          # Directory holding <name>-rXX.tfrecords[<i>of<n>] (+ labels).
                 resolution=None,       # Top level width to serve; None = the largest available.
                 label_file=None,       # Labels .npy (relative to tfrecord_dir or absolute); None = glob *.labels.
                 max_label_size=0,      # 0 = no labels, 'full' = all columns, n = first n columns.
                 max_images=None,       # Use only the first n images; None = all.
                 repeat=True,           # Repeat forever (training); False = one pass.
                 shuffle_mb=4096,       # Shuffle buffer size in MiB; 0 = no shuffle (keeps file order).
                 prefetch_mb=2048,      # Prefetch buffer in MiB; 0 = none.
                 buffer_mb=256,         # Read buffer per file in MiB.
                 num_threads=2,         # Parallel parse/decode calls.
                 mirror_augment=False,  # Flip each image horizontally with probability 1/2.
                 ratio=None,            # height/width of the content; None = from dataset.json or the shape.
                 seed=None,             # Shuffle / mirror seed; None = nondeterministic.
                 layouts=None,          # None = none; 'index' = segments, categories, depths; 'onehot' = + onehot.
                 max_segments=None):    # K of the served layouts (>= the dataset's); None = the dataset's.
        self.files = fmt.DatasetFiles(tfrecord_dir)
        self.files.check_files()   # Damaged record framing: one line now, not a DataLossError mid-run.
        self.tfrecord_dir = self.files.dir
        self.name = self.files.name
        self.storage = self.files.storage
        self.dtype = "uint8"
        self.dynamic_range = [0, 255]
        self.mirror_augment = bool(mirror_augment)
        if layouts not in (None, False, "index", "onehot"):
            raise dnnlib.UserError("layouts=%r: expected None, 'index' or 'onehot'" % (layouts,))
        self.layouts = layouts or None
        self.layout_info = None   # dataset.json's `layouts` (+ max_segments) when layouts are served.
        self.max_segments = None  # K of the served layouts.
        if self.layouts:
            info = self.files.layout_info()
            self.layout_info = info
            self.max_segments = int(info["max_segments"] if max_segments is None else max_segments)
            if self.max_segments < info["max_segments"]:
                raise dnnlib.UserError("max_segments %d is below the %d segments of some image in %s"
                                       % (self.max_segments, info["max_segments"], self.tfrecord_dir))
        self._seed = seed
        self._tf_minibatch_in = None
        self._tf_labels_var = None
        self._tf_datasets = {}
        self._tf_iterator = None
        self._tf_init_ops = {}
        self._tf_minibatch_np = None
        self._cur_minibatch = -1
        self._cur_lod = -1

        # Levels and shapes.
        available = self.files.available_log2()
        if resolution is None:
            self.resolution_log2 = self.files.top_log2
        else:
            self.resolution_log2 = int(np.round(np.log2(resolution)))
            if 2 ** self.resolution_log2 != resolution or self.resolution_log2 not in available:
                raise dnnlib.UserError("%s has no resolution %s; available: %s" % (
                    self.tfrecord_dir, resolution, ", ".join(str(2 ** l) for l in available)))
        self.resolution = 2 ** self.resolution_log2
        self.shape = self.files.level_shape(self.resolution_log2)
        self.lod_shapes = {self.resolution_log2 - l: self.files.level_shape(l)
                           for l in available if l <= self.resolution_log2}
        for lod, shape in self.lod_shapes.items():
            if shape[0] != self.shape[0] or shape[2] != self.resolution >> lod:
                raise dnnlib.UserError("level r%02d of %s has shape %s, inconsistent with %s; reconvert the dataset"
                                       % (self.resolution_log2 - lod, self.tfrecord_dir, shape, self.shape))
        self.ratio = float(ratio if ratio is not None else self.files.meta.get("ratio", self.shape[1] / self.shape[2]))
        self.num_images_total = self.files.meta.get("num_images")

        # Labels.
        if label_file is not None:
            path = label_file if os.path.isabs(label_file) else os.path.join(self.tfrecord_dir, label_file)
            if not os.path.isfile(path):
                raise dnnlib.UserError("label file %s not found" % path)
            self.files.label_file = path
        labels = self.files.load_labels() if max_label_size != 0 else None
        if labels is None:
            if max_label_size != 0 and label_file is not None:
                raise dnnlib.UserError("no labels in %s" % self.tfrecord_dir)
            labels = np.zeros([1 << 30 if max_images is None else max_images, 0], np.float32)
            self._has_labels = False
        else:
            self._has_labels = True
            if max_label_size != "full":
                labels = labels[:, :int(max_label_size)]
            if max_images is not None:
                labels = labels[:max_images]
            total = self.files.meta.get("num_images")
            wanted = total if max_images is None or total is None else min(total, max_images)
            if wanted is not None and labels.shape[0] < wanted:
                raise dnnlib.UserError("labels %s have %d rows for %d images; reconvert the dataset"
                                       % (self.files.label_file, labels.shape[0], wanted))
        self._np_labels = labels
        self.label_size = labels.shape[1]
        self.label_dtype = labels.dtype.name
        self.label_file = self.files.label_file

        # The tf.data pipelines, one per lod, on the CPU.
        with tf.name_scope("Dataset"), tf.device("/cpu:0"):
            self._tf_minibatch_in = tf.placeholder(tf.int64, name="minibatch_in", shape=[])
            if self._has_labels:
                self._tf_labels_var = tflib.create_var_with_large_initial_value(self._np_labels, name="labels_var")
                labels_ds = tf.data.Dataset.from_tensor_slices(self._tf_labels_var)
            else:
                # No label tensor at all: zip with an empty row per image.
                labels_ds = tf.data.Dataset.from_tensors(tf.zeros([0], tf.float32)).repeat()
            for lod, shape in self.lod_shapes.items():
                dset = self._build_pipeline(lod, shape, labels_ds, max_images, repeat, shuffle_mb, prefetch_mb,
                                            buffer_mb, num_threads)
                self._tf_datasets[lod] = dset
            # Height/width vary with lod, so the shared iterator leaves them unknown (as StyleGAN2).
            any_ds = self._tf_datasets[0]
            shapes = (tf.TensorShape([None, self.shape[0], None, None]), tf.TensorShape([None, self.label_size]))
            if self.layouts:
                k1 = self.max_segments + 1
                shapes += ({"segments": tf.TensorShape([None, None, None]), "categories": tf.TensorShape([None, k1]),
                            "depths": tf.TensorShape([None, k1])},)
                if self.layouts == "onehot":
                    shapes[2]["onehot"] = tf.TensorShape([None, k1, None, None])
            self._tf_iterator = tf.data.Iterator.from_structure(tf.data.get_output_types(any_ds), shapes)
            self._tf_init_ops = {lod: self._tf_iterator.make_initializer(d) for lod, d in self._tf_datasets.items()}

    def _build_pipeline(self, lod, shape, labels_ds, max_images, repeat, shuffle_mb, prefetch_mb, buffer_mb,
                        num_threads):
        compact = self.storage == "compact"
        files = self.files.levels[self.files.top_log2 if compact else self.resolution_log2 - lod]
        read = lambda f: tf.data.TFRecordDataset(f, compression_type="", buffer_size=buffer_mb << 20)
        if len(files) == 1:
            dset = read(files[0])
        else:  # cycle_length = #shards, block 1: round-robin = the writer's order.
            dset = tf.data.Dataset.from_tensor_slices(files).interleave(read, cycle_length=len(files),
                                                                         block_length=1)
        if max_images is not None:
            dset = dset.take(max_images)
        factor = 2 ** (self.files.top_log2 - (self.resolution_log2 - lod)) if compact else 1
        parse_shape = self.files.top_shape if compact else shape
        if self.layouts:
            parse = lambda rec: _parse_record_with_layout(rec, compact, parse_shape, factor, self.max_segments)
            dset = dset.map(parse, num_parallel_calls=num_threads)
            dset = tf.data.Dataset.zip((dset, labels_ds)).map(lambda x, l: (x[0], l, x[1], x[2]))
        else:
            parse = lambda rec: _parse_record(rec, compact, parse_shape, factor)
            dset = dset.map(parse, num_parallel_calls=num_threads)
            dset = tf.data.Dataset.zip((dset, labels_ds))
        bytes_per_item = int(np.prod(shape)) + (shape[1] * shape[2] if self.layouts else 0)
        # Buffers never hold more than one pass of the data: after repeat() a 2 GiB prefetch of a
        # small dataset would otherwise fill with the same images over and over.
        known = [n for n in (self.num_images_total, max_images) if n is not None]
        items = lambda mb: min([((mb << 20) - 1) // bytes_per_item + 1] + known)
        if shuffle_mb > 0:
            dset = dset.shuffle(items(shuffle_mb), seed=self._seed)
        if repeat:
            dset = dset.repeat()
        if prefetch_mb > 0:
            dset = dset.prefetch(items(prefetch_mb))
        dset = dset.batch(self._tf_minibatch_in)
        if self.mirror_augment:
            dset = dset.map(self._mirror)
        if self.layouts:
            dset = dset.map(self._serve_layouts)
        return dset

    def _mirror(self, images, labels, *layout):
        flip = tf.random_uniform([tf.shape(images)[0]], 0, 1.0, seed=self._seed) < 0.5
        images = tf.where(flip, tf.reverse(images, axis=[3]), images)  # v1 where: picks whole rows.
        if layout:  # (segments [B,H,W], categories): the same flip as the image.
            layout = (tf.where(flip, tf.reverse(layout[0], axis=[2]), layout[0]), layout[1])
        return (images, labels) + tuple(layout)

    def _serve_layouts(self, images, labels, segments, categories):
        """Batched (uint8 segments [B,H,W], int32 categories [B,K+1]) -> the layout dict (module docstring)."""
        k1 = self.max_segments + 1
        count = tf.reduce_sum(tf.cast(categories[:, 1:] >= 0, tf.int32), axis=1, keepdims=True)     # [B,1]
        slots = tf.range(k1)[None, :]                                                               # [1,K+1]
        depths = tf.cast(slots, tf.float32) / tf.cast(tf.maximum(count, 1), tf.float32) \
            * tf.cast(slots <= count, tf.float32)                                                   # [B,K+1]
        out = {"segments": tf.cast(segments, tf.int32), "categories": categories, "depths": depths}
        if self.layouts == "onehot":
            out["onehot"] = tf.transpose(tf.one_hot(out["segments"], k1, dtype=tf.float32), [0, 3, 1, 2])  # [B,K+1,H,W]
        return images, labels, out

    def close(self):
        pass

    def configure(self, minibatch_size, lod=0):
        """Use minibatches of minibatch_size at level of detail lod (0 = full resolution)."""
        lod = int(np.floor(lod))
        assert minibatch_size >= 1 and lod in self._tf_datasets, (minibatch_size, lod)
        if self._cur_minibatch != minibatch_size or self._cur_lod != lod:
            self._tf_init_ops[lod].run({self._tf_minibatch_in: minibatch_size})
            self._cur_minibatch = minibatch_size
            self._cur_lod = lod

    def get_minibatch_tf(self):
        """(images uint8 [B,C,H,W], labels [B,label_size]) expressions, + the layout dict when the
        dataset was opened with `layouts`; call configure() first."""
        return self._tf_iterator.get_next()

    def get_minibatch_np(self, minibatch_size, lod=0):
        self.configure(minibatch_size, lod)
        with tf.name_scope("Dataset"):
            if self._tf_minibatch_np is None:
                self._tf_minibatch_np = self.get_minibatch_tf()
            return tflib.run(self._tf_minibatch_np)

    def get_random_labels_tf(self, minibatch_size):
        """Labels of random dataset images [B, label_size] (zeros [B,0] without labels)."""
        with tf.name_scope("Dataset"):
            if self.label_size > 0:
                with tf.device("/cpu:0"):
                    idx = tf.random_uniform([minibatch_size], 0, self._np_labels.shape[0], dtype=tf.int32)
                    return tf.gather(self._tf_labels_var, idx)
            return tf.zeros([minibatch_size, 0], self.label_dtype)

    def get_random_labels_np(self, minibatch_size):
        if self.label_size > 0:
            return self._np_labels[np.random.randint(self._np_labels.shape[0], size=[minibatch_size])]
        return np.zeros([minibatch_size, 0], self.label_dtype)


def _parse_record(record, compact, shape, factor):
    """A serialized Example -> uint8 CHW; compact: decode, then box-downsample by factor."""
    if not compact:
        feats = tf.parse_single_example(record, features={
            "shape": tf.FixedLenFeature([3], tf.int64), "data": tf.FixedLenFeature([], tf.string)})
        data = tf.decode_raw(feats["data"], tf.uint8)
        return tf.reshape(data, shape)
    feats = tf.parse_single_example(record, features={
        "shape": tf.FixedLenFeature([3], tf.int64), "encoded": tf.FixedLenFeature([], tf.string)})
    c, h, w = shape
    # Compact records hold PNG or JPEG. INTEGER_ACCURATE matches Pillow's JPEG decoding (TF's
    # default fast DCT differs by up to ~8 levels), so extract/compare and the reader agree.
    enc = feats["encoded"]
    img = tf.cond(tf.io.is_jpeg(enc),
                  lambda: tf.io.decode_jpeg(enc, channels=c, dct_method="INTEGER_ACCURATE"),
                  lambda: tf.io.decode_png(enc, channels=c))  # HWC
    img = tf.reshape(img, [h, w, c])
    if factor > 1:
        # Exact equal of the writer's chained 2x2 float averages: integer sums / factor^2 are exact.
        x = tf.reshape(tf.cast(img, tf.float32), [h // factor, factor, w // factor, factor, c])
        x = tf.reduce_sum(x, axis=[1, 3]) * (1.0 / (factor * factor))
        img = tf.cast(tf.clip_by_value(tf.math.rint(x), 0, 255), tf.uint8)
    return tf.transpose(img, [2, 0, 1])


def _majority_2x(seg):
    """2x2 majority of an int32 [h,w] map, ties to the highest id: training/data/layouts.downsample_2x."""
    v = tf.stack([seg[0::2, 0::2], seg[0::2, 1::2], seg[1::2, 0::2], seg[1::2, 1::2]])             # [4,h/2,w/2]
    counts = tf.reduce_sum(tf.cast(tf.equal(v[:, None], v[None, :]), tf.int32), axis=1)             # [4,h/2,w/2]
    return tf.reduce_max(counts * 256 + v, axis=0) % 256


def _parse_record_with_layout(record, compact, shape, factor, max_segments):
    """A serialized Example -> (uint8 CHW image, uint8 [H,W] segments, int32 [K+1] categories)."""
    img = _parse_record(record, compact, shape, factor)
    key = "layout_encoded" if compact else "layout"
    feats = tf.parse_single_example(record, features={
        key: tf.FixedLenFeature([], tf.string), "layout_categories": tf.VarLenFeature(tf.int64)})
    c, h, w = shape
    if compact:
        seg = tf.cast(tf.reshape(tf.io.decode_png(feats[key], channels=1), [h, w]), tf.int32)
        for _ in range(int(np.log2(factor))):
            seg = _majority_2x(seg)
        seg = tf.cast(seg, tf.uint8)
    else:
        seg = tf.reshape(tf.decode_raw(feats[key], tf.uint8), [h, w])
    cats = tf.cast(tf.sparse.to_dense(feats["layout_categories"]), tf.int32)                        # [n]
    cats = tf.concat([[0], cats, tf.fill([max_segments - tf.size(cats)], -1)], axis=0)
    return img, seg, tf.reshape(cats, [max_segments + 1])


def load_dataset(class_name=None, data_dir=None, tfrecord_dir=None, verbose=False, **kwargs):
    """A dataset object, StyleGAN2 style: tfrecord_dir is joined to data_dir when both are given."""
    if tfrecord_dir is None:
        raise ValueError("load_dataset needs tfrecord_dir")
    if data_dir is not None:
        tfrecord_dir = os.path.join(data_dir, tfrecord_dir)
    if class_name is None or class_name in (__name__ + ".TFRecordDataset", "TFRecordDataset"):
        cls = TFRecordDataset
    else:
        cls = dnnlib.util.get_obj_by_name(class_name)
    if verbose:
        print("Streaming data using %s..." % cls.__name__)
    dataset = cls(tfrecord_dir=tfrecord_dir, **kwargs)
    if verbose:
        print("Dataset shape =", np.int32(dataset.shape).tolist())
        print("Dynamic range =", dataset.dynamic_range)
        print("Label size    =", dataset.label_size)
        print("Storage       =", dataset.storage)
    return dataset
