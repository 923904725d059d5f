"""The NumPy oracle: SimpleRNN, LSTM and GRU, forward and (truncated) backward, in plain NumPy.

Same functions, arguments and return values as :mod:`fastrnn.ops`, written to be read: one line
of math per line, each with the reason for it. The tests compare the C++ kernels against this
module, and the benchmarks use it as the "hand-written NumPy" baseline, so it is vectorized the
way a careful NumPy user would write it: the input projection of every step is one matmul, each
step is one matmul plus elementwise math over the whole batch, and backward walks
``reversed(range(T))`` carrying the gradient of the state into the step before (``dh_next``).

Shapes: B batch, T time steps, I input features, H hidden units. Arrays are batch-major,
``x`` is ``(B, T, I)``; weights use the Keras layout and gate order (LSTM i, f, c, o;
GRU ``reset_after=True`` z, r, h with bias ``(2, 3H)`` = [input bias; recurrent bias]).
``recurrent_mask`` ``(B, H)`` multiplies ``h_{t-1}`` where it enters the recurrent matmul
(recurrent dropout), and nowhere else.

``mask`` ``(B, T)`` (bool) marks the steps to use (Keras masking): at a masked step the state
is carried unchanged (``h_t = h_{t-1}``, ``c_t = c_{t-1}``), so the step's gate math feeds
nothing and gets no gradient, and the gradient of the state passes through the step as it is.
``outputs`` hold the state at every step (the carried one at masked steps).

Truncated BPTT, ``truncate=k``: the state entering step t is a constant for every
``t = T-k, T-2k, ... > 0``; ``None`` is full backpropagation through time.

Everything is computed in the dtype of ``x`` (float32 or float64; float16 becomes float32).
This module imports nothing from fastrnn.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

__all__ = [  # in the order the module defines them
    "Tape",
    "simple_rnn_forward",
    "simple_rnn_backward",
    "lstm_forward",
    "lstm_backward",
    "gru_forward",
    "gru_backward",
    "conv1d_forward",
    "conv1d_backward",
    "pool1d_forward",
    "pool1d_backward",
    "layer_norm_forward",
    "layer_norm_backward",
    "batch_norm_forward",
    "batch_norm_backward",
    "layer_norm_simple_rnn_forward",
    "layer_norm_simple_rnn_backward",
    "layer_norm_lstm_forward",
    "layer_norm_lstm_backward",
    "layer_norm_gru_forward",
    "layer_norm_gru_backward",
]


class Tape:
    """What a backward pass needs from its forward pass: the cell name and a few arrays."""

    __slots__ = ("arrays", "cell")

    def __init__(self, cell: str, **arrays: Any):
        self.cell = cell
        self.arrays = arrays

    def __repr__(self) -> str:
        return f"<fastrnn.reference.Tape {self.cell}>"


# ----------------------------------------------------------------------------- helpers
def _sigmoid(z: np.ndarray) -> np.ndarray:
    # 1 / (1 + exp(-z)) rewritten through tanh: same value, but never overflows for large |z|.
    return 0.5 + 0.5 * np.tanh(0.5 * z)


def _setup(x, recurrent_kernel, h0, *others):
    """Casts every array to x's float dtype; returns (x, U, h0 or zeros, *others, B, T, H)."""
    x = np.asarray(x)
    dtype = np.result_type(x.dtype, np.float32)  # float16 -> float32, float64 stays
    x = x.astype(dtype, copy=False)
    U = np.asarray(recurrent_kernel, dtype=dtype)
    B, T, H = x.shape[0], x.shape[1], U.shape[0]
    h0 = np.zeros((B, H), dtype) if h0 is None else np.asarray(h0, dtype=dtype)
    others = [None if a is None else np.asarray(a, dtype=dtype) for a in others]
    return (x, U, h0, *others, B, T, H)


