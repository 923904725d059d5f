"""Learning-rate schedules, as ``keras.optimizers.schedules``: the step size as a function of
the optimizer's step count.

Give one to any optimizer as its ``learning_rate``
(``Adam(learning_rate=ExponentialDecay(1e-3, decay_steps=1000, decay_rate=0.9))``): before
each update the optimizer evaluates ``schedule(optimizer.iterations)``, where ``iterations``
counts the updates already made (0 for the first batch). The schedule's config is part of the
optimizer's config, so a saved model (and ``BackupAndRestore``'s backup) continues the
schedule where it stopped.

A schedule is called with a step (an int, or a NumPy array of steps: the values come back as
an array) and returns the rate (a Python float for a scalar step), computed in float64 (Keras
computes in the initial rate's dtype, float32 for a Python float: values agree to float32's
rounding). Subclass :class:`LearningRateSchedule` for a schedule of your own: define
``__call__(step)`` and ``get_config()``; loading a model that uses it needs it by name
(``load_model(path, custom_objects={"MySchedule": MySchedule})``).
"""

from __future__ import annotations

import math
from typing import Any, Optional, Union

import numpy as np

__all__ = [
    "CosineDecay", "CosineDecayRestarts", "ExponentialDecay", "InverseTimeDecay",
    "LearningRateSchedule", "PiecewiseConstantDecay", "PolynomialDecay", "deserialize",
    "serialize",
]

Rate = Union[float, np.ndarray]


def _number(name: str, value: Any) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)) or not math.isfinite(float(value)):
        raise ValueError(
            f"Received an invalid value for argument `{name}`, expected a finite number, got "
            f"{value!r}."
        )
    return float(value)


def _native(value: Any) -> Any:
    """`value` as a Python number (a config must be JSON): NumPy scalars are converted."""
    return value.item() if isinstance(value, np.generic) else value


def _positive_steps(name: str, value: Any) -> Any:
    _number(name, value)
    if value <= 0:
        raise ValueError(f"Argument `{name}` must be > 0. Received: {name}={value}")
    return _native(value)


def _steps(step: Any) -> np.ndarray:
    try:
        s = np.asarray(step, dtype=np.float64)
    except (TypeError, ValueError):
        s = None
    if s is None or not np.all(np.isfinite(s)):
        raise ValueError(
            "Received an invalid value for argument `step`, expected a finite number or an "
            f"array of them, got {step!r}."
        )
    return s


def _out(value: np.ndarray) -> Rate:
    return float(value) if value.ndim == 0 else value


class LearningRateSchedule:
    """The base class of learning-rate schedules: subclasses define ``__call__(step)`` (the
    rate at `step`, the number of updates already made) and ``get_config()`` (the constructor
    arguments, JSON-ready); ``from_config`` calls the constructor with them."""

    def __call__(self, step: Any) -> Rate:
        raise NotImplementedError(
            f"Learning rate schedule '{type(self).__name__}' must override "
            "`__call__(self, step)`."
        )

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError(
            f"Learning rate schedule '{type(self).__name__}' must override `get_config()` in "
            "order to be serializable."
        )

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LearningRateSchedule:
        """The schedule of a :meth:`get_config` dict."""
        return cls(**config)

    def __repr__(self) -> str:
        try:
            args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        except NotImplementedError:
            return object.__repr__(self)
        return f"{type(self).__name__}({args})"


