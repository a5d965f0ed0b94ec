"""Evaluate metrics (FID, IS, precision/recall, PPL, KID, the offline scene metrics) on a
network snapshot of ours or an official StyleGAN2 / GANsformer pickle.

    python run_metrics.py --network results/00000-scenes/network-snapshot-000100.pkl \\
        --metrics fid_scenes,pr_scenes --data-dir datasets --dataset scenes
    python run_metrics.py --network ffhq.pkl --metrics fid50k,pr50k3 --dataset ffhq --mirror-augment \\
        --metric-nets-dir /data/metric-nets      # offline: the feature pickles were placed there
"""

import argparse
import os
import sys

from dnnlib.util import ArgumentParser, UserError, arg_number, check_output_dir, run_cli

DEFAULT_DATA_DIR = "datasets"   # as run_training.py (training/options.py FLAGS)

_EPILOG = """metrics: %s
Feature networks: --metric-nets-dir DIR (or $DNNLIB_METRIC_NETS_DIR) holds inception_v3_features.pkl,
inception_v3_softmax.pkl, vgg16.pkl, vgg16_zhang_perceptual.pkl; otherwise they are downloaded once into
the dnnlib cache. fid_scenes / pr_scenes use the shipped metrics/data/scenes_classifier.pkl (no download)
and are NOT comparable to Inception-based numbers.
Results are appended to <result-dir>/metric-<name>.txt (default: the snapshot's directory)."""


def build_parser():
    from metrics.metric_defaults import metric_defaults
    parser = ArgumentParser(prog="run_metrics.py", description=__doc__.split("\n\n")[0],
                            epilog=_EPILOG % ", ".join(metric_defaults), formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    parser.add_argument("--network", required=True, help="Network pickle: path or URL (ours or official)")
    parser.add_argument("--metrics", default="fid50k", help="Comma-separated metric names (default: %(default)s)")
    parser.add_argument("--data-dir", default=None, help="Directory holding the datasets (default: %s, or the "
                        "run's own when --dataset is not given)" % DEFAULT_DATA_DIR)
    parser.add_argument("--dataset", default=None, help="Dataset (TFRecord directory) under --data-dir")
    parser.add_argument("--mirror-augment", action="store_true", help="Mirror real images at random")
    parser.add_argument("--gpus", type=arg_number(int, low=1), default=1,
                        help="Number of GPUs to use (default: %(default)s)")
    parser.add_argument("--num-images", type=arg_number(int, low=2), default=None,
                        help="Override each metric's image count")
    parser.add_argument("--truncation-psi", type=arg_number(float), default=None,
                        help="Truncation psi (default: none, the validation mode of the official metrics)")
    parser.add_argument("--ratio", type=arg_number(float, above=0, high=1), default=None,
                        help="Crop images to this height/width before measuring (default: the dataset's)")
    parser.add_argument("--result-dir", default=None, help="Where metric-<name>.txt goes")
    parser.add_argument("--metric-nets-dir", default=None, help="Local directory of the feature-network pickles")
    parser.add_argument("--cache-dir", default=None, help="Cache of real-image statistics "
                        "(default: $DNNLIB_CACHE_DIR/metrics or ~/.cache/dnnlib/metrics)")
    return parser


def run(args):
    from metrics import metric_base, metric_defaults  # Imported here so that --help stays fast.

    kwargs_list = metric_defaults.get_metric_kwargs(args.metrics, num_images=args.num_images)
    if args.gpus < 1:
        raise UserError("--gpus must be >= 1, got %d" % args.gpus)
    if "://" not in args.network and not os.path.isfile(args.network):
        raise UserError("--network %s: file not found" % args.network)
    dataset_args = {}
    if args.dataset is not None:
        args.data_dir = args.data_dir or DEFAULT_DATA_DIR
        full = os.path.join(args.data_dir, args.dataset)
        if not os.path.isdir(full):
            raise UserError("--dataset %s: directory %s not found (check --data-dir)" % (args.dataset, full))
        from training.data import records
        records.DatasetFiles(full)   # A damaged dataset: one line now, not after the fakes.
        dataset_args = dict(tfrecord_dir=args.dataset)
    elif args.data_dir is not None and not os.path.isdir(args.data_dir):
        raise UserError("--data-dir %s: no such folder" % args.data_dir)
    if args.metric_nets_dir is not None and not os.path.isdir(args.metric_nets_dir):
        raise UserError("--metric-nets-dir %s: no such folder" % args.metric_nets_dir)
    if args.cache_dir is not None:
        check_output_dir(args.cache_dir, "--cache-dir")
    if args.truncation_psi is None:
        Gs_kwargs = dict(is_validation=True)  # Official metrics: no truncation.
    else:
        Gs_kwargs = dict(truncation_psi=args.truncation_psi)
    result_dir = args.result_dir
    if result_dir is None and "://" not in args.network:
        result_dir = os.path.dirname(os.path.abspath(args.network))
    if result_dir is not None:
        check_output_dir(result_dir, "--result-dir")   # Before the work; made when the result is written.

    print("Evaluating %s on %s" % (", ".join(k.name for k in kwargs_list), args.network))
    metric_base.evaluate_metrics(args.metrics, args.network, num_images=args.num_images, run_dir=result_dir,
                                 data_dir=args.data_dir, dataset_args=dataset_args,
                                 mirror_augment=args.mirror_augment, num_gpus=args.gpus, Gs_kwargs=Gs_kwargs,
                                 ratio=args.ratio, cache_dir=args.cache_dir, nets_dir=args.metric_nets_dir,
                                 verbose=True)


def main(argv=None):
    return run_cli(lambda: run(build_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
