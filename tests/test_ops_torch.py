"""Parity with PyTorch: torch.nn.RNN / LSTM / GRU (batch_first) with weights mapped from the
Keras layout give the same outputs, last states and gradients as fastrnn.ops (and as
fastrnn.reference), in float64 and float32, with full and truncated BPTT.

Weight mapping: PyTorch's weight_ih is kernel.T and weight_hh is recurrent_kernel.T. The LSTM
gate order i, f, g, o is the same in both. PyTorch orders GRU gates r, z, n where Keras has
z, r, h, so the GRU blocks are permuted. PyTorch adds two biases (b_ih + b_hh): the Keras
bias goes into b_ih (b_hh = 0) for RNN and LSTM; for GRU, b_ih is the input bias row and b_hh
the recurrent bias row, which is the one multiplied by r, as in Keras reset_after=True.
"""

from __future__ import annotations

import numpy as np
import pytest

from _cells import (
    GATES,
    MODULES,
    VARIANT_IDS,
    VARIANTS,
    assert_close,
    backward,
    cut_points,
    forward,
    make_case,
    rtol_for,
    upstream,
)

torch = pytest.importorskip("torch")

TORCH_VARIANTS = [v for v in VARIANTS if v[1] != "linear"]  # torch.nn.RNN: tanh or relu only
TORCH_IDS = [i for v, i in zip(VARIANTS, VARIANT_IDS) if v[1] != "linear"]
DTYPES = {"f64": (np.float64, torch.float64), "f32": (np.float32, torch.float32)}


def gate_order(cell: str, H: int) -> np.ndarray:
    """Columns of a Keras kernel in PyTorch's gate order."""
    if cell == "gru":  # Keras z, r, h -> PyTorch r, z, n
        return np.concatenate([np.arange(H, 2 * H), np.arange(H), np.arange(2 * H, 3 * H)])
    return np.arange(GATES[cell] * H)  # RNN, and LSTM's i, f, g, o: the same order


class TorchCell:
    """A torch.nn.RNN/LSTM/GRU holding the weights of a fastrnn case."""

    def __init__(self, case, torch_dtype):
        B, T, H = case.shape
        I = case.x.shape[2]  # noqa: E741
        self.case, self.H = case, H
        self.order = gate_order(case.cell, H)
        if case.cell == "simple_rnn":
            self.module = torch.nn.RNN(I, H, nonlinearity=case.activation, batch_first=True)
        elif case.cell == "lstm":
            self.module = torch.nn.LSTM(I, H, batch_first=True)
        else:
            self.module = torch.nn.GRU(I, H, batch_first=True)
        self.module = self.module.to(torch_dtype)
        G = len(self.order)
        if case.bias is None:
            b_ih, b_hh = np.zeros(G), np.zeros(G)
        elif case.cell == "gru":
            b_ih, b_hh = case.bias[0], case.bias[1]
        else:
            b_ih, b_hh = case.bias, np.zeros(G)
        m = self.module
        with torch.no_grad():
            for param, value in [
                (m.weight_ih_l0, case.kernel[:, self.order].T),
                (m.weight_hh_l0, case.recurrent_kernel[:, self.order].T),
                (m.bias_ih_l0, b_ih[self.order]),
                (m.bias_hh_l0, b_hh[self.order]),
            ]:
                param.copy_(torch.from_numpy(np.ascontiguousarray(value)))
        self.tdtype = torch_dtype

    def tensor(self, a, shape=None):
        a = np.zeros(shape) if a is None else a
        return torch.tensor(np.asarray(a), dtype=self.tdtype, requires_grad=True)

    def run(self, d_out, d_states, truncate=None):
        """Forward and backward of the linear loss; returns (outputs, states, gradients)."""
        case = self.case
        B, T, H = case.shape
        x = self.tensor(case.x)
        h0 = self.tensor(case.h0, (B, H))
        c0 = self.tensor(case.c0, (B, H)) if case.cell == "lstm" else None
        state = (h0[None], c0[None]) if c0 is not None else h0[None]
        edges = [0, *cut_points(T, truncate), T]
        outs, loss = [], 0
        for s, e in zip(edges[:-1], edges[1:]):
            if s > 0:  # what PyTorch users write for truncated BPTT
                state = tuple(v.detach() for v in state) if c0 is not None else state.detach()
            out, state = self.module(x[:, s:e], state)
            outs.append(out)
            loss = loss + (out * torch.from_numpy(d_out[:, s:e])).sum()
        last = {"h": state[0][0], "c": state[1][0]} if c0 is not None else {"h": state[0]}
        for k, v in last.items():
            loss = loss + (v * torch.from_numpy(d_states[k])).sum()
        loss.backward()
        back = np.argsort(self.order)  # PyTorch's gate order -> Keras's
        m = self.module
        grads = {
            "x": x.grad.numpy(),
            "h0": h0.grad.numpy(),
            "kernel": m.weight_ih_l0.grad.numpy().T[:, back],
            "recurrent_kernel": m.weight_hh_l0.grad.numpy().T[:, back],
        }
        if case.cell == "gru":
            grads["bias"] = np.stack([m.bias_ih_l0.grad.numpy(), m.bias_hh_l0.grad.numpy()])
            grads["bias"] = grads["bias"][:, back]
        else:
            grads["bias"] = m.bias_ih_l0.grad.numpy()
        if c0 is not None:
            grads["c0"] = c0.grad.numpy()
        outputs = torch.cat(outs, dim=1).detach().numpy()
        return outputs, {k: v.detach().numpy() for k, v in last.items()}, grads


