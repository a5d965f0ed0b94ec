"""Scene layouts (GANsformer2, issue 14): per image a segment-index map and per segment a category.

A layout is `(segments, categories)`:
  segments    uint8 [H, W]: 0 = background, 1..n = the image's segments, numbered in depth order
              (back to front: segment n is in front of every other one);
  categories  int [n]: the category id (>= 1) of segment i+1; category 0 is the background's.
At most MAX_SEGMENTS segments per image (the map is stored as uint8). Lower levels are 2x2
majority down-samplings (`downsample_2x`), chained level by level: a label map is never averaged.

Label PNGs (`dataset_tool.py create_from_images --layouts DIR`, `read_label_file`):
  - single-channel (L, P, I, I;16): the value is the category, 0 = void/unlabelled = background
    (Cityscapes `*_labelIds.png`, ADE/COCO-stuff index maps, any index PNG, our extracted layouts);
    one segment per category present;
  - single-channel with values >= 1000 (Cityscapes `*_instanceIds.png`): value = category * 1000 +
    instance for object classes, else the category; one segment per value;
  - RGB(A) (COCO-style panoptic/instance PNGs): id = R + 256 G + 65536 B, 0 = void = background; one
    segment per id; its category from a COCO panoptic JSON directly inside DIR (`annotations[].file_name`
    and `segments_info[].id/category_id`) when there is one, else 1 (class-agnostic instances).
  Real label maps carry no depth: segments are ordered by decreasing area (large regions such as sky,
  road, walls at the back; small objects in front), ties by id. Numpy/Pillow only."""

import glob
import json
import os

import numpy as np

import dnnlib

MAX_SEGMENTS = 255
INSTANCE_BASE = 1000  # Cityscapes instanceIds: category * 1000 + instance.
LABEL_SUFFIXES = ("_gtFine_labelIds.png", "_gtFine_instanceIds.png", "_gtCoarse_labelIds.png")
LABEL_MAPPING = ("single-channel: value = category (0 = background), values >= 1000 = category*1000+instance; "
                 "RGB: R+256G+65536B = segment id (categories from a COCO panoptic JSON, else 1); "
                 "depth order = decreasing area")


# ------------------------------------------------------------------------------------------
# Down-sampling (nearest/majority, never averaged).

def downsample_2x(segments):
    """2x2 majority of segment maps [..., H, W] (H, W even): the value held by most of the four
    pixels; ties go to the frontmost (highest) segment, so thin objects in front survive. Exact
    integer arithmetic, done identically by the TF reader (training/dataset.py)."""
    s = np.asarray(segments).astype(np.int32)
    v = np.stack([s[..., 0::2, 0::2], s[..., 0::2, 1::2], s[..., 1::2, 0::2], s[..., 1::2, 1::2]])  # [4, ..., h, w]
    counts = (v[:, None] == v[None, :]).sum(axis=1)                                              # [4, ..., h, w]
    return ((counts * 256 + v).max(axis=0) % 256).astype(np.uint8)


def downsample(segments, factor):
    """Chained 2x2 majority down to 1/factor (a power of two) of the size."""
    s = np.asarray(segments, np.uint8)
    while factor > 1:
        s, factor = downsample_2x(s), factor // 2
    return s


# ------------------------------------------------------------------------------------------
# Checking and building layouts.

def check_layout(segments, categories, hw, where):
    """(uint8 [H,W], int64 [n]) of a layout for an image of height/width hw; ValueError otherwise
    (a programmer error: sources build layouts with `from_ids`)."""
    seg = np.asarray(segments)
    cats = np.asarray(categories, np.int64).reshape(-1)
    if seg.shape != tuple(hw) or seg.dtype.kind not in "iub":
        raise ValueError("%s: layout of shape %s/%s for an image of %s" % (where, seg.shape, seg.dtype, tuple(hw)))
    if len(cats) > MAX_SEGMENTS or (cats.size and cats.min() < 1):
        raise ValueError("%s: %d segment categories (need <= %d, each >= 1)" % (where, len(cats), MAX_SEGMENTS))
    if seg.size and (seg.min() < 0 or seg.max() > len(cats)):
        raise ValueError("%s: segment ids up to %d for %d categories" % (where, seg.max(), len(cats)))
    return seg.astype(np.uint8), cats


