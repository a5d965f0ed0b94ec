"""Conversion driver for dataset_tool: validates and reshapes each source image to the dataset
geometry and streams it into a DatasetWriter.

Geometry (REFERENCE.md §6, "Aspect ratios"): the first usable image fixes channels and size
unless --channels / --resolution say otherwise. Without --resolution and --ratio every image
must already be square, a power of two and of the first image's size; with either, each image
is centre-cropped to the aspect `ratio` (height/width, default 1) and Lanczos-resized to
width `resolution`. Non-square content is stored as
  native: true H x W records, H = ratio*W rounded to a multiple of W/4 (so every level down to
          width 4 has a whole height; the reader serves [B,C,H,W]), or
  pad:    GANsformer's padded squares: the H x W content centred in a black W x W square; the
          ratio is kept in dataset.json (dataset.ratio) for cropping samples and metrics.
Layouts (sources with a `layouts` LabelFolder: create_from_images --layouts DIR) go through the same
crop, nearest-neighbour resize and padding as their image, then become segments + categories
(training/data/layouts.py)."""

import numpy as np

import dnnlib
from training.data import layouts as lay
from training.data.sources import BadImage
from training.data.writer import DatasetWriter

_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


class ConvertOptions(dnnlib.EasyDict):
    """Options shared by every create_* command (defaults here, once)."""

    def __init__(self, **kwargs):
        super().__init__(resolution=None, ratio=None, ratio_mode="native", channels=None, max_images=None,
                         shuffle=None, seed=123, ignore_errors=False, storage="raw", shards=1, overwrite=False,
                         progress_every=1000)
        for k, v in kwargs.items():
            if k not in self:
                raise ValueError("unknown conversion option %r" % k)
            self[k] = v


def _channels_of(img, name):
    """Channel count of a PIL image or array; BadImage for 16-bit/float."""
    if isinstance(img, np.ndarray):
        if img.dtype != np.uint8:
            raise BadImage("%s has dtype %s (16-bit or float); convert it to 8-bit" % (name, img.dtype))
        return 1 if img.ndim == 2 or img.shape[2] == 1 else 3
    if img.mode in _SIXTEEN_BIT_MODES:
        raise BadImage("%s is a 16-bit/float image (mode %s); convert it to 8-bit or pass --ignore-errors"
                       % (name, img.mode))
    return 1 if img.mode in ("L", "LA", "1") else 3


def _to_array(img, channels):
    """HWC uint8 with `channels` channels (alpha dropped, gray replicated or luma-converted)."""
    if isinstance(img, np.ndarray):
        x = img if img.ndim == 3 else img[:, :, None]
        if x.shape[2] == 4:
            x = x[:, :, :3]
        if channels == 3 and x.shape[2] == 1:
            x = np.repeat(x, 3, axis=2)
        elif channels == 1 and x.shape[2] == 3:
            x = np.rint(x @ np.array([0.299, 0.587, 0.114])).clip(0, 255).astype(np.uint8)[:, :, None]
        return x
    x = np.asarray(img.convert("L" if channels == 1 else "RGB"))
    return x.reshape(x.shape[0], x.shape[1], -1)


