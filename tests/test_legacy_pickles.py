"""Official-format (G, D, Gs) pickles whose embedded source is TF-1 code load, build and run
under TF 2.x and compute what their stored variables imply; damaged or foreign pickles give
one error naming the file."""

import pickle

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import dnnlib.tflib as tflib
from dnnlib.tflib.tf1_compat import patch_tf1_source
from dnnlib.util import UserError
from training import misc

import legacy_sources as legacy


def _values(seed):
    rng = np.random.RandomState(seed)
    return {net: legacy.random_values(net, rng) for net in ("G", "G_mapping", "G_synthesis", "D")}


@pytest.fixture(scope="module")
def legacy_pkl(tmp_path_factory):
    G_values, Gs_values = _values(1), _values(2)
    path = str(tmp_path_factory.mktemp("legacy") / "network-snapshot-000123.pkl")
    legacy.write_legacy_pickle(path, G_values, G_values["D"], Gs_values)
    return path, G_values, Gs_values


def test_source_patch_removes_tf1_constructs():
    patched = patch_tf1_source(legacy.LEGACY_SOURCE)
    assert "import tensorflow as tf" not in patched and "import tensorflow.contrib" not in patched
    assert "np.fromstring" not in patched and ".tostring()" not in patched
    assert patch_tf1_source(patched) == patched  # Idempotent.
    compile(patched, "<patched>", "exec")


def test_legacy_pickle_loads_and_matches_numpy(tf_session, legacy_pkl):
    path, G_values, Gs_values = legacy_pkl
    G, D, Gs = misc.load_network_pkl(path)
    assert (G.name, D.name, Gs.name) == ("G", "D", "Gs")
    # Variables by their official names, components included.
    for name in ("G_mapping/LayerNorm/gamma", "G_synthesis/4x4/Conv/InstanceNorm/beta", "dlatent_avg"):
        assert name in Gs.vars
    assert set(Gs.components.mapping.own_vars) == set(legacy.VARIABLE_SHAPES["G_mapping"])
    assert set(Gs.components.synthesis.own_vars) == set(legacy.VARIABLE_SHAPES["G_synthesis"])
    assert set(D.own_vars) == set(legacy.VARIABLE_SHAPES["D"])
    assert Gs.static_kwargs.latent_size == legacy.LATENT  # Old kwarg names kept as stored.

    z = np.random.RandomState(3).randn(5, legacy.LATENT).astype(np.float32)
    for net, values in ((Gs, Gs_values), (G, G_values)):
        images = net.run(z, None, truncation_psi=0.5, randomize_noise=False, minibatch_size=3)
        assert images.shape == (5, legacy.CHANNELS, legacy.RES, legacy.RES)
        np.testing.assert_allclose(images, legacy.numpy_generator(values, z, psi=0.5), rtol=1e-4, atol=1e-4)
    # Truncation psi is a dynamic kwarg of the stored G_main.
    np.testing.assert_allclose(Gs.run(z, None, truncation_psi=0.9, randomize_noise=False),
                               legacy.numpy_generator(Gs_values, z, psi=0.9), rtol=1e-4, atol=1e-4)

    reals = np.random.RandomState(4).randn(4, legacy.CHANNELS, legacy.RES, legacy.RES).astype(np.float32)
    np.testing.assert_allclose(D.run(reals, None), legacy.numpy_discriminator(G_values["D"], reals),
                               rtol=1e-4, atol=1e-4)

    # Random noise path (tf.random_normal) builds and runs too.
    assert np.all(np.isfinite(Gs.run(z, None, randomize_noise=True)))


