"""The fused LSTM step (cpp/packed_gemm.hpp, fused_gates: the gate math as the packed recurrent
product's epilogue), forced on, against the NumPy reference: every kernel set, float32 and
float64, awkward batch sizes (1, primes, every row-block tail) and hidden sizes (1, one packet
and a few units past it, the benchmarks' 128 and 130), h0/c0 given or zeros, recurrent dropout
masks, step masks, one and two threads (batch and unit splits), with and without a tape."""

from __future__ import annotations

import numpy as np
import pytest

import fastrnn
from _cells import assert_close, backward, forward, make_case, upstream
from fastrnn import _core
from fastrnn import reference as ref

KERNEL_SETS = _core.available_kernel_sets()


@pytest.fixture
def kernel_set_restored():
    before = _core.kernel_set()
    yield
    _core.select_kernel_set(before)


@pytest.fixture
def fused(request):
    _core._set_fused_steps(request.param)
    try:
        yield request.param
    finally:
        _core._set_fused_steps("auto")


@pytest.fixture
def threads(request):
    before = fastrnn.get_num_threads()
    fastrnn.set_num_threads(request.param)
    try:
        yield request.param
    finally:
        fastrnn.set_num_threads(before)


# (B, T, I, H)
SHAPES = [
    (1, 3, 2, 1),
    (2, 4, 3, 5),
    (7, 5, 4, 16),
    (13, 4, 3, 20),
    (5, 3, 6, 33),
    (17, 3, 5, 128),
    (11, 2, 7, 130),
]


def check(case, rng, tol):
    d_out, d_states = upstream(rng, case)
    out, states, tape = forward(fastrnn.ops, case)
    r_out, r_states, r_tape = forward(ref, case)
    assert_close(out, r_out, tol, "outputs")
    for name in states:
        assert_close(states[name], r_states[name], tol, f"state {name}")
    # backward reads the fused forward's tape (gates and cells)
    grads = backward(fastrnn.ops, "lstm", tape, d_out, d_states)
    r_grads = backward(ref, "lstm", r_tape, d_out, d_states)
    for name, g in grads.items():
        assert_close(g, r_grads[name], 100 * tol, f"d_{name}")


@pytest.mark.parametrize("fused", ["always"], indirect=True)
@pytest.mark.parametrize("threads", [1, 2], indirect=True)
@pytest.mark.parametrize("kernel_set", KERNEL_SETS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_fused_lstm_matches_reference(kernel_set_restored, fused, threads, kernel_set, dtype,
                                      shape):
    _core.select_kernel_set(kernel_set)
    rng = np.random.default_rng(sum(shape) + threads)
    first = shape[0] % 2 == 0  # half the shapes with h0, c0 and a recurrent dropout mask
    case = make_case(rng, "lstm", *shape, dtype, h0=first, c0=first, mask=first)
    check(case, rng, 1e-10 if dtype == np.float64 else 2e-5)


@pytest.mark.parametrize("fused", ["always"], indirect=True)
@pytest.mark.parametrize("threads", [1, 2], indirect=True)
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
    check(case, rng, 1e-10)


@pytest.mark.parametrize("fused", ["always"], indirect=True)
@pytest.mark.parametrize("threads", [1, 2], indirect=True)
@pytest.mark.parametrize("kernel_set", KERNEL_SETS)
def test_fused_lstm_unit_split(kernel_set_restored, fused, threads, kernel_set):
    """H = 464 with two threads splits the units (blocks of 16 units, the last cut)."""
    _core.select_kernel_set(kernel_set)
    rng = np.random.default_rng(5)
    case = make_case(rng, "lstm", 8, 4, 8, 464, np.float64)
    check(case, rng, 1e-10)


@pytest.mark.parametrize("fused", ["always"], indirect=True)
@pytest.mark.parametrize("kernel_set", KERNEL_SETS)
@pytest.mark.parametrize("masked", [False, True])
def test_fused_lstm_without_tape(kernel_set_restored, fused, kernel_set, masked):
    """Inference: gates and cells are one step's scratch, c updated in place."""
    _core.select_kernel_set(kernel_set)
    rng = np.random.default_rng(11)
    case = make_case(rng, "lstm", 9, 7, 4, 21, np.float64)
    steps = rng.random((9, 7)) > 0.4 if masked else None
    got = fastrnn.ops.lstm_forward(case.x, case.h0, case.c0, case.kernel, case.recurrent_kernel,
                                   case.bias, keep_tape=False, mask=steps)
    want = ref.lstm_forward(case.x, case.h0, case.c0, case.kernel, case.recurrent_kernel,
                            case.bias, mask=steps)
    for g, w, name in zip(got[:3], want[:3], ["outputs", "h", "c"]):
        assert_close(g, w, 1e-10, name)


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
