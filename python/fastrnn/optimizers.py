"""Optimizers with Keras 3's update rules, updating NumPy parameter arrays in place.

``apply_gradients(params, grads)`` takes two equal-length lists of arrays. Each ``params[i]``
is updated in place (it may be a view into one flat buffer, so it is never rebound);
``grads[i]`` may be modified in place by clipping. Per-parameter state ("slots": momenta,
velocities) is created on the first call, keyed by position, and rebuilt if the shapes or
dtypes change. No array is allocated per step: every update runs NumPy ufuncs with ``out=``
into the slots and one preallocated scratch array per parameter.

Each optimizer keeps its whole update rule in ``_update(param, grad, slots)`` (with
step-dependent scalars prepared once per step in ``_prepare_step``), so a fused C++ update over
a flat buffer can replace it without touching the rest.

Gradient clipping, as in Keras, is at most one of: ``clipnorm`` (each gradient array rescaled to
norm <= clipnorm), ``global_clipnorm`` (all gradients rescaled together so their joint norm is
<= global_clipnorm), ``clipvalue`` (each element clipped to [-clipvalue, clipvalue]).

Epsilon placement differs between libraries: Keras's Adam divides by ``sqrt(v) + eps`` after
folding the bias correction into the step size (PyTorch: ``sqrt(v / (1 - beta_2^t)) + eps``);
Keras's RMSprop divides by ``sqrt(v + eps)`` (PyTorch: ``sqrt(v) + eps``). fastrnn follows
Keras.
"""

from __future__ import annotations

import math
from typing import Any, Union

import numpy as np

from . import ops

__all__ = ["SGD", "Adam", "Optimizer", "RMSprop", "deserialize", "get", "serialize"]


def _invalid(name: str, expected: str, value: Any) -> ValueError:
    return ValueError(
        f"Received an invalid value for argument `{name}`: expected {expected}, got {value!r}."
    )


