"""tflib.Optimizer: multi-device towers, gradient accumulation, Adam and the lazy-regularization
adjustment against numpy, non-finite steps and loss scaling, shared state, save/restore."""

from collections import OrderedDict

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import dnnlib
import dnnlib.tflib as tflib
from dnnlib.tflib import optimizer as optimizer_module

SGD = "tf.train.GradientDescentOptimizer"  # plain steps: unlike Adam, sensitive to gradient scale


def _init_values(seed=0):
    rnd = np.random.RandomState(seed)
    return OrderedDict([("W1", rnd.randn(3, 5).astype(np.float32)), ("b1", rnd.randn(5).astype(np.float32) * 0.1),
                        ("W2", rnd.randn(5, 2).astype(np.float32))])


def _data(seed=1, n=8):
    rnd = np.random.RandomState(seed)
    return rnd.randn(n, 3).astype(np.float32), rnd.randn(n, 2).astype(np.float32)


def _make_vars(scope, device, init):
    with tf.device(device), tf.variable_scope(scope):
        return OrderedDict((key, tf.Variable(value, name=key)) for key, value in init.items())


def _per_sample_loss(net, x, t):
    """Tiny MLP, squared error per sample: shape [B]."""
    y = tf.matmul(tf.tanh(tf.matmul(x, net["W1"]) + net["b1"]), net["W2"])
    return tf.reduce_sum(tf.square(y - t), axis=1)


def _train(num_devices, rounds, multiplier=None, shared=False, opt_kwargs=None, check_first_round=None):
    """Build towers on num_devices virtual CPUs in a fresh graph and run len(rounds) training
    ops; rounds[r][d] = (x, t) of device d in round r. Returns the final values of every
    device's variables (a list of dicts)."""
    init = _init_values()
    graph = tf.Graph()
    with graph.as_default():
        sess = tflib.create_session({"device_count": {"CPU": num_devices}}, force_as_default=False)
        with sess.as_default():
            opt = tflib.Optimizer(name="TrainTest", minibatch_multiplier=multiplier,
                                  **(opt_kwargs or dict(tf_optimizer=SGD, learning_rate=0.1)))
            nets, feeds = [], []
            for dev in range(num_devices):
                device = "/cpu:%d" % dev
                net = nets[0] if shared and nets else _make_vars("net%d" % dev, device, init)
                nets.append(net)
                with tf.device(device):
                    x = tf.placeholder(tf.float32, [None, 3])
                    t = tf.placeholder(tf.float32, [None, 2])
                    # Shared variables go in as a list (named by variable), shadow copies as dicts.
                    opt.register_gradients(_per_sample_loss(net, x, t), list(net.values()) if shared else net)
                feeds.append((x, t))
            train_op = opt.apply_updates()
            tflib.init_uninitialized_vars()
            for r, round_data in enumerate(rounds):
                feed = {}
                for (x, t), (xv, tv) in zip(feeds, round_data):
                    feed[x], feed[t] = xv, tv
                tflib.run(train_op, feed)
                if r == 0 and check_first_round is not None:
                    check_first_round(tflib.run(nets[0]))
            result = [tflib.run(net) for net in nets]
        sess.close()
    return result


def _assert_close(a, b, atol=1e-5):
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=0, atol=atol, err_msg=key)


def _moved(a, b):
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)


# ---------------------------------------------------------------------------------------
# Devices and accumulation.

@pytest.mark.parametrize("loss_scaling", [False, True], ids=["", "loss-scaling"])
@pytest.mark.parametrize("shared", [False, True], ids=["shadow-copies", "shared-vars"])
def test_two_devices_equal_one_device_big_batch(shared, loss_scaling):
    x, t = _data()
    big = _train(1, [[(x, t)]])[0]
    opt_kwargs = dict(tf_optimizer=SGD, learning_rate=0.1, use_loss_scaling=loss_scaling, loss_scaling_init=20.0)
    towers = _train(2, [[(x[:4], t[:4]), (x[4:], t[4:])]], shared=shared, opt_kwargs=opt_kwargs)
    assert _moved(big, _init_values()) > 1e-2  # the step is large enough for the check to mean something
    for net in towers:
        _assert_close(net, big)


