"""The few ``keras.backend`` calls the books make: ``clear_session`` and ``epsilon``.

fastrnn keeps no global graph or session; ``clear_session()`` resets what Keras's resets that
fastrnn has: the counters behind default layer and model names (``dense``, ``dense_1``, ...),
so a notebook re-run names its layers as the first run did.
"""

from __future__ import annotations

from .layers import base as _layer_base
from .losses import EPSILON
from .models import common as _model_common

__all__ = ["clear_session", "epsilon"]


def clear_session() -> None:
    """Resets the default-name counters of layers and models (as Keras's does)."""
    _layer_base._NAME_COUNTERS.clear()
    _model_common._model_names.clear()


def epsilon() -> float:
    """The fuzz factor of the losses' clipping (``1e-7``, as Keras's)."""
    return EPSILON
