"""Train the offline feature network of the scenes dataset (metrics/scene_features.py) on the
scene labels and save it as a tflib.Network pickle (default metrics/data/scenes_classifier.pkl).

    python scripts/train_scene_classifier.py                        # renders its own scenes
    python scripts/train_scene_classifier.py --dataset-dir datasets/scenes --steps 3000

Heads (sigmoid unless said): object count (softmax), colours present, shapes present,
colour-shape pairs present, object centres on a 4x4 grid. Scenes come from a dataset
directory written by `dataset_tool.py create_scenes` (images + labels) or are rendered with
a seed disjoint from the main job's (123), so held-out evaluation data stays unseen."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np
import tensorflow.compat.v1 as tf

import dnnlib
import dnnlib.tflib as tflib
from dnnlib.util import ArgumentParser, UserError, run_cli
from metrics import scene_features
from training import misc
from training.data import scenes

GRID = 4


def head_sizes(max_objects):
    s, p = len(scenes.SHAPES), len(scenes.PALETTE)
    return dict(count=max_objects + 1, colors=p, shapes=s, pairs=s * p, grid=GRID * GRID)


def label_targets(labels, max_objects):
    """Scene labels [N, label_size] -> (count index [N], multi-hot targets [N, colors+shapes+pairs+grid])."""
    s, p, m = len(scenes.SHAPES), len(scenes.PALETTE), max_objects
    labels = np.asarray(labels, np.float32)
    count = np.argmax(labels[:, :m + 1], axis=1)
    slots = labels[:, m + 1:].reshape(len(labels), m, s + p + 3)                   # [N, M, S+P+3]
    shape_oh, color_oh, geom = slots[..., :s], slots[..., s:s + p], slots[..., s + p:]
    present = shape_oh.sum(-1) > 0                                                 # [N, M]
    colors = color_oh.max(axis=1)
    shapes = shape_oh.max(axis=1)
    pairs = (shape_oh[..., :, None] * color_oh[..., None, :]).max(axis=1).reshape(len(labels), s * p)
    cell = np.clip((geom[..., :2] * GRID).astype(int), 0, GRID - 1)                 # [N, M, 2] (x, y)
    grid = np.zeros((len(labels), GRID * GRID), np.float32)
    rows, slot = np.nonzero(present)
    grid[rows, cell[rows, slot, 1] * GRID + cell[rows, slot, 0]] = 1
    return count, np.concatenate([colors, shapes, pairs, grid], axis=1).astype(np.float32)


def load_scenes(args):
    """(images uint8 [N,3,R,R], labels, max_objects) from --dataset-dir or freshly rendered."""
    if args.dataset_dir:
        from training.data import records
        files = records.DatasetFiles(args.dataset_dir)
        labels = files.load_labels()
        if labels is None or files.meta.get("source") != "scenes":
            raise UserError("--dataset-dir %s: not a scenes dataset with labels (make one with dataset_tool.py "
                            "create_scenes)" % args.dataset_dir)
        log2 = int(np.log2(args.resolution))
        if log2 not in files.available_log2():
            raise UserError("--dataset-dir %s has no %dx%d level" % (args.dataset_dir, args.resolution, args.resolution))
        n = min(args.num_images, len(labels))
        images = np.stack(list(records.iter_images(files, log2_res=log2, max_images=n)))
        return images, labels[:n], int(files.meta["max_objects"])
    images, labels = scenes.render_scenes(args.num_images, args.resolution, seed=[args.seed, 0])
    return images, labels, 5


def evaluate(net_logits, images_in, images, count, multi, sizes, batch=250):
    logits = np.concatenate([tflib.run(net_logits, {images_in: images[i:i + batch]})
                             for i in range(0, len(images), batch)])
    c = sizes["count"]
    acc = dict(count=float(np.mean(np.argmax(logits[:, :c], 1) == count)))
    start = c
    for key in ("colors", "shapes", "pairs", "grid"):
        part = logits[:, start:start + sizes[key]] > 0
        acc[key] = float(np.mean(np.all(part == (multi[:, start - c:start - c + sizes[key]] > 0.5), axis=1)))
        start += sizes[key]
    return acc


def train(args):
    images, labels, max_objects = load_scenes(args)
    count, multi = label_targets(labels, max_objects)
    held = max(len(images) // 20, 1)
    sizes = head_sizes(max_objects)
    num_outputs = sum(sizes.values())
    print("Training on %d scenes (%d held out) at %dx%d, %d outputs" % (len(images) - held, held, args.resolution,
                                                                        args.resolution, num_outputs))

    tflib.init_tf({"rnd.np_random_seed": args.seed, "rnd.tf_random_seed": args.seed})
    net = tflib.Network("SceneClassifier", func_name=scene_features.scenes_classifier, resolution=args.resolution,
                        num_outputs=num_outputs)
    images_in = tf.placeholder(tf.uint8, [None, 3, args.resolution, args.resolution])
    count_in = tf.placeholder(tf.int64, [None])
    multi_in = tf.placeholder(tf.float32, [None, num_outputs - sizes["count"]])
    logits = net.get_output_for(images_in, return_logits=True)
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=count_in,
                                                                         logits=logits[:, :sizes["count"]]))
    # Each multi-hot head weighs like the count head, whatever its width.
    start = sizes["count"]
    for key in ("colors", "shapes", "pairs", "grid"):
        part = slice(start, start + sizes[key])
        loss += tf.reduce_mean(tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(
            labels=multi_in[:, part.start - sizes["count"]:part.stop - sizes["count"]], logits=logits[:, part]), 1))
        start += sizes[key]
    lrate = tf.placeholder(tf.float32, [])
    train_op = tf.train.AdamOptimizer(lrate).minimize(loss, var_list=list(net.trainables.values()))
    tflib.init_uninitialized_vars()

    rnd = np.random.RandomState(args.seed)
    train_idx = np.arange(held, len(images))
    start_time = time.time()
    for step in range(args.steps):
        idx = rnd.choice(train_idx, args.batch_size)
        batch = images[idx]
        if rnd.rand() < 0.5:
            batch = batch[:, :, :, ::-1]  # Mirror: positions flip, so the grid targets must too.
            b_multi = multi[idx].copy()
            grid = b_multi[:, -GRID * GRID:].reshape(-1, GRID, GRID)[:, :, ::-1]
            b_multi[:, -GRID * GRID:] = grid.reshape(-1, GRID * GRID)
        else:
            b_multi = multi[idx]
        lr = args.lrate * min(1.0, 2 * (1 - step / args.steps))  # Linear decay over the second half.
        _, loss_value = tflib.run([train_op, loss], {images_in: batch, count_in: count[idx], multi_in: b_multi,
                                                     lrate: lr})
        if step % 200 == 0 or step == args.steps - 1:
            print("step %5d/%d  loss %.3f  %s" % (step, args.steps, loss_value,
                                                  dnnlib.util.format_time(time.time() - start_time)), flush=True)

    acc = evaluate(logits, images_in, images[:held], count[:held], multi[:held], sizes)
    print("held-out accuracy:", json.dumps(acc))
    misc.save_pkl(net, args.out)
    print("Saved %s (%.1f MB)" % (args.out, os.path.getsize(args.out) / 2 ** 20))
    return acc


def main(argv=None):
    parser = ArgumentParser(prog="train_scene_classifier.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join("metrics", "data", "scenes_classifier.pkl"))
    parser.add_argument("--dataset-dir", default=None, help="A create_scenes dataset (default: render scenes)")
    parser.add_argument("--num-images", type=int, default=20000, help="Scenes to train on (5%% held out)")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lrate", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=1000, help="Render / init seed (not the main job's 123)")

    def parse_and_train():
        args = parser.parse_args(argv)
        if args.num_images < 40 or args.steps < 1:
            raise UserError("--num-images must be >= 40 and --steps >= 1")
        train(args)
    return run_cli(parse_and_train)


if __name__ == "__main__":
    sys.exit(main())
