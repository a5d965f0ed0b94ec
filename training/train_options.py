"""run_training.py's options: one table of training flags (each default written once), the
model presets from training/presets.py, validation, the run name, and the translation into
training_loop() arguments. Kept apart from the CLI so tests and bench scripts reuse it."""

import argparse
import inspect
import json
import os
import re

from dnnlib.util import EasyDict, UserError

EMBEDDED_DATASET = "scenes"

# The main job: applied when training on the embedded scenes dataset, for each option not
# typed. Sized for a 2-core CPU (sec/kimg measured in the report of issue 5): 32x32,
# narrow channels, 8 region latents + the global one.
MAIN_JOB = dict(resolution=32, batch_size=16, batch_gpu=16, total_kimg=40, kimg_per_tick=1,
                snapshot_ticks=4, gamma=1.0, ema_kimg=2.5, scenes_images=20000, scenes_resolution=64,
                model=dict(channel_base=2048, channel_max=64, components_num=8, latent_size=128,
                           mapping_ltnt2ltnt=False))


def _str2bool(text):
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError("expected a boolean (true/false), got %r" % text)


def _gpu_list(text):
    try:
        ids = [int(x) for x in str(text).split(",") if x.strip() != ""]
    except ValueError:
        raise argparse.ArgumentTypeError("expected a comma-separated list of device numbers such as 0,1, got %r" % text)
    if not ids or len(set(ids)) != len(ids) or min(ids) < 0:
        raise argparse.ArgumentTypeError("expected distinct device numbers such as 0,1, got %r" % text)
    return ids


def _metric_list(text):
    return [x.strip() for x in str(text).split(",") if x.strip()]


# (flag, type, default, help). A default of None means "derived" (see resolve()).
TRAIN_FLAGS = [
    ("--data-dir", str, "datasets", "Folder holding the datasets"),
    ("--dataset", str, EMBEDDED_DATASET, "Dataset folder name under --data-dir (default: the embedded scenes, "
                                         "made on first use; it selects the CPU-sized main job)"),
    ("--resolution", int, None, "Training resolution (default: the dataset's largest; main job 32)"),
    ("--ratio", float, 1.0, "Height/width of the images (e.g. 0.5 for Cityscapes)"),
    ("--mirror-augment", _str2bool, False, "Flip reals horizontally with probability 1/2"),
    ("--gpus", _gpu_list, [0], "Comma-separated devices, one tower each (CPU-only: virtual CPU devices)"),
    ("--batch-size", int, 32, "Global minibatch size"),
    ("--batch-gpu", int, 4, "Per-device batch; gradient accumulation fills the rest of --batch-size"),
    ("--total-kimg", float, 25000.0, "Training length in thousands of real images shown"),
    ("--kimg-per-tick", float, 8.0, "Progress line every this many kimg"),
    ("--ema-kimg", float, 10.0, "Half-life of the Gs moving average in kimg"),
    ("--gamma", float, None, "R1/R2/GP weight (default 10; --ganformer-default picks per dataset)"),
    ("--g-lr", float, 0.002, "Generator learning rate"),
    ("--d-lr", float, 0.002, "Discriminator learning rate"),
    ("--g-loss", str, "logistic_ns", "G loss: logistic_ns, logistic, hinge, wgan"),
    ("--d-loss", str, "logistic", "D loss: logistic, hinge, wgan"),
    ("--d-reg", str, "r1", "D regularizer: r1 (lazy, every 16 steps), r2, gp, none"),
    ("--pl-weight", float, 0.0, "Path-length regularization weight for G (0 = off; StyleGAN2 uses 2)"),
    ("--metrics", _metric_list, [], "Comma-separated metrics at each snapshot (e.g. fid50k,fid_scenes)"),
    ("--result-dir", str, "results", "Root of the run directories"),
    ("--snapshot-ticks", int, 3, "Snapshot (network, fakes, attention, metrics) every this many ticks"),
    ("--keep-snapshots", int, 10, "Keep the last N network snapshots (0 = all)"),
    ("--resume", str, "latest", "latest (continue the newest run of the same name), or a run directory"),
    ("--restart", _str2bool, False, "Start a new run even if one of the same name can be resumed"),
    ("--pretrained-pkl", str, None, "Initialize G, D, Gs from a network pickle (ours or official), by name"),
    ("--seed", int, 1000, "Random seed"),
    ("--dry-run", _str2bool, False, "Print and save the resolved options, then stop"),
]
RUN_MANAGEMENT = {"data_dir", "result_dir", "resume", "restart", "dry_run", "metrics", "snapshot_ticks",
                  "keep_snapshots", "total_kimg", "kimg_per_tick", "gpus", "batch_gpu"}
