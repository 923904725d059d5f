"""SimpleRNN, LSTM and GRU over whole sequences: forward and (truncated) backward.

See :mod:`fastrnn.ops` for the layouts, masks, truncation and tapes every function here
shares.

Internal API (for the recurrent layers, through :mod:`fastrnn.ops.internal`):
:func:`forward_checked` and :func:`backward_checked`, the core calls for arrays already
checked (what the public functions call after their checks); :func:`cell_arguments`,
:func:`backward_entry`, :func:`check_activation` and :data:`GRAD_NAMES`/:data:`CELL_GATES`
are shared with :mod:`.layer_norm_cells`.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from .. import _core
from .arrays import (
    ACTIVATIONS,
    ArrayLike,
    Tape,
    checked_array,
    optional_array,
    read_only,
    recurrent_inputs,
    recurrent_mask_array,
    step_mask_array,
    tape_arrays,
    truncate_steps,
    upstream_gradient,
)

__all__ = [
    "gru_backward",
    "gru_forward",
    "lstm_backward",
    "lstm_forward",
    "simple_rnn_backward",
    "simple_rnn_forward",
]


# ----------------------------------------------------------------------------- checked arrays
# The core call and the tape, for arrays already checked: C-contiguous, one float dtype, the
# shapes of the table above. The public functions below check their arguments, then call these;
# the recurrent layers call them directly with arrays they own or have checked, which saves the
# public functions' checks (a few microseconds a call, a few percent of a book-sized training
# step). The core checks every shape, dtype and contiguity again, so a mistake still raises
# ValueError naming the argument; it never crashes.
GRAD_NAMES = {
    "simple_rnn": ("x", "h0", "kernel", "recurrent_kernel", "bias"),
    "lstm": ("x", "h0", "c0", "kernel", "recurrent_kernel", "bias"),
    "gru": ("x", "h0", "kernel", "recurrent_kernel", "bias"),
}


def forward_checked(
    cell: str,
    x: np.ndarray,
    states: list[Any],
    kernel: np.ndarray,
    recurrent_kernel: np.ndarray,
    bias: Optional[np.ndarray],
    mask: Optional[np.ndarray],
    keep_tape: bool,
    activation: str = "tanh",
    step_mask: Optional[np.ndarray] = None,
) -> tuple[np.ndarray, list[np.ndarray], Optional[Tape]]:
    """`cell`'s forward: ``(outputs (B, T, H), last states [h (B, H)] (LSTM: [h, c]), tape)``;
    `states` is ``[h0]`` (LSTM: ``[h0, c0]``), entries None for zeros; `mask` is the recurrent
    dropout mask, `step_mask` the bool (B, T) step mask."""
    arrays = {"x": x, "h0": states[0], "kernel": kernel, "recurrent_kernel": recurrent_kernel,
              "mask": mask, "step_mask": step_mask}
    options = {}
    if cell == "simple_rnn":
        outputs, h_last = _core.simple_rnn_forward(
            x, states[0], kernel, recurrent_kernel, bias, mask, activation, step_mask
        )
        last = [h_last]
        options["activation"] = activation
    elif cell == "lstm":
        outputs, h_last, c_last, gates, cells = _core.lstm_forward(
            x, states[0], states[1], kernel, recurrent_kernel, bias, mask, bool(keep_tape),
            step_mask,
        )
        last = [h_last, c_last]
        arrays.update(c0=states[1], gates=gates, cells=cells)
    else:
        outputs, h_last, gates, hz_h = _core.gru_forward(
            x, states[0], kernel, recurrent_kernel, bias, mask, bool(keep_tape), step_mask
        )
        last = [h_last]
        arrays.update(gates=gates, hz_h=hz_h)
    if not keep_tape:
        return outputs, last, None
    arrays["outputs"] = outputs
    return read_only(outputs), last, Tape(cell, arrays, **options)


def stacked_forward_checked(x: np.ndarray, layers: list[tuple[Any, ...]], chunk: int
                            ) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """Stacked cells over one sequence at inference (cpp/bindings/stacked.cpp): `x` (1, T, I),
    `layers` ``[(cell, kernel, recurrent_kernel, bias or None, activation)]``, each reading
    the outputs of the one before, run as a wavefront over chunks of `chunk` steps on two
    threads. Returns the last layer's ``(outputs (1, T, H), h_last (1, H))``, or None when a
    layer would be split over threads by a call of its own (then call the layers one by
    one)."""
    return _core.stacked_forward(x, layers, chunk)


def backward_checked(
    tape: Tape,
    d_outputs: Optional[np.ndarray],
    d_last: list[Any],
    truncate: int,
    input_grad: bool,
) -> dict[str, Optional[np.ndarray]]:
    """The gradients of `tape`'s forward (see the ``*_backward`` functions); `d_last` is
    ``[d_h_last]`` (LSTM: ``[d_h_last, d_c_last]``), entries None for zeros; `truncate` 0 is
    full BPTT."""
    a, cell = tape._arrays, tape._cell
    head = (a["x"], a["h0"])
    common = (a["kernel"], a["recurrent_kernel"], a["mask"], a["outputs"])
    g: tuple[Any, ...]
    if cell == "simple_rnn":
        g = _core.simple_rnn_backward(
            *head, *common, d_outputs, d_last[0], tape._options["activation"], truncate,
            input_grad, a["step_mask"],
        )
    elif cell == "lstm":
        g = _core.lstm_backward(
            *head, a["c0"], *common, a["gates"], a["cells"], d_outputs, d_last[0], d_last[1],
            truncate, input_grad, a["step_mask"],
        )
    else:
        g = _core.gru_backward(
            *head, *common, a["gates"], a["hz_h"], d_outputs, d_last[0], truncate, input_grad,
            a["step_mask"],
        )
    return dict(zip(GRAD_NAMES[cell], g))



# ----------------------------------------------------------------------------- cell arguments
CELL_GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}


def check_activation(activation: str) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(
            "Received an invalid value for argument `activation`: expected one of "
            f"{ACTIVATIONS}, got {activation!r}."
        )


def cell_arguments(cell: str, x: ArrayLike, states: list[Any], kernel: ArrayLike,
                    recurrent_kernel: ArrayLike, bias: Optional[ArrayLike],
                    recurrent_mask: Optional[ArrayLike],
                    mask: Optional[ArrayLike]) -> tuple[Any, ...]:
    """The checked arguments every forward of `cell` (plain or layer-normalized) takes:
    ``(x, states, kernel, recurrent_kernel, bias, recurrent_mask, step_mask, dtype, G)``;
    `states` is ``[h0]`` (LSTM ``[h0, c0]``), entries None for zeros."""
    gates = CELL_GATES[cell]
    x, u, dtype, B, T, I, H = recurrent_inputs(x, recurrent_kernel, gates)
    checked = [optional_array(name, s, dtype, (B, H), "(batch, units)")
               for name, s in zip(("h0", "c0"), states)]
    G = gates * H
    units = "units" if gates == 1 else f"{gates} * units"
    k = checked_array("kernel", kernel, dtype, (I, G), f"(features, {units})")
    if cell == "gru":  # Keras's reset_after bias: input and recurrent rows
        b = optional_array("bias", bias, dtype, (2, G), f"(2, {units})")
    else:
        b = optional_array("bias", bias, dtype, (G,), f"({units},)")
    m = recurrent_mask_array(recurrent_mask, dtype, B, H)
    return x, checked, k, u, b, m, step_mask_array(mask, B, T), dtype, G


def backward_entry(tape: Tape, cell: str, d_outputs: Optional[ArrayLike], d_last: list[Any],
                    truncate: Optional[int], input_grad: bool,
                    run: Callable[..., Any]) -> dict[str, Any]:
    """What every public backward does: checks `tape` (made by `cell`'s forward) and the
    upstream gradients (`d_last`: ``(name, array or None)`` per state), then `run`s the core."""
    out = tape_arrays(tape, cell)["outputs"]
    d_out = upstream_gradient("d_outputs", d_outputs, out, True)
    lasts = [upstream_gradient(name, d, out, False) for name, d in d_last]
    grads: dict[str, Any] = run(tape, d_out, lasts, truncate_steps(truncate), bool(input_grad))
    return grads


# ----------------------------------------------------------------------------- SimpleRNN
def simple_rnn_forward(
    x: ArrayLike,
    h0: Optional[ArrayLike],
    kernel: ArrayLike,
    recurrent_kernel: ArrayLike,
    bias: Optional[ArrayLike],
    activation: str = "tanh",
    *,
    recurrent_mask: Optional[ArrayLike] = None,
    keep_tape: bool = True,
    mask: Optional[ArrayLike] = None,
) -> tuple[np.ndarray, np.ndarray, Optional[Tape]]:
    """SimpleRNN over a whole sequence: ``h_t = act(x_t K + (m * h_{t-1}) U + b)``.

    Args:
        x: ``(B, T, I)``.
        h0: ``(B, H)`` or None (zeros).
        kernel: ``(I, H)``.  recurrent_kernel: ``(H, H)``.  bias: ``(H,)`` or None.
        activation: ``"tanh"``, ``"relu"`` or ``"linear"``.
        recurrent_mask: ``(B, H)`` or None: recurrent dropout mask (already scaled), multiplied
            into ``h_{t-1}`` before the recurrent product, the same at every step.
        keep_tape: False for inference: no tape is returned (None), and LSTM/GRU keep only one
            step of gate values, so memory beyond the outputs is ``O(B * H)``.
        mask: ``(B, T)`` bool or None: the steps to use (see the module docstring).

    Returns:
        ``(outputs (B, T, H), h_last (B, H), tape)``.
    """
    check_activation(activation)
    x, states, k, u, b, m, steps, _, _ = cell_arguments(
        "simple_rnn", x, [h0], kernel, recurrent_kernel, bias, recurrent_mask, mask)
    outputs, (h_last,), tape = forward_checked(
        "simple_rnn", x, states, k, u, b, m, keep_tape, activation, steps
    )
    return outputs, h_last, tape


def simple_rnn_backward(
    tape: Tape,
    d_outputs: Optional[ArrayLike],
    d_h_last: Optional[ArrayLike] = None,
    truncate: Optional[int] = None,
    *,
    input_grad: bool = True,
) -> dict[str, np.ndarray]:
    """Gradients of a SimpleRNN forward.

    Args:
        tape: from :func:`simple_rnn_forward`.
        d_outputs: ``(B, T, H)`` gradient of the loss w.r.t. the outputs, or None.
        d_h_last: ``(B, H)`` gradient w.r.t. the last state, or None.
        truncate: None (full BPTT) or ``k`` (see the module docstring).
        input_grad: False skips the input gradient (``"x"`` is then None): a model's first
            layer needs none, and it costs one GEMM over all ``B * T`` rows.

    Returns:
        dict with ``x (B, T, I)``, ``h0 (B, H)``, ``kernel``, ``recurrent_kernel``, ``bias``.
    """
    return backward_entry(
        tape, "simple_rnn", d_outputs, [("d_h_last", d_h_last)], truncate,
        input_grad, backward_checked)


# ----------------------------------------------------------------------------- LSTM
def lstm_forward(
    x: ArrayLike,
    h0: Optional[ArrayLike],
    c0: Optional[ArrayLike],
    kernel: ArrayLike,
    recurrent_kernel: ArrayLike,
    bias: Optional[ArrayLike],
    *,
    recurrent_mask: Optional[ArrayLike] = None,
    keep_tape: bool = True,
    mask: Optional[ArrayLike] = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Optional[Tape]]:
    """LSTM over a whole sequence (Keras gate order i, f, c, o).

    Args:
        x: ``(B, T, I)``.  h0, c0: ``(B, H)`` or None (zeros).
        kernel: ``(I, 4H)``.  recurrent_kernel: ``(H, 4H)``.  bias: ``(4H,)`` or None.
        recurrent_mask: ``(B, H)`` or None (see :func:`simple_rnn_forward`).
        keep_tape: False for inference (tape None, ``O(B * H)`` memory beyond the outputs).
        mask: ``(B, T)`` bool or None: the steps to use (see the module docstring).

    Returns:
        ``(outputs (B, T, H), h_last (B, H), c_last (B, H), tape)``.
    """
    x, states, k, u, b, m, steps, _, _ = cell_arguments(
        "lstm", x, [h0, c0], kernel, recurrent_kernel, bias, recurrent_mask, mask)
    outputs, (h_last, c_last), tape = forward_checked(
        "lstm", x, states, k, u, b, m, keep_tape, step_mask=steps
    )
    return outputs, h_last, c_last, tape


def lstm_backward(
    tape: Tape,
    d_outputs: Optional[ArrayLike],
    d_h_last: Optional[ArrayLike] = None,
    d_c_last: Optional[ArrayLike] = None,
    truncate: Optional[int] = None,
    *,
    input_grad: bool = True,
) -> dict[str, np.ndarray]:
    """Gradients of an LSTM forward.

    Args:
        tape: from :func:`lstm_forward`.
        d_outputs: ``(B, T, H)`` or None.  d_h_last, d_c_last: ``(B, H)`` or None.
        truncate: None (full BPTT) or ``k``.
        input_grad: False skips the input gradient (``"x"`` is then None).

    Returns:
        dict with ``x``, ``h0``, ``c0``, ``kernel``, ``recurrent_kernel``, ``bias``.
    """
    return backward_entry(
        tape, "lstm", d_outputs, [("d_h_last", d_h_last), ("d_c_last", d_c_last)], truncate,
        input_grad, backward_checked)


# ----------------------------------------------------------------------------- GRU
def gru_forward(
    x: ArrayLike,
    h0: Optional[ArrayLike],
    kernel: ArrayLike,
    recurrent_kernel: ArrayLike,
    bias: Optional[ArrayLike],
    *,
    recurrent_mask: Optional[ArrayLike] = None,
    keep_tape: bool = True,
    mask: Optional[ArrayLike] = None,
) -> tuple[np.ndarray, np.ndarray, Optional[Tape]]:
    """GRU over a whole sequence (Keras ``reset_after=True``, gate order z, r, h).

    Args:
        x: ``(B, T, I)``.  h0: ``(B, H)`` or None (zeros).
        kernel: ``(I, 3H)``.  recurrent_kernel: ``(H, 3H)``.
        bias: ``(2, 3H)`` (input bias, recurrent bias) or None.
        recurrent_mask: ``(B, H)`` or None (see :func:`simple_rnn_forward`).
        keep_tape: False for inference (tape None, ``O(B * H)`` memory beyond the outputs).
        mask: ``(B, T)`` bool or None: the steps to use (see the module docstring).

    Returns:
        ``(outputs (B, T, H), h_last (B, H), tape)``.
    """
    x, states, k, u, b, m, steps, _, _ = cell_arguments(
        "gru", x, [h0], kernel, recurrent_kernel, bias, recurrent_mask, mask)
    outputs, (h_last,), tape = forward_checked(
        "gru", x, states, k, u, b, m, keep_tape, step_mask=steps
    )
    return outputs, h_last, tape


def gru_backward(
    tape: Tape,
    d_outputs: Optional[ArrayLike],
    d_h_last: Optional[ArrayLike] = None,
    truncate: Optional[int] = None,
    *,
    input_grad: bool = True,
) -> dict[str, np.ndarray]:
    """Gradients of a GRU forward.

    Args:
        tape: from :func:`gru_forward`.
        d_outputs: ``(B, T, H)`` or None.  d_h_last: ``(B, H)`` or None.
        truncate: None (full BPTT) or ``k``.
        input_grad: False skips the input gradient (``"x"`` is then None).

    Returns:
        dict with ``x``, ``h0``, ``kernel``, ``recurrent_kernel``, ``bias (2, 3H)``.
    """
    return backward_entry(
        tape, "gru", d_outputs, [("d_h_last", d_h_last)], truncate,
        input_grad, backward_checked)