def test_loaded_legacy_network_repickles(tf_session, legacy_pkl):
    path, _, Gs_values = legacy_pkl
    _, _, Gs = misc.load_network_pkl(path)
    data = pickle.dumps(Gs, protocol=pickle.HIGHEST_PROTOCOL)
    z = np.random.RandomState(5).randn(3, legacy.LATENT).astype(np.float32)
    with tf.Graph().as_default(), tflib.create_session().as_default():
        Gs2 = pickle.loads(data)
        np.testing.assert_allclose(Gs2.run(z, None, randomize_noise=False),
                                   legacy.numpy_generator(Gs_values, z), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("version", [2, 3])
def test_older_state_versions_load(tf_session, tmp_path, version):
    values = _values(6)
    state = legacy.network_state("D", "D_stylegan2", legacy.D_KWARGS, values["D"], version=version)
    assert "components" not in state  # Versions before 4 may lack it.
    path = str(tmp_path / "d.pkl")
    with open(path, "wb") as file:
        pickle.dump(legacy.NetworkState(state), file, protocol=2)
    D = misc.load_pkl(path)
    reals = np.random.RandomState(7).randn(2, legacy.CHANNELS, legacy.RES, legacy.RES).astype(np.float32)
    np.testing.assert_allclose(D.run(reals, None), legacy.numpy_discriminator(values["D"], reals),
                               rtol=1e-4, atol=1e-4)


def _write(path, payload):
    with open(path, "wb") as file:
        file.write(payload)
    return str(path)


def test_bad_pickles_give_one_error_naming_the_file(tf_session, tmp_path, legacy_pkl):
    good = open(legacy_pkl[0], "rb").read()
    values = _values(8)
    future = legacy.network_state("D", "D_stylegan2", legacy.D_KWARGS, values["D"], version=7)
    cases = {
        "truncated.pkl": good[: len(good) // 2],
        "garbage.pkl": np.random.RandomState(9).bytes(300),
        "empty.pkl": b"",
        "a-dict.pkl": pickle.dumps({"G": 1}),
        "two-items.pkl": pickle.dumps((1, 2)),
        "future-version.pkl": pickle.dumps((legacy.NetworkState(future),) * 3),
    }
    for file_name, payload in cases.items():
        path = _write(tmp_path / file_name, payload)
        with pytest.raises(UserError) as info:
            misc.load_network_pkl(path)
        message = str(info.value)
        assert path in message and "\n" not in message, (file_name, message)
    assert "version 7" in message
    with pytest.raises(UserError, match="missing.pkl"):
        misc.load_network_pkl(str(tmp_path / "missing.pkl"))


def test_unpickling_without_session_is_a_clear_error(legacy_pkl):
    with tf.Graph().as_default():
        with pytest.raises(UserError, match="init_tf"):
            misc.load_network_pkl(legacy_pkl[0])


def test_tf1_contrib_shim(tf_session):
    from dnnlib.tflib import network
    from dnnlib.tflib.tf1_compat import tf1_compat
    assert network.tf1_compat is tf1_compat  # Networks re-saved before the move import it from network.
    x = np.random.RandomState(10).randn(3, 4, 2, 5).astype(np.float32)  # NCHW.
    with tf.variable_scope("Net"):
        y_train = tf1_compat.contrib.layers.batch_norm(tf.constant(x), data_format="NCHW", center=True, scale=True)
        y_eval = tf1_compat.contrib.layers.batch_norm(tf.constant(x), data_format="NCHW", is_training=False, scale=True,
                                                      scope="BatchNorm", reuse=True)
    names = sorted(v.name for v in tf.global_variables())
    assert names == ["Net/BatchNorm/%s:0" % n for n in ("beta", "gamma", "moving_mean", "moving_variance")]
    tf_session.run(tf.global_variables_initializer())
    gamma = [v for v in tf.global_variables() if v.name == "Net/BatchNorm/gamma:0"][0]
    tf_session.run(gamma.assign(np.arange(1, 5, dtype=np.float32)))
    y_train, y_eval = tf_session.run([y_train, y_eval])
    mean, var = x.mean(axis=(0, 2, 3), keepdims=True), x.var(axis=(0, 2, 3), keepdims=True)
    g = np.arange(1, 5).reshape(1, 4, 1, 1)
    np.testing.assert_allclose(y_train, (x - mean) / np.sqrt(var + 1e-3) * g, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(y_eval, x / np.sqrt(1 + 1e-3) * g, rtol=1e-4, atol=1e-4)  # Moving stats 0, 1.
    assert len(tf.get_collection(tf.GraphKeys.UPDATE_OPS)) == 2
    assert tf_session.run(tf1_compat.contrib.memory_stats.MaxBytesInUse()) == 0
    assert tf1_compat.VERSION == tf.version.VERSION and tf1_compat.get_variable is tf.get_variable
    with pytest.raises(AttributeError, match="tf.contrib.slim"):
        tf1_compat.contrib.slim
