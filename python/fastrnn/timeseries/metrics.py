"""Forecast error metrics, pure NumPy, each returning a Python float.

``y_true`` and ``y_pred`` must have the same shape; shapes that differ only by a trailing
axis of size 1 ((B,) against (B, 1)) are accepted, because a model ending in ``Dense(1)``
returns (B, 1). Anything else raises instead of broadcasting, which would silently
compare every target with every prediction.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from ._checks import invalid, positive_int


def _pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape:
        if y_true.shape + (1,) == y_pred.shape:
            y_pred = y_pred[..., 0]
        elif y_pred.shape + (1,) == y_true.shape:
            y_true = y_true[..., 0]
        else:
            raise ValueError(
                f"y_true and y_pred must have the same shape, got {y_true.shape} and "
                f"{y_pred.shape}."
            )
    if y_true.size == 0:
        raise invalid("y_true", "a non-empty array", f"shape {y_true.shape}")
    return y_true, y_pred


def mse(y_true: Any, y_pred: Any) -> float:
    """Mean squared error over every element."""
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.mean((y_true - y_pred) ** 2))


def rmse(y_true: Any, y_pred: Any) -> float:
    """Root mean squared error, in the units of the series."""
    return float(np.sqrt(mse(y_true, y_pred)))


def mae(y_true: Any, y_pred: Any) -> float:
    """Mean absolute error."""
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.mean(np.abs(y_true - y_pred)))


def mape(y_true: Any, y_pred: Any) -> float:
    """Mean absolute percentage error, in percent: ``100 * mean(|y - p| / |y|)``.

    Raises ValueError when ``y_true`` contains 0 (the error is undefined there: use smape
    or mase for series that cross zero).
    """
    y_true, y_pred = _pair(y_true, y_pred)
    if np.any(y_true == 0):
        raise ValueError("mape is undefined when y_true contains zeros; use smape or mase.")
    return float(100.0 * np.mean(np.abs(y_true - y_pred) / np.abs(y_true)))


def smape(y_true: Any, y_pred: Any) -> float:
    """Symmetric MAPE in percent (0 to 200): ``100 * mean(2 |y - p| / (|y| + |p|))``;
    a term where both values are 0 counts as 0."""
    y_true, y_pred = _pair(y_true, y_pred)
    denominator = np.abs(y_true) + np.abs(y_pred)
    safe = np.where(denominator > 0, denominator, 1.0)
    ratio = np.where(denominator > 0, 2.0 * np.abs(y_true - y_pred) / safe, 0.0)
    return float(100.0 * np.mean(ratio))


def _naive_scale(y_train: np.ndarray, season: int) -> np.ndarray:
    """Mean absolute error of the in-sample seasonal naive forecast along axis 0."""
    if y_train.shape[0] <= season:
        raise invalid("y_train", f"more than season = {season} steps",
                      f"{y_train.shape[0]} steps")
    diffs = np.abs(y_train[season:] - y_train[:-season])
    return diffs.reshape(diffs.shape[0], -1).mean(axis=0) if diffs.ndim > 1 else diffs.mean()


def mase(y_true: Any, y_pred: Any, y_train: Any, season: int = 1) -> float:
    """Mean absolute scaled error: the forecast's MAE divided by the MAE of the in-sample
    (seasonal) naive forecast ``y_train[t] -> y_train[t + season]`` on the history.

    Below 1 the forecast beats the naive forecast made inside the history.

    Args:
        y_true, y_pred: (H,) for one series, or (B, H) for B series.
        y_train: the history the forecasts were made from: (T,) for one series (one
            scale), or (B, T) for per-series histories (one scale per series, errors
            scaled series by series, then averaged).
        season: m, 1 for the plain naive forecast (e.g. 52 for weekly data with a yearly
            season).
    """
    season = positive_int("season", season)
    y_true, y_pred = _pair(y_true, y_pred)
    history = np.asarray(y_train, dtype=np.float64)
    if history.ndim == 1:
        scale = _naive_scale(history, season)
        if scale == 0:
            raise ValueError("mase is undefined: the naive forecast is exact on y_train "
                             "(a constant history).")
        return float(np.mean(np.abs(y_true - y_pred)) / scale)
    if history.ndim != 2 or y_true.ndim != 2 or history.shape[0] != y_true.shape[0]:
        raise invalid("y_train", f"(steps,) or (batch, steps) with batch = {y_true.shape[0]} "
                      f"for y_true of shape {y_true.shape}", f"shape {history.shape}")
    scale = _naive_scale(history.T, season)  # (B,)
    if np.any(scale == 0):
        raise ValueError("mase is undefined: the naive forecast is exact on some history "
                         "in y_train (a constant series).")
    return float(np.mean(np.mean(np.abs(y_true - y_pred), axis=1) / scale))


def last_time_step_mse(y_true: Any, y_pred: Any) -> float:
    """MSE of the last time step of seq-to-seq outputs (the book's metric).

    Args:
        y_true, y_pred: (B, T, H); only ``[:, -1]``, the forecast made after the whole
            window, is scored. Keras returns the per-window values; this returns their
            mean.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    if y_true.ndim < 2:
        raise invalid("y_true", "an array of shape (batch, steps, ...)", f"shape {y_true.shape}")
    return mse(y_true[:, -1], y_pred[:, -1])


def check_quantiles(quantiles: Any) -> np.ndarray:
    """Quantile levels as a float64 array: strictly increasing, each in (0, 1)."""
    try:
        q = np.asarray(quantiles, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise invalid("quantiles", "increasing levels in (0, 1)", quantiles) from None
    if q.size == 0 or not np.all((q > 0) & (q < 1)):
        raise invalid("quantiles", "levels strictly between 0 and 1", quantiles)
    if np.any(np.diff(q) <= 0):
        raise invalid("quantiles", "strictly increasing levels (sorted, no repeats)",
                      quantiles)
    return q


def _quantile_pair(y_true: Any, q_pred: Any, quantiles: Any
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    q = check_quantiles(quantiles)
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(q_pred, dtype=np.float64)
    if p.shape != (*y.shape, q.size):
        raise invalid("q_pred", f"shape {(*y.shape, q.size)} (y_true's shape and one value "
                      "per quantile)", f"shape {p.shape}")
    if y.size == 0:
        raise invalid("y_true", "a non-empty array", f"shape {y.shape}")
    return y, p, q


def pinball_loss(y_true: Any, q_pred: Any, quantiles: Any) -> float:
    """Mean pinball (quantile) loss over every value and level:
    ``mean(max(q (y - p_q), (q - 1) (y - p_q)))``.

    Args:
        y_true: (...,) observed values.
        q_pred: (..., Q) the forecast quantiles, one per level.
        quantiles: (Q,) increasing levels in (0, 1).
    """
    y, p, q = _quantile_pair(y_true, q_pred, quantiles)
    diff = y[..., None] - p
    return float(np.mean(np.maximum(q * diff, (q - 1.0) * diff)))


def coverage(y_true: Any, lower: Any, upper: Any) -> float:
    """The fraction of values inside their interval, ``lower <= y <= upper`` (0 to 1)."""
    y, lo = _pair(y_true, lower)
    _, hi = _pair(y_true, upper)
    return float(np.mean((y >= lo) & (y <= hi)))


def crps_from_quantiles(y_true: Any, q_pred: Any, quantiles: Any) -> float:
    """The continuous ranked probability score approximated from Q quantiles: twice the
    pinball loss averaged over the levels (exact as the levels fill (0, 1) evenly; with
    q = 0.1..0.9 it is the usual "weighted quantile loss" approximation), in the units of
    the series."""
    return 2.0 * pinball_loss(y_true, q_pred, quantiles)


METRICS: dict[str, Callable[..., float]] = {
    "mse": mse,
    "rmse": rmse,
    "mae": mae,
    "mape": mape,
    "smape": smape,
    "mase": mase,
}


def get_metric(name: str) -> Callable[..., float]:
    """The metric function called ``name`` (one of ``METRICS``)."""
    try:
        return METRICS[name]
    except KeyError:
        raise invalid("metric", f"one of {sorted(METRICS)}", name) from None


def evaluate(
    y_true: Any,
    y_pred: Any,
    metrics: tuple[str, ...] = ("mse", "mae"),
    y_train: Optional[Any] = None,
    season: int = 1,
) -> dict[str, float]:
    """Several metrics at once; ``y_train`` (and ``season``) are needed for mase."""
    results = {}
    for name in metrics:
        function = get_metric(name)
        if name == "mase":
            if y_train is None:
                raise ValueError("metric 'mase' needs y_train, the history of the forecasts.")
            results[name] = function(y_true, y_pred, y_train, season)
        else:
            results[name] = function(y_true, y_pred)
    return results
