"""Merge layers (several inputs, one output) and shape layers, as Keras names them.

Merges take a list of arrays of the same batch size: ``Concatenate(axis)`` joins them along
`axis`; ``Add``, ``Subtract`` (exactly two), ``Multiply``, ``Average``, ``Maximum``,
``Minimum`` combine arrays of equal shapes elementwise; ``Dot(axes)`` takes the dot product of
two inputs along an axis of each (per sample). Keras's function forms (``add([a, b])``,
``concatenate``, ``dot``, ...) make the layer and call it. ``backward`` returns one gradient per
input, in input order.

Shape layers: ``RepeatVector(n)`` turns ``(B, F)`` into ``(B, n, F)`` (vector-to-sequence);
``Reshape(target_shape)`` and ``Permute(dims)`` act on the axes after the batch axis.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .base import Layer, check_positive_int, register

__all__ = ["Add", "Average", "Concatenate", "Dot", "Maximum", "Minimum", "Multiply", "Permute",
           "RepeatVector", "Reshape", "Subtract", "add", "average", "concatenate", "dot",
           "maximum", "minimum", "multiply", "subtract"]


def _text(shape: tuple) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in (None, *shape)) + ")"


class _Merge(Layer):
    """Base of the merge layers: a list of inputs in, one array out."""

    takes_input_list = True
    supports_masking = True
    makes_mask = False  # combines the inputs' masks
    _min_inputs = 2
    _max_inputs: Optional[int] = None

    def _check_shapes(self, input_shape: Any) -> list[tuple]:
        if not isinstance(input_shape, (list, tuple)) or not input_shape or not all(
                isinstance(s, (list, tuple)) for s in input_shape):
            raise ValueError(
                f"Layer `{self.name}` ({type(self).__name__}) must be called on a list of "
                f"tensors, got input shape {input_shape!r}."
            )
        shapes = [tuple(s) for s in input_shape]
        n = len(shapes)
        if n < self._min_inputs or (self._max_inputs is not None and n > self._max_inputs):
            want = (f"exactly {self._min_inputs}" if self._max_inputs == self._min_inputs
                    else f"at least {self._min_inputs}")
            raise ValueError(
                f"Layer `{self.name}` ({type(self).__name__}) takes {want} inputs, got {n}."
            )
        return shapes

    def compute_output_shape(self, input_shape: Any) -> tuple:
        shapes = self._check_shapes(input_shape)
        first = shapes[0]
        for k, s in enumerate(shapes[1:], start=1):
            if len(s) != len(first) or any(a is not None and b is not None and a != b
                                           for a, b in zip(first, s)):
                raise ValueError(
                    f"Layer `{self.name}` ({type(self).__name__}) needs inputs of the same "
                    f"shape: input 0 has shape {_text(first)}, input {k} has shape {_text(s)}."
                )
        return tuple(next((d for d in dims if d is not None), None) for dims in zip(*shapes))

    def build(self, input_shape: Any) -> None:
        shapes = self._check_shapes(input_shape)
        self.compute_output_shape(shapes)
        self.input_shape = shapes
        self.output_shape = self.compute_output_shape(shapes)
        self.built = True

    def _arrays(self, x: Any) -> list[np.ndarray]:
        if not isinstance(x, (list, tuple)):
            raise ValueError(
                f"Layer `{self.name}` ({type(self).__name__}) expects a list of arrays, got "
                f"{type(x).__name__}."
            )
        arrays = [self._as_input(a) for a in x]
        if not self.built:
            self.build([a.shape[1:] for a in arrays])
        self._check_shapes([a.shape[1:] for a in arrays])
        self.compute_output_shape([a.shape[1:] for a in arrays])
        return arrays

    def compute_mask(self, x: Any, mask: Any) -> Optional[np.ndarray]:
        """As Keras: the steps unmasked in every input that has a mask."""
        if mask is None or not isinstance(mask, (list, tuple)):
            return mask
        present = [m for m in mask if m is not None]
        if not present:
            return None
        out = present[0]
        for m in present[1:]:
            out = out & m
        return out


@register
class Add(_Merge):
    """``x_0 + x_1 + ...`` (equal shapes)."""

    def forward(self, x: Any, training: bool = False) -> np.ndarray:
        arrays = self._arrays(x)
        self._n = len(arrays)
        out = arrays[0].copy()
        for a in arrays[1:]:
            out += a
        return out

    def backward(self, d_out: np.ndarray) -> list:
        return [d_out] * self._n


@register
class Average(Add):
    """The elementwise mean of the inputs (equal shapes)."""

    def forward(self, x: Any, training: bool = False) -> np.ndarray:
        out = super().forward(x, training)
        out /= self.dtype.type(self._n)
        return out

    def backward(self, d_out: np.ndarray) -> list:
        return super().backward(d_out / self.dtype.type(self._n))


@register
class Subtract(_Merge):
    """``x_0 - x_1`` (exactly two inputs of equal shapes)."""

    _max_inputs = 2

    def forward(self, x: Any, training: bool = False) -> np.ndarray:
        a, b = self._arrays(x)
        return a - b

    def backward(self, d_out: np.ndarray) -> list:
        return [d_out, -d_out]


@register
class Multiply(_Merge):
    """The elementwise product of the inputs (equal shapes)."""

    def forward(self, x: Any, training: bool = False) -> np.ndarray:
        arrays = self._arrays(x)
        self._inputs = arrays if training else None
        out = arrays[0].copy()
        for a in arrays[1:]:
            out *= a
        return out

    def backward(self, d_out: np.ndarray) -> list:
        if self._inputs is None:
            raise self._no_tape()
        grads = []
        for k in range(len(self._inputs)):
            g = d_out.copy()
            for j, a in enumerate(self._inputs):
                if j != k:
                    g *= a
            grads.append(g)
        return grads


class _Extreme(_Merge):
    """Maximum/Minimum: the gradient goes to the input that was chosen (the first on ties)."""

    _pick = staticmethod(np.argmax)

    def forward(self, x: Any, training: bool = False) -> np.ndarray:
        arrays = self._arrays(x)
        stacked = np.stack(arrays)
        which = self._pick(stacked, axis=0)
        self._which = which if training else None
        self._n = len(arrays)
        return np.take_along_axis(stacked, which[None], axis=0)[0]

    def backward(self, d_out: np.ndarray) -> list:
        if self._which is None:
            raise self._no_tape()
        return [np.where(self._which == k, d_out, 0).astype(self.dtype, copy=False)
                for k in range(self._n)]


@register
class Maximum(_Extreme):
    """The elementwise maximum of the inputs (equal shapes)."""

    _pick = staticmethod(np.argmax)


@register
class Minimum(_Extreme):
    """The elementwise minimum of the inputs (equal shapes)."""

    _pick = staticmethod(np.argmin)


@register
class Concatenate(_Merge):
    """Joins the inputs along `axis` (default the last); other axes must match.

    `axis` counts like NumPy's on the full array (batch axis included): -1 is the features,
    1 the first axis after the batch.
    """

    _min_inputs = 1

    def __init__(self, axis: int = -1, **kwargs: Any):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or axis == 0:
            raise ValueError(
                "Received an invalid value for argument `axis`, expected a non-zero integer "
                f"(the batch axis 0 cannot be concatenated), got {axis!r}."
            )
        self.axis = int(axis)

    def _axis(self, rank: int) -> int:
        """The axis in a shape without the batch axis (rank = that shape's length)."""
        axis = self.axis if self.axis < 0 else self.axis - 1
        if not -rank <= axis < rank or (self.axis > 0 and self.axis > rank):
            raise ValueError(
                f"Layer `{self.name}`: `axis`={self.axis} is out of range for inputs of rank "
                f"{rank + 1}."
            )
        return axis % rank

    def compute_output_shape(self, input_shape: Any) -> tuple:
        shapes = self._check_shapes(input_shape)
        first = shapes[0]
        axis = self._axis(len(first))
        total: Optional[int] = 0
        for k, s in enumerate(shapes):
            if len(s) != len(first) or any(
                    i != axis and a is not None and b is not None and a != b
                    for i, (a, b) in enumerate(zip(first, s))):
                raise ValueError(
                    f"Layer `{self.name}` (Concatenate, axis={self.axis}) needs inputs whose "
                    f"shapes match except on the concatenation axis: input 0 has shape "
                    f"{_text(first)}, input {k} has shape {_text(s)}."
                )
            total = None if total is None or s[axis] is None else total + s[axis]
        out = [next((d for d in dims if d is not None), None) for dims in zip(*shapes)]
        out[axis] = total
        return tuple(out)

    def forward(self, x: Any, training: bool = False) -> np.ndarray:
        arrays = self._arrays(x)
        axis = self._axis(arrays[0].ndim - 1) + 1
        self._sizes = [a.shape[axis] for a in arrays]
        return np.concatenate(arrays, axis=axis)

    def backward(self, d_out: np.ndarray) -> list:
        axis = self._axis(d_out.ndim - 1) + 1
        cuts = np.cumsum(self._sizes)[:-1]
        return [np.ascontiguousarray(p) for p in np.split(d_out, cuts, axis=axis)]

    def compute_mask(self, x: Any, mask: Any) -> Optional[np.ndarray]:
        if mask is None or not isinstance(mask, (list, tuple)) or all(m is None for m in mask):
            return None
        if self._axis(x[0].ndim - 1) + 1 == 1:
            raise NotImplementedError(
                f"Layer `{self.name}`: concatenating masked sequences along the time axis is "
                "not supported; concatenate along the features (axis=-1)."
            )
        return super().compute_mask(x, [np.ones(a.shape[:2], dtype=bool) if m is None else m
                                        for a, m in zip(x, mask)])

    def get_config(self) -> dict:
        return {**super().get_config(), "axis": self.axis}


@register
class RepeatVector(Layer):
    """``(B, F)`` -> ``(B, n, F)``: the same vector at each of `n` steps (vector-to-seq)."""

    def __init__(self, n: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.n = check_positive_int("n", n)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        if len(input_shape) != 1:
            raise ValueError(
                f"Layer `{self.name}` (RepeatVector) expects inputs of shape (batch, features), "
                f"got {_text(tuple(input_shape))}."
            )
        return (self.n, input_shape[0])

    def forward(self, x: Any, training: bool = False) -> np.ndarray:
        x = self._as_input(x)
        self._ensure_built(x)
        self._check_input(x)
        return np.repeat(x[:, None, :], self.n, axis=1)

    def backward(self, d_out: np.ndarray) -> np.ndarray:
        return d_out.sum(axis=1)

    def get_config(self) -> dict:
        return {**super().get_config(), "n": self.n}


@register
class Reshape(Layer):
    """Reshapes the axes after the batch axis to `target_shape` (one entry may be -1)."""

    supports_masking = False

    def __init__(self, target_shape: Any, **kwargs: Any):
        super().__init__(**kwargs)
        try:
            shape = tuple(int(d) for d in target_shape)
            ok = all(d > 0 or d == -1 for d in shape) and shape.count(-1) <= 1 and bool(shape)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(
                "Received an invalid value for argument `target_shape`, expected a tuple of "
                f"positive integers with at most one -1, got {target_shape!r}."
            )
        self.target_shape = shape

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        known = None if None in input_shape else int(np.prod(input_shape, dtype=np.int64))
        fixed = int(np.prod([d for d in self.target_shape if d != -1], dtype=np.int64))
        if -1 not in self.target_shape:
            if known is not None and known != fixed:
                raise ValueError(
                    f"Layer `{self.name}` (Reshape): cannot reshape inputs of shape "
                    f"{_text(tuple(input_shape))} ({known} values a sample) to "
                    f"{_text(self.target_shape)} ({fixed})."
                )
            return self.target_shape
        if known is None:
            return tuple(None if d == -1 else d for d in self.target_shape)
        if known % fixed:
            raise ValueError(
                f"Layer `{self.name}` (Reshape): inputs of shape {_text(tuple(input_shape))} "
                f"({known} values a sample) do not divide into {_text(self.target_shape)}."
            )
        return tuple(known // fixed if d == -1 else d for d in self.target_shape)

    def forward(self, x: Any, training: bool = False) -> np.ndarray:
        x = self._as_input(x)
        self._ensure_built(x)
        self._shape_in = x.shape
        out = self.compute_output_shape(x.shape[1:])
        return x.reshape((x.shape[0], *out))

    def backward(self, d_out: np.ndarray) -> np.ndarray:
        return np.asarray(d_out).reshape(self._shape_in)

    def get_config(self) -> dict:
        return {**super().get_config(), "target_shape": list(self.target_shape)}


@register
class Permute(Layer):
    """Permutes the axes after the batch axis; `dims` counts them from 1 (Keras's form),
    e.g. ``Permute((2, 1))`` swaps time and features."""

    def __init__(self, dims: Any, **kwargs: Any):
        super().__init__(**kwargs)
        try:
            dims = tuple(int(d) for d in dims)
        except (TypeError, ValueError):
            dims = ()
        if not dims or sorted(dims) != list(range(1, len(dims) + 1)):
            raise ValueError(
                "Received an invalid value for argument `dims`, expected a permutation of "
                f"1..n (the axes after the batch axis), got {dims!r}."
            )
        self.dims = dims

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        if len(input_shape) != len(self.dims):
            raise ValueError(
                f"Layer `{self.name}` (Permute, dims={self.dims}) expects inputs of rank "
                f"{len(self.dims) + 1}, got {_text(tuple(input_shape))}."
            )
        return tuple(input_shape[d - 1] for d in self.dims)

    def forward(self, x: Any, training: bool = False) -> np.ndarray:
        x = self._as_input(x)
        self._ensure_built(x)
        self._check_input(x)
        return np.ascontiguousarray(x.transpose((0, *self.dims)))

    def backward(self, d_out: np.ndarray) -> np.ndarray:
        inverse = np.argsort((0, *self.dims))
        return np.ascontiguousarray(np.asarray(d_out).transpose(inverse))

    def get_config(self) -> dict:
        return {**super().get_config(), "dims": list(self.dims)}


def _l2_normalize(x: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """``x / sqrt(max(sum(x^2), 1e-12))`` along `axis`, and that inverse norm."""
    inv = 1.0 / np.sqrt(np.maximum((x * x).sum(axis=axis, keepdims=True), x.dtype.type(1e-12)))
    return x * inv, inv


def _l2_normalize_backward(y: np.ndarray, inv: np.ndarray, d_y: np.ndarray,
                           axis: int) -> np.ndarray:
    above = inv < 1e6  # below the 1e-12 floor the scale is a constant
    return inv * (d_y - np.where(above, y * (d_y * y).sum(axis=axis, keepdims=True), 0))


@register
class Dot(_Merge):
    """The per-sample dot product of two inputs along an axis of each, as
    ``keras.layers.Dot``.

    Args:
        axes: an int (the same axis of both) or a pair; counted with the batch axis (1 is
            the first axis after it; negative counts from the end).
        normalize: L2-normalize both inputs along the axes first (the result is then the
            cosine similarity).

    Shapes: ``(B, D) . (B, D) -> (B, 1)``; ``(B, T, D) . (B, S, D)`` with ``axes=2`` ->
    ``(B, T, S)`` (attention scores); in general the first input's axes without its dot axis,
    then the second's without its own. One batched product; a mask is not passed on.
    """

    _max_inputs = 2
    supports_masking = False

    def __init__(self, axes: Any, normalize: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        pair = axes if isinstance(axes, (list, tuple)) else (axes, axes)
        if len(pair) != 2 or any(isinstance(a, (bool, np.bool_)) or not isinstance(
                a, (int, np.integer)) or a == 0 for a in pair):
            raise ValueError(
                "Received an invalid value for argument `axes`, expected a non-zero integer or "
                f"a list of two (one axis of each input, not the batch axis 0), got {axes!r}."
            )
        self.axes = axes if isinstance(axes, int) else [int(a) for a in pair]
        self._pair = (int(pair[0]), int(pair[1]))
        if not isinstance(normalize, (bool, np.bool_)):
            raise TypeError(
                f"Received an invalid value for argument `normalize`, expected True or False, "
                f"got {normalize!r}."
            )
        self.normalize = bool(normalize)

    def compute_mask(self, x: Any, mask: Any = None) -> None:
        return None

    def _resolved(self, shapes: list) -> tuple[int, int]:
        """The dot axes in each shape without the batch axis."""
        out = []
        for k, (a, s) in enumerate(zip(self._pair, shapes)):
            rank = len(s) + 1
            if not -rank < a < rank:
                raise ValueError(
                    f"Layer `{self.name}` (Dot): `axes`={self.axes} is out of range for input {k} "
                    f"of rank {rank}."
                )
            out.append(a % rank - 1)
        return out[0], out[1]

    def compute_output_shape(self, input_shape: Any) -> tuple:
        shapes = self._check_shapes(input_shape)
        (a0, a1), (s0, s1) = self._resolved(shapes), shapes
        if s0[a0] is not None and s1[a1] is not None and s0[a0] != s1[a1]:
            raise ValueError(
                f"Layer `{self.name}` (Dot, axes={self.axes}): the dot axes must have one size, "
                f"got {s0[a0]} (input 0 of shape {_text(s0)}) and {s1[a1]} (input 1 of shape "
                f"{_text(s1)})."
            )
        out = tuple(d for i, d in enumerate(s0) if i != a0) + tuple(
            d for i, d in enumerate(s1) if i != a1)
        return out or (1,)

    def forward(self, x: Any, training: bool = False) -> np.ndarray:
        a, b = self._arrays(x)
        a0, a1 = self._resolved([a.shape[1:], b.shape[1:]])
        norms = None
        if self.normalize:
            (a, ia), (b, ib) = _l2_normalize(a, a0 + 1), _l2_normalize(b, a1 + 1)
            norms = (a, ia, b, ib)
        am = np.moveaxis(a, a0 + 1, -1)                                  # (B, ..., D)
        bm = np.moveaxis(b, a1 + 1, 1)                                   # (B, D, ...)
        B, D = a.shape[0], a.shape[a0 + 1]
        a3 = am.reshape(B, -1, D)                                        # (B, M, D)
        b3 = bm.reshape(B, D, -1)                                        # (B, D, N)
        out = np.matmul(a3, b3)                                          # (B, M, N)
        self._tape = (a3, b3, am.shape, bm.shape, a0, a1, norms) if training else None
        return out.reshape((B,) + self.compute_output_shape([a.shape[1:], b.shape[1:]]))

    def backward(self, d_out: np.ndarray) -> list:
        if getattr(self, "_tape", None) is None:
            raise self._no_tape()
        a3, b3, a_shape, b_shape, a0, a1, norms = self._tape
        d = np.asarray(d_out, dtype=self.dtype).reshape(a3.shape[0], a3.shape[1], b3.shape[2])
        d_a = np.moveaxis(np.matmul(d, b3.transpose(0, 2, 1)).reshape(a_shape), -1, a0 + 1)
        d_b = np.moveaxis(np.matmul(a3.transpose(0, 2, 1), d).reshape(b_shape), 1, a1 + 1)
        if norms is not None:
            a, ia, b, ib = norms
            d_a = _l2_normalize_backward(a, ia, d_a, a0 + 1)
            d_b = _l2_normalize_backward(b, ib, d_b, a1 + 1)
        return [np.ascontiguousarray(d_a), np.ascontiguousarray(d_b)]

    def get_config(self) -> dict:
        return {**super().get_config(), "axes": self.axes, "normalize": self.normalize}


# ----------------------------------------------------------------------------- functions
# Keras's functional forms: make the layer, call it on the inputs (arrays or symbolic).
def add(inputs: list, **kwargs: Any) -> Any:
    """``Add(**kwargs)(inputs)``."""
    return Add(**kwargs)(inputs)


def subtract(inputs: list, **kwargs: Any) -> Any:
    """``Subtract(**kwargs)(inputs)``."""
    return Subtract(**kwargs)(inputs)


def multiply(inputs: list, **kwargs: Any) -> Any:
    """``Multiply(**kwargs)(inputs)``."""
    return Multiply(**kwargs)(inputs)


def average(inputs: list, **kwargs: Any) -> Any:
    """``Average(**kwargs)(inputs)``."""
    return Average(**kwargs)(inputs)


def maximum(inputs: list, **kwargs: Any) -> Any:
    """``Maximum(**kwargs)(inputs)``."""
    return Maximum(**kwargs)(inputs)


def minimum(inputs: list, **kwargs: Any) -> Any:
    """``Minimum(**kwargs)(inputs)``."""
    return Minimum(**kwargs)(inputs)


def concatenate(inputs: list, axis: int = -1, **kwargs: Any) -> Any:
    """``Concatenate(axis=axis, **kwargs)(inputs)``."""
    return Concatenate(axis=axis, **kwargs)(inputs)


def dot(inputs: list, axes: Any = -1, normalize: bool = False, **kwargs: Any) -> Any:
    """``Dot(axes=axes, normalize=normalize, **kwargs)(inputs)``."""
    return Dot(axes=axes, normalize=normalize, **kwargs)(inputs)
