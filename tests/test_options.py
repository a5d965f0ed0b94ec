"""training/options.py: one table of recipes and presets, each default written once, exact-name
recipe selection, and one validator shared by the CLI, resolve_model(), the build functions
and the training loop."""

import inspect
import math
import os

import pytest
import tensorflow.compat.v1 as tf

import dnnlib.tflib as tflib
from dnnlib.util import UserError
from training import networks, options
from training import training_loop as tl


def test_rows_share_their_columns():
    assert all(list(row) == list(options.PRESET_COLUMNS) for row in options.PRESETS.values())
    assert all(options.family_funcs(row["family"]) for row in options.PRESETS.values())
    assert all(list(row) == list(options.RECIPE_COLUMNS) for row in options.RECIPES.values())
    # Every recipe column reaches an option (or the model), so no column is dead.
    assert set(options.RECIPE_TARGETS) | {"cbase", "cmax", "gansformer"} == set(options.RECIPE_COLUMNS)


def test_every_recipe_resolves_with_every_preset():
    for recipe in options.RECIPES:
        for preset in options.PRESETS:
            given = {"recipe": recipe, "dataset": "any"}
            if preset != "gansformer":
                given["gansformer" if preset in options.GANSFORMER_PRESETS else "baseline"] = preset
            opts = options.resolve(given)
            assert opts.recipe == recipe and opts.preset_name == preset
            row = dict(options.RECIPES[recipe])
            # A preset's own training recipe (TransGAN's) wins over the dataset row's columns.
            trained = dict(options.PRESETS[preset]["training"],
                           **options.FAMILY_RECIPES.get(options.PRESETS[preset]["family"], {}).get(recipe, {}))
            row.update({col: trained[opt] for col, opt in (("gamma", "gamma"), ("lr", "g_lr"), ("dlr", "d_lr"))
                        if opt in trained})
            assert opts.gamma == row["gamma"] and opts.total_kimg == row["kimg"] and opts.g_lr == row["lr"]
            assert opts.d_lr == row["dlr"]
            if options.PRESETS[preset]["transformer"]:      # the row's model column: GANsformer presets only
                assert all(opts.G_args[key] == value for key, value in row["gansformer"].items())
            elif options.PRESETS[preset]["family"] == "networks":
                assert opts.G_args["components_num"] == options.PRESETS[preset]["components_num"]


@pytest.mark.parametrize("dataset, recipe, gamma", [
    ("clevr", "clevr", 40.0), ("/data/sets/clevr/", "clevr", 40.0), ("clevr-128", "default", 10.0),
    ("myffhq", "default", 10.0), ("bedrooms", "bedrooms", 100.0), ("scenes", "scenes", 1.0)])
def test_recipe_is_chosen_by_exact_name(dataset, recipe, gamma):
    opts = options.resolve({"dataset": dataset})
    assert opts.recipe == recipe and opts.gamma == gamma
    assert opts.main_job == (recipe == "scenes")


def test_typed_flags_and_recipe_flag_override_the_row():
    opts = options.resolve({"dataset": "clevr-128", "recipe": "clevr", "gamma": 3.0})
    assert opts.recipe == "clevr" and opts.gamma == 3.0
    assert opts.G_args["components_num"] == 8 and opts.G_args["style"] is False
    with pytest.raises(UserError, match="--recipe nope"):
        options.resolve({"recipe": "nope"})


def test_loop_takes_every_option_from_the_table():
    """training_loop() has no defaults except run plumbing, and loop_kwargs() fills the rest."""
    params = inspect.signature(tl.training_loop).parameters
    required = {n for n, p in params.items() if p.default is p.empty}
    plumbing = {n for n, p in params.items() if p.default is not p.empty}
    assert all(params[n].default is None for n in plumbing)
    kwargs = options.default_loop_kwargs()
    assert required <= set(kwargs) <= required | plumbing
    defaults = options.training_defaults()
    assert kwargs["G_smoothing_kimg"] == defaults["ema_kimg"] == options.RECIPES["default"]["ema"]
    assert kwargs["D_loss_args"]["gamma"] == options.RECIPES["default"]["gamma"]


@pytest.mark.parametrize("train, fragment", [
    (dict(g_lr=math.nan), "--g-lr"), (dict(d_lr=-1.0), "--d-lr"), (dict(total_kimg=math.inf), "--total-kimg"),
    (dict(gamma=-1.0), "--gamma"), (dict(batch_size=12, batch_gpu=8), "multiple"),
    (dict(batch_size=16, batch_gpu=4, num_devices=3), "x 3 device"), (dict(d_reg="l2"), "--d-reg"),
    (dict(resolution=48), "power of two"), (dict(adam_beta2=1.0), "--adam-beta2"),
    (dict(metrics=["fid51k"]), "unknown fid51k"), (dict(batch_size=2.5), "whole number")])
def test_validator_rejects_training_values(train, fragment):
    with pytest.raises(UserError, match=fragment.replace("(", r"\(")):
        options.validate(train=train)


