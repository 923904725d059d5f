"""Finite-difference gradient checks, float64, of every gradient of fastrnn.ops and
fastrnn.reference: x, h0, c0, kernel, recurrent_kernel and bias.

The loss is linear in the outputs and last states, L = sum(outputs * d_outputs) +
sum(h_last * d_h_last) (+ sum(c_last * d_c_last)), so its gradient is exactly what backward
computes from those upstream gradients.

Truncated BPTT is checked against an explicitly detached forward: the sequence runs in chunks
split at the cut points t = T-k, T-2k, ... > 0, and each chunk starts from the state the full
forward reached there, held as a constant while the parameters move. The derivative of that
loss is, by definition, what truncate=k must return.
"""

from __future__ import annotations

import numpy as np
import pytest

from _cells import (
    MODULES,
    VARIANT_IDS,
    VARIANTS,
    assert_close,
    backward,
    cut_points,
    forward,
    grad_names,
    make_case,
    upstream,
)

EPS = 1e-6  # central differences: truncation error ~EPS^2, rounding ~1e-16 |L| / EPS
RTOL = 1e-6


def chunk_bounds(T: int, truncate) -> list[tuple[int, int]]:
    edges = [0, *cut_points(T, truncate), T]
    return list(zip(edges[:-1], edges[1:]))


def entering_states(mod, case, truncate) -> dict:
    """The state (h, and c for LSTM) entering each chunk, from a forward at the current values."""
    states, last = {}, None
    for s, e in chunk_bounds(case.shape[1], truncate):
        start = case if last is None else case.with_(h0=last["h"], c0=last.get("c"))
        _, last, _ = forward(mod, start.with_(x=case.x[:, s:e]))
        states[e] = last  # the state entering the chunk that starts at e
    return states


def detached_loss(mod, case, d_out, d_states, truncate, entering) -> float:
    """The loss with the state at every cut point replaced by the constant in `entering`."""
    total = 0.0
    for s, e in chunk_bounds(case.shape[1], truncate):
        chunk = case.with_(x=case.x[:, s:e])
        if s > 0:
            chunk = chunk.with_(h0=entering[s]["h"], c0=entering[s].get("c"))
        out, last, _ = forward(mod, chunk)
        total += float(np.sum(out * d_out[:, s:e]))
    return total + sum(float(np.sum(last[k] * d_states[k])) for k in d_states)


def numeric_gradient(loss, a: np.ndarray) -> np.ndarray:
    """d loss / d a by central differences, moving one element of `a` (in place) at a time."""
    g = np.empty_like(a)
    flat = a.reshape(-1)  # a view: writes go into `a`
    for i in range(flat.size):
        keep = flat[i]
        flat[i] = keep + EPS
        up = loss()
        flat[i] = keep - EPS
        down = loss()
        flat[i] = keep
        g.reshape(-1)[i] = (up - down) / (2 * EPS)  # the denominator is a nonzero constant
    return g


def check_gradients(mod, cell, activation, truncate, *, with_optional: bool, seed: int):
    rng = np.random.default_rng(seed)
    opts = dict(h0=with_optional, c0=with_optional, bias=with_optional, mask=with_optional)
    case = make_case(rng, cell, 2, 5, 3, 3, np.float64, activation=activation, **opts)
    d_out, d_states = upstream(rng, case)
    _, _, tape = forward(mod, case)
    analytic = backward(mod, cell, tape, d_out, d_states, truncate)

    # Absent h0/c0/bias are zeros: differentiate at explicit zero arrays.
    B, T, H = case.shape
    zeros = {"h0": np.zeros((B, H)), "c0": np.zeros((B, H)) if cell == "lstm" else None}
    if case.bias is None:
        zeros["bias"] = np.zeros((2, 3 * H) if cell == "gru" else (analytic["bias"].shape[0],))
    case = case.with_(**{k: v for k, v in zeros.items() if getattr(case, k) is None})

    entering = entering_states(mod, case, truncate)  # fixed before any parameter moves
    full_out, _, _ = forward(mod, case)
    chunked = detached_loss(mod, case, d_out, d_states, truncate, entering)
    plain = float(np.sum(full_out * d_out)) + sum(
        float(np.sum(s * d_states[k])) for k, s in forward(mod, case)[1].items()
    )
    assert abs(chunked - plain) <= 1e-12 * max(1.0, abs(plain))  # same loss, only detached

    def loss():
        return detached_loss(mod, case, d_out, d_states, truncate, entering)

    for name in grad_names(cell):
        numeric = numeric_gradient(loss, getattr(case, name))
        assert np.max(np.abs(numeric)) > 1e-4, f"d_{name} vanished: the check would be empty"
        assert_close(analytic[name], numeric, RTOL, f"{mod.__name__} {cell} k={truncate} d_{name}")


@pytest.mark.parametrize("truncate", [None, 1, 2, 3], ids=lambda k: f"k={k}")
@pytest.mark.parametrize("module", list(MODULES), ids=list(MODULES))
@pytest.mark.parametrize(("cell", "activation"), VARIANTS, ids=VARIANT_IDS)
def test_gradients_with_every_optional_input(cell, activation, module, truncate):
    check_gradients(
        MODULES[module], cell, activation, truncate, with_optional=True, seed=11
    )


@pytest.mark.parametrize("truncate", [None, 2], ids=lambda k: f"k={k}")
@pytest.mark.parametrize("module", list(MODULES), ids=list(MODULES))
@pytest.mark.parametrize(("cell", "activation"), VARIANTS, ids=VARIANT_IDS)
def test_gradients_without_optional_inputs(cell, activation, module, truncate):
    check_gradients(
        MODULES[module], cell, activation, truncate, with_optional=False, seed=12
    )


def test_detached_loss_differs_from_full_loss_gradient():
    # The detached reference must really detach: its gradient w.r.t. h0 differs from the full
    # one (otherwise the truncated checks above would accept a backward that ignores truncate).
    mod = MODULES["reference"]
    rng = np.random.default_rng(13)
    case = make_case(rng, "gru", 2, 5, 3, 3, np.float64)
    d_out, d_states = upstream(rng, case)

    def gradient(truncate):
        entering = entering_states(mod, case, truncate)
        return numeric_gradient(
            lambda: detached_loss(mod, case, d_out, d_states, truncate, entering), case.h0
        )

    assert np.max(np.abs(gradient(2) - gradient(None))) > 1e-4
