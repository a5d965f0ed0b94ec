"""Every training and model option in one place: the model presets, the training recipes, the
command-line flags with their defaults, and the resolution of typed flags into the kwargs of
training_loop() and of the network build functions; validate() (training/validation.py) checks
them together.

Options flow one way: command line -> recipe row (by the dataset's exact name, or --recipe)
and model preset -> typed flags override -> validate() -> build functions and the loop, which
take what they are given. Each default is written once: training defaults in RECIPES["default"]
or FLAGS, model defaults beside each keyword of the build functions in training/networks.py
(whose comments are also the -h text), preset values in PRESETS.

Model option names: an unprefixed name is a G option (Generator, G_mapping or G_synthesis
keyword) and, when it is one of D_SHARED (image geometry, latent sizes, heads, positions), also
a D option; `g_<x>` is G's <x> (for names both have: g_architecture, g_img2img); `d_<x>` is D's
<x> and wins over a shared value; an option only D has (mbstd_group_size) may go unprefixed.
"""

import os

from dnnlib.util import EasyDict, UserError
# The checks live in training/validation.py; these names are part of this module's interface.
from training.validation import (D_SHARED, _fail, d_options, g_options, validate,
                                 family_funcs, model_defaults, signature_comments)  # noqa: F401

# ----------------------------------------------------------------------------
# Model presets (REFERENCE §1.9): `gansformer` is the official --ganformer-default (our --gansformer-default); simplex is
# --transformer alone; duplex adds k-means centroids and the bottom-up img2ltnt update.

PRESET_COLUMNS = ("family", "transformer", "components_num", "latent_size", "num_heads", "kmeans", "iterative", "img2ltnt",
                  "use_pos", "integration", "norm", "mapping_resnet", "mapping_ltnt2ltnt", "style", "latent_stem",
                  "g_architecture", "g_img2img", "kgan", "merge_layer", "merge_type", "d_architecture",
                  "d_transformer", "family_opts", "training")
_PRESET_ROWS = {
    #             family      trans  k   latent heads kmeans iter  i2l    pos    integ  norm     mres   ml2l   style  lstem  g_arch    img2img kgan   merge mtype      d_arch    d_trans family_opts training
    "gansformer": ("networks", True,  16, 512,   1,    True,  False, False, True,  "mul", "layer", True,  True,  True,  False, "resnet", 0,      False, -1,   "sum",     "resnet", False, {},     {}),
    "simplex":   ("networks", True,  16, 512,   1,    False, False, False, False, "add", None,    False, False, True,  False, "resnet", 0,      False, -1,   "sum",     "resnet", False, {},     {}),
    "duplex":    ("networks", True,  16, 512,   1,    True,  False, True,  True,  "mul", "layer", False, False, True,  False, "resnet", 0,      False, -1,   "sum",     "resnet", False, {},     {}),
    "GAN":       ("networks", False, 1,  512,   1,    False, False, False, False, "add", None,    False, False, False, True,  "skip",   0,      False, -1,   "sum",     "resnet", False, {},     {}),
    "StyleGAN2": ("networks", False, 1,  512,   1,    False, False, False, False, "add", None,    False, False, True,  False, "skip",   0,      False, -1,   "sum",     "resnet", False, {},     {}),
    "kGAN":      ("networks", False, 8,  512,   1,    False, False, False, False, "add", None,    False, False, True,  False, "skip",   0,      True,  5,    "softmax", "resnet", False, {},     {}),
    "SAGAN":     ("networks", False, 1,  512,   1,    False, False, False, False, "add", None,    False, False, False, True,  "skip",   5,      False, -1,   "sum",     "resnet", False, {},     {}),
}
# TransGAN (training/networks_transgan.py): the GANsformer columns are None; its own options are in
# family_opts (d_ = D's), and its training recipe (WGAN-GP-eps, 4 D steps per G step, Adam 1e-4
# with betas (0, 0.99), gradient-norm clipping at 5, DiffAugment) in training, which wins over
# the dataset recipe's training columns (typed flags win over both).
_TRANSGAN_TRAINING = dict(g_loss="wgan", d_loss="wgan", d_reg="gp", gamma=10.0, d_reg_interval=1, d_steps=4,
                          g_lr=1e-4, d_lr=1e-4, adam_beta1=0.0, adam_beta2=0.99, clip_grad_norm=5.0,
                          augment="translation=0.2,cutout=0.3,color")
