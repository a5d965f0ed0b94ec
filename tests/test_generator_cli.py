"""run_generator.py and training/generation.py: every subcommand on small networks built
here, determinism across runs and batch sizes, attention-map rendering against maps known
by construction, seed parsing and bad input."""

import os

os.environ.setdefault("DNNLIB_OPS_IMPL", "ref")

import numpy as np
import PIL.Image
import pytest
import tensorflow.compat.v1 as tf

import dnnlib
import dnnlib.tflib as tflib
import run_generator
from dnnlib.util import UserError
from training import generation, misc, networks, options, visuals

TINY = dict(resolution=16, channel_base=128, channel_max=16, components_num=3, latent_size=24, num_heads=2,
            mapping_num_layers=2)


def _pickle_generator(path, func, **kwargs):
    with tf.Graph().as_default(), tflib.create_session().as_default():
        Gs = tflib.Network("Gs", func_name=func, **kwargs)
        tflib.init_uninitialized_vars()
        # Make the per-pixel noise matter, so const vs random noise shows in the images.
        for name, var in Gs.vars.items():
            if name.endswith("noise_strength"):
                tflib.set_vars({var: 0.5})
        misc.save_pkl((Gs, Gs, Gs), str(path))


@pytest.fixture(scope="module")
def pickles(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nets")
    gkw, _ = options.resolve_model("gansformer", **TINY)
    sgkw, _ = options.resolve_model("StyleGAN2", **dict(TINY, components_num=1))
    paths = dnnlib.EasyDict(gansformer=folder / "gansformer.pkl", stylegan2=folder / "stylegan2.pkl",
                            known=folder / "known.pkl")
    _pickle_generator(paths.gansformer, networks.Generator, **gkw)
    _pickle_generator(paths.stylegan2, networks.Generator, **sgkw)
    import generation_nets
    _pickle_generator(paths.known, generation_nets.G_known_maps, resolution=8)
    return paths


def cli(*argv):
    """run_generator.main in a fresh graph and session (as a separate process would be)."""
    with tf.Graph().as_default(), tflib.create_session().as_default():
        code = run_generator.main([str(a) for a in argv])
    if code:
        raise SystemExit(code)   # as the script does


def load(path):
    return np.asarray(PIL.Image.open(path))


def test_parse_seeds_ranges_and_errors():
    assert run_generator.parse_seeds("0-3,7, 10-11") == [0, 1, 2, 3, 7, 10, 11]
    assert run_generator.parse_seeds("5") == [5]
    for bad in ["a", "5-2", "1,,2", "-1", "1-x", str(2 ** 32)]:
        with pytest.raises(UserError, match="--seeds"):
            run_generator.parse_seeds(bad)


def test_bad_input_is_one_line_and_exit_1(tmp_path, capsys, pickles):
    with pytest.raises(SystemExit) as exit_info:
        cli("generate-images", "--network", tmp_path / "missing.pkl", "--seeds", "1")
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "missing.pkl" in err
    with pytest.raises(SystemExit):
        cli("generate-images", "--network", pickles.gansformer, "--seeds", "3-1")
    assert "runs backwards" in capsys.readouterr().err
    with pytest.raises(SystemExit):   # StyleGAN2 has no attention: neither latent maps nor TransGAN's windows.
        cli("attention-maps", "--network", pickles.stylegan2, "--seeds", "1", "--outdir", tmp_path)
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no attention maps" in err
    assert not os.path.exists(tmp_path / "window_attention")
    with pytest.raises(SystemExit):
        cli("interpolate", "--network", pickles.gansformer, "--seeds", "1,2", "--component", "9", "--outdir", tmp_path)
    assert "--component 9" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli("generate-images", "--network", pickles.gansformer, "--seeds", "1", "--ratio", "1.5", "--outdir", tmp_path)
    assert "--ratio: 1.5 must be <= 1" in capsys.readouterr().err


def test_generate_images_deterministic_across_runs_and_batch_sizes(tmp_path, pickles):
    cli("generate-images", "--network", pickles.gansformer, "--seeds", "0-4", "--batch-size", "2", "--grid",
        "--outdir", tmp_path / "a")
    cli("generate-images", "--network", pickles.gansformer, "--seeds", "0-4", "--batch-size", "5",
        "--outdir", tmp_path / "b")
    for seed in range(5):
        a = load(tmp_path / "a" / ("seed%04d.png" % seed))
        assert a.shape == (16, 16, 3)
        np.testing.assert_array_equal(a, load(tmp_path / "b" / ("seed%04d.png" % seed)))
    assert not np.array_equal(load(tmp_path / "a" / "seed0000.png"), load(tmp_path / "a" / "seed0001.png"))
    grid = load(tmp_path / "a" / "grid.png")
    assert grid.shape == (2 * 16, 3 * 16, 3)     # 5 images -> 3 columns x 2 rows
    np.testing.assert_array_equal(grid[16:32, 16:32], load(tmp_path / "a" / "seed0004.png"))


def test_ratio_crops_rows(tmp_path, pickles):
    cli("generate-images", "--network", pickles.gansformer, "--seeds", "1", "--ratio", "0.5", "--outdir", tmp_path)
    assert load(tmp_path / "seed0001.png").shape == (8, 16, 3)


def test_attention_maps_follow_known_maps(tmp_path, pickles):
    # Seeds whose z[0, 0] has either sign: latent 0 owns the left or the right half in layer 0.
    view_z = lambda s: np.random.RandomState(s).randn(3, 4)[0, 0]
    pos = next(s for s in range(100) if view_z(s) > 0)
    neg = next(s for s in range(100) if view_z(s) < 0)
    cli("attention-maps", "--network", pickles.known, "--seeds", "%d,%d" % (pos, neg), "--outdir", tmp_path,
        "--blending-alpha", "0.25")
    colours = np.rint((visuals.palette(2) + 1) * 127.5)
    # The renderer shows the LAST layer (layer 1: latent 0 owns the top half) for both seeds.
    for seed in (pos, neg):
        soft = load(tmp_path / "softmaps" / ("seed%04d.png" % seed)).astype(np.float32)
        np.testing.assert_allclose(soft[:4, :, :], np.broadcast_to(colours[0], (4, 8, 3)), atol=1)
        np.testing.assert_allclose(soft[4:, :, :], np.broadcast_to(colours[1], (4, 8, 3)), atol=1)
        np.testing.assert_array_equal(load(tmp_path / "maps" / ("seed%04d.png" % seed)), soft.astype(np.uint8))
    # Layer 0 differs between the seeds exactly as the maps do: mirrored halves.
    l0_pos = load(tmp_path / "layer_maps" / ("seed%04d" % pos) / "l0_h0.png").astype(np.float32)
    l0_neg = load(tmp_path / "layer_maps" / ("seed%04d" % neg) / "l0_h0.png").astype(np.float32)
    np.testing.assert_allclose(l0_pos[:, :4], np.broadcast_to(colours[0], (8, 4, 3)), atol=1)
    np.testing.assert_allclose(l0_neg[:, :4], np.broadcast_to(colours[1], (8, 4, 3)), atol=1)
    np.testing.assert_array_equal(l0_pos[:, ::-1], l0_neg)
    # Blends: (1 - alpha) * map + alpha * image, checked against the saved image.
    with tf.Graph().as_default(), tflib.create_session().as_default():
        _, _, Gs = misc.load_network_pkl(str(pickles.known))
        images, _ = generation.GeneratorView(Gs).images_and_maps(generation.GeneratorView(Gs).latents([pos]),
                                                                 np.zeros([1, 0], np.float32), 0.7)
    expected = 0.75 * ((soft / 127.5) - 1).transpose(2, 0, 1) + 0.25 * images[0]
    blend_img = load(tmp_path / "softblends" / ("seed%04d.png" % pos)).astype(np.float32)
    np.testing.assert_allclose(blend_img, np.rint((expected + 1) * 127.5).transpose(1, 2, 0), atol=2)
    assert load(tmp_path / "layer_maps" / ("seed%04d" % pos) / "all.png").shape == (16, 8, 3)


def test_attention_maps_on_gansformer(tmp_path, pickles):
    cli("attention-maps", "--network", pickles.gansformer, "--seeds", "1", "--outdir", tmp_path)
    with tf.Graph().as_default(), tflib.create_session().as_default():
        _, _, Gs = misc.load_network_pkl(str(pickles.gansformer))
        num_layers, num_heads = Gs.output_shapes[1][2], Gs.output_shapes[1][3]
    files = sorted(os.listdir(tmp_path / "layer_maps" / "seed0001"))
    assert len(files) == num_layers * num_heads + 1 and num_heads == 2
    for sub in ("softmaps", "maps", "softblends", "blends"):
        assert load(tmp_path / sub / "seed0001.png").shape == (16, 16, 3)


@pytest.mark.parametrize("space", ["z", "w"])
def test_interpolate(tmp_path, pickles, space):
    cli("interpolate", "--network", pickles.gansformer, "--seeds", "1,2", "--space", space, "--density", "4",
        "--outdir", tmp_path)
    folder = tmp_path / ("interpolations-%s" % space) / "1-2"
    frames = [load(folder / ("frame%03d.png" % i)) for i in range(4)]
    cli("generate-images", "--network", pickles.gansformer, "--seeds", "1,2", "--outdir", tmp_path / "ends")
    # The end frames are the seeds' own images; the middle ones differ from both.
    np.testing.assert_array_equal(frames[0], load(tmp_path / "ends" / "seed0001.png"))
    np.testing.assert_allclose(frames[-1], load(tmp_path / "ends" / "seed0002.png"), atol=1)
    assert not np.array_equal(frames[1], frames[0]) and not np.array_equal(frames[1], frames[-1])
    assert load(folder / "strip.png").shape == (16, 4 * 16, 3)
    assert PIL.Image.open(folder / "anim.gif").n_frames == 4


def test_interpolate_one_component_changes_less(tmp_path, pickles):
    cli("interpolate", "--network", pickles.gansformer, "--seeds", "1,2", "--space", "w", "--density", "3",
        "--component", "0", "--outdir", tmp_path)
    cli("interpolate", "--network", pickles.gansformer, "--seeds", "1,2", "--space", "w", "--density", "3",
        "--outdir", tmp_path)
    one = load(tmp_path / "interpolations-w-c0" / "1-2" / "frame002.png").astype(np.float32)
    all_ = load(tmp_path / "interpolations-w" / "1-2" / "frame002.png").astype(np.float32)
    start = load(tmp_path / "interpolations-w" / "1-2" / "frame000.png").astype(np.float32)
    assert 0 < np.abs(one - start).mean() < np.abs(all_ - start).mean()


def test_style_mixing_example(tmp_path, pickles):
    cli("style-mixing-example", "--network", pickles.gansformer, "--row-seeds", "1,2", "--col-seeds", "3-5",
        "--col-styles", "0-2", "--outdir", tmp_path)
    grid = load(tmp_path / "grid.png")
    assert grid.shape == (3 * 16, 4 * 16, 3)
    assert not grid[:16, :16].any()                                    # black corner
    np.testing.assert_array_equal(grid[16:32, 32:48], load(tmp_path / "1-4.png"))
    cli("generate-images", "--network", pickles.gansformer, "--seeds", "1,4", "--outdir", tmp_path / "orig")
    np.testing.assert_array_equal(grid[16:32, :16], load(tmp_path / "orig" / "seed0001.png"))
    np.testing.assert_array_equal(grid[:16, 32:48], load(tmp_path / "orig" / "seed0004.png"))
    mixed = load(tmp_path / "1-4.png")
    assert not np.array_equal(mixed, load(tmp_path / "orig" / "seed0001.png"))
    with pytest.raises(SystemExit):
        cli("style-mixing-example", "--network", pickles.gansformer, "--row-seeds", "1", "--col-seeds", "2",
            "--col-styles", "0-99", "--outdir", tmp_path)


def test_noise_variation(tmp_path, pickles):
    cli("noise-variation", "--network", pickles.stylegan2, "--seeds", "3", "--num-samples", "4", "--outdir", tmp_path)
    grid = load(tmp_path / "seed0003.png")
    assert grid.shape == (32, 32, 3)
    tiles = [grid[y:y + 16, x:x + 16] for y in (0, 16) for x in (0, 16)]
    assert not np.array_equal(tiles[0], tiles[1])                      # the noise differs per sample
    std = load(tmp_path / "seed0003-std.png")
    assert std.shape == (16, 16) and std.max() > 0
