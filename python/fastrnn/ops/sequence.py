"""Sequence ops: Conv1D, 1-D pooling, layer and batch normalization, forward and backward.

Channels-last, as Keras: ``x`` is ``(batch, steps, channels)``; Conv1D's kernel is Keras's
``(kernel_size, channels / groups, filters)``. Padding follows Keras exactly: "valid" (none),
"same" (TensorFlow's: ``ceil(steps / strides)`` outputs, the odd extra zero on the right),
"causal" (``(kernel_size - 1) * dilation_rate`` zeros on the left; Conv1D only). Every
``*_forward`` returns a tape its ``*_backward`` takes, as the recurrent cells do.

Internal API (for the Conv1D, pooling and normalization layers, through
:mod:`fastrnn.ops.internal`): :func:`check_padding`, and :func:`conv1d_checked` /
:func:`conv1d_backward_checked`, the core calls for arrays a layer owns or has checked.
"""

from __future__ import annotations

import builtins
from typing import Any, Optional

import numpy as np

from .. import _core
from .._checks import check_positive_int
from .arrays import (
    ArrayLike,
    Tape,
    check_epsilon,
    checked_array,
    optional_array,
    tape_arrays,
)

__all__ = [
    "batch_norm_backward",
    "batch_norm_forward",
    "conv1d_backward",
    "conv1d_forward",
    "conv1d_output_length",
    "conv1d_pads",
    "layer_norm_backward",
    "layer_norm_forward",
    "pool1d_backward",
    "pool1d_forward",
]


_CONV_PADDINGS = ("valid", "same", "causal")
_POOL_PADDINGS = ("valid", "same")


_positive = check_positive_int


def check_padding(value: Any, allowed: tuple[Any, ...]) -> str:
    key = value.lower() if isinstance(value, str) else value
    if key not in allowed:
        raise ValueError(
            f"Received an invalid value for argument `padding`, expected one of {allowed}, "
            f"got {value!r}."
        )
    return key