_TRANSGAN_CIFAR = dict(latent_size=256, bottom_width=8, embed_dim=1024, depths=[5, 4, 2], num_heads=4, mlp_ratio=4,
                       token_norm="layer", window_size=16, grid_above=32, d_patch_size=2, d_scale_dims=[288, 96],
                       d_depths=[3, 3])
_TRANSGAN_256 = dict(_TRANSGAN_CIFAR, latent_size=512, depths=[5, 4, 4, 4, 4, 4], token_norm="pixel", bicubic_stages=2,
                     antialias=True, latent_tokens=8, d_patch_size=4, d_scale_dims=[96, 96, 192], d_depths=[3, 3, 3],
                     d_token_norm="layer")
_NO_GANSFORMER_COLUMNS = (None,) * (len(PRESET_COLUMNS) - 3)
_PRESET_ROWS["TransGAN"] = ("networks_transgan",) + _NO_GANSFORMER_COLUMNS + (_TRANSGAN_CIFAR, _TRANSGAN_TRAINING)
_PRESET_ROWS["TransGAN-256"] = ("networks_transgan",) + _NO_GANSFORMER_COLUMNS + (_TRANSGAN_256, _TRANSGAN_TRAINING)
# GANsformer2's execution stage (training/networks_gansformer2.py, layout-to-image; --gansformer2
# execution): 512-wide latents per slot, layout attention from 4x4 up, multiplicative integration
# with layer norm, latents updated from their segments, segments scored at 16x16 (the rest: its
# build functions' defaults); the default training recipe (non-saturating logistic, lazy R1). The
# GANsformer columns its Generator takes (latent_size, img2ltnt, integration, norm) are filled in.
_GANSFORMER2 = dict(dict.fromkeys(PRESET_COLUMNS), family="networks_gansformer2", latent_size=512, img2ltnt=True,
                    integration="mul", norm="layer", family_opts=dict(d_segment_res=4), training={})
_PRESET_ROWS["gansformer2"] = tuple(_GANSFORMER2[col] for col in PRESET_COLUMNS)
assert all(len(row) == len(PRESET_COLUMNS) for row in _PRESET_ROWS.values())
PRESETS = {name: dict(zip(PRESET_COLUMNS, row)) for name, row in _PRESET_ROWS.items()}
# A model family is a network module training/<family>.py with build functions Generator and
# Discriminator. A new model is that file plus its row above: columns its build functions do
# not take must be None in its row. Listed here only: families whose Generator routes options to
# sub-networks, and the family checks of validate().
GANSFORMER_PRESETS = ("simplex", "duplex")
BASELINE_PRESETS = ("GAN", "StyleGAN2", "kGAN", "SAGAN", "TransGAN", "TransGAN-256")

# ----------------------------------------------------------------------------
# Training recipes, one row per dataset, chosen by the dataset folder's exact name (or
# --recipe); `default` for any other dataset. `scenes` is the main job: the embedded dataset,
# sized for a 2-core CPU (32x32, narrow channels, 8 region latents + the global one).
# Training columns and the channel columns apply to every preset; `gansformer` holds model
# options for the presets with region latents (transformer=True) only. None: keep the derived
# value (res: the dataset's largest; cbase/cmax: the build function's default).
# scenes ema 0.5 kimg (was 2.5; issue 15, bench/quality.py): at 2.5 the main job's Gs fid_scenes
# rose after 8 kimg (2009, 521, 790 at 4, 8, 12 kimg) while its raw G kept falling (625, 481,
# 413): Gs averaged a G that still moves fast; at 0.5 Gs scored 556, 550, 455.

RECIPE_COLUMNS = ("kimg", "tick", "snap", "batch", "batch_gpu", "lr", "dlr", "gamma", "ema", "mirror", "res",
                  "cbase", "cmax", "gansformer")
