"""Streaming: one time step at a time with the state carried inside the core.

:class:`Stepper` steps one trained cell; :class:`ModelStepper` steps a whole model (what
``model.stepper()`` makes), one C++ call a step for all its layers.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .. import _core
from .._checks import check_positive_int
from .arrays import (
    ACTIVATIONS,
    ArrayLike,
    checked_array,
    float_dtype,
    optional_array,
    recurrent_kernel_array,
)

__all__ = [
    "ModelStepper",
    "Stepper",
]


def _stream_setup(batch_size: Any, dtype: Any) -> tuple[int, np.dtype]:
    """A stepper's checked `batch_size` (a positive integer) and `dtype` (float32/float64)."""
    batch = check_positive_int("batch_size", batch_size)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(
            "Received an invalid value for argument `dtype`: expected float32 or float64, "
            f"got {dtype}."
        )
    return batch, dtype


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


def _step_input(x: ArrayLike, dtype: np.dtype, shape: tuple[Any, ...]) -> np.ndarray:
    """One step's input `x` as a C-contiguous `dtype` array of exactly `shape` (batch,
    features); other float dtypes are converted, anything else is a TypeError."""
    a: np.ndarray = x
    if type(x) is not np.ndarray or x.dtype != dtype or not x.flags.c_contiguous:
        a = np.asarray(x)
        float_dtype("x", a)  # integer, bool or object input: a TypeError naming `x`
        a = np.ascontiguousarray(a, dtype=dtype)
    if a.shape != shape:
        raise ValueError(
            f"Received an invalid value for argument `x`: expected shape {shape} (batch, "
            f"features), got {a.shape}."
        )
    return a


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
        if activation not in ACTIVATIONS or (cell != "simple_rnn" and activation != "tanh"):
            raise ValueError(
                "Received an invalid value for argument `activation`: expected one of "
                f"{ACTIVATIONS} (SimpleRNN) or 'tanh', got {activation!r}."
            )
        batch_size, dtype = _stream_setup(batch_size, dtype)
        g = gates[cell]
        u = recurrent_kernel_array(recurrent_kernel, g, None)
        H = u.shape[0]
        k = checked_array("kernel", kernel, None, (-1, g * H), f"(features, {g} * units)")
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
        self._bias = optional_array("bias", bias, None, bias_shape, "")
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
            checked_array(f"states[{i}]", s, None, shape, "(batch, units)").astype(self.dtype)
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
        out: np.ndarray = h.copy()
        return out