LOSS_CHOICES = dict(g_loss=("logistic_ns", "logistic", "hinge", "wgan"), d_loss=("logistic", "hinge", "wgan"),
                    d_reg=("r1", "r2", "gp", "none"))


def _dest(flag):
    return flag.lstrip("-").replace("-", "_")


PRESET_FLAGS = ("ganformer_default", "gansformer", "baseline")
GANSFORMER_CHOICES = ("simplex", "duplex")
BASELINE_CHOICES = ("GAN", "StyleGAN2", "kGAN", "SAGAN")
# Network options set from the dataset or at run time, never from the command line.
MODEL_EXCLUDED = {"resolution", "ratio", "num_channels", "c_dim", "is_validation", "return_ws", "take_ws"}
# --ganformer-default per dataset (REFERENCE §1.9), for options not typed.
GANFORMER_DATASET_DEFAULTS = {
    "clevr": dict(model=dict(components_num=8, latent_size=128, mapping_ltnt2ltnt=False, style=False), gamma=40.0),
    "cityscapes": dict(model={}, gamma=20.0, mirror_augment=True),
    "ffhq": dict(model={}, gamma=10.0, mirror_augment=True),
    "bedrooms": dict(model={}, gamma=100.0),
}


def _literal(text):
    """A model option value: true/false, none, int, float, comma list of ints, or a string."""
    low = str(text).strip().lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if "," in text:
        try:
            return [int(x) for x in text.split(",")]
        except ValueError:
            pass
    return text


def model_option_names():
    """(G option names, D option names) settable on the command line: G's as --<name>
    (shared ones such as --channel-base also reach D), D's as --d-<name>."""
    from training import presets
    g = [n for n in presets.g_options() if n not in MODEL_EXCLUDED]
    d = [n for n in presets.d_options() if n not in MODEL_EXCLUDED]
    return g, d


def cli_specs():
    """argparse specs: the training flags, the presets and every model option. All
    defaults are None here so resolve() can tell typed options from defaults."""
    from training import networks
    specs = []
    for flag, typ, default, text in TRAIN_FLAGS:
        kwargs = dict(type=typ, default=None, help="%s (default: %s)" % (text, _show(default)), metavar="")
        if typ is _str2bool:
            kwargs.update(nargs="?", const=True)
        specs.append(EasyDict(flags=[flag], kwargs=kwargs))
    specs.append(EasyDict(flags=["--ganformer-default"], kwargs=dict(
        type=_str2bool, nargs="?", const=True, default=None,
        help="The released GANsformer preset (default model), with per-dataset gamma/latents/mirroring")))
    specs.append(EasyDict(flags=["--gansformer"], kwargs=dict(
        choices=GANSFORMER_CHOICES, default=None, help="The paper's simplex or duplex GANsformer")))
    specs.append(EasyDict(flags=["--baseline"], kwargs=dict(
        choices=BASELINE_CHOICES, default=None, help="A baseline: " + ", ".join(BASELINE_CHOICES))))
    g_names, d_names = model_option_names()
    defaults, g_help = {}, {}
    for func in (networks.G_mapping, networks.G_synthesis, networks.Generator):
        defaults.update({n: p.default for n, p in inspect.signature(func).parameters.items()})
        g_help.update(_signature_comments(func))
    for name in g_names:
        specs.append(EasyDict(flags=["--" + name.replace("_", "-")], kwargs=dict(
            type=_literal, default=None, metavar="", dest=name,
            help="G: %s (default: preset, else %r)" % (g_help.get(name, "model option"), defaults.get(name)))))
    d_defaults = {n: p.default for n, p in inspect.signature(networks.Discriminator).parameters.items()}
    d_help = dict(g_help, **_signature_comments(networks.Discriminator))   # shared options keep G's text
    for name in d_names:
        specs.append(EasyDict(flags=["--d-" + name.replace("_", "-")], kwargs=dict(
            type=_literal, default=None, metavar="", dest="d_" + name,
            help="D: %s (default: preset, else %r)" % (d_help.get(name, "model option"), d_defaults.get(name)))))
    return specs


def _signature_comments(func):
    """{option: its trailing comment} from a build function's signature, so -h explains each
    model option in the words written beside its default (one place to keep them)."""
    head = inspect.getsource(func).split('"""', 1)[0]
    found = {}
    for line in head.splitlines():
        match = re.match(r"\s*(?:def \w+\()?(?:.*,\s*)?(\w+)=[^#]*#\s*(.+)$", line)
        if match:
            found[match.group(1)] = match.group(2).strip().rstrip(".").replace("%", "%%")
    return found


def _show(value):
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "none"
    return "derived" if value is None else value


