"""Models: what a model is, how it trains, how it is saved.

The files, each importing only the ones before it (``tests/test_layering.py`` checks it):

* ``common.py``: small helpers (names, input checks, masks, sublayers).
* ``graph.py``: :class:`~fastrnn.models.graph.Graph`, the calls between symbolic inputs and
  outputs, run on arrays (forward, backward), its summary and its config.
* ``stepper.py``: a model's layers (a chain, or branches joined by merges) as the stages of a
  streaming stepper (one C++ call a time step for the whole model; :meth:`Model.stepper`).
* ``trainer.py``: the one training engine (compile and its config, fit, evaluate, predict);
  it imports no model module.
* ``model.py``: :class:`Model`, the base of every model (layers with weights in one flat
  buffer; a model is a layer too) and the runtime of a subclassed model.
* ``functional.py``: :class:`Functional`, what ``Model(inputs, outputs)`` makes.
* ``sequential.py``: :class:`Sequential`, a chain of layers of its own, built lazily.
* ``cloning.py``: :func:`clone_model`, a model of the same architecture with new layers.

The file format (models, weights, optimizer state, random streams, backups) is
:mod:`fastrnn.saving`'s, which imports no model module; :func:`load_model` lives there
(``serialization.py`` keeps the import path of earlier versions).
"""

from __future__ import annotations

from .._seed import set_seed
from ..saving import load_model, model_from_json, save_model
from .cloning import clone_model
from .functional import Functional
from .model import Model
from .sequential import Sequential

__all__ = ["Functional", "Model", "Sequential", "clone_model", "load_model", "model_from_json",
           "save_model", "set_seed"]
