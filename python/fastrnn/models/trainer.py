"""The training engine: ``compile`` (and the compile config), ``fit``, ``evaluate``,
``predict`` for any model.

It imports no model module. What a model *is* (a chain of layers, a graph) lives in
``sequential.py``, ``functional.py`` and ``model.py``; this file only needs from it: the
checked input arrays (``_check_inputs``), a forward pass (``_run_forward``), a backward pass
(``_run_backward``), its output names and shapes and the flat parameter/gradient buffers.
Every model here has inputs and outputs as *lists* of arrays inside (one entry for a
Sequential); the public methods take and give a single array where the model has a single
input or output, as Keras does.

Shapes: ``x`` is ``(N, T, F)`` for sequences or ``(N, F)`` for vectors (one such array per
model input), ``y`` has each output's shape ``(N, ...)`` (``N`` = samples, ``B`` = batch size).

How ``fit`` stays fast:

* All parameters live in one flat buffer and all gradients in another; every layer computes
  with views into them (``Layer._bind``), so one optimizer call updates the whole model.
* One permutation per epoch; each batch is gathered with ``np.take(..., out=...)`` into arrays
  allocated once per epoch (``min(N, batch_size)`` rows).
* A batch costs the layers' forward/backward, one loss call per output, one optimizer call and
  a few attribute reads. Training metrics are computed once per epoch from the predictions the
  batches already made; validation runs once per epoch in large inference batches.
* Callbacks with batch hooks are only called per batch when they override one.

Data-parallel training (``fastrnn.distributed``) plugs in through one object,
:func:`set_data_parallel`: while it is set, ``fit`` keeps the callbacks that act on this
process (``rank_callbacks``), agrees with the other processes before the first batch
(``begin_fit``), trains on this process's rows of each global batch (``shard``), reduces the
gradient buffer across processes between backward and the update (``forward_backward``,
``batches`` for datasets), and averages the epoch's logs and stop decisions (``average_logs``,
``any``). Unset (the default) none of this runs.
"""

from __future__ import annotations

import itertools
import math
import sys
import time
import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Optional, Union

import numpy as np
from tqdm.auto import tqdm

from .. import callbacks as callbacks_module
from .. import losses as losses_module
from .. import metrics as metrics_module
from .. import optimizers as optimizers_module
from .common import format_logs, is_array_like, is_dataset, is_model, shape_str

__all__ = ["Trainer"]

ArrayLike = Any

# The data-parallel hook (fastrnn.distributed installs it; None: this process trains alone).
_data_parallel: Any = None


def set_data_parallel(hook: Any) -> None:
    """Installs `hook` (None removes it) for every later ``fit`` in this process; see the
    module docstring for the methods ``fit`` calls on it."""
    global _data_parallel
    _data_parallel = hook


# Inference batches (validation, evaluate, predict) are at least this many rows: the layers'
# cost per call is mostly fixed at the book's sizes, so fewer, larger calls are faster.
_MIN_INFERENCE_BATCH = 1024


def _overrides(cb: Any, method: str) -> bool:
    if isinstance(cb, callbacks_module.Callback):
        return callbacks_module.has_hook(cb, method)
    return getattr(type(cb), method, None) is not getattr(callbacks_module.Callback, method, None)


def _batch_callbacks(cbs: list) -> list:
    """The callbacks with per-batch hooks (the training loop itself does TerminateOnNaN's job)."""
    return [cb for cb in cbs
            if not isinstance(cb, callbacks_module.TerminateOnNaN)
            and (_overrides(cb, "on_train_batch_begin") or _overrides(cb, "on_train_batch_end"))]


def check_batch_size(batch_size: Any, name: str = "batch_size") -> int:
    if isinstance(batch_size, (bool, np.bool_)) or not isinstance(
            batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(
            f"Received an invalid value for argument `{name}`: expected a positive "
            f"integer, got {batch_size!r}."
        )
    return int(batch_size)


def _step_mask(masks: Optional[list], k: int, out: np.ndarray) -> Optional[np.ndarray]:
    """Output `k`'s ``(B, T)`` step mask when it applies to a sequence output, else None."""
    if not masks:
        return None
    m = masks[k]
    if m is None or out.ndim < 3 or m.shape != out.shape[:2]:
        return None
    return m.astype(bool, copy=False)


def _gather_masks(acc: Optional[list], batch_masks: Optional[list], n: int,
                  start: int) -> Optional[list]:
    """Copies a batch's output masks into per-output ``(N, T)`` arrays (None: no mask)."""
    if not batch_masks or all(m is None for m in batch_masks):
        return acc
    if acc is None:
        acc = [None if m is None else np.ones((n, *m.shape[1:]), dtype=bool)
               for m in batch_masks]
    for a, m in zip(acc, batch_masks):
        if a is not None and m is not None:
            a[start:start + m.shape[0]] = m
    return acc


def _malformed(where: str, expected: str, got: Any) -> ValueError:
    return ValueError(f"malformed model config at {where}: expected {expected}, got {got!r}.")


def _serialize_function(identifier: Any, obj: Any, what: str) -> Any:
    """A loss or metric for the compile config: strings stay as given; built-in loss objects
    keep their config (e.g. ``from_logits``); other objects and callables are stored by name
    (custom ones then need ``custom_objects`` when loading)."""
    if identifier is None:
        return None
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
    module: Any = losses_module if what == "loss" else metrics_module
    try:
        module.get(name)
    except (ValueError, TypeError, KeyError):
        return False
    return True


def _deserialize_function(value: Any, what: str, custom_objects: dict) -> Any:
    """The inverse of :func:`_serialize_function` (never executes code from a file)."""
    if value is None and what == "loss":
        return None
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


def _check_execution_settings(weighted_metrics: Any, run_eagerly: Any,
                              steps_per_execution: Any, jit_compile: Any,
                              auto_scale_loss: Any) -> None:
    """compile's Keras execution settings: valid values pass (they change nothing)."""
    if weighted_metrics is not None and not (isinstance(weighted_metrics, (list, tuple, dict))
                                             and len(weighted_metrics) == 0):
        raise ValueError(
            "Received `weighted_metrics`: fastrnn's metrics are not weighted by sample_weight; "
            "pass them as `metrics` (the loss is weighted)."
        )
    for name, value in (("run_eagerly", run_eagerly), ("auto_scale_loss", auto_scale_loss)):
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"Received an invalid value for argument `{name}`: expected True "
                             f"or False, got {value!r}.")
    if jit_compile not in (True, False, "auto"):
        raise ValueError("Received an invalid value for argument `jit_compile`: expected True, "
                         f"False or 'auto', got {jit_compile!r}.")
    check_batch_size(steps_per_execution, "steps_per_execution")


def _steps(value: Any, name: str) -> Optional[int]:
    """None or a positive integer (fit/evaluate/predict's step limits)."""
    return None if value is None else check_batch_size(value, name)


def _limit(dataset: Iterable, steps: Optional[int]) -> Iterable:
    """The first `steps` batches of `dataset` (all of them for None)."""
    return dataset if steps is None else _Limited(dataset, steps)


class _Limited:
    """The first `steps` batches of an iterable, again at each pass (a validation set read
    every epoch); ``given`` counts what the last pass gave."""

    def __init__(self, source: Iterable, steps: int):
        self.source, self.steps, self.given = source, steps, 0

    def __iter__(self) -> Any:
        self.given = 0
        for batch in itertools.islice(self.source, self.steps):
            self.given += 1
            yield batch


class _Compiled:
    """What ``compile`` decided, validated as a whole before the model keeps it."""

    def __init__(self, optimizer: Any, losses: list, loss_ids: list, loss_weights: list,
                 metrics: list, metric_ids: list, metric_names: list, loss_names: list):
        self.optimizer = optimizer
        self.losses = losses            # one Loss (or None: not trained) per output
        self.loss_ids = loss_ids
        self.loss_weights = loss_weights
        self.metrics = metrics          # per output: a list of Metric
        self.metric_ids = metric_ids
        self.metric_names = metric_names  # per output: the names in the logs
        self.loss_names = loss_names    # per output: "<output>_loss" (multi-output only)


