"""The global seed behind :func:`fastrnn.set_seed`: where models and graph layers draw their
random streams from. Imports nothing of fastrnn, so layers and models can both use it."""

from __future__ import annotations

import random
from typing import Optional

import numpy as np

_global_seed: Optional[int] = None
_streams_since_seed = 0


def set_seed(seed: int) -> None:
    """Seeds fastrnn (every model and graph layer created afterwards), NumPy's global RNG and
    `random`.

    After ``set_seed(s)`` the k-th model (or layer first called on a symbolic tensor) created
    gets the same initial weights, dropout masks and shuffling order as the k-th one created
    after any other ``set_seed(s)``.
    """
    global _global_seed, _streams_since_seed
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(
            "Received an invalid value for argument `seed`: expected a non-negative integer, "
            f"got {seed!r}."
        )
    _global_seed = int(seed)
    _streams_since_seed = 0
    np.random.seed(_global_seed % 2**32)  # noqa: NPY002 (as keras.utils.set_random_seed)
    random.seed(_global_seed)


def new_seed_sequence(seed: Optional[int] = None) -> np.random.SeedSequence:
    """A fresh stream: from `seed` if given, else the next one after :func:`set_seed`, else
    from the operating system's entropy."""
    global _streams_since_seed
    if seed is not None:
        return np.random.SeedSequence([int(seed)])
    if _global_seed is None:
        return np.random.SeedSequence()
    _streams_since_seed += 1
    return np.random.SeedSequence([_global_seed, _streams_since_seed])
