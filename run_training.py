"""Train the GANsformer or a baseline.

With no arguments this is the main job: it makes the embedded procedural scenes dataset
under datasets/ if it is missing, then trains a small GANsformer on it, sized so that a
2-core CPU shows multi-object scenes in results/<run>/fakes*.png within about 30 minutes.

    python run_training.py                                     # the main job
    python run_training.py --dataset clevr --resolution 256 --gansformer-default --gpus 0,1,2,3
    python run_training.py --baseline StyleGAN2 --total-kimg 200 --dry-run
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # Before TensorFlow loads: hide its info lines.

import dnnlib
import dnnlib.submission
from dnnlib.util import ArgumentParser, UserError, run_cli
from training import options
from training import snapshot

_EPILOG = """presets: --gansformer-default (the released GANsformer; the official spelling
--ganformer-default is accepted), --gansformer simplex|duplex,
--baseline GAN|StyleGAN2|kGAN|SAGAN|TransGAN|TransGAN-256, --gansformer2 execution (GANsformer2's
layout-to-image stage, on a dataset with layouts); flags you type override the preset.
recipes (training defaults per dataset, by its exact name or --recipe):
%s
Reruns continue the latest run of the same name (--restart starts a new one).""" % "\n".join(
    "  %-10s %s" % (name, ", ".join("%s=%s" % (k, v) for k, v in row.items() if v not in (None, {})))
    for name, row in options.RECIPES.items())

# ----------------------------------------------------------------------------
# Flag parsers, by the type names of training/options.py.


def _bool(text):
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError("expected a boolean (true/false), got %r" % text)


def _int_list(text, what):
    try:
        ids = [int(x) for x in str(text).split(",") if x.strip() != ""]
    except ValueError:
        raise argparse.ArgumentTypeError("expected a comma-separated list of %s, got %r" % (what, text))
    return ids


def _gpus(text):
    ids = _int_list(text, "device numbers such as 0,1")
    if not ids or len(set(ids)) != len(ids) or min(ids) < 0:
        raise argparse.ArgumentTypeError("expected distinct device numbers such as 0,1, got %r" % text)
    return ids


def _grid(text):
    cells = _int_list(text, "two counts such as 8,4")
    if len(cells) != 2 or min(cells) < 1:
        raise argparse.ArgumentTypeError("expected columns,rows such as 8,4, got %r" % text)
    return cells


def _literal(text):
    """A model option value: true/false, none, int, float, comma list of ints, or a string."""
    low = str(text).strip().lower()
    if low in ("true", "yes", "on", "false", "no", "off"):
        return low in ("true", "yes", "on")
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


PARSERS = dict(str=str, int=int, float=float, bool=_bool, gpus=_gpus, grid=_grid,
               list=lambda text: [x.strip() for x in str(text).split(",") if x.strip()])


def _show(value):
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "none"
    return "derived" if value is None else value


def _flag(name, typ, text, prefix=""):
    """(flags, argparse kwargs); every default is None so resolve() can tell typed flags."""
    kwargs = dict(type=typ, default=None, metavar="", help=text.replace("%", "%%"), dest=prefix + name)
    if typ is _bool:
        kwargs.update(nargs="?", const=True)
    return ["--" + (prefix + name).replace("_", "-")], kwargs


def build_parser():
    parser = ArgumentParser(prog="run_training.py", description=__doc__.split("\n\n")[0], epilog=_EPILOG,
                            formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    for name, typ, default, text in options.FLAGS:
        flags, kwargs = _flag(name, PARSERS[typ], "%s (default: %s)" % (text, _show(default)))
        parser.add_argument(*flags, **kwargs)
    recipe = options.recipe_defaults("default")
    for name, typ, text in options.RECIPE_FLAGS:
        flags, kwargs = _flag(name, PARSERS[typ], "%s (default: recipe; %s)" % (text, _show(recipe[name])))
        parser.add_argument(*flags, **kwargs)
    parser.add_argument("--gansformer-default", "--ganformer-default", dest="gansformer_default",
                        type=_bool, nargs="?", const=True, default=None,
                        help="The released GANsformer preset (the default model)")
    parser.add_argument("--gansformer", choices=options.GANSFORMER_PRESETS, default=None,
                        help="The paper's simplex or duplex GANsformer")
    parser.add_argument("--baseline", choices=options.BASELINE_PRESETS, default=None,
                        help="A baseline: " + ", ".join(options.BASELINE_PRESETS))
    parser.add_argument("--gansformer2", choices=sorted(options.GANSFORMER2_STAGES), default=None,
                        help="GANsformer2: execution = the layout-to-image stage (a dataset with layouts)")
    _add_model_flags(parser)
    return parser


def _add_model_flags(parser):
    """--<option> for G (and shared) options, --d-<option> for D's, over every model family;
    the help is the comment beside each default in the family's network file."""
    g_defaults, d_defaults, g_help, d_help = {}, {}, {}, {}
    for family in options.families():
        g_funcs, d_funcs = options.family_funcs(family)
        g_defaults = dict(options.model_defaults(g_funcs), **g_defaults)
        d_defaults = dict(options.model_defaults(d_funcs), **d_defaults)
        for func in g_funcs:
            g_help = dict(options.signature_comments(func), **g_help)
        d_help = dict(options.signature_comments(d_funcs[0]), **d_help)
    d_help = dict(g_help, **d_help)     # shared options keep G's text
    g_names, d_names = options.model_flag_names()
    for name in g_names:
        text = "G: %s (default: preset, else %r)" % (g_help.get(name, "model option"), g_defaults.get(name))
        flags, kwargs = _flag(name, _model_parser(g_defaults.get(name)), text)
        parser.add_argument(*flags, **kwargs)
    for name in d_names:
        text = "D: %s (default: preset, else %r)" % (d_help.get(name, "model option"), d_defaults.get(name))
        flags, kwargs = _flag(name, _model_parser(d_defaults.get(name)), text, "d_")
        parser.add_argument(*flags, **kwargs)


