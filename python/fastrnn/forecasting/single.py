"""The single-series forecasting run behind ``fastrnn forecast --csv FILE --column NAME``
(and ``--dataset``): a chronological 70/15/15 split, scaling fitted on the training part,
windows, one model (LSTM, GRU, SimpleRNN, linear or naive) trained with early stopping,
test metrics next to the naive and seasonal-naive baselines, CSV forecasts and plots.

Errors are ``ValueError``s naming the argument (``window``, ``horizon``, ``season``); the
command turns them into its option names.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

RECURRENT_MODELS = ("lstm", "gru", "rnn")
MODELS = (*RECURRENT_MODELS, "linear", "naive")


def format_table(head: list[str], rows: list[list[str]]) -> str:
    """A plain-text table: first column left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        return "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                         for i, (cell, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, rows)])


def fmt(value: Optional[float], digits: int = 4) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}g}" if abs(value) < 1e-3 and value != 0 else f"{value:.{digits}f}"


def plot_or_note(draw: Callable[[], list[str]], say: Callable[[str], None]) -> list[str]:
    """Runs ``draw`` (which writes PNGs); without matplotlib, prints one note instead."""
    try:
        paths = draw()
    except ImportError:
        say("note: plot skipped: matplotlib is not installed (pip install 'fastrnn[plot]')")
        return []
    for path in paths:
        say(f"plot: {path}")
    return paths


def recurrent_model(kind: str, units: int, depth: int, window: int, outputs: int) -> Any:
    """``depth`` recurrent layers of ``units`` then ``Dense(outputs)``, compiled with Adam."""
    from .. import layers
    from ..models import Sequential

    cell = {"rnn": layers.SimpleRNN, "lstm": layers.LSTM, "gru": layers.GRU}[kind]
    stack = [cell(units, return_sequences=depth > 1, input_shape=[window, 1])]
    stack += [cell(units, return_sequences=i < depth - 2) for i in range(depth - 1)]
    model = Sequential([*stack, layers.Dense(outputs)])
    model.compile(optimizer="adam", loss="mse")
    return model


@dataclass
class Trained:
    """A fitted model or baseline with its training cost."""

    name: str
    model: Any
    seconds_per_epoch: Optional[float] = None
    epochs: Optional[int] = None
    history: Optional[dict] = field(default=None, repr=False)


def fit_model(name: str, model: Any, x: np.ndarray, y: np.ndarray,
         validation: tuple[np.ndarray, np.ndarray], epochs: int, verbose: int,
         callbacks: Optional[list] = None) -> Trained:
    start = time.perf_counter()
    history = model.fit(x, y, epochs=epochs, batch_size=32, validation_data=validation,
                        verbose=verbose, callbacks=callbacks)
    seconds = time.perf_counter() - start
    ran = len(history.history.get("loss", []))
    return Trained(name, model, seconds / ran if ran else None, ran, history.history)


@dataclass
class Series:
    """A univariate series to forecast."""

    name: str
    values: np.ndarray  # (T,) float64
    timestamps: Optional[np.ndarray] = None  # (T,) datetime64, or None: step numbers
    season: int = 1


SPLIT = (0.7, 0.15)  # train and validation fractions; the test part is the rest


def check_lengths(series: Series, window: int, horizon: int, season: int) -> tuple[int, int]:
    from ..timeseries import split_points

    length = series.values.size
    need = window + horizon
    if length < need:
        raise ValueError(f"the series has {length} values, fewer than window + horizon = "
                           f"{need}; use a smaller `window` or `horizon`")
    train_end, val_end, _ = split_points(length, *SPLIT)
    parts = {"training": (train_end, need), "validation": (val_end - train_end, horizon),
             "test": (length - val_end, horizon)}
    for part, (size, minimum) in parts.items():
        if size < minimum:
            raise ValueError(
                f"the series has {length} values: its {part} part ({size} values) is shorter "
                f"than {'window + horizon' if part == 'training' else 'the horizon'} = "
                f"{minimum}; use a smaller `window` or `horizon` or a longer series")
    if season > 1 and val_end < season + horizon:
        raise ValueError(f"`season` {season} is longer than the data before the test part "
                           f"allows ({val_end} values); use a smaller `season`")
    history = series.values[:val_end]
    if np.ptp(history) == 0:
        raise ValueError(f"{series.name} is constant before the test part (every value is "
                           f"{history[0]:g}): there is nothing to learn, and MASE (scaled by "
                           "the naive forecast's error, 0 here) is undefined")
    return train_end, val_end


