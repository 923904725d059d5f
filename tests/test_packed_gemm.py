"""The packed recurrent micro-kernel (cpp/packed_gemm.hpp): its product against OpenBLAS at many
shapes (ragged rows, ragged panels, column ranges cut inside a panel, beta) for every kernel set
and both float types, and the three cells with the micro-kernel forced on every recurrent
product (step masks, recurrent dropout masks, truncation, batch and unit thread splits) against
the NumPy reference; and the fused LSTM step (the gate math as the product's epilogue), forced
on, against the reference."""

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
# block); N below, at and past one panel (8, 16 or 32 columns) and not a multiple of it; primes.
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
]


@pytest.fixture
def kernel_set_restored():
    before = _core.kernel_set()
    yield
    _core.select_kernel_set(before)


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


# ------------------------------------------------------------------- the fused LSTM step
# (packed_gemm.hpp, fused_gates: the gate math as the packed product's epilogue), forced on,
# against the NumPy reference: every kernel set, float32 and float64, awkward batch sizes (1,
# primes, every row-block tail) and hidden sizes (1, one packet and a few units past it, 128
# and 130), h0/c0 given or zeros, recurrent dropout masks, step masks, one and two threads
# (batch and unit splits), with and without a tape.
@pytest.fixture
def fused(request):
    _core._set_fused_steps(request.param)
    try:
        yield request.param
    finally:
        _core._set_fused_steps("auto")


# (B, T, I, H)
FUSED_SHAPES = [
    (1, 3, 2, 1),
    (2, 4, 3, 5),
    (7, 5, 4, 16),
    (13, 4, 3, 20),
    (5, 3, 6, 33),
    (17, 3, 5, 128),
    (11, 2, 7, 130),
]


def check_fused(case, rng, tol, threads=1):
    d_out, d_states = upstream(rng, case)
    before = fastrnn.get_num_threads()
    fastrnn.set_num_threads(threads)
    try:
        out, states, tape = forward(fastrnn.ops, case)
        # backward reads the fused forward's tape (gates and cells)
        grads = backward(fastrnn.ops, "lstm", tape, d_out, d_states)
    finally:
        fastrnn.set_num_threads(before)
    r_out, r_states, r_tape = forward(ref, case)
    assert_close(out, r_out, tol, "outputs")
    for name in states:
        assert_close(states[name], r_states[name], tol, f"state {name}")
    r_grads = backward(ref, "lstm", r_tape, d_out, d_states)
    for name, g in grads.items():
        assert_close(g, r_grads[name], 100 * tol, f"d_{name}")


@pytest.mark.parametrize("fused", ["always"], indirect=True)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("kernel_set", KERNEL_SETS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("shape", FUSED_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_fused_lstm_matches_reference(
    kernel_set_restored, fused, threads, kernel_set, dtype, shape
):
    _core.select_kernel_set(kernel_set)
    rng = np.random.default_rng(sum(shape) + threads)
    first = shape[0] % 2 == 0  # half the shapes with h0, c0 and a recurrent dropout mask
    case = make_case(rng, "lstm", *shape, dtype, h0=first, c0=first, mask=first)
    check_fused(case, rng, 1e-10 if dtype == np.float64 else 2e-5, threads)


@pytest.mark.parametrize("fused", ["always"], indirect=True)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("kernel_set", KERNEL_SETS)
@pytest.mark.parametrize("shape", [(13, 6, 5, 37), (3, 5, 2, 16)], ids=["13x6x5x37", "3x5x2x16"])
def test_fused_lstm_step_mask(kernel_set_restored, fused, threads, kernel_set, shape):
    _core.select_kernel_set(kernel_set)
    rng = np.random.default_rng(7)
    B, T = shape[:2]
    steps = rng.random((B, T)) > 0.3
    steps[0] = True  # one row unmasked, one all masked
    steps[-1] = False
    case = make_case(rng, "lstm", *shape, np.float64, mask=True).with_(step_mask=steps)
    check_fused(case, rng, 1e-10, threads)


@pytest.mark.parametrize("fused", ["always"], indirect=True)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("kernel_set", KERNEL_SETS)
def test_fused_lstm_unit_split(kernel_set_restored, fused, threads, kernel_set):
    """H = 464 with two threads splits the units (blocks of 16 units, the last cut)."""
    _core.select_kernel_set(kernel_set)
    rng = np.random.default_rng(5)
    case = make_case(rng, "lstm", 8, 4, 8, 464, np.float64)
    check_fused(case, rng, 1e-10, threads)


@pytest.mark.parametrize("fused", ["always"], indirect=True)
@pytest.mark.parametrize("kernel_set", KERNEL_SETS)
@pytest.mark.parametrize("masked", [False, True])
def test_fused_lstm_without_tape(kernel_set_restored, fused, kernel_set, masked):
    """Inference: gates and cells are one step's scratch, c updated in place."""
    _core.select_kernel_set(kernel_set)
    rng = np.random.default_rng(11)
    case = make_case(rng, "lstm", 9, 7, 4, 21, np.float64)
    steps = rng.random((9, 7)) > 0.4 if masked else None
    got = fastrnn.ops.lstm_forward(
        case.x,
        case.h0,
        case.c0,
        case.kernel,
        case.recurrent_kernel,
        case.bias,
        keep_tape=False,
        mask=steps,
    )
    want = ref.lstm_forward(
        case.x, case.h0, case.c0, case.kernel, case.recurrent_kernel, case.bias, mask=steps
    )
    for g, w, name in zip(got[:3], want[:3], ["outputs", "h", "c"]):
        assert_close(g, w, rtol_for(np.float64, (9, 7, 4, 21)), name)


@pytest.mark.parametrize("fused", ["always", "never"], indirect=True)
def test_fused_float32_matches_unfused(fused):
    """float32 LSTM with the fused step and without: the same up to rounding."""
    rng = np.random.default_rng(3)
    case = make_case(rng, "lstm", 24, 10, 7, 70, np.float32)
    out, _, _ = forward(fastrnn.ops, case)
    _core._set_fused_steps("never" if fused == "always" else "always")
    other, _, _ = forward(fastrnn.ops, case)
    assert_close(out, other, 1e-5, "outputs")


def test_set_fused_steps_rejects_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        _core._set_fused_steps("sometimes")
