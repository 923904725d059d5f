"""The probabilistic losses (gradients by float64 finite differences), the Student-t quantile
function, and the quantile metrics against plain-NumPy definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fastrnn.forecasting.losses import (
    GaussianNLL,
    QuantileLoss,
    StudentTNLL,
    _digamma,
    _lgamma,
    student_t_ppf,
    student_t_quantiles,
)
from fastrnn.timeseries.metrics import (
    check_quantiles,
    coverage,
    crps_from_quantiles,
    pinball_loss,
)


def _finite_differences(loss, y, p, eps=1e-6):
    grad = np.zeros_like(p)
    for idx in np.ndindex(p.shape):
        up, down = p.copy(), p.copy()
        up[idx] += eps
        down[idx] -= eps
        grad[idx] = (loss(y, up) - loss(y, down)) / (2 * eps)
    return grad


@pytest.mark.parametrize("loss", [QuantileLoss([0.1, 0.5, 0.9]), QuantileLoss([0.3]),
                                  GaussianNLL(), StudentTNLL(3.0), StudentTNLL(30.0),
                                  StudentTNLL()],
                         ids=["quantile3", "quantile1", "gaussian", "t3", "t30", "t_learned"])
def test_gradient_matches_finite_differences(loss):
    rng = np.random.default_rng(7)
    B, H = 5, 3
    width = len(loss.quantiles) if isinstance(loss, QuantileLoss) else loss.width
    y = rng.normal(size=(B, H))
    p = rng.normal(size=(B, H * width))
    if isinstance(loss, QuantileLoss):
        # keep every prediction at least 1e-3 from its target: the pinball loss has a kink
        # at y == p (piecewise linear), where finite differences are meaningless
        rep = np.repeat(y, width, axis=1)
        close = np.abs(p - rep) < 1e-3
        p[close] += 0.01
    value, grad = loss.value_and_gradient(y, p)
    assert grad.shape == p.shape and grad.dtype == np.float64
    numeric = _finite_differences(loss, y, p)
    # central differences of a smooth float64 function: error ~ eps^2 * f''' + 1e-16 / eps
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)
    assert value == pytest.approx(loss(y, p), rel=1e-12)


def test_quantile_loss_value_is_the_pinball_definition():
    y = np.array([[1.0, 2.0]])
    p = np.array([[0.0, 1.0, 2.0, 3.0, 3.0, 3.0]])  # step 1: 0,1,2; step 2: 3,3,3
    q = [0.1, 0.5, 0.9]
    expected = np.mean([0.1 * 1, 0.0, (0.9 - 1) * -1, (0.1 - 1) * -1, 0.5, (0.9 - 1) * -1])
    assert QuantileLoss(q)(y, p) == pytest.approx(expected)
    # targets repeated per output (the layout Model.fit uses) give the same value
    assert QuantileLoss(q)(np.repeat(y, 3, axis=1), p) == pytest.approx(expected)
    assert pinball_loss(y, p.reshape(1, 2, 3), q) == pytest.approx(expected)


def test_gaussian_nll_is_the_normal_log_density():
    y = np.array([[0.3, -1.2]])
    p = np.array([[0.1, 0.4, -1.0, -0.2]])
    sigma = np.log1p(np.exp([0.4, -0.2])) + 1e-6
    mu = np.array([0.1, -1.0])
    density = np.exp(-0.5 * ((y[0] - mu) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
    assert GaussianNLL()(y, p) == pytest.approx(-np.mean(np.log(density)), rel=1e-10)


def test_student_t_nll_against_scipy():
    stats = pytest.importorskip("scipy.stats")
    y = np.array([[0.3, -1.2, 4.0]])
    p = np.array([[0.1, 0.4, -1.0, -0.2, 0.0, 1.0]])
    s = np.log1p(np.exp(p[0, 1::2])) + 1e-6
    expected = -np.mean(stats.t.logpdf(y[0], 4.0, loc=p[0, ::2], scale=s))
    assert StudentTNLL(4.0)(y, p) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("df", [1.0, 2.5, 5.0, 40.0])
@pytest.mark.parametrize("q", [0.01, 0.1, 0.5, 0.8, 0.975])
def test_student_t_ppf(df, q):
    if df == 1.0:  # the Cauchy distribution: a closed form
        expected = math.tan(math.pi * (q - 0.5))
    else:
        stats = pytest.importorskip("scipy.stats")
        expected = float(stats.t.ppf(q, df))
    assert student_t_ppf(q, df) == pytest.approx(expected, rel=1e-8, abs=1e-10)


def test_loss_shape_errors_and_bad_arguments():
    with pytest.raises(ValueError, match="horizon"):
        QuantileLoss([0.1, 0.9])(np.zeros((2, 3)), np.zeros((2, 5)))
    with pytest.raises(ValueError, match="`df`"):
        StudentTNLL(0)


@pytest.mark.parametrize("bad", [[0.5, 0.1], [0.0, 0.5], [0.5, 1.0], [0.2, 0.2], [], "x"])
def test_quantiles_must_be_increasing_inside_0_1(bad):
    with pytest.raises(ValueError, match="`quantiles`"):
        check_quantiles(bad)


def test_coverage_and_crps():
    y = np.array([0.0, 1.0, 2.0, 3.0])
    assert coverage(y, y - 0.5, y + 0.5) == 1.0
    assert coverage(y, [1, 1, 1, 1], [2, 2, 2, 2]) == 0.5
    # CRPS from quantiles of a point mass at the truth is 0; it grows with the error
    levels = np.linspace(0.05, 0.95, 19)
    exact = np.repeat(y[:, None], 19, axis=1)
    assert crps_from_quantiles(y, exact, levels) == 0.0
    # for a normal forecast, 2 * mean pinball over dense levels approaches the closed form
    from statistics import NormalDist

    levels = (np.arange(999) + 0.5) / 999
    z = np.array([NormalDist().inv_cdf(q) for q in levels])
    crps = crps_from_quantiles(np.zeros(1), z[None, :], levels)
    closed = 2 * 0.3989422804014327 - 1 / math.sqrt(math.pi)  # N(0,1) at y = 0
    assert crps == pytest.approx(closed, rel=1e-3)


def test_vectorised_lgamma_and_digamma():
    x = np.array([1e-3, 0.3, 1.0, 1.5, 2.0, 2.7, 7.5, 30.0, 1e4])
    # Stirling's series truncated at x^-9 after a shift to x >= 8: 1e-13; the shift's sum
    # of 8 logs (up to ~12) rounds at ~1e-14 absolute
    np.testing.assert_allclose(_lgamma(x), [math.lgamma(v) for v in x], rtol=1e-12,
                               atol=1e-12)
    # digamma = d/dx lgamma: central differences (step 1e-5: truncation ~1e-11 psi'' and
    # rounding ~1e-16 |lgamma| / 1e-5, below 1e-8 for x <= 30)
    eps = 1e-5
    numeric = [(math.lgamma(v + eps) - math.lgamma(v - eps)) / (2 * eps) for v in x[1:-1]]
    np.testing.assert_allclose(_digamma(x[1:-1]), numeric, rtol=1e-8, atol=1e-8)
    big = 1e4  # the asymptotic series' first terms are exact to 1e-17 there
    assert _digamma(np.array([big]))[0] == pytest.approx(
        math.log(big) - 0.5 / big - 1 / (12 * big * big), rel=1e-14)
    assert _digamma(np.array([1.0]))[0] == pytest.approx(-0.5772156649015329, rel=1e-13)


def test_learned_degrees_of_freedom_nll_against_scipy():
    stats = pytest.importorskip("scipy.stats")
    y = np.array([[0.3, -1.2, 4.0]])
    p = np.array([[0.1, 0.4, -3.0, -1.0, -0.2, 0.0, 0.0, 1.0, 5.0]])  # (mu, raw s, raw nu)
    params = p.reshape(3, 3)
    s = np.log1p(np.exp(params[:, 1])) + 1e-6
    nu = 2 + np.log1p(np.exp(params[:, 2]))
    expected = -np.mean(stats.t.logpdf(y[0], nu, loc=params[:, 0], scale=s))
    loss = StudentTNLL()
    assert loss.width == 3 and loss(y, p) == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(loss.degrees_of_freedom(params), nu)
    with pytest.raises(ValueError, match=r"horizon \* 3"):
        loss(y, p[:, :6])


def test_student_t_quantiles_for_any_degrees_of_freedom():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    df = np.r_[2.0, 2.0001, 3.0, 2 + np.exp(rng.uniform(-6, 9, 200)), 1e8]
    levels = [0.01, 0.1, 0.5, 0.9]
    got = student_t_quantiles(levels, df)
    assert got.shape == (df.size, 4)
    for i in rng.choice(df.size, 12, replace=False).tolist() + [0, 1, 2, df.size - 1]:
        exact = stats.t.ppf(levels, df[i])
        # 4-node interpolation in 1/df on 129 nodes: error ~ h^4 times the fourth
        # derivative, below 1e-8 relative (the table's own bisection: 1e-12)
        np.testing.assert_allclose(got[i], exact, rtol=1e-8, atol=1e-10)
    params = np.stack([np.zeros(3), np.zeros(3), np.array([-30.0, 0.0, 30.0])], axis=1)
    q = StudentTNLL().quantiles(params, np.array([0.1, 0.9]))
    assert q[0, 1] > q[1, 1] > q[2, 1] > 0  # heavier tails (smaller nu): wider intervals
