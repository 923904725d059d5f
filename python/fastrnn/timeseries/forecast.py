"""Multi-step forecasting with any object that has ``predict(x) -> array``.

Dimension letters: B = batch, T = input steps, F = features, H = horizon.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._checks import invalid, positive_int
from .baselines import NaiveForecaster, SeasonalNaiveForecaster

STRATEGIES = ("recursive", "direct", "seq2seq")


def _predict(model: Any, x: np.ndarray, **kwargs: Any) -> np.ndarray:
    predict = getattr(model, "predict", None)
    if not callable(predict):
        raise invalid("model", "an object with a predict(x) method", type(model).__name__)
    return np.asarray(predict(x, **kwargs))


def _drop_unit_feature_axis(out: np.ndarray) -> np.ndarray:
    if out.ndim == 3 and out.shape[-1] == 1:
        return out[..., 0]
    return out


def forecast(model: Any, history: Any, horizon: int, strategy: str = "recursive") -> np.ndarray:
    """Forecasts the ``horizon`` steps that follow ``history``.

    Args:
        model: anything with ``predict(x)`` (a fastrnn model, a baseline of this package,
            your own object).
        history: the input windows (B, T, F) or (B, T); a single 1-D series (T,) is
            treated as one window of one feature. Integer (or bool) histories are taken as
            float64, so the forecasts fed back keep their fractions.
        horizon: H, number of future steps.
        strategy:
            * ``"recursive"``: the book's loop. The model predicts one step ahead; the
              prediction is appended to the window (the oldest step dropped, so the
              window keeps T steps) and fed back, H times. ``predict`` must return
              (B,), (B, 1) or (B, k) (the first value is used) for a univariate history;
              for F > 1 it must return all F features, (B, F) or (B, 1, F).
            * ``"direct"`` (sequence-to-vector): one call; ``predict`` returns at least H
              values per window, (B, k) or (B, k, 1) with k >= H; the first H are kept.
            * ``"seq2seq"``: one call; ``predict`` returns (B, T, k) with k >= H (the
              targets of :func:`make_seq2seq_targets`) and the last time step's first H
              values are kept.
            The naive and seasonal naive baselines are asked for H steps directly
            whatever the strategy (feeding their forecasts back gives the same values).
            ``LinearForecaster`` follows the strategy like a model: fit it on (B, 1)
            targets for "recursive", (B, H) for "direct", (B, T, H) for "seq2seq".

    Returns:
        (B, H), or (B, H, F) for a recursive forecast of a multivariate history; (H,) or
        (H, F) when ``history`` was a single 1-D series.
    """
    horizon = positive_int("horizon", horizon)
    if strategy not in STRATEGIES:
        raise invalid("strategy", f"one of {list(STRATEGIES)}", strategy)
    history = np.asarray(history)
    if history.dtype.kind in "biu":
        # forecasts are real numbers: an integer history must not truncate them when they
        # are fed back (nor the result be cast to its dtype)
        history = history.astype(np.float64)
    elif history.dtype.kind != "f":
        raise invalid("history", "a numeric array", f"an array of dtype {history.dtype}")
    single = history.ndim == 1
    if single:
        history = history[np.newaxis, :, np.newaxis]
    elif history.ndim == 2:
        history = history[..., np.newaxis]
    if history.ndim != 3 or history.shape[1] < 1:
        raise invalid("history", "an array of shape (steps,), (batch, steps) or "
                      "(batch, steps, features)", f"an array of shape {history.shape}")
    batch, _, n_features = history.shape

    if isinstance(model, (NaiveForecaster, SeasonalNaiveForecaster)):
        out = model.predict(history, horizon=horizon)
    elif strategy == "recursive":
        out = _recursive(model, history, horizon)
    else:
        out = _drop_unit_feature_axis(_predict(model, history))
        if strategy == "seq2seq":
            if out.ndim != 3:
                raise ValueError(
                    f"strategy='seq2seq' needs predict() to return (batch, steps, horizon) "
                    f"outputs, got shape {out.shape}; use strategy='direct' for "
                    "sequence-to-vector models."
                )
            out = out[:, -1, :]
        if out.ndim != 2 or out.shape[0] != batch:
            raise ValueError(
                f"strategy={strategy!r} needs predict() to return ({batch}, k) outputs with "
                f"k >= horizon, got shape {out.shape}."
            )
        if out.shape[1] < horizon:
            raise ValueError(
                f"strategy={strategy!r}: the model predicts {out.shape[1]} steps per window but "
                f"horizon={horizon}; use strategy='recursive' or train on longer targets."
            )
        out = out[:, :horizon]
    if n_features == 1 and out.ndim == 3 and out.shape[-1] == 1:
        out = out[..., 0]
    return out[0] if single else out


def _recursive(model: Any, history: np.ndarray, horizon: int) -> np.ndarray:
    batch, _, n_features = history.shape
    window = history
    steps = []
    for _ in range(horizon):
        out = _predict(model, window)
        if n_features == 1:
            out = _drop_unit_feature_axis(out)
            if out.ndim not in (1, 2) or out.shape[0] != batch or out.size < batch:
                raise ValueError(
                    f"strategy='recursive' needs predict() to return the next value of each "
                    f"window, ({batch},) or ({batch}, 1), got shape {out.shape}; use "
                    "strategy='seq2seq' for (batch, steps, horizon) outputs."
                )
            # (B,), (B, 1) or (B, k): keep the one-step-ahead value
            next_step = out.reshape(batch, -1)[:, :1]  # (B, 1)
        else:
            if out.size != batch * n_features:
                raise ValueError(
                    f"strategy='recursive' on a history of {n_features} features needs "
                    f"predict() to return all {n_features} features, ({batch}, {n_features}), "
                    f"to feed them back; got shape {out.shape}. Use strategy='direct' for a "
                    "model that forecasts one target column."
                )
            next_step = out.reshape(batch, n_features)
        next_step = next_step.astype(history.dtype, copy=False)[:, np.newaxis, :]  # (B, 1, F)
        steps.append(next_step)
        # slide: drop the oldest step, append the prediction (the book's X[:, step_ahead:])
        window = np.concatenate([window[:, 1:], next_step], axis=1)
    return np.concatenate(steps, axis=1)  # (B, H, F)


class RelativeModel:
    """Wraps a model trained on changes: the model sees each window minus its last value,
    divided by ``scale``, and predicts the changes of the next values from that last value.

    Trends then stay within the range the model was trained on, so a trending series (co2)
    does not push a network's inputs past anything it has seen. Train the wrapped model on
    ``(inputs(x), targets(x, y))``; ``predict`` maps its outputs back to the data's units,
    so the wrapper works wherever a model does (:func:`forecast`, :func:`backtest`).

    Args:
        model: anything with ``predict(x)`` (it may be set later, after training).
        scale: a positive finite divisor, e.g. the std of one-step changes of the training
            part.
    """

    def __init__(self, model: Any, scale: float) -> None:
        if isinstance(scale, bool) or not isinstance(scale, (int, float, np.integer,
                                                             np.floating)) \
                or not np.isfinite(scale) or scale <= 0:
            raise invalid("scale", "a positive finite number", scale)
        self.model = model
        self.scale = float(scale)

    def inputs(self, x: np.ndarray) -> np.ndarray:
        """(B, L, 1) windows -> changes from each window's last value, (B, L, 1)."""
        x = np.asarray(x)
        return (x - x[:, -1:, :]) / self.scale

    def targets(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """(B, H) targets -> changes from each window's last value, (B, H)."""
        return (np.asarray(y) - np.asarray(x)[:, -1, :]) / self.scale

    def predict(self, x: np.ndarray, **kwargs: Any) -> np.ndarray:
        """(B, L, 1) windows -> forecasts in the units of ``x``: the last value plus the
        predicted changes, float32 (B, k) for a model predicting k steps."""
        x = np.asarray(x, dtype=np.float32)
        changes = np.asarray(_predict(self.model, self.inputs(x), **kwargs))
        return (x[:, -1, :] + self.scale * changes.reshape(len(x), -1)).astype(np.float32)