def run_single(series: Series, out: Path, window: int, horizon: int, model: str = "lstm",
               strategy: str = "direct", target: str = "change", epochs: int = 30,
               patience: int = 5, units: int = 32, layers: int = 1, verbose: int = 1,
               say: Callable[[str], None] = print) -> None:
    """Splits, trains ``model`` on ``series`` and writes ``out/forecast.csv`` (the next
    ``horizon`` steps), ``out/test_forecasts.csv`` and plots; prints the test table with
    ``say``.

    Args:
        series: the values, optional timestamps and season.
        out: an existing, writable directory.
        window, horizon: input and output steps.
        model: one of ``MODELS``.
        strategy: ``"direct"`` (Dense(horizon)) or ``"recursive"`` (one step fed back).
        target: ``"change"`` (each window relative to its last value) or ``"level"``.
        epochs, patience: training length and early stopping on the validation part.
        units, layers: the recurrent stack.
    """
    from .. import callbacks
    from ..timeseries import (
        LinearForecaster,
        NaiveForecaster,
        RelativeModel,
        SeasonalNaiveForecaster,
        StandardScaler,
        evaluate,
        forecast,
        make_windows,
        plot_forecast,
        plot_learning_curves,
        values_from,
        windows_before,
    )

    if model not in MODELS:
        raise ValueError(f"Received an invalid value for argument `model`: expected one of "
                         f"{MODELS}, got {model!r}.")
    season = series.season
    train_end, val_end = check_lengths(series, window, horizon, season)
    length = series.values.size
    say(f"fastrnn forecast: {series.name}, {length} values; train {train_end}, validation "
        f"{val_end - train_end}, test {length - val_end}; window {window}, horizon {horizon}, "
        f"season {season if season > 1 else 'none'}")

    scaler = StandardScaler().fit(series.values[:train_end])  # training part only
    scaled = scaler.transform(series.values)
    outputs = horizon if strategy == "direct" else 1
    x_train, y_train = make_windows(scaled[:train_end], window, outputs)
    val_origins = np.arange(train_end, val_end - outputs + 1)
    validation = (windows_before(scaled, val_origins, window),
                  values_from(scaled, val_origins, outputs))
    test_origins = np.arange(val_end, length - horizon + 1)

    relative = target == "change" and model != "naive"
    if relative:
        # one-step changes of the training part set the scale of the model's inputs/targets
        step_scale = float(np.std(np.diff(scaled[:train_end]))) or 1.0
        wrapper = RelativeModel(None, step_scale)
        y_train = wrapper.targets(x_train, y_train)
        validation = (wrapper.inputs(validation[0]),
                      wrapper.targets(validation[0], validation[1]))
        x_train = wrapper.inputs(x_train)
    if model in RECURRENT_MODELS:
        network = recurrent_model(model, units, layers, window, outputs)
        stop = callbacks.EarlyStopping(patience=patience, restore_best_weights=True)
        trained = fit_model(model, network, x_train, y_train, validation, epochs, verbose,
                       [stop])
    elif model == "linear":
        trained = Trained("linear", LinearForecaster().fit(x_train, y_train))
    else:
        trained = Trained("naive", NaiveForecaster())
    if relative:
        wrapper.model = trained.model
        trained.model = wrapper

    def predict(model: Any, context: int, origins: np.ndarray) -> np.ndarray:
        """Forecasts in the data's units, (N, horizon)."""
        out = forecast(model, windows_before(scaled, origins, context), horizon,
                       strategy=strategy)
        return scaler.inverse_transform(out)

    context = max(window, season)  # the seasonal baseline looks a whole season back
    truth = values_from(series.values, test_origins, horizon)
    forecasts = {trained.name: predict(trained.model, window, test_origins)}
    forecasts.setdefault("naive", predict(NaiveForecaster(), context, test_origins))
    if season > 1:
        forecasts[f"seasonal naive ({season})"] = predict(
            SeasonalNaiveForecaster(season), context, test_origins)

    history = series.values[:val_end]
    metrics = ("mae", "rmse", "mase", "smape")
    scores = {name: evaluate(truth, pred, metrics, y_train=history, season=season)
              for name, pred in forecasts.items()}
    naive_mae = scores["naive"]["mae"]
    rows = [[name, *(fmt(s[m]) for m in metrics), f"{s['mae'] / naive_mae:.2f}"]
            for name, s in scores.items()]
    say("")
    say(format_table(["model", *metrics, "mae vs naive"], rows))
    say(f"({len(test_origins)} test forecasts of {horizon} steps, {strategy} strategy, "
          f"model trained on {'changes' if relative else 'levels'};\n "
          f"mase scaled by the in-sample {'seasonal ' if season > 1 else ''}naive error"
          f"{f' (m={season})' if season > 1 else ''})")
    if trained.epochs is not None:
        say(f"{trained.name}: {trained.epochs} epochs, {fmt(trained.seconds_per_epoch, 3)} "
              "s/epoch")

    labels = time_labels(series, np.arange(length + horizon))
    test_path = out / "test_forecasts.csv"
    with open(test_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["origin", "step", "time", "actual", *forecasts])
        for i, origin in enumerate(test_origins):
            for step in range(horizon):
                writer.writerow([labels[origin], step + 1, labels[origin + step],
                                 f"{truth[i, step]:.6g}",
                                 *(f"{pred[i, step]:.6g}" for pred in forecasts.values())])
    future = predict(trained.model, window, np.array([length]))[0]
    future_path = out / "forecast.csv"
    with open(future_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "time", trained.name])
        for step in range(horizon):
            writer.writerow([step + 1, labels[length + step], f"{future[step]:.6g}"])
    say(f"forecasts: {future_path} (next {horizon} steps), {test_path} (test part)")

    def draw() -> list[str]:
        last = len(test_origins) - 1
        shown = min(val_end, max(4 * horizon, window, 2 * season))
        origin = int(test_origins[last])
        paths = [plot_forecast(
            series.values[origin - shown:origin], {name: pred[last]
                                                   for name, pred in forecasts.items()},
            truth=truth[last], path=out / "forecast.png", history_index=np.arange(
                origin - shown, origin),
            title=f"{series.name}: last test forecast")]
        if trained.history:
            paths.append(plot_learning_curves(trained.history, out / "learning_curves.png",
                                              title=f"{trained.name} on {series.name}"))
        return paths

    plot_or_note(draw, print)
    return 0


def time_labels(series: Series, steps: np.ndarray) -> list[str]:
    """A label per step: the timestamp (extrapolated past the end) or the step number."""
    if series.timestamps is None:
        return [str(int(step)) for step in steps]
    times = series.timestamps
    if len(times) < 2:
        return [str(times[0])] + [str(int(step)) for step in steps[1:]]
    delta = times[-1] - times[-2]
    past_end = [times[-1] + delta * int(step - len(times) + 1) for step in steps
                if step >= len(times)]
    return [str(t) for t in times[steps[steps < len(times)]]] + [str(t) for t in past_end]
