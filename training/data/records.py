"""The on-disk dataset format (REFERENCE.md §6), shared by the writer, the TF reader and
dataset_tool's display/info/extract/compare. Numpy + protobuf only; no TF graph.

A dataset directory `<dir>` named `<name>` holds:
  <name>-rXX.tfrecords             one file per level, XX = log2(width), from the top level down to 02
  <name>-rXX.tfrecords<i>of<n>     the same split round-robin into n shards (i = 1..n), when n > 1
  <name>-rxx.labels                optional np.save float32 [N, label_size]
  dataset.json                     optional metadata written by our dataset_tool (storage, ratio, ...)
Each record is a tf.train.Example with `shape` (int64 [C,H,W]) and either
  `data`    raw uint8 CHW bytes ("raw" storage, StyleGAN2-compatible, every level), or
  `encoded` PNG/JPEG bytes of the HWC image ("compact" storage, top level only; the reader decodes
            and box-downsamples lower levels itself).
Non-square datasets hold true H x W images (shape [C,H,W], H = ratio * W) or padded squares with the
ratio in dataset.json (see dataset_tool.py --ratio-mode).

Layouts (optional; GANsformer2, training/data/layouts.py) live in the same records, in their own keys,
so readers that parse only `shape` + `data`/`encoded` (StyleGAN2's) are unaffected:
  `layout`             raw storage: uint8 [H,W] segment-index bytes at every level (0 = background,
                       1..n = segments back to front), each level the 2x2 majority of the one above;
  `layout_encoded`     compact storage: the top level's map as a grayscale PNG (the reader down-samples);
  `layout_categories`  int64 [n]: category id (>= 1) of segments 1..n, the same at every level.
dataset.json then holds `layouts` {max_segments K, num_categories, category_names?, mapping?}. Records
without these keys (older datasets) load as before; asking for their layouts is a UserError."""

import glob
import json
import os
import re
import struct

import numpy as np

import dnnlib

META_FILE = "dataset.json"
TEMP_MARK = ".tmp-"  # Directories under conversion are named `.<name>.tmp-<pid>`.
_RECORD_RE = re.compile(r"-r(\d\d)\.tfrecords(?:(\d+)of(\d+))?$")


def record_file_name(name, log2_res, shard=0, num_shards=1):
    """`<name>-rXX.tfrecords`, or with the `<i>of<n>` shard suffix when num_shards > 1."""
    base = "%s-r%02d.tfrecords" % (name, log2_res)
    return base if num_shards == 1 else base + "%dof%d" % (shard + 1, num_shards)


def label_file_name(name):
    return "%s-rxx.labels" % name


def box_downscale_2x(images):
    """2x2 box average of float images [..., H, W] (H, W even), kept float so the next level
    averages exact values, as StyleGAN2's exporter does; quantize with `to_uint8`."""
    x = images
    return (x[..., 0::2, 0::2] + x[..., 0::2, 1::2] + x[..., 1::2, 0::2] + x[..., 1::2, 1::2]) * 0.25


def to_uint8(images):
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)