def compare(case, tdtype, rtol, truncate, module="ops", seed=0):
    rng = np.random.default_rng(seed)
    d_out, d_states = upstream(rng, case)
    mod = MODULES[module]
    out, states, tape = forward(mod, case)
    grads = backward(mod, case.cell, tape, d_out, d_states, truncate)
    t_out, t_states, t_grads = TorchCell(case, tdtype).run(d_out, d_states, truncate)
    what = f"{module} vs torch, {case.cell} {case.activation} k={truncate}"
    assert_close(out, t_out, rtol, f"{what} outputs")
    for k in t_states:
        assert_close(states[k], t_states[k], rtol, f"{what} {k}_last")
    assert sorted(grads) == sorted(t_grads)
    for k in t_grads:
        assert_close(grads[k], t_grads[k], rtol, f"{what} d_{k}")


@pytest.fixture(autouse=True)
def one_torch_thread():
    # Small problems: one thread is faster and makes float32 sums reproducible.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize(("cell", "activation"), TORCH_VARIANTS, ids=TORCH_IDS)
@pytest.mark.parametrize(
    "shape", [(3, 7, 5, 4), (1, 1, 1, 1), (2, 11, 3, 13)], ids=["3x7x5x4", "1x1x1x1", "2x11x3x13"]
)
def test_matches_torch(cell, activation, dtype, shape):
    np_dtype, tdtype = DTYPES[dtype]
    rtol = rtol_for(np_dtype, shape)
    rng = np.random.default_rng(21)
    for options in (dict(), dict(h0=False, c0=False, bias=False)):
        case = make_case(rng, cell, *shape, np_dtype, activation=activation, **options)
        compare(case, tdtype, rtol, None)


@pytest.mark.parametrize("truncate", [1, 2, 3, 5], ids=lambda k: f"k={k}")
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize(("cell", "activation"), TORCH_VARIANTS, ids=TORCH_IDS)
def test_truncated_matches_torch_with_detached_state(cell, activation, dtype, truncate):
    np_dtype, tdtype = DTYPES[dtype]
    rng = np.random.default_rng(22)
    case = make_case(rng, cell, 3, 8, 4, 5, np_dtype, activation=activation)
    rtol = rtol_for(np_dtype, (3, 8, 4, 5))
    compare(case, tdtype, rtol, truncate)


@pytest.mark.parametrize(("cell", "activation"), TORCH_VARIANTS, ids=TORCH_IDS)
def test_reference_matches_torch(cell, activation):
    rng = np.random.default_rng(23)
    case = make_case(rng, cell, 3, 6, 4, 5, np.float64, activation=activation)
    compare(case, torch.float64, 1e-10, None, module="reference")
    compare(case, torch.float64, 1e-10, 2, module="reference")


@pytest.mark.parametrize("cell", ["simple_rnn", "lstm"])
def test_recurrent_mask_matches_torch_cells(cell):
    # SimpleRNN and LSTM use h_{t-1} only in the recurrent product, so the mask is the same as
    # feeding m * h_{t-1} to torch's cell. (GRU also uses h_{t-1} in z * h_{t-1}, unmasked,
    # which no torch cell does; its mask is covered by the finite-difference checks.)
    rng = np.random.default_rng(24)
    case = make_case(rng, cell, 3, 5, 4, 6, np.float64, mask=True)
    d_out, d_states = upstream(rng, case)
    out, states, tape = forward(MODULES["ops"], case)
    grads = backward(MODULES["ops"], cell, tape, d_out, d_states)

    full = TorchCell(case, torch.float64).module
    B, T, H = case.shape
    I = case.x.shape[2]  # noqa: E741
    step = torch.nn.RNNCell(I, H) if cell == "simple_rnn" else torch.nn.LSTMCell(I, H)
    step = step.to(torch.float64)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(step, name).copy_(getattr(full, name + "_l0"))
    x = torch.tensor(case.x, requires_grad=True)
    h0 = torch.tensor(case.h0, requires_grad=True)
    c0 = torch.tensor(case.c0, requires_grad=True) if cell == "lstm" else None
    m = torch.from_numpy(case.mask)
    h, c, loss = h0, c0, 0
    for t in range(T):
        if cell == "lstm":
            h, c = step(x[:, t], (m * h, c))
        else:
            h = step(x[:, t], m * h)
        loss = loss + (h * torch.from_numpy(d_out[:, t])).sum()
        assert_close(out[:, t], h.detach().numpy(), 1e-10, f"outputs[:, {t}]")
    loss = loss + (h * torch.from_numpy(d_states["h"])).sum()
    if cell == "lstm":
        loss = loss + (c * torch.from_numpy(d_states["c"])).sum()
        assert_close(states["c"], c.detach().numpy(), 1e-10, "c_last")
    loss.backward()
    assert_close(grads["x"], x.grad.numpy(), 1e-10, "d_x")
    assert_close(grads["h0"], h0.grad.numpy(), 1e-10, "d_h0")
    assert_close(grads["kernel"], step.weight_ih.grad.numpy().T, 1e-10, "d_kernel")
    assert_close(grads["recurrent_kernel"], step.weight_hh.grad.numpy().T, 1e-10, "d_rec")
    assert_close(grads["bias"], step.bias_ih.grad.numpy(), 1e-10, "d_bias")
    if cell == "lstm":
        assert_close(grads["c0"], c0.grad.numpy(), 1e-10, "d_c0")
