"""``keras.utils`` names that the books call: windows over a series, seeding.

``fastrnn.utils.timeseries_dataset_from_array`` is :func:`fastrnn.timeseries.
timeseries_dataset_from_array` (Keras's windows, without a copy per window);
``set_random_seed`` is :func:`fastrnn.set_seed`.
"""

from __future__ import annotations

from ._seed import set_seed as set_random_seed
from .timeseries import timeseries_dataset_from_array

__all__ = ["set_random_seed", "timeseries_dataset_from_array"]
