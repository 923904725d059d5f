"""Exporting trained models to run elsewhere: :func:`export_onnx` (what ``model.export(path,
format="onnx")`` calls)."""

from __future__ import annotations

from .onnx import export_onnx

__all__ = ["export_onnx"]
