"""Shared helpers of the ops tests: random cases for every cell, and calls that treat the three
cells alike (fastrnn.ops and fastrnn.reference have the same signatures).

A case's weights are random and different for every unit and every gate (never constant), so
a swapped gate, a transposed kernel or a wrong bias row changes the results.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import numpy as np

from _tolerance import recurrent_rtol
from fastrnn import ops
from fastrnn import reference as ref

GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}

# (cell, activation): every kernel the C++ core has. Activation is None for LSTM and GRU.
VARIANTS = [
    ("simple_rnn", "tanh"),
    ("simple_rnn", "relu"),
    ("simple_rnn", "linear"),
    ("lstm", None),
    ("gru", None),
]
VARIANT_IDS = ["rnn-tanh", "rnn-relu", "rnn-linear", "lstm", "gru"]

MODULES = {"ops": ops, "reference": ref}


@dataclass
class Case:
    """The inputs of one forward call. Optional arrays are None when absent."""

    cell: str
    activation: Optional[str]
    x: np.ndarray
    h0: Optional[np.ndarray]
    c0: Optional[np.ndarray]
    kernel: np.ndarray
    recurrent_kernel: np.ndarray
    bias: Optional[np.ndarray]
    mask: Optional[np.ndarray]
    step_mask: Optional[np.ndarray] = None  # (B, T) bool: Keras masking (the ops' `mask`)

    @property
    def shape(self) -> tuple:
        B, T, _ = self.x.shape
        return B, T, self.recurrent_kernel.shape[0]

    @property
    def dtype(self) -> np.dtype:
        return self.x.dtype

    def with_(self, **changes) -> Case:
        return replace(self, **changes)


def bias_shape(cell: str, H: int) -> tuple:
    return (2, 3 * H) if cell == "gru" else (GATES[cell] * H,)


def make_case(
    rng: np.random.Generator,
    cell: str,
    B: int,
    T: int,
    I: int,  # noqa: E741 (the dimension letter used everywhere)
    H: int,
    dtype=np.float64,
    *,
    activation: Optional[str] = None,
    h0: bool = True,
    c0: bool = True,
    bias: bool = True,
    mask: bool = False,
) -> Case:
    G = GATES[cell] * H
    if cell == "simple_rnn" and activation is None:
        activation = "tanh"

    def normal(shape, scale=1.0):
        return (scale * rng.standard_normal(shape)).astype(dtype)

    return Case(
        cell=cell,
        activation=activation if cell == "simple_rnn" else None,
        x=normal((B, T, I)),
        h0=normal((B, H), 0.5) if h0 else None,
        c0=normal((B, H)) if (c0 and cell == "lstm") else None,
        # Scaled like Glorot so that sequences neither saturate nor explode, but random.
        kernel=normal((I, G), 1.0 / np.sqrt(I)),
        recurrent_kernel=normal((H, G), 0.9 / np.sqrt(H)),
        bias=normal(bias_shape(cell, H), 0.5) if bias else None,
        # A recurrent dropout mask as Keras makes one: kept units scaled by 1 / keep.
        mask=((rng.uniform(size=(B, H)) < 0.75) / 0.75).astype(dtype) if mask else None,
    )


def forward(mod, case: Case):
    """Runs mod.<cell>_forward; returns (outputs, states, tape), states = {"h": .., ["c": ..]}."""
    kw = {"recurrent_mask": case.mask}
    if case.step_mask is not None:
        kw["mask"] = case.step_mask
    if case.cell == "lstm":
        out, h, c, tape = mod.lstm_forward(
            case.x, case.h0, case.c0, case.kernel, case.recurrent_kernel, case.bias, **kw
        )
        return out, {"h": h, "c": c}, tape
    if case.cell == "simple_rnn":
        out, h, tape = mod.simple_rnn_forward(
            case.x, case.h0, case.kernel, case.recurrent_kernel, case.bias, case.activation, **kw
        )
    else:
        out, h, tape = mod.gru_forward(
            case.x, case.h0, case.kernel, case.recurrent_kernel, case.bias, **kw
        )
    return out, {"h": h}, tape


def backward(mod, cell: str, tape, d_outputs, d_states: Optional[dict] = None, truncate=None):
    """Runs mod.<cell>_backward with d_states = {"h": d_h_last, ["c": d_c_last]} (or None)."""
    d_states = d_states or {}
    if cell == "lstm":
        return mod.lstm_backward(
            tape, d_outputs, d_states.get("h"), d_states.get("c"), truncate=truncate
        )
    return getattr(mod, f"{cell}_backward")(tape, d_outputs, d_states.get("h"), truncate=truncate)


def upstream(rng: np.random.Generator, case: Case) -> tuple[np.ndarray, dict]:
    """Random weights of a linear loss: d_outputs (B, T, H) and d_states (B, H) each."""
    B, T, H = case.shape
    d_out = rng.standard_normal((B, T, H)).astype(case.dtype)
    d_states = {"h": rng.standard_normal((B, H)).astype(case.dtype)}
    if case.cell == "lstm":
        d_states["c"] = rng.standard_normal((B, H)).astype(case.dtype)
    return d_out, d_states


def grad_names(cell: str) -> list[str]:
    names = ["x", "h0", "kernel", "recurrent_kernel", "bias"]
    return names[:2] + ["c0"] + names[2:] if cell == "lstm" else names


def cut_points(T: int, truncate: Optional[int]) -> list[int]:
    """The steps t whose entering state is a constant under truncate=k: T-k, T-2k, ... > 0."""
    if truncate is None:
        return []
    return sorted(t for t in range(T - truncate, 0, -truncate))


def max_rel_error(actual, expected) -> float:
    """max |actual - expected| relative to the scale of expected (max |expected|)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    if expected.size == 0:
        return 0.0
    scale = max(float(np.max(np.abs(expected))), np.finfo(np.float64).tiny)
    return float(np.max(np.abs(actual.astype(np.float64) - expected))) / scale


def assert_close(actual, expected, rtol: float, what: str = "", floor=None) -> None:
    """|actual - expected| <= rtol * (|expected| + scale), element by element.

    scale is max |expected|, but at least `floor` (default 1, the size of these tests' inputs,
    weights and upstream gradients): a value that has nearly vanished (say 1e-5, a sum of
    terms of size 1 that cancel) carries the rounding error of those terms, so its error is
    small relative to them, not relative to itself (rtol is the bound of _tolerance, which is
    relative to the magnitude of the terms summed).
    """
    if floor is None:
        floor = 1.0
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    if expected.size == 0:
        return
    e = expected.astype(np.float64)
    a = actual.astype(np.float64)
    scale = max(float(np.max(np.abs(e))), floor)
    # written as "not within", so that a NaN (an element a kernel never wrote, under
    # FASTRNN_DEBUG_FILL_NAN=1) counts as a difference; NaN > tol would be False
    bad = ~(np.abs(a - e) <= rtol * (np.abs(e) + scale)) & ~(np.isnan(a) & np.isnan(e))
    assert not bad.any(), (
        f"{what}: {int(bad.sum())} of {bad.size} elements differ; max relative error "
        f"{max_rel_error(a, e):.3g} > {rtol:g} (scale {scale:.3g})"
    )


def rtol_for(dtype, shape: tuple) -> float:
    """The tolerance of a kernel against the reference (another order of the same sums, on
    any kernel set) for a case of `shape` (B, T, I, H), forward and backward: see
    _tolerance.recurrent_rtol."""
    return recurrent_rtol(dtype, *shape, backward=True)