class ModelStepper:
    """A graph of stages (cells, Dense, convolutions, normalizations, merges, ...) stepped
    together, one C++ call a step.

    The kernel-level form of :meth:`fastrnn.Model.stepper` (which builds the stages from a
    model's layers). Each stage maps this step's ``(B, in)`` to ``(B, out)``; the cells (and
    the causal convolutions' windows) carry their state from step to step. The weights are
    copied when the stepper is made: changing the arrays afterwards does not change it. A
    step allocates nothing in C++ and runs without the GIL; only the returned array is new
    (none with ``out=``).

    Args:
        stages: first to last, each a tuple ``(kind, activation, kernel, recurrent_kernel,
            bias)`` or ``(kind, activation, kernel, recurrent_kernel, bias, options)`` with
            ``options`` a dict of the kind's other arguments: kind ``"simple_rnn"``,
            ``"lstm"`` or ``"gru"`` (weights as for the matching ``*_forward``; activation
            ``"tanh"``, SimpleRNN also ``"relu"`` or ``"linear"``; with options ``gamma``,
            ``beta`` ``(G,)`` and ``epsilon`` the layer-normalized cell, as for
            ``layer_norm_*_forward``), ``"dense"`` (kernel
            ``(in, N)``, bias ``(N,)`` or None, any activation of ``fastrnn.layers``),
            ``"activation"`` (no weights; an ``"elu"`` takes option ``alpha``), ``"relu"``
            (options ``slope``: an array of one value or one per feature, ``threshold``,
            ``max_value`` (None: no cap) and ``inclusive``: ``x == threshold`` gives ``x``;
            ``y = x`` above the threshold, ``slope * (x - threshold)`` below, then capped:
            ReLU, LeakyReLU, PReLU), ``"unit_norm"`` (no weights: UnitNormalization over the
            features), ``"rms_norm"`` (options ``scale`` ``(C,)`` and ``epsilon``:
            RMSNormalization), ``"layer_norm"`` (options ``gamma``, ``beta``
            ``(C,)`` or None, ``epsilon``: LayerNormalization over the features),
            ``"batch_norm"`` (options ``moving_mean``, ``moving_variance``, ``gamma``,
            ``beta`` ``(C,)``, ``epsilon``: BatchNormalization at inference), ``"conv1d"``
            (a causal convolution of stride 1: kernel ``(K, C / groups, O)``, bias ``(O,)`` or
            None, options ``dilation`` and ``groups``; it keeps its last ``(K - 1) dilation
            + 1`` inputs as its state), a merge ``"add"``, ``"subtract"``, ``"multiply"``,
            ``"average"``, ``"maximum"``, ``"minimum"`` or ``"concatenate"`` (no weights; the
            merge layers over the features) or, first only, ``"embedding"`` (kernel: the
            table ``(vocabulary, N)``; steps then take token ids). Any stage's options may
            name the stages it reads, ``inputs``: a list of earlier stage numbers, ``-1`` the
            model's input (a merge reads several); by default the stage before. The last
            stage gives the output.
        batch_size: ``B``, the number of independent streams stepped together.
        dtype: float32 (default) or float64; every weight is converted to it.
        input_dim: the input's features ``I``; None: learnt from the first stage's weights
            (needed when the first stage has none, e.g. an activation).
    """

    def __init__(self, stages: list[Any], batch_size: int = 1, dtype: Any = np.float32,
                 input_dim: Optional[int] = None):
        batch_size, dtype = _stream_setup(batch_size, dtype)
        if not isinstance(stages, (list, tuple)) or not stages:
            raise ValueError(
                "Received an invalid value for argument `stages`: expected a non-empty list of "
                f"stages, got {stages!r}."
            )
        in_features = 0 if input_dim is None else check_positive_int("input_dim", input_dim)
        converted = []
        for k, stage in enumerate(stages):
            if not isinstance(stage, (list, tuple)) or len(stage) not in (5, 6) or (
                    len(stage) == 6 and not isinstance(stage[5], dict)):
                raise ValueError(
                    f"Received an invalid value for argument `stages[{k}]`: expected (kind, "
                    f"activation, kernel, recurrent_kernel, bias[, options dict]), got "
                    f"{stage!r:.200}."
                )
            kind, activation, *weights = stage[:5]
            for name, w in zip(("kernel", "recurrent_kernel", "bias"), weights):
                if w is not None:
                    float_dtype(f"stages[{k}].{name}", np.asarray(w))
            entry: tuple[Any, ...] = (str(kind), str(activation), *(
                None if w is None else np.ascontiguousarray(w, dtype=dtype) for w in weights))
            if len(stage) == 6:
                entry += (self._options(k, stage[5], dtype),)
            converted.append(entry)
        self._core = _core.ModelStepper(converted, int(batch_size), dtype.name, in_features)
        self.dtype = dtype
        self.batch_size = int(batch_size)
        self.input_dim = self._core.in_features
        self.output_dim = self._core.out_features
        self.vocabulary = self._core.vocabulary  # > 0: an embedding first, fed token ids
        # the stages with a state: the cells, and the causal convolutions' windows
        self._cells = [k for k in range(len(converted)) if self._core.get_state(k)]

    @staticmethod
    def _options(k: int, options: dict[str, Any], dtype: np.dtype) -> dict[str, Any]:
        """A stage's options with every array as a C-contiguous `dtype` array (numbers and
        the list of `inputs` pass as they are)."""
        out: dict[str, Any] = {}
        for key, value in options.items():
            if key == "inputs":
                value = [int(i) for i in value]
            elif isinstance(value, (np.ndarray, list, tuple)):
                float_dtype(f"stages[{k}].{key}", np.asarray(value))
                value = np.ascontiguousarray(value, dtype=dtype)
            out[str(key)] = value
        return out

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
        """Copies of the state of every stage that has one, first to last: a cell's ``[h]``
        (LSTM ``[h, c]``) ``(B, H)``; a causal convolution's ``[window]`` ``(B, span, C)``,
        its last ``span`` inputs, oldest first (zeros before the first step)."""
        return [self._core.get_state(k) for k in self._cells]

    def reset(self, states: Optional[list[Any]] = None) -> None:
        """Sets every state to zeros, or to `states` (shaped as :attr:`states` gives them).

        Every array is checked before any state changes.
        """
        if states is None:
            self._core.reset()
            return
        if not isinstance(states, (list, tuple)) or len(states) != len(self._cells):
            raise ValueError(
                "Received an invalid value for argument `states`: expected a list with one "
                f"entry per stage with a state ({len(self._cells)}), got {states!r:.80}."
            )
        checked = []
        for k, (stage, given) in enumerate(zip(self._cells, states)):
            want = len(self._core.get_state(stage))
            if not isinstance(given, (list, tuple)) or len(given) != want:
                raise ValueError(
                    f"Received an invalid value for argument `states[{k}]`: expected a list of "
                    f"{want} array(s) as `states` gives them, got {given!r:.80}."
                )
            arrays = []
            for j, s in enumerate(given):
                a = np.asarray(s)
                float_dtype(f"states[{k}][{j}]", a)
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
