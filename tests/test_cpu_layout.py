"""training/networks.py's CPU layout against the reference layouts: on a CPU, G and D carry images
NHWC between their blocks (image_format) and transpose only at their boundaries; the references
are the GPU graph (NCHW everywhere, fused modulated convs) and the CPU graph with NCHW between the
blocks (image_format forced). Each block with data_format NHWC against NCHW, then whole G_synthesis
and Discriminator networks built each way with the same variables: values and gradients with
respect to the inputs and every variable, on random inputs with deliberately unequal sizes
(h != w, channels, latents, heads)."""

import os

os.environ.setdefault("DNNLIB_OPS_IMPL", "ref")

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from training import networks

RK = [1, 3, 3, 1]


def _nhwc(x):
    return tf.transpose(x, [0, 2, 3, 1])


def _nchw(x):
    return tf.transpose(x, [0, 3, 1, 2])


# The forms a network or block is built in: the CPU one (NHWC carried), the CPU one with NCHW
# between the blocks (a transpose pair around each conv, the form before NHWC was carried) and
# the GPU one (NCHW, fused modulated convs), as (on_cpu, image_format override or None).
FORMS = {"nhwc": (True, None), "cpu_nchw": (True, "NCHW"), "gpu": (False, None)}


def _side(sess, monkeypatch, build, inputs, form, seed):
    """build(*inputs) under scope <form> with on_cpu (and image_format) forced: its outputs,
    variables and the gradients of a random weighted sum of the outputs w.r.t. the inputs and
    trainable variables."""
    cpu, layout = FORMS[form]
    monkeypatch.setattr(networks, "on_cpu", lambda x: cpu)
    if layout is not None:
        monkeypatch.setattr(networks, "image_format", lambda t: layout)
    with tf.variable_scope(form):
        outs = [o for o in build(*inputs) if o is not None]
    monkeypatch.undo()
    rng = np.random.RandomState(seed)
    loss = tf.add_n([tf.reduce_sum(o * tf.constant(rng.randn(*o.shape.as_list()), o.dtype)) for o in outs])
    trainables = sorted(tf.trainable_variables(form + "/"), key=lambda v: v.name)
    grads = tf.gradients(loss, list(inputs) + trainables)
    variables = sorted(tf.global_variables(form + "/"), key=lambda v: v.name)
    sess.run(tf.variables_initializer(variables))
    return variables, outs, [g for g in grads if g is not None], len(grads)


def _check_same(sess, monkeypatch, build, inputs, refs=("gpu",), seed=1):
    """The NHWC form and each reference form agree: same variable names and shapes, and with the
    same weights the same outputs and gradients. refs: {form: tolerance on each tensor relative to
    its largest element}, or forms checked at 2e-5."""
    refs = refs if isinstance(refs, dict) else {form: 2e-5 for form in refs}
    got_vars, got_outs, got_grads, n_got = _side(sess, monkeypatch, build, inputs, "nhwc", seed)
    for form, tol in refs.items():
        ref_vars, ref_outs, ref_grads, n_ref = _side(sess, monkeypatch, build, inputs, form, seed)
        strip = lambda v: v.name.split("/", 1)[1]
        assert [strip(v) for v in got_vars] == [strip(v) for v in ref_vars]
        assert [v.shape.as_list() for v in got_vars] == [v.shape.as_list() for v in ref_vars]
        assert n_got == n_ref and len(got_grads) == len(ref_grads)
        assigns = []   # the same weights on both sides, random where zero-initialised (biases, gains)
        for a, b, value in zip(got_vars, ref_vars, sess.run(ref_vars)):
            if not value.any():
                value = np.asarray(0.5 * np.random.RandomState(seed).randn(*value.shape), np.float32)
            assigns += [tf.assign(a, value), tf.assign(b, value)]
        sess.run(assigns)
        ref = sess.run(ref_outs + ref_grads)
        got = sess.run(got_outs + got_grads)
        for i, (a, b) in enumerate(zip(got, ref)):
            assert a.shape == b.shape, "%s, tensor %d: shape %s != %s" % (form, i, a.shape, b.shape)
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=tol * max(1.0, np.abs(b).max(initial=0)),
                                       err_msg="%s, tensor %d" % (form, i))


