"""Classic one-series forecasting methods, the honest baselines of a forecasting table:
naive, seasonal naive, drift, simple exponential smoothing (SES) and Theta.

Each takes one series ``y`` (n,) and a horizon h and returns the point forecasts (h,).
Theta follows Assimakopoulos and Nikolopoulos (2000) as Hyndman and Billah (2003) showed it
to be: SES with drift equal to half the slope of a linear trend, on the series
deseasonalised by a classical multiplicative decomposition when a 90% autocorrelation test
finds the season (the M3 competition's procedure).

Prediction intervals (:func:`forecast_std`, :func:`classical_quantiles`) are the textbook
normal ones (Hyndman and Athanasopoulos, *Forecasting: Principles and Practice*, table 5.2 and
section 8.7; the ``level=`` intervals of statsforecast and R's forecast package): the
forecast ``+- z * sigma_k`` at step k, with sigma the standard deviation of the one-step
in-sample residuals (sum of squares over residuals minus estimated parameters) and

* naive: ``sigma_k = sigma sqrt(k)`` (a random walk);
* seasonal naive: ``sigma sqrt(floor((k - 1) / m) + 1)``;
* drift: ``sigma sqrt(k (1 + k / (n - 1)))`` (the slope's uncertainty included);
* SES: ``sigma sqrt(1 + alpha^2 (k - 1))`` (the ETS(A,N,N) model);
* Theta: SES's on the deseasonalised series around the Theta forecast, reseasonalised (as
  R's ``thetaf``); the uncertainty of its slope is not included.

Series too short to estimate sigma (fewer residuals than parameters plus one) get NaN.
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Any

import numpy as np

from ._checks import positive_int

_NORMAL_95 = 1.6448536269514722  # the standard normal's 0.95 quantile


def naive(y: np.ndarray, h: int) -> np.ndarray:
    """The last value, repeated: (h,)."""
    return np.full(positive_int("h", h), float(y[-1]))


def seasonal_naive(y: np.ndarray, h: int, season: int) -> np.ndarray:
    """The last season, repeated: y[n - m + (k % m)] for k = 0..h-1; the plain naive
    forecast when the series is shorter than one season."""
    h, season = positive_int("h", h), positive_int("season", season)
    if len(y) < season:
        return naive(y, h)
    return np.asarray(y[len(y) - season + np.arange(h) % season], dtype=np.float64)


def drift(y: np.ndarray, h: int) -> np.ndarray:
    """The line through the first and last values, continued: (h,)."""
    h = positive_int("h", h)
    slope = (y[-1] - y[0]) / (len(y) - 1) if len(y) > 1 else 0.0
    return y[-1] + slope * np.arange(1, h + 1)


def _ses_fit(y: np.ndarray, alphas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each smoothing weight, the sum of squared one-step errors with the best initial
    level (a least-squares problem once alpha is fixed) and the final level: (A,), (A,)."""
    n = len(y)
    beta = 1.0 - alphas  # (A,)
    # one-step forecasts f_t = beta^t l0 + g_t, with g_t the forecast from l0 = 0
    g = np.zeros_like(alphas)
    gs = np.empty((n, alphas.size))
    for t in range(n):
        gs[t] = g
        g = alphas * y[t] + beta * g
    w = beta[None, :] ** np.arange(n)[:, None]  # (n, A) weight of l0 in f_t
    resid = y[:, None] - gs
    l0 = (w * resid).sum(0) / np.maximum((w * w).sum(0), 1e-300)
    sse = ((resid - w * l0) ** 2).sum(0)
    final = g + beta ** n * l0
    return sse, final


def ses(y: np.ndarray, h: int, alpha: float | None = None) -> np.ndarray:
    """Simple exponential smoothing's flat forecast (h,); alpha and the initial level minimise
    the one-step squared errors unless ``alpha`` is given."""
    return np.full(positive_int("h", h), _ses(np.asarray(y, dtype=np.float64), alpha)[0])


def _ses(y: np.ndarray, alpha: float | None) -> tuple[float, float]:
    """(final level, alpha)."""
    if alpha is not None:
        return float(_ses_fit(y, np.array([alpha]))[1][0]), float(alpha)
    grid = np.linspace(0.0001, 0.9999, 100)
    sse, _ = _ses_fit(y, grid)
    k = int(np.argmin(sse))
    lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, grid.size - 1)]
    fine = np.linspace(lo, hi, 41)
    sse, final = _ses_fit(y, fine)
    k = int(np.argmin(sse))
    return float(final[k]), float(fine[k])


def seasonality_test(y: np.ndarray, season: int) -> bool:
    """True when the autocorrelation at lag ``season`` is significant at 90% (two-sided,
    Bartlett's standard error from the lower lags), as in the M3 Theta method; False for
    season 1 or fewer than 3 seasons of data."""
    n = len(y)
    if season <= 1 or n < 3 * season:
        return False
    x = y - y.mean()
    denom = float(np.dot(x, x))
    if denom == 0:
        return False
    r = np.array([np.dot(x[:-k], x[k:]) / denom for k in range(1, season + 1)])
    stat = np.sqrt((1 + 2 * np.sum(r[:-1] ** 2)) / n)
    return bool(abs(r[-1]) / stat > _NORMAL_95)


