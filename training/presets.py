"""Network presets: one table of option sets (same keys in every row) and `resolve()`, which
turns a preset plus overrides into the static kwargs of training.networks.Generator and
Discriminator, checking every key against their signatures before any graph is built.

Option names: an unprefixed name is a G option (Generator, G_mapping or G_synthesis kwarg) and,
when it is one of D_SHARED (image geometry, latent sizes, heads, positions), also a D option;
`g_<x>` is G's <x> (for names that exist in both: g_architecture, g_img2img, ...); `d_<x>` is
D's <x> (d_architecture, d_transformer, d_start_res, ...) and wins over a shared value; an
option D alone has (mbstd_group_size) may go unprefixed.
"""

import inspect

import dnnlib
from training import networks

# REFERENCE §1.9: `ganformer` is the official --ganformer-default (non-CLEVR datasets); simplex is
# --transformer alone; duplex adds kmeans centroids and the bottom-up img2ltnt update.
_COLUMNS = ("transformer", "components_num", "latent_size", "num_heads", "kmeans", "iterative", "img2ltnt",
            "use_pos", "integration", "norm", "mapping_resnet", "mapping_ltnt2ltnt", "style", "latent_stem",
            "g_architecture", "g_img2img", "kgan", "merge_layer", "merge_type", "d_architecture", "d_transformer")
_ROWS = {
    #             trans  k   latent heads kmeans iter  i2l    pos    integ  norm     mres   ml2l   style  lstem  g_arch    img2img kgan   merge mtype      d_arch    d_trans
    "ganformer": (True,  16, 512,   1,    True,  False, False, True,  "mul", "layer", True,  True,  True,  False, "resnet", 0,      False, -1,   "sum",     "resnet", False),
    "simplex":   (True,  16, 512,   1,    False, False, False, False, "add", None,    False, False, True,  False, "resnet", 0,      False, -1,   "sum",     "resnet", False),
    "duplex":    (True,  16, 512,   1,    True,  False, True,  True,  "mul", "layer", False, False, True,  False, "resnet", 0,      False, -1,   "sum",     "resnet", False),
    "GAN":       (False, 1,  512,   1,    False, False, False, False, "add", None,    False, False, False, True,  "skip",   0,      False, -1,   "sum",     "resnet", False),
    "StyleGAN2": (False, 1,  512,   1,    False, False, False, False, "add", None,    False, False, True,  False, "skip",   0,      False, -1,   "sum",     "resnet", False),
    "kGAN":      (False, 8,  512,   1,    False, False, False, False, "add", None,    False, False, True,  False, "skip",   0,      True,  5,    "softmax", "resnet", False),
    "SAGAN":     (False, 1,  512,   1,    False, False, False, False, "add", None,    False, False, False, True,  "skip",   5,      False, -1,   "sum",     "resnet", False),
}
PRESETS = {name: dict(zip(_COLUMNS, row)) for name, row in _ROWS.items()}
assert all(len(row) == len(_COLUMNS) for row in _ROWS.values())

# Unprefixed options that D shares with G.
D_SHARED = ("resolution", "ratio", "num_channels", "c_dim", "channel_base", "channel_max", "resample_kernel",
            "components_num", "latent_size", "num_heads", "attention_dropout", "use_pos", "pos_dim", "pos_type",
            "pos_init", "pos_directions_num")


def _params(func):
    return [n for n, p in inspect.signature(func).parameters.items()
            if p.default is not p.empty and n not in ("is_template_graph", "components", "is_training")]


def g_options():
    return [n for n in networks.generator_option_names() if n != "is_training"]


def d_options():
    return _params(networks.Discriminator)


def describe_presets():
    """One line per preset: its name and the options that differ from StyleGAN2's row."""
    base = PRESETS["StyleGAN2"]
    return "\n".join("%-10s %s" % (name, ", ".join("%s=%s" % (k, v) for k, v in row.items() if v != base[k]) or "-")
                     for name, row in PRESETS.items())


def _route(options):
    """Split flat options into (G kwargs, D kwargs); unknown or doubled names raise UserError."""
    gnames, dnames = set(g_options()), set(d_options())
    gkw, dkw, shared = {}, {}, {}
    for key, value in options.items():
        if key.startswith("d_") and key[2:] in dnames:
            dkw[key[2:]] = value
        elif key.startswith("g_") and key[2:] in gnames:
            if key[2:] in options:
                raise dnnlib.util.UserError("options %r and %r name the same G option: give one" % (key, key[2:]))
            gkw[key[2:]] = value
        elif key in gnames:
            gkw[key] = value
            if key in D_SHARED and key in dnames:
                shared[key] = value
        elif key in dnames:
            dkw[key] = value
        else:
            valid = sorted(gnames | set("d_" + n for n in dnames) | set(_COLUMNS))
            raise dnnlib.util.UserError("unknown network option %r; valid options: %s" % (key, ", ".join(valid)))
    return gkw, dict(shared, **dkw)     # d_-prefixed values win over shared ones


