"""Conv1D: Keras's 1-D convolution over sequences, on the C++ kernel of :mod:`fastrnn.ops`.

Shapes (without the batch axis, as everywhere in fastrnn's layers): input ``(T, C)``, output
``(L, filters)``; ``T`` may be None. Weights are Keras's: ``kernel (kernel_size, C / groups,
filters)`` and ``bias (filters,)``, so ``get_weights``/``set_weights`` exchange with Keras
directly (``fastrnn.saving`` converts to and from PyTorch's ``nn.Conv1d``).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .. import ops
from .base import (
    Layer,
    _unique_name,
    activation_backward,
    activation_forward,
    check_activation,
    check_bool,
    check_positive_int,
    register,
    serialize_initializer,
)

__all__ = ["Conv1D"]


def check_int_or_single(name: str, value: Any) -> int:
    """A positive int, also given as Keras's one-element tuple or list (``(3,)``)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 1:
            raise ValueError(
                f"Received an invalid value for argument `{name}`, expected a positive integer "
                f"or a tuple of one, got {value!r}."
            )
        value = value[0]
    return check_positive_int(name, value)


# The padding name, lower-cased, or a ValueError naming the argument (ops checks it the same).
check_padding = ops._padding


def check_channels_last(value: Any) -> str:
    if value not in (None, "channels_last"):
        raise NotImplementedError(
            "Received an unsupported value for argument `data_format`, fastrnn's sequence "
            f"layers take (batch, steps, channels) input ('channels_last'), got {value!r}."
        )
    return "channels_last"


def keras_name(kwargs: dict, name: str) -> dict:
    """Keras's default layer name (``conv1d``, ``max_pooling1d``, ...), numbered as fastrnn's."""
    if kwargs.get("name") is None:
        kwargs["name"] = _unique_name(name)
    return kwargs


def check_sequence_input(layer: Layer, input_shape: tuple) -> tuple:
    """A (steps, channels) input shape with known channels, or a clear ValueError."""
    input_shape = tuple(input_shape)
    if len(input_shape) != 2 or input_shape[-1] is None:
        raise ValueError(
            f"Layer `{layer.name}` expects input of rank 3 (batch, steps, channels) with a known "
            f"number of channels, got input shape (batch, "
            f"{', '.join(str(d) for d in input_shape)})."
        )
    return input_shape


