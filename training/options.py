"""Every training and model option in one place: the model presets, the training recipes, the
command-line flags with their defaults, one validator, and the resolution of typed flags into
the kwargs of training_loop() and of the network build functions.

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

import inspect
import math
import os

from dnnlib.util import EasyDict, UserError
from training import networks

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
assert all(len(row) == len(PRESET_COLUMNS) for row in _PRESET_ROWS.values())
PRESETS = {name: dict(zip(PRESET_COLUMNS, row)) for name, row in _PRESET_ROWS.items()}
# A model family is a network module training/<family>.py with build functions Generator and
# Discriminator. A new model is that file plus its row above: columns its build functions do
# not take must be None in its row. Listed here only: families whose Generator routes options to
# sub-networks, and the family checks of validate().
FAMILY_G_FUNCS = {"networks": ("Generator", "G_synthesis", "G_mapping")}
GANSFORMER_PRESETS = ("simplex", "duplex")
BASELINE_PRESETS = ("GAN", "StyleGAN2", "kGAN", "SAGAN", "TransGAN", "TransGAN-256")

# ----------------------------------------------------------------------------
# Training recipes, one row per dataset, chosen by the dataset folder's exact name (or
# --recipe); `default` for any other dataset. `scenes` is the main job: the embedded dataset,
# sized for a 2-core CPU (32x32, narrow channels, 8 region latents + the global one).
# Training columns and the channel columns apply to every preset; `gansformer` holds model
# options for the presets with region latents (transformer=True) only. None: keep the derived
# value (res: the dataset's largest; cbase/cmax: the build function's default).

RECIPE_COLUMNS = ("kimg", "tick", "snap", "batch", "batch_gpu", "lr", "gamma", "ema", "mirror", "res",
                  "cbase", "cmax", "gansformer")
_SMALL_LATENTS = dict(components_num=8, latent_size=128, mapping_ltnt2ltnt=False)
_RECIPE_ROWS = {
    #              kimg   tick snap batch bgpu lr     gamma  ema   mirror res   cbase cmax  gansformer
    "default":    (25000, 8,   3,   32,   4,   0.002, 10.0,  10.0, False, None, None, None, {}),
    "scenes":     (40,    1,   4,   16,   16,  0.002, 1.0,   2.5,  False, 32,   2048, 64,   _SMALL_LATENTS),
    "clevr":      (25000, 8,   3,   32,   4,   0.002, 40.0,  10.0, False, None, None, None, dict(_SMALL_LATENTS, style=False)),
    "cityscapes": (25000, 8,   3,   32,   4,   0.002, 20.0,  10.0, True,  None, None, None, {}),
    "ffhq":       (25000, 8,   3,   32,   4,   0.002, 10.0,  10.0, True,  None, None, None, {}),
    "bedrooms":   (25000, 8,   3,   32,   4,   0.002, 100.0, 10.0, False, None, None, None, {}),
}
assert all(len(row) == len(RECIPE_COLUMNS) for row in _RECIPE_ROWS.values())
RECIPES = {name: dict(zip(RECIPE_COLUMNS, row)) for name, row in _RECIPE_ROWS.items()}
# Recipe column -> the training options it sets.
RECIPE_TARGETS = dict(kimg=("total_kimg",), tick=("kimg_per_tick",), snap=("snapshot_ticks",), batch=("batch_size",),
                      batch_gpu=("batch_gpu",), lr=("g_lr", "d_lr"), gamma=("gamma",), ema=("ema_kimg",),
                      mirror=("mirror_augment",), res=("resolution",))
# Per-family recipe rows: {family: {recipe: options}} for model families whose sizing on a
# dataset differs from their preset (model options, d_ = D's, and training options, which win
# over the preset's training). The GANsformer's are the `gansformer` column above.
FAMILY_RECIPES = {
    # The main job for TransGAN: 2-core CPU sizing at 32x32 (token widths 256 -> 64 -> 16, grid
    # self-attention in 16x16 windows at 32x32; D 16x16 and 8x8 tokens of width 48 + 16).
    "networks_transgan": {"scenes": dict(latent_size=128, embed_dim=256, depths=[2, 2, 1], grid_above=16, d_patch_size=2,
                                d_scale_dims=[48, 16], d_depths=[1, 1], d_steps=2, g_lr=2e-4, d_lr=2e-4)},
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
    ("g_reg_interval", "int", 4, "Lazy G regularization every this many minibatches (1 = not lazy: in the G step)"),
    ("d_reg_interval", "int", 16, "Lazy D regularization every this many minibatches (1 = not lazy: in the D step)"),
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
PRESET_FLAGS = ("gansformer_default", "gansformer", "baseline")
# Options that name the run's place, length and bookkeeping, not the model: left out of its name.
RUN_MANAGEMENT = {"data_dir", "result_dir", "resume", "restart", "dry_run", "metrics", "snapshot_ticks",
                  "keep_snapshots", "total_kimg", "kimg_per_tick", "gpus", "batch_gpu", "grid_size", "dataset",
                  "resolution", "seed", "recipe"}
# Network options set from the dataset or at run time, never from the command line.
MODEL_EXCLUDED = {"resolution", "ratio", "num_channels", "c_dim", "is_validation", "return_ws", "take_ws", "is_training"}


def recipe_defaults(name):
    """{training option: value} that recipe row `name` sets (None values included)."""
    row = RECIPES[name]
    return {opt: row[col] for col, opts in RECIPE_TARGETS.items() for opt in opts}


def training_defaults():
    """Every training option's default: FLAGS plus the `default` recipe row."""
    return dict({name: default for name, _t, default, _h in FLAGS}, **recipe_defaults("default"))


