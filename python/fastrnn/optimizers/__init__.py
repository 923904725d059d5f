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

Weight decay (every optimizer's ``weight_decay``, as in Keras 3) is decoupled: before the
update, ``w -= lr * weight_decay * w`` for every array given (the model gives only its trainable
weights when an optimizer decays or moves weights without a gradient). :class:`AdamW` is Adam
with ``weight_decay=0.004`` by default.

Most rules are elementwise and run on the model's one flat buffer. Two depend on each weight
array as a whole (:class:`Lamb`'s trust ratio, :class:`Adafactor`'s factored moments and
RMS): their ``per_array`` is True and the model hands them one array per weight, as it does for
``clipnorm``.

Keras 3 names not in fastrnn: ``LossScaleOptimizer`` (loss scaling for float16 training;
fastrnn trains in float32/float64, and ``loss_scale_factor`` is accepted as a no-op),
``MultiOptimizer``/``OptimizerMap`` (one optimizer per group of layers), ``Muon`` (not
implemented yet), ``legacy`` (Keras 2's optimizers); the
argument ``gradient_accumulation_steps`` is refused with an error.

``use_ema=True`` keeps, as Keras does, a moving average of the weights it updates (the
trainable ones): after each update ``average = ema_momentum * average + (1 - ema_momentum) *
w`` (``average = w`` at the first update); every ``ema_overwrite_frequency`` updates the
weights are set to the average, and at the end of ``fit`` the model's weights become the
average (:meth:`Optimizer.finalize_variable_values`). ``callbacks.SwapEMAWeights`` evaluates
with the average during training. The average is saved with the optimizer's state.

``learning_rate`` is a float, a :class:`~fastrnn.optimizers.schedules.LearningRateSchedule`
(evaluated at ``iterations``, the number of updates made, before each update; saved in the
optimizer's config) or a callable: one that takes an argument gets ``iterations``, one that
takes none (Keras's form) is simply called, before each update.

Epsilon placement differs between libraries: Keras's Adam divides by ``sqrt(v) + eps`` after
folding the bias correction into the step size (PyTorch: ``sqrt(v / (1 - beta_2^t)) + eps``);
Keras's RMSprop divides by ``sqrt(v + eps)`` (PyTorch: ``sqrt(v) + eps``). fastrnn follows
Keras.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable, Optional, Union

import numpy as np

from .. import ops
from . import schedules
from .schedules import LearningRateSchedule

__all__ = [
    "SGD", "Adadelta", "Adafactor", "Adagrad", "Adam", "AdamW", "Adamax", "Ftrl", "Lamb", "Lion",
    "Nadam", "Optimizer", "RMSprop", "ScheduleFreeAdamW", "deserialize", "get", "schedules",
    "serialize",
]


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


def _optional_non_negative(name: str, value: Any) -> float | None:
    if value is None:
        return None
    number = _real(name, value, "None or a non-negative float")
    if number < 0:
        raise _invalid(name, "None or a non-negative float", value)
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
        learning_rate: LearningRate,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        name: str | None = None,
        weight_decay: float | None = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: int | None = None,
        loss_scale_factor: float | None = None,
        gradient_accumulation_steps: int | None = None,
    ):
        self._schedule: Optional[Callable] = None
        self.iterations = 0
        self.learning_rate = learning_rate
        self.weight_decay = _optional_non_negative("weight_decay", weight_decay)
        if not isinstance(use_ema, (bool, np.bool_)):
            raise _invalid("use_ema", "a bool", use_ema)
        self.use_ema = bool(use_ema)
        ema_momentum = _real("ema_momentum", ema_momentum, "a float in [0, 1]")
        if not 0 <= ema_momentum <= 1:
            raise ValueError("`ema_momentum` must be in the range [0, 1]. Received: "
                             f"ema_momentum={ema_momentum}")
        if ema_overwrite_frequency is not None and (
                isinstance(ema_overwrite_frequency, bool)
                or not isinstance(ema_overwrite_frequency, (int, np.integer))
                or ema_overwrite_frequency < 1):
            raise ValueError("`ema_overwrite_frequency` must be an integer >= 1 or None. "
                             f"Received: ema_overwrite_frequency={ema_overwrite_frequency!r}")
        if gradient_accumulation_steps is not None:
            raise NotImplementedError(
                "Received an unsupported value for argument `gradient_accumulation_steps`: "
                "fastrnn updates at every batch (use a larger `batch_size`); got "
                f"{gradient_accumulation_steps!r}."
            )
        # Kept for the config: Keras multiplies the loss by it and divides the gradients by it
        # (a float16 device); in fastrnn's float32/float64 that changes nothing.
        self.loss_scale_factor = _optional_positive("loss_scale_factor", loss_scale_factor)
        self.ema_momentum = ema_momentum
        self.ema_overwrite_frequency = (None if ema_overwrite_frequency is None
                                        else int(ema_overwrite_frequency))
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
        if self.use_ema:
            self._slot_names = (*self._slot_names, "average")
        self.reset()

    # -- learning rate ---------------------------------------------------------------------

    @property
    def learning_rate(self) -> float:
        """The step size of the next update, a Python float (a schedule's value at
        ``iterations``). Settable between steps to a float (callbacks do), unless the
        optimizer was given a schedule, or to a new schedule or callable."""
        if self._schedule is not None:
            return self._scheduled_rate()
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value: LearningRate) -> None:
        if isinstance(value, LearningRateSchedule) or (
                callable(value) and not isinstance(value, (np.ndarray, np.generic))):
            self._schedule_takes_step = _takes_step(value)  # also checks it can be called
            self._schedule = value
            return
        if isinstance(value, bool) or not isinstance(
                value, (int, float, np.integer, np.floating)):
            raise ValueError(
                "Argument `learning_rate` should be float, or an instance of "
                "LearningRateSchedule, or a callable (that takes in the current iteration "
                f"value and returns the corresponding learning rate value). Received instead: "
                f"learning_rate={value!r}"
            )
        if isinstance(self._schedule, LearningRateSchedule):
            raise TypeError(
                "This optimizer was created with a `LearningRateSchedule` object as its "
                "`learning_rate` constructor argument, hence its learning rate is not "
                "settable. If you need the learning rate to be settable, you should "
                "instantiate the optimizer with a float `learning_rate` argument."
            )
        # 0 is allowed: warm-up schedules often start there.
        number = _real("learning_rate", value, "a non-negative float")
        if number < 0:
            raise _invalid("learning_rate", "a non-negative float", value)
        self._schedule = None
        self._learning_rate = number

    def _scheduled_rate(self) -> float:
        """The schedule's (or callable's) rate at ``iterations``, checked."""
        fn = self._schedule
        value = fn(self.iterations) if self._schedule_takes_step else fn()  # type: ignore[misc]
        try:
            number = float(np.asarray(value, dtype=np.float64).reshape(()))
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number) or number < 0:
            raise ValueError(
                f"Received an invalid value for argument `learning_rate`: the schedule "
                f"{fn!r} gave {value!r} at step {self.iterations}; expected a non-negative "
                "finite float."
            )
        return number

    # -- state -----------------------------------------------------------------------------

    _slot_names: tuple[str, ...] = ()
    _n_scratch = 1  # per-parameter work arrays ("scratch", "scratch2"), never saved
    # True when the rule needs each weight array whole (see the module docstring).
    per_array: bool = False
    # True when the rule moves a weight whose gradient is zero (weight decay, Ftrl): the model
    # then hands over its trainable weights only, so frozen ones stay as they are.
    @property
    def moves_without_gradient(self) -> bool:
        # use_ema: the average must be of the trainable weights only (Keras's)
        return bool(self.weight_decay) or self.use_ema

    @property
    def needs_arrays(self) -> bool:
        """Whether the update needs one array per weight rather than the flat buffer."""
        return self.per_array or bool(self.clipnorm)

    def _slot_shape(self, name: str, param: np.ndarray) -> tuple[int, ...]:
        """Slot `name`'s shape for `param` (the parameter's own shape unless a rule factors)."""
        return param.shape

    def _slot_initial(self, name: str) -> float:
        return 0.0

    def reset(self) -> None:
        """Forgets all slot state and sets ``iterations`` back to 0."""
        self.iterations = 0
        self._slots: list[dict[str, np.ndarray]] = []
        self._signature: tuple[tuple[tuple[int, ...], np.dtype], ...] = ()

    def _build(self, params: list[np.ndarray]) -> None:
        self._slots = [
            {name: np.full(self._slot_shape(name, p), self._slot_initial(name), dtype=p.dtype)
             for name in self._slot_names}
            | {f"scratch{i + 1 if i else ''}": np.zeros_like(p) for i in range(self._n_scratch)}
            for p in params
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
        if self._schedule is not None:  # before anything changes: a bad value changes nothing
            self._learning_rate = self._scheduled_rate()
        self._clip(grads)
        if self.weight_decay:
            factor = 1.0 - self._learning_rate * self.weight_decay
            for p in params:
                p *= factor  # w -= lr * weight_decay * w, before the update (Keras's order)
        self._prepare_step()
        for param, grad, slots in zip(params, grads, self._slots):
            self._update(param, grad, slots)
        if self.use_ema:
            self._update_average(params)
        self.iterations += 1

    def _update_average(self, params: list[np.ndarray]) -> None:
        momentum = self.ema_momentum if self.iterations else 0.0  # the first: the weights
        for p, slots in zip(params, self._slots):
            average, s = slots["average"], slots["scratch"]
            average *= momentum
            np.multiply(p, 1.0 - momentum, out=s)
            average += s
        every = self.ema_overwrite_frequency
        if every and (self.iterations + 1) % every == 0:
            for p, slots in zip(params, self._slots):
                p[...] = slots["average"]

    def averages(self, var_list: list[np.ndarray]) -> list[np.ndarray]:
        """The moving averages (``use_ema``) of `var_list`, the arrays given to
        ``apply_gradients``: the optimizer's own arrays (not copies)."""
        if not self.use_ema:
            raise ValueError(
                "The optimizer keeps no moving average of the weights: create it with "
                f"use_ema=True. Received: use_ema={self.use_ema}"
            )
        if tuple((v.shape, v.dtype) for v in var_list) != self._signature:
            raise ValueError(
                f"The {len(var_list)} arrays given are not the {len(self._signature)} this "
                "optimizer has updated (has it been used on this model?)."
            )
        return [slots["average"] for slots in self._slots]

    def finalize_variable_values(self, var_list: list[np.ndarray]) -> None:
        """At the end of training (``fit`` calls it): with ``use_ema``, sets each array of
        `var_list` (those given to ``apply_gradients``) to its moving average; otherwise, or
        before any update, does nothing."""
        if self.use_ema and self._slots:
            for v, average in zip(var_list, self.averages(var_list)):
                v[...] = average

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
        """The constructor arguments (JSON-serialisable); slot state is not included. A
        schedule's ``learning_rate`` is its :func:`schedules.serialize` dict; a plain function's
        is ``{"class_name": "function", "config": its name}`` (found again by name in
        ``custom_objects`` when loading: a file never holds code)."""
        return {
            "name": self.name,
            "learning_rate": self._learning_rate_config(),
            "clipnorm": self.clipnorm,
            "clipvalue": self.clipvalue,
            "global_clipnorm": self.global_clipnorm,
            "weight_decay": self.weight_decay,
            "use_ema": self.use_ema,
            "ema_momentum": self.ema_momentum,
            "ema_overwrite_frequency": self.ema_overwrite_frequency,
            "loss_scale_factor": self.loss_scale_factor,
        }

    def _learning_rate_config(self) -> Any:
        fn = self._schedule
        if fn is None:
            return self._learning_rate
        if isinstance(fn, LearningRateSchedule):
            return schedules.serialize(fn)
        return {"class_name": "function", "config": getattr(fn, "__name__", type(fn).__name__)}

    @classmethod
    def from_config(cls, config: dict[str, Any],
                    custom_objects: Optional[dict[str, Any]] = None) -> Optimizer:
        """A fresh optimizer (no slot state) with the given constructor arguments; a
        ``learning_rate`` dict is a schedule (or a function named in `custom_objects`)."""
        config = dict(config)
        lr = config.get("learning_rate")
        if isinstance(lr, dict):
            config["learning_rate"] = _learning_rate_from_config(lr, custom_objects)
        return cls(**config)

    # -- state for saving (Keras keeps the optimizer's variables in its files too) ----------

    def get_state(self) -> dict[str, np.ndarray]:
        """Copies of the step counter, the learning rate and every slot array, by name
        (``"slots/<param index>/<slot>"``): what continuing training exactly needs."""
        state = {"iterations": np.array(self.iterations, dtype=np.int64),
                 "learning_rate": np.array(self._learning_rate if self._schedule is None
                                           else self._scheduled_rate(), dtype=np.float64)}
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
            want = self._slot_shape(key.rsplit("/", 1)[1], p)
            if a.shape != want or a.dtype.kind != "f":
                raise ValueError(
                    f"Received an invalid value for argument `state`: {key!r} must be a float "
                    f"array of shape {want}, got {a.dtype} {a.shape}."
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
        if self._schedule is None:  # a schedule's rate follows from `iterations`
            self.learning_rate = float(lr)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


LearningRate = Union[float, LearningRateSchedule, Callable[..., float]]


def _takes_step(fn: Any) -> bool:
    """Whether a learning-rate callable takes the step (else it is called with nothing)."""
    if isinstance(fn, LearningRateSchedule):
        return True
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return True  # a builtin: given the step
    try:
        signature.bind(0)
        return True
    except TypeError:
        pass
    try:
        signature.bind()
        return False
    except TypeError:
        raise ValueError(
            "Received an invalid value for argument `learning_rate`: a callable must take "
            f"the step (one argument) or nothing, got {fn!r} with signature {signature}."
        ) from None


def _learning_rate_from_config(config: dict[str, Any],
                               custom_objects: Optional[dict[str, Any]]) -> Any:
    if config.get("class_name") == "function":
        name = config.get("config")
        fn = (custom_objects or {}).get(name) if isinstance(name, str) else None
        if not callable(fn):
            raise ValueError(
                f"The optimizer's learning rate is the function {name!r}: pass it when "
                f"loading, load_model(path, custom_objects={{{name!r}: {name}}})."
            )
        return fn
    return schedules.deserialize(config, custom_objects)


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
        learning_rate: LearningRate = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        name: str | None = None,
        weight_decay: float | None = None,
        **kwargs: Any,
    ):
        self.momentum = _in_range("momentum", momentum, 0.0, 1.0, high_inclusive=True)
        self.nesterov = bool(nesterov)
        self._slot_names = ("momentum",) if self.momentum != 0 else ()
        super().__init__(learning_rate, clipnorm, clipvalue, global_clipnorm, name,
                         weight_decay=weight_decay, **kwargs)

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
        learning_rate: LearningRate = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        name: str | None = None,
        weight_decay: float | None = None,
        **kwargs: Any,
    ):
        self.beta_1 = _in_range("beta_1", beta_1, 0.0, 1.0, high_inclusive=False)
        self.beta_2 = _in_range("beta_2", beta_2, 0.0, 1.0, high_inclusive=False)
        self.epsilon = _in_range("epsilon", epsilon, 0.0, math.inf, high_inclusive=False)
        self.amsgrad = bool(amsgrad)
        self._slot_names = ("m", "v", "v_hat") if self.amsgrad else ("m", "v")
        super().__init__(learning_rate, clipnorm, clipvalue, global_clipnorm, name,
                         weight_decay=weight_decay, **kwargs)

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
        learning_rate: LearningRate = 0.001,
        rho: float = 0.9,
        momentum: float = 0.0,
        epsilon: float = 1e-7,
        centered: bool = False,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        name: str | None = None,
        weight_decay: float | None = None,
        **kwargs: Any,
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
        super().__init__(learning_rate, clipnorm, clipvalue, global_clipnorm, name,
                         weight_decay=weight_decay, **kwargs)

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


class Nadam(Optimizer):
    """Adam with Nesterov momentum (Dozat), Keras form, with ``t = iterations + 1`` and the
    momentum schedule ``u_t = beta_1 (1 - 0.5 * 0.96^t)``, ``P_t = u_1 ... u_t``:

    ``m += (g - m)(1 - beta_1)``; ``v += (g^2 - v)(1 - beta_2)``;
    ``m_hat = u_{t+1} m / (1 - P_t u_{t+1}) + (1 - u_t) g / (1 - P_t)``;
    ``w -= lr m_hat / (sqrt(v / (1 - beta_2^t)) + epsilon)``.
    """

    name = "nadam"

    def __init__(
        self,
        learning_rate: LearningRate = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        name: str | None = None,
        **kwargs: Any,
    ):
        self.beta_1 = _in_range("beta_1", beta_1, 0.0, 1.0, high_inclusive=False)
        self.beta_2 = _in_range("beta_2", beta_2, 0.0, 1.0, high_inclusive=False)
        self.epsilon = _in_range("epsilon", epsilon, 0.0, math.inf, high_inclusive=False)
        self._slot_names = ("m", "v")
        super().__init__(learning_rate, clipnorm, clipvalue, global_clipnorm, name,
                         weight_decay=weight_decay, **kwargs)

    def _u(self, t: int) -> float:
        return self.beta_1 * (1.0 - 0.5 * 0.96**t)

    def _prepare_step(self):
        t = self.iterations + 1
        # The running product P_t is a function of the step count alone, so it is not saved
        # state: it is kept up to date here and recomputed after a restore.
        if getattr(self, "_product_step", None) != t - 1:
            self._product = math.prod(self._u(k) for k in range(1, t))
        self._product *= self._u(t)
        self._product_step = t
        u_t, u_next = self._u(t), self._u(t + 1)
        self._c_m = u_next / (1.0 - self._product * u_next)
        self._c_g = (1.0 - u_t) / (1.0 - self._product)
        self._c_v = 1.0 / (1.0 - self.beta_2**t)

    def _update(self, param, grad, slots):
        m, v, s, s2 = slots["m"], slots["v"], slots["scratch"], slots["scratch2"]
        np.subtract(grad, m, out=s)
        s *= 1.0 - self.beta_1
        m += s
        np.square(grad, out=s)
        s -= v
        s *= 1.0 - self.beta_2
        v += s
        np.multiply(v, self._c_v, out=s)
        np.sqrt(s, out=s)
        s += self.epsilon  # sqrt(v_hat) + eps
        np.multiply(m, self._c_m, out=s2)
        s2 += self._c_g * grad  # m_hat (one temporary, as a scalar times an array)
        s2 /= s
        s2 *= self._learning_rate
        param -= s2

    _n_scratch = 2

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


class Adamax(Optimizer):
    """Adam with the infinity norm (Kingma & Ba, section 7), Keras form:

    ``m += (g - m)(1 - beta_1)``; ``u = max(beta_2 u, |g|)``;
    ``w -= lr m / ((1 - beta_1^t)(u + epsilon))``.
    """

    name = "adamax"

    def __init__(
        self,
        learning_rate: LearningRate = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        name: str | None = None,
        **kwargs: Any,
    ):
        self.beta_1 = _in_range("beta_1", beta_1, 0.0, 1.0, high_inclusive=False)
        self.beta_2 = _in_range("beta_2", beta_2, 0.0, 1.0, high_inclusive=False)
        self.epsilon = _in_range("epsilon", epsilon, 0.0, math.inf, high_inclusive=False)
        self._slot_names = ("m", "u")
        super().__init__(learning_rate, clipnorm, clipvalue, global_clipnorm, name,
                         weight_decay=weight_decay, **kwargs)

    def _prepare_step(self):
        self._alpha = self._learning_rate / (1.0 - self.beta_1 ** (self.iterations + 1))

    def _update(self, param, grad, slots):
        m, u, s = slots["m"], slots["u"], slots["scratch"]
        np.subtract(grad, m, out=s)
        s *= 1.0 - self.beta_1
        m += s
        u *= self.beta_2
        np.abs(grad, out=s)
        np.maximum(u, s, out=u)
        np.add(u, self.epsilon, out=s)
        np.divide(m, s, out=s)
        s *= self._alpha
        param -= s

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


class Adagrad(Optimizer):
    """Adagrad, Keras form: ``a += g^2`` (``a`` starts at ``initial_accumulator_value``);
    ``w -= lr g / sqrt(a + epsilon)``."""

    name = "adagrad"

    def __init__(
        self,
        learning_rate: LearningRate = 0.001,
        initial_accumulator_value: float = 0.1,
        epsilon: float = 1e-7,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        name: str | None = None,
        **kwargs: Any,
    ):
        self.initial_accumulator_value = _in_range(
            "initial_accumulator_value", initial_accumulator_value, 0.0, math.inf, False)
        self.epsilon = _in_range("epsilon", epsilon, 0.0, math.inf, high_inclusive=False)
        self._slot_names = ("accumulator",)
        super().__init__(learning_rate, clipnorm, clipvalue, global_clipnorm, name,
                         weight_decay=weight_decay, **kwargs)

    def _slot_initial(self, name):
        return self.initial_accumulator_value

    def _update(self, param, grad, slots):
        a, s = slots["accumulator"], slots["scratch"]
        np.square(grad, out=s)
        a += s
        np.add(a, self.epsilon, out=s)
        np.sqrt(s, out=s)
        np.divide(grad, s, out=s)
        s *= self._learning_rate
        param -= s

    def get_config(self):
        return {**super().get_config(),
                "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): before each Adam update,
    ``w -= lr * weight_decay * w`` (see the module docstring); ``weight_decay`` defaults to
    0.004 as in Keras and may not be None."""

    name = "adamw"

    def __init__(
        self,
        learning_rate: LearningRate = 0.001,
        weight_decay: float = 0.004,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        name: str | None = None,
        **kwargs: Any,
    ):
        if weight_decay is None:
            raise _invalid("weight_decay", "a non-negative float (AdamW decays weights)", None)
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, clipnorm, clipvalue,
                         global_clipnorm, name, weight_decay=weight_decay, **kwargs)


class Adadelta(Optimizer):
    """Adadelta (Zeiler), Keras form: ``a = rho a + (1 - rho) g^2``;
    ``d = -sqrt(b + eps) g / sqrt(a + eps)``; ``b = rho b + (1 - rho) d^2``; ``w += lr d``."""

    name = "adadelta"

    def __init__(
        self,
        learning_rate: LearningRate = 0.001,
        rho: float = 0.95,
        epsilon: float = 1e-7,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        name: str | None = None,
        **kwargs: Any,
    ):
        self.rho = _in_range("rho", rho, 0.0, 1.0, high_inclusive=False)
        self.epsilon = _in_range("epsilon", epsilon, 0.0, math.inf, high_inclusive=False)
        self._slot_names = ("accumulated_grad", "accumulated_delta_var")
        super().__init__(learning_rate, clipnorm, clipvalue, global_clipnorm, name,
                         weight_decay=weight_decay, **kwargs)

    _n_scratch = 2

    def _update(self, param, grad, slots):
        rho, eps = self.rho, self.epsilon
        a, b = slots["accumulated_grad"], slots["accumulated_delta_var"]
        s, d = slots["scratch"], slots["scratch2"]
        a *= rho
        np.square(grad, out=s)
        s *= 1.0 - rho
        a += s
        np.add(b, eps, out=d)
        np.sqrt(d, out=d)
        d *= grad
        np.add(a, eps, out=s)
        np.sqrt(s, out=s)
        d /= s  # -delta
        b *= rho
        np.square(d, out=s)
        s *= 1.0 - rho
        b += s
        d *= self._learning_rate
        param -= d

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


class Ftrl(Optimizer):
    """Follow The Regularized Leader (McMahan et al.), Keras form, with ``p = -lr_power``:

    ``n' = n + g^2``; ``z += g + 2 l2_shrinkage w - (n'^p - n^p) / lr * w``;
    ``w = (clip(z, -l1, l1) - z) / (n'^p / lr + 2 (l2 + beta / (2 lr)))``; ``n = n'``.
    ``n`` starts at ``initial_accumulator_value``. A weight with a zero gradient still moves
    (towards the solution of its regularized problem), so the model gives this optimizer its
    trainable weights only.
    """

    name = "ftrl"

    def __init__(
        self,
        learning_rate: LearningRate = 0.001,
        learning_rate_power: float = -0.5,
        initial_accumulator_value: float = 0.1,
        l1_regularization_strength: float = 0.0,
        l2_regularization_strength: float = 0.0,
        l2_shrinkage_regularization_strength: float = 0.0,
        beta: float = 0.0,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        name: str | None = None,
        **kwargs: Any,
    ):
        self.learning_rate_power = _in_range("learning_rate_power", learning_rate_power,
                                             -math.inf, 0.0, high_inclusive=True)
        self.initial_accumulator_value = _in_range(
            "initial_accumulator_value", initial_accumulator_value, 0.0, math.inf, False)
        for arg, value in (("l1_regularization_strength", l1_regularization_strength),
                           ("l2_regularization_strength", l2_regularization_strength),
                           ("l2_shrinkage_regularization_strength",
                            l2_shrinkage_regularization_strength), ("beta", beta)):
            setattr(self, arg, _in_range(arg, value, 0.0, math.inf, False))
        self._slot_names = ("accumulator", "linear")
        super().__init__(learning_rate, clipnorm, clipvalue, global_clipnorm, name,
                         weight_decay=weight_decay, **kwargs)

    @property
    def moves_without_gradient(self) -> bool:
        return True

    def _slot_initial(self, name):
        return self.initial_accumulator_value if name == "accumulator" else 0.0

    _n_scratch = 2

    def _update(self, param, grad, slots):
        lr = self._learning_rate
        if lr == 0:
            raise ValueError("Ftrl divides by the learning rate: it must be positive, got 0.")
        power = -self.learning_rate_power
        n, z = slots["accumulator"], slots["linear"]
        s, s2 = slots["scratch"], slots["scratch2"]
        root = np.sqrt if power == 0.5 else (lambda a, out: np.power(a, power, out=out))
        root(n, out=s2)  # n^p (a square root for the default power: 5x faster than power)
        np.square(grad, out=s)
        n += s  # n'
        root(n, out=s)  # n'^p
        s2 -= s
        s2 *= param
        s2 *= 1.0 / lr  # -(n'^p - n^p) / lr * w
        s2 += grad
        if self.l2_shrinkage_regularization_strength:
            s2 += (2.0 * self.l2_shrinkage_regularization_strength) * param
        z += s2
        s *= 1.0 / lr
        s += 2.0 * (self.l2_regularization_strength + self.beta / (2.0 * lr))  # quadratic
        l1 = self.l1_regularization_strength
        np.clip(z, -l1, l1, out=s2)
        s2 -= z
        np.divide(s2, s, out=param)

    def get_config(self):
        return {
            **super().get_config(),
            "learning_rate_power": self.learning_rate_power,
            "initial_accumulator_value": self.initial_accumulator_value,
            "l1_regularization_strength": self.l1_regularization_strength,
            "l2_regularization_strength": self.l2_regularization_strength,
            "l2_shrinkage_regularization_strength": self.l2_shrinkage_regularization_strength,
            "beta": self.beta,
        }


class Lion(Optimizer):
    """Lion (Chen et al., "Symbolic Discovery of Optimization Algorithms"):
    ``w -= lr sign(beta_1 m + (1 - beta_1) g)``; then ``m = beta_2 m + (1 - beta_2) g``."""

    name = "lion"

    def __init__(
        self,
        learning_rate: LearningRate = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.99,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        name: str | None = None,
        **kwargs: Any,
    ):
        # Keras refuses beta_1 <= 0 or > 1 (the update would be sign(g) or ignore g).
        self.beta_1 = _in_range("beta_1", beta_1, 0.0, 1.0, high_inclusive=True)
        if self.beta_1 == 0:
            raise _invalid("beta_1", "a float in (0, 1]", beta_1)
        self.beta_2 = _in_range("beta_2", beta_2, 0.0, 1.0, high_inclusive=True)
        self._slot_names = ("momentum",)
        super().__init__(learning_rate, clipnorm, clipvalue, global_clipnorm, name,
                         weight_decay=weight_decay, **kwargs)

    def _update(self, param, grad, slots):
        m, s = slots["momentum"], slots["scratch"]
        np.multiply(m, self.beta_1, out=s)
        s += (1.0 - self.beta_1) * grad
        np.sign(s, out=s)
        s *= self._learning_rate
        param -= s
        m *= self.beta_2
        np.multiply(grad, 1.0 - self.beta_2, out=s)
        m += s

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2}


class Lamb(Optimizer):
    """LAMB (You et al.): Adam's direction ``r = m_hat / (sqrt(v_hat) + eps)`` (bias-corrected
    moments), scaled per weight array by the trust ratio ``||w|| / ||r||`` (1 where either norm
    is 0): ``w -= lr * ratio * r``. Per array, so the model hands it one array per weight."""

    name = "lamb"
    per_array = True

    def __init__(
        self,
        learning_rate: LearningRate = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        name: str | None = None,
        **kwargs: Any,
    ):
        self.beta_1 = _in_range("beta_1", beta_1, 0.0, 1.0, high_inclusive=False)
        self.beta_2 = _in_range("beta_2", beta_2, 0.0, 1.0, high_inclusive=False)
        self.epsilon = _in_range("epsilon", epsilon, 0.0, math.inf, high_inclusive=False)
        self._slot_names = ("m", "v")
        super().__init__(learning_rate, clipnorm, clipvalue, global_clipnorm, name,
                         weight_decay=weight_decay, **kwargs)

    def _prepare_step(self):
        t = self.iterations + 1
        self._c_m = 1.0 / (1.0 - self.beta_1**t)
        self._c_v = 1.0 / (1.0 - self.beta_2**t)

    def _update(self, param, grad, slots):
        m, v, s = slots["m"], slots["v"], slots["scratch"]
        np.subtract(grad, m, out=s)
        s *= 1.0 - self.beta_1
        m += s
        np.square(grad, out=s)
        s -= v
        s *= 1.0 - self.beta_2
        v += s
        np.multiply(v, self._c_v, out=s)
        np.sqrt(s, out=s)
        s += self.epsilon
        np.divide(m, s, out=s)
        s *= self._c_m  # r
        w_norm = math.sqrt(float(np.vdot(param, param)))
        r_norm = math.sqrt(float(np.vdot(s, s)))
        ratio = w_norm / r_norm if w_norm > 0 and r_norm > 0 else 1.0
        s *= ratio * self._learning_rate
        param -= s

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


class Adafactor(Optimizer):
    """Adafactor (Shazeer & Stern), Keras form, with ``t = iterations + 1``. For each weight
    array: ``rho = min(lr, 1/sqrt(t))``, ``alpha = max(epsilon_2, rms(w)) * rho``,
    ``beta = 1 - t^beta_2_decay``, ``G = g^2 + epsilon_1``. Arrays of rank >= 2 keep factored
    second moments over their last two axes (``r`` without the last axis, ``c`` without the
    second last): ``r = beta r + (1 - beta) mean(G, -1)``, ``c = beta c + (1 - beta)
    mean(G, -2)``, ``v = r / mean(r) (outer) c``; others keep ``v = beta v + (1 - beta) G``.
    ``u = g / sqrt(v)``; ``w -= alpha u / max(1, rms(u) / clip_threshold)``. With
    ``relative_step`` the learning rate is first capped at ``1/sqrt(t)`` (the same cap again).
    """

    name = "adafactor"
    per_array = True

    def __init__(
        self,
        learning_rate: LearningRate = 0.001,
        beta_2_decay: float = -0.8,
        epsilon_1: float = 1e-30,
        epsilon_2: float = 1e-3,
        clip_threshold: float = 1.0,
        relative_step: bool = True,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        name: str | None = None,
        **kwargs: Any,
    ):
        self.beta_2_decay = _in_range("beta_2_decay", beta_2_decay, -math.inf, 0.0, False)
        self.epsilon_1 = _in_range("epsilon_1", epsilon_1, 0.0, math.inf, False)
        self.epsilon_2 = _in_range("epsilon_2", epsilon_2, 0.0, math.inf, False)
        self.clip_threshold = _optional_positive("clip_threshold", clip_threshold)
        if self.clip_threshold is None:
            raise _invalid("clip_threshold", "a positive float", None)
        self.relative_step = bool(relative_step)
        self._slot_names = ("r", "c", "v")
        super().__init__(learning_rate, clipnorm, clipvalue, global_clipnorm, name,
                         weight_decay=weight_decay, **kwargs)

    def _slot_shape(self, name, param):
        if name in ("v", "average"):
            return param.shape
        if param.ndim < 2:
            return ()  # unused: arrays of rank < 2 are not factored
        if name == "r":
            return param.shape[:-1]
        return param.shape[:-2] + param.shape[-1:]

    def _prepare_step(self):
        t = self.iterations + 1
        cap = 1.0 / math.sqrt(t)
        lr = min(self._learning_rate, cap) if self.relative_step else self._learning_rate
        self._rho = min(lr, cap)
        self._beta = 1.0 - t**self.beta_2_decay

    def _update(self, param, grad, slots):
        beta, s, v = self._beta, slots["scratch"], slots["v"]
        alpha = max(self.epsilon_2, math.sqrt(float(np.vdot(param, param)) / param.size))
        alpha *= self._rho
        np.square(grad, out=s)
        s += self.epsilon_1  # G
        if param.ndim >= 2:
            r, c = slots["r"], slots["c"]
            r *= beta
            r += (1.0 - beta) * s.mean(axis=-1)
            c *= beta
            c += (1.0 - beta) * s.mean(axis=-2)
            np.multiply((r / r.mean(axis=-1, keepdims=True))[..., None], c[..., None, :],
                        out=v)
        else:
            v *= beta
            s *= 1.0 - beta
            v += s
        np.sqrt(v, out=s)
        np.divide(grad, s, out=s)  # u
        rms_u = math.sqrt(float(np.vdot(s, s)) / s.size)
        s *= alpha / max(1.0, rms_u / self.clip_threshold)
        param -= s

    def get_config(self):
        return {
            **super().get_config(),
            "beta_2_decay": self.beta_2_decay,
            "epsilon_1": self.epsilon_1,
            "epsilon_2": self.epsilon_2,
            "clip_threshold": self.clip_threshold,
            "relative_step": self.relative_step,
        }


class ScheduleFreeAdamW(Optimizer):
    """Schedule-free AdamW (Defazio et al. 2024), Keras form, with ``t = iterations + 1``: no
    learning-rate schedule is needed; the weights ``y`` are an interpolation between the
    iterate ``z`` (slot ``momentum``, starting at the initial weights) and the running average
    ``x`` of the iterates.

    ``lr_t = lr * min(t / warmup_steps, 1)`` (``lr`` without warm-up);
    ``v += (g^2 - v)(1 - beta_2)``; ``z' = z - lr_t g / (sqrt(v / (1 - beta_2^t)) + eps)``;
    ``x = (y - (1 - beta_1) z) / beta_1``; ``x' = (1 - 1/t) x + z' / t``;
    ``y = (1 - beta_1) z' + beta_1 x'``. A weight whose gradient is zero still moves (towards
    ``z``), so the model gives this optimizer its trainable weights only.

    ``x`` is recovered with the iterate ``z`` from before its update, as Keras's code states
    (and its JAX backend computes); TF-Keras 3.15 reads the updated one there (its saved
    ``momentum.value`` is the variable itself), which moves ``x`` up the gradient.
    """

    name = "schedulefreeadamw"

    def __init__(
        self,
        learning_rate: LearningRate = 0.0025,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        warmup_steps: int = 0,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        name: str | None = None,
        **kwargs: Any,
    ):
        # beta_1 divides (x from y and z): it must be positive
        self.beta_1 = _in_range("beta_1", beta_1, 0.0, 1.0, high_inclusive=False)
        if self.beta_1 == 0:
            raise _invalid("beta_1", "a float in (0, 1)", beta_1)
        self.beta_2 = _in_range("beta_2", beta_2, 0.0, 1.0, high_inclusive=False)
        self.epsilon = _in_range("epsilon", epsilon, 0.0, math.inf, high_inclusive=False)
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, (int, np.integer)) \
                or warmup_steps < 0:
            raise _invalid("warmup_steps", "a non-negative integer", warmup_steps)
        self.warmup_steps = int(warmup_steps)
        self._slot_names = ("momentum", "velocity")
        super().__init__(learning_rate, clipnorm, clipvalue, global_clipnorm, name,
                         weight_decay=weight_decay, **kwargs)

    _n_scratch = 2

    @property
    def moves_without_gradient(self) -> bool:
        return True

    def _build(self, params):
        super()._build(params)
        for p, slots in zip(params, self._slots):
            slots["momentum"][...] = p  # z starts at the initial weights

    def _prepare_step(self):
        t = self.iterations + 1
        lr = self._learning_rate
        if self.warmup_steps > 0:
            lr *= min(t / self.warmup_steps, 1.0)
        self._lr_t = lr
        self._c_v = 1.0 / (1.0 - self.beta_2**t)
        self._weight = 1.0 / t

    def _update(self, param, grad, slots):
        b1, z, v = self.beta_1, slots["momentum"], slots["velocity"]
        s, z_old = slots["scratch"], slots["scratch2"]
        z_old[...] = z
        np.square(grad, out=s)
        s -= v
        s *= 1.0 - self.beta_2
        v += s  # v += (g^2 - v)(1 - beta_2)
        np.multiply(v, self._c_v, out=s)
        np.sqrt(s, out=s)
        s += self.epsilon
        np.divide(grad, s, out=s)
        s *= self._lr_t
        z -= s  # z' = z - lr_t g / denom
        z_old *= 1.0 - b1
        np.subtract(param, z_old, out=s)
        s *= (1.0 - self._weight) / b1  # (1 - 1/t) x
        np.multiply(z, self._weight, out=z_old)
        s += z_old  # x'
        s *= b1
        np.multiply(z, 1.0 - b1, out=param)
        param += s  # y = (1 - beta_1) z' + beta_1 x'

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "warmup_steps": self.warmup_steps}


_CLASSES: dict[str, type[Optimizer]] = {
    cls.__name__.lower(): cls
    for cls in (SGD, Adam, RMSprop, Nadam, Adamax, Adagrad, AdamW, Adadelta, Ftrl, Lion, Lamb,
                Adafactor, ScheduleFreeAdamW)
}

OptimizerIdentifier = Union[str, Optimizer, dict]


def serialize(optimizer: Optimizer) -> dict[str, Any]:
    """``{"class_name": ..., "config": ...}`` (JSON-serialisable; slot state not included)."""
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}


def deserialize(config: dict[str, Any],
                custom_objects: Optional[dict[str, Any]] = None) -> Optimizer:
    """The inverse of :func:`serialize`: a fresh optimizer (`custom_objects`: schedules or
    learning-rate functions of your own, by name)."""
    class_name = config.get("class_name")
    cls = _CLASSES.get(class_name.lower()) if isinstance(class_name, str) else None
    if cls is None:
        raise ValueError(
            f"Unknown optimizer config {config!r}; expected {{'class_name': one of "
            f"{sorted(c.__name__ for c in _CLASSES.values())}, 'config': {{...}}}}."
        )
    return cls.from_config(dict(config.get("config", {})), custom_objects)


def get(identifier: OptimizerIdentifier) -> Optimizer:
    """An optimizer from a name (a class name in any case, e.g. ``"adam"``, ``"nadam"``,
    ``"adamw"``; Keras defaults), an :class:`Optimizer` (returned as is) or a
    :func:`serialize` config."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        cls = _CLASSES.get(identifier.lower())
        if cls is None:
            raise ValueError(
                f"Unknown optimizer {identifier!r}; valid names are: {sorted(_CLASSES)}."
            )
        return cls()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    raise TypeError(
        f"Could not interpret optimizer {identifier!r}: expected a name, an Optimizer or a "
        "config dict."
    )
