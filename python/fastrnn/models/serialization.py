"""The import path ``fastrnn.models.serialization`` of earlier versions: :func:`load_model`
now lives in :mod:`fastrnn.saving` (with the whole file format), and the compile config is the
trainer's (``model.get_compile_config()``)."""

from __future__ import annotations

from typing import Any, Optional

from ..saving import load_model

__all__ = ["compile_config", "load_model"]


def compile_config(model: Any) -> Optional[dict]:
    """What ``compile`` was given, JSON-ready (None for a model never compiled)."""
    config: Optional[dict] = model.get_compile_config()
    return config