# ----------------------------------------------------------------------------
# Introspection of the build functions: option names, defaults and their comments.

# Sub-network options the Generator derives itself (not settable by the user).
G_DERIVED = ("num_latents", "z_dim", "w_dim", "c_dim", "num_broadcast", "global_latent", "transformer")
_NOT_OPTIONS = ("is_template_graph", "components")
# Unprefixed options that D shares with G.
D_SHARED = ("resolution", "ratio", "num_channels", "c_dim", "channel_base", "channel_max", "resample_kernel",
            "components_num", "latent_size", "num_heads", "attention_dropout", "use_pos", "pos_dim", "pos_type",
            "pos_init", "pos_directions_num", "mlp_ratio", "window_size", "grid_above", "rel_pos")


def _keywords(func):
    """{name: default} of a build function's keyword parameters."""
    return {n: p.default for n, p in inspect.signature(func).parameters.items()
            if p.kind == p.POSITIONAL_OR_KEYWORD and p.default is not p.empty and n not in _NOT_OPTIONS}


def family_funcs(family="networks"):
    """(G build functions, D build functions) of a model family: the first of each is the one
    built, the others receive the options it routes to them."""
    import importlib
    try:
        module = importlib.import_module("training." + family)
    except ImportError as error:
        raise UserError("model family %r: cannot import training/%s.py (%s)" % (family, family, error)) from None
    g_names = FAMILY_G_FUNCS.get(family, ("Generator",))
    return tuple(getattr(module, n) for n in g_names), (module.Discriminator,)


def g_options(family="networks"):
    """Every option the family's Generator accepts: its own and the ones it routes on."""
    funcs = family_funcs(family)[0]
    own = set(_keywords(funcs[0]))
    routed = {n for f in funcs[1:] for n in _keywords(f) if n not in G_DERIVED}
    return sorted((own | routed) - {"is_training"})


def d_options(family="networks"):
    return sorted(set(_keywords(family_funcs(family)[1][0])) - {"is_training"})


def model_defaults(funcs):
    """{option: default} over build functions, the first one naming it wins."""
    found = {}
    for func in reversed(funcs):
        found.update(_keywords(func))
    return found


