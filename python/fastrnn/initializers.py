"""Weight initializers with Keras's names, defaults and fan rules.

An initializer is called as ``init(shape, dtype=np.float32, rng=None)`` and returns a new
array. Randomness comes from ``rng`` (a ``np.random.Generator``) when given; otherwise from a
fresh ``np.random.default_rng(seed)`` built from the initializer's ``seed`` (so a seeded
initializer returns the same values at every call, as Keras's do); with neither, from
unseeded entropy. Values are drawn in float64 and then cast, so float32 and float64 weights
from the same generator agree up to rounding.

Fans (Keras ``compute_fans``): a 2-D ``(fan_in, fan_out)`` kernel is what it says; 1-D
``(n,)`` has both fans ``n``; for more axes the leading ones form a receptive field that
multiplies both: ``fan_in = shape[-2] * prod(shape[:-2])``, ``fan_out = shape[-1] * ...``.
So an LSTM kernel ``(I, 4H)`` has ``fan_in = I`` and ``fan_out = 4H``. The variance-scaling
initializers take Keras 3's ``input_axes`` and ``output_axes``: given both, the fans are the
products of those axes' sizes.

``"orthogonal"`` treats the shape as the matrix ``(prod(shape[:-1]), shape[-1])``; for a
recurrent kernel ``(H, 4H)`` that is one ``H x 4H`` matrix with orthonormal rows, times
``gain`` (Keras 3; TF-Keras 2 did the same).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Union

import numpy as np

__all__ = [
    "Constant",
    "GlorotNormal",
    "GlorotUniform",
    "HeNormal",
    "HeUniform",
    "Identity",
    "IdentityInitializer",
    "Initializer",
    "LecunNormal",
    "LecunUniform",
    "Ones",
    "Orthogonal",
    "OrthogonalInitializer",
    "RandomNormal",
    "RandomUniform",
    "TruncatedNormal",
    "VarianceScaling",
    "Zeros",
    "compute_fans",
    "constant",
    "deserialize",
    "get",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "identity",
    "lecun_normal",
    "lecun_uniform",
    "ones",
    "orthogonal",
    "random_normal",
    "random_uniform",
    "serialize",
    "truncated_normal",
    "variance_scaling",
    "zeros",
]

Shape = tuple[int, ...]


def _check_shape(shape: Any) -> Shape:
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    message = f"shape must be a tuple of non-negative integers, got {shape!r}."
    try:
        dims = tuple(shape)
    except TypeError:
        raise ValueError(message) from None
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 0:
            raise ValueError(message)
    return tuple(int(d) for d in dims)


def _check_dtype(dtype: Any) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"initializers produce floating arrays; got dtype {dtype}.")
    return dtype


def _check_axes(name: str, axes: Any) -> list[int] | None:
    if axes is None:
        return None
    try:
        out = [int(a) for a in axes if not isinstance(a, bool) and a == int(a)]
        ok = len(out) == len(axes)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(
            f"Received an invalid value for argument `{name}`: expected None or a list of "
            f"axes (integers), got {axes!r}."
        )
    return out


def compute_fans(shape: Shape, input_axes: Any = None,
                 output_axes: Any = None) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight of ``shape`` (rules in the module doc); given both
    `input_axes` and `output_axes` (Keras 3's arguments), the products of those axes' sizes."""
    if input_axes is not None and output_axes is not None:
        try:
            return (math.prod(shape[a] for a in input_axes),
                    math.prod(shape[a] for a in output_axes))
        except IndexError:
            raise ValueError(
                f"Received an invalid value for argument `input_axes`/`output_axes`: "
                f"{input_axes!r}/{output_axes!r} do not index a shape of rank {len(shape)}."
            ) from None
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


