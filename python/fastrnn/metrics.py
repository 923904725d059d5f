"""Metrics: functions of ``(y_true, y_pred)`` reported during training, never differentiated.

A :class:`Metric` has a ``name`` (the key in ``history.history``; ``val_`` is prepended for
validation) and ``__call__(y_true, y_pred) -> float``, the metric of one batch. The model
reports the batch-size-weighted mean of the batch values over an epoch. That is exact for
every mean-type metric here (mse, mae, accuracies, a callable returning per-sample values)
but not for ``rmse``, whose epoch value Keras computes as the root of the epoch's mean squared
error. For that the optional stateful interface exists: ``reset_state()``,
``update_state(y_true, y_pred, weight)``, ``result()``; :class:`RootMeanSquaredError`
overrides it, and a model using it reports exactly what Keras reports.

Shapes follow :mod:`fastrnn.losses`: ``y_pred`` is ``(..., D)`` and ``y_true`` the same shape,
or without a trailing axis of length 1; sparse labels are ``(...)`` or ``(..., 1)``.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Union

import numpy as np

from . import losses as _losses

__all__ = [
    "Accuracy",
    "BinaryAccuracy",
    "CategoricalAccuracy",
    "FunctionMetric",
    "MeanAbsoluteError",
    "MeanSquaredError",
    "Metric",
    "RootMeanSquaredError",
    "SparseCategoricalAccuracy",
    "get",
]


class Metric:
    """A named function of one batch, plus a running weighted mean over batches.

    Subclasses implement ``__call__``. The default ``update_state`` accumulates
    ``weight * self(y_true, y_pred)``; ``result`` divides by the total weight.
    """

    name: str = "metric"

    def __init__(self, name: str | None = None):
        if name is not None:
            self.name = name
        self.reset_state()

    def __call__(self, y_true: Any, y_pred: Any) -> float:
        """The metric over one batch: ``y_pred`` ``(..., D)``, ``y_true`` see the module doc."""
        raise NotImplementedError

    def reset_state(self) -> None:
        """Forgets every batch seen by ``update_state``."""
        self._total = 0.0
        self._weight = 0.0

    def update_state(self, y_true: Any, y_pred: Any, weight: float = 1.0) -> float:
        """Adds one batch (``weight`` is usually its number of samples); returns its value."""
        value = self(y_true, y_pred)
        self._total += weight * value
        self._weight += weight
        return value

    def result(self) -> float:
        """The weighted mean of the batches since ``reset_state`` (NaN if there were none)."""
        return self._total / self._weight if self._weight else float("nan")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class _LossMetric(Metric):
    """A loss used as a metric (its value only)."""

    def __init__(self, loss: _losses.Loss, name: str | None = None):
        self.loss = loss
        super().__init__(name or loss.name)

    def __call__(self, y_true, y_pred):
        return self.loss(y_true, y_pred)


class MeanSquaredError(_LossMetric):
    """``mean((y_pred - y_true) ** 2)``."""

    def __init__(self, name: str = "mean_squared_error"):
        super().__init__(_losses.MeanSquaredError(), name)


class MeanAbsoluteError(_LossMetric):
    """``mean(|y_pred - y_true|)``."""

    def __init__(self, name: str = "mean_absolute_error"):
        super().__init__(_losses.MeanAbsoluteError(), name)


class RootMeanSquaredError(Metric):
    """``sqrt(mean((y_pred - y_true) ** 2))``; over an epoch, the root of the mean (as Keras)."""

    name = "root_mean_squared_error"

    def __call__(self, y_true, y_pred):
        return math.sqrt(_losses.MeanSquaredError()(y_true, y_pred))

    def reset_state(self) -> None:
        self._sum_sq = 0.0
        self._count = 0

    def update_state(self, y_true, y_pred, weight: float = 1.0) -> float:
        """Accumulates squared errors; ``weight`` is ignored (every element counts once)."""
        mse = _losses.MeanSquaredError()(y_true, y_pred)
        n = int(np.size(y_pred))
        self._sum_sq += mse * n
        self._count += n
        return math.sqrt(mse)

    def result(self) -> float:
        return math.sqrt(self._sum_sq / self._count) if self._count else float("nan")


def _pred_array(y_pred: Any) -> np.ndarray:
    y_pred = np.asarray(y_pred)
    if y_pred.ndim == 0 or y_pred.size == 0:
        raise ValueError(
            f"y_pred must be a non-empty array with at least one axis, got shape {y_pred.shape}."
        )
    return y_pred


class BinaryAccuracy(Metric):
    """Fraction of elements where ``y_true == (y_pred > threshold)`` (labels 0 or 1)."""

    name = "binary_accuracy"

    def __init__(self, name: str | None = None, threshold: float = 0.5):
        super().__init__(name)
        self.threshold = float(threshold)

    def __call__(self, y_true, y_pred):
        y_pred = _losses._as_float_array(_pred_array(y_pred))
        y_true = _losses._match_shape(y_true, y_pred)
        return float(np.mean(y_true == (y_pred > self.threshold)))


class SparseCategoricalAccuracy(Metric):
    """Fraction of samples whose ``argmax(y_pred)`` equals the integer label."""

    name = "sparse_categorical_accuracy"

    def __call__(self, y_true, y_pred):
        y_pred = _pred_array(y_pred)
        labels = np.asarray(y_true)
        if labels.shape == (*y_pred.shape[:-1], 1):
            labels = labels.reshape(y_pred.shape[:-1])
        if labels.shape != y_pred.shape[:-1]:
            raise ValueError(
                f"sparse labels must have shape {y_pred.shape[:-1]} or "
                f"{(*y_pred.shape[:-1], 1)} for y_pred of shape {y_pred.shape}, got "
                f"{labels.shape}."
            )
        return float(np.mean(np.argmax(y_pred, axis=-1) == labels))


class CategoricalAccuracy(Metric):
    """Fraction of samples whose ``argmax(y_pred)`` equals ``argmax(y_true)`` (one-hot)."""

    name = "categorical_accuracy"

    def __call__(self, y_true, y_pred):
        y_pred = _pred_array(y_pred)
        y_true = np.asarray(y_true)
        if y_true.shape != y_pred.shape:
            raise ValueError(
                f"y_true must be one-hot with y_pred's shape {y_pred.shape}, got {y_true.shape} "
                "(for integer labels use sparse_categorical_accuracy)."
            )
        return float(np.mean(np.argmax(y_pred, axis=-1) == np.argmax(y_true, axis=-1)))


class Accuracy(Metric):
    """``"accuracy"``: Keras's choice by shapes, made at each call (it is cheap).

    - ``y_pred``'s last axis has length 1, or ``y_pred`` is 1-D: binary accuracy;
    - ``y_true`` has one axis fewer than ``y_pred``, or a trailing axis of 1: sparse
      categorical accuracy;
    - otherwise (same shapes): categorical accuracy.
    """

    name = "accuracy"

    def __init__(self, name: str | None = None):
        super().__init__(name)
        self._binary = BinaryAccuracy()
        self._sparse = SparseCategoricalAccuracy()
        self._categorical = CategoricalAccuracy()

    def __call__(self, y_true, y_pred):
        y_pred = _pred_array(y_pred)
        y_true = np.asarray(y_true)
        if y_pred.ndim == 1 or y_pred.shape[-1] == 1:
            return self._binary(y_true, y_pred)
        if y_true.ndim == y_pred.ndim - 1 or (y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1):
            return self._sparse(y_true, y_pred)
        return self._categorical(y_true, y_pred)


class FunctionMetric(Metric):
    """Any ``f(y_true, y_pred)`` returning a scalar or an array (averaged), named ``f.__name__``.

    ``y_true`` and ``y_pred`` are passed as given, e.g. ``(B, T, D)`` arrays for the book's
    ``last_time_step_mse = lambda Y_true, Y_pred: mse(Y_true[:, -1], Y_pred[:, -1])``.
    """

    def __init__(self, fn: Callable[[np.ndarray, np.ndarray], Any], name: str | None = None):
        if not callable(fn):
            raise TypeError(f"FunctionMetric needs a callable, got {type(fn).__name__}.")
        self.fn = fn
        super().__init__(name or getattr(fn, "__name__", type(fn).__name__))

    def __call__(self, y_true, y_pred):
        return float(np.mean(self.fn(y_true, y_pred)))


_FACTORIES: dict[str, Callable[[str], Metric]] = {
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError,
    "rmse": RootMeanSquaredError,
    "root_mean_squared_error": RootMeanSquaredError,
    "accuracy": Accuracy,
    "acc": Accuracy,
    "binary_accuracy": BinaryAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "categorical_accuracy": CategoricalAccuracy,
}

MetricIdentifier = Union[str, Metric, _losses.Loss, Callable[[np.ndarray, np.ndarray], Any]]


def get(identifier: MetricIdentifier) -> Metric:
    """A :class:`Metric` from a name, a Metric, a :class:`fastrnn.losses.Loss`, or a callable.

    Names (case-insensitive): ``mse``, ``mae``, ``rmse`` (and their long forms),
    ``accuracy``/``acc``, ``binary_accuracy``, ``sparse_categorical_accuracy``,
    ``categorical_accuracy``, and any loss name of :func:`fastrnn.losses.get` (e.g. ``huber``).
    A string keeps the spelling it was given as its name (``metrics=["mae"]`` gives
    ``history["mae"]`` and ``history["val_mae"]``, as in Keras).
    """
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        factory = _FACTORIES.get(identifier.lower())
        if factory is not None:
            return factory(name=identifier)
        try:
            loss = _losses.get(identifier)
        except ValueError:
            valid = sorted(set(_FACTORIES) | set(_losses._ALIASES))
            raise ValueError(
                f"Unknown metric {identifier!r}; valid names are: {', '.join(valid)}; or pass "
                "a callable f(y_true, y_pred)."
            ) from None
        return _LossMetric(loss, name=identifier)
    if isinstance(identifier, _losses.Loss):
        return _LossMetric(identifier)
    if callable(identifier):
        return FunctionMetric(identifier)
    raise TypeError(
        f"Could not interpret metric {identifier!r}: expected a name, a Metric, a Loss or a "
        "callable f(y_true, y_pred)."
    )


# ----------------------------------------------------------------------------- function forms
# Keras's ``keras.metrics.mean_squared_error(y_true, y_pred)`` and friends: per-sample values
# (Hands-On ML's ``last_time_step_mse`` calls it on the last step of seq-to-seq outputs).
mean_squared_error = mse = _losses.mean_squared_error
mean_absolute_error = mae = _losses.mean_absolute_error
mean_absolute_percentage_error = mape = _losses.mean_absolute_percentage_error
binary_crossentropy = _losses.binary_crossentropy
categorical_crossentropy = _losses.categorical_crossentropy
sparse_categorical_crossentropy = _losses.sparse_categorical_crossentropy


def binary_accuracy(y_true: Any, y_pred: Any, threshold: float = 0.5) -> np.ndarray:
    """``mean(y_true == (y_pred > threshold), axis=-1)`` per sample."""
    y_pred = _losses._as_float_array(_pred_array(y_pred))
    y_true = _losses._match_shape(y_true, y_pred)
    return np.mean(y_true == (y_pred > threshold), axis=-1)


def categorical_accuracy(y_true: Any, y_pred: Any) -> np.ndarray:
    """1.0 where ``argmax(y_pred) == argmax(y_true)``, per sample."""
    y_pred = _pred_array(y_pred)
    return (np.argmax(y_pred, axis=-1) == np.argmax(np.asarray(y_true), axis=-1)).astype(
        np.float32)


def sparse_categorical_accuracy(y_true: Any, y_pred: Any) -> np.ndarray:
    """1.0 where ``argmax(y_pred)`` equals the integer label, per sample."""
    y_pred = _pred_array(y_pred)
    labels = _losses._sparse_labels(y_true, y_pred)
    return (np.argmax(y_pred, axis=-1) == labels).astype(np.float32)


__all__ += ["binary_accuracy", "binary_crossentropy", "categorical_accuracy",
            "categorical_crossentropy", "mae", "mape", "mean_absolute_error",
            "mean_absolute_percentage_error", "mean_squared_error", "mse",
            "sparse_categorical_accuracy", "sparse_categorical_crossentropy"]