class ExponentialDecay(LearningRateSchedule):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)``; with ``staircase`` the
    exponent is floored (the rate drops every `decay_steps` steps)."""

    def __init__(self, initial_learning_rate: float, decay_steps: Union[int, float],
                 decay_rate: float, staircase: bool = False, name: str = "ExponentialDecay"):
        _number("initial_learning_rate", initial_learning_rate)
        _number("decay_rate", decay_rate)
        self.initial_learning_rate = _native(initial_learning_rate)
        self.decay_steps = _positive_steps("decay_steps", decay_steps)
        self.decay_rate = _native(decay_rate)
        self.staircase = bool(staircase)
        self.name = name

    def __call__(self, step: Any) -> Rate:
        p = _steps(step) / float(self.decay_steps)
        if self.staircase:
            p = np.floor(p)
        return _out(float(self.initial_learning_rate) * np.power(float(self.decay_rate), p))

    def get_config(self) -> dict[str, Any]:
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


class InverseTimeDecay(LearningRateSchedule):
    """``initial_learning_rate / (1 + decay_rate * step / decay_steps)``; with ``staircase``
    ``step / decay_steps`` is floored."""

    def __init__(self, initial_learning_rate: float, decay_steps: Union[int, float],
                 decay_rate: float, staircase: bool = False, name: str = "InverseTimeDecay"):
        _number("initial_learning_rate", initial_learning_rate)
        _number("decay_rate", decay_rate)
        self.initial_learning_rate = _native(initial_learning_rate)
        self.decay_steps = _positive_steps("decay_steps", decay_steps)
        self.decay_rate = _native(decay_rate)
        self.staircase = bool(staircase)
        self.name = name

    def __call__(self, step: Any) -> Rate:
        p = _steps(step) / float(self.decay_steps)
        if self.staircase:
            p = np.floor(p)
        return _out(float(self.initial_learning_rate) / (1.0 + float(self.decay_rate) * p))

    def get_config(self) -> dict[str, Any]:
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` while ``step <= boundaries[0]``, ``values[i]`` while
    ``boundaries[i-1] < step <= boundaries[i]``, ``values[-1]`` after the last boundary.
    ``len(values) == len(boundaries) + 1``; the boundaries increase."""

    def __init__(self, boundaries: list, values: list, name: str = "PiecewiseConstant"):
        try:
            n_b, n_v = len(boundaries), len(values)
        except TypeError:
            raise ValueError(
                "Received an invalid value for argument `boundaries`/`values`: expected two "
                f"lists, got boundaries={boundaries!r} and values={values!r}."
            ) from None
        if n_b != n_v - 1:
            raise ValueError(
                "The length of boundaries should be 1 less than the length of values. "
                f"Received: boundaries={boundaries} of length {n_b}, and values={values} of "
                f"length {n_v}."
            )
        b = [_number(f"boundaries[{i}]", v) for i, v in enumerate(boundaries)]
        for i, v in enumerate(values):
            _number(f"values[{i}]", v)
        if any(hi <= lo for lo, hi in zip(b, b[1:])):
            raise ValueError(
                "Received an invalid value for argument `boundaries`, expected increasing "
                f"steps, got {boundaries!r}."
            )
        self.boundaries = [_native(v) for v in boundaries]
        self.values = [_native(v) for v in values]
        self.name = name

    def __call__(self, step: Any) -> Rate:
        s = _steps(step)
        # The number of boundaries strictly below the step is the index of its value.
        index = np.searchsorted(np.asarray(self.boundaries, dtype=np.float64), s, side="left")
        return _out(np.asarray(self.values, dtype=np.float64)[index])

    def get_config(self) -> dict[str, Any]:
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class PolynomialDecay(LearningRateSchedule):
    """``(initial - end) * (1 - step / decay_steps) ** power + end`` with the step capped at
    `decay_steps`; with ``cycle`` the decay restarts instead, over ``decay_steps *
    ceil(step / decay_steps)`` steps (``decay_steps`` at step 0)."""

    def __init__(self, initial_learning_rate: float, decay_steps: Union[int, float],
                 end_learning_rate: float = 0.0001, power: float = 1.0, cycle: bool = False,
                 name: str = "PolynomialDecay"):
        _number("initial_learning_rate", initial_learning_rate)
        _number("end_learning_rate", end_learning_rate)
        _number("power", power)
        self.initial_learning_rate = _native(initial_learning_rate)
        self.decay_steps = _positive_steps("decay_steps", decay_steps)
        self.end_learning_rate = _native(end_learning_rate)
        self.power = _native(power)
        self.cycle = bool(cycle)
        self.name = name

    def __call__(self, step: Any) -> Rate:
        s = _steps(step)
        steps = float(self.decay_steps)
        if self.cycle:
            span = steps * np.where(s == 0, 1.0, np.ceil(s / steps))
        else:
            s, span = np.minimum(s, steps), steps
        start, end = float(self.initial_learning_rate), float(self.end_learning_rate)
        return _out((start - end) * np.power(1.0 - s / span, float(self.power)) + end)

    def get_config(self) -> dict[str, Any]:
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "end_learning_rate": self.end_learning_rate,
                "power": self.power, "cycle": self.cycle, "name": self.name}


