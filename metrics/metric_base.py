"""Common machinery of the metrics (REFERENCE.md §7): load a snapshot, generate images from
Gs in minibatches over the available devices, read real images, cache their statistics,
load feature networks (offline-friendly), report and log results.

A metric subclasses MetricBase and implements `_evaluate(Gs, Gs_kwargs, num_gpus)`, calling
`_report_result(value, suffix)` once per number it produces."""

import glob
import hashlib
import os
import pickle
import sys
import time

import numpy as np
import tensorflow.compat.v1 as tf

import dnnlib
import dnnlib.tflib as tflib
from dnnlib.util import UserError
from training.visuals import crop_to_ratio

#----------------------------------------------------------------------------
# Feature networks: a local directory (option or environment variable), the shipped
# metrics/data/ folder, or a download from the official URL through the open_url cache.

METRIC_NETS_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan/networks/metrics/"
METRIC_NETS_DIR_ENV = "DNNLIB_METRIC_NETS_DIR"    # Directory holding the feature-network pickles.
SHIPPED_NETS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def resolve_feature_net(net_name, nets_dir=None, cache_dir=None):
    """The local file path of a feature network, downloading it if needed.

    net_name: a file name such as 'inception_v3_features.pkl' (looked up in nets_dir, else
    $DNNLIB_METRIC_NETS_DIR, else metrics/data/, else downloaded from METRIC_NETS_URL), or
    an explicit path or URL. Raises UserError with what to do when it cannot be found."""
    if "://" in net_name:
        return _download(net_name, net_name, cache_dir)
    if os.path.dirname(net_name):  # An explicit path.
        if not os.path.isfile(net_name):
            raise UserError("Feature network file not found: %s" % net_name)
        return net_name

    nets_dir = nets_dir or os.environ.get(METRIC_NETS_DIR_ENV) or None
    if nets_dir is not None:
        path = os.path.join(nets_dir, net_name)
        if os.path.isfile(path):
            return path
    shipped = os.path.join(SHIPPED_NETS_DIR, net_name)
    if os.path.isfile(shipped):
        return shipped
    if nets_dir is not None:
        # The user asked for offline files: say where the missing one comes from.
        raise UserError("Feature network %s not found in %s (metric nets dir); download it from %s%s "
                        "and place it there" % (net_name, nets_dir, METRIC_NETS_URL, net_name))
    return _download(METRIC_NETS_URL + net_name, net_name, cache_dir)


def _download(url, net_name, cache_dir):
    try:
        # Few attempts: offline, ten retries of a blackholed host would take minutes.
        return dnnlib.util.open_url(url, cache_dir=cache_dir, num_attempts=3, return_filename=True)
    except (OSError, UserError) as err:
        raise UserError("Cannot download feature network %s from %s (%s); without internet, download it "
                        "elsewhere, put it in a directory and pass --metric-nets-dir DIR or set %s"
                        % (net_name, url, str(err).splitlines()[0] if str(err) else type(err).__name__,
                           METRIC_NETS_DIR_ENV)) from None


def load_feature_net(net_name, nets_dir=None, cache_dir=None):
    """A feature network (tflib.Network) built in the default graph."""
    from training import misc  # Imported here: training/ imports metrics during training.
    path = resolve_feature_net(net_name, nets_dir, cache_dir)
    try:
        net = misc.load_pkl(path)
    except (pickle.UnpicklingError, EOFError, ValueError, AttributeError, ImportError, KeyError, TypeError) as err:
        raise UserError("Cannot load feature network %s: %s: %s (download it again?)"
                        % (path, type(err).__name__, str(err).splitlines()[0] if str(err) else "")) from None
    if not isinstance(net, tflib.Network):
        raise UserError("%s holds a %s, not a feature network (tflib.Network pickle)" % (path, type(net).__name__))
    return net

#----------------------------------------------------------------------------
# Small helpers.

