"""DatasetWriter: streams images into a multi-resolution TFRecord dataset (format in
training/data/records.py), atomically: everything is written under `.<name>.tmp-<pid>`
beside the target and renamed into place only by close(); an exception (or Ctrl-C) inside
a `with DatasetWriter(...)` block removes the temporary directory. Memory stays flat: each
image (or batch) is written as it arrives; only the small label rows are kept. Layouts (optional,
all images or none) are written beside each image at every level (training/data/layouts.py)."""

import io
import json
import os
import shutil

import numpy as np

import dnnlib
from training.data import layouts as lay
from training.data import records as fmt


class DatasetWriter:
    def __init__(self, tfrecord_dir, storage="raw", shards=1, overwrite=False, meta=None, progress_every=0):
        if storage not in ("raw", "compact"):
            raise ValueError("storage must be 'raw' or 'compact', got %r" % (storage,))
        if int(shards) < 1:
            raise ValueError("shards must be >= 1, got %r" % (shards,))
        tfrecord_dir = os.path.normpath(tfrecord_dir)
        check_output_dataset(tfrecord_dir, overwrite)
        parent = os.path.dirname(os.path.abspath(tfrecord_dir))
        os.makedirs(parent, exist_ok=True)
        self.tfrecord_dir = tfrecord_dir
        self.name = os.path.basename(tfrecord_dir)
        self.storage = storage
        self.shards = int(shards)
        self.overwrite = overwrite
        self.meta = dict(meta or {})
        self.progress_every = progress_every
        _remove_stale_temp_dirs(parent, self.name)
        self.tmp_dir = os.path.join(parent, ".%s%s%d" % (self.name, fmt.TEMP_MARK, os.getpid()))
        if os.path.exists(self.tmp_dir):
            shutil.rmtree(self.tmp_dir)
        os.makedirs(self.tmp_dir)
        self.num_images = 0
        self.shape = None  # [C,H,W] of the top level.
        self.top_log2 = None
        self.writers = {}  # log2 -> list of TFRecordWriters (one per shard)
        self.label_rows = []
        self.layout_count = 0      # Images written with a layout (all or none).
        self.max_segments = 0
        self.max_category = 0
        self.closed = False

    # --- adding images ---------------------------------------------------------------

    def _open_writers(self, shape):
        import tensorflow.compat.v1 as tf
        c, h, w = shape
        if c not in (1, 2, 3, 4):
            raise ValueError("images must have 1-4 channels, got shape %s" % (shape,))
        log2 = int(np.log2(w))
        if w != 2 ** log2 or w < 4:
            raise dnnlib.UserError("image width %d is not a power of two >= 4; pass --resolution to resize" % w)
        if self.storage == "raw" and h % 2 ** (log2 - 2) != 0:
            raise dnnlib.UserError("image height %d cannot be halved down to width 4 (width %d); use a ratio whose "
                                   "height is a multiple of width/4" % (h, w))
        self.shape, self.top_log2 = list(shape), log2
        levels = [log2] if self.storage == "compact" else range(log2, 1, -1)
        opts = tf.io.TFRecordOptions(compression_type="")
        for lod_log2 in levels:
            self.writers[lod_log2] = [tf.io.TFRecordWriter(os.path.join(
                self.tmp_dir, fmt.record_file_name(self.name, lod_log2, s, self.shards)), opts)
                for s in range(self.shards)]

    def _check_shape(self, shape):
        if self.shape is None:
            self._open_writers(shape)
        elif list(shape) != self.shape:
            raise dnnlib.UserError("image %d has shape %s but the first image has %s (CHW)"
                                   % (self.num_images, list(shape), self.shape))

    def add_images(self, images, labels=None, layouts=None):
        """images: uint8 [N,C,H,W] (or [C,H,W]); labels: float [N,D] or None; layouts: None or
        (segments int [N,H,W] (or [H,W]), N category sequences) as in training/data/layouts.py."""
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[None]
        assert images.dtype == np.uint8 and images.ndim == 4, (images.dtype, images.shape)
        self._check_shape(images.shape[1:])
        layouts = self._check_layouts(layouts, len(images))
        if self.storage == "compact":
            for i, img in enumerate(images):
                self._write_compact(img.shape, _encode_png(img), layouts and (layouts[0][i], layouts[1][i]))
        else:
            x = images
            seg = None if layouts is None else layouts[0]
            for lod_log2 in range(self.top_log2, 1, -1):
                q = x if x.dtype == np.uint8 else fmt.to_uint8(x)
                for i in range(len(q)):
                    extra = None if seg is None else _layout_features("layout", seg[i].tobytes(), layouts[1][i])
                    self._write(lod_log2, self.num_images + i, q[i].shape, "data", q[i].tobytes(), extra)
                if lod_log2 > 2:
                    x = fmt.box_downscale_2x(x.astype(np.float32))
                    seg = None if seg is None else lay.downsample_2x(seg)
        self._add_labels(labels, len(images))
        self._advance(len(images))

    def add_encoded(self, shape, encoded, labels=None, layout=None):
        """Compact storage only: an already encoded PNG/JPEG (bytes) of a CHW `shape` image;
        layout: None or (segments [H,W], categories)."""
        assert self.storage == "compact"
        self._check_shape(shape)
        layouts = self._check_layouts(None if layout is None else (np.asarray(layout[0])[None], [layout[1]]), 1)
        self._write_compact(shape, encoded, layouts and (layouts[0][0], layouts[1][0]))
        self._add_labels(labels, 1)
        self._advance(1)

    def _check_layouts(self, layouts, n):
        """None, or (uint8 [n,H,W], n int64 arrays) after checks; all images have layouts or none."""
        if self.num_images and (layouts is None) != (self.layout_count == 0):
            raise ValueError("layouts given for some images but not for image %d" % self.num_images)
        if layouts is None:
            return None
        segments, categories = layouts
        segments = np.asarray(segments)
        segments = segments[None] if segments.ndim == 2 else segments
        if len(segments) != n or len(categories) != n:
            raise ValueError("%d layouts / %d category lists for %d images" % (len(segments), len(categories), n))
        checked = [lay.check_layout(s, c, self.shape[1:], "image %d" % (self.num_images + i))
                   for i, (s, c) in enumerate(zip(segments, categories))]
        for _, c in checked:
            self.max_segments = max(self.max_segments, len(c))
            self.max_category = max(self.max_category, int(c.max(initial=0)))
        self.layout_count += n
        return np.stack([s for s, _ in checked]), [c for _, c in checked]

    def _write_compact(self, shape, encoded, layout=None):
        extra = None if layout is None else _layout_features("layout_encoded", _encode_png(layout[0][None]), layout[1])
        self._write(self.top_log2, self.num_images, shape, "encoded", encoded, extra)

    def _write(self, log2, index, shape, key, payload, extra=None):
        import tensorflow.compat.v1 as tf
        ex = tf.train.Example(features=tf.train.Features(feature=dict({
            "shape": tf.train.Feature(int64_list=tf.train.Int64List(value=list(shape))),
            key: tf.train.Feature(bytes_list=tf.train.BytesList(value=[payload]))}, **(extra or {}))))
        # Round-robin shards (GANsformer): interleaving shards in order restores image order.
        self.writers[log2][index % self.shards].write(ex.SerializeToString())

    def _add_labels(self, labels, n):
        if labels is None:
            if self.label_rows:
                raise ValueError("labels given for some images but not for image %d" % self.num_images)
            return
        labels = np.asarray(labels, np.float32).reshape(n, -1)
        if self.num_images and not self.label_rows:
            raise ValueError("labels missing for the first %d images" % self.num_images)
        self.label_rows.append(labels)

    def _advance(self, n):
        before = self.num_images
        self.num_images += n
        if self.progress_every and before // self.progress_every != self.num_images // self.progress_every:
            print("%d images written" % self.num_images, flush=True)

    # --- finishing -------------------------------------------------------------------

    def close(self):
        """Flush, write labels and dataset.json, then rename the directory into place."""
        if self.closed:
            return
        if self.num_images == 0:
            self.abort()
            raise dnnlib.UserError("no images were written to %s; check the input" % self.tfrecord_dir)
        for ws in self.writers.values():
            for w in ws:
                w.close()
        label_size = 0
        if self.label_rows:
            labels = np.concatenate(self.label_rows)
            label_size = labels.shape[1]
            with open(os.path.join(self.tmp_dir, fmt.label_file_name(self.name)), "wb") as f:
                np.save(f, labels.astype(np.float32))
        meta = dict(self.meta, storage=self.storage, num_images=self.num_images, shape=self.shape,
                    resolution=2 ** self.top_log2, shards=self.shards, label_size=label_size)
        meta.setdefault("ratio", self.shape[1] / self.shape[2])
        if self.layout_count:
            meta["layouts"] = dict(meta.get("layouts") or {}, max_segments=self.max_segments,
                                   num_categories=self.max_category + 1)
        else:
            meta.pop("layouts", None)
        with open(os.path.join(self.tmp_dir, fmt.META_FILE), "w") as f:
            json.dump(meta, f, indent=1)
        self._commit()
        self.closed = True

    def _commit(self):
        old = None
        if os.path.exists(self.tfrecord_dir):
            assert self.overwrite
            old = os.path.join(os.path.dirname(self.tmp_dir), ".%s.old-%d" % (self.name, os.getpid()))
            os.rename(self.tfrecord_dir, old)
        os.rename(self.tmp_dir, self.tfrecord_dir)
        if old is not None:
            shutil.rmtree(old)

    def abort(self):
        for ws in self.writers.values():
            for w in ws:
                w.close()
        self.writers = {}
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False