def _cosine(fraction: np.ndarray, alpha: float) -> np.ndarray:
    return (1.0 - alpha) * 0.5 * (1.0 + np.cos(np.pi * fraction)) + alpha


class CosineDecay(LearningRateSchedule):
    """Cosine decay (Loshchilov & Hutter, SGDR without restarts), with an optional linear
    warm-up.

    Without ``warmup_target``: ``initial_learning_rate * ((1 - alpha) * 0.5 * (1 + cos(pi *
    s / decay_steps)) + alpha)`` with ``s = min(step, decay_steps)``. With it: for the first
    ``warmup_steps`` steps the rate rises linearly from ``initial_learning_rate`` to
    ``warmup_target``, then decays from ``warmup_target`` as above over ``decay_steps`` steps
    (counted from the end of the warm-up).
    """

    def __init__(self, initial_learning_rate: float, decay_steps: Union[int, float],
                 alpha: float = 0.0, name: str = "CosineDecay",
                 warmup_target: Optional[float] = None, warmup_steps: Union[int, float] = 0):
        _number("initial_learning_rate", initial_learning_rate)
        _number("alpha", alpha)
        if warmup_target is not None:
            _number("warmup_target", warmup_target)
        if _number("warmup_steps", warmup_steps) < 0:
            raise ValueError(f"Argument `warmup_steps` must be >= 0. Received: "
                             f"warmup_steps={warmup_steps}")
        self.initial_learning_rate = _native(initial_learning_rate)
        self.decay_steps = _positive_steps("decay_steps", decay_steps)
        self.alpha = _native(alpha)
        self.name = name
        self.warmup_steps = _native(warmup_steps)
        self.warmup_target = _native(warmup_target)

    def __call__(self, step: Any) -> Rate:
        s = _steps(step)
        start, steps = float(self.initial_learning_rate), float(self.decay_steps)
        alpha = float(self.alpha)
        if self.warmup_target is None:
            return _out(start * _cosine(np.minimum(s, steps) / steps, alpha))
        target, warm = float(self.warmup_target), float(self.warmup_steps)
        s = np.minimum(s, steps + warm)
        with np.errstate(divide="ignore", invalid="ignore"):  # warm == 0: no warm-up branch
            rising = (target - start) * (s / warm) + start
        decaying = target * _cosine((s - warm) / steps, alpha)
        return _out(np.where(s < warm, rising, decaying))

    def get_config(self) -> dict[str, Any]:
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "alpha": self.alpha, "name": self.name,
                "warmup_target": self.warmup_target, "warmup_steps": self.warmup_steps}


