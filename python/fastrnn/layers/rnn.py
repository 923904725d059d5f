"""Keras's ``RNN(cell)`` and the cell classes: ``SimpleRNNCell``, ``LSTMCell``, ``GRUCell``,
``StackedRNNCells``, and cells of your own.

Shapes: B batch, T time, F input features, H units.

A *cell* is a layer whose ``call(inputs, states)`` takes one step ``(B, F)`` and the states
(a list of ``(B, size)`` arrays, one per entry of its ``state_size``) and returns
``(output, new_states)``; ``output_size`` (default: the first state size) is the width of the
output. A cell of your own is a Keras-style layer (``build`` + ``add_weight``, ``call`` in
:mod:`fastrnn.ops` math); its gradient comes from the tape.

``RNN(cell)`` runs the cell over the time axis:

* ``SimpleRNNCell``, ``LSTMCell`` and ``GRUCell`` (their arguments in the range the fused
  kernels cover: SimpleRNN's activation tanh/relu/linear, LSTM/GRU tanh and sigmoid,
  ``reset_after=True``) run as one fused kernel call, exactly as ``SimpleRNN``/``LSTM``/``GRU``
  with the same weights (``kernel``, ``recurrent_kernel``, ``bias``; the cell owns them).
* Any other cell, a list of cells or ``StackedRNNCells`` runs step by step on the tape: its
  gradient goes back through every step (or ``truncate_bptt`` steps: the state entering step
  ``t`` is a constant for ``t = T-k, T-2k, ... > 0``, as in the fused kernels).

Both paths take a mask (a masked step keeps the states; the output repeats the last one, zeros
before the first, or zeros everywhere masked with ``zero_output_for_mask``),
``return_sequences``, ``return_state``, ``go_backwards``, ``stateful`` (the last states carried
into the next call, a fixed batch size) and ``initial_state``. ``unroll`` is accepted and has
no effect.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .. import autodiff
from .. import math as ops
from ..autodiff import Trace
from . import traced
from .base import (
    Layer,
    check_activation,
    check_bool,
    check_positive_int,
    check_rate,
    deserialize,
    make_initializer,
    register,
    rng_aware,
    serialize,
    serialize_initializer,
    skipped_initialization,
)
from .recurrent import GRU, LSTM, SimpleRNN

__all__ = ["RNN", "GRUCell", "LSTMCell", "SimpleRNNCell", "StackedRNNCells"]


# ----------------------------------------------------------------------------- cells
class _Cell(Layer):
    """What the three built-in cells share: Keras's arguments and weights."""

    _gates = 1
    _fused: type = SimpleRNN

    def __init__(self, units: int, activation: Any = "tanh",
                 recurrent_activation: Any = "sigmoid", use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform",
                 recurrent_initializer: Any = "orthogonal", bias_initializer: Any = "zeros",
                 dropout: float = 0.0, recurrent_dropout: float = 0.0, **kwargs: Any):
        super().__init__(**kwargs)
        self.units = check_positive_int("units", units)
        self.activation = check_activation("activation", activation)
        self.recurrent_activation = check_activation("recurrent_activation",
                                                     recurrent_activation)
        self.use_bias = check_bool("use_bias", use_bias)
        self.kernel_initializer = kernel_initializer
        self.recurrent_initializer = recurrent_initializer
        self.bias_initializer = bias_initializer
        self.dropout = check_rate("dropout", dropout)
        self.recurrent_dropout = check_rate("recurrent_dropout", recurrent_dropout)

    @property
    def output_size(self) -> int:
        return self.units

    def _bias(self) -> tuple:
        return (self._gates * self.units,), self.bias_initializer

    def build(self, input_shape: tuple) -> None:
        features = input_shape[-1]
        if features is None:
            raise ValueError(f"Cell `{self.name}` needs a known feature count, got input shape "
                             f"{tuple(input_shape)}.")
        G = self._gates * self.units
        self.kernel = self.add_weight(shape=(features, G), name="kernel",
                                      initializer=self.kernel_initializer)
        self.recurrent_kernel = self.add_weight(shape=(self.units, G), name="recurrent_kernel",
                                                initializer=self.recurrent_initializer)
        if self.use_bias:
            shape, init = self._bias()
            self.bias = self.add_weight(shape=shape, name="bias", initializer=init)
        else:
            self.bias = None

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (input_shape[0], self.units)

    def _check_step(self, training: Any) -> None:
        if training and (self.dropout or self.recurrent_dropout):
            raise NotImplementedError(
                f"Cell `{self.name}`: dropout/recurrent_dropout run only on the fused path "
                "(RNN(cell) with this cell alone); inside StackedRNNCells or a cell of your own "
                "apply fastrnn.layers.Dropout to the inputs instead.")

    def fused_layer(self, **rnn_args: Any) -> Optional[Layer]:
        """The fused layer computing ``RNN(self, **rnn_args)``, or None when the kernels do
        not cover this cell's arguments."""
        try:
            return self._fused(**self._fused_args(), **rnn_args)
        except NotImplementedError:
            return None

    def _fused_args(self) -> dict:
        return {"units": self.units, "activation": self.activation,
                "recurrent_activation": self.recurrent_activation, "use_bias": self.use_bias,
                "dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout,
                "dtype": self.dtype.name}

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units, "activation": self.activation,
                "recurrent_activation": self.recurrent_activation, "use_bias": self.use_bias,
                "kernel_initializer": serialize_initializer(self.kernel_initializer),
                "recurrent_initializer": serialize_initializer(self.recurrent_initializer),
                "bias_initializer": serialize_initializer(self.bias_initializer),
                "dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout}


