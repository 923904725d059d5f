"""Argument checks shared by the timeseries modules.

Messages follow one pattern so users can grep them: they name the argument, the rule
and the value received.
"""

from __future__ import annotations

import importlib
import numbers
from types import ModuleType
from typing import Any, Optional


def invalid(name: str, rule: str, value: Any) -> ValueError:
    """Builds the standard error: "Received an invalid value for argument `name`: ..."."""
    return ValueError(
        f"Received an invalid value for argument `{name}`: expected {rule}, got {value!r}."
    )


def is_int(value: Any) -> bool:
    # bool is an int subclass, but `True` as a window length is always a mistake
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def positive_int(name: str, value: Any) -> int:
    if not is_int(value) or value < 1:
        raise invalid(name, "a positive integer", value)
    return int(value)


def non_negative_int(name: str, value: Any) -> int:
    if not is_int(value) or value < 0:
        raise invalid(name, "a non-negative integer", value)
    return int(value)


def optional_positive_int(name: str, value: Any) -> Optional[int]:
    if value is None:
        return None
    return positive_int(name, value)


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Imports an optional dependency or fails with the pip extra that provides it."""
    top = module.split(".")[0]
    try:
        importlib.import_module(top)
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"{purpose} needs the optional dependency `{top}`, which is not installed: "
            f"pip install 'fastrnn[{extra}]'"
        ) from err
