"""``keras.preprocessing``'s names for sequence work.

* ``fastrnn.preprocessing.timeseries_dataset_from_array``: windows over a series (the same
  function as :func:`fastrnn.timeseries.timeseries_dataset_from_array`).
* ``fastrnn.preprocessing.sequence.pad_sequences`` (also ``fastrnn.preprocessing.
  pad_sequences``): padding variable-length sequences to one length.

Keras's image and text dataset loaders are not part of fastrnn (see
``docs/not_in_fastrnn.md``).
"""

from __future__ import annotations

from ..timeseries import timeseries_dataset_from_array
from . import sequence
from .sequence import pad_sequences

__all__ = ["pad_sequences", "sequence", "timeseries_dataset_from_array"]
