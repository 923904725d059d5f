"""SimpleRNN, LSTM and GRU layers over the fused kernels of :mod:`fastrnn.ops`.

Shapes: B batch, T time, F input features, H ``units``, G gate width (H, 4H or 3H).

Every layer runs fused: the whole sequence goes through one core
forward call (what ``ops.*_forward`` runs, without its argument checks: the layer checks its
input and owns its weights), and ``backward`` is one core backward call. It covers every
supported argument: dropout (the input mask multiplies ``x`` once, in NumPy, before the input
projection), recurrent dropout (the mask is handed to the kernel as ``recurrent_mask``),
``go_backwards``, ``stateful`` and ``truncate_bptt``.

``layer_norm=True`` (use it when gradients are unstable, as Hands-On ML ch.15 suggests) makes
the same single core calls, to the layer-normalized kernels (``ops.layer_norm_*``,
cpp/layer_norm_rnn.hpp), with every argument above supported. Each step
normalises the pre-activations over the units, per gate, with learned ``gamma``/``beta``
(epsilon 1e-3), before the gate activations:

* SimpleRNN: ``h_t = act(LN(x_t K + (m * h_{t-1}) U + b))`` (the book's LNSimpleRNNCell).
* LSTM: ``z = LN_gatewise(x_t K + (m * h_{t-1}) U + b)``, then the usual i, f, c, o gates.
* GRU (reset_after): ``z, r = sigmoid(LN_gatewise(xz_zr + hz_zr))``,
  ``n = tanh(LN(xz_h + r * hz_h))``, ``h_t = z * h_{t-1} + (1 - z) * n``.

``return_state=True`` makes ``forward`` return a list ``[output, h]`` (LSTM: ``[output, h, c]``)
and ``backward`` accept a list of the same length (entries may be None). As in Keras, such a
layer cannot sit inside a Sequential model: its ``compute_output_shape`` returns a *list* of
shapes, which the model rejects. Use it for direct layer calls.

Masking (``forward(x, mask=...)``, a bool ``(B, T)`` mask, e.g. from ``Embedding(mask_zero=
True)`` or ``Masking``), with TF-Keras 3's semantics: a masked step leaves the state unchanged
(in the kernels themselves), so each row's last state equals that
of the layer run on the row with its masked steps deleted (with ``go_backwards``, read from the
last unmasked step back to the first), and no gradient reaches a masked step. With
``return_sequences`` the output at a masked step repeats the last unmasked output, or is zeros
before the first one; ``zero_output_for_mask=True`` (what Bidirectional sets on its layers when
returning sequences) gives zeros at every masked step instead. A fully masked row keeps its
initial state (zeros by default) and outputs zeros. :meth:`compute_mask`: the mask with
``return_sequences``, else None (a list ``[mask or None, None(, None)]`` with ``return_state``).

``stateful=True`` carries the last state(s) into the next ``forward`` call (training or not)
until ``reset_states()``. The carried state is a constant for backward (truncated BPTT across
batches). The batch size is fixed by the layer's ``batch_size`` argument or by the first call
after a reset; another batch size raises ``ValueError``.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .. import ops
from .base import (
    Layer,
    check_activation,
    check_bool,
    check_positive_int,
    check_rate,
    make_initializer,
    register,
    rng_aware,
    serialize_initializer,
)

__all__ = ["GRU", "LSTM", "SimpleRNN"]

LN_EPSILON = 1e-3  # layer_norm: added to the variance (Keras LayerNormalization's default)

LN_EPSILON = 1e-3


# ----------------------------------------------------------------------------- base
class _RNN(Layer):
    """Shared sequence logic of SimpleRNN, LSTM and GRU; subclasses set the cell constants."""

    _weight_options = {"kernel": "kernel", "recurrent": "recurrent_kernel", "bias": "bias"}

    _cell = ""  # "simple_rnn" | "lstm" | "gru"
    _gates = 1  # G = _gates * H
    _n_states = 1  # (h,) or (h, c)
    _activations: tuple = ("tanh",)
    supports_masking = True
    makes_mask = False  # passes the input's on (return_sequences) or drops it

    def __init__(
        self,
        units: int,
        activation: Optional[str] = "tanh",
        recurrent_activation: Optional[str] = "sigmoid",
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        truncate_bptt: Optional[int] = None,
        layer_norm: bool = False,
        zero_output_for_mask: bool = False,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.units = check_positive_int("units", units)
        if self._activations == ("tanh",) and activation not in ("tanh",):
            check_activation("activation", activation)  # unknown names: the generic message
            raise NotImplementedError(
                f"Received an unsupported value for argument `activation`, {type(self).__name__} "
                f"supports only 'tanh' (the fused kernel's), got {activation!r}."
            )
        self.activation = check_activation("activation", activation, self._activations)
        self.recurrent_activation = check_activation(
            "recurrent_activation", recurrent_activation, ("sigmoid",))
        self.use_bias = check_bool("use_bias", use_bias)
        self.kernel_initializer = kernel_initializer
        self.recurrent_initializer = recurrent_initializer
        self.bias_initializer = bias_initializer
        self.dropout = check_rate("dropout", dropout)
        self.recurrent_dropout = check_rate("recurrent_dropout", recurrent_dropout)
        self.return_sequences = check_bool("return_sequences", return_sequences)
        self.return_state = check_bool("return_state", return_state)
        self.go_backwards = check_bool("go_backwards", go_backwards)
        self.stateful = check_bool("stateful", stateful)
        self.unroll = check_bool("unroll", unroll)  # accepted for Keras compatibility; no effect
        self.truncate_bptt = (
            None if truncate_bptt is None else check_positive_int("truncate_bptt", truncate_bptt)
        )
        self.layer_norm = check_bool("layer_norm", layer_norm)
        self.zero_output_for_mask = check_bool("zero_output_for_mask", zero_output_for_mask)
        self._tape: Optional[tuple] = None
        self._states: Optional[list] = None
        self._stateful_batch: Optional[int] = None
        # The masks drawn by the last training forward (None when not used): for inspection.
        self.last_dropout_mask: Optional[np.ndarray] = None
        self.last_recurrent_mask: Optional[np.ndarray] = None
        # Gradients w.r.t. the initial state(s) from the last backward.
        self.initial_state_grads: Optional[list] = None

    # ------------------------------------------------------------------ shapes and weights
    def compute_output_shape(self, input_shape: tuple) -> Any:
        input_shape = tuple(input_shape)
        if len(input_shape) != 2:
            raise ValueError(
                f"Layer `{self.name}` expects inputs of shape (batch, time, features), i.e. an "
                f"input_shape of (time, features); got {input_shape}."
            )
        H = self.units
        out = (input_shape[0], H) if self.return_sequences else (H,)
        if self.return_state:
            return [out] + [(H,)] * self._n_states
        return out

    def compute_mask(self, x: Any, mask: Optional[np.ndarray]) -> Any:
        """Keras's: the input mask with ``return_sequences`` (None otherwise); with
        ``return_state`` a list ``[that, None]`` (LSTM ``[that, None, None]``)."""
        out = mask if self.return_sequences else None
        if self.return_state:
            return [out] + [None] * self._n_states
        return out

    def _bias_shape(self) -> tuple:
        return (self._gates * self.units,)

    def _bias_initializer(self) -> Any:
        return self.bias_initializer

    def build(self, input_shape: tuple) -> None:
        input_shape = tuple(input_shape)
        self.compute_output_shape(input_shape)  # validates the rank
        features = input_shape[-1]
        if features is None:
            raise ValueError(
                f"Layer `{self.name}` needs a known feature count (last axis), got input shape "
                f"{input_shape}."
            )
        G = self._gates * self.units
        self.add_weight("kernel", (features, G), self.kernel_initializer)
        self.add_weight("recurrent_kernel", (self.units, G), self.recurrent_initializer)
        if self.use_bias:
            self.add_weight("bias", self._bias_shape(), self._bias_initializer())
        if self.layer_norm:
            self.add_weight("gamma", (G,), "ones")
            self.add_weight("beta", (G,), "zeros")
        super().build(input_shape)

    def _named(self) -> dict:
        return dict(zip(self._weight_names, self._weights))

    # ------------------------------------------------------------------ states
    def reset_states(self) -> None:
        self._states = None
        self._stateful_batch = None

    @property
    def states(self) -> Optional[list]:
        """The carried state(s) of a stateful layer (copies), or None."""
        return None if self._states is None else [s.copy() for s in self._states]

    def check_initial_state_shapes(self, shapes: list) -> None:
        """Validates the shapes (without batch) of symbolic `initial_state` tensors."""
        state_shapes = [tuple(s) for s in shapes]
        want = [(self.units,)] * self._n_states
        if len(state_shapes) != len(want) or any(
                len(s) != 1 or s[0] not in (None, self.units) for s in state_shapes):
            names = "[h, c]" if self._n_states == 2 else "[h]"
            raise ValueError(
                f"Layer `{self.name}` expects `initial_state` {names}: {self._n_states} "
                f"tensor(s) of shape (batch, {self.units}), got shapes "
                f"{[(None, *s) for s in state_shapes]}."
            )

    def _initial_states(self, B: int, initial_state: Any) -> list:
        if initial_state is not None:
            given = list(initial_state) if isinstance(initial_state, (list, tuple)) \
                else [initial_state]
            if len(given) != self._n_states:
                raise ValueError(
                    f"Layer `{self.name}` expects {self._n_states} initial state array(s), "
                    f"got {len(given)}."
                )
            states = []
            for s in given:
                s = np.asarray(s, dtype=self.dtype)
                if s.shape != (B, self.units):
                    raise ValueError(
                        f"Layer `{self.name}`: each initial state must have shape (batch, units) "
                        f"= {(B, self.units)}, got {s.shape}."
                    )
                states.append(np.ascontiguousarray(s))
            return states
        if not self.stateful:
            return [None] * self._n_states
        fixed = self.batch_size or self._stateful_batch
        if fixed is not None and fixed != B:
            raise ValueError(
                f"Stateful layer `{self.name}` needs a fixed batch size: it has been used with "
                f"batch size {fixed}, got {B}. Use batches of {fixed} samples (drop or pad the "
                "last partial batch) or call reset_states() first."
            )
        self._stateful_batch = B
        return [None] * self._n_states if self._states is None else list(self._states)

    def _mask(self, shape: tuple, rate: float) -> np.ndarray:
        keep = self.rng.random(shape) >= rate
        return keep.astype(self.dtype) / self.dtype.type(1.0 - rate)

    # ------------------------------------------------------------------ forward / backward
    def forward(self, x: Any, training: bool = False, initial_state: Any = None,
                mask: Optional[np.ndarray] = None) -> Any:
        """``x (B, T, F)`` -> ``(B, T, H)`` or ``(B, H)``; a list when ``return_state``.

        `initial_state`: optional ``h0`` (LSTM: ``[h0, c0]``), each ``(B, H)``; it takes
        precedence over a stateful layer's carried state.
        `mask`: optional bool ``(B, T)``, the steps to use (see the module docstring).
        """
        x = self._as_input(x)
        self._ensure_built(x)
        self._check_input(x)
        B, T, F = x.shape
        step_mask = ops.internal.step_mask_array(mask, B, T)
        states = self._initial_states(B, initial_state)
        if self.go_backwards:
            x = x[:, ::-1]
            if step_mask is not None:
                step_mask = np.ascontiguousarray(step_mask[:, ::-1])
        in_mask = rec_mask = None
        if training and self.dropout > 0.0:
            in_mask = self._mask((B, F), self.dropout)
            x = x * in_mask[:, None, :]  # one mask per sequence, the same at every step
        if training and self.recurrent_dropout > 0.0:
            rec_mask = self._mask((B, self.units), self.recurrent_dropout)
        self.last_dropout_mask, self.last_recurrent_mask = in_mask, rec_mask
        outputs, last, tape = self._fused_forward(x, states, rec_mask, training, step_mask)
        if self.stateful:
            self._states = [np.array(s, dtype=self.dtype) for s in last]
        out_keep = self._output_keep(step_mask, states[0] is not None)
        self._tape = (tape, in_mask, out_keep) if training else None
        y = outputs if self.return_sequences else last[0]
        if out_keep is not None:
            y = y * out_keep
        if self.return_state:
            return [y, *last]
        return y

    def _output_keep(self, step_mask: Optional[np.ndarray], given_h0: bool):
        """Keras's output at masked steps, as a 0/1 factor on what the kernels give there (the
        carried state): ``(B, T, 1)`` for sequences, ``(B, 1)`` for the last output, or None
        when the state is already right. Before a row's first unmasked step Keras outputs
        zeros, not the initial state; with zero_output_for_mask every masked step is zeros."""
        if step_mask is None:
            return None
        if self.zero_output_for_mask:
            keep = step_mask
        elif given_h0:  # the state before the first unmasked step is h0, not zeros
            keep = np.logical_or.accumulate(step_mask, axis=1)
        else:
            return None
        if self.return_sequences:
            return keep[:, :, None].astype(self.dtype)
        return keep[:, -1:].astype(self.dtype)

    def backward(self, d_out: Any) -> np.ndarray:
        """Gradient w.r.t. ``x``; writes the weight gradients into ``grads``.

        With ``return_state``, `d_out` is a list ``[d_output, d_h(, d_c)]`` (None entries allowed).
        """
        if self._tape is None:
            raise self._no_tape()
        tape, in_mask, out_keep = self._tape
        n = 1 + self._n_states
        if self.return_state:
            if not isinstance(d_out, (list, tuple)) or len(d_out) != n:
                raise ValueError(
                    f"Layer `{self.name}` has return_state=True: backward expects a list of {n} "
                    f"gradients [d_output, d_h{', d_c' if n == 3 else ''}], got "
                    f"{type(d_out).__name__}."
                )
            d_y, *d_last = d_out
        else:
            d_y, d_last = d_out, [None] * self._n_states
        d_y = None if d_y is None else np.asarray(d_y, dtype=self.dtype)
        if d_y is not None and out_keep is not None:
            d_y = d_y * out_keep  # the outputs Keras zeroes get no gradient
        d_last = [None if d is None else np.asarray(d, dtype=self.dtype) for d in d_last]
        if self.return_sequences:
            d_outputs = d_y
        else:
            d_outputs = None
            if d_y is not None:
                d_last[0] = d_y if d_last[0] is None else d_last[0] + d_y
        g = self._fused_backward(tape, d_outputs, d_last)
        self._write_grads([g[name] for name in self._weight_names])
        self.initial_state_grads = [g["h0"], g["c0"]] if self._n_states == 2 else [g["h0"]]
        d_x = g["x"]
        if d_x is None or not self.input_grad_needed:
            return None
        if in_mask is not None:
            d_x = d_x * in_mask[:, None, :]
        if self.go_backwards:
            d_x = d_x[:, ::-1]
        return np.ascontiguousarray(d_x)

    # ------------------------------------------------------------------ fused (ops) path
    def _fused_forward(self, x, states, rec_mask, training, step_mask):
        # Everything here is checked already (x by forward, the rest is the layer's own), so
        # the core is called without fastrnn.ops's argument checks.
        w = self._named()
        x = np.ascontiguousarray(x)
        if self.layer_norm:
            return ops.internal.ln_forward_checked(
                self._cell, x, states, w["kernel"], w["recurrent_kernel"], w.get("bias"),
                w["gamma"], w["beta"], LN_EPSILON, rec_mask, training, self.activation,
                step_mask,
            )
        return ops.internal.forward_checked(
            self._cell, x, states, w["kernel"], w["recurrent_kernel"], w.get("bias"), rec_mask,
            training, self.activation, step_mask,
        )

    def _fused_backward(self, tape, d_outputs, d_last):
        k = self.truncate_bptt or 0
        d_last = [None if d is None else np.ascontiguousarray(d) for d in d_last]
        d_outputs = None if d_outputs is None else np.ascontiguousarray(d_outputs)
        backward = (ops.internal.ln_backward_checked if self.layer_norm
                    else ops.internal.backward_checked)
        return backward(tape, d_outputs, d_last, k, self.input_grad_needed)

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict:
        config = {
            **super().get_config(),
            "units": self.units,
            "activation": self.activation,
            "recurrent_activation": self.recurrent_activation,
            "use_bias": self.use_bias,
            "kernel_initializer": serialize_initializer(self.kernel_initializer),
            "recurrent_initializer": serialize_initializer(self.recurrent_initializer),
            "bias_initializer": serialize_initializer(self.bias_initializer),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "stateful": self.stateful,
            "unroll": self.unroll,
            "truncate_bptt": self.truncate_bptt,
            "layer_norm": self.layer_norm,
            "zero_output_for_mask": self.zero_output_for_mask,
        }
        return config


@register
class SimpleRNN(_RNN):
    """Keras ``SimpleRNN``: ``h_t = activation(x_t K + h_{t-1} U + b)``.

    `activation`: ``"tanh"`` (default), ``"relu"`` or ``"linear"``. Weights: ``kernel (F, H)``,
    ``recurrent_kernel (H, H)``, ``bias (H,)`` (+ ``gamma``, ``beta`` ``(H,)`` with
    ``layer_norm``). See the module docstring for the other arguments.
    """

    _cell = "simple_rnn"
    _gates = 1
    _n_states = 1
    _activations = ("tanh", "relu", "linear")

    def __init__(self, units: int, activation: Optional[str] = "tanh", **kwargs: Any):
        if "recurrent_activation" in kwargs:
            raise TypeError("SimpleRNN has no `recurrent_activation` argument.")
        super().__init__(units, activation=activation, **kwargs)

    def get_config(self) -> dict:
        config = super().get_config()
        del config["recurrent_activation"]
        return config


@register
class LSTM(_RNN):
    """Keras ``LSTM`` (gate order i, f, c, o). Weights: ``kernel (F, 4H)``,
    ``recurrent_kernel (H, 4H)``, ``bias (4H,)`` (+ ``gamma``, ``beta`` ``(4H,)``).

    `unit_forget_bias=True` (default) initialises the forget-gate bias to ones, as Keras does.
    Only ``activation="tanh"`` and ``recurrent_activation="sigmoid"`` (the kernel's) are
    supported.
    """

    _cell = "lstm"
    _gates = 4
    _n_states = 2

    def __init__(self, units: int, unit_forget_bias: bool = True, **kwargs: Any):
        super().__init__(units, **kwargs)
        self.unit_forget_bias = check_bool("unit_forget_bias", unit_forget_bias)

    def _bias_initializer(self) -> Any:
        if not self.unit_forget_bias:
            return self.bias_initializer
        base = make_initializer(self.bias_initializer)
        ones = make_initializer("ones")
        H = self.units

        @rng_aware
        def forget_ones(shape, dtype=np.float32, rng=None):
            return np.concatenate([
                base((H,), dtype=dtype, rng=rng),
                ones((H,), dtype=dtype, rng=rng),
                base((2 * H,), dtype=dtype, rng=rng),
            ])

        return forget_ones

    def get_config(self) -> dict:
        return {**super().get_config(), "unit_forget_bias": self.unit_forget_bias}


@register
class GRU(_RNN):
    """Keras ``GRU`` with ``reset_after=True`` (gate order z, r, h; the PyTorch form).

    Weights: ``kernel (F, 3H)``, ``recurrent_kernel (H, 3H)``, ``bias (2, 3H)`` (input bias,
    recurrent bias) (+ ``gamma``, ``beta`` ``(3H,)``). ``reset_after=False`` is not supported.
    """

    _cell = "gru"
    _gates = 3
    _n_states = 1

    def __init__(self, units: int, reset_after: bool = True, **kwargs: Any):
        if not check_bool("reset_after", reset_after):
            raise NotImplementedError(
                "Received an unsupported value for argument `reset_after`, the fastrnn GRU "
                "kernel implements reset_after=True only (Keras's default and PyTorch's form), "
                "got False."
            )
        super().__init__(units, **kwargs)

    def _bias_shape(self) -> tuple:
        return (2, 3 * self.units)

    def get_config(self) -> dict:
        return {**super().get_config(), "reset_after": True}
