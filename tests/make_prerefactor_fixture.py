"""Write tests/data/prerefactor_nets.pkl.xz, the regression fixture of test_prerefactor_pickles.py.

Run ONCE, on main at commit d812baf (before G_synthesis / attention_layer were split into pure
blocks), from the repository root:

    python tests/make_prerefactor_fixture.py

It builds tiny networks with deliberately unequal sizes (k = 2 or 3 latents of widths 5-8, 2
heads, channels 12 / 12 / 6, 16x16 and 16x8 images, batch 3), sets every variable (zero-init
biases, noise strengths and dlatent_avg included) to seeded random values, and stores, per
network, the pickled tflib.Network (official state format, carrying the pre-refactor source of
training/networks.py), the inputs and the outputs computed by that code: images, attention
maps, ws and synthesis latents for G (also with one region latent masked out), scores for D.
The file is xz-compressed because every Network state carries networks.py's source (G three
times: G, G_mapping, G_synthesis), which xz stores almost once.

Do not rerun it after the refactor: the point is that its numbers came from the old code (it
also imports training.presets, which later moved into training.options)."""

import lzma
import os
import pickle
import sys

os.environ.setdefault("DNNLIB_OPS_IMPL", "ref")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np
import tensorflow.compat.v1 as tf

import dnnlib.tflib as tflib
from training import networks, options

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "prerefactor_nets.pkl.xz")
BATCH = 3
TINY = dict(channel_base=48, channel_max=12, mapping_num_layers=2, noise_mode="const", style_mixing=0.0)

# name -> (preset, overrides). G: unequal widths (latents 5 / 7 / 8, channels 12 / 12 / 6).
G_CONFIGS = {
    # (a) GANformer duplex: kmeans (2 iterations), img2ltnt + ltnt2ltnt latent updates, both gates,
    # positions, integration 'both' with instance norm.
    "duplex": ("duplex", dict(resolution=16, ratio=1.0, components_num=3, latent_size=15, num_heads=2, pos_dim=8,
                              ltnt_gate=True, img_gate=True, ltnt2ltnt=True, kmeans_iters=2, integration="both",
                              norm="instance")),
    # (a') GANformer default: iterative kmeans carried across layers, resnet / ltnt2ltnt mapping,
    # labels, trainable positions, non-square 16x8.
    "ganformer_iterative": ("ganformer", dict(resolution=16, ratio=0.5, components_num=3, latent_size=24,
                                              num_heads=2, iterative=True, c_dim=2, pos_type="trainable")),
    # (b) simplex: latent keys with positions, SAGAN self-attention at 8x8, latent stem, orig arch.
    "simplex": ("simplex", dict(resolution=16, ratio=1.0, components_num=2, latent_size=14, num_heads=2, use_pos=True,
                                pos_dim=8, pos_type="linear", g_img2img=3, latent_stem=True, g_architecture="orig",
                                start_res=3)),
    # (c) k-GAN merges: softmax mid-network (skip arch), leaves at the stem (resnet), max at the end.
    "kgan_softmax": ("kGAN", dict(resolution=16, ratio=1.0, components_num=3, latent_size=15, merge_type="softmax",
                                  merge_layer=2, g_architecture="skip")),
    "kgan_leaves": ("kGAN", dict(resolution=16, ratio=0.5, components_num=3, latent_size=15, merge_type="leaves",
                                 merge_layer=0, merge_same=True, g_architecture="resnet")),
    "kgan_max": ("kGAN", dict(resolution=16, ratio=1.0, components_num=2, latent_size=14, merge_type="max",
                              merge_layer=-1, g_architecture="orig")),
    # (d) baselines.
    "stylegan2": ("StyleGAN2", dict(resolution=16, ratio=1.0, components_num=1, latent_size=7)),
    "gan": ("GAN", dict(resolution=16, ratio=0.5, components_num=1, latent_size=7)),
}
# (e) D with aggregator attention, ltnt2ltnt, SAGAN at 8x8, positions, labels.
D_CONFIG = ("ganformer", dict(resolution=16, ratio=1.0, components_num=3, latent_size=18, num_heads=2, c_dim=2,
                              d_transformer=True, d_ltnt2ltnt=True, d_img2img=3, d_use_pos=True, d_start_res=3,
                              pos_dim=8, mbstd_group_size=3))


