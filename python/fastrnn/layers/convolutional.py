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

__all__ = ["Conv1D", "Conv1DTranspose", "DepthwiseConv1D", "SeparableConv1D"]


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
check_padding = ops.internal.check_padding


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
        z = ops.internal.conv1d_checked(x, self._weights[0], bias, *self._geometry(x.shape[1]))
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
        d_x, d_kernel, d_bias = ops.internal.conv1d_backward_checked(
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


# ----------------------------------------------------------------------------- transposed
# Letters: B batch, T input steps, C input channels, F filters, K taps, s stride, d dilation,
# L output steps. Input step t, tap k lands on output step ``t*s + k*d - left``; the core
# computes steps [left, left + L) of that (cpp/conv1d.hpp).
def conv1d_transpose_output_length(steps: Optional[int], kernel_size: int, strides: int,
                                   padding: str, output_padding: Optional[int],
                                   dilation_rate: int) -> Optional[int]:
    """Keras's output length of a transposed convolution over `steps` input steps."""
    if steps is None:
        return None
    span = (kernel_size - 1) * dilation_rate + 1
    if padding == "valid":
        extra = max(span, strides) - span if output_padding is None else output_padding
        return (steps - 1) * strides + span + extra
    if output_padding is None:
        return steps * strides
    return (steps - 1) * strides + span % 2 + output_padding


def _transpose_left(length: int, strides: int, span: int, padding: str) -> int:
    """Output steps cropped on the left: the left padding of the forward convolution that
    maps `length` steps back to the input's (TensorFlow's rule for "same")."""
    if padding == "valid":
        return 0
    total = max((-(-length // strides) - 1) * strides + span - length, 0)
    return total // 2


class _ConvBase(Layer):
    """Arguments every 1-D convolution shares, checked as Keras checks them."""

    supports_masking = False

    def _common(self, kernel_size: Any, strides: Any, padding: Any, data_format: Any,
                dilation_rate: Any, activation: Any, use_bias: Any, paddings: tuple) -> None:
        self.kernel_size = check_int_or_single("kernel_size", kernel_size)
        self.strides = check_int_or_single("strides", strides)
        self.padding = check_padding(padding, paddings)
        self.data_format = check_channels_last(data_format)
        self.dilation_rate = check_int_or_single("dilation_rate", dilation_rate)
        if self.strides > 1 and self.dilation_rate > 1:
            raise ValueError(
                "Received invalid values for arguments `strides` and `dilation_rate`: "
                "strides > 1 is not supported together with dilation_rate > 1 (as in Keras), "
                f"got strides={self.strides} and dilation_rate={self.dilation_rate}."
            )
        self.activation = check_activation("activation", activation)
        self.use_bias = check_bool("use_bias", use_bias)
        self._cache: Optional[tuple] = None

    @property
    def span(self) -> int:
        """Steps one kernel application covers: ``(kernel_size - 1) * dilation_rate + 1``."""
        return (self.kernel_size - 1) * self.dilation_rate + 1

    def _activate(self, x: np.ndarray, z: np.ndarray, extra: Any, training: bool) -> np.ndarray:
        y = activation_forward(self.activation, z)
        self._cache = (x, z, y, extra) if training else None
        return y

    def _d_z(self, d_out: Any) -> tuple:
        if self._cache is None:
            raise self._no_tape()
        x, z, y, extra = self._cache
        d_out = np.asarray(d_out, dtype=self.dtype)
        if d_out.shape != z.shape:
            raise ValueError(
                f"Layer `{self.name}`: the gradient passed to backward must have the output's "
                f"shape {z.shape}, got {d_out.shape}."
            )
        return x, np.ascontiguousarray(activation_backward(self.activation, z, y, d_out)), extra

    def _bias_grad(self, d_z: np.ndarray) -> list:
        return [d_z.reshape(-1, d_z.shape[-1]).sum(axis=0)] if self.use_bias else []

    def _conv_config(self) -> dict:
        return {
            **super().get_config(),
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "activation": self.activation,
            "use_bias": self.use_bias,
        }


@register
class Conv1DTranspose(_ConvBase):
    """Transposed 1-D convolution, as ``keras.layers.Conv1DTranspose``: the gradient of a
    Conv1D with respect to its input, used to upsample a sequence.

    Args:
        filters: output channels ``F``.
        kernel_size, strides, dilation_rate: as Conv1D's (``strides > 1`` with
            ``dilation_rate > 1`` refused, as Keras does).
        padding: ``"valid"`` or ``"same"``.
        output_padding: extra steps at the end (an int below `strides`), or None.
        activation, use_bias, kernel_initializer, bias_initializer: as in Keras.

    Input ``(B, T, C)``, output ``(B, L, F)`` with Keras's length: valid ``(T - 1) * strides
    + max(span, strides)``, same ``T * strides`` (with `output_padding`: ``(T - 1) * strides
    + span + output_padding`` resp. ``(T - 1) * strides + span % 2 + output_padding``).
    Weights: ``kernel (kernel_size, filters, C)`` (Keras's layout) and ``bias (filters,)``.
    Forward and backward run on the core (cpp/conv1d.hpp: products per chunk of steps and a
    scatter onto the taps, threaded over the batch); tests/_reference_layers.py has the NumPy
    form the tests check them against.
    """

    def __init__(self, filters: int, kernel_size: Any, strides: Any = 1, padding: str = "valid",
                 output_padding: Any = None, data_format: Optional[str] = None,
                 dilation_rate: Any = 1, activation: Optional[str] = None,
                 use_bias: bool = True, kernel_initializer: Any = "glorot_uniform",
                 bias_initializer: Any = "zeros", **kwargs: Any):
        super().__init__(**keras_name(kwargs, "conv1d_transpose"))
        self.filters = check_positive_int("filters", filters)
        self._common(kernel_size, strides, padding, data_format, dilation_rate, activation,
                     use_bias, ("valid", "same"))
        if output_padding is not None:
            if isinstance(output_padding, (tuple, list)) and len(output_padding) == 1:
                output_padding = output_padding[0]
            if isinstance(output_padding, (bool, np.bool_)) or not isinstance(
                    output_padding, (int, np.integer)) or not 0 <= output_padding < self.strides:
                raise ValueError(
                    "Received an invalid value for argument `output_padding`, expected None or "
                    f"an integer in [0, strides={self.strides}), got {output_padding!r}."
                )
            output_padding = int(output_padding)
        self.output_padding = output_padding
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer

    def _length(self, steps: Optional[int]) -> Optional[int]:
        return conv1d_transpose_output_length(steps, self.kernel_size, self.strides,
                                              self.padding, self.output_padding,
                                              self.dilation_rate)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        steps, _ = check_sequence_input(self, input_shape)
        return (self._length(steps), self.filters)

    def build(self, input_shape: tuple) -> None:
        _, channels = check_sequence_input(self, input_shape)
        self.add_weight("kernel", (self.kernel_size, self.filters, channels),
                        self.kernel_initializer)
        if self.use_bias:
            self.add_weight("bias", (self.filters,), self.bias_initializer)
        super().build(input_shape)

    def forward(self, x: Any, training: bool = False) -> np.ndarray:
        x = np.ascontiguousarray(self._as_input(x))
        self._ensure_built(x)
        self._check_input(x)
        length = self._length(x.shape[1])
        left = _transpose_left(length, self.strides, self.span, self.padding)
        bias = self._weights[1] if self.use_bias else None
        z = ops.internal.conv1d_transpose_checked(x, self._weights[0], bias, self.strides,
                                                  self.dilation_rate, left, length)
        return self._activate(x, z, left, training)

    def backward(self, d_out: np.ndarray) -> Optional[np.ndarray]:
        x, d_z, left = self._d_z(d_out)
        d_x, d_kernel, d_bias = ops.internal.conv1d_transpose_backward_checked(
            x, self._weights[0], d_z, self.strides, self.dilation_rate, left, self.use_bias,
            self.input_grad_needed)
        self._write_grads([d_kernel] + ([d_bias] if self.use_bias else []))
        return d_x

    def get_config(self) -> dict:
        return {
            **self._conv_config(),
            "filters": self.filters,
            "output_padding": self.output_padding,
            "kernel_initializer": serialize_initializer(self.kernel_initializer),
            "bias_initializer": serialize_initializer(self.bias_initializer),
        }


# ----------------------------------------------------------------------------- depthwise
class _Depthwise(_ConvBase):
    """A per-channel convolution (``depth_multiplier`` filters per input channel) on the
    core's grouped Conv1D kernel: Keras's ``depthwise_kernel (K, C, M)`` is, in memory, the
    grouped kernel ``(K, 1, C*M)`` with ``groups=C`` (output channel ``c*M + m``)."""

    def _depthwise_common(self, depth_multiplier: Any) -> None:
        self.depth_multiplier = check_positive_int("depth_multiplier", depth_multiplier)

    def _depthwise_output_shape(self, input_shape: tuple, channels_out: int) -> tuple:
        steps, channels = check_sequence_input(self, input_shape)
        length = ops.conv1d_output_length(steps, self.kernel_size, self.strides, self.padding,
                                          self.dilation_rate)
        if length is not None and length < 1:
            raise ValueError(
                f"Layer `{self.name}`: an input of {steps} steps is shorter than the kernel's "
                f"receptive field ({self.span} steps: kernel_size={self.kernel_size}, "
                f"dilation_rate={self.dilation_rate}) with padding={self.padding!r}; the output "
                "would be empty."
            )
        return (length, channels_out)

    def _geometry(self, x: np.ndarray) -> tuple:
        left, right = ops.conv1d_pads(x.shape[1], self.kernel_size, self.strides, self.padding,
                                      self.dilation_rate)
        return self.strides, self.dilation_rate, left, right, x.shape[2]

    def _depthwise(self, x: np.ndarray, kernel: np.ndarray, bias: Optional[np.ndarray]):
        K, C, M = kernel.shape
        return ops.internal.conv1d_checked(x, kernel.reshape(K, 1, C * M), bias, *self._geometry(x))

    def _depthwise_backward(self, x: np.ndarray, kernel: np.ndarray, d_z: np.ndarray,
                            use_bias: bool, input_grad: bool) -> tuple:
        K, C, M = kernel.shape
        d_x, d_kernel, d_bias = ops.internal.conv1d_backward_checked(
            x, kernel.reshape(K, 1, C * M), d_z, *self._geometry(x), use_bias, input_grad)
        return d_x, d_kernel.reshape(K, C, M), d_bias


@register
class DepthwiseConv1D(_Depthwise):
    """Depthwise 1-D convolution, as ``keras.layers.DepthwiseConv1D``: each input channel
    convolved with its own `depth_multiplier` filters.

    Input ``(B, T, C)``, output ``(B, L, C * depth_multiplier)`` (``L`` as Conv1D's).
    Weights: ``depthwise_kernel (kernel_size, C, depth_multiplier)``, ``bias (C *
    depth_multiplier,)``. Padding ``"valid"`` or ``"same"`` (Keras refuses ``"causal"`` here).
    """

    def __init__(self, kernel_size: Any, strides: Any = 1, padding: str = "valid",
                 depth_multiplier: int = 1, data_format: Optional[str] = None,
                 dilation_rate: Any = 1, activation: Optional[str] = None,
                 use_bias: bool = True, depthwise_initializer: Any = "glorot_uniform",
                 bias_initializer: Any = "zeros", **kwargs: Any):
        super().__init__(**keras_name(kwargs, "depthwise_conv1d"))
        self._common(kernel_size, strides, padding, data_format, dilation_rate, activation,
                     use_bias, ("valid", "same"))
        self._depthwise_common(depth_multiplier)
        self.depthwise_initializer = depthwise_initializer
        self.bias_initializer = bias_initializer

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        channels = check_sequence_input(self, input_shape)[1]
        return self._depthwise_output_shape(input_shape, channels * self.depth_multiplier)

    def build(self, input_shape: tuple) -> None:
        self.compute_output_shape(input_shape)
        channels = input_shape[-1]
        self.add_weight("depthwise_kernel", (self.kernel_size, channels, self.depth_multiplier),
                        self.depthwise_initializer)
        if self.use_bias:
            self.add_weight("bias", (channels * self.depth_multiplier,), self.bias_initializer)
        super().build(input_shape)

    def forward(self, x: Any, training: bool = False) -> np.ndarray:
        x = np.ascontiguousarray(self._as_input(x))
        self._ensure_built(x)
        self._check_input(x)
        self.compute_output_shape(x.shape[1:])
        z = self._depthwise(x, self._weights[0], self._weights[1] if self.use_bias else None)
        return self._activate(x, z, None, training)

    def backward(self, d_out: np.ndarray) -> Optional[np.ndarray]:
        x, d_z, _ = self._d_z(d_out)
        d_x, d_kernel, d_bias = self._depthwise_backward(x, self._weights[0], d_z,
                                                         self.use_bias, self.input_grad_needed)
        self._write_grads([d_kernel] + ([d_bias] if self.use_bias else []))
        return d_x

    def get_config(self) -> dict:
        return {
            **self._conv_config(),
            "depth_multiplier": self.depth_multiplier,
            "depthwise_initializer": serialize_initializer(self.depthwise_initializer),
            "bias_initializer": serialize_initializer(self.bias_initializer),
        }


@register
class SeparableConv1D(_Depthwise):
    """Depthwise-separable 1-D convolution, as ``keras.layers.SeparableConv1D``: a
    depthwise convolution (``depth_multiplier`` filters per channel) then a pointwise one
    (a ``(C * depth_multiplier, filters)`` product at every step).

    Input ``(B, T, C)``, output ``(B, L, filters)`` (``L`` as Conv1D's). Weights, in Keras's
    order: ``depthwise_kernel (kernel_size, C, depth_multiplier)``, ``pointwise_kernel (1, C *
    depth_multiplier, filters)``, ``bias (filters,)``. Padding ``"valid"`` or ``"same"`` (Keras
    refuses ``"causal"`` here).
    """

    def __init__(self, filters: int, kernel_size: Any, strides: Any = 1,
                 padding: str = "valid", data_format: Optional[str] = None,
                 dilation_rate: Any = 1, depth_multiplier: int = 1,
                 activation: Optional[str] = None, use_bias: bool = True,
                 depthwise_initializer: Any = "glorot_uniform",
                 pointwise_initializer: Any = "glorot_uniform",
                 bias_initializer: Any = "zeros", **kwargs: Any):
        super().__init__(**keras_name(kwargs, "separable_conv1d"))
        self.filters = check_positive_int("filters", filters)
        self._common(kernel_size, strides, padding, data_format, dilation_rate, activation,
                     use_bias, ("valid", "same"))
        self._depthwise_common(depth_multiplier)
        self.depthwise_initializer = depthwise_initializer
        self.pointwise_initializer = pointwise_initializer
        self.bias_initializer = bias_initializer

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return self._depthwise_output_shape(input_shape, self.filters)

    def build(self, input_shape: tuple) -> None:
        self.compute_output_shape(input_shape)
        channels = input_shape[-1]
        self.add_weight("depthwise_kernel", (self.kernel_size, channels, self.depth_multiplier),
                        self.depthwise_initializer)
        self.add_weight("pointwise_kernel", (1, channels * self.depth_multiplier, self.filters),
                        self.pointwise_initializer)
        if self.use_bias:
            self.add_weight("bias", (self.filters,), self.bias_initializer)
        super().build(input_shape)

    def forward(self, x: Any, training: bool = False) -> np.ndarray:
        x = np.ascontiguousarray(self._as_input(x))
        self._ensure_built(x)
        self._check_input(x)
        self.compute_output_shape(x.shape[1:])
        mid = self._depthwise(x, self._weights[0], None)            # (B, L, C*M)
        B, L, CM = mid.shape
        z = ops.matmul(mid.reshape(B * L, CM), self._weights[1][0]).reshape(B, L, self.filters)
        if self.use_bias:
            z += self._weights[2]
        return self._activate(x, z, mid, training)

    def backward(self, d_out: np.ndarray) -> Optional[np.ndarray]:
        x, d_z, mid = self._d_z(d_out)
        B, L, CM = mid.shape
        d_z2 = d_z.reshape(B * L, self.filters)
        d_point = ops.matmul(mid.reshape(B * L, CM), d_z2, trans_a=True)[None]
        d_mid = ops.matmul(d_z2, self._weights[1][0], trans_b=True).reshape(B, L, CM)
        d_x, d_depth, _ = self._depthwise_backward(x, self._weights[0], d_mid, False,
                                                   self.input_grad_needed)
        self._write_grads([d_depth, d_point] + self._bias_grad(d_z))
        return d_x

    def get_config(self) -> dict:
        return {
            **self._conv_config(),
            "filters": self.filters,
            "depth_multiplier": self.depth_multiplier,
            "depthwise_initializer": serialize_initializer(self.depthwise_initializer),
            "pointwise_initializer": serialize_initializer(self.pointwise_initializer),
            "bias_initializer": serialize_initializer(self.bias_initializer),
        }
