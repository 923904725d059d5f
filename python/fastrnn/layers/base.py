"""The `Layer` base class, argument validation, activations and the layer registry.

Shapes passed to ``build`` and ``compute_output_shape`` never include the batch axis:
``(T, F)`` for sequences (``T`` may be ``None``) or ``(F,)`` for vectors.

Storage contract (the model relies on it):

* ``weights``/``grads`` are the live arrays, in the same order as ``weight_names``.
* ``backward`` *overwrites* ``grads`` in place (``g[...] = ...``); it never rebinds them and never
  accumulates, so a model may call it once per batch without zeroing first. A layer with
  ``trainable=False`` writes zeros.
* Masks (Keras masking): a mask is a bool array ``(B, T)`` marking the time steps to use, or
  None. ``compute_mask(x, mask)`` gives the mask of a layer's output from its input and the
  input's mask (the default passes it on when ``supports_masking`` is True, else None). Layers
  that consume a mask take it as ``forward(x, training=False, mask=None)``, keep what backward
  needs, and ``backward(d_out)`` is unchanged.
* ``_bind(weight_views, grad_views)`` copies the current values into the given views (slices
  of the model's flat buffers) and makes them the storage, so in-place optimizer updates on
  the flat buffer are what the layer computes with.
"""

from __future__ import annotations

import itertools
import re
import threading
from typing import Any, Callable, Optional

import numpy as np

from .. import constraints as constraints_module
from .. import regularizers as regularizers_module
from .._checks import check_positive_int
from . import symbolic

__all__ = ["Layer", "deserialize", "get", "register", "serialize"]

_REGISTRY: dict[str, type] = {}
_NAME_COUNTERS: dict[str, itertools.count] = {}


def register(cls: type) -> type:
    """Class decorator: makes `cls` known to :func:`get` / :func:`deserialize` by its name."""
    _REGISTRY[cls.__name__] = cls
    return cls


def get(class_name: str) -> type:
    """The layer class registered under `class_name` (e.g. ``"LSTM"``)."""
    if not isinstance(class_name, str) or class_name not in _REGISTRY:
        raise ValueError(
            f"Received an invalid value for argument `class_name`, expected one of "
            f"{sorted(_REGISTRY)}, got {class_name!r}."
        )
    return _REGISTRY[class_name]


def serialize(layer: Layer) -> dict:
    """``{"class_name": ..., "config": ...}``: JSON-serialisable, for saving."""
    if not isinstance(layer, Layer):
        raise TypeError(
            f"Received an invalid value for argument `layer`, expected a fastrnn Layer, "
            f"got {type(layer).__name__}."
        )
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def deserialize(config: dict) -> Layer:
    """Inverse of :func:`serialize` (a fresh, unbuilt layer)."""
    if not isinstance(config, dict) or "class_name" not in config or "config" not in config:
        raise ValueError(
            "Received an invalid value for argument `config`, expected a dict with keys "
            f"'class_name' and 'config', got {config!r}."
        )
    return get(config["class_name"]).from_config(dict(config["config"]))


def _snake(name: str) -> str:
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s).lower()


def _unique_name(cls_name: str) -> str:
    base = _snake(cls_name)
    n = next(_NAME_COUNTERS.setdefault(base, itertools.count()))
    return base if n == 0 else f"{base}_{n}"


# ----------------------------------------------------------------------------- validation
def check_rate(name: str, value: Any) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)) \
            or not 0.0 <= float(value) < 1.0:
        raise ValueError(
            f"Received an invalid value for argument `{name}`, expected a float in [0, 1), "
            f"got {value!r}."
        )
    return float(value)


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(
            f"Received an invalid value for argument `{name}`, expected True or False, "
            f"got {value!r}."
        )
    return bool(value)


def check_seed(value: Any) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < 0:
        raise ValueError(
            "Received an invalid value for argument `seed`, expected None or a non-negative "
            f"integer, got {value!r}."
        )
    return int(value)