def preset_name(given):
    chosen = [k for k in PRESET_FLAGS if given.get(k) not in (None, False)]
    if len(chosen) > 1:
        raise UserError("--%s contradict each other; choose one preset"
                        % " and --".join(k.replace("_", "-") for k in chosen))
    if "gansformer" in given:
        return given["gansformer"]
    if "baseline" in given:
        return given["baseline"]
    return "ganformer"


def resolve(given):
    """Options from {dest: value typed}: training defaults, the main-job profile when on the
    embedded dataset, the model preset, then the typed values; UserError on conflicts."""
    from training import presets
    opts = EasyDict({_dest(f): d for f, _t, d, _h in TRAIN_FLAGS})
    train_keys = set(opts)
    typed_train = {k: v for k, v in given.items() if k in train_keys}
    typed_model = {k: v for k, v in given.items() if k not in train_keys and k not in PRESET_FLAGS}
    opts.update(typed_train)
    opts.given = sorted(given)
    opts.preset_name = preset_name(given)

    main_job = opts.dataset == EMBEDDED_DATASET
    model = {}
    if main_job:
        for key in ("resolution", "batch_size", "batch_gpu", "total_kimg", "kimg_per_tick", "snapshot_ticks", "gamma",
                    "ema_kimg"):
            if key not in typed_train:
                opts[key] = MAIN_JOB[key]
        model.update(MAIN_JOB["model"] if opts.preset_name == "ganformer" else
                     {k: v for k, v in MAIN_JOB["model"].items() if k.startswith("channel")})
    elif opts.preset_name == "ganformer":
        for key, extra in GANFORMER_DATASET_DEFAULTS.items():
            if key in opts.dataset.lower():
                model.update(extra["model"])
                for name in ("gamma", "mirror_augment"):
                    if name in extra and name not in typed_train:
                        opts[name] = extra[name]
    opts.main_job = main_job
    if opts.gamma is None:
        opts.gamma = 10.0

    # Model: preset + profile + typed options, validated against the build functions.
    model.update(typed_model)
    if "d_mbstd_group_size" not in model:
        model["d_mbstd_group_size"] = min(opts.batch_gpu, 4)   # GANformer CLI: min(batch, 4)
    if opts.resolution is not None:
        model["resolution"] = opts.resolution    # Checked here; the loop sets it from the data.
    model["ratio"] = opts.ratio
    gkw, dkw = presets.resolve(opts.preset_name, **model)
    gkw.pop("resolution", None)
    dkw.pop("resolution", None)
    opts.G_args = dict(func_name="training.networks.Generator", **gkw)
    opts.D_args = dict(func_name="training.networks.Discriminator", **dkw)

    _validate(opts, typed_train)
    opts.run_desc = run_desc(opts, given)
    opts.resume_dir = None
    if opts.resume != "latest":
        if "restart" in typed_train and opts.restart:
            raise UserError("--resume %s and --restart contradict each other; pass one of them" % opts.resume)
        if not os.path.isdir(opts.resume):
            raise UserError("--resume %s: no such run directory (use 'latest' or a results/<NNNNN>-<name> folder)"
                            % opts.resume)
        opts.resume_dir = opts.resume
    return opts


def _validate(opts, typed):
    for key, choices in LOSS_CHOICES.items():
        if opts[key] not in choices:
            raise UserError("--%s %s: unknown; choose one of %s" % (key.replace("_", "-"), opts[key], ", ".join(choices)))
    res = opts.resolution
    if res is not None and (res < 4 or res & (res - 1)):
        raise UserError("--resolution %d: must be a power of two >= 4" % res)
    for key in ("batch_size", "batch_gpu", "snapshot_ticks"):
        if opts[key] < 1:
            raise UserError("--%s %d: must be >= 1" % (key.replace("_", "-"), opts[key]))
    if opts.total_kimg <= 0 or opts.kimg_per_tick <= 0:
        raise UserError("--total-kimg and --kimg-per-tick must be > 0")
    if opts.keep_snapshots < 0:
        raise UserError("--keep-snapshots %d: must be >= 0 (0 keeps all)" % opts.keep_snapshots)
    num_dev = len(opts.gpus)
    if opts.batch_gpu * num_dev > opts.batch_size or opts.batch_size % (opts.batch_gpu * num_dev):
        raise UserError("--batch-size %d must be a multiple of --batch-gpu %d x %d device(s)"
                        % (opts.batch_size, opts.batch_gpu, num_dev))
    if not 0 < opts.ratio <= 1:
        raise UserError("--ratio %s: must be in (0, 1]" % opts.ratio)
    if opts.d_reg == "gp" and opts.d_loss != "wgan":
        print("note: --d-reg gp is normally used with --d-loss wgan")
    if opts.pretrained_pkl and not (os.path.isfile(opts.pretrained_pkl) or "://" in opts.pretrained_pkl
                                    or opts.pretrained_pkl.startswith("gdrive:")):
        raise UserError("--pretrained-pkl %s: no such file" % opts.pretrained_pkl)
    if opts.metrics:
        known = _known_metrics()
        unknown = [m for m in opts.metrics if known is not None and m not in known]
        if unknown:
            raise UserError("--metrics: unknown %s; known: %s" % (", ".join(unknown), ", ".join(sorted(known))))