_SMALL_LATENTS = dict(components_num=8, latent_size=128, mapping_ltnt2ltnt=False)
# scenes: no global style and no attention dropout (issue 15, bench/quality.py, 40 kimg, seed 1000):
# with the global style every conv already gets the image-wide variation, so the region latents stay
# optional and the last layer's attention relaxes to a near-uniform mix (max prob 0.19 over 8
# latents, ARI with the objects 0.10 at 40 kimg, untrained 0.07); dropping whole latents (0.12)
# pushes the same way. Without both the last layer splits objects from background (ARI 0.64, max
# prob 0.65 at 40 kimg) and fid_scenes ends at 135 instead of 168 (StyleGAN2: 224).
_SCENES_LATENTS = dict(_SMALL_LATENTS, style=False, attention_dropout=0.0)
_RECIPE_ROWS = {
    #              kimg   tick snap batch bgpu lr     dlr    gamma  ema   mirror res   cbase cmax  gansformer
    "default":    (25000, 8,   3,   32,   4,   0.002, 0.002, 10.0,  10.0, False, None, None, None, {}),
    "scenes":     (40,    1,   4,   16,   16,  0.002, 0.002, 1.0,   0.5,  False, 32,   2048, 64,   _SCENES_LATENTS),
    "clevr":      (25000, 8,   3,   32,   4,   0.002, 0.002, 40.0,  10.0, False, None, None, None, dict(_SMALL_LATENTS, style=False)),
    "cityscapes": (25000, 8,   3,   32,   4,   0.002, 0.002, 20.0,  10.0, True,  None, None, None, {}),
    "ffhq":       (25000, 8,   3,   32,   4,   0.002, 0.002, 10.0,  10.0, True,  None, None, None, {}),
    "bedrooms":   (25000, 8,   3,   32,   4,   0.002, 0.002, 100.0, 10.0, False, None, None, None, {}),
}
assert all(len(row) == len(RECIPE_COLUMNS) for row in _RECIPE_ROWS.values())
RECIPES = {name: dict(zip(RECIPE_COLUMNS, row)) for name, row in _RECIPE_ROWS.items()}
# Recipe column -> the training options it sets.
RECIPE_TARGETS = dict(kimg=("total_kimg",), tick=("kimg_per_tick",), snap=("snapshot_ticks",), batch=("batch_size",),
                      batch_gpu=("batch_gpu",), lr=("g_lr",), dlr=("d_lr",), gamma=("gamma",), ema=("ema_kimg",),
                      mirror=("mirror_augment",), res=("resolution",))
SCENES_SEGMENTER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "metrics", "data",
                                "scenes_segmenter.pkl")
# Per-family recipe rows: {family: {recipe: options}} for model families whose sizing on a
# dataset differs from their preset (model options, d_ = D's, and training options, which win
# over the preset's training). The GANsformer's are the `gansformer` column above.
FAMILY_RECIPES = {
    # The main job for TransGAN: 2-core CPU sizing at 32x32 (token widths 256 -> 64 -> 16, grid
    # self-attention in 16x16 windows at 32x32; D 16x16 and 8x8 tokens of width 48 + 16).
    # Bicubic 8->16 (one pixel shuffle, 16->32) and the logistic loss with lazy R1 (issue 13, bench/quality.py
    # at 4 / 8 kimg: fid_scenes 158145 / 39227 with two shuffles and WGAN-GP, 53009 / 16389 with the logistic
    # loss, 20111 / 3227 with both changes): early training is otherwise dominated by the shuffle phases.
    "networks_transgan": {"scenes": dict(latent_size=128, embed_dim=256, depths=[2, 2, 1], grid_above=16, d_patch_size=2,
                                d_scale_dims=[48, 16], d_depths=[1, 1], bicubic_stages=1, g_lr=2e-4, d_lr=2e-4,
                                g_loss="logistic_ns", d_loss="logistic", d_reg="r1", gamma=1.0, d_reg_interval=16,
                                d_steps=1, clip_grad_norm=0.0)},
    # The main job for GANsformer2 (channels 2048 / 64 from the scenes row): 128-wide latents per
    # slot, 4-layer mappings, layout attention at every width 4x4..32x32, segments scored at 8x8.
    # GANsformer2's execution stage: semantic matching with the shipped scenes segmenter (bench/learn_layout.py,
    # 8 kimg: fid_scenes 108 and miou_scenes 0.80 with it, 214 and 0.72 without).
    "networks_gansformer2": {"scenes": dict(latent_size=128, mapping_num_layers=4, d_segment_res=3,
                                            semantic_weight=1.0, segmenter=SCENES_SEGMENTER)},
}
EMBEDDED_DATASET = "scenes"
EMBEDDED_SCENES = dict(num_images=20000, resolution=64, seed=123)   # made on first use of the main job