class DatasetFiles:
    """What a dataset directory holds: record files per level, labels file, metadata."""

    def __init__(self, tfrecord_dir):
        tfrecord_dir = os.path.normpath(tfrecord_dir)
        self.dir = tfrecord_dir
        self.name = os.path.basename(tfrecord_dir)
        if TEMP_MARK in self.name:
            raise dnnlib.UserError("%s is an unfinished conversion (temporary directory); rerun dataset_tool.py "
                                   "and use the finished directory" % tfrecord_dir)
        if not os.path.isdir(tfrecord_dir):
            raise dnnlib.UserError("dataset directory %s not found; create it with dataset_tool.py "
                                   "(e.g. `python dataset_tool.py create_scenes %s`) or fix --data-dir/--dataset"
                                   % (tfrecord_dir, tfrecord_dir))
        self.levels = {}  # log2 width -> list of files, in shard order
        for path in sorted(glob.glob(os.path.join(tfrecord_dir, "*.tfrecords*"))):
            m = _RECORD_RE.search(os.path.basename(path))
            if m is None:
                continue
            shard = int(m.group(2) or 1) - 1
            self.levels.setdefault(int(m.group(1)), []).append((shard, int(m.group(3) or 1), path))
        if not self.levels:
            raise dnnlib.UserError("no <name>-rXX.tfrecords files in %s; convert images with dataset_tool.py first"
                                   % tfrecord_dir)
        for log2_res, shards in self.levels.items():
            shards.sort()
            nums = {n for _, n, _ in shards}
            if len(nums) != 1 or [s for s, _, _ in shards] != list(range(nums.pop())):
                raise dnnlib.UserError("incomplete shard set for level r%02d in %s; reconvert the dataset"
                                       % (log2_res, tfrecord_dir))
            self.levels[log2_res] = [p for _, _, p in shards]
        labels = sorted(glob.glob(os.path.join(tfrecord_dir, "*.labels")))
        self.label_file = labels[0] if labels else None
        self.meta = {}
        meta_path = os.path.join(tfrecord_dir, META_FILE)
        if os.path.isfile(meta_path):
            try:
                with open(meta_path) as f:
                    self.meta = json.load(f)
            except (OSError, ValueError) as e:
                raise dnnlib.UserError("cannot read %s (%s); delete it or reconvert the dataset" % (meta_path, e))
            _check_meta(self.meta, meta_path)
        self.top_log2 = max(self.levels)
        top_file = self.levels[self.top_log2][0]
        first = next(iter_records([top_file]), None)
        if first is None:
            raise dnnlib.UserError("%s holds no records; reconvert the dataset" % top_file)
        self.top_shape, self.storage = parse_example(first, "%s (record 0)" % top_file)[0:2]
        self.has_layouts = parse_layout(first, self.top_shape, self.storage, "%s (record 0)" % top_file) is not None
        if self.top_shape[2] != 2 ** self.top_log2:
            raise dnnlib.UserError("%s holds %d-wide images, but its name says r%02d (width %d); reconvert the "
                                   "dataset" % (top_file, self.top_shape[2], self.top_log2, 2 ** self.top_log2))

    def level_shape(self, log2_res):
        """[C,H,W] of a level, from its first record (compact: derived from the top level)."""
        if self.storage == "compact":
            f = 2 ** (self.top_log2 - log2_res)
            return [self.top_shape[0], self.top_shape[1] // f, self.top_shape[2] // f]
        path = self.levels[log2_res][0]
        first = next(iter_records([path]), None)
        if first is None:
            raise dnnlib.UserError("%s holds no records; reconvert the dataset" % path)
        return parse_example(first, "%s (record 0)" % path)[0]

    def check_files(self):
        """Walk every record file's framing (lengths only, no payloads): a damaged file is one
        UserError naming it, before a TF pipeline is built on it."""
        for paths in self.levels.values():
            for path in paths:
                for _ in _read_tfrecord_file(path, skip_data=True):
                    pass

    def available_log2(self):
        """Levels that can be served: every stored level (raw), or all down to the smallest
        box-downsamplable level (compact)."""
        if self.storage != "compact":
            return sorted(self.levels)
        c, h, w = self.top_shape
        out, log2_res = [], self.top_log2
        while log2_res >= 2 and h % 2 ** (self.top_log2 - log2_res) == 0:
            out.append(log2_res)
            log2_res -= 1
        return sorted(out)

    def layout_info(self):
        """dataset.json's `layouts` dict with max_segments (scanned from the records if missing), or
        a UserError when the dataset has no layouts."""
        if not self.has_layouts:
            raise dnnlib.UserError("%s has no layouts (made without them, or by an older dataset_tool); convert it "
                                   "again with layouts (create_scenes, create_from_images --layouts DIR)" % self.dir)
        info = dict(self.meta.get("layouts") or {})
        if not isinstance(info.get("max_segments"), int):
            info["max_segments"] = max(len(c) for _, (_, c) in iter_images(self, with_layouts=True))
        return info

    def load_labels(self):
        if self.label_file is None:
            return None
        labels = load_label_array(self.label_file, "reconvert the dataset")
        if labels.ndim != 2:
            raise dnnlib.UserError("labels %s have shape %s, expected [N, label_size]; reconvert the dataset"
                                   % (self.label_file, labels.shape))
        return labels.astype(np.float32)


def load_label_array(path, fix):
    """A finite numeric array from an np.save file, or UserError naming the file and `fix`."""
    try:
        labels = np.load(path, allow_pickle=False)
    except Exception as e:  # Damaged files make numpy raise many kinds (ValueError, EOFError, ...).
        raise dnnlib.UserError("cannot read labels %s as an np.save array (%s: %s); %s"
                               % (path, type(e).__name__, str(e).split("\n")[0][:100], fix))
    if not isinstance(labels, np.ndarray) or labels.dtype.kind not in "biuf":
        raise dnnlib.UserError("labels %s have dtype %s, expected numbers; %s"
                               % (path, getattr(labels, "dtype", type(labels).__name__), fix))
    if labels.ndim not in (1, 2) or labels.shape[0] == 0:
        raise dnnlib.UserError("labels %s have shape %s, expected [N, label_size] (or class ids [N]); %s"
                               % (path, labels.shape, fix))
    if labels.dtype.kind == "f" and not np.all(np.isfinite(labels)):
        raise dnnlib.UserError("labels %s hold NaN or Inf values; %s" % (path, fix))
    return labels


def _check_meta(meta, path):
    """dataset.json: an object whose fields we read have sane values."""
    fix = "delete it or reconvert the dataset"
    if not isinstance(meta, dict):
        raise dnnlib.UserError("%s holds a JSON %s, not an object; %s" % (path, type(meta).__name__, fix))
    ratio = meta.get("ratio")
    if ratio is not None and not (isinstance(ratio, (int, float)) and not isinstance(ratio, bool)
                                  and 0 < ratio <= 1):
        raise dnnlib.UserError("%s: ratio %r must be a number in (0, 1]; %s" % (path, ratio, fix))
    count = meta.get("num_images")
    if count is not None and not (isinstance(count, int) and not isinstance(count, bool) and count >= 1):
        raise dnnlib.UserError("%s: num_images %r must be a whole number >= 1; %s" % (path, count, fix))
    layouts = meta.get("layouts")
    if layouts is not None and not (isinstance(layouts, dict) and isinstance(layouts.get("max_segments", 0), int)
                                    and not isinstance(layouts.get("max_segments", 0), bool)
                                    and 0 <= layouts.get("max_segments", 0) <= 255):
        raise dnnlib.UserError("%s: layouts %r must be an object with max_segments in 0..255; %s"
                               % (path, layouts, fix))
    for key in ("storage", "ratio_mode", "source"):
        if meta.get(key) is not None and not isinstance(meta[key], str):
            raise dnnlib.UserError("%s: %s %r must be a string; %s" % (path, key, meta[key], fix))


def iter_records(files):
    """Serialized records of one level, shards interleaved round-robin (the writer's order)."""
    iters = [_read_tfrecord_file(p) for p in files]
    while iters:
        alive = []
        for it in iters:
            rec = next(it, None)
            if rec is not None:
                yield rec
                alive.append(it)
        iters = alive


def _read_tfrecord_file(path, skip_data=False):
    """Records of one TFRecord file: [uint64 length][uint32 crc][data][uint32 crc] each.
    CRCs are not checked; a truncated file, or a length field that runs past the end of the
    file (garbage), is reported before anything that large is read."""
    try:
        f = open(path, "rb")
    except OSError as e:
        raise dnnlib.UserError("cannot read %s (%s)" % (path, e.strerror or e))
    with f:
        size = os.fstat(f.fileno()).st_size
        index = 0
        while True:
            pos = f.tell()
            head = f.read(12)
            if not head:
                return
            if len(head) < 12:
                raise dnnlib.UserError("%s is truncated (record %d); reconvert the dataset" % (path, index))
            n = struct.unpack("<Q", head[:8])[0]
            if n > size - pos - 16:
                raise dnnlib.UserError("%s is damaged or truncated: record %d claims %d bytes, %d remain; "
                                       "reconvert the dataset" % (path, index, n, max(size - pos - 16, 0)))
            if skip_data:
                f.seek(n + 4, os.SEEK_CUR)
                data = None
            else:
                data = f.read(n)
                if len(data) < n or len(f.read(4)) < 4:
                    raise dnnlib.UserError("%s is truncated (record %d); reconvert the dataset" % (path, index))
            index += 1
            yield data


def parse_example(record, where="a record"):
    """(shape [C,H,W], storage 'raw'|'compact', payload bytes) of a serialized record; garbage
    is a UserError naming `where` (file and record index)."""
    import tensorflow.compat.v1 as tf  # Deferred: importing TF costs seconds.
    try:
        ex = tf.train.Example.FromString(record)
    except Exception as e:  # protobuf's DecodeError (and, on some versions, RuntimeWarning-like kinds)
        raise dnnlib.UserError("%s is not a tf.train.Example (%s); the file is damaged: reconvert the dataset"
                               % (where, type(e).__name__))
    feat = ex.features.feature
    shape = list(feat["shape"].int64_list.value) if "shape" in feat else []
    if len(shape) != 3 or not 1 <= shape[0] <= 4 or min(shape) < 1 or shape[1] > 1 << 16 or shape[2] > 1 << 16:
        raise dnnlib.UserError("%s has shape %s, expected [C,H,W] with 1-4 channels; the file is damaged or not "
                               "a dataset_tool dataset" % (where, shape))
    for key, storage in (("data", "raw"), ("encoded", "compact")):
        if key in feat:
            values = feat[key].bytes_list.value
            if len(values) != 1:
                raise dnnlib.UserError("%s has %d `%s` values, expected 1; the file is damaged" % (where, len(values), key))
            if storage == "raw" and len(values[0]) != int(np.prod(shape)):
                raise dnnlib.UserError("%s holds %d bytes for shape %s (%d expected); the file is damaged"
                                       % (where, len(values[0]), shape, int(np.prod(shape))))
            return shape, storage, values[0]
    raise dnnlib.UserError("%s has no `data` or `encoded` feature; not a dataset_tool dataset" % where)


def parse_layout(record, shape, storage, where="a record"):
    """(segments uint8 [H,W], categories int64 [n]) of a serialized record, or None without a layout;
    UserError naming `where` if damaged."""
    import tensorflow.compat.v1 as tf
    feat = tf.train.Example.FromString(record).features.feature
    key = "layout" if storage == "raw" else "layout_encoded"
    if key not in feat:
        return None
    cats = np.array(feat["layout_categories"].int64_list.value, np.int64) if "layout_categories" in feat else None
    values = feat[key].bytes_list.value
    h, w = shape[1], shape[2]
    if cats is None or len(values) != 1:
        raise dnnlib.UserError("%s has a damaged layout (%s); reconvert the dataset" % (where, key))
    if storage == "raw":
        if len(values[0]) != h * w:
            raise dnnlib.UserError("%s holds a %d-byte layout for %dx%d pixels; the file is damaged"
                                   % (where, len(values[0]), w, h))
        seg = np.frombuffer(values[0], np.uint8).reshape(h, w)
    else:
        seg = decode_payload([1, h, w], "compact", values[0], where + " layout")[0]
    if seg.size and seg.max() > len(cats):
        raise dnnlib.UserError("%s: layout has segment %d but %d categories; the file is damaged"
                               % (where, seg.max(), len(cats)))
    return seg, cats


def decode_payload(shape, storage, payload, where="a record"):
    """The CHW uint8 image of a record (numpy / Pillow); UserError naming `where` if damaged."""
    if storage == "raw":
        if len(payload) != int(np.prod(shape)):
            raise dnnlib.UserError("%s holds %d bytes for shape %s; the file is damaged" % (where, len(payload), shape))
        return np.frombuffer(payload, np.uint8).reshape(shape)
    import io
    import PIL.Image
    try:
        with PIL.Image.open(io.BytesIO(payload)) as pil:
            if pil.size != (shape[2], shape[1]):
                raise ValueError("encoded image is %dx%d, the record says %dx%d" % (pil.size + (shape[2], shape[1])))
            img = np.asarray(pil.convert("L" if shape[0] == 1 else "RGB"))
    except Exception as e:  # Pillow reports damaged data with many exception kinds.
        raise dnnlib.UserError("%s: cannot decode its PNG/JPEG (%s: %s); the file is damaged"
                               % (where, type(e).__name__, str(e).split("\n")[0][:100]))
    return img.reshape(img.shape[0], img.shape[1], -1).transpose(2, 0, 1)


def iter_images(files_obj, log2_res=None, max_images=None, with_layouts=False):
    """CHW uint8 images of a dataset at a level (numpy path, used by dataset_tool); with_layouts:
    (image, (segments uint8 [H,W], categories int64 [n])) pairs (compact: majority down-sampled)."""
    from training.data import layouts as lay
    if with_layouts and not files_obj.has_layouts:
        files_obj.layout_info()  # The UserError for datasets without layouts.
    log2_res = files_obj.top_log2 if log2_res is None else log2_res
    if log2_res not in files_obj.available_log2():
        raise dnnlib.UserError("%s has no level r%02d; available: %s" % (
            files_obj.dir, log2_res, ", ".join("r%02d" % l for l in files_obj.available_log2())))
    files = files_obj.levels[files_obj.top_log2 if files_obj.storage == "compact" else log2_res]
    expected = files_obj.top_shape if files_obj.storage == "compact" else files_obj.level_shape(log2_res)
    count = 0
    for i, rec in enumerate(iter_records(files)):
        count = i + 1
        if max_images is not None and i >= max_images:
            return
        where = "%s (record %d)" % (files[i % len(files)], i // len(files))
        shape, storage, payload = parse_example(rec, where)
        if storage != files_obj.storage or list(shape) != list(expected):
            raise dnnlib.UserError("%s is a %s record of shape %s, unlike the first (%s, %s); the file is damaged"
                                   % (where, storage, shape, files_obj.storage, expected))
        img = decode_payload(shape, storage, payload, where)
        if files_obj.storage == "compact":
            x = img.astype(np.float32)
            for _ in range(files_obj.top_log2 - log2_res):
                x = box_downscale_2x(x)
            img = to_uint8(x)
        if not with_layouts:
            yield img
            continue
        layout = parse_layout(rec, shape, storage, where)
        if layout is None:
            raise dnnlib.UserError("%s has no layout, unlike the first record; reconvert the dataset" % where)
        yield img, (lay.downsample(layout[0], 2 ** (files_obj.top_log2 - log2_res)) if storage == "compact"
                    else layout[0], layout[1])
    expected_count = files_obj.meta.get("num_images")
    if expected_count is not None and count < min(expected_count, max_images or expected_count):
        raise dnnlib.UserError("%s holds %d records, but dataset.json says %d images; the file is truncated: "
                               "reconvert the dataset" % (files[0], count, expected_count))