def signature_comments(func):
    """{option: its trailing comment} from a build function's signature, so -h explains each
    model option in the words written beside its default (one place to keep them)."""
    import re
    head = inspect.getsource(func).split('"""', 1)[0]
    found = {}
    for line in head.splitlines():
        match = re.match(r"\s*(?:def \w+\()?(?:.*,\s*)?(\w+)=[^#]*#\s*(.+)$", line)
        if match:
            found[match.group(1)] = match.group(2).strip().rstrip(".")
    return found


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
    gkw, dkw = route(dict(row, **dict(own, **overrides)), family, preset_row=row)
    validate(G=gkw, D=dkw, family=family)
    return gkw, dkw


# ----------------------------------------------------------------------------
# The validator: every cross-option check, for the CLI, resolve_model(), the build functions
# (which pass their own kwargs) and the training loop. Pure: no files, no TF.

def _fail(fmt, *args):
    raise UserError(fmt % args)


def _is_pow2(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 4 and not value & (value - 1)


def _number(name, value, low=None, above=None, integer=False):
    """value is a finite number (an int if integer), >= low and > above when given."""
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or (not integer and not math.isfinite(value)):
        _fail("%s: %r is not a %s", name, value, "whole number" if integer else "finite number")
    if low is not None and value < low:
        _fail("%s: %r must be >= %s", name, value, low)
    if above is not None and value <= above:
        _fail("%s: %r must be > %s", name, value, above)


def validate(train=None, G=None, D=None, family="networks"):
    """Check options together; raise UserError naming the option and the constraint.

    train: training options by their flag names (any subset; `num_devices` for the device
    count); G / D: kwargs of the family's Generator / Discriminator (unset = their default)."""
    if train is not None:
        _validate_training(train)
    g_funcs, d_funcs = family_funcs(family)
    g_check, d_check = FAMILY_CHECKS.get(family, (_validate_geometry, _validate_geometry))
    if G is not None:
        _check_values(G, g_funcs, "", "g_")
        g_check(_getter(G, g_funcs))
    if D is not None:
        _check_values(D, d_funcs, "d_", "d_")
        d_check(_getter(D, d_funcs))


# Every family: each given model option has its default's type, and sizes, counts and rates
# a value that a network can be built with (not a TF shape error or a ZeroDivisionError later).
_CALL_TIME = {"is_training", "is_validation", "return_ws", "take_ws", "truncation_psi", "truncation_cutoff",
              "randomize_noise", "noise_mode_override", "components"}
_POSITIVE = {"num_heads", "components_num", "latent_size", "channel_base", "channel_max", "num_channels",
             "kmeans_iters", "pos_directions_num", "mbstd_num_channels", "embed_dim", "bottom_width", "patch_size",
             "window_size", "mlp_ratio", "z_dim", "w_dim", "num_latents", "mapping_dim", "pos_dim", "end_res",
             "mapping_num_layers"}
_UNIT_INTERVAL = {"attention_dropout", "style_mixing", "component_mixing", "component_dropout", "w_avg_beta"}
_SHARED_PREFIX_FREE = set(D_SHARED)


def _check_values(given, funcs, d_prefix, own_prefix):
    """Types (from each option's default) and ranges of the options in `given`; errors name
    the option as the command line spells it (d_<x> for D's own)."""
    defaults = model_defaults(funcs)
    for name, value in given.items():
        if name in _CALL_TIME or name not in defaults or name == "func_name":
            continue
        shown = name if (not d_prefix or name in _SHARED_PREFIX_FREE) else d_prefix + name
        if name in ("architecture", "img2img"):
            shown = own_prefix + name
        default = defaults[name]
        if value is None:   # None means "off" / "derived" for many options (w_avg_beta, style_mixing, ...)
            if name in _POSITIVE and default is not None:
                _fail("%s: None is not allowed (default %r)", shown, default)
            continue
        if isinstance(default, bool):
            if not isinstance(value, bool):
                _fail("%s: %r is not true or false", shown, value)
        elif isinstance(default, int) or name in _POSITIVE:
            low = 1 if name in _POSITIVE else min(default, 0)   # negative sizes never; -1 where it means "off"
            _number(shown, value, low=low, integer=True)
        elif isinstance(default, float):
            _number(shown, value)
            if name in _UNIT_INTERVAL and not 0 <= value <= 1:
                _fail("%s: %r must be in [0, 1]", shown, value)
            if name == "mapping_lrmul" and value <= 0:
                _fail("%s: %r must be > 0", shown, value)
        elif isinstance(default, str):
            if not isinstance(value, str):
                _fail("%s: %r is not a name (default %r)", shown, value, default)
        elif isinstance(default, (tuple, list)):
            if (not isinstance(value, (tuple, list)) or not value
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
                               for v in value)):
                _fail("%s: %r must be a list of positive numbers such as %s", shown, value,
                      ",".join(map(str, default)))


