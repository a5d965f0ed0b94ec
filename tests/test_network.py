"""tflib.Network: evaluation against numpy, copies, moving averages, run() in minibatches and
over two virtual CPU devices, components, clone2, pickling.

The build functions below are pickled with their module source (this file), so the module
has no side effects at import."""

import os
import pickle
import warnings

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import dnnlib.tflib as tflib

# Deliberately unequal sizes: batch 7, z 5, c 3, hidden 6, out 4.
Z, C, H, OUT = 5, 3, 6, 4


def toy_mapping(z_in, hidden=H, **_kwargs):
    """z [B, Z] -> lrelu(z W + b) [B, hidden]."""
    z_in.set_shape([None, Z])
    with tf.variable_scope("Dense"):
        w = tf.get_variable("weight", [Z, hidden], initializer=tf.initializers.random_normal())
        b = tf.get_variable("bias", [hidden], initializer=tf.initializers.random_normal())
        h = tf.nn.leaky_relu(tf.matmul(z_in, w) + b, 0.2)
    return tf.identity(h, name="h_out")


def toy_main(z_in, c_in, hidden=H, out_dim=OUT, scale=1.0, components=None, is_template_graph=False, **_kwargs):
    """(z, c) -> (mapping(z) V + c U + b + avg) * scale [B, out_dim], and mapping(z)."""
    c_in.set_shape([None, C])
    if "mapping" not in components:
        components.mapping = tflib.Network("Toy_mapping", func_name=toy_mapping, hidden=hidden)
    h = components.mapping.get_output_for(z_in)
    v = tf.get_variable("V", [hidden, out_dim], initializer=tf.initializers.random_normal())
    u = tf.get_variable("U", [C, out_dim], initializer=tf.initializers.random_normal())
    b = tf.get_variable("bias", [out_dim], initializer=tf.initializers.random_normal())
    avg = tf.get_variable("avg", [out_dim], initializer=tf.initializers.random_normal(), trainable=False)
    y = (tf.matmul(h, v) + tf.matmul(c_in, u) + b + avg) * scale
    return tf.identity(y, name="y_out"), tf.identity(h, name="h_out")


def toy_main_newnames(z_in, c_in, z_dim=Z, hidden=H, out_dim=OUT, components=None, **_kwargs):
    """toy_main with a kwarg under its new name (for convert and KWARG_ALIASES)."""
    assert z_dim == Z
    return toy_main(z_in, c_in, hidden=hidden, out_dim=out_dim, components=components)


def toy_images(x_in, **_kwargs):
    """x [B, 2, 4, 4] -> tanh(x) (an image in [-1, 1])."""
    x_in.set_shape([None, 2, 4, 4])
    return tf.tanh(x_in + tf.get_variable("shift", [], initializer=tf.initializers.zeros()))


def double_inputs(z, c):
    """An input transform (top-level, so it can be named)."""
    return 2.0 * z, c


# -- numpy reference ----------------------------------------------------------------------

def np_forward(values, z, c, scale=1.0):
    pre = z @ values["Toy_mapping/Dense/weight"] + values["Toy_mapping/Dense/bias"]
    h = np.where(pre >= 0, pre, 0.2 * pre)
    y = (h @ values["V"] + c @ values["U"] + values["bias"] + values["avg"]) * scale
    return y, h


def make_net(name="G", **kwargs):
    net = tflib.Network(name, func_name=toy_main, **kwargs)
    return net, dict(zip(net.vars.keys(), tflib.run(list(net.vars.values()))))


def inputs(batch=7, seed=0):
    rng = np.random.RandomState(seed)
    return rng.randn(batch, Z).astype(np.float32), rng.randn(batch, C).astype(np.float32)


# -- tests --------------------------------------------------------------------------------