def _act(name: str, x: Any) -> Any:
    return ops.ACTIVATIONS[name](x)


@register
class SimpleRNNCell(_Cell):
    """Keras's ``SimpleRNNCell``: ``h_t = activation(x_t K + b + h_{t-1} U)``.

    Weights ``kernel (F, H)``, ``recurrent_kernel (H, H)``, ``bias (H,)``; ``state_size = H``.
    """

    _fused = SimpleRNN

    def __init__(self, units: int, activation: Any = "tanh", **kwargs: Any):
        kwargs.pop("recurrent_activation", None)
        super().__init__(units, activation=activation, **kwargs)

    @property
    def state_size(self) -> int:
        return self.units

    def call(self, inputs: Any, states: Any, training: Any = None) -> tuple:
        self._check_step(training)
        prev = states[0] if isinstance(states, (list, tuple)) else states
        h = ops.matmul(inputs, self.kernel)
        if self.bias is not None:
            h = h + self.bias
        out = _act(self.activation, h + ops.matmul(prev, self.recurrent_kernel))
        return out, ([out] if isinstance(states, (list, tuple)) else out)

    def _fused_args(self) -> dict:
        args = super()._fused_args()
        del args["recurrent_activation"]
        return args

    def get_config(self) -> dict:
        config = super().get_config()
        del config["recurrent_activation"]
        return config


@register
class LSTMCell(_Cell):
    """Keras's ``LSTMCell`` (gates i, f, c, o). Weights ``kernel (F, 4H)``,
    ``recurrent_kernel (H, 4H)``, ``bias (4H,)`` (forget-gate bias ones with
    ``unit_forget_bias``); ``state_size = [H, H]`` (h, c)."""

    _gates = 4
    _fused = LSTM

    def __init__(self, units: int, unit_forget_bias: bool = True, **kwargs: Any):
        super().__init__(units, **kwargs)
        self.unit_forget_bias = check_bool("unit_forget_bias", unit_forget_bias)

    @property
    def state_size(self) -> list:
        return [self.units, self.units]

    def _bias(self) -> tuple:
        H = self.units
        if not self.unit_forget_bias:
            return (4 * H,), self.bias_initializer
        base, ones = make_initializer(self.bias_initializer), make_initializer("ones")

        @rng_aware
        def forget_ones(shape: tuple, dtype: Any = np.float32, rng: Any = None) -> np.ndarray:
            return np.concatenate([base((H,), dtype=dtype, rng=rng),
                                   ones((H,), dtype=dtype, rng=rng),
                                   base((2 * H,), dtype=dtype, rng=rng)])
        return (4 * H,), forget_ones

    def call(self, inputs: Any, states: Any, training: Any = None) -> tuple:
        self._check_step(training)
        h_prev, c_prev = states[0], states[1]
        z = ops.matmul(inputs, self.kernel) + ops.matmul(h_prev, self.recurrent_kernel)
        if self.bias is not None:
            z = z + self.bias
        H = self.units
        rec = self.recurrent_activation
        i = _act(rec, z[:, :H])
        f = _act(rec, z[:, H:2 * H])
        c = f * c_prev + i * _act(self.activation, z[:, 2 * H:3 * H])
        o = _act(rec, z[:, 3 * H:])
        h = o * _act(self.activation, c)
        return h, [h, c]

    def _fused_args(self) -> dict:
        return {**super()._fused_args(), "unit_forget_bias": self.unit_forget_bias}

    def get_config(self) -> dict:
        return {**super().get_config(), "unit_forget_bias": self.unit_forget_bias}


