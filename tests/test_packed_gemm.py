"""The packed recurrent micro-kernel (cpp/packed_gemm.hpp): its product against OpenBLAS at many
shapes (ragged rows, ragged panels, column ranges cut inside a panel, beta) for every kernel set
and both float types, and the three cells with the micro-kernel forced on every recurrent
product (step masks, recurrent dropout masks, truncation, batch and unit thread splits) against
the NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest

import fastrnn
from _cells import (
    VARIANT_IDS,
    VARIANTS,
    assert_close,
    backward,
    forward,
    make_case,
    rtol_for,
    upstream,
)
from _tolerance import rounding_rtol
from fastrnn import _core
from fastrnn import reference as ref

KERNEL_SETS = _core.available_kernel_sets()

# (M, K, N): one row and one column; every row-block tail (M = 1..13 covers 12, 6 and 4 rows a
# block); N below, at and past one panel (8, 16 or 32 columns) and not a multiple of it; primes;
# the few-row path (M <= 3) over several whole panels.
PRODUCT_SHAPES = [
    (1, 1, 1),
    (2, 3, 5),
    (5, 7, 31),
    (6, 17, 32),
    (7, 4, 33),
    (12, 9, 64),
    (13, 11, 65),
    (25, 29, 97),
    (37, 64, 130),
    (64, 131, 256),
    # few rows (1-3: several panels at a time) over enough whole panels for one group (4 panels
    # a row, 2 for 2-3 rows; 8-32 columns a panel), with a remainder and a cut last panel
    (1, 64, 256),
    (1, 13, 300),
    (2, 5, 100),
    (2, 37, 193),
    (3, 64, 260),
    (3, 9, 129),
]


@pytest.fixture
def packed_always():
    _core._set_packed_products("always")
    try:
        yield
    finally:
        _core._set_packed_products("auto")


@pytest.mark.parametrize("kernel_set", KERNEL_SETS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", PRODUCT_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_product_matches_openblas(kernel_set_restored, kernel_set, dtype, shape):
    _core.select_kernel_set(kernel_set)
    M, K, N = shape
    rng = np.random.default_rng(M * 1000 + K * 10 + N)
    a = rng.standard_normal((M, K)).astype(dtype)
    w = rng.standard_normal((K, N)).astype(dtype)
    c = rng.standard_normal((M, N)).astype(dtype)
    tol = rounding_rtol(dtype, terms=K + 1, functions=0)  # K products and c, in any order
    # all columns, and ranges that start and end inside a panel (a unit split's columns)
    for beta, c0, c1 in [(0.0, 0, N), (1.0, 0, N), (0.5, N // 3, N - N // 4), (1.0, N - 1, N)]:
        got = _core._packed_product(a, w, c, beta, c0, c1)
        want = _core._packed_product(a, w, c, beta, c0, c1, blas=True)
        assert got.dtype == dtype
        scale = np.abs(a).max() * np.abs(w).max() * K + np.abs(c).max()
        np.testing.assert_allclose(got, want, rtol=0, atol=tol * scale)
        # columns outside [c0, c1) untouched
        np.testing.assert_array_equal(got[:, :c0], c[:, :c0])
        np.testing.assert_array_equal(got[:, c1:], c[:, c1:])


def test_beta_zero_ignores_nan_in_c():
    """As BLAS: with beta = 0, C is written, not read (a NaN there must not come through)."""
    a = np.ones((3, 4), np.float32)
    w = np.ones((4, 40), np.float32)
    c = np.full((3, 40), np.nan, np.float32)
    np.testing.assert_array_equal(_core._packed_product(a, w, c, 0.0, 0, 40), np.full((3, 40), 4))
    got = _core._packed_product(a, w, c, 0.0, 5, 37)
    np.testing.assert_array_equal(got[:, 5:37], np.full((3, 32), 4))


@pytest.mark.parametrize("c0,c1", [(-1, 3), (4, 3), (0, 41)])
def test_product_rejects_bad_column_range(c0, c1):
    a, w, c = np.ones((2, 3)), np.ones((3, 40)), np.ones((2, 40))
    with pytest.raises(ValueError, match="c0"):
        _core._packed_product(a, w, c, 0.0, c0, c1)


def test_product_rejects_bad_repeat():
    a, w, c = np.ones((2, 3)), np.ones((3, 4)), np.ones((2, 4))
    for repeat in (0, 10**9):
        with pytest.raises(ValueError, match="repeat"):
            _core._packed_product(a, w, c, repeat=repeat)


def test_set_packed_products_rejects_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        _core._set_packed_products("sometimes")


# (B, T, I, H): one thread's batch rows in blocks with a tail, panels with a ragged edge (H = 37:
# G = 148 for LSTM), and with two threads a unit split (8 x 464: the units cut inside panels).
CELL_SHAPES = [(13, 6, 5, 37), (4, 5, 3, 16), (8, 4, 8, 464)]


@pytest.mark.parametrize("kernel_set", KERNEL_SETS)
@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("shape", CELL_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("threads", [1, 2])
def test_cells_with_packed_products_match_reference(
    kernel_set_restored, packed_always, kernel_set, variant, shape, threads
):
    _core.select_kernel_set(kernel_set)
    cell, activation = variant
    rng = np.random.default_rng(sum(shape) + threads)
    case = make_case(rng, cell, *shape, np.float64, activation=activation, mask=threads == 1)
    B, T = shape[:2]
    steps = rng.random((B, T)) > 0.3
    steps[0] = True  # one row unmasked, one all masked
    steps[-1] = False
    if threads == 1:  # (a step mask keeps the batch split; without one, wide layers split units)
        case = case.with_(step_mask=steps)
    d_out, d_states = upstream(rng, case)
    before = fastrnn.get_num_threads()
    fastrnn.set_num_threads(threads)
    try:
        out, states, tape = forward(fastrnn.ops, case)
        grads = backward(fastrnn.ops, cell, tape, d_out, d_states, truncate=4)
    finally:
        fastrnn.set_num_threads(before)
    r_out, r_states, r_tape = forward(ref, case)
    r_grads = backward(ref, cell, r_tape, d_out, d_states, truncate=4)
    rtol = rtol_for(np.float64, shape)
    assert_close(out, r_out, rtol, "outputs")
    for name in states:
        assert_close(states[name], r_states[name], rtol, f"state {name}")
    for name, g in grads.items():
        assert_close(g, r_grads[name], rtol, f"d_{name}")


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_packed_float32_matches_openblas_path(variant):
    """float32 with the micro-kernel on every product and with none: the same up to rounding."""
    cell, activation = variant
    rng = np.random.default_rng(3)
    case = make_case(rng, cell, 24, 10, 7, 70, np.float32, activation=activation)
    d_out, d_states = upstream(rng, case)
    runs = {}
    for mode in ("never", "always"):
        _core._set_packed_products(mode)
        try:
            out, _, tape = forward(fastrnn.ops, case)
            runs[mode] = (out, backward(fastrnn.ops, cell, tape, d_out, d_states))
        finally:
            _core._set_packed_products("auto")
    rtol = rtol_for(np.float32, (24, 10, 7, 70))
    assert_close(runs["always"][0], runs["never"][0], rtol, "outputs")
    for name, g in runs["always"][1].items():
        assert_close(g, runs["never"][1][name], rtol, f"d_{name}")
