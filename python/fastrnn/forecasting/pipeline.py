"""The many-series forecasting run behind ``fastrnn forecast --id-column``: read a long CSV,
train, forecast, write ``forecasts.csv`` (and, with evaluation, ``metrics.csv`` and plots).

Two modes:

* forecast the future (the default): train on every row and forecast the ``horizon`` periods
  after each series' last time, at the series' own frequency (integers continue with the
  next integers; period-start dates such as 1990-01-01 stay period starts);
* evaluate: hold out the last ``horizon`` values of every series, train on the rest, and
  score the held-out forecasts (per series and overall) next to the naive and seasonal-naive
  forecasts made from the same data.

Short series: the window is padded (steps before a series' start are masked), so every
series with at least one value is forecast; a series of at most ``horizon`` values gives no
training window and is forecast from its values by the model trained on the others (a
warning names it). In evaluation mode a series needs more than ``horizon`` values.
"""

from __future__ import annotations

import csv
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from ..timeseries.classical import classical_forecast
from ..timeseries.panel import Panel, PanelWindows, read_long_csv
from .forecaster import RNNForecaster, quantile_column
from .stats import StatsForecaster

RNN_MODELS = ("lstm", "gru", "simple_rnn")
BASELINE_MODELS = ("naive", "seasonal_naive", "theta")
MODELS = (*RNN_MODELS, *BASELINE_MODELS)

# The command's default: the configuration chosen by validation on M3's training parts
# (examples/m3.py): an LSTM of 64 units on log values relative to the window's last value,
# seasonal series deseasonalized (the season from the dates, or --season), a window of two
# horizons, the pinball loss, 5 members combined by the median.
DEFAULT = dict(cell="lstm", units=64, loss="quantile", transform="log", scaler="none",
               relative=True, batch_size=128, learning_rate=1e-3, ensemble=5, epochs=10,
               steps_per_epoch=200, deseasonalize=True)


def default_steps(windows: int) -> int:
    """Training steps (batches of 128 windows) for a data set of `windows` training windows:
    ``2000 sqrt(windows / 4000)``, between 2,000 and 8,000, to the hundred. The validation on
    M3's training parts (examples/m3.py, its ``CONFIGS``) chose 2,000 steps for the yearly
    (4,351 windows) and other (7,931) groups, 4,000 for quarterly (13,984) and 8,000 for
    monthly (67,091); the rule gives 2,100, 2,800, 3,700 and 8,000: more data, more steps,
    about as many passes over the data as the square root of its size."""
    steps = 2000.0 * float(np.sqrt(max(windows, 0) / 4000.0))
    return int(round(min(max(steps, 2000.0), 8000.0), -2))


@dataclass
class LongRun:
    """What a run did: the files written, the table printed, notes on the data."""

    files: list[str] = field(default_factory=list)
    table: str = ""
    notes: list[str] = field(default_factory=list)
    fit_seconds: float = 0.0


def format_time(values: np.ndarray) -> list[str]:
    """Times as text: integers as they are, dates as YYYY-MM-DD when every time is at
    midnight (else ISO date and time)."""
    if not np.issubdtype(values.dtype, np.datetime64):
        return [str(int(v)) for v in values]
    days = values.astype("datetime64[D]")
    unit = "D" if np.all(values == days.astype(values.dtype)) else "s"
    return [str(v) for v in values.astype(f"datetime64[{unit}]")]