class Trainer:
    """Mixin with the training engine; see the module docstring for what a model provides."""

    _data_parallel: Any = None  # the hook, while a data-parallel fit runs

    if TYPE_CHECKING:  # what a model gives the engine (Model and Sequential define these)
        name: str
        _dtype: np.dtype
        _output_names: list[str]
        _output_masks: list
        _param_buffer: Optional[np.ndarray]
        _grad_buffer: Optional[np.ndarray]
        _param_views: list[np.ndarray]
        _grad_views: list[np.ndarray]
        _packed_ids: tuple
        _shuffle_rng: np.random.Generator
        # what the engine keeps between calls
        stop_reason: Optional[str]
        _val_buffer: Optional[list]
        _reg_cache: Optional[tuple]
        _flags_cache: Optional[tuple]

        @property
        def _output_shapes(self) -> list[tuple]: ...
        def _check_inputs(self, x: Any, name: str = "x") -> list[np.ndarray]: ...
        def _run_forward(self, xs: list, training: bool) -> list: ...
        def _run_backward(self, d_outputs: list) -> None: ...
        def _output_shapes_for(self, xs: list) -> list[tuple]: ...
        def _unique_layers(self) -> list: ...
        def _iter_all_layers(self) -> list: ...
        def _ensure_packed(self) -> None: ...

    # ------------------------------------------------------------------ compile
    def compile(self, optimizer: Any = "rmsprop", loss: Any = None,
                metrics: Any = None, loss_weights: Any = None, weighted_metrics: Any = None,
                run_eagerly: bool = False, steps_per_execution: int = 1,
                jit_compile: Any = "auto", auto_scale_loss: bool = True) -> None:
        """Sets the optimizer, the loss(es) and the metrics (names, objects or callables).

        Args:
            optimizer: a name ("adam", "sgd", "rmsprop") or a fastrnn optimizer.
            loss: a name ("mse", "mae", "huber", "binary_crossentropy",
                "sparse_categorical_crossentropy", ...) or a fastrnn loss; for a model with
                several outputs one loss for all, a list (one per output) or a dict keyed by
                output name (outputs left out, or given None, are not trained by a loss).
            metrics: names or callables ``f(y_true, y_pred) -> float``; each is reported in
                the history under its name (with several outputs ``"<output>_<name>"``); a
                list applies to every output, a list of lists or a dict picks per output.
            loss_weights: with several outputs, a list or dict of factors; the total loss is
                the weighted sum of the outputs' losses.
            weighted_metrics: not supported: fastrnn's metrics are not weighted by
                ``sample_weight`` (pass them as `metrics`); anything but None or an empty list
                is refused.
            run_eagerly, steps_per_execution, jit_compile, auto_scale_loss: Keras's execution
                settings, accepted (and checked) so Keras code runs; they change nothing here:
                every step runs in fastrnn's C++ core, in float32 or float64 as the model is.

        Nothing changes unless every argument is valid (a failed compile leaves the model,
        its optimizer state and its compiled status as they were).
        """
        _check_execution_settings(weighted_metrics, run_eagerly, steps_per_execution,
                                  jit_compile, auto_scale_loss)
        compiled = self._validate_compile(optimizer, loss, metrics, loss_weights)
        self.optimizer = compiled.optimizer
        self._compiled = compiled
        self.loss = compiled.losses[0] if len(compiled.losses) == 1 else compiled.losses
        self._loss_id = compiled.loss_ids[0] if len(compiled.loss_ids) == 1 else compiled.loss_ids
        self.compiled = True

    def get_compile_config(self) -> Optional[dict]:
        """What ``compile`` was given, JSON-ready (None for a model never compiled):
        ``{"optimizer", "loss", "metrics", "loss_weights"}`` (Keras 3's name)."""
        if not getattr(self, "compiled", False):
            return None
        c = self._compiled
        multi = len(c.losses) > 1
        losses = [_serialize_function(i, fn, "loss") for i, fn in zip(c.loss_ids, c.losses)]
        metrics = [[_serialize_function(i, m, "metric") for i, m in zip(ids, objs)]
                   for ids, objs in zip(c.metric_ids, c.metrics)]
        return {
            "optimizer": optimizers_module.serialize(self.optimizer),
            "loss": losses if multi else losses[0],
            "metrics": metrics if multi else metrics[0],
            "loss_weights": c.loss_weights if multi else None,
        }

    def compile_from_config(self, config: Any, custom_objects: Optional[dict] = None) -> None:
        """Compiles as a :meth:`get_compile_config` dict says (Keras 3's name); custom losses
        and metrics are found in `custom_objects` by name. A malformed entry raises one
        ``ValueError`` naming it."""
        custom = dict(custom_objects or {})
        if not isinstance(config, dict):
            raise _malformed("compile_config", "an object", config)
        opt = config.get("optimizer")
        if not (isinstance(opt, dict) and isinstance(opt.get("class_name"), str)
                and isinstance(opt.get("config"), dict)):
            raise _malformed("compile_config.optimizer",
                             'an object {"class_name": ..., "config": {...}}', opt)
        loss = config.get("loss")
        metrics = config.get("metrics")
        if metrics is None:
            metrics = []
        if not isinstance(metrics, list):
            raise _malformed("compile_config.metrics", "a list", metrics)
        weights = config.get("loss_weights")
        if weights is not None and not (isinstance(weights, (list, dict))):
            raise _malformed("compile_config.loss_weights", "null, a list or an object",
                             weights)
        try:
            if isinstance(loss, list):
                if not all(ms is None or isinstance(ms, list) for ms in metrics):
                    raise _malformed("compile_config.metrics", "a list per output", metrics)
                loss = [_deserialize_function(v, "loss", custom) for v in loss]
                metrics = [[_deserialize_function(m, "metric", custom) for m in ms or []]
                           for ms in metrics]
            else:
                loss = _deserialize_function(loss, "loss", custom)
                metrics = [_deserialize_function(m, "metric", custom) for m in metrics]
            optimizer = optimizers_module.deserialize(opt, custom)
        except (TypeError, KeyError, AttributeError, NotImplementedError, OverflowError,
                ValueError) as exc:
            if str(exc).startswith("malformed model config"):
                raise
            raise ValueError(f"malformed model config at compile_config: {exc}") from exc
        try:
            self.compile(optimizer=optimizer, loss=loss, metrics=metrics,
                         loss_weights=weights)
        except (TypeError, KeyError, AttributeError, NotImplementedError, ValueError) as exc:
            raise ValueError(f"malformed model config at compile_config: {exc}") from exc

    def _per_output(self, value: Any, what: str, default: Any) -> list:
        """`value` (one for all, a list or a dict by output name) as one entry per output."""
        names = self._output_names
        n = len(names)
        if isinstance(value, dict):
            unknown = sorted(set(value) - set(names))
            if unknown:
                raise ValueError(
                    f"Received an invalid value for argument `{what}`: unknown output name(s) "
                    f"{unknown}; model `{self.name}` has outputs {names}."
                )
            return [value.get(name, default) for name in names]
        if isinstance(value, (list, tuple)) and n > 1:
            if len(value) != n:
                raise ValueError(
                    f"Received an invalid value for argument `{what}`: model `{self.name}` has "
                    f"{n} outputs {names}, got a list of {len(value)}."
                )
            return list(value)
        return [value] * n

    def _validate_compile(self, optimizer: Any, loss: Any, metrics: Any,
                          loss_weights: Any) -> _Compiled:
        if loss is None:
            raise ValueError(
                "Received an invalid value for argument `loss`: expected a loss name such as "
                "'mse' or a fastrnn loss, got None."
            )
        multi = len(self._output_names) > 1
        loss_ids = self._per_output(loss, "loss", None)
        if all(i is None for i in loss_ids):
            raise ValueError(
                "Received an invalid value for argument `loss`: no output of model "
                f"`{self.name}` got a loss."
            )
        losses = [None if i is None else losses_module.get(i) for i in loss_ids]
        if loss_weights is None:
            weights = [1.0] * len(losses)
        else:
            weights = self._per_output(loss_weights, "loss_weights", 1.0)
            for w in weights:
                if isinstance(w, bool) or not isinstance(w, (int, float, np.number)) \
                        or not math.isfinite(float(w)):
                    raise ValueError(
                        "Received an invalid value for argument `loss_weights`: expected finite "
                        f"numbers, got {w!r}."
                    )
            weights = [float(w) for w in weights]
        if metrics is None:
            per_output: list = [[] for _ in losses]
        elif isinstance(metrics, dict):
            per_output = self._per_output(metrics, "metrics", [])
        elif isinstance(metrics, (list, tuple)) and multi and metrics and all(
                isinstance(m, (list, tuple)) or m is None for m in metrics):
            per_output = self._per_output(list(metrics), "metrics", [])
        else:
            per_output = [metrics] * len(losses)
        metric_objs, metric_ids, metric_names = [], [], []
        seen = {"loss"}
        loss_names = [f"{name}_loss" for name in self._output_names] if multi else []
        seen.update(loss_names)
        for name, ms in zip(self._output_names, per_output):
            if ms is None:
                ms = []
            if isinstance(ms, (str, bytes)) or callable(ms):
                ms = [ms]
            objs, ids, names = [], [], []
            for m in ms:
                metric = metrics_module.get(m)
                if getattr(metric, "per_class_result", False) or getattr(
                        metric, "class_aggregation", "") is None:
                    raise ValueError(
                        f"Received an invalid value for argument `metrics`: {metric!r} gives "
                        "one value per class, which the history cannot log; pass "
                        "average='macro' (or 'micro', 'weighted'), or class_aggregation="
                        "'uniform_average'."
                    )
                base = m if isinstance(m, str) else metric.name
                full = f"{name}_{base}" if multi else base
                if full in seen:
                    raise ValueError(
                        f"Metric name {full!r} appears twice (or clashes with 'loss')."
                    )
                seen.add(full)
                objs.append(metric)
                ids.append(m)
                names.append(full)
            metric_objs.append(objs)
            metric_ids.append(ids)
            metric_names.append(names)
        opt = optimizers_module.get(optimizer)
        return _Compiled(opt, losses, loss_ids, weights, metric_objs, metric_ids, metric_names,
                         loss_names)

    @property
    def metrics_names(self) -> list[str]:
        """``["loss", *per-output losses (several outputs), *metric names]``, the order
        :meth:`evaluate` returns."""
        if not getattr(self, "compiled", False):
            return ["loss"]
        c = self._compiled
        return ["loss", *c.loss_names, *(n for names in c.metric_names for n in names)]

    @property
    def _has_metrics(self) -> bool:
        return len(self.metrics_names) > 1

    def _require_compiled(self, what: str) -> None:
        if not getattr(self, "compiled", False):
            raise ValueError(
                f"Model `{self.name}` must be compiled before {what}: call "
                "model.compile(optimizer=..., loss=...) first."
            )

    # ------------------------------------------------------------------ targets
    def _sparse(self, k: int) -> bool:
        loss = self._compiled.losses[k] if getattr(self, "compiled", False) else None
        return "sparse" in str(getattr(loss, "name", ""))

    def _check_targets(self, y: ArrayLike, n: int, name: str = "y") -> list[np.ndarray]:
        """`y` as one checked array per output."""
        names = self._output_names
        if len(names) == 1:
            if isinstance(y, dict):
                y = self._from_dict(y, names, name)[0]
            elif isinstance(y, (list, tuple)) and len(y) == 1 and is_array_like(y[0]) and \
                    np.ndim(y[0]) >= 1 and len(y[0]) == n and n != 1:
                y = y[0]
            return [self._check_y(y, n, 0, name)]
        if isinstance(y, dict):
            ys = self._from_dict(y, names, name)
        elif isinstance(y, (list, tuple)) and len(y) == len(names):
            ys = list(y)
        else:
            raise ValueError(
                f"Received an invalid value for argument `{name}`: model `{self.name}` has "
                f"{len(names)} outputs {names}, so `{name}` must be a list of {len(names)} arrays "
                f"or a dict keyed by those names, got {type(y).__name__}"
                f"{f' of length {len(y)}' if isinstance(y, (list, tuple)) else ''}."
            )
        return [self._check_y(v, n, k, f"{name}[{names[k]!r}]") for k, v in enumerate(ys)]

    def _from_dict(self, value: dict, names: list, what: str) -> list:
        unknown = sorted(set(value) - set(names), key=str)
        missing = [k for k in names if k not in value]
        if unknown or missing:
            raise ValueError(
                f"Received an invalid value for argument `{what}`: model `{self.name}` expects "
                f"keys {names}; unknown {unknown}, missing {missing}."
            )
        return [value[k] for k in names]

    def _check_y(self, y: ArrayLike, n: int, k: int, name: str = "y") -> np.ndarray:
        """Output `k`'s targets checked against its shape (and label range for sparse CE)."""
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
        out = self._output_shapes[k]
        loss = self._compiled.losses[k] if getattr(self, "compiled", False) else None
        if getattr(loss, "target_shape_free", False):  # e.g. CTC's (N, S) label sequences
            return np.ascontiguousarray(a)
        if self._sparse(k):
            classes = out[-1]
            want = out[:-1]
            if a.shape[1:] != tuple(want) and a.shape[1:] != (*want, 1) and not (
                    None in want and a.ndim - 1 in (len(want), len(want) + 1)):
                raise ValueError(
                    f"Received an invalid value for argument `{name}`: sparse labels for output "
                    f"{shape_str((None, *out))} must have shape {shape_str((None, *want))}, "
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
                    f"outputs {shape_str((None, *out))}"
                    f"{'' if len(self._output_names) == 1 else f' at {self._output_names[k]!r}'}"
                    f", so targets must have that shape, got {a.shape}."
                )
        return np.ascontiguousarray(a, dtype=self._dtype)

    # ------------------------------------------------------------------ losses and scores
    def _loss_and_grads(self, ys: list, outs: list, masks: Optional[list] = None,
                        sws: Optional[list] = None) -> tuple[float, list]:
        """The (weighted) total loss of a batch and the gradient for each output.

        A sequence output ``(B, T, ...)`` with a ``(B, T)`` mask (from a Masking layer or
        ``Embedding(mask_zero=True)`` upstream) is scored over its unmasked (sample, step)
        pairs only: their mean loss, as Keras does; masked steps get no gradient. `sws`: per
        output, None or the batch's sample weights (``(B,)`` or per step ``(B, T)``)."""
        c = self._compiled
        if len(outs) == 1 and (masks is None or masks[0] is None) and (
                sws is None or sws[0] is None):
            loss, d = c.losses[0].value_and_gradient(ys[0], outs[0])
            return float(loss), [d]
        total = 0.0
        ds: list = []
        for k, (loss_fn, w, yk, ok) in enumerate(zip(c.losses, c.loss_weights, ys, outs)):
            if loss_fn is None:
                ds.append(None)
                continue
            sel = _step_mask(masks, k, ok)
            swk = None if sws is None or sws[k] is None else losses_module.sample_weights(
                sws[k], ok.shape[:-1])
            if sel is None:
                value, d = loss_fn.value_and_gradient(yk, ok, swk)
            elif not sel.any():  # every step masked: nothing to learn from this batch
                value, d = 0.0, np.zeros_like(ok)
            else:
                value, d_sel = loss_fn.value_and_gradient(
                    yk[sel], ok[sel], None if swk is None else swk[sel])
                d = np.zeros_like(ok)
                d[sel] = d_sel
            total += w * float(value)
            ds.append(d if w == 1.0 else d * d.dtype.type(w))
        return total, ds

    def _scores(self, ys: list, preds: list, masks: Optional[list] = None,
                sws: Optional[list] = None, penalty: float = 0.0,
                accumulate: bool = False) -> list[float]:
        """``[loss, *per-output losses, *metrics]`` (the order of :attr:`metrics_names`),
        over the unmasked steps of masked sequence outputs. `sws`: per output, None or sample
        weights (they weigh the losses; metrics are unweighted, as Keras's ``metrics``).
        `penalty` (the regularization penalties) is added to the total loss. `accumulate`:
        the metrics also add this batch to their running state (``update_state``), from which
        :meth:`_metric_results` gives the exact value over all batches."""
        c = self._compiled
        pairs, weights = [], []
        for k, (yk, pk) in enumerate(zip(ys, preds)):
            sel = _step_mask(masks, k, pk)
            swk = None if sws is None or sws[k] is None else losses_module.sample_weights(
                sws[k], pk.shape[:-1])
            pairs.append((yk, pk) if sel is None else (yk[sel], pk[sel]))
            weights.append(swk if sel is None or swk is None else swk[sel])
        parts: list[Any] = [None if fn is None else (float(fn(yk, pk, wk)) if len(pk) else 0.0)
                 for fn, (yk, pk), wk in zip(c.losses, pairs, weights)]
        if len(parts) == 1:
            scores = [parts[0] + penalty]
        else:
            total = sum(w * p for w, p in zip(c.loss_weights, parts) if p is not None)
            scores = [total + penalty, *(0.0 if p is None else p for p in parts)]
        for ms, (yk, pk) in zip(c.metrics, pairs):
            if accumulate:
                scores.extend((float(m.update_state(yk, pk, len(pk))) if len(pk) else 0.0)
                              for m in ms)
            else:
                scores.extend((float(m(yk, pk)) if len(pk) else 0.0) for m in ms)
        return scores

    def _reset_metrics(self) -> None:
        for ms in self._compiled.metrics:
            for m in ms:
                m.reset_state()

    def _metric_results(self) -> list[float]:
        """The metrics over every batch given to :meth:`_scores` with `accumulate` since
        :meth:`_reset_metrics` (0.0 for a metric that saw no unmasked value)."""
        out = []
        for ms in self._compiled.metrics:
            for m in ms:
                value = float(m.result())
                out.append(0.0 if math.isnan(value) else value)
        return out

    def _metric_logs(self, ys: list, preds: list, masks: Optional[list] = None) -> dict:
        """The training metrics of an epoch (per-output losses included)."""
        names = self.metrics_names[1:]
        if not names:
            return {}
        return dict(zip(names, self._scores(ys, preds, masks)[1:]))

    # ------------------------------------------------------------------ inference
    def _public_outputs(self, outs: list) -> Any:
        return outs[0] if len(outs) == 1 else outs

    def _stateful(self) -> bool:
        return any(getattr(layer, "stateful", False) for layer in self._all_layers_kept())

    def _all_layers_kept(self) -> list:
        """``_iter_all_layers()``, kept between calls while the model's own layers are the
        same objects and none of the layers found can change what it holds (a nested model, a
        layer tracking layers of its own): predict checks for stateful layers on every call."""
        top = self._unique_layers()
        kept = self.__dict__.get("_all_layers_cache")
        if kept is not None and len(kept[0]) == len(top) and all(
                a is b for a, b in zip(kept[0], top)):
            return kept[1]
        found = self._iter_all_layers()
        if not any(is_model(layer) or layer.__dict__.get("_tracked_layers") for layer in found):
            self._all_layers_cache = (tuple(top), found)
        return found

    def _inference_batch(self, batch_size: int, n: Optional[int] = None) -> int:
        """The rows of an inference batch for `n` samples (None: not known yet)."""
        if n is not None and n <= batch_size:
            return batch_size  # one batch whatever the rule below says
        # Stateful layers carry a state per batch row, so they need the batch size they run with.
        return batch_size if self._stateful() else max(batch_size, _MIN_INFERENCE_BATCH)

    def _predict_arrays(self, xs: list, batch_size: int,
                        out: Optional[list] = None) -> Any:
        """Forward passes over `xs` in batches, written into `out` (allocated if None). The
        outputs' masks (None where an output has none) are left in ``_predicted_masks``."""
        n = xs[0].shape[0]
        if 0 < n <= batch_size and out is None:  # one batch (a server's request): no slicing
            ys = self._run_forward(xs, training=False)
            self._predicted_masks = _gather_masks(None, self._output_masks, n, 0)
            self._predicted_activity = self._activity_loss
            return [np.array(y) for y in ys]
        masks: Optional[list] = None
        activity = 0.0
        for start in range(0, n, batch_size):
            ys = self._run_forward([x[start:start + batch_size] for x in xs], training=False)
            if out is None:
                out = [np.empty((n, *y.shape[1:]), dtype=y.dtype) for y in ys]
            for o, y in zip(out, ys):
                o[start:start + batch_size] = y
            masks = _gather_masks(masks, self._output_masks, n, start)
            activity += self._activity_loss * ys[0].shape[0]
        self._predicted_masks = masks
        self._predicted_activity = activity / n if n else 0.0
        return out

    def predict(self, x: ArrayLike, batch_size: int = 32, verbose: int = 0,
                steps: Optional[int] = None) -> Any:
        """Model outputs ``(N, *output_shape)`` (a list of them for several outputs) for inputs
        `x` (an array, a list or dict of arrays for several inputs, or an iterable of batches or
        of (x, y) batches). Large batches are used unless a layer is stateful. `steps`: only
        the first `steps` batches of `batch_size` samples (of a dataset: its first `steps`
        batches), as Keras's."""
        batch_size = check_batch_size(batch_size)
        steps = _steps(steps, "steps")
        if is_dataset(x):
            parts = [[o.copy() for o in self._run_forward(
                self._check_inputs(b[0] if isinstance(b, tuple) else b, "x batch"),
                training=False)] for b in _limit(x, steps)]
            if not parts:
                raise ValueError("Received an empty dataset for argument `x`.")
            return self._public_outputs(
                [np.concatenate([p[k] for p in parts], axis=0) for k in range(len(parts[0]))])
        xs = self._check_inputs(x)
        if steps is not None:
            xs = [a[:steps * batch_size] for a in xs]
        n = xs[0].shape[0]
        if n % batch_size and self._stateful():
            raise self._stateful_batch_error(n, batch_size, "predict")
        return self._public_outputs(self._predict_arrays(xs, self._inference_batch(batch_size, n)))

    def evaluate(self, x: ArrayLike = None, y: ArrayLike = None, batch_size: int = 32,
                 verbose: int = 0, sample_weight: ArrayLike = None, steps: Optional[int] = None,
                 return_dict: bool = False) -> Union[float, list[float], dict[str, float]]:
        """The loss on (x, y), or ``[loss, *metrics]`` when the model has metrics or several
        outputs (Keras's convention); ``{name: value}`` by :attr:`metrics_names` with
        `return_dict`. `x` may also be an iterable of (x, y) or (x, y, sample_weight) batches.
        `sample_weight` (as in :meth:`fit`) weighs the loss; the loss includes the
        regularization penalties, as Keras's does. `steps`: only the first `steps` batches
        (of `batch_size` samples, or of the dataset)."""
        self._require_compiled("evaluate()")
        batch_size = check_batch_size(batch_size)
        steps = _steps(steps, "steps")
        self._reg_cache = None
        if is_dataset(x):
            if sample_weight is not None:
                raise ValueError(
                    "Received `sample_weight` together with a dataset `x`: a dataset yields "
                    "(x, y, sample_weight) batches instead."
                )
            scores = self._evaluate_dataset(_limit(x, steps))
        else:
            xs = self._check_inputs(x)
            n = xs[0].shape[0]
            ys = self._check_targets(y, n)
            sws = self._check_sample_weight(sample_weight, ys)
            if steps is not None and steps * batch_size < n:
                n = steps * batch_size
                xs, ys = [a[:n] for a in xs], [a[:n] for a in ys]
                sws = None if sws is None else [None if w is None else w[:n] for w in sws]
            if n % batch_size and self._stateful():
                raise self._stateful_batch_error(n, batch_size, "evaluate")
            preds = self._predict_arrays(xs, self._inference_batch(batch_size, n))
            scores = self._scores(ys, preds, self._predicted_masks, sws,
                                  self._weight_penalty() + self._predicted_activity)
        if verbose:
            print(format_logs(dict(zip(self.metrics_names, scores))))
        return self._results(scores, return_dict)

    def _results(self, scores: list[float], return_dict: bool
                 ) -> Union[float, list[float], dict[str, float]]:
        """Keras's return convention of evaluate and the ``*_on_batch`` methods: the loss
        alone, ``[loss, *metrics]``, or ``{name: value}`` with `return_dict`."""
        if return_dict:
            return dict(zip(self.metrics_names, scores))
        return scores[0] if not self._has_metrics else scores

    # ------------------------------------------------------------------ one batch
    def reset_metrics(self) -> None:
        """Resets the state the compiled metrics accumulate (Keras's ``reset_metrics``)."""
        if getattr(self, "compiled", False):
            self._reset_metrics()

    def predict_on_batch(self, x: ArrayLike) -> Any:
        """Model outputs for `x` run as one batch (Keras's ``predict_on_batch``): ``(B,
        *output_shape)``, a list of them for several outputs."""
        outs = self._run_forward(self._check_inputs(x), training=False)
        return self._public_outputs([np.array(o) for o in outs])

    def test_on_batch(self, x: ArrayLike, y: ArrayLike = None, sample_weight: ArrayLike = None,
                      return_dict: bool = False) -> Union[float, list[float], dict[str, float]]:
        """The loss (and metrics) of one batch (Keras's ``test_on_batch``): what
        :meth:`evaluate` gives for ``batch_size=len(x)``; the metrics are reset first."""
        self._require_compiled("test_on_batch()")
        xs = self._check_inputs(x)
        ys = self._check_targets(y, xs[0].shape[0])
        sws = self._check_sample_weight(sample_weight, ys)
        self._reg_cache = None
        self.reset_metrics()
        preds = self._run_forward(xs, training=False)
        scores = self._scores(ys, preds, self._output_masks, sws,
                              self._weight_penalty() + self._activity_loss, accumulate=True)
        return self._results(scores, return_dict)

    def train_on_batch(self, x: ArrayLike, y: ArrayLike = None, sample_weight: ArrayLike = None,
                       class_weight: Optional[dict] = None, return_dict: bool = False
                       ) -> Union[float, list[float], dict[str, float]]:
        """One gradient update on one batch (Keras's ``train_on_batch``); returns its loss
        (regularization penalties included, as :meth:`fit`'s) and the metrics of the batch's
        training-mode outputs, by the convention of :meth:`evaluate`. The metrics are reset
        first. A non-finite loss skips the update (the weights stay as they were) and is
        returned as it came; ``model.stop_reason`` says so."""
        self._require_compiled("train_on_batch()")
        if sample_weight is not None and class_weight is not None:
            raise ValueError("You cannot pass `class_weight` and `sample_weight` at the same "
                             "time.")
        xs = self._check_inputs(x)
        ys = self._check_targets(y, xs[0].shape[0])
        sws = self._check_sample_weight(sample_weight, ys) if class_weight is None else \
            self._class_weights(class_weight, ys)
        self._ensure_packed()
        self._reg_cache = self._flags_cache = None  # layers may have been frozen since
        self.reset_metrics()
        self.stop_reason = None
        result = self._train_step(xs, ys, [], 0, 0, (), sws)
        if result is None:
            loss = float(self._last_nonfinite_loss)
            return self._results([loss] + [math.nan] * (len(self.metrics_names) - 1),
                                 return_dict)
        loss, outs = result
        scores = self._scores(ys, outs, self._output_masks, sws, accumulate=True)
        return self._results([loss, *scores[1:]], return_dict)

    def _evaluate_dataset(self, dataset: Iterable) -> list[float]:
        totals: Any = None
        count = 0
        penalty = self._weight_penalty()
        self._reset_metrics()
        for batch in dataset:
            xs, ys, sws = self._split_batch(batch)
            preds = self._run_forward(xs, training=False)
            m = xs[0].shape[0]
            s = np.asarray(self._scores(ys, preds, self._output_masks, sws,
                                        penalty + self._activity_loss, accumulate=True)) * m
            totals = s if totals is None else totals + s
            count += m
        if not count:
            raise ValueError("Received an empty dataset: expected at least one (x, y) batch.")
        scores = [float(v) for v in totals / count]
        n_metrics = sum(len(ms) for ms in self._compiled.metrics)
        if n_metrics:  # exact over the dataset (e.g. AUC, RMSE), not a mean of batch values
            scores[-n_metrics:] = self._metric_results()
        return scores

    def _split_batch(self, batch: Any) -> tuple[list, list, Optional[list]]:
        """A dataset's batch as checked ``(xs, ys, sample weights per output or None)``."""
        if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
            length = f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else ""
            raise ValueError(
                "Received an invalid batch from the dataset: expected (x, y) or "
                f"(x, y, sample_weight) tuples, got {type(batch).__name__}{length}."
            )
        xs = self._check_inputs(batch[0], "x batch")
        ys = self._check_targets(batch[1], xs[0].shape[0], "y batch")
        sws = self._check_sample_weight(batch[2], ys, "sample_weight batch") if len(
            batch) == 3 else None
        return xs, ys, sws

    # ------------------------------------------------------------------ training
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
        sample_weight: ArrayLike = None,
        class_weight: Optional[dict] = None,
        steps_per_epoch: Optional[int] = None,
        validation_steps: Optional[int] = None,
        validation_freq: int = 1,
    ) -> Any:
        """Trains the model; returns a ``History`` (``history.history["loss"]``, ...).

        Args:
            x: inputs ``(N, T, F)`` or ``(N, F)`` (a list, or a dict by input name, for a model
                with several inputs), or an iterable of (x, y) batches (then `y` is None,
                batches come as the iterable gives them and `batch_size`, `shuffle` and
                `validation_split` do not apply).
            y: targets ``(N, *output_shape)`` (a list or dict by output name for several
                outputs); integer class indices for sparse CE.
            batch_size: samples per gradient step; the last batch of an epoch may be smaller.
            epochs: train until this epoch index (counting from `initial_epoch`).
            verbose: 0 silent, 1 a progress bar per epoch, 2 one line per epoch.
            callbacks: fastrnn callbacks; ``TerminateOnNaN`` is added unless present.
            validation_split: the fraction in [0, 1) of the *last* samples held out (before
                shuffling), as in Keras; ignored when `validation_data` is given.
            validation_data: ``(x_val, y_val)``, ``(x_val, y_val, val_sample_weight)`` or an
                iterable of (x, y[, sample_weight]) batches; evaluated once per epoch.
            shuffle: reshuffle the samples each epoch (ignored with stateful layers, which
                need their batches in order).
            initial_epoch: the epoch to start from (resuming a run).
            truncate_bptt: None (full backpropagation through time) or k: recurrent layers
                backpropagate through at most about k steps (sets each recurrent layer's
                ``truncate_bptt`` for the duration of this fit).
            validation_batch_size: rows per inference batch for validation (default: at least
                1024, or `batch_size` with stateful layers).
            sample_weight: weights of the samples in the loss: ``(N,)``, or ``(N, T)`` (one
                per time step) for a sequence output; a list or dict by output name for
                several outputs. As Keras: the batch loss is ``sum(w * loss) / count``, and the
                metrics are not weighted. Held out with `validation_split` like `y`.
            class_weight: ``{class index: weight}`` for a single output: each sample (or time
                step) weighs as its class, the class being the integer label (sparse losses),
                the argmax of a one-hot target, or the rounded value of a single-unit target;
                classes not in the dict weigh 1. Not with `sample_weight`.
            steps_per_epoch: batches per epoch. With arrays, the first `steps_per_epoch`
                batches of each epoch's order (at most as many as there are). With a dataset,
                one pass over it is read across the epochs, `steps_per_epoch` batches each
                (what an endlessly repeating dataset needs): when it runs out, training stops
                after that epoch with a warning, as Keras's does.
            validation_steps: validate on the first `validation_steps` batches only.
            validation_freq: validate every `validation_freq` epochs (the epochs whose
                number is a multiple of it), as Keras's.

        A NaN/inf loss stops training before that batch's update, so the weights are those
        from before it; ``model.stop_reason`` (and ``history.stop_reason``) says why.
        """
        self._require_compiled("fit()")
        batch_size = check_batch_size(batch_size)
        steps_per_epoch = _steps(steps_per_epoch, "steps_per_epoch")
        validation_steps = _steps(validation_steps, "validation_steps")
        validation_freq = check_batch_size(validation_freq, "validation_freq")
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
        dataset = is_dataset(x)
        if sample_weight is not None and class_weight is not None:
            raise ValueError("You cannot pass `class_weight` and `sample_weight` at the same "
                             "time.")
        if dataset:
            if sample_weight is not None or class_weight is not None:
                raise ValueError(
                    "Received `sample_weight` or `class_weight` together with a dataset `x`: a "
                    "dataset yields (x, y, sample_weight) batches instead."
                )
            if y is not None:
                raise ValueError(
                    "Received `y` together with a dataset `x`: a dataset yields (x, y) batches, "
                    "so pass y=None."
                )
            if validation_split:
                raise ValueError(
                    "`validation_split` needs arrays; with a dataset pass `validation_data`."
                )
            train: Any = None
        else:
            xs = self._check_inputs(x)
            n = xs[0].shape[0]
            ys = self._check_targets(y, n)
            sws = self._check_sample_weight(sample_weight, ys) if class_weight is None else \
                self._class_weights(class_weight, ys)
            train = (xs, ys, sws)
            if validation_split and validation_data is None:  # validation_data overrides it
                n_val = int(math.floor(n * validation_split))
                if n_val < 1 or n_val >= n:
                    raise ValueError(
                        f"validation_split={validation_split} of {n} samples leaves "
                        f"{n_val} validation and {n - n_val} training samples; "
                        "expected at least one of each."
                    )

                def part(arrays: Optional[list], sl: slice) -> Optional[list]:
                    return None if arrays is None else [
                        None if a is None else a[sl] for a in arrays]
                held, kept = slice(-n_val, None), slice(None, -n_val)
                # class weights are for training only, as in Keras
                validation_data = (part(xs, held), part(ys, held),
                                   part(sws if class_weight is None else None, held))
                train = (part(xs, kept), part(ys, kept), part(sws, kept))
        val = self._check_validation(validation_data)
        if validation_steps is not None and val is not None:
            if is_dataset(val):
                source = val
                val = _Limited(source, validation_steps)
            else:
                vb = validation_batch_size or self._inference_batch(batch_size)
                rows = validation_steps * check_batch_size(vb, "validation_batch_size")
                val = tuple(None if part is None else [None if a is None else a[:rows]
                                                       for a in part] for part in val)
        if steps_per_epoch is not None and train is not None:
            batches = math.ceil(train[0][0].shape[0] / batch_size)
            if steps_per_epoch > batches:
                raise ValueError(
                    f"Received steps_per_epoch={steps_per_epoch}, but the {train[0][0].shape[0]} "
                    f"training samples make only {batches} batches of {batch_size}; an epoch "
                    "over arrays cannot have more."
                )

        stateful = self._stateful()
        if stateful and train is not None and train[0][0].shape[0] % batch_size:
            raise self._stateful_batch_error(train[0][0].shape[0], batch_size, "fit")
        val_batch = validation_batch_size or self._inference_batch(batch_size)
        val_batch = check_batch_size(val_batch, "validation_batch_size")
        if stateful and val is not None and not is_dataset(val) and \
                val[0][0].shape[0] % val_batch:
            raise self._stateful_batch_error(val[0][0].shape[0], val_batch, "validation")
        self._ensure_packed()
        self._reg_cache = self._flags_cache = None  # layers may have been frozen since

        dp = _data_parallel
        cbs, history = self._make_callbacks(callbacks)
        if dp is not None:
            cbs, verbose = dp.rank_callbacks(cbs, verbose)
        self.history = history
        self._val_buffer = None
        self.stop_training = False
        self.stop_reason = None
        steps = (len(x) if hasattr(x, "__len__") else None) if dataset else math.ceil(
            train[0][0].shape[0] / (batch_size * (1 if dp is None else dp.size)))
        if steps_per_epoch is not None:
            steps = steps_per_epoch if steps is None else min(steps, steps_per_epoch)
        stream = iter(x) if dataset and steps_per_epoch is not None else None
        params = {"epochs": epochs, "steps": steps, "verbose": verbose,
                  "batch_size": batch_size}
        # A ProgbarLogger among the callbacks prints the progress instead of fit (Keras's rule).
        shown = 0 if any(isinstance(cb, callbacks_module.ProgbarLogger) for cb in cbs) \
            else verbose
        for cb in cbs:
            if hasattr(cb, "set_params"):
                cb.set_params(params)
        restore = self._set_truncation(truncate_bptt)
        try:
            self._fit_dataset = x if dataset else None
            self._resume_epoch = None
            for cb in cbs:
                cb.on_train_begin({})
            if dp is not None:
                self._data_parallel = dp
                val = dp.begin_fit(self, train, val, {
                    "batch_size": batch_size, "epochs": epochs, "shuffle": shuffle,
                    "initial_epoch": initial_epoch, "dataset": dataset})
            if self._resume_epoch is not None:  # a BackupAndRestore restored a run
                initial_epoch = max(initial_epoch, self._resume_epoch)
            for epoch in range(initial_epoch, epochs):
                for cb in cbs:
                    cb.on_epoch_begin(epoch, {})
                bar = None
                if shown == 1:
                    bar = tqdm(total=steps, desc=f"Epoch {epoch + 1}/{epochs}", unit="batch",
                               file=sys.stdout, leave=True, dynamic_ncols=True)
                t0 = time.perf_counter()
                try:
                    if stream is not None:  # steps_per_epoch batches of one pass
                        assert steps_per_epoch is not None
                        logs = self._train_epoch_stream(stream, steps_per_epoch, cbs, bar,
                                                        epoch)
                    elif dataset:
                        logs = self._train_epoch_dataset(x, cbs, bar, epoch)
                    else:
                        logs = self._train_epoch_arrays(
                            train[0], train[1], batch_size, shuffle and not stateful, cbs, bar,
                            epoch, train[2], steps_per_epoch)
                    if val is not None and logs is not None and (epoch + 1) % validation_freq == 0:
                        for cb in cbs:
                            cb.on_test_begin({})
                        val_logs = self._validation_logs(val, val_batch)
                        for cb in cbs:
                            cb.on_test_end({k[4:]: v for k, v in val_logs.items()})
                        logs.update(val_logs)
                    if dp is not None and logs is not None:
                        logs = dp.average_logs(logs)
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
                    bar.set_postfix_str(format_logs(logs), refresh=False)
                    bar.close()
                elif shown == 2:
                    print(f"Epoch {epoch + 1}/{epochs} - {seconds:.2f}s - "
                          f"{format_logs(logs)}", file=sys.stdout)
                for cb in cbs:
                    cb.on_epoch_end(epoch, logs)
                if dp is not None:
                    self.stop_training = dp.any(self.stop_training)
                if self.stop_training:
                    break
            if epochs > initial_epoch and self.stop_reason is None and hasattr(
                    self.optimizer, "finalize_variable_values"):
                # use_ema: the weights become their moving averages (Keras's end of fit)
                self.optimizer.finalize_variable_values(self._optimizer_targets()[0])
            for cb in cbs:
                cb.on_train_end({})
        except BaseException as exc:
            if dp is not None:
                dp.failed(exc)  # ends the job unless every process raised it together
            raise
        finally:
            self._data_parallel = None
            for layer, value in restore:
                layer.truncate_bptt = value
        history.stop_reason = self.stop_reason
        if self.stop_reason and verbose:
            print(f"Training stopped: {self.stop_reason}.", file=sys.stdout)
        return history

    def _check_validation(self, validation_data: Any) -> Any:
        if validation_data is None:
            return None
        if is_dataset(validation_data):
            return validation_data
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError(
                "Received an invalid value for argument `validation_data`: expected "
                "(x_val, y_val) or an iterable of (x, y) batches, got "
                f"{type(validation_data).__name__}."
            )
        xs = self._check_inputs(validation_data[0], "validation_data[0]")
        ys = self._check_targets(validation_data[1], xs[0].shape[0], "validation_data[1]")
        sws = self._check_sample_weight(validation_data[2], ys, "validation_data[2]") if len(
            validation_data) == 3 and validation_data[2] is not None else None
        return (xs, ys, sws)

    def _validation_logs(self, val: Any, batch_size: int) -> dict:
        if is_dataset(val):
            scores = self._evaluate_dataset(val)
        else:
            xs, ys, sws = val
            # The predictions' buffers are reused from one epoch to the next.
            buf = getattr(self, "_val_buffer", None)
            if buf is not None and buf[0].shape[0] != xs[0].shape[0]:
                buf = None
            preds = self._predict_arrays(xs, batch_size, out=buf)
            self._val_buffer = preds
            scores = self._scores(ys, preds, self._predicted_masks, sws,
                                  self._weight_penalty() + self._predicted_activity)
        return {f"val_{k}": v for k, v in zip(self.metrics_names, scores)}

    def _nan_stop(self, cbs: list, epoch: int, step: int, loss: float, batch_logs: dict) -> None:
        """A non-finite loss: tell the callbacks (TerminateOnNaN stops), make sure we stop."""
        self._last_nonfinite_loss = loss
        for cb in cbs:
            cb.on_train_batch_end(step, batch_logs)
        self.stop_training = True
        if not self.stop_reason:
            self.stop_reason = (
                f"loss became {loss} at epoch {epoch + 1}, batch {step + 1}; weights from "
                "before it kept"
            )
        if self._param_buffer is not None and not np.isfinite(self._param_buffer).all():
            self.stop_reason += (
                " (but they already held non-finite values: an earlier update overflowed; "
                "lower the learning rate or clip gradients)"
            )

    def _train_epoch_arrays(self, xs: list, ys: list, batch_size: int,
                            shuffle: bool, cbs: list, bar: Any, epoch: int,
                            sws: Optional[list] = None, max_steps: Optional[int] = None
                            ) -> Optional[dict]:
        """One epoch over arrays; returns the epoch's logs, or None if a NaN loss stopped it.
        `sws`: per output, None or its sample weights (rows gathered like `ys`); `max_steps`:
        at most that many batches (``steps_per_epoch``)."""
        n = xs[0].shape[0]
        batch_cbs = _batch_callbacks(cbs)
        rows = min(n, batch_size)
        order = self._shuffle_rng.permutation(n) if shuffle else None
        dp = self._data_parallel
        if dp is None:
            bounds = [*range(0, n, batch_size), n]  # batch k is order[bounds[k]:bounds[k + 1]]
        else:  # this process's rows of each global batch, and where each batch starts
            order, bounds = dp.shard(order, n, batch_size)
        if max_steps is not None:
            bounds = bounds[:max_steps + 1]
        if order is not None:
            # Batches are gathered into these, allocated once per epoch (the last batch of a
            # ragged epoch uses views of them).
            xbufs = [np.empty((rows, *a.shape[1:]), dtype=a.dtype) for a in xs]
            ybufs = [np.empty((rows, *a.shape[1:]), dtype=a.dtype) for a in ys]
            wbufs: Any = None if sws is None else [
                None if a is None else np.empty((rows, *a.shape[1:])) for a in sws]
        preds = None
        masks: Optional[list] = None
        if self._has_metrics:
            preds = [np.empty((bounds[-1], *s), dtype=self._dtype)
                     for s in self._output_shapes_for(xs)]
        total = 0.0
        stop = 0
        for step in range(len(bounds) - 1):
            start, stop = bounds[step], bounds[step + 1]
            wb: Optional[list] = None
            if order is None:
                xb = [a[start:stop] for a in xs]
                yb = [a[start:stop] for a in ys]
                if sws is not None:
                    wb = [None if a is None else a[start:stop] for a in sws]
            else:
                idx = order[start:stop]
                m = stop - start
                xb = [b[:m] for b in xbufs]
                yb = [b[:m] for b in ybufs]
                # mode="clip" skips NumPy's bounds-checked buffering (the indices are valid)
                for a, b in zip(xs, xb):
                    a.take(idx, axis=0, out=b, mode="clip")
                for a, b in zip(ys, yb):
                    a.take(idx, axis=0, out=b, mode="clip")
                if sws is not None:
                    wb = [None if a is None else a.take(idx, axis=0, out=b[:m], mode="clip")
                          for a, b in zip(sws, wbufs)]
            result = self._train_step(xb, yb, cbs, epoch, step, batch_cbs, wb)
            if result is None:
                return None
            loss, outs = result
            total += loss * (stop - start)
            if preds is not None:
                for p, o in zip(preds, outs):
                    p[start:stop] = o
                masks = _gather_masks(masks, self._output_masks, n, start)
            if batch_cbs and self._end_of_batch(batch_cbs, step, loss):
                break
            if bar is not None and bar.update(1):
                bar.set_postfix_str(f"loss: {total / stop:.4f}", refresh=False)
        logs = {"loss": total / max(stop, 1)}  # no rows: a process of a data-parallel fit
        if preds is not None:
            y_seen = [a[:stop] if order is None else a[order[:stop]] for a in ys]
            logs.update(self._metric_logs(
                y_seen, [p[:stop] for p in preds],
                None if masks is None else [None if m is None else m[:stop] for m in masks]))
        return logs

    def _train_step(self, xb: list, yb: list, cbs: list, epoch: int, step: int,
                    batch_cbs: Union[tuple, list] = (), swb: Optional[list] = None
                    ) -> Optional[tuple[float, list]]:
        """Forward, loss, backward and one optimizer update on a batch: ``(loss, outputs)``,
        or None when the loss is not finite (training stops with the weights from before).
        `batch_cbs` (the callbacks with batch hooks) hear of the batch first; `swb`: per
        output, None or the batch's sample weights.

        As Keras: the loss includes the regularization penalties (their gradients are added
        to the weights' after the backward pass), and constraints project their weights after
        the update."""
        for cb in batch_cbs:
            cb.on_train_batch_begin(step, {})
        dp = self._data_parallel
        if dp is not None:
            # the global batch's loss (activity penalties included) and its mean gradient
            loss, outs = dp.forward_backward(self, xb, yb, swb)
        else:
            outs = self._run_forward(xb, training=True)
            loss, ds = self._loss_and_grads(yb, outs, self._output_masks, swb)
            if self._activity_outputs:
                loss += self._activity_loss
        # weight penalties: the same weights on every process, so added after the reduction
        penalties, constraints = self._regularization_terms()
        if penalties:
            terms = [(reg.value_and_gradient(w), g) for reg, w, g in penalties]
            loss += sum(value for (value, _), _ in terms)
        if not math.isfinite(loss):
            self._nan_stop(cbs, epoch, step, loss, {"loss": loss})
            return None
        if dp is None:
            self._run_backward(ds)
        if penalties:
            for (_, d), g in terms:
                g += d
        self.optimizer.apply_gradients(*self._optimizer_targets())
        for constraint, w in constraints:
            w[...] = constraint(w)
        return loss, outs

    def _end_of_batch(self, batch_cbs: list, step: int, loss: float) -> bool:
        """Tells the batch callbacks this batch's loss (fastrnn.callbacks' contract); True
        when one of them stopped training."""
        logs = {"loss": loss}
        for cb in batch_cbs:
            cb.on_train_batch_end(step, logs)
        if self._data_parallel is not None:
            return self._data_parallel.any(self.stop_training)
        return self.stop_training

    def _optimizer_targets(self) -> tuple[list, list]:
        """What the optimizer updates: the one flat buffer (one vectorised update); the
        per-weight views when its rule needs whole arrays (``clipnorm``, Lamb, Adafactor); only
        the trainable weights' views when it moves weights without a gradient (weight decay,
        Ftrl), so that frozen weights and BatchNormalization's statistics stay as they are
        (the flat buffer again when every weight is trainable; the flags are cached for the
        fit, as Keras needs a new compile after freezing)."""
        opt = self.optimizer
        if getattr(opt, "moves_without_gradient", False):
            cache = getattr(self, "_flags_cache", None)
            if cache is None or cache[0] is not self._packed_ids:
                flags = self._trainable_flags()
                cache = self._flags_cache = (self._packed_ids, flags, all(flags))
            if not cache[2] or getattr(opt, "needs_arrays", False):
                return ([v for v, f in zip(self._param_views, cache[1]) if f],
                        [v for v, f in zip(self._grad_views, cache[1]) if f])
        if getattr(opt, "needs_arrays", False) or getattr(opt, "clipnorm", None):
            return self._param_views, self._grad_views
        return [self._param_buffer], [self._grad_buffer]

    def _trainable_flags(self) -> list[bool]:
        """Per weight (the order of the flat buffer's views): whether training changes it."""
        def flags(layer: Any) -> list[bool]:
            if hasattr(layer, "_param_views"):  # a nested model: its layers' weights
                return [f for sub in layer._unique_layers() for f in flags(sub)]
            subs = getattr(layer, "_sublayers", None)
            if subs:  # a wrapper: its inner layers' weights, in order
                return [f for sub in subs for f in flags(sub)]
            frozen = set(getattr(layer, "non_trainable_weight_names", ()))
            return [bool(layer.trainable) and name not in frozen
                    for name in layer.weight_names]
        out = [f for layer in self._unique_layers() for f in flags(layer)]
        if len(out) != len(self._param_views):  # a layer that lays out its weights otherwise
            raise RuntimeError(
                f"Model `{self.name}`: found {len(out)} weights' trainable flags for "
                f"{len(self._param_views)} weights."
            )
        return out

    # ------------------------------------------------------------------ regularization
    def _regularization_terms(self) -> tuple[list, list]:
        """``(penalties, constraints)`` of the trainable weights: ``(regularizer, weight,
        gradient)`` and ``(constraint, weight)`` triples/pairs over the bound views, from each
        layer's ``_weight_regularizers``/``_weight_constraints`` (by weight name). Cached until
        the weights are packed again or a fit/evaluate starts."""
        ids = getattr(self, "_packed_ids", None)
        cache = getattr(self, "_reg_cache", None)
        if cache is not None and cache[0] is ids:
            return cache[1], cache[2]
        penalties, constraints = [], []
        for layer in self._iter_all_layers():
            regs = getattr(layer, "_weight_regularizers", None) or {}
            cons = getattr(layer, "_weight_constraints", None) or {}
            if not (regs or cons) or not layer.trainable:
                continue
            frozen = set(getattr(layer, "non_trainable_weight_names", ()))
            names, weights, grads = layer.weight_names, layer.weights, layer.grads
            for i, name in enumerate(names):
                if name in frozen:
                    continue
                if name in regs:
                    penalties.append((regs[name], weights[i], grads[i]))
                if name in cons:
                    constraints.append((cons[name], weights[i]))
        self._reg_cache = (ids, penalties, constraints)
        return penalties, constraints

    @property
    def losses(self) -> list[float]:
        """Keras's ``model.losses``: each trainable weight's regularization penalty, then the
        activity penalty of the last forward pass (when a layer has one); their sum is what
        training adds to the loss."""
        self._reg_cache = None  # as Keras, after freezing or unfreezing layers too
        out = [float(reg(w)) for reg, w, _ in self._regularization_terms()[0]]
        return out + ([self._activity_loss] if self._activity_loss else [])

    def _weight_penalty(self) -> float:
        """The sum of the weight regularizers' penalties (reported in the loss)."""
        return float(sum(reg(w) for reg, w, _ in self._regularization_terms()[0]))

    # Activity regularization: the model's forward pass calls _activity_forward after a layer
    # with an ``activity_regularizer`` and its backward pass _activity_backward before it.
    _activity_loss = 0.0
    _activity_outputs: dict = {}

    def _activity_reset(self) -> None:
        self._activity_loss = 0.0
        if self._activity_outputs:
            self._activity_outputs = {}

    def _activity_forward(self, key: Any, regularizer: Any, y: Any, training: bool) -> None:
        """Adds `regularizer`'s penalty on output `y` divided by the batch size (Keras's rule)
        to this batch's activity loss; keeps `y` for the backward pass when training."""
        for o in y if isinstance(y, list) else [y]:
            if o.ndim and o.shape[0]:
                self._activity_loss += regularizer(o) / o.shape[0]
        if training:
            if not self._activity_outputs:
                self._activity_outputs = {}
            self._activity_outputs[key] = (regularizer, y)

    def _activity_backward(self, key: Any, d: Any) -> Any:
        """`d` (the gradient of the output kept under `key`) plus the penalty's gradient."""
        entry = self._activity_outputs.pop(key, None)
        if entry is None:
            return d
        regularizer, y = entry
        if isinstance(y, list):
            d = list(d) if d is not None else [None] * len(y)
            return [self._activity_grad(regularizer, yi, di) for yi, di in zip(y, d)]
        return self._activity_grad(regularizer, y, d)

    @staticmethod
    def _activity_grad(regularizer: Any, y: np.ndarray, d: Any) -> np.ndarray:
        g = regularizer.gradient(y)
        if y.ndim and y.shape[0]:
            g = g * (1.0 / y.shape[0])
        g = np.asarray(g, dtype=y.dtype)
        return g if d is None else d + g

    # ------------------------------------------------------------------ sample weights
    def _check_sample_weight(self, sample_weight: Any, ys: list,
                             name: str = "sample_weight") -> Optional[list]:
        """Per output: None or its weights, an array of the output's per-sample loss shape
        (``(N,)`` weights repeated over the time steps of a sequence output); None when no
        output is weighted."""
        if sample_weight is None:
            return None
        names = self._output_names
        if isinstance(sample_weight, dict):
            unknown = sorted(set(sample_weight) - set(names), key=str)
            if unknown:
                raise ValueError(
                    f"Received an invalid value for argument `{name}`: unknown output name(s) "
                    f"{unknown}; model `{self.name}` has outputs {names}."
                )
            values = [sample_weight.get(k) for k in names]
        elif isinstance(sample_weight, (list, tuple)) and len(sample_weight) == 1 == len(
                names) and np.ndim(sample_weight[0]) >= 1:
            values = list(sample_weight)  # one array per output, as for `y`
        elif isinstance(sample_weight, (list, tuple)) and len(names) > 1:
            if len(sample_weight) != len(names):
                raise ValueError(
                    f"Received an invalid value for argument `{name}`: model `{self.name}` has "
                    f"{len(names)} outputs {names}, got a list of {len(sample_weight)}."
                )
            values = list(sample_weight)
        else:
            values = [sample_weight] * len(names)
        out: list = []
        for k, (v, yk) in enumerate(zip(values, ys)):
            if v is None:
                out.append(None)
                continue
            shape = yk.shape if self._sparse(k) else yk.shape[:-1]
            if np.ndim(v) == 0 or np.shape(v)[0] != yk.shape[0]:
                raise ValueError(
                    f"Received inconsistent data sizes: `{name}` has shape {np.shape(v)} but "
                    f"the targets have {yk.shape[0]} samples."
                )
            out.append(losses_module.sample_weights(v, shape, name))
        return out if any(o is not None for o in out) else None

    def _class_weights(self, class_weight: Any, ys: list) -> list:
        """`class_weight` (``{class: weight}``) as sample weights of the single output."""
        if not isinstance(class_weight, dict) or not all(
                isinstance(k, (int, np.integer)) and not isinstance(k, bool)
                and isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
                and math.isfinite(float(v)) for k, v in class_weight.items()):
            raise ValueError(
                "Received an invalid value for argument `class_weight`: expected a dict of "
                f"{{class index: finite weight}}, got {class_weight!r}."
            )
        if len(ys) != 1:
            raise ValueError("`class_weight` is only supported for Models with a single output.")
        y = ys[0]
        if self._sparse(0):
            labels = y
        elif y.shape[-1] > 1:
            labels = np.argmax(y, axis=-1)
        else:
            labels = np.round(y[..., 0])
        weights = np.ones(labels.shape)
        for cls, w in class_weight.items():
            weights[labels == cls] = float(w)
        return [weights]

    def _train_epoch_stream(self, stream: Any, steps: int, cbs: list, bar: Any,
                            epoch: int) -> Optional[dict]:
        """An epoch of the next `steps` batches of one pass over a dataset (``fit``'s
        ``steps_per_epoch``); when the pass runs out, training stops after this epoch (with
        a warning), or before it when no batch is left."""
        first = next(stream, None)
        if first is None:
            warnings.warn("Your input ran out of data: the dataset gave no batch for epoch "
                          f"{epoch + 1}; training stops. Give a dataset with at least "
                          "steps_per_epoch * epochs batches (e.g. one that repeats).",
                          stacklevel=3)
            self.stop_training = True
            return None
        counted = _Limited(itertools.chain([first], stream), steps)
        logs = self._train_epoch_dataset(counted, cbs, bar, epoch)
        if logs is not None and counted.given < steps:
            warnings.warn(f"Your input ran out of data: epoch {epoch + 1} had {counted.given} of "
                          f"steps_per_epoch={steps} batches; training stops after it.",
                          stacklevel=3)
            self.stop_training = True
        return logs

    def _train_epoch_dataset(self, dataset: Iterable, cbs: list, bar: Any,
                             epoch: int) -> Optional[dict]:
        """One epoch over an iterable of (x, y) batches (metrics computed per batch)."""
        batch_cbs = _batch_callbacks(cbs)
        total = 0.0
        names = self.metrics_names[1:]
        metric_totals = np.zeros(len(names))
        count = 0
        step = -1
        if self._data_parallel is not None:  # as many batches on every process
            dataset = self._data_parallel.batches(dataset)
        self._reset_metrics()
        for step, batch in enumerate(dataset):
            xb, yb, swb = self._split_batch(batch)
            result = self._train_step(xb, yb, cbs, epoch, step, batch_cbs, swb)
            if result is None:
                return None
            loss, outs = result
            m = xb[0].shape[0]
            total += loss * m
            if names:
                metric_totals += np.asarray(
                    self._scores(yb, outs, self._output_masks, swb, accumulate=True)[1:]) * m
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
        for name, t in zip(names, metric_totals):
            logs[name] = float(t / count)
        n_metrics = sum(len(ms) for ms in self._compiled.metrics)
        if n_metrics:  # exact over the epoch, as in Keras
            logs.update(zip(names[-n_metrics:], self._metric_results()))
        return logs

    # ------------------------------------------------------------------ exact resume
    def _rng_generators(self) -> list:
        """Every random stream training draws from, in a fixed order: the shuffling, each
        layer's (dropout), and a shuffling dataset's being trained on."""
        gens: list = [self._shuffle_rng]
        gens += [layer._rng for layer in self._iter_all_layers()]
        gens.append(getattr(getattr(self, "_fit_dataset", None), "_rng", None))
        return gens
