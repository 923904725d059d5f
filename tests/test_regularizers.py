"""fastrnn.regularizers: values against Keras, gradients by float64 finite differences; in
training (weight and activity penalties, with their gradients) against TF-Keras with copied
weights; configs, saving, errors, frozen weights."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import fastrnn
from _keras import import_keras
from fastrnn import layers, regularizers

REGULARIZERS = [
    ("L1", {"l1": 0.03}),
    ("L2", {"l2": 0.05}),
    ("L1L2", {"l1": 0.02, "l2": 0.04}),
    ("OrthogonalRegularizer", {"factor": 0.3, "mode": "rows"}),
    ("OrthogonalRegularizer", {"factor": 0.3, "mode": "columns"}),
]


def _numeric_gradient(f, x, eps=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(*x.shape):
        p, m = x.copy(), x.copy()
        p[i] += eps
        m[i] -= eps
        g[i] = (f(p) - f(m)) / (2 * eps)
    return g


@pytest.mark.parametrize("name,kwargs", REGULARIZERS)
def test_gradient_by_finite_differences(name, kwargs):
    reg = getattr(regularizers, name)(**kwargs)
    x = np.random.default_rng(0).normal(size=(5, 4))
    np.testing.assert_allclose(reg.gradient(x), _numeric_gradient(reg, x), rtol=1e-6,
                               atol=1e-9)


@pytest.mark.parametrize("name,kwargs", REGULARIZERS)
def test_values_match_keras(name, kwargs):
    keras = import_keras()
    x = np.random.default_rng(1).normal(size=(6, 3)).astype(np.float32)
    # a tensor: Keras's NumPy path of OrthogonalRegularizer fails in columns mode
    theirs = float(getattr(keras.regularizers, name)(**kwargs)(keras.ops.convert_to_tensor(x)))
    assert getattr(regularizers, name)(**kwargs)(x) == pytest.approx(theirs, rel=1e-5)


def test_identifiers_aliases_and_configs():
    assert regularizers.l2 is regularizers.L2 and regularizers.l1_l2 is regularizers.L1L2
    assert regularizers.get("l2").l2 == 0.01 and regularizers.get("L1").l1 == 0.01
    both = regularizers.get("l1_l2")
    assert (both.l1, both.l2) == (0.0, 0.0)  # Keras's class defaults
    assert regularizers.get(None) is None
    for reg in (regularizers.L1L2(0.1, 0.2), regularizers.OrthogonalRegularizer(0.2, "columns")):
        config = json.loads(json.dumps(regularizers.serialize(reg)))
        again = regularizers.deserialize(config)
        assert type(again) is type(reg) and again.get_config() == reg.get_config()
    with pytest.raises(ValueError, match="`kernel_regularizer`.*'l3'"):
        regularizers.get("l3", "kernel_regularizer")
    with pytest.raises(ValueError, match="`l2`.*non-negative"):
        regularizers.L2(-1.0)
    with pytest.raises(ValueError, match="`mode`"):
        regularizers.OrthogonalRegularizer(mode="diag")
    with pytest.raises(ValueError, match="2-D"):
        regularizers.OrthogonalRegularizer()(np.ones(3))


def _build(lib, with_activity: bool):
    L = lib.layers
    r = lib.regularizers
    return lib.Sequential([
        L.Input((5, 3)),
        L.LSTM(4, return_sequences=True, kernel_regularizer=r.L2(0.05),
               recurrent_regularizer=r.L1(0.02), bias_regularizer=r.L1L2(0.01, 0.03),
               activity_regularizer=r.L2(0.1) if with_activity else None),
        # Not the orthogonal initializer: at an orthogonal matrix the penalty's gradient is
        # the sign of rounding noise. (Keras's SimpleRNN drops its activity_regularizer.)
        L.SimpleRNN(3, recurrent_regularizer=r.OrthogonalRegularizer(0.2),
                    recurrent_initializer="glorot_uniform"),
        L.Dense(2, kernel_regularizer=r.L1L2(0.01, 0.02), bias_regularizer="l2"),
    ])


def test_regularized_training_matches_keras(with_activity=True):
    # every weight penalty, and an activity penalty, in one model
    keras = import_keras()
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(12, 5, 3)), rng.normal(size=(12, 2))
    km, fm = _build(keras, with_activity), _build(fastrnn, with_activity)
    fm.set_weights(km.get_weights())
    km.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    fm.compile(optimizer=fastrnn.optimizers.SGD(0.1), loss="mse")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = km.evaluate(x, y, verbose=0)
        hk = km.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    assert fm.evaluate(x, y) == pytest.approx(theirs, rel=1e-5)  # penalties in the loss
    hf = fm.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(fm.get_weights(), km.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert hf.history["loss"][0] == pytest.approx(hk.history["loss"][0], rel=1e-5)


def test_functional_model_activity_penalty_reaches_the_shared_input():
    # a graph: two heads read one regularized layer's output; its penalty's gradient joins once
    keras = import_keras()
    rng = np.random.default_rng(3)
    x, ya, yb = rng.normal(size=(8, 3)), rng.normal(size=(8, 1)), rng.normal(size=(8, 2))

    def build(lib):
        inp = lib.layers.Input((3,))
        h = lib.layers.Dense(4, activation="tanh",
                             activity_regularizer=lib.regularizers.L1(0.05))(inp)
        return lib.Model(inp, [lib.layers.Dense(1)(h), lib.layers.Dense(2)(h)])

    km, fm = build(keras), build(fastrnn)
    fm.set_weights(km.get_weights())
    km.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    fm.compile(optimizer=fastrnn.optimizers.SGD(0.1), loss="mse")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        km.fit(x, [ya, yb], batch_size=8, epochs=3, shuffle=False, verbose=0)
    fm.fit(x, [ya, yb], batch_size=8, epochs=3, shuffle=False, verbose=0)
    for a, b in zip(fm.get_weights(), km.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_configs_and_saved_files_keep_regularizers(tmp_path):
    model = _build(fastrnn, True)
    model.compile(optimizer="sgd", loss="mse")
    dense = model.layers[-1]
    config = dense.get_config()
    assert config["kernel_regularizer"] == {"class_name": "L1L2",
                                            "config": {"l1": 0.01, "l2": 0.02}}
    assert config["bias_regularizer"] == {"class_name": "L2", "config": {"l2": 0.01}}
    assert config["kernel_constraint"] is None and config["activity_regularizer"] is None
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = fastrnn.load_model(path)
    for a, b in zip(loaded.layers, model.layers):
        assert a.get_config() == b.get_config()
    x, y = np.ones((4, 5, 3)), np.zeros((4, 2))
    assert loaded.evaluate(x, y) == pytest.approx(model.evaluate(x, y), rel=1e-6)
    # Bidirectional copies its layer's regularizers into both directions
    bi = layers.Bidirectional(layers.GRU(2, kernel_regularizer="l2"))
    assert isinstance(bi.backward_layer.kernel_regularizer, regularizers.L2)


def test_frozen_layers_are_not_penalised_and_embeddings_are():
    model = fastrnn.Sequential([layers.Embedding(10, 3, embeddings_regularizer=regularizers.L2(1.0),
                                                 input_shape=(4,)),
                                layers.Flatten(),
                                layers.Dense(1, kernel_regularizer=regularizers.L2(1.0))])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.arange(8).reshape(2, 4), np.zeros((2, 1))
    out = model.predict(x)
    emb, kernel = model.layers[0].get_weights()[0], model.layers[2].get_weights()[0]
    base = float(np.mean(out ** 2))
    assert model.evaluate(x, y) == pytest.approx(
        base + (emb ** 2).sum() + (kernel ** 2).sum(), rel=1e-5)
    model.layers[0].trainable = False
    assert model.evaluate(x, y) == pytest.approx(base + (kernel ** 2).sum(), rel=1e-5)


def test_penalty_gradient_trains_towards_zero_without_data_signal():
    # constant targets equal to the outputs: only the L2 penalty moves the kernel
    model = fastrnn.Sequential([layers.Dense(2, use_bias=False, input_shape=(3,),
                                             kernel_regularizer=regularizers.L2(0.5))])
    model.compile(optimizer=fastrnn.optimizers.SGD(0.1), loss="mse")
    x = np.zeros((4, 3))
    k0 = model.get_weights()[0]
    model.fit(x, np.zeros((4, 2)), epochs=1, batch_size=4, verbose=0)
    np.testing.assert_allclose(model.get_weights()[0], k0 * (1 - 0.1 * 2 * 0.5), rtol=1e-6)


def test_adamw_leaves_frozen_and_batchnorm_statistics_alone():
    model = fastrnn.Sequential([layers.Dense(3, input_shape=(2,)), layers.BatchNormalization(),
                                layers.Dense(1)])
    model.compile(optimizer=fastrnn.optimizers.AdamW(0.01, weight_decay=0.5), loss="mse")
    model.layers[0].trainable = False
    before = model.get_weights()
    x = np.random.default_rng(4).normal(size=(8, 2))
    model.fit(x, np.zeros((8, 1)), epochs=1, batch_size=8, verbose=0)
    after = model.get_weights()
    for a, b in zip(before[:2], after[:2]):  # the frozen Dense
        np.testing.assert_array_equal(a, b)
    bn = model.layers[1]
    moving_mean = after[4]
    # the moving mean moved by the batch statistics only (momentum 0.99), not decayed
    batch_mean = (x @ before[0] + before[1]).mean(axis=0)
    np.testing.assert_allclose(moving_mean, 0.01 * batch_mean, rtol=1e-5, atol=1e-7)
    assert bn.non_trainable_weight_names == ["moving_mean", "moving_variance"]
    assert not np.allclose(before[-2], after[-2])  # the last Dense did train


def test_losses_lists_the_penalties_like_keras():
    model = fastrnn.Sequential([layers.Dense(3, input_shape=(2,), kernel_regularizer="l1",
                                             bias_regularizer=regularizers.L2(0.5),
                                             bias_initializer="ones"),
                                layers.Dense(1, kernel_regularizer="l2")])
    model.build()
    k1, b1, k2, _ = model.get_weights()
    expected = [0.01 * np.abs(k1).sum(), 0.5 * (b1 ** 2).sum(), 0.01 * (k2 ** 2).sum()]
    np.testing.assert_allclose(model.losses, expected, rtol=1e-6)
    np.testing.assert_allclose(model.layers[0].losses, expected[:2], rtol=1e-6)
    model.layers[1].trainable = False
    np.testing.assert_allclose(model.losses, expected[:2], rtol=1e-6)


def test_activity_regularization_layer_matches_keras():
    keras = import_keras()
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(12, 4)), rng.normal(size=(12, 1))

    def build(lib):
        return lib.Sequential([lib.layers.Input((4,)), lib.layers.Dense(3),
                               lib.layers.ActivityRegularization(l1=0.03, l2=0.05),
                               lib.layers.Dense(1)])

    km, fm = build(keras), build(fastrnn)
    fm.set_weights(km.get_weights())
    km.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    fm.compile(optimizer=fastrnn.optimizers.SGD(0.1), loss="mse")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        km.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    fm.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(fm.get_weights(), km.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_activity_regularization_layer_config_and_penalty():
    layer = layers.ActivityRegularization(l1=0.5, l2=0.25)
    config = layer.get_config()
    assert config["l1"] == 0.5 and config["l2"] == 0.25
    assert "activity_regularizer" not in config
    again = layers.ActivityRegularization.from_config(json.loads(json.dumps(config)))
    assert (again.l1, again.l2) == (0.5, 0.25)
    y = np.array([[1.0, -2.0]])
    assert again.activity_regularizer(y) == pytest.approx(0.5 * 3 + 0.25 * 5)
    np.testing.assert_array_equal(again.forward(y), y)
    with pytest.raises(ValueError, match="l1"):
        layers.ActivityRegularization(l1=-1)
