"""bench/conv_bound.py --all-ops: the step's other ops rebuilt alone with the shapes and integer
values they have in the step, and which ops are left out."""

import importlib.util
import os

import numpy as np
import tensorflow.compat.v1 as tf


def _bench(name):
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench", name + ".py")
    spec = importlib.util.spec_from_file_location("bench_%s_under_test" % name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_other_ops_rebuilt_with_step_values():
    cb = _bench("conv_bound")
    with tf.Graph().as_default(), tf.Session() as sess:
        # Shapes unknown to the graph: the rebuild must take them (and Tile's multiples) from a run.
        n = tf.random_uniform([], 2, 5, dtype=tf.int32, seed=1)
        x = tf.random_normal(tf.stack([n, 3]), seed=2)                       # [n, 3], static [?, ?]
        tiled = tf.tile(x, tf.stack([1, n]))                                   # [n, 3n]
        w = tf.Variable(np.ones([3, 4], np.float32))
        y = tf.matmul(x, w) * 2.0
        loss = tf.reduce_sum(tiled) + tf.reduce_sum(y)
        sess.run(tf.global_variables_initializer())
        with sess.as_default():
            ops = cb.bench_train.step_ops([loss])
            tile_op = tiled.op
            values = cb.step_values([tile_op])
            n_value = values[tile_op.inputs[1].name][1]
            assert values[tile_op.inputs[0].name] == [n_value, 3]               # the float input's shape
            by_type, untimed = cb.other_ops_bound([[loss]], {y.op.inputs[0].op}, 8, 1, 1)
        rebuilt_shape = None
        with tf.Graph().as_default(), tf.Session() as alone:
            out = cb.standalone(tile_op, 8, values)
            alone.run(tf.global_variables_initializer())
            rebuilt_shape = alone.run(out).shape
    assert rebuilt_shape == (n_value, 3 * n_value)
    assert {"Tile", "Mul", "Sum", "AddV2"} <= set(by_type) and "MatMul" not in by_type    # MatMul: in flop_set
    assert all(v >= 0 for v in by_type.values())
    assert untimed["RandomStandardNormal"] == 1 and untimed["RandomUniformInt"] == 1   # stateful
    assert "Tile" not in untimed and len(ops) > len(by_type)


def test_flop_count_of_a_conv_its_gradients_and_a_filter():
    bt = _bench("train")
    b, h, w, ci, co = 2, 6, 6, 3, 4
    with tf.Graph().as_default():
        x = tf.Variable(np.ones([b, h, w, ci], np.float32))
        k = tf.Variable(np.ones([3, 3, ci, co], np.float32))
        # A conv whose filter gradient gets constant (integer) sizes, as the transposed conv's does.
        y = tf.nn.conv2d(x, k, strides=[1, 1, 1, 1], padding="SAME")
        dk = tf.raw_ops.Conv2DBackpropFilter(input=x, filter_sizes=tf.constant([3, 3, ci, co]), out_backprop=y,
                                             strides=[1, 1, 1, 1], padding="SAME")
        # A product with a constant float matrix (a FIR band matrix): not counted.
        band = tf.matmul(tf.constant(np.eye(h, dtype=np.float32)), tf.reshape(y, [h, -1]))
        total = bt.graph_flops([dk, band], b)
    conv = 2 * b * h * w * co * 3 * 3 * ci
    assert total == 2 * conv      # the forward conv and its filter gradient, not the band product