def _previous(first: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """(B, T, H) holding, at step t, the state entering it: first at t = 0, seq[:, t-1] after."""
    return np.concatenate([first[:, None, :], seq], axis=1)[:, : seq.shape[1]]


def _cut(t: int, T: int, truncate: Optional[int]) -> bool:
    """True when the state entering step t is a constant under truncated BPTT."""
    return truncate is not None and t > 0 and (T - t) % truncate == 0


def _check(tape: Tape, cell: str, truncate: Optional[int]) -> dict:
    if truncate is not None and truncate < 1:
        raise ValueError(f"truncate must be None or a positive integer, got {truncate!r}")
    if not isinstance(tape, Tape):
        raise TypeError(f"expected a fastrnn.reference tape, got {type(tape).__name__}")
    if tape.cell != cell:
        raise ValueError(f"this tape comes from {tape.cell}_forward, not {cell}_forward")
    return tape.arrays


def _upstream(d: Optional[Any], shape: tuple, dtype: np.dtype) -> np.ndarray:
    """An incoming gradient, or zeros when the caller passed None."""
    return np.zeros(shape, dtype) if d is None else np.asarray(d, dtype=dtype)


def _read_only(a: np.ndarray) -> np.ndarray:
    """The tape keeps the outputs it returns: the caller must not change them under it."""
    a.flags.writeable = False
    return a


def _keep(mask: Optional[Any], B: int, T: int) -> np.ndarray:
    """The step mask as (B, T, 1) bools, broadcastable over units; all True without a mask."""
    if mask is None:
        return np.ones((B, T, 1), bool)
    m = np.asarray(mask)
    if m.dtype.kind not in "biu":
        raise TypeError(f"argument `mask`: expected a bool (or integer) array, got {m.dtype}")
    if m.shape != (B, T):
        raise ValueError(f"argument `mask`: expected shape (batch, time) = {(B, T)}, got {m.shape}")
    return (m != 0).reshape(B, T, 1)


def _flat(a: np.ndarray) -> np.ndarray:
    """(B, T, n) -> (B*T, n): every step of every sequence as one row of a single matmul."""
    return a.reshape(-1, a.shape[-1])


# ----------------------------------------------------------------------------- SimpleRNN
#   h_t = act(x_t K + (m * h_{t-1}) U + b)

_ACTIVATIONS = {"tanh": np.tanh, "relu": lambda a: np.maximum(a, 0), "linear": lambda a: a}


def _activation_grad(activation: str, h: np.ndarray) -> np.ndarray:
    """act'(pre), written through the output h = act(pre), which is what the tape holds."""
    if activation == "tanh":
        return 1 - h * h  # tanh' = 1 - tanh^2
    if activation == "relu":
        return (h > 0).astype(h.dtype)  # 1 where the unit was active, else 0
    return np.ones_like(h)  # linear


def simple_rnn_forward(x, h0, kernel, recurrent_kernel, bias, activation="tanh", *,
                       recurrent_mask=None, keep_tape=True, mask=None):
    """Returns ``(outputs (B, T, H), h_last (B, H), tape)``."""
    if activation not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}")
    x, U, h0, K, b, m, B, T, H = _setup(x, recurrent_kernel, h0, kernel, bias, recurrent_mask)
    act = _ACTIVATIONS[activation]
    xk = (_flat(x) @ K).reshape(B, T, H)  # input projection of every step in one matmul
    if b is not None:
        xk += b  # the bias joins the input part once, not once per step
    keep = _keep(mask, B, T)  # (B, T, 1): which steps update the state
    hs = np.empty((B, T, H), x.dtype)  # h_t for every step: outputs, and the tape
    h = h0
    for t in range(T):
        hr = h if m is None else m * h  # recurrent dropout acts where h enters the matmul
        h_new = act(xk[:, t] + hr @ U)  # the one matmul of the step
        h = hs[:, t] = np.where(keep[:, t], h_new, h)  # a masked step carries h over
    tape = Tape("simple_rnn", x=x, h0=h0, kernel=K, recurrent_kernel=U, mask=m, outputs=hs,
                activation=activation, keep=keep)
    return _read_only(hs), h.copy(), tape if keep_tape else None


def simple_rnn_backward(tape, d_outputs, d_h_last=None, truncate=None, *, input_grad=True):
    """Returns dict ``x, h0, kernel, recurrent_kernel, bias`` of gradients."""
    a = _check(tape, "simple_rnn", truncate)
    x, h0, K, U, m = a["x"], a["h0"], a["kernel"], a["recurrent_kernel"], a["mask"]
    hs = a["outputs"]
    B, T, H = hs.shape
    dy = None if d_outputs is None else np.asarray(d_outputs, dtype=hs.dtype)
    d_pre = np.empty_like(hs)  # gradient of the pre-activations, every step
    dh_next = _upstream(d_h_last, (B, H), hs.dtype)  # gradient reaching h_t from later steps
    for t in reversed(range(T)):
        dh = dh_next if dy is None else dh_next + dy[:, t]  # plus the loss's own gradient at t
        keep = a["keep"][:, t]
        # backprop through act; a masked step's pre-activation fed nothing
        d_pre[:, t] = keep * dh * _activation_grad(a["activation"], hs[:, t])
        if _cut(t, T, truncate):
            dh_next = np.zeros_like(dh_next)  # h_{t-1} is a constant: nothing flows further back
        else:
            dh_next = d_pre[:, t] @ U.T  # backprop through the recurrent matmul
            if m is not None:
                dh_next *= m  # ... and through the mask that scaled h_{t-1}
            dh_next = np.where(keep, dh_next, dh)  # a masked step passed h_{t-1} on as h_t
    h_prev = _previous(h0, hs)  # the state each step multiplied by U
    if m is not None:
        h_prev = h_prev * m[:, None, :]  # as the matmul saw it
    return {
        # every step's input gradient in one matmul (None when the caller does not need it)
        "x": (_flat(d_pre) @ K.T).reshape(x.shape) if input_grad else None,
        "h0": dh_next,  # what reached the state entering step 0
        "kernel": _flat(x).T @ _flat(d_pre),  # sum over b, t of x_t^T d_pre_t
        "recurrent_kernel": _flat(h_prev).T @ _flat(d_pre),  # sum of (m h_{t-1})^T d_pre_t
        "bias": _flat(d_pre).sum(axis=0),  # the bias is added at every (b, t)
    }


# ----------------------------------------------------------------------------- LSTM
#   z = x_t K + (m * h_{t-1}) U + b, split into the Keras gate order i, f, c (called g), o
#   i, f, o = sigmoid(z_i, z_f, z_o);  g = tanh(z_g)
#   c_t = f * c_{t-1} + i * g;  h_t = o * tanh(c_t)


