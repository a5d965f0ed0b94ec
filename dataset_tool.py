#!/usr/bin/env python
"""dataset_tool.py: convert image collections to multi-resolution TFRecords (StyleGAN2
format, REFERENCE.md §6), make the procedural scenes dataset, and inspect datasets.
`python dataset_tool.py <command> -h` for each command's options."""

import argparse
import sys

import dnnlib
from dnnlib.util import ArgumentParser, arg_number

_COUNT = arg_number(int, low=1)           # image counts, shards: >= 1
_SEED = arg_number(int, low=0, high=2 ** 32 - 1)   # numpy RandomState's range
_RES = arg_number(int, low=4)             # widths (power of two checked with the rest)


def _add_convert_options(p, resolution=None, ratio_mode="native"):
    g = p.add_argument_group("conversion options")
    g.add_argument("--resolution", type=_RES, default=resolution,
                   help="resize to this width (power of two); images are centre-cropped to the aspect first "
                        "(default: %s)" % (resolution or "keep the images' size"))
    g.add_argument("--ratio", type=arg_number(float, above=0, high=1), default=None,
                   help="height/width of the kept content, e.g. 0.5 for Cityscapes (centre crop; default 1)")
    g.add_argument("--ratio-mode", choices=["native", "pad"], default=ratio_mode,
                   help="native: true HxW records (H = ratio*W, rounded to a multiple of W/4); pad: padded black "
                        "squares as the official GANsformer (default: %(default)s)")
    g.add_argument("--channels", type=int, choices=[1, 3], default=None,
                   help="convert every image to 1 (gray) or 3 (RGB) channels (default: the first image's)")
    g.add_argument("--max-images", type=_COUNT, default=None, help="stop after this many images")
    g.add_argument("--shuffle", type=int, choices=[0, 1], default=None,
                   help="write in a RandomState(--seed) shuffled order (default 1 where the source allows)")
    g.add_argument("--seed", type=_SEED, default=123, help="shuffle seed (default: %(default)s)")
    g.add_argument("--shards", type=_COUNT, default=1, help="split each level round-robin into N files (default 1)")
    g.add_argument("--storage", choices=["raw", "compact"], default="raw",
                   help="raw: decoded uint8 at every level (StyleGAN2 format); compact: encoded PNG/JPEG at full "
                        "resolution only, decoded and downsampled by the reader (default: %(default)s)")
    g.add_argument("--ignore-errors", action="store_true", help="skip unusable images and report how many")
    g.add_argument("--overwrite", action="store_true", help="replace an existing output directory")


def _convert_opts(args, **overrides):
    from training.data.convert import ConvertOptions
    if args.resolution is not None and (args.resolution < 4 or args.resolution & (args.resolution - 1)):
        raise dnnlib.UserError("--resolution %d is not a power of two >= 4" % args.resolution)
    if args.ratio is not None and not 0 < args.ratio <= 1:
        raise dnnlib.UserError("--ratio %g must be in (0, 1] (height/width)" % args.ratio)
    if args.shards < 1 or (args.max_images is not None and args.max_images < 1):
        raise dnnlib.UserError("--shards and --max-images must be >= 1")
    opts = ConvertOptions(resolution=args.resolution, ratio=args.ratio, ratio_mode=args.ratio_mode,
                          channels=args.channels, max_images=args.max_images,
                          shuffle=None if args.shuffle is None else bool(args.shuffle), seed=args.seed,
                          ignore_errors=args.ignore_errors, storage=args.storage, shards=args.shards,
                          overwrite=args.overwrite)
    opts.update(overrides)
    return opts


def _check_output(args, inputs=()):
    """The dataset folder to write: checked before any input is read (nothing is made here)."""
    from training.data.writer import check_output_dataset
    check_output_dataset(args.tfrecord_dir, args.overwrite, inputs)


