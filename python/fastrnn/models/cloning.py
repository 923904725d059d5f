"""``clone_model``: a model of the same architecture with new layers (and new weights), as
Keras's ``keras.models.clone_model``."""

from __future__ import annotations

from typing import Any, Callable, Optional

from ..layers.core import InputLayer
from .common import layers_made_by
from .model import Model


def _fresh(layer: Any) -> Any:
    """Keras's default ``clone_function``: the layer of the same config, new weights."""
    return type(layer).from_config(layer.get_config())


def clone_model(model: Model, input_tensors: Any = None,
                clone_function: Optional[Callable[[Any], Any]] = None,
                call_function: Optional[Callable[..., Any]] = None,
                recursive: bool = False) -> Model:
    """A new model with the architecture of `model` (Sequential or functional: the same
    calls between new layers; subclassed: ``from_config(get_config())``), its weights newly
    initialized, not copied (``clone.set_weights(model.get_weights())`` copies them).

    Args:
        model: the model to clone.
        input_tensors: symbolic tensors (``fastrnn.Input``) the clone of a functional model is
            called on; the result is the functional model from them to the clone's outputs.
        clone_function: ``layer -> new layer`` for every layer but the InputLayers (default:
            ``type(layer).from_config(layer.get_config())``); it may return the layer itself
            to share it with `model`.
        call_function: not supported: fastrnn's graphs replay the recorded layer calls (use
            `clone_function` to change layers); anything but None is refused.
        recursive: models nested in `model` are cloned by this function too (with the same
            `clone_function`), instead of being passed to `clone_function` whole.
    """
    if not isinstance(model, Model):
        raise TypeError("Received an invalid value for argument `model`: expected a fastrnn "
                        f"Model, got {type(model).__name__}.")
    if call_function is not None:
        raise ValueError(
            "Received `call_function`: fastrnn's clone_model replays the model's recorded "
            "layer calls and cannot call a function in their place; change the layers with "
            "`clone_function` instead.")
    if clone_function is not None and not callable(clone_function):
        raise TypeError("Received an invalid value for argument `clone_function`: expected a "
                        f"callable layer -> layer, got {clone_function!r}.")
    if model._subclassed:
        if clone_function is not None or input_tensors is not None:
            raise ValueError(
                "Arguments `clone_function` and `input_tensors` are only supported for "
                f"Sequential and functional models; `{model.name}` is a subclassed model.")
        return type(model).from_config(model.get_config())
    if input_tensors is not None and model._class_name() == "Sequential":
        raise ValueError(
            "Received `input_tensors` for a Sequential model: clone it without, then call the "
            "clone on them (`Model(inputs, clone(inputs))`).")
    fn = clone_function or _fresh
    originals = {layer.name: layer for layer in model.layers}

    def make(config: dict) -> Any:
        inner = config.get("config")
        layer = originals.get(inner.get("name")) if isinstance(inner, dict) else None
        if layer is None or isinstance(layer, InputLayer):
            return None  # rebuilt from its config
        if recursive and isinstance(layer, Model) and not layer._subclassed:
            return clone_model(layer, clone_function=clone_function, recursive=True)
        made = fn(layer)
        if not callable(getattr(made, "forward", None)):
            raise TypeError(f"clone_function returned {made!r} for layer `{layer.name}`: "
                            "expected a fastrnn layer.")
        return made

    with layers_made_by(make):
        clone = type(model).from_config(model.get_config())
    if input_tensors is None:
        return clone
    return Model(input_tensors, clone(input_tensors), name=clone.name)
