"""LSUN lmdb conversions (create_lsun, create_lsun_wide, create_bedrooms) on small lmdb
databases written here in LSUN's layout: keys are hex ids, values encoded images (webp)."""

import io
import json
import os
import sys

import lmdb          # requirements-test.txt (an optional dependency of dataset_tool.py itself)
import numpy as np
import PIL.Image
import pytest

import dataset_tool
from training.data import records as fmt

def _encode(array, kind="WEBP"):
    buf = io.BytesIO()
    PIL.Image.fromarray(array).save(buf, kind, **({"lossless": True} if kind == "WEBP" else {}))
    return buf.getvalue()


def _colour(i):
    return np.array([20 + 30 * i, 200 - 25 * i, 7 * i], np.uint8)


def _write_lmdb(path, images):
    """images: {key bytes: encoded bytes}. LSUN stores one entry per image under a hex key."""
    env = lmdb.open(path, map_size=1 << 24)
    with env.begin(write=True) as txn:
        for key, value in images.items():
            txn.put(key, value)
    env.close()


def _lsun_like(path, n, layout):
    """n images of 24x16 (WxH). layout 'square': the centre 16x16 has colour i, the side bands
    are white; 'wide': rows 2..13 have colour i, the top and bottom 2 rows are white. Returns
    the colours in lmdb (sorted key) order."""
    rnd = np.random.RandomState(0)
    keys = sorted({("%040x" % rnd.randint(1 << 62)).encode() for _ in range(n)})
    assert len(keys) == n
    images, colours = {}, []
    for i, key in enumerate(keys):
        img = np.full((16, 24, 3), 255, np.uint8)
        if layout == "square":
            img[:, 4:20] = _colour(i)
        else:
            img[2:14] = _colour(i)
        images[key] = _encode(img)
        colours.append(_colour(i))
    _write_lmdb(path, dict(reversed(list(images.items()))))      # insertion order does not matter
    return colours


def _images(path):
    return np.stack(list(fmt.iter_images(fmt.DatasetFiles(path))))


def test_create_lsun_centre_crops_in_key_order(tmp_path):
    src = str(tmp_path / "bedroom_train_lmdb")
    colours = _lsun_like(src, 5, "square")
    out = str(tmp_path / "lsun")
    assert dataset_tool.main(["create_lsun", out, src, "--resolution", "8", "--shuffle", "0"]) == 0
    got = _images(out)
    assert got.shape == (5, 3, 8, 8)
    expected = np.stack([np.broadcast_to(c[:, None, None], (3, 8, 8)) for c in colours])
    assert np.abs(got.astype(int) - expected).max() <= 1                 # the white bands are cropped away
    out3 = str(tmp_path / "lsun3")
    assert dataset_tool.main(["create_lsun", out3, src, "--resolution", "8", "--max-images", "3"]) == 0
    assert len(_images(out3)) == 3


def test_create_lsun_wide_pads_to_black_squares(tmp_path):
    src = str(tmp_path / "car_lmdb")
    colours = _lsun_like(src, 3, "wide")
    out = str(tmp_path / "wide")
    assert dataset_tool.main(["create_lsun_wide", out, src, "--width", "16", "--height", "8", "--shuffle", "0"]) == 0
    got = _images(out).astype(int)
    assert got.shape == (3, 3, 16, 16)
    for img, c in zip(got, colours):
        assert np.abs(img[:, 4:12] - c[:, None, None]).max() <= 1         # content: the 2:1 centre band
        assert not img[:, :4].any() and not img[:, 12:].any()             # black padding above and below
    meta = json.load(open(os.path.join(out, "dataset.json")))
    assert meta["ratio"] == pytest.approx(0.5)


def test_create_bedrooms_finds_the_lmdb_in_the_download_folder(tmp_path, capsys):
    folder = tmp_path / "download"
    src = folder / "bedroom_train_lmdb"
    src.mkdir(parents=True)
    _lsun_like(str(src), 2, "square")
    out = str(tmp_path / "bedrooms")
    assert dataset_tool.main(["create_bedrooms", out, str(folder), "--resolution", "16"]) == 0
    assert "only 2 images" in capsys.readouterr().out
    # Catalog ratio 188/256 in native records: height rounded to a multiple of width/4 -> 12x16.
    meta = json.load(open(os.path.join(out, "dataset.json")))
    assert _images(out).shape == (2, 3, 12, 16) and meta["ratio"] == pytest.approx(0.75)


def test_bad_lmdb_entries_and_missing_package(tmp_path, capsys, monkeypatch):
    src = str(tmp_path / "bad_lmdb")
    good = _encode(np.full((16, 16, 3), 9, np.uint8))
    _write_lmdb(src, {b"a1": good, b"b2": b"RIFF\x10\x00\x00\x00WEBPnot an image", b"c3": good})
    out = str(tmp_path / "out")
    capsys.readouterr()
    assert dataset_tool.main(["create_lsun", out, src, "--resolution", "8", "--shuffle", "0"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "lmdb key b2" in err
    assert not os.path.exists(out) and sorted(os.listdir(tmp_path)) == ["bad_lmdb"]
    assert dataset_tool.main(["create_lsun", out, src, "--resolution", "8", "--ignore-errors"]) == 0
    assert "Skipped 1 bad input(s)" in capsys.readouterr().out and len(_images(out)) == 2

    assert dataset_tool.main(["create_lsun", str(tmp_path / "x"), str(tmp_path / "nowhere"), "--resolution", "8"]) == 1
    assert "nowhere" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "lmdb", None)                       # as if not installed
    assert dataset_tool.main(["create_lsun", str(tmp_path / "y"), src, "--resolution", "8"]) == 1
    assert "pip install lmdb" in capsys.readouterr().err