def randomize(net, seed):
    """Every variable to seeded random values (weights N(0, 1) as at init, the rest 0.5 N(0, 1)),
    rounded to float16 precision so that the stored float32 values compress."""
    rnd = np.random.RandomState(seed)
    values = {}
    for name, var in sorted(net.vars.items()):
        scale = 1.0 if name.split("/")[-1].startswith(("weight", "const", "noise", "toasgn")) else 0.5
        values[var] = np.asarray(scale * rnd.randn(*var.shape.as_list()), np.float16).astype(np.float32)
    tflib.set_vars(values)


def g_entry(name, preset, over, seed):
    gkw, _ = options.resolve_model(preset, **dict(TINY, **over))
    G = tflib.Network("G", func_name=networks.Generator, **gkw)
    tflib.init_uninitialized_vars()
    randomize(G, seed)
    rnd = np.random.RandomState(seed + 100)
    z = rnd.randn(BATCH, *G.input_shape[1:]).astype(np.float32)
    c_dim = gkw.get("c_dim", 0)
    c = np.eye(max(c_dim, 2), dtype=np.float32)[[0, 1, 0]][:, :c_dim]
    k = gkw["components_num"] if gkw.get("transformer") else 0
    mask = np.ones([BATCH, 1, k], np.float32)
    if k:
        mask[1, 0, 1] = 0.0                                     # sample 1 drops region latent 1
    inputs = dict(z=z, c=c, mask=mask)
    outputs = run_g(G, inputs)
    return dict(kind="G", net=G, inputs=inputs, outputs=outputs)


def run_g(G, inputs):
    """The stored outputs of a G: its own (truncation 0.7) and its synthesis' under a mask."""
    images, maps, ws = G.get_output_for(tf.constant(inputs["z"]), tf.constant(inputs["c"]), truncation_psi=0.7,
                                        return_ws=True)
    k = inputs["mask"].shape[2]
    pos = G.vars["ltnt_emb/emb"] if "ltnt_emb/emb" in G.vars else tf.zeros([k, G.components.synthesis.static_kwargs.w_dim])
    syn = G.components.synthesis.get_output_for(ws, pos, tf.constant(inputs["mask"]), attention_dropout=0.0)
    names = ["images", "maps", "ws", "syn_images", "syn_maps", "syn_latents"]
    return dict(zip(names, tf.get_default_session().run([images, maps, ws] + list(syn))))


def d_entry(seed):
    _, dkw = options.resolve_model(D_CONFIG[0], **dict(TINY, **D_CONFIG[1]))
    D = tflib.Network("D", func_name=networks.Discriminator, **dkw)
    tflib.init_uninitialized_vars()
    randomize(D, seed)
    rnd = np.random.RandomState(seed + 100)
    images = rnd.randn(BATCH, *D.input_shape[1:]).astype(np.float32)
    c = np.eye(2, dtype=np.float32)[[1, 0, 1]]
    inputs = dict(images=images, c=c)
    return dict(kind="D", net=D, inputs=inputs, outputs=run_d(D, inputs))


def run_d(D, inputs):
    scores = D.get_output_for(tf.constant(inputs["images"]), tf.constant(inputs["c"]))
    return dict(scores=tf.get_default_session().run(scores))


def main():
    entries = {}
    for i, (name, (preset, over)) in enumerate(G_CONFIGS.items()):
        with tf.Graph().as_default(), tflib.create_session().as_default():
            tf.set_random_seed(1000 + i)
            e = g_entry(name, preset, over, seed=10 + i)
            entries[name] = dict(e, net=pickle.dumps(e["net"], protocol=pickle.HIGHEST_PROTOCOL))
            print(name, {n: v.shape for n, v in e["outputs"].items()})
    with tf.Graph().as_default(), tflib.create_session().as_default():
        tf.set_random_seed(2000)
        e = d_entry(seed=99)
        entries["d_transformer"] = dict(e, net=pickle.dumps(e["net"], protocol=pickle.HIGHEST_PROTOCOL))
        print("d_transformer", {n: v.shape for n, v in e["outputs"].items()})
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with lzma.open(OUT, "wb", preset=9) as f:
        pickle.dump(entries, f, protocol=pickle.HIGHEST_PROTOCOL)
    print("wrote %s (%d bytes)" % (OUT, os.path.getsize(OUT)))


if __name__ == "__main__":
    main()
