"""Loss functions with analytic gradients, Keras semantics.

Every loss reduces like Keras's default (``"sum_over_batch_size"``): a per-sample loss is the
mean over the last axis (MSE, MAE, Huber, binary cross-entropy) or the sum over classes
(categorical cross-entropies), then the per-sample losses are averaged. ``__call__`` returns
that scalar; ``gradient`` returns d(scalar)/d(y_pred) with ``y_pred``'s shape and dtype;
``value_and_gradient`` computes both in one pass (the model calls it once per batch).

Shapes (``...`` is any number of leading axes, e.g. ``(B,)`` or ``(B, T)``; ``C`` classes):

=================================  ===============================  ===================
loss                               ``y_true``                       ``y_pred``
=================================  ===============================  ===================
mse, mae, huber, bce               ``(..., D)`` (or ``(...)`` if D=1)  ``(..., D)``
categorical_crossentropy           ``(..., C)`` one-hot/soft labels   ``(..., C)``
sparse_categorical_crossentropy    ``(...)`` or ``(..., 1)`` ints    ``(..., C)``
=================================  ===============================  ===================

As in Keras, a ``y_true`` that differs from ``y_pred`` only by a trailing axis of length 1 is
reshaped to match. Probabilities are clipped to ``[1e-7, 1 - 1e-7]`` before the log; the
gradient is the exact derivative of that clipped loss (zero where a probability is clipped).
A sigmoid/softmax output layer trains better with ``from_logits=True`` on a linear output.

Keras 3 names not in fastrnn: ``Circle``/``circle`` (a metric-learning loss over a batch's
embedding pairs, not sequence work). Keras's ``reduction`` argument is not taken: every loss
reduces with ``"sum_over_batch_size"``.

Custom losses: fastrnn has no autodiff, so a plain ``f(y_true, y_pred)`` cannot be trained on
unless it also returns its gradient. :func:`get` wraps any callable in :class:`FunctionLoss`;
the callable may return either a scalar (or per-sample array, averaged), usable for
evaluation only, or a pair ``(value, d_value/d_y_pred)``, usable for training. Training with a
scalar-only callable raises ``TypeError`` at the first batch. For anything reusable, subclass
:class:`Loss` and implement ``_value`` and ``_value_and_gradient``.
"""

from __future__ import annotations

from typing import Any, Callable, Union

import numpy as np

__all__ = [
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "FunctionLoss",
    "Huber",
    "Loss",
    "MeanAbsoluteError",
    "MeanSquaredError",
    "SparseCategoricalCrossentropy",
    "deserialize",
    "get",
    "serialize",
]

EPSILON = 1e-7  # Keras's backend.epsilon(): probabilities are clipped to [EPSILON, 1 - EPSILON]


def _as_float_array(y_pred: Any) -> np.ndarray:
    y_pred = np.asarray(y_pred)
    if y_pred.dtype.kind != "f":
        y_pred = y_pred.astype(np.float32)
    return y_pred


def _match_shape(y_true: Any, y_pred: np.ndarray, what: str = "y_true") -> np.ndarray:
    """``y_true`` as an array of ``y_pred``'s shape and dtype (no copy when it already is)."""
    y_true = np.asarray(y_true, dtype=y_pred.dtype)
    if y_true.shape == y_pred.shape:
        return y_true
    # Keras squeezes or expands a trailing axis of length 1: (B,) vs (B, 1) and (B, 1) vs (B,).
    if (y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1:] == (1,)) or (
        y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1:] == (1,)
    ):
        if y_true.size == y_pred.size:
            return y_true.reshape(y_pred.shape)
    raise ValueError(
        f"{what} and y_pred must have the same shape (up to a trailing axis of length 1), "
        f"got {what} {y_true.shape} and y_pred {y_pred.shape}."
    )


def _num_samples(y_pred: np.ndarray) -> int:
    """How many per-sample losses are averaged: the product of all axes but the last."""
    if y_pred.ndim == 0:
        raise ValueError("y_pred must have at least one axis, got a scalar.")
    return int(np.prod(y_pred.shape[:-1], dtype=np.int64))


def _check_not_empty(y_pred: np.ndarray) -> None:
    if y_pred.ndim == 0:
        raise ValueError("y_pred must have at least one axis, got a scalar.")
    if y_pred.size == 0:
        raise ValueError(
            f"y_pred is empty (shape {y_pred.shape}); a loss needs at least one value."
        )


def sample_weights(sample_weight: Any, shape: tuple, what: str = "sample_weight") -> np.ndarray:
    """`sample_weight` as a float64 array of the per-sample losses' `shape` (``y_pred.shape[:-1]``,
    e.g. ``(B,)`` or ``(B, T)``). As Keras, weights of a leading part of the shape are repeated
    over the rest (``(B,)`` weights for ``(B, T)`` losses weigh every step of a sample alike) and
    a trailing axis of length 1 is dropped."""
    w = np.asarray(sample_weight)
    if w.dtype.kind not in "biuf":
        raise ValueError(
            f"Received an invalid value for argument `{what}`: expected a numeric array, got "
            f"dtype {w.dtype}."
        )
    w = w.astype(np.float64, copy=False)
    shape = tuple(shape)
    if w.shape != shape:
        if w.shape == (*shape, 1) or (w.ndim == len(shape) and w.shape[-1:] == (1,)
                                      and w.shape[:-1] == shape[:-1]):
            w = w.reshape(w.shape[:-1])
        if w.ndim < len(shape) and w.shape == shape[:w.ndim]:
            w = np.broadcast_to(w.reshape(w.shape + (1,) * (len(shape) - w.ndim)), shape)
        elif w.shape != shape:
            raise ValueError(
                f"Received an invalid value for argument `{what}`: expected weights of shape "
                f"{shape} (one per sample, or per sample and time step) or a leading part of "
                f"it, got shape {np.shape(sample_weight)}."
            )
    if not np.isfinite(w).all():
        raise ValueError(f"Received an invalid value for argument `{what}`: it holds NaN or "
                         "infinite values.")
    return w


