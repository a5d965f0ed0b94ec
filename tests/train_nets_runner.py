"""Helpers for the training tests: a tiny single-colour dataset and a subprocess entry point
that trains the stand-in networks of train_nets_tiny.py, resuming from the run directory's
latest snapshot exactly as run_training.py does.

    python tests/train_nets_runner.py <run_dir> <dataset_dir> <total_kimg> [g_lr]
"""

import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLOR = (200, 60, 20)


def make_color_dataset(path, num=256, res=8, color=COLOR):
    """num images of one flat colour (a tiny dataset whose statistics are known)."""
    from training.data.writer import DatasetWriter
    images = np.zeros([num, 3, res, res], np.uint8)
    images[:] = np.array(color, np.uint8)[None, :, None, None]
    with DatasetWriter(path) as writer:
        writer.add_images(images)
    return path


def loop_kwargs(dataset_dir, total_kimg, g_lr=0.002, **overrides):
    from training import options
    kwargs = options.default_loop_kwargs(
        G_args=dict(func_name="tests.train_nets_tiny.G_tiny"), D_args=dict(func_name="tests.train_nets_tiny.D_tiny"),
        dataset_args=dict(tfrecord_dir=dataset_dir, shuffle_mb=1, prefetch_mb=1),
        G_loss_args=dict(loss="logistic_ns", pl_weight=0.0), D_loss_args=dict(loss="logistic", reg="r1", gamma=1.0),
        batch_size=16, batch_gpu=8, num_gpus=1, device_ids=[0], device_type="cpu", total_kimg=total_kimg,
        kimg_per_tick=1, snapshot_ticks=1, keep_snapshots=3, G_lrate=g_lr, D_lrate=0.002, grid_size=(4, 2),
        tf_config={"rnd.np_random_seed": 1})
    kwargs.update(overrides)
    return kwargs


def main(argv):
    from training import snapshot
    from training.training_loop import training_loop
    run_dir, dataset_dir, total_kimg = argv[0], argv[1], float(argv[2])
    g_lr = float(argv[3]) if len(argv) > 3 else 0.002
    found = snapshot.latest_resumable(run_dir)
    training_loop(run_dir=run_dir, resume=found[0] if found else None, **loop_kwargs(dataset_dir, total_kimg, g_lr))


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, REPO)
    from dnnlib.util import UserError
    try:
        main(sys.argv[1:])
    except UserError as err:
        print("error: %s" % err)
        sys.exit(1)
