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
import tarfile

import numpy as np

import dnnlib

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


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
        img.load()
        return img
    except PIL.UnidentifiedImageError:
        raise BadImage("%s is not a readable image; remove it or pass --ignore-errors" % name)
    except (OSError, SyntaxError, ValueError) as e:  # Pillow reports truncation/corruption this way.
        raise BadImage("%s is corrupt or truncated (%s); remove it or pass --ignore-errors" % (name, e))


class FolderSource(Source):
    """Every png/jpg/jpeg/webp/bmp under a folder tree (sorted paths); other files are errors."""

    def __init__(self, image_dir):
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
        super().__init__(len(paths))

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

    def __init__(self, array, name, labels=None):
        if array.ndim not in (3, 4):
            raise dnnlib.UserError("%s has shape %s; expected [N,H,W], [N,H,W,C] or [N,C,H,W]" % (name, array.shape))
        if array.dtype != np.uint8:
            raise dnnlib.UserError("%s has dtype %s (16-bit or float images); convert to uint8 first"
                                   % (name, array.dtype))
        self.nchw = array.ndim == 4 and array.shape[1] in (1, 3, 4) and array.shape[3] not in (1, 3, 4)
        self.array, self.name = array, name
        if labels is not None:
            labels = np.asarray(labels)
            if labels.ndim == 1:  # Class indices -> one-hot.
                labels = np.eye(int(labels.max()) + 1, dtype=np.float32)[labels.astype(np.int64)]
            if len(labels) != len(array):
                raise dnnlib.UserError("%d labels for %d images in %s" % (len(labels), len(array), name))
            self.label_size = labels.shape[1]
        self.labels = labels
        super().__init__(len(array))

    def items(self, order):
        for i in order:
            def load(i=i):
                x = np.asarray(self.array[i])
                return (x.transpose(1, 2, 0) if self.nchw else x), None
            yield "%s[%d]" % (self.name, i), load, None if self.labels is None else self.labels[i]


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
    except (OSError, ValueError) as e:
        raise dnnlib.UserError("cannot read %s as .npy (%s); save the images with np.save" % (npy_path, e))
    labels = None
    if labels_path is not None:
        _require_path(labels_path, "labels file", "check the path")
        labels = np.load(labels_path)
    return ArraySource(array, npy_path, labels)


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
    keys = [k for k in f.keys() if getattr(f[k], "ndim", 0) == 4]
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
            shape, storage, payload = self.fmt.parse_example(rec)
            img = self.fmt.decode_payload(shape, storage, payload)
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
    except (tarfile.TarError, OSError) as e:
        raise dnnlib.UserError("cannot read %s (%s); pass the folder or the .tar.gz archive" % (path, e))
    raise dnnlib.UserError("%s has no %s; is it the right archive?" % (path, member_suffix))


def cifar_source(path, fine=False):
    """CIFAR-10 (data_batch_1..5) or CIFAR-100 (train), python pickle version, one-hot labels."""
    _require_path(path, "CIFAR folder/archive", "download the python version from https://www.cs.toronto.edu/~kriz/")
    members = ["train"] if fine else ["data_batch_%d" % i for i in range(1, 6)]
    images, labels = [], []
    for m in members:
        d = pickle.loads(_read_member(path, "/" + m), encoding="bytes")
        images.append(np.asarray(d[b"data"], np.uint8).reshape(-1, 3, 32, 32))
        labels.append(np.asarray(d[b"fine_labels" if fine else b"labels"]))
    labels = np.concatenate(labels)
    onehot = np.eye(100 if fine else 10, dtype=np.float32)[labels]
    return ArraySource(np.concatenate(images), path, onehot)


def mnist_source(path):
    """MNIST train set (idx files, optionally .gz), padded to 32x32, one-hot labels."""
    _require_path(path, "MNIST folder", "download the four idx files first")

    def idx(name):
        for cand in (name, name + ".gz"):
            p = os.path.join(path, cand)
            if os.path.isfile(p):
                with (gzip.open(p, "rb") if p.endswith(".gz") else open(p, "rb")) as f:
                    return f.read()
        raise dnnlib.UserError("%s(.gz) not found in %s" % (name, path))
    images = np.frombuffer(idx("train-images-idx3-ubyte"), np.uint8, offset=16).reshape(-1, 28, 28)
    labels = np.frombuffer(idx("train-labels-idx1-ubyte"), np.uint8, offset=8)
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
