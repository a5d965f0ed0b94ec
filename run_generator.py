"""Generate images, attention maps, interpolations, style mixing and noise variation from a
network pickle (ours, or an official GANsformer / StyleGAN2 one).

Examples:
  python run_generator.py generate-images --network results/00000-scenes/network-final.pkl --seeds 0-31 --grid
  python run_generator.py attention-maps --network net.pkl --seeds 1,5,9 --blending-alpha 0.3
  python run_generator.py interpolate --network net.pkl --seeds 1,2,3 --space w --component 4 --density 12
  python run_generator.py style-mixing-example --network net.pkl --row-seeds 1-3 --col-seeds 10-13 --col-styles 0-6
  python run_generator.py noise-variation --network net.pkl --seeds 7 --num-samples 16
  python run_generator.py layout-to-image --network gansformer2.pkl --layouts datasets/scenes_heldout --count 8 --seeds 0-3
  python run_generator.py restyle --network gansformer2.pkl --layouts labels/ --index 2 --segment 1 --seeds 5 --new-seeds 6-9
"""

import argparse
import os
import sys

from dnnlib.util import ArgumentParser, UserError, arg_number, check_output_dir, run_cli


def parse_int_list(text, what="--seeds"):
    """'0-3,7,10-11' -> [0, 1, 2, 3, 7, 10, 11] (ranges inclusive, order kept)."""
    values = []
    for part in str(text).split(","):
        part = part.strip()
        try:
            if "-" in part[1:]:
                lo, hi = part.split("-", 1) if not part.startswith("-") else (None, None)
                lo, hi = int(lo), int(hi)
                if hi < lo:
                    raise UserError("%s: range '%s' runs backwards; write it as %d-%d" % (what, part, hi, lo))
                values.extend(range(lo, hi + 1))
            else:
                values.append(int(part))
        except (TypeError, ValueError):
            raise UserError("%s: '%s' is not a number or a range like 0-99 (in '%s')" % (what, part, text))
    if any(v < 0 for v in values):
        raise UserError("%s: negative values are not allowed (in '%s')" % (what, text))
    return values


def parse_seeds(text):
    seeds = parse_int_list(text, "--seeds")
    if any(seed >= 2 ** 32 for seed in seeds):
        raise UserError("--seeds: seeds must be below 2^32 (in '%s')" % text)
    return seeds


def _common(parser, seeds=True):
    parser.add_argument("--network", required=True, help="network pickle: path or URL")
    if seeds:
        parser.add_argument("--seeds", required=True, help="seeds: a list with ranges, e.g. 0-99,200")
    parser.add_argument("--truncation-psi", type=arg_number(float), default=0.7,
                        help="truncation psi (default 0.7; 1 = off)")
    parser.add_argument("--outdir", default="out", help="output folder (default: out)")
    parser.add_argument("--batch-size", type=arg_number(int, low=1), default=8, help="images per minibatch (default 8)")
    parser.add_argument("--class", dest="class_idx", type=arg_number(int, low=0), default=None,
                        help="class of a conditional network")
    parser.add_argument("--ratio", type=arg_number(float, above=0, high=1), default=1.0,
                        help="height/width to crop the saved images to, for non-square models (default 1)")


