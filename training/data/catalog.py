"""Catalog recipes for the paper's datasets (REFERENCE.md §6 table): where the files come from,
their MD5s, and how they are converted (aspect ratio, resolution, shard count).

`prepare(key, tfrecord_dir, src, download, opts)` accepts a downloaded folder, a .zip/.tar
archive (extracted next to it) or, for ffhq, the released tfrecords file; with download=True
the file is fetched (MD5-checked, cached) through dnnlib.util.open_url."""

import os
import shutil
import tarfile
import zipfile

import dnnlib
from training.data import sources
from training.data.convert import convert

DRIVE = "https://drive.google.com/uc?export=download&id=%s"
CATALOG = {
    "ffhq": dnnlib.EasyDict(url="http://downloads.cs.stanford.edu/nlp/data/dorarad/ffhq-r08.tfrecords1of1",
                            md5="74de4f07dc7bfb07c0ad4471fdac5e67", ratio=1.0, shards=1, images=70000),
    "bedrooms": dnnlib.EasyDict(url="http://dl.yf.io/lsun/scenes/bedroom_train_lmdb.zip",
                                md5="f2c5d904a82a6295dbdccb322b4b0a99", ratio=188 / 256, shards=64, images=3033042),
    "cityscapes": dnnlib.EasyDict(url=DRIVE % "1t9Qhxm0iHFd3k-xTYEbKosSx_DkyoLLJ",
                                  md5="953d231046275120dc1f73a5aebc9087", ratio=0.5, shards=16, images=25000),
    "clevr": dnnlib.EasyDict(url=DRIVE % "1lY4JE30yk26v0MWHNpXBOMzltufUcTXj",
                             md5="3040bb20a29cd2f0e1e9231aebddf2a1", ratio=0.75, shards=5, images=100000),
}


def _extract(archive):
    """Extract a .zip/.tar(.gz) beside itself (once; atomically) and return the folder."""
    out = archive + ".extracted"
    if os.path.isdir(out):
        return out
    tmp = out + ".tmp-%d" % os.getpid()
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                z.extractall(tmp)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as t:
                # The "data" filter refuses absolute paths and links out of tmp (Python >= 3.11.4).
                kwargs = dict(filter="data") if hasattr(tarfile, "data_filter") else {}
                t.extractall(tmp, **kwargs)
        else:
            raise dnnlib.UserError("%s is neither a folder nor a zip/tar archive; pass the downloaded dataset" % archive)
    except (zipfile.BadZipFile, tarfile.TarError, OSError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise dnnlib.UserError("cannot extract %s (%s); download it again" % (archive, e))
    os.rename(tmp, out)
    return out


def _locate(key, src, download):
    entry = CATALOG[key]
    if download:
        cache = os.path.join(src, "downloads") if src and os.path.isdir(src) else None
        return dnnlib.util.open_url(entry.url, cache_dir=cache, return_filename=True, md5=entry.md5)
    if src is None:
        raise dnnlib.UserError("create_%s needs the downloaded files (a folder or archive) or --download; "
                               "source: %s" % (key, entry.url))
    if not os.path.exists(src):
        raise dnnlib.UserError("%s not found; pass the downloaded %s folder/archive or use --download" % (src, key))
    return src


def _find_lmdb(folder):
    for root, dirs, files in os.walk(folder):
        if "data.mdb" in files:
            return root
    raise dnnlib.UserError("no lmdb (data.mdb) under %s; is it the LSUN bedroom_train_lmdb download?" % folder)


def prepare(key, tfrecord_dir, src, download, opts, log=print):
    """Convert one catalog dataset; opts is a ConvertOptions whose unset fields get the recipe's."""
    entry = CATALOG[key]
    path = _locate(key, src, download)
    if opts.resolution is None:
        opts.resolution = 256  # All catalog datasets are trained at 256 (README).
    if opts.ratio is None:
        opts.ratio = entry.ratio
    if opts.shards == 1 and opts.max_images is None:
        opts.shards = entry.shards  # Catalog shard count only for a full conversion (prepare_data.py).
    meta = dict(source=key)
    if key == "ffhq" and os.path.isfile(path) and ".tfrecords" in os.path.basename(path):
        source = sources.TFRecordSource(path)
    else:
        folder = path if os.path.isdir(path) else _extract(path)
        if key == "bedrooms":
            source = sources.LmdbSource(_find_lmdb(folder), opts.max_images)
        else:
            source = sources.FolderSource(folder)
    n = convert(source, tfrecord_dir, opts, meta=meta, log=log)
    if opts.max_images is None and n < 50000 and key in ("ffhq", "bedrooms"):
        log("Warning: only %d images (the full %s has %d)" % (n, key, entry.images))
    return n