def check_dtype(value: Any) -> np.dtype:
    try:
        dt = np.dtype(value)
    except TypeError:
        dt = None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(
            "Received an invalid value for argument `dtype`, expected 'float32' or 'float64', "
            f"got {value!r}."
        )
    return dt


def first_shape_mismatch(spec: tuple, shape: tuple) -> Optional[tuple[int, int, int]]:
    """``(axis, expected, got)`` for the first fixed size of `spec` (an input shape without the
    batch axis, None for any) that `shape` (with the batch axis) contradicts, or None."""
    for axis, (want, got) in enumerate(zip(spec, shape[1:]), start=1):
        if want is not None and want != got:
            return axis, want, got
    return None


def check_shape(name: str, value: Any) -> Optional[tuple]:
    """A shape without the batch axis: a tuple of positive ints or None (an unknown length)."""
    if value is None:
        return None
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value,)
    try:
        shape = tuple(value)
    except TypeError:
        shape = None
    if not shape or any(
        d is not None and (isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1)
        for d in shape
    ):
        raise ValueError(
            f"Received an invalid value for argument `{name}`, expected a non-empty tuple of "
            f"positive integers or None (without the batch axis), got {value!r}."
        )
    return tuple(None if d is None else int(d) for d in shape)


# ----------------------------------------------------------------------------- activations
def _sigmoid(z: np.ndarray) -> np.ndarray:
    # Two branches so that neither exp overflows.
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


_SELU_ALPHA = 1.6732632423543772
_SELU_SCALE = 1.0507009873554805


def _softplus(z):
    return np.logaddexp(0.0, z).astype(z.dtype, copy=False)


def _elu(z):
    return np.where(z > 0, z, np.expm1(np.minimum(z, 0)))


# Each entry: (forward(z) -> y, backward(z, y, dy) -> dz).
_ACTIVATIONS: dict[str, tuple[Callable, Callable]] = {
    "linear": (lambda z: z, lambda z, y, dy: dy),
    "relu": (lambda z: np.maximum(z, 0), lambda z, y, dy: dy * (z > 0)),
    "tanh": (np.tanh, lambda z, y, dy: dy * (1 - y * y)),
    "sigmoid": (_sigmoid, lambda z, y, dy: dy * y * (1 - y)),
    "softmax": (
        _softmax,
        lambda z, y, dy: y * (dy - (dy * y).sum(axis=-1, keepdims=True)),
    ),
    "elu": (_elu, lambda z, y, dy: dy * np.where(z > 0, 1, y + 1)),
    "selu": (
        lambda z: _SELU_SCALE * np.where(z > 0, z, _SELU_ALPHA * np.expm1(np.minimum(z, 0))),
        lambda z, y, dy: dy * np.where(z > 0, _SELU_SCALE, y + _SELU_SCALE * _SELU_ALPHA),
    ),
    "softplus": (_softplus, lambda z, y, dy: dy * _sigmoid(z)),
    "softsign": (lambda z: z / (1 + np.abs(z)), lambda z, y, dy: dy / (1 + np.abs(z)) ** 2),
    "swish": (
        lambda z: z * _sigmoid(z),
        lambda z, y, dy: dy * (_sigmoid(z) * (1 + z * (1 - _sigmoid(z)))),
    ),
    "exponential": (np.exp, lambda z, y, dy: dy * y),
}
_ALIASES = {None: "linear", "silu": "swish"}


def check_activation(name: str, value: Any, allowed: Optional[tuple] = None) -> str:
    """Canonical activation name; NotImplementedError for names outside `allowed`."""
    value = getattr(value, "_fastrnn_name", value)  # fastrnn.activations.relu -> "relu"
    if callable(value) and not isinstance(value, str):
        raise NotImplementedError(
            f"Argument `{name}` got a callable ({value!r}); fastrnn layers need an activation "
            f"by name (one of {sorted(_ACTIVATIONS)}) so that they can differentiate it."
        )
    key = _ALIASES.get(value, value)
    supported = allowed if allowed is not None else tuple(sorted(_ACTIVATIONS))
    if key not in supported:
        raise NotImplementedError(
            f"Received an unsupported value for argument `{name}`, expected one of "
            f"{supported}, got {value!r}."
        )
    return key