def _validate_training(t):
    from training import loss
    for key, choices in (("g_loss", loss.G_LOSSES), ("d_loss", loss.D_LOSSES), ("d_reg", loss.D_REGS)):
        if key in t and t[key] not in choices:
            _fail("--%s %s: unknown; choose one of %s", key.replace("_", "-"), t[key], ", ".join(choices))
    if t.get("resolution") is not None and not _is_pow2(t["resolution"]):
        _fail("--resolution %r: must be a power of two >= 4", t["resolution"])
    positive = dict(batch_size=True, batch_gpu=True, snapshot_ticks=True, g_reg_interval=True, d_reg_interval=True,
                    d_steps=True,
                    total_kimg=False, kimg_per_tick=False, g_lr=False, d_lr=False)
    for key, integer in positive.items():
        if key in t:
            _number("--" + key.replace("_", "-"), t[key], above=0, integer=integer)
    for key in ("gamma", "ema_kimg", "pl_weight", "adam_beta1", "adam_eps", "clip_grad_norm"):
        if key in t:
            _number("--" + key.replace("_", "-"), t[key], low=0)
    for key in ("adam_beta1", "adam_beta2"):
        if key in t and not 0 <= t[key] < 1:
            _fail("--%s %r: must be in [0, 1)", key.replace("_", "-"), t[key])
    if t.get("augment"):
        from training import augment
        try:
            augment.parse_policy(t["augment"])
        except ValueError as error:
            _fail("--augment %s: %s", t["augment"], error)
    if "seed" in t:
        _number("--seed", t["seed"], low=0, integer=True)
        if t["seed"] >= 2 ** 32:
            _fail("--seed %r: must be below 2^32", t["seed"])
    if "keep_snapshots" in t:
        _number("--keep-snapshots", t["keep_snapshots"], low=0, integer=True)
    if "batch_size" in t and "batch_gpu" in t:
        per_round = t["batch_gpu"] * t.get("num_devices", 1)
        if per_round > t["batch_size"] or t["batch_size"] % per_round:
            _fail("--batch-size %d must be a multiple of --batch-gpu %d x %d device(s)",
                  t["batch_size"], t["batch_gpu"], t.get("num_devices", 1))
    if "ratio" in t and not (isinstance(t["ratio"], (int, float)) and 0 < t["ratio"] <= 1):
        _fail("--ratio %r: must be in (0, 1]", t["ratio"])
    if "grid_size" in t and (len(t["grid_size"]) != 2 or min(t["grid_size"]) < 1):
        _fail("--grid-size %r: must be two counts >= 1 (columns,rows)", t["grid_size"])
    if t.get("metrics"):
        from metrics import metric_defaults
        unknown = [m for m in t["metrics"] if m not in metric_defaults.metric_defaults]
        if unknown:
            _fail("--metrics: unknown %s; known: %s", ", ".join(unknown), ", ".join(sorted(metric_defaults.metric_defaults)))


def _getter(given, funcs):
    defaults = model_defaults(funcs)
    return lambda name: given[name] if name in given else defaults[name]


