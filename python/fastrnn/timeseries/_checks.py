"""Argument checks shared by the timeseries modules.

Messages follow one pattern so users can grep them: they name the argument, the rule
and the value received.
"""

from __future__ import annotations

import importlib
import numbers
import re
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


# The oldest version of each optional dependency fastrnn is tested with (pyproject.toml's
# extras and .ci/oldest-constraints.txt say the same).
MINIMUM_VERSIONS = {"pandas": "1.5", "matplotlib": "3.5", "statsmodels": "0.13.5",
                    "sklearn": "1.6"}


def version_tuple(version: str) -> tuple[int, ...]:
    """``"2.3.3"`` -> ``(2, 3, 3)``; a pre-release suffix is ignored (``"1.6.0rc1"`` -> 1.6.0)."""
    parts = []
    for piece in str(version).split(".")[:3]:
        digits = re.match(r"\d+", piece)
        if digits is None:
            break
        parts.append(int(digits.group()))
    return tuple(parts)


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Imports an optional dependency or fails with the pip extra that provides it (also
    when the installed version is older than fastrnn supports)."""
    top = module.split(".")[0]
    try:
        package = importlib.import_module(top)
    except ImportError as err:
        raise ImportError(
            f"{purpose} needs the optional dependency `{top}`, which is not installed: "
            f"pip install 'fastrnn[{extra}]'"
        ) from err
    minimum = MINIMUM_VERSIONS.get(top)
    installed = getattr(package, "__version__", "")
    if minimum is not None and version_tuple(installed) < version_tuple(minimum):
        raise ImportError(
            f"{purpose} needs `{top}` >= {minimum}, but {installed} is installed: "
            f"pip install --upgrade 'fastrnn[{extra}]'"
        )
    return importlib.import_module(module)
