"""dataset_tool's read-side commands: info, display (an image grid), extract (PNGs), compare.
Numpy/Pillow only (no TF graph); format in training/data/records.py. Datasets with layouts also
get a layout grid (display: `<out>_layouts.png`) and per-image palette PNGs (extract:
`layout%08d.png`, colour = segment, pixel value = segment id), coloured by training/visuals.py."""

import os
import shutil

import numpy as np

import dnnlib
from training.data import records as fmt
from training.data.writer import _remove_stale_temp_dirs
from training.visuals import layout_to_pil, render_layout, save_image_grid


def _save_png(chw, path):
    import PIL.Image
    hwc = chw.transpose(1, 2, 0)
    PIL.Image.fromarray(hwc[:, :, 0] if hwc.shape[2] == 1 else hwc).save(path)


def _count(files):
    return sum(1 for _ in fmt.iter_records(files.levels[files.top_log2]))


def info(tfrecord_dir, log=print):
    """Print and return count, shape, levels, channels, labels, storage, shards, ratio."""
    files = fmt.DatasetFiles(tfrecord_dir)
    labels = files.load_labels()
    out = dnnlib.EasyDict(
        name=files.name, images=_count(files), shape=files.top_shape, resolution=2 ** files.top_log2,
        channels=files.top_shape[0], levels=[2 ** l for l in files.available_log2()], storage=files.storage,
        shards=len(files.levels[files.top_log2]), label_size=0 if labels is None else labels.shape[1],
        ratio=files.meta.get("ratio", files.top_shape[1] / files.top_shape[2]),
        ratio_mode=files.meta.get("ratio_mode", "native"), source=files.meta.get("source"))
    if labels is not None and len(labels) != out.images:
        log("Warning: %d label rows for %d images" % (len(labels), out.images))
    for k, v in out.items():
        log("%-11s %s" % (k, v))
    if files.meta.get("label_layout"):
        log("%-11s %s" % ("labels", files.meta["label_layout"]))
    out.layouts = files.layout_info() if files.has_layouts else None
    if out.layouts:
        log("%-11s %s" % ("layouts", ", ".join("%s=%s" % kv for kv in sorted(out.layouts.items()))))
    return out


def layouts_png_name(out_png):
    """display's layout grid beside the image grid: grid.png -> grid_layouts.png."""
    stem, ext = os.path.splitext(out_png)
    return stem + "_layouts" + ext


def check_image_path(path, what="--out"):
    """UserError unless path can be written as an image file of a known format."""
    import PIL.Image
    dnnlib.util.check_output_file(path, what)
    ext = os.path.splitext(path)[1].lower()
    if PIL.Image.registered_extensions().get(ext) not in ("PNG", "JPEG", "BMP", "WEBP", "TIFF", "GIF"):
        raise dnnlib.UserError("%s %s: unknown image extension %r; use .png or .jpg" % (what, path, ext))


def display(tfrecord_dir, out_png, grid=(8, 8), show=False, log=print):
    """Save the first grid[0]*grid[1] images as one PNG grid (and open it if show)."""
    check_image_path(out_png, "--out")
    files = fmt.DatasetFiles(tfrecord_dir)
    items = list(fmt.iter_images(files, max_images=grid[0] * grid[1], with_layouts=files.has_layouts))
    imgs = [x[0] for x in items] if files.has_layouts else items
    save_image_grid(np.stack(imgs), out_png, drange=(0, 255), grid_size=grid)
    log("Saved %d images of %s to %s" % (len(imgs), tfrecord_dir, out_png))
    if files.has_layouts:
        k = files.layout_info()["max_segments"]
        layouts_png = layouts_png_name(out_png)
        save_image_grid(render_layout(np.stack([seg for _, (seg, _) in items]), k), layouts_png, drange=(0, 255),
                        grid_size=grid)
        log("Saved their layouts to %s" % layouts_png)
    if show:
        import PIL.Image
        PIL.Image.open(out_png).show()