def lstm_forward(x, h0, c0, kernel, recurrent_kernel, bias, *, recurrent_mask=None,
                 keep_tape=True, mask=None):
    """Returns ``(outputs (B, T, H), h_last (B, H), c_last (B, H), tape)``."""
    x, U, h0, c0, K, b, m, B, T, H = _setup(
        x, recurrent_kernel, h0, c0, kernel, bias, recurrent_mask
    )
    c0 = np.zeros((B, H), x.dtype) if c0 is None else c0
    xz = (_flat(x) @ K).reshape(B, T, 4 * H)  # input part of all four gates, every step at once
    if b is not None:
        xz += b
    gates = np.empty((B, T, 4 * H), x.dtype)  # activated i, f, g, o: all backward needs of them
    cells = np.empty((B, T, H), x.dtype)  # c_t
    hs = np.empty((B, T, H), x.dtype)  # h_t
    keep = _keep(mask, B, T)  # (B, T, 1): which steps update the state
    h, c = h0, c0
    for t in range(T):
        hr = h if m is None else m * h  # recurrent dropout on the state entering the matmul
        z = xz[:, t] + hr @ U  # pre-activations of the four gates: the one matmul of the step
        i = _sigmoid(z[:, :H])  # input gate: how much of the candidate to write
        f = _sigmoid(z[:, H : 2 * H])  # forget gate: how much of the old cell to keep
        g = np.tanh(z[:, 2 * H : 3 * H])  # candidate cell value
        o = _sigmoid(z[:, 3 * H :])  # output gate: how much of the cell to show
        c_new = f * c + i * g  # the cell: a gated running sum
        h_new = o * np.tanh(c_new)  # the output squashes the cell
        c = cells[:, t] = np.where(keep[:, t], c_new, c)  # a masked step carries (h, c) over
        h = hs[:, t] = np.where(keep[:, t], h_new, h)
        gates[:, t] = np.concatenate([i, f, g, o], axis=1)
    tape = Tape("lstm", x=x, h0=h0, c0=c0, kernel=K, recurrent_kernel=U, mask=m, outputs=hs,
                gates=gates, cells=cells, keep=keep)
    return _read_only(hs), h.copy(), c.copy(), tape if keep_tape else None


def lstm_backward(tape, d_outputs, d_h_last=None, d_c_last=None, truncate=None, *,
                  input_grad=True):
    """Returns dict ``x, h0, c0, kernel, recurrent_kernel, bias`` of gradients."""
    a = _check(tape, "lstm", truncate)
    x, h0, c0, K, U, m = a["x"], a["h0"], a["c0"], a["kernel"], a["recurrent_kernel"], a["mask"]
    hs, gates, cells = a["outputs"], a["gates"], a["cells"]
    B, T, H = hs.shape
    dy = None if d_outputs is None else np.asarray(d_outputs, dtype=hs.dtype)
    c_prev_all = _previous(c0, cells)  # c_{t-1} for every step
    dz = np.empty_like(gates)  # gradient of the gate pre-activations, every step
    dh_next = _upstream(d_h_last, (B, H), hs.dtype)  # gradient reaching h_t from later steps
    dc_next = _upstream(d_c_last, (B, H), hs.dtype)  # gradient reaching c_t from later steps
    for t in reversed(range(T)):
        i, f, g, o = np.split(gates[:, t], 4, axis=1)
        tc = np.tanh(cells[:, t])  # recomputed: cheaper to store c_t than tanh(c_t) too
        dh = dh_next if dy is None else dh_next + dy[:, t]  # plus the loss's gradient at t
        dc = dc_next + dh * o * (1 - tc * tc)  # c_t reaches the loss directly and through h_t
        dz[:, t, :H] = dc * g * i * (1 - i)  # c = ... + i g, through the sigmoid of i
        dz[:, t, H : 2 * H] = dc * c_prev_all[:, t] * f * (1 - f)  # c = f c_{t-1} + ...
        dz[:, t, 2 * H : 3 * H] = dc * i * (1 - g * g)  # through tanh of the candidate
        dz[:, t, 3 * H :] = dh * tc * o * (1 - o)  # h = o tanh(c), through the sigmoid of o
        keep = a["keep"][:, t]
        dz[:, t] *= keep  # a masked step's gates fed nothing
        if _cut(t, T, truncate):
            dh_next = np.zeros_like(dh_next)  # (h, c) entering step t are constants
            dc_next = np.zeros_like(dc_next)
        else:
            dc_next = np.where(keep, dc * f, dc_next)  # c_{t-1} scaled by the forget gate
            dh_next = dz[:, t] @ U.T  # h_{t-1} enters only through the recurrent matmul
            if m is not None:
                dh_next *= m  # ... after the mask scaled it
            dh_next = np.where(keep, dh_next, dh)  # a masked step passed (h, c) on unchanged
    h_prev = _previous(h0, hs)
    if m is not None:
        h_prev = h_prev * m[:, None, :]  # the state as the recurrent matmul saw it
    return {
        "x": (_flat(dz) @ K.T).reshape(x.shape) if input_grad else None,
        "h0": dh_next,
        "c0": dc_next,
        "kernel": _flat(x).T @ _flat(dz),
        "recurrent_kernel": _flat(h_prev).T @ _flat(dz),
        "bias": _flat(dz).sum(axis=0),
    }


# ----------------------------------------------------------------------------- GRU
#   Keras reset_after=True (PyTorch's form), gate order z, r, h; bias rows b_in, b_rec:
#   xz = x_t K + b_in;  hz = (m * h_{t-1}) U + b_rec
#   z = sigmoid(xz_z + hz_z);  r = sigmoid(xz_r + hz_r);  n = tanh(xz_h + r * hz_h)
#   h_t = z * h_{t-1} + (1 - z) * n          (h_{t-1} here is unmasked)


