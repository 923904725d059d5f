"""Walk-forward evaluation (backtesting) of models and baselines on one series."""

from __future__ import annotations

import time
from typing import Any, Callable, Optional, Union

import numpy as np

from ._checks import invalid, is_int, positive_int
from .data import make_windows
from .forecast import STRATEGIES, forecast
from .metrics import evaluate, get_metric

FitFunction = Callable[[str, Any, np.ndarray], Any]


class BacktestResult:
    """Per-fold and overall metrics of a backtest.

    Attributes:
        origins: (K,) index of the first forecast step of each fold.
        truth: (K, H) actual values.
        forecasts: model name -> (K, H) forecasts.
        folds: one dict per fold: ``{"fold", "origin", "train_start", "train_end",
            "metrics": {model: {metric: value}}}``.
        overall: model -> metric -> mean of the fold values.
        seconds: model -> total seconds spent fitting and forecasting.
    """

    def __init__(
        self,
        metrics: tuple[str, ...],
        origins: np.ndarray,
        truth: np.ndarray,
        forecasts: dict[str, np.ndarray],
        folds: list[dict[str, Any]],
        seconds: dict[str, float],
    ) -> None:
        self.metrics = metrics
        self.origins = origins
        self.truth = truth
        self.forecasts = forecasts
        self.folds = folds
        self.seconds = seconds
        self.overall = {
            name: {
                metric: float(np.mean([fold["metrics"][name][metric] for fold in folds]))
                for metric in metrics
            }
            for name in forecasts
        }

    def table(self, reference: Optional[str] = None, sort_by: Optional[str] = None) -> str:
        """A plain-text comparison table, one row per model.

        Args:
            reference: a model name (e.g. the naive baseline); adds a column with each
                model's first metric divided by the reference's (below 1 = better).
            sort_by: a metric name to sort rows by (ascending); default: given order.
        """
        names = list(self.forecasts)
        if reference is not None and reference not in names:
            raise invalid("reference", f"one of the models {names}", reference)
        if sort_by is not None:
            if sort_by not in self.metrics:
                raise invalid("sort_by", f"one of the metrics {list(self.metrics)}", sort_by)
            names.sort(key=lambda name: self.overall[name][sort_by])
        header = ["model", *self.metrics]
        if reference is not None:
            header.append(f"{self.metrics[0]}/{reference}")
        header.append("seconds")
        rows = []
        for name in names:
            row = [name] + [f"{self.overall[name][m]:.6g}" for m in self.metrics]
            if reference is not None:
                base = self.overall[reference][self.metrics[0]]
                value = self.overall[name][self.metrics[0]]
                row.append(f"{value / base:.3f}" if base != 0 else "inf")
            row.append(f"{self.seconds[name]:.3f}")
            rows.append(row)
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                           for i, (cell, w) in enumerate(zip(r, widths)))
                 for r in [header, *rows]]
        lines.insert(1, "  ".join("-" * w for w in widths))
        folds = len(self.folds)
        lines.append(f"({folds} fold{'s' if folds != 1 else ''}, horizon {self.truth.shape[1]})")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Plain Python types only (JSON-serialisable)."""
        return {
            "metrics": list(self.metrics),
            "origins": [int(o) for o in self.origins],
            "overall": self.overall,
            "folds": self.folds,
            "seconds": self.seconds,
            "truth": self.truth.tolist(),
            "forecasts": {name: f.tolist() for name, f in self.forecasts.items()},
        }

    def __repr__(self) -> str:
        return f"BacktestResult(models={list(self.forecasts)}, folds={len(self.folds)})"


def backtest(
    models: dict[str, Any],
    series: Any,
    window: int,
    horizon: int,
    start: Optional[int] = None,
    stride: Optional[int] = None,
    mode: str = "expanding",
    train_size: Optional[int] = None,
    fit: Union[FitFunction, bool, None] = None,
    strategy: Union[str, dict[str, str]] = "recursive",
    metrics: tuple[str, ...] = ("mse", "mae"),
    season: int = 1,
    target: Optional[int] = None,
) -> BacktestResult:
    """Walk-forward evaluation: at each origin t, every model forecasts
    ``series[t : t + horizon]`` from the window ``series[t - window : t]`` after an
    optional refit on the training part before t.

    Origins are ``start, start + stride, ...`` while ``t + horizon <= len(series)``.
    The training part of fold t is ``series[:t]`` (``mode="expanding"``) or
    ``series[t - train_size : t]`` (``mode="sliding"``).

    Args:
        models: name -> model or baseline (anything with ``predict``; see :func:`forecast`).
        series: (T,) or (T, F); with F > 1 give ``target``, the forecast column.
        window: input length L fed to the models.
        horizon: H.
        start: first origin; default: ``train_size`` if given, else half the series
            (at least ``window``).
        stride: steps between origins; default ``horizon`` (non-overlapping tests).
        mode: ``"expanding"`` or ``"sliding"`` training part.
        train_size: length of the sliding training part (default ``start``).
        fit: ``None``/``False``: models are used as they are (already trained).
            ``True``: before each fold, models with a ``fit`` method are called as
            ``model.fit(x, y)`` on windows of the training part (x (N, L, F), y (N, H) for
            ``strategy="direct"``, (N, 1) otherwise), e.g. ``LinearForecaster``.
            A callable ``fit(name, model, train_part)`` is called instead and may return a
            new model (``None`` keeps the model), e.g. to train a fastrnn model for a few
            epochs.
        strategy: forecast strategy for every model, or a dict name -> strategy.
        metrics: names from ``metrics.METRICS``; mase is scaled on each fold's training
            part with ``season``.
        season: seasonal period for mase.
        target: forecast column of a multivariate series.

    Returns:
        :class:`BacktestResult` with per-fold and overall metrics and ``.table()``.
    """
    if not isinstance(models, dict) or not models:
        raise invalid("models", "a non-empty dict name -> model", models)
    values = np.asarray(series, dtype=np.float32)
    if values.ndim == 1:
        values = values[:, np.newaxis]
    if values.ndim != 2:
        raise invalid("series", "an array of shape (steps,) or (steps, features)",
                      f"shape {values.shape}")
    n_steps, n_features = values.shape
    if target is None:
        if n_features != 1:
            raise invalid("target", f"a column index for a series with {n_features} features",
                          None)
        target = 0
    elif not is_int(target) or not -n_features <= target < n_features:
        raise invalid("target", f"an index into {n_features} features", target)
    window = positive_int("window", window)
    horizon = positive_int("horizon", horizon)
    if mode not in ("expanding", "sliding"):
        raise invalid("mode", "'expanding' or 'sliding'", mode)
    if train_size is not None:
        train_size = positive_int("train_size", train_size)
    if start is None:
        start = train_size if train_size is not None else max(window, n_steps // 2)
    if not is_int(start) or start < window:
        raise invalid("start", f"an origin of at least window = {window}", start)
    if mode == "sliding":
        train_size = start if train_size is None else train_size
        if train_size > start:
            raise invalid("train_size", f"at most start = {start}", train_size)
    stride = horizon if stride is None else positive_int("stride", stride)
    origins = np.arange(start, n_steps - horizon + 1, stride)
    if origins.size == 0:
        raise invalid("start", f"an origin with start + horizon <= len(series) = {n_steps}",
                      start)
    strategies = strategy if isinstance(strategy, dict) else dict.fromkeys(models, strategy)
    for name in models:
        if strategies.get(name) not in STRATEGIES:
            raise invalid("strategy", f"one of {list(STRATEGIES)} for model {name!r}",
                          strategies.get(name))
    for metric in metrics:
        get_metric(metric)
    if not (fit is None or isinstance(fit, bool) or callable(fit)):
        raise invalid("fit", "None, a bool or a callable fit(name, model, train_part)", fit)

    current = dict(models)
    seconds = dict.fromkeys(models, 0.0)
    forecasts: dict[str, list[np.ndarray]] = {name: [] for name in models}
    truths, folds = [], []
    for fold, origin in enumerate(origins):
        train_start = 0 if mode == "expanding" else int(origin) - train_size
        train = values[train_start:origin]
        truth = values[origin:origin + horizon, target]  # (H,)
        history = values[np.newaxis, origin - window:origin]  # (1, L, F)
        fold_metrics = {}
        for name, model in current.items():
            began = time.perf_counter()
            if callable(fit):
                refit = fit(name, model, train)
                if refit is not None:
                    current[name] = model = refit
            elif fit and callable(getattr(model, "fit", None)):
                steps = horizon if strategies[name] == "direct" else 1
                x_train, y_train = make_windows(train, window, steps, target=target)
                model.fit(x_train, y_train)
            predicted = forecast(model, history, horizon, strategies[name])
            seconds[name] += time.perf_counter() - began
            predicted = np.asarray(predicted).reshape(1, horizon, -1)
            predicted = predicted[0, :, 0] if predicted.shape[-1] == 1 else (
                predicted[0, :, target])
            forecasts[name].append(predicted)
            fold_metrics[name] = evaluate(truth, predicted, metrics,
                                          y_train=train[:, target], season=season)
        truths.append(truth)
        folds.append({
            "fold": fold,
            "origin": int(origin),
            "train_start": train_start,
            "train_end": int(origin),
            "metrics": fold_metrics,
        })
    return BacktestResult(
        tuple(metrics),
        origins,
        np.stack(truths),
        {name: np.stack(f) for name, f in forecasts.items()},
        folds,
        seconds,
    )