def activation_forward(name: str, z: np.ndarray) -> np.ndarray:
    return _ACTIVATIONS[name][0](z)


def activation_backward(name: str, z: np.ndarray, y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    return _ACTIVATIONS[name][1](z, y, dy)


# ----------------------------------------------------------------------------- initializers
def serialize_initializer(value: Any) -> Any:
    """Strings stay strings; objects with ``get_config`` become ``{"class_name", "config"}``."""
    if value is None or isinstance(value, (str, dict)):
        return value
    if hasattr(value, "get_config"):
        return {"class_name": type(value).__name__, "config": value.get_config()}
    raise ValueError(
        f"Cannot serialise the initializer {value!r}: pass a name such as 'glorot_uniform' "
        "or an initializer object with get_config()."
    )


# Keras's short aliases, which fastrnn.initializers spells out.
_INITIALIZER_ALIASES = {"uniform": "random_uniform", "normal": "random_normal"}


def rng_aware(fn: Callable) -> Callable:
    """Marks a layer-internal ``fn(shape, dtype, rng)`` so that it is called as is."""
    fn._fastrnn_rng_aware = True  # type: ignore[attr-defined]
    return fn


def make_initializer(identifier: Any) -> Callable:
    """A callable ``init(shape, dtype, rng)`` from fastrnn.initializers.get(identifier)."""
    from .. import initializers  # imported late: initializers.py is written in parallel

    if getattr(identifier, "_fastrnn_rng_aware", False):
        return identifier
    if isinstance(identifier, str):
        identifier = _INITIALIZER_ALIASES.get(identifier.lower(), identifier)
    return initializers.get(identifier)


# ----------------------------------------------------------------------------- loading
_loading = threading.local()


class skipped_initialization:
    """Within it, ``add_weight`` allocates without drawing initial values (a model being
    loaded gets its values from the file). Per thread."""

    def __enter__(self) -> None:
        self._before = getattr(_loading, "active", False)
        _loading.active = True

    def __exit__(self, *exc: Any) -> None:
        _loading.active = self._before


# ----------------------------------------------------------------------------- Layer
class Layer:
    """Base class of every fastrnn layer (see the module docstring for the storage contract).

    ``supports_masking``: True when the layer accepts a mask and (by default) passes it on to
    its output (see the module docstring).

    Args common to all layers:
        name: unique by default (``"lstm"``, ``"lstm_1"``, ...).
        trainable: False makes ``backward`` write zero weight gradients.
        dtype: ``"float32"`` (default) or ``"float64"`` (gradient checks).
        input_shape: the shape without the batch axis, for the first layer of a model.
        batch_size: the fixed batch size (stateful layers), optional.
        seed: per-layer seed for initial weights and dropout masks; overrides the ``rng`` a
            model assigns.
        activity_regularizer: a penalty on the layer's output (see
            :mod:`fastrnn.regularizers`), divided by the batch size and added to the loss.

    Layers with weights take Keras's ``<prefix>_regularizer`` and ``<prefix>_constraint``
    arguments for the prefixes in ``_weight_options`` (e.g. ``kernel_regularizer``,
    ``recurrent_constraint``); they are kept by weight name in ``_weight_regularizers`` and
    ``_weight_constraints``, which the model applies in training.
    """

    supports_masking: bool = False
    # Whether a call may output a mask when none comes in (Embedding(mask_zero=True), Masking):
    # a graph runs the calls a mask can reach on its mask-aware path, the others on its plain
    # one. None: not declared; a subclass's own compute_mask then counts as one that may.
    makes_mask: Optional[bool] = None
    # Keras's per-weight regularizer/constraint arguments of this layer: the argument's prefix
    # -> the weight's name, e.g. {"kernel": "kernel", "recurrent": "recurrent_kernel"}.
    _weight_options: dict[str, str] = {}

    def __init__(
        self,
        name: Optional[str] = None,
        trainable: bool = True,
        dtype: Any = "float32",
        input_shape: Any = None,
        batch_size: Optional[int] = None,
        seed: Optional[int] = None,
        activity_regularizer: Any = None,
        **kwargs: Any,
    ):
        # Per weight name: the penalty added to the loss in training, and the projection applied
        # after each optimizer update.
        self._weight_regularizers: dict[str, Any] = {}
        self._weight_constraints: dict[str, Any] = {}
        for prefix, weight in self._weight_options.items():
            for kind, module, store in (
                    ("regularizer", regularizers_module, self._weight_regularizers),
                    ("constraint", constraints_module, self._weight_constraints)):
                argument = f"{prefix}_{kind}"
                value = module.get(kwargs.pop(argument, None), argument)
                setattr(self, argument, value)
                if value is not None:
                    store[weight] = value
        self.activity_regularizer = activity_regularizer
        if kwargs:
            raise TypeError(
                f"{type(self).__name__} got unexpected keyword argument(s) "
                f"{sorted(kwargs)}."
            )
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(
                f"Received an invalid value for argument `name`, expected a non-empty string, "
                f"got {name!r}."
            )
        self.name = name or _unique_name(type(self).__name__)
        self.trainable = check_bool("trainable", trainable)
        # False when nothing consumes this layer's input gradient (a model's first layer):
        # backward may then skip computing it and return None.
        self.input_grad_needed = True
        self.dtype = check_dtype(dtype)
        self.seed = check_seed(seed)
        self.batch_size = None if batch_size is None else check_positive_int(
            "batch_size", batch_size)
        self._declared_input_shape = check_shape("input_shape", input_shape)
        # Before build, input_shape is the declared one (or None); after, the built one.
        self.input_shape: Optional[tuple] = self._declared_input_shape
        self.output_shape: Any = None
        self.built = False
        self._rng: Optional[np.random.Generator] = None
        self._weights: list[np.ndarray] = []
        self._grads: list[np.ndarray] = []
        self._weight_names: list[str] = []

    @property
    def losses(self) -> list[float]:
        """The penalties of this layer's trainable weights' regularizers (and of the layers
        inside a wrapper), as Keras's ``layer.losses`` lists them."""
        out = []
        if self.trainable:
            frozen = set(getattr(self, "non_trainable_weight_names", ()))
            names = self._weight_names
            for name, reg in getattr(self, "_weight_regularizers", {}).items():
                if name in names and name not in frozen:
                    out.append(float(reg(self._weights[names.index(name)])))
        for sub in getattr(self, "_sublayers", ()):
            out.extend(sub.losses)
        return out

    @property
    def activity_regularizer(self) -> Any:
        """The penalty on this layer's output (a Regularizer or None); settable."""
        return getattr(self, "_activity_regularizer", None)

    @activity_regularizer.setter
    def activity_regularizer(self, value: Any) -> None:
        self._activity_regularizer = regularizers_module.get(value, "activity_regularizer")

    # ------------------------------------------------------------------ randomness
    @property
    def rng(self) -> np.random.Generator:
        """Generator for initial weights and dropout masks. Setting it has no effect when
        the layer has its own ``seed``."""
        if self._rng is None:
            self._rng = np.random.default_rng(self.seed)
        return self._rng

    @rng.setter
    def rng(self, generator: np.random.Generator) -> None:
        if not isinstance(generator, np.random.Generator):
            raise TypeError(
                "Received an invalid value for `rng`, expected a numpy.random.Generator, "
                f"got {type(generator).__name__}."
            )
        if self.seed is None:
            self._rng = generator

    # ------------------------------------------------------------------ weights
    def add_weight(self, name: str, shape: tuple, initializer: Any) -> np.ndarray:
        init = make_initializer(initializer)
        if getattr(_loading, "active", False):
            # Loading a file: its values replace these, so nothing is drawn (and the pages
            # of a too-large weight a malformed file asks for are never touched).
            value = np.empty(tuple(shape), dtype=self.dtype)
        else:
            value = np.asarray(init(tuple(shape), dtype=self.dtype, rng=self.rng))
        if value.shape != tuple(shape):
            raise ValueError(
                f"The initializer {initializer!r} of `{self.name}.{name}` returned shape "
                f"{value.shape}, expected {tuple(shape)}."
            )
        w = np.ascontiguousarray(value, dtype=self.dtype)
        self._weights.append(w)
        self._grads.append(np.zeros_like(w))
        self._weight_names.append(name)
        return w

    @property
    def weights(self) -> list[np.ndarray]:
        return list(self._weights)

    @property
    def grads(self) -> list[np.ndarray]:
        return list(self._grads)

    @property
    def weight_names(self) -> list[str]:
        return list(self._weight_names)

    def count_params(self) -> int:
        return int(sum(w.size for w in self.weights))

    def get_weights(self) -> list[np.ndarray]:
        return [w.copy() for w in self.weights]

    def set_weights(self, weights: list) -> None:
        self._check_built("set_weights")
        mine = self.weights
        if len(weights) != len(mine):
            raise ValueError(
                f"Layer `{self.name}` expects {len(mine)} weight arrays "
                f"({', '.join(self.weight_names) or 'none'}), got {len(weights)}."
            )
        arrays = []
        for name, w, value in zip(self.weight_names, mine, weights):
            a = np.asarray(value)
            if a.dtype.kind not in "biuf":
                raise ValueError(
                    f"Layer `{self.name}` weight `{name}` must be a real numeric array, got "
                    f"dtype {a.dtype}."
                )
            if a.shape != w.shape:
                raise ValueError(
                    f"Layer `{self.name}` weight `{name}` has shape {w.shape}, "
                    f"the value given has shape {a.shape}."
                )
            arrays.append(a.astype(w.dtype, copy=False))
        for w, a in zip(mine, arrays):  # all checked and converted: nothing half-applied
            w[...] = a

    def _bind(self, weight_views: list[np.ndarray], grad_views: list[np.ndarray]) -> None:
        """Moves this layer's storage into `weight_views`/`grad_views` (values copied)."""
        self._check_views(weight_views, grad_views)
        for v, w in zip(weight_views, self._weights):
            v[...] = w
        for v, g in zip(grad_views, self._grads):
            v[...] = g
        self._weights = list(weight_views)
        self._grads = list(grad_views)

    def _check_views(self, weight_views: list, grad_views: list) -> None:
        self._check_built("_bind")
        mine = self.weights
        for what, views in (("weight_views", weight_views), ("grad_views", grad_views)):
            if len(views) != len(mine):
                raise ValueError(
                    f"Layer `{self.name}`: `{what}` has {len(views)} arrays, expected "
                    f"{len(mine)}."
                )
            for name, w, v in zip(self.weight_names, mine, views):
                if not isinstance(v, np.ndarray) or v.shape != w.shape or v.dtype != w.dtype:
                    raise ValueError(
                        f"Layer `{self.name}`: `{what}` entry for `{name}` must be a "
                        f"{w.dtype} array of shape {w.shape}, got "
                        f"{getattr(v, 'dtype', type(v).__name__)} {getattr(v, 'shape', '')}."
                    )

    def _write_grads(self, values: list[np.ndarray]) -> None:
        for g, v in zip(self._grads, values):
            if self.trainable:
                g[...] = v
            else:
                g[...] = 0

    # ------------------------------------------------------------------ building
    def build(self, input_shape: tuple) -> None:
        self.input_shape = tuple(input_shape)
        self.output_shape = self.compute_output_shape(self.input_shape)
        self.built = True

    def compute_output_shape(self, input_shape: tuple) -> Any:
        return tuple(input_shape)

    def _check_built(self, what: str) -> None:
        if not self.built:
            raise RuntimeError(
                f"Layer `{self.name}` is not built yet: call build(input_shape) or forward(x) "
                f"before {what}."
            )

    def _ensure_built(self, x: np.ndarray) -> None:
        if not self.built:
            self.build(tuple(x.shape[1:]))

    def _check_input(self, x: np.ndarray, min_rank: int = 2) -> None:
        """Rank and fixed dimensions of `x` against the built input shape."""
        want = self.input_shape
        if x.ndim != len(want) + 1:
            raise ValueError(
                f"Layer `{self.name}` expects input of rank {len(want) + 1} (batch, "
                f"{', '.join('None' if d is None else str(d) for d in want)}), got an array "
                f"of shape {x.shape}."
            )
        mismatch = first_shape_mismatch(want, x.shape)
        if mismatch is not None:
            axis, w, g = mismatch
            what = "feature count" if axis == x.ndim - 1 else f"size of axis {axis}"
            raise ValueError(
                f"Layer `{self.name}` was built for input shape (batch, "
                f"{', '.join('None' if d is None else str(d) for d in want)}): expected "
                f"{what} {w}, received {g} (input shape {x.shape})."
            )

    def _as_input(self, x: Any) -> np.ndarray:
        if type(x) is np.ndarray and x.dtype == self.dtype and x.ndim >= 1:
            return x  # the common case (every call inside fit), checked cheaply first
        a = np.asarray(x)
        if a.dtype.kind not in "fiub":
            raise TypeError(
                f"Layer `{self.name}` expects a numeric array, got dtype {a.dtype}."
            )
        if a.ndim < 1:
            raise ValueError(
                f"Layer `{self.name}` expects an array with a batch axis, got shape {a.shape}."
            )
        return a.astype(self.dtype, copy=False)

    # ------------------------------------------------------------------ computation
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, d_out: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def compute_mask(self, x: Any, mask: Optional[np.ndarray]) -> Any:
        """The mask of this layer's output, from its input `x` and the input's `mask` (bool
        ``(B, T)`` or None): `mask` when the layer supports masking, else None."""
        return mask if self.supports_masking else None

    def __call__(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        """On arrays: ``forward(x, ...)``. On symbolic tensors (``fastrnn.Input`` or another
        layer's symbolic output): builds the layer and records the call for a
        ``fastrnn.Model``, returning symbolic output(s)."""
        if symbolic.is_symbolic(x) or symbolic.is_symbolic(kwargs.get("initial_state")):
            if args:
                raise TypeError(
                    f"Layer `{self.name}`: pass `training`/`initial_state` by keyword in a "
                    "symbolic call."
                )
            return symbolic.call(self, x, **kwargs)
        return self.forward(x, *args, **kwargs)

    def reset_states(self) -> None:
        """Clears carried states (stateful recurrent layers); a no-op elsewhere."""

    def _no_tape(self) -> RuntimeError:
        return RuntimeError(
            f"Layer `{self.name}`: backward needs a preceding forward(x, training=True)."
        )

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict:
        config = {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": self.dtype.name,
            "seed": self.seed,
        }
        if self._declared_input_shape is not None:
            config["input_shape"] = list(self._declared_input_shape)
        if self.batch_size is not None:
            config["batch_size"] = self.batch_size
        for prefix in self._weight_options:
            config[f"{prefix}_regularizer"] = regularizers_module.serialize(
                getattr(self, f"{prefix}_regularizer"))
            config[f"{prefix}_constraint"] = constraints_module.serialize(
                getattr(self, f"{prefix}_constraint"))
        if self._weight_options or self.activity_regularizer is not None:
            config["activity_regularizer"] = regularizers_module.serialize(
                self.activity_regularizer)
        return config

    @classmethod
    def from_config(cls, config: dict) -> Layer:
        config = dict(config)
        if config.get("input_shape") is not None:
            config["input_shape"] = tuple(config["input_shape"])
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} built={self.built}>"