# ----------------------------------------------------------------------------
# Training flags not in the recipes: (name, type, default, help). Types are names the CLI maps
# to parsers (run_training.py), so this module stays free of argparse.

FLAGS = [
    ("data_dir", "str", "datasets", "Folder holding the datasets"),
    ("dataset", "str", EMBEDDED_DATASET, "Dataset folder name under --data-dir (default: the embedded scenes, "
                                         "made on first use; it selects the CPU-sized main job)"),
    ("recipe", "str", None, "Training recipe row (%s; default: the dataset's name if it has a row, else "
                            "'default')" % ", ".join(RECIPES)),
    ("ratio", "float", 1.0, "Height/width of the images (e.g. 0.5 for Cityscapes)"),
    ("gpus", "gpus", [0], "Comma-separated devices, one tower each (CPU-only: virtual CPU devices)"),
    ("g_loss", "str", "logistic_ns", "G loss: logistic_ns, logistic, hinge, wgan"),
    ("d_loss", "str", "logistic", "D loss: logistic, hinge, wgan"),
    ("d_reg", "str", "r1", "D regularizer: r1 (lazy), r2, gp, none"),
    ("pl_weight", "float", 0.0, "Path-length regularization weight for G (0 = off; StyleGAN2 uses 2)"),
    ("d_steps", "int", 1, "D steps per G step (each on its own minibatch of reals; TransGAN: 4)"),
    ("clip_grad_norm", "float", 0.0, "Clip each optimizer step's gradients to this global norm (0 = off; TransGAN: 5)"),
    ("augment", "str", "", "DiffAugment policy for reals and fakes before D, comma-separated: translation[=ratio] "
                           "(default 1/8), cutout[=fraction of the batch] (default 1), color; empty = off"),
    ("segment_weight", "float", 1.0, "GANsformer2: weight of the segment-fidelity terms (D scores every segment "
                                     "of the layout; the loss per segment, averaged, is added to G's and D's)"),
    ("semantic_weight", "float", 0.0, "GANsformer2: weight of semantic matching (the --segmenter's cross-entropy "
                                      "on the fakes against their layouts, added to G's loss; 0 = off)"),
    ("segmenter", "str", None, "GANsformer2: segmenter pickle of semantic matching (scripts/train_segmenter.py; "
                               "the scenes ship metrics/data/scenes_segmenter.pkl)"),
    ("g_reg_interval", "int", 4, "Lazy G regularization every this many minibatches (1 = not lazy: in the G step)"),
    ("d_reg_interval", "int", 16, "Lazy D regularization every this many minibatches (1 = not lazy: in the D step)"),
    ("ema_rampup", "float", 0.0, "Gs half-life at most this fraction of the images shown so far (StyleGAN2-ADA: "
                                 "0.05), so a long --ema-kimg does not hold Gs near the untrained G; 0 = off"),
    ("adam_beta1", "float", 0.0, "Adam beta1 of both optimizers"),
    ("adam_beta2", "float", 0.99, "Adam beta2 of both optimizers"),
    ("adam_eps", "float", 1e-8, "Adam epsilon of both optimizers"),
    ("metrics", "list", [], "Comma-separated metrics at each snapshot (e.g. fid50k,fid_scenes)"),
    ("result_dir", "str", "results", "Root of the run directories"),
    ("keep_snapshots", "int", 10, "Keep the last N network snapshots (0 = all)"),
    ("grid_size", "grid", [8, 4], "Columns,rows of the fakes grids written at each snapshot"),
    ("resume", "str", "latest", "latest (continue the newest run of the same name), or a run directory"),
    ("restart", "bool", False, "Start a new run even if one of the same name can be resumed"),
    ("pretrained_pkl", "str", None, "Initialize G, D, Gs from a network pickle (ours or official), by name"),
    ("seed", "int", 1000, "Random seed"),
    ("dry_run", "bool", False, "Print and save the resolved options, then stop"),
]
# The recipe-set options, as flags: (name, type, help); their defaults are the recipe's.
RECIPE_FLAGS = [
    ("resolution", "int", "Training resolution (a stored level of the dataset; default: its largest)"),
    ("mirror_augment", "bool", "Flip reals horizontally with probability 1/2"),
    ("batch_size", "int", "Global minibatch size"),
    ("batch_gpu", "int", "Per-device batch; gradient accumulation fills the rest of --batch-size"),
    ("total_kimg", "float", "Training length in thousands of real images shown"),
    ("kimg_per_tick", "float", "Progress line every this many kimg"),
    ("snapshot_ticks", "int", "Snapshot (network, fakes, attention, metrics) every this many ticks"),
    ("ema_kimg", "float", "Half-life of the Gs moving average in kimg (0 = Gs copies G)"),
    ("gamma", "float", "R1/R2/GP weight"),
    ("g_lr", "float", "Generator learning rate"),
    ("d_lr", "float", "Discriminator learning rate"),
]
PRESET_FLAGS = ("gansformer_default", "gansformer", "baseline", "gansformer2")
# --gansformer2 <stage> -> its preset (the planning stage is a later issue).
GANSFORMER2_STAGES = {"execution": "gansformer2"}
# Options that name the run's place, length and bookkeeping, not the model: left out of its name.
RUN_MANAGEMENT = {"data_dir", "result_dir", "resume", "restart", "dry_run", "metrics", "snapshot_ticks",
                  "keep_snapshots", "total_kimg", "kimg_per_tick", "gpus", "batch_gpu", "grid_size", "dataset",
                  "resolution", "seed", "recipe"}