class Initializer:
    """Base class. Subclasses implement ``_sample(shape, rng) -> float64 array``."""

    def __init__(self, seed: int | None = None):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise ValueError(
                f"Received an invalid value for argument `seed`: expected None or an integer, "
                f"got {seed!r}."
            )
        self.seed = None if seed is None else int(seed)

    def __call__(
        self,
        shape: Shape,
        dtype: Any = np.float32,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """A new array of ``shape`` and ``dtype`` (floating)."""
        shape = _check_shape(shape)
        dtype = _check_dtype(dtype)
        if rng is None:
            rng = np.random.default_rng(self.seed)
        return np.asarray(self._sample(shape, rng), dtype=dtype)

    def _sample(self, shape: Shape, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, JSON-serialisable."""
        return {"seed": self.seed}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Initializer:
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Constant(Initializer):
    """Every element equal to ``value``."""

    def __init__(self, value: float = 0.0, seed: int | None = None):
        super().__init__(seed)
        self.value = float(value)

    def _sample(self, shape, rng):
        return np.full(shape, self.value)

    def get_config(self):
        return {"value": self.value}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class Zeros(Constant):
    """All zeros."""

    def __init__(self, seed: int | None = None):
        super().__init__(0.0, seed)

    def get_config(self):
        return {}


class Ones(Constant):
    """All ones."""

    def __init__(self, seed: int | None = None):
        super().__init__(1.0, seed)

    def get_config(self):
        return {}


def _truncated_normal(
    shape: Shape, mean: float, stddev: float, rng: np.random.Generator
) -> np.ndarray:
    """Normal samples redrawn until each lies within two standard deviations of the mean."""
    out = rng.standard_normal(shape)
    bad = np.abs(out) > 2.0
    while bad.any():  # each pass redraws ~4.6% of the remaining
        out[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(out) > 2.0
    out *= stddev
    out += mean
    return out


class RandomNormal(Initializer):
    """Normal with ``mean`` and ``stddev``."""

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None):
        super().__init__(seed)
        self.mean, self.stddev = float(mean), float(stddev)

    def _sample(self, shape, rng):
        return rng.normal(self.mean, self.stddev, shape)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class TruncatedNormal(RandomNormal):
    """Normal with ``mean`` and ``stddev``, redrawn outside ``mean +- 2 stddev``."""

    def _sample(self, shape, rng):
        return _truncated_normal(shape, self.mean, self.stddev, rng)


class RandomUniform(Initializer):
    """Uniform on ``[minval, maxval)``."""

    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None):
        super().__init__(seed)
        self.minval, self.maxval = float(minval), float(maxval)

    def _sample(self, shape, rng):
        return rng.uniform(self.minval, self.maxval, shape)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


# 0.8796... is the standard deviation of a unit normal truncated to [-2, 2]; dividing by it
# gives the truncated samples the variance that was asked for (as Keras does).
_TRUNCATION_STDDEV = 0.87962566103423978


class VarianceScaling(Initializer):
    """Samples with variance ``scale / fan`` where ``fan`` is fan_in, fan_out or their mean.

    ``distribution``: ``"truncated_normal"`` (stddev ``sqrt(scale / fan) / 0.8796``),
    ``"untruncated_normal"`` (stddev ``sqrt(scale / fan)``) or ``"uniform"``
    (limit ``sqrt(3 scale / fan)``).
    """

    _MODES = ("fan_in", "fan_out", "fan_avg")
    _DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")

    def __init__(
        self,
        scale: float = 1.0,
        mode: str = "fan_in",
        distribution: str = "truncated_normal",
        seed: int | None = None,
        input_axes: Any = None,
        output_axes: Any = None,
    ):
        super().__init__(seed)
        self.input_axes = _check_axes("input_axes", input_axes)
        self.output_axes = _check_axes("output_axes", output_axes)
        if not float(scale) > 0:
            raise ValueError(
                f"Received an invalid value for argument `scale`: expected a positive float, "
                f"got {scale!r}."
            )
        if mode not in self._MODES:
            raise ValueError(
                f"Received an invalid value for argument `mode`: expected one of {self._MODES}, "
                f"got {mode!r}."
            )
        if distribution not in self._DISTRIBUTIONS:
            raise ValueError(
                f"Received an invalid value for argument `distribution`: expected one of "
                f"{self._DISTRIBUTIONS}, got {distribution!r}."
            )
        self.scale, self.mode, self.distribution = float(scale), mode, distribution

    def _sample(self, shape, rng):
        fan_in, fan_out = compute_fans(shape, self.input_axes, self.output_axes)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}
        variance = self.scale / max(1.0, fan[self.mode])
        if self.distribution == "truncated_normal":
            return _truncated_normal(shape, 0.0, math.sqrt(variance) / _TRUNCATION_STDDEV, rng)
        if self.distribution == "untruncated_normal":
            return rng.normal(0.0, math.sqrt(variance), shape)
        limit = math.sqrt(3.0 * variance)
        return rng.uniform(-limit, limit, shape)

    def get_config(self):
        return {
            "scale": self.scale,
            "mode": self.mode,
            "distribution": self.distribution,
            "seed": self.seed,
            "input_axes": self.input_axes,
            "output_axes": self.output_axes,
        }


def _variance_scaling_preset(
    class_name: str, scale: float, mode: str, distribution: str, doc: str
) -> type[VarianceScaling]:
    def __init__(self, seed: int | None = None, input_axes: Any = None,
                 output_axes: Any = None):
        VarianceScaling.__init__(self, scale, mode, distribution, seed, input_axes, output_axes)

    def get_config(self):
        return {"seed": self.seed, "input_axes": self.input_axes,
                "output_axes": self.output_axes}

    return type(
        class_name,
        (VarianceScaling,),
        {"__init__": __init__, "get_config": get_config, "__doc__": doc, "__module__": __name__},
    )


GlorotUniform = _variance_scaling_preset(
    "GlorotUniform",
    1.0,
    "fan_avg",
    "uniform",
    "Uniform on ``[-l, l]``, ``l = sqrt(6 / (fan_in + fan_out))``.",
)
GlorotNormal = _variance_scaling_preset(
    "GlorotNormal",
    1.0,
    "fan_avg",
    "truncated_normal",
    "Truncated normal with variance ``2 / (fan_in + fan_out)``.",
)
HeNormal = _variance_scaling_preset(
    "HeNormal",
    2.0,
    "fan_in",
    "truncated_normal",
    "Truncated normal with variance ``2 / fan_in``.",
)
HeUniform = _variance_scaling_preset(
    "HeUniform",
    2.0,
    "fan_in",
    "uniform",
    "Uniform on ``[-l, l]``, ``l = sqrt(6 / fan_in)``.",
)
LecunNormal = _variance_scaling_preset(
    "LecunNormal",
    1.0,
    "fan_in",
    "truncated_normal",
    "Truncated normal with variance ``1 / fan_in``.",
)
LecunUniform = _variance_scaling_preset(
    "LecunUniform",
    1.0,
    "fan_in",
    "uniform",
    "Uniform on ``[-l, l]``, ``l = sqrt(3 / fan_in)``.",
)


class Orthogonal(Initializer):
    """``gain`` times a matrix with orthonormal rows or columns (whichever there are fewer of).

    The shape is viewed as ``(prod(shape[:-1]), shape[-1])``; the QR factorisation of a
    Gaussian matrix, with signs fixed by ``diag(R)`` so the result is uniformly distributed.
    """

    def __init__(self, gain: float = 1.0, seed: int | None = None):
        super().__init__(seed)
        self.gain = float(gain)

    def _sample(self, shape, rng):
        if len(shape) < 2:
            raise ValueError(
                f"The orthogonal initializer needs a shape with at least 2 axes, got {shape}."
            )
        rows, cols = math.prod(shape[:-1]), shape[-1]
        if rows == 0 or cols == 0:
            return np.zeros(shape)
        a = rng.standard_normal((max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q *= np.sign(np.diag(r))  # column signs from diag(R): without it QR biases the result
        if rows < cols:
            q = q.T
        return (self.gain * q).reshape(shape)

    def get_config(self):
        return {"gain": self.gain, "seed": self.seed}


class Identity(Initializer):
    """``gain`` times the identity matrix (2-D shapes only; a non-square one gets ones on the
    main diagonal). ``seed`` is accepted and unused (nothing is random)."""

    def __init__(self, gain: float = 1.0, seed: int | None = None):
        super().__init__(seed)
        if isinstance(gain, bool) or not isinstance(gain, (int, float, np.integer, np.floating)):
            raise ValueError(
                f"Received an invalid value for argument `gain`: expected a number, got {gain!r}."
            )
        self.gain = float(gain)

    def _sample(self, shape, rng):
        if len(shape) != 2:
            raise ValueError(
                "Identity matrix initializer can only be used for 2D matrices. "
                f"Received: shape={shape} of rank {len(shape)}."
            )
        return self.gain * np.eye(*shape)

    def get_config(self):
        return {"gain": self.gain}


# Keras's other spellings of the same classes: the long class names and the lower-case
# "function" names (in Keras 3 these are the classes too: ``glorot_uniform(seed=1)``).
IdentityInitializer = Identity
OrthogonalInitializer = Orthogonal
constant = Constant
glorot_normal = GlorotNormal
glorot_uniform = GlorotUniform
he_normal = HeNormal
he_uniform = HeUniform
identity = Identity
lecun_normal = LecunNormal
lecun_uniform = LecunUniform
ones = Ones
orthogonal = Orthogonal
random_normal = RandomNormal
random_uniform = RandomUniform
truncated_normal = TruncatedNormal
variance_scaling = VarianceScaling
zeros = Zeros


class _FunctionInitializer(Initializer):
    """Wraps ``fn(shape, dtype)`` (Keras's callable initializers); ``rng`` is not passed on."""

    def __init__(self, fn: Callable[..., Any]):
        super().__init__(None)
        self.fn = fn

    def __call__(self, shape, dtype=np.float32, rng=None):
        shape = _check_shape(shape)
        dtype = _check_dtype(dtype)
        out = np.asarray(self.fn(shape, dtype=dtype), dtype=dtype)
        if out.shape != shape:
            raise ValueError(
                f"Initializer {self.fn!r} returned an array of shape {out.shape}; expected {shape}."
            )
        return out

    def get_config(self):
        raise NotImplementedError("A function initializer cannot be serialised.")


_NAMES: dict[str, type[Initializer]] = {
    "glorot_uniform": GlorotUniform,
    "glorot_normal": GlorotNormal,
    "orthogonal": Orthogonal,
    "zeros": Zeros,
    "ones": Ones,
    "constant": Constant,
    "he_normal": HeNormal,
    "he_uniform": HeUniform,
    "lecun_normal": LecunNormal,
    "lecun_uniform": LecunUniform,
    "random_normal": RandomNormal,
    "random_uniform": RandomUniform,
    "truncated_normal": TruncatedNormal,
    "variance_scaling": VarianceScaling,
    "identity": Identity,
}
_CLASSES: dict[str, type[Initializer]] = {
    **{cls.__name__: cls for cls in _NAMES.values()},
    "IdentityInitializer": Identity, "OrthogonalInitializer": Orthogonal,
}
_NOT_SEEDED = (Zeros, Ones, Constant, Identity)

InitializerIdentifier = Union[str, Initializer, dict, Callable[..., Any]]


def serialize(initializer: Initializer) -> dict[str, Any]:
    """``{"class_name": ..., "config": ...}`` (JSON-serialisable)."""
    return {"class_name": type(initializer).__name__, "config": initializer.get_config()}


def get(identifier: InitializerIdentifier, seed: int | None = None) -> Initializer:
    """An initializer from a name, an instance (returned as is), a config or a callable.

    Names (case-insensitive): ``glorot_uniform``, ``glorot_normal``, ``orthogonal``, ``zeros``,
    ``ones``, ``constant`` (0), ``he_normal``, ``he_uniform``, ``lecun_normal``,
    ``lecun_uniform``, ``random_normal``, ``random_uniform``, ``truncated_normal``,
    ``variance_scaling``, ``identity``; Keras defaults. ``seed`` is given to names and configs (a
    config's own seed wins); an instance keeps its own.
    """
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, str):
        cls = _NAMES.get(identifier.lower()) or _CLASSES.get(identifier)
        if cls is None:
            raise ValueError(
                f"Unknown initializer {identifier!r}; valid names are: {', '.join(sorted(_NAMES))}."
            )
        return cls(seed=seed)
    if isinstance(identifier, dict):
        cls = _CLASSES.get(identifier.get("class_name"))  # type: ignore[arg-type]
        if cls is None:
            raise ValueError(
                f"Unknown initializer config {identifier!r}; expected {{'class_name': one of "
                f"{sorted(_CLASSES)}, 'config': {{...}}}}."
            )
        config = dict(identifier.get("config", {}))
        if seed is not None and config.get("seed") is None and cls not in _NOT_SEEDED:
            config["seed"] = seed
        return cls.from_config(config)
    if callable(identifier):
        return _FunctionInitializer(identifier)
    raise TypeError(
        f"Could not interpret initializer {identifier!r}: expected a name, an Initializer, a "
        "config dict or a callable."
    )


def deserialize(config: Any, custom_objects: dict[str, Any] | None = None) -> Initializer:
    """The initializer a :func:`serialize` config (or Keras's, with ``module`` and
    ``registered_name``) or a name describes; `custom_objects` maps the class names of your
    own :class:`Initializer` subclasses to them."""
    if isinstance(config, dict) and custom_objects:
        cls = custom_objects.get(config.get("class_name"))  # type: ignore[arg-type]
        if isinstance(cls, type) and issubclass(cls, Initializer):
            return cls.from_config(dict(config.get("config", {})))
    if not isinstance(config, (str, dict)):
        raise ValueError(
            "Received an invalid value for argument `config`, expected a name or "
            f"{{'class_name': ..., 'config': {{...}}}}, got {type(config).__name__}."
        )
    return get(config)