def gru_forward(x, h0, kernel, recurrent_kernel, bias, *, recurrent_mask=None, keep_tape=True,
                mask=None):
    """Returns ``(outputs (B, T, H), h_last (B, H), tape)``."""
    x, U, h0, K, b, m, B, T, H = _setup(x, recurrent_kernel, h0, kernel, bias, recurrent_mask)
    xz = (_flat(x) @ K).reshape(B, T, 3 * H)  # input part of z, r and the candidate, every step
    b_rec = np.zeros(3 * H, x.dtype) if b is None else b[1]
    if b is not None:
        xz += b[0]  # the input bias, once for all steps
    gates = np.empty((B, T, 3 * H), x.dtype)  # activated z, r, n
    hz_h = np.empty((B, T, H), x.dtype)  # recurrent part of the candidate, before r scales it
    hs = np.empty((B, T, H), x.dtype)
    keep = _keep(mask, B, T)  # (B, T, 1): which steps update the state
    h = h0
    for t in range(T):
        hr = h if m is None else m * h  # recurrent dropout, in the matmul only
        hz = hr @ U + b_rec  # recurrent part of all three: the one matmul of the step
        z = _sigmoid(xz[:, t, :H] + hz[:, :H])  # update gate: how much of h_{t-1} to keep
        r = _sigmoid(xz[:, t, H : 2 * H] + hz[:, H : 2 * H])  # reset gate
        hz_h[:, t] = hz[:, 2 * H :]
        n = np.tanh(xz[:, t, 2 * H :] + r * hz_h[:, t])  # candidate: r gates the recurrent part
        h_new = z * h + (1 - z) * n  # blend old state and candidate
        h = hs[:, t] = np.where(keep[:, t], h_new, h)  # a masked step carries h over
        gates[:, t] = np.concatenate([z, r, n], axis=1)
    tape = Tape("gru", x=x, h0=h0, kernel=K, recurrent_kernel=U, mask=m, outputs=hs,
                gates=gates, hz_h=hz_h, keep=keep)
    return _read_only(hs), h.copy(), tape if keep_tape else None


def gru_backward(tape, d_outputs, d_h_last=None, truncate=None, *, input_grad=True):
    """Returns dict ``x, h0, kernel, recurrent_kernel, bias (2, 3H)`` of gradients."""
    a = _check(tape, "gru", truncate)
    x, h0, K, U, m = a["x"], a["h0"], a["kernel"], a["recurrent_kernel"], a["mask"]
    hs, gates, hz_h = a["outputs"], a["gates"], a["hz_h"]
    B, T, H = hs.shape
    dy = None if d_outputs is None else np.asarray(d_outputs, dtype=hs.dtype)
    h_prev_all = _previous(h0, hs)  # h_{t-1} for every step, unmasked
    d_xz = np.empty_like(gates)  # gradient of xz (the input side), every step
    d_hz = np.empty_like(gates)  # gradient of hz (the recurrent side), every step
    dh_next = _upstream(d_h_last, (B, H), hs.dtype)
    for t in reversed(range(T)):
        z, r, n = np.split(gates[:, t], 3, axis=1)
        dh_out = dh_next if dy is None else dh_next + dy[:, t]
        keep = a["keep"][:, t]
        dh = keep * dh_out  # what the step's gate math gets: nothing at a masked step
        dn = dh * (1 - z) * (1 - n * n)  # h = ... + (1 - z) n, through the tanh
        dzz = dh * (h_prev_all[:, t] - n) * z * (1 - z)  # h = n + z (h_{t-1} - n), via sigmoid
        dzr = dn * hz_h[:, t] * r * (1 - r)  # n = tanh(xz_h + r hz_h), via the sigmoid of r
        d_xz[:, t] = np.concatenate([dzz, dzr, dn], axis=1)  # z, r: xz and hz enter as a sum
        d_hz[:, t] = np.concatenate([dzz, dzr, dn * r], axis=1)  # hz_h is scaled by r
        if _cut(t, T, truncate):
            dh_next = np.zeros_like(dh_next)  # h entering step t is a constant
        else:
            d_rec = d_hz[:, t] @ U.T  # h_{t-1} through the recurrent matmul
            if m is not None:
                d_rec *= m  # ... where the mask scaled it
            dh_next = dh * z + d_rec  # plus the direct path z * h_{t-1}
            dh_next = np.where(keep, dh_next, dh_out)  # a masked step passed h_{t-1} on
    h_prev = h_prev_all if m is None else h_prev_all * m[:, None, :]
    return {
        "x": (_flat(d_xz) @ K.T).reshape(x.shape) if input_grad else None,
        "h0": dh_next,
        "kernel": _flat(x).T @ _flat(d_xz),
        "recurrent_kernel": _flat(h_prev).T @ _flat(d_hz),
        "bias": np.stack([_flat(d_xz).sum(axis=0), _flat(d_hz).sum(axis=0)]),  # b_in, b_rec
    }


# =============================================================================================
# Sequence layers: Conv1D, 1-D pooling, layer and batch normalization, channels-last
# ((batch, steps, channels)), written as loops over taps and windows so they read like the
# definitions. Padding is Keras's: "valid" none; "causal" (span - 1) zeros on the left; "same"
# ceil(T / strides) outputs with the zeros split evenly, the odd one on the right.


