"""Models to and from their saved configs: ``load_model`` and the compile config.

A file never executes code: layers are rebuilt by class name from the registry, a graph by
replaying its recorded calls, custom losses and metrics only from ``custom_objects``.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .. import layers as layers_module
from .. import losses as losses_module
from .. import metrics as metrics_module
from .. import optimizers as optimizers_module
from .. import saving
from ..layers import symbolic
from ..layers.base import (
    _CUSTOM,
    custom_object_scope,
    custom_objects_in_scope,
    skipped_initialization,
)
from ..layers.core import InputLayer
from .model import Model, expecting_weights
from .sequential import Sequential

__all__ = ["compile_config", "load_model"]


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
    module = losses_module if what == "loss" else metrics_module
    try:
        module.get(name)
    except (ValueError, TypeError, KeyError):
        return False
    return True


def _deserialize_function(value: Any, what: str, custom_objects: dict) -> Any:
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


def compile_config(model: Model) -> Optional[dict]:
    """What ``compile`` was given, JSON-ready (None for a model never compiled)."""
    if not getattr(model, "compiled", False):
        return None
    c = model._compiled
    multi = len(c.losses) > 1
    losses = [_serialize_function(i, fn, "loss") for i, fn in zip(c.loss_ids, c.losses)]
    metrics = [[_serialize_function(i, m, "metric") for i, m in zip(ids, objs)]
               for ids, objs in zip(c.metric_ids, c.metrics)]
    return {
        "optimizer": _serialize_optimizer(model.optimizer),
        "loss": losses if multi else losses[0],
        "metrics": metrics if multi else metrics[0],
        "loss_weights": c.loss_weights if multi else None,
    }


def _rebuild_layer(config: Any, path: str, where: str = "config.layers") -> Any:
    """The layer of `config`; any error names where it sits in the file (`where`)."""
    try:
        return layers_module.deserialize(config)
    except (KeyError, TypeError, ValueError, NotImplementedError, AttributeError,
            OverflowError) as exc:
        what = config.get("class_name") if isinstance(config, dict) else None
        inner = config.get("config") if isinstance(config, dict) else None
        name = inner.get("name") if isinstance(inner, dict) else None
        label = f" ({what}{f' {name!r}' if isinstance(name, str) else ''})" if isinstance(
            what, str) else ""
        raise ValueError(f"{path!r}: malformed model config at {where}{label}: "
                         f"{exc}") from exc


def sequential_from_config(config: dict, path: str = "<config>") -> Sequential:
    layer_configs = config.get("layers")
    if not isinstance(layer_configs, list):
        raise ValueError(f"{path!r}: the model config has no list of layers.")
    model = Sequential([_rebuild_layer(lc, path, f"config.layers[{k}]")
                        for k, lc in enumerate(layer_configs)], name=config.get("name"))
    shape = config.get("build_input_shape")
    if shape is not None:
        model.build((None, *shape))  # saved without the batch axis; build takes it
    return model


def _bad(path: str, where: str, expected: str, got: Any) -> ValueError:
    return ValueError(f"{path!r}: malformed model config at {where}: expected {expected}, got "
                      f"{got!r}.")


def functional_from_config(config: dict, path: str = "<config>") -> Model:
    """Rebuilds a graph by replaying its recorded calls on new symbolic tensors."""
    layer_configs = config.get("layers")
    if not isinstance(layer_configs, list):
        raise _bad(path, "config.layers", "a list of layers", layer_configs)
    by_name: dict = {}
    for k, lc in enumerate(layer_configs):
        layer = _rebuild_layer(lc, path, f"config.layers[{k}]")
        if layer.name in by_name:
            raise _bad(path, f"config.layers[{k}]", "unique layer names", layer.name)
        by_name[layer.name] = layer
    nodes = config.get("nodes")
    if not isinstance(nodes, list):
        raise _bad(path, "config.nodes", "a list of calls", nodes)
    made: list = []  # per node: its output tensors

    def tensor(ref: Any, where: str) -> Any:
        if not (isinstance(ref, list) and len(ref) == 2 and all(
                isinstance(v, int) and not isinstance(v, bool) for v in ref)):
            raise _bad(path, where, "[node, output]", ref)
        node, out = ref
        if not 0 <= node < len(made) or not 0 <= out < len(made[node]):
            raise _bad(path, where, "a reference to an earlier call's output", ref)
        return made[node][out]

    for k, entry in enumerate(nodes):
        where = f"config.nodes[{k}]"
        if not isinstance(entry, dict) or entry.get("layer") not in by_name:
            raise _bad(path, where, "a call of a layer listed in config.layers", entry)
        layer = by_name[entry["layer"]]
        refs = entry.get("inputs")
        if not isinstance(refs, list):
            raise _bad(path, f"{where}.inputs", "a list", refs)
        if isinstance(layer, InputLayer):
            if refs:
                raise _bad(path, f"{where}.inputs", "no inputs for an InputLayer", refs)
            dt = layer.input_dtype if layer.input_dtype is not None else layer.dtype
            made.append([symbolic.input_tensor(layer, layer.input_shape, dt, layer.batch_size)])
            continue
        ins = [tensor(r, f"{where}.inputs[{j}]") for j, r in enumerate(refs)]
        n_main = entry.get("n_main")
        if not isinstance(n_main, int) or isinstance(n_main, bool) or not 1 <= n_main <= len(ins):
            raise _bad(path, f"{where}.n_main", f"an integer in [1, {len(ins)}]", n_main)
        main: Any = ins[:n_main] if entry.get("main_is_list") else ins[0]
        states = ins[n_main:] or None
        training = entry.get("training")
        if training not in (None, True, False):
            raise _bad(path, f"{where}.training", "null, true or false", training)
        out = symbolic.call(layer, main, initial_state=states, training=training)
        made.append(out if isinstance(out, list) else [out])

    def io(key: str) -> list:
        refs = config.get(key)
        if not isinstance(refs, list) or not refs:
            raise _bad(path, f"config.{key}", "a non-empty list", refs)
        return [tensor(r, f"config.{key}[{j}]") for j, r in enumerate(refs)]

    inputs, outputs = io("inputs"), io("outputs")

    def structure(tensors: list, which: str) -> Any:
        kind = config.get(f"{which}_struct")
        keys = config.get(f"{which}_keys")
        if kind == "dict":
            if not isinstance(keys, list) or len(keys) != len(tensors):
                raise _bad(path, f"config.{which}_keys", f"{len(tensors)} names", keys)
            return dict(zip(keys, tensors))
        if kind == "single" and len(tensors) == 1:
            return tensors[0]
        return tensors

    return Model(structure(inputs, "inputs"), structure(outputs, "outputs"),
                 name=config.get("name"))


def subclassed_from_config(kind: Any, config: dict, build: Any, path: str) -> Model:
    """A subclassed model: its class by name (``custom_objects`` or the registry; a file never
    holds code), made from its config and built on the saved input shapes."""
    cls = None
    if isinstance(kind, str):
        cls = custom_objects_in_scope().get(kind) or _CUSTOM.get(kind)
        if cls is None and ">" in kind:
            cls = custom_objects_in_scope().get(kind.split(">", 1)[1])
    if cls is None:
        short = kind.split(">", 1)[-1] if isinstance(kind, str) else kind
        raise ValueError(
            f"{path!r} holds a model of the custom class {kind!r}: pass it when loading, "
            f"load_model(path, custom_objects={{{short!r}: {short}}}), or decorate the class "
            "with @fastrnn.saving.register_keras_serializable().")
    if not (isinstance(cls, type) and issubclass(cls, Model) and cls._subclassed):
        raise ValueError(f"{path!r}: the custom object {kind!r} is not a subclass of "
                         f"fastrnn.Model with a call() (got {cls!r}).")
    if not isinstance(build, dict):
        raise _bad(path, "build_input", "an object", build)
    specs, dtypes = build.get("specs"), build.get("dtypes")
    struct, keys = build.get("struct"), build.get("keys")
    if not isinstance(specs, list) or not specs or not all(
            isinstance(s, list) and all(d is None or (isinstance(d, int) and not isinstance(
                d, bool) and d > 0) for d in s) for s in specs):
        raise _bad(path, "build_input.specs", "a list of shapes", specs)
    if not isinstance(dtypes, list) or len(dtypes) != len(specs) or not all(
            d in ("float32", "float64", "int32", "int64") for d in dtypes):
        raise _bad(path, "build_input.dtypes", f"{len(specs)} dtype names", dtypes)
    if struct not in ("single", "list", "dict") or (struct == "single" and len(specs) != 1):
        raise _bad(path, "build_input.struct", "'single', 'list' or 'dict'", struct)
    if struct == "dict" and (not isinstance(keys, list) or len(keys) != len(specs)
                             or not all(isinstance(k, str) for k in keys)):
        raise _bad(path, "build_input.keys", f"{len(specs)} input names", keys)
    model = cls.from_config(config)
    model._trace_call([tuple(s) for s in specs], [np.dtype(d) for d in dtypes], struct,
                      keys if struct == "dict" else None)
    return model


def load_model(path: str, custom_objects: Optional[dict] = None,
               compile: bool = True) -> Model:
    """Loads a model written by ``model.save`` (Sequential or functional); never executes code
    from the file.

    Args:
        path: the zip archive or directory given to ``save``.
        custom_objects: ``{name: function}`` for custom losses/metrics (e.g. the book's
            ``last_time_step_mse``).
        compile: False skips the saved compile config (the model is then only for inference
            or for compiling anew).

    Raises:
        ValueError: unknown format, class or layer names, or mismatched weights.
    """
    if custom_objects is not None and not isinstance(custom_objects, dict):
        raise TypeError(
            "Received an invalid value for argument `custom_objects`, expected a dict "
            f"{{name: class or function}}, got {type(custom_objects).__name__}.")
    config, weights = saving.load_archive(path)
    weights, opt_state, rng_state = split_training_state(config, weights, path)
    kind = config.get("class_name")
    arch = config.get("config") or {}
    if not isinstance(arch, dict):
        raise _bad(path, "config", "an object", arch)
    subclassed = config.get("subclassed") is True
    if kind not in ("Sequential", "Functional") and not subclassed:
        raise ValueError(
            f"{path!r} holds a model of class {kind!r}; fastrnn can load 'Sequential' and "
            "'Functional' models, and subclassed ones."
        )
    # Layers are built without drawing initial values, and the file's weight shapes are
    # checked against the architecture before any buffer is filled.
    try:
        with skipped_initialization(), expecting_weights([w.shape for w in weights]), \
                custom_object_scope(custom_objects):
            if subclassed:
                model: Model = subclassed_from_config(kind, arch, config.get("build_input"),
                                                      path)
            elif kind == "Sequential":
                model = sequential_from_config(arch, path)
            else:
                model = functional_from_config(arch, path)
    except (TypeError, KeyError, AttributeError, IndexError, OverflowError,
            MemoryError, NotImplementedError) as exc:
        raise ValueError(f"{path!r}: malformed model config ({type(exc).__name__}: {exc}).") \
            from exc
    except ValueError as exc:
        if str(path) in str(exc):
            raise
        raise ValueError(f"{path!r}: {exc}") from exc
    if not model.built and weights:
        raise ValueError(f"{path!r}: weights were saved for a model that was never built.")
    cc = config.get("compile_config")
    if compile and cc:
        _compile_from_config(model, cc, dict(custom_objects or {}), path)
    else:
        opt_state = None
    if model.built:
        restore_training_state(model, weights, opt_state, rng_state, path, strict=False)
    return model


def _compile_from_config(model: Model, cc: Any, custom: dict, path: str) -> None:
    """Compiles `model` as the file's compile config says; a malformed entry raises one
    ValueError naming it."""
    if not isinstance(cc, dict):
        raise _bad(path, "compile_config", "an object", cc)
    opt = cc.get("optimizer")
    if not (isinstance(opt, dict) and isinstance(opt.get("class_name"), str)
            and isinstance(opt.get("config"), dict)):
        raise _bad(path, "compile_config.optimizer",
                   'an object {"class_name": ..., "config": {...}}', opt)
    loss = cc.get("loss")
    metrics = cc.get("metrics")
    if metrics is None:
        metrics = []
    if not isinstance(metrics, list):
        raise _bad(path, "compile_config.metrics", "a list", metrics)
    weights = cc.get("loss_weights")
    if weights is not None and not (isinstance(weights, (list, dict))):
        raise _bad(path, "compile_config.loss_weights", "null, a list or an object", weights)
    try:
        if isinstance(loss, list):
            if not all(ms is None or isinstance(ms, list) for ms in metrics):
                raise _bad(path, "compile_config.metrics", "a list per output", metrics)
            loss = [_deserialize_function(v, "loss", custom) for v in loss]
            metrics = [[_deserialize_function(m, "metric", custom) for m in ms or []]
                       for ms in metrics]
        else:
            loss = _deserialize_function(loss, "loss", custom)
            metrics = [_deserialize_function(m, "metric", custom) for m in metrics]
        optimizer = _deserialize_optimizer(opt)
    except (TypeError, KeyError, AttributeError, NotImplementedError, OverflowError) as exc:
        raise ValueError(f"{path!r}: malformed model config at compile_config: {exc}") \
            from exc
    except ValueError as exc:
        if str(path) in str(exc):
            raise
        raise ValueError(f"{path!r}: malformed model config at compile_config: {exc}") \
            from exc
    try:
        model.compile(optimizer=optimizer, loss=loss, metrics=metrics, loss_weights=weights)
    except (TypeError, KeyError, AttributeError, NotImplementedError, ValueError) as exc:
        raise ValueError(f"{path!r}: malformed model config at compile_config: {exc}") \
            from exc


def restore_training_state(model: Model, weights: list, opt_state: Optional[dict],
                           rng_state: Optional[list], path: str, strict: bool) -> None:
    """Puts a file's weights, optimizer state and random streams into `model`, all checked
    (the optimizer state on a copy) before any is applied. `strict`: the random streams must
    be the model's (a backup); otherwise streams of another layout are skipped."""
    import copy
    gens = model._rng_generators()[:-1]
    fits = rng_state is not None and len(rng_state) == len(gens)
    try:
        if [np.shape(w) for w in weights] != [w.shape for w in model.weights]:
            raise ValueError("its weight shapes differ from this model's")
        if opt_state is not None:
            copy.deepcopy(model.optimizer).set_state(opt_state, model._optimizer_targets()[0])
        if strict and not fits:
            raise ValueError("its random streams do not match this model's layers")
        if fits:
            for g, st in zip(gens, rng_state):
                if g is not None and st is not None:
                    copy.deepcopy(g).bit_generator.state = st
    except (TypeError, ValueError, KeyError, OverflowError, AttributeError) as exc:
        raise ValueError(f"{path!r} does not fit this model ({exc}).") from exc
    model.set_weights(weights)
    if opt_state is not None:
        model.optimizer.set_state(opt_state, model._optimizer_targets()[0])
    if fits:
        for g, st in zip(gens, rng_state):
            if g is not None and st is not None:
                g.bit_generator.state = st


