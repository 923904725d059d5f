"""keras.activations' names: values against Keras's (float32), sparsemax against a NumPy
projection, every name as a layer's ``activation`` string with float64 finite-difference
gradients, TF-Keras parity of layers using them (copied weights, predictions and weights
after three SGD steps), and the errors. The traced forms' gradients are in test_autodiff."""

from __future__ import annotations

import json

import numpy as np
import pytest

import fastrnn
from _keras import import_keras
from _layer_harness import assert_keras_parity, check_gradients
from fastrnn import activations, layers
from fastrnn.layers import base

ARGS = {"threshold": {"threshold": 0.3, "default_value": -2.0}}
KERAS_NAME = {"swish": "silu"}


def _x(dtype=np.float32, seed=0):
    x = np.random.default_rng(seed).normal(size=(5, 8)) * 3
    x[0] = [-3, 3, -1, 1, 0.5, -0.5, 6, 0]  # the kinks themselves
    return x.astype(dtype)


@pytest.mark.parametrize("name", sorted(set(activations._BY_NAME) - {"sparsemax"}))
def test_values_match_keras(name):
    keras = pytest.importorskip("keras")
    x = _x()
    theirs = np.asarray(getattr(keras.activations, KERAS_NAME.get(name, name))(
        x, **ARGS.get(name, {})))
    ours = activations.get(name)(x, **ARGS.get(name, {}))
    assert ours.dtype == np.float32 and ours.shape == theirs.shape
    # float32 on both sides: a few roundings of values up to ~10 (exponential: up to e^9)
    np.testing.assert_allclose(ours, theirs, rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("kwargs", [
    {"negative_slope": 0.1}, {"max_value": 2.0}, {"threshold": 0.5},
    {"negative_slope": 0.1, "max_value": 4.0, "threshold": -0.5}])
def test_relu_arguments_match_keras(kwargs):
    keras = pytest.importorskip("keras")
    x = _x()
    np.testing.assert_allclose(activations.relu(x, **kwargs),
                               np.asarray(keras.activations.relu(x, **kwargs)), atol=1e-6)
    np.testing.assert_allclose(activations.gelu(x, approximate=True),
                               np.asarray(keras.activations.gelu(x, approximate=True)),
                               rtol=2e-6, atol=2e-6)
    np.testing.assert_allclose(activations.elu(x, alpha=0.3),
                               np.asarray(keras.activations.elu(x, alpha=0.3)), atol=1e-6)


def _sparsemax_reference(z):
    """The Euclidean projection of each row onto the simplex, by bisection on the threshold
    tau with sum(max(z - tau, 0)) = 1."""
    out = np.empty_like(z)
    for i, row in enumerate(z):
        lo, hi = row.min() - 1, row.max()
        for _ in range(200):
            tau = 0.5 * (lo + hi)
            lo, hi = (tau, hi) if np.maximum(row - tau, 0).sum() > 1 else (lo, tau)
        out[i] = np.maximum(row - 0.5 * (lo + hi), 0)
    return out


def test_sparsemax_is_the_projection_onto_the_simplex():
    # Keras 3.15's sparsemax sums the cumulative sums of the whole support where the
    # threshold needs the one at the support's size: its rows do not sum to 1. fastrnn
    # follows the definition (Martins & Astudillo 2016).
    z = _x(np.float64, seed=3)
    y = activations.sparsemax(z)
    np.testing.assert_allclose(y, _sparsemax_reference(z), atol=1e-12)
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(activations.sparsemax(z.T, axis=0), y.T, atol=1e-12)
    np.testing.assert_allclose(activations.sparsemax(np.array([[0.5, 2.0, 1.9, -1.0]])),
                               [[0.0, 0.55, 0.45, 0.0]], atol=1e-15)


def test_gelu_float32_matches_the_exact_form():
    """float32 gelu uses a fast erf within float32's rounding of the exact (float64) one."""
    x = np.linspace(-9, 9, 20001)
    exact = activations.gelu(x)
    fast = activations.gelu(x.astype(np.float32))
    assert fast.dtype == np.float32
    np.testing.assert_allclose(fast, exact, rtol=3e-7, atol=3e-7)
    dfast = base.activation_backward("gelu", x.astype(np.float32), fast, np.ones_like(fast))
    dexact = base.activation_backward("gelu", x, exact, np.ones_like(exact))
    np.testing.assert_allclose(dfast, dexact, rtol=1e-6, atol=1e-6)


LAYER_NAMES = sorted(set(base._ACTIVATIONS))


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_every_name_works_in_dense_with_gradients(name):
    rng = np.random.default_rng(1)
    layer = layers.Dense(6, activation=name, dtype="float64")
    x = rng.normal(size=(4, 5))
    layer.build(x.shape)
    # random weights: pre-activations spread over (-6, 6), off every kink for these points
    layer.set_weights([rng.normal(size=(5, 6)) * 0.8, rng.normal(size=6)])
    z = x @ layer.get_weights()[0] + layer.get_weights()[1]
    kinks = np.array([-6, -3, -1, -0.5, 0, 0.5, 1, 3, 6])
    assert np.abs(z[..., None] - kinks).min() > 1e-4
    check_gradients(layer, [x], rng)
    fn = activations.get(name)
    np.testing.assert_allclose(layer.forward(x), fn(z), rtol=1e-12, atol=1e-12)
    again = layers.Dense.from_config(json.loads(json.dumps(layer.get_config())))
    assert again.activation == layer.activation


PARITY = ["gelu", "mish", "celu", "leaky_relu", "hard_silu", "log_softmax", "squareplus",
          "soft_shrink", "sparse_plus", "hard_swish"]


@pytest.mark.parametrize("name", PARITY)
def test_dense_matches_tf_keras(name):
    keras = import_keras()
    rng = np.random.default_rng(2)
    x = (rng.normal(size=(6, 4)) * 2).astype(np.float32)
    y = rng.normal(size=(6, 3)).astype(np.float32)
    mine = fastrnn.Sequential([layers.Input((4,)), layers.Dense(5, activation=name),
                               layers.Dense(3)])
    mine.build()
    theirs = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, activation=name),
                               keras.layers.Dense(3)])
    assert_keras_parity(mine, theirs, x, y, rng, rtol=1e-4, atol=1e-5)


