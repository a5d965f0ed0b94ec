"""Train the semantic-matching segmenter of GANsformer2 (training/segmenter.py) on a dataset's layouts
and save it as a tflib.Network pickle (default metrics/data/scenes_segmenter.pkl).

    python scripts/train_segmenter.py --dataset-dir datasets/scenes --heldout-dir datasets/scenes_heldout
    python scripts/train_segmenter.py --dataset-dir DIR --resolutions 32,64 --steps 4000 --out seg.pkl

One network for several levels of the dataset (the reader's lods: images box-downsampled, layouts
majority-downsampled, as training sees them), since a job may train below the dataset's top size.
Targets: each pixel's category (its layout segment's category, 0 = background); loss: cross-entropy
(training.segmenter.semantic_matching_loss); augmentation: mirror. Reports mean IoU per level on
--heldout-dir (or the last --heldout-fraction of the dataset, then not trained on)."""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np
import tensorflow.compat.v1 as tf

import dnnlib
import dnnlib.tflib as tflib
from dnnlib.util import ArgumentParser, UserError, arg_number, run_cli
from training import segmenter


def load_levels(dataset_dir, resolutions, max_images=None, what="--dataset-dir"):
    """({resolution: (images uint8 [N,C,R,R], category maps uint8 [N,R,R])}, layout info) of a dataset
    with layouts, read with records.iter_images at each level."""
    from training.data import records
    files = records.DatasetFiles(dataset_dir)
    if not files.has_layouts:
        raise UserError("%s %s has no layouts; convert it with layouts (dataset_tool.py create_scenes, "
                        "create_from_images --layouts DIR)" % (what, dataset_dir))
    info = files.layout_info()
    levels = {}
    for res in resolutions:
        log2 = int(np.log2(res))
        if log2 not in files.available_log2():
            raise UserError("%s %s has no %dx%d level; available: %s" % (
                what, dataset_dir, res, res, ", ".join(str(2 ** l) for l in files.available_log2())))
        images, maps = [], []
        for img, (seg, cats) in records.iter_images(files, log2_res=log2, max_images=max_images, with_layouts=True):
            images.append(img)
            maps.append(np.concatenate([[0], cats]).astype(np.uint8)[seg])  # Slot index -> category.
        levels[res] = (np.stack(images), np.stack(maps))
    num_images = {len(v[0]) for v in levels.values()}
    if len(num_images) != 1:
        raise UserError("%s %s holds different image counts per level (%s); reconvert the dataset"
                        % (what, dataset_dir, sorted(num_images)))
    if "num_categories" not in info:
        info["num_categories"] = int(max(v[1].max() for v in levels.values())) + 1
    return levels, info


def to_float(images):
    return images.astype(np.float32) * (2 / 255) - 1  # uint8 -> [-1, 1], as G's outputs.


def evaluate(net, levels, num_categories, batch=200):
    """{resolution: {miou, pixel_acc, iou per category}} of net's predictions (one confusion matrix
    per level, accumulated over all images)."""
    out = {}
    for res, (images, maps) in sorted(levels.items()):
        conf = np.zeros([num_categories, num_categories], np.int64)
        for i in range(0, len(images), batch):
            logits = net.run(to_float(images[i:i + batch]), minibatch_size=batch)
            conf += segmenter.confusion(np.argmax(logits, axis=1), maps[i:i + batch], num_categories)
        out[res] = dict(miou=round(segmenter.mean_iou(conf), 4),
                        pixel_acc=round(float(np.trace(conf) / max(conf.sum(), 1)), 4),
                        iou=[round(float(v), 4) for v in segmenter.iou_per_category(conf)])
    return out