def split_training_state(config: dict, arrays: list, path: str) -> tuple:
    """``(weights, optimizer state or None, rng states or None)`` from a loaded archive."""
    opt = config.get("optimizer_state")
    rng = config.get("rng_state")
    if rng is not None and not isinstance(rng, list):
        raise _bad(path, "rng_state", "a list", rng)
    if opt is None:
        return arrays, None, rng
    if not isinstance(opt, dict):
        raise _bad(path, "optimizer_state", "an object", opt)
    slots = opt.get("slots")
    iterations = opt.get("iterations")
    lr = opt.get("learning_rate")
    if not isinstance(slots, list) or not all(isinstance(k, str) for k in slots) or \
            len(slots) > len(arrays):
        raise _bad(path, "optimizer_state.slots", "a list of names of saved arrays", slots)
    if not isinstance(iterations, int) or isinstance(iterations, bool) or iterations < 0:
        raise _bad(path, "optimizer_state.iterations", "a non-negative integer", iterations)
    if not isinstance(lr, (int, float)) or isinstance(lr, bool):
        raise _bad(path, "optimizer_state.learning_rate", "a number", lr)
    n = len(arrays) - len(slots)
    state = {"iterations": np.array(iterations, dtype=np.int64),
             "learning_rate": np.array(float(lr))}
    state.update(zip(slots, arrays[n:]))
    return arrays[:n], state, rng
