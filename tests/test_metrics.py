"""Metrics: values, Keras's choice of accuracy by shapes, names, callables, the stateful RMSE."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fastrnn import losses, metrics


def test_regression_metrics_values():
    y_true = np.array([[0.0, 1.0], [2.0, 3.0]])
    y_pred = np.array([[1.0, 1.0], [2.0, 1.0]])
    assert metrics.get("mse")(y_true, y_pred) == pytest.approx(5 / 4)
    assert metrics.get("mae")(y_true, y_pred) == pytest.approx(3 / 4)
    assert metrics.get("rmse")(y_true, y_pred) == pytest.approx(math.sqrt(5 / 4))
    # (B,) labels against (B, 1) predictions, the book's shapes
    assert metrics.get("mse")(np.array([1.0, 2.0]), np.array([[1.5], [2.0]])) == pytest.approx(
        0.125
    )


def test_string_names_are_kept_for_history_keys():
    assert metrics.get("mae").name == "mae"
    assert metrics.get("mean_absolute_error").name == "mean_absolute_error"
    assert metrics.get("acc").name == "acc"
    assert metrics.get("accuracy").name == "accuracy"
    assert metrics.get("huber").name == "huber"  # any loss name works as a metric
    assert metrics.get(losses.Huber(delta=2.0)).name == "huber_loss"


def test_accuracy_chooses_binary_for_a_single_output():
    acc = metrics.get("accuracy")
    y_true = np.array([[1.0], [0.0], [1.0], [1.0]])
    y_pred = np.array([[0.9], [0.2], [0.3], [0.7]])
    # 0.75, where an argmax over the single column (a sparse misreading) would give 0.25
    assert acc(y_true, y_pred) == pytest.approx(0.75)
    assert acc(y_true[:, 0], y_pred) == pytest.approx(0.75)  # (B,) labels too
    assert metrics.get("binary_accuracy")(y_true, y_pred) == pytest.approx(0.75)
    # threshold 0.5 is exclusive, as in Keras: 0.5 counts as class 0
    assert metrics.BinaryAccuracy()(np.array([0.0]), np.array([0.5])) == 1.0


def test_accuracy_chooses_sparse_for_integer_labels():
    acc = metrics.get("acc")
    y_pred = np.array([[0.1, 0.7, 0.2], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5]])
    labels = np.array([1, 0, 0])
    assert acc(labels, y_pred) == pytest.approx(2 / 3)
    assert acc(labels[:, None], y_pred) == pytest.approx(2 / 3)
    assert metrics.get("sparse_categorical_accuracy")(labels, y_pred) == pytest.approx(2 / 3)
    # per time step: (B, T) labels against (B, T, C)
    seq_pred = np.stack([y_pred, y_pred])
    assert acc(np.stack([labels, [1, 0, 2]]), seq_pred) == pytest.approx(5 / 6)


def test_accuracy_chooses_categorical_for_one_hot():
    acc = metrics.get("accuracy")
    y_pred = np.array([[0.1, 0.7, 0.2], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5]])
    one_hot = np.eye(3)[[1, 0, 0]]
    assert acc(one_hot, y_pred) == pytest.approx(2 / 3)
    assert metrics.get("categorical_accuracy")(one_hot, y_pred) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="sparse_categorical_accuracy"):
        metrics.get("categorical_accuracy")(np.array([1, 0, 0]), y_pred)


def test_sparse_accuracy_rejects_wrong_label_shape():
    with pytest.raises(ValueError, match=r"sparse labels must have shape \(3,\) or \(3, 1\)"):
        metrics.get("sparse_categorical_accuracy")(np.zeros((3, 2)), np.zeros((3, 4)))


def test_callable_metric_like_the_books_last_time_step_mse():
    def last_time_step_mse(y_true, y_pred):
        return np.mean((y_true[:, -1] - y_pred[:, -1]) ** 2, axis=-1)  # per-sample array

    rng = np.random.default_rng(0)
    y_true, y_pred = rng.standard_normal((4, 5, 10)), rng.standard_normal((4, 5, 10))
    m = metrics.get(last_time_step_mse)
    assert m.name == "last_time_step_mse"
    expected = np.mean((y_true[:, -1] - y_pred[:, -1]) ** 2)
    assert m(y_true, y_pred) == pytest.approx(expected)
    assert isinstance(m(y_true, y_pred), float)
    assert metrics.get(lambda t, p: 1).name == "<lambda>"


def test_rmse_epoch_result_is_root_of_mean_not_mean_of_roots():
    rmse = metrics.get("rmse")
    batches = [(np.zeros((2, 1)), np.full((2, 1), 1.0)), (np.zeros((1, 1)), np.full((1, 1), 4.0))]
    rmse.reset_state()
    for y_true, y_pred in batches:
        rmse.update_state(y_true, y_pred, weight=len(y_true))
    assert rmse.result() == pytest.approx(math.sqrt((1 + 1 + 16) / 3))
    rmse.reset_state()
    assert math.isnan(rmse.result())


def test_default_update_state_is_a_weighted_mean():
    mae = metrics.get("mae")
    mae.update_state(np.zeros((3, 1)), np.ones((3, 1)), weight=3)
    mae.update_state(np.zeros((1, 1)), np.full((1, 1), 5.0), weight=1)
    assert mae.result() == pytest.approx((3 * 1 + 5) / 4)


def test_instances_pass_through_and_bad_identifiers_raise():
    m = metrics.MeanSquaredError(name="my_mse")
    assert metrics.get(m) is m
    with pytest.raises(ValueError, match="Unknown metric 'accuracyy'; valid names are: .*acc"):
        metrics.get("accuracyy")
    with pytest.raises(TypeError, match="Could not interpret metric"):
        metrics.get(1.5)
    with pytest.raises(ValueError, match="non-empty"):
        metrics.get("accuracy")(np.zeros(0), np.zeros(0))
