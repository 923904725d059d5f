"""The functional API over the C++ kernels: forward and (truncated) backward of whole sequences.

It also carries Keras's ``keras.ops`` math (``tanh``, ``matmul``, ``split``, ``where``, ...), from
:mod:`fastrnn.math`: on arrays, on traced values inside a layer's ``call`` (differentiated by
:mod:`fastrnn.autodiff`) and on symbolic tensors of a model being built.

Arrays are batch-major, as Keras users pass them: ``x`` is ``(batch, time, features)``.
Weights use the Keras layout and gate order:

======================  ==============  ==================  ==============
cell                    ``kernel``      ``recurrent_kernel``  ``bias``
======================  ==============  ==================  ==============
SimpleRNN               ``(I, H)``      ``(H, H)``          ``(H,)``
LSTM (gates i, f, c, o)  ``(I, 4H)``     ``(H, 4H)``         ``(4H,)``
GRU (gates z, r, h)      ``(I, 3H)``     ``(H, 3H)``         ``(2, 3H)``
======================  ==============  ==================  ==============

GRU is Keras's ``reset_after=True`` form (the one PyTorch uses); its bias rows are the input
and the recurrent bias. Every ``*_forward`` returns the outputs ``(B, T, H)``, the last state(s)
and a *tape*: an opaque object holding what the matching ``*_backward`` needs. A tape may be
used for any number of backward calls. ``keep_tape=False`` (inference) returns None instead
and keeps only one step of gate values, so memory beyond the outputs is ``O(B * H)``. The
returned ``outputs`` array is read-only when a tape shares it.

float32 is the default; float64 works too (gradient checks). float16 is converted to float32.
Integer, boolean, complex or object arrays, and arguments whose dtypes differ from ``x``'s,
raise ``TypeError``. ``h0``/``c0``/``bias`` may be ``None`` (zeros / no bias). Empty batches and
``T = 0`` are allowed: outputs are empty, the last state is the initial state.

Masking (Keras semantics): ``mask`` ``(B, T)`` (bool, or integers: nonzero keeps the step)
marks the steps to use. A masked step leaves the state unchanged (``h_t = h_{t-1}``, and
``c_t = c_{t-1}``), so each row's last state is that of running the cell over its unmasked
steps only, and no gradient reaches a masked step's input. ``outputs`` at a masked step hold
the carried state (``h0``, or zeros, before the first unmasked step); the layers turn that into
Keras's output convention. Left or right padding and holes all work, a fully masked row keeps
its initial state. The masked call costs what the unmasked one does.

Truncated BPTT: ``truncate=k`` treats the state entering step ``t`` as a constant for every
``t = T-k, T-2k, ... > 0`` (how PyTorch users detach the state every ``k`` steps);
``truncate=None`` is full backpropagation through time.
"""

from __future__ import annotations

import builtins
from typing import Any, Callable, Optional

import numpy as np

from . import _core
from ._checks import KernelSetError, check_positive_int

__all__ = [
    "KERNELS_ENVIRONMENT_VARIABLE",
    "ModelStepper",
    "Stepper",
    "Tape",
    "adam_update",
    "available_kernel_sets",
    "gru_backward",
    "gru_forward",
    "kernel_set",
    "kernel_set_reason",
    "lstm_backward",
    "lstm_forward",
    "matmul",
    "rmsprop_update",
    "set_kernel_set",
    "sgd_update",
    "simple_rnn_backward",
    "simple_rnn_forward",
]

ArrayLike = Any
_ACTIVATIONS = ("tanh", "relu", "linear")


# ------------------------------------------------------------------------------ kernel sets
# The core carries its kernels compiled for several instruction sets ("generic": baseline
# x86-64 or the compiler's baseline elsewhere, "avx2": AVX2 + FMA, "avx512") and runs the best
# one this CPU supports, unless FASTRNN_KERNELS names another when the core loads, or
# set_kernel_set() switches (tests run the suite on every set the CPU can run this way).
KERNELS_ENVIRONMENT_VARIABLE = "FASTRNN_KERNELS"
_kernel_set_reason = "the best this CPU runs"


def kernel_set() -> str:
    """The name of the kernel set in use (``"generic"``, ``"avx2"`` or ``"avx512"``)."""
    return str(_core.kernel_set())


def available_kernel_sets() -> list[str]:
    """The kernel sets this build has and this CPU can run, from the most portable to the
    fastest."""
    return [str(name) for name in _core.available_kernel_sets()]


def kernel_set_reason() -> str:
    """Why the kernel set in use was chosen (for ``fastrnn info``)."""
    return _kernel_set_reason


def _check_kernel_set(name: Any, source: str) -> str:
    available = available_kernel_sets()
    if isinstance(name, str) and name in available:
        return name
    known = {"generic", "avx2", "avx512", "native"}
    why = ("is not a kernel set this CPU can run" if isinstance(name, str) and name in known
           else "is not a kernel set")
    raise KernelSetError(
        f"Received an invalid value for {source}: {name!r} {why}; this build and CPU can run "
        f"{', '.join(available)}."
    )


def set_kernel_set(name: str) -> None:
    """Runs every later kernel call on the kernel set `name` (one of
    :func:`available_kernel_sets`), in every thread. A name this CPU cannot run, or no kernel
    set at all, raises ValueError (KernelSetError) and changes nothing."""
    global _kernel_set_reason
    _core.select_kernel_set(_check_kernel_set(name, "argument `name`"))
    _kernel_set_reason = "set by fastrnn.backend.set_kernel_set"


