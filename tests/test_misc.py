"""training.misc and training.visuals: pickles (atomic save, latin1 load, URLs), dynamic range,
image grids, PNG output, cropping to an aspect ratio, and the official GANsformer crop helpers."""

import os
import pickle

import numpy as np
import PIL.Image
import pytest

from training import misc, visuals


def test_save_and_load_pkl_round_trip(tmp_path):
    obj = {"a": np.arange(5, dtype=np.float32), "b": ("x", 3)}
    path = str(tmp_path / "sub" / "obj.pkl")  # Missing directory is created.
    misc.save_pkl(obj, path)
    loaded = misc.load_pkl(path)
    np.testing.assert_array_equal(loaded["a"], obj["a"])
    assert loaded["b"] == obj["b"]
    assert misc.load_pkl("file://" + path)["b"] == obj["b"]
    with open(path, "rb") as file:
        assert file.read(2) == bytes([0x80, pickle.HIGHEST_PROTOCOL])  # Highest protocol.


def test_save_pkl_is_atomic(tmp_path):
    path = str(tmp_path / "obj.pkl")
    misc.save_pkl([1, 2], path)
    with pytest.raises(Exception):
        misc.save_pkl([3, lambda: None], path)  # Unpicklable: fails half-way through.
    assert misc.load_pkl(path) == [1, 2]  # The old file is untouched...
    assert os.listdir(str(tmp_path)) == ["obj.pkl"]  # ...and no temporary file is left.


def test_load_pkl_reads_python2_strings_as_latin1(tmp_path):
    path = tmp_path / "py2.pkl"
    path.write_bytes(b"U\x03\xe9t\xe9.")  # SHORT_BINSTRING of 3 bytes, as Python 2 wrote str.
    assert misc.load_pkl(str(path)) == "\xe9t\xe9"