def test_structure_and_variable_names(tf_session):
    G, _ = make_net()
    assert G.input_names == ["z_in", "c_in"]
    assert G.input_shapes == [[None, Z], [None, C]] and G.input_shape == [None, Z]
    assert G.output_shapes == [[None, OUT], [None, H]] and G.output_names == ["y_out", "h_out"]
    assert list(G.own_vars) == ["V", "U", "bias", "avg"]
    assert set(G.vars) == {"V", "U", "bias", "avg", "Toy_mapping/Dense/weight", "Toy_mapping/Dense/bias"}
    assert "avg" not in G.trainables and "Toy_mapping/Dense/weight" in G.trainables
    assert G.vars["Toy_mapping/Dense/weight"] is G.components.mapping.vars["Dense/weight"]
    assert G.var_global_to_local[G.vars["V"].name.split(":")[0]] == "V"
    # A second network with the same name gets its own scope and variables.
    G2, _ = make_net()
    assert G2.scope != G.scope and G2.vars["V"] is not G.vars["V"]


def test_get_output_for_matches_numpy(tf_session):
    G, values = make_net()
    z, c = inputs()
    y, h = G.get_output_for(tf.constant(z), tf.constant(c))
    y_none = G.get_output_for(tf.constant(z), None, return_as_list=True)[0]
    y_scaled = G.get_output_for(tf.constant(z), tf.constant(c), scale=-0.5)[0]  # Dynamic kwarg.
    y, h, y_none, y_scaled = tflib.run([y, h, y_none, y_scaled])
    ref_y, ref_h = np_forward(values, z, c)
    np.testing.assert_allclose(y, ref_y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(h, ref_h, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y_none, np_forward(values, z, np.zeros_like(c))[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y_scaled, np_forward(values, z, c, scale=-0.5)[0], rtol=1e-5, atol=1e-5)


def test_find_get_set_var(tf_session):
    G, _ = make_net()
    new = np.arange(OUT, dtype=np.float32)
    G.set_var("bias", new)
    np.testing.assert_array_equal(G.get_var("bias"), new)
    assert G.find_var(G.vars["U"]) is G.vars["U"]
    with pytest.raises(KeyError, match="nonexistent"):
        G.find_var("nonexistent")


def test_clone_copy_vars_and_moving_average(tf_session):
    G, values = make_net()
    Gs = G.clone("Gs")
    assert Gs.scope != G.scope and set(Gs.vars) == set(G.vars)
    cloned = dict(zip(Gs.vars, tflib.run(list(Gs.vars.values()))))
    for name in values:
        np.testing.assert_array_equal(cloned[name], values[name])

    # Independent variables: G changes, Gs does not.
    rng = np.random.RandomState(1)
    G_new = {name: rng.randn(*v.shape).astype(np.float32) for name, v in values.items()}
    tflib.set_vars({G.vars[n]: v for n, v in G_new.items()})
    np.testing.assert_array_equal(Gs.get_var("V"), values["V"])

    # EMA: v <- src + (v - src) * beta; non-trainables with beta_nontrainable.
    ema = Gs.setup_as_moving_average_of(G, beta=0.9, beta_nontrainable=0.25)
    tflib.run(ema)
    for name in values:
        beta = 0.9 if name in G.trainables else 0.25
        expected = G_new[name] + (values[name] - G_new[name]) * beta
        np.testing.assert_allclose(Gs.get_var(name), expected, rtol=1e-5, atol=1e-6)

    # copy_trainables_from leaves non-trainables; copy_own_vars_from leaves components.
    Gs.copy_trainables_from(G)
    np.testing.assert_array_equal(Gs.get_var("V"), G_new["V"])
    assert not np.allclose(Gs.get_var("avg"), G_new["avg"])
    Gs.reset_vars()
    Gs.copy_own_vars_from(G)
    np.testing.assert_array_equal(Gs.get_var("avg"), G_new["avg"])
    assert not np.allclose(Gs.get_var("Toy_mapping/Dense/weight"), G_new["Toy_mapping/Dense/weight"])
    Gs.copy_vars_from(G)
    for name in values:
        np.testing.assert_array_equal(Gs.get_var(name), G_new[name])


def test_copy_vars_skips_shape_mismatch(tf_session):
    G, values = make_net()
    with pytest.warns(UserWarning, match="skipped 3 variables"):
        wide = G.clone("Wide", hidden=H + 2)  # Mapping and V get other shapes; U, bias, avg match.
    assert wide.vars["V"].shape.as_list() == [H + 2, OUT]
    wide.reset_vars()
    with pytest.warns(UserWarning, match="V .*<-"):
        wide.copy_vars_from(G)
    np.testing.assert_array_equal(wide.get_var("U"), values["U"])
    assert wide.get_var("V").shape == (H + 2, OUT)


def test_clone2_shares_variables(tf_session):
    G, values = make_net()
    G_half = G.clone2("G_half", scale=0.5)
    assert G_half.vars["V"] is G.vars["V"] and G_half.components.mapping is G.components.mapping
    z, c = inputs()
    np.testing.assert_allclose(G_half.run(z, c)[0], np_forward(values, z, c, scale=0.5)[0], rtol=1e-5, atol=1e-5)
    G.set_var("bias", values["bias"] + 1)  # Seen through the clone.
    values["bias"] = values["bias"] + 1
    np.testing.assert_allclose(G_half.run(z, c)[0], np_forward(values, z, c, scale=0.5)[0], rtol=1e-5, atol=1e-5)


def test_run_minibatches_transforms_and_aliases(tf_session):
    G, values = make_net()
    z, c = inputs()
    ref_y, ref_h = np_forward(values, z, c)
    y, h = G.run(z, c, minibatch_size=3)  # 3 + 3 + 1.
    np.testing.assert_allclose(y, ref_y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(h, ref_h, rtol=1e-5, atol=1e-5)
    y_alias = G.run(z, c, batch_size=2, return_as_list=True)
    assert isinstance(y_alias, list) and len(y_alias) == 2
    np.testing.assert_allclose(y_alias[0], ref_y, rtol=1e-5, atol=1e-5)
    y_zero_c = G.run(z, None, minibatch_size=4)[0]
    np.testing.assert_allclose(y_zero_c, np_forward(values, z, np.zeros_like(c))[0], rtol=1e-5, atol=1e-5)
    y_doubled = G.run(z, c, input_transform=dict(func=double_inputs))[0]
    np.testing.assert_allclose(y_doubled, np_forward(values, 2 * z, c)[0], rtol=1e-5, atol=1e-5)
    y_named = G.run(z, c, input_transform=dict(func="test_network.double_inputs"))[0]
    np.testing.assert_allclose(y_named, y_doubled, rtol=1e-6)

    imgs = tflib.Network("Img", func_name=toy_images)
    x = np.random.RandomState(2).randn(5, 2, 4, 4).astype(np.float32)
    u8 = imgs.run(x, minibatch_size=2, output_transform=dict(func=tflib.convert_images_to_uint8))
    expected = np.clip(np.floor(np.tanh(x) * 127.5 + 127.5 + 0.5), 0, 255)
    assert u8.dtype == np.uint8
    assert np.abs(u8.astype(np.int32) - expected).max() <= 1  # Float rounding at .5 only.
    with pytest.warns(DeprecationWarning):
        legacy = imgs.run(x, out_mul=127.5, out_add=127.5, out_dtype=np.uint8)
    np.testing.assert_array_equal(legacy, np.clip(np.round(np.tanh(x) * 127.5 + 127.5), 0, 255))
    with pytest.warns(DeprecationWarning):
        shrunk = imgs.run(x, out_shrink=2)
    np.testing.assert_allclose(shrunk, np.tanh(x).reshape(5, 2, 2, 2, 2, 2).mean(axis=(3, 5)), rtol=1e-5, atol=1e-6)


def test_run_on_two_virtual_cpu_devices():
    graph = tf.Graph()
    with graph.as_default(), tflib.create_session({"device_count": {"CPU": 2}}).as_default():
        G, values = make_net()
        z, c = inputs(batch=9)
        one = G.run(z, c, minibatch_size=4)
        two = G.run(z, c, minibatch_size=4, devices=["/cpu:0", "/cpu:1"])  # Batches 4, 4, 1.
        frozen = G.run(z, c, minibatch_size=5, devices=["/cpu:0", "/cpu:1"], assume_frozen=True)
        for a, b, f, r in zip(one, two, frozen, np_forward(values, z, c)):
            np.testing.assert_allclose(a, r, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(f, a, rtol=1e-6, atol=1e-6)
        devices = {op.device for op in graph.get_operations() if "_Run" in op.name and op.type == "MatMul"}
        assert any(d.endswith("CPU:1") for d in devices) and any(d.endswith("CPU:0") for d in devices)


def test_pickle_round_trip(tf_session):
    G, values = make_net("G", hidden=H)
    z, c = inputs()
    before = G.run(z, c)
    state = G.__getstate__()
    assert state["version"] == 4 and state["build_func_name"] == "toy_main"
    assert [n for n, _ in state["variables"]] == list(G.own_vars)
    assert set(state["components"]) == {"mapping"} and "def toy_main" in state["build_module_src"]
    data = pickle.dumps(G, protocol=pickle.HIGHEST_PROTOCOL)

    with tf.Graph().as_default(), tflib.create_session().as_default():
        G2 = pickle.loads(data)
        assert G2._build_func.__module__.startswith("_tflib_network_import_")
        assert set(G2.vars) == set(G.vars) and G2.static_kwargs == G.static_kwargs
        for a, b in zip(G2.run(z, c), before):
            np.testing.assert_array_equal(a, b)
        # The remembered source lets an unpickled network be cloned and pickled again.
        G3 = pickle.loads(pickle.dumps(G2.clone("G3")))
        np.testing.assert_array_equal(G3.run(z, c)[0], before[0])


def test_convert_renames_old_kwargs(tf_session):
    G, values = make_net(latent_size=Z)  # Old name; toy_main_newnames takes z_dim.
    new = G.convert(toy_main_newnames, new_name="G_new")
    assert new.static_kwargs["z_dim"] == Z and "latent_size" not in new.static_kwargs
    z, c = inputs()
    np.testing.assert_allclose(new.run(z, c)[0], np_forward(values, z, c)[0], rtol=1e-5, atol=1e-5)


def test_list_and_print_layers(tf_session, capsys):
    G, _ = make_net()
    layers = G.list_layers()
    names = [name for name, _, _ in layers]
    assert "Toy_mapping/Dense" in names  # Component scopes are descended into.
    listed = [v for _, _, trainables in layers for v in trainables]
    assert {v.name for v in listed} == {v.name for v in G.trainables.values()}
    G.print_layers(hide_layers_with_no_params=True)
    out = capsys.readouterr().out
    total = sum(int(np.prod(v.shape.as_list())) for v in G.trainables.values())
    assert "Total" in out and str(total) in out.split("Total")[1]
    assert "h_out" not in out  # Parameter-free layers hidden.
    G.setup_weight_histograms()
    assert len(tf.get_collection(tf.GraphKeys.SUMMARIES)) == len(G.trainables)


def bad_no_shape(x_in, **_kwargs):
    return tf.identity(x_in)


def test_errors(tf_session):
    with pytest.raises(ValueError, match="x_in.*set_shape"):
        tflib.Network("Bad", func_name=bad_no_shape)
    G, _ = make_net()
    with pytest.raises(ValueError, match="at least one input"):
        G.get_output_for(None, None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="minibatch_size"):
            G.run(*inputs(), minibatch_size=0)


def test_sessions_get_one_thread_per_usable_cpu(monkeypatch, tmp_path):
    """Every session the tools make (create_session, init_tf) sets its thread pools to the usable
    CPUs, which a cgroup quota caps below the affinity mask (e.g. 150000/100000 -> 2)."""
    from dnnlib.tflib import tfutil
    n = tfutil.usable_cpus()
    assert 1 <= n <= (os.cpu_count() or 1)
    cfg = tfutil._sanitize_tf_config({"inter_op_parallelism_threads": 1})
    assert cfg["intra_op_parallelism_threads"] == n and cfg["inter_op_parallelism_threads"] == 1
    quota = tmp_path / "cpu.max"
    quota.write_text("150000 100000\n")
    real_open = open
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setitem(tfutil.__dict__, "open", lambda path, *a, **k: real_open(
        quota if path == "/sys/fs/cgroup/cpu.max" else path, *a, **k))
    assert tfutil.usable_cpus() == 2
