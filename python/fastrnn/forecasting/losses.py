"""Probabilistic training losses for the forecasters: multi-quantile (pinball) and the
negative log-likelihoods of a Gaussian and a Student-t head, with analytic gradients.

Dimension letters: B = batch, H = horizon, Q = quantile levels, P = distribution
parameters per step (2: location and raw scale; the scale is ``softplus(raw) + 1e-6``; 3
for the Student-t with learned degrees of freedom: also their raw value, the degrees of
freedom being ``2 + softplus(raw)``, so the variance is finite).

``y_pred`` is the model's flat output (B, H * Q) or (B, H * P), step-major (the Q values of
step 1 first). ``y_true`` is (B, H), or (B, H * Q) / (B, H * P) with each step's value
repeated (the layout ``Model.fit`` needs, its targets having the output's shape). Each loss
is the mean over B * H (and Q).
"""

from __future__ import annotations

import math
from functools import lru_cache
from statistics import NormalDist
from typing import Any, Optional

import numpy as np

from ..losses import Loss
from ..timeseries.metrics import check_quantiles

_MIN_SCALE = 1e-6


def softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _lgamma(x: np.ndarray) -> np.ndarray:
    """log Gamma(x) for x > 0, elementwise: shifted by the recurrence to x + 8 >= 8, then
    Stirling's series to x^-9 (truncation error below 1e-13 there; the shift's logs add
    rounding of ~1e-15 times their sum)."""
    x = np.asarray(x, dtype=np.float64)
    shift = np.zeros_like(x)
    for k in range(8):
        shift += np.log(x + k)
    w = x + 8.0
    r = 1.0 / (w * w)
    series = (1.0 / 12 - r * (1.0 / 360 - r * (1.0 / 1260 - r * (1.0 / 1680 - r / 1188)))) / w
    return (w - 0.5) * np.log(w) - w + 0.5 * math.log(2 * math.pi) + series - shift


def _digamma(x: np.ndarray) -> np.ndarray:
    """The digamma function psi(x) = d/dx log Gamma(x) for x > 0, elementwise (recurrence
    to x + 8, then the asymptotic series to x^-10; error below 1e-13)."""
    x = np.asarray(x, dtype=np.float64)
    shift = np.zeros_like(x)
    for k in range(8):
        shift += 1.0 / (x + k)
    w = x + 8.0
    r = 1.0 / (w * w)
    series = r * (1.0 / 12 - r * (1.0 / 120 - r * (1.0 / 252 - r * (1.0 / 240 - r / 132))))
    return np.log(w) - 0.5 / w - series - shift


_GRID = 129  # nodes of the quantile tables in u = 1/df, from 0 (the normal) to 1/2 (df = 2)


@lru_cache(maxsize=64)
def _t_quantile_table(level: float) -> np.ndarray:
    """The Student-t quantile of ``level`` at df = 1/u for u on ``_GRID`` nodes of
    [0, 1/2] (u = 0: the normal quantile)."""
    u = np.linspace(0.0, 0.5, _GRID)
    return np.array([NormalDist().inv_cdf(level) if v == 0 else student_t_ppf(level, 1 / v)
                     for v in u])


def student_t_quantiles(levels: Any, df: np.ndarray) -> np.ndarray:
    """Standard Student-t quantiles for array ``df`` (every value >= 2): (..., Q) for
    ``df`` (...). A table per level in u = 1/df (129 nodes, exact by
    :func:`student_t_ppf`), read by local cubic (4-node Lagrange) interpolation: relative
    error below 1e-8 (u^4 smoothness; measured against scipy's ``t.ppf``)."""
    df = np.asarray(df, dtype=np.float64)
    if np.any(df < 2):
        raise ValueError("student_t_quantiles needs degrees of freedom >= 2.")
    u = np.clip(1.0 / df, 0.0, 0.5) * (2 * (_GRID - 1))  # position on the grid
    i = np.clip(np.floor(u).astype(np.int64) - 1, 0, _GRID - 4)  # first of 4 nodes
    t = u - i  # in [0, 3]
    weights = np.stack([-(t - 1) * (t - 2) * (t - 3) / 6, t * (t - 2) * (t - 3) / 2,
                        -t * (t - 1) * (t - 3) / 2, t * (t - 1) * (t - 2) / 6], axis=-1)
    out = np.empty((*df.shape, len(np.atleast_1d(levels))))
    for k, level in enumerate(np.atleast_1d(levels)):
        table = _t_quantile_table(float(level))
        nodes = table[i[..., None] + np.arange(4)]
        out[..., k] = np.sum(weights * nodes, axis=-1)
    return out