def format_count(n):
    """50000 -> '50k', 1500 -> '1500' (the image count in a metric name)."""
    return "%dk" % (n // 1000) if n % 1000 == 0 and n >= 1000 else "%d" % n


def list_devices(num_gpus):
    """Device names for `num_gpus` towers: GPUs when visible, else the CPU."""
    devices = tflib.tower_devices(num_gpus)  # No GPU: every tower on the CPU (tests, CPU-only machines).
    num_visible = len(tflib.list_gpus())
    if 0 < num_visible < num_gpus:
        raise UserError("--gpus %d requested but only %d GPU(s) are visible" % (num_gpus, num_visible))
    return devices


#----------------------------------------------------------------------------

class MetricBase:
    """One metric: name, image count, and the shared evaluation plumbing."""

    def __init__(self, name, num_images, minibatch_per_gpu=8, feature_net=None):
        if num_images < 1:
            raise ValueError("num_images must be >= 1, got %r" % num_images)
        self.name = name
        self.num_images = int(num_images)
        self.minibatch_per_gpu = int(minibatch_per_gpu)
        self.feature_net = feature_net    # File name of the feature network (see resolve_feature_net).
        self.reals_computed = 0           # Real images pushed through a feature net (cache misses show here).
        self._reset()

    def _reset(self, network_pkl=None, run_dir=None, data_dir=None, dataset_args=None, mirror_augment=False,
               ratio=None, cache_dir=None, nets_dir=None, verbose=False):
        self._network_pkl = network_pkl
        self._data_dir = data_dir
        self._dataset_args = dnnlib.EasyDict(dataset_args or {})
        self._mirror_augment = bool(mirror_augment)
        self._ratio = ratio  # None: from the dataset (see _get_ratio).
        self._cache_dir = cache_dir or dnnlib.util.make_cache_dir_path("metrics")  # $DNNLIB_CACHE_DIR/metrics
        self._nets_dir = nets_dir
        self._verbose = verbose
        self._dataset_obj = None
        self._layouts_obj = None
        self._resolution = None
        self._results = []
        self._eval_time = 0.0
        self._progress = None

        # As official: dataset options missing here come from the training run's config.
        if run_dir is not None and not self._dataset_args:
            config_file = os.path.join(run_dir, "submit_config.pkl")
            if os.path.isfile(config_file):
                with open(config_file, "rb") as f:
                    run_config = pickle.load(f)
                run_args = getattr(run_config, "run_func_kwargs", None) or {}
                self._dataset_args = dnnlib.EasyDict(run_args.get("dataset_args", {}))
                self._dataset_args.shuffle_mb = 0
                if self._data_dir is None:
                    self._data_dir = run_args.get("data_dir")
                if mirror_augment is None:
                    self._mirror_augment = bool(run_args.get("mirror_augment", False))

    def run(self, network_pkl, run_dir=None, data_dir=None, dataset_args=None, mirror_augment=None,
            num_gpus=1, tf_config=None, log_results=True, Gs_kwargs=None, ratio=None, cache_dir=None,
            nets_dir=None, verbose=False):
        """Evaluate the snapshot `network_pkl` in a fresh graph and session; append the result
        line to run_dir/metric-<name>.txt (and print it). Dataset options and the mirror flag
        left out come from run_dir/submit_config.pkl when there is one (official behaviour).
        Gs_kwargs default to validation mode (no truncation); cache_dir holds real statistics;
        nets_dir the feature-network pickles; verbose prints progress with an ETA."""
        if Gs_kwargs is None:
            Gs_kwargs = dict(is_validation=True)
        self._reset(network_pkl, run_dir, data_dir, dataset_args, mirror_augment, ratio, cache_dir, nets_dir,
                    verbose)
        time_begin = time.time()
        with tf.Graph().as_default(), tflib.create_session(tf_config).as_default():
            seed = (tf_config or {}).get("rnd.tf_random_seed")
            if isinstance(seed, int):  # Repeatable draws of latents when a seed is given.
                tf.set_random_seed(seed)
            from training import misc  # pylint: disable=import-outside-toplevel
            _G, _D, Gs = misc.load_network_pkl(network_pkl)
            self._resolution = Gs.output_shape[-1]  # Reals are read at the generator's width.
            self._evaluate(Gs, Gs_kwargs=dict(Gs_kwargs), num_gpus=num_gpus)
            if self._dataset_obj is not None and hasattr(self._dataset_obj, "close"):
                self._dataset_obj.close()
            self._dataset_obj = None
        self._eval_time = time.time() - time_begin

        bad = [self.name + r.suffix for r in self._results if not np.isfinite(r.value)]
        if bad:  # Never a metric line with nan in it: say why instead.
            raise dnnlib.UserError("%s of %s is not finite (NaN/Inf images or features?); nothing was written"
                                   % (", ".join(bad), network_pkl))
        if log_results:
            line = self.get_result_str().strip()
            if run_dir is not None:
                os.makedirs(run_dir, exist_ok=True)
                with open(os.path.join(run_dir, "metric-%s.txt" % self.name), "a") as f:
                    f.write(line + "\n")
            print(line)
            sys.stdout.flush()
        return self._results

    def get_result_str(self):
        """`<network name> time <t> <metric><suffix> <value> ...` in the official layout."""
        network_name = os.path.splitext(os.path.basename(str(self._network_pkl)))[0]
        if len(network_name) > 29:
            network_name = "..." + network_name[-26:]
        result_str = "%-30s" % network_name
        result_str += " time %-12s" % dnnlib.util.format_time(self._eval_time)
        for res in self._results:
            result_str += " " + self.name + res.suffix + " " + res.fmt % res.value
        return result_str

    def list_results(self):
        return [dnnlib.EasyDict(name=self.name + res.suffix, value=res.value) for res in self._results]

    def update_autosummaries(self):
        for res in self._results:
            tflib.autosummary.autosummary("Metrics/" + self.name + res.suffix, res.value)

    def _evaluate(self, Gs, Gs_kwargs, num_gpus):
        raise NotImplementedError  # To be overridden by subclasses.

    def _report_result(self, value, suffix="", fmt="%-10.4f"):
        self._results.append(dnnlib.EasyDict(value=float(value), suffix=suffix, fmt=fmt))

    #------------------------------------------------------------------------
    # Progress with counts and an ETA, for the command line.

    def _start_progress(self, stage):
        self._progress = [stage, time.time(), -1e9]  # Stage, start time, time of the last line.

    def _report_progress(self, stage, done, total):
        if not self._verbose:
            return
        now = time.time()
        if self._progress is None or self._progress[0] != stage:
            self._start_progress(stage)
        _stage, start, last_print = self._progress
        if done < total and now - last_print < 10:
            return
        self._progress[2] = now
        rate = done / max(now - start, 1e-6)
        eta = (total - done) / rate if done > 0 else 0
        print("%s: %-6s %d/%d images (%d%%), ETA %s" % (self.name, stage, done, total, 100 * done // total,
                                                       dnnlib.util.format_time(eta)))
        sys.stdout.flush()

    #------------------------------------------------------------------------
    # Real images and their cached statistics.

    def _get_ratio(self):
        """Aspect ratio that reals and fakes are cropped to: the explicit one, else the dataset's
        (dataset.json, read without building the reader so cached runs skip the dataset)."""
        if self._ratio is None:
            ratio = self._dataset_args.get("ratio")
            tfrecord_dir = self._dataset_args.get("tfrecord_dir")
            if ratio is None and tfrecord_dir:
                from training.data import records  # pylint: disable=import-outside-toplevel
                full = os.path.join(self._data_dir, tfrecord_dir) if self._data_dir else tfrecord_dir
                if os.path.isdir(full):
                    ratio = records.DatasetFiles(full).meta.get("ratio")
            self._ratio = float(ratio) if ratio is not None else 1.0
        return self._ratio

    def _dataset_identity(self):
        """What identifies the real data: dataset options, plus the sizes of its TFRecord files
        so that a regenerated dataset under the same name does not hit a stale cache."""
        args = dict(self._dataset_args)
        tfrecord_dir = args.get("tfrecord_dir") or args.get("path")
        sizes = []
        if tfrecord_dir is not None:
            full = os.path.join(self._data_dir, tfrecord_dir) if self._data_dir else tfrecord_dir
            sizes = [(os.path.basename(f), os.path.getsize(f))
                     for f in sorted(glob.glob(os.path.join(full, "*.tfrecords*")))]
        return repr(sorted((k, repr(v)) for k, v in args.items())), repr(sizes)

    def _get_cache_file_for_reals(self, extension="pkl", **kwargs):
        """Cache path keyed by md5 of metric kind, feature net, dataset, resolution, mirror flag,
        ratio and image count; official layout `<md5>-<metric>-<dataset>.pkl`."""
        key = dict(metric=type(self).__name__, feature_net=self.feature_net, dataset=self._dataset_identity(),
                   mirror=self._mirror_augment, ratio=self._get_ratio(), num_images=self.num_images,
                   resolution=self._dataset_args.get("resolution", self._resolution))
        key.update(kwargs)
        md5 = hashlib.md5(repr(sorted(key.items())).encode("utf-8")).hexdigest()
        dataset_name = os.path.basename(str(self._dataset_args.get("tfrecord_dir", "dataset")).rstrip("/\\"))
        return os.path.join(self._cache_dir, "%s-%s-%s.%s" % (md5, self.name, dataset_name, extension))

    def _get_dataset_obj(self):
        if self._dataset_obj is None:
            if not self._dataset_args.get("tfrecord_dir"):
                raise UserError("Metric %s needs real images: pass --dataset (and --data-dir)" % self.name)
            from training import dataset  # pylint: disable=import-outside-toplevel
            # File order (the writer already shuffled) and all labels, unless told otherwise.
            args = dict(dict(shuffle_mb=0, prefetch_mb=64, max_label_size="full", resolution=self._resolution),
                        **self._dataset_args)
            self._dataset_obj = dataset.load_dataset(data_dir=self._data_dir, **args)
        return self._dataset_obj

    def _iterate_reals(self, minibatch_size):
        """uint8 NCHW real images, randomly mirrored if asked, cropped to the ratio."""
        dataset_obj = self._get_dataset_obj()
        dataset_obj.configure(minibatch_size)
        rnd = np.random.RandomState(123)
        while True:
            images, _labels = dataset_obj.get_minibatch_np(minibatch_size)
            if self._mirror_augment:
                flip = rnd.rand(images.shape[0]) < 0.5
                images = np.array(images)
                images[flip] = images[flip, :, :, ::-1]
            yield crop_to_ratio(images, self._get_ratio())

    def _compute_real_features(self, feature_net, num_gpus):
        """[num_images, F] features of real images (not cached here)."""
        minibatch_size = num_gpus * self.minibatch_per_gpu
        features = None
        done = 0
        self._start_progress("reals")
        for images in self._iterate_reals(minibatch_size):
            take = min(self.num_images - done, images.shape[0])
            out = feature_net.run(images[:take], num_gpus=num_gpus, assume_frozen=True)
            if features is None:
                features = np.empty([self.num_images] + list(out.shape[1:]), dtype=np.float32)
            features[done:done + take] = out
            done += take
            self.reals_computed += take
            self._report_progress("reals", done, self.num_images)
            if done >= self.num_images:
                return features

    def _cached_real_features(self, feature_net, num_gpus, postprocess=lambda x: x, **cache_kwargs):
        """postprocess(real features), computed once and then read from the cache file."""
        cache_file = self._get_cache_file_for_reals(**cache_kwargs)
        if os.path.isfile(cache_file):
            if self._verbose:
                print("%s: reals  from the cache %s" % (self.name, cache_file))
            with open(cache_file, "rb") as f:
                return pickle.load(f)
        value = postprocess(self._compute_real_features(feature_net, num_gpus))
        dnnlib.util.atomic_write_pickle(value, cache_file)
        return value

    #------------------------------------------------------------------------
    # Generated images.

    def _random_labels_tf(self, Gs, minibatch_size):
        label_size = Gs.input_shapes[1][1] if len(Gs.input_shapes) > 1 else 0
        if not label_size:
            return tf.zeros([minibatch_size, 0 if label_size is None else label_size])
        return self._get_dataset_obj().get_random_labels_tf(minibatch_size)

    def _fake_cond_tf(self, Gs, minibatch_size):
        """G's inputs after the latents: random dataset labels, or for a layout model (GANsformer2)
        the layouts of the metric's dataset images (so --dataset can name held-out layouts)."""
        if "layout_in" not in Gs.input_names:
            return (self._random_labels_tf(Gs, minibatch_size),)
        from training import segmenter  # pylint: disable=import-outside-toplevel
        _images, labels, layout = self._layout_reader(Gs, minibatch_size).get_minibatch_tf()
        return (labels,) + tuple(segmenter.layout_inputs(layout))

    def _layout_reader(self, Gs, minibatch_size):
        """A second reader of the metric's dataset serving layouts in Gs's slots, shuffled and repeated."""
        if self._layouts_obj is None:
            if not self._dataset_args.get("tfrecord_dir"):
                raise UserError("Metric %s of a layout-to-image model needs layouts: pass --dataset" % self.name)
            from training import dataset  # pylint: disable=import-outside-toplevel
            args = dict(self._dataset_args, shuffle_mb=16, prefetch_mb=16, resolution=Gs.output_shape[-1],
                        max_label_size=Gs.input_shapes[1][1], layouts="onehot",
                        max_segments=Gs.input_shapes[2][1] - 1, seed=123)
            self._layouts_obj = dataset.load_dataset(data_dir=self._data_dir, **args)
            self._layouts_obj.configure(minibatch_size)
        return self._layouts_obj

    def _fake_images_expr(self, Gs, Gs_kwargs, minibatch_size):
        """float NCHW images in [-1, 1] for fresh random latents, cropped to the ratio."""
        latents = tf.random_normal([minibatch_size] + Gs.input_shape[1:])
        cond = self._fake_cond_tf(Gs, minibatch_size)
        images = Gs.get_output_for(latents, *cond, return_as_list=True, **Gs_kwargs)[0]
        return crop_to_ratio(tf.cast(images, tf.float32), self._get_ratio())

    def _compute_fake_features(self, Gs, Gs_kwargs, feature_net, num_gpus):
        """[num_images, F] features of generated images, one tower per device."""
        devices = list_devices(num_gpus)
        exprs = []
        for tower, device in enumerate(devices):
            with tf.device(device):
                Gs_tower = Gs if tower == 0 else Gs.clone()
                net_tower = feature_net if tower == 0 else feature_net.clone()
                images = self._fake_images_expr(Gs_tower, Gs_kwargs, self.minibatch_per_gpu)
                images = tflib.convert_images_to_uint8(images)
                exprs.append(net_tower.get_output_for(images))
        with tf.device("/cpu:0"):
            features_expr = tf.concat(exprs, axis=0)
        return self._run_in_minibatches(features_expr, "fakes")

    def _run_in_minibatches(self, expr, stage):
        """Evaluate `expr` (a [minibatch, ...] tensor of random samples) until num_images rows."""
        result = None
        done = 0
        self._start_progress(stage)
        while done < self.num_images:
            out = tflib.run(expr)
            if result is None:
                result = np.empty([self.num_images] + list(out.shape[1:]), dtype=out.dtype)
            take = min(self.num_images - done, out.shape[0])
            result[done:done + take] = out[:take]
            done += take
            self._report_progress(stage, done, self.num_images)
        return result

#----------------------------------------------------------------------------

def evaluate_metrics(names, network_pkl, num_images=None, **run_kwargs):
    """Evaluate the registered metrics `names` (a list or comma-separated names of
    metric_defaults; num_images overrides their image count) on a snapshot, one after the
    other: the entry point of run_metrics.py and of the training loop. run_kwargs go to
    MetricBase.run (run_dir, data_dir, dataset_args, num_gpus, ...); each result line is
    printed and appended to run_dir/metric-<name>.txt. Returns {result name: value}."""
    from metrics import metric_defaults  # pylint: disable=import-outside-toplevel
    values = {}
    for kwargs in metric_defaults.get_metric_kwargs(names, num_images=num_images):
        metric = dnnlib.util.call_func_by_name(**kwargs)
        metric.run(network_pkl, **run_kwargs)
        values.update((res.name, res.value) for res in metric.list_results())
    return values


class DummyMetric(MetricBase):
    """Reports 0 without touching the network: for testing the plumbing."""

    def _evaluate(self, Gs, Gs_kwargs, num_gpus):
        self._report_result(0.0)