# Network options set from the dataset or at run time, never from the command line.
MODEL_EXCLUDED = {"resolution", "ratio", "num_channels", "c_dim", "is_validation", "return_ws", "take_ws", "is_training",
                  "max_segments", "num_categories"}


def recipe_defaults(name):
    """{training option: value} that recipe row `name` sets (None values included)."""
    row = RECIPES[name]
    return {opt: row[col] for col, opts in RECIPE_TARGETS.items() for opt in opts}


def training_defaults():
    """Every training option's default: FLAGS plus the `default` recipe row."""
    return dict({name: default for name, _t, default, _h in FLAGS}, **recipe_defaults("default"))


def families():
    return sorted(set(row["family"] for row in PRESETS.values()))


def model_flag_names():
    """(G option names, D option names) settable on the command line, over every family: G's
    as --<name> (shared ones such as --channel-base also reach D), D's as --d-<name>."""
    g_names = sorted(set(n for f in families() for n in g_options(f) if n not in MODEL_EXCLUDED))
    d_names = sorted(set(n for f in families() for n in d_options(f) if n not in MODEL_EXCLUDED))
    return g_names, d_names


def route(options, family="networks", preset_row=None):
    """Split flat model options into (G kwargs, D kwargs) of a family; unknown or doubled names
    raise UserError. Columns of preset_row that the family does not take are dropped (None)."""
    gnames, dnames = set(g_options(family)), set(d_options(family))
    gkw, dkw, shared = {}, {}, {}
    for key, value in options.items():
        if key.startswith("d_") and key[2:] in dnames:
            dkw[key[2:]] = value
        elif key.startswith("g_") and key[2:] in gnames:
            if key[2:] in options:
                raise UserError("options %r and %r name the same G option: give one" % (key, key[2:]))
            gkw[key[2:]] = value
        elif key in gnames:
            gkw[key] = value
            if key in D_SHARED and key in dnames:
                shared[key] = value
        elif key in dnames:
            dkw[key] = value
        elif preset_row is not None and key in preset_row and value is None:
            continue    # another family's column
        else:
            valid = sorted(gnames | set("d_" + n for n in dnames))
            raise UserError("unknown network option %r (%s models); valid options: %s"
                            % (key, family, ", ".join(valid)))
    return gkw, dict(shared, **dkw)     # d_-prefixed values win over shared ones


