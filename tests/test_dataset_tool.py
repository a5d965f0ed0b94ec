"""dataset_tool.py: every bad input gives one clear line naming the file and the fix, exits 1,
and leaves nothing behind; --ignore-errors skips and counts; conversions are atomic even when
interrupted (in-process KeyboardInterrupt and a SIGKILLed subprocess)."""

import os
import signal
import struct
import subprocess
import sys
import time

import numpy as np
import PIL.Image
import pytest

import dnnlib
import dataset_tool
from training.data import records as fmt

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _save(path, array, mode=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    PIL.Image.fromarray(array, mode).save(path) if mode else PIL.Image.fromarray(array).save(path)


def _good_folder(root, n=4, size=16, seed=0):
    rnd = np.random.RandomState(seed)
    folder = os.path.join(root, "imgs")
    images = [rnd.randint(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]
    for i, img in enumerate(images):
        _save(os.path.join(folder, "img%02d.png" % i), img)
    return folder, images


def _run(argv, capsys):
    rc = dataset_tool.main(argv)
    err = capsys.readouterr().err.strip()
    return rc, err


def _leftovers(root):
    """Everything under root except the inputs: outputs and temporary directories."""
    return sorted(p for p in os.listdir(root) if p not in ("imgs",))


def _bad_png_bytes(kind, path):
    good = os.path.join(os.path.dirname(path), "_tmp_good.png")
    PIL.Image.fromarray(np.full((16, 16, 3), 7, np.uint8)).save(good)
    data = open(good, "rb").read()
    os.remove(good)
    with open(path, "wb") as f:
        f.write({"zero": b"", "truncated": data[:len(data) // 2], "corrupt": b"\x89PNG\r\n\x1a\nnot really"}[kind])


@pytest.mark.parametrize("case", ["zero", "truncated", "corrupt", "non_image", "sixteen_bit", "mixed_size",
                                  "mixed_mode", "non_pow2", "non_square"])
def test_bad_image_gives_one_line_and_leaves_nothing(tmp_path, capsys, case):
    root = str(tmp_path)
    folder, _ = _good_folder(root)
    bad = os.path.join(folder, "zz_bad.png")
    fix = "pass --ignore-errors" if case in ("zero", "truncated", "corrupt", "non_image", "sixteen_bit") else "pass"
    if case in ("zero", "truncated", "corrupt"):
        _bad_png_bytes(case, bad)
    elif case == "non_image":
        bad = os.path.join(folder, "notes.txt")
        open(bad, "w").write("hello")
    elif case == "sixteen_bit":
        PIL.Image.fromarray(np.full((16, 16), 40000, np.uint16)).save(bad)
        assert PIL.Image.open(bad).mode.startswith("I")
    elif case == "mixed_size":
        _save(bad, np.zeros((32, 32, 3), np.uint8))
    elif case == "mixed_mode":
        _save(bad, np.zeros((16, 16), np.uint8))
    elif case == "non_pow2":
        for f in os.listdir(folder):
            os.remove(os.path.join(folder, f))
        bad = os.path.join(folder, "a.png")
        _save(bad, np.zeros((12, 12, 3), np.uint8))
    elif case == "non_square":
        _save(bad, np.zeros((8, 16, 3), np.uint8))
    out = os.path.join(root, "out")
    rc, err = _run(["create_from_images", out, folder, "--shuffle", "0"], capsys)
    assert rc == 1
    assert len(err.splitlines()) == 1, err
    assert os.path.basename(bad) in err and fix in err, err
    assert _leftovers(root) == [], "half-written output left behind"


def test_ignore_errors_skips_and_counts(tmp_path, capsys):
    root = str(tmp_path)
    folder, images = _good_folder(root, n=5)
    _bad_png_bytes("truncated", os.path.join(folder, "bad1.png"))
    open(os.path.join(folder, "bad2.txt"), "w").write("x")
    _save(os.path.join(folder, "zz_bad3.png"), np.zeros((8, 8, 3), np.uint8))  # Other size than the first.
    out = os.path.join(root, "out")
    assert dataset_tool.main(["create_from_images", out, folder, "--ignore-errors", "--shuffle", "0"]) == 0
    assert "Skipped 3 bad input(s)" in capsys.readouterr().out
    got = list(fmt.iter_images(fmt.DatasetFiles(out)))
    assert len(got) == 5
    np.testing.assert_array_equal(np.stack(got), np.stack(images).transpose(0, 3, 1, 2))


def test_source_level_errors(tmp_path, capsys):
    root = str(tmp_path)
    os.makedirs(os.path.join(root, "empty"))
    out = os.path.join(root, "out")
    rc, err = _run(["create_from_images", out, os.path.join(root, "empty")], capsys)
    assert rc == 1 and "no images" in err and "empty" in err
    rc, err = _run(["create_from_images", out, os.path.join(root, "missing")], capsys)
    assert rc == 1 and "not found" in err and "missing" in err
    np.save(os.path.join(root, "x16.npy"), np.zeros((2, 8, 8, 3), np.uint16))
    rc, err = _run(["create_from_npy", out, os.path.join(root, "x16.npy")], capsys)
    assert rc == 1 and "uint16" in err and "x16.npy" in err
    rc, err = _run(["create_from_images", out, root, "--resolution", "48"], capsys)
    assert rc == 1 and "--resolution 48" in err
    rc, err = _run(["info", os.path.join(root, "empty")], capsys)
    assert rc == 1 and "no <name>-rXX.tfrecords" in err
    assert sorted(os.listdir(root)) == ["empty", "x16.npy"]


def test_existing_output_needs_overwrite(tmp_path, capsys):
    root = str(tmp_path)
    folder, images = _good_folder(root, n=3)
    out = os.path.join(root, "out")
    assert dataset_tool.main(["create_from_images", out, folder]) == 0
    before = {f: os.path.getmtime(os.path.join(out, f)) for f in os.listdir(out)}
    rc, err = _run(["create_from_images", out, folder], capsys)
    assert rc == 1 and "already exists" in err and "--overwrite" in err
    assert {f: os.path.getmtime(os.path.join(out, f)) for f in os.listdir(out)} == before
    assert dataset_tool.main(["create_from_images", out, folder, "--overwrite", "--max-images", "2"]) == 0
    assert len(list(fmt.iter_images(fmt.DatasetFiles(out)))) == 2
    assert _leftovers(root) == ["out"]


def test_mixed_sizes_resized_only_with_resolution(tmp_path, capsys):
    root = str(tmp_path)
    folder, _ = _good_folder(root, n=3, size=16)
    _save(os.path.join(folder, "big.png"), np.full((32, 64, 3), 200, np.uint8))  # Non-square, bigger.
    out = os.path.join(root, "out")
    assert dataset_tool.main(["create_from_images", out, folder, "--resolution", "8", "--shuffle", "0"]) == 0
    got = np.stack(list(fmt.iter_images(fmt.DatasetFiles(out))))
    assert got.shape == (4, 3, 8, 8)
    assert np.all(got[0] == 200)  # big.png sorts first; centre-cropped, resized, flat colour kept.


def test_interrupted_conversion_leaves_nothing(tmp_path, capsys, monkeypatch):
    root = str(tmp_path)
    folder, _ = _good_folder(root, n=6)
    out = os.path.join(root, "out")
    from training.data import writer
    real = writer.DatasetWriter.add_images

    def interrupted(self, *a, **kw):
        if self.num_images == 3:
            raise KeyboardInterrupt
        return real(self, *a, **kw)
    monkeypatch.setattr(writer.DatasetWriter, "add_images", interrupted)
    rc, err = _run(["create_from_images", out, folder], capsys)
    assert rc == 130 and "interrupted" in err
    assert _leftovers(root) == []


def test_killed_conversion_is_not_accepted_by_reader(tmp_path):
    out = os.path.join(str(tmp_path), "scenes")
    code = ("import sys; sys.path.insert(0, %r); from training.data.scenes import create_scenes; "
            "create_scenes(%r, num_images=10**6, resolution=16, batch_size=200, verbose=False)" % (REPO, out))
    proc = subprocess.Popen([sys.executable, "-c", code], env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    try:
        deadline = time.time() + 60
        tmp_dirs = []
        while time.time() < deadline:  # Wait until records are being written.
            tmp_dirs = [d for d in os.listdir(str(tmp_path)) if fmt.TEMP_MARK in d]
            if tmp_dirs and any(os.path.getsize(os.path.join(str(tmp_path), tmp_dirs[0], f)) > 0
                                for f in os.listdir(os.path.join(str(tmp_path), tmp_dirs[0]))):
                break
            time.sleep(0.2)
        assert tmp_dirs, "conversion never started"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not os.path.exists(out)
    for path in [out, os.path.join(str(tmp_path), tmp_dirs[0])]:
        with pytest.raises(dnnlib.UserError):
            fmt.DatasetFiles(path)


def test_every_command_has_help(capsys):
    parser = dataset_tool.build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name in ["create_from_images", "create_from_hdf5", "create_from_npy", "create_lsun", "create_lsun_wide",
                 "create_cifar10", "create_cifar100", "create_mnist", "create_celeba", "create_clevr",
                 "create_cityscapes", "create_ffhq", "create_bedrooms", "create_scenes", "display", "info",
                 "extract", "compare"]:
        assert name in commands
        with pytest.raises(SystemExit) as e:
            dataset_tool.main([name, "-h"])
        assert e.value.code == 0 and "usage" in capsys.readouterr().out


def _labels(path):
    return np.load(os.path.join(path, os.path.basename(path) + "-rxx.labels"))


def test_cifar_mnist_hdf5_sources(tmp_path):
    import gzip
    import pickle
    import h5py
    rnd = np.random.RandomState(0)
    root = str(tmp_path)
    cifar = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(cifar)
    data, ids = [], []
    for b in range(1, 6):
        d = rnd.randint(0, 256, (2, 3072), dtype=np.uint8)
        y = list(rnd.randint(0, 10, 2))
        pickle.dump({b"data": d, b"labels": y}, open(os.path.join(cifar, "data_batch_%d" % b), "wb"))
        data.append(d)
        ids += y
    assert dataset_tool.main(["create_cifar10", os.path.join(root, "c10"), cifar, "--shuffle", "0"]) == 0
    got = np.stack(list(fmt.iter_images(fmt.DatasetFiles(os.path.join(root, "c10")))))
    np.testing.assert_array_equal(got, np.concatenate(data).reshape(-1, 3, 32, 32))
    np.testing.assert_array_equal(_labels(os.path.join(root, "c10")), np.eye(10)[ids])

    mnist = os.path.join(root, "mnist")
    os.makedirs(mnist)
    digits = rnd.randint(0, 256, (3, 28, 28), dtype=np.uint8)
    classes = np.array([3, 1, 4], np.uint8)
    head_images, head_labels = struct.pack(">IIII", 2051, 3, 28, 28), struct.pack(">II", 2049, 3)  # idx headers
    gzip.open(os.path.join(mnist, "train-images-idx3-ubyte.gz"), "wb").write(head_images + digits.tobytes())
    gzip.open(os.path.join(mnist, "train-labels-idx1-ubyte.gz"), "wb").write(head_labels + classes.tobytes())
    assert dataset_tool.main(["create_mnist", os.path.join(root, "m"), mnist, "--shuffle", "0"]) == 0
    got = np.stack(list(fmt.iter_images(fmt.DatasetFiles(os.path.join(root, "m")))))
    assert got.shape == (3, 1, 32, 32) and not got[:, :, :2].any()
    np.testing.assert_array_equal(got[:, 0, 2:30, 2:30], digits)
    np.testing.assert_array_equal(_labels(os.path.join(root, "m")), np.eye(10)[classes])

    h5 = os.path.join(root, "x.h5")
    arr = rnd.randint(0, 256, (4, 3, 8, 8), dtype=np.uint8)
    with h5py.File(h5, "w") as f:
        f["data4x4"] = arr[:, :, ::2, ::2]
        f["data8x8"] = arr
    assert dataset_tool.main(["create_from_hdf5", os.path.join(root, "h"), h5, "--shuffle", "0"]) == 0
    np.testing.assert_array_equal(np.stack(list(fmt.iter_images(fmt.DatasetFiles(os.path.join(root, "h"))))), arr)


def test_catalog_recipes_from_archive_tfrecords_and_download(tmp_path, monkeypatch, capsys):
    import zipfile
    from training.data import catalog, scenes
    root = str(tmp_path)
    # CLEVR-like 480x320 images in a zip -> ratio 0.75 at width 16 -> native 12x16.
    z = os.path.join(root, "clevr.zip")
    with zipfile.ZipFile(z, "w") as zf:
        for i in range(3):
            buf = os.path.join(root, "i.png")
            PIL.Image.fromarray(np.full((320, 480, 3), 40 * i, np.uint8)).save(buf)
            zf.write(buf, "images/%d.png" % i)
    out = os.path.join(root, "clevr")
    assert dataset_tool.main(["create_clevr", out, z, "--resolution", "16", "--shuffle", "0"]) == 0
    got = np.stack(list(fmt.iter_images(fmt.DatasetFiles(out))))
    assert got.shape == (3, 3, 12, 16) and [int(g.mean()) for g in got] == [0, 40, 80]
    # FFHQ's release is a raw tfrecords file: converted into all levels.
    scenes.create_scenes(os.path.join(root, "src"), num_images=3, resolution=16, verbose=False)
    rec = os.path.join(root, "src", "src-r04.tfrecords")
    assert dataset_tool.main(["create_ffhq", os.path.join(root, "ffhq"), rec, "--resolution", "16"]) == 0
    assert dataset_tool.main(["compare", os.path.join(root, "ffhq"), os.path.join(root, "src"),
                              "--ignore-labels"]) == 0
    # --download goes through dnnlib.util.open_url with the catalog MD5 (here a file:// URL).
    import hashlib
    monkeypatch.setitem(catalog.CATALOG, "ffhq", dnnlib.EasyDict(
        catalog.CATALOG["ffhq"], url="file://" + rec, md5=hashlib.md5(open(rec, "rb").read()).hexdigest()))
    assert dataset_tool.main(["create_ffhq", os.path.join(root, "ffhq2"), "--download", "--resolution", "16"]) == 0
    monkeypatch.setitem(catalog.CATALOG, "ffhq", dnnlib.EasyDict(catalog.CATALOG["ffhq"], md5="0" * 32))
    capsys.readouterr()
    rc, err = _run(["create_ffhq", os.path.join(root, "ffhq3"), "--download"], capsys)
    assert rc == 1 and "md5" in err.lower() and not os.path.exists(os.path.join(root, "ffhq3"))


def test_next_conversion_removes_stale_temp_dir(tmp_path):
    from training.data.scenes import create_scenes
    stale = os.path.join(str(tmp_path), ".scenes%s999999999" % fmt.TEMP_MARK)  # No such process.
    os.makedirs(stale)
    open(os.path.join(stale, "scenes-r04.tfrecords"), "wb").write(b"partial")
    create_scenes(os.path.join(str(tmp_path), "scenes"), num_images=2, resolution=4, verbose=False)
    assert sorted(os.listdir(str(tmp_path))) == ["scenes"]


def test_display_writes_the_first_images_as_a_grid(tmp_path, capsys):
    from training.data.scenes import create_scenes
    data = os.path.join(str(tmp_path), "scenes")
    create_scenes(data, num_images=5, resolution=8, verbose=False)
    png = os.path.join(str(tmp_path), "grid.png")
    rc, _ = _run(["display", data, "--out", png, "--grid", "3x2"], capsys)
    # No temporary left; the scenes' layouts go beside the grid (tests/test_dataset_layouts.py).
    assert rc == 0 and sorted(os.listdir(str(tmp_path))) == ["grid.png", "grid_layouts.png", "scenes"]
    images = np.stack(list(fmt.iter_images(fmt.DatasetFiles(data))))
    expected = np.zeros([3, 16, 24], np.uint8)                   # 3 columns x 2 rows; the last cell empty.
    for i, image in enumerate(images):
        y, x = divmod(i, 3)
        expected[:, y * 8:(y + 1) * 8, x * 8:(x + 1) * 8] = image
    np.testing.assert_array_equal(np.asarray(PIL.Image.open(png)), expected.transpose(1, 2, 0))
