"""Functional models against TF-Keras with copied weights (runs when tensorflow imports).

The same graph is built in both; Keras's weights are copied into fastrnn by
``set_weights(keras_model.get_weights())``: that only gives equal predictions if fastrnn
orders layers and weights as Keras does. Then a few full-batch SGD steps in each must give
the same weights.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
keras = pytest.importorskip("keras")
pytest.importorskip("tensorflow")

import fastrnn  # noqa: E402
from fastrnn import layers  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _build(lib, kind):
    """The same graph in keras (lib=keras) or fastrnn (lib=fastrnn)."""
    L = lib.layers
    if kind == "encoder_decoder":
        enc_in = lib.Input((None, 2))
        dec_in = lib.Input((None, 3))
        _, h, c = L.LSTM(6, return_state=True)(enc_in)
        dec = L.LSTM(6, return_sequences=True)(dec_in, initial_state=[h, c])
        out = L.TimeDistributed(L.Dense(2))(dec)
        return lib.Model([enc_in, dec_in], out)
    if kind == "two_inputs":
        seq = lib.Input((7, 3))
        static = lib.Input((4,))
        x = L.GRU(5)(seq)
        s = L.Dense(3, activation="relu")(static)
        x = L.Concatenate()([x, s])
        return lib.Model([seq, static], L.Dense(1)(x))
    if kind == "shared":
        a = lib.Input((5, 2))
        b = lib.Input((5, 2))
        shared = L.SimpleRNN(4)
        x = L.Subtract()([shared(a), shared(b)])
        y = L.Multiply()([shared(a), L.Dense(4, activation="tanh")(x)])
        return lib.Model([a, b], L.Dense(1)(L.Average()([x, y])))
    if kind == "repeat_vector":
        inp = lib.Input((6, 1))
        code = L.LSTM(5)(inp)
        dec = L.GRU(4, return_sequences=True)(L.RepeatVector(3)(code))
        return lib.Model(inp, L.TimeDistributed(L.Dense(1))(dec))
    if kind == "bidirectional":
        inp = lib.Input((6, 2))
        x = L.Bidirectional(L.LSTM(3, return_sequences=True))(inp)
        x = L.Permute((2, 1))(x)
        x = L.Reshape((-1,))(x)
        return lib.Model(inp, L.Dense(2)(L.Maximum()([x, L.Dense(36)(x)])))
    raise AssertionError(kind)


def _data(kind, n=16, seed=0):
    rng = np.random.default_rng(seed)
    f = np.float32
    if kind == "encoder_decoder":
        return ([rng.normal(size=(n, 5, 2)).astype(f), rng.normal(size=(n, 4, 3)).astype(f)],
                rng.normal(size=(n, 4, 2)).astype(f))
    if kind == "two_inputs":
        return ([rng.normal(size=(n, 7, 3)).astype(f), rng.normal(size=(n, 4)).astype(f)],
                rng.normal(size=(n, 1)).astype(f))
    if kind == "shared":
        return ([rng.normal(size=(n, 5, 2)).astype(f), rng.normal(size=(n, 5, 2)).astype(f)],
                rng.normal(size=(n, 1)).astype(f))
    if kind == "repeat_vector":
        return rng.normal(size=(n, 6, 1)).astype(f), rng.normal(size=(n, 3, 1)).astype(f)
    return rng.normal(size=(n, 6, 2)).astype(f), rng.normal(size=(n, 2)).astype(f)


KINDS = ["encoder_decoder", "two_inputs", "shared", "repeat_vector", "bidirectional"]


@pytest.mark.parametrize("kind", KINDS)
def test_predictions_and_sgd_steps_match_keras(kind):
    keras.utils.set_random_seed(3)
    km = _build(keras, kind)
    fm = _build(fastrnn, kind)
    weights = km.get_weights()
    fm.set_weights(weights)
    x, y = _data(kind)
    np.testing.assert_allclose(fm.predict(x), km.predict(x, verbose=0), rtol=1e-4, atol=1e-5)

    km.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    fm.compile(optimizer=fastrnn.optimizers.SGD(0.1), loss="mse")
    km.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    fm.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    for k, (a, b) in enumerate(zip(fm.get_weights(), km.get_weights())):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5, err_msg=f"weight {k}")


@pytest.mark.parametrize("fn", ["mean_squared_error", "mean_absolute_error",
                                "binary_crossentropy", "mean_absolute_percentage_error"])
def test_function_forms_match_keras(fn):
    rng = np.random.default_rng(1)
    y_true = rng.uniform(0.05, 1, size=(4, 3, 2)).astype(np.float32)
    y_pred = rng.uniform(0.05, 0.95, size=(4, 3, 2)).astype(np.float32)
    for module, kmodule in ((fastrnn.losses, keras.losses), (fastrnn.metrics, keras.metrics)):
        mine = getattr(module, fn)(y_true, y_pred)
        theirs = np.asarray(getattr(kmodule, fn)(y_true, y_pred))
        assert mine.shape == theirs.shape == (4, 3)
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)


def test_categorical_function_forms_match_keras():
    rng = np.random.default_rng(2)
    p = rng.dirichlet(np.ones(5), size=(6,)).astype(np.float32)
    labels = rng.integers(0, 5, size=6)
    onehot = np.eye(5, dtype=np.float32)[labels]
    np.testing.assert_allclose(fastrnn.losses.sparse_categorical_crossentropy(labels, p),
                               keras.losses.sparse_categorical_crossentropy(labels, p),
                               rtol=1e-5)
    np.testing.assert_allclose(fastrnn.losses.categorical_crossentropy(onehot, p),
                               keras.losses.categorical_crossentropy(onehot, p), rtol=1e-5)
    np.testing.assert_allclose(fastrnn.metrics.sparse_categorical_accuracy(labels, p),
                               keras.metrics.sparse_categorical_accuracy(labels, p))


@pytest.mark.parametrize("merge", ["Add", "Subtract", "Multiply", "Average", "Maximum",
                                   "Minimum", "Concatenate"])
def test_merge_layers_match_keras(merge):
    rng = np.random.default_rng(4)
    a, b = (rng.normal(size=(3, 4, 5)).astype(np.float32) for _ in range(2))
    mine = getattr(layers, merge)()([a, b])
    theirs = np.asarray(getattr(keras.layers, merge)()([a, b]))
    np.testing.assert_allclose(mine, theirs, rtol=1e-6)