def check_output_dataset(tfrecord_dir, overwrite=False, inputs=()):
    """UserError unless a dataset can be written at tfrecord_dir: a new folder in a writable
    place, or with overwrite an existing dataset folder (or an empty one). Never replaces a
    file, a folder holding anything but a dataset, or a folder holding one of the inputs."""
    path = os.path.normpath(tfrecord_dir)
    dnnlib.util.check_output_dir(path, "output dataset folder")
    if os.path.isdir(path):
        if not overwrite:
            raise dnnlib.UserError("output %s already exists; pass --overwrite to replace it or choose another "
                                   "directory" % path)
        entries = os.listdir(path)
        foreign = [e for e in entries if e != fmt.META_FILE and ".tfrecords" not in e and not e.endswith(".labels")]
        if foreign:
            raise dnnlib.UserError("output %s holds files that are not part of a dataset (%s); --overwrite only "
                                   "replaces a dataset folder: choose another directory" % (path, foreign[0]))
    target = os.path.realpath(path)
    for given in inputs:
        real = os.path.realpath(given)
        if real == target or real.startswith(target + os.sep):
            raise dnnlib.UserError("input %s lies inside the output %s; write the dataset somewhere else"
                                   % (given, path))


def _remove_stale_temp_dirs(parent, name):
    """Delete `.<name>.tmp-<pid>` (and `.<name>.old-<pid>`) left by killed runs whose process is gone."""
    for mark in (fmt.TEMP_MARK, ".old-"):
        prefix = ".%s%s" % (name, mark)
        for entry in os.listdir(parent):
            pid = entry[len(prefix):]
            if not (entry.startswith(prefix) and pid.isdigit() and int(pid) != os.getpid()):
                continue
            try:
                os.kill(int(pid), 0)
                continue
            except ProcessLookupError:
                pass
            except PermissionError:  # Alive, another user's.
                continue
            stale, target = os.path.join(parent, entry), os.path.join(parent, name)
            if mark == ".old-" and not os.path.exists(target):
                os.rename(stale, target)  # Killed between the two renames of _commit: keep the old dataset.
            else:
                shutil.rmtree(stale, ignore_errors=True)


def _layout_features(key, payload, categories):
    import tensorflow.compat.v1 as tf
    return {key: tf.train.Feature(bytes_list=tf.train.BytesList(value=[payload])),
            "layout_categories": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(c) for c in categories]))}


def _encode_png(chw):
    import PIL.Image
    hwc = chw.transpose(1, 2, 0)
    img = PIL.Image.fromarray(hwc[:, :, 0] if hwc.shape[2] == 1 else hwc)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)  # Level 1: ~same size as 6, several times faster.
    return buf.getvalue()