class Loss:
    """Base class: a scalar loss over a batch and its gradient with respect to ``y_pred``.

    Subclasses implement ``call(y_true, y_pred)`` (the per-sample losses, shape
    ``y_pred.shape[:-1]``, as Keras's ``Loss.call``), ``_value(y_true, y_pred) -> float`` and
    ``_value_and_gradient(y_true, y_pred) -> (float, ndarray)``, receiving ``y_pred`` as a
    floating array and ``y_true`` unconverted (see ``_match_shape``).

    ``sample_weight`` (Keras's reduction ``"sum_over_batch_size"``): the loss is
    ``sum(w * per_sample) / number of per-sample losses``, and its gradient the unweighted one
    times each sample's weight (each per-sample loss depends on its own row of ``y_pred``
    only).
    """

    name: str = "loss"

    def __init__(self, name: str | None = None):
        if name is not None:
            self.name = name

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> float:
        """The mean loss over all samples. ``y_pred``: ``(..., D)``; ``y_true`` see module doc;
        `sample_weight` ``(...)`` or a leading part of it (see :func:`sample_weights`)."""
        y_pred = _as_float_array(y_pred)
        _check_not_empty(y_pred)
        if sample_weight is None:
            return float(self._value(y_true, y_pred))
        per = np.asarray(self.call(y_true, y_pred), dtype=np.float64)
        w = sample_weights(sample_weight, per.shape)
        return float(np.vdot(per, w) / per.size)

    def call(self, y_true: Any, y_pred: Any) -> np.ndarray:
        """The per-sample losses, shape ``y_pred.shape[:-1]`` (no reduction over samples)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement call().")

    def gradient(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> np.ndarray:
        """d(loss)/d(y_pred): an array of ``y_pred``'s shape and dtype."""
        return self.value_and_gradient(y_true, y_pred, sample_weight)[1]

    def value_and_gradient(self, y_true: Any, y_pred: Any,
                           sample_weight: Any = None) -> tuple[float, np.ndarray]:
        """``(loss, d(loss)/d(y_pred))`` in one pass; the gradient has ``y_pred``'s shape/dtype."""
        y_pred = _as_float_array(y_pred)
        _check_not_empty(y_pred)
        value, grad = self._value_and_gradient(y_true, y_pred)
        if sample_weight is None:
            return float(value), grad
        per = np.asarray(self.call(y_true, y_pred), dtype=np.float64)
        w = sample_weights(sample_weight, per.shape)
        grad *= w.reshape(w.shape + (1,) * (grad.ndim - w.ndim)).astype(grad.dtype, copy=False)
        return float(np.vdot(per, w) / per.size), grad

    def _value(self, y_true: Any, y_pred: np.ndarray) -> float:
        return self._value_and_gradient(y_true, y_pred)[0]

    def _value_and_gradient(self, y_true: Any, y_pred: np.ndarray) -> tuple[float, np.ndarray]:
        raise NotImplementedError(
            f"{type(self).__name__} must implement _value_and_gradient(y_true, y_pred)."
        )

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, JSON-serialisable."""
        return {"name": self.name}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Loss:
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class MeanSquaredError(Loss):
    """``mean((y_pred - y_true) ** 2)``."""

    name = "mean_squared_error"

    def call(self, y_true, y_pred):
        return mean_squared_error(y_true, y_pred)

    def _value(self, y_true, y_pred):
        diff = y_pred - _match_shape(y_true, y_pred)
        # float64 accumulation: evaluation may reduce millions of float32 values at once
        return np.square(diff, out=diff).sum(dtype=np.float64) / diff.size

    def _value_and_gradient(self, y_true, y_pred):
        grad = y_pred - _match_shape(y_true, y_pred)  # the only allocation: becomes the gradient
        flat = grad.reshape(-1)
        value = np.dot(flat, flat) / grad.size
        grad *= 2.0 / grad.size
        return value, grad


class MeanAbsoluteError(Loss):
    """``mean(|y_pred - y_true|)``; the gradient at a zero error is 0 (as in TensorFlow)."""

    name = "mean_absolute_error"

    def call(self, y_true, y_pred):
        return mean_absolute_error(y_true, y_pred)

    def _value(self, y_true, y_pred):
        diff = y_pred - _match_shape(y_true, y_pred)
        return np.abs(diff, out=diff).sum(dtype=np.float64) / diff.size

    def _value_and_gradient(self, y_true, y_pred):
        diff = y_pred - _match_shape(y_true, y_pred)
        grad = np.sign(diff)
        value = np.dot(diff.reshape(-1), grad.reshape(-1)) / diff.size  # sum |diff|
        grad *= 1.0 / diff.size
        return value, grad


class Huber(Loss):
    """Quadratic for ``|error| <= delta``, linear beyond: ``0.5 e^2`` or ``delta (|e| - delta/2)``.

    With ``c = clip(e, -delta, delta)`` the loss is ``c e - c^2 / 2`` and its derivative is ``c``.
    """

    name = "huber_loss"

    def __init__(self, delta: float = 1.0, name: str | None = None):
        super().__init__(name)
        delta = float(delta)
        if not delta > 0 or not np.isfinite(delta):
            raise ValueError(
                f"Received an invalid value for argument `delta`: expected a positive float, "
                f"got {delta!r}."
            )
        self.delta = delta

    def call(self, y_true, y_pred):
        return huber(y_true, y_pred, self.delta)

    def _value_and_gradient(self, y_true, y_pred):
        err = y_pred - _match_shape(y_true, y_pred)
        grad = np.clip(err, -self.delta, self.delta)
        g, e = grad.reshape(-1), err.reshape(-1)
        value = (np.dot(g, e) - 0.5 * np.dot(g, g)) / err.size
        grad *= 1.0 / err.size
        return value, grad

    def get_config(self):
        return {"name": self.name, "delta": self.delta}


class BinaryCrossentropy(Loss):
    """``-(t log p + (1 - t) log(1 - p))`` averaged; ``p = sigmoid(y_pred)`` when ``from_logits``.

    With logits the stable form ``max(x, 0) - x t + log(1 + exp(-|x|))`` is used and the
    gradient is ``sigmoid(x) - t``. With probabilities, ``p`` is clipped to ``[1e-7, 1 - 1e-7]``.
    """

    name = "binary_crossentropy"

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0,
                 name: str | None = None):
        super().__init__(name)
        self.from_logits = bool(from_logits)
        self.label_smoothing = _smoothing(label_smoothing)

    def call(self, y_true, y_pred):
        return binary_crossentropy(y_true, y_pred, self.from_logits, self.label_smoothing)

    def _value_and_gradient(self, y_true, y_pred):
        t = _match_shape(y_true, y_pred)
        if self.label_smoothing:  # towards 1/2 (Keras)
            t = t * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        n = y_pred.size
        if self.from_logits:
            x = y_pred
            e = np.abs(x)
            np.negative(e, out=e)
            np.exp(e, out=e)  # exp(-|x|) in (0, 1]: never overflows
            value = np.log1p(e).sum(dtype=np.float64)
            value += np.maximum(x, 0).sum(dtype=np.float64) - np.dot(x.reshape(-1), t.reshape(-1))
            # sigmoid(x) = 1 / (1 + e) for x >= 0 and e / (1 + e) for x < 0
            grad = np.where(x >= 0, 1.0, e).astype(x.dtype, copy=False)
            e += 1.0
            grad /= e
            grad -= t
            grad *= 1.0 / n
            return value / n, grad
        p = np.clip(y_pred, EPSILON, 1.0 - EPSILON)
        q = 1.0 - p
        value = -(
            np.dot(t.reshape(-1), np.log(p).reshape(-1))
            + np.dot((1.0 - t).reshape(-1), np.log(q).reshape(-1))
        )
        # d/dp of -(t log p + (1-t) log(1-p)) = (p - t) / (p (1 - p)); 0 where p was clipped
        grad = p - t
        q *= p
        grad /= q
        grad[(y_pred < EPSILON) | (y_pred > 1.0 - EPSILON)] = 0.0
        grad *= 1.0 / n
        return value / n, grad

    def get_config(self):
        return {"name": self.name, "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing}


def _log_softmax(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(log_softmax(x), softmax(x))`` over the last axis, stable for any finite logits."""
    shifted = x - x.max(axis=-1, keepdims=True)
    probs = np.exp(shifted)
    total = probs.sum(axis=-1, keepdims=True)
    probs /= total
    shifted -= np.log(total)
    return shifted, probs


def _sparse_labels(y_true: Any, y_pred: np.ndarray) -> np.ndarray:
    """Integer labels of shape ``y_pred.shape[:-1]``, each checked to lie in ``[0, C)``."""
    labels = np.asarray(y_true)
    expected = y_pred.shape[:-1]
    if labels.shape != expected:
        if labels.shape == (*expected, 1):
            labels = labels.reshape(expected)
        else:
            raise ValueError(
                f"sparse labels must have shape {expected} or {(*expected, 1)} for y_pred of "
                f"shape {y_pred.shape}, got {labels.shape}."
            )
    if labels.dtype.kind not in "iu":
        # Keras casts float labels to int; a fractional or non-finite one is a mistake, not data.
        if labels.dtype.kind != "f" or not np.all(np.mod(labels, 1) == 0):
            raise ValueError(
                "sparse labels must be integer class indices, got an array of dtype "
                f"{labels.dtype} holding non-integer values."
                if labels.dtype.kind == "f"
                else f"sparse labels must be integer class indices, got dtype {labels.dtype}."
            )
        labels = labels.astype(np.intp)
    num_classes = y_pred.shape[-1]
    if labels.size:
        low, high = labels.min(), labels.max()
        if low < 0 or high >= num_classes:
            bad = low if low < 0 else high
            raise ValueError(f"labels must be in [0, {num_classes}), got {bad}.")
    return labels