def cmd_convert(args):
    from training.data import sources as src
    from training.data.convert import convert
    opts = _convert_opts(args)
    c = args.command
    _check_output(args, [getattr(args, k) for k in ("image_dir", "layouts", "npy_filename", "labels",
                                                     "hdf5_filename", "lmdb_dir", "cifar_dir", "mnist_dir",
                                                     "celeba_dir")
                         if getattr(args, k, None)])
    if c == "create_from_images":
        source = src.FolderSource(args.image_dir, args.layouts)
    elif c == "create_from_npy":
        source = src.npy_source(args.npy_filename, args.labels)
    elif c == "create_from_hdf5":
        source = src.hdf5_source(args.hdf5_filename)
    elif c in ("create_lsun", "create_lsun_wide"):
        if c == "create_lsun_wide":
            opts.resolution, opts.ratio = args.width, args.height / args.width
        source = src.LmdbSource(args.lmdb_dir, opts.max_images)
    elif c in ("create_cifar10", "create_cifar100"):
        source = src.cifar_source(args.cifar_dir, fine=c == "create_cifar100")
    elif c == "create_mnist":
        source = src.mnist_source(args.mnist_dir)
    elif c == "create_celeba":
        source = src.CelebaSource(args.celeba_dir, args.cx, args.cy)
    else:
        raise AssertionError(c)
    convert(source, args.tfrecord_dir, opts, meta=dict(source=c))


def cmd_catalog(args):
    from training.data import catalog
    _check_output(args, [args.src] if args.src else [])
    catalog.prepare(args.command[len("create_"):], args.tfrecord_dir, args.src, args.download,
                            _convert_opts(args))


def cmd_scenes(args):
    from training.data.scenes import create_scenes
    if args.num_images < 1 or args.shards < 1:
        raise dnnlib.UserError("--num-images and --shards must be >= 1")
    if args.resolution < 4 or args.resolution & (args.resolution - 1):
        raise dnnlib.UserError("--resolution %d is not a power of two >= 4" % args.resolution)
    if not 0 <= args.min_objects <= args.max_objects <= 10:
        raise dnnlib.UserError("need 0 <= --min-objects <= --max-objects <= 10")
    _check_output(args)
    create_scenes(args.tfrecord_dir, num_images=args.num_images, resolution=args.resolution, seed=args.seed,
                  min_objects=args.min_objects, max_objects=args.max_objects, storage=args.storage,
                  shards=args.shards, overwrite=args.overwrite)


def cmd_inspect(args):
    from training.data import inspection as insp
    if args.command == "info":
        insp.info(args.tfrecord_dir)
    elif args.command == "display":
        gx, _, gy = args.grid.partition("x")
        if not (gx.isdigit() and gy.isdigit() and int(gx) >= 1 and int(gy) >= 1):
            raise dnnlib.UserError("--grid %s must look like 8x8 (columns x rows, each >= 1)" % args.grid)
        insp.check_image_path(args.out, "--out")
        insp.display(args.tfrecord_dir, args.out, (int(gx), int(gy)), args.show)
    elif args.command == "extract":
        insp.extract(args.tfrecord_dir, args.output_dir, args.resolution, args.max_images, args.overwrite)
    elif args.command == "compare":
        return 1 if insp.compare(args.tfrecord_dir_a, args.tfrecord_dir_b, args.ignore_labels) else 0


