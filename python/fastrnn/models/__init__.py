"""Models: what a model is, how it trains, how it is saved.

* ``model.py``: :class:`Model`, the base of every model (layers with weights in one flat
  buffer; a model is a layer too) and the functional model ``Model(inputs, outputs)``, a graph
  of layer calls.
* ``sequential.py``: :class:`Sequential`, the chain of layers, built lazily.
* ``trainer.py``: the one training engine both use (compile, fit, evaluate, predict).
* ``serialization.py``: :func:`load_model` and the saved compile config.
* ``stepper.py``: :meth:`Model.stepper`, a chain model's layers as the stages of a streaming
  stepper (one C++ call a time step for the whole model).
"""

from __future__ import annotations

from .._seed import set_seed
from .model import Model
from .sequential import Sequential
from .serialization import load_model

__all__ = ["Model", "Sequential", "load_model", "set_seed"]