@pytest.mark.parametrize("num_devices", [1, 2])
def test_minibatch_multiplier_equals_big_batch(num_devices):
    x, t = _data()
    big = _train(1, [[(x, t)]])[0]
    per = 8 // (2 * num_devices)  # 2 rounds x num_devices towers x per samples = 8
    chunks = [slice(i * per, (i + 1) * per) for i in range(2 * num_devices)]
    rounds = [[(x[chunks[r * num_devices + d]], t[chunks[r * num_devices + d]]) for d in range(num_devices)]
              for r in range(2)]

    def unchanged_after_first_round(values):
        _assert_close(values, _init_values(), atol=0)

    nets = _train(num_devices, rounds, multiplier=2, check_first_round=unchanged_after_first_round)
    for net in nets:
        _assert_close(net, big)


def test_mean_over_samples_not_sum():
    # The per-sample loss vector of batch 8 must give the gradient of its mean: compare the
    # SGD step with a numerical gradient of the mean loss computed in numpy.
    x, t = _data()
    init = _init_values()
    stepped = _train(1, [[(x, t)]])[0]

    def mean_loss(values):
        y = np.tanh(x @ values["W1"] + values["b1"]) @ values["W2"]
        return np.mean(np.sum((y - t) ** 2, axis=1))

    for key in init:
        base = {k: v.astype(np.float64) for k, v in init.items()}
        grad = np.zeros_like(base[key])
        for idx in np.ndindex(*grad.shape):
            plus, minus = dict(base), dict(base)
            plus[key], minus[key] = base[key].copy(), base[key].copy()
            plus[key][idx] += 1e-5
            minus[key][idx] -= 1e-5
            grad[idx] = (mean_loss(plus) - mean_loss(minus)) / 2e-5
        np.testing.assert_allclose(stepped[key], init[key] - 0.1 * grad, atol=1e-5, err_msg=key)


def test_all_reduce_methods():
    rnd = np.random.RandomState(3)
    values = [rnd.randn(4, 3).astype(np.float32) for _ in range(2)]
    graph = tf.Graph()
    with graph.as_default():
        sess = tflib.create_session({"device_count": {"CPU": 2}}, force_as_default=False)
        with sess.as_default():
            devices = ["/device:CPU:0", "/device:CPU:1"]
            tensors = []
            for value, device in zip(values, devices):
                with tf.device(device):
                    tensors.append(tf.constant(value))
            for method in ["collective", "sum"]:
                outs = optimizer_module.all_reduce_sum(tensors, devices, method)
                for out in tflib.run(outs):
                    np.testing.assert_allclose(out, values[0] + values[1], rtol=1e-6)
            empty = [tf.zeros([0, 3]), tf.zeros([0, 3])]
            assert optimizer_module.all_reduce_sum(empty, devices, "nccl") == empty  # skipped, never reaches NCCL
        sess.close()


# ---------------------------------------------------------------------------------------
# Adam and lazy regularization.

def _numpy_adam(w, grads, lr, beta1, beta2, eps):
    """Textbook Adam (Kingma & Ba) with bias correction, one step per gradient."""
    w = w.astype(np.float64)
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for step, g in enumerate(grads, 1):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        w = w - lr * (m / (1 - beta1 ** step)) / (np.sqrt(v / (1 - beta2 ** step)) + eps)
    return w


def _grad_sequence():
    rnd = np.random.RandomState(5)
    # Gradients of very different sizes, so that beta2 matters from the second step on.
    return [rnd.randn(6).astype(np.float32) * scale for scale in (10.0, 0.1, 1.0)]