# ----------------------------------------------------------------------------
# Blocks: data_format NHWC (input and outputs transposed here) against NCHW.


def _in_format(fn):
    """fn(x, ..., data_format) as a function of an NCHW x whose first output is NCHW either way:
    NHWC (x transposed in and out here) where image_format says so, else NCHW."""
    def build(x, *rest):
        fmt = networks.image_format(x)
        out = fn(_nhwc(x) if fmt == "NHWC" else x, *rest, data_format=fmt)
        outs = out if isinstance(out, tuple) else (out,)
        return (_nchw(outs[0]) if fmt == "NHWC" else outs[0],) + tuple(outs[1:])
    return build


BLOCKS = {   # (x [B, I, h, w] in data_format, y [B, D], data_format) -> image in data_format
    "conv3x3": lambda x, y, data_format: networks.conv2d(x, 4, 3, data_format=data_format),
    "conv3x3_up": lambda x, y, data_format: networks.conv2d(x, 4, 3, up=True, resample_kernel=RK,
                                                            data_format=data_format),
    "conv3x3_down": lambda x, y, data_format: networks.conv2d(x, 4, 3, down=True, resample_kernel=RK,
                                                              data_format=data_format),
    "conv1x1_down": lambda x, y, data_format: networks.conv2d(x, 4, 1, down=True, resample_kernel=RK,
                                                              data_format=data_format),
    "modconv": lambda x, y, data_format: networks.modulated_conv2d(x, y, 4, 3, data_format=data_format),
    "modconv_up": lambda x, y, data_format: networks.modulated_conv2d(x, y, 4, 3, up=True, resample_kernel=RK,
                                                                      data_format=data_format),
    "modconv_1x1_nodemod": lambda x, y, data_format: networks.modulated_conv2d(x, y, 3, 1, demodulate=False,
                                                                               data_format=data_format),
    "plainconv_up": lambda x, y, data_format: networks.modulated_conv2d(x, y, 4, 3, up=True, resample_kernel=RK,
                                                                        modulate=False, data_format=data_format),
    "mbstd": lambda x, y, data_format: networks.minibatch_stddev(x, 2, 2, data_format=data_format),
    "torgb_extra": lambda x, y, data_format: networks.torgb_block(x, y, 3, extra_style=y * 0.5, resample_kernel=RK,
                                                                  data_format=data_format),
    "self_attention": lambda x, y, data_format: networks.image_self_attention(
        x, tf.constant(np.random.RandomState(2).randn(60, 4).astype(np.float32)), 2, 0.0, data_format=data_format),
}


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_block_nhwc_matches_nchw(tf_session, monkeypatch, name):
    rng = np.random.RandomState(7)
    x = tf.constant(rng.randn(4, 6, 6, 10).astype(np.float32))    # [B, I, h, w], h != w
    y = tf.constant(rng.randn(4, 7).astype(np.float32))           # [B, D]
    _check_same(tf_session, monkeypatch, _in_format(BLOCKS[name]), (x, y), ("gpu", "cpu_nchw"))


@pytest.mark.parametrize("kmeans", [False, True])
def test_synthesis_layer_with_attention_nhwc_matches_nchw(tf_session, monkeypatch, kmeans):
    """Modulated conv -> bipartite attention (tokens a reshape in NHWC) -> SAGAN -> noise -> bias + lrelu."""
    rng = np.random.RandomState(3)
    x = tf.constant(rng.randn(2, 6, 4, 8).astype(np.float32))     # [B, I, h, w]
    style = tf.constant(rng.randn(2, 5).astype(np.float32))       # [B, D]
    latents = tf.constant(rng.randn(2, 3, 5).astype(np.float32))  # [B, k, D]
    pos = tf.constant(rng.randn(8 * 16, 6).astype(np.float32))    # [h'*w', P]
    noise = tf.constant(rng.randn(1, 1, 8, 16).astype(np.float32))
    attention = dict(grid_pos=pos, mask=tf.ones([2, 1, 3]), key_pos=tf.constant(rng.randn(3, 5).astype(np.float32)),
                     num_heads=2, integration="mul", norm="layer", kmeans=kmeans, img_gate=True, ltnt_gate=True,
                     img2ltnt=True, ltnt2ltnt=True)
    sagan = dict(pos=pos, num_heads=2, attention_dropout=0.0)

    def layer(x, style, latents, data_format):
        return networks.synthesis_layer(x, style, 4, up=True, noise=noise, latents=latents, attention=attention,
                                        sagan=sagan, resample_kernel=RK, data_format=data_format)
    _check_same(tf_session, monkeypatch, _in_format(layer), (x, style, latents), ("gpu", "cpu_nchw"))