@register
class GRUCell(_Cell):
    """Keras's ``GRUCell`` (gates z, r, h). ``reset_after=True`` (default): ``bias (2, 3H)``
    (input and recurrent biases), the reset gate applied after the recurrent product;
    ``reset_after=False``: ``bias (3H,)``, applied before. ``state_size = H``."""

    _gates = 3
    _fused = GRU

    def __init__(self, units: int, reset_after: bool = True, **kwargs: Any):
        super().__init__(units, **kwargs)
        self.reset_after = check_bool("reset_after", reset_after)

    @property
    def state_size(self) -> int:
        return self.units

    def _bias(self) -> tuple:
        G = 3 * self.units
        return ((2, G) if self.reset_after else (G,)), self.bias_initializer

    def call(self, inputs: Any, states: Any, training: Any = None) -> tuple:
        self._check_step(training)
        h_prev = states[0] if isinstance(states, (list, tuple)) else states
        H = self.units
        x = ops.matmul(inputs, self.kernel)
        if self.reset_after:
            inner = ops.matmul(h_prev, self.recurrent_kernel)
            if self.bias is not None:
                x = x + self.bias[0]
                inner = inner + self.bias[1]
            rec = self.recurrent_activation
            z = _act(rec, x[:, :H] + inner[:, :H])
            r = _act(rec, x[:, H:2 * H] + inner[:, H:2 * H])
            hh = _act(self.activation, x[:, 2 * H:] + r * inner[:, 2 * H:])
        else:
            if self.bias is not None:
                x = x + self.bias
            inner = ops.matmul(h_prev, self.recurrent_kernel[:, :2 * H])
            rec = self.recurrent_activation
            z = _act(rec, x[:, :H] + inner[:, :H])
            r = _act(rec, x[:, H:2 * H] + inner[:, H:])
            hh = _act(self.activation,
                      x[:, 2 * H:] + ops.matmul(r * h_prev, self.recurrent_kernel[:, 2 * H:]))
        h = z * h_prev + (1 - z) * hh
        return h, ([h] if isinstance(states, (list, tuple)) else h)

    def fused_layer(self, **rnn_args: Any) -> Optional[Layer]:
        return super().fused_layer(**rnn_args) if self.reset_after else None

    def get_config(self) -> dict:
        return {**super().get_config(), "reset_after": self.reset_after}


