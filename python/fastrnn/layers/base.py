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

Layers of your own are written Keras's way instead: ``build(input_shape)`` with
``add_weight(shape=..., initializer=..., trainable=..., name=...)`` (which returns a
:class:`fastrnn.autodiff.Variable`) and ``call(inputs, training=None, mask=None)`` in
:mod:`fastrnn.ops` math; ``forward``/``backward`` then come from the tape (see
:mod:`fastrnn.layers.traced`). The built-in layers define ``forward``/``backward`` and never
take that path. Framework code builds a layer with ``_build_for(shape)`` and asks its output
shape with ``_output_shape_for(shape)`` (shapes without the batch axis); a Keras-style layer's
own ``build``/``compute_output_shape`` see the batch axis, as in Keras.
"""

from __future__ import annotations

import itertools
import re
import threading
from typing import Any, Callable, Optional

import numpy as np

from .. import constraints as constraints_module
from .. import math as math_module
from .. import regularizers as regularizers_module
from .._checks import check_positive_int
from ..autodiff import Traced, Variable
from . import symbolic

__all__ = ["Layer", "deserialize", "get", "register", "serialize"]

_REGISTRY: dict[str, type] = {}
_NAME_COUNTERS: dict[str, itertools.count] = {}


def register(cls: type) -> type:
    """Class decorator: makes `cls` known to :func:`get` / :func:`deserialize` by its name."""
    _REGISTRY[cls.__name__] = cls
    return cls


_CUSTOM: dict[str, Any] = {}  # register_keras_serializable: "package>Name" and "Name"
_scope = threading.local()


def register_keras_serializable(package: str = "Custom", name: Optional[str] = None) -> Callable:
    """Keras's decorator: makes a custom layer class (or a function used by ``Lambda``) known
    by name, so that ``load_model`` rebuilds it without ``custom_objects``. A file names
    classes; it never holds code."""
    if not isinstance(package, str) or ">" in package:
        raise ValueError(f"Received an invalid value for argument `package`, expected a string "
                         f"without '>', got {package!r}.")

    def decorator(obj: Any) -> Any:
        key = name or getattr(obj, "__name__", None)
        if not isinstance(key, str) or not key:
            raise ValueError(f"Cannot register {obj!r}: it has no name; pass `name=`.")
        _CUSTOM[f"{package}>{key}"] = obj
        _CUSTOM[key] = obj
        if not isinstance(obj, type):
            from . import traced
            traced._FUNCTIONS[key] = obj
        obj._registered_name = f"{package}>{key}"
        return obj
    return decorator


class custom_object_scope:
    """``with custom_object_scope({"Name": cls}):`` deserialization finds those names too
    (what ``load_model(custom_objects=...)`` uses). Per thread; scopes nest."""

    def __init__(self, custom_objects: Optional[dict] = None):
        if custom_objects is not None and not isinstance(custom_objects, dict):
            raise TypeError(
                "Received an invalid value for argument `custom_objects`, expected a dict "
                f"{{name: class or function}}, got {type(custom_objects).__name__}.")
        self.objects = dict(custom_objects or {})

    def __enter__(self) -> custom_object_scope:
        self._before = getattr(_scope, "objects", {})
        _scope.objects = {**self._before, **self.objects}
        return self

    def __exit__(self, *exc: Any) -> None:
        _scope.objects = self._before


def custom_objects_in_scope() -> dict:
    return getattr(_scope, "objects", {})


def get(class_name: str) -> type[Layer]:
    """The layer class registered under `class_name` (e.g. ``"LSTM"``), a custom class given
    in ``custom_objects`` or registered with :func:`register_keras_serializable`."""
    found = None
    if isinstance(class_name, str):
        found = custom_objects_in_scope().get(class_name)
        if found is None:
            found = _REGISTRY.get(class_name) or _CUSTOM.get(class_name)
    if found is None:
        raise ValueError(
            f"Received an invalid value for argument `class_name`: unknown layer class "
            f"{class_name!r} (fastrnn's are {sorted(_REGISTRY)}). A custom layer is rebuilt "
            f"from its name only: pass it when loading, load_model(path, custom_objects="
            f"{{{class_name!r}: {class_name}}}), or decorate its class with "
            "@fastrnn.saving.register_keras_serializable()."
        )
    if not (isinstance(found, type) and issubclass(found, Layer)):
        raise ValueError(f"The custom object {class_name!r} is not a fastrnn Layer class "
                         f"(got {found!r}).")
    return found


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


def _check_weight_shape(layer: str, name: str, shape: Any) -> tuple:
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        dims = None
    if dims is None or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 0
                           for d in dims):
        raise ValueError(
            f"Received an invalid value for argument `shape` of weight `{layer}/{name}`, "
            f"expected a tuple of non-negative integers (all known at build time), got "
            f"{shape!r}.")
    return tuple(int(d) for d in dims)


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
    # the rest of keras.activations' names (Keras's default arguments), from fastrnn.math
    **math_module.ACTIVATION_RULES,
}
_ALIASES = {None: "linear", "silu": "swish", "hard_swish": "hard_silu"}
# keras.activations names a layer cannot take by name, and why.
_NOT_BY_NAME = {
    "glu": "it halves the last axis (call fastrnn.activations.glu, e.g. in a Lambda layer)",
    "threshold": "it needs `threshold` and `default_value` (call "
                 "fastrnn.activations.threshold, e.g. in a Lambda layer)",
}


def check_activation(name: str, value: Any, allowed: Optional[tuple] = None) -> str:
    """Canonical activation name: ValueError for a name Keras does not know either,
    NotImplementedError for names outside `allowed` (a fused kernel's) or that a layer cannot
    take by name."""
    value = getattr(value, "_fastrnn_name", value)  # fastrnn.activations.relu -> "relu"
    if callable(value) and not isinstance(value, str):
        raise NotImplementedError(
            f"Argument `{name}` got a callable ({value!r}); fastrnn layers need an activation "
            f"by name (one of {sorted(_ACTIVATIONS)}) so that they can differentiate it."
        )
    key = _ALIASES.get(value, value)
    if isinstance(key, str) and key in _NOT_BY_NAME and (allowed is None or key not in allowed):
        raise NotImplementedError(
            f"Received an unsupported value for argument `{name}`: {key!r} cannot be a layer's "
            f"activation by name: {_NOT_BY_NAME[key]}."
        )
    if not isinstance(key, str) or key not in _ACTIVATIONS:
        raise ValueError(
            f"Received an invalid value for argument `{name}`: could not interpret activation "
            f"function identifier {value!r}; expected one of {sorted(_ACTIVATIONS)} (or None)."
        )
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


def _has_traced(value: Any) -> bool:
    if isinstance(value, (Traced, Variable)):
        return True
    if isinstance(value, (list, tuple)):
        return any(isinstance(v, (Traced, Variable)) for v in value)
    return False


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
    # True for a class written Keras's way (it defines ``call``, not ``forward``): it runs on
    # the traced path (fastrnn.layers.traced), its build/compute_output_shape see the batch
    # axis, and the layers it holds as attributes are tracked (their weights are its own).
    _keras_style: bool = False
    # Whether a call may output a mask when none comes in (Embedding(mask_zero=True), Masking):
    # a graph runs the calls a mask can reach on its mask-aware path, the others on its plain
    # one. None: not declared; a subclass's own compute_mask then counts as one that may.
    makes_mask: Optional[bool] = None
    # Keras's per-weight regularizer/constraint arguments of this layer: the argument's prefix
    # -> the weight's name, e.g. {"kernel": "kernel", "recurrent": "recurrent_kernel"}.
    _weight_options: dict[str, str] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        defines_call = any("call" in vars(c) for c in cls.__mro__ if c is not Layer)
        defines_forward = any("forward" in vars(c) for c in cls.__mro__
                              if c is not Layer and c.__module__ != "fastrnn.layers.traced")
        cls._keras_style = defines_call and not defines_forward
        if cls._keras_style:
            from . import traced
            traced.prepare_class(cls)

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
    def add_weight(self, *args: Any, shape: Any = None, initializer: Any = None,
                   dtype: Any = None, trainable: bool = True, name: Optional[str] = None,
                   regularizer: Any = None, constraint: Any = None,
                   **kwargs: Any) -> Variable:
        """Creates a weight of this layer (in ``build``) and returns it as a :class:`Variable`.

        Keras's signature: ``add_weight(shape=..., initializer=..., trainable=..., name=...,
        regularizer=None, constraint=None)`` (initializer default ``"glorot_uniform"``; Keras's
        ``dtype``/``autocast``/``aggregation`` are accepted, the layer's dtype is used). The
        positional form ``add_weight(name, shape, initializer)`` works too. `regularizer` and
        `constraint` are kept in ``_weight_regularizers[name]`` / ``_weight_constraints[name]``
        for training to apply. A weight of a trainable=False variable gets zero gradients.
        """
        if args and isinstance(args[0], str):  # add_weight(name, shape, initializer)
            if len(args) > 3:
                raise TypeError(
                    f"add_weight takes at most 3 positional arguments, got {len(args)}.")
            name, *rest = args
            shape = rest[0] if rest else shape
            initializer = rest[1] if len(rest) > 1 else initializer
        elif args:  # Keras's positional order: shape, initializer
            if len(args) > 2:
                raise TypeError(f"add_weight takes at most 2 positional arguments (shape, "
                                f"initializer), got {len(args)}.")
            shape = args[0]
            initializer = args[1] if len(args) > 1 else initializer
        unknown = set(kwargs) - {"autocast", "aggregation", "synchronization", "use_resource",
                                  "caching_device", "partitioner", "experimental_autocast"}
        if unknown:
            raise TypeError(f"add_weight got unexpected keyword argument(s) {sorted(unknown)}.")
        if name is None:
            name = f"variable_{len(self._weights)}" if self._weights else "variable"
        if not isinstance(name, str) or not name:
            raise ValueError(
                f"Received an invalid value for argument `name` of add_weight, expected a "
                f"non-empty string, got {name!r}.")
        if name in self._weight_names:
            raise ValueError(f"Layer `{self.name}` already has a weight named {name!r}.")
        if self.built and self._keras_style and not getattr(self, "_building", False):
            raise RuntimeError(
                f"Layer `{self.name}` created the weight {name!r} outside `build`: create "
                "every weight in `build(input_shape)` (or `__init__`), not in `call`, so that "
                "a model can give it its place in the flat parameter buffer.")
        shape = _check_weight_shape(self.name, name, shape)
        trainable = check_bool("trainable", trainable)
        if initializer is None:
            initializer = "glorot_uniform"
        try:
            init = make_initializer(initializer)
        except (ValueError, TypeError) as exc:
            raise ValueError(
                f"Received an invalid value for argument `initializer` of weight "
                f"`{self.name}/{name}`: {exc}") from None
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
        w = np.asarray(value, dtype=self.dtype, order="C")  # keeps a scalar weight 0-d
        self._weights.append(w)
        self._grads.append(np.zeros_like(w))
        self._weight_names.append(name)
        variable = Variable(self, len(self._weights) - 1, name, trainable)
        self.__dict__.setdefault("_variables", []).append(variable)
        if regularizer is not None:
            self.__dict__.setdefault("_weight_regularizers", {})[name] = regularizer
        if constraint is not None:
            self.__dict__.setdefault("_weight_constraints", {})[name] = constraint
        return variable

    @property
    def weights(self) -> list[np.ndarray]:
        subs = self.__dict__.get("_tracked_layers")
        if subs:
            return list(self._weights) + [w for sub in subs for w in sub.weights]
        return list(self._weights)

    @property
    def grads(self) -> list[np.ndarray]:
        subs = self.__dict__.get("_tracked_layers")
        if subs:
            return list(self._grads) + [g for sub in subs for g in sub.grads]
        return list(self._grads)

    @property
    def weight_names(self) -> list[str]:
        subs = self.__dict__.get("_tracked_layers")
        if subs:
            return list(self._weight_names) + [f"{sub.name}/{n}" for sub in subs
                                               for n in sub.weight_names]
        return list(self._weight_names)

    @property
    def variables(self) -> list[Variable]:
        """This layer's weights as :class:`Variable` handles (own first, then its sublayers')."""
        own = list(self.__dict__.get("_variables", []))
        return own + [v for sub in self.__dict__.get("_tracked_layers", ())
                      for v in sub.variables]

    @property
    def trainable_variables(self) -> list[Variable]:
        """The :attr:`variables` that train (Keras 3's name; none when the layer is frozen)."""
        kept = {id(w) for w in self.trainable_weights}
        return [v for v in self.variables if id(v.value) in kept]

    @property
    def non_trainable_variables(self) -> list[Variable]:
        """The :attr:`variables` that do not train (Keras 3's name)."""
        kept = {id(w) for w in self.trainable_weights}
        return [v for v in self.variables if id(v.value) not in kept]

    # ------------------------------------------------------------------ symbolic calls
    def _first_node(self, what: str) -> Any:
        nodes = self.__dict__.get("_inbound_nodes")
        if not nodes:
            raise ValueError(f"The layer {self.name} has never been called and thus has no "
                             f"defined {what}.")
        return nodes[0]

    @property
    def input(self) -> Any:
        """The symbolic input tensor of the layer's first call on symbolic tensors (a list
        for a layer taking several), as Keras's ``layer.input``."""
        node = self._first_node("input")
        if node.is_input:
            return node.outputs[0]
        main = node.inputs[:node.n_main]
        return list(main) if node.main_is_list else main[0]

    @property
    def output(self) -> Any:
        """The symbolic output tensor of the layer's first call on symbolic tensors (a list
        for a layer giving several), as Keras's ``layer.output``: e.g.
        ``Model(model.input, model.get_layer("encoder").output)``."""
        node = self._first_node("output")
        return list(node.outputs) if node.outputs_is_list else node.outputs[0]

    @property
    def trainable_weights(self) -> list[np.ndarray]:
        if not self.trainable:
            return []
        frozen = {id(v.value) for v in self.variables if not v.trainable}
        frozen |= {id(w) for n, w in zip(self.weight_names, self.weights)
                   if n in set(getattr(self, "non_trainable_weight_names", ()))}
        return [w for w in self.weights if id(w) not in frozen]

    @property
    def non_trainable_weights(self) -> list[np.ndarray]:
        kept = {id(w) for w in self.trainable_weights}
        return [w for w in self.weights if id(w) not in kept]

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
        n = len(self._weights)
        for v, w in zip(weight_views, self._weights):
            v[...] = w
        for v, g in zip(grad_views, self._grads):
            v[...] = g
        self._weights = list(weight_views[:n])
        self._grads = list(grad_views[:n])
        for sub in self.__dict__.get("_tracked_layers", ()):
            k = len(sub.weights)
            sub._bind(list(weight_views[n:n + k]), list(grad_views[n:n + k]))
            n += k

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

    def _write_grads(self, values: list[np.ndarray]) -> None:  # this layer's own weights
        for g, v in zip(self._grads, values):
            if self.trainable:
                g[...] = v
            else:
                g[...] = 0

    # ------------------------------------------------------------------ building
    def build(self, input_shape: tuple) -> None:
        if self._keras_style:  # Keras's: the framework sets the rest (see _build_for)
            self.built = True
            return
        self.input_shape = tuple(input_shape)
        self.output_shape = self.compute_output_shape(self.input_shape)
        self.built = True

    def compute_output_shape(self, input_shape: tuple) -> Any:
        if self._keras_style:
            from . import traced
            return traced.infer_output_shape(self, input_shape, with_batch=True)
        return tuple(input_shape)

    def _build_for(self, input_shape: Any, dtype: Any = None) -> None:
        """Builds the layer for inputs shaped `input_shape` (without the batch axis; a list
        for a list of inputs): what models call. A Keras-style layer's own ``build`` sees the
        batch axis, as in Keras."""
        if self._keras_style:
            from . import traced
            traced.build_keras_style(self, input_shape, dtype)
        else:
            self.build(input_shape)

    def _output_shape_for(self, input_shape: Any) -> Any:
        """``compute_output_shape`` without the batch axis (what models call)."""
        if self._keras_style:
            from . import traced
            return traced.output_shape_without_batch(self, input_shape)
        return self.compute_output_shape(input_shape)

    def _check_built(self, what: str) -> None:
        if not self.built:
            raise RuntimeError(
                f"Layer `{self.name}` is not built yet: call build(input_shape) or forward(x) "
                f"before {what}."
            )

    def _ensure_built(self, x: np.ndarray) -> None:
        if not self.built:
            self._build_for(tuple(x.shape[1:]))

    def _check_input(self, x: np.ndarray, min_rank: int = 2) -> None:
        """Rank and feature count (last axis) of `x` against the built input shape. The other
        axes are free, as Keras's layers fix only their features: a recurrent, convolution
        or pooling layer built on one length takes any other."""
        want: Any = self.input_shape  # set once built
        if x.ndim != len(want) + 1:
            raise ValueError(
                f"Layer `{self.name}` expects input of rank {len(want) + 1} (batch, "
                f"{', '.join('None' if d is None else str(d) for d in want)}), got an array "
                f"of shape {x.shape}."
            )
        mismatch = first_shape_mismatch(want[-1:], (x.shape[0], x.shape[-1]))
        if mismatch is not None:
            axis, w, g = mismatch
            axis = x.ndim - 1
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
    def forward(self, x: Any, training: bool = False, **kwargs: Any) -> Any:
        """A Keras-style layer's ``call`` on arrays (recorded for ``backward`` when training);
        the built-in layers define their own."""
        if self._keras_style:
            from . import traced
            return traced.forward(self, x, training, **kwargs)
        raise NotImplementedError(
            f"Layer `{self.name}` ({type(self).__name__}) defines neither `call` nor `forward`.")

    def backward(self, d_out: Any) -> Any:
        """The gradient of a Keras-style layer's ``call`` (from its trace)."""
        if self._keras_style:
            from . import traced
            return traced.backward(self, d_out)
        raise NotImplementedError(
            f"Layer `{self.name}` ({type(self).__name__}) defines no `backward`.")

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
        if self._keras_style or _has_traced(x) or _has_traced(kwargs.get("initial_state")):
            from . import traced
            return traced.eager_call(self, x, *args, **kwargs)
        return self.forward(x, *args, **kwargs)

    def reset_states(self) -> None:
        """Clears carried states (stateful recurrent layers); a no-op elsewhere."""

    def _no_tape(self) -> RuntimeError:
        return RuntimeError(
            f"Layer `{self.name}`: backward needs a preceding forward(x, training=True)."
        )

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict:
        config = self._base_config()
        if self._keras_style and type(self).get_config is Layer.get_config:
            from . import traced
            return traced.auto_config(self, config)
        return config

    def _base_config(self) -> dict:
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
