"""The kernel sets: which compiled instruction set the core runs (``FASTRNN_KERNELS``).

The core carries its kernels compiled for several instruction sets ("generic": baseline
x86-64 or the compiler's baseline elsewhere, "avx2": AVX2 + FMA, "avx512") and runs the best
one this CPU supports, unless the environment variable ``FASTRNN_KERNELS`` names another when
this module is imported (a name this CPU cannot run raises
:class:`~fastrnn._checks.KernelSetError` then), or :func:`set_kernel_set` switches (tests run
the suite on every set the CPU can run this way).

Internal API (for :mod:`fastrnn.backend`): :func:`restore_kernel_set`.
"""

from __future__ import annotations

import os
from typing import Any

from .. import _core
from .._checks import KernelSetError

__all__ = [
    "KERNELS_ENVIRONMENT_VARIABLE",
    "available_kernel_sets",
    "kernel_set",
    "kernel_set_reason",
    "set_kernel_set",
]


KERNELS_ENVIRONMENT_VARIABLE = "FASTRNN_KERNELS"
_kernel_set_reason = "the best this CPU runs"


def kernel_set() -> str:
    """The name of the kernel set in use (``"generic"``, ``"avx2"`` or ``"avx512"``)."""
    return str(_core.kernel_set())


def available_kernel_sets() -> list[str]:
    """The kernel sets this build has and this CPU can run, from the most portable to the
    fastest."""
    return [str(name) for name in _core.available_kernel_sets()]


def kernel_set_reason() -> str:
    """Why the kernel set in use was chosen (for ``fastrnn info``)."""
    return _kernel_set_reason


def _check_kernel_set(name: Any, source: str) -> str:
    available = available_kernel_sets()
    if isinstance(name, str) and name in available:
        return name
    known = {"generic", "avx2", "avx512", "native"}
    why = ("is not a kernel set this CPU can run" if isinstance(name, str) and name in known
           else "is not a kernel set")
    raise KernelSetError(
        f"Received an invalid value for {source}: {name!r} {why}; this build and CPU can run "
        f"{', '.join(available)}."
    )


def set_kernel_set(name: str) -> None:
    """Runs every later kernel call on the kernel set `name` (one of
    :func:`available_kernel_sets`), in every thread. A name this CPU cannot run, or no kernel
    set at all, raises ValueError (KernelSetError) and changes nothing."""
    global _kernel_set_reason
    _core.select_kernel_set(_check_kernel_set(name, "argument `name`"))
    _kernel_set_reason = "set by fastrnn.backend.set_kernel_set"


def restore_kernel_set(name: str, reason: str) -> None:
    """Switches back to kernel set `name`, in use before for `reason` (what
    ``fastrnn.backend.use_kernel_set`` does on leaving its block)."""
    global _kernel_set_reason
    _core.select_kernel_set(name)
    _kernel_set_reason = reason


def _kernel_set_from_environment() -> None:
    global _kernel_set_reason
    value = os.environ.get(KERNELS_ENVIRONMENT_VARIABLE, "")
    if value == "":
        return
    _core.select_kernel_set(_check_kernel_set(
        value, f"the environment variable {KERNELS_ENVIRONMENT_VARIABLE}"))
    _kernel_set_reason = f"{KERNELS_ENVIRONMENT_VARIABLE}={value}"


_kernel_set_from_environment()