def extract(tfrecord_dir, output_dir, resolution=None, max_images=None, overwrite=False, log=print):
    """Write img%08d.png for every image (at a level if resolution), and layout%08d.png for its
    layout when the dataset has them, atomically as a folder."""
    output_dir = os.path.normpath(output_dir)
    dnnlib.util.check_output_dir(output_dir, "output folder")
    if os.path.exists(output_dir):
        if not overwrite:
            raise dnnlib.UserError("output %s already exists; pass --overwrite or choose another folder" % output_dir)
        foreign = [e for e in os.listdir(output_dir) if not (e.startswith(("img", "layout")) and e.endswith(".png"))]
        if foreign:
            raise dnnlib.UserError("output %s holds files other than extracted img*.png (%s); --overwrite only "
                                   "replaces an earlier extract: choose another folder" % (output_dir, foreign[0]))
    files = fmt.DatasetFiles(tfrecord_dir)
    log2 = None
    if resolution is not None:
        log2 = int(resolution).bit_length() - 1
        if resolution != 2 ** log2 or log2 not in files.available_log2():
            raise dnnlib.UserError("--resolution %s: %s has no such level; available: %s" % (
                resolution, tfrecord_dir, ", ".join(str(2 ** l) for l in files.available_log2())))
    if max_images is not None and max_images < 1:
        raise dnnlib.UserError("--max-images %s must be >= 1" % max_images)
    parent, name = os.path.split(os.path.abspath(output_dir))
    os.makedirs(parent, exist_ok=True)
    _remove_stale_temp_dirs(parent, name)
    tmp = os.path.join(parent, ".%s%s%d" % (name, fmt.TEMP_MARK, os.getpid()))
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    n = 0
    try:
        k = files.layout_info()["max_segments"] if files.has_layouts else None
        for n, item in enumerate(fmt.iter_images(files, log2, max_images, with_layouts=files.has_layouts), 1):
            img = item[0] if files.has_layouts else item
            _save_png(img, os.path.join(tmp, "img%08d.png" % (n - 1)))
            if files.has_layouts:
                layout_to_pil(item[1][0], k).save(os.path.join(tmp, "layout%08d.png" % (n - 1)))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if os.path.exists(output_dir):
        old = os.path.join(parent, ".%s.old-%d" % (name, os.getpid()))
        os.rename(output_dir, old)
        os.rename(tmp, output_dir)
        shutil.rmtree(old)
    else:
        os.rename(tmp, output_dir)
    log("Extracted %d images%s to %s" % (n, " and layouts" if files.has_layouts else "", output_dir))
    return n


def compare(dir_a, dir_b, ignore_labels=False, log=print):
    """Compare two datasets image by image (and, unless ignore_labels, labels and layouts); returns
    the number of differences."""
    fa, fb = fmt.DatasetFiles(dir_a), fmt.DatasetFiles(dir_b)
    diffs, n, first, layout_diff = 0, 0, None, 0
    both = fa.has_layouts and fb.has_layouts and not ignore_labels
    it_a, it_b = fmt.iter_images(fa, with_layouts=both), fmt.iter_images(fb, with_layouts=both)
    for n, (a, b) in enumerate(zip(it_a, it_b), 1):
        if both:
            (a, (sa, ca)), (b, (sb, cb)) = a, b
            layout_diff += int(sa.shape != sb.shape or not np.array_equal(sa, sb) or not np.array_equal(ca, cb))
        if a.shape != b.shape or not np.array_equal(a, b):
            diffs += 1
            first = n - 1 if first is None else first
    if fa.has_layouts != fb.has_layouts and not ignore_labels:
        layout_diff = 1
        log("Layouts differ in presence")
    elif layout_diff:
        log("%d layout(s) differ" % layout_diff)
    extra = sum(1 for _ in it_a) + sum(1 for _ in it_b)
    if extra:
        log("Image counts differ: %d more image(s) in one dataset" % extra)
    la, lb = fa.load_labels(), fb.load_labels()
    label_diff = 0
    if not ignore_labels and (la is not None or lb is not None):
        if la is None or lb is None or la.shape != lb.shape:
            label_diff = 1
            log("Labels differ in presence or shape")
        else:
            label_diff = int(np.sum(np.any(la != lb, axis=1)))
            if label_diff:
                log("%d label row(s) differ" % label_diff)
    log("%d image(s) compared, %d differ%s" % (n, diffs, "" if first is None else " (first: index %d)" % first))
    total = diffs + extra + label_diff + layout_diff
    log("Identical" if total == 0 else "Different")
    return total