def _known_metrics():
    try:
        from metrics import metric_defaults
    except ImportError:
        return None
    return set(metric_defaults.metric_defaults)


def run_desc(opts, given):
    """<preset>-<dataset>-<res>[-<typed option><value>...]: reruns of one command share it."""
    parts = [opts.preset_name, os.path.basename(os.path.normpath(opts.dataset)), str(opts.resolution or "auto")]
    for key in sorted(given):
        if key in RUN_MANAGEMENT or key in ("dataset", "resolution", "seed") or key in PRESET_FLAGS:
            continue
        value = given[key]
        value = ",".join(map(str, value)) if isinstance(value, list) else value
        parts.append("%s%s" % (key.replace("_", ""), value))
    desc = "-".join(str(p) for p in parts)
    return "".join(c if c.isalnum() or c in "._+-" else "_" for c in desc)[:120]


def printable(opts):
    return {k: v for k, v in opts.items()}


def save_json(obj, path):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True, default=str)
    os.replace(tmp, path)


def dataset_dir(opts):
    return os.path.join(opts.data_dir, opts.dataset)


def ensure_dataset(opts):
    """Make the embedded scenes dataset if missing; other datasets must exist."""
    path = dataset_dir(opts)
    if os.path.isdir(path) and any(n.endswith(".tfrecords") or ".tfrecords" in n for n in os.listdir(path)):
        return
    if opts.dataset != EMBEDDED_DATASET:
        raise UserError("dataset %s not found; convert one with dataset_tool.py into %s, or point --data-dir "
                        "at its parent folder" % (path, path))
    from training.scenes import create_scenes
    print("Making the embedded scenes dataset (%d images at %dx%d) in %s ..."
          % (MAIN_JOB["scenes_images"], MAIN_JOB["scenes_resolution"], MAIN_JOB["scenes_resolution"], path))
    create_scenes(path, num_images=MAIN_JOB["scenes_images"], resolution=MAIN_JOB["scenes_resolution"], seed=123)


def device_setup(opts):
    """(device_type, tf_config): GPUs when TF sees enough of them, else virtual CPU devices."""
    import tensorflow.compat.v1 as tf
    gpus = tf.config.experimental.list_physical_devices("GPU")
    num = len(opts.gpus)
    if gpus:
        if max(opts.gpus) >= len(gpus):
            raise UserError("--gpus %s: only %d GPU(s) visible" % (",".join(map(str, opts.gpus)), len(gpus)))
        return "gpu", {}
    if num > 1:
        print("No GPU visible: using %d virtual CPU devices (for testing multi-device code)." % num)
    opts.gpus = list(range(num))
    return "cpu", {"device_count": {"CPU": num}}


def loop_kwargs(opts, resume_pkl):
    """training_loop() keyword arguments from resolved options."""
    device_type, tf_config = device_setup(opts)
    tf_config = dict(tf_config, **{"rnd.np_random_seed": opts.seed})
    dataset_args = dict(tfrecord_dir=dataset_dir(opts), resolution=opts.resolution)
    if opts.main_job:
        # The reader's default 2 GB prefetch buffer would fill RAM and steal a CPU core here.
        dataset_args.update(shuffle_mb=64, prefetch_mb=16)
    if opts.ratio != 1.0:
        dataset_args["ratio"] = opts.ratio
    g_loss_args = dict(loss=opts.g_loss, pl_weight=opts.pl_weight)
    d_loss_args = dict(loss=opts.d_loss, reg=opts.d_reg, gamma=opts.gamma)
    return dict(G_args=dict(opts.G_args), D_args=dict(opts.D_args), dataset_args=dataset_args,
                G_loss_args=g_loss_args, D_loss_args=d_loss_args, batch_size=opts.batch_size,
                batch_gpu=opts.batch_gpu, num_gpus=len(opts.gpus), device_type=device_type, device_ids=list(opts.gpus),
                total_kimg=opts.total_kimg, kimg_per_tick=opts.kimg_per_tick,
                snapshot_ticks=opts.snapshot_ticks, keep_snapshots=opts.keep_snapshots,
                G_lrate=opts.g_lr, D_lrate=opts.d_lr, G_smoothing_kimg=opts.ema_kimg, mirror_augment=opts.mirror_augment,
                metrics=list(opts.metrics), resume=resume_pkl, pretrained_pkl=opts.pretrained_pkl,
                seed=opts.seed, tf_config=tf_config)
