"""TF-Keras for parity tests: imported once, quietly; the tests skip when it is not installed."""

from __future__ import annotations

import os
import warnings

import pytest


def import_keras():
    """``tensorflow.keras``, or a pytest skip."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TensorFlow's own deprecation warnings on import
        tf = pytest.importorskip("tensorflow")
        return tf.keras


def keras_predict(model, x):
    """A Keras model's output on x, as NumPy (warnings of Keras itself silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model(x, training=False).numpy()
