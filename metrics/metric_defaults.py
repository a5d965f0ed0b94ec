"""The named metrics (REFERENCE.md §7): one table, which run_metrics.py and the training loop
validate against. `count_name` is the name used when the image count is overridden
('fid{}' with 10000 images -> 'fid10k'); None keeps the name."""

from dnnlib import EasyDict
from dnnlib.util import UserError
from metrics.metric_base import format_count

_FID = "metrics.frechet_inception_distance.FID"
_IS = "metrics.inception_score.IS"
_PR = "metrics.precision_recall.PR"
_PPL = "metrics.perceptual_path_length.PPL"
_KID = "metrics.kernel_inception_distance.KID"
_ATTN = "metrics.attention_structure.AttentionStructure"
_SCENES_NET = "scenes_classifier.pkl"  # Shipped in metrics/data/, trained by scripts/train_scene_classifier.py.
_MIOU = "metrics.layout_fidelity.LayoutIoU"
_DIV = "metrics.layout_fidelity.LayoutDiversity"
_SCENES_SEGMENTER = "scenes_segmenter.pkl"  # Shipped in metrics/data/, trained by scripts/train_segmenter.py.

metric_defaults = EasyDict([(args.name, args) for args in [
    EasyDict(name="fid50k",    func_name=_FID, count_name="fid{}",   num_images=50000, minibatch_per_gpu=8),
    EasyDict(name="fid10k",    func_name=_FID, count_name="fid{}",   num_images=10000, minibatch_per_gpu=8),
    EasyDict(name="is50k",     func_name=_IS,  count_name="is{}",    num_images=50000, minibatch_per_gpu=8, num_splits=10),
    EasyDict(name="pr50k3",    func_name=_PR,  count_name="pr{}3",   num_images=50000, minibatch_per_gpu=8, nhood_size=3,
             row_batch_size=10000, col_batch_size=10000),
    EasyDict(name="kid50k",    func_name=_KID, count_name="kid{}",   num_images=50000, minibatch_per_gpu=8),
    EasyDict(name="ppl_zfull", func_name=_PPL, count_name=None, num_images=50000, minibatch_per_gpu=4, epsilon=1e-4,
             space="z", sampling="full", crop=True),
    EasyDict(name="ppl_wfull", func_name=_PPL, count_name=None, num_images=50000, minibatch_per_gpu=4, epsilon=1e-4,
             space="w", sampling="full", crop=True),
    EasyDict(name="ppl_zend",  func_name=_PPL, count_name=None, num_images=50000, minibatch_per_gpu=4, epsilon=1e-4,
             space="z", sampling="end", crop=True),
    EasyDict(name="ppl_wend",  func_name=_PPL, count_name=None, num_images=50000, minibatch_per_gpu=4, epsilon=1e-4,
             space="w", sampling="end", crop=True),
    EasyDict(name="ppl2_wend", func_name=_PPL, count_name=None, num_images=50000, minibatch_per_gpu=4, epsilon=1e-4,
             space="w", sampling="end", crop=False),
    EasyDict(name="fid_scenes", func_name=_FID, count_name=None, num_images=5000, minibatch_per_gpu=32,
             feature_net=_SCENES_NET),
    EasyDict(name="pr_scenes",  func_name=_PR,  count_name=None, num_images=5000, minibatch_per_gpu=32,
             feature_net=_SCENES_NET, nhood_size=3, row_batch_size=10000, col_batch_size=10000),
    EasyDict(name="attn_scenes", func_name=_ATTN, count_name=None, num_images=1000, minibatch_per_gpu=32),
    EasyDict(name="miou_scenes", func_name=_MIOU, count_name=None, num_images=1000, minibatch_per_gpu=32,
             feature_net=_SCENES_SEGMENTER),
    EasyDict(name="div_scenes",  func_name=_DIV,  count_name=None, num_images=512, minibatch_per_gpu=8,
             feature_net=_SCENES_NET, per_layout=8),
]])


def get_metric_kwargs(names, num_images=None):
    """Constructor kwargs (with func_name) for each metric name, with an optional image count.

    names: list of names or one comma-separated string. Raises UserError on unknown names."""
    if isinstance(names, str):
        names = [name.strip() for name in names.split(",") if name.strip()]
    if not names:
        raise UserError("No metrics given; choose from: %s" % ", ".join(metric_defaults))
    unknown = [name for name in names if name not in metric_defaults]
    if unknown:
        raise UserError("Unknown metric %s; choose from: %s" % (", ".join(unknown), ", ".join(metric_defaults)))
    if num_images is not None and num_images < 2:
        raise UserError("--num-images must be >= 2, got %d" % num_images)
    result = []
    for name in names:
        kwargs = EasyDict(metric_defaults[name])
        count_name = kwargs.pop("count_name")
        if num_images is not None and num_images != kwargs.num_images:
            kwargs.num_images = num_images
            if count_name is not None:
                count = format_count(num_images)
                if count[-1].isdigit() and count_name.endswith("{}3"):
                    count += "_"  # pr24_3, not pr243 (50k keeps the official pr50k3).
                kwargs.name = count_name.format(count)
        result.append(kwargs)
    return result
