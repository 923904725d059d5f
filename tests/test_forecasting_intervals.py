"""Prediction intervals of the classical baselines: the textbook widths against plain NumPy,
coverage on simulated random walks (whose naive interval is exact), and StatsForecaster's
q<level> columns in the RNN forecaster's format."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pytest

from fastrnn.forecasting import StatsForecaster
from fastrnn.timeseries.classical import classical_quantiles, forecast_std


def _random_walks(n_series, length, rng):
    scale = rng.uniform(0.5, 2.0, (n_series, 1))
    return 50 + np.cumsum(scale * rng.normal(size=(n_series, length)), axis=1)


def _seasonal_walks(n_series, length, season, rng):
    """y_t = y_{t-m} + e_t: the seasonal naive interval is exact."""
    y = np.empty((n_series, length))
    y[:, :season] = 50 + 5 * rng.normal(size=(n_series, season))
    e = rng.normal(size=(n_series, length))
    for t in range(season, length):
        y[:, t] = y[:, t - season] + e[:, t]
    return y


def test_widths_are_the_textbook_formulas():
    y = np.array([3.0, 5.0, 4.0, 8.0, 9.0, 7.0, 10.0, 12.0])
    k = np.arange(1, 6)
    d = np.diff(y)
    sigma = np.sqrt(np.mean(d ** 2))
    np.testing.assert_allclose(forecast_std("naive", y, 5), sigma * np.sqrt(k))
    e = d - (y[-1] - y[0]) / 7  # the drift's residuals, one parameter
    np.testing.assert_allclose(forecast_std("drift", y, 5),
                               np.sqrt(np.sum(e ** 2) / 6) * np.sqrt(k * (1 + k / 7)))
    s = y[3:] - y[:-3]  # season 3: steps 1-3 one season ahead, 4-5 two
    np.testing.assert_allclose(forecast_std("seasonal_naive", y, 5, 3),
                               np.sqrt(np.mean(s ** 2)) * np.sqrt([1, 1, 1, 2, 2]))
    point, q = classical_quantiles("naive", y, 5, [0.1, 0.5, 0.975])
    z = [NormalDist().inv_cdf(p) for p in (0.1, 0.5, 0.975)]
    np.testing.assert_allclose(q, 12.0 + (sigma * np.sqrt(k))[:, None] * z)
    np.testing.assert_array_equal(q[:, 1], point)
    assert np.all(np.isnan(forecast_std("drift", y[:2], 3)))  # too short: no estimate


@pytest.mark.parametrize("method, low", [
    ("naive", 0.77), ("drift", 0.77), ("seasonal_naive", 0.77),
    # SES and Theta estimate alpha (< 1 on some walks) and Theta a spurious slope: their
    # intervals cover a little less than nominal on random walks (measured 0.78)
    ("ses", 0.75), ("theta", 0.74),
])
def test_80_percent_intervals_cover_80_percent_of_random_walks(method, low):
    rng = np.random.default_rng(0)
    n_series = 600 if method in ("ses", "theta") else 1500
    n, h, season = 60, 8, 4
    data = _seasonal_walks(n_series, n + h, season, rng) if method == "seasonal_naive" \
        else _random_walks(n_series, n + h, rng)
    m = season if method == "seasonal_naive" else 1
    q = np.stack([classical_quantiles(method, x[:n], h, [0.1, 0.9], m)[1] for x in data])
    inside = (data[:, n:] >= q[..., 0]) & (data[:, n:] <= q[..., 1])
    # pooled over 8 correlated steps of 600-1500 series: a binomial spread of 0.01-0.016
    # per step; each step's width must grow (a constant width covers 35% at step 8)
    assert low <= inside.mean() <= 0.84, inside.mean()
    assert np.all(inside.mean(axis=0) >= low - 0.04), inside.mean(axis=0)


def test_stats_forecaster_reports_quantile_columns():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(1)
    walks = _random_walks(3, 40, rng)
    df = pd.DataFrame({"unique_id": np.repeat(["a", "b", "c"], 40),
                       "ds": np.tile(np.arange(40), 3), "y": walks.reshape(-1)})
    model = StatsForecaster("drift", h=4, quantiles=[0.1, 0.5, 0.9]).fit(df)
    out = model.predict()
    assert list(out.columns) == ["unique_id", "ds", "forecast", "q0.1", "q0.5", "q0.9"]
    np.testing.assert_allclose(out["q0.5"], out.forecast)
    width = (out["q0.9"] - out["q0.1"]).to_numpy().reshape(3, 4)
    assert np.all(np.diff(width, axis=1) > 0)  # intervals widen with the horizon
    cv = model.cross_validation(df, n_windows=2)
    assert list(cv.columns) == ["unique_id", "ds", "cutoff", "y", "forecast", "q0.1",
                                "q0.5", "q0.9"]
    with pytest.raises(ValueError, match="`quantiles`"):
        StatsForecaster("naive", quantiles=[0.9, 0.1])
