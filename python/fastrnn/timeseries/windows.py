"""Sliding windows over one long series, batched like Keras, without copying the series.

Dimension letters: N = number of windows, B = batch size, L = sequence_length,
F... = the trailing shape of one time step of ``data`` (none for a 1-D series).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, Optional, Union

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ._checks import invalid, is_int, non_negative_int, optional_positive_int, positive_int

Batch = Union[np.ndarray, tuple[np.ndarray, np.ndarray]]


class WindowDataset:
    """A re-iterable dataset of (x, y) batches of windows over a series.

    Iterating yields ``(x, y)`` with x of shape (B, L, F...) and y of shape (B, T...) (the
    trailing shape of ``targets``), or only x when there are no targets. With
    ``batch_size=None`` it yields single windows: x (L, F...) and y (T...).

    The windows are a strided, read-only view of the series; only the batch being yielded
    is copied (gathered). Each new iteration (epoch) draws a fresh order when
    ``shuffle=True``; the sequence of orders is reproducible with a ``seed``.

    Build it with :func:`timeseries_dataset_from_array`.
    """

    def __init__(
        self,
        windows: np.ndarray,
        targets: Optional[np.ndarray],
        window_starts: np.ndarray,
        batch_size: Optional[int],
        shuffle: bool,
        seed: Optional[int],
    ) -> None:
        self._windows = windows  # (N, L, F...) strided view, no copy
        self._targets = targets  # (N, T...) view, or None
        self.window_starts = window_starts  # (N,) index in `data` of each window's first step
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    @property
    def num_windows(self) -> int:
        """N, the number of windows (samples) per epoch."""
        return int(self._windows.shape[0])

    @property
    def has_targets(self) -> bool:
        return self._targets is not None

    def __len__(self) -> int:
        """Batches per epoch (windows per epoch when ``batch_size`` is None)."""
        if self.batch_size is None:
            return self.num_windows
        return math.ceil(self.num_windows / self.batch_size)

    def _order(self) -> np.ndarray:
        if self.shuffle:
            return self._rng.permutation(self.num_windows)
        return np.arange(self.num_windows)

    def _gather(self, rows: Union[np.ndarray, int]) -> Batch:
        # The only copy: this batch's windows. Fancy indexing (an index array) already
        # gathers into a new array; a single window is a view, copied so that no yielded
        # array aliases the series.
        take = (lambda a: a[rows]) if isinstance(rows, np.ndarray) else (lambda a: a[rows].copy())
        x = take(self._windows)
        if self._targets is None:
            return x
        return x, take(self._targets)

    def __iter__(self) -> Iterator[Batch]:
        order = self._order()
        if self.batch_size is None:
            for row in order:
                yield self._gather(int(row))
            return
        for begin in range(0, len(order), self.batch_size):
            yield self._gather(order[begin:begin + self.batch_size])

    def as_arrays(self, copy: bool = True) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """All windows in chronological order (ignores ``shuffle``), as ``(x, y)``.

        Args:
            copy: ``True`` returns writable contiguous arrays; this materialises N * L
                steps, i.e. ``L / sequence_stride`` times the series' memory (gigabytes for
                Jena-sized data). ``False`` returns the read-only strided views, free.

        Returns:
            x (N, L, F...) and y (N, T...), or ``(x, None)`` without targets.
        """
        if not copy:
            return self._windows, self._targets
        y = None if self._targets is None else np.array(self._targets)
        return np.array(self._windows), y

    def __repr__(self) -> str:
        return (
            f"WindowDataset(num_windows={self.num_windows}, batches={len(self)}, "
            f"window_shape={self._windows.shape[1:]}, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, targets={self.has_targets})"
        )


def timeseries_dataset_from_array(
    data: Any,
    targets: Any,
    sequence_length: int,
    sequence_stride: int = 1,
    sampling_rate: int = 1,
    batch_size: Optional[int] = 128,
    shuffle: bool = False,
    seed: Optional[int] = None,
    start_index: Optional[int] = None,
    end_index: Optional[int] = None,
    dtype: Any = np.float32,
) -> WindowDataset:
    """Sliding windows over a series, with the windows, targets and batches of
    ``keras.utils.timeseries_dataset_from_array``.

    Window j starts at ``s_j = start_index + j * sequence_stride`` and holds the steps
    ``data[s_j], data[s_j + r], ..., data[s_j + (L - 1) r]`` (r = ``sampling_rate``,
    L = ``sequence_length``). Its target is ``targets[s_j]``: ``targets[i]`` belongs to
    the window that *starts* at i, so "the value after the window" means passing
    ``targets = data[delay:]`` with ``delay = r * (L - 1) + 1`` (or any larger delay).
    Windows must end before ``end_index`` and need a target, so
    ``N = ceil(min(end - start - (L - 1) r, len(targets) - start) / sequence_stride)``.
    Batches are consecutive groups of ``batch_size`` windows; the last partial batch is
    kept.

    Example: ``data = np.arange(10)``, ``targets = data[3:]``, L = 3 gives the windows
    [0, 1, 2] -> 3, [1, 2, 3] -> 4, ..., [4, 5, 6] -> 7.

    Args:
        data: (T, F...) array; axis 0 is time. Converted once to ``dtype`` (no copy when
            it already has it). As in Keras a 1-D series gives windows of shape (B, L):
            pass ``data[:, None]`` to get the (B, L, 1) input of a recurrent layer.
        targets: (T', ...) array with ``targets[i]`` the target of the window starting at
            i, or ``None`` to yield x only.
        sequence_length: L, steps per window.
        sequence_stride: distance between the starts of consecutive windows.
        sampling_rate: r, distance between consecutive steps inside a window.
        batch_size: windows per batch; ``None`` yields single unbatched windows.
        shuffle: draw the windows in a new random order at every epoch (every iteration).
        seed: seeds the shuffling; the same seed gives the same sequence of epoch orders.
        start_index: first step of ``data`` that windows may use (default 0).
        end_index: steps at or after ``end_index`` are not used (default ``len(data)``).
        dtype: dtype of the yielded x (fastrnn models train on float32); ``None`` keeps
            the dtype of ``data``. Floating targets are converted to the same dtype;
            integer targets (class labels) are kept.

    Returns:
        A :class:`WindowDataset`: re-iterable, ``len()`` = batches per epoch,
        ``.as_arrays()`` = all windows.

    Differences from Keras (each raises ``ValueError`` naming the argument where Keras
    silently returns an empty dataset, fails late, or lets the value through):

    * a window longer than the usable range (``(L - 1) * r + 1 > end - start``), or no
      window with a target, raises instead of yielding nothing;
    * ``end_index == len(data)`` is allowed (Keras requires ``end_index < len(data)``
      although it is exclusive), ``end_index <= start_index`` raises even when one of
      them is 0 (Keras checks them by truthiness, so ``end_index=0`` gives an empty
      dataset);
    * with ``start_index > 0`` the number of windows is limited by
      ``len(targets) - start_index`` (Keras limits it by ``len(targets)`` and then
      indexes past the end of the targets);
    * ``sequence_stride`` and ``sampling_rate`` may exceed ``len(data)`` as long as one
      window fits (Keras refuses them outright);
    * shuffling permutes all windows at every epoch with NumPy's generator; Keras
      shuffles the start positions once and then reshuffles within a buffer of
      ``8 * batch_size`` per epoch, so the orders differ from TensorFlow's even for the
      same seed;
    * x is converted to float32 by default (``dtype``), Keras keeps the data's dtype.
    """
    data = np.asarray(data, dtype=dtype)
    if data.ndim < 1 or data.shape[0] < 1:
        raise invalid("data", "an array with at least one time step along axis 0",
                      f"an array of shape {data.shape}")
    length = data.shape[0]
    sequence_length = positive_int("sequence_length", sequence_length)
    sequence_stride = positive_int("sequence_stride", sequence_stride)
    sampling_rate = positive_int("sampling_rate", sampling_rate)
    batch_size = optional_positive_int("batch_size", batch_size)
    if not isinstance(shuffle, (bool, np.bool_)):
        raise invalid("shuffle", "a bool", shuffle)
    if seed is not None and (not is_int(seed) or seed < 0):
        raise invalid("seed", "None or a non-negative integer", seed)

    start = 0 if start_index is None else non_negative_int("start_index", start_index)
    if start >= length:
        raise invalid("start_index", f"an index lower than len(data) = {length}", start_index)
    end = length if end_index is None else non_negative_int("end_index", end_index)
    if end > length:
        raise invalid("end_index", f"at most len(data) = {length} (it is exclusive)", end_index)
    if end <= start:
        raise invalid("end_index", f"an index greater than start_index = {start}", end_index)

    span = (sequence_length - 1) * sampling_rate + 1  # data steps covered by one window
    count = end - start - span + 1  # windows that fit, before the stride
    if count < 1:
        raise invalid(
            "sequence_length",
            f"a window that fits in the data: {sequence_length} steps at sampling_rate "
            f"{sampling_rate} span {span} steps, but start_index={start} and "
            f"end_index={end} leave {end - start}",
            sequence_length,
        )

    target_array = None
    if targets is not None:
        target_array = np.asarray(targets)
        if target_array.ndim < 1:
            raise invalid("targets", "None or an array indexed by time step along axis 0",
                          f"an array of shape {target_array.shape}")
        if np.issubdtype(target_array.dtype, np.floating) and dtype is not None:
            target_array = target_array.astype(dtype, copy=False)
        available = target_array.shape[0] - start
        if available < 1:
            raise invalid(
                "targets",
                f"a target for at least the window starting at start_index={start}",
                f"{target_array.shape[0]} targets",
            )
        count = min(count, available)

    # (end - start - span + 1, F..., span) -> (windows, span, F...), then keep every r-th
    # step and every stride-th window: all views of `data`, nothing is copied.
    view = sliding_window_view(data[start:end], span, axis=0)
    view = np.moveaxis(view, -1, 1)
    windows = view[:count:sequence_stride, ::sampling_rate]
    window_starts = start + np.arange(0, count, sequence_stride)
    window_targets = None
    if target_array is not None:
        window_targets = target_array[start:start + count:sequence_stride]
    return WindowDataset(windows, window_targets, window_starts, batch_size, bool(shuffle), seed)