def _run_adam(grads, opts_and_rounds):
    """One variable w (loss = sum(w * g), so its gradient is g); opts_and_rounds lists, per
    step, the index of the optimizer (built by the callers' kwargs) that takes it."""
    w0 = np.linspace(-1, 1, 6).astype(np.float32)
    with tf.Graph().as_default(), tflib.create_session():
        w = tf.Variable(w0, name="w")
        g = tf.placeholder(tf.float32, [6])
        opts, ops = [], []
        for kwargs in opts_and_rounds["optimizers"]:
            kwargs = dict(kwargs)
            if kwargs.pop("share_first", False):
                kwargs["share"] = opts[0]
            opt = tflib.Optimizer(**kwargs)
            opt.register_gradients(tf.reduce_sum(w * g), [w])
            opts.append(opt)
            ops.append(opt.apply_updates())
        tflib.init_uninitialized_vars()
        for which, grad in zip(opts_and_rounds["schedule"], grads):
            tflib.run(ops[which], {g: grad})
        return w0, tflib.run(w), opts


@pytest.mark.parametrize("reg_interval,beta1", [(None, 0.0), (4, 0.0), (16, 0.0), (16, 0.5)])
def test_adam_matches_numpy_with_lazy_regularization(reg_interval, beta1):
    grads = _grad_sequence()
    lr, beta2, eps = 0.002, 0.99, 1e-8
    kwargs = dict(name="TrainAdam", learning_rate=lr, beta1=beta1, beta2=beta2, epsilon=eps, reg_interval=reg_interval)
    w0, w, (opt,) = _run_adam(grads, dict(optimizers=[kwargs], schedule=[0, 0, 0]))

    rho = 1.0 if reg_interval is None else reg_interval / (reg_interval + 1.0)
    expected = _numpy_adam(w0, grads, lr * rho, beta1 ** rho, beta2 ** rho, eps)
    np.testing.assert_allclose(w, expected, rtol=0, atol=1e-6)
    if reg_interval is not None:
        # The unadjusted hyperparameters give a measurably different result.
        assert np.max(np.abs(_numpy_adam(w0, grads, lr, beta1, beta2, eps) - w)) > 2e-5
        # REFERENCE §5.2: G (I=4) lr 0.0016, beta2 0.99199; D (I=16) lr 0.0018824, beta2 0.99059.
        documented = {4: (0.0016, 0.99199), 16: (0.0018824, 0.99059)}[reg_interval]
        assert opt.learning_rate == pytest.approx(documented[0], abs=1e-7)
        assert opt.optimizer_kwargs["beta2"] == pytest.approx(documented[1], abs=1e-5)


def test_share_uses_same_adam_state():
    grads = _grad_sequence()
    common = dict(learning_rate=0.002, beta1=0.5, beta2=0.99, epsilon=1e-8, reg_interval=16)
    main = dict(common, name="TrainD")
    reg = dict(common, name="RegD", share_first=True)
    w0, w, (opt, reg_opt) = _run_adam(grads, dict(optimizers=[main, reg], schedule=[0, 1, 0]))

    # One Adam state across both optimizers: identical slot variables, and three steps that
    # equal three steps of one Adam.
    slots = set(opt._tf_optimizer_variables())
    assert slots and slots == set(reg_opt._tf_optimizer_variables())
    rho = 16 / 17
    np.testing.assert_allclose(w, _numpy_adam(w0, grads, 0.002 * rho, 0.5 ** rho, 0.99 ** rho, 1e-8), atol=1e-6)


# ---------------------------------------------------------------------------------------
# Non-finite steps, loss scaling, learning-rate tensors.

