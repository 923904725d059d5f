"""The few ``keras.backend`` calls the books make (``clear_session``, ``epsilon``), and the
choice of the core's kernel set (``kernel_set``, ``set_kernel_set``, ``use_kernel_set``).

fastrnn keeps no global graph or session; ``clear_session()`` resets what Keras's resets that
fastrnn has: the counters behind default layer and model names (``dense``, ``dense_1``, ...),
so a notebook re-run names its layers as the first run did.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from . import ops as _ops
from .layers import base as _layer_base
from .losses import EPSILON
from .models import common as _model_common

__all__ = [
    "available_kernel_sets",
    "clear_session",
    "epsilon",
    "kernel_set",
    "set_kernel_set",
    "use_kernel_set",
]

def kernel_set() -> str:
    """The name of the core's kernel set in use: ``"generic"`` (baseline instructions),
    ``"avx2"`` (AVX2 + FMA) or ``"avx512"``. The best this CPU runs is chosen when fastrnn
    loads, unless the environment variable ``FASTRNN_KERNELS`` names another."""
    return _ops.kernel_set()


def available_kernel_sets() -> list[str]:
    """The kernel sets this build carries and this CPU can run, the most portable first."""
    return _ops.available_kernel_sets()


def set_kernel_set(name: str) -> None:
    """Runs every later kernel call, in every thread, on the kernel set `name` (one of
    :func:`available_kernel_sets`); an unknown name, or one this CPU cannot run, raises
    ValueError naming the sets it can run, and changes nothing."""
    _ops.set_kernel_set(name)


@contextlib.contextmanager
def use_kernel_set(name: str) -> Iterator[None]:
    """``with use_kernel_set("avx2"): ...`` runs the block on that kernel set and restores the
    one in use before (also when the block raises)."""
    before = _ops.kernel_set()
    reason = _ops.kernel_set_reason()
    _ops.set_kernel_set(name)
    try:
        yield
    finally:
        _ops.kernel_sets.restore_kernel_set(before, reason)


def clear_session() -> None:
    """Resets the default-name counters of layers and models (as Keras's does)."""
    _layer_base._NAME_COUNTERS.clear()
    _model_common._model_names.clear()


def epsilon() -> float:
    """The fuzz factor of the losses' clipping (``1e-7``, as Keras's)."""
    return EPSILON
