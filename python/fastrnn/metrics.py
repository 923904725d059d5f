"""Metrics: functions of ``(y_true, y_pred)`` reported during training, never differentiated.

A :class:`Metric` has a ``name`` (the key in ``history.history``; ``val_`` is prepended for
validation) and ``__call__(y_true, y_pred) -> float``, the metric of one batch. The model
reports the batch-size-weighted mean of the batch values over an epoch. That is exact for
every mean-type metric here (mse, mae, accuracies, a callable returning per-sample values)
but not for ``rmse``, whose epoch value Keras computes as the root of the epoch's mean squared
error. For that the optional stateful interface exists: ``reset_state()``,
``update_state(y_true, y_pred, weight)``, ``result()``; :class:`RootMeanSquaredError`
overrides it, and a model using it reports exactly what Keras reports.

The confusion-count metrics (``AUC``, ``Precision``, ``Recall``, ``TruePositives``...,
``R2Score``, ``F1Score``/``FBetaScore``, the IoU family) accumulate counts in
``update_state``, so their value over an epoch of batches is exact, as in Keras. Keras 3
names: all are here (``Metric``, ``Mean``, ``Sum``, ``MeanMetricWrapper`` and every function
form included); Keras's ``sample_weight`` argument of ``update_state`` is not (compile's
``metrics`` are unweighted, as in Keras; there is no ``weighted_metrics``).

Shapes follow :mod:`fastrnn.losses`: ``y_pred`` is ``(..., D)`` and ``y_true`` the same shape,
or without a trailing axis of length 1; sparse labels are ``(...)`` or ``(..., 1)``.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional, Union

import numpy as np

from . import losses as _losses
from ._checks import check_positive_int

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
}  # completed below with every metric class's snake-case and lower-case name

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


# ----------------------------------------------------------------------------- top-k accuracy
def _in_top_k(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Whether each row's label is among its `k` highest scores; as TensorFlow's ``in_top_k``,
    classes tied with the k-th score count as in the top k."""
    target = np.take_along_axis(scores, labels[..., None], axis=-1)
    return (scores > target).sum(axis=-1) < k


def _check_k(k: Any) -> int:
    return check_positive_int("k", k)


def top_k_categorical_accuracy(y_true: Any, y_pred: Any, k: int = 5) -> np.ndarray:
    """1.0 where ``argmax(y_true)`` is among the `k` highest scores of `y_pred`, per sample."""
    y_pred = _pred_array(y_pred)
    labels = np.argmax(np.asarray(y_true), axis=-1)
    return _in_top_k(y_pred, labels, _check_k(k)).astype(np.float32)


def sparse_top_k_categorical_accuracy(y_true: Any, y_pred: Any, k: int = 5,
                                      from_sorted_ids: bool = False) -> np.ndarray:
    """1.0 where the integer label is among the `k` highest scores of `y_pred`, per sample.
    With `from_sorted_ids`, `y_pred` holds class ids sorted by score (best first): the label
    must be among its first `k` columns."""
    k = _check_k(k)
    y_pred = _pred_array(y_pred)
    if from_sorted_ids:
        labels = np.asarray(y_true)
        if labels.shape == (*y_pred.shape[:-1], 1):
            labels = labels.reshape(y_pred.shape[:-1])
        return (y_pred[..., :k] == labels[..., None]).any(axis=-1).astype(np.float32)
    labels = _losses._sparse_labels(y_true, y_pred)
    return _in_top_k(y_pred, labels, k).astype(np.float32)


class TopKCategoricalAccuracy(Metric):
    """Fraction of samples whose one-hot class is among the `k` highest scores."""

    name = "top_k_categorical_accuracy"

    def __init__(self, k: int = 5, name: str | None = None):
        self.k = _check_k(k)
        super().__init__(name)

    def __call__(self, y_true, y_pred):
        return float(np.mean(top_k_categorical_accuracy(y_true, y_pred, self.k)))


class SparseTopKCategoricalAccuracy(Metric):
    """Fraction of samples whose integer label is among the `k` highest scores."""

    name = "sparse_top_k_categorical_accuracy"

    def __init__(self, k: int = 5, name: str | None = None, from_sorted_ids: bool = False):
        self.k = _check_k(k)
        self.from_sorted_ids = bool(from_sorted_ids)
        super().__init__(name)

    def __call__(self, y_true, y_pred):
        return float(np.mean(sparse_top_k_categorical_accuracy(
            y_true, y_pred, self.k, self.from_sorted_ids)))


# ----------------------------------------------------------------------------- confusion counts
def _thresholds(value: Any, default: float) -> tuple[np.ndarray, bool]:
    """``(thresholds, scalar)``: the thresholds as an array, and whether one was given alone."""
    if value is None:
        value = default
    scalar = np.ndim(value) == 0
    t = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if t.ndim != 1 or t.size == 0 or not np.isfinite(t[(t > -np.inf)]).all():
        raise ValueError(
            f"Received an invalid value for argument `thresholds`, expected a float or a list "
            f"of floats, got {value!r}."
        )
    return t, scalar