def train(args):
    """Train, evaluate and save; returns dict(losses [(step, loss)], heldout {resolution: metrics})."""
    resolutions = sorted(args.resolutions)
    levels, info = load_levels(args.dataset_dir, resolutions, args.max_images)
    num_categories = int(info["num_categories"])
    if args.heldout_dir:
        heldout, held_info = load_levels(args.heldout_dir, resolutions, what="--heldout-dir")
        if int(held_info["num_categories"]) > num_categories:
            raise UserError("--heldout-dir %s has %d categories, the dataset %d" % (
                args.heldout_dir, held_info["num_categories"], num_categories))
    else:
        n = len(next(iter(levels.values()))[0])
        held = int(round(n * args.heldout_fraction))
        if held < 1 or held >= n:
            raise UserError("--heldout-fraction %g of %d images leaves no held-out or no training images; "
                            "pass --heldout-dir" % (args.heldout_fraction, n))
        heldout = {r: (im[n - held:], mp[n - held:]) for r, (im, mp) in levels.items()}
        levels = {r: (im[:n - held], mp[:n - held]) for r, (im, mp) in levels.items()}
    num_train = len(next(iter(levels.values()))[0])
    print("Training on %d images at %s, %d categories; held out: %d images (%s)" % (
        num_train, ", ".join("%dx%d" % (r, r) for r in resolutions), num_categories,
        len(next(iter(heldout.values()))[0]), args.heldout_dir or "end of the dataset"), flush=True)

    tflib.init_tf({"rnd.np_random_seed": args.seed, "rnd.tf_random_seed": args.seed})
    channels = next(iter(levels.values()))[0].shape[1]
    net = tflib.Network("Segmenter", func_name=segmenter.Segmenter, num_channels=channels,
                        num_categories=num_categories, base_channels=args.base_channels,
                        max_channels=args.max_channels, depth=args.depth)
    images_in = tf.placeholder(tf.float32, [None, channels, None, None])
    maps_in = tf.placeholder(tf.int32, [None, None, None])
    logits = net.get_output_for(images_in)
    targets = tf.one_hot(maps_in, num_categories, axis=1, dtype=tf.float32)                   # [B,NC,H,W]
    loss = tf.reduce_mean(segmenter.semantic_matching_loss(logits, targets))
    lrate = tf.placeholder(tf.float32, [])
    train_op = tf.train.AdamOptimizer(lrate).minimize(loss, var_list=list(net.trainables.values()))
    tflib.init_uninitialized_vars()

    rnd = np.random.RandomState(args.seed)
    losses, start_time = [], time.time()
    for step in range(args.steps):
        images, maps = levels[resolutions[step % len(resolutions)]]  # Levels take turns.
        idx = rnd.randint(len(images), size=args.batch_size)
        batch, batch_maps = images[idx], maps[idx]
        flip = rnd.rand(len(idx)) < 0.5                               # Mirror: image and map together.
        batch[flip], batch_maps[flip] = batch[flip][..., ::-1], batch_maps[flip][..., ::-1]
        lr = args.lrate * min(1.0, 2 * (1 - step / args.steps))        # Linear decay over the second half.
        _, loss_value = tflib.run([train_op, loss], {images_in: to_float(batch), maps_in: batch_maps, lrate: lr})
        losses.append((step, float(loss_value)))
        if step % args.print_every == 0 or step == args.steps - 1:
            print("step %5d/%d  loss %.4f  %s" % (step, args.steps, loss_value,
                                                  dnnlib.util.format_time(time.time() - start_time)), flush=True)

    scores = evaluate(net, heldout, num_categories)
    for res, s in scores.items():
        print("held-out %dx%d: mean IoU %.4f  pixel accuracy %.4f  IoU per category %s" % (
            res, res, s["miou"], s["pixel_acc"], json.dumps(s["iou"])))
    dnnlib.util.atomic_write_pickle(net, args.out)
    print("Saved %s (%.2f MB) after %s" % (args.out, os.path.getsize(args.out) / 2 ** 20,
                                           dnnlib.util.format_time(time.time() - start_time)))
    return dict(losses=losses, heldout=scores)


def _resolution_list(text):
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or any(v < 4 or v & (v - 1) for v in values):
        raise argparse.ArgumentTypeError("%r: expected powers of two >= 4, comma-separated (e.g. 32,64)" % text)
    return sorted(set(values))


def build_parser():
    parser = ArgumentParser(prog="train_segmenter.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset-dir", required=True, help="A dataset with layouts (dataset_tool.py)")
    parser.add_argument("--heldout-dir", default=None, help="Held-out dataset with layouts (default: the end "
                        "of --dataset-dir)")
    parser.add_argument("--heldout-fraction", type=arg_number(float, above=0, below=1), default=0.05,
                        help="Held-out share of --dataset-dir without --heldout-dir (default 0.05)")
    parser.add_argument("--out", default=os.path.join("metrics", "data", "scenes_segmenter.pkl"))
    parser.add_argument("--resolutions", type=_resolution_list, default=[32, 64], metavar="R,R",
                        help="Levels to train on, powers of two (default 32,64)")
    parser.add_argument("--max-images", type=arg_number(int, low=1), default=None, help="Use the first n images")
    parser.add_argument("--steps", type=arg_number(int, low=1), default=4000)
    parser.add_argument("--batch-size", type=arg_number(int, low=1), default=32)
    parser.add_argument("--lrate", type=arg_number(float, above=0), default=2e-3)
    parser.add_argument("--base-channels", type=arg_number(int, low=1), default=16)
    parser.add_argument("--max-channels", type=arg_number(int, low=1), default=64)
    parser.add_argument("--depth", type=arg_number(int, low=1, high=8), default=3, help="U-Net down-samplings")
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--print-every", type=arg_number(int, low=1), default=200)
    return parser


def main(argv=None):
    parser = build_parser()

    def parse_and_train():
        args = parser.parse_args(argv)
        small = [r for r in args.resolutions if r % 2 ** args.depth]
        if small:
            raise UserError("--resolutions %s: each must be a multiple of 2^--depth = %d" % (
                ",".join(map(str, small)), 2 ** args.depth))
        dnnlib.util.check_output_file(args.out, "--out")
        train(args)
    return run_cli(parse_and_train)


if __name__ == "__main__":
    sys.exit(main())