def _pads(steps: int, span: int, strides: int, padding: str) -> tuple[int, int]:
    """(left, right) zeros for a window of `span` steps moved by `strides` (Keras's rules)."""
    if padding == "valid":
        return 0, 0
    if padding == "causal":
        return span - 1, 0
    out = -(-steps // strides)  # "same": ceil(steps / strides) outputs
    total = builtins.max((out - 1) * strides + span - steps, 0)
    return total // 2, total - total // 2


def conv1d_output_length(steps: Optional[int], kernel_size: int, strides: int = 1,
                         padding: str = "valid", dilation_rate: int = 1) -> Optional[int]:
    """The output length Keras gives a Conv1D over `steps` (None stays None); may be <= 0
    when the input is shorter than the receptive field."""
    if steps is None:
        return None
    span = (kernel_size - 1) * dilation_rate + 1
    left, right = _pads(steps, span, strides, padding)
    return (steps + left + right - span) // strides + 1 if steps + left + right >= span else 0


def _sequence(name: str, value: ArrayLike, dtype: Optional[np.dtype] = None) -> np.ndarray:
    a = np.asarray(value)
    if a.ndim != 3:
        raise ValueError(
            f"Received an invalid value for argument `{name}`: expected a 3-D array (batch, "
            f"steps, channels), got shape {a.shape}."
        )
    return checked_array(name, a, dtype, a.shape, "")


def _conv_geometry(x: np.ndarray, kernel: np.ndarray, strides: Any, padding: Any,
                   dilation_rate: Any, groups: Any) -> tuple[int, int, int, int, int]:
    """Checks Conv1D's arguments; returns (stride, dilation, pad_left, pad_right, groups)."""
    stride = _positive("strides", strides)
    dilation = _positive("dilation_rate", dilation_rate)
    groups = _positive("groups", groups)
    pad = check_padding(padding, _CONV_PADDINGS)
    if kernel.ndim != 3 or builtins.min(kernel.shape) < 1:
        raise ValueError(
            "Received an invalid value for argument `kernel`: expected a 3-D array "
            f"(kernel_size, channels / groups, filters), got shape {kernel.shape}."
        )
    K, Cg, O = kernel.shape
    C = x.shape[2]
    if C % groups or O % groups:
        raise ValueError(
            f"Received an invalid value for argument `groups`: it must divide the input "
            f"channels ({C}) and the filters ({O}), got {groups}."
        )
    if Cg * groups != C:
        raise ValueError(
            f"Received an invalid value for argument `kernel`: with {C} input channels and "
            f"groups={groups} its shape must be ({K}, {C // groups}, {O}), got {kernel.shape}."
        )
    span = (K - 1) * dilation + 1
    left, right = _pads(x.shape[1], span, stride, pad)
    if x.shape[1] + left + right < span:
        raise ValueError(
            f"Received an invalid value for argument `x`: {x.shape[1]} steps (with "
            f"padding={pad!r}: {x.shape[1] + left + right}) are fewer than the receptive "
            f"field of kernel_size={K} and dilation_rate={dilation} ({span} steps); the "
            "output would be empty."
        )
    return stride, dilation, left, right, groups


def conv1d_pads(steps: int, kernel_size: int, strides: int = 1, padding: str = "valid",
                dilation_rate: int = 1) -> tuple[int, int]:
    """(left, right) zeros Keras's padding puts around `steps` steps for this convolution."""
    return _pads(steps, (kernel_size - 1) * dilation_rate + 1, strides, padding)


def conv1d_checked(x: np.ndarray, kernel: np.ndarray, bias: Optional[np.ndarray], stride: int,
                    dilation: int, left: int, right: int, groups: int) -> np.ndarray:
    """The core call for arrays the Conv1D layer owns or has checked (C-contiguous, one dtype),
    with its pads (conv1d_pads): saves the public function's checks, a few microseconds a call.
    The core checks every shape and value again, so a mistake still raises ValueError."""
    return _core.conv1d_forward(x, kernel, bias, stride, dilation, left, right, groups)


def conv1d_backward_checked(x: np.ndarray, kernel: np.ndarray, d_y: np.ndarray, stride: int,
                             dilation: int, left: int, right: int, groups: int, use_bias: bool,
                             input_grad: bool) -> tuple[Any, ...]:
    """The core's backward for checked arrays: (d_x or None, d_kernel, d_bias or None)."""
    return _core.conv1d_backward(x, kernel, d_y, stride, dilation, left, right, groups,
                                 use_bias, input_grad)


def conv1d_transpose_checked(x: np.ndarray, kernel: np.ndarray, bias: Optional[np.ndarray],
                             stride: int, dilation: int, left: int, length: int) -> np.ndarray:
    """Conv1DTranspose's core call: ``y (B, length, F)``, steps [left, left + length) of the
    transposed convolution of ``x (B, T, C)`` by Keras's ``kernel (K, F, C)``, plus bias."""
    return _core.conv1d_transpose_forward(x, kernel, bias, stride, dilation, left, length)


def conv1d_transpose_backward_checked(x: np.ndarray, kernel: np.ndarray, d_y: np.ndarray,
                                      stride: int, dilation: int, left: int, use_bias: bool,
                                      input_grad: bool) -> tuple[Any, ...]:
    """Its backward: ``(d_x (B, T, C) or None, d_kernel (K, F, C), d_bias (F,) or None)``."""
    return _core.conv1d_transpose_backward(x, kernel, d_y, stride, dilation, left, use_bias,
                                           input_grad)


def attention_checked(q: np.ndarray, k: np.ndarray, v: np.ndarray, keep: Optional[np.ndarray],
                      drop: Optional[np.ndarray], causal: bool) -> tuple[np.ndarray, np.ndarray]:
    """The attention core (cpp/attention.hpp): ``(p (B, H, Tq, Tv), ctx (B, Tq, H, Dv))`` from
    ``q (B, Tq, H, Dk)`` (already scaled), ``k (B, Tv, Hkv, Dk)``, ``v (B, Tv, Hkv, Dv)``, a
    bool ``keep (B, Tq, Tv)`` or None, the dropout keep-scale ``drop (B, H, Tq, Tv)`` or None
    and the causal flag. A row with nothing kept has p = 0."""
    return _core.attention_forward(q, k, v, keep, drop, causal)


def attention_backward_checked(q: np.ndarray, k: np.ndarray, v: np.ndarray, p: np.ndarray,
                               d_ctx: np.ndarray, drop: Optional[np.ndarray],
                               d_p: Optional[np.ndarray], causal: bool,
                               d_q_scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Its backward, given ``d_ctx (B, Tq, H, Dv)`` and a gradient ``d_p (B, H, Tq, Tv)`` on the
    returned p or None: ``(d_q * d_q_scale, d_k, d_v)`` in the shapes of q, k, v."""
    return _core.attention_backward(q, k, v, p, d_ctx, drop, d_p, causal, d_q_scale)


def conv1d_forward(x: ArrayLike, kernel: ArrayLike, bias: ArrayLike = None, strides: int = 1,
                   padding: str = "valid", dilation_rate: int = 1,
                   groups: int = 1) -> np.ndarray:
    """Keras's Conv1D without its activation.

    Args:
        x: ``(B, T, C)``.  kernel: ``(K, C / groups, O)``.  bias: ``(O,)`` or None.
        strides, dilation_rate, groups: positive integers.
        padding: ``"valid"``, ``"same"`` or ``"causal"``.

    Returns:
        ``(B, L, O)``, L as :func:`conv1d_output_length`.
    """
    x = _sequence("x", x)
    kernel = checked_array("kernel", kernel, x.dtype, np.shape(kernel), "")
    geometry = _conv_geometry(x, kernel, strides, padding, dilation_rate, groups)
    bias = optional_array("bias", bias, x.dtype, (kernel.shape[2],), "(filters,)")
    stride, dilation, left, right, groups = geometry
    return _core.conv1d_forward(x, kernel, bias, stride, dilation, left, right, groups)


def conv1d_backward(x: ArrayLike, kernel: ArrayLike, d_y: ArrayLike, strides: int = 1,
                    padding: str = "valid", dilation_rate: int = 1, groups: int = 1,
                    use_bias: bool = True, input_grad: bool = True) -> dict[str, Any]:
    """Gradients of :func:`conv1d_forward` given ``d_y`` ``(B, L, O)``.

    Returns:
        ``{"x": (B, T, C) or None (input_grad=False), "kernel": (K, C / groups, O),
        "bias": (O,) or None (use_bias=False)}``.
    """
    x = _sequence("x", x)
    kernel = checked_array("kernel", kernel, x.dtype, np.shape(kernel), "")
    stride, dilation, left, right, groups = _conv_geometry(
        x, kernel, strides, padding, dilation_rate, groups)
    span = (kernel.shape[0] - 1) * dilation + 1
    L = (x.shape[1] + left + right - span) // stride + 1
    d_y = checked_array("d_y", d_y, x.dtype, (x.shape[0], L, kernel.shape[2]),
                        "(batch, L, filters)")
    d_x, d_kernel, d_bias = _core.conv1d_backward(x, kernel, d_y, stride, dilation, left, right,
                                                  groups, bool(use_bias), bool(input_grad))
    return {"x": d_x, "kernel": d_kernel, "bias": d_bias}


def pool1d_forward(x: ArrayLike, pool_size: int = 2, strides: Optional[int] = None,
                   padding: str = "valid", mode: str = "max",
                   keep_tape: bool = True) -> tuple[np.ndarray, Optional[Tape]]:
    """Keras's MaxPooling1D (``mode="max"``) or AveragePooling1D (``"average"``).

    Args:
        x: ``(B, T, C)``.
        strides: None means `pool_size`.
        padding: ``"valid"`` or ``"same"`` (the padding never counts: max ignores it, the
            average divides by the steps inside the input, as TensorFlow's pooling does).

    Returns:
        ``(y (B, L, C), tape)``; the tape (None with ``keep_tape=False``) is for
        :func:`pool1d_backward`.
    """
    x = _sequence("x", x)
    pool = _positive("pool_size", pool_size)
    stride = pool if strides is None else _positive("strides", strides)
    pad = check_padding(padding, _POOL_PADDINGS)
    if mode not in ("max", "average"):
        raise ValueError(
            f"Received an invalid value for argument `mode`, expected 'max' or 'average', "
            f"got {mode!r}."
        )
    left, right = _pads(x.shape[1], pool, stride, pad)
    if x.shape[1] + left + right < pool:
        raise ValueError(
            f"Received an invalid value for argument `x`: {x.shape[1]} steps are fewer than "
            f"pool_size={pool} (padding={pad!r}); the output would be empty."
        )
    y, argmax = _core.pool1d_forward(x, pool, stride, left, right, mode, bool(keep_tape))
    if not keep_tape:
        return y, None
    return y, Tape(f"{mode}_pool1d", {"argmax": argmax}, steps=x.shape[1],
                   geometry=(pool, stride, left, right), shape=y.shape, dtype=x.dtype)


def pool1d_backward(tape: Tape, d_y: ArrayLike) -> np.ndarray:
    """Gradient of :func:`pool1d_forward` given ``d_y`` ``(B, L, C)``: ``d_x`` ``(B, T, C)``."""
    if not isinstance(tape, Tape) or tape.cell not in ("max_pool1d", "average_pool1d"):
        raise TypeError(
            "Received an invalid value for argument `tape`: expected the tape returned by "
            f"fastrnn.ops.pool1d_forward, got {tape!r}."
        )
    o = tape._options
    d_y = checked_array("d_y", d_y, o["dtype"], o["shape"], "(batch, L, channels), like the output")
    return _core.pool1d_backward(d_y, tape._arrays["argmax"], o["steps"], *o["geometry"])


def _rows(name: str, value: ArrayLike) -> tuple[np.ndarray, tuple[int, ...]]:
    """`value` (..., C) as a C-contiguous (N, C) float array, and its original shape."""
    a = np.asarray(value)
    if a.ndim < 1 or a.shape[-1] < 1:
        raise ValueError(
            f"Received an invalid value for argument `{name}`: expected an array whose last "
            f"axis has at least one value, got shape {a.shape}."
        )
    a = checked_array(name, a, None, a.shape, "")
    return a.reshape(-1, a.shape[-1]), a.shape




def layer_norm_forward(x: ArrayLike, gamma: ArrayLike = None, beta: ArrayLike = None,
                       epsilon: float = 1e-3) -> tuple[np.ndarray, Tape]:
    """Keras's LayerNormalization over the last axis: ``(x - mean) / sqrt(var + eps) * gamma +
    beta`` per position. x: ``(..., C)``; gamma, beta: ``(C,)`` or None. -> ``(y, tape)``."""
    x2, shape = _rows("x", x)
    C = shape[-1]
    gamma = optional_array("gamma", gamma, x2.dtype, (C,), "(channels,)")
    beta = optional_array("beta", beta, x2.dtype, (C,), "(channels,)")
    y, mean, rstd = _core.layer_norm_forward(x2, gamma, beta, check_epsilon(epsilon))
    tape = Tape("layer_norm", {"x": x2, "mean": mean, "rstd": rstd, "gamma": gamma},
                shape=shape, center=beta is not None)
    return y.reshape(shape), tape


def layer_norm_backward(tape: Tape, d_y: ArrayLike, input_grad: bool = True) -> dict[str, Any]:
    """Gradients of :func:`layer_norm_forward`: ``{"x", "gamma", "beta"}`` (None for absent
    parameters, and for x with ``input_grad=False``)."""
    a = tape_arrays(tape, "layer_norm")
    shape = tape._options["shape"]
    d_y = checked_array("d_y", d_y, a["x"].dtype, shape, "(like x)").reshape(a["x"].shape)
    d_x, d_gamma, d_beta = _core.layer_norm_backward(
        d_y, a["x"], a["mean"], a["rstd"], a["gamma"], a["gamma"] is not None,
        tape._options["center"], bool(input_grad))
    return {"x": None if d_x is None else d_x.reshape(shape), "gamma": d_gamma, "beta": d_beta}


def batch_norm_forward(x: ArrayLike, gamma: ArrayLike = None, beta: ArrayLike = None,
                       mean: ArrayLike = None, variance: ArrayLike = None,
                       epsilon: float = 1e-3) -> tuple[np.ndarray, np.ndarray, np.ndarray, Tape]:
    """Keras's BatchNormalization over every axis but the last.

    Training (``mean`` and ``variance`` None): normalizes with the batch's mean and biased
    variance. Inference: with the given ``mean``/``variance`` (the moving statistics).

    Returns:
        ``(y, mean, variance, tape)``: the statistics used ``(C,)`` and the tape for
        :func:`batch_norm_backward`.
    """
    x2, shape = _rows("x", x)
    C, dtype = shape[-1], x2.dtype
    gamma = optional_array("gamma", gamma, dtype, (C,), "(channels,)")
    beta = optional_array("beta", beta, dtype, (C,), "(channels,)")
    eps = check_epsilon(epsilon)
    training = mean is None and variance is None
    if training:
        if x2.shape[0] < 1:
            raise ValueError("Received an invalid value for argument `x`: batch statistics "
                             "need at least one row, got an empty batch.")
        mean, variance = _core.batch_norm_moments(x2)
    else:
        mean = checked_array("mean", mean, dtype, (C,), "(channels,)")
        variance = checked_array("variance", variance, dtype, (C,), "(channels,)")
    rstd = (1.0 / np.sqrt(variance + dtype.type(eps))).astype(dtype)
    scale = rstd if gamma is None else rstd * gamma
    shift = -mean * scale if beta is None else beta - mean * scale
    y = _core.batch_norm_apply(x2, scale, shift).reshape(shape)
    tape = Tape("batch_norm", {"x": x2, "mean": mean, "rstd": rstd, "scale": scale},
                shape=shape, training=training, gamma=gamma is not None, beta=beta is not None)
    return y, mean, variance, tape


def batch_norm_backward(tape: Tape, d_y: ArrayLike, input_grad: bool = True) -> dict[str, Any]:
    """Gradients of :func:`batch_norm_forward`: ``{"x", "gamma", "beta"}`` (None for absent
    parameters, and for x with ``input_grad=False``). A training tape differentiates through
    the batch statistics; an inference tape treats them as constants."""
    a = tape_arrays(tape, "batch_norm")
    o = tape._options
    x2 = a["x"]
    d_y = checked_array("d_y", d_y, x2.dtype, o["shape"], "(like x)").reshape(x2.shape)
    d_x, d_gamma, d_beta = _core.batch_norm_backward(
        d_y, x2, a["mean"], a["rstd"], a["scale"], bool(input_grad) and o["training"])
    if input_grad and not o["training"]:
        d_x = d_y * a["scale"]  # the statistics are constants: an affine map per channel
    return {"x": None if not input_grad or d_x is None else d_x.reshape(o["shape"]),
            "gamma": d_gamma if o["gamma"] else None, "beta": d_beta if o["beta"] else None}