def test_conv1d_and_a_generic_cell_match_tf_keras():
    keras = import_keras()
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3, 7, 2)).astype(np.float32)
    y = rng.normal(size=(3, 2)).astype(np.float32)
    mine = fastrnn.Sequential([
        layers.Input((7, 2)), layers.Conv1D(4, 3, activation="gelu"),
        layers.RNN(layers.SimpleRNNCell(3, activation="mish")), layers.Dense(2)])
    mine.build()
    theirs = keras.Sequential([
        keras.Input((7, 2)), keras.layers.Conv1D(4, 3, activation="gelu"),
        keras.layers.RNN(keras.layers.SimpleRNNCell(3, activation="mish")),
        keras.layers.Dense(2)])
    assert_keras_parity(mine, theirs, x, y, rng, rtol=1e-4, atol=1e-5)


def test_activation_layer_and_functions_in_a_graph(tmp_path):
    inp = fastrnn.Input((4,))
    h = layers.Dense(6)(inp)
    a = activations.mish(h)  # an Activation layer
    b = activations.leaky_relu(h, negative_slope=0.05)  # an op node (not the default)
    model = fastrnn.Model(inp, layers.Dense(1)(layers.Concatenate()([a, b])))
    model.compile(loss="mse", optimizer="adam")
    x = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    model.fit(x, x[:, :1], epochs=1, verbose=0)
    model.save(str(tmp_path / "m.fastrnn"))
    again = fastrnn.load_model(str(tmp_path / "m.fastrnn"))
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))
    assert any(isinstance(layer, layers.Activation) and layer.activation == "mish"
               for layer in model.layers)


def test_names_configs_and_errors():
    assert activations.get("hard_swish") is activations.hard_silu
    assert activations.get("SiLU") is activations.silu
    assert activations.serialize(activations.gelu) == "gelu"
    assert activations.deserialize("celu") is activations.celu
    assert activations.deserialize({"module": "keras.activations", "class_name": "function",
                                    "config": "mish", "registered_name": "function"}) is \
        activations.mish
    custom = lambda x: x  # noqa: E731
    assert activations.get(custom) is custom  # Keras returns any callable
    assert activations.deserialize("mine", {"mine": custom}) is custom
    assert layers.Dense(2, activation=activations.relu6).activation == "relu6"
    assert layers.Dense(2, activation="hard_swish").activation == "hard_silu"
    with pytest.raises(ValueError, match="Could not interpret activation function identifier"):
        activations.get("gelu2")
    with pytest.raises(ValueError, match="`config`.*'gelu2'"):
        activations.deserialize("gelu2")
    with pytest.raises(ValueError, match="cannot be serialized"):
        activations.serialize(custom)
    with pytest.raises(ValueError, match=r"argument `activation`.*could not interpret.*'gelu2'"):
        layers.Dense(2, activation="gelu2")
    with pytest.raises(ValueError, match=r"argument `activation`.*'nope'"):
        layers.LSTM(2, activation="nope")
    with pytest.raises(NotImplementedError, match=r"`activation`.*'glu'.*halves"):
        layers.Dense(2, activation="glu")
    with pytest.raises(NotImplementedError, match=r"`activation`.*'threshold'"):
        layers.Conv1D(2, 3, activation="threshold")
    with pytest.raises(NotImplementedError, match=r"`activation`.*only 'tanh'.*'gelu'"):
        layers.LSTM(2, activation="gelu")  # the fused kernels keep their own set
    with pytest.raises(NotImplementedError, match=r"`recurrent_activation`.*'hard_silu'"):
        layers.GRU(2, recurrent_activation="hard_silu")
    with pytest.raises(ValueError, match="divisible by 2"):
        activations.glu(np.ones((2, 3)))
    np.testing.assert_allclose(activations.glu(np.array([[1.0, 2.0, 0.0, 100.0]])),
                               [[0.5, 2.0]])
