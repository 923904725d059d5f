"""Baseline forecasters with the same ``predict(x)`` interface and shapes as models.

Dimension letters: B = batch, T = input steps, F = features, H = horizon.

Input x is (B, T) or (B, T, F). Output, like a model ending in ``Dense(H)``:

* (B, H) for a univariate input ((B, T) or F == 1) or when ``feature=k`` selects the
  forecast feature;
* (B, H, F) for a multivariate input with ``feature=None`` (every feature forecast).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ._checks import invalid, is_int, positive_int


def _as_3d(x: Any) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 2:
        x = x[..., np.newaxis]
    if x.ndim != 3:
        raise invalid("x", "an array of shape (batch, steps) or (batch, steps, features)",
                      f"an array of shape {x.shape}")
    if x.shape[1] < 1:
        raise invalid("x", "at least one time step", f"shape {x.shape}")
    return x


class Forecaster:
    """Base class of the baselines: ``fit(x, y)`` then ``predict(x, horizon=None)``."""

    def __init__(self, horizon: int = 1, feature: Optional[int] = None) -> None:
        self.horizon = positive_int("horizon", horizon)
        if feature is not None and not is_int(feature):
            raise invalid("feature", "None or a feature index", feature)
        self.feature = feature

    def fit(self, x: Any = None, y: Any = None) -> Forecaster:
        """Nothing to learn for naive baselines; kept so every forecaster can be refit."""
        return self

    def _horizon(self, horizon: Optional[int]) -> int:
        return self.horizon if horizon is None else positive_int("horizon", horizon)

    def _pick_feature(self, forecast: np.ndarray) -> np.ndarray:
        """(B, H, F) -> (B, H) for one feature or F == 1, else unchanged."""
        n_features = forecast.shape[-1]
        if self.feature is not None:
            if not -n_features <= self.feature < n_features:
                raise invalid("feature", f"an index into {n_features} features", self.feature)
            return forecast[..., self.feature]
        return forecast[..., 0] if n_features == 1 else forecast

    def __repr__(self) -> str:
        return f"{type(self).__name__}(horizon={self.horizon}, feature={self.feature})"


class NaiveForecaster(Forecaster):
    """Repeats the last observed value: ``y[t + k] = x[t]`` for every k."""

    def predict(self, x: Any, horizon: Optional[int] = None) -> np.ndarray:
        """x: (B, T[, F]) -> (B, H) or (B, H, F), see the module docstring."""
        x = _as_3d(x)
        steps = self._horizon(horizon)
        forecast = np.repeat(x[:, -1:, :], steps, axis=1)
        return self._pick_feature(forecast)


class SeasonalNaiveForecaster(Forecaster):
    """Repeats the last observed season: ``y[t + k] = x[t + 1 - season + (k - 1) % season]``
    for k = 1..H (the value one season before each forecast step).

    The input window must hold at least ``season`` steps.
    """

    def __init__(self, season: int, horizon: int = 1, feature: Optional[int] = None) -> None:
        super().__init__(horizon, feature)
        self.season = positive_int("season", season)

    def predict(self, x: Any, horizon: Optional[int] = None) -> np.ndarray:
        """x: (B, T[, F]) with T >= season -> (B, H) or (B, H, F)."""
        x = _as_3d(x)
        steps = self._horizon(horizon)
        if x.shape[1] < self.season:
            raise invalid("x", f"windows of at least season = {self.season} steps",
                          f"{x.shape[1]} steps")
        # index of the same phase one season back, relative to the end of the window
        back = -self.season + np.arange(steps) % self.season
        return self._pick_feature(x[:, back, :])

    def __repr__(self) -> str:
        return (f"SeasonalNaiveForecaster(season={self.season}, horizon={self.horizon}, "
                f"feature={self.feature})")


class LinearForecaster(Forecaster):
    """Least squares on the flattened window plus a bias: the closed-form solution of the
    book's ``Flatten`` + ``Dense`` model.

    ``fit(x, y)`` solves ``min ||[flatten(x), 1] W - flatten(y)||^2`` with
    ``np.linalg.lstsq``; ``predict`` returns arrays shaped like the training targets:
    y (B, 1) -> (B, 1); direct targets (B, H) -> (B, H); seq-to-seq targets (B, T, H) ->
    (B, T, H); 1-D y (B,) -> (B, 1). The ``horizon`` argument of ``predict`` may ask for
    at most the number of values it was trained on (the first ones are returned).
    """

    def __init__(self) -> None:
        super().__init__(horizon=1, feature=None)
        self.coef_: Optional[np.ndarray] = None  # (T * F + 1, outputs), bias in the last row
        self.input_shape_: Optional[tuple[int, ...]] = None  # (T, F)
        self.output_shape_: Optional[tuple[int, ...]] = None

    def fit(self, x: Any = None, y: Any = None) -> LinearForecaster:
        """x: (B, T[, F]); y: (B,), (B, H) or (B, T, H). Returns self."""
        if x is None or y is None:
            raise ValueError("LinearForecaster.fit needs training windows x and targets y.")
        x = _as_3d(x).astype(np.float64)
        y = np.asarray(y, dtype=np.float64)
        if y.ndim == 1:
            y = y[:, np.newaxis]
        if y.shape[0] != x.shape[0]:
            raise invalid("y", f"one target per window ({x.shape[0]})", f"shape {y.shape}")
        design = np.hstack([x.reshape(len(x), -1), np.ones((len(x), 1))])
        self.coef_ = np.linalg.lstsq(design, y.reshape(len(y), -1), rcond=None)[0]
        self.input_shape_ = x.shape[1:]
        self.output_shape_ = y.shape[1:]
        self.horizon = int(y.shape[-1])
        return self

    def predict(self, x: Any, horizon: Optional[int] = None) -> np.ndarray:
        """x: (B, T[, F]) shaped like the training windows -> (B, *y.shape[1:]),
        truncated to the first ``horizon`` values of the last axis when given."""
        if self.coef_ is None:
            raise RuntimeError("LinearForecaster is not fitted yet: call fit(x, y) first.")
        x = _as_3d(x)
        if x.shape[1:] != self.input_shape_:
            raise invalid("x", f"windows of shape (batch, {self.input_shape_[0]}, "
                          f"{self.input_shape_[1]}) like the training windows",
                          f"shape {x.shape}")
        design = x.reshape(len(x), -1).astype(np.float64)
        out = design @ self.coef_[:-1] + self.coef_[-1]
        out = out.reshape((len(x), *self.output_shape_)).astype(np.float32)
        if horizon is not None:
            steps = positive_int("horizon", horizon)
            if steps > out.shape[-1]:
                raise invalid("horizon", f"at most the {out.shape[-1]} values the model was "
                              "fitted to predict", horizon)
            out = out[..., :steps]
        return out

    def __repr__(self) -> str:
        return f"LinearForecaster(fitted={self.coef_ is not None}, horizon={self.horizon})"
