"""Fuzz pass over the readers (issue 12; not in CI): random byte flips and truncations of valid
PNG / JPEG / npy / TFRecord / label / dataset.json / network-pickle files, each fed to the
reader that a tool uses. Every outcome is one of
  clean   a dnnlib.UserError (what the tools print as one line and exit 1 on),
  loaded  read without complaint (a flip in pixel data or padding is harmless),
  crashed any other exception (a traceback for the user): the target is zero.
Prints JSON: counts per reader and, for crashes, the first few exception kinds.

    python bench/fuzz.py [--trials 200] [--seed 0] [--smoke]
"""

import argparse
import io
import json
import os
import pickle
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import dnnlib  # noqa: E402  (after the path)


def mutate(data, rnd):
    """A damaged copy: 1-8 random byte flips, a truncation, or both."""
    data = bytearray(data)
    kind = rnd.randint(3)
    if kind in (0, 2):
        for _ in range(rnd.randint(1, 9)):
            if data:
                data[rnd.randint(len(data))] = rnd.randint(256)
    if kind in (1, 2) and len(data) > 1:
        data = data[:rnd.randint(len(data))]
    return bytes(data)


def make_valid(root):
    """{reader name: (path of a valid file, reader(path))}."""
    import PIL.Image
    import dnnlib.tflib as tflib
    from training import misc
    from training.data import records, sources
    from training.data.writer import DatasetWriter

    rnd = np.random.RandomState(0)
    img = rnd.randint(0, 256, (16, 16, 3), dtype=np.uint8)
    files = {}
    for fmt in ("png", "jpeg"):
        path = os.path.join(root, "valid.%s" % fmt)
        PIL.Image.fromarray(img).save(path, format=fmt.upper())
        files[fmt] = (path, lambda p: sources.open_pil(p, p))
    path = os.path.join(root, "valid.npy")
    np.save(path, rnd.randint(0, 256, (4, 16, 16, 3), dtype=np.uint8))

    def read_npy(p):
        src = sources.npy_source(p)
        return [load() for _name, load, _label in src.items(range(src.count))]
    files["npy"] = (path, read_npy)
    path = os.path.join(root, "labels.npy")
    np.save(path, rnd.rand(4, 3).astype(np.float32))
    files["labels_npy"] = (path, lambda p: records.load_label_array(p, "fix it"))

    for storage in ("raw", "compact"):
        ds = os.path.join(root, "ds_" + storage)
        with DatasetWriter(ds, storage=storage, progress_every=0) as writer:
            writer.add_images(rnd.randint(0, 256, (4, 3, 16, 16), dtype=np.uint8))
        top = os.path.join(ds, "ds_%s-r04.tfrecords" % storage)

        def read_dataset(p, ds=ds):
            files_obj = records.DatasetFiles(ds)
            files_obj.check_files()
            return list(records.iter_images(files_obj))
        files["tfrecords_" + storage] = (top, read_dataset)
    files["dataset_json"] = (os.path.join(root, "ds_raw", "dataset.json"),
                             lambda p: records.DatasetFiles(os.path.dirname(p)).meta)

    tflib.init_tf()
    # A tiny network pickle of ours: three copies of the tests' known-maps generator.
    net = tflib.Network("G", func_name="tests.generation_nets.G_known_maps", resolution=8)
    pkl = os.path.join(root, "network.pkl")
    with open(pkl, "wb") as f:
        pickle.dump((net, net, net), f, protocol=pickle.HIGHEST_PROTOCOL)

    def read_pkl(p):
        import tensorflow.compat.v1 as tf
        with tf.Graph().as_default(), tflib.create_session().as_default():
            return misc.load_network_pkl(p)
    files["network_pkl"] = (pkl, read_pkl)
    return files


def run(trials, seed, only=None):
    from training.data.sources import BadImage  # a UserError too
    root = tempfile.mkdtemp(prefix="fuzz-")
    try:
        valid = make_valid(root)
        rnd = np.random.RandomState(seed)
        report = {}
        for name, (path, reader) in valid.items():
            if only and name not in only:
                continue
            original = open(path, "rb").read()
            try:
                reader(path)   # The undamaged file must load, or the figures below mean nothing.
            except Exception as e:
                raise RuntimeError("fuzz set-up: the valid %s file does not load: %r" % (name, e)) from e
            counts = dict(clean=0, loaded=0, crashed=0)
            crashes = {}
            start = time.time()
            n = trials if name != "network_pkl" else max(trials // 4, 1)   # pickles load slowly
            for _ in range(n):
                with open(path, "wb") as f:
                    f.write(mutate(original, rnd))
                try:
                    reader(path)
                    counts["loaded"] += 1
                except (dnnlib.UserError, BadImage):
                    counts["clean"] += 1
                except Exception as e:  # What this pass looks for.
                    counts["crashed"] += 1
                    key = "%s: %s" % (type(e).__name__, str(e).split("\n")[0][:120])
                    crashes[key] = crashes.get(key, 0) + 1
            with open(path, "wb") as f:
                f.write(original)
            report[name] = dict(counts, trials=n, seconds=round(time.time() - start, 1),
                                crash_kinds=dict(sorted(crashes.items(), key=lambda kv: -kv[1])[:5]))
        total = {k: sum(r[k] for r in report.values()) for k in ("trials", "clean", "loaded", "crashed")}
        return dict(readers=report, total=total)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=200, help="damaged copies per reader (pickles: a quarter)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default=None, help="comma-separated reader names")
    parser.add_argument("--smoke", action="store_true", help="20 trials per reader")
    args = parser.parse_args()
    only = args.only.split(",") if args.only else None
    print(json.dumps(run(20 if args.smoke else args.trials, args.seed, only), indent=1))


if __name__ == "__main__":
    main()