def _padded(x: np.ndarray, span: int, strides: int, padding: str, fill: float = 0.0):
    """x with Keras's padding along the steps, and the number of outputs."""
    T = x.shape[1]
    if padding == "valid":
        left = right = 0
    elif padding == "causal":
        left, right = span - 1, 0
    else:  # "same": as many outputs as ceil(T / strides)
        outputs = -(-T // strides)
        total = max((outputs - 1) * strides + span - T, 0)
        left, right = total // 2, total - total // 2
    xp = np.pad(x, ((0, 0), (left, right), (0, 0)), constant_values=fill)
    return xp, left, (xp.shape[1] - span) // strides + 1


def conv1d_forward(x, kernel, bias=None, strides=1, padding="valid", dilation_rate=1, groups=1):
    """y[b, l] = bias + sum over taps k of x_padded[b, l * strides + k * dilation] @ kernel[k],
    group by group. x (B, T, C), kernel (K, C / groups, O) -> (B, L, O)."""
    x = np.asarray(x)
    K, Cg, O = kernel.shape
    Og = O // groups
    span = (K - 1) * dilation_rate + 1
    xp, _, L = _padded(x, span, strides, padding)
    y = np.zeros((x.shape[0], L, O), dtype=x.dtype)
    for g in range(groups):
        xg = xp[:, :, g * Cg:(g + 1) * Cg]  # this group's input channels
        for k in range(K):
            start = k * dilation_rate
            taps = xg[:, start:start + (L - 1) * strides + 1:strides]  # (B, L, Cg): tap k
            y[:, :, g * Og:(g + 1) * Og] += taps @ kernel[k, :, g * Og:(g + 1) * Og]
    if bias is not None:
        y += bias
    return y


def conv1d_backward(x, kernel, d_y, strides=1, padding="valid", dilation_rate=1, groups=1,
                    use_bias=True, input_grad=True):
    """Gradients of conv1d_forward: {"x", "kernel", "bias"}: each tap's product, reversed."""
    x = np.asarray(x)
    K, Cg, O = kernel.shape
    Og = O // groups
    span = (K - 1) * dilation_rate + 1
    xp, left, L = _padded(x, span, strides, padding)
    d_xp = np.zeros_like(xp)
    d_kernel = np.zeros_like(kernel)
    for g in range(groups):
        dy = d_y[:, :, g * Og:(g + 1) * Og]  # (B, L, Og)
        for k in range(K):
            rows = slice(k * dilation_rate, k * dilation_rate + (L - 1) * strides + 1, strides)
            taps = xp[:, rows, g * Cg:(g + 1) * Cg]  # (B, L, Cg)
            w = kernel[k, :, g * Og:(g + 1) * Og]  # (Cg, Og)
            d_kernel[k, :, g * Og:(g + 1) * Og] = np.einsum("blc,blo->co", taps, dy)
            d_xp[:, rows, g * Cg:(g + 1) * Cg] += dy @ w.T  # the tap's inputs get W^T dy
    d_x = d_xp[:, left:left + x.shape[1]] if input_grad else None  # the padding's is dropped
    return {"x": d_x,
            "kernel": d_kernel, "bias": d_y.sum(axis=(0, 1)) if use_bias else None}


def pool1d_forward(x, pool_size=2, strides=None, padding="valid", mode="max", keep_tape=True):
    """Max or average over windows of pool_size steps, strides apart; padding never counts.
    Returns ``(y (B, L, C), tape)`` (the tape None with ``keep_tape=False``)."""
    strides = pool_size if strides is None else strides
    fill = -np.inf if mode == "max" else np.nan  # the average skips the NaN padding
    xp, _, L = _padded(np.asarray(x, dtype=np.float64), pool_size, strides, padding, fill)
    windows = np.stack([xp[:, l * strides:l * strides + pool_size] for l in range(L)], axis=1)
    y = windows.max(axis=2) if mode == "max" else np.nanmean(windows, axis=2)
    tape = Tape(f"{mode}_pool1d", x=np.asarray(x), pool_size=pool_size, strides=strides,
                padding=padding, mode=mode)
    return y.astype(np.asarray(x).dtype), tape if keep_tape else None


def pool1d_backward(tape, d_y):
    """d_x: each output's gradient to its window's (first) maximum, or spread evenly."""
    a = tape.arrays
    x, pool_size, strides, padding, mode = (a["x"], a["pool_size"], a["strides"],
                                            a["padding"], a["mode"])
    fill = -np.inf if mode == "max" else np.nan
    xp, left, L = _padded(x.astype(np.float64), pool_size, strides, padding, fill)
    d_xp = np.zeros(xp.shape)
    B, _, C = x.shape
    for l in range(L):
        window = xp[:, l * strides:l * strides + pool_size]  # (B, pool, C)
        if mode == "max":
            first = window.argmax(axis=1)  # (B, C): the first maximum
            for b in range(B):
                d_xp[b, l * strides + first[b], np.arange(C)] += d_y[b, l]
        else:
            inside = ~np.isnan(window)  # (B, pool, C): steps of the input, not padding
            d_xp[:, l * strides:l * strides + pool_size] += (
                inside * d_y[:, l:l + 1] / inside.sum(axis=1, keepdims=True))
    return d_xp[:, left:left + x.shape[1]].astype(x.dtype)


def layer_norm_forward(x, gamma=None, beta=None, epsilon=1e-3):
    """Each position's last axis to zero mean and unit (biased) variance, then * gamma + beta."""
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    xhat = (x - mean) / np.sqrt(var + epsilon)
    y = xhat * (1 if gamma is None else gamma) + (0 if beta is None else beta)
    return y, Tape("layer_norm", xhat=xhat, var=var, gamma=gamma, epsilon=epsilon)


def layer_norm_backward(tape, d_y, input_grad=True):
    """{"x", "gamma", "beta"}: through xhat, whose mean and variance depend on every value."""
    a = tape.arrays
    xhat, gamma = a["xhat"], a["gamma"]
    axes = tuple(range(d_y.ndim - 1))
    g = d_y * (1 if gamma is None else gamma)  # gradient of xhat
    d_x = (g - g.mean(axis=-1, keepdims=True)
           - xhat * (g * xhat).mean(axis=-1, keepdims=True)) / np.sqrt(a["var"] + a["epsilon"])
    return {"x": d_x if input_grad else None,
            "gamma": None if gamma is None else (d_y * xhat).sum(axis=axes),
            "beta": d_y.sum(axis=axes)}


def batch_norm_forward(x, gamma=None, beta=None, mean=None, variance=None, epsilon=1e-3):
    """Each channel (last axis) normalized over every other axis: with the batch's mean and
    biased variance when `mean`/`variance` are None (training), else with the given ones.
    Returns (y, mean, variance, tape)."""
    axes = tuple(range(x.ndim - 1))
    training = mean is None
    if training:
        mean, variance = x.mean(axis=axes), x.var(axis=axes)
    xhat = (x - mean) / np.sqrt(variance + epsilon)
    y = xhat * (1 if gamma is None else gamma) + (0 if beta is None else beta)
    tape = Tape("batch_norm", xhat=xhat, variance=variance, gamma=gamma, epsilon=epsilon,
                training=training)
    return y, mean, variance, tape


def batch_norm_backward(tape, d_y, input_grad=True):
    """{"x", "gamma", "beta"}: training differentiates through the batch's statistics."""
    a = tape.arrays
    xhat, gamma = a["xhat"], a["gamma"]
    axes = tuple(range(d_y.ndim - 1))
    g = d_y * (1 if gamma is None else gamma)  # gradient of xhat
    rstd = 1 / np.sqrt(a["variance"] + a["epsilon"])
    if a["training"]:  # the mean and variance move with every value of the batch
        d_x = rstd * (g - g.mean(axis=axes) - xhat * (g * xhat).mean(axis=axes))
    else:
        d_x = rstd * g
    return {"x": d_x if input_grad else None,
            "gamma": None if gamma is None else (d_y * xhat).sum(axis=axes),
            "beta": d_y.sum(axis=axes)}


# =============================================================================================
# Layer-normalized cells: every gate block (H units) of the pre-activations is
# normalized over its units before the gate math (Ba et al. 2016; Hands-On ML's LNSimpleRNNCell),
# with learned gamma, beta (G,) and epsilon (1e-3, Keras's LayerNormalization default):
#   n = (a - mean(a)) / sqrt(var(a) + epsilon) * gamma + beta    (per block, biased variance)
# SimpleRNN: h_t = act(n(x_t K + (m * h_{t-1}) U + b)).
# LSTM: n of the four blocks of z = x_t K + (m * h_{t-1}) U + b, then the usual i, f, c, o math.
# GRU (reset_after): z, r = sigmoid(n(xz_zr + hz_zr));  cand = tanh(n(xz_h + r * hz_h));
#   h_t = z * h_{t-1} + (1 - z) * cand.
# The same masks, truncation and recurrent dropout as the plain cells. Tapes hold one tuple of
# per-step arrays a step (written for reading, not for speed: this was the layers' own
# layer-norm path before the fused kernels).


def _ln_blocks(a, gamma, beta, epsilon, blocks):
    """Normalizes each of `blocks` gate blocks of a (B, blocks*H) over its H units.

    Returns (n, (xhat, inv_std)): n = xhat * gamma + beta, and what backward needs."""
    B = a.shape[0]
    a3 = a.reshape(B, blocks, -1)
    centred = a3 - a3.mean(axis=-1, keepdims=True)
    inv_std = 1.0 / np.sqrt((centred * centred).mean(axis=-1, keepdims=True) + epsilon)
    xhat = (centred * inv_std).reshape(B, -1)
    return xhat * gamma + beta, (xhat, inv_std)


def _ln_blocks_backward(dn, cache, gamma, blocks):
    """(d_a, d_gamma, d_beta) for dn (B, blocks*H), the gradient of n."""
    xhat, inv_std = cache
    B = dn.shape[0]
    g = (dn * gamma).reshape(B, blocks, -1)  # gradient of xhat
    xh = xhat.reshape(B, blocks, -1)
    # every a_j moves the block's mean and variance, hence the two mean terms
    da = inv_std * (g - g.mean(axis=-1, keepdims=True)
                    - xh * (g * xh).mean(axis=-1, keepdims=True))
    return da.reshape(B, -1), (dn * xhat).sum(axis=0), dn.sum(axis=0)


def _ln_setup(cell, x, h0, kernel, recurrent_kernel, bias, gamma, beta, recurrent_mask):
    """Casts like _setup; bias None becomes zeros of the cell's bias shape."""
    x, U, h0, K, b, m, gamma, beta, B, T, H = _setup(
        x, recurrent_kernel, h0, kernel, bias, recurrent_mask, gamma, beta)
    G = U.shape[1]
    if b is None:
        b = np.zeros((2, G) if cell == "gru" else G, x.dtype)
    return x, U, h0, K, b, m, gamma, beta, B, T, H, G


def _ln_forward(cell, x, h0, c0, kernel, recurrent_kernel, bias, gamma, beta, epsilon,
                recurrent_mask, mask, activation="tanh"):
    x, U, h0, K, b, m, gamma, beta, B, T, H, G = _ln_setup(
        cell, x, h0, kernel, recurrent_kernel, bias, gamma, beta, recurrent_mask)
    act = _ACTIVATIONS[activation]
    xk = (_flat(x) @ K).reshape(B, T, G)  # every input projection in one product
    xk = xk + (b[0] if cell == "gru" else b)  # GRU: the input bias only
    keep = _keep(mask, B, T)
    outputs = np.empty((B, T, H), x.dtype)
    h_used = np.empty((B, T, H), x.dtype)  # m * h_{t-1}: what the recurrent matmul saw
    steps = []
    h = h0
    c = c0 = (np.zeros((B, H), x.dtype) if c0 is None else np.asarray(c0, x.dtype)) \
        if cell == "lstm" else None
    for t in range(T):
        hm = h if m is None else h * m
        h_used[:, t] = hm
        hu = hm @ U  # the one matmul of the step
        c_prev = c
        if cell == "simple_rnn":
            n, ln = _ln_blocks(xk[:, t] + hu, gamma, beta, epsilon, 1)
            h_new = act(n)
            steps.append((ln,))
        elif cell == "lstm":
            n, ln = _ln_blocks(xk[:, t] + hu, gamma, beta, epsilon, 4)  # each gate on its own
            i, f = _sigmoid(n[:, :H]), _sigmoid(n[:, H:2 * H])
            g, o = np.tanh(n[:, 2 * H:3 * H]), _sigmoid(n[:, 3 * H:])
            c_new = f * c_prev + i * g
            tc = np.tanh(c_new)
            h_new = o * tc
            c = np.where(keep[:, t], c_new, c_prev)  # a masked step carries (h, c) over
            steps.append((ln, i, f, g, o, c_prev, tc))
        else:
            hz = hu + b[1]  # the recurrent bias joins the recurrent part, as in the plain GRU
            nzr, ln_zr = _ln_blocks(xk[:, t, :2 * H] + hz[:, :2 * H], gamma[:2 * H],
                                    beta[:2 * H], epsilon, 2)
            z, r = _sigmoid(nzr[:, :H]), _sigmoid(nzr[:, H:])
            nh, ln_h = _ln_blocks(xk[:, t, 2 * H:] + r * hz[:, 2 * H:], gamma[2 * H:],
                                  beta[2 * H:], epsilon, 1)  # after r scaled the recurrent part
            cand = np.tanh(nh)
            h_new = z * h + (1 - z) * cand
            steps.append((ln_zr, ln_h, z, r, cand, hz[:, 2 * H:], h))
        h = outputs[:, t] = np.where(keep[:, t], h_new, h)
    tape = Tape("layer_norm_" + cell, x=x, h0=h0, c0=c0, kernel=K, recurrent_kernel=U,
                gamma=gamma, mask=m, outputs=outputs, h_used=h_used, steps=steps, keep=keep,
                activation=activation)
    last = [h.copy()] if cell != "lstm" else [h.copy(), c.copy()]
    return _read_only(outputs), last, tape


def _ln_backward(cell, tape, d_outputs, d_last, truncate, input_grad):
    a = _check(tape, "layer_norm_" + cell, truncate)
    x, K, U, gamma, m, steps = a["x"], a["kernel"], a["recurrent_kernel"], a["gamma"], a["mask"], \
        a["steps"]
    outputs = a["outputs"]
    B, T, H = outputs.shape
    G = U.shape[1]
    dy = None if d_outputs is None else np.asarray(d_outputs, dtype=x.dtype)
    d_gamma = np.zeros(G, x.dtype)
    d_beta = np.zeros(G, x.dtype)
    d_in = np.zeros((B, T, G), x.dtype)  # gradient of the input part (x_t K + bias)
    d_rec = np.zeros((B, T, G), x.dtype)  # gradient of the recurrent part ((m * h_{t-1}) U)
    dh = _upstream(d_last[0], (B, H), x.dtype)
    dc = _upstream(d_last[1], (B, H), x.dtype) if cell == "lstm" else None
    for t in reversed(range(T)):
        if dy is not None:
            dh = dh + dy[:, t]  # plus the loss's own gradient at t
        keep = a["keep"][:, t]
        dh_pass, dc_pass = dh, dc  # what a masked step hands on unchanged
        dh = dh * keep  # a masked step's math gets no gradient
        dc = None if dc is None else dc * keep
        dh_direct = None
        if cell == "simple_rnn":
            (ln,) = steps[t]
            dn = dh * _activation_grad(a["activation"], outputs[:, t])
            da, dg, db = _ln_blocks_backward(dn, ln, gamma, 1)
            d_in[:, t] = d_rec[:, t] = da
        elif cell == "lstm":
            ln, i, f, g, o, c_prev, tc = steps[t]
            dc = dc + dh * o * (1 - tc * tc)  # c_t reaches the loss directly and through h_t
            dn = np.concatenate([dc * g * i * (1 - i), dc * c_prev * f * (1 - f),
                                 dc * i * (1 - g * g), dh * tc * o * (1 - o)], axis=1)
            dc = dc * f  # to c_{t-1}
            da, dg, db = _ln_blocks_backward(dn, ln, gamma, 4)
            d_in[:, t] = d_rec[:, t] = da
        else:
            ln_zr, ln_h, z, r, cand, hz_h, h_prev = steps[t]
            dz = dh * (h_prev - cand)  # h = cand + z (h_{t-1} - cand)
            d_nh = dh * (1 - z) * (1 - cand * cand)  # through tanh of the candidate
            da_h, dg_h, db_h = _ln_blocks_backward(d_nh, ln_h, gamma[2 * H:], 1)
            dr = da_h * hz_h  # a_h = xz_h + r hz_h
            d_nzr = np.concatenate([dz * z * (1 - z), dr * r * (1 - r)], axis=1)
            da_zr, dg_zr, db_zr = _ln_blocks_backward(d_nzr, ln_zr, gamma[:2 * H], 2)
            dg, db = np.concatenate([dg_zr, dg_h]), np.concatenate([db_zr, db_h])
            d_in[:, t] = np.concatenate([da_zr, da_h], axis=1)
            d_rec[:, t] = np.concatenate([da_zr, da_h * r], axis=1)  # hz_h is scaled by r
            dh_direct = dh * z  # h_{t-1} also enters h_t directly
        d_gamma += dg
        d_beta += db
        if _cut(t, T, truncate):  # the state entering step t is a constant
            dh = np.zeros_like(dh)
            dc = None if dc is None else np.zeros_like(dc)
            continue
        dh_rec = d_rec[:, t] @ U.T  # back through the recurrent matmul
        if m is not None:
            dh_rec = dh_rec * m  # ... and the mask that scaled h_{t-1}
        dh = dh_rec if dh_direct is None else dh_direct + dh_rec
        dh = np.where(keep, dh, dh_pass)  # a masked step passed (h, c) on
        dc = None if dc is None else np.where(keep, dc, dc_pass)
    grads = {
        "x": (_flat(d_in) @ K.T).reshape(x.shape) if input_grad else None,
        "h0": dh,
        "kernel": _flat(x).T @ _flat(d_in),
        "recurrent_kernel": _flat(a["h_used"]).T @ _flat(d_rec),
        "bias": (np.stack([_flat(d_in).sum(axis=0), _flat(d_rec).sum(axis=0)])
                 if cell == "gru" else _flat(d_in).sum(axis=0)),
        "gamma": d_gamma,
        "beta": d_beta,
    }
    if cell == "lstm":
        grads["c0"] = dc
    return grads


def layer_norm_simple_rnn_forward(x, h0, kernel, recurrent_kernel, bias, gamma, beta,
                                  activation="tanh", *, epsilon=1e-3, recurrent_mask=None,
                                  keep_tape=True, mask=None):
    """Returns ``(outputs (B, T, H), h_last (B, H), tape)``."""
    if activation not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}")
    outputs, (h,), tape = _ln_forward("simple_rnn", x, h0, None, kernel, recurrent_kernel, bias,
                                      gamma, beta, epsilon, recurrent_mask, mask, activation)
    return outputs, h, tape if keep_tape else None


