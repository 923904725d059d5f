"""How far apart two correct evaluations of the same floating-point computation can be.

Results are compared across thread counts, kernel sets (generic / AVX2 / AVX-512), code paths
(training forward vs inference, packed vs BLAS products) and libraries (NumPy, PyTorch,
TF-Keras). Each evaluation sums its products in its own order (OpenBLAS picks its kernels and
blocking by shape and CPU, threads split sums differently, FMA or not), so none of them is
bit-exact and none is "the right one": each is within the standard forward-error bound of the
exact result (Higham, *Accuracy and Stability of Numerical Algorithms*, sec. 3.1): a sum of
``n`` products differs from the exact one by at most ``gamma_n = n u / (1 - n u)`` times the
sum of the products' magnitudes, ``u`` the unit roundoff (``eps / 2``). Two evaluations are
therefore at most ``2 gamma_n`` apart, relative to that magnitude.

A recurrent computation chains ``steps`` such stages (time steps; a backward pass runs them a
second time). In these tests the recurrent weights are scaled below 1 and the activations are
1-Lipschitz, so an error made at one step is carried, not amplified, by the next: the bound
grows linearly with the steps. The elementwise functions (tanh, sigmoid, exp) are vectorised
approximations whose last bits differ between kernel sets: ``functions`` ulps per stage.

The bounds are worst cases, not what one CPU happens to round to: typical differences are
smaller by about the square root of the terms, and a real defect (a wrong gate, a missed step,
a transposed weight) is larger by orders of magnitude.
"""

from __future__ import annotations

import numpy as np


def unit_roundoff(dtype) -> float:
    return float(np.finfo(np.dtype(dtype)).eps) / 2.0


def gamma(n: int, dtype) -> float:
    """Higham's gamma_n: the relative error bound of a sum of n products in `dtype`."""
    nu = n * unit_roundoff(dtype)
    assert nu < 0.5, f"a sum of {n} terms is beyond any useful {np.dtype(dtype)} bound"
    return nu / (1.0 - nu)


def rounding_rtol(dtype, *, terms: int, steps: int = 1, reduction: int = 0,
                  functions: int = 8) -> float:
    """The largest relative difference (relative to the magnitude of the compared values)
    between two correct evaluations of a computation in `dtype` made of `steps` chained
    stages, each a sum of `terms` products followed by elementwise functions accurate to
    `functions` ulps, then one reduction of `reduction` terms (e.g. a weight gradient summed
    over ``B * T`` rows)."""
    u = unit_roundoff(dtype)
    per_stage = gamma(terms, dtype) + functions * u
    return 2.0 * (steps * per_stage + (gamma(reduction, dtype) if reduction else 0.0))


def recurrent_rtol(dtype, B: int, T: int, I: int, H: int, *, backward: bool = False) -> float:
    """`rounding_rtol` of a recurrent layer over (B, T, I) inputs with H units: each step's
    pre-activations sum I + H products and a bias; a backward pass runs the T steps again and
    sums the weight gradients over B * T rows."""
    return rounding_rtol(dtype, terms=I + H + 1, steps=2 * T if backward else T,
                         reduction=B * T if backward else 0)


def assert_within(actual, expected, rtol: float, *, scale: float | None = None,
                  what: str = "") -> None:
    """|actual - expected| <= rtol * scale for every element. The bound of `rounding_rtol` is
    relative to the sum of the magnitudes of the terms; for the random-sign terms of these
    tests that sum is about sqrt(terms) times the values, while the typical difference is
    also about sqrt(terms) below the worst case, so `scale` defaults to the largest |expected|
    (at least 1, the size of the tests' inputs). A NaN on either side counts as a
    difference."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    if expected.size == 0:
        return
    if scale is None:
        scale = max(float(np.max(np.abs(expected))), 1.0)
    diff = np.abs(actual - expected)
    bad = ~(diff <= rtol * scale)
    assert not bad.any(), (
        f"{what}: {int(bad.sum())} of {bad.size} elements differ by more than {rtol:.3g} x "
        f"{scale:.3g} (largest difference {float(np.nanmax(diff)):.3g})"
    )