def build_parser():
    parser = ArgumentParser(prog="run_generator.py", description=__doc__, allow_abbrev=False,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("generate-images", help="one image per seed (seed%%04d.png)")
    _common(p)
    p.add_argument("--grid", action="store_true", help="also write grid.png with all images")

    p = sub.add_parser("attention-maps", help="attention of each pixel over the latents (GANsformer); for "
                       "TransGAN, where 4 query pixels look in each block's window self-attention")
    _common(p)
    p.add_argument("--blending-alpha", type=arg_number(float, low=0, high=1), default=0.3, help="weight of the image in the blends (0.3)")
    p.add_argument("--last-layer-only", action="store_true", help="skip the per-layer and per-head maps")

    p = sub.add_parser("interpolate", help="frames between consecutive seeds, in z or w")
    _common(p)
    p.add_argument("--space", choices=["z", "w"], default="z", help="interpolate z (slerp) or w (lerp)")
    p.add_argument("--component", type=arg_number(int, low=0), default=None,
                   help="interpolate only this latent component")
    p.add_argument("--density", type=arg_number(int, low=2), default=8, help="frames per pair of seeds (default 8)")

    p = sub.add_parser("style-mixing-example", help="rows x columns of style mixing")
    _common(p, seeds=False)
    p.add_argument("--row-seeds", required=True, help="seeds of the rows, e.g. 1-3")
    p.add_argument("--col-seeds", required=True, help="seeds of the columns, e.g. 10-13")
    p.add_argument("--col-styles", default="0-6", help="layers taken from the column seeds (default 0-6)")

    p = sub.add_parser("noise-variation", help="the same latents with different noise")
    _common(p)
    p.add_argument("--num-samples", type=arg_number(int, low=2), default=16, help="noise draws per seed (default 16)")

    p = sub.add_parser("layout-to-image", help="images from layouts (GANsformer2 execution networks)")
    _common(p)
    _layout_source(p)
    p.add_argument("--count", type=arg_number(int, low=1), default=8, help="layouts to render (default 8)")

    p = sub.add_parser("restyle", help="one segment's latent changed, the rest kept (GANsformer2)")
    _common(p)
    _layout_source(p)
    p.add_argument("--index", type=arg_number(int, low=0), default=0, help="which layout of --layouts (default 0)")
    p.add_argument("--segment", type=arg_number(int, low=0), required=True, help="segment to restyle (0 = background)")
    p.add_argument("--new-seeds", required=True, help="seeds of the segment's new latent, e.g. 10-13")
    return parser


def _layout_source(parser):
    parser.add_argument("--layouts", required=True, help="a dataset folder with layouts (dataset_tool.py) or a "
                                                         "folder of label PNGs (as create_from_images --layouts)")


def run(args):
    from training import generation  # Imports TensorFlow: keep `-h` fast.
    import dnnlib.tflib as tflib
    from training import misc

    if args.batch_size < 1:
        raise UserError("--batch-size: must be at least 1, not %d" % args.batch_size)
    if not 0 < args.ratio <= 1:
        raise UserError("--ratio: %r must be in (0, 1] (height / width of the saved images)" % args.ratio)
    seeds = parse_seeds(args.seeds) if getattr(args, "seeds", None) is not None else None
    if args.command == "style-mixing-example":
        row_seeds = parse_int_list(args.row_seeds, "--row-seeds")
        col_seeds = parse_int_list(args.col_seeds, "--col-seeds")
        col_styles = parse_int_list(args.col_styles, "--col-styles")
    new_seeds = parse_int_list(args.new_seeds, "--new-seeds") if args.command == "restyle" else None
    if args.command == "restyle" and len(seeds) != 1:
        raise UserError("restyle: --seeds takes one seed (the latents kept), not %d" % len(seeds))
    if args.command == "interpolate" and len(seeds) < 2:
        raise UserError("interpolate: --seeds needs at least two seeds (e.g. 1,2 or 1-4)")
    if not (args.network.startswith(("http://", "https://", "file://")) or os.path.isfile(args.network)):
        raise UserError("--network: no such file '%s'" % args.network)
    check_output_dir(args.outdir, "--outdir")

    tflib.init_tf()
    _G, _D, Gs = misc.load_network_pkl(args.network)
    view = generation.GeneratorView(Gs, batch_size=args.batch_size)
    view.labels(1, args.class_idx)   # --class fits the network, before any folder is made
    layout_commands = ("layout-to-image", "restyle")
    if bool(view.layout_slots) != (args.command in layout_commands):
        raise UserError("%s: this network %s" % (args.command, "renders layouts: use layout-to-image or restyle"
                                                 if view.layout_slots else "takes no layouts (only GANsformer2 "
                                                 "execution networks do); try generate-images"))
    if args.command in layout_commands:
        run_layout_command(args, view, seeds, new_seeds)
        print("Wrote %s" % os.path.abspath(args.outdir))
        return
    common = dict(truncation_psi=args.truncation_psi, class_idx=args.class_idx, ratio=args.ratio)
    if args.command == "generate-images":
        generation.generate_images(view, seeds, args.outdir, grid=args.grid, **common)
    elif args.command == "attention-maps":
        generation.attention_maps(view, seeds, args.outdir, blending_alpha=args.blending_alpha,
                                  all_layers=not args.last_layer_only, **common)
    elif args.command == "interpolate":
        generation.interpolate(view, seeds, args.outdir, space=args.space, component=args.component,
                               density=args.density, **common)
    elif args.command == "style-mixing-example":
        generation.style_mixing_example(view, row_seeds, col_seeds, col_styles, args.outdir, **common)
    elif args.command == "noise-variation":
        generation.noise_variation(view, seeds, args.outdir, num_samples=args.num_samples, **common)
    print("Wrote %s" % os.path.abspath(args.outdir))


def run_layout_command(args, view, seeds, new_seeds):
    """layout-to-image or restyle (GANsformer2): every layout is read and checked against the network
    before any folder is made."""
    from training import layout_generation
    limit = args.count if args.command == "layout-to-image" else args.index + 1
    layouts = layout_generation.read_layouts(args.layouts, view.Gs.output_shape[-1], limit)
    layout_generation.network_inputs(view, layouts)
    if args.command == "layout-to-image":
        layout_generation.layout_to_image(view, layouts, seeds, args.outdir, args.truncation_psi)
    elif args.index >= len(layouts):
        raise UserError("--index %d: --layouts %s has %d layouts" % (args.index, args.layouts, len(layouts)))
    else:
        layout_generation.restyle(view, layouts[args.index], seeds[0], args.segment, new_seeds, args.outdir,
                                  args.truncation_psi)


def main(argv=None):
    """Exit code: 0 done, 1 bad input (one `error:` line on stderr)."""
    return run_cli(lambda: run(build_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
