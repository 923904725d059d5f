"""The classic methods (naive, seasonal naive, drift, SES, Theta) with the forecaster API, for
honest tables next to the global models."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

import numpy as np

from ..timeseries._checks import invalid, positive_int, require
from ..timeseries.classical import METHODS, classical_forecast, classical_quantiles
from ..timeseries.metrics import check_quantiles
from ..timeseries.panel import FILL_GAPS, Panel
from .forecaster import _frame, quantile_column


class StatsForecaster:
    """One classic method fitted to each series separately.

    Args:
        method: ``"naive"``, ``"seasonal_naive"``, ``"drift"``, ``"ses"`` or ``"theta"``.
        h: the default horizon of :meth:`predict`.
        season: the seasonal period; None takes each series' own from its frequency
            (12 for monthly dates, 4 quarterly, ...; 1 for integer times).
        id_col, time_col, target_col: the long table's column names.
        fill_gaps: None, ``"ffill"``, ``"zero"`` or ``"interpolate"``, as in
            :class:`~fastrnn.forecasting.RNNForecaster`.
        quantiles: levels of the prediction intervals, reported as ``q<level>`` columns
            as :class:`~fastrnn.forecasting.RNNForecaster` does (statsforecast's
            ``level=[80]`` is ``quantiles=[0.1, 0.9]``): the normal intervals of the
            textbook formulas (:mod:`fastrnn.timeseries.classical`); None: point forecasts
            only (the ``forecast`` column).
    """

    def __init__(self, method: str, h: int = 1, season: Optional[int] = None,
                 id_col: str = "unique_id", time_col: str = "ds", target_col: str = "y",
                 fill_gaps: Optional[str] = None,
                 quantiles: Optional[Sequence[float]] = None) -> None:
        if method not in METHODS:
            raise invalid("method", f"one of {METHODS}", method)
        self.method = method
        self.h = positive_int("h", h)
        self.season = None if season is None else positive_int("season", season)
        self.id_col, self.time_col, self.target_col = id_col, time_col, target_col
        if fill_gaps is not None and fill_gaps not in FILL_GAPS:
            raise invalid("fill_gaps", f"None or one of {FILL_GAPS}", fill_gaps)
        self.fill_gaps = fill_gaps
        self.panel_: Optional[Panel] = None
        self.quantiles = check_quantiles(quantiles) if quantiles is not None \
            else np.zeros(0)

    def __repr__(self) -> str:
        return (f"StatsForecaster({self.method!r}, h={self.h}, season={self.season}, "
                f"quantiles={self.quantiles.tolist() or None})")

    def _panel(self, df: Any) -> Panel:
        return Panel.coerce(df, self.id_col, self.time_col, self.target_col,
                            fill_gaps=self.fill_gaps)

    def _seasons(self, panel: Panel) -> list[int]:
        return panel.season() if self.season is None else [self.season] * len(panel)

    def fit(self, df: Any) -> StatsForecaster:
        """Keeps the series (the methods are fitted when forecasting). Returns self."""
        self.panel_ = self._panel(df)
        return self

    def predict_arrays(self, h: Optional[int] = None, df: Any = None
                       ) -> tuple[Panel, np.ndarray, np.ndarray]:
        """``(panel, point (S, H), quantiles (S, H, Q))`` (Q = 0 without ``quantiles``)."""
        if self.panel_ is None and df is None:
            raise RuntimeError("StatsForecaster is not fitted yet: call fit(df) first.")
        h = self.h if h is None else positive_int("h", h)
        panel = self.panel_ if df is None else self._panel(df)
        if not self.quantiles.size:
            point = np.stack([classical_forecast(self.method, v, h, m)
                              for v, m in zip(panel.values, self._seasons(panel))])
            return panel, point, np.zeros((len(panel), h, 0))
        pairs = [classical_quantiles(self.method, v, h, self.quantiles, m)
                 for v, m in zip(panel.values, self._seasons(panel))]
        return panel, np.stack([p for p, _ in pairs]), np.stack([q for _, q in pairs])

    def predict(self, h: Optional[int] = None, df: Any = None) -> Any:
        """A DataFrame with the id and time columns, ``forecast`` and one ``q<level>``
        column per quantile level."""
        panel, point, q = self.predict_arrays(h, df)
        steps = point.shape[1]
        return _frame({self.id_col: np.repeat(np.asarray(panel.ids, dtype=object),
                                              steps).tolist(),
                       self.time_col: np.concatenate(panel.future_times(steps)),
                       "forecast": point.reshape(-1), **self._quantile_columns(q)}, df)

    def _quantile_columns(self, q: np.ndarray) -> dict:
        return {quantile_column(level): q[..., k].reshape(-1)
                for k, level in enumerate(self.quantiles)}

    def cross_validation(self, df: Any, n_windows: int = 1, step_size: Optional[int] = None,
                         refit: bool = True) -> Any:
        """As :meth:`RNNForecaster.cross_validation` (``refit`` changes nothing here)."""
        n_windows = positive_int("n_windows", n_windows)
        step = self.h if step_size is None else positive_int("step_size", step_size)
        panel = self._panel(df)
        frames = []
        for k in range(n_windows):
            back = self.h + (n_windows - 1 - k) * step
            ends = panel.lengths - back
            if np.any(ends < 1):
                i = int(np.flatnonzero(ends < 1)[0])
                raise ValueError(f"series {panel.ids[i]!r} has {panel.lengths[i]} values: "
                                 f"too short for {n_windows} windows of h = {self.h}.")
            cut = panel.head(ends)
            _, point, q = self.predict_arrays(self.h, cut)
            truth = np.stack([v[e:e + self.h] for v, e in zip(panel.values, ends)])
            frames.append(_frame({
                self.id_col: np.repeat(np.asarray(panel.ids, dtype=object), self.h).tolist(),
                self.time_col: np.concatenate(cut.future_times(self.h)),
                "cutoff": np.repeat(np.array([t[e - 1] for t, e in zip(panel.times, ends)]),
                                    self.h),
                self.target_col: truth.reshape(-1), "forecast": point.reshape(-1),
                **self._quantile_columns(q)}, df))
        if len(frames) == 1:
            return frames[0]
        pd = require("pandas", "pandas", "cross_validation")
        return pd.concat(frames, ignore_index=True)