def from_ids(ids, category_of, where):
    """A layout from an id map [H,W] (0 = background): one segment per id, ordered by decreasing
    area (ties by id), category `category_of(id)`. BadImage beyond MAX_SEGMENTS segments."""
    from training.data.sources import BadImage
    ids = np.asarray(ids, np.int64)
    uniq, inverse, area = np.unique(ids, return_inverse=True, return_counts=True)
    real = np.nonzero(uniq != 0)[0]                         # Indices into uniq of the segments.
    if len(real) > MAX_SEGMENTS:
        raise BadImage("%s has %d segments, more than %d; merge some ids or pass --ignore-errors"
                       % (where, len(real), MAX_SEGMENTS))
    order = real[np.lexsort((uniq[real], -area[real]))]     # Largest first = furthest back.
    lut = np.zeros(len(uniq), np.uint8)
    lut[order] = np.arange(1, len(order) + 1)
    segments = lut[inverse.reshape(-1)].reshape(ids.shape)
    lut_ids = uniq[order]
    return segments, np.array([category_of(int(i)) for i in lut_ids], np.int64)


# ------------------------------------------------------------------------------------------
# Label PNGs beside the images (create_from_images --layouts DIR).

class LabelFolder:
    """Finds and reads the label PNG of each image (module docstring: names and mapping)."""

    def __init__(self, layouts_dir, image_dir):
        from training.data.sources import _require_path
        _require_path(layouts_dir, "--layouts folder", "pass the folder that holds the label PNGs")
        if not os.path.isdir(layouts_dir):
            raise dnnlib.UserError("--layouts %s is not a folder; pass the folder that holds the label PNGs"
                                   % layouts_dir)
        self.dir, self.image_dir = layouts_dir, image_dir
        self.panoptic = read_panoptic(layouts_dir)

    def candidates(self, image_path):
        rel = os.path.relpath(image_path, self.image_dir)
        stem = os.path.splitext(rel)[0]
        names = [stem + ".png", stem + "_labelIds.png"]
        if stem.endswith("_leftImg8bit"):                    # Cityscapes: <city>_<seq>_<frame>_leftImg8bit.png
            names += [stem[:-len("_leftImg8bit")] + s for s in LABEL_SUFFIXES]
        return [os.path.join(self.dir, n) for n in names]

    def load(self, image_path, image_size):
        """(ids int64 [H,W], category_of, label path) of an image of PIL size (w, h); BadImage naming
        both files when the label is missing, unreadable or of another size."""
        from training.data.sources import BadImage, open_pil
        cands = self.candidates(image_path)
        path = next((p for p in cands if os.path.isfile(p)), None)
        if path is None:
            raise BadImage("no label file for image %s: %s not found in --layouts %s; add it or pass --ignore-errors"
                           % (image_path, os.path.relpath(cands[0], self.dir), self.dir))
        try:
            pil = open_pil(path, path)
        except BadImage as e:
            raise BadImage("label file of image %s: %s" % (image_path, e))
        if pil.size != tuple(image_size):
            raise BadImage("label file %s is %dx%d but image %s is %dx%d; they must be the same size"
                           % ((path,) + pil.size + (image_path,) + tuple(image_size)))
        return read_label_image(pil, path, "of image %s" % image_path, self.panoptic) + (path,)


def read_label_image(pil, path, what="", panoptic=None):
    """(ids int64 [H,W], category_of) of an opened label PNG (module docstring: the mapping); BadImage
    for other modes. what: words naming the image it labels, for the message; panoptic: read_panoptic's."""
    from training.data.sources import BadImage
    of = " (%s)" % what if what else ""
    if pil.mode in ("L", "P", "1", "I", "I;16", "I;16B", "I;16L", "I;16N"):
        ids = np.asarray(pil if pil.mode != "1" else pil.convert("L")).astype(np.int64)
        if ids.ndim != 2:
            raise BadImage("label file %s%s has mode %s; expected one channel" % (path, of, pil.mode))
        if ids.max(initial=0) >= INSTANCE_BASE:
            return ids, (lambda i: i // INSTANCE_BASE if i >= INSTANCE_BASE else i)
        return ids, (lambda i: i)
    if pil.mode in ("RGB", "RGBA"):
        rgb = np.asarray(pil.convert("RGB")).astype(np.int64)
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        cats = (panoptic or {}).get(os.path.basename(path), {})
        return ids, (lambda i: int(cats.get(i, 1)))
    raise BadImage("label file %s%s has mode %s; expected a single-channel index PNG or an RGB panoptic PNG"
                   % (path, of, pil.mode))


def read_panoptic(layouts_dir):
    """{png name: {segment id: category id}} from a COCO panoptic JSON directly inside the folder."""
    out = {}
    for path in sorted(glob.glob(os.path.join(layouts_dir, "*.json"))):
        try:
            with open(path) as f:
                data = json.load(f)
            anns = data.get("annotations") if isinstance(data, dict) else None
            if not isinstance(anns, list) or not all(isinstance(a, dict) and "segments_info" in a for a in anns):
                continue
            for a in anns:
                out[str(a["file_name"])] = {int(s["id"]): int(s["category_id"]) for s in a["segments_info"]}
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise dnnlib.UserError("cannot read the panoptic annotations %s (%s: %s); fix or remove it"
                                   % (path, type(e).__name__, e))
    return out