def _binary_inputs(y_true: Any, y_pred: Any, class_id: Optional[int] = None,
                   top_k: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
    """``(labels as bool, scores)``, both of `y_pred`'s shape (or its `class_id` column), with
    every score outside a row's `top_k` set to -inf (Keras's confusion-matrix inputs)."""
    y_pred = _losses._as_float_array(_pred_array(y_pred)).astype(np.float64)
    y_true = _losses._match_shape(y_true, y_pred)
    if top_k is not None:
        kth = -np.sort(-y_pred, axis=-1)[..., min(top_k, y_pred.shape[-1]) - 1:][..., :1]
        y_pred = np.where(y_pred >= kth, y_pred, -np.inf)
    if class_id is not None:
        if not 0 <= class_id < y_pred.shape[-1]:
            raise ValueError(
                f"Received an invalid value for argument `class_id`: {class_id} for y_pred "
                f"with {y_pred.shape[-1]} classes."
            )
        y_pred, y_true = y_pred[..., class_id], y_true[..., class_id]
    return y_true.astype(bool), y_pred


def _confusion(labels: np.ndarray, scores: np.ndarray, thresholds: np.ndarray
               ) -> np.ndarray:
    """``(4, len(thresholds))`` counts tp, fp, tn, fn, predicting positive where
    ``score > threshold``."""
    labels, scores = labels.reshape(-1), scores.reshape(-1)
    pos = np.sort(scores[labels])
    neg = np.sort(scores[~labels])
    tp = pos.size - np.searchsorted(pos, thresholds, side="right")
    fp = neg.size - np.searchsorted(neg, thresholds, side="right")
    return np.stack([tp, fp, neg.size - fp, pos.size - tp]).astype(np.float64)


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a / b``, 0 where ``b == 0`` (Keras's ``divide_no_nan``)."""
    return np.divide(a, b, out=np.zeros(np.broadcast(a, b).shape), where=b != 0)


class _ConfusionMetric(Metric):
    """A metric of the confusion counts at some thresholds, accumulated over batches
    (``update_state`` adds counts, so an epoch's value is exact, as in Keras)."""

    def _counts(self, y_true: Any, y_pred: Any) -> np.ndarray:
        raise NotImplementedError

    def _result(self, counts: np.ndarray) -> Any:
        raise NotImplementedError

    def __call__(self, y_true, y_pred):
        return self._result(self._counts(y_true, y_pred))

    def reset_state(self) -> None:
        self._accumulated: Optional[np.ndarray] = None

    def update_state(self, y_true, y_pred, weight: float = 1.0):
        """Adds the batch's counts (``weight`` is ignored: every element counts once)."""
        counts = self._counts(y_true, y_pred)
        self._accumulated = counts if self._accumulated is None else self._accumulated + counts
        return self._result(counts)

    def result(self):
        return float("nan") if self._accumulated is None else self._result(self._accumulated)


class _ThresholdCounts(_ConfusionMetric):
    _default = 0.5

    def __init__(self, thresholds: Any = None, name: str | None = None,
                 top_k: Optional[int] = None, class_id: Optional[int] = None):
        self.top_k = None if top_k is None else _check_k(top_k)
        default = self._default if self.top_k is None else -np.inf
        self.init_thresholds = thresholds
        self.thresholds, self._scalar = _thresholds(thresholds, default)
        self.class_id = class_id
        super().__init__(name)

    def _counts(self, y_true, y_pred):
        labels, scores = _binary_inputs(y_true, y_pred, self.class_id, self.top_k)
        return _confusion(labels, scores, self.thresholds)

    def _value(self, counts: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _result(self, counts):
        value = self._value(counts)
        return float(value[0]) if self._scalar else value


class TruePositives(_ThresholdCounts):
    """The number of positive labels predicted above the threshold(s) (default 0.5)."""

    name = "true_positives"

    def __init__(self, thresholds: Any = None, name: str | None = None):
        super().__init__(thresholds, name)

    def _value(self, counts):
        return counts[0]


class FalsePositives(TruePositives):
    """The number of negative labels predicted above the threshold(s) (default 0.5)."""

    name = "false_positives"

    def _value(self, counts):
        return counts[1]


class TrueNegatives(TruePositives):
    """The number of negative labels predicted at or below the threshold(s) (default 0.5)."""

    name = "true_negatives"

    def _value(self, counts):
        return counts[2]


class FalseNegatives(TruePositives):
    """The number of positive labels predicted at or below the threshold(s) (default 0.5)."""

    name = "false_negatives"

    def _value(self, counts):
        return counts[3]


class Precision(_ThresholdCounts):
    """``tp / (tp + fp)`` with ``y_pred > thresholds`` (default 0.5) predicting positive, over
    every element (or column `class_id`; with `top_k`, only each row's k highest scores count
    as predicted). Labels are 0/1 (nonzero is positive)."""

    name = "precision"

    def _value(self, counts):
        return _divide(counts[0], counts[0] + counts[1])


class Recall(_ThresholdCounts):
    """``tp / (tp + fn)``; arguments as :class:`Precision`."""

    name = "recall"

    def _value(self, counts):
        return _divide(counts[0], counts[0] + counts[3])


def _num_thresholds(value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(
            f"Received an invalid value for argument `num_thresholds`, expected an integer >= "
            f"{minimum}, got {value!r}."
        )
    return int(value)


class AUC(_ConfusionMetric):
    """Area under the ROC or precision-recall curve, Keras's way: confusion counts at
    `num_thresholds` thresholds evenly spaced in [0, 1] (plus just below 0 and above 1), then a
    Riemann sum (``summation_method``: ``"interpolation"`` trapezoids, ``"minoring"``,
    ``"majoring"``); PR with interpolation uses Davis & Goadrich's formula. ``curve``:
    ``"ROC"``, ``"PR"`` or ``"PRGAIN"``. ``multi_label``: one curve per label column, averaged
    (weighted by ``label_weights``); otherwise every element counts in one curve.
    ``from_logits`` applies a sigmoid first.
    """

    name = "auc"

    def __init__(self, num_thresholds: int = 200, curve: str = "ROC",
                 summation_method: str = "interpolation", name: str | None = None,
                 thresholds: Any = None, multi_label: bool = False,
                 num_labels: Optional[int] = None, label_weights: Any = None,
                 from_logits: bool = False):
        if curve.upper() not in ("ROC", "PR", "PRGAIN"):
            raise ValueError(
                "Received an invalid value for argument `curve`, expected 'ROC', 'PR' or "
                f"'PRGAIN', got {curve!r}."
            )
        if summation_method.lower() not in ("interpolation", "minoring", "majoring"):
            raise ValueError(
                "Received an invalid value for argument `summation_method`, expected "
                f"'interpolation', 'minoring' or 'majoring', got {summation_method!r}."
            )
        self.curve = curve.upper()
        self.summation_method = summation_method.lower()
        if thresholds is not None:
            inner = np.sort(np.asarray(thresholds, dtype=np.float64).reshape(-1))
            self.num_thresholds = inner.size + 2
        else:
            self.num_thresholds = _num_thresholds(num_thresholds, 2)
            n = self.num_thresholds
            inner = np.array([(i + 1) / (n - 1) for i in range(n - 2)])
        self.init_thresholds = thresholds
        self.thresholds = np.concatenate([[0.0 - 1e-7], inner, [1.0 + 1e-7]])
        self.multi_label = bool(multi_label)
        self.num_labels = num_labels
        self.label_weights = None if label_weights is None else np.asarray(
            label_weights, dtype=np.float64)
        self.from_logits = bool(from_logits)
        super().__init__(name)

    def _counts(self, y_true, y_pred):
        y_pred = _losses._as_float_array(_pred_array(y_pred)).astype(np.float64)
        y_true = _losses._match_shape(y_true, y_pred)
        if self.from_logits:
            y_pred = 1.0 / (1.0 + np.exp(-y_pred))
        if np.any((y_true < 0) | (y_true > 1)):
            raise ValueError("AUC expects labels in [0, 1] (0/1 or probabilities).")
        labels = y_true.astype(bool)
        if not self.multi_label:
            return _confusion(labels, y_pred, self.thresholds)
        cols = [_confusion(labels[..., j], y_pred[..., j], self.thresholds)
                for j in range(y_pred.shape[-1])]
        return np.stack(cols, axis=-1)  # (4, T, labels)

    def _result(self, counts):
        tp, fp, tn, fn = counts
        n = self.num_thresholds
        if self.curve == "PR" and self.summation_method == "interpolation":
            dtp = tp[:n - 1] - tp[1:]
            p = tp + fp
            dp = p[:n - 1] - p[1:]
            slope = _divide(dtp, np.maximum(dp, 0))
            intercept = tp[1:] - slope * p[1:]
            ratio = np.where((p[:n - 1] > 0) & (p[1:] > 0),
                             _divide(p[:n - 1], np.maximum(p[1:], 0)), 1.0)
            terms = _divide(slope * (dtp + intercept * np.log(ratio)),
                            np.maximum(tp[1:] + fn[1:], 0))
        else:
            recall = _divide(tp, tp + fn)
            if self.curve == "ROC":
                x, y = _divide(fp, fp + tn), recall
            elif self.curve == "PR":
                x, y = recall, _divide(tp, tp + fp)
            else:
                scale = _divide(tp + fn, tn + fp)
                x = np.maximum(np.where(tp == 0, 0.0, 1.0 - scale * _divide(fn, tp)), 0.0)
                y = np.where(tp == 0, 1.0, 1.0 - scale * _divide(fp, tp))
            if self.summation_method == "interpolation":
                heights = (y[:n - 1] + y[1:]) / 2.0
            elif self.summation_method == "minoring":
                heights = np.minimum(y[:n - 1], y[1:])
            else:
                heights = np.maximum(y[:n - 1], y[1:])
            terms = (x[:n - 1] - x[1:]) * heights
        if self.multi_label:
            by_label = terms.sum(axis=0)
            if self.label_weights is None:
                return float(by_label.mean())
            return float(_divide(np.sum(by_label * self.label_weights),
                                 np.sum(self.label_weights)))
        return float(terms.sum())


class _AtConstraint(_ConfusionMetric):
    """Best value of one statistic where another meets a constraint, over `num_thresholds`
    thresholds evenly spaced in [0, 1] (Keras's sensitivity/specificity family)."""

    def __init__(self, value: float, num_thresholds: int = 200,
                 class_id: Optional[int] = None, name: str | None = None):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or \
                not 0 <= float(value) <= 1:
            raise ValueError(
                "Received an invalid value for the constraint's target, expected a float in "
                f"[0, 1], got {value!r}."
            )
        self.value = float(value)
        self.num_thresholds = _num_thresholds(num_thresholds, 1)
        n = self.num_thresholds
        self.thresholds = np.array([0.5]) if n == 1 else np.array(
            [0.0] + [(i + 1) / (n - 1) for i in range(n - 2)] + [1.0])
        self.class_id = class_id
        super().__init__(name)

    def _counts(self, y_true, y_pred):
        labels, scores = _binary_inputs(y_true, y_pred, self.class_id)
        return _confusion(labels, scores, self.thresholds)

    def _pick(self, constrained: np.ndarray, dependent: np.ndarray) -> float:
        feasible = constrained >= self.value
        return float(np.max(np.where(feasible, dependent, 0.0), initial=0.0))


class SensitivityAtSpecificity(_AtConstraint):
    """The best sensitivity (recall) where specificity >= `specificity`."""

    name = "sensitivity_at_specificity"

    def __init__(self, specificity: float, num_thresholds: int = 200,
                 class_id: Optional[int] = None, name: str | None = None):
        super().__init__(specificity, num_thresholds, class_id, name)

    def _result(self, counts):
        tp, fp, tn, fn = counts
        return self._pick(_divide(tn, tn + fp), _divide(tp, tp + fn))


class SpecificityAtSensitivity(_AtConstraint):
    """The best specificity where sensitivity (recall) >= `sensitivity`."""

    name = "specificity_at_sensitivity"

    def __init__(self, sensitivity: float, num_thresholds: int = 200,
                 class_id: Optional[int] = None, name: str | None = None):
        super().__init__(sensitivity, num_thresholds, class_id, name)

    def _result(self, counts):
        tp, fp, tn, fn = counts
        return self._pick(_divide(tp, tp + fn), _divide(tn, tn + fp))


class PrecisionAtRecall(_AtConstraint):
    """The best precision where recall >= `recall`."""

    name = "precision_at_recall"

    def __init__(self, recall: float, num_thresholds: int = 200,
                 class_id: Optional[int] = None, name: str | None = None):
        super().__init__(recall, num_thresholds, class_id, name)

    def _result(self, counts):
        tp, fp, tn, fn = counts
        return self._pick(_divide(tp, tp + fn), _divide(tp, tp + fp))


class RecallAtPrecision(_AtConstraint):
    """The best recall where precision >= `precision`."""

    name = "recall_at_precision"

    def __init__(self, precision: float, num_thresholds: int = 200,
                 class_id: Optional[int] = None, name: str | None = None):
        super().__init__(precision, num_thresholds, class_id, name)

    def _result(self, counts):
        tp, fp, tn, fn = counts
        return self._pick(_divide(tp, tp + fp), _divide(tp, tp + fn))


__all__ += ["AUC", "FalseNegatives", "FalsePositives", "Precision", "PrecisionAtRecall",
            "Recall", "RecallAtPrecision", "SensitivityAtSpecificity",
            "SparseTopKCategoricalAccuracy", "SpecificityAtSensitivity", "TopKCategoricalAccuracy",
            "TrueNegatives", "TruePositives", "sparse_top_k_categorical_accuracy",
            "top_k_categorical_accuracy"]


# ----------------------------------------------------------------------------- mean metrics
class MeanMetricWrapper(FunctionMetric):
    """Keras's ``MeanMetricWrapper``: the mean of ``fn(y_true, y_pred, **kwargs)`` (a
    per-sample function) over all samples."""

    def __init__(self, fn: Callable[..., Any], name: str | None = None, dtype: Any = None,
                 **kwargs: Any):
        self._fn_kwargs = kwargs
        super().__init__(fn, name)

    def __call__(self, y_true, y_pred):
        return float(np.mean(self.fn(y_true, y_pred, **self._fn_kwargs)))


def _wrapper(fn: Callable[..., Any], default_name: str, doc: str,
             params: tuple[tuple[str, Any], ...] = ()) -> type[MeanMetricWrapper]:
    """A MeanMetricWrapper subclass with Keras's signature ``(name, dtype, *params)``."""

    def __init__(self, name: str | None = None, dtype: Any = None, **kwargs: Any):
        unknown = set(kwargs) - {p for p, _ in params}
        if unknown:
            raise TypeError(f"{type(self).__name__} got unexpected keyword argument(s) "
                            f"{sorted(unknown)}.")
        values = {p: kwargs.get(p, default) for p, default in params}
        for p, v in values.items():
            setattr(self, p, v)
        MeanMetricWrapper.__init__(self, fn, name or default_name, dtype, **values)

    return type("_Wrapped", (MeanMetricWrapper,), {"__init__": __init__, "__doc__": doc,
                                                   "name": default_name})


def cosine_similarity(y_true: Any, y_pred: Any, axis: int = -1) -> np.ndarray:
    """``sum(normalize(t) * normalize(p), axis)`` per sample (1 when parallel; the loss of
    the same name is its negative)."""
    return -_losses.cosine_similarity(y_true, y_pred, axis)


def pearson_correlation(y_true: Any, y_pred: Any, axis: int = -1) -> np.ndarray:
    """Pearson's correlation of `y_true` and `y_pred` along `axis`, per sample."""
    t, p = _losses._pair(y_true, y_pred)
    tn = t - t.mean(axis=axis, keepdims=True)
    pn = p - p.mean(axis=axis, keepdims=True)
    tn = tn / tn.std(axis=axis, keepdims=True)
    pn = pn / pn.std(axis=axis, keepdims=True)
    return np.mean(tn * pn, axis=axis)


def concordance_correlation(y_true: Any, y_pred: Any, axis: int = -1) -> np.ndarray:
    """Lin's concordance correlation along `axis`, per sample, exactly as Keras 3 computes it
    (its covariance term centres `y_true` on the mean of `y_pred`)."""
    t, p = _losses._pair(y_true, y_pred)
    t_mean, p_mean = t.mean(axis=axis, keepdims=True), p.mean(axis=axis, keepdims=True)
    t_var = (t - t_mean).var(axis=axis, keepdims=True)
    p_var = (p - p_mean).var(axis=axis, keepdims=True)
    covar = (t - p_mean) * (p - p_mean)
    norm = t_var + p_var + np.square(t_mean - p_mean)
    return np.mean(2 * covar / (norm + _losses.EPSILON), axis=axis)


# Keras's loss-valued metrics: the mean of the loss's per-sample function.
BinaryCrossentropy = _wrapper(_losses.binary_crossentropy, "binary_crossentropy",
                              "The mean binary cross-entropy.", (("from_logits", False),))
CategoricalCrossentropy = _wrapper(_losses.categorical_crossentropy, "categorical_crossentropy",
                                   "The mean categorical cross-entropy.",
                                   (("from_logits", False),))
SparseCategoricalCrossentropy = _wrapper(
    _losses.sparse_categorical_crossentropy, "sparse_categorical_crossentropy",
    "The mean sparse categorical cross-entropy.", (("from_logits", False),))
Hinge = _wrapper(_losses.hinge, "hinge", "The mean hinge loss.")
SquaredHinge = _wrapper(_losses.squared_hinge, "squared_hinge", "The mean squared hinge loss.")
CategoricalHinge = _wrapper(_losses.categorical_hinge, "categorical_hinge",
                            "The mean categorical hinge loss.")
KLDivergence = _wrapper(_losses.kl_divergence, "kl_divergence",
                        "The mean Kullback-Leibler divergence.")
LogCoshError = _wrapper(_losses.log_cosh, "logcosh", "The mean log-cosh error.")
MeanAbsolutePercentageError = _wrapper(_losses.mean_absolute_percentage_error,
                                       "mean_absolute_percentage_error",
                                       "The mean absolute percentage error.")
MeanSquaredLogarithmicError = _wrapper(_losses.mean_squared_logarithmic_error,
                                       "mean_squared_logarithmic_error",
                                       "The mean squared logarithmic error.")
Poisson = _wrapper(_losses.poisson, "poisson", "The mean Poisson loss.")
CosineSimilarity = _wrapper(cosine_similarity, "cosine_similarity",
                            "The mean cosine similarity (1 when parallel).", (("axis", -1),))
PearsonCorrelation = _wrapper(pearson_correlation, "pearson_correlation",
                              "The mean Pearson correlation along `axis`.", (("axis", -1),))
ConcordanceCorrelation = _wrapper(concordance_correlation, "concordance_correlation",
                                  "The mean concordance correlation along `axis`.",
                                  (("axis", -1),))
for _cls_name, _cls in list(globals().items()):
    if isinstance(_cls, type) and _cls.__name__ == "_Wrapped":
        _cls.__name__ = _cls.__qualname__ = _cls_name


class Mean(Metric):
    """The (weighted) mean of the values given to ``update_state(values, sample_weight)``."""

    name = "mean"

    def __call__(self, values, sample_weight=None):  # Keras: update, then the result
        self.update_state(values, sample_weight)
        return self.result()

    def update_state(self, values, sample_weight=None):
        v = np.asarray(values, dtype=np.float64)
        w = np.ones_like(v) if sample_weight is None else np.broadcast_to(
            np.asarray(sample_weight, dtype=np.float64), v.shape)
        self._total += float((v * w).sum())
        self._weight += float(w.sum())
        return self.result()


class Sum(Mean):
    """The (weighted) sum of the values given to ``update_state(values, sample_weight)``."""

    name = "sum"

    def result(self):
        return self._total


# ----------------------------------------------------------------------------- R2 and F-scores
class R2Score(_ConfusionMetric):
    """The coefficient of determination per target column (``1 - SS_res / SS_tot``, over
    every sample; a sequence output's steps count as samples), aggregated by
    ``class_aggregation`` (``"uniform_average"``, ``"variance_weighted_average"`` or None for
    the per-column array); ``num_regressors`` > 0 gives the adjusted R2."""

    name = "r2_score"

    def __init__(self, class_aggregation: Optional[str] = "uniform_average",
                 num_regressors: int = 0, name: str = "r2_score", dtype: Any = None):
        if class_aggregation not in (None, "uniform_average", "variance_weighted_average"):
            raise ValueError(
                "Received an invalid value for argument `class_aggregation`, expected None, "
                f"'uniform_average' or 'variance_weighted_average', got {class_aggregation!r}."
            )
        if isinstance(num_regressors, bool) or not isinstance(num_regressors, int) or \
                num_regressors < 0:
            raise ValueError(
                "Received an invalid value for argument `num_regressors`, expected a "
                f"non-negative integer, got {num_regressors!r}."
            )
        self.class_aggregation = class_aggregation
        self.num_regressors = num_regressors
        super().__init__(name)

    def _counts(self, y_true, y_pred):
        p = _losses._as_float_array(_pred_array(y_pred)).astype(np.float64)
        t = _losses._match_shape(y_true, p)
        p = p.reshape(-1, p.shape[-1]) if p.ndim > 1 else p.reshape(-1, 1)
        t = t.reshape(p.shape)
        return np.stack([t.sum(0), (t * t).sum(0), ((t - p) ** 2).sum(0),
                         np.full(p.shape[1], p.shape[0], dtype=np.float64)])

    def _result(self, counts):
        total, squared, sse, n = counts
        ss_tot = squared - total * (total / n)
        raw = 1.0 - sse / np.where(ss_tot == 0, np.nan, ss_tot)
        raw = np.where(np.isnan(raw) | np.isinf(raw), 0.0, raw)
        if self.class_aggregation == "uniform_average":
            score = float(raw.mean())
        elif self.class_aggregation == "variance_weighted_average":
            score = float((ss_tot * raw).sum() / ss_tot.sum())
        else:
            return raw
        samples, k = n.sum(), self.num_regressors  # Keras counts every value as a sample
        if 0 < k < samples - 1:
            score = 1.0 - (1.0 - score) * (samples - 1) / (samples - k - 1)
        return score


class FBetaScore(_ConfusionMetric):
    """F-beta per class from one-hot (multi-label) targets: predictions are the row's maximum
    (``threshold=None``) or the scores above `threshold`; ``average``: None (per-class
    array), ``"micro"``, ``"macro"`` or ``"weighted"`` (by support)."""

    name = "fbeta_score"

    def __init__(self, average: Optional[str] = None, beta: float = 1.0,
                 threshold: Optional[float] = None, name: str | None = None,
                 dtype: Any = None):
        if average not in (None, "micro", "macro", "weighted"):
            raise ValueError(
                "Received an invalid value for argument `average`, expected None, 'micro', "
                f"'macro' or 'weighted', got {average!r}."
            )
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or beta <= 0:
            raise ValueError(f"Received an invalid value for argument `beta`, expected a "
                             f"positive float, got {beta!r}.")
        if threshold is not None and not 0 < float(threshold) <= 1:
            raise ValueError(f"Received an invalid value for argument `threshold`, expected a "
                             f"float in (0, 1], got {threshold!r}.")
        self.average, self.beta, self.threshold = average, float(beta), threshold
        super().__init__(name)

    @property
    def per_class_result(self) -> bool:
        return self.average is None

    def _counts(self, y_true, y_pred):
        p = _losses._as_float_array(_pred_array(y_pred)).astype(np.float64)
        t = np.asarray(y_true, dtype=np.float64)
        if t.shape != p.shape:
            raise ValueError(f"{type(self).__name__} needs one-hot targets of y_pred's shape "
                             f"{p.shape}, got {t.shape}.")
        p, t = p.reshape(-1, p.shape[-1]), t.reshape(-1, t.shape[-1])
        if self.threshold is None:
            pred = (p >= p.max(axis=-1, keepdims=True)).astype(np.float64)
        else:
            pred = (p > self.threshold).astype(np.float64)
        return np.stack([(pred * t).sum(0), (pred * (1 - t)).sum(0), ((1 - pred) * t).sum(0),
                         t.sum(0)])

    def _result(self, counts):
        tp, fp, fn, support = counts
        if self.average == "micro":
            tp, fp, fn = tp.sum(), fp.sum(), fn.sum()
        precision = _divide(tp, tp + fp)
        recall = _divide(tp, tp + fn)
        b2 = self.beta ** 2
        f = _divide((1 + b2) * precision * recall, b2 * precision + recall)
        if self.average == "weighted":
            return float(_divide(np.sum(f * support), np.sum(support)))
        if self.average in ("macro", "micro"):
            return float(np.mean(f))
        return f


class F1Score(FBetaScore):
    """:class:`FBetaScore` with ``beta = 1``."""

    name = "f1_score"

    def __init__(self, average: Optional[str] = None, threshold: Optional[float] = None,
                 name: str | None = None, dtype: Any = None):
        super().__init__(average, 1.0, threshold, name, dtype)


# ----------------------------------------------------------------------------- IoU
class IoU(_ConfusionMetric):
    """Intersection over union per class from a ``num_classes`` confusion matrix (true
    class x predicted class), averaged over `target_class_ids` (classes absent from both
    sides left out). Labels are integers (``sparse_y_true``) or one-hot/scores over `axis`
    (their argmax); predictions likewise (``sparse_y_pred``). ``ignore_class``: a label value
    whose positions are not counted (e.g. padding)."""

    name = "iou"

    def __init__(self, num_classes: int, target_class_ids: Any, name: str | None = None,
                 dtype: Any = None, ignore_class: Optional[int] = None,
                 sparse_y_true: bool = True, sparse_y_pred: bool = True, axis: int = -1):
        num_classes = check_positive_int("num_classes", num_classes)
        ids = [int(i) for i in np.atleast_1d(target_class_ids)]
        if not ids or any(not 0 <= i < num_classes for i in ids):
            raise ValueError(
                f"Received an invalid value for argument `target_class_ids`, expected class "
                f"indices in [0, {num_classes}), got {target_class_ids!r}."
            )
        self.num_classes, self.target_class_ids = num_classes, ids
        self.ignore_class, self.axis = ignore_class, axis
        self.sparse_y_true, self.sparse_y_pred = bool(sparse_y_true), bool(sparse_y_pred)
        super().__init__(name)

    def _classes(self, y_true, y_pred):
        t, p = np.asarray(y_true), np.asarray(y_pred)
        if not self.sparse_y_true:
            t = np.argmax(t, axis=self.axis)
        if not self.sparse_y_pred:
            p = np.argmax(p, axis=self.axis)
        return t.reshape(-1), p.reshape(-1)

    def _counts(self, y_true, y_pred):
        t, p = self._classes(y_true, y_pred)
        if t.shape != p.shape:
            raise ValueError(f"{type(self).__name__}: y_true and y_pred give {t.size} and "
                             f"{p.size} class labels; expected as many.")
        keep = np.ones(t.shape, dtype=bool) if self.ignore_class is None else \
            t != self.ignore_class
        t, p = t[keep].astype(np.int64), p[keep].astype(np.int64)
        n = self.num_classes
        if t.size and (t.min() < 0 or t.max() >= n or p.min() < 0 or p.max() >= n):
            raise ValueError(f"{type(self).__name__}: labels and predictions must be class "
                             f"indices in [0, {n}).")
        return np.bincount(t * n + p, minlength=n * n).reshape(n, n).astype(np.float64)

    def _result(self, cm):
        ids = self.target_class_ids
        tp = np.diag(cm)[ids]
        denom = cm.sum(axis=1)[ids] + cm.sum(axis=0)[ids] - tp
        iou = _divide(tp, denom)
        valid = np.count_nonzero(denom)
        return float(iou.sum() / valid) if valid else 0.0


class MeanIoU(IoU):
    """:class:`IoU` averaged over every class."""

    name = "mean_iou"

    def __init__(self, num_classes: int, name: str | None = None, dtype: Any = None,
                 ignore_class: Optional[int] = None, sparse_y_true: bool = True,
                 sparse_y_pred: bool = True, axis: int = -1):
        super().__init__(num_classes, list(range(num_classes)), name, dtype, ignore_class,
                         sparse_y_true, sparse_y_pred, axis)


class BinaryIoU(IoU):
    """:class:`IoU` of 0/1 labels against predictions thresholded at `threshold`."""

    name = "binary_iou"

    def __init__(self, target_class_ids: Any = (0, 1), threshold: float = 0.5,
                 name: str | None = None, dtype: Any = None):
        self.threshold = float(threshold)
        super().__init__(2, target_class_ids, name, dtype)

    def _classes(self, y_true, y_pred):
        t = np.asarray(y_true).reshape(-1).astype(np.int64)
        p = (np.asarray(y_pred, dtype=np.float64) > self.threshold).reshape(-1)
        return t, p.astype(np.int64)


class OneHotIoU(IoU):
    """:class:`IoU` of one-hot labels and class scores (both by argmax)."""

    name = "one_hot_iou"

    def __init__(self, num_classes: int, target_class_ids: Any, name: str | None = None,
                 dtype: Any = None, ignore_class: Optional[int] = None,
                 sparse_y_pred: bool = False, axis: int = -1):
        super().__init__(num_classes, target_class_ids, name, dtype, ignore_class, False,
                         sparse_y_pred, axis)


class OneHotMeanIoU(MeanIoU):
    """:class:`MeanIoU` of one-hot labels and class scores (both by argmax)."""

    name = "one_hot_mean_iou"

    def __init__(self, num_classes: int, name: str | None = None, dtype: Any = None,
                 ignore_class: Optional[int] = None, sparse_y_pred: bool = False,
                 axis: int = -1):
        super().__init__(num_classes, name, dtype, ignore_class, False, sparse_y_pred, axis)


# ----------------------------------------------------------------------------- names
# Every name Keras 3 gives a metric, in one place: function forms shared with the losses,
# and the string identifiers compile() accepts (each class by its name and snake-case name,
# Keras's short aliases; case-insensitive).
binary_focal_crossentropy = _losses.binary_focal_crossentropy
categorical_focal_crossentropy = _losses.categorical_focal_crossentropy
categorical_hinge = _losses.categorical_hinge
hinge = _losses.hinge
squared_hinge = _losses.squared_hinge
huber = _losses.huber
kl_divergence = _losses.kl_divergence
log_cosh = _losses.log_cosh
mean_squared_logarithmic_error = _losses.mean_squared_logarithmic_error
poisson = _losses.poisson


def _snake(name: str) -> str:
    import re
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s).lower()


_NAMED_CLASSES = [
    MeanSquaredError, MeanAbsoluteError, RootMeanSquaredError, Accuracy, BinaryAccuracy,
    CategoricalAccuracy, SparseCategoricalAccuracy, TopKCategoricalAccuracy,
    SparseTopKCategoricalAccuracy, AUC, Precision, Recall, TruePositives, FalsePositives,
    TrueNegatives, FalseNegatives, PrecisionAtRecall, RecallAtPrecision,
    SensitivityAtSpecificity, SpecificityAtSensitivity, BinaryCrossentropy,
    CategoricalCrossentropy, SparseCategoricalCrossentropy, Hinge, SquaredHinge,
    CategoricalHinge, KLDivergence, LogCoshError, MeanAbsolutePercentageError,
    MeanSquaredLogarithmicError, Poisson, CosineSimilarity, PearsonCorrelation,
    ConcordanceCorrelation, R2Score, F1Score, FBetaScore,
]
for _cls in _NAMED_CLASSES:
    _FACTORIES.setdefault(_cls.__name__.lower(), _cls)
    _FACTORIES.setdefault(_snake(_cls.__name__), _cls)
_FACTORIES.update({
    "mape": MeanAbsolutePercentageError, "msle": MeanSquaredLogarithmicError,
    "bce": BinaryCrossentropy, "logcosh": LogCoshError, "log_cosh": LogCoshError,
    "top_k_categorical_accuracy": TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy,
    "kld": KLDivergence,
})

__all__ += [
    "BinaryCrossentropy", "BinaryIoU", "CategoricalCrossentropy", "CategoricalHinge",
    "ConcordanceCorrelation", "CosineSimilarity", "F1Score", "FBetaScore", "Hinge", "IoU",
    "KLDivergence", "LogCoshError", "Mean", "MeanAbsolutePercentageError", "MeanIoU",
    "MeanMetricWrapper", "MeanSquaredLogarithmicError", "OneHotIoU", "OneHotMeanIoU",
    "PearsonCorrelation", "Poisson", "R2Score", "SparseCategoricalCrossentropy",
    "SquaredHinge", "Sum", "binary_focal_crossentropy", "categorical_focal_crossentropy",
    "categorical_hinge", "concordance_correlation", "cosine_similarity", "hinge", "huber",
    "kl_divergence", "log_cosh", "mean_squared_logarithmic_error", "pearson_correlation",
    "poisson", "squared_hinge",
]


# ----------------------------------------------------------------------------- serialization
def _metric_config(metric: Metric) -> dict[str, Any]:
    """The constructor arguments of a built-in metric, read back from its attributes."""
    import inspect
    config: dict[str, Any] = {"name": metric.name}
    for param in list(inspect.signature(type(metric).__init__).parameters)[1:]:
        if param in ("name", "dtype", "kwargs", "fn"):
            continue
        attr = {"thresholds": "init_thresholds"}.get(param, param)
        if param == "specificity" or param == "sensitivity" or (
                param in ("recall", "precision") and hasattr(metric, "value")):
            attr = "value"
        if not hasattr(metric, attr):
            continue
        value = getattr(metric, attr)
        config[param] = value.tolist() if isinstance(value, np.ndarray) else value
    config.update(getattr(metric, "_fn_kwargs", {}))  # a wrapper's from_logits, axis...
    return config


def serialize(metric: Metric) -> dict[str, Any]:
    """``{"class_name": ..., "config": ...}`` for a built-in metric (JSON-serialisable); a
    metric wrapping a Python function cannot be serialised (pass it again when loading)."""
    if isinstance(metric, FunctionMetric) and type(metric) in (FunctionMetric,
                                                               MeanMetricWrapper):
        raise NotImplementedError(
            f"Metric `{metric.name}` wraps a Python function and cannot be serialised; pass "
            "it again when loading (fastrnn never pickles code)."
        )
    if not isinstance(metric, Metric):
        raise TypeError(f"Received an invalid value for argument `metric`, expected a fastrnn "
                        f"Metric, got {type(metric).__name__}.")
    return {"class_name": type(metric).__name__, "config": _metric_config(metric)}


def deserialize(config: dict[str, Any]) -> Metric:
    """The inverse of :func:`serialize`."""
    classes = {cls.__name__: cls for cls in (*_NAMED_CLASSES, IoU, MeanIoU, BinaryIoU,
                                             OneHotIoU, OneHotMeanIoU, Mean, Sum)}
    if not isinstance(config, dict) or config.get("class_name") not in classes or \
            not isinstance(config.get("config", {}), dict):
        raise ValueError(
            "Received an invalid value for argument `config`, expected {'class_name': one of "
            f"{sorted(classes)}, 'config': {{...}}}}, got {config!r}."
        )
    return classes[config["class_name"]](**config.get("config", {}))


__all__ += ["deserialize", "serialize"]