@register
class StackedRNNCells(Layer):
    """Keras's ``StackedRNNCells``: cells applied one after another in each step (the output
    of one is the input of the next). ``state_size``: the list of the cells' state sizes."""

    def __init__(self, cells: list, **kwargs: Any):
        if not isinstance(cells, (list, tuple)) or not cells:
            raise ValueError("Received an invalid value for argument `cells`, expected a "
                             f"non-empty list of cells, got {cells!r}.")
        for k, cell in enumerate(cells):
            _check_cell(cell, f"cells[{k}]")
        kwargs.setdefault("dtype", cells[0].dtype.name)
        super().__init__(**kwargs)
        self.cells = list(cells)

    @property
    def state_size(self) -> list:
        return [c.state_size for c in self.cells]

    @property
    def output_size(self) -> int:
        return _output_size(self.cells[-1])

    def build(self, input_shape: tuple) -> None:
        shape = tuple(input_shape)
        for cell in self.cells:
            if not cell.built:
                cell._build_for(shape[1:])
            shape = (shape[0], _output_size(cell))

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (input_shape[0], self.output_size)

    def call(self, inputs: Any, states: Any, training: Any = None) -> tuple:
        new_states = []
        for cell, cell_states in zip(self.cells, states):
            nested = isinstance(cell_states, (list, tuple))
            inputs, out_states = _call_cell(cell, inputs,
                                            list(cell_states) if nested else [cell_states],
                                            training)
            new_states.append(out_states if nested else out_states[0])
        return inputs, new_states

    def get_config(self) -> dict:
        return {**Layer.get_config(self), "cells": [serialize(c) for c in self.cells]}

    @classmethod
    def from_config(cls, config: dict) -> StackedRNNCells:
        config = dict(config)
        config["cells"] = [deserialize(c) for c in config.get("cells") or []]
        return cls(**config)


# ----------------------------------------------------------------------------- helpers
def _check_cell(cell: Any, what: str = "cell") -> None:
    if not isinstance(cell, Layer):
        raise ValueError(f"Received an invalid value for argument `{what}`, expected a cell "
                         f"(a fastrnn Layer with `state_size` and call(inputs, states)), got "
                         f"{type(cell).__name__}.")
    try:
        size = cell.state_size
    except AttributeError:
        size = None
    if size is None:
        raise ValueError(
            f"Received an invalid value for argument `{what}`: cell `{cell.name}` "
            f"({type(cell).__name__}) has no `state_size`; a cell sets self.state_size (an "
            "integer, or a list of integers, one per state) and defines call(inputs, states).")
    try:
        _flat_sizes(size)
    except (TypeError, ValueError):
        raise ValueError(
            f"Received an invalid value for `{what}.state_size`: expected a positive integer "
            f"or a list of them, got {size!r}.") from None


def _flat_sizes(size: Any) -> list[int]:
    if isinstance(size, (list, tuple)):
        return [n for s in size for n in _flat_sizes(s)]
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(size)
    return [int(size)]


def _nest(size: Any, flat: list) -> Any:
    """`flat` states regrouped as `size` is nested (a cell's own list)."""
    it = iter(flat)

    def build(s: Any) -> Any:
        if isinstance(s, (list, tuple)):
            return [build(v) for v in s]
        return next(it)
    return build(size) if isinstance(size, (list, tuple)) else [next(it)]


def _output_size(cell: Any) -> int:
    size = getattr(cell, "output_size", None)
    if size is None:
        size = _flat_sizes(cell.state_size)[0]
    return int(size)


def _call_cell(cell: Layer, x: Any, states: list, training: Any) -> tuple:
    out = cell(x, states, training=training)
    if not isinstance(out, (list, tuple)) or len(out) != 2:
        raise ValueError(
            f"Cell `{cell.name}`: call(inputs, states) must return (output, new_states), got "
            f"{type(out).__name__}.")
    y, new = out
    new = list(new) if isinstance(new, (list, tuple)) else [new]
    return y, new


