"""Layer-normalized SimpleRNN, LSTM and GRU cells (the layers' ``layer_norm=True``).

The pre-activations are normalized per gate block over the units before the gate math
(Hands-On ML's LNSimpleRNNCell), in fused kernels (cpp/layer_norm_rnn.hpp). Each block of H
units of ``a = x_t K + (m * h_{t-1}) U + b`` becomes
``(a - mean) / sqrt(var + epsilon) * gamma + beta`` (biased variance, per (batch, step, gate)),
with ``gamma``, ``beta`` of shape ``(G,)``. GRU (reset_after): z and r normalize
``xz + hz``; the candidate normalizes ``xz_h + r * hz_h``. Arguments, masks, truncation and
return values are the plain functions' (:mod:`.recurrent`), plus ``gamma``, ``beta``,
``epsilon``; the gradients add ``"gamma"`` and ``"beta"``. The tape also keeps the normalized
pre-activations and their inverse standard deviations (``(B, T, G)`` and ``(B, T, gates)``);
``keep_tape=False`` only drops it after the call.

Internal API (for the recurrent layers, through :mod:`fastrnn.ops.internal`):
:func:`ln_forward_checked` and :func:`ln_backward_checked`, as :mod:`.recurrent`'s
``forward_checked``/``backward_checked``.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .. import _core
from .arrays import ArrayLike, Tape, check_epsilon, checked_array, read_only
from .recurrent import GRAD_NAMES, backward_entry, cell_arguments, check_activation

__all__ = [
    "layer_norm_gru_backward",
    "layer_norm_gru_forward",
    "layer_norm_lstm_backward",
    "layer_norm_lstm_forward",
    "layer_norm_simple_rnn_backward",
    "layer_norm_simple_rnn_forward",
]


_LN_GRAD_NAMES = {cell: names + ("gamma", "beta") for cell, names in GRAD_NAMES.items()}


def ln_forward_checked(
    cell: str,
    x: np.ndarray,
    states: list[Any],
    kernel: np.ndarray,
    recurrent_kernel: np.ndarray,
    bias: Optional[np.ndarray],
    gamma: np.ndarray,
    beta: np.ndarray,
    epsilon: float,
    mask: Optional[np.ndarray],
    keep_tape: bool,
    activation: str = "tanh",
    step_mask: Optional[np.ndarray] = None,
) -> tuple[np.ndarray, list[np.ndarray], Optional[Tape]]:
    """As :func:`forward_checked`, for the layer-normalized cells (arrays already checked)."""
    arrays = {"x": x, "h0": states[0], "kernel": kernel, "recurrent_kernel": recurrent_kernel,
              "gamma": gamma, "mask": mask, "step_mask": step_mask}
    options = {}
    if cell == "simple_rnn":
        outputs, h_last, xhat, rstd = _core.layer_norm_simple_rnn_forward(
            x, states[0], kernel, recurrent_kernel, bias, gamma, beta, epsilon, mask,
            activation, step_mask)
        last = [h_last]
        options["activation"] = activation
    elif cell == "lstm":
        outputs, h_last, c_last, gates, cells, xhat, rstd = _core.layer_norm_lstm_forward(
            x, states[0], states[1], kernel, recurrent_kernel, bias, gamma, beta, epsilon, mask,
            step_mask)
        last = [h_last, c_last]
        arrays.update(c0=states[1], gates=gates, cells=cells)
    else:
        outputs, h_last, gates, hz_h, xhat, rstd = _core.layer_norm_gru_forward(
            x, states[0], kernel, recurrent_kernel, bias, gamma, beta, epsilon, mask, step_mask)
        last = [h_last]
        arrays.update(gates=gates, hz_h=hz_h)
    if not keep_tape:
        return outputs, last, None
    arrays.update(outputs=outputs, xhat=xhat, rstd=rstd)
    return read_only(outputs), last, Tape("layer_norm_" + cell, arrays, **options)


def ln_backward_checked(
    tape: Tape,
    d_outputs: Optional[np.ndarray],
    d_last: list[Any],
    truncate: int,
    input_grad: bool,
) -> dict[str, Optional[np.ndarray]]:
    """As :func:`backward_checked`, for a tape of :func:`ln_forward_checked`."""
    a, cell = tape._arrays, tape._cell[len("layer_norm_"):]
    head = (a["x"], a["h0"])
    common = (a["kernel"], a["recurrent_kernel"], a["gamma"], a["mask"], a["outputs"])
    ln = (a["xhat"], a["rstd"])
    g: tuple[Any, ...]
    if cell == "simple_rnn":
        g = _core.layer_norm_simple_rnn_backward(
            *head, *common, *ln, d_outputs, d_last[0], tape._options["activation"], truncate,
            input_grad, a["step_mask"])
    elif cell == "lstm":
        g = _core.layer_norm_lstm_backward(
            *head, a["c0"], *common, a["gates"], a["cells"], *ln, d_outputs, d_last[0],
            d_last[1], truncate, input_grad, a["step_mask"])
    else:
        g = _core.layer_norm_gru_backward(
            *head, *common, a["gates"], a["hz_h"], *ln, d_outputs, d_last[0], truncate,
            input_grad, a["step_mask"])
    return dict(zip(_LN_GRAD_NAMES[cell], g))


def _gamma_beta(gamma: ArrayLike, beta: ArrayLike, dtype: np.dtype, G: int,
                what: str) -> tuple[np.ndarray, np.ndarray]:
    return (checked_array("gamma", gamma, dtype, (G,), what),
            checked_array("beta", beta, dtype, (G,), what))


def layer_norm_simple_rnn_forward(
    x: ArrayLike,
    h0: Optional[ArrayLike],
    kernel: ArrayLike,
    recurrent_kernel: ArrayLike,
    bias: Optional[ArrayLike],
    gamma: ArrayLike,
    beta: ArrayLike,
    activation: str = "tanh",
    *,
    epsilon: float = 1e-3,
    recurrent_mask: Optional[ArrayLike] = None,
    keep_tape: bool = True,
    mask: Optional[ArrayLike] = None,
) -> tuple[np.ndarray, np.ndarray, Optional[Tape]]:
    """Layer-normalized SimpleRNN: ``h_t = act(LN(x_t K + (m * h_{t-1}) U + b) * gamma + beta)``.

    Args: as :func:`simple_rnn_forward`, plus ``gamma``, ``beta`` ``(H,)`` and ``epsilon``
    (added to the variance; 1e-3 as Keras's LayerNormalization).

    Returns:
        ``(outputs (B, T, H), h_last (B, H), tape)``.
    """
    check_activation(activation)
    x, states, k, u, b, m, steps, dtype, G = cell_arguments(
        "simple_rnn", x, [h0], kernel, recurrent_kernel, bias, recurrent_mask, mask)
    g, be = _gamma_beta(gamma, beta, dtype, G, "(units,)")
    outputs, (h_last,), tape = ln_forward_checked(
        "simple_rnn", x, states, k, u, b, g, be, check_epsilon(epsilon), m, keep_tape, activation,
        steps)
    return outputs, h_last, tape


def layer_norm_simple_rnn_backward(
    tape: Tape,
    d_outputs: Optional[ArrayLike],
    d_h_last: Optional[ArrayLike] = None,
    truncate: Optional[int] = None,
    *,
    input_grad: bool = True,
) -> dict[str, np.ndarray]:
    """Gradients of :func:`layer_norm_simple_rnn_forward` (arguments as
    :func:`simple_rnn_backward`): dict with ``x``, ``h0``, ``kernel``, ``recurrent_kernel``,
    ``bias``, ``gamma``, ``beta``."""
    return backward_entry(
        tape, "layer_norm_simple_rnn", d_outputs, [("d_h_last", d_h_last)], truncate,
        input_grad, ln_backward_checked)


def layer_norm_lstm_forward(
    x: ArrayLike,
    h0: Optional[ArrayLike],
    c0: Optional[ArrayLike],
    kernel: ArrayLike,
    recurrent_kernel: ArrayLike,
    bias: Optional[ArrayLike],
    gamma: ArrayLike,
    beta: ArrayLike,
    *,
    epsilon: float = 1e-3,
    recurrent_mask: Optional[ArrayLike] = None,
    keep_tape: bool = True,
    mask: Optional[ArrayLike] = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Optional[Tape]]:
    """Layer-normalized LSTM: each gate block of ``z = x_t K + (m * h_{t-1}) U + b``
    normalized over the units, ``* gamma + beta`` (``(4H,)``), then the gates i, f, c, o.

    Args: as :func:`lstm_forward`, plus ``gamma``, ``beta`` ``(4H,)`` and ``epsilon``.

    Returns:
        ``(outputs (B, T, H), h_last (B, H), c_last (B, H), tape)``.
    """
    x, states, k, u, b, m, steps, dtype, G = cell_arguments(
        "lstm", x, [h0, c0], kernel, recurrent_kernel, bias, recurrent_mask, mask)
    g, be = _gamma_beta(gamma, beta, dtype, G, "(4 * units,)")
    outputs, (h_last, c_last), tape = ln_forward_checked(
        "lstm", x, states, k, u, b, g, be, check_epsilon(epsilon), m, keep_tape, step_mask=steps)
    return outputs, h_last, c_last, tape


def layer_norm_lstm_backward(
    tape: Tape,
    d_outputs: Optional[ArrayLike],
    d_h_last: Optional[ArrayLike] = None,
    d_c_last: Optional[ArrayLike] = None,
    truncate: Optional[int] = None,
    *,
    input_grad: bool = True,
) -> dict[str, np.ndarray]:
    """Gradients of :func:`layer_norm_lstm_forward` (arguments as :func:`lstm_backward`):
    dict with ``x``, ``h0``, ``c0``, ``kernel``, ``recurrent_kernel``, ``bias``, ``gamma``,
    ``beta``."""
    return backward_entry(
        tape, "layer_norm_lstm", d_outputs, [("d_h_last", d_h_last), ("d_c_last", d_c_last)],
        truncate, input_grad, ln_backward_checked)


def layer_norm_gru_forward(
    x: ArrayLike,
    h0: Optional[ArrayLike],
    kernel: ArrayLike,
    recurrent_kernel: ArrayLike,
    bias: Optional[ArrayLike],
    gamma: ArrayLike,
    beta: ArrayLike,
    *,
    epsilon: float = 1e-3,
    recurrent_mask: Optional[ArrayLike] = None,
    keep_tape: bool = True,
    mask: Optional[ArrayLike] = None,
) -> tuple[np.ndarray, np.ndarray, Optional[Tape]]:
    """Layer-normalized GRU (reset_after): ``z, r = sigmoid(LN(xz_zr + hz_zr))``,
    ``cand = tanh(LN(xz_h + r * hz_h))``, each LN per gate block ``* gamma + beta`` (``(3H,)``).

    Args: as :func:`gru_forward`, plus ``gamma``, ``beta`` ``(3H,)`` and ``epsilon``.

    Returns:
        ``(outputs (B, T, H), h_last (B, H), tape)``.
    """
    x, states, k, u, b, m, steps, dtype, G = cell_arguments(
        "gru", x, [h0], kernel, recurrent_kernel, bias, recurrent_mask, mask)
    g, be = _gamma_beta(gamma, beta, dtype, G, "(3 * units,)")
    outputs, (h_last,), tape = ln_forward_checked(
        "gru", x, states, k, u, b, g, be, check_epsilon(epsilon), m, keep_tape, step_mask=steps)
    return outputs, h_last, tape


def layer_norm_gru_backward(
    tape: Tape,
    d_outputs: Optional[ArrayLike],
    d_h_last: Optional[ArrayLike] = None,
    truncate: Optional[int] = None,
    *,
    input_grad: bool = True,
) -> dict[str, np.ndarray]:
    """Gradients of :func:`layer_norm_gru_forward` (arguments as :func:`gru_backward`): dict
    with ``x``, ``h0``, ``kernel``, ``recurrent_kernel``, ``bias (2, 3H)``, ``gamma``,
    ``beta``."""
    return backward_entry(
        tape, "layer_norm_gru", d_outputs, [("d_h_last", d_h_last)], truncate,
        input_grad, ln_backward_checked)
