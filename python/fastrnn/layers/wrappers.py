"""Layers that wrap other layers: TimeDistributed and Bidirectional.

A wrapper owns no arrays of its own: ``weights``/``grads`` are its inner layers' (forward
layer first for Bidirectional), ``_bind`` hands each inner layer its slice of the views, and
``trainable``/``rng`` propagate to the inner layers.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .base import Layer, custom_object_scope, deserialize, register, serialize
from .recurrent import _RNN
from .rnn import RNN

__all__ = ["Bidirectional", "TimeDistributed"]


class _Wrapper(Layer):
    makes_mask = False  # what its layer does with the input's mask

    def __init__(self, **kwargs: Any):
        self._sublayers: list[Layer] = []
        super().__init__(**kwargs)

    def _adopt(self, layers: list[Layer]) -> None:
        self._sublayers = layers
        for layer in layers:
            layer.trainable = self._trainable
            if self._rng is not None or self.seed is not None:
                layer.rng = self.rng

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)
        for layer in getattr(self, "_sublayers", []):
            layer.trainable = self._trainable

    @property
    def rng(self) -> np.random.Generator:
        return Layer.rng.fget(self)

    @rng.setter
    def rng(self, generator: np.random.Generator) -> None:
        Layer.rng.fset(self, generator)
        for layer in self._sublayers:
            layer.rng = self.rng

    @property
    def weights(self) -> list[np.ndarray]:
        return [w for layer in self._sublayers for w in layer.weights]

    @property
    def grads(self) -> list[np.ndarray]:
        return [g for layer in self._sublayers for g in layer.grads]

    @property
    def weight_names(self) -> list[str]:
        return [f"{layer.name}/{n}" for layer in self._sublayers for n in layer.weight_names]

    def _bind(self, weight_views: list[np.ndarray], grad_views: list[np.ndarray]) -> None:
        self._check_views(weight_views, grad_views)
        start = 0
        for layer in self._sublayers:
            n = len(layer.weights)
            layer._bind(list(weight_views[start:start + n]), list(grad_views[start:start + n]))
            start += n

    def reset_states(self) -> None:
        for layer in self._sublayers:
            layer.reset_states()


@register
class TimeDistributed(_Wrapper):
    """Applies `layer` to every time step: ``(B, T, ...) -> (B, T, *layer_output)``.

    The inner layer sees one ``(B * T, ...)`` batch, so it runs once per call. A mask
    ``(B, T, ...)`` passes through to the output unchanged and, as in Keras, reaches the inner
    layer when its ``forward`` takes one, reshaped like the input to ``(B * T, ...)``: a
    ``(B, T)`` mask becomes one flag per inner sample (e.g. a ``BatchNormalization`` leaves the
    masked ones out of its statistics), a ``(B, T, T2)`` mask over nested sequences a
    ``(B * T, T2)`` step mask for an inner recurrent layer.
    """

    supports_masking = True

    def __init__(self, layer: Layer, **kwargs: Any):
        if not isinstance(layer, Layer):
            raise TypeError(
                "Received an invalid value for argument `layer`, expected a fastrnn Layer, "
                f"got {type(layer).__name__}."
            )
        kwargs.setdefault("dtype", layer.dtype.name)
        super().__init__(**kwargs)
        self.layer = layer
        self._adopt([layer])

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        input_shape = tuple(input_shape)
        if len(input_shape) < 2:
            raise ValueError(
                f"Layer `{self.name}` expects inputs of shape (batch, time, ...), i.e. an "
                f"input_shape of rank >= 2, got {input_shape}."
            )
        inner = self.layer._output_shape_for(input_shape[1:])
        if isinstance(inner, list):
            raise ValueError(f"TimeDistributed cannot wrap `{self.layer.name}`: it returns a list.")
        return (input_shape[0],) + tuple(inner)

    def build(self, input_shape: tuple) -> None:
        input_shape = tuple(input_shape)
        self.compute_output_shape(input_shape)
        if not self.layer.built:
            self.layer._build_for(input_shape[1:])
        super().build(input_shape)

    def forward(self, x: Any, training: bool = False, mask: Optional[np.ndarray] = None
                ) -> np.ndarray:
        """``(B, T, ...)`` -> ``(B, T, *inner output)``; `mask` ``(B, T)`` is checked and
        passed on (see compute_mask)."""
        x = np.asarray(x)
        self._ensure_built(x)
        self._check_input(x)
        B, T = x.shape[:2]
        if mask is not None and (np.ndim(mask) < 2 or np.shape(mask)[:2] != (B, T)
                                 or np.ndim(mask) >= x.ndim):
            raise ValueError(
                f"Layer `{self.name}`: the mask must have shape (batch, time, ...) starting "
                f"with {(B, T)} and fewer axes than the input {x.shape}, got {np.shape(mask)}."
            )
        inner = x.reshape((B * T,) + x.shape[2:])
        if mask is not None and self._inner_takes_mask():
            m = np.asarray(mask).reshape((B * T,) + np.shape(mask)[2:])
            y = self.layer.forward(inner, training=training, mask=m)
        else:
            y = self.layer.forward(inner, training=training)
        return y.reshape((B, T) + y.shape[1:])

    def compute_mask(self, x: Any, mask: Optional[np.ndarray]) -> Any:
        """The ``(B, T)`` step mask of the output: the input's, or for a mask over nested
        sequences ``(B, T, T2, ...)``, whether any inner position of a step is unmasked (a
        step of all padding stays masked)."""
        if mask is None:
            return None
        mask = np.asarray(mask)
        return mask if mask.ndim <= 2 else mask.reshape(mask.shape[:2] + (-1,)).any(axis=-1)

    def _inner_takes_mask(self) -> bool:
        """Whether the inner layer's ``forward`` has a `mask` parameter (as Keras checks
        ``call``)."""
        found = getattr(self, "_takes_mask", None)
        if found is None:
            import inspect
            found = self._takes_mask = "mask" in inspect.signature(
                self.layer.forward).parameters
        return found

    def backward(self, d_out: np.ndarray) -> np.ndarray:
        d_out = np.asarray(d_out)
        B, T = d_out.shape[:2]
        d_x = self.layer.backward(d_out.reshape((B * T,) + d_out.shape[2:]))
        return d_x.reshape((B, T) + d_x.shape[1:])

    def get_config(self) -> dict:
        return {**super().get_config(), "layer": serialize(self.layer)}

    @classmethod
    def from_config(cls, config: dict) -> TimeDistributed:
        config = dict(config)
        config["layer"] = deserialize(config["layer"])
        return super().from_config(config)


_MERGE_MODES = ("concat", "sum", "mul", "ave", None)


@register
class Bidirectional(_Wrapper):
    """Runs a recurrent layer forwards and a copy of it backwards, and merges the outputs.

    The forward and backward layers are new layers built from `layer`'s config (named
    ``forward_<name>`` / ``backward_<name>``; the backward copy has ``go_backwards`` flipped and,
    if `layer` has a seed, ``seed + 1``), unless `backward_layer` is given. With
    ``return_sequences`` the backward outputs are reversed back into input order, as in Keras.

    `merge_mode`: ``"concat"`` (default, last axis), ``"sum"``, ``"mul"``, ``"ave"`` or ``None``
    (a list ``[forward_output, backward_output]``; like ``return_state``, then not usable inside
    Sequential). With ``return_state``, the output is ``[merged, *forward_states,
    *backward_states]``. Weights: the forward layer's, then the backward layer's.

    Masks: ``forward(x, mask=...)`` hands the ``(B, T)`` mask to both layers (the backward one
    reads it from the end, so each direction sees only its row's unmasked steps). As Keras does,
    the inner layers output zeros at masked steps when returning sequences
    (``zero_output_for_mask = return_sequences``).
    """

    supports_masking = True

    def __init__(
        self,
        layer: Layer,
        merge_mode: Optional[str] = "concat",
        backward_layer: Optional[Layer] = None,
        **kwargs: Any,
    ):
        if not isinstance(layer, (_RNN, RNN)):
            raise TypeError(
                "Received an invalid value for argument `layer`, expected a SimpleRNN, LSTM, "
                f"GRU or RNN layer, got {type(layer).__name__}."
            )
        if merge_mode not in _MERGE_MODES:
            raise ValueError(
                f"Received an invalid value for argument `merge_mode`, expected one of "
                f"{_MERGE_MODES}, got {merge_mode!r}."
            )
        kwargs.setdefault("dtype", layer.dtype.name)
        super().__init__(**kwargs)
        self.merge_mode = merge_mode
        # The copies are made from the config; the classes of a cell of your own come along.
        from .traced import sublayers_of
        classes = {type(sub).__name__: type(sub) for sub in sublayers_of(layer)}
        config = serialize(layer)
        config["config"]["name"] = f"forward_{layer.name}"
        with custom_object_scope(classes):
            self.forward_layer = deserialize(config)
        if backward_layer is None:
            config = serialize(layer)
            c = config["config"]
            c["name"] = f"backward_{layer.name}"
            c["go_backwards"] = not layer.go_backwards
            if c.get("seed") is not None:
                c["seed"] += 1
            with custom_object_scope(classes):
                backward_layer = deserialize(config)
        elif not isinstance(backward_layer, (_RNN, RNN)):
            raise TypeError(
                "Received an invalid value for argument `backward_layer`, expected a SimpleRNN, "
                f"LSTM, GRU or RNN layer, got {type(backward_layer).__name__}."
            )
        else:
            for attr in ("return_sequences", "return_state", "stateful"):
                if getattr(backward_layer, attr) != getattr(layer, attr):
                    raise ValueError(
                        f"Received an invalid value for argument `backward_layer`, its `{attr}` "
                        f"({getattr(backward_layer, attr)}) must equal the forward layer's "
                        f"({getattr(layer, attr)})."
                    )
            if backward_layer.go_backwards == layer.go_backwards:
                raise ValueError(
                    "Received an invalid value for argument `backward_layer`, its "
                    "`go_backwards` must be the opposite of the forward layer's, got "
                    f"{backward_layer.go_backwards} for both."
                )
        self.backward_layer = backward_layer
        for inner in (self.forward_layer, self.backward_layer):  # as Keras forces it
            inner.zero_output_for_mask = inner.return_sequences
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        self.stateful = layer.stateful
        self._adopt([self.forward_layer, self.backward_layer])
        self._merged: Optional[tuple] = None

    def compute_output_shape(self, input_shape: tuple) -> Any:
        shape = self.forward_layer.compute_output_shape(input_shape)
        states = []
        if self.return_state:
            shape, *states = shape
            states = states * 2
        if self.merge_mode is None:
            out: Any = [shape, shape]
        elif self.merge_mode == "concat":
            out = tuple(shape[:-1]) + (2 * shape[-1],)
        else:
            out = tuple(shape)
        if self.return_state:
            return (out if isinstance(out, list) else [out]) + states
        return out

    def compute_mask(self, x: Any, mask: Optional[np.ndarray]) -> Any:
        """Keras's: the mask with ``return_sequences`` (one per output when ``merge_mode`` is
        None), else None; with ``return_state`` followed by a None per state."""
        out = mask if self.return_sequences else None
        masks = [out, out] if self.merge_mode is None else [out]
        if self.return_state:
            return masks + [None] * (2 * self.forward_layer._n_states)
        return masks if self.merge_mode is None else out

    def build(self, input_shape: tuple) -> None:
        input_shape = tuple(input_shape)
        for layer in self._sublayers:
            if not layer.built:
                layer.build(input_shape)
        super().build(input_shape)

    def check_initial_state_shapes(self, shapes: list) -> None:
        """Validates symbolic `initial_state` shapes: the forward layer's states, then the
        backward layer's (as Keras)."""
        n = self.forward_layer._n_states
        if len(shapes) != 2 * n:
            raise ValueError(
                f"Layer `{self.name}` expects `initial_state` with {2 * n} tensors (the forward "
                f"layer's {n}, then the backward layer's {n}), got {len(shapes)}."
            )
        self.forward_layer.check_initial_state_shapes(shapes[:n])
        self.backward_layer.check_initial_state_shapes(shapes[n:])

    def forward(self, x: Any, training: bool = False, initial_state: Any = None,
                mask: Optional[np.ndarray] = None) -> Any:
        x = np.asarray(x)
        self._ensure_built(x)
        self._check_input(x)
        s_f = s_b = None
        if initial_state is not None:
            n = self.forward_layer._n_states
            states = list(initial_state) if isinstance(initial_state, (list, tuple)) \
                else [initial_state]
            if len(states) != 2 * n:
                raise ValueError(
                    f"Layer `{self.name}` expects {2 * n} initial state arrays (forward, then "
                    f"backward), got {len(states)}."
                )
            s_f, s_b = states[:n], states[n:]
        y_f = self.forward_layer.forward(x, training=training, initial_state=s_f, mask=mask)
        y_b = self.backward_layer.forward(x, training=training, initial_state=s_b, mask=mask)
        states: list = []
        if self.return_state:
            y_f, *s_f = y_f
            y_b, *s_b = y_b
            states = s_f + s_b
        if self.return_sequences:
            y_b = y_b[:, ::-1]  # back into input order
        self._merged = (y_f, y_b) if training else None
        if self.merge_mode is None:
            out: Any = [y_f, y_b]
        elif self.merge_mode == "concat":
            out = np.concatenate([y_f, y_b], axis=-1)
        elif self.merge_mode == "sum":
            out = y_f + y_b
        elif self.merge_mode == "mul":
            out = y_f * y_b
        else:
            out = (y_f + y_b) / 2
        if self.return_state:
            return (out if isinstance(out, list) else [out]) + states
        return out

    def backward(self, d_out: Any) -> np.ndarray:
        if self._merged is None:
            raise self._no_tape()
        y_f, y_b = self._merged
        n_states = self.forward_layer._n_states if self.return_state else 0
        n_out = 2 if self.merge_mode is None else 1
        if self.return_state or self.merge_mode is None:
            if not isinstance(d_out, (list, tuple)) or len(d_out) != n_out + 2 * n_states:
                raise ValueError(
                    f"Layer `{self.name}` returns a list of {n_out + 2 * n_states} arrays: "
                    f"backward expects a list of as many gradients, got {type(d_out).__name__}."
                )
            d_out = list(d_out)
        else:
            d_out = [d_out]
        d_y = d_out[:n_out]
        d_sf = d_out[n_out:n_out + n_states]
        d_sb = d_out[n_out + n_states:]
        if self.merge_mode is None:
            d_f, d_b = d_y
        else:
            d = np.asarray(d_y[0], dtype=self.dtype)
            if self.merge_mode == "concat":
                H = y_f.shape[-1]
                d_f, d_b = d[..., :H], d[..., H:]
            elif self.merge_mode == "sum":
                d_f, d_b = d, d
            elif self.merge_mode == "mul":
                d_f, d_b = d * y_b, d * y_f
            else:
                d_f, d_b = d / 2, d / 2
        if self.return_sequences and d_b is not None:
            d_b = np.asarray(d_b)[:, ::-1]
        if self.return_state:
            d_f, d_b = [d_f, *d_sf], [d_b, *d_sb]
        d_x_f = self.forward_layer.backward(d_f)
        d_x_b = self.backward_layer.backward(d_b)
        self.initial_state_grads = (list(self.forward_layer.initial_state_grads)
                                    + list(self.backward_layer.initial_state_grads))
        if d_x_f is None or d_x_b is None:
            return None
        return d_x_f + d_x_b

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "layer": serialize(self.forward_layer),
            "backward_layer": serialize(self.backward_layer),
            "merge_mode": self.merge_mode,
        }

    @classmethod
    def from_config(cls, config: dict) -> Bidirectional:
        config = dict(config)
        forward = deserialize(config.pop("layer"))
        backward = deserialize(config.pop("backward_layer"))
        layer = Bidirectional(forward, merge_mode=config.pop("merge_mode"),
                              backward_layer=backward, **_base_kwargs(config))
        # Restore the exact inner names (the constructor prefixes them again).
        layer.forward_layer.name = forward.name
        return layer


def _base_kwargs(config: dict) -> dict:
    config = dict(config)
    if config.get("input_shape") is not None:
        config["input_shape"] = tuple(config["input_shape"])
    return config
