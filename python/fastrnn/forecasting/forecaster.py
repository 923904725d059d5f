"""One global recurrent model over many series: :class:`RNNForecaster`.

Dimension letters: S = series, L = input window, H = horizon, F = input features per step,
Q = quantile levels, M = ensemble members.

How a window becomes a training example (per member):

1. each series is scaled by its own location and scale, fitted on the training part only
   (``scaler``: standard, robust, mean_abs or none);
2. with ``relative=True`` (the default) the window's last observed scaled value is subtracted
   from the inputs and the targets, so the network learns changes from the forecast origin
   (it follows levels and trends it never saw in training);
3. the inputs are ``L`` steps (``L + H`` when future-known features exist: the horizon's
   steps carry those features, with the target channel 0) of F features: the target, an
   "observed" flag (0 on padding before a short series' start and on the horizon steps),
   past-observed covariates, future-known covariates and calendar features, and the static
   covariates repeated on every step;
4. the network maps the window to the forecasts, by the ``strategy``:

   * ``"direct"`` (multi-output): ``layers`` recurrent layers of ``units``, then
     ``Dense(H * width)``: all H steps at once;
   * ``"recursive"``: the same network with one output step (``Dense(width)``), trained on
     one-step windows and fed its own forecasts H times (each step's future-known and
     calendar features taken from the future frame);
   * ``"encoder-decoder"``: a functional model: a recurrent encoder over the L window steps
     whose final states initialise a recurrent decoder run over the H horizon steps (the
     decoder's inputs are those steps' features), and one ``Dense(width)`` applied to every
     decoder step;

   width 1 for a point loss (mae, mse, huber), Q for the quantile loss, 2 for a Gaussian
   head (location and scale), 3 for a Student-t head (and its degrees of freedom; 2 when
   they are fixed).

Members differ by seed (and optionally by window); their outputs are combined by the median.
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, Optional

import numpy as np

from ..timeseries._checks import invalid, positive_int, require
from ..timeseries.classical import season_at, seasonal_factors
from ..timeseries.metrics import check_quantiles
from ..timeseries.panel import (
    FILL_GAPS,
    SCALERS,
    Panel,
    PanelWindows,
    extend_times,
    fit_scalers,
    gather_windows,
)
from .losses import GaussianNLL, QuantileLoss, StudentTNLL, softplus

CELLS = ("lstm", "gru", "simple_rnn")
LOSSES = ("mae", "mse", "huber", "quantile", "normal", "student_t")
STRATEGIES = ("direct", "recursive", "encoder-decoder")
FORMAT = "fastrnn.forecaster"


def quantile_column(level: float) -> str:
    """The output column of a quantile level: 0.1 -> ``q0.1``."""
    return f"q{float(level):g}"


def _is_polars(data: Any) -> bool:
    return type(data).__module__.split(".")[0] == "polars"


def _frame(columns: dict[str, Any], like: Any = None) -> Any:
    """A DataFrame of the input's library (polars for polars input or ``like="polars"``,
    else pandas)."""
    if like is not None and (like == "polars" if isinstance(like, str) else _is_polars(like)):
        import polars as pl  # the caller passed a polars frame, so polars is installed

        return pl.DataFrame(columns)
    pd = require("pandas", "pandas", "Returning forecasts as a DataFrame")
    return pd.DataFrame(columns)


class _Batches:
    """``steps`` random batches of windows per epoch, gathered on demand (a dataset for
    ``Model.fit``)."""

    def __init__(self, owner: RNNForecaster, data: dict, windows: PanelWindows, window: int,
                 steps: int, batch_size: int, seed: int) -> None:
        self.owner, self.data, self.windows = owner, data, windows
        self.window, self.steps, self.batch_size = window, steps, batch_size
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for _ in range(self.steps):
            series, origins = self.windows.sample(self._rng, self.batch_size)
            x, y, _ = self.owner._design(self.data, series, origins, self.window,
                                         targets=True)  # y: (B, H_out)
            # Model.fit wants targets of the output's shape: each step repeated per output
            width = self.owner._width
            yield x, (np.repeat(y, width, axis=1) if width > 1 else y)


class RNNForecaster:
    """A global RNN forecaster over many series (neuralforecast's ``unique_id, ds, y``
    convention, names configurable).

    Args:
        h: the horizon, steps forecast after each series' end.
        input_size: L, the input window (default ``2 * h``); series shorter than ``L + h``
            are padded (their steps before the start masked by the "observed" flag).
        cell: ``"lstm"``, ``"gru"`` or ``"simple_rnn"``.
        units, layers: size of the recurrent stack.
        loss: ``"mae"``, ``"mse"``, ``"huber"`` (point forecasts), ``"quantile"`` (the
            pinball loss over ``quantiles``), ``"normal"`` or ``"student_t"`` (a
            distribution head; ``quantiles`` are read from it).
        quantiles: levels reported as ``q<level>`` columns (strictly increasing, in (0, 1));
            the median is added for the quantile loss when missing (it is the point forecast).
        scaler: per-series scaling fitted on the training part: standard, robust, mean_abs,
            none.
        relative: inputs and targets relative to the window's last observed value.
        strategy: how the H steps are forecast (neuralforecast's and darts' names):

            * ``"direct"``: one network output per horizon step (multi-output);
            * ``"recursive"``: a one-step model fed its own forecasts for H steps
              (``predict`` may then ask for more than the trained ``h``). Future-known
              covariates and calendar features of each step come from ``futr_df`` and the
              future times; past-observed covariates are unknown ahead and set to their
              training mean on forecast steps; static covariates as always. With a quantile
              or distribution head the median (quantile loss) or the location (normal,
              Student-t) is fed back, and each step's quantiles are the one-step quantiles
              given that path: they do not accumulate the uncertainty of the earlier steps,
              so the intervals of later steps are too narrow; ``predict(num_samples=N)``
              draws N sample paths instead, whose quantiles do;
            * ``"encoder-decoder"``: a recurrent encoder over the input window whose final
              states initialise a recurrent decoder (same cell, ``layers`` and ``units``) run
              over the H future steps, trained end to end, a ``Dense`` head shared by the
              steps. The decoder's inputs are the future-known covariates, calendar features
              and static covariates of each step; without any, a constant zero input (the
              decoder's biases are the learned constant).
        transform: None, or ``"log"``: the model sees log values (every value must be
            positive), so relative changes are ratios; forecasts are transformed back
            (quantiles stay quantiles; the point forecast is the median's).
        deseasonalize: the network sees each seasonal series divided by its multiplicative
            seasonal indices (a classical decomposition, as the M3 Theta method: applied to
            a series whose values are positive and whose autocorrelation at the season's lag
            passes the 90% test; other series as they are); forecasts and quantiles are
            multiplied back by the indices of their positions. The indices come from the
            values the forecaster is given: the training series in ``fit`` (each window of
            ``cross_validation`` its own part), the series predicted from in ``predict``.
        season_length: the season in steps for ``deseasonalize`` (e.g. 12 for monthly
            data); None takes each series' from its dates (12 monthly, 4 quarterly, 7
            daily, 24 hourly, 52 weekly; integer times have none).
        ensemble: M members (seeds ``seed``, ``seed + 1``...), combined by the median.
        input_sizes: optional windows per member (cycled), e.g. ``(2 * h, 3 * h)``.
        epochs, steps_per_epoch, batch_size, learning_rate: training (Adam, gradient norm
            clipped to ``clipnorm``); each step draws ``batch_size`` windows at random over
            every series (``window_weights="series"`` gives every series the same total
            weight instead of every window); ``history_limit`` draws only from each series'
            last ``history_limit`` windows.
        static, past_covariates, future_covariates: column names of the long table.
        calendar: add calendar features (month; day of week and hour for daily and finer
            data) as future-known features when the times are dates.
        student_t_df: degrees of freedom of the Student-t head: None (the default) learns
            them per forecast step (a third output, ``2 + softplus``: above 2), a number
            fixes them.
        id_col, time_col, target_col: the long table's column names.
        fill_gaps: None (a missing period or a NaN target raises, naming the series), or
            ``"ffill"``, ``"zero"``, ``"interpolate"``: missing periods (absent rows, at
            each series' own frequency) and NaN targets and covariates are filled so, in
            ``fit``, ``predict(df=...)`` and ``cross_validation`` (see
            :class:`~fastrnn.timeseries.panel.Panel`).
        verbose: 0 silent, 1 the training bar per epoch (``Model.fit``'s), 2 a line per
            member.
    """

    def __init__(self, h: int, input_size: Optional[int] = None, cell: str = "lstm",
                 units: int = 64, layers: int = 1, loss: str = "mae",
                 quantiles: Optional[Sequence[float]] = None, scaler: str = "standard",
                 relative: bool = True, transform: Optional[str] = None, ensemble: int = 1,
                 input_sizes: Optional[Sequence[int]] = None, strategy: str = "direct",
                 epochs: int = 10, steps_per_epoch: int = 100, batch_size: int = 64,
                 learning_rate: float = 1e-3, clipnorm: float = 1.0,
                 window_weights: str = "window", history_limit: Optional[int] = None,
                 static: Sequence[str] = (),
                 past_covariates: Sequence[str] = (), future_covariates: Sequence[str] = (),
                 calendar: bool = False, student_t_df: Optional[float] = None,
                 id_col: str = "unique_id", time_col: str = "ds", target_col: str = "y",
                 fill_gaps: Optional[str] = None, seed: int = 0, verbose: int = 0,
                 deseasonalize: bool = False, season_length: Optional[int] = None) -> None:
        self.h = positive_int("h", h)
        self.input_size = positive_int("input_size", input_size if input_size is not None
                                       else 2 * self.h)
        if cell not in CELLS:
            raise invalid("cell", f"one of {CELLS}", cell)
        if loss not in LOSSES:
            raise invalid("loss", f"one of {LOSSES}", loss)
        if scaler not in SCALERS:
            raise invalid("scaler", f"one of {SCALERS}", scaler)
        if strategy not in STRATEGIES:
            raise invalid("strategy", f"one of {STRATEGIES}", strategy)
        if window_weights not in ("window", "series"):
            raise invalid("window_weights", "'window' or 'series'", window_weights)
        self.cell, self.loss, self.scaler, self.strategy = cell, loss, scaler, strategy
        self.units = positive_int("units", units)
        self.layers = positive_int("layers", layers)
        levels = check_quantiles(quantiles) if quantiles is not None else np.zeros(0)
        if loss == "quantile":
            if levels.size == 0:
                levels = np.array([0.1, 0.5, 0.9])
            if not np.any(np.isclose(levels, 0.5)):
                levels = np.sort(np.r_[levels, 0.5])
        self.quantiles = levels
        self.relative = bool(relative)
        if transform not in (None, "log"):
            raise invalid("transform", "None or 'log'", transform)
        self.transform = transform
        if not isinstance(deseasonalize, (bool, np.bool_)):
            raise invalid("deseasonalize", "True or False", deseasonalize)
        self.deseasonalize = bool(deseasonalize)
        self.season_length = None if season_length is None else positive_int(
            "season_length", season_length)
        self.ensemble = positive_int("ensemble", ensemble)
        self.input_sizes = [positive_int("input_sizes", k) for k in input_sizes] \
            if input_sizes else [self.input_size]
        self.epochs = positive_int("epochs", epochs)
        self.steps_per_epoch = positive_int("steps_per_epoch", steps_per_epoch)
        self.batch_size = positive_int("batch_size", batch_size)
        for name, value in (("learning_rate", learning_rate), ("clipnorm", clipnorm),
                            ("student_t_df", student_t_df)):
            if value is None and name == "student_t_df":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not value > 0 or not math.isfinite(value):
                raise invalid(name, "a positive number" if name != "student_t_df" else
                              "None (learned) or a positive number", value)
        self.learning_rate, self.clipnorm = float(learning_rate), float(clipnorm)
        self.student_t_df = None if student_t_df is None else float(student_t_df)
        self.window_weights = window_weights
        self.history_limit = None if history_limit is None else positive_int(
            "history_limit", history_limit)
        self.static, self.past_covariates = list(static), list(past_covariates)
        self.future_covariates = list(future_covariates)
        self.calendar = bool(calendar)
        self.id_col, self.time_col, self.target_col = id_col, time_col, target_col
        if fill_gaps is not None and fill_gaps not in FILL_GAPS:
            raise invalid("fill_gaps", f"None or one of {FILL_GAPS}", fill_gaps)
        self.fill_gaps = fill_gaps
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise invalid("seed", "a non-negative integer", seed)
        self.seed = int(seed)
        if verbose not in (0, 1, 2):
            raise invalid("verbose", "0, 1 or 2", verbose)
        self.verbose = verbose
        self.members_: list[Any] = []
        self.panel_: Optional[Panel] = None
        self.scalers_: Optional[np.ndarray] = None
        self.cov_stats_: Optional[np.ndarray] = None
        self.fit_seconds_: Optional[float] = None
        self.output_ = "pandas"

    # ------------------------------------------------------------------ configuration
    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, JSON-ready."""
        return {
            "h": self.h, "input_size": self.input_size, "cell": self.cell,
            "units": self.units, "layers": self.layers, "loss": self.loss,
            "quantiles": self.quantiles.tolist() or None, "scaler": self.scaler,
            "relative": self.relative, "transform": self.transform, "ensemble": self.ensemble,
            "input_sizes": self.input_sizes, "strategy": self.strategy,
            "epochs": self.epochs, "steps_per_epoch": self.steps_per_epoch,
            "batch_size": self.batch_size, "learning_rate": self.learning_rate,
            "clipnorm": self.clipnorm, "window_weights": self.window_weights,
            "history_limit": self.history_limit,
            "static": self.static, "past_covariates": self.past_covariates,
            "future_covariates": self.future_covariates, "calendar": self.calendar,
            "student_t_df": self.student_t_df, "id_col": self.id_col,
            "time_col": self.time_col, "target_col": self.target_col,
            "fill_gaps": self.fill_gaps, "seed": self.seed,
            "deseasonalize": self.deseasonalize, "season_length": self.season_length,
            "verbose": self.verbose,
        }

    def __repr__(self) -> str:
        return (f"RNNForecaster(h={self.h}, input_size={self.input_size}, cell={self.cell!r}, "
                f"units={self.units}, loss={self.loss!r}, strategy={self.strategy!r}, "
                f"ensemble={self.ensemble}, "
                + (f"deseasonalize=True, season_length={self.season_length}, "
                   if self.deseasonalize else "")
                + f"fitted={bool(self.members_)})")

    @property
    def _width(self) -> int:
        return {"quantile": len(self.quantiles), "normal": 2,
                "student_t": StudentTNLL(self.student_t_df).width}.get(self.loss, 1)

    def _loss_object(self) -> Any:
        if self.loss == "quantile":
            return QuantileLoss(self.quantiles)
        if self.loss == "normal":
            return GaussianNLL()
        if self.loss == "student_t":
            return StudentTNLL(self.student_t_df)
        return self.loss

    @property
    def _out_h(self) -> int:
        """Steps the network outputs: 1 for the recursive strategy, else h."""
        return 1 if self.strategy == "recursive" else self.h

    @property
    def _after(self) -> int:
        """Steps after the window in the network's input: the output steps when they carry
        future-known features (always for the encoder-decoder's decoder), else 0."""
        if self.strategy == "encoder-decoder" or self._has_future:
            return self._out_h
        return 0

    @property
    def _has_future(self) -> bool:
        return bool(self.future_covariates) or self._calendar_width > 0

    @property
    def _calendar_width(self) -> int:
        return 6 if self.calendar and self.panel_ is not None and self.panel_.has_dates else 0

    @property
    def _n_features(self) -> int:
        return (2 + len(self.past_covariates) + len(self.future_covariates)
                + self._calendar_width + len(self.static))

    # ------------------------------------------------------------------ data
    def _panel(self, df: Any) -> Panel:
        panel = Panel.coerce(df, self.id_col, self.time_col, self.target_col,
                             [*self.past_covariates, *self.future_covariates], self.static,
                             self.fill_gaps)
        if self.transform == "log":
            for sid, v in zip(panel.ids, panel.values):
                if np.any(v <= 0):
                    raise ValueError(f"series {sid!r} has values <= 0 (e.g. {v[v <= 0][0]:g}): "
                                     "transform='log' needs positive values.")
        return panel

    def _forward(self, values: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [np.log(v) for v in values] if self.transform == "log" else list(values)

    def _seasons(self, panel: Panel) -> list[Optional[np.ndarray]]:
        """Each series' seasonal indices (m,) under ``deseasonalize``, or None (no season
        found, or not asked). Those of the last panel are kept: ``predict()`` reuses the
        training series' from ``fit`` (about 0.1 ms a series to find)."""
        if not self.deseasonalize:
            return [None] * len(panel)
        kept = self.__dict__.get("_seasons_kept")
        if kept is not None and kept[0] is panel:
            return kept[1]
        periods = [self.season_length] * len(panel) if self.season_length is not None \
            else panel.season()
        seasons = [seasonal_factors(v, m) for v, m in zip(panel.values, periods)]
        self._seasons_kept = (panel, seasons)
        return seasons

    def _adjusted(self, values: Sequence[np.ndarray], seasons: list[Optional[np.ndarray]]
                  ) -> list[np.ndarray]:
        """The values the network sees before scaling: deseasonalized, then transformed."""
        return self._forward([v if s is None else v / season_at(s, 0, len(v))
                              for v, s in zip(values, seasons)])

    def _backward(self, x: np.ndarray) -> np.ndarray:
        return np.exp(np.minimum(x, 700.0)) if self.transform == "log" else x

    @staticmethod
    def _calendar(times: np.ndarray) -> np.ndarray:
        """(n, 6): month of year, day of week and hour of day as sine/cosine pairs."""
        t = times.astype("datetime64[ns]")
        month = (t.astype("datetime64[M]").astype(np.int64) % 12) / 12.0
        days = t.astype("datetime64[D]").astype(np.int64)
        dow = ((days + 3) % 7) / 7.0  # 1970-01-01 was a Thursday: Monday = 0
        hour = ((t - t.astype("datetime64[D]").astype("datetime64[ns]")).astype(np.int64)
                / 3.6e12) / 24.0
        angles = 2 * np.pi * np.stack([month, dow, hour], axis=1)
        return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)

    def _prepare(self, panel: Panel, scalers: np.ndarray,
                 future: Optional[list[np.ndarray]] = None,
                 future_times: Optional[list[np.ndarray]] = None,
                 seasons: Optional[list[Optional[np.ndarray]]] = None) -> dict:
        """Flat per-step arrays of every series (history, then ``future`` steps when given):
        z (N,) the scaled target, feats (N, F - 2) the covariate features."""
        adjusted = self._adjusted(panel.values, seasons or [None] * len(panel))
        npast, nfut = len(self.past_covariates), len(self.future_covariates)
        extra = 0 if future_times is None else len(future_times[0])
        zs, feats, lengths = [], [], []
        for i, v in enumerate(panel.values):
            n = len(v)
            z = np.zeros(n + extra)
            z[:n] = (adjusted[i] - scalers[i, 0]) / scalers[i, 1]
            f = np.zeros((n + extra, self._n_features - 2))
            col = 0
            if npast:
                f[:n, :npast] = panel.covariates[i][:, :npast]
                col = npast
            if nfut:
                f[:n, col:col + nfut] = panel.covariates[i][:, npast:]
                if extra:
                    f[n:, col:col + nfut] = future[i]
                col += nfut
            if nfut + npast and self.cov_stats_ is not None:
                f[:, :npast + nfut] = (f[:, :npast + nfut] - self.cov_stats_[0]) \
                    / self.cov_stats_[1]
                if extra:
                    f[n:, :npast] = 0.0  # past-observed covariates are unknown ahead
            if self._calendar_width:
                times = panel.times[i] if not extra else np.concatenate(
                    [panel.times[i], future_times[i]])
                f[:, col:col + 6] = self._calendar(times)
                col += 6
            if self.static:
                f[:, col:] = panel.static[i]
            zs.append(z)
            feats.append(f)
            lengths.append(n)
        lengths = np.array(lengths, dtype=np.int64)
        sizes = lengths + extra
        return {"z": np.concatenate(zs).astype(np.float32),
                "feats": np.concatenate(feats).astype(np.float32),
                "lengths": lengths, "offsets": np.cumsum(sizes) - sizes}

    def _design(self, data: dict, series: np.ndarray, origins: np.ndarray, window: int,
                targets: bool) -> tuple[np.ndarray, Optional[np.ndarray], np.ndarray]:
        """Inputs (B, L[+H], F), targets (B, H) with ``targets`` (else None) for windows
        ending at ``origins`` (the first forecast step), and the level (B,) subtracted from
        both (each window's last scaled value with ``relative``, else 0). H is the
        network's output steps (1 for the recursive strategy)."""
        after = self._after
        ahead = self._out_h if targets else after
        z, inside = gather_windows(data["z"], data["offsets"], data["lengths"], series,
                                   origins, window, ahead)
        # steps inside the (extended) arrays: covariates are known there
        total = data["lengths"] + (0 if targets else after)
        steps = origins[:, None] + np.arange(-window, after)[None, :]
        known = (steps >= 0) & (steps < total[series][:, None])
        index = data["offsets"][series][:, None] + np.clip(steps, 0, total[series][:, None] - 1)
        x = np.zeros((len(series), window + after, self._n_features), dtype=np.float32)
        x[:, :, 0] = z[:, :window + after]
        x[:, :window, 1] = inside[:, :window]
        x[:, window:, 0] = 0.0
        if self._n_features > 2:
            f = data["feats"][index]
            f[~known] = 0.0
            # past-observed covariates are unknown on the forecast steps (as at prediction)
            f[:, window:, :len(self.past_covariates)] = 0.0
            x[:, :, 2:] = f
        y = z[:, window:window + self._out_h] if targets else None
        last = np.zeros(len(series), dtype=np.float32)
        if self.relative:
            last = z[:, window - 1].copy()  # the origin's level (0 when nothing observed)
            x[:, :window, 0] -= last[:, None] * inside[:, :window]
            if y is not None:
                y = y - last[:, None]
        return x, y, last

    # ------------------------------------------------------------------ model
    def _build(self, window: int) -> Any:
        """The network of one member: input (B, L + after, F), output (B, H_out * width)."""
        from .. import layers, optimizers
        from ..models import Model, Sequential

        cell = {"lstm": layers.LSTM, "gru": layers.GRU, "simple_rnn": layers.SimpleRNN}[
            self.cell]
        steps = window + self._after
        if self.strategy == "encoder-decoder":
            inputs = layers.Input((steps, self._n_features))
            x = layers.Cropping1D((0, self.h))(inputs)  # the window: (B, L, F)
            y = layers.Cropping1D((window, 0))(inputs)  # the horizon steps: (B, H, F)
            states = []
            for k in range(self.layers):
                out = cell(self.units, return_sequences=k < self.layers - 1,
                           return_state=True, name=f"encoder_{k}")(x)
                x, state = out[0], list(out[1:])
                states.append(state)
            for k in range(self.layers):
                y = cell(self.units, return_sequences=True, name=f"decoder_{k}")(
                    y, initial_state=states[k])
            y = layers.Dense(self._width, name="head")(y)  # (B, H, width), every step
            model = Model(inputs, layers.Reshape((self.h * self._width,))(y))
        else:
            stack = [layers.Input((steps, self._n_features))]
            stack += [cell(self.units, return_sequences=k < self.layers - 1)
                      for k in range(self.layers)]
            model = Sequential([*stack, layers.Dense(self._out_h * self._width)])
        model.compile(optimizer=optimizers.Adam(self.learning_rate, clipnorm=self.clipnorm),
                      loss=self._loss_object())
        return model

    # ------------------------------------------------------------------ fit
    def fit(self, df: Any, sample_weights: Optional[np.ndarray] = None) -> RNNForecaster:
        """Trains the members on every series of ``df`` (a long DataFrame, a list of
        arrays or a :class:`~fastrnn.timeseries.panel.Panel`). Scalers are fitted on these
        values only. ``sample_weights``: optional (S,) weights, one per series (a window's
        probability is proportional to its series' weight). Returns self."""
        from .._seed import set_seed

        panel = self._panel(df)
        output = "polars" if _is_polars(df) else "pandas"
        out_h = self._out_h
        trainable = panel.lengths > out_h
        what = f"h = {out_h}" if out_h == self.h else f"{out_h} (one-step training windows)"
        if not trainable.any():
            raise ValueError(f"every series is at most {what} values long: no "
                             "training window (each needs at least one observed step before "
                             "the horizon).")
        for sid in np.asarray(panel.ids, dtype=object)[~trainable][:3]:
            warnings.warn(f"series {sid!r} has at most {what} values: it gives no "
                          "training window (it is still forecast, from its values).",
                          stacklevel=2)
        started = time.perf_counter()
        previous = (self.panel_, self.scalers_, self.cov_stats_, self.members_)
        self.panel_ = panel
        try:
            seasons = self._seasons(panel)
            self.scalers_ = fit_scalers(self._adjusted(panel.values, seasons), self.scaler)
            self.cov_stats_ = None
            if panel.covariates is not None:
                flat = np.concatenate(panel.covariates)
                std = flat.std(axis=0)
                self.cov_stats_ = np.stack([flat.mean(axis=0), np.where(std > 0, std, 1.0)])
            data = self._prepare(panel, self.scalers_, seasons=seasons)
            members = []
            for m in range(self.ensemble):
                window = self.input_sizes[m % len(self.input_sizes)]
                windows = PanelWindows(panel.lengths, window, out_h,
                                       self._window_weights(panel, window, sample_weights),
                                       self.history_limit)
                set_seed(self.seed + m)
                model = self._build(window)
                batches = _Batches(self, data, windows, window, self.steps_per_epoch,
                                   self.batch_size, self.seed + m)
                if self.verbose == 2:
                    print(f"member {m + 1}/{self.ensemble}: {self.cell} {self.units} units, "
                          f"window {window}, {len(windows)} windows", file=sys.stdout)
                model.fit(batches, epochs=self.epochs, verbose=1 if self.verbose == 1 else 0)
                if model.stop_reason:
                    raise RuntimeError(f"member {m + 1} stopped: {model.stop_reason}")
                members.append((window, model))
        except BaseException:
            self.panel_, self.scalers_, self.cov_stats_, self.members_ = previous
            raise
        self.members_ = members
        self.output_ = output  # predict() answers with the training input's library
        self.fit_seconds_ = time.perf_counter() - started
        return self

    def _window_weights(self, panel: Panel, window: int,
                        sample_weights: Optional[np.ndarray]) -> Optional[np.ndarray]:
        if sample_weights is None and self.window_weights == "window":
            return None
        probe = PanelWindows(panel.lengths, window, self._out_h,
                             history_limit=self.history_limit)
        per_series = np.ones(len(panel)) if sample_weights is None else \
            np.asarray(sample_weights, dtype=np.float64)
        if per_series.shape != (len(panel),):
            raise invalid("sample_weights", f"one weight per series ({len(panel)})",
                          f"shape {per_series.shape}")
        if np.any(per_series < 0) or not np.all(np.isfinite(per_series)):
            raise invalid("sample_weights", "non-negative finite weights", "other values")
        w = per_series[probe.series]
        if self.window_weights == "series":
            counts = np.bincount(probe.series, minlength=len(panel)).astype(np.float64)
            w = w / counts[probe.series]
        return w

    # ------------------------------------------------------------------ predict
    def _require_fitted(self) -> None:
        if not self.members_:
            raise RuntimeError("RNNForecaster is not fitted yet: call fit(df) first.")

    def _future_covariates(self, panel: Panel, futr_df: Any, h: int,
                           future_times: list[np.ndarray]) -> Optional[list[np.ndarray]]:
        if not self.future_covariates:
            return None
        if futr_df is None:
            raise ValueError(f"the model uses future-known covariates "
                             f"{self.future_covariates}: pass futr_df with their values for "
                             f"the {h} steps after each series' end.")
        if not hasattr(futr_df, "columns"):
            raise invalid("futr_df", "a DataFrame with the id, time and future covariate "
                          "columns", type(futr_df).__name__)
        columns = {name: np.asarray(futr_df[name]) for name in (
            self.id_col, self.time_col, *self.future_covariates) if name in futr_df.columns}
        columns[self.target_col] = np.zeros(len(futr_df))  # futr_df has no target
        fut = Panel.from_columns(columns, self.id_col, self.time_col, self.target_col,
                                 self.future_covariates)
        by_id = {sid: k for k, sid in enumerate(fut.ids)}
        out = []
        for sid, times in zip(panel.ids, future_times):
            k = by_id.get(sid)
            if k is None:
                raise ValueError(f"series {sid!r}: futr_df has no rows; the horizon ({h} "
                                 "steps) goes beyond the covariates.")
            where = {t: j for j, t in enumerate(fut.times[k].tolist())}
            rows = [where.get(t) for t in times.tolist()]
            if any(r is None for r in rows):
                missing = times[[r is None for r in rows]][0]
                raise ValueError(f"series {sid!r}: futr_df has no covariates for time "
                                 f"{missing}: the horizon ({h} steps) goes beyond the "
                                 "covariates.")
            out.append(fut.covariates[k][rows])
        return out

    def _scalers_for(self, panel: Panel, seasons: list[Optional[np.ndarray]]) -> np.ndarray:
        known = {sid: k for k, sid in enumerate(self.panel_.ids)}
        new = [i for i, sid in enumerate(panel.ids) if sid not in known]
        fresh = fit_scalers(self._adjusted([panel.values[i] for i in new],
                                           [seasons[i] for i in new]), self.scaler) \
            if new else None
        out = np.empty((len(panel), 2))
        for i, sid in enumerate(panel.ids):
            out[i] = self.scalers_[known[sid]] if sid in known else fresh[new.index(i)]
        return out

    def predict_arrays(self, h: Optional[int] = None, df: Any = None, futr_df: Any = None,
                       num_samples: Optional[int] = None, ids: Optional[Sequence[Any]] = None
                       ) -> tuple[Panel, np.ndarray, np.ndarray]:
        """The forecasts as arrays: ``(panel, point (S, H), quantiles (S, H, Q))`` in the
        data's units (the members' median), after the end of ``df`` (default: the training
        data). H is at most the trained horizon, except for the recursive strategy.
        ``num_samples``, ``ids``: see :meth:`predict` (``panel`` then holds those series)."""
        return self._predict_arrays(h, df, futr_df, num_samples=num_samples, ids=ids)

    def _predict_arrays(self, h: Optional[int], df: Any, futr_df: Any,
                        _future: Optional[list[np.ndarray]] = None,
                        num_samples: Optional[int] = None, ids: Optional[Sequence[Any]] = None
                        ) -> tuple[Panel, np.ndarray, np.ndarray]:
        """:meth:`predict_arrays`; ``_future`` (S of (>= H, C_future)) the future-known
        covariates when they come from the table itself (cross-validation)."""
        self._require_fitted()
        if ids is not None and (isinstance(ids, (str, bytes)) or not isinstance(
                ids, (Sequence, np.ndarray)) or len(ids) == 0):
            raise invalid("ids", "None or a non-empty list of series ids", ids)
        h = self.h if h is None else positive_int("h", h)
        recursive = self.strategy == "recursive"
        if num_samples is not None:
            num_samples = positive_int("num_samples", num_samples)
            if not recursive or self.loss not in ("quantile", "normal", "student_t"):
                raise invalid("num_samples", "None unless strategy='recursive' with a "
                              "quantile, normal or student_t loss (sample paths)",
                              num_samples)
        if h > self.h and not recursive:
            raise invalid("h", f"at most the trained horizon {self.h} ({self.strategy} "
                          "strategy)", h)
        steps = h if recursive else self.h  # the steps the network is run over
        panel = self.panel_ if df is None else self._panel(df)
        if ids is not None:  # only these series are forecast
            panel = panel.select(list(ids))
        seasons = self._seasons(panel)
        scalers = self._scalers_for(panel, seasons)
        extend = recursive or self._after > 0  # the arrays go on over the future steps
        future_times = panel.future_times(steps) if extend else None
        if _future is not None:  # cross-validation: the table's own later values
            future = [f[:steps] for f in _future] if self.future_covariates else None
        else:
            future = self._future_covariates(panel, futr_df, steps, future_times) \
                if extend else None
        data = self._prepare(panel, scalers, future, future_times, seasons)
        series = np.arange(len(panel))
        origins = panel.lengths
        points, quants = [], []
        for window, model in self.members_:
            if recursive:
                point, q = self._recursive(data, window, model, steps) \
                    if num_samples is None else self._paths(data, window, model, steps,
                                                            num_samples)
            else:
                x, _, last = self._design(data, series, origins, window, targets=False)
                out = np.asarray(model.predict(x, batch_size=1024), dtype=np.float64)
                point, q = self._decode(out.reshape(len(series), self.h, self._width))
                shift = last[:, None].astype(np.float64)
                point, q = point + shift, q + shift[..., None]
            points.append(point)
            quants.append(q)
        point = np.median(np.stack(points), axis=0)
        q = np.sort(np.median(np.stack(quants), axis=0), axis=-1) if self.quantiles.size \
            else np.zeros((len(series), steps, 0))
        loc, scale = scalers[:, 0, None], scalers[:, 1, None]
        point = self._backward(point * scale + loc)[:, :h]
        q = self._backward(q * scale[..., None] + loc[..., None])[:, :h]
        if any(s is not None for s in seasons):  # the seasons back, position by position
            factors = np.stack([season_at(s, n, h) for s, n in zip(seasons, origins)])
            point, q = point * factors, q * factors[..., None]
        return panel, point, q

    def _recursive(self, data: dict, window: int, model: Any, steps: int
                   ) -> tuple[np.ndarray, np.ndarray]:
        """A one-step member fed its own forecasts: point (S, steps) and quantiles
        (S, steps, Q), scaled. ``data`` extends every series by ``steps`` future rows (their
        features filled); each forecast (the median or location) is written into the
        target there and treated as observed by the next step's window."""
        lengths, offsets = data["lengths"], data["offsets"]
        z = data["z"].copy()
        work = dict(data, z=z)
        series = np.arange(len(lengths))
        points = np.empty((len(lengths), steps))
        quants = np.empty((len(lengths), steps, self.quantiles.size))
        for k in range(steps):
            work["lengths"] = lengths + k  # the forecasts so far count as values
            x, _, last = self._design(work, series, lengths + k, window, targets=False)
            out = np.asarray(model.predict(x, batch_size=1024), dtype=np.float64)
            point, q = self._decode(out.reshape(len(lengths), 1, self._width))
            shift = last.astype(np.float64)
            points[:, k] = point[:, 0] + shift
            quants[:, k] = q[:, 0] + shift[:, None]
            z[offsets + lengths + k] = points[:, k]
        return points, quants

    def _paths(self, data: dict, window: int, model: Any, steps: int, n: int
               ) -> tuple[np.ndarray, np.ndarray]:
        """``n`` sample paths per series of a one-step member: each step's value is drawn
        from its forecast distribution (the Gaussian or Student-t head's; for the quantile
        head by inverting the piecewise-linear CDF through the predicted quantiles, linear
        beyond the outer ones) and fed back. Returns the paths' median (S, steps) and
        their quantiles (S, steps, Q), scaled."""
        lengths, offsets = data["lengths"], data["offsets"]
        S = len(lengths)
        sizes = lengths + steps
        rep = np.repeat(np.arange(S), n)  # path p of series i is pseudo-series i * n + p
        new_sizes = sizes[rep]
        new_offsets = np.cumsum(new_sizes) - new_sizes
        index = np.repeat(offsets[rep] - new_offsets, new_sizes) + np.arange(new_sizes.sum())
        z = data["z"][index]
        work = {"z": z, "feats": data["feats"][index], "offsets": new_offsets}
        series = np.arange(S * n)
        rng = np.random.default_rng(self.seed + 7919 * window)
        samples = np.empty((S * n, steps))
        base = lengths[rep]
        for k in range(steps):
            work["lengths"] = base + k
            x, _, last = self._design(work, series, base + k, window, targets=False)
            out = np.asarray(model.predict(x, batch_size=4096), dtype=np.float64)
            out = out.reshape(S * n, self._width)
            samples[:, k] = self._sample(out, rng) + last
            z[new_offsets + base + k] = samples[:, k]
        paths = samples.reshape(S, n, steps)
        quants = np.moveaxis(np.quantile(paths, self.quantiles, axis=1), 0, -1) \
            if self.quantiles.size else np.zeros((S, steps, 0))
        return np.median(paths, axis=1), quants

    def _sample(self, out: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One draw (B,) from each row's one-step forecast distribution (B, width)."""
        u = rng.random(len(out))
        if self.loss == "quantile":
            q = np.sort(out, axis=-1)
            levels = self.quantiles
            if levels.size == 1:
                return q[:, 0]
            # piecewise linear through (level, quantile), continued by the outer slopes
            k = np.clip(np.searchsorted(levels, u) - 1, 0, levels.size - 2)
            rows = np.arange(len(out))
            lo, hi = q[rows, k], q[rows, k + 1]
            slope = (hi - lo) / (levels[k + 1] - levels[k])
            return lo + slope * (u - levels[k])
        scale = softplus(out[:, 1]) + 1e-6
        if self.loss == "normal":
            return out[:, 0] + scale * rng.standard_normal(len(out))
        nu = StudentTNLL(self.student_t_df).degrees_of_freedom(out)
        return out[:, 0] + scale * rng.standard_t(nu)

    def _decode(self, out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(S, H, width) network outputs -> point (S, H) and quantiles (S, H, Q), scaled."""
        if self.loss == "quantile":
            q = np.sort(out, axis=-1)
            return q[..., int(np.argmin(np.abs(self.quantiles - 0.5)))], q
        if self.loss in ("normal", "student_t"):
            head = GaussianNLL if self.loss == "normal" else StudentTNLL(self.student_t_df)
            return out[..., 0], head.quantiles(out, self.quantiles)
        if self.quantiles.size:
            raise ValueError(f"loss={self.loss!r} gives point forecasts only: use "
                             "loss='quantile', 'normal' or 'student_t' for quantiles.")
        return out[..., 0], np.zeros((*out.shape[:2], 0))

    def predict(self, h: Optional[int] = None, df: Any = None, futr_df: Any = None,
                num_samples: Optional[int] = None, ids: Optional[Sequence[Any]] = None) -> Any:
        """Forecasts for the ``h`` steps after each series' end: a DataFrame with the id and
        time columns, ``forecast`` and one ``q<level>`` column per quantile level.

        Args:
            h: steps (default the trained horizon; at most it, except for the recursive
                strategy, which goes on as far as asked).
            df: the series to forecast from (default: the training data); series the model
                was not trained on are scaled by their own values.
            futr_df: future-known covariates for the horizon (id, time and their columns).
            num_samples: recursive strategy with a probabilistic head only: draw this many
                sample paths per series (each step drawn from its forecast distribution and
                fed back, darts' ``num_samples``) and report their median and quantiles, so
                the intervals widen with the uncertainty of the earlier steps. None: feed
                back the median / location (one-step intervals).
            ids: forecast only these series of ``df`` (or of the training data), in this
                order; None: every series. Only their windows are run through the network.
        """
        panel, point, q = self.predict_arrays(h, df, futr_df, num_samples, ids)
        return self._to_frame(panel, point, q, like=df if df is not None else self.output_)

    def _to_frame(self, panel: Panel, point: np.ndarray, q: np.ndarray, like: Any = None,
                  extra: Optional[dict] = None) -> Any:
        steps = point.shape[1]
        times = np.concatenate(panel.future_times(steps))
        ids = np.repeat(np.asarray(panel.ids, dtype=object), steps)
        columns = {self.id_col: ids.tolist(), self.time_col: times}
        if extra:
            columns.update(extra)
        columns["forecast"] = point.reshape(-1)
        for k, level in enumerate(self.quantiles):
            columns[quantile_column(level)] = q[..., k].reshape(-1)
        return _frame(columns, like)

    # ------------------------------------------------------------------ cross-validation
    def cross_validation(self, df: Any, n_windows: int = 1, step_size: Optional[int] = None,
                         refit: bool = True) -> Any:
        """Rolling-origin evaluation: for window k = 0..n_windows-1 each series is cut at
        ``n_i - h - (n_windows - 1 - k) * step_size`` (the cutoff), the model is trained on
        the values before the cutoffs (every window with ``refit=True``, the first only
        otherwise) and forecasts the h values after them. Returns a DataFrame with the id,
        time, ``cutoff`` (the last training time), ``y``, ``forecast`` and quantile columns.
        Training never sees a value after its cutoff (scalers included)."""
        n_windows = positive_int("n_windows", n_windows)
        step = self.h if step_size is None else positive_int("step_size", step_size)
        panel = self._panel(df)
        frames = []
        for k in range(n_windows):
            back = self.h + (n_windows - 1 - k) * step
            ends = panel.lengths - back
            short = np.flatnonzero(ends < 1)
            if short.size:
                i = int(short[0])
                raise ValueError(f"series {panel.ids[i]!r} has {panel.lengths[i]} values: "
                                 f"too short for {n_windows} windows of h = {self.h} every "
                                 f"{step} steps (it needs more than {back}).")
            context = panel.head(ends)
            if refit or k == 0:
                self.fit(context)
            future = None
            if self.future_covariates:  # the table's values after each cutoff
                npast = len(self.past_covariates)
                future = [c[e:e + self.h, npast:] for c, e in zip(panel.covariates, ends)]
            cut, point, q = self._predict_arrays(None, context, None, _future=future)
            truth = np.stack([v[e:e + self.h] for v, e in zip(panel.values, ends)])
            cutoff = np.repeat(np.array([t[e - 1] for t, e in zip(panel.times, ends)]),
                               self.h)
            frames.append(self._to_frame(cut, point, q, like=df, extra={
                "cutoff": cutoff, self.target_col: truth.reshape(-1)}))
        if len(frames) == 1:
            return frames[0]
        if type(frames[0]).__module__.split(".")[0] == "polars":
            import polars as pl

            return pl.concat(frames)
        pd = require("pandas", "pandas", "cross_validation")
        return pd.concat(frames, ignore_index=True)

    # ------------------------------------------------------------------ save / load
    def save(self, path: str) -> None:
        """Writes the forecaster (configuration, scalers, the training series as the
        forecasting context, every member's weights) as one fastrnn archive (JSON + npz of
        float arrays, no pickle); :meth:`load` reads it back."""
        from ..saving import save_archive

        self._require_fitted()
        panel = self.panel_
        ids = [sid.item() if hasattr(sid, "item") else sid for sid in panel.ids]
        if not all(isinstance(sid, (str, int)) for sid in ids):
            raise ValueError("save() needs string or integer series ids.")
        # the times are regular: each series' first time and frequency rebuild them
        starts = [str(t[0]) if panel.has_dates else int(t[0]) for t in panel.times]
        config = {
            "format": FORMAT, "format_version": 1, "config": self.get_config(),
            "ids": ids, "dates": panel.has_dates, "starts": starts,
            "freqs": [list(f) if f is not None else None for f in panel.freqs],
            "windows": [w for w, _ in self.members_],
            "covariate_names": panel.covariate_names, "static_names": panel.static_names,
            "n_weights": [len(m.get_weights()) for _, m in self.members_],
        }
        empty = np.zeros((0, 0))
        arrays = [np.concatenate(panel.values), panel.lengths.astype(np.float64),
                  self.scalers_,
                  np.concatenate(panel.covariates) if panel.covariates is not None else empty,
                  panel.static if panel.static is not None else empty,
                  self.cov_stats_ if self.cov_stats_ is not None else empty]
        for _, model in self.members_:
            arrays += model.get_weights()
        save_archive(path, config, arrays)

    @classmethod
    def load(cls, path: str) -> RNNForecaster:
        """Reads a file written by :meth:`save` (never unpickles or runs code)."""
        from ..saving import load_archive

        config, arrays = load_archive(path, FORMAT)
        try:
            self = cls(**config["config"])
            values, lengths, scalers, covs, static, cov_stats = arrays[:6]
            lengths = lengths.astype(np.int64)
            bounds = np.cumsum(lengths)[:-1]
            times = []
            for start, freq, n in zip(config["starts"], config["freqs"], lengths):
                first = np.array([start], dtype="datetime64[ns]" if config["dates"] else
                                 np.int64)
                rest = extend_times(first, tuple(freq), int(n) - 1) if n > 1 else first[:0]
                times.append(np.concatenate([first, rest]))
            self.panel_ = Panel(config["ids"], np.split(values, bounds), times,
                                np.split(covs, bounds) if covs.size else None,
                                config["covariate_names"], static if static.size else None,
                                config["static_names"],
                                (self.id_col, self.time_col, self.target_col))
            self.scalers_ = scalers
            self.cov_stats_ = cov_stats if cov_stats.size else None
            rest = arrays[6:]
            members = []
            for window, count in zip(config["windows"], config["n_weights"]):
                model = self._build(int(window))
                model.set_weights(rest[:count])
                rest = rest[count:]
                members.append((int(window), model))
            self.members_ = members
        except (KeyError, TypeError, ValueError, IndexError) as err:
            raise ValueError(f"{path} is not a valid fastrnn forecaster file: {err}") from None
        return self

