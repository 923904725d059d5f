"""Losses: values (Keras's documented examples, NumPy formulas, PyTorch), float64 finite-difference
gradients, shapes, dtypes, bad input, and the `get` registry."""

from __future__ import annotations

import numpy as np
import pytest

from fastrnn import losses

try:
    import torch
except ImportError:  # pragma: no cover - torch is in the dev environment
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch not installed")


def finite_difference(loss: losses.Loss, y_true, y_pred: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar loss with respect to every element of y_pred."""
    grad = np.zeros_like(y_pred)
    flat, g = y_pred.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        plus = loss(y_true, y_pred)
        flat[i] = old - h
        minus = loss(y_true, y_pred)
        flat[i] = old
        g[i] = (plus - minus) / (2 * h)
    return grad


def _regression_case(rng, shape=(3, 5, 2)):
    return rng.standard_normal(shape), rng.standard_normal(shape)


def _probability_case(rng, shape=(3, 5, 2)):
    # well inside (eps, 1 - eps), so the clip is inactive and the loss smooth
    return rng.integers(0, 2, shape).astype(np.float64), rng.uniform(0.05, 0.95, shape)


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


CASES = {
    "mse": (losses.MeanSquaredError(), _regression_case),
    "mae": (losses.MeanAbsoluteError(), _regression_case),
    "huber": (losses.Huber(delta=0.7), _regression_case),
    "bce": (losses.BinaryCrossentropy(), _probability_case),
    "bce_logits": (losses.BinaryCrossentropy(from_logits=True), _regression_case),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_dense_losses_gradient_matches_finite_differences(name):
    loss, make = CASES[name]
    rng = np.random.default_rng(1)
    y_true, y_pred = make(rng)
    if name == "bce_logits":
        y_true = rng.uniform(0, 1, y_pred.shape)  # soft labels are allowed
    value, grad = loss.value_and_gradient(y_true, y_pred)
    assert grad.shape == y_pred.shape and grad.dtype == np.float64
    np.testing.assert_allclose(grad, finite_difference(loss, y_true, y_pred), rtol=1e-5, atol=1e-9)
    assert value == pytest.approx(loss(y_true, y_pred), rel=1e-12)
    np.testing.assert_array_equal(loss.gradient(y_true, y_pred), grad)


@pytest.mark.parametrize("from_logits", [False, True])
def test_sparse_categorical_crossentropy_gradient(from_logits):
    rng = np.random.default_rng(2)
    y_pred = rng.standard_normal((4, 3, 7))
    if not from_logits:
        y_pred = _softmax(y_pred) * rng.uniform(0.5, 2.0, (4, 3, 1))  # unnormalised on purpose
    labels = rng.integers(0, 7, (4, 3))
    loss = losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    _, grad = loss.value_and_gradient(labels, y_pred)
    np.testing.assert_allclose(grad, finite_difference(loss, labels, y_pred), rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("from_logits", [False, True])
def test_categorical_crossentropy_gradient_with_soft_labels(from_logits):
    rng = np.random.default_rng(3)
    y_pred = rng.standard_normal((5, 4))
    if not from_logits:
        y_pred = _softmax(y_pred) * 1.7
    y_true = _softmax(rng.standard_normal((5, 4)) * 2) * 0.9  # soft, rows not summing to 1
    loss = losses.CategoricalCrossentropy(from_logits=from_logits)
    _, grad = loss.value_and_gradient(y_true, y_pred)
    np.testing.assert_allclose(grad, finite_difference(loss, y_true, y_pred), rtol=1e-5, atol=1e-9)


def test_values_match_keras_documented_examples():
    # The worked examples in Keras's loss docstrings.
    t = [[0.0, 1.0], [0.0, 0.0]]
    assert losses.MeanSquaredError()(t, [[1.0, 1.0], [1.0, 0.0]]) == pytest.approx(0.5)
    assert losses.MeanAbsoluteError()(t, [[1.0, 1.0], [1.0, 0.0]]) == pytest.approx(0.5)
    p = [[0.6, 0.4], [0.4, 0.6]]
    assert losses.BinaryCrossentropy()(t, p) == pytest.approx(0.815, abs=1e-3)
    assert losses.Huber()(t, p) == pytest.approx(0.155, abs=1e-3)
    cat_pred = [[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]]
    one_hot = [[0, 1, 0], [0, 0, 1]]
    assert losses.CategoricalCrossentropy()(one_hot, cat_pred) == pytest.approx(1.177, abs=1e-3)
    assert losses.SparseCategoricalCrossentropy()([1, 2], cat_pred) == pytest.approx(
        1.177, abs=1e-3
    )


def test_keras_reduction_mean_over_last_axis_then_samples():
    rng = np.random.default_rng(4)
    y_true, y_pred = rng.standard_normal((6, 4, 3)), rng.standard_normal((6, 4, 3))
    per_sample = np.mean((y_pred - y_true) ** 2, axis=-1)
    assert losses.get("mse")(y_true, y_pred) == pytest.approx(per_sample.mean(), rel=1e-12)
    err = y_pred - y_true
    huber = np.where(np.abs(err) <= 1.0, 0.5 * err**2, np.abs(err) - 0.5).mean(-1).mean()
    assert losses.get("huber")(y_true, y_pred) == pytest.approx(huber, rel=1e-12)


@needs_torch
@pytest.mark.parametrize(
    "name",
    ["mse", "mae", "huber", "bce", "bce_logits", "cce", "cce_logits", "scce", "scce_logits"],
)
def test_value_and_gradient_match_pytorch_autograd(name):
    import torch.nn.functional as F

    rng = np.random.default_rng(5)
    shape = (4, 3, 5)
    y_pred = rng.standard_normal(shape)
    labels = rng.integers(0, shape[-1], shape[:-1])
    one_hot = np.eye(shape[-1])[labels]
    if name in ("bce", "cce", "scce"):
        y_pred = rng.uniform(0.05, 0.95, shape)
        if name != "bce":
            y_pred /= y_pred.sum(-1, keepdims=True)
    y_true = {
        "bce": rng.integers(0, 2, shape).astype(float),
        "bce_logits": rng.uniform(0, 1, shape),
        "cce": one_hot,
        "cce_logits": one_hot,
        "scce": labels,
        "scce_logits": labels,
    }.get(name, rng.standard_normal(shape))
    p = torch.tensor(y_pred, requires_grad=True)
    t = torch.tensor(y_true)
    ref = {
        "mse": lambda: F.mse_loss(p, t),
        "mae": lambda: F.l1_loss(p, t),
        "huber": lambda: F.huber_loss(p, t, delta=1.0),
        "bce": lambda: F.binary_cross_entropy(p, t),
        "bce_logits": lambda: F.binary_cross_entropy_with_logits(p, t),
        # Keras renormalises probabilities over the last axis before the log
        "cce": lambda: -(t * torch.log(p / p.sum(-1, keepdim=True))).sum(-1).mean(),
        "cce_logits": lambda: F.cross_entropy(p.reshape(-1, 5), t.reshape(-1, 5)),
        "scce": lambda: F.nll_loss(
            torch.log(p / p.sum(-1, keepdim=True)).reshape(-1, 5), t.reshape(-1)
        ),
        "scce_logits": lambda: F.cross_entropy(p.reshape(-1, 5), t.reshape(-1)),
    }[name]()
    ref.backward()
    loss = losses.get(
        {
            "bce_logits": losses.BinaryCrossentropy(from_logits=True),
            "cce": "categorical_crossentropy",
            "cce_logits": losses.CategoricalCrossentropy(from_logits=True),
            "scce": "sparse_categorical_crossentropy",
            "scce_logits": losses.SparseCategoricalCrossentropy(from_logits=True),
        }.get(name, name)
    )
    value, grad = loss.value_and_gradient(y_true, y_pred)
    assert value == pytest.approx(ref.item(), rel=1e-10)
    np.testing.assert_allclose(grad, p.grad.numpy(), rtol=1e-8, atol=1e-14)


@pytest.mark.parametrize(
    "loss",
    [
        losses.MeanSquaredError(),
        losses.MeanAbsoluteError(),
        losses.Huber(),
        losses.BinaryCrossentropy(),
        losses.BinaryCrossentropy(from_logits=True),
        losses.CategoricalCrossentropy(),
        losses.CategoricalCrossentropy(from_logits=True),
    ],
    ids=repr,
)
def test_float32_in_float32_gradient_out(loss):
    rng = np.random.default_rng(6)
    y_pred = rng.uniform(0.1, 0.9, (8, 4)).astype(np.float32)
    y_true = np.eye(4)[rng.integers(0, 4, 8)]  # float64 labels: the gradient follows y_pred
    value, grad = loss.value_and_gradient(y_true, y_pred)
    assert isinstance(value, float) and grad.dtype == np.float32 and grad.shape == y_pred.shape
    _, grad64 = loss.value_and_gradient(y_true, y_pred.astype(np.float64))
    np.testing.assert_allclose(grad, grad64, rtol=1e-4, atol=1e-7)


def test_sparse_float32_gradient_dtype():
    y_pred = np.full((3, 4), 0.25, np.float32)
    grad = losses.SparseCategoricalCrossentropy().gradient([0, 1, 3], y_pred)
    assert grad.dtype == np.float32


def test_trailing_axis_of_one_is_matched_like_keras():
    rng = np.random.default_rng(7)
    y_pred = rng.standard_normal((10, 1))
    y_flat = rng.standard_normal(10)
    mse = losses.MeanSquaredError()
    expected = np.mean((y_pred[:, 0] - y_flat) ** 2)
    assert mse(y_flat, y_pred) == pytest.approx(expected)
    assert mse(y_pred, y_flat) == pytest.approx(expected)  # and the other way round
    assert mse.gradient(y_flat, y_pred).shape == (10, 1)
    scce = losses.SparseCategoricalCrossentropy(from_logits=True)
    logits = rng.standard_normal((10, 3))
    labels = rng.integers(0, 3, 10)
    assert scce(labels[:, None], logits) == pytest.approx(scce(labels, logits))


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"y_true \(32, 5\) and y_pred \(32, 10\)"):
        losses.get("mse")(np.zeros((32, 5)), np.zeros((32, 10)))
    with pytest.raises(ValueError, match="sparse_categorical_crossentropy"):
        losses.get("categorical_crossentropy")(np.zeros(4), np.full((4, 3), 1 / 3))
    with pytest.raises(ValueError, match=r"shape \(4,\) or \(4, 1\)"):
        losses.get("sparse_categorical_crossentropy")(np.zeros((4, 2)), np.full((4, 3), 1 / 3))


@pytest.mark.parametrize("bad", [12, -1, 10])
def test_sparse_labels_out_of_range(bad):
    labels = np.array([0, 3, bad, 9])
    with pytest.raises(ValueError, match=rf"labels must be in \[0, 10\), got {bad}\."):
        losses.get("sparse_categorical_crossentropy")(labels, np.full((4, 10), 0.1))


def test_sparse_labels_must_be_integers():
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    logits = np.zeros((2, 3))
    assert loss([1.0, 2.0], logits) == pytest.approx(np.log(3))  # integral floats are fine
    with pytest.raises(ValueError, match="non-integer"):
        loss([0.5, 2.0], logits)
    with pytest.raises(ValueError, match="integer class indices"):
        loss(np.array(["a", "b"]), logits)


def test_extreme_logits_stay_finite_without_warnings():
    x = np.array([[-1000.0, 0.0, 1000.0]])
    value, grad = losses.BinaryCrossentropy(from_logits=True).value_and_gradient(
        [[1.0, 0.0, 0.0]], x
    )
    assert value == pytest.approx((1000 + np.log(2) + 1000) / 3)
    np.testing.assert_allclose(grad, [[-1 / 3, 1 / 6, 1 / 3]])
    value, grad = losses.SparseCategoricalCrossentropy(from_logits=True).value_and_gradient([0], x)
    assert value == pytest.approx(2000.0)
    np.testing.assert_allclose(grad, [[-1.0, 0.0, 1.0]], atol=1e-300)
    x32 = x.astype(np.float32)
    _, grad = losses.CategoricalCrossentropy(from_logits=True).value_and_gradient(
        [[0.0, 0.0, 1.0]], x32
    )
    assert np.isfinite(grad).all()


def test_saturated_probabilities_are_clipped_like_keras():
    # p of exactly 0 or 1: the loss is -log(1e-7) per wrong element, the gradient there is 0.
    bce = losses.BinaryCrossentropy()
    value, grad = bce.value_and_gradient([[0.0, 1.0]], [[1.0, 1.0]])
    assert value == pytest.approx(-np.log(1e-7) / 2, rel=1e-6)
    np.testing.assert_array_equal(grad, 0.0)
    cce = losses.CategoricalCrossentropy()
    value, grad = cce.value_and_gradient([[1.0, 0.0]], [[0.0, 1.0]])
    assert value == pytest.approx(-np.log(1e-7), rel=1e-6) and np.isfinite(grad).all()
    scce = losses.SparseCategoricalCrossentropy()
    value, grad = scce.value_and_gradient([0], [[0.0, 1.0]])
    assert value == pytest.approx(-np.log(1e-7), rel=1e-6)
    np.testing.assert_array_equal(grad, 0.0)


def test_empty_and_scalar_predictions_raise():
    with pytest.raises(ValueError, match="empty"):
        losses.get("mse")(np.zeros((0, 3)), np.zeros((0, 3)))
    with pytest.raises(ValueError, match="at least one axis"):
        losses.get("sparse_categorical_crossentropy")(0, np.float64(0.5))


def test_huber_rejects_non_positive_delta():
    with pytest.raises(ValueError, match="`delta`: expected a positive float, got 0.0"):
        losses.Huber(delta=0)


def test_get_names_instances_and_unknown():
    assert isinstance(losses.get("MSE"), losses.MeanSquaredError)
    assert isinstance(losses.get("mean_absolute_error"), losses.MeanAbsoluteError)
    assert isinstance(losses.get("bce"), losses.BinaryCrossentropy)
    assert isinstance(losses.get("huber"), losses.Huber)
    inst = losses.Huber(delta=2.0)
    assert losses.get(inst) is inst
    with pytest.raises(ValueError, match="valid names are: .*binary_crossentropy.*mse"):
        losses.get("mean_squared_eror")
    with pytest.raises(TypeError, match="Could not interpret loss"):
        losses.get(3)


@pytest.mark.parametrize(
    "loss",
    [
        losses.Huber(delta=0.3),
        losses.BinaryCrossentropy(from_logits=True),
        losses.SparseCategoricalCrossentropy(from_logits=True, name="scce"),
        losses.CategoricalCrossentropy(),
        losses.MeanSquaredError(),
    ],
    ids=repr,
)
def test_serialize_round_trip(loss):
    import json

    clone = losses.get(json.loads(json.dumps(losses.serialize(loss))))
    assert type(clone) is type(loss) and clone.get_config() == loss.get_config()


def test_callable_returning_only_a_value_evaluates_but_cannot_train():
    def my_mse(y_true, y_pred):
        return np.mean((y_pred - y_true) ** 2, axis=-1)  # per-sample, as Keras customs return

    loss = losses.get(my_mse)
    assert loss.name == "my_mse"
    assert loss(np.zeros((2, 2)), np.ones((2, 2))) == pytest.approx(1.0)
    with pytest.raises(TypeError, match="returned only a value.*Return `\\(value, gradient\\)`"):
        loss.value_and_gradient(np.zeros((2, 2)), np.ones((2, 2)))


def test_callable_returning_value_and_gradient_trains():
    def half_sse(y_true, y_pred):
        diff = y_pred - y_true
        return 0.5 * float(np.sum(diff**2)), diff

    loss = losses.get(half_sse)
    value, grad = loss.value_and_gradient(np.zeros((2, 3)), np.ones((2, 3)))
    assert value == 3.0 and loss(np.zeros((2, 3)), np.ones((2, 3))) == 3.0
    np.testing.assert_array_equal(grad, np.ones((2, 3)))

    def bad_shape(y_true, y_pred):
        return 0.0, np.zeros(3)

    with pytest.raises(ValueError, match=r"gradient of shape \(3,\); expected .* \(2, 3\)"):
        losses.get(bad_shape).value_and_gradient(np.zeros((2, 3)), np.ones((2, 3)))


def test_subclass_with_gradient_is_used_as_is():
    class QuarticLoss(losses.Loss):
        name = "quartic"

        def _value_and_gradient(self, y_true, y_pred):
            d = y_pred - np.asarray(y_true)
            return float(np.mean(d**4)), 4 * d**3 / d.size

    loss = losses.get(QuarticLoss())
    y_pred = np.array([[0.5, -1.0, 2.0]])
    np.testing.assert_allclose(
        loss.gradient(np.zeros((1, 3)), y_pred),
        finite_difference(loss, np.zeros((1, 3)), y_pred.copy()),
        rtol=1e-6,
    )


def test_inputs_are_not_modified():
    rng = np.random.default_rng(8)
    y_true, y_pred = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    keep_t, keep_p = y_true.copy(), y_pred.copy()
    for name in ("mse", "mae", "huber", "bce"):
        losses.get(name).value_and_gradient(y_true, np.clip(y_pred, 0.01, 0.99))
        losses.get(name)(y_true, y_pred if name != "bce" else np.clip(y_pred, 0.01, 0.99))
    losses.BinaryCrossentropy(from_logits=True).value_and_gradient(y_true, y_pred)
    np.testing.assert_array_equal(y_true, keep_t)
    np.testing.assert_array_equal(y_pred, keep_p)