def build_parser():
    parser = ArgumentParser(prog="dataset_tool.py", description=__doc__, allow_abbrev=False,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="command")
    sub.required = True

    def add(name, help, func, *positionals, convert_opts=True, **convert_kw):
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("tfrecord_dir", help="output dataset directory (its name is the file prefix)")
        for pos, pos_help in positionals:
            p.add_argument(pos, help=pos_help)
        if convert_opts:
            _add_convert_options(p, **convert_kw)
        p.set_defaults(func=func)
        return p

    add("create_from_images", "from a folder tree of png/jpg/webp/bmp images (gray, RGB or RGBA)", cmd_convert,
        ("image_dir", "folder searched recursively")).add_argument(
        "--layouts", metavar="DIR", default=None,
        help="also store a layout per image from the label PNG of the same relative name in DIR (<name>.png, "
             "<name>_labelIds.png, Cityscapes <base>_gtFine_labelIds.png; single-channel: value = category, "
             "0 = background; RGB: COCO panoptic ids); see training/data/layouts.py")
    add("create_from_npy", "from a uint8 .npy array [N,H,W(,C)] or [N,C,H,W]", cmd_convert,
        ("npy_filename", "the .npy file")).add_argument("--labels", help="optional .npy labels [N,D] or class ids [N]")
    add("create_from_hdf5", "from an HDF5 file (StyleGAN2's data<R>x<R> [N,C,H,W]; needs h5py)", cmd_convert,
        ("hdf5_filename", "the .h5 file"))
    add("create_lsun", "from an LSUN lmdb folder (centre square crop; needs: pip install lmdb)", cmd_convert,
        ("lmdb_dir", "the *_lmdb folder"), resolution=256)
    p = add("create_lsun_wide", "from an LSUN lmdb folder, wide aspect (StyleGAN2 car: 512x384)", cmd_convert,
            ("lmdb_dir", "the *_lmdb folder"), ratio_mode="pad")
    p.add_argument("--width", type=_RES, default=512)
    p.add_argument("--height", type=_COUNT, default=384)
    add("create_cifar10", "from CIFAR-10 (python version folder or .tar.gz), one-hot labels", cmd_convert,
        ("cifar_dir", "cifar-10-batches-py folder or archive"))
    add("create_cifar100", "from CIFAR-100 (python version folder or .tar.gz), one-hot fine labels", cmd_convert,
        ("cifar_dir", "cifar-100-python folder or archive"))
    add("create_mnist", "from MNIST idx files (padded to 32x32), one-hot labels", cmd_convert,
        ("mnist_dir", "folder with train-images-idx3-ubyte(.gz) and train-labels-idx1-ubyte(.gz)"))
    p = add("create_celeba", "from CelebA img_align_celeba (128x128 crop)", cmd_convert,
            ("celeba_dir", "folder containing img_align_celeba/"))
    p.add_argument("--cx", type=arg_number(int, low=64), default=89)
    p.add_argument("--cy", type=arg_number(int, low=64), default=121)
    for key, what in [("clevr", "CLEVR (ratio 0.75)"), ("cityscapes", "Cityscapes (ratio 0.5)"),
                      ("ffhq", "FFHQ (the released ffhq-r08.tfrecords1of1 or a folder of images)"),
                      ("bedrooms", "LSUN Bedrooms (ratio 188/256; needs lmdb)")]:
        p = add("create_" + key, "catalog recipe: %s at 256 from the download (folder, archive or file)" % what,
                cmd_catalog)
        p.add_argument("src", nargs="?", help="downloaded folder/archive/file (with --download: cache folder)")
        p.add_argument("--download", action="store_true", help="download (MD5-checked, cached) first")
    p = add("create_scenes", "the embedded procedural multi-object scenes dataset (labels and layouts included)",
            cmd_scenes, convert_opts=False)
    p.add_argument("--num-images", type=_COUNT, default=20000)
    p.add_argument("--resolution", type=_RES, default=64)
    p.add_argument("--seed", type=_SEED, default=123)
    p.add_argument("--min-objects", type=arg_number(int, low=0), default=1)
    p.add_argument("--max-objects", type=arg_number(int, low=0), default=5)
    p.add_argument("--storage", choices=["raw", "compact"], default="raw")
    p.add_argument("--shards", type=_COUNT, default=1)
    p.add_argument("--overwrite", action="store_true")

    p = sub.add_parser("info", help="count, resolution, channels, labels, storage mode of a dataset")
    p.add_argument("tfrecord_dir")
    p.set_defaults(func=cmd_inspect)
    p = sub.add_parser("display", help="save (and optionally show) a grid of the first images (and of their "
                                       "layouts, as <out>_layouts.png)")
    p.add_argument("tfrecord_dir")
    p.add_argument("--out", default="dataset_grid.png", help="PNG to write (default: %(default)s)")
    p.add_argument("--grid", default="8x8", help="columns x rows (default: %(default)s)")
    p.add_argument("--show", action="store_true", help="also open it in an image viewer")
    p.set_defaults(func=cmd_inspect)
    p = sub.add_parser("extract", help="write every image as output_dir/img%%08d.png (and its layout as a "
                                       "coloured palette PNG layout%%08d.png)")
    p.add_argument("tfrecord_dir")
    p.add_argument("output_dir")
    p.add_argument("--resolution", type=_RES, default=None, help="level to extract (default: full)")
    p.add_argument("--max-images", type=_COUNT, default=None)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_inspect)
    p = sub.add_parser("compare", help="compare two datasets image by image (exit 1 when they differ)")
    p.add_argument("tfrecord_dir_a")
    p.add_argument("tfrecord_dir_b")
    p.add_argument("--ignore-labels", action="store_true", help="compare the images only (not labels or layouts)")
    p.set_defaults(func=cmd_inspect)
    return parser


def main(argv=None):
    """Exit code: 0 done (compare: identical), 1 bad input (one `error:` line) or datasets differ."""
    def parse_and_run():
        args = build_parser().parse_args(argv)
        command[0] = args.command
        return args.func(args)
    command = ["dataset_tool.py"]
    try:
        return dnnlib.util.run_cli(parse_and_run, prefix="error")
    except KeyboardInterrupt:
        print("dataset_tool %s: interrupted; no output was left behind" % command[0], file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