def _split(y_true: Any, y_pred: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(B, H) targets and (B, H, width) predictions; a clear error on a shape mismatch."""
    y = np.asarray(y_true, dtype=y_pred.dtype)
    if y.ndim == 2 and y.shape == y_pred.shape and y.shape[1] % width == 0:
        y = y.reshape(y.shape[0], -1, width)[..., 0]
    if y.ndim != 2 or y_pred.shape != (y.shape[0], y.shape[1] * width):
        raise ValueError(f"expected y_true (batch, horizon) and y_pred (batch, horizon * "
                         f"{width}), got {y.shape} and {y_pred.shape}.")
    return y, y_pred.reshape(y.shape[0], y.shape[1], width)


class QuantileLoss(Loss):
    """The pinball loss averaged over the levels: ``mean(max(q e, (q - 1) e))`` with
    ``e = y - p_q``; its gradient in p_q is ``(1{y < p_q} - q) / (B H Q)`` (at a tie, the
    subgradient ``-q``)."""

    name = "quantile_loss"

    def __init__(self, quantiles: Any = (0.1, 0.5, 0.9), name: str | None = None) -> None:
        super().__init__(name)
        self.quantiles = check_quantiles(quantiles)

    def _value_and_gradient(self, y_true, y_pred):
        q = self.quantiles.astype(y_pred.dtype)
        y, p = _split(y_true, y_pred, q.size)
        e = y[..., None] - p  # (B, H, Q)
        value = np.maximum(q * e, (q - 1) * e).sum(dtype=np.float64) / e.size
        grad = ((e < 0).astype(y_pred.dtype) - q) / e.size
        return float(value), grad.reshape(y_pred.shape)

    def get_config(self):
        return {"quantiles": self.quantiles.tolist(), "name": self.name}


class GaussianNLL(Loss):
    """Mean negative log-likelihood of y under N(mu, sigma^2), sigma = softplus(raw) + 1e-6:
    ``log sigma + (y - mu)^2 / (2 sigma^2) + log(2 pi) / 2``."""

    name = "gaussian_nll"
    width = 2

    def _value_and_gradient(self, y_true, y_pred):
        y, p = _split(y_true, y_pred, 2)
        mu, raw = p[..., 0], p[..., 1]
        sigma = softplus(raw) + _MIN_SCALE
        z = (y - mu) / sigma
        n = y.size
        value = (np.log(sigma) + 0.5 * z * z).sum(dtype=np.float64) / n + 0.5 * math.log(
            2 * math.pi)
        grad = np.empty_like(p)
        grad[..., 0] = -z / sigma / n
        grad[..., 1] = (1.0 - z * z) / sigma * _sigmoid(raw) / n
        return float(value), grad.reshape(y_pred.shape)

    @staticmethod
    def quantiles(params: np.ndarray, levels: np.ndarray) -> np.ndarray:
        """(..., 2) parameters -> (..., Q) quantiles."""
        z = np.array([NormalDist().inv_cdf(float(q)) for q in levels])
        sigma = softplus(params[..., 1]) + _MIN_SCALE
        return params[..., 0, None] + sigma[..., None] * z


class StudentTNLL(Loss):
    """Mean negative log-likelihood of y under a Student-t with location mu, scale
    s = softplus(raw_s) + 1e-6 and nu degrees of freedom:
    ``log s + (nu + 1)/2 log(1 + z^2/nu) - log Gamma((nu+1)/2) + log Gamma(nu/2)
    + log(nu pi)/2`` with z = (y - mu)/s. Heavier tails than the Gaussian: outliers pull
    the location less.

    ``df=None`` (the default): nu is learned, a third output per step,
    ``nu = 2 + softplus(raw_nu)`` (> 2: a finite variance; GluonTS's parametrisation), so
    each forecast has its own tail weight; ``y_pred`` is then (B, H * 3). A number fixes nu
    for every step (``y_pred`` (B, H * 2))."""

    name = "student_t_nll"

    def __init__(self, df: Optional[float] = None, name: str | None = None) -> None:
        super().__init__(name)
        if df is not None and (isinstance(df, bool) or not isinstance(df, (int, float))
                               or not df > 0 or not math.isfinite(df)):
            raise ValueError(f"Received an invalid value for argument `df`: expected None "
                             f"(learned) or a positive number, got {df!r}.")
        self.df = None if df is None else float(df)

    @property
    def width(self) -> int:
        """Parameters per step: 3 with learned degrees of freedom, else 2."""
        return 3 if self.df is None else 2

    def degrees_of_freedom(self, params: np.ndarray) -> np.ndarray:
        """(..., width) parameters -> nu (...)."""
        if self.df is None:
            return 2.0 + softplus(params[..., 2])
        return np.full(params.shape[:-1], self.df)

    def _value_and_gradient(self, y_true, y_pred):
        y, p = _split(y_true, y_pred, self.width)
        mu, raw = p[..., 0], p[..., 1]
        s = softplus(raw) + _MIN_SCALE
        z = (y - mu) / s
        nu = self.degrees_of_freedom(p)
        n = y.size
        log_term = np.log1p(z * z / nu)
        const = -_lgamma((nu + 1) / 2) + _lgamma(nu / 2) + 0.5 * np.log(nu * math.pi)
        value = (np.log(s) + (nu + 1) / 2 * log_term + const).sum(dtype=np.float64) / n
        w = (nu + 1) * z / (nu + z * z)  # d/dz of the log term
        grad = np.empty_like(p)
        grad[..., 0] = -w / s / n
        grad[..., 1] = (1.0 - w * z) / s * _sigmoid(raw) / n
        if self.df is None:
            d_nu = (0.5 * log_term - (nu + 1) * z * z / (2 * nu * (nu + z * z))
                    - 0.5 * _digamma((nu + 1) / 2) + 0.5 * _digamma(nu / 2) + 0.5 / nu)
            grad[..., 2] = d_nu * _sigmoid(p[..., 2]) / n
        return float(value), grad.reshape(y_pred.shape)

    def get_config(self):
        return {"df": self.df, "name": self.name}

    def quantiles(self, params: np.ndarray, levels: np.ndarray) -> np.ndarray:
        """(..., width) parameters -> (..., Q) quantiles."""
        s = softplus(params[..., 1]) + _MIN_SCALE
        if self.df is None:
            z = student_t_quantiles(levels, self.degrees_of_freedom(params))
            return params[..., 0, None] + s[..., None] * z
        z = np.array([student_t_ppf(float(q), self.df) for q in levels])
        return params[..., 0, None] + s[..., None] * z


def _student_t_cdf(x: float, df: float) -> float:
    """P(T <= x) by the regularised incomplete beta function (continued fraction)."""
    t = df / (df + x * x)
    a, b = df / 2, 0.5
    tail = 0.5 * _betainc(a, b, t)
    return 1.0 - tail if x > 0 else tail


def _betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta I_x(a, b) (Lentz's continued fraction)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))
    if x > (a + 1) / (a + b + 2):
        return 1.0 - _betainc(b, a, 1.0 - x)
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    f = d
    for m in range(1, 500):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            f *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return front * f / a


def student_t_ppf(q: float, df: float) -> float:
    """The Student-t quantile function (bisection on the CDF to ~1e-12)."""
    if q == 0.5:
        return 0.0
    lo, hi = -1.0, 1.0
    while _student_t_cdf(lo, df) > q:
        lo *= 2
    while _student_t_cdf(hi, df) < q:
        hi *= 2
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _student_t_cdf(mid, df) < q:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, abs(mid)):
            break
    return 0.5 * (lo + hi)
