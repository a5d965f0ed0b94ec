"""Bad input and hard stops (issue 12), table-driven per tool: every wrong file, option and
value gives exit 1, one `error:` line naming the offending file/option/value, no traceback,
and an unchanged tree (listing + checksums before and after). All inputs are made here; tools
run in-process through main(argv), and bad options stop before TensorFlow builds anything."""

import gzip
import hashlib
import json
import os
import pickle
import struct
import subprocess
import sys
import zlib

import numpy as np
import PIL.Image
import pytest

import dataset_tool
import run_generator
import run_metrics
import run_training
from training import snapshot

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tree(root):
    """{relative path: md5 or 'dir'} of everything under root."""
    out = {}
    for base, dirs, files in os.walk(root):
        for d in dirs:
            out[os.path.relpath(os.path.join(base, d), root)] = "dir"
        for f in files:
            path = os.path.join(base, f)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, root)] = hashlib.md5(fh.read()).hexdigest()
    return out


def check_one_line(main, argv, fragment, root, capsys):
    before = tree(root)
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1, (argv, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), (argv, err)
    assert "Traceback" not in err
    assert fragment in lines[0], (fragment, lines[0])
    assert tree(root) == before, argv


# ----------------------------------------------------------------------------
# Inputs, made once per module.

def _png_claiming(width, height):
    """A PNG whose IHDR claims width x height (valid CRCs), with a tiny IDAT."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _damage_dataset(src, dst, how):
    import shutil
    shutil.copytree(src, dst)
    name = os.path.basename(src)
    for f in os.listdir(dst):          # file names carry the folder's name
        if f.startswith(name + "-"):
            os.rename(os.path.join(dst, f), os.path.join(dst, os.path.basename(dst) + f[len(name):]))
    rec = os.path.join(dst, "%s-r04.tfrecords" % os.path.basename(dst))
    data = bytearray(open(rec, "rb").read())
    if how == "length":
        data[0:8] = struct.pack("<Q", 1 << 40)
    elif how == "payload":
        n = struct.unpack("<Q", bytes(data[0:8]))[0]
        data[12:12 + n] = bytes(np.random.RandomState(0).randint(0, 256, n, dtype=np.uint8))
    elif how == "truncated":
        data = data[:len(data) // 2 + 5]
    elif how == "short":
        data = data[:len(data) // 2]    # two whole records of four
    elif how == "json":
        json.dump([1, 2], open(os.path.join(dst, "dataset.json"), "w"))
    elif how == "labels_nan":
        np.save(open(os.path.join(dst, "%s-rxx.labels" % os.path.basename(dst)), "wb"),
                np.full([4, 3], np.nan, np.float32))
    elif how == "labels_text":
        open(os.path.join(dst, "%s-rxx.labels" % os.path.basename(dst)), "w").write("not an array")
    open(rec, "wb").write(bytes(data))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from training.data.writer import DatasetWriter
    root = str(tmp_path_factory.mktemp("inputs"))
    rnd = np.random.RandomState(0)
    p = lambda *a: os.path.join(root, *a)
    os.makedirs(p("imgs"))
    for i in range(3):
        PIL.Image.fromarray(rnd.randint(0, 256, (16, 16, 3), dtype=np.uint8)).save(p("imgs", "im%d.png" % i))
    os.makedirs(p("bomb"))
    open(p("bomb", "huge.png"), "wb").write(_png_claiming(100000, 100000))
    images = rnd.randint(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    np.save(p("good.npy"), images)
    np.save(p("float.npy"), images.astype(np.float32))
    np.save(p("five.npy"), rnd.randint(0, 256, (4, 16, 16, 5), dtype=np.uint8))
    np.save(p("rank2.npy"), images[0, :, :, 0])
    open(p("trunc.npy"), "wb").write(open(p("good.npy"), "rb").read()[:500])
    open(p("garbage.npy"), "wb").write(b"\x93NUMPY\x01\x00garbage header\n")
    np.save(p("labels_nan.npy"), np.array([[0.0], [np.nan], [1.0], [2.0]], np.float32))
    np.save(p("labels_short.npy"), np.zeros([3, 2], np.float32))
    np.save(p("labels_neg.npy"), np.array([0, -1, 2, 3]))
    open(p("labels_text.npy"), "w").write("1,2,3,4\n")
    pickle.dump({"a": 1}, open(p("labels_pickle.npy"), "wb"))
    os.makedirs(p("cifar", "cifar-10-batches-py"))
    for i in range(1, 6):
        open(p("cifar", "cifar-10-batches-py", "data_batch_%d" % i), "wb").write(b"\x80\x04garbage")
    os.makedirs(p("mnist"))
    gzip.open(p("mnist", "train-images-idx3-ubyte.gz"), "wb").write(b"\0" * 16 + bytes(28 * 28))
    gzip.open(p("mnist", "train-labels-idx1-ubyte.gz"), "wb").write(b"\0" * 8 + b"\1")
    os.makedirs(p("mnist_short"))
    gzip.open(p("mnist_short", "train-images-idx3-ubyte.gz"), "wb").write(struct.pack(">IIII", 2051, 5, 28, 28)
                                                                         + bytes(28 * 28))
    gzip.open(p("mnist_short", "train-labels-idx1-ubyte.gz"), "wb").write(struct.pack(">II", 2049, 1) + b"\1")
    with DatasetWriter(p("ds"), progress_every=0) as writer:
        writer.add_images(images.transpose(0, 3, 1, 2), np.eye(3, dtype=np.float32)[[0, 1, 2, 0]])
    for how in ("length", "payload", "truncated", "short", "json", "labels_nan", "labels_text"):
        _damage_dataset(p("ds"), p("bad_" + how), how)
    open(p("keep.txt"), "w").write("a user's file\n")
    os.makedirs(p("mine"))
    open(p("mine", "notes.txt"), "w").write("not a dataset\n")
    os.makedirs(p("results"))
    open(p("garbage.pkl"), "wb").write(b"\x80\x04\x95garbage")
    pickle.dump({"not": "networks"}, open(p("dict.pkl"), "wb"))
    return root


# ----------------------------------------------------------------------------
# dataset_tool.py

DATASET_TOOL_CASES = [
    # Decoders that trust their input.
    (["create_from_images", "{r}/o", "{r}/bomb"], "huge.png claims"),
    (["create_from_npy", "{r}/o", "{r}/float.npy"], "dtype float32"),
    (["create_from_npy", "{r}/o", "{r}/five.npy"], "5 channels"),
    (["create_from_npy", "{r}/o", "{r}/rank2.npy"], "rank2.npy has shape"),
    (["create_from_npy", "{r}/o", "{r}/trunc.npy"], "truncated"),
    (["create_from_npy", "{r}/o", "{r}/garbage.npy"], "garbage.npy as .npy"),
    (["create_from_npy", "{r}/o", "{r}/good.npy", "--labels", "{r}/labels_nan.npy"], "labels_nan.npy hold NaN"),
    (["create_from_npy", "{r}/o", "{r}/good.npy", "--labels", "{r}/labels_short.npy"], "labels_short.npy"),
    (["create_from_npy", "{r}/o", "{r}/good.npy", "--labels", "{r}/labels_neg.npy"], "class ids"),
    (["create_from_npy", "{r}/o", "{r}/good.npy", "--labels", "{r}/labels_text.npy"], "labels_text.npy"),
    (["create_from_npy", "{r}/o", "{r}/good.npy", "--labels", "{r}/labels_pickle.npy"], "labels_pickle.npy"),
    (["create_cifar10", "{r}/o", "{r}/cifar"], "data_batch_1 is damaged"),
    (["create_mnist", "{r}/o", "{r}/mnist"], "bad magic"),
    (["create_mnist", "{r}/o", "{r}/mnist_short"], "truncated"),
    (["info", "{r}/bad_length"], "claims 1099511627776 bytes"),
    (["info", "{r}/bad_payload"], "bad_payload-r04.tfrecords (record 0)"),
    (["info", "{r}/bad_json"], "not an object"),
    (["info", "{r}/bad_labels_nan"], "NaN"),
    (["info", "{r}/bad_labels_text"], "bad_labels_text-rxx.labels"),
    (["extract", "{r}/bad_truncated", "{r}/x"], "bad_truncated-r04.tfrecords"),
    (["compare", "{r}/ds", "{r}/bad_payload"], "bad_payload-r04.tfrecords"),
    (["extract", "{r}/bad_short", "{r}/x"], "2 records"),
    # Values parsed but not checked.
    (["create_from_images", "{r}/o", "{r}/imgs", "--resolution", "nan"], "--resolution"),
    (["create_from_images", "{r}/o", "{r}/imgs", "--resolution", "-16"], "--resolution"),
    (["create_from_images", "{r}/o", "{r}/imgs", "--resolution", "48"], "--resolution 48"),
    (["create_from_images", "{r}/o", "{r}/imgs", "--ratio", "nan"], "--ratio"),
    (["create_from_images", "{r}/o", "{r}/imgs", "--ratio", "0"], "--ratio"),
    (["create_from_images", "{r}/o", "{r}/imgs", "--max-images", "-1"], "--max-images"),
    (["create_from_images", "{r}/o", "{r}/imgs", "--shards", "0"], "--shards"),
    (["create_from_images", "{r}/o", "{r}/imgs", "--seed", "-1"], "--seed"),
    (["create_from_images", "{r}/o", "{r}/imgs", "--channels", "2"], "--channels"),
    (["create_scenes", "{r}/o", "--num-images", "0"], "--num-images"),
    (["create_scenes", "{r}/o", "--resolution", "abc"], "--resolution"),
    (["create_scenes", "{r}/o", "--max-objects", "-1"], "--max-objects"),
    (["extract", "{r}/ds", "{r}/x", "--resolution", "12"], "--resolution 12"),
    (["extract", "{r}/ds", "{r}/x", "--resolution", "64"], "--resolution 64"),
    (["extract", "{r}/ds", "{r}/x", "--max-images", "-1"], "--max-images"),
    (["display", "{r}/ds", "--out", "{r}/g.png", "--grid", "0x8"], "--grid 0x8"),
    (["create_from_images", "{r}/o", "{r}/imgs", "--no-such"], "--no-such"),
    (["no_such_command"], "no_such_command"),
    ([], "required"),
    # Output paths.
    (["create_from_images", "{r}/keep.txt", "{r}/imgs", "--overwrite"], "keep.txt is an existing file"),
    (["create_from_images", "{r}/keep.txt/sub", "{r}/imgs"], "keep.txt is a file"),
    (["create_from_images", "{r}/mine", "{r}/imgs", "--overwrite"], "notes.txt"),
    (["create_from_images", "{r}/ds", "{r}/imgs"], "--overwrite"),
    (["create_from_npy", "{r}/ds", "{r}/ds/ds-rxx.labels", "--overwrite"], "inside the output"),
    (["display", "{r}/ds", "--out", "{r}/mine"], "existing folder"),
    (["display", "{r}/ds", "--out", "{r}/grid.xyz"], "extension"),
    (["display", "{r}/ds", "--out", "{r}/keep.txt/g.png"], "keep.txt is a file"),
    (["extract", "{r}/ds", "{r}/keep.txt", "--overwrite"], "keep.txt is an existing file"),
    (["extract", "{r}/ds", "{r}/mine", "--overwrite"], "notes.txt"),
    (["info", "{r}/nothing"], "nothing not found"),
]


@pytest.mark.parametrize("argv, fragment", DATASET_TOOL_CASES, ids=[" ".join(a[:1] + a[3:])[:60] or "empty"
                                                                     for a, _ in DATASET_TOOL_CASES])
def test_dataset_tool_bad_input(inputs, capsys, argv, fragment):
    check_one_line(dataset_tool.main, [a.format(r=inputs) for a in argv], fragment, inputs, capsys)


# ----------------------------------------------------------------------------
# run_training.py: rejected by the parser or options.validate, before any graph.

TRAINING_CASES = [
    (["--total-kimg", "nan"], "--total-kimg"), (["--g-lr", "inf"], "--g-lr"), (["--gamma", "-1"], "--gamma"),
    (["--batch-size", "0"], "--batch-size"), (["--batch-size", "abc"], "--batch-size"), (["--seed", "-1"], "--seed"),
    (["--ratio", "nan"], "--ratio"), (["--resolution", "0"], "--resolution"), (["--gpus", "-1"], "--gpus"),
    (["--kimg-per-tick", "0"], "--kimg-per-tick"), (["--keep-snapshots", "-2"], "--keep-snapshots"),
    (["--num-heads", "0"], "num_heads"), (["--latent-size", "-8"], "latent_size"),
    (["--components-num", "2.5"], "components_num"), (["--kmeans", "maybe"], "kmeans"),
    (["--channel-base", "0"], "channel_base"), (["--attention-dropout", "2"], "attention_dropout"),
    (["--mapping-lrmul", "nan"], "mapping_lrmul"), (["--d-mbstd-num-channels", "0"], "d_mbstd_num_channels"),
    (["--resample-kernel", "1,x"], "resample_kernel"), (["--integration", "7"], "integration"),
    (["--result-dir", "{r}/keep.txt"], "keep.txt is an existing file"),
    (["--result-dir", "{r}/keep.txt/runs"], "keep.txt is a file"),
    (["--data-dir", "{r}/keep.txt"], "keep.txt is a file"),
    (["--resume", "{r}/nothing"], "nothing"), (["--pretrained-pkl", "{r}/nothing.pkl"], "nothing.pkl"),
]


@pytest.mark.parametrize("argv, fragment", TRAINING_CASES, ids=[" ".join(a) for a, _ in TRAINING_CASES])
def test_run_training_bad_input(inputs, capsys, argv, fragment):
    argv = ["--result-dir", os.path.join(inputs, "results"), "--data-dir", inputs] + argv
    check_one_line(run_training.main, [a.format(r=inputs) for a in argv], fragment, inputs, capsys)


# ----------------------------------------------------------------------------
# run_generator.py (checks before the network is loaded; a damaged pickle after).

GENERATOR_CASES = [
    (["generate-images", "--seeds", "-1"], "--seeds"), (["generate-images", "--seeds", "a"], "--seeds"),
    (["generate-images", "--seeds", "1", "--truncation-psi", "nan"], "--truncation-psi"),
    (["generate-images", "--seeds", "1", "--truncation-psi", "inf"], "--truncation-psi"),
    (["generate-images", "--seeds", "1", "--batch-size", "0"], "--batch-size"),
    (["generate-images", "--seeds", "1", "--ratio", "0"], "--ratio"),
    (["generate-images", "--seeds", "1", "--class", "-1"], "--class"),
    (["interpolate", "--seeds", "1,2", "--density", "1"], "--density"),
    (["interpolate", "--seeds", "1"], "two seeds"),
    (["interpolate", "--seeds", "1,2", "--component", "-1"], "--component"),
    (["noise-variation", "--seeds", "1", "--num-samples", "1"], "--num-samples"),
    (["attention-maps", "--seeds", "1", "--blending-alpha", "2"], "--blending-alpha"),
    (["generate-images", "--seeds", "1", "--no-such"], "--no-such"),
    (["generate-images", "--seeds", "1", "--outdir", "{r}/keep.txt"], "keep.txt is an existing file"),
    (["generate-images", "--seeds", "1", "--outdir", "{r}/keep.txt/out"], "keep.txt is a file"),
    (["generate-images", "--seeds", "1", "--network", "{r}/nothing.pkl"], "nothing.pkl"),
    (["generate-images", "--seeds", "1", "--network", "{r}/mine"], "mine"),
    (["generate-images", "--seeds", "1", "--network", "{r}/garbage.pkl"], "garbage.pkl"),
    (["generate-images", "--seeds", "1", "--network", "{r}/dict.pkl"], "dict.pkl"),
]


@pytest.mark.parametrize("argv, fragment", GENERATOR_CASES, ids=[" ".join(a) for a, _ in GENERATOR_CASES])
def test_run_generator_bad_input(inputs, capsys, argv, fragment):
    import dnnlib.tflib as tflib
    import tensorflow.compat.v1 as tf
    if "--network" not in argv:
        argv = argv + ["--network", "{r}/garbage.pkl"]
    if "--outdir" not in argv:
        argv = argv + ["--outdir", "{r}/out"]
    with tf.Graph().as_default(), tflib.create_session().as_default():
        check_one_line(run_generator.main, [a.format(r=inputs) for a in argv], fragment, inputs, capsys)


# ----------------------------------------------------------------------------
# run_metrics.py

METRICS_CASES = [
    (["--num-images", "1"], "--num-images"), (["--num-images", "nan"], "--num-images"),
    (["--gpus", "0"], "--gpus"), (["--truncation-psi", "nan"], "--truncation-psi"), (["--ratio", "2"], "--ratio"),
    (["--metrics", "fid77"], "fid77"), (["--network", "{r}/nothing.pkl"], "nothing.pkl"),
    (["--dataset", "nope"], "datasets/nope"),                      # the same default --data-dir as run_training
    (["--data-dir", "{r}", "--dataset", "bad_json"], "not an object"),
    (["--data-dir", "{r}", "--dataset", "bad_length"], "claims"),
    (["--result-dir", "{r}/keep.txt"], "keep.txt is an existing file"),
    (["--result-dir", "{r}/keep.txt/m"], "keep.txt is a file"),
    (["--cache-dir", "{r}/keep.txt"], "keep.txt"), (["--metric-nets-dir", "{r}/nothing"], "nothing"),
    (["--result-dir", "{r}/new/dir"], "garbage.pkl"),             # made only when a result is written
    (["--bogus"], "--bogus"),
]


@pytest.mark.parametrize("argv, fragment", METRICS_CASES, ids=[" ".join(a) for a, _ in METRICS_CASES])
def test_run_metrics_bad_input(inputs, capsys, monkeypatch, argv, fragment):
    monkeypatch.setenv("DNNLIB_CACHE_DIR", os.path.join(inputs, "mine", "cache-not-made"))
    base = ["--metrics", "fid_scenes", "--result-dir", "{r}/results"]
    if "--network" not in argv:
        base += ["--network", "{r}/garbage.pkl"]
    check_one_line(run_metrics.main, [a.format(r=inputs) for a in base + argv], fragment, inputs, capsys)


# ----------------------------------------------------------------------------
# Snapshots: a network pickle and its training state always belong together.

def test_resume_skips_a_mismatched_pair_and_says_so(tmp_path):
    run, other = str(tmp_path / "run"), str(tmp_path / "other")
    os.makedirs(run)
    os.makedirs(other)
    state = dict(cur_nimg=1000, cur_tick=1)
    snapshot.save_snapshot(run, 1, ("G1", "D1", "Gs1"), state)
    snapshot.save_snapshot(run, 2, ("G2", "D2", "Gs2"), dict(state, cur_nimg=2000))
    assert snapshot.latest_resumable(run)[0].endswith("network-snapshot-000002.pkl")
    # A kill between the state's and the network's renames: the state of a newer snapshot of the
    # same name (2.5 kimg) beside the older network pickle.
    snapshot.save_snapshot(other, 2, ("G2b", "D2b", "Gs2b"), dict(state, cur_nimg=2500))
    os.replace(os.path.join(other, snapshot.STATE_FMT % 2), os.path.join(run, snapshot.STATE_FMT % 2))
    notes = []
    found = snapshot.latest_resumable(run, log=notes.append)
    assert found[0].endswith("network-snapshot-000001.pkl")
    assert len(notes) == 1 and "network-snapshot-000002.pkl" in notes[0] and "belongs to another" in notes[0]
    # An unstamped (version 1) state still resumes.
    legacy = dict(state, version=1)
    snapshot.atomic_write_pickle(legacy, os.path.join(run, snapshot.STATE_FMT % 2))
    assert snapshot.latest_resumable(run)[0].endswith("network-snapshot-000002.pkl")


def test_temporaries_of_every_kind_are_cleaned(tmp_path):
    run = str(tmp_path)
    open(os.path.join(run, ".fakes000004.png.tmp-abc123"), "w").write("half a png")
    open(os.path.join(run, ".network-snapshot-000004.pkl.tmp-xyz"), "w").write("half a pickle")
    os.makedirs(os.path.join(run, ".attention.tmp-dir", "sub"))
    open(os.path.join(run, "fakes000004.png"), "w").write("kept")
    snapshot.remove_stale_temporaries(run)
    assert os.listdir(run) == ["fakes000004.png"]


# ----------------------------------------------------------------------------
# A quiet, honest start: no TF C++ start-up lines, no deprecation blocks, no RuntimeWarning.

def test_first_run_is_quiet(inputs):
    env = dict(os.environ, PYTHONPATH=REPO)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    code = ("import dnnlib.tflib as tflib, tensorflow.compat.v1 as tf\n"
            "from dnnlib.tflib.ops import upfirdn_2d\n"
            "tflib.init_tf(); tflib.list_gpus()\n"
            "upfirdn_2d.upsample_2d(tf.zeros([1, 1, 4, 4]))\n"
            "import dataset_tool; dataset_tool.main(['info', %r])\n" % os.path.join(inputs, "ds"))
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "", proc.stderr
    cpu_lines = [l for l in proc.stdout.splitlines() if "no GPU visible" in l]
    assert len(cpu_lines) <= 1
