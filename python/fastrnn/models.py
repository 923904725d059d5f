"""`Sequential`: a Keras-style model whose training loop costs almost nothing in Python.

Shapes: ``x`` is ``(N, T, F)`` for sequences or ``(N, F)`` for vectors, ``y`` has the model's
output shape ``(N, ...)`` (``N`` = samples, ``B`` = batch size).

How ``fit`` stays fast (PERF.md, "Python-side training"):

* All parameters live in one flat buffer and all gradients in another; every layer computes
  with views into them (``Layer._bind``), so one optimizer call updates the whole model.
* One permutation per epoch; each batch is gathered with ``np.take(..., out=...)`` into arrays
  allocated once per ``fit``.
* A batch costs the layers' forward/backward, one loss call, one optimizer call and a few
  attribute reads. Training metrics are computed once per epoch from the predictions the
  batches already made; validation runs once per epoch in large inference batches.
* Callbacks with batch hooks are only called per batch when they override one.

Reproducibility: :func:`set_seed` (or ``Sequential(seed=...)``) fixes the initial weights,
the dropout masks and the shuffling; on the same machine and thread count two runs are
bit-identical.
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Iterable
from typing import Any, Callable, Optional, Union

import numpy as np
from tqdm.auto import tqdm

from . import callbacks as callbacks_module
from . import layers as layers_module
from . import losses as losses_module
from . import metrics as metrics_module
from . import optimizers as optimizers_module
from . import saving
from .layers.base import first_shape_mismatch

__all__ = ["Sequential", "load_model", "set_seed"]

ArrayLike = Any

# Inference batches (validation, evaluate, predict) are at least this many rows: the layers'
# cost per call is mostly fixed at the book's sizes, so fewer, larger calls are faster.
_MIN_INFERENCE_BATCH = 1024

_global_seed: Optional[int] = None
_models_since_seed = 0
_model_names: dict[str, int] = {}


# ----------------------------------------------------------------------------- seeding
def set_seed(seed: int) -> None:
    """Seeds fastrnn (every model created afterwards), NumPy's global RNG and `random`.

    After ``set_seed(s)`` the k-th model created gets the same initial weights, dropout masks
    and shuffling order as the k-th model created after any other ``set_seed(s)``.
    """
    global _global_seed, _models_since_seed
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(
            "Received an invalid value for argument `seed`: expected a non-negative integer, "
            f"got {seed!r}."
        )
    _global_seed = int(seed)
    _models_since_seed = 0
    np.random.seed(_global_seed % 2**32)  # noqa: NPY002 (as keras.utils.set_random_seed)
    random.seed(_global_seed)


def _new_seed_sequence(seed: Optional[int]) -> np.random.SeedSequence:
    global _models_since_seed
    if seed is not None:
        return np.random.SeedSequence([int(seed)])
    if _global_seed is None:
        return np.random.SeedSequence()
    _models_since_seed += 1
    return np.random.SeedSequence([_global_seed, _models_since_seed])


def _unique_model_name(base: str) -> str:
    n = _model_names.get(base, 0)
    _model_names[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


# ----------------------------------------------------------------------------- helpers
def _shape_str(shape: Optional[tuple]) -> str:
    if shape is None:
        return "?"
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(
        shape) == 1 else "") + ")"


def _is_array_like(x: Any) -> bool:
    return isinstance(x, (np.ndarray, list, tuple)) or hasattr(x, "__array__")


def _is_dataset(x: Any) -> bool:
    """An iterable of (x, y) batches (e.g. ``fastrnn.timeseries.timeseries_dataset_from_array``)."""
    return x is not None and not _is_array_like(x) and isinstance(x, Iterable)


def _overrides(cb: Any, method: str) -> bool:
    base = getattr(callbacks_module.Callback, method, None)
    return getattr(type(cb), method, None) is not base


def _batch_callbacks(cbs: list) -> list:
    """The callbacks with per-batch hooks (the training loop itself does TerminateOnNaN's job)."""
    return [cb for cb in cbs
            if not isinstance(cb, callbacks_module.TerminateOnNaN)
            and (_overrides(cb, "on_train_batch_begin") or _overrides(cb, "on_train_batch_end"))]


def _format_logs_fixed(logs: dict) -> str:
    return " - ".join(f"{k}: {v:.4f}" if abs(v) >= 1e-3 or v == 0 else f"{k}: {v:.4e}"
                      for k, v in logs.items())


def _aligned_zeros(n: int, dtype: np.dtype, alignment: int = 64) -> np.ndarray:
    """Zeros whose data starts on an `alignment`-byte boundary.

    Vectorised kernels may treat the unaligned head of an array differently from its body
    (other rounding); a buffer that always starts on the same boundary makes training
    bit-reproducible from run to run, not only for the addresses malloc happens to return.
    """
    itemsize = np.dtype(dtype).itemsize
    raw = np.zeros(n + alignment // itemsize, dtype=dtype)
    start = (-raw.ctypes.data % alignment) // itemsize
    return raw[start:start + n]


class Sequential:
    """A linear stack of layers, trained on NumPy arrays like a Keras ``Sequential``.

    Args:
        layers: the layers, first to last (more can be added with :meth:`add`).
        name: the model's name (default ``"sequential"``, ``"sequential_1"``, ...).
        seed: a per-model seed; by default the seed comes from :func:`set_seed`, or is random.

    The model is built on its first ``fit``/``predict``/``evaluate``/call, from the first
    layer's ``input_shape`` if it has one, else from the data; or by :meth:`build`.
    """

    def __init__(self, layers: Optional[list] = None, name: Optional[str] = None,
                 seed: Optional[int] = None):
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(
                f"Received an invalid value for argument `name`: expected a non-empty string, "
                f"got {name!r}."
            )
        self.name = name or _unique_model_name("sequential")
        self._layers: list = []
        self._seed_sequence = _new_seed_sequence(seed)
        # The shuffling stream outlives one fit: a second fit continues it deterministically.
        self._shuffle_rng = np.random.default_rng(
            np.random.SeedSequence(self._seed_sequence.entropy, spawn_key=(2**20,)))
        self.built = False
        self.compiled = False
        self.optimizer: Any = None
        self.loss: Any = None
        self.stop_training = False
        self.stop_reason: Optional[str] = None
        self.history: Any = None
        self._build_shape: Optional[tuple] = None  # without the batch axis
        self._input_spec: Optional[tuple] = None  # None where any size is accepted
        self._output_shape: Optional[tuple] = None
        self._param_buffer: Optional[np.ndarray] = None
        self._grad_buffer: Optional[np.ndarray] = None
        self._param_views: list[np.ndarray] = []
        self._grad_views: list[np.ndarray] = []
        self._compile_config: Optional[dict] = None
        for layer in layers or []:
            self.add(layer)

    # ------------------------------------------------------------------ structure
    @property
    def layers(self) -> list:
        """The layers, first to last (a copy of the list)."""
        return list(self._layers)

    def add(self, layer: Any) -> None:
        """Appends `layer`; a built model is rebuilt (keeping its weights) on its next use."""
        if not isinstance(layer, layers_module.Layer):
            raise TypeError(
                "Received an invalid value for argument `layer`: expected a fastrnn layer "
                f"(fastrnn.layers.*), got {type(layer).__name__}."
            )
        if any(layer is other for other in self._layers):
            raise ValueError(f"Layer `{layer.name}` is already in model `{self.name}`.")
        self._layers.append(layer)
        if self.built:
            self.built = False

    @property
    def input_shape(self) -> Optional[tuple]:
        """The built input shape, with the batch axis as None."""
        return None if self._build_shape is None else (None, *self._build_shape)

    @property
    def output_shape(self) -> Optional[tuple]:
        """The output shape, with the batch axis as None."""
        return None if self._output_shape is None else (None, *self._output_shape)

    def build(self, input_shape: Optional[tuple] = None) -> None:
        """Builds every layer and packs all weights into one flat buffer.

        Args:
            input_shape: without the batch axis, e.g. ``(None, 1)`` for univariate series of
                any length; a leading None (batch) is accepted and dropped when its length is
                one more than the first layer's declared shape. Defaults to the first layer's
                ``input_shape``.
        """
        if not self._layers:
            raise ValueError(f"Model `{self.name}` has no layers: add layers before building.")
        first = self._layers[0]
        declared = first.input_shape  # the declared shape before build, the built one after
        if input_shape is None:
            if declared is None:
                raise ValueError(
                    f"Model `{self.name}` cannot be built: its first layer `{first.name}` has no "
                    "`input_shape`; pass one to build() or call fit/predict on data."
                )
            input_shape = declared
            spec = tuple(declared)
        else:
            input_shape = tuple(input_shape)
            if input_shape and input_shape[0] is None and declared is not None and len(
                    input_shape) == len(declared) + 1:
                input_shape = input_shape[1:]
            spec = tuple(input_shape)
        self._build_from(tuple(input_shape), spec)

    def _build_from(self, shape: tuple, spec: tuple) -> None:
        shape = tuple(None if d is None else int(d) for d in shape)
        dtypes = {np.dtype(layer.dtype) for layer in self._layers}
        if len(dtypes) != 1:
            raise ValueError(
                f"Model `{self.name}`: every layer must have the same dtype, got "
                f"{sorted(d.name for d in dtypes)}."
            )
        current = shape
        output_shapes = []
        for i, layer in enumerate(self._layers):
            if not layer.built:
                # Each layer gets its own stream, derived from the model's seed and its index.
                layer.rng = np.random.default_rng(
                    np.random.SeedSequence(self._seed_sequence.entropy, spawn_key=(i,)))
                layer.build(current)
            elif layer.input_shape is not None and len(layer.input_shape) != len(current):
                raise ValueError(
                    f"Layer `{layer.name}` was built for inputs {_shape_str(layer.input_shape)} "
                    f"but receives {_shape_str(current)} in model `{self.name}`."
                )
            current = tuple(layer.compute_output_shape(current))
            output_shapes.append(current)
        for i, layer in enumerate(self._layers):
            layer.input_grad_needed = i > 0  # nothing consumes the first layer's d_x
        self._layer_output_shapes = output_shapes
        self._build_shape = shape
        self._input_spec = spec
        self._output_shape = current
        self._dtype = dtypes.pop()
        self._pack_weights()
        self.built = True

    def _pack_weights(self) -> None:
        """One flat parameter buffer and one flat gradient buffer; layers get views."""
        per_layer = [(layer.weights, layer.grads) for layer in self._layers]
        total = sum(w.size for ws, _ in per_layer for w in ws)
        params = _aligned_zeros(total, self._dtype)
        grads = _aligned_zeros(total, self._dtype)
        param_views, grad_views = [], []
        offset = 0
        for layer, (ws, _) in zip(self._layers, per_layer):
            pv, gv = [], []
            for w in ws:
                pv.append(params[offset:offset + w.size].reshape(w.shape))
                gv.append(grads[offset:offset + w.size].reshape(w.shape))
                offset += w.size
            layer._bind(pv, gv)
            param_views.extend(pv)
            grad_views.extend(gv)
        self._param_buffer, self._grad_buffer = params, grads
        self._param_views, self._grad_views = param_views, grad_views

    def _ensure_built(self, x: np.ndarray) -> None:
        if self.built:
            return
        first = self._layers[0] if self._layers else None
        if first is not None and first.input_shape is not None:
            self.build()
        else:
            if not self._layers:
                raise ValueError(f"Model `{self.name}` has no layers: add layers first.")
            shape = tuple(x.shape[1:])
            # Built from data: only the feature axis is fixed when every layer allows it, so a
            # recurrent model accepts other sequence lengths later, as with
            # input_shape=[None, F]; otherwise (e.g. Flatten) the data's full shape.
            relaxed = (None,) * (len(shape) - 1) + shape[-1:]
            try:
                current = relaxed
                for layer in self._layers:
                    current = tuple(layer.compute_output_shape(current))
            except (ValueError, TypeError):
                relaxed = shape
            self._build_from(relaxed, relaxed)

    def _require_built(self, what: str) -> None:
        if not self.built:
            raise ValueError(
                f"Model `{self.name}` has not been built yet, so {what} is not available: "
                "call build(input_shape), fit or predict first, or give the first layer an "
                "`input_shape`."
            )

    def count_params(self) -> int:
        """The number of scalar parameters."""
        self._require_built("count_params()")
        return int(self._param_buffer.size)

    def summary(self, print_fn: Optional[Callable[[str], Any]] = print) -> str:
        """Prints (with `print_fn`; None: not at all) and returns a Keras-like table of layers,
        output shapes and parameter counts."""
        if not self.built and self._layers and self._layers[0].input_shape is not None:
            self.build()
        self._require_built("summary()")
        widths = (33, 27, 12)
        rule = "_" * sum(widths)

        def row(*cells: str) -> str:
            return "".join(c[:w - 1].ljust(w) for c, w in zip(cells, widths)).rstrip()

        lines = [f'Model: "{self.name}"', rule, row("Layer (type)", "Output Shape", "Param #"),
                 "=" * sum(widths)]
        for k, (layer, shape) in enumerate(zip(self._layers, self._layer_output_shapes)):
            lines.append(row(f"{layer.name} ({type(layer).__name__})",
                             _shape_str((None, *shape)), f"{layer.count_params():,}"))
            lines.append("" if k < len(self._layers) - 1 else "=" * sum(widths))
        total = self.count_params()
        trainable = sum(layer.count_params() for layer in self._layers if layer.trainable)
        lines += [f"Total params: {total:,}", f"Trainable params: {trainable:,}",
                  f"Non-trainable params: {total - trainable:,}", rule]
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text

    # ------------------------------------------------------------------ weights
    def get_weights(self) -> list[np.ndarray]:
        """Copies of every weight, layer by layer, in Keras order."""
        self._require_built("get_weights()")
        return [v.copy() for v in self._param_views]

    def set_weights(self, weights: list) -> None:
        """Sets every weight from a list shaped like :meth:`get_weights`'s."""
        self._require_built("set_weights()")
        if len(weights) != len(self._param_views):
            raise ValueError(
                f"Model `{self.name}` expects {len(self._param_views)} weight arrays, got "
                f"{len(weights)}."
            )
        arrays = [np.asarray(w) for w in weights]
        for k, (view, a) in enumerate(zip(self._param_views, arrays)):
            if a.shape != view.shape:
                raise ValueError(
                    f"Model `{self.name}`: weight {k} has shape {view.shape}, the value given "
                    f"has shape {a.shape}."
                )
        for view, a in zip(self._param_views, arrays):
            view[...] = a

    def save_weights(self, path: str) -> None:
        """Writes the weights to an ``.npz`` file at exactly `path` (written atomically)."""
        self._require_built("save_weights()")
        saving.save_weights_file(path, self.get_weights(), self._weight_names())

    def load_weights(self, path: str) -> None:
        """Reads weights written by :meth:`save_weights` (or inside a :meth:`save` archive)."""
        self._require_built("load_weights()")
        self.set_weights(saving.load_weights_file(path))

    def _weight_names(self) -> list[str]:
        return [f"{layer.name}/{n}" for layer in self._layers for n in layer.weight_names]

    def reset_states(self) -> None:
        """Clears the carried state of every stateful layer."""
        for layer in self._layers:
            layer.reset_states()

    # ------------------------------------------------------------------ compile
    def compile(self, optimizer: Any = "rmsprop", loss: Any = None,
                metrics: Optional[list] = None) -> None:
        """Sets the optimizer, the loss and the metrics (names, objects or callables).

        Args:
            optimizer: a name ("adam", "sgd", "rmsprop") or a fastrnn optimizer.
            loss: a name ("mse", "mae", "huber", "binary_crossentropy",
                "sparse_categorical_crossentropy", ...) or a fastrnn loss.
            metrics: names or callables ``f(y_true, y_pred) -> float``; each is reported in
                the history under its name (the string given, or the function's name).
        """
        if loss is None:
            raise ValueError(
                "Received an invalid value for argument `loss`: expected a loss name such as "
                "'mse' or a fastrnn loss, got None."
            )
        if metrics is not None and (isinstance(metrics, (str, bytes)) or callable(metrics)):
            metrics = [metrics]
        metrics = list(metrics or [])
        self.optimizer = optimizers_module.get(optimizer)
        self.loss = losses_module.get(loss)
        self._loss_id = loss
        self._metrics: list = []
        self._metric_names: list[str] = []
        self._metric_ids = metrics
        for m in metrics:
            metric = metrics_module.get(m)
            name = m if isinstance(m, str) else metric.name
            if name in self._metric_names or name == "loss":
                raise ValueError(f"Metric name {name!r} appears twice (or clashes with 'loss').")
            self._metrics.append(metric)
            self._metric_names.append(name)
        self._sparse_labels = "sparse" in str(getattr(self.loss, "name", ""))
        self.compiled = True

    @property
    def metrics_names(self) -> list[str]:
        """``["loss", *metric names]``, the order :meth:`evaluate` returns."""
        return ["loss", *(self._metric_names if self.compiled else [])]

    def _require_compiled(self, what: str) -> None:
        if not self.compiled:
            raise ValueError(
                f"Model `{self.name}` must be compiled before {what}: call "
                "model.compile(optimizer=..., loss=...) first."
            )

    # ------------------------------------------------------------------ input checks
    def _check_x(self, x: ArrayLike, name: str = "x") -> np.ndarray:
        """`x` as an array the first layer takes (float in the model's dtype, or ints for an
        Embedding); builds the model if needed; checks rank and fixed dimensions."""
        if x is None:
            raise ValueError(f"Received no data for argument `{name}`: expected an array.")
        a = np.asarray(x)
        if a.dtype.kind not in "biuf":
            raise ValueError(
                f"Received an invalid value for argument `{name}`: expected a numeric array, "
                f"got dtype {a.dtype}."
            )
        if a.ndim < 2:
            raise ValueError(
                f"Received an invalid value for argument `{name}`: expected an array of shape "
                f"(samples, ...) with at least 2 dimensions, got shape {a.shape}."
            )
        if a.shape[0] == 0:
            raise ValueError(
                f"Received an empty array for argument `{name}` (shape {a.shape}): expected at "
                "least one sample."
            )
        self._ensure_built(a)
        spec = self._input_spec
        if a.ndim != len(spec) + 1:
            raise ValueError(
                f"Received an invalid value for argument `{name}`: model `{self.name}` expects "
                f"inputs of rank {len(spec) + 1}, shape {_shape_str((None, *spec))}, got an "
                f"array of shape {a.shape}."
            )
        mismatch = first_shape_mismatch(spec, a.shape)
        if mismatch is not None:
            axis, want, got = mismatch
            what = "features" if axis == a.ndim - 1 else f"entries on axis {axis}"
            raise ValueError(
                f"Received an invalid value for argument `{name}`: model `{self.name}` was "
                f"built for inputs {_shape_str((None, *spec))} ({want} {what}), got an "
                f"array of shape {a.shape} ({got} {what})."
            )
        if type(self._layers[0]).__name__ == "Embedding" and a.dtype.kind in "biu":
            return np.ascontiguousarray(a)
        return np.ascontiguousarray(a, dtype=self._dtype)

    def _check_y(self, y: ArrayLike, n: int, name: str = "y") -> np.ndarray:
        """`y` checked against the model's output shape (and label range for sparse CE)."""
        if y is None:
            raise ValueError(f"Received no data for argument `{name}`: expected an array of "
                             f"targets with {n} samples.")
        a = np.asarray(y)
        if a.dtype.kind not in "biuf":
            raise ValueError(
                f"Received an invalid value for argument `{name}`: expected a numeric array, "
                f"got dtype {a.dtype}."
            )
        if a.ndim == 0 or a.shape[0] != n:
            raise ValueError(
                f"Received inconsistent data sizes: x has {n} samples but `{name}` has "
                f"{a.shape[0] if a.ndim else 'no'} (shape {a.shape}); expected the same number."
            )
        out = self._output_shape
        if self._sparse_labels:
            classes = out[-1]
            want = out[:-1]
            if a.shape[1:] != tuple(want) and a.shape[1:] != (*want, 1) and not (
                    None in want and a.ndim - 1 in (len(want), len(want) + 1)):
                raise ValueError(
                    f"Received an invalid value for argument `{name}`: sparse labels for output "
                    f"{_shape_str((None, *out))} must have shape {_shape_str((None, *want))}, "
                    f"got {a.shape}."
                )
            if a.dtype.kind == "f" and not np.all(np.floor(a) == a):
                raise ValueError(
                    f"Received an invalid value for argument `{name}`: sparse categorical labels "
                    "must be integers (class indices)."
                )
            lo, hi = a.min(), a.max()
            if lo < 0 or hi >= classes:
                raise ValueError(
                    f"Received an invalid value for argument `{name}`: labels must be class "
                    f"indices in [0, {classes - 1}] for an output of {classes} classes, got "
                    f"values in [{lo}, {hi}]."
                )
            if a.shape[1:] == (*want, 1) and None not in want:
                a = a.reshape(a.shape[:-1])
            return np.ascontiguousarray(a, dtype=np.int64)
        fits = a.ndim - 1 == len(out) and all(
            w is None or w == g for w, g in zip(out, a.shape[1:]))
        if not fits:
            # As Keras: a missing or extra trailing axis of length 1, e.g. (N,) for (N, 1).
            if a.shape[1:] + (1,) == tuple(out):
                a = a.reshape((n, *out))
            elif a.shape[1:] == (*out, 1):
                a = a.reshape(a.shape[:-1])
            else:
                raise ValueError(
                    f"Received an invalid value for argument `{name}`: model `{self.name}` "
                    f"outputs {_shape_str((None, *out))}, so targets must have that shape, got "
                    f"{a.shape}."
                )
        return np.ascontiguousarray(a, dtype=self._dtype)

    # ------------------------------------------------------------------ inference
    def _forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        for layer in self._layers:
            x = layer.forward(x, training=training)
        return x

    def __call__(self, x: ArrayLike, training: bool = False) -> np.ndarray:
        """The model's output on `x` in one batch: ``(N, *output_shape)``."""
        return np.array(self._forward(self._check_x(x), training=training))

    def _stateful(self) -> bool:
        return any(getattr(layer, "stateful", False) for layer in self._iter_all_layers())

    def _iter_all_layers(self) -> Iterable:
        stack = list(self._layers)
        while stack:
            layer = stack.pop()
            yield layer
            for attr in ("layer", "forward_layer", "backward_layer"):
                inner = getattr(layer, attr, None)
                if isinstance(inner, layers_module.Layer):
                    stack.append(inner)

    def _inference_batch(self, batch_size: int) -> int:
        # Stateful layers carry a state per batch row, so they need the batch size they run with.
        return batch_size if self._stateful() else max(batch_size, _MIN_INFERENCE_BATCH)

    def _predict_arrays(self, x: np.ndarray, batch_size: int,
                        out: Optional[np.ndarray] = None) -> np.ndarray:
        """Forward passes over `x` in batches, written into `out` (allocated if None)."""
        n = x.shape[0]
        for start in range(0, n, batch_size):
            y = self._forward(x[start:start + batch_size], training=False)
            if out is None:
                out = np.empty((n, *y.shape[1:]), dtype=y.dtype)
            out[start:start + batch_size] = y
        return out

    def predict(self, x: ArrayLike, batch_size: int = 32, verbose: int = 0) -> np.ndarray:
        """Model outputs ``(N, *output_shape)`` for inputs `x` (an array, or an iterable of
        batches or of (x, y) batches). Large batches are used unless a layer is stateful."""
        batch_size = self._check_batch_size(batch_size)
        if _is_dataset(x):
            parts = [self._forward(self._check_x(b[0] if isinstance(b, tuple) else b,
                                                 "x batch"), training=False).copy()
                     for b in x]
            if not parts:
                raise ValueError("Received an empty dataset for argument `x`.")
            return np.concatenate(parts, axis=0)
        xa = self._check_x(x)
        if self._stateful() and xa.shape[0] % batch_size:
            raise self._stateful_batch_error(xa.shape[0], batch_size, "predict")
        return self._predict_arrays(xa, self._inference_batch(batch_size))

    def _scores(self, y: np.ndarray, pred: np.ndarray) -> list[float]:
        loss, _ = self.loss.value_and_gradient(y, pred)
        return [float(loss), *(float(m(y, pred)) for m in self._metrics)]

    def evaluate(self, x: ArrayLike = None, y: ArrayLike = None, batch_size: int = 32,
                 verbose: int = 0) -> Union[float, list[float]]:
        """The loss on (x, y), or ``[loss, *metrics]`` when the model has metrics (Keras's
        convention). `x` may also be an iterable of (x, y) batches."""
        self._require_compiled("evaluate()")
        batch_size = self._check_batch_size(batch_size)
        if _is_dataset(x):
            scores = self._evaluate_dataset(x)
        else:
            xa = self._check_x(x)
            ya = self._check_y(y, xa.shape[0])
            if self._stateful() and xa.shape[0] % batch_size:
                raise self._stateful_batch_error(xa.shape[0], batch_size, "evaluate")
            pred = self._predict_arrays(xa, self._inference_batch(batch_size))
            scores = self._scores(ya, pred)
        if verbose:
            print(_format_logs_fixed(dict(zip(self.metrics_names, scores))))
        return scores[0] if not self._metrics else scores

    def _evaluate_dataset(self, dataset: Iterable) -> list[float]:
        totals = None
        count = 0
        for batch in dataset:
            xb, yb = self._split_batch(batch)
            pred = self._forward(xb, training=False)
            s = np.asarray(self._scores(yb, pred)) * xb.shape[0]
            totals = s if totals is None else totals + s
            count += xb.shape[0]
        if not count:
            raise ValueError("Received an empty dataset: expected at least one (x, y) batch.")
        return [float(v) for v in totals / count]

    def _split_batch(self, batch: Any) -> tuple[np.ndarray, np.ndarray]:
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise ValueError(
                "Received an invalid batch from the dataset: expected (x, y) pairs, got "
                f"{type(batch).__name__}."
            )
        xb = self._check_x(batch[0], "x batch")
        return xb, self._check_y(batch[1], xb.shape[0], "y batch")

    # ------------------------------------------------------------------ training
    @staticmethod
    def _check_batch_size(batch_size: Any) -> int:
        if isinstance(batch_size, (bool, np.bool_)) or not isinstance(
                batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(
                "Received an invalid value for argument `batch_size`: expected a positive "
                f"integer, got {batch_size!r}."
            )
        return int(batch_size)

    def _stateful_batch_error(self, n: int, batch_size: int, what: str) -> ValueError:
        return ValueError(
            f"Model `{self.name}` has stateful layers, which carry one state per batch row, so "
            f"{what} needs every batch to have the same size: the number of samples ({n}) must "
            f"be a multiple of batch_size ({batch_size})."
        )

    def _set_truncation(self, truncate_bptt: Optional[int]) -> list:
        """Sets `truncate` on every recurrent layer; returns what to restore afterwards."""
        if truncate_bptt is None:
            return []
        if isinstance(truncate_bptt, (bool, np.bool_)) or not isinstance(
                truncate_bptt, (int, np.integer)) or truncate_bptt < 1:
            raise ValueError(
                "Received an invalid value for argument `truncate_bptt`: expected None or a "
                f"positive integer, got {truncate_bptt!r}."
            )
        targets = [layer for layer in self._iter_all_layers() if hasattr(layer, "truncate_bptt")]
        if not targets:
            raise ValueError(
                f"Received `truncate_bptt` but model `{self.name}` has no recurrent layer to "
                "truncate."
            )
        saved = [(layer, layer.truncate_bptt) for layer in targets]
        for layer in targets:
            layer.truncate_bptt = int(truncate_bptt)
        return saved

    def _make_callbacks(self, user: Optional[list]) -> tuple[list, Any]:
        cbs = list(user or [])
        for cb in cbs:
            if not isinstance(cb, callbacks_module.Callback):
                raise TypeError(
                    "Received an invalid value for argument `callbacks`: expected fastrnn "
                    f"callbacks (fastrnn.callbacks.Callback), got {type(cb).__name__}."
                )
        if not any(isinstance(cb, callbacks_module.TerminateOnNaN) for cb in cbs):
            cbs.append(callbacks_module.TerminateOnNaN())
        history = callbacks_module.History()
        cbs.append(history)
        for cb in cbs:
            if hasattr(cb, "set_model"):
                cb.set_model(self)
            else:
                cb.model = self
        return cbs, history

    def fit(
        self,
        x: ArrayLike = None,
        y: ArrayLike = None,
        batch_size: int = 32,
        epochs: int = 1,
        verbose: int = 1,
        callbacks: Optional[list] = None,
        validation_split: float = 0.0,
        validation_data: Any = None,
        shuffle: bool = True,
        initial_epoch: int = 0,
        truncate_bptt: Optional[int] = None,
        validation_batch_size: Optional[int] = None,
    ) -> Any:
        """Trains the model; returns a ``History`` (``history.history["loss"]``, ...).

        Args:
            x: inputs ``(N, T, F)`` or ``(N, F)``, or an iterable of (x, y) batches (then `y`
                is None, batches come as the iterable gives them and `batch_size`,
                `shuffle` and `validation_split` do not apply).
            y: targets ``(N, *output_shape)``; integer class indices for sparse CE.
            batch_size: samples per gradient step; the last batch of an epoch may be smaller.
            epochs: train until this epoch index (counting from `initial_epoch`).
            verbose: 0 silent, 1 a progress bar per epoch, 2 one line per epoch.
            callbacks: fastrnn callbacks; ``TerminateOnNaN`` is added unless present.
            validation_split: the fraction in [0, 1) of the *last* samples held out (before
                shuffling), as in Keras; ignored when `validation_data` is given.
            validation_data: ``(x_val, y_val)`` or an iterable of (x, y) batches; evaluated
                once per epoch.
            shuffle: reshuffle the samples each epoch (ignored with stateful layers, which
                need their batches in order).
            initial_epoch: the epoch to start from (resuming a run).
            truncate_bptt: None (full backpropagation through time) or k: recurrent layers
                backpropagate through at most about k steps (sets each recurrent layer's
                ``truncate_bptt`` for the duration of this fit).
            validation_batch_size: rows per inference batch for validation (default: at least
                1024, or `batch_size` with stateful layers).

        A NaN/inf loss stops training before that batch's update, so the weights are those
        from before it; ``model.stop_reason`` (and ``history.stop_reason``) says why.
        """
        self._require_compiled("fit()")
        batch_size = self._check_batch_size(batch_size)
        for name, value, lo in (("epochs", epochs, 0), ("initial_epoch", initial_epoch, 0)):
            if isinstance(value, (bool, np.bool_)) or not isinstance(
                    value, (int, np.integer)) or value < lo:
                raise ValueError(
                    f"Received an invalid value for argument `{name}`: expected a non-negative "
                    f"integer, got {value!r}."
                )
        if verbose not in (0, 1, 2):
            raise ValueError(
                f"Received an invalid value for argument `verbose`: expected 0, 1 or 2, got "
                f"{verbose!r}."
            )
        if isinstance(validation_split, (bool, np.bool_)) or not isinstance(
                validation_split, (int, float, np.number)) or not 0.0 <= validation_split < 1.0:
            raise ValueError(
                "Received an invalid value for argument `validation_split`: expected a float "
                f"in [0, 1), got {validation_split!r}."
            )
        dataset = _is_dataset(x)
        if dataset:
            if y is not None:
                raise ValueError(
                    "Received `y` together with a dataset `x`: a dataset yields (x, y) batches, "
                    "so pass y=None."
                )
            if validation_split:
                raise ValueError(
                    "`validation_split` needs arrays; with a dataset pass `validation_data`."
                )
            train = None
        else:
            xa = self._check_x(x)
            ya = self._check_y(y, xa.shape[0])
            train = (xa, ya)
            if validation_split and validation_data is None:  # validation_data overrides it
                n_val = int(math.floor(xa.shape[0] * validation_split))
                if n_val < 1 or n_val >= xa.shape[0]:
                    raise ValueError(
                        f"validation_split={validation_split} of {xa.shape[0]} samples leaves "
                        f"{n_val} validation and {xa.shape[0] - n_val} training samples; "
                        "expected at least one of each."
                    )
                validation_data = (xa[-n_val:], ya[-n_val:])
                train = (xa[:-n_val], ya[:-n_val])
        val = self._check_validation(validation_data)

        stateful = self._stateful()
        if stateful and train is not None and train[0].shape[0] % batch_size:
            raise self._stateful_batch_error(train[0].shape[0], batch_size, "fit")
        val_batch = validation_batch_size or self._inference_batch(batch_size)
        val_batch = self._check_batch_size(val_batch)
        if stateful and val is not None and not _is_dataset(val) and val[0].shape[0] % val_batch:
            raise self._stateful_batch_error(val[0].shape[0], val_batch, "validation")

        cbs, history = self._make_callbacks(callbacks)
        self.history = history
        self._val_buffer = None
        self.stop_training = False
        self.stop_reason = None
        steps = (len(x) if hasattr(x, "__len__") else None) if dataset else math.ceil(
            train[0].shape[0] / batch_size)
        params = {"epochs": epochs, "steps": steps, "verbose": verbose,
                  "batch_size": batch_size}
        for cb in cbs:
            if hasattr(cb, "set_params"):
                cb.set_params(params)
        restore = self._set_truncation(truncate_bptt)
        try:
            for cb in cbs:
                cb.on_train_begin({})
            for epoch in range(initial_epoch, epochs):
                for cb in cbs:
                    cb.on_epoch_begin(epoch, {})
                bar = None
                if verbose == 1:
                    bar = tqdm(total=steps, desc=f"Epoch {epoch + 1}/{epochs}", unit="batch",
                               file=sys.stdout, leave=True, dynamic_ncols=True)
                t0 = time.perf_counter()
                try:
                    if dataset:
                        logs = self._train_epoch_dataset(x, cbs, bar, epoch)
                    else:
                        logs = self._train_epoch_arrays(
                            train[0], train[1], batch_size, shuffle and not stateful, cbs, bar,
                            epoch)
                    if val is not None and logs is not None:
                        logs.update(self._validation_logs(val, val_batch))
                except BaseException:
                    if bar is not None:
                        bar.close()
                    raise
                seconds = time.perf_counter() - t0
                if logs is None:  # stopped inside the epoch (NaN loss)
                    if bar is not None:
                        bar.close()
                    break
                if bar is not None:
                    bar.set_postfix_str(_format_logs_fixed(logs), refresh=False)
                    bar.close()
                elif verbose == 2:
                    print(f"Epoch {epoch + 1}/{epochs} - {seconds:.2f}s - "
                          f"{_format_logs_fixed(logs)}", file=sys.stdout)
                for cb in cbs:
                    cb.on_epoch_end(epoch, logs)
                if self.stop_training:
                    break
            for cb in cbs:
                cb.on_train_end({})
        finally:
            for layer, value in restore:
                layer.truncate_bptt = value
        history.stop_reason = self.stop_reason
        if self.stop_reason and verbose:
            print(f"Training stopped: {self.stop_reason}.", file=sys.stdout)
        return history

    def _check_validation(self, validation_data: Any) -> Any:
        if validation_data is None:
            return None
        if _is_dataset(validation_data):
            return validation_data
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError(
                "Received an invalid value for argument `validation_data`: expected "
                "(x_val, y_val) or an iterable of (x, y) batches, got "
                f"{type(validation_data).__name__}."
            )
        xv = self._check_x(validation_data[0], "validation_data[0]")
        yv = self._check_y(validation_data[1], xv.shape[0], "validation_data[1]")
        return (xv, yv)

    def _validation_logs(self, val: Any, batch_size: int) -> dict:
        if _is_dataset(val):
            scores = self._evaluate_dataset(val)
        else:
            xv, yv = val
            # The predictions' buffer is reused from one epoch to the next.
            buf = getattr(self, "_val_buffer", None)
            if buf is not None and (buf.shape[0] != xv.shape[0] or buf.dtype != self._dtype):
                buf = None
            pred = self._predict_arrays(xv, batch_size, out=buf)
            self._val_buffer = pred
            scores = self._scores(yv, pred)
        return {f"val_{k}": v for k, v in zip(self.metrics_names, scores)}

    def _nan_stop(self, cbs: list, epoch: int, step: int, loss: float, batch_logs: dict) -> None:
        """A non-finite loss: tell the callbacks (TerminateOnNaN stops), make sure we stop."""
        for cb in cbs:
            cb.on_train_batch_end(step, batch_logs)
        self.stop_training = True
        if not self.stop_reason:
            self.stop_reason = (
                f"loss became {loss} at epoch {epoch + 1}, batch {step + 1}; weights from "
                "before it kept"
            )
        if not np.isfinite(self._param_buffer).all():
            self.stop_reason += (
                " (but they already held non-finite values: an earlier update overflowed; "
                "lower the learning rate or clip gradients)"
            )

    def _train_epoch_arrays(self, x: np.ndarray, y: np.ndarray, batch_size: int,
                            shuffle: bool, cbs: list, bar: Any, epoch: int) -> Optional[dict]:
        """One epoch over arrays; returns the epoch's logs, or None if a NaN loss stopped it."""
        n = x.shape[0]
        steps = math.ceil(n / batch_size)
        batch_cbs = _batch_callbacks(cbs)

        if shuffle:
            order = self._shuffle_rng.permutation(n)
            # Batches are gathered into these, allocated once per epoch (the last batch of a
            # ragged epoch uses views of them).
            xbuf = np.empty((batch_size, *x.shape[1:]), dtype=x.dtype)
            ybuf = np.empty((batch_size, *y.shape[1:]), dtype=y.dtype)
        else:
            order = None
        preds = None
        if self._metrics:
            preds = np.empty((n, *self._output_shape_for(x)), dtype=self._dtype)
        total = 0.0
        for step in range(steps):
            start = step * batch_size
            stop = min(start + batch_size, n)
            if order is None:
                xb = x[start:stop]
                yb = y[start:stop]
            else:
                idx = order[start:stop]
                m = stop - start
                xb = xbuf[:m]
                yb = ybuf[:m]
                # mode="clip" skips NumPy's bounds-checked buffering (the indices are valid)
                x.take(idx, axis=0, out=xb, mode="clip")
                y.take(idx, axis=0, out=yb, mode="clip")
            for cb in batch_cbs:
                cb.on_train_batch_begin(step, {})
            result = self._train_step(xb, yb, cbs, epoch, step)
            if result is None:
                return None
            loss, out = result
            total += loss * (stop - start)
            if preds is not None:
                preds[start:stop] = out
            if batch_cbs and self._end_of_batch(batch_cbs, step, loss):
                break
            if bar is not None and bar.update(1):
                bar.set_postfix_str(f"loss: {total / stop:.4f}", refresh=False)
        logs = {"loss": total / stop}
        if preds is not None:
            y_seen = y[:stop] if order is None else y[order[:stop]]
            for name, metric in zip(self._metric_names, self._metrics):
                logs[name] = float(metric(y_seen, preds[:stop]))
        return logs

    def _train_step(self, xb: np.ndarray, yb: np.ndarray, cbs: list, epoch: int,
                    step: int) -> Optional[tuple[float, np.ndarray]]:
        """Forward, loss, backward and one optimizer update on a batch: ``(loss, outputs)``,
        or None when the loss is not finite (training stops with the weights from before)."""
        out = xb
        for layer in self._layers:
            out = layer.forward(out, training=True)
        loss, d = self.loss.value_and_gradient(yb, out)
        loss = float(loss)
        if not math.isfinite(loss):
            self._nan_stop(cbs, epoch, step, loss, {"loss": loss})
            return None
        for layer in reversed(self._layers):
            d = layer.backward(d)
        # (the targets are built by the first batch, so they are looked up each time)
        self.optimizer.apply_gradients(*self._optimizer_targets())
        return loss, out

    def _end_of_batch(self, batch_cbs: list, step: int, loss: float) -> bool:
        """Tells the batch callbacks this batch's loss (fastrnn.callbacks' contract); True
        when one of them stopped training."""
        logs = {"loss": loss}
        for cb in batch_cbs:
            cb.on_train_batch_end(step, logs)
        return self.stop_training

    def _optimizer_targets(self) -> tuple[list, list]:
        """What the optimizer updates: the one flat buffer (one vectorised update), or the
        per-weight views when it clips each array's norm separately (``clipnorm``)."""
        if getattr(self.optimizer, "clipnorm", None):
            return self._param_views, self._grad_views
        return [self._param_buffer], [self._grad_buffer]

    def _output_shape_for(self, x: np.ndarray) -> tuple:
        """The output shape (without batch) for inputs shaped like `x` (fills None lengths)."""
        if None not in self._output_shape:
            return self._output_shape
        shape = tuple(x.shape[1:])
        for layer in self._layers:
            shape = tuple(layer.compute_output_shape(shape))
        return shape

    def _train_epoch_dataset(self, dataset: Iterable, cbs: list, bar: Any,
                             epoch: int) -> Optional[dict]:
        """One epoch over an iterable of (x, y) batches (metrics computed per batch)."""
        batch_cbs = _batch_callbacks(cbs)
        total = 0.0
        metric_totals = [0.0] * len(self._metrics)
        count = 0
        step = -1
        for step, batch in enumerate(dataset):
            xb, yb = self._split_batch(batch)
            for cb in batch_cbs:
                cb.on_train_batch_begin(step, {})
            result = self._train_step(xb, yb, cbs, epoch, step)
            if result is None:
                return None
            loss, out = result
            m = xb.shape[0]
            total += loss * m
            for k, metric in enumerate(self._metrics):
                metric_totals[k] += float(metric(yb, out)) * m
            count += m
            if batch_cbs and self._end_of_batch(batch_cbs, step, loss):
                break
            if bar is not None and bar.update(1):
                bar.set_postfix_str(f"loss: {total / count:.4f}", refresh=False)
        if count == 0:
            raise ValueError(
                "Received an empty dataset for `x`: expected at least one (x, y) batch per "
                "epoch (is it a one-shot iterator that an earlier epoch used up?)."
            )
        logs = {"loss": total / count}
        for name, t in zip(self._metric_names, metric_totals):
            logs[name] = t / count
        return logs

    # ------------------------------------------------------------------ saving
    def get_config(self) -> dict:
        """The architecture: ``{"name", "layers": [serialized layers], "build_input_shape"}``."""
        return {
            "name": self.name,
            "layers": [layers_module.serialize(layer) for layer in self._layers],
            "build_input_shape": None if self._build_shape is None else list(self._build_shape),
        }

    def _get_compile_config(self) -> Optional[dict]:
        if not self.compiled:
            return None
        return {
            "optimizer": _serialize_optimizer(self.optimizer),
            "loss": _serialize_function(self._loss_id, self.loss, "loss"),
            "metrics": [_serialize_function(i, m, "metric")
                        for i, m in zip(self._metric_ids, self._metrics)],
        }

    def save(self, path: str) -> None:
        """Saves architecture, compile config and weights to `path` (see fastrnn.saving).

        `path` becomes one zip archive (any name; ``.fastrnn`` is customary) unless it is an
        existing directory, which then receives ``model.json`` and ``weights.npz``.
        """
        self._require_built("save()")
        config = {
            "format": saving.FORMAT_NAME,
            "format_version": saving.FORMAT_VERSION,
            "class_name": "Sequential",
            "config": self.get_config(),
            "compile_config": self._get_compile_config(),
        }
        saving.save_archive(path, config, self.get_weights(), self._weight_names())


def _serialize_optimizer(optimizer: Any) -> dict:
    if hasattr(optimizers_module, "serialize"):
        return optimizers_module.serialize(optimizer)
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}


def _deserialize_optimizer(config: Any) -> Any:
    if hasattr(optimizers_module, "deserialize"):
        return optimizers_module.deserialize(config)
    cls = getattr(optimizers_module, str(config.get("class_name")), None)
    if not isinstance(cls, type) or not issubclass(cls, optimizers_module.Optimizer):
        raise ValueError(f"Unknown optimizer class {config.get('class_name')!r} in the file.")
    return cls.from_config(config["config"])


def _serialize_function(identifier: Any, obj: Any, what: str) -> Any:
    """Strings stay as given; built-in loss objects keep their config (e.g. ``from_logits``);
    other objects and callables are stored by name (custom ones then need
    ``custom_objects`` when loading)."""
    if isinstance(identifier, str):
        return identifier
    if what == "loss" and isinstance(obj, losses_module.Loss):
        try:
            return {"loss_config": losses_module.serialize(obj)}
        except NotImplementedError:  # a wrapped Python function: stored by name below
            pass
    name = getattr(obj, "name", None) or getattr(identifier, "__name__", None)
    return {"name": str(name), "builtin": _is_builtin(name, what)}


def _is_builtin(name: Any, what: str) -> bool:
    module = losses_module if what == "loss" else metrics_module
    try:
        module.get(name)
    except (ValueError, TypeError, KeyError):
        return False
    return True


def _deserialize_function(value: Any, what: str, custom_objects: dict) -> Any:
    if isinstance(value, str):
        return custom_objects.get(value, value)
    if what == "loss" and isinstance(value, dict) and "loss_config" in value:
        return losses_module.deserialize(value["loss_config"])  # refuses unknown classes
    if not isinstance(value, dict) or "name" not in value:
        raise ValueError(f"Invalid {what} entry in the saved compile config: {value!r}.")
    name = value["name"]
    if name in custom_objects:
        return custom_objects[name]
    if value.get("builtin"):
        return name
    raise ValueError(
        f"The saved model uses a custom {what} {name!r}: pass it when loading, "
        f"load_model(path, custom_objects={{{name!r}: {name}}}), or load with compile=False."
    )


def load_model(path: str, custom_objects: Optional[dict] = None,
               compile: bool = True) -> Sequential:
    """Loads a model written by :meth:`Sequential.save`; never executes code from the file.

    Args:
        path: the zip archive or directory given to ``save``.
        custom_objects: ``{name: function}`` for custom losses/metrics (e.g. the book's
            ``last_time_step_mse``).
        compile: False skips the saved compile config (the model is then only for inference
            or for compiling anew).

    Raises:
        ValueError: unknown format, class or layer names, or mismatched weights.
    """
    config, weights = saving.load_archive(path)
    if config.get("class_name") != "Sequential":
        raise ValueError(
            f"{path!r} holds a model of class {config.get('class_name')!r}; fastrnn can load "
            "'Sequential' models only."
        )
    arch = config.get("config") or {}
    layer_configs = arch.get("layers")
    if not isinstance(layer_configs, list):
        raise ValueError(f"{path!r}: the model config has no list of layers.")
    built_layers = []
    for lc in layer_configs:
        try:
            built_layers.append(layers_module.deserialize(lc))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{path!r}: cannot rebuild layer from {lc!r}: {exc}") from exc
    model = Sequential(built_layers, name=arch.get("name"))
    shape = arch.get("build_input_shape")
    if shape is not None:
        model.build(tuple(shape))
        model.set_weights(weights)
    elif weights:
        raise ValueError(f"{path!r}: weights were saved for a model that was never built.")
    compile_config = config.get("compile_config")
    if compile and compile_config:
        custom = dict(custom_objects or {})
        model.compile(
            optimizer=_deserialize_optimizer(compile_config["optimizer"]),
            loss=_deserialize_function(compile_config["loss"], "loss", custom),
            metrics=[_deserialize_function(m, "metric", custom)
                     for m in compile_config.get("metrics") or []],
        )
    return model