# ----------------------------------------------------------------------------
# Whole networks: G_synthesis and Discriminator, NHWC carried on CPU vs the NCHW GPU graph.


# Against the CPU form with NCHW between the blocks: the same convolutions, so tight; against the
# GPU form: the fused modulated conv rounds differently, which the deep attention stacks amplify in
# the gradients (measured: up to 1.1e-3 of a tensor's largest element, duplex_iterative, the same
# with or without NHWC carried).
NETWORK_REFS = {"cpu_nchw": 2e-5, "gpu": 4e-3}

G_CONFIGS = {
    "gansformer_resnet": dict(transformer=True, num_latents=4, kmeans=True, integration="mul", norm="layer",
                              use_pos=True, architecture="resnet", num_heads=2),
    "duplex_iterative": dict(transformer=True, num_latents=4, kmeans=True, iterative=True, kmeans_iters=2,
                             img2ltnt=True, ltnt2ltnt=True, img_gate=True, ltnt_gate=True, use_pos=True,
                             architecture="skip", integration="both", norm="instance", start_res=3),
    "simplex_sagan_stem": dict(transformer=True, num_latents=3, img2img=3, latent_stem=True, architecture="orig",
                               use_pos=True, pos_type="linear"),
    "stylegan2_skip": dict(num_latents=1, architecture="skip"),
    "kgan_softmax": dict(num_latents=3, kgan=True, merge_type="softmax", merge_layer=2, architecture="resnet"),
    "gan_nostyle": dict(num_latents=1, style=False, local_noise=False, architecture="orig"),
}


@pytest.mark.parametrize("name", sorted(G_CONFIGS))
def test_g_synthesis_nhwc_matches_nchw(tf_session, monkeypatch, name):
    kw = dict(w_dim=8, resolution=32, ratio=0.5, channel_base=256, channel_max=16, noise_mode="const",
              attention_dropout=0.0, **G_CONFIGS[name])
    K, R = kw["num_latents"], 5
    k = K - 1 if kw.get("transformer") else 0
    rng = np.random.RandomState(5)
    ws = tf.constant(rng.randn(2, K, 2 * R - 1, 8).astype(np.float32))   # [B, K, L, D]
    latent_pos = tf.constant(rng.randn(k, 8).astype(np.float32))
    mask = tf.constant((rng.rand(2, 1, k) > 0.3).astype(np.float32))
    build = lambda ws, latent_pos: networks.G_synthesis(ws, latent_pos, mask, **kw)
    _check_same(tf_session, monkeypatch, build, (ws, latent_pos), NETWORK_REFS)


D_CONFIGS = {
    "resnet_mbstd": dict(architecture="resnet", mbstd_group_size=2, mbstd_num_channels=2),
    "resnet_transformer_sagan": dict(architecture="resnet", transformer=True, components_num=3, latent_size=24,
                                     num_heads=2, ltnt2ltnt=True, img2img=3, use_pos=True, start_res=3),
    "skip": dict(architecture="skip", mbstd_group_size=2),
    "orig_nombstd": dict(architecture="orig", mbstd_group_size=0),
}


@pytest.mark.parametrize("name", sorted(D_CONFIGS))
def test_discriminator_nhwc_matches_nchw(tf_session, monkeypatch, name):
    kw = dict(num_channels=3, resolution=32, ratio=0.5, channel_base=256, channel_max=16, attention_dropout=0.0,
              **D_CONFIGS[name])
    rng = np.random.RandomState(9)
    images = tf.constant(rng.randn(4, 3, 16, 32).astype(np.float32))     # [B, C, h, w]
    labels = tf.zeros([4, 0])
    _check_same(tf_session, monkeypatch, lambda images: (networks.Discriminator(images, labels, **kw),), (images,),
                NETWORK_REFS)
