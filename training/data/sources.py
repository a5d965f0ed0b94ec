"""Image sources for dataset_tool: each gives a count and streams items one at a time, so
conversion memory does not grow with the dataset. An item is (name, load, label): `load()`
returns (image, encoded) where image is a PIL image or an HWC/HW uint8 array and encoded is
the original PNG/JPEG file bytes when there are any (compact storage can keep them as they
are); label is a float vector or None. Per-image problems raise BadImage (skippable with
--ignore-errors); problems with the source as a whole raise dnnlib.UserError."""

import glob
import gzip
import io
import os
import pickle
import struct
import tarfile
import zlib

import numpy as np

import dnnlib

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
MAX_PIXELS = 1 << 26  # 67M pixels (8192x8192): beyond any dataset here; larger claims are damaged headers.


class BadImage(dnnlib.UserError):
    """One unusable input image; --ignore-errors skips it."""


class Source:
    random_access = True  # Items can be read in any order (so --shuffle works).
    label_size = 0

    def __init__(self, count):
        self.count = count

    def items(self, order):
        raise NotImplementedError


def _require_path(path, what, fix):
    if not os.path.exists(path):
        raise dnnlib.UserError("%s %s not found; %s" % (what, path, fix))


def open_pil(data_or_path, name):
    """A fully decoded PIL image, or BadImage naming the file."""
    import PIL.Image
    try:
        if isinstance(data_or_path, (bytes, bytearray)):
            if len(data_or_path) == 0:
                raise BadImage("%s is empty (0 bytes); remove it or pass --ignore-errors" % name)
            img = PIL.Image.open(io.BytesIO(data_or_path))
        else:
            if os.path.getsize(data_or_path) == 0:
                raise BadImage("%s is empty (0 bytes); remove it or pass --ignore-errors" % name)
            img = PIL.Image.open(data_or_path)
        w, h = img.size
        if w < 1 or h < 1 or w * h > MAX_PIXELS:
            raise BadImage("%s claims %dx%d pixels (more than %d million); remove it or pass --ignore-errors"
                           % (name, w, h, MAX_PIXELS // 10 ** 6))
        img.load()
        return img
    except BadImage:
        raise
    except PIL.UnidentifiedImageError:
        raise BadImage("%s is not a readable image; remove it or pass --ignore-errors" % name)
    except PIL.Image.DecompressionBombError as e:
        raise BadImage("%s claims an enormous size (%s); remove it or pass --ignore-errors" % (name, e))
    except MemoryError:
        raise BadImage("%s is too large to decode in memory; remove it or pass --ignore-errors" % name)
    except Exception as e:  # Pillow reports damaged data with many exception kinds (OSError, SyntaxError, ...).
        raise BadImage("%s is corrupt or truncated (%s: %s); remove it or pass --ignore-errors"
                       % (name, type(e).__name__, str(e).split("\n")[0][:100]))


class FolderSource(Source):
    """Every png/jpg/jpeg/webp/bmp under a folder tree (sorted paths); other files are errors.
    layouts_dir: a folder of label PNGs paired by relative name (training/data/layouts.py)."""

    def __init__(self, image_dir, layouts_dir=None):
        _require_path(image_dir, "image folder", "check the path")
        if not os.path.isdir(image_dir):
            raise dnnlib.UserError("%s is not a folder; pass the folder that holds the images" % image_dir)
        paths, others = [], []
        for root, dirs, files in os.walk(image_dir):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for f in sorted(files):
                if f.startswith("."):
                    continue
                (paths if f.lower().endswith(IMAGE_EXTS) else others).append(os.path.join(root, f))
        if not paths:
            raise dnnlib.UserError("no images (%s) found under %s; check the folder" % ("/".join(IMAGE_EXTS), image_dir))
        self.paths, self.others = paths, others
        self.layouts = None
        if layouts_dir is not None:
            from training.data.layouts import LabelFolder
            self.layouts = LabelFolder(layouts_dir, image_dir)
            real = os.path.realpath(layouts_dir)
            self.paths = [p for p in paths if not os.path.realpath(p).startswith(real + os.sep)]
            self.others = [p for p in others if not os.path.realpath(p).startswith(real + os.sep)]
        super().__init__(len(self.paths))

    def items(self, order):
        for p in self.others:  # Reported first, so a stray file fails fast (or is counted).
            yield p, _not_an_image(p), None
        for i in order:
            p = self.paths[i]
            yield p, (lambda p=p: _load_file(p)), None


def _not_an_image(path):
    def load():
        raise BadImage("%s is not an image (expected %s); remove it or pass --ignore-errors"
                       % (path, "/".join(IMAGE_EXTS)))
    return load


def _load_file(path):
    img = open_pil(path, path)
    encoded = None
    if img.format in ("PNG", "JPEG"):
        with open(path, "rb") as f:
            encoded = f.read()
    return img, encoded


class ArraySource(Source):
    """A uint8 array [N,H,W], [N,H,W,C] or [N,C,H,W] (C in 1,3,4), memory-mapped when possible."""

    def __init__(self, array, name, labels=None, labels_name=None):
        if array.ndim not in (3, 4):
            raise dnnlib.UserError("%s has shape %s; expected [N,H,W], [N,H,W,C] or [N,C,H,W]" % (name, array.shape))
        if array.dtype != np.uint8:
            raise dnnlib.UserError("%s has dtype %s (16-bit or float images); convert to uint8 first"
                                   % (name, array.dtype))
        self.nchw = array.ndim == 4 and array.shape[1] in (1, 3, 4) and array.shape[3] not in (1, 3, 4)
        if array.ndim == 4 and not self.nchw and array.shape[3] not in (1, 3, 4):
            raise dnnlib.UserError("%s has shape %s: %d channels; expected 1, 3 or 4 ([N,H,W,C] or [N,C,H,W])"
                                   % (name, tuple(array.shape), array.shape[3]))
        if min(array.shape) < 1:
            raise dnnlib.UserError("%s has shape %s: it holds no images" % (name, tuple(array.shape)))
        self.array, self.name = array, name
        if labels is not None:
            labels = check_labels(labels, len(array), name, labels_name or name)
            self.label_size = labels.shape[1]
        self.labels = labels
        super().__init__(len(array))

    def items(self, order):
        for i in order:
            def load(i=i):
                try:
                    x = np.asarray(self.array[i])
                except (OSError, ValueError) as e:  # e.g. a damaged HDF5 chunk
                    raise dnnlib.UserError("cannot read image %d of %s (%s); the file is damaged" % (i, self.name, e))
                return (x.transpose(1, 2, 0) if self.nchw else x), None
            yield "%s[%d]" % (self.name, i), load, None if self.labels is None else self.labels[i]


def check_labels(labels, count, images_name, labels_name):
    """Float32 [N, D] labels for `count` images: [N, D] finite numbers, or class ids [N]
    (whole numbers >= 0, made one-hot); UserError naming the labels otherwise."""
    labels = np.asarray(labels)
    if labels.dtype.kind not in "biuf" or labels.ndim not in (1, 2):
        raise dnnlib.UserError("labels %s have dtype %s and shape %s; expected numbers [N, D] or class ids [N]"
                               % (labels_name, labels.dtype, labels.shape))
    if labels.dtype.kind == "f" and not np.all(np.isfinite(labels)):
        raise dnnlib.UserError("labels %s hold NaN or Inf values" % labels_name)
    if len(labels) != count:
        raise dnnlib.UserError("%d labels in %s for %d images in %s" % (len(labels), labels_name, count, images_name))
    if labels.ndim == 1:  # Class indices -> one-hot.
        if np.any(labels < 0) or np.any(labels != np.round(labels)) or labels.max() >= 1 << 16:
            raise dnnlib.UserError("labels %s: class ids must be whole numbers in 0..65535" % labels_name)
        labels = np.eye(int(labels.max()) + 1, dtype=np.float32)[labels.astype(np.int64)]
    if labels.shape[1] < 1:
        raise dnnlib.UserError("labels %s have shape %s: no label columns" % (labels_name, labels.shape))
    return labels.astype(np.float32)


class NpyRows:
    """Rows of a C-order .npy file read one at a time with seek/read: unlike a memory map, pages
    already converted do not stay in the process's resident memory."""

    def __init__(self, path):
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            self.shape, fortran, self.dtype = read_header(f)
            self.offset = f.tell()
        if fortran or self.dtype.hasobject or len(self.shape) < 1:
            raise ValueError("need a C-order numeric array")
        need = self.offset + int(np.prod(self.shape, dtype=np.float64)) * self.dtype.itemsize
        if os.path.getsize(path) < need:
            raise ValueError("the header says %s %s (%d bytes), the file has %d: truncated"
                             % (self.dtype, tuple(self.shape), need, os.path.getsize(path)))
        self.ndim = len(self.shape)
        self.row_bytes = int(np.prod(self.shape[1:])) * self.dtype.itemsize
        self.path = path

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, i):
        with open(self.path, "rb") as f:
            f.seek(self.offset + i * self.row_bytes)
            data = f.read(self.row_bytes)
        if len(data) < self.row_bytes:
            raise dnnlib.UserError("%s is truncated (row %d); save it again" % (self.path, i))
        return np.frombuffer(data, self.dtype).reshape(self.shape[1:])


def npy_source(npy_path, labels_path=None):
    _require_path(npy_path, "npy file", "check the path")
    try:
        array = NpyRows(npy_path)
    except Exception as e:  # numpy's header parser raises ValueError, SyntaxError, TypeError, ...
        raise dnnlib.UserError("cannot read %s as .npy (%s: %s); save the images with np.save"
                               % (npy_path, type(e).__name__, str(e).split("\n")[0][:120]))
    labels = None
    if labels_path is not None:
        from training.data.records import load_label_array
        _require_path(labels_path, "labels file", "check the path")
        labels = load_label_array(labels_path, "save them with np.save (float [N, D] or class ids [N])")
    return ArraySource(array, npy_path, labels, labels_path)


def hdf5_source(h5_path):
    try:
        import h5py
    except ImportError:
        raise dnnlib.UserError("create_from_hdf5 needs the h5py package: pip install h5py")
    _require_path(h5_path, "HDF5 file", "check the path")
    try:
        f = h5py.File(h5_path, "r")
    except OSError as e:
        raise dnnlib.UserError("cannot open %s as HDF5 (%s)" % (h5_path, e))
    try:
        keys = [k for k in f.keys() if getattr(f[k], "ndim", 0) == 4]
    except Exception as e:  # h5py raises OSError, KeyError, RuntimeError on damaged files
        raise dnnlib.UserError("cannot read %s as HDF5 (%s: %s)" % (h5_path, type(e).__name__, e))
    if not keys:
        raise dnnlib.UserError("%s holds no 4-D image array (StyleGAN2 writes data<R>x<R> [N,C,H,W])" % h5_path)
    key = max(keys, key=lambda k: np.prod(f[k].shape[1:]))  # The largest resolution.
    return ArraySource(f[key], "%s:%s" % (h5_path, key))


class LmdbSource(Source):
    """An LSUN lmdb: values are encoded images, streamed in key order."""
    random_access = False

    def __init__(self, lmdb_dir, max_images=None):
        try:
            import lmdb
        except ImportError:
            raise dnnlib.UserError("LSUN lmdb conversion needs the optional lmdb package: pip install lmdb")
        _require_path(lmdb_dir, "lmdb folder", "download and unzip the LSUN category first")
        try:
            self.env = lmdb.open(lmdb_dir, readonly=True, lock=False, readahead=False, max_readers=1)
        except lmdb.Error as e:
            raise dnnlib.UserError("cannot open lmdb %s (%s)" % (lmdb_dir, e))
        n = self.env.stat()["entries"]
        super().__init__(n if max_images is None else min(n, max_images))

    def items(self, order):
        with self.env.begin(write=False) as txn:
            for key, value in txn.cursor():
                name = "lmdb key %s" % key.decode("ascii", "replace")
                yield name, (lambda v=value, n=name: _load_bytes(v, n)), None


def _load_bytes(data, name):
    img = open_pil(bytes(data), name)
    return img, (bytes(data) if img.format in ("PNG", "JPEG") else None)


class TFRecordSource(Source):
    """Raw-storage records of one file (e.g. the FFHQ download `ffhq-r08.tfrecords1of1`)."""
    random_access = False

    def __init__(self, path):
        from training.data import records as fmt
        _require_path(path, "tfrecords file", "check the path or pass --download")
        self.path, self.fmt = path, fmt
        super().__init__(None)

    def items(self, order):
        for i, rec in enumerate(self.fmt.iter_records([self.path])):
            where = "%s (record %d)" % (self.path, i)
            shape, storage, payload = self.fmt.parse_example(rec, where)
            img = self.fmt.decode_payload(shape, storage, payload, where)
            yield "%s[%d]" % (self.path, i), (lambda img=img: (img.transpose(1, 2, 0), None)), None


def _read_member(path, member_suffix):
    """Bytes of a file inside a folder or a .tar.gz archive, found by its path suffix."""
    if os.path.isdir(path):
        hits = [p for p in glob.glob(os.path.join(path, "**", "*"), recursive=True)
                if p.replace(os.sep, "/").endswith(member_suffix)]
        if not hits:
            raise dnnlib.UserError("%s not found under %s; pass the extracted dataset folder" % (member_suffix, path))
        with open(hits[0], "rb") as f:
            return f.read()
    try:
        with tarfile.open(path) as tar:
            for m in tar.getmembers():
                if m.name.endswith(member_suffix):
                    return tar.extractfile(m).read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise dnnlib.UserError("cannot read %s (%s); pass the folder or the .tar.gz archive" % (path, e))
    raise dnnlib.UserError("%s has no %s; is it the right archive?" % (path, member_suffix))


def cifar_source(path, fine=False):
    """CIFAR-10 (data_batch_1..5) or CIFAR-100 (train), python pickle version, one-hot labels."""
    _require_path(path, "CIFAR folder/archive", "download the python version from https://www.cs.toronto.edu/~kriz/")
    members = ["train"] if fine else ["data_batch_%d" % i for i in range(1, 6)]
    images, labels = [], []
    classes = 100 if fine else 10
    for m in members:
        data = _read_member(path, "/" + m)
        try:
            d = pickle.loads(data, encoding="bytes")
            x = np.asarray(d[b"data"])
            y = np.asarray(d[b"fine_labels" if fine else b"labels"])
            if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * 32 * 32 or y.shape != (len(x),):
                raise ValueError("data %s %s, labels %s" % (x.dtype, x.shape, y.shape))
            if y.dtype.kind not in "iu" or len(y) and (y.min() < 0 or y.max() >= classes):
                raise ValueError("labels outside 0..%d" % (classes - 1))
        except Exception as e:  # A damaged pickle can raise almost anything.
            raise dnnlib.UserError("%s: member %s is damaged or not a CIFAR batch (%s: %s); download it again"
                                   % (path, m, type(e).__name__, str(e).split("\n")[0][:100]))
        images.append(x.reshape(-1, 3, 32, 32))
        labels.append(y)
    labels = np.concatenate(labels)
    onehot = np.eye(classes, dtype=np.float32)[labels]
    return ArraySource(np.concatenate(images), path, onehot)


def mnist_source(path):
    """MNIST train set (idx files, optionally .gz), padded to 32x32, one-hot labels."""
    _require_path(path, "MNIST folder", "download the four idx files first")

    def idx(name):
        for cand in (name, name + ".gz"):
            p = os.path.join(path, cand)
            if os.path.isfile(p):
                try:
                    with (gzip.open(p, "rb") if p.endswith(".gz") else open(p, "rb")) as f:
                        return p, f.read()
                except (OSError, EOFError, zlib.error) as e:
                    raise dnnlib.UserError("cannot read %s (%s); download it again" % (p, e))
        raise dnnlib.UserError("%s(.gz) not found in %s" % (name, path))

    def check(p, data, magic, dims):
        head = data[:4 + 4 * len(dims)]
        if len(head) < 4 + 4 * len(dims) or struct.unpack(">I", head[:4])[0] != magic:
            raise dnnlib.UserError("%s is not an MNIST idx file (bad magic number); download it again" % p)
        n = struct.unpack(">I", head[4:8])[0]
        got = struct.unpack(">%dI" % (len(dims) - 1), head[8:]) if len(dims) > 1 else ()
        if tuple(got) != tuple(dims[1:]) or len(data) != len(head) + n * int(np.prod(dims[1:])):
            raise dnnlib.UserError("%s is damaged or truncated (header: %d x %s, %d bytes); download it again"
                                   % (p, n, got, len(data)))
        return np.frombuffer(data, np.uint8, offset=len(head)).reshape((n,) + tuple(dims[1:]))
    images = check(*idx("train-images-idx3-ubyte"), 2051, (None, 28, 28))
    labels_path, labels_data = idx("train-labels-idx1-ubyte")
    labels = check(labels_path, labels_data, 2049, (None,))
    if len(labels) != len(images) or (len(labels) and labels.max() > 9):
        raise dnnlib.UserError("%s: %d labels (max %d) for %d images; download it again"
                               % (labels_path, len(labels), labels.max() if len(labels) else -1, len(images)))
    images = np.pad(images, [(0, 0), (2, 2), (2, 2)])
    return ArraySource(images, path, np.eye(10, dtype=np.float32)[labels])


class CelebaSource(Source):
    """img_align_celeba/*.jpg, a 128x128 crop centred at (cx, cy) (StyleGAN2 defaults 89, 121)."""

    def __init__(self, celeba_dir, cx=89, cy=121):
        d = os.path.join(celeba_dir, "img_align_celeba")
        _require_path(d, "folder", "pass the CelebA folder that contains img_align_celeba/")
        self.paths = sorted(glob.glob(os.path.join(d, "*.jpg")))
        if not self.paths:
            raise dnnlib.UserError("no .jpg images in %s" % d)
        self.cx, self.cy = cx, cy
        super().__init__(len(self.paths))

    def items(self, order):
        for i in order:
            p = self.paths[i]

            def load(p=p):
                img = np.asarray(open_pil(p, p).convert("RGB"))
                crop = img[self.cy - 64:self.cy + 64, self.cx - 64:self.cx + 64]
                if crop.shape[:2] != (128, 128):
                    raise BadImage("%s is too small for a 128x128 crop at (%d, %d)" % (p, self.cx, self.cy))
                return crop, None
            yield p, load, None