# ----------------------------------------------------------------------------- RNN
@register
class RNN(Layer):
    """Keras's ``RNN``: a cell run over the time axis (see the module docstring).

    Args:
        cell: a cell, or a list of cells (stacked).
        return_sequences, return_state, go_backwards, stateful, unroll, zero_output_for_mask:
            as Keras's.
        truncate_bptt: backpropagate at most this many steps into each state (None: all).

    Input ``(B, T, F)``; output ``(B, T, out)`` with ``return_sequences`` else ``(B, out)``,
    a list ``[output, *final_states]`` with ``return_state``.
    """

    supports_masking = True
    makes_mask = False

    def __init__(self, cell: Any, return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, stateful: bool = False, unroll: bool = False,
                 zero_output_for_mask: bool = False, truncate_bptt: Optional[int] = None,
                 **kwargs: Any):
        if isinstance(cell, (list, tuple)):
            cell = StackedRNNCells(list(cell))
        _check_cell(cell)
        kwargs.setdefault("dtype", cell.dtype.name)
        super().__init__(**kwargs)
        self.cell = cell
        self.return_sequences = check_bool("return_sequences", return_sequences)
        self.return_state = check_bool("return_state", return_state)
        self.go_backwards = check_bool("go_backwards", go_backwards)
        self.stateful = check_bool("stateful", stateful)
        self.unroll = check_bool("unroll", unroll)
        self.zero_output_for_mask = check_bool("zero_output_for_mask", zero_output_for_mask)
        self.truncate_bptt = None if truncate_bptt is None else check_positive_int(
            "truncate_bptt", truncate_bptt)
        self._fused: Optional[Layer] = None
        self._trace_state: Any = None
        self._states: Optional[list] = None
        self._stateful_batch: Optional[int] = None
        self.initial_state_grads: Optional[list] = None

    # ------------------------------------------------------------------ shapes and weights
    @property
    def _sizes(self) -> list[int]:
        return _flat_sizes(self.cell.state_size)

    @property
    def _n_states(self) -> int:  # (what Bidirectional asks of a recurrent layer)
        return len(self._sizes)

    @property
    def units(self) -> int:
        return _output_size(self.cell)

    def compute_output_shape(self, input_shape: tuple) -> Any:
        input_shape = tuple(input_shape)
        if len(input_shape) != 2:
            raise ValueError(
                f"Layer `{self.name}` expects inputs of shape (batch, time, features), i.e. an "
                f"input_shape of (time, features); got {input_shape}.")
        out_size = _output_size(self.cell)
        out = (input_shape[0], out_size) if self.return_sequences else (out_size,)
        if self.return_state:
            return [out] + [(n,) for n in self._sizes]
        return out

    def compute_mask(self, x: Any, mask: Any) -> Any:
        out = mask if self.return_sequences else None
        if self.return_state:
            return [out] + [None] * len(self._sizes)
        return out

    def build(self, input_shape: tuple) -> None:
        input_shape = tuple(input_shape)
        self.compute_output_shape(input_shape)
        if input_shape[-1] is None:
            raise ValueError(f"Layer `{self.name}` needs a known feature count (last axis), "
                             f"got input shape {input_shape}.")
        if not self.cell.built:
            if self.cell.seed is None:
                self.cell._rng = self.rng  # RNN(LSTMCell(n), seed=s) draws as LSTM(n, seed=s)
            self.cell._build_for((input_shape[-1],))
        self._fused = None
        if isinstance(self.cell, _Cell):
            fused = self.cell.fused_layer(
                return_sequences=self.return_sequences, return_state=self.return_state,
                go_backwards=self.go_backwards, stateful=self.stateful,
                truncate_bptt=self.truncate_bptt,
                zero_output_for_mask=self.zero_output_for_mask, name=f"{self.name}_fused",
                batch_size=self.batch_size)
            if fused is not None:
                fused._rng = self.rng  # its dropout masks
                with skipped_initialization():
                    fused.build(input_shape)
                self._fused = fused
                self._alias_fused()
        self.input_shape = input_shape
        self.output_shape = self.compute_output_shape(input_shape)
        self.built = True

    def _alias_fused(self) -> None:
        """The fused layer computes with the cell's arrays (the cell owns the weights)."""
        if self._fused is not None:
            self._fused._weights = self.cell._weights
            self._fused._grads = self.cell._grads

    @property
    def weights(self) -> list[np.ndarray]:
        return self.cell.weights

    @property
    def grads(self) -> list[np.ndarray]:
        return self.cell.grads

    @property
    def weight_names(self) -> list[str]:
        return [f"{self.cell.name}/{n}" for n in self.cell.weight_names]

    @property
    def variables(self) -> list:
        return self.cell.variables

    def _bind(self, weight_views: list, grad_views: list) -> None:
        self.cell._bind(weight_views, grad_views)
        self._alias_fused()

    # ------------------------------------------------------------------ states
    def reset_states(self) -> None:
        self._states = None
        self._stateful_batch = None
        if self._fused is not None:
            self._fused.reset_states()

    @property
    def states(self) -> Optional[list]:
        if self._fused is not None:
            return self._fused.states
        return None if self._states is None else [s.copy() for s in self._states]

    def check_initial_state_shapes(self, shapes: list) -> None:
        want = self._sizes
        got = [tuple(s) for s in shapes]
        if len(got) != len(want) or any(len(s) != 1 or s[0] not in (None, n)
                                         for s, n in zip(got, want)):
            raise ValueError(
                f"Layer `{self.name}` expects `initial_state`: {len(want)} tensor(s) of shapes "
                f"{[(None, n) for n in want]}, got {[(None, *s) for s in got]}.")

    def _initial_states(self, B: int, initial_state: Any) -> list:
        sizes = self._sizes
        if initial_state is not None:
            given = list(initial_state) if isinstance(initial_state, (list, tuple)) \
                else [initial_state]
            if len(given) != len(sizes):
                raise ValueError(f"Layer `{self.name}` expects {len(sizes)} initial state "
                                 f"array(s), got {len(given)}.")
            out = []
            for s, n in zip(given, sizes):
                s = np.asarray(s, dtype=self.dtype)
                if s.shape != (B, n):
                    raise ValueError(f"Layer `{self.name}`: an initial state must have shape "
                                     f"{(B, n)}, got {s.shape}.")
                out.append(s)
            return out
        if self.stateful:
            fixed = self.batch_size or self._stateful_batch
            if fixed is not None and fixed != B:
                raise ValueError(
                    f"Stateful layer `{self.name}` needs a fixed batch size: it has been used "
                    f"with batch size {fixed}, got {B}. Call reset_states() first.")
            self._stateful_batch = B
            if self._states is not None:
                return list(self._states)
        get_initial = getattr(self.cell, "get_initial_state", None)
        if callable(get_initial):
            states = get_initial(batch_size=B)
            states = list(states) if isinstance(states, (list, tuple)) else [states]
            flat = [np.asarray(autodiff.value_of(s), dtype=self.dtype)
                    for s in traced._flatten(states)]
            if [s.shape for s in flat] != [(B, n) for n in sizes]:
                raise ValueError(
                    f"Cell `{self.cell.name}`: get_initial_state(batch_size={B}) returned "
                    f"shapes {[s.shape for s in flat]}, expected {[(B, n) for n in sizes]}.")
            return flat
        return [np.zeros((B, n), dtype=self.dtype) for n in sizes]

    # ------------------------------------------------------------------ forward / backward
    def forward(self, x: Any, training: bool = False, initial_state: Any = None,
                mask: Optional[np.ndarray] = None) -> Any:
        """``x (B, T, F)`` -> the output(s) (see the class docstring)."""
        x = self._as_input(x)
        self._ensure_built(x)
        self._check_input(x)
        if self._fused is not None:
            self._fused.input_grad_needed = self.input_grad_needed
            return self._fused.forward(x, training=training, initial_state=initial_state,
                                       mask=mask)
        return self._step_forward(x, bool(training), initial_state, mask)

    def backward(self, d_out: Any) -> Any:
        if self._fused is not None:
            d = self._fused.backward(d_out)
            self.initial_state_grads = self._fused.initial_state_grads
            return d
        return self._step_backward(d_out)

    def _step_forward(self, x: np.ndarray, training: bool, initial_state: Any,
                      mask: Any) -> Any:
        B, T, _ = x.shape
        states = self._initial_states(B, initial_state)
        step_mask = None
        if mask is not None:
            step_mask = np.asarray(mask, dtype=bool)
            if step_mask.shape != (B, T):
                raise ValueError(f"Layer `{self.name}`: the mask must have shape {(B, T)}, got "
                                 f"{step_mask.shape}.")
        order = range(T - 1, -1, -1) if self.go_backwards else range(T)
        trace = Trace() if training else None
        x_leaves: list = []
        state_leaves: list = []
        k = self.truncate_bptt
        size = self.cell.state_size
        if trace is not None:
            trace.training = True
        with (trace if trace is not None else _nothing()), traced._training_scope(training):
            if trace is not None:
                states = [Trace.leaf(s) for s in states]
                state_leaves = list(states)
            out_size = _output_size(self.cell)
            # Before a row's first unmasked step the output is zeros (Keras's), whatever the
            # initial state.
            prev_out: Any = np.zeros((B, out_size), dtype=self.dtype)
            outputs = []
            for n, t in enumerate(order):
                if trace is not None and k is not None and n > 0 and (T - n) % k == 0:
                    states = [Trace.leaf(autodiff.value_of(s)) for s in states]  # a constant
                x_t = x[:, t]
                if trace is not None:
                    x_t = Trace.leaf(x_t)
                    x_leaves.append((t, x_t))
                y, new = _call_cell(self.cell, x_t, _nest(size, states), training)
                new = traced._flatten(new)
                if len(new) != len(states):
                    raise ValueError(
                        f"Cell `{self.cell.name}` returned {len(new)} states, its state_size "
                        f"{size!r} says {len(states)}.")
                if step_mask is not None:
                    m = step_mask[:, t:t + 1]
                    new = [ops.where(m, a, b) for a, b in zip(new, states)]
                    y = ops.where(m, y, 0.0 if self.zero_output_for_mask else prev_out)
                states = new
                prev_out = y
                outputs.append(y)
            if self.return_sequences:
                y_out = ops.stack(outputs[::-1] if self.go_backwards else outputs, axis=1)
            else:
                y_out = outputs[-1]
        final = [s for s in states]
        if self.stateful:
            self._states = [np.array(autodiff.value_of(s), dtype=self.dtype) for s in final]
        result = [y_out, *final] if self.return_state else y_out
        self._trace_state = (trace, x_leaves, state_leaves, result, x.shape) if training \
            else None
        return traced._values(result)

    def _step_backward(self, d_out: Any) -> Any:
        if self._trace_state is None:
            raise self._no_tape()
        trace, x_leaves, state_leaves, result, x_shape = self._trace_state
        self._trace_state = None
        outs = result if self.return_state else [result]
        ds = list(d_out) if self.return_state else [d_out]
        if len(ds) != len(outs):
            raise ValueError(f"Layer `{self.name}` has return_state=True: backward expects a "
                             f"list of {len(outs)} gradients, got {len(ds)}.")
        var_entries = list(trace.var_leaves.values())
        wrt = [leaf for _, leaf in x_leaves] + state_leaves + [leaf for _, leaf in var_entries]
        grads = autodiff.backward(outs, ds, wrt)
        n_x = len(x_leaves)
        d_x = np.zeros(x_shape, dtype=self.dtype)
        for (t, _), g in zip(x_leaves, grads[:n_x]):
            if g is not None:
                d_x[:, t] = g
        self.initial_state_grads = [
            np.zeros(leaf.value.shape, dtype=self.dtype) if g is None else g
            for leaf, g in zip(state_leaves, grads[n_x:n_x + len(state_leaves)])]
        traced.write_weight_grads(self.cell, trace, var_entries,
                                  grads[n_x + len(state_leaves):], frozen=not self.trainable)
        return d_x if self.input_grad_needed else None

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict:
        return {**Layer.get_config(self), "cell": serialize(self.cell),
                "return_sequences": self.return_sequences, "return_state": self.return_state,
                "go_backwards": self.go_backwards, "stateful": self.stateful,
                "unroll": self.unroll, "zero_output_for_mask": self.zero_output_for_mask,
                "truncate_bptt": self.truncate_bptt}

    @classmethod
    def from_config(cls, config: dict) -> RNN:
        config = dict(config)
        config["cell"] = deserialize(config.get("cell"))
        if config.get("input_shape") is not None:
            config["input_shape"] = tuple(config["input_shape"])
        return cls(**config)


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None
