"""Pickles written by the pre-refactor training/networks.py (tests/make_prerefactor_fixture.py,
run once at commit d812baf) still load and compute their stored outputs, and today's
networks.py, rebuilt with the same static kwargs, has exactly the same variables (names and
shapes) and gives the same images, attention maps, latents and D scores for the same weights.

Configs: GANsformer duplex (kmeans, img2ltnt, ltnt2ltnt, gates, positions) and iterative
gansformer (16x8, labels), simplex (latent keys, SAGAN, latent stem), k-GAN merges (softmax,
leaves, max), StyleGAN2, GAN, and a D with aggregator attention."""

import lzma
import os
import pickle

os.environ.setdefault("DNNLIB_OPS_IMPL", "ref")

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import dnnlib.tflib as tflib

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "prerefactor_nets.pkl.xz")
FUNCS = dict(G="training.networks.Generator", D="training.networks.Discriminator")


def _entries():
    with lzma.open(FIXTURE, "rb") as f:
        return pickle.load(f)


ENTRIES = _entries()


def _outputs(kind, net, inputs):
    """The outputs the fixture stored, computed by net (as make_prerefactor_fixture.run_g / run_d)."""
    if kind == "D":
        return dict(scores=tf.get_default_session().run(
            net.get_output_for(tf.constant(inputs["images"]), tf.constant(inputs["c"]))))
    images, maps, ws = net.get_output_for(tf.constant(inputs["z"]), tf.constant(inputs["c"]), truncation_psi=0.7,
                                          return_ws=True)
    k = inputs["mask"].shape[2]
    syn = net.components.synthesis
    pos = net.vars["ltnt_emb/emb"] if "ltnt_emb/emb" in net.vars else tf.zeros([k, syn.static_kwargs.w_dim])
    syn_out = syn.get_output_for(ws, pos, tf.constant(inputs["mask"]), attention_dropout=0.0)
    names = ["images", "maps", "ws", "syn_images", "syn_maps", "syn_latents"]
    return dict(zip(names, tf.get_default_session().run([images, maps, ws] + list(syn_out))))


def _check_close(got, want, what):
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name].shape == want[name].shape, "%s %s: shape %s != %s" % (what, name, got[name].shape,
                                                                                want[name].shape)
        # Float re-association (an equal product computed in another order) moves values by a few
        # ulps of the tensor's scale, not of each element: the absolute tolerance follows the scale.
        scale = max(1.0, float(np.abs(want[name]).max())) if want[name].size else 1.0
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=2e-5 * scale, err_msg="%s %s" % (what, name))


def _shapes(net):
    return {name: var.shape.as_list() for name, var in net.vars.items()}


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_prerefactor_pickle_matches_current_code(tf_session, name):
    entry = ENTRIES[name]
    old = pickle.loads(entry["net"])                     # built by the source stored in the pickle
    _check_close(_outputs(entry["kind"], old, entry["inputs"]), entry["outputs"], name + " (stored source)")
    new = old.convert(FUNCS[entry["kind"]])               # today's training/networks.py, same kwargs
    assert _shapes(new) == _shapes(old)
    assert sorted(new.trainables) == sorted(old.trainables)
    _check_close(_outputs(entry["kind"], new, entry["inputs"]), entry["outputs"], name + " (current source)")