def _kernel_set_from_environment() -> None:
    global _kernel_set_reason
    import os

    value = os.environ.get(KERNELS_ENVIRONMENT_VARIABLE, "")
    if value == "":
        return
    _core.select_kernel_set(_check_kernel_set(
        value, f"the environment variable {KERNELS_ENVIRONMENT_VARIABLE}"))
    _kernel_set_reason = f"{KERNELS_ENVIRONMENT_VARIABLE}={value}"


_kernel_set_from_environment()


class Tape:
    """What a backward pass needs from its forward pass. Treat it as opaque."""

    __slots__ = ("_arrays", "_cell", "_options")

    def __init__(self, cell: str, arrays: dict[str, Optional[np.ndarray]], **options: Any):
        self._cell = cell
        self._arrays = arrays
        self._options = options

    @property
    def cell(self) -> str:
        """``"simple_rnn"``, ``"lstm"`` or ``"gru"``."""
        return self._cell

    @property
    def nbytes(self) -> int:
        """Bytes held by this tape (arrays shared with the caller included)."""
        return builtins.sum(a.nbytes for a in self._arrays.values() if a is not None)

    def __repr__(self) -> str:
        x = self._arrays["x"]
        return f"<fastrnn.ops.Tape {self._cell} x{tuple(x.shape)} {x.dtype} {self.nbytes} bytes>"


# ----------------------------------------------------------------------------- validation
_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _float_dtype(name: str, a: np.ndarray) -> np.dtype:
    kind = a.dtype.kind
    if kind == "f":
        if a.dtype == np.float64 or a.dtype.itemsize > 8:
            return np.dtype(np.float64)
        return np.dtype(np.float32)
    raise TypeError(
        f"Received an invalid value for argument `{name}`: expected a float32 or float64 array, "
        f"got dtype {a.dtype}."
    )


def _array(
    name: str, value: ArrayLike, dtype: Optional[np.dtype], shape: tuple, what: str
) -> np.ndarray:
    """Returns `value` as a C-contiguous array of `dtype` and exactly `shape` (dims < 0: any)."""
    if (  # the common case, checked first and cheaply: already exactly what is needed
        type(value) is np.ndarray
        and value.dtype == dtype
        and value.shape == shape
        and value.flags.c_contiguous
    ):
        return value
    a = np.asarray(value)
    got = _float_dtype(name, a)
    if dtype is not None and got != dtype:
        raise TypeError(
            f"Received an invalid value for argument `{name}`: its dtype {a.dtype} differs from "
            f"`x`'s {dtype}; pass every array in one dtype (float32 or float64)."
        )
    if a.ndim != len(shape) or any(s >= 0 and s != g for s, g in zip(shape, a.shape)):
        want = tuple("?" if s < 0 else s for s in shape)
        raise ValueError(
            f"Received an invalid value for argument `{name}`: expected shape {want} {what}, "
            f"got {a.shape}."
        )
    return np.ascontiguousarray(a, dtype=got)


def _optional(name: str, value: ArrayLike, dtype: np.dtype, shape: tuple, what: str):
    return None if value is None else _array(name, value, dtype, shape, what)


def _inputs(x: ArrayLike, recurrent_kernel: ArrayLike, gates: int):
    """Validates x and recurrent_kernel; returns them with (dtype, B, T, I, H)."""
    if (  # the common case, checked first and cheaply
        type(x) is np.ndarray
        and x.ndim == 3
        and x.dtype in _FLOAT_DTYPES
        and x.flags.c_contiguous
        and x.shape[2] >= 1
    ):
        u = _recurrent_kernel(recurrent_kernel, gates, x.dtype)
        return (x, u, x.dtype, *x.shape, u.shape[0])
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(
            "Received an invalid value for argument `x`: expected a 3-D array (batch, time, "
            f"features), got shape {x.shape}."
        )
    dtype = _float_dtype("x", x)
    x = np.ascontiguousarray(x, dtype=dtype)
    B, T, I = x.shape
    if I < 1:
        raise ValueError(
            "Received an invalid value for argument `x`: expected at least one feature, "
            f"got shape {x.shape}."
        )
    u = _recurrent_kernel(recurrent_kernel, gates, dtype)
    return x, u, dtype, B, T, I, u.shape[0]


def _recurrent_kernel(value: ArrayLike, gates: int, dtype: Optional[np.dtype]) -> np.ndarray:
    """Validates a recurrent kernel (H, gates * H), H >= 1 (any float dtype if `dtype` is None)."""
    u = np.asarray(value)
    if u.ndim != 2 or u.shape[0] < 1 or u.shape[1] != gates * u.shape[0]:
        raise ValueError(
            "Received an invalid value for argument `recurrent_kernel`: expected shape "
            f"(units, {gates} * units) with units >= 1, got {u.shape}."
        )
    return _array("recurrent_kernel", u, dtype, u.shape, "")


def _mask(value: ArrayLike, dtype: np.dtype, B: int, H: int) -> Optional[np.ndarray]:
    return _optional("recurrent_mask", value, dtype, (B, H), "(batch, units)")


def _step_mask(value: ArrayLike, B: int, T: int) -> Optional[np.ndarray]:
    """Validates a step mask: None, or a bool/integer array (B, T); returns bool (B, T)."""
    if value is None:
        return None
    if type(value) is np.ndarray and value.dtype == np.bool_ and value.shape == (B, T):
        return np.ascontiguousarray(value)
    m = np.asarray(value)
    if m.dtype.kind not in "biu":
        raise TypeError(
            "Received an invalid value for argument `mask`: expected a bool (or integer) array "
            f"of shape (batch, time), got dtype {m.dtype}."
        )
    if m.shape != (B, T):
        raise ValueError(
            "Received an invalid value for argument `mask`: expected shape (batch, time) = "
            f"{(B, T)}, got {m.shape}."
        )
    return np.ascontiguousarray(m != 0)


