"""Keras's ``keras.ops`` math (:mod:`fastrnn.math`) under ``fastrnn.ops``: works on arrays, on
traced values inside a layer's ``call`` (with gradients) and on symbolic tensors. ``matmul`` is
:func:`fastrnn.ops.products.matmul`, which serves both APIs.

The names are bound here by name (``sum``, ``max``, ``min``, ``abs`` and ``shape`` among them),
so no code of the ops lives in this module.
"""

from __future__ import annotations

from .. import math as _math

__all__ = [_n for _n in _math.__all__ if _n != "matmul"]
globals().update({_n: getattr(_math, _n) for _n in __all__})