class Geometry:
    """Target layout, fixed from the options and the first usable image."""

    def __init__(self, opts, first_w, first_h, first_name):
        self.resize = opts.resolution is not None or opts.ratio is not None
        self.ratio = 1.0 if opts.ratio is None else float(opts.ratio)
        if not 0 < self.ratio <= 1:
            raise dnnlib.UserError("--ratio %g must be in (0, 1] (height/width)" % self.ratio)
        if opts.resolution is not None:
            w = int(opts.resolution)
        elif self.resize:
            w = 2 ** int(np.floor(np.log2(first_w)))
        else:
            w = first_w
        if w < 4 or w & (w - 1):
            raise dnnlib.UserError("%s is %dx%d: width %d is not a power of two >= 4; pass --resolution N to resize"
                                   % (first_name, first_w, first_h, w) if opts.resolution is None else
                                   "--resolution %d is not a power of two >= 4" % w)
        self.w = w
        if opts.ratio_mode == "native":
            unit = max(w // 4, 1)
            self.content_h = max(unit, int(round(w * self.ratio / unit)) * unit)
            self.stored_h = self.content_h
        elif opts.ratio_mode == "pad":
            self.content_h = max(1, int(round(w * self.ratio)))
            self.stored_h = w
        else:
            raise ValueError("ratio_mode must be 'native' or 'pad', got %r" % opts.ratio_mode)
        self.stored_ratio = self.content_h / w

    def _crop_box(self, iw, ih):
        """Largest centre rectangle of the target aspect in an iw x ih image (left, top, right, bottom)."""
        aspect = self.content_h / self.w
        cw, ch = (iw, int(round(iw * aspect))) if iw * aspect <= ih else (int(round(ih / aspect)), ih)
        left, top = (iw - cw) // 2, (ih - ch) // 2
        return left, top, left + cw, top + ch

    def apply_ids(self, ids):
        """An id/label map [h,w] of an image that `apply` accepted -> the stored size: the same crop,
        nearest-neighbour resize (labels are never interpolated) and zero (background) padding."""
        import PIL.Image
        ih, iw = ids.shape
        if (iw, ih) == (self.w, self.content_h) and self.stored_h == self.content_h:
            return ids
        pil = PIL.Image.fromarray(ids.astype(np.int32), "I")
        pil = pil.crop(self._crop_box(iw, ih)).resize((self.w, self.content_h), PIL.Image.NEAREST)
        out = np.zeros((self.stored_h, self.w), np.int64)
        top = (self.stored_h - self.content_h) // 2
        out[top:top + self.content_h] = np.asarray(pil)
        return out

    def apply(self, img, name):
        """HWC-shaped PIL/array -> (PIL or array at the stored size, changed?)."""
        import PIL.Image
        iw, ih = (img.shape[1], img.shape[0]) if isinstance(img, np.ndarray) else img.size
        if (iw, ih) == (self.w, self.content_h) and self.stored_h == self.content_h:
            return img, False
        if not self.resize:
            if iw != ih:
                raise BadImage("%s is %dx%d, not square; pass --ratio %.4g to keep its aspect, or --resolution N to "
                               "crop the centre square" % (name, iw, ih, ih / iw))
            raise BadImage("%s is %dx%d but the first image is %dx%d; pass --resolution N to resize all images"
                           % (name, iw, ih, self.w, self.w))
        if isinstance(img, np.ndarray):
            img = PIL.Image.fromarray(img[:, :, 0] if img.ndim == 3 and img.shape[2] == 1 else img)
        # Largest centre rectangle of the target aspect, then Lanczos to the content size.
        img = img.crop(self._crop_box(iw, ih)).resize((self.w, self.content_h), PIL.Image.LANCZOS)
        if self.stored_h != self.content_h:
            canvas = PIL.Image.new(img.mode, (self.w, self.stored_h))
            canvas.paste(img, (0, (self.stored_h - self.content_h) // 2))
            img = canvas
        return img, True


def convert(source, tfrecord_dir, opts, meta=None, log=print):
    """Stream `source` into a dataset at tfrecord_dir; returns the number of images written."""
    order = np.arange(source.count) if source.count is not None else None
    if opts.shuffle is not False and source.random_access:
        np.random.RandomState(opts.seed).shuffle(order)  # StyleGAN2 writes in a RandomState(123) order.
    elif opts.shuffle:
        log("Note: this source is read in its stored order (--shuffle applies only to random-access sources)")
    meta = dict(meta or {}, ratio_mode=opts.ratio_mode)
    label_folder = getattr(source, "layouts", None)
    if label_folder is not None:
        meta["layouts"] = dict(mapping=lay.LABEL_MAPPING, depth="decreasing area (label maps carry no depth)")
    geometry, channels, first_name, skipped, first_error = None, opts.channels, None, 0, None
    with DatasetWriter(tfrecord_dir, storage=opts.storage, shards=opts.shards, overwrite=opts.overwrite,
                       meta=meta, progress_every=opts.progress_every) as writer:
        for name, load, label in source.items(order):
            if opts.max_images is not None and writer.num_images >= opts.max_images:
                break
            try:
                img, encoded = load()
                c = _channels_of(img, name)
                if channels is None:
                    channels = c
                elif opts.channels is None and c != channels:
                    raise BadImage("%s has %d channel(s) but the first image (%s) has %d; pass --channels %d to "
                                   "convert all images" % (name, c, first_name, channels, max(c, channels)))
                if geometry is None:
                    w, h = (img.shape[1], img.shape[0]) if isinstance(img, np.ndarray) else img.size
                    geometry = Geometry(opts, w, h, name)
                    writer.meta["ratio"] = geometry.stored_ratio
                    if opts.ratio is not None and abs(geometry.stored_ratio - opts.ratio) > 1e-6:
                        log("Note: ratio %.4g stored as %d/%d = %.4g (native heights are multiples of width/4; "
                            "--ratio-mode pad keeps it exactly)" % (opts.ratio, geometry.content_h, geometry.w,
                                                                    geometry.stored_ratio))
                    first_name = name
                layout = None
                if label_folder is not None:
                    size = (img.shape[1], img.shape[0]) if isinstance(img, np.ndarray) else img.size
                    ids, category_of, label_path = label_folder.load(name, size)
                img, changed = geometry.apply(img, name)
                if label_folder is not None:
                    layout = lay.from_ids(geometry.apply_ids(ids), category_of, "label file %s" % label_path)
            except BadImage as e:
                if not opts.ignore_errors:
                    raise
                skipped += 1
                first_error = first_error or str(e)
                continue
            keep_bytes = (opts.storage == "compact" and encoded is not None and not changed
                          and getattr(img, "mode", None) == ("L" if channels == 1 else "RGB"))
            if keep_bytes:
                writer.add_encoded([channels, geometry.stored_h, geometry.w], encoded, label, layout)
            else:
                writer.add_images(_to_array(img, channels).transpose(2, 0, 1), label,
                                  None if layout is None else (layout[0][None], [layout[1]]))
        if writer.num_images == 0:
            raise dnnlib.UserError("no usable images in the input%s" % (
                "; %d skipped, first: %s" % (skipped, first_error) if skipped else ""))
        writer.meta["skipped"] = skipped
    if skipped:
        log("Skipped %d bad input(s) (--ignore-errors); first: %s" % (skipped, first_error))
    log("Wrote %d images (%dx%d, %d channel(s), %s storage) to %s" % (
        writer.num_images, geometry.w, geometry.stored_h, channels, opts.storage, tfrecord_dir))
    return writer.num_images