def seasonal_indices(y: np.ndarray, season: int) -> np.ndarray:
    """Multiplicative seasonal indices of a classical decomposition, (season,), averaging 1:
    the index of phase k applies to y[k], y[k + m], ...; ratios to a centred moving average
    (2 x m for even m) averaged per phase."""
    n, m = len(y), season
    if m % 2 == 0:
        kernel = np.r_[0.5, np.ones(m - 1), 0.5] / m
    else:
        kernel = np.ones(m) / m
    trend = np.convolve(y, kernel, mode="valid")  # centred at index len(kernel)//2
    start = len(kernel) // 2
    ratio = y[start:start + len(trend)] / trend
    phase = (np.arange(len(trend)) + start) % m
    index = np.array([ratio[phase == k].mean() for k in range(m)])
    return index / index.mean() if np.all(np.isfinite(index)) and n else np.ones(m)


def _residual_sd(residuals: np.ndarray, parameters: int) -> float:
    """sqrt(sum e^2 / (len(e) - parameters)); NaN without enough residuals."""
    dof = len(residuals) - parameters
    return float(np.sqrt(np.sum(residuals ** 2) / dof)) if dof > 0 else float("nan")


def seasonal_factors(y: np.ndarray, season: int) -> np.ndarray | None:
    """The multiplicative seasonal indices (season,) of `y` when the M3 Theta method would
    deseasonalise it (a season above 1, positive values, the 90% autocorrelation test of
    :func:`seasonality_test` passed), else None. Index k applies to y[k], y[k + m], ...
    and, going on, to the forecast of position n + j at ``(n + j) % season``."""
    seasonal = season > 1 and np.all(y > 0) and seasonality_test(y, season)
    return seasonal_indices(y, season) if seasonal else None


def season_at(index: np.ndarray | None, start: int, count: int) -> np.ndarray:
    """The factors (count,) of positions ``start .. start + count - 1`` of a series whose
    seasonal indices are `index` (position k has index ``k % len(index)``); ones for None."""
    if index is None:
        return np.ones(count)
    return index[(start + np.arange(count)) % len(index)]


def _deseasonalised(y: np.ndarray, season: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Theta's input: the series divided by its seasonal indices when the 90% test finds a
    season (positive values only), and the indices (season,) or None."""
    index = seasonal_factors(y, season)
    x = y / season_at(index, 0, len(y)) if index is not None else y
    return x, index


def theta(y: np.ndarray, h: int, season: int = 1) -> np.ndarray:
    """The Theta method's forecast (h,): on the (deseasonalised) series, SES plus half the
    slope b of a least-squares line: ``ses + b/2 * (k - 1 + (1 - (1 - a)^n) / a)`` for
    k = 1..h, reseasonalised."""
    h = positive_int("h", h)
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    x, index = _deseasonalised(y, season)
    if n < 2:
        return np.full(h, float(y[-1]))
    level, alpha = _ses(x, None)
    alpha = max(alpha, 1e-10)
    t = np.arange(n)
    slope = np.polyfit(t, x, 1)[0]
    out = level + slope / 2 * (np.arange(h) + (1 - (1 - alpha) ** n) / alpha)
    if index is not None:
        out = out * season_at(index, n, h)
    return out


METHODS = ("naive", "seasonal_naive", "drift", "ses", "theta")


def forecast_std(method: str, y: np.ndarray, h: int, season: int = 1) -> np.ndarray:
    """The standard deviation of the forecast error at steps 1..h (h,) of one of
    ``METHODS`` (the module's formulas; NaN when the series is too short)."""
    if method not in METHODS:
        raise ValueError(f"Received an invalid value for argument `method`: expected one "
                         f"of {METHODS}, got {method!r}.")
    h = positive_int("h", h)
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    k = np.arange(1, h + 1, dtype=np.float64)
    if method == "seasonal_naive" and n < positive_int("season", season):
        method = "naive"  # the point forecast falls back to naive too
    if method == "naive":
        return _residual_sd(np.diff(y), 0) * np.sqrt(k)
    if method == "seasonal_naive":
        m = season
        return _residual_sd(y[m:] - y[:-m], 0) * np.sqrt(np.floor((k - 1) / m) + 1)
    if method == "drift":
        if n < 3:
            return np.full(h, np.nan)
        steps = np.diff(y)
        return _residual_sd(steps - steps.mean(), 1) * np.sqrt(k * (1 + k / (n - 1)))
    x, index = (y, None) if method == "ses" else _deseasonalised(y, season)
    if n < 3:
        return np.full(h, np.nan)
    _, alpha = _ses(x, None)
    sse, _ = _ses_fit(x, np.array([alpha]))
    sigma = float(np.sqrt(sse[0] / (n - 2)))
    out = sigma * np.sqrt(1 + alpha ** 2 * (k - 1))
    if index is not None:
        out = out * season_at(index, n, h)
    return out


def classical_quantiles(method: str, y: np.ndarray, h: int, quantiles: Any,
                        season: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The point forecast (h,) and its normal quantiles (h, Q) at the levels
    ``quantiles`` (each in (0, 1)): ``forecast + z_q * forecast_std``."""
    point = classical_forecast(method, y, h, season)
    z = np.array([NormalDist().inv_cdf(float(q)) for q in np.atleast_1d(quantiles)])
    return point, point[:, None] + forecast_std(method, y, h, season)[:, None] * z


def classical_forecast(method: str, y: np.ndarray, h: int, season: int = 1) -> np.ndarray:
    """One of ``METHODS`` on one series: (h,)."""
    y = np.asarray(y, dtype=np.float64)
    if method == "naive":
        return naive(y, h)
    if method == "seasonal_naive":
        return seasonal_naive(y, h, season)
    if method == "drift":
        return drift(y, h)
    if method == "ses":
        return ses(y, h)
    if method == "theta":
        return theta(y, h, season)
    raise ValueError(f"Received an invalid value for argument `method`: expected one of "
                     f"{METHODS}, got {method!r}.")
