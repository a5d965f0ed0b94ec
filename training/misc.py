"""Pickles (load, atomic save, (G, D, Gs) network pickles) and image grids.

Official GANformer pickles execute `from training import misc` and call `misc.crop_tensor`,
so that name (and its quirk, REFERENCE.md §10.2 item 9) stays here."""

import math
import os
import pickle
import tempfile

import numpy as np
import PIL.Image

import dnnlib
from dnnlib.util import UserError

# ------------------------------------------------------------------------------------------
# Pickles.


def load_pkl(file_or_url, cache_dir: str = None):
    """Unpickle a local path, file:// or http(s) URL (downloads are cached by
    dnnlib.util.open_url). encoding='latin1' reads pickles written by Python 2."""
    with dnnlib.util.open_url(file_or_url, cache_dir=cache_dir) as file:
        return pickle.load(file, encoding="latin1")


def _atomic_write(filename, write_func, mode="wb"):
    # Write to a temporary file beside the target and rename it into place, so an
    # interrupted write never leaves a complete-looking file.
    directory = os.path.dirname(os.path.abspath(filename))
    os.makedirs(directory, exist_ok=True)
    fd, temp_path = tempfile.mkstemp(prefix="." + os.path.basename(filename) + ".", suffix=".tmp", dir=directory)
    dnnlib.util.apply_umask_mode(fd)
    try:
        with os.fdopen(fd, mode) as file:
            write_func(file)
        os.replace(temp_path, filename)
    except BaseException:
        if os.path.exists(temp_path):
            os.remove(temp_path)
        raise


def save_pkl(obj, filename: str) -> None:
    """Pickle obj with the highest protocol, atomically (temporary file + rename)."""
    _atomic_write(filename, lambda file: pickle.dump(obj, file, protocol=pickle.HIGHEST_PROTOCOL))


def load_network_pkl(path_or_url, cache_dir: str = None):
    """(G, D, Gs) from a network pickle (the first 3 items, as official loaders do).
    Needs a default TF session (dnnlib.tflib.init_tf()). Any failure raises one UserError
    naming the file."""
    from dnnlib.tflib.network import Network  # Imports TensorFlow; only needed here.

    try:
        data = load_pkl(path_or_url, cache_dir=cache_dir)
    except UserError:
        raise
    except Exception as error:  # A damaged/foreign pickle can raise almost anything.
        reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        if isinstance(error, (pickle.UnpicklingError, EOFError)):
            reason += " (the file is truncated or not a pickle)"
        raise UserError(f"Cannot load network pickle {path_or_url}: {reason}") from error
    if isinstance(data, Network):
        raise UserError(f"{path_or_url} holds a single network '{data.name}', not (G, D, Gs); "
                        "load it with training.misc.load_pkl")
    if not isinstance(data, (tuple, list)) or len(data) < 3 or not all(isinstance(n, Network) for n in data[:3]):
        what = type(data).__name__ + (f" of {len(data)} items" if isinstance(data, (tuple, list)) else "")
        raise UserError(f"{path_or_url} holds a {what}, not a (G, D, Gs) network pickle")
    return tuple(data[:3])


# ------------------------------------------------------------------------------------------
# Images (numpy, NCHW).


def adjust_dynamic_range(data, drange_in, drange_out):
    """Linearly map values from drange_in (lo, hi) to drange_out (lo, hi), in float32."""
    if tuple(drange_in) != tuple(drange_out):
        scale = (np.float32(drange_out[1]) - np.float32(drange_out[0])) / (
            np.float32(drange_in[1]) - np.float32(drange_in[0]))
        bias = np.float32(drange_out[0]) - np.float32(drange_in[0]) * scale
        data = data * scale + bias
    return data


def create_image_grid(images, grid_size=None):
    """Tile images [N, C, H, W] (or [N, H, W]) row by row into one [C, gh*H, gw*W] image.
    grid_size (gw, gh) defaults to gw = ceil(sqrt(N)), gh = ceil(N / gw); empty cells are 0."""
    images = np.asarray(images)
    if images.ndim not in (3, 4):
        raise ValueError(f"images must be [N, C, H, W] or [N, H, W], got shape {images.shape}")
    num, img_h, img_w = images.shape[0], images.shape[-2], images.shape[-1]
    if grid_size is not None:
        grid_w, grid_h = (int(v) for v in grid_size)
    else:
        grid_w = max(int(np.ceil(np.sqrt(num))), 1)
        grid_h = max((num - 1) // grid_w + 1, 1)
    if grid_w * grid_h < num:
        raise ValueError(f"grid_size {grid_w}x{grid_h} holds fewer than {num} images")
    grid = np.zeros(list(images.shape[1:-2]) + [grid_h * img_h, grid_w * img_w], dtype=images.dtype)
    for idx in range(num):
        x, y = (idx % grid_w) * img_w, (idx // grid_w) * img_h
        grid[..., y:y + img_h, x:x + img_w] = images[idx]
    return grid


def convert_to_pil_image(image, drange=(0, 1)):
    """A CHW (C = 1, 3, 4) or HW float image in drange as a PIL image (rounded to uint8)."""
    image = np.asarray(image)
    if image.ndim == 3:
        if image.shape[0] == 1:
            image = image[0]
        elif image.shape[0] in (3, 4):
            image = image.transpose(1, 2, 0)  # CHW -> HWC
        else:
            raise ValueError(f"image must have 1, 3 or 4 channels (CHW), got shape {image.shape}")
    elif image.ndim != 2:
        raise ValueError(f"image must be CHW or HW, got shape {image.shape}")
    image = adjust_dynamic_range(image.astype(np.float32), drange, [0, 255])
    image = np.rint(image).clip(0, 255).astype(np.uint8)
    mode = "L" if image.ndim == 2 else {3: "RGB", 4: "RGBA"}[image.shape[2]]
    return PIL.Image.fromarray(image, mode)


def save_image_grid(images, filename, drange=(0, 1), grid_size=None):
    """Save images [N, C, H, W] in drange as one grid image, atomically; the format comes
    from the file extension."""
    pil = convert_to_pil_image(create_image_grid(images, grid_size), drange)
    ext = os.path.splitext(filename)[1].lower()
    fmt = PIL.Image.registered_extensions().get(ext)
    if fmt is None:
        raise ValueError(f"filename: unknown image extension '{ext}' in {filename}")
    _atomic_write(filename, lambda file: pil.save(file, format=fmt))


# ------------------------------------------------------------------------------------------
# Cropping as the official GANformer code does it (used by its pickled networks).


def crop_tensor(images, ratio=1.0):
    """Central rows of [..., H, W] (numpy or tf): rows floor((1-r)W/2) to ceil((1+r)W/2)
    INCLUSIVE, i.e. one row more than crop_tensor_shape says (official behaviour,
    REFERENCE.md §10.2 item 9: 193 rows for r = 0.75 at 256). None or 1.0: unchanged."""
    if ratio is None or ratio == 1.0:
        return images
    width = int(images.shape[-1])
    start = int(math.floor((1 - ratio) * width / 2))
    end = int(math.ceil((1 + ratio) * width / 2))
    return images[..., start:end + 1, :]


def crop_tensor_shape(shape, ratio=1.0):
    """(rows, width) that the official code assumes for crop_tensor(x, ratio) of a
    [..., W, W] shape: end - start rows (the exact crop, see crop_tensor)."""
    if ratio is None or ratio == 1.0:
        return shape
    width = int(shape[-1])
    start = int(math.floor((1 - ratio) * width / 2))
    end = int(math.ceil((1 + ratio) * width / 2))
    return (end - start, width)