def layer_norm_simple_rnn_backward(tape, d_outputs, d_h_last=None, truncate=None, *,
                                   input_grad=True):
    """Returns dict ``x, h0, kernel, recurrent_kernel, bias, gamma, beta`` of gradients."""
    return _ln_backward("simple_rnn", tape, d_outputs, [d_h_last], truncate, input_grad)


def layer_norm_lstm_forward(x, h0, c0, kernel, recurrent_kernel, bias, gamma, beta, *,
                            epsilon=1e-3, recurrent_mask=None, keep_tape=True, mask=None):
    """Returns ``(outputs (B, T, H), h_last (B, H), c_last (B, H), tape)``."""
    outputs, (h, c), tape = _ln_forward("lstm", x, h0, c0, kernel, recurrent_kernel, bias,
                                        gamma, beta, epsilon, recurrent_mask, mask)
    return outputs, h, c, tape if keep_tape else None


def layer_norm_lstm_backward(tape, d_outputs, d_h_last=None, d_c_last=None, truncate=None, *,
                             input_grad=True):
    """Returns dict ``x, h0, c0, kernel, recurrent_kernel, bias, gamma, beta`` of gradients."""
    return _ln_backward("lstm", tape, d_outputs, [d_h_last, d_c_last], truncate, input_grad)


def layer_norm_gru_forward(x, h0, kernel, recurrent_kernel, bias, gamma, beta, *, epsilon=1e-3,
                           recurrent_mask=None, keep_tape=True, mask=None):
    """Returns ``(outputs (B, T, H), h_last (B, H), tape)``."""
    outputs, (h,), tape = _ln_forward("gru", x, h0, None, kernel, recurrent_kernel, bias, gamma,
                                      beta, epsilon, recurrent_mask, mask)
    return outputs, h, tape if keep_tape else None


def layer_norm_gru_backward(tape, d_outputs, d_h_last=None, truncate=None, *, input_grad=True):
    """Returns dict ``x, h0, kernel, recurrent_kernel, bias (2, 3H), gamma, beta``."""
    return _ln_backward("gru", tape, d_outputs, [d_h_last], truncate, input_grad)