def _model(name: str, horizon: int, quantiles: Optional[Sequence[float]], panel: Panel,
           window: Optional[int], epochs: Optional[int], units: Optional[int], seed: int,
           verbose: int, columns: tuple[str, str, str], strategy: str = "direct",
           season: Optional[int] = None, deseasonalize: bool = True) -> Any:
    if name in BASELINE_MODELS:  # quantiles: the textbook normal intervals
        return StatsForecaster(name, horizon, id_col=columns[0], time_col=columns[1],
                               target_col=columns[2], quantiles=quantiles)
    config = dict(DEFAULT, cell=name)
    if not all(np.all(v > 0) for v in panel.values):
        # log needs positive values; mean-abs scaling was the best unlogged choice on M3
        config.update(transform=None, scaler="mean_abs")
    if not quantiles:
        config.update(loss="mae")
    if epochs is not None:
        config["epochs"] = epochs
    else:  # the default's length grows with the data, as validated on M3 (default_steps)
        size = window or 2 * horizon
        out = 1 if strategy == "recursive" else horizon
        count = len(PanelWindows(panel.lengths, size, out))
        config["epochs"] = max(1, default_steps(count) // int(config["steps_per_epoch"]))
    if units is not None:
        config["units"] = units
    config.update(deseasonalize=deseasonalize, season_length=season)
    return RNNForecaster(h=horizon, input_size=window or 2 * horizon, quantiles=quantiles,
                         seed=seed, verbose=verbose, id_col=columns[0], time_col=columns[1],
                         target_col=columns[2], strategy=strategy, **config)


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> str:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def _fmt(value: float) -> str:
    return "" if value is None or not np.isfinite(value) else f"{value:.6g}"


def run_long_csv(path: str, id_col: str, time_col: str, target_col: str, horizon: int,
                 out: Path, quantiles: Optional[Sequence[float]] = None,
                 model: str = "lstm", evaluate: bool = False, window: Optional[int] = None,
                 epochs: Optional[int] = None, units: Optional[int] = None, seed: int = 0,
                 verbose: int = 0, plots: int = 3,
                 say: Callable[[str], None] = print, strategy: str = "direct",
                 fill_gaps: Optional[str] = None, season: Optional[int] = None,
                 deseasonalize: bool = True) -> LongRun:
    """Reads the long CSV at ``path``, trains ``model`` across every series and writes
    ``out/forecasts.csv`` (id, time, ``forecast``, one ``q<level>`` per quantile); with
    ``evaluate`` also ``out/metrics.csv`` and up to ``plots`` PNGs (see the module
    docstring). ``strategy`` is the RNN's (:class:`RNNForecaster`); ``fill_gaps`` fills
    missing periods and values (:class:`~fastrnn.timeseries.panel.Panel`); ``deseasonalize``
    and ``season`` (its ``season_length``: None takes it from the dates) are the RNN's."""
    if model not in MODELS:
        raise ValueError(f"Received an invalid value for argument `model`: expected one of "
                         f"{MODELS}, got {model!r}.")
    run = LongRun()
    panel = read_long_csv(path, id_col, time_col, target_col, fill_gaps=fill_gaps)
    if panel.filled.any():
        run.notes.append(f"{int(panel.filled.sum())} missing values filled ({fill_gaps}) in "
                         f"{int(np.count_nonzero(panel.filled))} series")
    columns = (id_col, time_col, target_col)
    lengths = panel.lengths
    need = (window or 2 * horizon) + horizon
    short = int(np.sum(lengths < need))
    say(f"{len(panel)} series ({lengths.min()} to {lengths.max()} values, "
        f"{'dates' if panel.has_dates else 'integer times'}); horizon {horizon}")
    if short:
        run.notes.append(f"{short} series shorter than window + horizon = {need}: their "
                         "windows are padded (the missing steps masked)")
    if evaluate:
        tiny = np.flatnonzero(lengths <= horizon)
        if tiny.size:
            i = int(tiny[0])
            raise ValueError(f"series {panel.ids[i]!r} has {lengths[i]} values: evaluation "
                             f"holds out the last {horizon} and needs at least one more.")
        train = panel.head(lengths - horizon)
        truth = np.stack([v[-horizon:] for v in panel.values])
    else:
        train, truth = panel, None
    forecaster = _model(model, horizon, quantiles, train, window, epochs, units, seed,
                        verbose, columns, strategy, season, deseasonalize)
    say(f"training {forecaster!r}")
    if epochs is None and isinstance(forecaster, RNNForecaster):
        say(f"training length: {forecaster.epochs * forecaster.steps_per_epoch} steps a member, "
            "the default for this data's windows (--epochs E: E x 200 steps)")
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        forecaster.fit(train)
    run.notes += [str(w.message) for w in caught]
    run.fit_seconds = time.perf_counter() - started
    _, point, q = forecaster.predict_arrays(horizon)
    levels = list(forecaster.quantiles)
    times = train.future_times(horizon)
    rows = []
    for i, sid in enumerate(train.ids):
        labels = format_time(times[i])
        for k in range(horizon):
            rows.append([sid, labels[k], _fmt(point[i, k]),
                         *(_fmt(q[i, k, j]) for j in range(len(levels))),
                         *([_fmt(truth[i, k])] if truth is not None else [])])
    header = [id_col, time_col, "forecast", *map(quantile_column, levels),
              *([target_col] if truth is not None else [])]
    run.files.append(_write_csv(out / "forecasts.csv", header, rows))
    if truth is not None:
        run.table = _evaluate(run, out, train, truth, point, q, levels, model, columns,
                              plots)
    return run


def _scores(y: np.ndarray, f: np.ndarray, history: np.ndarray, season: int) -> dict:
    m = season if len(history) > season else 1
    scale = np.mean(np.abs(history[m:] - history[:-m])) if len(history) > m else np.nan
    err = y - f
    denom = np.abs(y) + np.abs(f)
    return {"mae": np.mean(np.abs(err)), "rmse": np.sqrt(np.mean(err ** 2)),
            "smape": np.mean(np.where(denom > 0, 200 * np.abs(err) / np.where(
                denom > 0, denom, 1), 0.0)),
            "mase": np.mean(np.abs(err)) / scale if scale > 0 else np.nan}


def _evaluate(run: LongRun, out: Path, train: Panel, truth: np.ndarray, point: np.ndarray,
              q: np.ndarray, levels: list, model: str, columns: tuple[str, str, str],
              plots: int) -> str:
    seasons = train.season()
    forecasts = {model: point}
    for name in ("naive", "seasonal_naive"):
        if name != model:
            forecasts[name] = np.stack([classical_forecast(name, v, truth.shape[1], m)
                                        for v, m in zip(train.values, seasons)])
    names = ["mae", "rmse", "smape", "mase"]
    interval = len(levels) >= 2
    if interval:
        names += [f"coverage_{quantile_column(levels[0])}_{quantile_column(levels[-1])}",
                  "pinball"]
    rows, overall = [], {}
    for label, f in forecasts.items():
        per = []
        for i, sid in enumerate(train.ids):
            s = _scores(truth[i], f[i], train.values[i], seasons[i])
            if interval:
                if label == model:
                    s[names[4]] = np.mean((truth[i] >= q[i, :, 0]) & (truth[i] <= q[i, :, -1]))
                    diff = truth[i][:, None] - q[i]
                    s["pinball"] = np.mean(np.maximum(np.asarray(levels) * diff,
                                                      (np.asarray(levels) - 1) * diff))
                else:
                    s[names[4]] = s["pinball"] = np.nan
            per.append(s)
            rows.append([sid, label, *(_fmt(s[n]) for n in names)])
        overall[label] = {n: float(np.nanmean([s[n] for s in per])) if not all(
            np.isnan(s[n]) for s in per) else np.nan for n in names}
    for label, s in overall.items():
        rows.append(["(all)", label, *(_fmt(s[n]) for n in names)])
    run.files.append(_write_csv(out / "metrics.csv", [columns[0], "model", *names], rows))
    width = max(len(k) for k in overall) + 2
    lines = [f"{'model':<{width}}" + "".join(f"{n[:12]:>14}" for n in names)]
    for label, s in overall.items():
        lines.append(f"{label:<{width}}" + "".join(
            f"{'-' if not np.isfinite(s[n]) else f'{s[n]:.4g}':>14}" for n in names))
    try:
        from ..timeseries.plots import plot_forecast

        for i in range(min(plots, len(train))):
            shown = min(len(train.values[i]), 4 * truth.shape[1])
            run.files.append(plot_forecast(
                train.values[i][-shown:], {label: f[i] for label, f in forecasts.items()},
                truth=truth[i], path=out / f"forecast_{i + 1}.png",
                title=f"{columns[0]} {train.ids[i]}: held-out horizon",
                interval=(q[i, :, 0], q[i, :, -1]) if interval else None))
    except ImportError:
        run.notes.append("plots skipped: matplotlib is not installed (pip install "
                         "'fastrnn[plot]')")
    return "\n".join(lines)


__all__ = ["DEFAULT", "MODELS", "LongRun", "default_steps", "format_time", "run_long_csv"]
