"""Argument checks shared by :mod:`fastrnn.ops` and the layers (a leaf module: it imports
nothing of fastrnn's, so both may use it)."""

from __future__ import annotations

from typing import Any

import numpy as np


def check_positive_int(name: str, value: Any) -> int:
    """`value` as an int when it is a positive integer (bools refused), else a ValueError
    naming the argument `name`."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < 1:
        raise ValueError(
            f"Received an invalid value for argument `{name}`, expected a positive integer, "
            f"got {value!r}."
        )
    return int(value)


class KernelSetError(ValueError):
    """A kernel set that does not exist or that this CPU cannot run was asked for (by the
    environment variable FASTRNN_KERNELS or by fastrnn.backend.set_kernel_set)."""
