"""Identifiers of small configurable objects (regularizers, constraints): Keras's
``get``/``serialize``/``deserialize`` over a base class and a table of names, written once.
A leaf module: it imports nothing of fastrnn's."""

from __future__ import annotations

from typing import Any, Callable, Optional


def serialize(obj: Any, base: type, argument: str) -> Optional[dict[str, Any]]:
    """``{"class_name": ..., "config": ...}`` of `obj` (an instance of `base`; None stays
    None); `argument` names it in the error."""
    if obj is None:
        return None
    if not isinstance(obj, base):
        raise TypeError(
            f"Received an invalid value for argument `{argument}`, expected a fastrnn "
            f"{base.__name__}, got {type(obj).__name__}."
        )
    return {"class_name": type(obj).__name__, "config": obj.get_config()}


def deserialize(config: Any, names: dict[str, type],
                custom_objects: Optional[dict[str, Any]] = None) -> Any:
    """The object a ``serialize`` config describes; `names` (and `custom_objects`) map class
    names to classes."""
    known = {**names, **(custom_objects or {})}
    if not isinstance(config, dict) or known.get(config.get("class_name")) is None or \
            not isinstance(config.get("config", {}), dict):
        raise ValueError(
            f"Received an invalid value for argument `config`, expected {{'class_name': one "
            f"of {sorted(known)}, 'config': {{...}}}}, got {config!r}."
        )
    return known[config["class_name"]].from_config(dict(config.get("config", {})))


def get(identifier: Any, base: type, names: dict[str, type], wrap: Callable[[Any], Any],
        argument: str, example: str) -> Any:
    """An instance of `base` (or None) from None, an instance, a name in `names`, a config
    dict, a subclass of `base` or a plain function (given to `wrap`); `argument` names the
    layer argument in errors, `example` is a name shown in them."""
    if identifier is None or isinstance(identifier, base):
        return identifier
    kind = base.__name__
    if isinstance(identifier, str):
        cls = names.get(identifier)
        if cls is None:
            raise ValueError(
                f"Received an invalid value for argument `{argument}`, expected one of "
                f"{sorted(names)}, a fastrnn {kind} or a config dict, got {identifier!r}."
            )
        return cls()
    if isinstance(identifier, dict):
        return deserialize(identifier, names)
    if isinstance(identifier, type) and issubclass(identifier, base):
        return identifier()
    if callable(identifier):
        return wrap(identifier)
    raise ValueError(
        f"Received an invalid value for argument `{argument}`, expected a fastrnn {kind}, "
        f"a name such as {example!r}, a config dict or None, got {type(identifier).__name__}."
    )