def _truncate(truncate: Optional[int]) -> int:
    if truncate is None:
        return 0
    if isinstance(truncate, (bool, np.bool_)) or not isinstance(truncate, (int, np.integer)):
        raise TypeError(
            "Received an invalid value for argument `truncate`: expected None or a positive "
            f"integer, got {truncate!r}."
        )
    if truncate < 1:
        raise ValueError(
            "Received an invalid value for argument `truncate`: expected None or a positive "
            f"integer, got {truncate}."
        )
    return int(truncate)


def _check_tape(tape: Tape, cell: str) -> dict:
    if not isinstance(tape, Tape):
        raise TypeError(
            f"Received an invalid value for argument `tape`: expected the tape returned by "
            f"fastrnn.ops.{cell}_forward, got {type(tape).__name__}."
        )
    if tape.cell != cell:
        raise ValueError(
            f"Received an invalid value for argument `tape`: it comes from "
            f"{tape.cell}_forward, not {cell}_forward."
        )
    return tape._arrays


def _upstream(name: str, value: ArrayLike, outputs: np.ndarray, sequence: bool):
    """Validates an upstream gradient: like `outputs` (B, T, H), or like one state (B, H)."""
    B, T, H = outputs.shape
    shape, what = ((B, T, H), "(batch, time, units)") if sequence else ((B, H), "(batch, units)")
    return _optional(name, value, outputs.dtype, shape, what)