def resolve_model(preset, **overrides):
    """(G_kwargs, D_kwargs) for a preset name and option overrides, validated; the family's
    build functions are G_kwargs / D_kwargs' func_name.

    Raises UserError for an unknown preset, an unknown option or a contradiction."""
    if preset not in PRESETS:
        raise UserError("unknown preset %r; choose one of %s" % (preset, ", ".join(PRESETS)))
    row = dict(PRESETS[preset])
    family = row.pop("family")
    own = row.pop("family_opts") or {}
    row.pop("training")
    # An override names a G option in either spelling (architecture / g_architecture): it
    # replaces the preset's value under the other spelling too (both given is still a conflict).
    other = {k[2:] if k.startswith("g_") else "g_" + k for k in overrides}
    defaults = {k: v for k, v in dict(row, **own).items() if k not in other}
    gkw, dkw = route(dict(defaults, **overrides), family, preset_row=row)
    validate(G=gkw, D=dkw, family=family)
    return gkw, dkw


# ----------------------------------------------------------------------------
# Resolution: typed flags -> the complete, validated options of one run.

def preset_name(given):
    chosen = [k for k in PRESET_FLAGS if given.get(k) not in (None, False)]
    if len(chosen) > 1:
        _fail("--%s contradict each other; choose one preset", " and --".join(k.replace("_", "-") for k in chosen))
    if given.get("gansformer2"):
        return GANSFORMER2_STAGES[given["gansformer2"]]
    return given.get("gansformer") or given.get("baseline") or "gansformer"


def recipe_name(opts, given):
    if "recipe" in given:
        if given["recipe"] not in RECIPES:
            _fail("--recipe %s: unknown; choose one of %s", given["recipe"], ", ".join(RECIPES))
        return given["recipe"]
    name = os.path.basename(os.path.normpath(opts.dataset))
    return name if name in RECIPES else "default"


def resolve(given):
    """Options from {dest: value typed}: training defaults, the recipe row, the model preset,
    then the typed values, validated; UserError on a conflict."""
    train_names = set(training_defaults())
    typed_train = {k: v for k, v in given.items() if k in train_names}
    typed_model = {k: v for k, v in given.items() if k not in train_names and k not in PRESET_FLAGS}
    opts = EasyDict(training_defaults())
    opts.update(typed_train)
    opts.given = sorted(given)
    opts.preset_name = preset_name(given)
    opts.recipe = recipe_name(opts, given)
    opts.main_job = opts.recipe == EMBEDDED_DATASET
    recipe = RECIPES[opts.recipe]
    for key, value in recipe_defaults(opts.recipe).items():
        if key not in typed_train:
            opts[key] = value
    # The preset's training recipe, then the family's row for this dataset (training keys
    # here, model keys below); typed flags win over both.
    family = PRESETS[opts.preset_name]["family"]
    family_recipe = FAMILY_RECIPES.get(family, {}).get(opts.recipe, {})
    for source in (PRESETS[opts.preset_name]["training"] or {}, family_recipe):
        for key, value in source.items():
            if key in train_names and key not in typed_train:
                opts[key] = value

    family_options = set(g_options(family))
    model = {name: recipe[col] for col, name in (("cbase", "channel_base"), ("cmax", "channel_max"))
             if recipe[col] is not None and name in family_options}
    if PRESETS[opts.preset_name]["transformer"]:
        model.update(recipe["gansformer"])
    model.update({k: v for k, v in family_recipe.items() if k not in train_names})
    if "mbstd_group_size" in d_options(family):
        model.setdefault("d_mbstd_group_size", min(opts.batch_gpu, 4))   # GANsformer CLI: min(batch, 4)
    model.update(typed_model)
    if opts.resolution is not None:
        model["resolution"] = opts.resolution    # Checked here; the loop sets it from the data.
    model["ratio"] = opts.ratio
    train_checked = dict(opts, num_devices=len(opts.gpus))
    validate(train=train_checked)
    if opts.d_reg == "gp" and opts.d_loss != "wgan":
        print("note: --d-reg gp is normally used with --d-loss wgan")
    gkw, dkw = resolve_model(opts.preset_name, **model)
    validate(train=train_checked, G=gkw, family=family)
    gkw.pop("resolution", None)
    dkw.pop("resolution", None)
    opts.G_args = dict(func_name="training.%s.Generator" % family, **gkw)
    opts.D_args = dict(func_name="training.%s.Discriminator" % family, **dkw)
    opts.run_desc = run_desc(opts, given)
    return opts


