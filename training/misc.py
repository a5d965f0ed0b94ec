"""Pickles (load, atomic save, (G, D, Gs) network pickles), and the names official code imports.

Official StyleGAN2 / GANsformer code executes `from training import misc`: the image helpers
it calls (adjust_dynamic_range, create_image_grid, convert_to_pil_image, save_image_grid)
live in training/visuals.py and are re-exported here, and the pickled GANsformer networks
call `misc.crop_tensor`, so that function (and its quirk, REFERENCE.md §10.2 item 9) stays
here."""

import math
import pickle

import dnnlib
from dnnlib.util import UserError, atomic_write_pickle
from training.visuals import (adjust_dynamic_range, convert_to_pil_image,  # noqa: F401 (re-exported)
                              create_image_grid, save_image_grid)

# ------------------------------------------------------------------------------------------
# Pickles.


def load_pkl(file_or_url, cache_dir: str = None):
    """Unpickle a local path, file:// or http(s) URL (downloads are cached by
    dnnlib.util.open_url). encoding='latin1' reads pickles written by Python 2."""
    with dnnlib.util.open_url(file_or_url, cache_dir=cache_dir) as file:
        return pickle.load(file, encoding="latin1")


def save_pkl(obj, filename: str) -> None:
    """Pickle obj with the highest protocol, atomically (temporary file + rename)."""
    atomic_write_pickle(obj, filename)


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
# Cropping as the official GANsformer code does it (used by its pickled networks).


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