def _read_only(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


# ----------------------------------------------------------------------------- checked arrays
# The core call and the tape, for arrays already checked: C-contiguous, one float dtype, the
# shapes of the table above. The public functions below check their arguments, then call these;
# the recurrent layers call them directly with arrays they own or have checked, which saves the
# public functions' checks (a few microseconds a call, a few percent of a book-sized training
# step). The core checks every shape, dtype and contiguity again, so a mistake still raises
# ValueError naming the argument; it never crashes.
_GRAD_NAMES = {
    "simple_rnn": ("x", "h0", "kernel", "recurrent_kernel", "bias"),
    "lstm": ("x", "h0", "c0", "kernel", "recurrent_kernel", "bias"),
    "gru": ("x", "h0", "kernel", "recurrent_kernel", "bias"),
}


def _forward_checked(
    cell: str,
    x: np.ndarray,
    states: list,
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
    return _read_only(outputs), last, Tape(cell, arrays, **options)


def _backward_checked(
    tape: Tape,
    d_outputs: Optional[np.ndarray],
    d_last: list,
    truncate: int,
    input_grad: bool,
) -> dict[str, np.ndarray]:
    """The gradients of `tape`'s forward (see the ``*_backward`` functions); `d_last` is
    ``[d_h_last]`` (LSTM: ``[d_h_last, d_c_last]``), entries None for zeros; `truncate` 0 is
    full BPTT."""
    a, cell = tape._arrays, tape._cell
    head = (a["x"], a["h0"])
    common = (a["kernel"], a["recurrent_kernel"], a["mask"], a["outputs"])
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
    return dict(zip(_GRAD_NAMES[cell], g))



# ----------------------------------------------------------------------------- cell arguments
_CELL_GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}


def _check_activation(activation: str) -> None:
    if activation not in _ACTIVATIONS:
        raise ValueError(
            "Received an invalid value for argument `activation`: expected one of "
            f"{_ACTIVATIONS}, got {activation!r}."
        )


def _cell_arguments(cell: str, x: ArrayLike, states: list, kernel: ArrayLike,
                    recurrent_kernel: ArrayLike, bias: Optional[ArrayLike],
                    recurrent_mask: Optional[ArrayLike], mask: Optional[ArrayLike]) -> tuple:
    """The checked arguments every forward of `cell` (plain or layer-normalized) takes:
    ``(x, states, kernel, recurrent_kernel, bias, recurrent_mask, step_mask, dtype, G)``;
    `states` is ``[h0]`` (LSTM ``[h0, c0]``), entries None for zeros."""
    gates = _CELL_GATES[cell]
    x, u, dtype, B, T, I, H = _inputs(x, recurrent_kernel, gates)
    checked = [_optional(name, s, dtype, (B, H), "(batch, units)")
               for name, s in zip(("h0", "c0"), states)]
    G = gates * H
    units = "units" if gates == 1 else f"{gates} * units"
    k = _array("kernel", kernel, dtype, (I, G), f"(features, {units})")
    if cell == "gru":  # Keras's reset_after bias: input and recurrent rows
        b = _optional("bias", bias, dtype, (2, G), f"(2, {units})")
    else:
        b = _optional("bias", bias, dtype, (G,), f"({units},)")
    m = _mask(recurrent_mask, dtype, B, H)
    return x, checked, k, u, b, m, _step_mask(mask, B, T), dtype, G


def _backward_entry(tape: Tape, cell: str, d_outputs: Optional[ArrayLike], d_last: list,
                    truncate: Optional[int], input_grad: bool, run: Callable) -> dict:
    """What every public backward does: checks `tape` (made by `cell`'s forward) and the
    upstream gradients (`d_last`: ``(name, array or None)`` per state), then `run`s the core."""
    out = _check_tape(tape, cell)["outputs"]
    d_out = _upstream("d_outputs", d_outputs, out, True)
    lasts = [_upstream(name, d, out, False) for name, d in d_last]
    return run(tape, d_out, lasts, _truncate(truncate), bool(input_grad))


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
    _check_activation(activation)
    x, states, k, u, b, m, steps, _, _ = _cell_arguments(
        "simple_rnn", x, [h0], kernel, recurrent_kernel, bias, recurrent_mask, mask)
    outputs, (h_last,), tape = _forward_checked(
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
    return _backward_entry(
        tape, "simple_rnn", d_outputs, [("d_h_last", d_h_last)], truncate,
        input_grad, _backward_checked)


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
    x, states, k, u, b, m, steps, _, _ = _cell_arguments(
        "lstm", x, [h0, c0], kernel, recurrent_kernel, bias, recurrent_mask, mask)
    outputs, (h_last, c_last), tape = _forward_checked(
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
    return _backward_entry(
        tape, "lstm", d_outputs, [("d_h_last", d_h_last), ("d_c_last", d_c_last)], truncate,
        input_grad, _backward_checked)


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
    x, states, k, u, b, m, steps, _, _ = _cell_arguments(
        "gru", x, [h0], kernel, recurrent_kernel, bias, recurrent_mask, mask)
    outputs, (h_last,), tape = _forward_checked(
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
    return _backward_entry(
        tape, "gru", d_outputs, [("d_h_last", d_h_last)], truncate,
        input_grad, _backward_checked)


# ----------------------------------------------------------------------------- streaming
def _stream_setup(batch_size: Any, dtype: Any) -> tuple[int, np.dtype]:
    """A stepper's checked `batch_size` (a positive integer) and `dtype` (float32/float64)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or (
        batch_size < 1
    ):
        raise ValueError(
            "Received an invalid value for argument `batch_size`: expected a positive "
            f"integer, got {batch_size!r}."
        )
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(
            "Received an invalid value for argument `dtype`: expected float32 or float64, "
            f"got {dtype}."
        )
    return int(batch_size), dtype


def _step_ids(x: ArrayLike, batch_size: int) -> np.ndarray:
    """One step's token ids `x` as int64 ``(batch_size,)`` (the range is checked in C++)."""
    a = np.asarray(x)
    if a.dtype.kind not in "iu":
        raise TypeError(
            "Received an invalid value for argument `x`: expected integer token ids, got dtype "
            f"{a.dtype}."
        )
    if a.shape != (batch_size,):
        raise ValueError(
            f"Received an invalid value for argument `x`: expected shape ({batch_size},) (one "
            f"token id per stream), got {a.shape}."
        )
    return np.ascontiguousarray(a, dtype=np.int64)


def _step_input(x: ArrayLike, dtype: np.dtype, shape: tuple) -> np.ndarray:
    """One step's input `x` as a C-contiguous `dtype` array of exactly `shape` (batch,
    features); other float dtypes are converted, anything else is a TypeError."""
    if type(x) is not np.ndarray or x.dtype != dtype or not x.flags.c_contiguous:
        x = np.asarray(x)
        _float_dtype("x", x)  # integer, bool or object input: a TypeError naming `x`
        x = np.ascontiguousarray(x, dtype=dtype)
    if x.shape != shape:
        raise ValueError(
            f"Received an invalid value for argument `x`: expected shape {shape} (batch, "
            f"features), got {x.shape}."
        )
    return x


class Stepper:
    """One time step at a time, with the state carried: online inference for a trained cell.

    The weights are checked once, here; each :meth:`step` is one C++ call that updates the
    state in place, with no allocation and no tape, so a forecaster can step a model per
    incoming sample. The state after ``k`` steps equals ``h_last`` (and ``c_last``) of the
    matching ``*_forward`` over those ``k`` steps.

    Args:
        cell: ``"simple_rnn"``, ``"lstm"`` or ``"gru"``.
        kernel, recurrent_kernel, bias: the weights, as for the matching ``*_forward``.
        batch_size: ``B``, the number of independent streams stepped together.
        activation: SimpleRNN only.
        dtype: float32 (default) or float64.
    """

    def __init__(
        self,
        cell: str,
        kernel: ArrayLike,
        recurrent_kernel: ArrayLike,
        bias: Optional[ArrayLike],
        batch_size: int = 1,
        activation: str = "tanh",
        dtype: Any = np.float32,
    ):
        gates = {"simple_rnn": 1, "lstm": 4, "gru": 3}
        if cell not in gates:
            raise ValueError(
                "Received an invalid value for argument `cell`: expected one of "
                f"{tuple(gates)}, got {cell!r}."
            )
        if activation not in _ACTIVATIONS or (cell != "simple_rnn" and activation != "tanh"):
            raise ValueError(
                "Received an invalid value for argument `activation`: expected one of "
                f"{_ACTIVATIONS} (SimpleRNN) or 'tanh', got {activation!r}."
            )
        batch_size, dtype = _stream_setup(batch_size, dtype)
        g = gates[cell]
        u = _recurrent_kernel(recurrent_kernel, g, None)
        H = u.shape[0]
        k = _array("kernel", kernel, None, (-1, g * H), f"(features, {g} * units)")
        if k.shape[0] < 1:
            raise ValueError(
                "Received an invalid value for argument `kernel`: expected at least one "
                f"feature row, got shape {k.shape}."
            )
        self.cell, self.activation = cell, activation
        self.units, self.input_dim, self.batch_size = H, k.shape[0], int(batch_size)
        self.dtype = dtype
        self._kernel = k.astype(dtype, copy=False)
        self._recurrent_kernel = u.astype(dtype, copy=False)
        bias_shape = (2, g * H) if cell == "gru" else (g * H,)
        self._bias = _optional("bias", bias, None, bias_shape, "")
        if self._bias is not None:
            self._bias = self._bias.astype(dtype, copy=False)
        self.reset_states()

    @property
    def states(self) -> list[np.ndarray]:
        """Copies of the current state: ``[h]``, or ``[h, c]`` for LSTM, each ``(B, H)``."""
        return [s.copy() for s in self._states]

    def reset_states(self, states: Optional[list[ArrayLike]] = None) -> None:
        """Sets the state to zeros, or to the given ``[h]`` / ``[h, c]`` arrays ``(B, H)``."""
        n = 2 if self.cell == "lstm" else 1
        shape = (self.batch_size, self.units)
        if states is None:
            self._states = [np.zeros(shape, self.dtype) for _ in range(n)]
            return
        if len(states) != n:
            raise ValueError(
                f"Received an invalid value for argument `states`: expected {n} arrays, "
                f"got {len(states)}."
            )
        self._states = [
            _array(f"states[{i}]", s, None, shape, "(batch, units)").astype(self.dtype)
            for i, s in enumerate(states)
        ]

    def step(self, x: ArrayLike) -> np.ndarray:
        """Advances every stream by one step.

        Args:
            x: ``(B, I)``: this step's input of each stream.

        Returns:
            ``h`` ``(B, H)``: the new output (a copy; the state itself is kept inside).
        """
        x = _step_input(x, self.dtype, (self.batch_size, self.input_dim))
        h = self._states[0]
        if self.cell == "lstm":
            _core.lstm_step(x, h, self._states[1], self._kernel, self._recurrent_kernel,
                            self._bias)
        elif self.cell == "gru":
            _core.gru_step(x, h, self._kernel, self._recurrent_kernel, self._bias)
        else:
            _core.simple_rnn_step(x, h, self._kernel, self._recurrent_kernel, self._bias,
                                  self.activation)
        return h.copy()


class ModelStepper:
    """A chain of stages (cells, Dense, activations) stepped together, one C++ call a step.

    The kernel-level form of :meth:`fastrnn.Model.stepper` (which builds the stages from a
    model's layers). Each stage maps this step's ``(B, in)`` to ``(B, out)``; the cells carry
    their state from step to step. The weights are copied when the stepper is made: changing
    the arrays afterwards does not change it. A step allocates nothing in C++ and runs
    without the GIL; only the returned array is new (none with ``out=``).

    Args:
        stages: first to last, each a tuple ``(kind, activation, kernel, recurrent_kernel,
            bias)``: kind ``"simple_rnn"``, ``"lstm"`` or ``"gru"`` (weights as for the
            matching ``*_forward``; activation ``"tanh"``, SimpleRNN also ``"relu"`` or
            ``"linear"``), ``"dense"`` (kernel ``(in, N)``, bias ``(N,)`` or None, any
            activation of ``fastrnn.layers``), ``"activation"`` (no weights) or, first only,
            ``"embedding"`` (kernel: the table ``(vocabulary, N)``; steps then take token ids).
        batch_size: ``B``, the number of independent streams stepped together.
        dtype: float32 (default) or float64; every weight is converted to it.
    """

    def __init__(self, stages: list, batch_size: int = 1, dtype: Any = np.float32):
        batch_size, dtype = _stream_setup(batch_size, dtype)
        if not isinstance(stages, (list, tuple)) or not stages:
            raise ValueError(
                "Received an invalid value for argument `stages`: expected a non-empty list of "
                f"stages, got {stages!r}."
            )
        converted = []
        for k, stage in enumerate(stages):
            if not isinstance(stage, (list, tuple)) or len(stage) != 5:
                raise ValueError(
                    f"Received an invalid value for argument `stages[{k}]`: expected (kind, "
                    f"activation, kernel, recurrent_kernel, bias), got {stage!r}."
                )
            kind, activation, *weights = stage
            for name, w in zip(("kernel", "recurrent_kernel", "bias"), weights):
                if w is not None:
                    _float_dtype(f"stages[{k}].{name}", np.asarray(w))
            converted.append((str(kind), str(activation), *(
                None if w is None else np.ascontiguousarray(w, dtype=dtype) for w in weights)))
        self._core = _core.ModelStepper(converted, int(batch_size), dtype.name)
        self.dtype = dtype
        self.batch_size = int(batch_size)
        self.input_dim = self._core.in_features
        self.output_dim = self._core.out_features
        self.vocabulary = self._core.vocabulary  # > 0: an embedding first, fed token ids
        self._cells = [k for k, s in enumerate(converted) if s[0] in ("simple_rnn", "lstm", "gru")]

    def step(self, x: ArrayLike, out: Optional[np.ndarray] = None) -> np.ndarray:
        """Advances every stream by one step.

        Args:
            x: ``(B, I)``, this step's input of each stream (other float dtypes are converted);
                with an embedding first, ``(B,)`` integer token ids in ``[0, vocabulary)``.
            out: optional ``(B, O)`` C-contiguous array of the stepper's dtype to write into.

        Returns:
            ``(B, O)``: the last stage's output for this step (`out` itself when given).
        """
        if self.vocabulary:
            return self._core.step(_step_ids(x, self.batch_size), out)
        return self._core.step(_step_input(x, self.dtype, (self.batch_size, self.input_dim)), out)

    @property
    def states(self) -> list[list[np.ndarray]]:
        """Copies of every cell's state, first to last: ``[h]`` (LSTM ``[h, c]``), ``(B, H)``."""
        return [self._core.get_state(k) for k in self._cells]

    def reset(self, states: Optional[list] = None) -> None:
        """Sets every state to zeros, or to `states` (shaped as :attr:`states` gives them).

        Every array is checked before any state changes.
        """
        if states is None:
            self._core.reset()
            return
        if not isinstance(states, (list, tuple)) or len(states) != len(self._cells):
            raise ValueError(
                "Received an invalid value for argument `states`: expected a list with one "
                f"entry per recurrent stage ({len(self._cells)}), got {states!r:.80}."
            )
        checked = []
        for k, (stage, given) in enumerate(zip(self._cells, states)):
            want = len(self._core.get_state(stage))
            if not isinstance(given, (list, tuple)) or len(given) != want:
                raise ValueError(
                    f"Received an invalid value for argument `states[{k}]`: expected a list of "
                    f"{want} array(s) (batch, units), got {given!r:.80}."
                )
            arrays = []
            for j, s in enumerate(given):
                a = np.asarray(s)
                _float_dtype(f"states[{k}][{j}]", a)
                arrays.append(np.ascontiguousarray(a, dtype=self.dtype))
            checked.append(arrays)
        old = [self._core.get_state(stage) for stage in self._cells]
        try:
            for stage, arrays in zip(self._cells, checked):
                self._core.set_state(stage, arrays)
        except ValueError as e:  # a later array was wrong: put the earlier ones back
            for stage, arrays in zip(self._cells, old):
                self._core.set_state(stage, arrays)
            raise ValueError(f"Received an invalid value for argument `states`: {e}") from None


# ----------------------------------------------------------------------------- optimizers
# Fused in-place updates over flat parameter buffers (one C++ pass per step instead of a dozen
# NumPy passes). Every array: C-contiguous, writeable, float32 or float64, one shape.
# ----------------------------------------------------------------------------- matmul
def matmul(a: ArrayLike, b: ArrayLike, trans_a: bool = False, trans_b: bool = False) -> np.ndarray:
    """``op(a) @ op(b)`` for 2-D float arrays, through the core's OpenBLAS.

    Without `trans_a`/`trans_b` it is also Keras's ``ops.matmul``: on traced values (inside a
    layer's ``call``), layer weights, symbolic tensors and arrays of more than two axes it
    runs :func:`fastrnn.math.matmul` (NumPy's rules, with gradients).

    ``op`` transposes when `trans_a` / `trans_b` is set (no copy is made for it). Large
    products are split over the core's threads (``fastrnn.set_num_threads``); the layers use
    this rather than NumPy's ``@`` so that training never wakes a second BLAS thread pool.

    Args:
        a: ``(M, K)``, or ``(K, M)`` with `trans_a`.  b: ``(K, N)``, or ``(N, K)`` with `trans_b`.

    Returns:
        ``(M, N)``, in the dtype of `a` (float32 or float64; `b` must have the same dtype).
    """
    if not (  # the common case (every call from a layer) goes straight to the core
        type(a) is np.ndarray
        and type(b) is np.ndarray
        and a.ndim == 2
        and b.ndim == 2
        and a.dtype in _FLOAT_DTYPES
        and b.dtype == a.dtype
        and a.flags.c_contiguous
        and b.flags.c_contiguous
    ):
        if not (trans_a or trans_b) and (_math._traceable(a) or _math._traceable(b)
                                         or np.ndim(a) > 2 or np.ndim(b) > 2):
            # traced values, weights, symbolic tensors or stacks of matrices: Keras's matmul
            return _math.matmul(a, b)
        a = _array("a", a, None, (-1, -1), "(rows, columns)")
        b = _array("b", b, a.dtype, (-1, -1), "(rows, columns)")
    inner_a = a.shape[0] if trans_a else a.shape[1]
    inner_b = b.shape[1] if trans_b else b.shape[0]
    if inner_a != inner_b:
        raise ValueError(
            f"Received invalid values for arguments `a` and `b`: op(a) is "
            f"{a.shape[::-1] if trans_a else a.shape} and op(b) is "
            f"{b.shape[::-1] if trans_b else b.shape}; their inner dimensions differ."
        )
    return _core.matmul(a, b, bool(trans_a), bool(trans_b))


def sgd_update(
    param: np.ndarray,
    grad: np.ndarray,
    velocity: Optional[np.ndarray],
    learning_rate: float,
    momentum: float = 0.0,
    nesterov: bool = False,
) -> None:
    """``w -= lr g``; with ``velocity``: ``v = mu v - lr g``, ``w += v`` (Nesterov:
    ``w += mu v - lr g``). Updates ``param`` and ``velocity`` in place."""
    _core.sgd_update(param, grad, velocity, learning_rate, momentum, nesterov)


def adam_update(
    param: np.ndarray,
    grad: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    v_hat: Optional[np.ndarray],
    alpha: float,
    beta_1: float,
    beta_2: float,
    epsilon: float,
) -> None:
    """Keras Adam: ``m += (g - m)(1 - b1)``, ``v += (g^2 - v)(1 - b2)``,
    ``w -= alpha m / (sqrt(v) + eps)`` with ``alpha`` the bias-corrected learning rate;
    ``v_hat`` (AMSGrad) replaces ``v`` by ``max(v_hat, v)``. In place."""
    _core.adam_update(param, grad, m, v, v_hat, alpha, beta_1, beta_2, epsilon)


def rmsprop_update(
    param: np.ndarray,
    grad: np.ndarray,
    v: np.ndarray,
    average_grad: Optional[np.ndarray],
    momentum_buffer: Optional[np.ndarray],
    learning_rate: float,
    rho: float,
    momentum: float,
    epsilon: float,
) -> None:
    """Keras RMSprop (centered when ``average_grad`` is given, with momentum when
    ``momentum_buffer`` is given). In place."""
    _core.rmsprop_update(
        param, grad, v, average_grad, momentum_buffer, learning_rate, rho, momentum, epsilon
    )


# =============================================================================================
# Sequence layers (issue 11): Conv1D, 1-D pooling, layer and batch normalization.
# Channels-last, as Keras: ``x`` is ``(batch, steps, channels)``; Conv1D's kernel is Keras's
# ``(kernel_size, channels / groups, filters)``. Padding follows Keras exactly: "valid" (none),
# "same" (TensorFlow's: ``ceil(steps / strides)`` outputs, the odd extra zero on the right),
# "causal" (``(kernel_size - 1) * dilation_rate`` zeros on the left; Conv1D only).
__all__ += [
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


def _padding(value: Any, allowed: tuple) -> str:
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
    return _array(name, a, dtype, a.shape, "")


def _conv_geometry(x: np.ndarray, kernel: np.ndarray, strides: Any, padding: Any,
                   dilation_rate: Any, groups: Any) -> tuple[int, int, int, int, int]:
    """Checks Conv1D's arguments; returns (stride, dilation, pad_left, pad_right, groups)."""
    stride = _positive("strides", strides)
    dilation = _positive("dilation_rate", dilation_rate)
    groups = _positive("groups", groups)
    pad = _padding(padding, _CONV_PADDINGS)
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


def _conv1d_checked(x: np.ndarray, kernel: np.ndarray, bias: Optional[np.ndarray], stride: int,
                    dilation: int, left: int, right: int, groups: int) -> np.ndarray:
    """The core call for arrays the Conv1D layer owns or has checked (C-contiguous, one dtype),
    with its pads (conv1d_pads): saves the public function's checks, a few microseconds a call.
    The core checks every shape and value again, so a mistake still raises ValueError."""
    return _core.conv1d_forward(x, kernel, bias, stride, dilation, left, right, groups)


def _conv1d_backward_checked(x: np.ndarray, kernel: np.ndarray, d_y: np.ndarray, stride: int,
                             dilation: int, left: int, right: int, groups: int, use_bias: bool,
                             input_grad: bool) -> tuple:
    """The core's backward for checked arrays: (d_x or None, d_kernel, d_bias or None)."""
    return _core.conv1d_backward(x, kernel, d_y, stride, dilation, left, right, groups,
                                 use_bias, input_grad)


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
    kernel = _array("kernel", kernel, x.dtype, np.shape(kernel), "")
    geometry = _conv_geometry(x, kernel, strides, padding, dilation_rate, groups)
    bias = _optional("bias", bias, x.dtype, (kernel.shape[2],), "(filters,)")
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
    kernel = _array("kernel", kernel, x.dtype, np.shape(kernel), "")
    stride, dilation, left, right, groups = _conv_geometry(
        x, kernel, strides, padding, dilation_rate, groups)
    span = (kernel.shape[0] - 1) * dilation + 1
    L = (x.shape[1] + left + right - span) // stride + 1
    d_y = _array("d_y", d_y, x.dtype, (x.shape[0], L, kernel.shape[2]), "(batch, L, filters)")
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
    pad = _padding(padding, _POOL_PADDINGS)
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
    d_y = _array("d_y", d_y, o["dtype"], o["shape"], "(batch, L, channels), like the output")
    return _core.pool1d_backward(d_y, tape._arrays["argmax"], o["steps"], *o["geometry"])


def _rows(name: str, value: ArrayLike) -> tuple[np.ndarray, tuple]:
    """`value` (..., C) as a C-contiguous (N, C) float array, and its original shape."""
    a = np.asarray(value)
    if a.ndim < 1 or a.shape[-1] < 1:
        raise ValueError(
            f"Received an invalid value for argument `{name}`: expected an array whose last "
            f"axis has at least one value, got shape {a.shape}."
        )
    a = _array(name, a, None, a.shape, "")
    return a.reshape(-1, a.shape[-1]), a.shape


def _epsilon(value: Any) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)) \
            or not float(value) > 0.0 or not np.isfinite(float(value)):
        raise ValueError(
            f"Received an invalid value for argument `epsilon`, expected a positive float, "
            f"got {value!r}."
        )
    return float(value)


def layer_norm_forward(x: ArrayLike, gamma: ArrayLike = None, beta: ArrayLike = None,
                       epsilon: float = 1e-3) -> tuple[np.ndarray, Tape]:
    """Keras's LayerNormalization over the last axis: ``(x - mean) / sqrt(var + eps) * gamma +
    beta`` per position. x: ``(..., C)``; gamma, beta: ``(C,)`` or None. -> ``(y, tape)``."""
    x2, shape = _rows("x", x)
    C = shape[-1]
    gamma = _optional("gamma", gamma, x2.dtype, (C,), "(channels,)")
    beta = _optional("beta", beta, x2.dtype, (C,), "(channels,)")
    y, mean, rstd = _core.layer_norm_forward(x2, gamma, beta, _epsilon(epsilon))
    tape = Tape("layer_norm", {"x": x2, "mean": mean, "rstd": rstd, "gamma": gamma},
                shape=shape, center=beta is not None)
    return y.reshape(shape), tape


def layer_norm_backward(tape: Tape, d_y: ArrayLike, input_grad: bool = True) -> dict[str, Any]:
    """Gradients of :func:`layer_norm_forward`: ``{"x", "gamma", "beta"}`` (None for absent
    parameters, and for x with ``input_grad=False``)."""
    a = _check_tape(tape, "layer_norm")
    shape = tape._options["shape"]
    d_y = _array("d_y", d_y, a["x"].dtype, shape, "(like x)").reshape(a["x"].shape)
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
    gamma = _optional("gamma", gamma, dtype, (C,), "(channels,)")
    beta = _optional("beta", beta, dtype, (C,), "(channels,)")
    eps = _epsilon(epsilon)
    training = mean is None and variance is None
    if training:
        if x2.shape[0] < 1:
            raise ValueError("Received an invalid value for argument `x`: batch statistics "
                             "need at least one row, got an empty batch.")
        mean, variance = _core.batch_norm_moments(x2)
    else:
        mean = _array("mean", mean, dtype, (C,), "(channels,)")
        variance = _array("variance", variance, dtype, (C,), "(channels,)")
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
    a = _check_tape(tape, "batch_norm")
    o = tape._options
    x2 = a["x"]
    d_y = _array("d_y", d_y, x2.dtype, o["shape"], "(like x)").reshape(x2.shape)
    d_x, d_gamma, d_beta = _core.batch_norm_backward(
        d_y, x2, a["mean"], a["rstd"], a["scale"], bool(input_grad) and o["training"])
    if input_grad and not o["training"]:
        d_x = d_y * a["scale"]  # the statistics are constants: an affine map per channel
    return {"x": None if not input_grad else d_x.reshape(o["shape"]),
            "gamma": d_gamma if o["gamma"] else None, "beta": d_beta if o["beta"] else None}


# =============================================================================================
# Layer-normalized cells (issue 14): SimpleRNN, LSTM and GRU whose pre-activations are
# normalized per gate block over the units before the gate math (the layers' ``layer_norm=True``;
# Hands-On ML's LNSimpleRNNCell), in fused kernels (cpp/layer_norm_rnn.hpp). Each block of H
# units of a = x_t K + (m * h_{t-1}) U + b becomes
# ``(a - mean) / sqrt(var + epsilon) * gamma + beta`` (biased variance, per (batch, step, gate)),
# with ``gamma``, ``beta`` of shape ``(G,)``. GRU (reset_after): z and r normalize
# ``xz + hz``; the candidate normalizes ``xz_h + r * hz_h``. Arguments, masks, truncation and
# return values are the plain functions', plus ``gamma``, ``beta``, ``epsilon``; the gradients
# add ``"gamma"`` and ``"beta"``. The tape also keeps the normalized pre-activations and their
# inverse standard deviations (``(B, T, G)`` and ``(B, T, gates)``); ``keep_tape=False`` only
# drops it after the call.
__all__ += [
    "layer_norm_gru_backward",
    "layer_norm_gru_forward",
    "layer_norm_lstm_backward",
    "layer_norm_lstm_forward",
    "layer_norm_simple_rnn_backward",
    "layer_norm_simple_rnn_forward",
]

_LN_GRAD_NAMES = {cell: names + ("gamma", "beta") for cell, names in _GRAD_NAMES.items()}


def _ln_forward_checked(
    cell: str,
    x: np.ndarray,
    states: list,
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
    """As :func:`_forward_checked`, for the layer-normalized cells (arrays already checked)."""
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
    return _read_only(outputs), last, Tape("layer_norm_" + cell, arrays, **options)


def _ln_backward_checked(
    tape: Tape,
    d_outputs: Optional[np.ndarray],
    d_last: list,
    truncate: int,
    input_grad: bool,
) -> dict[str, np.ndarray]:
    """As :func:`_backward_checked`, for a tape of :func:`_ln_forward_checked`."""
    a, cell = tape._arrays, tape._cell[len("layer_norm_"):]
    head = (a["x"], a["h0"])
    common = (a["kernel"], a["recurrent_kernel"], a["gamma"], a["mask"], a["outputs"])
    ln = (a["xhat"], a["rstd"])
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


def _gamma_beta(gamma: ArrayLike, beta: ArrayLike, dtype: np.dtype, G: int, what: str):
    return (_array("gamma", gamma, dtype, (G,), what), _array("beta", beta, dtype, (G,), what))


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
    _check_activation(activation)
    x, states, k, u, b, m, steps, dtype, G = _cell_arguments(
        "simple_rnn", x, [h0], kernel, recurrent_kernel, bias, recurrent_mask, mask)
    g, be = _gamma_beta(gamma, beta, dtype, G, "(units,)")
    outputs, (h_last,), tape = _ln_forward_checked(
        "simple_rnn", x, states, k, u, b, g, be, _epsilon(epsilon), m, keep_tape, activation,
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
    return _backward_entry(
        tape, "layer_norm_simple_rnn", d_outputs, [("d_h_last", d_h_last)], truncate,
        input_grad, _ln_backward_checked)


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
    x, states, k, u, b, m, steps, dtype, G = _cell_arguments(
        "lstm", x, [h0, c0], kernel, recurrent_kernel, bias, recurrent_mask, mask)
    g, be = _gamma_beta(gamma, beta, dtype, G, "(4 * units,)")
    outputs, (h_last, c_last), tape = _ln_forward_checked(
        "lstm", x, states, k, u, b, g, be, _epsilon(epsilon), m, keep_tape, step_mask=steps)
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
    return _backward_entry(
        tape, "layer_norm_lstm", d_outputs, [("d_h_last", d_h_last), ("d_c_last", d_c_last)],
        truncate, input_grad, _ln_backward_checked)


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
    x, states, k, u, b, m, steps, dtype, G = _cell_arguments(
        "gru", x, [h0], kernel, recurrent_kernel, bias, recurrent_mask, mask)
    g, be = _gamma_beta(gamma, beta, dtype, G, "(3 * units,)")
    outputs, (h_last,), tape = _ln_forward_checked(
        "gru", x, states, k, u, b, g, be, _epsilon(epsilon), m, keep_tape, step_mask=steps)
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
    return _backward_entry(
        tape, "layer_norm_gru", d_outputs, [("d_h_last", d_h_last)], truncate,
        input_grad, _ln_backward_checked)


# =============================================================================================
# Keras's ``keras.ops`` math (fastrnn.math): works on arrays, on traced values inside a layer's
# ``call`` (with gradients) and on symbolic tensors. ``matmul`` above serves both APIs.
from . import math as _math  # noqa: E402

# Bound here by name (sum, max, min, abs and shape among them), so this module's own code
# calls builtins.sum/max/min explicitly.
globals().update({_n: getattr(_math, _n) for _n in _math.__all__ if _n != "matmul"})
__all__ += [_n for _n in _math.__all__ if _n not in __all__]