class SparseCategoricalCrossentropy(Loss):
    """``-log p[label]`` averaged over samples; labels are class indices (see module doc).

    With probabilities, ``p`` is first renormalised over the last axis then clipped (Keras);
    the gradient is ``1 / sum(p) - onehot / p_label``. With logits, it is
    ``softmax(x) - onehot``.
    """

    name = "sparse_categorical_crossentropy"

    def __init__(self, from_logits: bool = False, ignore_class: int | None = None,
                 name: str | None = None):
        super().__init__(name)
        self.from_logits = bool(from_logits)
        if ignore_class is not None and (isinstance(ignore_class, bool) or not isinstance(
                ignore_class, (int, np.integer))):
            raise ValueError(
                "Received an invalid value for argument `ignore_class`, expected None or an "
                f"integer label, got {ignore_class!r}."
            )
        self.ignore_class = None if ignore_class is None else int(ignore_class)

    def _kept(self, y_true: Any, y_pred: np.ndarray) -> Any:
        """Where the label is not `ignore_class` (None: everywhere)."""
        if self.ignore_class is None:
            return None
        labels = np.asarray(y_true)
        if labels.shape == (*y_pred.shape[:-1], 1):
            labels = labels.reshape(y_pred.shape[:-1])
        return labels != self.ignore_class

    def __call__(self, y_true, y_pred, sample_weight=None):
        kept = self._kept(y_true, _as_float_array(y_pred))
        if kept is None:
            return super().__call__(y_true, y_pred, sample_weight)
        # as Keras: the ignored positions are masked, the mean taken over the others
        y_pred = _as_float_array(y_pred)
        labels = np.asarray(y_true).reshape(kept.shape)
        if not kept.any():
            return 0.0
        w = None if sample_weight is None else sample_weights(
            sample_weight, kept.shape)[kept]
        return super().__call__(labels[kept], y_pred[kept], w)

    def value_and_gradient(self, y_true, y_pred, sample_weight=None):
        y_pred = _as_float_array(y_pred)
        kept = self._kept(y_true, y_pred)
        if kept is None:
            return super().value_and_gradient(y_true, y_pred, sample_weight)
        grad = np.zeros_like(y_pred)
        if not kept.any():
            return 0.0, grad
        labels = np.asarray(y_true).reshape(kept.shape)
        w = None if sample_weight is None else sample_weights(
            sample_weight, kept.shape)[kept]
        value, grad[kept] = super().value_and_gradient(labels[kept], y_pred[kept], w)
        return value, grad

    def call(self, y_true, y_pred):
        return sparse_categorical_crossentropy(y_true, y_pred, self.from_logits)

    def _value_and_gradient(self, y_true, y_pred):
        labels = _sparse_labels(y_true, y_pred)
        m = _num_samples(y_pred)
        rows = y_pred.reshape(m, y_pred.shape[-1])
        idx = labels.reshape(m)
        arange = np.arange(m)
        if self.from_logits:
            log_probs, grad = _log_softmax(rows)
            value = -log_probs[arange, idx].sum(dtype=np.float64)
            grad[arange, idx] -= 1.0
        else:
            total = rows.sum(axis=-1, keepdims=True)
            picked = rows[arange, idx] / total[:, 0]
            inside = (picked >= EPSILON) & (picked <= 1.0 - EPSILON)
            value = -np.log(np.clip(picked, EPSILON, 1.0 - EPSILON)).sum(dtype=np.float64)
            grad = np.empty_like(rows)
            np.divide(1.0, total, out=grad[:, :1])
            grad[...] = grad[:, :1]
            # where p_label was clipped the loss is flat in p (and p_label may be 0: no 1/0)
            grad[~inside] = 0.0
            grad[arange[inside], idx[inside]] -= 1.0 / rows[arange[inside], idx[inside]]
        grad *= 1.0 / m
        return value / m, grad.reshape(y_pred.shape)

    def get_config(self):
        return {"name": self.name, "from_logits": self.from_logits,
                "ignore_class": self.ignore_class}


