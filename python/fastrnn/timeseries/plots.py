"""Figures like the book's, saved as PNG with matplotlib (optional: ``fastrnn[plot]``).

Figures are built with ``matplotlib.figure.Figure`` and the Agg canvas, never pyplot, so
plotting works without a display and never changes the user's backend or open figures.
"""

from __future__ import annotations

import os
from typing import Any, Optional, Union

import numpy as np

from ._checks import invalid, require

PathLike = Union[str, os.PathLike]


def _figure(purpose: str, size: tuple[float, float]) -> Any:
    figure_module = require("matplotlib.figure", "plot", purpose)
    agg = require("matplotlib.backends.backend_agg", "plot", purpose)
    figure = figure_module.Figure(figsize=size)
    agg.FigureCanvasAgg(figure)
    return figure


def _save(figure: Any, path: PathLike) -> str:
    path = os.fspath(path)
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    figure.savefig(path, format="png", dpi=100)
    return path


def _series(name: str, values: Any) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 2 and 1 in values.shape:
        values = values.reshape(-1)  # (T, 1) or (1, T)
    if values.ndim != 1 or values.size == 0:
        raise invalid(name, "a non-empty 1-D series (or (steps, 1))", f"shape {values.shape}")
    return values


def plot_forecast(
    history: Any,
    forecast: Any,
    truth: Any = None,
    path: PathLike = "forecast.png",
    title: Optional[str] = None,
    history_index: Any = None,
    interval: Any = None,
) -> str:
    """Plots a history, its forecast and (optionally) the actual future values.

    Like the book's figures: the history as a line, the truth as blue circles and each
    forecast as crosses, the forecast steps following the last history step.

    Args:
        history: (T,) or (T, 1).
        forecast: (H,) or (H, 1), or a dict label -> (H,) to compare several models.
        truth: (H,) actual values, optional.
        path: where the PNG is written (parent directories are created).
        title: optional figure title.
        history_index: optional x positions (T,) of the history (e.g. integers); the
            forecast steps continue with the same spacing. Default 0..T-1.
        interval: optional ``(lower, upper)`` arrays (H,) drawn as a band (e.g. the
            q0.1-q0.9 prediction interval).

    Returns:
        The path of the PNG.
    """
    history = _series("history", history)
    forecasts = forecast if isinstance(forecast, dict) else {"Forecast": forecast}
    if not forecasts:
        raise invalid("forecast", "an array or a non-empty dict label -> array", forecast)
    forecasts = {label: _series("forecast", f) for label, f in forecasts.items()}
    horizon = max(f.size for f in forecasts.values())
    if truth is not None:
        truth = _series("truth", truth)
        horizon = max(horizon, truth.size)
    if history_index is None:
        x_history = np.arange(history.size, dtype=np.float64)
    else:
        x_history = np.asarray(history_index, dtype=np.float64)
        if x_history.shape != history.shape:
            raise invalid("history_index", f"shape {history.shape} like history",
                          f"shape {x_history.shape}")
    step = x_history[-1] - x_history[-2] if history.size > 1 else 1.0
    x_future = x_history[-1] + step * np.arange(1, horizon + 1)

    figure = _figure("plot_forecast", (8, 4))
    axes = figure.add_subplot()
    axes.plot(x_history, history, ".-", color="tab:gray", label="History")
    if truth is not None:
        axes.plot(x_future[:truth.size], truth, "bo-", label="Actual")
    if interval is not None:
        lower, upper = (_series("interval", v) for v in interval)
        if lower.shape != upper.shape or lower.size > horizon:
            raise invalid("interval", f"(lower, upper) of at most {horizon} steps each",
                          f"shapes {lower.shape} and {upper.shape}")
        axes.fill_between(x_future[:lower.size], lower, upper, color="tab:red", alpha=0.2,
                          label="Interval")
    markers = ["rx-", "g^-", "ms-", "cd-", "y*-"]
    for i, (label, values) in enumerate(forecasts.items()):
        axes.plot(x_future[:values.size], values, markers[i % len(markers)], label=str(label),
                  markersize=8)
    axes.axvline(x_history[-1], color="k", linewidth=0.5)
    axes.set_xlabel("t")
    axes.set_ylabel("x(t)")
    axes.grid(True)
    axes.legend()
    if title:
        axes.set_title(title)
    return _save(figure, path)


def plot_learning_curves(
    history: Any, path: PathLike = "learning_curves.png", title: Optional[str] = None
) -> str:
    """Plots training and validation curves per epoch.

    Args:
        history: a Keras-like ``History`` (its ``.history`` dict) or a dict metric ->
            per-epoch values, e.g. ``{"loss": [...], "val_loss": [...]}``. Each
            ``val_<name>`` is drawn next to ``<name>``.
        path: where the PNG is written.
        title: optional figure title.

    Training values are averages over each epoch, so they are drawn half an epoch earlier
    than validation values, computed at the end of the epoch (as in the book).

    Returns:
        The path of the PNG.
    """
    curves = getattr(history, "history", history)
    if not isinstance(curves, dict) or not curves:
        raise invalid("history", "a History object or a non-empty dict of per-epoch values",
                      type(history).__name__)
    names = [name for name in curves if not name.startswith("val_")]
    names += [name[4:] for name in curves if name.startswith("val_") and name[4:] not in curves]
    figure = _figure("plot_learning_curves", (6.0 * len(names), 4))
    for i, name in enumerate(names):
        axes = figure.add_subplot(1, len(names), i + 1)
        if name in curves:
            train = np.asarray(curves[name], dtype=np.float64)
            axes.plot(np.arange(1, train.size + 1) - 0.5, train, "b.-", label=f"Training {name}")
        if f"val_{name}" in curves:
            val = np.asarray(curves[f"val_{name}"], dtype=np.float64)
            axes.plot(np.arange(1, val.size + 1), val, "r.-", label=f"Validation {name}")
        axes.set_xlabel("Epoch")
        axes.set_ylabel(name)
        axes.grid(True)
        axes.legend()
    if title:
        figure.suptitle(title)
    return _save(figure, path)