def test_nan_skips_step_and_lowers_loss_scale(tf_session):
    w0 = np.linspace(-1, 1, 6).astype(np.float32)
    with tf.device("/cpu:0"):
        w = tf.Variable(w0, name="w")
        g = tf.placeholder(tf.float32, [6])
        lr = tf.placeholder(tf.float32, [])
        opt = tflib.Optimizer(tf_optimizer=SGD, learning_rate=lr, use_loss_scaling=True,
                              loss_scaling_init=64.0, loss_scaling_inc=0.0005, loss_scaling_dec=1.0)
        opt.register_gradients(tf.reduce_sum(w * g), OrderedDict(w=w))
    op = opt.apply_updates()
    tflib.init_uninitialized_vars()
    ls_var = opt.get_loss_scaling_var("/device:CPU:0")
    assert ls_var is opt.get_loss_scaling_var("/job:localhost/replica:0/task:0/cpu:0")
    assert ls_var is not None and ls_var in opt.variables()

    bad = np.ones(6, np.float32)
    bad[2] = np.nan
    tflib.run(op, {g: bad, lr: 0.5})
    np.testing.assert_array_equal(tflib.run(w), w0)
    assert tflib.run(ls_var) == pytest.approx(63.0)
    assert tflib.run([opt.update_count, opt.overflow_count]) == [0, 1]

    good = np.arange(6, dtype=np.float32)
    tflib.run(op, {g: good, lr: 0.5})
    # The loss is scaled by 2^63 and the gradient unscaled exactly: a plain SGD step.
    np.testing.assert_allclose(tflib.run(w), w0 - 0.5 * good, rtol=1e-6)
    assert tflib.run(ls_var) == pytest.approx(63.0005)
    assert tflib.run([opt.update_count, opt.overflow_count]) == [1, 1]


def test_nan_in_an_accumulation_round_skips_that_update_only(tf_session):
    w0 = np.zeros(4, np.float32)
    w = tf.Variable(w0, name="w")
    g = tf.placeholder(tf.float32, [4])
    opt = tflib.Optimizer(tf_optimizer=SGD, learning_rate=1.0, minibatch_multiplier=2)
    opt.register_gradients(tf.reduce_sum(w * g), [w])
    op = opt.apply_updates()
    tflib.init_uninitialized_vars()
    nan = np.full(4, np.nan, np.float32)
    one, three = np.ones(4, np.float32), np.full(4, 3.0, np.float32)
    for grad in (nan, one):
        tflib.run(op, {g: grad})
    np.testing.assert_array_equal(tflib.run(w), w0)
    for grad in (one, three):  # the accumulators were reset: mean(1, 3) = 2
        tflib.run(op, {g: grad})
    np.testing.assert_allclose(tflib.run(w), w0 - 2.0)
    assert tflib.run([opt.update_count, opt.overflow_count]) == [1, 1]


# ---------------------------------------------------------------------------------------
# State: reset, save and restore (resume).

def _adam_graph(w0):
    w = tf.Variable(w0, name="w")
    g = tf.placeholder(tf.float32, w0.shape)
    opt = tflib.Optimizer(name="TrainG", learning_rate=0.002, beta1=0.5, beta2=0.99, epsilon=1e-8,
                      minibatch_multiplier=2)
    opt.register_gradients(tf.reduce_sum(w * g), [w])
    op = opt.apply_updates()
    tflib.init_uninitialized_vars()
    return w, g, opt, op


def test_state_round_trip_resumes_exactly():
    grads = [np.random.RandomState(i).randn(6).astype(np.float32) for i in range(5)]
    w0 = np.linspace(-1, 1, 6).astype(np.float32)
    with tf.Graph().as_default(), tflib.create_session():
        w, g, opt, op = _adam_graph(w0)
        names = {v.name for v in opt.variables()}
        assert len(names) == len(opt.variables()) >= 6  # m, v, beta powers, accumulator, round, counters
        for grad in grads[:3]:  # 1.5 updates: the accumulator holds a half round
            tflib.run(op, {g: grad})
        saved_w, state = tflib.run(w), opt.get_state()
        for grad in grads[3:]:
            tflib.run(op, {g: grad})
        continuous = tflib.run(w)

    with tf.Graph().as_default(), tflib.create_session():
        w, g, opt, op = _adam_graph(w0)
        tflib.set_vars({w: saved_w})
        opt.set_state(state)
        for grad in grads[3:]:
            tflib.run(op, {g: grad})
        np.testing.assert_array_equal(tflib.run(w), continuous)
        with pytest.raises(ValueError, match="missing"):
            opt.set_state({})


