"""fastrnn.constraints: projections against Keras and a NumPy reference; constrained training
(projection after each optimizer update) against TF-Keras with copied weights; configs,
saving, errors."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import fastrnn
from _keras import import_keras
from fastrnn import constraints, layers

CONSTRAINTS = [
    ("MaxNorm", {"max_value": 0.8, "axis": 0}),
    ("MaxNorm", {"max_value": 1.5, "axis": [0, 1]}),
    ("NonNeg", {}),
    ("UnitNorm", {"axis": 1}),
    ("MinMaxNorm", {"min_value": 0.5, "max_value": 0.9, "rate": 0.7, "axis": 0}),
]


@pytest.mark.parametrize("name,kwargs", CONSTRAINTS)
def test_projection_matches_keras(name, kwargs):
    keras = import_keras()
    w = np.random.default_rng(0).normal(size=(3, 4, 5)).astype(np.float32)
    theirs = np.asarray(getattr(keras.constraints, name)(**kwargs)(w))
    mine = getattr(constraints, name)(**kwargs)(w)
    np.testing.assert_allclose(mine, theirs, rtol=1e-6, atol=1e-7)


def test_projections_by_numpy_reference():
    w = np.random.default_rng(1).normal(size=(4, 6))
    norms = np.linalg.norm(w, axis=0)
    out = constraints.MaxNorm(1.0)(w)
    np.testing.assert_allclose(np.linalg.norm(out, axis=0),
                               np.minimum(norms, 1.0) * norms / (norms + 1e-7), rtol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(constraints.UnitNorm()(w), axis=0), 1.0,
                               rtol=1e-6)
    assert (constraints.NonNeg()(w) >= 0).all()


def _build(lib):
    L, c = lib.layers, lib.constraints
    return lib.Sequential([
        L.Input((5, 3)),
        L.GRU(4, return_sequences=True, kernel_constraint=c.MaxNorm(0.6),
              recurrent_constraint=c.UnitNorm(axis=0), bias_constraint=c.NonNeg()),
        L.Conv1D(3, 2, kernel_constraint=c.MinMaxNorm(0.2, 0.5, rate=0.5, axis=[0, 1])),
        L.GlobalAveragePooling1D(),
        L.Dense(2, kernel_constraint=c.MaxNorm(0.5), bias_constraint=c.NonNeg()),
    ])


def test_constrained_training_matches_keras():
    keras = import_keras()
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(12, 5, 3)), rng.normal(size=(12, 2))
    km, fm = _build(keras), _build(fastrnn)
    fm.set_weights(km.get_weights())
    km.compile(optimizer=keras.optimizers.SGD(0.3), loss="mse")
    fm.compile(optimizer=fastrnn.optimizers.SGD(0.3), loss="mse")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        km.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    fm.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(fm.get_weights(), km.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    dense_kernel, dense_bias = fm.layers[-1].get_weights()
    assert (np.linalg.norm(dense_kernel, axis=0) <= 0.5 + 1e-6).all()
    assert (dense_bias >= 0).all()


def test_configs_saving_and_identifiers(tmp_path):
    model = _build(fastrnn)
    model.compile(optimizer="adam", loss="mse")
    gru = next(layer for layer in model.layers if isinstance(layer, layers.GRU))
    assert gru.get_config()["recurrent_constraint"] == {"class_name": "UnitNorm",
                                                        "config": {"axis": 0}}
    path = str(tmp_path / "c.keras")
    model.save(path)
    loaded = fastrnn.load_model(path)
    for a, b in zip(loaded.layers, model.layers):
        assert a.get_config() == b.get_config()
    for c in (constraints.MaxNorm(3, axis=[0, 1]), constraints.MinMaxNorm(0.1, 2.0, 0.5)):
        again = constraints.deserialize(json.loads(json.dumps(constraints.serialize(c))))
        assert type(again) is type(c) and again.get_config() == c.get_config()
    assert constraints.max_norm is constraints.MaxNorm
    assert isinstance(constraints.get("non_neg"), constraints.NonNeg)
    assert isinstance(layers.Embedding(5, 2, embeddings_constraint="unit_norm")
                      .embeddings_constraint, constraints.UnitNorm)


def test_bad_constraints_name_the_argument():
    with pytest.raises(ValueError, match="`kernel_constraint`.*'maxnorm'"):
        layers.Dense(2, kernel_constraint="maxnorm")
    with pytest.raises(ValueError, match="`recurrent_constraint`.*float"):
        layers.LSTM(2, recurrent_constraint=1.5)
    with pytest.raises(ValueError, match="`max_value`"):
        constraints.MaxNorm(-1)
    with pytest.raises(ValueError, match="`max_value`.*min_value"):
        constraints.MinMaxNorm(2.0, 1.0)
    with pytest.raises(ValueError, match="`axis`"):
        constraints.UnitNorm(axis="rows")
    with pytest.raises(ValueError, match="out of range"):
        constraints.UnitNorm(axis=2)(np.ones((2, 2)))


def test_a_callable_constraint_applies_and_is_not_serialised():
    model = fastrnn.Sequential([layers.Dense(2, input_shape=(3,),
                                             kernel_constraint=lambda w: np.clip(w, -0.1, 0.1))])
    model.compile(optimizer=fastrnn.optimizers.SGD(1.0), loss="mse")
    rng = np.random.default_rng(3)
    model.fit(rng.normal(size=(8, 3)), rng.normal(size=(8, 2)) * 10, epochs=1, verbose=0)
    assert np.abs(model.get_weights()[0]).max() <= np.float32(0.1)  # clipped in float32
    with pytest.raises(NotImplementedError, match="cannot be serialised"):
        model.layers[0].get_config()