@register
class Conv1D(Layer):
    """1-D convolution, as ``keras.layers.Conv1D``: ``y = activation(conv1d(x, kernel) +
    bias)``.

    Args:
        filters: number of output channels.
        kernel_size: taps of the kernel (int, or a tuple of one).
        strides: step between outputs. ``strides > 1`` with ``dilation_rate > 1`` is refused,
            as Keras does.
        padding: ``"valid"`` (none), ``"same"`` (``ceil(T / strides)`` outputs) or
            ``"causal"`` (zeros on the left only: output t sees inputs up to t).
        dilation_rate: spacing between taps.
        groups: input channels and filters are split into this many groups, each convolved
            separately (both must be divisible by it).
        activation: by name (None: linear).
        use_bias, kernel_initializer, bias_initializer: as in Keras.
        data_format: only ``"channels_last"`` (the default).

    Input ``(B, T, C)``, output ``(B, L, filters)`` with Keras's length ``L``: valid
    ``(T - span) // strides + 1``, same and causal ``ceil(T / strides)`` where ``span =
    (kernel_size - 1) * dilation_rate + 1``. An input too short for the kernel raises
    ValueError (at build when T is known, else at the call). Masks are not propagated
    (``supports_masking = False``, as Keras 3's Conv1D).
    """

    _weight_options = {"kernel": "kernel", "bias": "bias"}

    supports_masking = False

    def __init__(
        self,
        filters: int,
        kernel_size: Any,
        strides: Any = 1,
        padding: str = "valid",
        data_format: Optional[str] = None,
        dilation_rate: Any = 1,
        groups: int = 1,
        activation: Optional[str] = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        **kwargs: Any,
    ):
        super().__init__(**keras_name(kwargs, "conv1d"))
        self.filters = check_positive_int("filters", filters)
        self.kernel_size = check_int_or_single("kernel_size", kernel_size)
        self.strides = check_int_or_single("strides", strides)
        self.padding = check_padding(padding, ("valid", "same", "causal"))
        self.data_format = check_channels_last(data_format)
        self.dilation_rate = check_int_or_single("dilation_rate", dilation_rate)
        self.groups = check_positive_int("groups", groups)
        if self.filters % self.groups:
            raise ValueError(
                f"Received an invalid value for argument `groups`, expected a divisor of "
                f"filters={self.filters}, got {self.groups}."
            )
        if self.strides > 1 and self.dilation_rate > 1:
            raise ValueError(
                "Received invalid values for arguments `strides` and `dilation_rate`: "
                "strides > 1 is not supported together with dilation_rate > 1 (as in Keras), "
                f"got strides={self.strides} and dilation_rate={self.dilation_rate}."
            )
        self.activation = check_activation("activation", activation)
        self.use_bias = check_bool("use_bias", use_bias)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self._cache: Optional[tuple] = None

    @property
    def span(self) -> int:
        """Steps one output sees: ``(kernel_size - 1) * dilation_rate + 1``."""
        return (self.kernel_size - 1) * self.dilation_rate + 1

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        steps, _ = check_sequence_input(self, input_shape)
        length = ops.conv1d_output_length(steps, self.kernel_size, self.strides, self.padding,
                                          self.dilation_rate)
        if length is not None and length < 1:
            raise ValueError(
                f"Layer `{self.name}`: an input of {steps} steps is shorter than the kernel's "
                f"receptive field ({self.span} steps: kernel_size={self.kernel_size}, "
                f"dilation_rate={self.dilation_rate}) with padding={self.padding!r}; the output "
                "would be empty."
            )
        return (length, self.filters)

    def build(self, input_shape: tuple) -> None:
        steps, channels = check_sequence_input(self, input_shape)
        if channels % self.groups:
            raise ValueError(
                f"Layer `{self.name}`: the input's {channels} channels are not divisible by "
                f"groups={self.groups}."
            )
        self.compute_output_shape(input_shape)  # refuses an input too short, before weights
        self.add_weight("kernel", (self.kernel_size, channels // self.groups, self.filters),
                        self.kernel_initializer)
        if self.use_bias:
            self.add_weight("bias", (self.filters,), self.bias_initializer)
        super().build(input_shape)

    def _geometry(self, steps: int) -> tuple[int, int, int, int, int]:
        """(stride, dilation, pad_left, pad_right, groups) for `steps` input steps."""
        left, right = ops.conv1d_pads(steps, self.kernel_size, self.strides, self.padding,
                                      self.dilation_rate)
        return self.strides, self.dilation_rate, left, right, self.groups

    def forward(self, x: Any, training: bool = False) -> np.ndarray:
        x = np.ascontiguousarray(self._as_input(x))
        self._ensure_built(x)
        self._check_input(x)
        bias = self._weights[1] if self.use_bias else None
        # Checked here (rank, channels, dtype, contiguity) and again by the core.
        z = ops._conv1d_checked(x, self._weights[0], bias, *self._geometry(x.shape[1]))
        y = activation_forward(self.activation, z)
        self._cache = (x, z, y) if training else None
        return y

    def backward(self, d_out: np.ndarray) -> Optional[np.ndarray]:
        if self._cache is None:
            raise self._no_tape()
        x, z, y = self._cache
        d_out = np.asarray(d_out, dtype=self.dtype)
        if d_out.shape != z.shape:
            raise ValueError(
                f"Layer `{self.name}`: the gradient passed to backward must have the output's "
                f"shape {z.shape}, got {d_out.shape}."
            )
        dz = np.ascontiguousarray(activation_backward(self.activation, z, y, d_out))
        d_x, d_kernel, d_bias = ops._conv1d_backward_checked(
            x, self._weights[0], dz, *self._geometry(x.shape[1]), self.use_bias,
            self.input_grad_needed)
        self._write_grads([d_kernel] + ([d_bias] if self.use_bias else []))
        return d_x

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "groups": self.groups,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "kernel_initializer": serialize_initializer(self.kernel_initializer),
            "bias_initializer": serialize_initializer(self.bias_initializer),
        }