def test_reset_optimizer_state_restarts_adam(tf_session):
    grads = _grad_sequence()
    w0 = np.linspace(-1, 1, 6).astype(np.float32)
    w = tf.Variable(w0, name="w")
    g = tf.placeholder(tf.float32, [6])
    opt = tflib.Optimizer(learning_rate=0.002, beta1=0.5, beta2=0.99, epsilon=1e-8)
    opt.register_gradients(tf.reduce_sum(w * g), [w])
    op = opt.apply_updates()
    tflib.init_uninitialized_vars()
    tflib.run(op, {g: grads[0]})
    tflib.run(op, {g: grads[1]})
    w1 = tflib.run(w)
    opt.reset_optimizer_state()
    tflib.run(op, {g: grads[2]})
    # After the reset the step is a first Adam step again.
    np.testing.assert_allclose(tflib.run(w), _numpy_adam(w1, [grads[2]], 0.002, 0.5, 0.99, 1e-8), atol=1e-6)


def test_bad_arguments(tf_session):
    with pytest.raises(ValueError, match="minibatch_multiplier"):
        tflib.Optimizer(minibatch_multiplier=0)
    with pytest.raises(ValueError, match="tf_optimizer"):
        tflib.Optimizer(tf_optimizer="tf.train.NoSuchOptimizer")
    opt = tflib.Optimizer()
    a = tf.Variable(np.zeros(2, np.float32), name="a")
    b = tf.Variable(np.zeros(3, np.float32), name="b")
    opt.register_gradients(tf.reduce_sum(a), OrderedDict(x=a))
    with pytest.raises(ValueError, match="names/shapes"):
        opt.register_gradients(tf.reduce_sum(b), OrderedDict(x=b))
    with pytest.raises(ValueError, match="without any"):
        tflib.Optimizer().apply_updates()
    assert tflib.Optimizer().apply_updates(allow_no_op=True).type == "NoOp"


def test_all_reduce_method_choice(monkeypatch):
    choose = optimizer_module._all_reduce_method
    gpus, cpus = ["/device:GPU:0", "/device:GPU:1"], ["/device:CPU:0", "/device:CPU:1"]
    monkeypatch.delenv("TFLIB_ALL_REDUCE", raising=False)
    expected_gpu = "nccl" if optimizer_module.nccl_ops is not None else "collective"
    assert choose(gpus, shadow=True) == expected_gpu
    assert choose(gpus, shadow=False) == "sum"  # shared variables: reduce in one place
    assert choose(cpus, shadow=True) == "sum"
    assert choose(["/device:GPU:0", "/device:CPU:0"], shadow=True) == "sum"
    assert choose(gpus[:1], shadow=True) == "sum"
    monkeypatch.setenv("TFLIB_ALL_REDUCE", "collective")
    assert choose(gpus, shadow=True) == "collective"
    monkeypatch.setenv("TFLIB_ALL_REDUCE", "ring")
    with pytest.raises(dnnlib.util.UserError, match="TFLIB_ALL_REDUCE"):
        choose(gpus, shadow=True)


def test_two_devices_with_a_true_all_reduce(monkeypatch):
    # The GPU path (each device gets the sum on its own and updates its own copies), run on
    # CPUs with collective all-reduce standing in for NCCL.
    monkeypatch.setattr(optimizer_module, "_all_reduce_method", lambda devices, shadow: "collective")
    x, t = _data()
    big = _train(1, [[(x, t)]])[0]
    for net in _train(2, [[(x[:4], t[:4]), (x[4:], t[4:])]]):
        _assert_close(net, big)