def _model_parser(default):
    """Options whose default is a list (resample_kernel, depths, ...) read "1" as [1]."""
    if isinstance(default, (list, tuple)):
        return lambda text: [_literal(x) for x in str(text).split(",") if x.strip()]
    return _literal


# ----------------------------------------------------------------------------
# The run.


def check_paths(opts):
    """The options that name files or runs: they must exist (after options.validate), and the
    folders written to must be folders in a writable place (nothing is made here)."""
    dnnlib.util.check_output_dir(opts.result_dir, "--result-dir")
    if os.path.exists(opts.data_dir) and not os.path.isdir(opts.data_dir):
        raise UserError("--data-dir %s is a file, not a folder of datasets" % opts.data_dir)
    if opts.dataset == options.EMBEDDED_DATASET:   # made there on first use
        dnnlib.util.check_output_dir(os.path.join(opts.data_dir, opts.dataset), "--data-dir")
    if opts.resume != "latest":
        if "restart" in opts.given and opts.restart:
            raise UserError("--resume %s and --restart contradict each other; pass one of them" % opts.resume)
        if not os.path.isdir(opts.resume):
            raise UserError("--resume %s: no such run directory (use 'latest' or a results/<NNNNN>-<name> folder)"
                            % opts.resume)
    if opts.pretrained_pkl and not (os.path.isfile(opts.pretrained_pkl) or "://" in opts.pretrained_pkl
                                    or opts.pretrained_pkl.startswith("gdrive:")):
        raise UserError("--pretrained-pkl %s: no such file" % opts.pretrained_pkl)
    # Local pickles: a damaged one is one line here, before the run directory exists.
    if opts.pretrained_pkl and os.path.isfile(opts.pretrained_pkl):
        dnnlib.util.check_pickle_file(opts.pretrained_pkl, "--pretrained-pkl")
    if opts.get("segmenter"):
        dnnlib.util.check_pickle_file(opts.segmenter, "--segmenter")