def _real(name: str, value: Any, expected: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise _invalid(name, expected, value)
    number = float(value)
    if not math.isfinite(number):
        raise _invalid(name, expected, value)
    return number


def _in_range(name: str, value: Any, low: float, high: float, high_inclusive: bool) -> float:
    bracket = "]" if high_inclusive else ")"
    expected = f"a float in [{low:g}, {high:g}{bracket}"
    number = _real(name, value, expected)
    if number < low or number > high or (number == high and not high_inclusive):
        raise _invalid(name, expected, value)
    return number


def _optional_positive(name: str, value: Any) -> float | None:
    if value is None:
        return None
    number = _real(name, value, "None or a positive float")
    if number <= 0:
        raise _invalid(name, "None or a positive float", value)
    return number


class Optimizer:
    """Base class: learning rate, clipping, the step counter and lazily built slots.

    Subclasses define ``_slot_names`` (the state arrays each parameter needs, each of its
    shape, zero-initialised), ``_prepare_step()`` and ``_update(param, grad, slots)``.
    """

    name = "optimizer"

    def __init__(
        self,
        learning_rate: float,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        name: str | None = None,
    ):
        self.learning_rate = learning_rate
        self.clipnorm = _optional_positive("clipnorm", clipnorm)
        self.clipvalue = _optional_positive("clipvalue", clipvalue)
        self.global_clipnorm = _optional_positive("global_clipnorm", global_clipnorm)
        n_clip = sum(c is not None for c in (self.clipnorm, self.clipvalue, self.global_clipnorm))
        if n_clip > 1:
            raise ValueError(
                "Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set, got "
                f"clipnorm={clipnorm!r}, clipvalue={clipvalue!r}, "
                f"global_clipnorm={global_clipnorm!r}."
            )
        if name is not None:
            self.name = name
        self.reset()

    # -- learning rate ---------------------------------------------------------------------

    @property
    def learning_rate(self) -> float:
        """The step size, a Python float; callbacks may set it between steps."""
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        # 0 is allowed: warm-up schedules often start there.
        number = _real("learning_rate", value, "a non-negative float")
        if number < 0:
            raise _invalid("learning_rate", "a non-negative float", value)
        self._learning_rate = number

    # -- state -----------------------------------------------------------------------------

    _slot_names: tuple[str, ...] = ()

    def reset(self) -> None:
        """Forgets all slot state and sets ``iterations`` back to 0."""
        self.iterations = 0
        self._slots: list[dict[str, np.ndarray]] = []
        self._signature: tuple[tuple[tuple[int, ...], np.dtype], ...] = ()

    def _build(self, params: list[np.ndarray]) -> None:
        self._slots = [
            {name: np.zeros_like(p) for name in (*self._slot_names, "scratch")} for p in params
        ]
        self._signature = tuple((p.shape, p.dtype) for p in params)

    # -- the step --------------------------------------------------------------------------

    def apply_gradients(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        """One update of every ``params[i]`` (in place) from ``grads[i]`` (same shape).

        ``grads`` may be modified in place by clipping. ``iterations`` increases by one.
        """
        if len(params) != len(grads):
            raise ValueError(
                f"apply_gradients expects as many gradients as parameters, got {len(params)} "
                f"parameters and {len(grads)} gradients."
            )
        signature = tuple((p.shape, p.dtype) for p in params)
        if signature != self._signature:
            for i, p in enumerate(params):
                if not isinstance(p, np.ndarray) or not p.flags.writeable:
                    raise ValueError(f"params[{i}] must be a writeable NumPy array.")
                if p.dtype.kind != "f":
                    raise ValueError(f"params[{i}] must be floating, got dtype {p.dtype}.")
            self._build(params)
        for i, (p, g) in enumerate(zip(params, grads)):
            if g.shape != p.shape:
                raise ValueError(
                    f"grads[{i}] has shape {g.shape}; expected the shape of params[{i}], {p.shape}."
                )
        self._clip(grads)
        self._prepare_step()
        for param, grad, slots in zip(params, grads, self._slots):
            self._update(param, grad, slots)
        self.iterations += 1

    def _clip(self, grads: list[np.ndarray]) -> None:
        if self.clipnorm is not None:
            for g in grads:
                norm = math.sqrt(float(np.vdot(g, g)))
                if norm > self.clipnorm:
                    g *= self.clipnorm / norm
        elif self.global_clipnorm is not None:
            norm = math.sqrt(sum(float(np.vdot(g, g)) for g in grads))
            if norm > self.global_clipnorm:
                scale = self.global_clipnorm / norm
                for g in grads:
                    g *= scale
        elif self.clipvalue is not None:
            for g in grads:
                np.clip(g, -self.clipvalue, self.clipvalue, out=g)

    def _prepare_step(self) -> None:
        """Computes the scalars shared by every parameter in this step (e.g. bias correction)."""

    def _update(self, param: np.ndarray, grad: np.ndarray, slots: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    # -- config ----------------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments (JSON-serialisable); slot state is not included."""
        return {
            "name": self.name,
            "learning_rate": self.learning_rate,
            "clipnorm": self.clipnorm,
            "clipvalue": self.clipvalue,
            "global_clipnorm": self.global_clipnorm,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Optimizer:
        """A fresh optimizer (no slot state) with the given constructor arguments."""
        return cls(**config)

    # -- state for saving (Keras keeps the optimizer's variables in its files too) ----------

    def get_state(self) -> dict[str, np.ndarray]:
        """Copies of the step counter, the learning rate and every slot array, by name
        (``"slots/<param index>/<slot>"``): what continuing training exactly needs."""
        state = {"iterations": np.array(self.iterations, dtype=np.int64),
                 "learning_rate": np.array(self.learning_rate, dtype=np.float64)}
        for i, slots in enumerate(self._slots):
            for name in self._slot_names:
                state[f"slots/{i}/{name}"] = slots[name].copy()
        return state

    def set_state(self, state: dict[str, Any], params: list[np.ndarray]) -> None:
        """Restores :meth:`get_state`'s result for updating `params` (the arrays later given
        to ``apply_gradients``). Everything is checked before anything changes."""
        if not isinstance(state, dict):
            raise _invalid("state", "a dict from get_state()", type(state).__name__)
        expected = {"iterations", "learning_rate"}
        slot_keys = {}
        if any(str(k).startswith("slots/") for k in state):
            for i, p in enumerate(params):
                for name in self._slot_names:
                    slot_keys[f"slots/{i}/{name}"] = p
        expected |= set(slot_keys)
        if set(state) != expected:
            raise ValueError(
                f"Received an invalid value for argument `state`: {type(self).__name__} over "
                f"{len(params)} parameter arrays expects keys {sorted(expected)}, got "
                f"{sorted(state)}."
            )
        iterations = np.asarray(state["iterations"])
        lr = np.asarray(state["learning_rate"])
        if iterations.shape != () or iterations.dtype.kind not in "iu" or int(iterations) < 0:
            raise _invalid("state['iterations']", "a non-negative integer", iterations)
        if lr.shape != () or lr.dtype.kind != "f" or not np.isfinite(lr) or float(lr) < 0:
            raise _invalid("state['learning_rate']", "a non-negative finite float", lr)
        arrays = {}
        for key, p in slot_keys.items():
            a = np.asarray(state[key])
            if a.shape != p.shape or a.dtype.kind != "f":
                raise ValueError(
                    f"Received an invalid value for argument `state`: {key!r} must be a float "
                    f"array of shape {p.shape}, got {a.dtype} {a.shape}."
                )
            arrays[key] = a
        if slot_keys:
            self._build(params)
            for key, a in arrays.items():
                _, i, name = key.split("/")
                self._slots[int(i)][name][...] = a
        else:
            self.reset()
        self.iterations = int(iterations)
        self.learning_rate = float(lr)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _fusable(param: np.ndarray, grad: np.ndarray) -> bool:
    """Whether the fused C++ update applies: one float dtype, C-contiguous, writeable."""
    return (
        param.dtype == grad.dtype
        and param.dtype in (np.float32, np.float64)
        and param.shape == grad.shape
        and param.flags.c_contiguous
        and grad.flags.c_contiguous
        and param.flags.writeable
    )


class SGD(Optimizer):
    """Gradient descent, optionally with (Nesterov) momentum.

    - ``momentum == 0``: ``w -= lr * g``
    - otherwise: ``v = momentum * v - lr * g``, then ``w += v``, or with ``nesterov``
      ``w += momentum * v - lr * g``.
    """

    name = "SGD"

    def __init__(
        self,
        learning_rate: float = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        name: str | None = None,
    ):
        self.momentum = _in_range("momentum", momentum, 0.0, 1.0, high_inclusive=True)
        self.nesterov = bool(nesterov)
        self._slot_names = ("momentum",) if self.momentum != 0 else ()
        super().__init__(learning_rate, clipnorm, clipvalue, global_clipnorm, name)

    def _update(self, param, grad, slots):
        if not _fusable(param, grad):
            return self._update_numpy(param, grad, slots)
        ops.sgd_update(
            param, grad, slots.get("momentum"), self._learning_rate, self.momentum, self.nesterov
        )

    def _update_numpy(self, param, grad, slots):
        lr, mu, step = self._learning_rate, self.momentum, slots["scratch"]
        np.multiply(grad, lr, out=step)  # lr * g
        if mu == 0:
            param -= step
            return
        v = slots["momentum"]
        v *= mu
        v -= step  # v = mu v - lr g
        if self.nesterov:
            param -= step
            np.multiply(v, mu, out=step)
            param += step  # w += mu v - lr g
        else:
            param += v

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam (Kingma & Ba), Keras form, with ``t = iterations + 1``:

    ``m += (g - m)(1 - beta_1)``; ``v += (g^2 - v)(1 - beta_2)``;
    ``alpha = lr sqrt(1 - beta_2^t) / (1 - beta_1^t)``; ``w -= alpha m / (sqrt(v) + epsilon)``.
    With ``amsgrad``, ``v_hat = max(v_hat, v)`` replaces ``v`` in the last step.
    """

    name = "adam"

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        name: str | None = None,
    ):
        self.beta_1 = _in_range("beta_1", beta_1, 0.0, 1.0, high_inclusive=False)
        self.beta_2 = _in_range("beta_2", beta_2, 0.0, 1.0, high_inclusive=False)
        self.epsilon = _in_range("epsilon", epsilon, 0.0, math.inf, high_inclusive=False)
        self.amsgrad = bool(amsgrad)
        self._slot_names = ("m", "v", "v_hat") if self.amsgrad else ("m", "v")
        super().__init__(learning_rate, clipnorm, clipvalue, global_clipnorm, name)

    def _prepare_step(self):
        t = self.iterations + 1
        self._alpha = self._learning_rate * math.sqrt(1.0 - self.beta_2**t) / (1.0 - self.beta_1**t)

    def _update(self, param, grad, slots):
        if not _fusable(param, grad):
            return self._update_numpy(param, grad, slots)
        ops.adam_update(
            param, grad, slots["m"], slots["v"], slots.get("v_hat"), self._alpha, self.beta_1,
            self.beta_2, self.epsilon,
        )

    def _update_numpy(self, param, grad, slots):
        m, v, s = slots["m"], slots["v"], slots["scratch"]
        np.subtract(grad, m, out=s)
        s *= 1.0 - self.beta_1
        m += s  # m += (g - m)(1 - beta_1)
        np.square(grad, out=s)
        s -= v
        s *= 1.0 - self.beta_2
        v += s  # v += (g^2 - v)(1 - beta_2)
        if self.amsgrad:
            v = np.maximum(slots["v_hat"], v, out=slots["v_hat"])
        np.sqrt(v, out=s)
        s += self.epsilon
        np.divide(m, s, out=s)
        s *= self._alpha
        param -= s  # w -= alpha m / (sqrt(v) + eps)

    def get_config(self):
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
            "amsgrad": self.amsgrad,
        }


class RMSprop(Optimizer):
    """RMSprop, Keras form:

    ``v = rho v + (1 - rho) g^2``; centered: ``a = rho a + (1 - rho) g`` and
    ``d = v - a^2 + epsilon``, else ``d = v + epsilon``; ``step = lr g / sqrt(d)``;
    with momentum ``mom = momentum * mom + step`` and ``w -= mom``, else ``w -= step``.
    """

    name = "rmsprop"

    def __init__(
        self,
        learning_rate: float = 0.001,
        rho: float = 0.9,
        momentum: float = 0.0,
        epsilon: float = 1e-7,
        centered: bool = False,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        name: str | None = None,
    ):
        self.rho = _in_range("rho", rho, 0.0, 1.0, high_inclusive=False)
        self.momentum = _in_range("momentum", momentum, 0.0, 1.0, high_inclusive=True)
        self.epsilon = _in_range("epsilon", epsilon, 0.0, math.inf, high_inclusive=False)
        self.centered = bool(centered)
        names = ["v"]
        if self.momentum > 0:
            names.append("momentum")
        if self.centered:
            names.append("average_grad")
        self._slot_names = tuple(names)
        super().__init__(learning_rate, clipnorm, clipvalue, global_clipnorm, name)

    def _update(self, param, grad, slots):
        if not _fusable(param, grad):
            return self._update_numpy(param, grad, slots)
        ops.rmsprop_update(
            param, grad, slots["v"], slots.get("average_grad"), slots.get("momentum"),
            self._learning_rate, self.rho, self.momentum, self.epsilon,
        )

    def _update_numpy(self, param, grad, slots):
        rho, v, s = self.rho, slots["v"], slots["scratch"]
        v *= rho
        np.square(grad, out=s)
        s *= 1.0 - rho
        v += s  # v = rho v + (1 - rho) g^2
        if self.centered:
            a = slots["average_grad"]
            a *= rho
            np.multiply(grad, 1.0 - rho, out=s)
            a += s  # a = rho a + (1 - rho) g
            np.square(a, out=s)
            np.subtract(v, s, out=s)
            # v - a^2 is a variance, but rounding can push it below 0 when the gradient is
            # constant (sqrt would give NaN, as it does in Keras and PyTorch): clamp it at 0.
            np.maximum(s, 0.0, out=s)
            s += self.epsilon  # d = v - a^2 + eps
        else:
            np.add(v, self.epsilon, out=s)  # d = v + eps
        np.sqrt(s, out=s)
        np.divide(grad, s, out=s)
        s *= self._learning_rate  # step = lr g / sqrt(d)
        if self.momentum > 0:
            mom = slots["momentum"]
            mom *= self.momentum
            mom += s
            param -= mom
        else:
            param -= s

    def get_config(self):
        return {
            **super().get_config(),
            "rho": self.rho,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "centered": self.centered,
        }


_CLASSES: dict[str, type[Optimizer]] = {"sgd": SGD, "adam": Adam, "rmsprop": RMSprop}

OptimizerIdentifier = Union[str, Optimizer, dict]


def serialize(optimizer: Optimizer) -> dict[str, Any]:
    """``{"class_name": ..., "config": ...}`` (JSON-serialisable; slot state not included)."""
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}


def deserialize(config: dict[str, Any]) -> Optimizer:
    """The inverse of :func:`serialize`: a fresh optimizer."""
    class_name = config.get("class_name")
    cls = _CLASSES.get(class_name.lower()) if isinstance(class_name, str) else None
    if cls is None:
        raise ValueError(
            f"Unknown optimizer config {config!r}; expected {{'class_name': one of "
            "'SGD', 'Adam', 'RMSprop', 'config': {...}}."
        )
    return cls.from_config(dict(config.get("config", {})))


def get(identifier: OptimizerIdentifier) -> Optimizer:
    """An optimizer from a name (``"sgd"``, ``"adam"``, ``"rmsprop"``, any case; Keras
    defaults), an :class:`Optimizer` (returned as is) or a :func:`serialize` config."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        cls = _CLASSES.get(identifier.lower())
        if cls is None:
            raise ValueError(
                f"Unknown optimizer {identifier!r}; valid names are: 'sgd', 'adam', 'rmsprop'."
            )
        return cls()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    raise TypeError(
        f"Could not interpret optimizer {identifier!r}: expected a name, an Optimizer or a "
        "config dict."
    )
