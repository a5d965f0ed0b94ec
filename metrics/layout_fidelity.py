"""Metrics of layout-to-image networks (GANsformer2's execution stage), on layouts read from the
metric's dataset (--dataset: point it at held-out layouts, e.g. a scenes set of another seed):

  miou_scenes  layout fidelity: a segmenter (scripts/train_segmenter.py; the scenes ship
               metrics/data/scenes_segmenter.pkl) labels every pixel of the fakes with a category;
               mean IoU over categories of that map against the source layouts' category maps
               (one confusion matrix over all images; categories absent from both are left out).
  div_scenes   diversity: images of one layout with different latents, mean pairwise L2 distance
               of their scene-classifier features (the fid_scenes space), averaged over layouts.

fid_scenes of a layout model already renders the dataset's layouts (MetricBase._fake_cond_tf)."""

import numpy as np
import tensorflow.compat.v1 as tf

import dnnlib.tflib as tflib
from dnnlib.util import UserError
from metrics import metric_base


def require_layout_model(Gs, name):
    if "layout_in" not in Gs.input_names:
        raise UserError("%s: measures layout-to-image networks (--gansformer2 execution); this generator takes "
                        "no layouts" % name)


class LayoutIoU(metric_base.MetricBase):
    """miou_scenes (module docstring)."""

    def _evaluate(self, Gs, Gs_kwargs, num_gpus):
        del num_gpus  # One tower: the maps travel to the host.
        from training import segmenter as seg_lib
        require_layout_model(Gs, self.name)
        net = metric_base.load_feature_net(self.feature_net, self._nets_dir, self._cache_dir)
        latents = tf.random_normal([self.minibatch_per_gpu] + Gs.input_shape[1:])
        cond = self._fake_cond_tf(Gs, self.minibatch_per_gpu)
        images = Gs.get_output_for(latents, *cond, return_as_list=True, **Gs_kwargs)[0]
        logits = net.get_output_for(tf.clip_by_value(tf.cast(images, tf.float32), -1.0, 1.0))
        num_categories = net.output_shape[1]
        conf = np.zeros([num_categories, num_categories], np.int64)
        done = 0
        self._start_progress("fakes")
        while done < self.num_images:
            logits_np, layout_np, segments_np = tflib.run([logits, cond[1], cond[2]])
            take = min(self.num_images - done, len(logits_np))
            # Each pixel's category: that of its most covered slot (-1, ignored, for an empty slot).
            target = seg_lib.category_map_np(layout_np[:take].argmax(axis=1), segments_np[:take, :, 0])
            if target.max() >= num_categories:
                raise UserError("%s: the layouts have category %d; the segmenter %s knows %d"
                                % (self.name, target.max(), self.feature_net, num_categories))
            conf += seg_lib.confusion(logits_np[:take].argmax(axis=1), target, num_categories)
            done += take
            self._report_progress("fakes", done, self.num_images)
        self._report_result(seg_lib.mean_iou(conf))


class LayoutDiversity(metric_base.MetricBase):
    """div_scenes (module docstring): num_images = layouts x per_layout images."""

    def __init__(self, per_layout=8, **kwargs):
        super().__init__(**kwargs)
        self.per_layout = int(per_layout)
        if self.per_layout < 2 or self.num_images < self.per_layout:
            raise UserError("%s: needs at least 2 images per layout and %d images (got %d)"
                            % (self.name, self.per_layout, self.num_images))

    def _evaluate(self, Gs, Gs_kwargs, num_gpus):
        del num_gpus
        require_layout_model(Gs, self.name)
        net = metric_base.load_feature_net(self.feature_net, self._nets_dir, self._cache_dir)
        m = self.per_layout
        latents = tf.random_normal([m] + Gs.input_shape[1:])
        cond = tuple(tf.tile(c[:1], [m] + [1] * (c.shape.ndims - 1)) for c in self._fake_cond_tf(Gs, 1))
        images = Gs.get_output_for(latents, *cond, return_as_list=True, **Gs_kwargs)[0]
        feats = net.get_output_for(tflib.convert_images_to_uint8(tf.cast(images, tf.float32)))   # [M, F]
        distances = []
        self._start_progress("fakes")
        for done in range(m, self.num_images + 1, m):
            f = tflib.run(feats).astype(np.float64)
            d = np.sqrt(np.maximum(((f[:, None] - f[None]) ** 2).sum(-1), 0))
            distances.append(d[np.triu_indices(m, 1)].mean())
            self._report_progress("fakes", done, self.num_images)
        self._report_result(float(np.mean(distances)))
