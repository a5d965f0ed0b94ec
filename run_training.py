"""Train the GANsformer or a baseline.

With no arguments this is the main job: it makes the embedded procedural scenes dataset
under datasets/ if it is missing, then trains a small GANsformer on it, sized so that a
2-core CPU shows multi-object scenes in results/<run>/fakes*.png within about 30 minutes.

    python run_training.py                                     # the main job
    python run_training.py --dataset clevr --resolution 256 --ganformer-default --gpus 0,1,2,3
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
from training import snapshot
from training import train_options

_EPILOG = """presets: --ganformer-default (the released GANsformer), --gansformer simplex|duplex,
--baseline GAN|StyleGAN2|kGAN|SAGAN; flags you type override the preset.
Reruns continue the latest run of the same name (--restart starts a new one)."""


def build_parser():
    parser = ArgumentParser(prog="run_training.py", description=__doc__.split("\n\n")[0], epilog=_EPILOG,
                            formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    for spec in train_options.cli_specs():
        parser.add_argument(*spec.flags, **spec.kwargs)
    return parser


def main(argv=None):
    def parse_and_run():
        args = build_parser().parse_args(argv)
        run(train_options.resolve({k: v for k, v in vars(args).items() if v is not None}))
    return run_cli(parse_and_run)


def run(opts):
    """Print and save the resolved options, then train (or stop there with --dry-run)."""
    run_dir = None
    if not opts.restart:
        run_dir = opts.resume_dir or snapshot.find_latest_run(opts.result_dir, opts.run_desc)
    resume_pkl = None
    if run_dir is not None:
        found = snapshot.latest_resumable(run_dir)
        if found is None:
            raise UserError("--resume %s: no network-snapshot-*.pkl with its training-state-*.pkl "
                            "there; pass --restart to start over" % run_dir)
        resume_pkl = found[0]

    print(json.dumps(train_options.printable(opts), indent=2, sort_keys=True))
    if resume_pkl:
        print("Resuming %s from %s" % (run_dir, os.path.basename(resume_pkl)))
        if opts.pretrained_pkl:
            print("note: --pretrained-pkl only initializes a new run; pass --restart to start from it")
    else:
        print("Starting a new run %s/<NNNNN>-%s" % (opts.result_dir, opts.run_desc))
    if opts.dry_run:
        os.makedirs(opts.result_dir, exist_ok=True)
        path = os.path.join(opts.result_dir, "%s-dry-run.json" % opts.run_desc)
        train_options.save_json(train_options.printable(opts), path)
        print("Dry run: options saved to %s; nothing trained." % path)
        return

    train_options.ensure_dataset(opts)
    submit_config = dnnlib.submission.SubmitConfig(run_dir_root=opts.result_dir, run_desc=opts.run_desc,
                                                   run_dir=run_dir)
    kwargs = train_options.loop_kwargs(opts, resume_pkl)
    kwargs["options_to_save"] = train_options.printable(opts)
    dnnlib.submission.submit_run(submit_config, "training.training_loop.training_loop", **kwargs)


if __name__ == "__main__":
    sys.exit(main())