class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay with warm restarts (SGDR, Loshchilov & Hutter): the first period lasts
    `first_decay_steps` steps, each next one `t_mul` times longer and starting from `m_mul`
    times the previous peak; within a period the rate falls as in :class:`CosineDecay`, down
    to ``alpha * initial_learning_rate``."""

    def __init__(self, initial_learning_rate: float, first_decay_steps: Union[int, float],
                 t_mul: float = 2.0, m_mul: float = 1.0, alpha: float = 0.0,
                 name: str = "SGDRDecay"):
        _number("initial_learning_rate", initial_learning_rate)
        if _number("t_mul", t_mul) <= 0:
            raise ValueError(f"Argument `t_mul` must be > 0. Received: t_mul={t_mul}")
        _number("m_mul", m_mul)
        _number("alpha", alpha)
        self.initial_learning_rate = _native(initial_learning_rate)
        self.first_decay_steps = _positive_steps("first_decay_steps", first_decay_steps)
        self._t_mul = _native(t_mul)
        self._m_mul = _native(m_mul)
        self.alpha = _native(alpha)
        self.name = name

    def __call__(self, step: Any) -> Rate:
        fraction = _steps(step) / float(self.first_decay_steps)
        t_mul = float(self._t_mul)
        if t_mul == 1.0:
            restart = np.floor(fraction)
            fraction = fraction - restart
        else:
            # Periods 1, t, t^2, ...: restart i begins at (1 - t^i) / (1 - t) periods.
            restart = np.floor(np.log(1.0 - fraction * (1.0 - t_mul)) / np.log(t_mul))
            begun = (1.0 - np.power(t_mul, restart)) / (1.0 - t_mul)
            fraction = (fraction - begun) / np.power(t_mul, restart)
        peak = np.power(float(self._m_mul), restart)
        alpha = float(self.alpha)
        decayed = (1.0 - alpha) * 0.5 * peak * (1.0 + np.cos(np.pi * fraction)) + alpha
        return _out(float(self.initial_learning_rate) * decayed)

    def get_config(self) -> dict[str, Any]:
        return {"initial_learning_rate": self.initial_learning_rate,
                "first_decay_steps": self.first_decay_steps, "t_mul": self._t_mul,
                "m_mul": self._m_mul, "alpha": self.alpha, "name": self.name}


_CLASSES: dict[str, type[LearningRateSchedule]] = {
    cls.__name__: cls
    for cls in (ExponentialDecay, InverseTimeDecay, PiecewiseConstantDecay, PolynomialDecay,
                CosineDecay, CosineDecayRestarts)
}


def serialize(learning_rate_schedule: LearningRateSchedule) -> dict[str, Any]:
    """``{"class_name": ..., "config": ...}`` (JSON-ready) of a schedule."""
    if not isinstance(learning_rate_schedule, LearningRateSchedule):
        raise TypeError(
            "Received an invalid value for argument `learning_rate_schedule`, expected a "
            f"LearningRateSchedule, got {type(learning_rate_schedule).__name__}."
        )
    return {"class_name": type(learning_rate_schedule).__name__,
            "config": learning_rate_schedule.get_config()}


def deserialize(config: dict[str, Any],
                custom_objects: Optional[dict[str, Any]] = None) -> LearningRateSchedule:
    """The schedule a :func:`serialize` dict describes (Keras's form, with ``module`` and
    ``registered_name``, is read too); `custom_objects` maps the names of your own
    :class:`LearningRateSchedule` subclasses to them. Never runs code from the config."""
    known: dict[str, Any] = {**_CLASSES, **(custom_objects or {})}
    name = config.get("class_name") if isinstance(config, dict) else None
    cls = known.get(name) if isinstance(name, str) else None
    if cls is None and isinstance(config, dict) and isinstance(
            config.get("registered_name"), str):
        cls = known.get(config["registered_name"])
    if not (isinstance(cls, type) and issubclass(cls, LearningRateSchedule)) or \
            not isinstance(config.get("config", {}), dict):
        raise ValueError(
            "Received an invalid value for argument `config`, expected {'class_name': one of "
            f"{sorted(known)}, 'config': {{...}}}} (a schedule of your own: pass it in "
            f"`custom_objects`), got {config!r}."
        )
    return cls.from_config(dict(config.get("config", {})))