def _default(name, funcs):
    for f in funcs:
        params = inspect.signature(f).parameters
        if name in params:
            return params[name].default
    raise KeyError(name)


def _check(gkw, dkw):
    """Contradictions between options, as one-line UserErrors naming the options."""
    err = dnnlib.util.UserError
    g = lambda n: gkw[n] if n in gkw else _default(n, (networks.Generator, networks.G_synthesis, networks.G_mapping))
    d = lambda n: dkw[n] if n in dkw else _default(n, (networks.Discriminator,))
    res, k, latent = g("resolution"), g("components_num"), g("latent_size")
    if not isinstance(res, int) or res < 4 or res & (res - 1):
        raise err("resolution: %r is not a power of two >= 4" % (res,))
    r = res.bit_length() - 1
    h0 = 4.0 * g("ratio")
    if h0 < 1 or abs(h0 - round(h0)) > 1e-6:
        raise err("ratio: %r must make 4 * ratio a positive integer (0.25, 0.5, 0.75, 1, ...)" % g("ratio"))
    if k < 1 or latent % k:
        raise err("latent_size: %d is not divisible by components_num %d" % (latent, k))
    if not g("transformer"):
        for name in ("kmeans", "img2ltnt", "ltnt2ltnt", "mapping_ltnt2ltnt", "ltnt_gate", "img_gate", "iterative"):
            if g(name):
                raise err("%s: needs transformer=True (it works on the region latents)" % name)
        if k > 1 and not g("kgan"):
            raise err("components_num: %d latents need transformer=True or kgan=True" % k)
    elif g("kgan"):
        raise err("kgan: k-GAN and transformer cannot be combined")
    if g("mapping_shared_dim") and g("mapping_ltnt2ltnt"):
        raise err("mapping_shared_dim: maps the latents jointly, so mapping_ltnt2ltnt has no separate latents to attend over")
    if (g("mapping_shared_dim") or 0) < 0:
        raise err("mapping_shared_dim: %r must be 0 (off) or a positive width" % g("mapping_shared_dim"))
    if g("iterative") and not g("kmeans"):
        raise err("iterative: needs kmeans=True")
    for name, value in (("integration", g("integration")), ("norm", g("norm")), ("merge_type", g("merge_type")),
                        ("noise_mode", g("noise_mode")), ("g_architecture", g("architecture")),
                        ("d_architecture", d("architecture")), ("pos_type", g("pos_type"))):
        allowed = dict(integration=networks.INTEGRATIONS, norm=networks.NORMS, merge_type=networks.MERGE_TYPES,
                       noise_mode=networks.NOISE_MODES, pos_type=networks.POS_TYPES).get(name, networks.ARCHITECTURES)
        if value not in allowed:
            raise err("%s: %r is not one of %s" % (name, value, ", ".join(map(str, allowed))))
    if g("img2img") and not 2 <= g("img2img") <= r:
        raise err("g_img2img: log2 width %d is outside 2..%d for resolution %d" % (g("img2img"), r, res))
    if d("img2img") and not 3 <= d("img2img") <= r:
        raise err("d_img2img: log2 width %d is outside 3..%d for resolution %d" % (d("img2img"), r, res))
    heads = g("num_heads")
    w_dim = latent // k
    if g("mapping_ltnt2ltnt") and (g("mapping_dim") or w_dim) % heads:
        raise err("num_heads: %d does not divide the latent width %d (mapping_ltnt2ltnt)" % (heads, w_dim))
    if g("transformer"):
        for rr in range(max(g("start_res"), 2), min(g("end_res"), r + 1)):
            c = networks.channels(rr, g("channel_base"), g("channel_max"))
            if c % heads:
                raise err("num_heads: %d does not divide %d channels at %dx%d" % (heads, c, 2 ** rr, 2 ** rr))
    if d("transformer"):
        if d("latent_size") % d("components_num") or (d("latent_size") // d("components_num")) % d("num_heads"):
            raise err("d_latent_size: %d must split into d_components_num %d aggregators divisible by num_heads %d"
                      % (d("latent_size"), d("components_num"), d("num_heads")))
    elif d("ltnt2ltnt"):
        raise err("d_ltnt2ltnt: needs d_transformer=True")


def resolve(preset, **overrides):
    """(G_kwargs, D_kwargs) for a preset name and option overrides (see the module docstring).

    Raises dnnlib.util.UserError for an unknown preset, an unknown option or a contradiction."""
    if preset not in PRESETS:
        raise dnnlib.util.UserError("unknown preset %r; choose one of %s" % (preset, ", ".join(PRESETS)))
    options = dict(PRESETS[preset])
    options.update(overrides)
    gkw, dkw = _route(options)
    _check(gkw, dkw)
    return gkw, dkw