class CategoricalCrossentropy(Loss):
    """``-sum(t * log p)`` over classes, averaged over samples; ``y_true`` is one-hot or soft.

    With probabilities, ``p`` is renormalised then clipped (Keras). With logits the gradient is
    ``sum(t) softmax(x) - t``.
    """

    name = "categorical_crossentropy"

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0,
                 name: str | None = None):
        super().__init__(name)
        self.from_logits = bool(from_logits)
        self.label_smoothing = _smoothing(label_smoothing)

    def call(self, y_true, y_pred):
        return categorical_crossentropy(y_true, y_pred, self.from_logits, self.label_smoothing)

    def _value_and_gradient(self, y_true, y_pred):
        t = np.asarray(y_true, dtype=y_pred.dtype)
        if t.shape != y_pred.shape:
            hint = (
                " (for integer class labels use sparse_categorical_crossentropy)"
                if t.shape == y_pred.shape[:-1] or t.shape == (*y_pred.shape[:-1], 1)
                else ""
            )
            raise ValueError(
                f"y_true and y_pred must have the same shape (..., classes), got y_true "
                f"{t.shape} and y_pred {y_pred.shape}{hint}."
            )
        if self.label_smoothing:  # towards 1/C (Keras)
            t = t * (1.0 - self.label_smoothing) + self.label_smoothing / y_pred.shape[-1]
        m = _num_samples(y_pred)
        t_sum = t.sum(axis=-1, keepdims=True)
        if self.from_logits:
            log_probs, grad = _log_softmax(y_pred)
            value = -np.dot(t.reshape(-1), log_probs.reshape(-1))
            grad *= t_sum
            grad -= t
        else:
            total = y_pred.sum(axis=-1, keepdims=True)
            q = y_pred / total
            inside = (q >= EPSILON) & (q <= 1.0 - EPSILON)
            value = -np.dot(t.reshape(-1), np.log(np.clip(q, EPSILON, 1.0 - EPSILON)).reshape(-1))
            # dL/dp_j = (sum_k t_k [q_k unclipped]) / S - t_j [q_j unclipped] / p_j
            t_in = np.where(inside, t, 0.0).astype(y_pred.dtype, copy=False)
            grad = np.zeros_like(y_pred)
            np.divide(t_in, y_pred, out=grad, where=inside)  # no 0/0 where p was clipped
            np.subtract(t_in.sum(axis=-1, keepdims=True) / total, grad, out=grad)
        grad *= 1.0 / m
        return value / m, grad

    def get_config(self):
        return {"name": self.name, "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing}


class FunctionLoss(Loss):
    """Wraps a callable ``f(y_true, y_pred)`` (see the module doc for what it must return).

    ``f`` returning a scalar or per-sample array: ``__call__`` works (its mean), training does
    not. ``f`` returning ``(value, grad)``: both work; ``grad`` must be the derivative of the
    scalar ``mean(value)`` with respect to ``y_pred``, with ``y_pred``'s shape.
    """

    def __init__(self, fn: Callable[[np.ndarray, np.ndarray], Any], name: str | None = None):
        if not callable(fn):
            raise TypeError(f"FunctionLoss needs a callable, got {type(fn).__name__}.")
        super().__init__(name or getattr(fn, "__name__", type(fn).__name__))
        self.fn = fn

    def _value(self, y_true, y_pred):
        out = self.fn(y_true, y_pred)
        if isinstance(out, tuple):
            out = out[0]
        return float(np.mean(out))

    def call(self, y_true, y_pred):
        out = self.fn(y_true, y_pred)
        out = np.asarray(out[0] if isinstance(out, tuple) else out)
        if out.shape != y_pred.shape[:-1]:
            raise ValueError(
                f"Custom loss `{self.name}` returned values of shape {out.shape}; sample weights "
                f"need one value per sample, shape {y_pred.shape[:-1]} (y_pred without its last "
                "axis)."
            )
        return out

    def _value_and_gradient(self, y_true, y_pred):
        out = self.fn(y_true, y_pred)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise TypeError(
                f"Custom loss `{self.name}` returned only a value, so it cannot be trained on: "
                "fastrnn has no automatic differentiation. Return `(value, gradient)` from it "
                "(gradient = d value / d y_pred, shape of y_pred), or subclass "
                "fastrnn.losses.Loss and implement `_value_and_gradient`."
            )
        value, grad = out
        grad = np.asarray(grad, dtype=y_pred.dtype)
        if grad.shape != y_pred.shape:
            raise ValueError(
                f"Custom loss `{self.name}` returned a gradient of shape {grad.shape}; expected "
                f"the shape of y_pred, {y_pred.shape}."
            )
        return float(np.mean(value)), grad

    def get_config(self):
        raise NotImplementedError(
            f"Custom loss `{self.name}` wraps a Python function and cannot be serialised; "
            "pass it again when loading (fastrnn never pickles code)."
        )


class _PerSampleLoss(Loss):
    """A loss given by its per-sample values ``call(y_true, y_pred)`` and ``_grad(y_true,
    y_pred)``, the derivative of their *sum* with respect to ``y_pred``: the loss is their
    mean and its gradient ``_grad / count``."""

    def _value_and_gradient(self, y_true, y_pred):
        per = np.asarray(self.call(y_true, y_pred), dtype=np.float64)
        grad = np.asarray(self._grad(y_true, y_pred), dtype=y_pred.dtype)
        grad *= 1.0 / max(per.size, 1)
        return float(per.mean()), grad

    def _grad(self, y_true: Any, y_pred: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def get_config(self):
        config = {"name": self.name}
        for key in getattr(self, "_config_keys", ()):
            config[key] = getattr(self, key)
        return config


def _positive(name: str, value: Any, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or \
            not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(
            f"Received an invalid value for argument `{name}`, expected a "
            f"{'non-negative' if allow_zero else 'positive'} float, got {value!r}."
        )
    return float(value)


def _smoothing(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or \
            not 0 <= value <= 1:
        raise ValueError(
            "Received an invalid value for argument `label_smoothing`, expected a float in "
            f"[0, 1], got {value!r}."
        )
    return float(value)


class MeanSquaredLogarithmicError(_PerSampleLoss):
    """``mean((log(max(p, eps) + 1) - log(max(t, eps) + 1))^2)`` over the last axis."""

    name = "mean_squared_logarithmic_error"

    def call(self, y_true, y_pred):
        return mean_squared_logarithmic_error(y_true, y_pred)

    def _grad(self, y_true, y_pred):
        t = _match_shape(y_true, y_pred)
        lp = np.log(np.maximum(y_pred, EPSILON) + 1.0)
        d = 2.0 * (lp - np.log(np.maximum(t, EPSILON) + 1.0)) / (np.maximum(y_pred, EPSILON)
                                                                 + 1.0)
        return np.where(y_pred > EPSILON, d, 0.0) / y_pred.shape[-1]


class MeanAbsolutePercentageError(_PerSampleLoss):
    """``100 * mean(|t - p| / max(|t|, eps))`` over the last axis."""

    name = "mean_absolute_percentage_error"

    def call(self, y_true, y_pred):
        return mean_absolute_percentage_error(y_true, y_pred)

    def _grad(self, y_true, y_pred):
        t = _match_shape(y_true, y_pred)
        return 100.0 * np.sign(y_pred - t) / np.maximum(np.abs(t), EPSILON) / y_pred.shape[-1]


class LogCosh(_PerSampleLoss):
    """``mean(log(cosh(p - t)))`` over the last axis (computed without overflow)."""

    name = "log_cosh"

    def call(self, y_true, y_pred):
        return log_cosh(y_true, y_pred)

    def _grad(self, y_true, y_pred):
        return np.tanh(y_pred - _match_shape(y_true, y_pred)) / y_pred.shape[-1]


class Poisson(_PerSampleLoss):
    """``mean(p - t log(p + eps))`` over the last axis."""

    name = "poisson"

    def call(self, y_true, y_pred):
        return poisson(y_true, y_pred)

    def _grad(self, y_true, y_pred):
        return (1.0 - _match_shape(y_true, y_pred) / (y_pred + EPSILON)) / y_pred.shape[-1]


def _hinge_labels(y_true: Any, y_pred: np.ndarray) -> np.ndarray:
    """Keras's rule: labels that are all 0 or 1 become -1/1; others are used as given."""
    t = _match_shape(y_true, y_pred)
    return 2.0 * t - 1.0 if np.all((t == 0) | (t == 1)) else t


class Hinge(_PerSampleLoss):
    """``mean(max(1 - t p, 0))`` over the last axis; 0/1 labels become -1/1."""

    name = "hinge"

    def call(self, y_true, y_pred):
        return hinge(y_true, y_pred)

    def _grad(self, y_true, y_pred):
        t = _hinge_labels(y_true, y_pred)
        return np.where(1.0 - t * y_pred > 0, -t, 0.0) / y_pred.shape[-1]


class SquaredHinge(_PerSampleLoss):
    """``mean(max(1 - t p, 0)^2)`` over the last axis; 0/1 labels become -1/1."""

    name = "squared_hinge"

    def call(self, y_true, y_pred):
        return squared_hinge(y_true, y_pred)

    def _grad(self, y_true, y_pred):
        t = _hinge_labels(y_true, y_pred)
        return -2.0 * t * np.maximum(1.0 - t * y_pred, 0.0) / y_pred.shape[-1]


class CategoricalHinge(_PerSampleLoss):
    """``max(max((1 - t) p) - sum(t p) + 1, 0)`` per sample (one-hot `t`)."""

    name = "categorical_hinge"

    def call(self, y_true, y_pred):
        return categorical_hinge(y_true, y_pred)

    def _grad(self, y_true, y_pred):
        t = _match_shape(y_true, y_pred)
        negatives = (1.0 - t) * y_pred
        active = (negatives.max(axis=-1) - (t * y_pred).sum(axis=-1) + 1.0) > 0
        grad = -t
        j = np.argmax(negatives, axis=-1)[..., None]
        np.put_along_axis(grad, j, np.take_along_axis(grad, j, axis=-1)
                          + np.take_along_axis(1.0 - t, j, axis=-1), axis=-1)
        return grad * active[..., None]


class KLDivergence(_PerSampleLoss):
    """``sum(t log(t / p))`` over the last axis, `t` and `p` clipped to ``[eps, 1]``."""

    name = "kl_divergence"

    def call(self, y_true, y_pred):
        return kl_divergence(y_true, y_pred)

    def _grad(self, y_true, y_pred):
        t = np.clip(_match_shape(y_true, y_pred), EPSILON, 1.0)
        inside = (y_pred >= EPSILON) & (y_pred <= 1.0)
        return np.where(inside, -t / np.clip(y_pred, EPSILON, 1.0), 0.0)


class CosineSimilarity(_PerSampleLoss):
    """``-sum(normalize(t) * normalize(p))`` over `axis` (normalize: ``x / max(||x||,
    1e-7)``): -1 for parallel vectors, as Keras (a loss to minimise)."""

    name = "cosine_similarity"
    _config_keys = ("axis",)

    def __init__(self, axis: int = -1, name: str | None = None):
        super().__init__(name)
        self.axis = int(axis)

    def call(self, y_true, y_pred):
        return cosine_similarity(y_true, y_pred, self.axis)

    def _grad(self, y_true, y_pred):
        t = _match_shape(y_true, y_pred)
        tn = t * _inverse_norm(t, self.axis)
        inv = _inverse_norm(y_pred, self.axis)
        pn = y_pred * inv
        capped = inv >= 1.0 / EPSILON
        along = (tn * pn).sum(axis=self.axis, keepdims=True)
        return -np.where(capped, tn * inv, (tn - pn * along) * inv)


class BinaryFocalCrossentropy(_PerSampleLoss):
    """Binary cross-entropy scaled by ``(1 - p_t)^gamma`` (Lin et al.), ``p_t`` the
    probability given to the true label; with ``apply_class_balancing`` also by ``alpha`` for
    positives and ``1 - alpha`` for negatives. Mean over the last axis."""

    name = "binary_focal_crossentropy"
    _config_keys = ("apply_class_balancing", "alpha", "gamma", "from_logits",
                    "label_smoothing")

    def __init__(self, apply_class_balancing: bool = False, alpha: float = 0.25,
                 gamma: float = 2.0, from_logits: bool = False, label_smoothing: float = 0.0,
                 name: str | None = None):
        super().__init__(name)
        self.apply_class_balancing = bool(apply_class_balancing)
        self.alpha = _positive("alpha", alpha, allow_zero=True)
        self.gamma = _positive("gamma", gamma, allow_zero=True)
        self.from_logits = bool(from_logits)
        self.label_smoothing = _smoothing(label_smoothing)

    def call(self, y_true, y_pred):
        return binary_focal_crossentropy(y_true, y_pred, self.apply_class_balancing, self.alpha,
                                         self.gamma, self.from_logits, self.label_smoothing)

    def _grad(self, y_true, y_pred):
        t = _match_shape(y_true, y_pred)
        if self.label_smoothing:
            t = t * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        p = _sigmoid(y_pred) if self.from_logits else y_pred
        q = np.clip(p, EPSILON, 1.0 - EPSILON)
        bce = -(t * np.log(q) + (1.0 - t) * np.log(1.0 - q))
        d_bce = np.where((p >= EPSILON) & (p <= 1.0 - EPSILON), (q - t) / (q * (1.0 - q)), 0.0)
        p_t = t * p + (1.0 - t) * (1.0 - p)
        base = np.maximum(1.0 - p_t, 0.0)
        d_factor = -self.gamma * base ** (self.gamma - 1.0) * (2.0 * t - 1.0) if self.gamma \
            else 0.0
        grad = d_factor * bce + base ** self.gamma * d_bce  # d / dp
        if self.apply_class_balancing:
            grad = grad * (t * self.alpha + (1.0 - t) * (1.0 - self.alpha))
        if self.from_logits:
            grad = grad * p * (1.0 - p)
        return grad / y_pred.shape[-1]


class CategoricalFocalCrossentropy(_PerSampleLoss):
    """``sum(alpha (1 - q)^gamma * -t log q)`` over classes, ``q`` the renormalised (or
    softmax) and clipped probabilities."""

    name = "categorical_focal_crossentropy"
    _config_keys = ("alpha", "gamma", "from_logits", "label_smoothing")

    def __init__(self, alpha: float = 0.25, gamma: float = 2.0, from_logits: bool = False,
                 label_smoothing: float = 0.0, name: str | None = None):
        super().__init__(name)
        self.alpha = _positive("alpha", alpha, allow_zero=True)
        self.gamma = _positive("gamma", gamma, allow_zero=True)
        self.from_logits = bool(from_logits)
        self.label_smoothing = _smoothing(label_smoothing)

    def call(self, y_true, y_pred):
        return categorical_focal_crossentropy(y_true, y_pred, self.alpha, self.gamma,
                                              self.from_logits, self.label_smoothing)

    def _grad(self, y_true, y_pred):
        t = np.asarray(y_true, dtype=y_pred.dtype)
        if self.label_smoothing:
            t = t * (1.0 - self.label_smoothing) + self.label_smoothing / y_pred.shape[-1]
        p = _log_softmax(y_pred)[1] if self.from_logits else y_pred
        total = p.sum(axis=-1, keepdims=True)
        q = p / total
        inside = (q >= EPSILON) & (q <= 1.0 - EPSILON)
        qc = np.clip(q, EPSILON, 1.0 - EPSILON)
        g = self.gamma
        dq = -self.alpha * t * ((1.0 - qc) ** g / qc - (
            g * (1.0 - qc) ** (g - 1.0) * np.log(qc) if g else 0.0))
        dq = np.where(inside, dq, 0.0)
        along = (dq * q).sum(axis=-1, keepdims=True)
        if self.from_logits:
            return q * (dq - along)  # through the softmax
        return (dq - along) / total  # through q = p / sum(p)


class CategoricalGeneralizedCrossEntropy(_PerSampleLoss):
    """Generalized cross-entropy (Zhang & Sabuncu) for noisy labels: ``(1 - p_y^q) / q``
    with ``p_y`` the probability of the integer label; ``q`` in (0, 1]."""

    name = "categorical_generalized_cross_entropy"
    _config_keys = ("q",)

    def __init__(self, q: float = 0.5, name: str | None = None):
        super().__init__(name)
        self.q = _positive("q", q)
        if self.q > 1:
            raise ValueError(f"Received an invalid value for argument `q`, expected a float "
                             f"in (0, 1], got {q!r}.")

    def call(self, y_true, y_pred):
        return categorical_generalized_cross_entropy(y_true, y_pred, self.q)

    def _grad(self, y_true, y_pred):
        labels = _sparse_labels(y_true, y_pred)
        grad = np.zeros_like(y_pred)
        p = np.take_along_axis(y_pred, labels[..., None], axis=-1)
        np.put_along_axis(grad, labels[..., None], -np.power(p, self.q - 1.0), axis=-1)
        return grad


class _OverlapLoss(_PerSampleLoss):
    """Dice and Tversky: one value per group of `axis` (all of ``y_pred`` when None)."""

    _config_keys = ("axis",)

    def __init__(self, axis: Any = None, name: str | None = None):
        super().__init__(name)
        self.axis = None if axis is None else (
            int(axis) if np.ndim(axis) == 0 else tuple(int(a) for a in axis))

    def __call__(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None:
            raise NotImplementedError(
                f"{type(self).__name__} scores groups of values, not samples: sample_weight "
                "is not supported for it."
            )
        return super().__call__(y_true, y_pred)

    def value_and_gradient(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None:
            raise NotImplementedError(
                f"{type(self).__name__} scores groups of values, not samples: sample_weight "
                "is not supported for it."
            )
        return super().value_and_gradient(y_true, y_pred)


class Dice(_OverlapLoss):
    """``1 - 2 sum(t p) / (sum(t) + sum(p) + eps)`` over `axis` (everything when None)."""

    name = "dice"

    def call(self, y_true, y_pred):
        return dice(y_true, y_pred, self.axis)

    def _grad(self, y_true, y_pred):
        t = np.asarray(y_true, dtype=y_pred.dtype)
        inter = (t * y_pred).sum(axis=self.axis, keepdims=True)
        denom = t.sum(axis=self.axis, keepdims=True) + y_pred.sum(
            axis=self.axis, keepdims=True) + EPSILON
        return -(2.0 * t * denom - 2.0 * inter) / denom**2


class Tversky(_OverlapLoss):
    """``1 - I / (I + alpha F_p + beta F_n + eps)`` with, as Keras computes them,
    ``I = sum(t p)``, ``F_p = sum(t (1 - p))``, ``F_n = sum((1 - t) p)`` over `axis`."""

    name = "tversky"
    _config_keys = ("alpha", "beta", "axis")

    def __init__(self, alpha: float = 0.5, beta: float = 0.5, axis: Any = None,
                 name: str | None = None):
        super().__init__(axis, name)
        self.alpha = _positive("alpha", alpha, allow_zero=True)
        self.beta = _positive("beta", beta, allow_zero=True)

    def call(self, y_true, y_pred):
        return tversky(y_true, y_pred, self.alpha, self.beta, self.axis)

    def _grad(self, y_true, y_pred):
        t = np.asarray(y_true, dtype=y_pred.dtype)
        ax = self.axis
        inter = (t * y_pred).sum(axis=ax, keepdims=True)
        denom = inter + self.alpha * (t * (1.0 - y_pred)).sum(axis=ax, keepdims=True) + \
            self.beta * ((1.0 - t) * y_pred).sum(axis=ax, keepdims=True) + EPSILON
        d_inter, d_denom = t, t - self.alpha * t + self.beta * (1.0 - t)
        return -(d_inter * denom - inter * d_denom) / denom**2


class CTC(_PerSampleLoss):
    """Connectionist temporal classification (Graves et al. 2006), Keras's form: `y_pred`
    holds logits ``(B, T, C)`` (a softmax over the classes is taken inside), `y_true` integer
    labels ``(B, S)`` left-aligned and padded with 0, which is also the blank class. The
    per-sample loss is ``-log p(labels | logits)`` summed over every alignment, computed by
    the forward-backward recursions in log space; its gradient with respect to the logits is
    ``softmax - posterior occupancy`` of each class. Alignments that cannot fit in T steps
    give an infinite loss (as TensorFlow's) and a zero gradient."""

    name = "ctc"
    target_shape_free = True  # labels (B, S) whatever the output's time length

    def call(self, y_true, y_pred):
        return ctc(y_true, y_pred)

    def _grad(self, y_true, y_pred):
        return _ctc(y_true, y_pred)[1].astype(y_pred.dtype, copy=False)


def _ctc_labels(y_true: Any, y_pred: np.ndarray) -> np.ndarray:
    labels = np.asarray(y_true)
    if y_pred.ndim != 3:
        raise ValueError(f"CTC expects logits of shape (batch, time, classes), got y_pred of "
                         f"shape {y_pred.shape}.")
    if labels.ndim != 2 or labels.shape[0] != y_pred.shape[0]:
        raise ValueError(f"CTC expects integer labels of shape (batch, max_length) = "
                         f"({y_pred.shape[0]}, S), got y_true of shape {labels.shape}.")
    if labels.dtype.kind == "f":
        if not np.all(np.mod(labels, 1) == 0):
            raise ValueError("CTC labels must be integer class indices.")
        labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= y_pred.shape[-1]):
        raise ValueError(f"CTC labels must be in [0, {y_pred.shape[-1]}) (0: padding and "
                         f"blank), got values in [{labels.min()}, {labels.max()}].")
    return labels.astype(np.int64)


def _ctc(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(per-sample -log p, d(sum of them)/d logits)`` (see :class:`CTC`)."""
    logits = _as_float_array(y_pred)
    labels = _ctc_labels(y_true, logits)
    B, T, _ = logits.shape
    S = labels.shape[1]
    logp, probs = _log_softmax(logits.astype(np.float64))
    lengths = (labels != 0).sum(axis=1)
    L = 2 * S + 1
    ext = np.zeros((B, L), dtype=np.int64)  # blank, l1, blank, l2, ..., blank
    ext[:, 1::2] = labels
    s_idx = np.arange(L)
    valid = s_idx[None, :] < (2 * lengths + 1)[:, None]
    skip = np.zeros((B, L), dtype=bool)  # s-2 -> s allowed: a label unlike the one before
    skip[:, 2:] = (ext[:, 2:] != 0) & (ext[:, 2:] != ext[:, :-2])
    emit = np.take_along_axis(logp, np.broadcast_to(ext[:, None, :], (B, T, L)), axis=2)
    neg = -np.inf
    alpha = np.full((B, T, L), neg)
    alpha[:, 0, 0] = emit[:, 0, 0]
    alpha[:, 0, 1] = np.where(lengths > 0, emit[:, 0, 1], neg)
    for t in range(1, T):  # forward: paths ending in extended position s at step t
        prev = alpha[:, t - 1]
        a = np.logaddexp(prev, np.concatenate([np.full((B, 1), neg), prev[:, :-1]], axis=1))
        a2 = np.concatenate([np.full((B, 2), neg), prev[:, :-2]], axis=1)
        a = np.logaddexp(a, np.where(skip, a2, neg))
        alpha[:, t] = np.where(valid, a + emit[:, t], neg)
    last = 2 * lengths
    end = np.take_along_axis(alpha[:, T - 1], last[:, None], axis=1)[:, 0]
    end_label = np.take_along_axis(alpha[:, T - 1], np.maximum(last - 1, 0)[:, None],
                                   axis=1)[:, 0]
    log_p = np.logaddexp(end, np.where(lengths > 0, end_label, neg))
    beta = np.full((B, T, L), neg)
    rows = np.arange(B)
    beta[rows, T - 1, last] = emit[rows, T - 1, last]
    has = lengths > 0
    beta[rows[has], T - 1, last[has] - 1] = emit[rows[has], T - 1, last[has] - 1]
    skip_next = np.concatenate([skip[:, 2:], np.zeros((B, 2), dtype=bool)], axis=1)
    for t in range(T - 2, -1, -1):  # backward: paths from (t, s) to the end
        nxt = beta[:, t + 1]
        b = np.logaddexp(nxt, np.concatenate([nxt[:, 1:], np.full((B, 1), neg)], axis=1))
        b2 = np.concatenate([nxt[:, 2:], np.full((B, 2), neg)], axis=1)
        b = np.logaddexp(b, np.where(skip_next, b2, neg))
        beta[:, t] = np.where(valid, b + emit[:, t], neg)
    feasible = np.isfinite(log_p)
    with np.errstate(invalid="ignore"):
        occupancy = np.exp(alpha + beta - emit - np.where(feasible, log_p, 0.0)[:, None, None])
    occupancy = np.where(np.isfinite(occupancy), occupancy, 0.0)
    grad = probs.copy()
    b_i, t_i, s_i = np.meshgrid(rows, np.arange(T), s_idx, indexing="ij")
    np.add.at(grad, (b_i, t_i, ext[b_i, s_i]), -occupancy)
    grad[~feasible] = 0.0
    return -log_p, grad


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -x)).astype(x.dtype, copy=False)


def _inverse_norm(x: np.ndarray, axis: int) -> np.ndarray:
    """``1 / max(||x||, 1e-7)`` over `axis` (kept), Keras's ``normalize``."""
    return np.minimum(1.0 / np.sqrt(np.square(x).sum(axis=axis, keepdims=True)), 1.0 / EPSILON)


LossIdentifier = Union[str, Loss, dict, Callable[[np.ndarray, np.ndarray], Any]]


def serialize(loss: Loss) -> dict[str, Any]:
    """``{"class_name": ..., "config": ...}`` for a built-in loss (JSON-serialisable)."""
    return {"class_name": type(loss).__name__, "config": loss.get_config()}


def deserialize(config: dict[str, Any]) -> Loss:
    """The inverse of :func:`serialize`."""
    try:
        cls = _CLASSES[config["class_name"]]
    except KeyError:
        raise ValueError(
            f"Unknown loss config {config!r}; expected {{'class_name': one of "
            f"{sorted(_CLASSES)}, 'config': {{...}}}}."
        ) from None
    return cls.from_config(dict(config.get("config", {})))


def get(identifier: LossIdentifier) -> Loss:
    """A :class:`Loss` from a name, a Loss, a serialised config, or a callable.

    Names (case-insensitive): every Keras 3 loss class and function name (e.g. ``"mse"``,
    ``"MeanSquaredError"``, ``"huber"``, ``"binary_focal_crossentropy"``, ``"kld"``). A
    function form trains with its class; another callable is wrapped in
    :class:`FunctionLoss`.
    """
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        factory = _ALIASES.get(identifier.lower())
        if factory is None:
            raise ValueError(
                f"Unknown loss {identifier!r}; valid names are: {', '.join(sorted(_ALIASES))}."
            )
        return factory()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if callable(identifier):
        cls = _FUNCTION_CLASSES.get(identifier)
        return cls() if cls is not None else FunctionLoss(identifier)
    raise TypeError(
        f"Could not interpret loss {identifier!r}: expected a name, a fastrnn.losses.Loss, a "
        "config dict or a callable."
    )


# ----------------------------------------------------------------------------- function forms
# Keras's ``keras.losses.mean_squared_error(y_true, y_pred)`` and friends: per-sample values
# (the last axis reduced), no averaging over the batch. Passing one of these to ``compile``
# trains with the matching Loss class above (which has the gradient).
def _pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    y_pred = _as_float_array(y_pred)
    _check_not_empty(y_pred)
    return _match_shape(y_true, y_pred), y_pred


def mean_squared_error(y_true: Any, y_pred: Any) -> np.ndarray:
    """``mean((y_pred - y_true)**2, axis=-1)``: shape ``y_pred.shape[:-1]``."""
    t, p = _pair(y_true, y_pred)
    return np.mean(np.square(p - t), axis=-1)


def mean_absolute_error(y_true: Any, y_pred: Any) -> np.ndarray:
    """``mean(|y_pred - y_true|, axis=-1)``: shape ``y_pred.shape[:-1]``."""
    t, p = _pair(y_true, y_pred)
    return np.mean(np.abs(p - t), axis=-1)


def mean_absolute_percentage_error(y_true: Any, y_pred: Any) -> np.ndarray:
    """``100 * mean(|(y_true - y_pred) / max(|y_true|, eps)|, axis=-1)`` (Keras's form)."""
    t, p = _pair(y_true, y_pred)
    return 100.0 * np.mean(np.abs((t - p) / np.maximum(np.abs(t), EPSILON)), axis=-1)


def huber(y_true: Any, y_pred: Any, delta: float = 1.0) -> np.ndarray:
    """The Huber loss per sample (mean over the last axis)."""
    t, p = _pair(y_true, y_pred)
    e = np.abs(p - t)
    quad = np.minimum(e, delta)
    return np.mean(0.5 * quad * quad + delta * (e - quad), axis=-1)


def binary_crossentropy(y_true: Any, y_pred: Any, from_logits: bool = False,
                        label_smoothing: float = 0.0) -> np.ndarray:
    """The mean over the last axis of the elementwise binary cross-entropy (labels smoothed
    towards 1/2 by `label_smoothing`)."""
    t, p = _pair(y_true, y_pred)
    if label_smoothing:
        t = t * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        ce = np.maximum(p, 0) - p * t + np.log1p(np.exp(-np.abs(p)))
    else:
        p = np.clip(p, EPSILON, 1.0 - EPSILON)
        ce = -(t * np.log(p) + (1.0 - t) * np.log(1.0 - p))
    return np.mean(ce, axis=-1)


def categorical_crossentropy(y_true: Any, y_pred: Any, from_logits: bool = False,
                             label_smoothing: float = 0.0) -> np.ndarray:
    """``-sum(y_true * log(softmax or normalised y_pred), axis=-1)`` per sample (labels
    smoothed towards 1/C by `label_smoothing`)."""
    t, p = _pair(y_true, y_pred)
    if label_smoothing:
        t = t * (1.0 - label_smoothing) + label_smoothing / p.shape[-1]
    if from_logits:
        logp = _log_softmax(p)[0]
    else:
        p = p / np.sum(p, axis=-1, keepdims=True)
        logp = np.log(np.clip(p, EPSILON, 1.0 - EPSILON))
    return -np.sum(t * logp, axis=-1)


def sparse_categorical_crossentropy(y_true: Any, y_pred: Any,
                                    from_logits: bool = False) -> np.ndarray:
    """``-log p[label]`` per sample (integer labels of shape ``y_pred.shape[:-1]``)."""
    p = _as_float_array(y_pred)
    _check_not_empty(p)
    labels = _sparse_labels(y_true, p)
    if from_logits:
        logp = _log_softmax(p)[0]
    else:
        logp = np.log(np.clip(p / np.sum(p, axis=-1, keepdims=True), EPSILON, 1.0 - EPSILON))
    return -np.take_along_axis(logp, labels[..., None], axis=-1)[..., 0]


def ctc(y_true: Any, y_pred: Any) -> np.ndarray:
    """The CTC loss per sample, ``(B,)``: `y_true` labels ``(B, S)`` padded with 0 (the
    blank), `y_pred` logits ``(B, T, C)``; see :class:`CTC`."""
    return _ctc(y_true, y_pred)[0]


def mean_squared_logarithmic_error(y_true: Any, y_pred: Any) -> np.ndarray:
    """``mean((log(max(p, eps) + 1) - log(max(t, eps) + 1))^2, axis=-1)``."""
    t, p = _pair(y_true, y_pred)
    d = np.log(np.maximum(p, EPSILON) + 1.0) - np.log(np.maximum(t, EPSILON) + 1.0)
    return np.mean(d * d, axis=-1)


def log_cosh(y_true: Any, y_pred: Any) -> np.ndarray:
    """``mean(log(cosh(p - t)), axis=-1)``, as ``x + softplus(-2x) - log 2``."""
    t, p = _pair(y_true, y_pred)
    x = p - t
    return np.mean(x + np.logaddexp(0.0, -2.0 * x) - np.log(2.0), axis=-1)


def poisson(y_true: Any, y_pred: Any) -> np.ndarray:
    """``mean(p - t log(p + eps), axis=-1)``."""
    t, p = _pair(y_true, y_pred)
    return np.mean(p - t * np.log(p + EPSILON), axis=-1)


def hinge(y_true: Any, y_pred: Any) -> np.ndarray:
    """``mean(max(1 - t p, 0), axis=-1)``; 0/1 labels become -1/1."""
    p = _as_float_array(y_pred)
    _check_not_empty(p)
    return np.mean(np.maximum(1.0 - _hinge_labels(y_true, p) * p, 0.0), axis=-1)


def squared_hinge(y_true: Any, y_pred: Any) -> np.ndarray:
    """``mean(max(1 - t p, 0)^2, axis=-1)``; 0/1 labels become -1/1."""
    p = _as_float_array(y_pred)
    _check_not_empty(p)
    return np.mean(np.square(np.maximum(1.0 - _hinge_labels(y_true, p) * p, 0.0)), axis=-1)


def categorical_hinge(y_true: Any, y_pred: Any) -> np.ndarray:
    """``max(max((1 - t) p) - sum(t p) + 1, 0)`` per sample."""
    t, p = _pair(y_true, y_pred)
    return np.maximum(((1.0 - t) * p).max(axis=-1) - (t * p).sum(axis=-1) + 1.0, 0.0)


def kl_divergence(y_true: Any, y_pred: Any) -> np.ndarray:
    """``sum(t log(t / p), axis=-1)`` with both clipped to ``[eps, 1]``."""
    t, p = _pair(y_true, y_pred)
    t = np.clip(t, EPSILON, 1.0)
    return np.sum(t * np.log(t / np.clip(p, EPSILON, 1.0)), axis=-1)


def cosine_similarity(y_true: Any, y_pred: Any, axis: int = -1) -> np.ndarray:
    """``-sum(normalize(t) * normalize(p), axis)`` (the loss form: -1 when parallel)."""
    t, p = _pair(y_true, y_pred)
    return -np.sum(t * _inverse_norm(t, axis) * p * _inverse_norm(p, axis), axis=axis)


def binary_focal_crossentropy(y_true: Any, y_pred: Any, apply_class_balancing: bool = False,
                              alpha: float = 0.25, gamma: float = 2.0,
                              from_logits: bool = False, label_smoothing: float = 0.0,
                              axis: int = -1) -> np.ndarray:
    """The focal binary cross-entropy per sample (mean over `axis`); see
    :class:`BinaryFocalCrossentropy`."""
    t, p = _pair(y_true, y_pred)
    if label_smoothing:
        t = t * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        p = _sigmoid(p)
    q = np.clip(p, EPSILON, 1.0 - EPSILON)
    bce = -(t * np.log(q) + (1.0 - t) * np.log(1.0 - q))
    p_t = t * p + (1.0 - t) * (1.0 - p)
    focal = np.maximum(1.0 - p_t, 0.0) ** gamma * bce
    if apply_class_balancing:
        focal = focal * (t * alpha + (1.0 - t) * (1.0 - alpha))
    return np.mean(focal, axis=axis)


def categorical_focal_crossentropy(y_true: Any, y_pred: Any, alpha: float = 0.25,
                                   gamma: float = 2.0, from_logits: bool = False,
                                   label_smoothing: float = 0.0, axis: int = -1) -> np.ndarray:
    """The focal categorical cross-entropy per sample; see
    :class:`CategoricalFocalCrossentropy`."""
    t, p = _pair(y_true, y_pred)
    if label_smoothing:
        t = t * (1.0 - label_smoothing) + label_smoothing / p.shape[-1]
    if from_logits:
        p = _log_softmax(p)[1]
    q = np.clip(p / p.sum(axis=axis, keepdims=True), EPSILON, 1.0 - EPSILON)
    return np.sum(alpha * (1.0 - q) ** gamma * -t * np.log(q), axis=axis)


def categorical_generalized_cross_entropy(y_true: Any, y_pred: Any, q: float) -> np.ndarray:
    """``(1 - p_y^q) / q`` per sample, `y_true` integer labels."""
    p = _as_float_array(y_pred)
    _check_not_empty(p)
    labels = _sparse_labels(y_true, p)
    p_y = np.take_along_axis(p, labels[..., None], axis=-1)[..., 0]
    return (1.0 - np.power(p_y, q)) / q


def dice(y_true: Any, y_pred: Any, axis: Any = None) -> np.ndarray:
    """``1 - 2 sum(t p) / (sum(t) + sum(p) + eps)`` over `axis` (everything when None)."""
    p = _as_float_array(y_pred)
    t = np.asarray(y_true, dtype=p.dtype)
    inter = (t * p).sum(axis=axis)
    return 1.0 - 2.0 * inter / (t.sum(axis=axis) + p.sum(axis=axis) + EPSILON)


def tversky(y_true: Any, y_pred: Any, alpha: float = 0.5, beta: float = 0.5,
            axis: Any = None) -> np.ndarray:
    """``1 - I / (I + alpha F_p + beta F_n + eps)``; see :class:`Tversky`."""
    p = _as_float_array(y_pred)
    t = np.asarray(y_true, dtype=p.dtype)
    inter = (t * p).sum(axis=axis)
    fp = (t * (1.0 - p)).sum(axis=axis)
    fn = ((1.0 - t) * p).sum(axis=axis)
    return 1.0 - inter / (inter + alpha * fp + beta * fn + EPSILON)


# ----------------------------------------------------------------------------- names
# Every name Keras 3 gives a loss, in one place: the short function aliases, the function forms
# and classes by name (for compile() and get(), case-insensitive), and the function form each
# class trains with (a function has no gradient; compile() gives it its class).
mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
mape = MAPE = mean_absolute_percentage_error
msle = MSLE = mean_squared_logarithmic_error
kld = KLD = kl_divergence
bce = BCE = binary_crossentropy

_FUNCTION_CLASSES: dict[Callable, type[Loss]] = {
    mean_squared_error: MeanSquaredError,
    mean_absolute_error: MeanAbsoluteError,
    mean_absolute_percentage_error: MeanAbsolutePercentageError,
    mean_squared_logarithmic_error: MeanSquaredLogarithmicError,
    huber: Huber,
    log_cosh: LogCosh,
    poisson: Poisson,
    binary_crossentropy: BinaryCrossentropy,
    categorical_crossentropy: CategoricalCrossentropy,
    sparse_categorical_crossentropy: SparseCategoricalCrossentropy,
    binary_focal_crossentropy: BinaryFocalCrossentropy,
    categorical_focal_crossentropy: CategoricalFocalCrossentropy,
    hinge: Hinge,
    squared_hinge: SquaredHinge,
    categorical_hinge: CategoricalHinge,
    kl_divergence: KLDivergence,
    cosine_similarity: CosineSimilarity,
    dice: Dice,
    tversky: Tversky,
    ctc: CTC,
}

_CLASSES: dict[str, type[Loss]] = {
    cls.__name__: cls for cls in (*_FUNCTION_CLASSES.values(), CategoricalGeneralizedCrossEntropy)
}

_ALIASES: dict[str, Callable[[], Loss]] = {
    **{fn.__name__: cls for fn, cls in _FUNCTION_CLASSES.items()},
    **{name.lower(): cls for name, cls in _CLASSES.items()},
    "mse": MeanSquaredError, "mae": MeanAbsoluteError, "mape": MeanAbsolutePercentageError,
    "msle": MeanSquaredLogarithmicError, "kld": KLDivergence, "bce": BinaryCrossentropy,
    "huber_loss": Huber, "logcosh": LogCosh,
    "categorical_generalized_cross_entropy": CategoricalGeneralizedCrossEntropy,
}

__all__ += [
    "BCE", "BinaryFocalCrossentropy", "CategoricalFocalCrossentropy",
    "CategoricalGeneralizedCrossEntropy", "CategoricalHinge", "CosineSimilarity", "Dice",
    "CTC", "Hinge", "KLD", "KLDivergence", "LogCosh", "MAE", "MAPE", "MSE", "MSLE",
    "MeanAbsolutePercentageError", "MeanSquaredLogarithmicError", "Poisson", "SquaredHinge",
    "Tversky", "bce", "binary_crossentropy", "binary_focal_crossentropy",
    "categorical_crossentropy", "categorical_focal_crossentropy",
    "categorical_generalized_cross_entropy", "categorical_hinge", "cosine_similarity", "ctc",
    "dice",
    "hinge", "huber", "kl_divergence", "kld", "log_cosh", "mae", "mape",
    "mean_absolute_error", "mean_absolute_percentage_error", "mean_squared_error",
    "mean_squared_logarithmic_error", "mse", "msle", "poisson", "sparse_categorical_crossentropy",
    "squared_hinge", "tversky",
]