def run_desc(opts, given):
    """<preset>-<dataset>-<res>[-<typed option><value>...]: reruns of one command share it."""
    parts = [opts.preset_name, os.path.basename(os.path.normpath(opts.dataset)), str(opts.resolution or "auto")]
    for key in sorted(given):
        if key in RUN_MANAGEMENT or key in PRESET_FLAGS:
            continue
        value = given[key]
        value = ",".join(map(str, value)) if isinstance(value, list) else value
        parts.append("%s%s" % (key.replace("_", ""), value))
    desc = "-".join(str(p) for p in parts)
    return "".join(c if c.isalnum() or c in "._+-" else "_" for c in desc)[:120]


def loop_kwargs(opts, device_type="cpu", tf_config=None, resume_pkl=None):
    """training_loop() keyword arguments from resolved options (every one of them: the loop
    has no defaults of its own)."""
    dataset_args = dict(tfrecord_dir=os.path.join(opts.data_dir, opts.dataset), resolution=opts.resolution)
    if opts.main_job:
        # The reader's default 2 GB prefetch buffer would fill RAM and steal a CPU core here.
        dataset_args.update(shuffle_mb=64, prefetch_mb=16)
    if opts.ratio != 1.0:
        dataset_args["ratio"] = opts.ratio
    return dict(G_args=dict(opts.G_args), D_args=dict(opts.D_args), dataset_args=dataset_args,
                G_loss_args=dict(loss=opts.g_loss, pl_weight=opts.pl_weight, augment=opts.augment,
                                 segment_weight=opts.segment_weight, semantic_weight=opts.semantic_weight,
                                 segmenter=opts.segmenter),
                D_loss_args=dict(loss=opts.d_loss, reg=opts.d_reg, gamma=opts.gamma, augment=opts.augment,
                                 segment_weight=opts.segment_weight),
                d_steps=opts.d_steps, clip_grad_norm=opts.clip_grad_norm,
                batch_size=opts.batch_size, batch_gpu=opts.batch_gpu, num_gpus=len(opts.gpus),
                device_type=device_type, device_ids=list(opts.gpus),
                total_kimg=opts.total_kimg, kimg_per_tick=opts.kimg_per_tick, snapshot_ticks=opts.snapshot_ticks,
                keep_snapshots=opts.keep_snapshots, G_lrate=opts.g_lr, D_lrate=opts.d_lr,
                beta1=opts.adam_beta1, beta2=opts.adam_beta2, epsilon=opts.adam_eps,
                G_reg_interval=opts.g_reg_interval, D_reg_interval=opts.d_reg_interval,
                G_smoothing_kimg=opts.ema_kimg, G_smoothing_rampup=opts.ema_rampup,
                mirror_augment=opts.mirror_augment, metrics=list(opts.metrics),
                resume=resume_pkl, pretrained_pkl=opts.pretrained_pkl, seed=opts.seed,
                grid_size=tuple(opts.grid_size), tf_config=dict(tf_config or {}, **{"rnd.np_random_seed": opts.seed}))


def default_loop_kwargs(**overrides):
    """training_loop() kwargs of the default recipe with no dataset or networks filled in
    (for tests and benchmarks that bring their own); overrides win."""
    opts = EasyDict(training_defaults(), G_args={}, D_args={}, main_job=False)
    kwargs = loop_kwargs(opts)
    del kwargs["resume"], kwargs["pretrained_pkl"]      # per run: callers pass them
    kwargs.update(overrides)
    return kwargs
