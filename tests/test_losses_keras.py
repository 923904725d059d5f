"""Keras 3's losses beyond the first six: values and gradients against TF-Keras (autodiff of
its own loss on the same float32 data), gradients by float64 finite differences, names and
configs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from _keras import import_keras
from fastrnn import losses

RNG = np.random.default_rng(0)
B, T, C = 4, 3, 5


def _probs(shape):
    e = np.exp(RNG.normal(size=shape))
    return e / e.sum(axis=-1, keepdims=True)


def _data(kind):
    if kind == "regression":
        return RNG.normal(size=(B, T, C)), RNG.normal(size=(B, T, C))
    if kind == "positive":
        return RNG.uniform(0.1, 3, size=(B, T, C)), RNG.uniform(0.1, 3, size=(B, T, C))
    if kind == "binary":
        return RNG.integers(0, 2, size=(B, T, C)).astype(float), RNG.uniform(0.05, 0.95,
                                                                             size=(B, T, C))
    if kind == "logits":
        return RNG.integers(0, 2, size=(B, T, C)).astype(float), RNG.normal(size=(B, T, C)) * 2
    if kind == "onehot":
        return np.eye(C)[RNG.integers(0, C, size=(B, T))], _probs((B, T, C))
    if kind == "onehot_logits":
        return np.eye(C)[RNG.integers(0, C, size=(B, T))], RNG.normal(size=(B, T, C))
    if kind == "sparse":
        return RNG.integers(0, C, size=(B, T)), _probs((B, T, C))
    if kind == "sparse_logits":
        return RNG.integers(0, C, size=(B, T)), RNG.normal(size=(B, T, C))
    if kind == "distribution":
        return _probs((B, T, C)), _probs((B, T, C))
    raise AssertionError(kind)


CASES = [
    ("MeanSquaredLogarithmicError", {}, "positive"),
    ("MeanAbsolutePercentageError", {}, "regression"),
    ("LogCosh", {}, "regression"),
    ("Poisson", {}, "positive"),
    ("Hinge", {}, "binary"),
    ("SquaredHinge", {}, "logits"),
    ("CategoricalHinge", {}, "onehot_logits"),
    ("KLDivergence", {}, "distribution"),
    ("CosineSimilarity", {"axis": -1}, "regression"),
    ("BinaryFocalCrossentropy", {}, "binary"),
    ("BinaryFocalCrossentropy", {"apply_class_balancing": True, "alpha": 0.3, "gamma": 1.5,
                                 "from_logits": True, "label_smoothing": 0.1}, "logits"),
    ("CategoricalFocalCrossentropy", {}, "onehot"),
    ("CategoricalFocalCrossentropy", {"alpha": 0.5, "gamma": 3.0, "from_logits": True,
                                      "label_smoothing": 0.2}, "onehot_logits"),
    ("CategoricalGeneralizedCrossEntropy", {"q": 0.7}, "sparse"),
    ("Dice", {}, "binary"),
    ("Dice", {"axis": (1, 2)}, "binary"),
    ("Tversky", {"alpha": 0.3, "beta": 0.7}, "binary"),
    ("Tversky", {"axis": (1, 2)}, "binary"),
    ("BinaryCrossentropy", {"label_smoothing": 0.2}, "binary"),
    ("BinaryCrossentropy", {"from_logits": True, "label_smoothing": 0.1}, "logits"),
    ("CategoricalCrossentropy", {"label_smoothing": 0.1}, "onehot"),
    ("CategoricalCrossentropy", {"from_logits": True, "label_smoothing": 0.3}, "onehot_logits"),
    ("SparseCategoricalCrossentropy", {"ignore_class": 2}, "sparse"),
    ("SparseCategoricalCrossentropy", {"from_logits": True, "ignore_class": 0},
     "sparse_logits"),
]
IDS = [f"{name}{i}" for i, (name, _, _) in enumerate(CASES)]


@pytest.mark.parametrize("name,kwargs,kind", CASES, ids=IDS)
def test_value_and_gradient_match_tf_keras(name, kwargs, kind):
    keras = import_keras()
    import tensorflow as tf
    y_true, y_pred = _data(kind)
    y_true32, y_pred32 = y_true.astype(np.float32), y_pred.astype(np.float32)
    theirs = getattr(keras.losses, name)(**kwargs)
    var = tf.Variable(y_pred32)
    with tf.GradientTape() as tape:
        value = theirs(tf.constant(y_true32), var)
    grad = tape.gradient(value, var).numpy()
    mine = getattr(losses, name)(**kwargs)
    v, g = mine.value_and_gradient(y_true32, y_pred32)
    assert v == pytest.approx(float(value), rel=2e-5, abs=1e-6)
    scale = np.abs(grad).max()
    np.testing.assert_allclose(g, grad, rtol=1e-4, atol=1e-5 * scale)


@pytest.mark.parametrize("name,kwargs,kind", CASES, ids=IDS)
def test_gradient_by_float64_finite_differences(name, kwargs, kind):
    y_true, y_pred = _data(kind)
    loss = getattr(losses, name)(**kwargs)
    _, grad = loss.value_and_gradient(y_true, y_pred)
    eps = 1e-6
    num = np.zeros_like(y_pred)
    for i in np.ndindex(*y_pred.shape):
        p, m = y_pred.copy(), y_pred.copy()
        p[i] += eps
        m[i] -= eps
        num[i] = (loss(y_true, p) - loss(y_true, m)) / (2 * eps)
    np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("fn", ["mean_squared_logarithmic_error", "log_cosh", "poisson",
                                "hinge", "squared_hinge", "categorical_hinge", "kl_divergence",
                                "cosine_similarity", "binary_focal_crossentropy",
                                "categorical_focal_crossentropy"])
def test_function_forms_match_keras_per_sample(fn):
    import_keras()  # quietly, with TensorFlow's backend
    keras = pytest.importorskip("keras")  # Keras 3's own namespace has every function form
    kind = {"poisson": "positive", "mean_squared_logarithmic_error": "positive",
            "hinge": "binary", "squared_hinge": "binary", "binary_focal_crossentropy": "binary",
            "kl_divergence": "distribution", "categorical_focal_crossentropy": "onehot",
            "categorical_hinge": "onehot_logits"}.get(fn, "regression")
    y_true, y_pred = (a.astype(np.float32) for a in _data(kind))
    theirs = np.asarray(getattr(keras.losses, fn)(y_true, y_pred))
    mine = getattr(losses, fn)(y_true, y_pred)
    assert mine.shape == theirs.shape == (B, T)
    np.testing.assert_allclose(mine, theirs, rtol=2e-5, atol=1e-6)


def test_names_aliases_and_configs():
    assert losses.get("msle").__class__ is losses.MeanSquaredLogarithmicError
    assert losses.get("KLD").__class__ is losses.KLDivergence
    assert losses.get("BinaryFocalCrossentropy").__class__ is losses.BinaryFocalCrossentropy
    assert losses.get(losses.log_cosh).__class__ is losses.LogCosh  # trains with the class
    assert losses.msle is losses.MSLE is losses.mean_squared_logarithmic_error
    for name, kwargs, _ in CASES:
        loss = getattr(losses, name)(**kwargs)
        again = losses.deserialize(json.loads(json.dumps(losses.serialize(loss))))
        assert type(again) is type(loss) and again.get_config() == loss.get_config()
    with pytest.raises(ValueError, match="`label_smoothing`"):
        losses.BinaryFocalCrossentropy(label_smoothing=2)
    with pytest.raises(ValueError, match="`q`"):
        losses.CategoricalGeneralizedCrossEntropy(q=0)
    with pytest.raises(NotImplementedError, match="sample_weight"):
        losses.Dice()(np.ones((2, 2)), np.ones((2, 2)), sample_weight=np.ones(2))


def _ctc_case(seed=0, B=4, T=9, C=5, S=4):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(B, T, C))
    labels = rng.integers(1, C, size=(B, S))
    labels[1, 2:] = 0  # padding (also the blank)
    labels[2, 1] = labels[2, 0]  # a repeated label needs a blank between
    labels[-1] = 0  # an empty label sequence
    return labels, logits


def test_ctc_matches_tf_keras_values_and_gradients():
    keras = import_keras()
    import tensorflow as tf
    labels, logits = _ctc_case()
    var = tf.Variable(logits.astype(np.float32))
    with tf.GradientTape() as tape:
        value = keras.losses.CTC()(tf.constant(labels), var)
    grad = tape.gradient(value, var).numpy()
    v, g = losses.CTC().value_and_gradient(labels, logits.astype(np.float32))
    assert v == pytest.approx(float(value), rel=1e-5)
    np.testing.assert_allclose(g, grad, rtol=1e-4, atol=1e-6)
    k3 = pytest.importorskip("keras")
    np.testing.assert_allclose(losses.ctc(labels, logits),
                               np.asarray(k3.losses.ctc(labels, logits.astype(np.float32))),
                               rtol=1e-5)


def test_ctc_gradient_by_finite_differences_and_impossible_alignments():
    labels, logits = _ctc_case(1, B=3, T=6, C=4, S=3)
    loss = losses.CTC()
    _, grad = loss.value_and_gradient(labels, logits)
    eps = 1e-6
    num = np.zeros_like(logits)
    for i in np.ndindex(*logits.shape):
        p, m = logits.copy(), logits.copy()
        p[i] += eps
        m[i] -= eps
        num[i] = (loss(labels, p) - loss(labels, m)) / (2 * eps)
    np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-9)
    # 3 repeated labels need 5 steps: with 4 the loss is infinite and the gradient zero
    per = losses.ctc(np.array([[2, 2, 2]]), np.zeros((1, 4, 3)))
    assert np.isinf(per[0])
    assert not losses.CTC().gradient(np.array([[2, 2, 2]]), np.zeros((1, 4, 3))).any()


def test_ctc_trains_a_recurrent_model_on_label_sequences():
    import fastrnn
    rng = np.random.default_rng(2)
    x = rng.normal(size=(16, 10, 3))
    labels = rng.integers(1, 4, size=(16, 3))
    model = fastrnn.Sequential([fastrnn.layers.GRU(8, return_sequences=True,
                                                   input_shape=(10, 3)),
                                fastrnn.layers.Dense(4)])
    model.compile(optimizer=fastrnn.optimizers.Adam(0.05), loss="ctc")
    history = model.fit(x, labels, batch_size=8, epochs=5, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    with pytest.raises(ValueError, match="CTC labels"):
        model.evaluate(x, labels + 10)
