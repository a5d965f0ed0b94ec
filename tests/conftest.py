"""Shared pytest set-up: quiet TF logging, the repo on sys.path, a fresh graph + session."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pytest


@pytest.fixture
def tf_session():
    """A new graph with its own default session, so tests never share variables."""
    import dnnlib.tflib as tflib
    import tensorflow.compat.v1 as tf

    graph = tf.Graph()
    with graph.as_default():
        # Seeded, so a failure reproduces on the next run instead of coming and going with the init.
        tf.set_random_seed(1234)
        session = tflib.create_session()
        with session.as_default():
            yield session
        session.close()