def test_adjust_dynamic_range():
    x = np.random.RandomState(0).uniform(-1, 1, size=(2, 3)).astype(np.float32)
    y = misc.adjust_dynamic_range(x, [-1, 1], [0, 255])
    np.testing.assert_allclose(y, (x + 1) * 127.5, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(misc.adjust_dynamic_range(y, [0, 255], [-1, 1]), x, atol=1e-5)
    assert misc.adjust_dynamic_range(x, [0, 1], [0, 1]) is x


def test_create_image_grid_places_images_row_by_row():
    images = np.random.RandomState(1).rand(5, 3, 2, 4).astype(np.float32)  # N C H W, H != W.
    grid = misc.create_image_grid(images)  # 5 images -> 3 wide, 2 high.
    assert grid.shape == (3, 2 * 2, 3 * 4)
    for i in range(5):
        row, col = divmod(i, 3)
        np.testing.assert_array_equal(grid[:, row * 2:(row + 1) * 2, col * 4:(col + 1) * 4], images[i])
    assert np.all(grid[:, 2:4, 8:12] == 0)  # The empty cell.
    tall = misc.create_image_grid(images, grid_size=(1, 5))
    np.testing.assert_array_equal(tall[:, 6:8, :], images[3])
    assert misc.create_image_grid(images[:, 0]).shape == (4, 12)  # N H W.
    with pytest.raises(ValueError, match="grid_size"):
        misc.create_image_grid(images, grid_size=(2, 2))


def test_convert_to_pil_image():
    chw = np.random.RandomState(2).uniform(-1, 1, size=(3, 2, 5)).astype(np.float32)
    pil = misc.convert_to_pil_image(chw, drange=[-1, 1])
    assert pil.mode == "RGB" and pil.size == (5, 2)
    expected = np.clip(np.rint((chw.transpose(1, 2, 0) + 1) * 127.5), 0, 255)
    np.testing.assert_array_equal(np.asarray(pil), expected)
    gray = misc.convert_to_pil_image(np.full((1, 2, 2), 0.5, np.float32))
    assert gray.mode == "L" and np.all(np.asarray(gray) == 128)
    with pytest.raises(ValueError, match="channels"):
        misc.convert_to_pil_image(np.zeros((2, 4, 4)))


def test_save_image_grid_writes_png(tmp_path):
    images = np.random.RandomState(3).rand(4, 3, 3, 2).astype(np.float32)
    path = str(tmp_path / "fakes000000.png")
    misc.save_image_grid(images, path, drange=[0, 1], grid_size=(2, 2))
    back = np.asarray(PIL.Image.open(path))
    expected = np.rint(misc.create_image_grid(images, (2, 2)).transpose(1, 2, 0) * 255).clip(0, 255)
    np.testing.assert_array_equal(back, expected)
    assert os.listdir(str(tmp_path)) == ["fakes000000.png"]
    with pytest.raises(ValueError, match="extension"):
        misc.save_image_grid(images, str(tmp_path / "grid.unknownext"))


def test_ratio_crop_is_exact_and_centred():
    for height, ratio in [(256, 0.75), (256, 188 / 256), (128, 0.5), (64, 1.0)]:
        start, end = visuals.ratio_rows(height, height, ratio)
        assert end - start == round(height * ratio)   # Not the +1 row of official bug 9.
        assert abs(start - (height - end)) <= 1       # Centred.
    assert visuals.ratio_rows(96, 128, 0.75) == (0, 96)  # Already at the ratio: kept whole.
    images = np.arange(2 * 3 * 8 * 8).reshape(2, 3, 8, 8)
    np.testing.assert_array_equal(visuals.crop_to_ratio(images, 0.5), images[:, :, 2:6, :])
    assert visuals.crop_to_ratio(images, None) is images and visuals.crop_to_ratio(images, 1.0) is images
    with pytest.raises(ValueError):
        visuals.crop_to_ratio(images, 1.5)


@pytest.mark.parametrize("height, width, ratio, rows", [
    (7, 7, 0.75, slice(1, 6)),     # 5.25 -> 5 rows, one above and one below.
    (9, 9, 0.6, slice(2, 7)),      # 5.4 -> 5 rows.
    (9, 9, 0.3, slice(3, 6)),      # 2.7 -> 3 rows.
    (15, 15, 1 / 3, slice(5, 10)),
    (3, 3, 0.1, slice(1, 2)),      # 0.3 rows -> at least one.
    (9, 13, 0.75, slice(None)),    # 9.75 -> 10 > 9 rows: already at the ratio, kept whole.
    (11, 9, 0.6, slice(3, 8)),     # 5.4 -> 5: rows follow the WIDTH (h = ratio * w, as the networks build them).
])
def test_crop_to_ratio_matches_numpy_slice_on_odd_sizes(height, width, ratio, rows):
    images = np.random.RandomState(0).rand(2, 3, height, width)
    np.testing.assert_array_equal(visuals.crop_to_ratio(images, ratio), images[:, :, rows, :])
    maps = np.random.RandomState(1).rand(2, 4, 2, 3, height, width)   # [B, k, L, N, H, W]: last two axes.
    np.testing.assert_array_equal(visuals.crop_to_ratio(maps, ratio), maps[..., rows, :])


def test_crop_tensor_matches_official_off_by_one():
    x = np.arange(2 * 256 * 256).reshape(2, 1, 256, 256)
    cropped = misc.crop_tensor(x, 0.75)
    assert cropped.shape == (2, 1, 193, 256)  # REFERENCE.md §10.2 item 9.
    np.testing.assert_array_equal(cropped, x[:, :, 32:225, :])
    assert misc.crop_tensor_shape((256, 256), 0.75) == (192, 256)
    assert misc.crop_tensor(x, None) is x and misc.crop_tensor_shape((8, 8), 1.0) == (8, 8)


def test_atomic_writes_follow_the_umask(tmp_path):
    # mkstemp makes 0600 files; what is renamed into place must get the mode open() would give.
    import stat
    old = os.umask(0o022)
    try:
        misc.save_pkl({"a": 1}, str(tmp_path / "x.pkl"))
        plain = tmp_path / "plain"
        plain.write_bytes(b"")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "x.pkl").st_mode) == stat.S_IMODE(os.stat(plain).st_mode) == 0o644