def _check_geometry(what, res, ratio):
    if not _is_pow2(res):
        _fail("%sresolution: %r is not a power of two >= 4", what, res)
    h0 = 4.0 * ratio
    if h0 < 1 or abs(h0 - round(h0)) > 1e-6:
        _fail("%sratio: %r must make 4 * ratio a positive integer (0.25, 0.5, 0.75, 1, ...)", what, ratio)
    return res.bit_length() - 1


def _check_choices(pairs):
    for name, value, allowed in pairs:
        if value not in allowed:
            _fail("%s: %r is not one of %s", name, value, ", ".join(map(str, allowed)))


def _check_positions(prefix, dim, g):
    try:
        networks.check_pos_dim(dim, g("pos_type"), g("pos_directions_num"))
    except ValueError as error:
        raise UserError(prefix + str(error)) from None


def _validate_geometry(get):
    """Every family: the image geometry."""
    _check_geometry("", get("resolution"), get("ratio"))


def _validate_generator(g):
    r = _check_geometry("", g("resolution"), g("ratio"))
    k, latent, heads = g("components_num"), g("latent_size"), g("num_heads")
    _number("components_num", k, low=1, integer=True)
    _number("latent_size", latent, low=1, integer=True)
    _number("num_heads", heads, low=1, integer=True)
    if latent % k:
        _fail("latent_size: %d is not divisible by components_num %d", latent, k)
    if not g("transformer"):
        for name in ("kmeans", "img2ltnt", "ltnt2ltnt", "mapping_ltnt2ltnt", "ltnt_gate", "img_gate", "iterative"):
            if g(name):
                _fail("%s: needs transformer=True (it works on the region latents)", name)
        if k > 1 and not g("kgan"):
            _fail("components_num: %d latents need transformer=True or kgan=True", k)
    elif g("kgan"):
        _fail("kgan: k-GAN and transformer cannot be combined")
    if g("mapping_shared_dim") and g("mapping_ltnt2ltnt"):
        _fail("mapping_shared_dim: maps the latents jointly, so mapping_ltnt2ltnt has no separate latents to attend over")
    if (g("mapping_shared_dim") or 0) < 0:
        _fail("mapping_shared_dim: %r must be 0 (off) or a positive width", g("mapping_shared_dim"))
    if g("iterative") and not g("kmeans"):
        _fail("iterative: needs kmeans=True")
    _number("kmeans_iters", g("kmeans_iters"), low=1, integer=True)
    _check_choices([("integration", g("integration"), networks.INTEGRATIONS), ("norm", g("norm"), networks.NORMS),
                    ("merge_type", g("merge_type"), networks.MERGE_TYPES),
                    ("noise_mode", g("noise_mode"), networks.NOISE_MODES),
                    ("g_architecture", g("architecture"), networks.ARCHITECTURES),
                    ("pos_type", g("pos_type"), networks.POS_TYPES)])
    if g("img2img") and not 2 <= g("img2img") <= r:
        _fail("g_img2img: log2 width %d is outside 2..%d for resolution %d", g("img2img"), r, g("resolution"))
    w_dim = latent // k
    if g("mapping_ltnt2ltnt") and (g("mapping_dim") or w_dim) % heads:
        _fail("num_heads: %d does not divide the latent width %d (mapping_ltnt2ltnt)", heads, w_dim)
    att_res = [rr for rr in range(max(g("start_res"), 2), min(g("end_res"), r + 1))] if g("transformer") else []
    for rr in att_res:
        c = networks.channels(rr, g("channel_base"), g("channel_max"))
        if c % heads:
            _fail("num_heads: %d does not divide %d channels at %dx%d", heads, c, 2 ** rr, 2 ** rr)
    if att_res or g("img2img"):
        _check_positions("", g("pos_dim") or w_dim, g)