def ensure_dataset(opts):
    """Make the embedded scenes dataset if missing; other datasets must exist."""
    path = os.path.join(opts.data_dir, opts.dataset)
    if os.path.isdir(path) and any(".tfrecords" in n for n in os.listdir(path)):
        return
    if opts.dataset != options.EMBEDDED_DATASET:
        raise UserError("dataset %s not found; convert one with dataset_tool.py into %s, or point --data-dir "
                        "at its parent folder" % (path, path))
    from training.data.scenes import create_scenes
    spec = options.EMBEDDED_SCENES
    print("Making the embedded scenes dataset (%d images at %dx%d) in %s ..."
          % (spec["num_images"], spec["resolution"], spec["resolution"], path))
    create_scenes(path, **spec)


def device_setup(opts):
    """(device_type, tf_config): GPUs when TF sees enough of them, else virtual CPU devices."""
    import dnnlib.tflib as tflib
    num_gpus = len(tflib.list_gpus())
    if num_gpus:
        if max(opts.gpus) >= num_gpus:
            raise UserError("--gpus %s: only %d GPU(s) visible" % (",".join(map(str, opts.gpus)), num_gpus))
        return "gpu", {}
    if len(opts.gpus) > 1:
        print("No GPU visible: using %d virtual CPU devices (for testing multi-device code)." % len(opts.gpus))
    opts.gpus = list(range(len(opts.gpus)))
    return "cpu", {"device_count": {"CPU": len(opts.gpus)}}


def find_resume_pkl(opts):
    """(run_dir, network pickle) to continue from, or (None, None) for a new run."""
    run_dir = None if opts.restart else (opts.resume if opts.resume != "latest" else
                                         snapshot.find_latest_run(opts.result_dir, opts.run_desc))
    if run_dir is None:
        return None, None
    found = snapshot.latest_resumable(run_dir, log=print)
    if found is None:
        raise UserError("--resume %s: no network-snapshot-*.pkl with its training-state-*.pkl "
                        "there; pass --restart to start over" % run_dir)
    return run_dir, found[0]


def main(argv=None):
    def parse_and_run():
        args = build_parser().parse_args(argv)
        opts = options.resolve({k: v for k, v in vars(args).items() if v is not None})
        check_paths(opts)
        run(opts)
    return run_cli(parse_and_run)


def run(opts):
    """Print and save the resolved options, then train (or stop there with --dry-run)."""
    run_dir, resume_pkl = find_resume_pkl(opts)
    printable = dict(opts)
    print(json.dumps(printable, indent=2, sort_keys=True, default=str))
    if resume_pkl:
        print("Resuming %s from %s" % (run_dir, os.path.basename(resume_pkl)))
        if opts.pretrained_pkl:
            print("note: --pretrained-pkl only initializes a new run; pass --restart to start from it")
    else:
        print("Starting a new run %s/<NNNNN>-%s" % (opts.result_dir, opts.run_desc))
    if opts.dry_run:
        path = os.path.join(opts.result_dir, "%s-dry-run.json" % opts.run_desc)
        dnnlib.util.atomic_write(path, lambda f: json.dump(printable, f, indent=2, sort_keys=True, default=str),
                                 mode="w")
        print("Dry run: options saved to %s; nothing trained." % path)
        return

    ensure_dataset(opts)
    submit_config = dnnlib.submission.SubmitConfig(run_dir_root=opts.result_dir, run_desc=opts.run_desc,
                                                   run_dir=run_dir)
    device_type, tf_config = device_setup(opts)
    kwargs = options.loop_kwargs(opts, device_type, tf_config, resume_pkl)
    kwargs["options_to_save"] = printable
    dnnlib.submission.submit_run(submit_config, "training.training_loop.training_loop", **kwargs)


if __name__ == "__main__":
    sys.exit(main())