@pytest.mark.parametrize("G, fragment", [
    (dict(resolution=24), "power of two"), (dict(ratio=0.3), "4 \\* ratio"),
    (dict(components_num=3, latent_size=128, transformer=True), "divisible"),
    (dict(kmeans=True), "needs transformer"), (dict(transformer=True, num_heads=3, channel_max=32), "num_heads"),
    (dict(transformer=True, pos_dim=6, pos_directions_num=2, use_pos=True), "pos_dim")])
def test_validator_rejects_model_values_for_cli_presets_and_build(G, fragment):
    """The same check answers from resolve_model() and from the build function itself."""
    with pytest.raises(UserError, match=fragment):
        options.validate(G=dict(dict(resolution=16), **G))
    with tf.Graph().as_default():
        with pytest.raises(UserError, match=fragment):
            G_kwargs = dict(dict(resolution=16), **G)
            networks.Generator(tf.zeros([1, 4]), tf.zeros([1, 0]), **G_kwargs)


def test_discriminator_build_validates():
    with tf.Graph().as_default():
        with pytest.raises(UserError, match="d_resolution"):
            networks.Discriminator(tf.zeros([1, 3, 24, 24]), tf.zeros([1, 0]), resolution=24)


def test_training_loop_rejects_before_writing(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    kwargs = options.default_loop_kwargs(G_args={}, D_args={}, dataset_args={}, batch_size=10, batch_gpu=4,
                                         num_gpus=1, device_ids=[0])
    with tf.Graph().as_default():
        with pytest.raises(UserError, match="--batch-size 10 must be a multiple"):
            tl.training_loop(run_dir=str(run_dir), options_to_save={"x": 1}, **kwargs)
    assert os.listdir(run_dir) == []


def test_help_shows_each_table_default(capsys):
    import run_training
    with pytest.raises(SystemExit):
        run_training.main(["-h"])
    text = " ".join(capsys.readouterr().out.split())
    row = options.RECIPES["default"]
    assert "(default: recipe; %s)" % row["kimg"] in text
    for name in options.RECIPES:
        assert name in text
    assert "gamma=%s" % options.RECIPES["clevr"]["gamma"] in text


def test_a_new_model_family_is_one_module_and_one_row(monkeypatch):
    """A network module with Generator / Discriminator plus one preset row: its options are
    routed by its own signatures, the other families' columns (None) are dropped, and the
    loop gets its build functions by name."""
    import sys
    import types
    module = types.ModuleType("training.networks_toy")

    def Generator(latents_in, labels_in, resolution=32, ratio=1.0, width=64,   # toy options
                  is_template_graph=False, components=None):
        pass

    def Discriminator(images_in, labels_in, resolution=32, ratio=1.0, depth=2,
                      is_template_graph=False, components=None):
        pass

    module.Generator, module.Discriminator = Generator, Discriminator
    monkeypatch.setitem(sys.modules, "training.networks_toy", module)
    row = {name: None for name in options.PRESET_COLUMNS}
    monkeypatch.setitem(options.PRESETS, "toy", dict(row, family="networks_toy"))
    gkw, dkw = options.resolve_model("toy", width=96, d_depth=3, resolution=16)
    assert gkw == dict(width=96, resolution=16) and dkw == dict(depth=3, resolution=16)
    with pytest.raises(UserError, match="unknown network option 'kmeans' \(networks_toy models\)"):
        options.resolve_model("toy", kmeans=True)
    with pytest.raises(UserError, match="resolution: 24"):
        options.resolve_model("toy", resolution=24)
    assert "width" in options.model_flag_names()[0] and "depth" in options.model_flag_names()[1]


@pytest.mark.parametrize("given, fixed, fragment", [
    (dict(baseline="TransGAN", pl_weight=2.0), dict(baseline="StyleGAN2", pl_weight=2.0),
     "--pl-weight 2: path-length regularization needs"),
    (dict(baseline="StyleGAN2", metrics=["attn_scenes"]), dict(metrics=["attn_scenes"]),
     "the StyleGAN2 preset has no attention")])
def test_training_options_checked_against_the_model(given, fixed, fragment):
    """The same option passes with a model that has what it needs."""
    with pytest.raises(UserError, match=fragment):
        options.resolve(given)
    options.resolve(fixed)


def test_a_g_option_in_either_spelling_replaces_the_presets():
    # The GANsformer preset's G is resnet (its g_architecture column); --architecture skip is G's
    # architecture too and wins, under either name; naming both is a conflict.
    assert options.resolve_model("gansformer", resolution=32)[0]["architecture"] == "resnet"
    for key in ("architecture", "g_architecture"):
        gkw, dkw = options.resolve_model("gansformer", resolution=32, **{key: "skip"})
        assert gkw["architecture"] == "skip" and dkw["architecture"] == "resnet"
    assert options.resolve({"dataset": "scenes", "architecture": "skip"}).G_args["architecture"] == "skip"
    with pytest.raises(UserError, match="name the same G option"):
        options.resolve_model("gansformer", resolution=32, architecture="skip", g_architecture="orig")