def _validate_discriminator(d):
    r = _check_geometry("d_", d("resolution"), d("ratio"))
    _check_choices([("d_architecture", d("architecture"), networks.ARCHITECTURES),
                    ("d_pos_type", d("pos_type"), networks.POS_TYPES)])
    k, latent, heads = d("components_num"), d("latent_size"), d("num_heads")
    if d("transformer"):
        if k < 1 or latent % k or (latent // k) % heads:
            _fail("d_latent_size: %d must split into d_components_num %d aggregators divisible by num_heads %d",
                  latent, k, heads)
    elif d("ltnt2ltnt"):
        _fail("d_ltnt2ltnt: needs d_transformer=True")
    if d("img2img") and not 3 <= d("img2img") <= r:
        _fail("d_img2img: log2 width %d is outside 3..%d for resolution %d", d("img2img"), r, d("resolution"))
    if d("transformer") or d("img2img"):
        _check_positions("d_", d("pos_dim") or latent // max(k, 1), d)


def _positive_ints(name, value):
    """A whole number >= 1 or a non-empty list of them (the CLI gives '5' as 5)."""
    items = value if isinstance(value, (list, tuple)) else [value]
    if not items:
        _fail("%s: empty; give one or more whole numbers >= 1", name)
    for item in items:
        _number(name, item, low=1, integer=True)
    return list(items)


def _transgan_common(get, prefix, widths, token_dims):
    """Checks G and D of TransGAN share: square images, heads, MLP, norm, windows.
    widths: token-grid widths of the stages; token_dims: their token widths."""
    r = _check_geometry(prefix, get("resolution"), get("ratio"))
    if get("ratio") != 1:
        _fail("%sratio: %r; TransGAN builds square images only (ratio 1)", prefix, get("ratio"))
    for name in ("num_heads", "mlp_ratio", "window_size"):
        _number(prefix + name, get(name), low=1, integer=True)
    _number(prefix + "grid_above", get("grid_above"), low=0, integer=True)
    _check_choices([(prefix + "token_norm", get("token_norm"), ("layer", "pixel", "none"))])
    window, above = get("window_size"), get("grid_above")
    if window & (window - 1):
        _fail("%swindow_size: %d is not a power of two (windows must tile the power-of-two grids)", prefix, window)
    for width, dim in zip(widths, token_dims):
        if dim < 1 or dim % get("num_heads"):
            _fail("%snum_heads: %d does not divide the token width %d at the %dx%d grid",
                  prefix, get("num_heads"), dim, width, width)
        if width > above and window > width:
            _fail("%swindow_size: %d is larger than the %dx%d token grid that grid_above %d makes windowed",
                  prefix, window, width, width, above)
    return r


def _validate_transgan_generator(g):
    from training import networks_transgan as transgan
    _check_geometry("", g("resolution"), g("ratio"))
    bottom = g("bottom_width")
    if not isinstance(bottom, int) or isinstance(bottom, bool) or bottom < 1 or bottom & (bottom - 1):
        _fail("bottom_width: %r is not a power of two >= 1", bottom)
    if bottom > g("resolution"):
        _fail("bottom_width: %d is wider than the image (resolution %d)", bottom, g("resolution"))
    _number("embed_dim", g("embed_dim"), low=1, integer=True)
    _number("latent_size", g("latent_size"), low=1, integer=True)
    _number("bicubic_stages", g("bicubic_stages"), low=0, integer=True)
    _number("latent_tokens", g("latent_tokens"), low=0, integer=True)
    _positive_ints("depths", g("depths"))    # Per stage; the count follows the resolution (transgan.stage_depths).
    plan = transgan.stage_plan(g("resolution"), bottom, g("embed_dim"), g("bicubic_stages"))
    shuffles = sum(up == "shuffle" for _w, _d, up in plan)
    if g("embed_dim") % 4 ** shuffles:
        _fail("embed_dim: %d is not divisible by 4^%d (one factor 4 per pixel shuffle up to resolution %d)",
              g("embed_dim"), shuffles, g("resolution"))
    _transgan_common(g, "", [w for w, _d, _u in plan], [d for _w, d, _u in plan])


def _validate_transgan_discriminator(d):
    r = _check_geometry("d_", d("resolution"), d("ratio"))
    patch = d("patch_size")
    if not isinstance(patch, int) or isinstance(patch, bool) or patch < 1 or patch & (patch - 1):
        _fail("d_patch_size: %r is not a power of two >= 1", patch)
    dims = _positive_ints("d_scale_dims", d("scale_dims"))
    depths = _positive_ints("d_depths", d("depths"))
    if len(depths) > len(dims):
        _fail("d_depths: %d entries for %d scales (d_scale_dims)", len(depths), len(dims))
    coarsest = patch * 2 ** (len(dims) - 1)
    if coarsest > 2 ** r:
        _fail("d_patch_size: the coarsest of %d scales cuts %dx%d patches, larger than the %dx%d image",
              len(dims), coarsest, coarsest, 2 ** r, 2 ** r)
    widths = [2 ** r // (patch * 2 ** s) for s in range(len(dims))]
    _transgan_common(d, "d_", widths, [sum(dims[:s + 1]) for s in range(len(dims))])


FAMILY_CHECKS = {"networks": (_validate_generator, _validate_discriminator),
                 "networks_transgan": (_validate_transgan_generator, _validate_transgan_discriminator)}


# ----------------------------------------------------------------------------
# Resolution: typed flags -> the complete, validated options of one run.

def preset_name(given):
    chosen = [k for k in PRESET_FLAGS if given.get(k) not in (None, False)]
    if len(chosen) > 1:
        _fail("--%s contradict each other; choose one preset", " and --".join(k.replace("_", "-") for k in chosen))
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
    if "mbstd_group_size" in d_options(PRESETS[opts.preset_name]["family"]):
        model.setdefault("d_mbstd_group_size", min(opts.batch_gpu, 4))   # GANsformer CLI: min(batch, 4)
    model.update(typed_model)
    if opts.resolution is not None:
        model["resolution"] = opts.resolution    # Checked here; the loop sets it from the data.
    model["ratio"] = opts.ratio
    validate(train=dict(opts, num_devices=len(opts.gpus)))
    if opts.d_reg == "gp" and opts.d_loss != "wgan":
        print("note: --d-reg gp is normally used with --d-loss wgan")
    if opts.pl_weight > 0 and "return_ws" not in g_options(family):
        _fail("--pl-weight %g: path-length regularization needs a generator with a mapping network (w); "
              "the %s preset has none", opts.pl_weight, opts.preset_name)
    gkw, dkw = resolve_model(opts.preset_name, **model)
    if "attn_scenes" in opts.metrics and not gkw.get("transformer"):   # else it fails at the first snapshot
        _fail("--metrics attn_scenes: the %s preset has no attention of latents over image regions (GANsformer "
              "presets have it)", opts.preset_name)
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
                G_loss_args=dict(loss=opts.g_loss, pl_weight=opts.pl_weight, augment=opts.augment),
                D_loss_args=dict(loss=opts.d_loss, reg=opts.d_reg, gamma=opts.gamma, augment=opts.augment),
                d_steps=opts.d_steps, clip_grad_norm=opts.clip_grad_norm,
                batch_size=opts.batch_size, batch_gpu=opts.batch_gpu, num_gpus=len(opts.gpus),
                device_type=device_type, device_ids=list(opts.gpus),
                total_kimg=opts.total_kimg, kimg_per_tick=opts.kimg_per_tick, snapshot_ticks=opts.snapshot_ticks,
                keep_snapshots=opts.keep_snapshots, G_lrate=opts.g_lr, D_lrate=opts.d_lr,
                beta1=opts.adam_beta1, beta2=opts.adam_beta2, epsilon=opts.adam_eps,
                G_reg_interval=opts.g_reg_interval, D_reg_interval=opts.d_reg_interval,
                G_smoothing_kimg=opts.ema_kimg, mirror_augment=opts.mirror_augment, metrics=list(opts.metrics),
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
