"""The checks of training/options.py: introspection of the build functions (option names,
defaults, the comments beside them) and validate(), the one validator of option combinations
that the CLI, resolve_model(), the build functions and the training loop all call. Pure: no
files, no TF graph; errors are UserErrors naming the option as the command line spells it."""

import importlib
import inspect
import math
import os

from dnnlib.util import UserError
from training import networks

# Families whose Generator routes options to sub-networks (others: Generator alone).
FAMILY_G_FUNCS = {"networks": ("Generator", "G_synthesis", "G_mapping")}

# ----------------------------------------------------------------------------
# Introspection of the build functions: option names, defaults and their comments.

# Sub-network options the Generator derives itself (not settable by the user).
G_DERIVED = ("num_latents", "z_dim", "w_dim", "c_dim", "num_broadcast", "global_latent", "transformer")
_NOT_OPTIONS = ("is_template_graph", "components")
# Unprefixed options that D shares with G.
D_SHARED = ("resolution", "ratio", "num_channels", "c_dim", "channel_base", "channel_max", "resample_kernel",
            "components_num", "latent_size", "num_heads", "attention_dropout", "use_pos", "pos_dim", "pos_type",
            "pos_init", "pos_directions_num", "mlp_ratio", "window_size", "grid_above", "rel_pos",
            "max_segments", "num_categories")


def _keywords(func):
    """{name: default} of a build function's keyword parameters."""
    return {n: p.default for n, p in inspect.signature(func).parameters.items()
            if p.kind == p.POSITIONAL_OR_KEYWORD and p.default is not p.empty and n not in _NOT_OPTIONS}


def family_funcs(family="networks"):
    """(G build functions, D build functions) of a model family: the first of each is the one
    built, the others receive the options it routes to them."""
    try:
        module = importlib.import_module("training." + family)
    except ImportError as error:
        raise UserError("model family %r: cannot import training/%s.py (%s)" % (family, family, error)) from None
    g_names = FAMILY_G_FUNCS.get(family, ("Generator",))
    return tuple(getattr(module, n) for n in g_names), (module.Discriminator,)


def takes_layouts(family="networks"):
    """Whether the family's networks take a scene layout (GANsformer2: inputs layout_in and
    segments_in after the labels); the loop then reads the dataset's layouts."""
    g_func = family_funcs(family)[0][0]
    return "layout_in" in inspect.signature(g_func).parameters


def family_of(func_name):
    """training.<family>.Generator -> <family> (the network module of a build-function name)."""
    parts = func_name.split(".") if isinstance(func_name, str) else []
    return parts[1] if len(parts) == 3 and parts[0] == "training" else "networks"


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
    if train is not None and G is not None:
        _validate_training_with_model(train, G, family)


def _validate_training_with_model(train, G, family):
    """Training options that need something of the model (named by train's preset_name if given)."""
    model = train.get("preset_name", family)
    if train.get("pl_weight", 0) > 0 and "return_ws" not in g_options(family):
        _fail("--pl-weight %g: path-length regularization needs a generator with a mapping network (w); "
              "the %s preset has none", train["pl_weight"], model)
    if "attn_scenes" in train.get("metrics", ()) and not G.get("transformer"):   # else it fails at a snapshot
        _fail("--metrics attn_scenes: the %s preset has no attention of latents over image regions (GANsformer "
              "presets have it)", model)
    _validate_layout_training(train, model, takes_layouts(family))


def _validate_layout_training(train, model, layouts):
    """GANsformer2's losses need a layout model; its layouts must stay aligned with the images."""
    segmenter, semantic = train.get("segmenter"), train.get("semantic_weight", 0)
    if not layouts:
        if segmenter or semantic:
            _fail("--%s: semantic matching needs a layout-to-image model (--gansformer2 execution); the %s "
                  "preset has none", "segmenter" if segmenter else "semantic-weight", model)
        return
    from training import augment
    spatial = [op for op, _ in augment.parse_policy(train.get("augment") or "") if op in ("translation", "cutout")]
    if spatial:
        _fail("--augment %s: %s would move the image off its layout; only color keeps them aligned",
              train["augment"], " and ".join(spatial))
    if semantic and not segmenter:
        _fail("--semantic-weight %g: needs --segmenter PKL (scripts/train_segmenter.py)", semantic)
    if segmenter and not os.path.isfile(segmenter):
        _fail("--segmenter %s: no such file", segmenter)


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
    for key in ("gamma", "ema_kimg", "ema_rampup", "pl_weight", "adam_beta1", "adam_eps", "clip_grad_norm",
                "segment_weight", "semantic_weight"):
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


def _gansformer2_common(get, prefix):
    """Checks G and D of GANsformer2 share: square power-of-two images, segment slots, categories."""
    r = _check_geometry(prefix, get("resolution"), get("ratio"))
    if get("ratio") != 1:
        _fail("%sratio: %r; GANsformer2 builds square images only (ratio 1)", prefix, get("ratio"))
    _number("max_segments", get("max_segments"), low=1, integer=True)
    if get("max_segments") > 255:
        _fail("max_segments: %d is above 255 (segment maps are stored as uint8)", get("max_segments"))
    _number("num_categories", get("num_categories"), low=2, integer=True)
    return r


def _validate_gansformer2_generator(g):
    r = _gansformer2_common(g, "")
    for name in ("latent_size", "mapping_num_layers", "end_res"):
        _number(name, g(name), low=1, integer=True)
    _number("start_res", g("start_res"), low=0, integer=True)
    _check_choices([("integration", g("integration"), networks.INTEGRATIONS), ("norm", g("norm"), networks.NORMS),
                    ("noise_mode", g("noise_mode"), networks.NOISE_MODES)])
    if not any(g("start_res") <= rr < g("end_res") for rr in range(2, r + 1)):
        _fail("end_res: %d with start_res %d leaves no layout attention among log2 widths 2..%d (resolution %d), "
              "so G would ignore the layout", g("end_res"), g("start_res"), r, g("resolution"))


def _validate_gansformer2_discriminator(d):
    r = _gansformer2_common(d, "d_")
    _number("d_segment_res", d("segment_res"), low=2, integer=True)
    if d("segment_res") > r:
        _fail("d_segment_res: %d is outside 2..%d (log2 widths of D's feature levels at resolution %d)",
              d("segment_res"), r, d("resolution"))
    _number("d_mbstd_group_size", d("mbstd_group_size"), low=0, integer=True)
    c4 = networks.channels(2, d("channel_base"), d("channel_max"))
    if c4 % d("mbstd_num_channels"):
        _fail("d_mbstd_num_channels: %d does not divide the %d channels at 4x4", d("mbstd_num_channels"), c4)


FAMILY_CHECKS = {"networks": (_validate_generator, _validate_discriminator),
                 "networks_transgan": (_validate_transgan_generator, _validate_transgan_discriminator),
                 "networks_gansformer2": (_validate_gansformer2_generator, _validate_gansformer2_discriminator)}
