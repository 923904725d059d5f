"""Synthetic series and supervised targets from Hands-On ML, chapter 15.

Dimension letters used in the shapes below: B = batch (number of series), T = time steps,
F = features, H = forecast horizon.
"""

from __future__ import annotations

from typing import Optional, Union

import numpy as np

from ._checks import invalid, is_int, positive_int

SeedLike = Union[int, np.random.RandomState, None]


def generate_time_series(batch_size: int, n_steps: int, seed: SeedLike = None) -> np.ndarray:
    """Generates the book's noisy two-sine series.

    Each series is ``0.5 sin((t - o1)(10 f1 + 10)) + 0.2 sin((t - o2)(20 f2 + 20))`` plus
    uniform noise in [-0.05, 0.05), over ``t = linspace(0, 1, n_steps)``, with the
    frequencies ``f1, f2`` and offsets ``o1, o2`` drawn uniformly in [0, 1) per series.

    Args:
        batch_size: number of series B.
        n_steps: number of time steps T.
        seed: ``None`` draws from NumPy's legacy global state (``np.random.rand``) exactly
            like the book, so ``np.random.seed(42)`` followed by ``seed=None`` gives the
            book's arrays bit for bit. An int (or a ``RandomState``) uses a private
            ``RandomState`` instead and leaves the global state alone; ``seed=42`` gives
            the same arrays as the book's ``np.random.seed(42)``.

    Returns:
        float32 array of shape (B, T, 1).
    """
    batch_size = positive_int("batch_size", batch_size)
    n_steps = positive_int("n_steps", n_steps)
    if seed is None:
        rand = np.random.rand  # the book's global legacy generator
    elif isinstance(seed, np.random.RandomState):
        rand = seed.rand
    elif is_int(seed) and seed >= 0:
        rand = np.random.RandomState(int(seed)).rand
    else:
        raise invalid("seed", "None, a non-negative integer or a numpy RandomState", seed)
    # Same operations in the same order as the book, so float64 rounding matches too.
    freq1, freq2, offsets1, offsets2 = rand(4, batch_size, 1)
    time = np.linspace(0, 1, n_steps)
    series = 0.5 * np.sin((time - offsets1) * (freq1 * 10 + 10))
    series += 0.2 * np.sin((time - offsets2) * (freq2 * 20 + 20))
    series += 0.1 * (rand(batch_size, n_steps) - 0.5)
    return series[..., np.newaxis].astype(np.float32)


def _as_batch_of_series(name: str, series: np.ndarray) -> np.ndarray:
    series = np.asarray(series)
    if series.ndim == 2:
        series = series[..., np.newaxis]
    if series.ndim != 3:
        raise invalid(name, "an array of shape (batch, steps) or (batch, steps, features)",
                      f"an array of shape {series.shape}")
    return series


def make_seq2seq_targets(
    series: np.ndarray, n_steps: int, horizon: int, feature: int = 0
) -> np.ndarray:
    """Builds the book's sequence-to-sequence targets.

    At every input step t (0 <= t < n_steps) the target holds the next ``horizon`` values:
    ``Y[:, t, k - 1] = series[:, t + k, feature]`` for k = 1..H, i.e. the book's
    ``Y[..., step_ahead - 1] = series[..., step_ahead:step_ahead + n_steps, 0]``.

    Args:
        series: (B, T) or (B, T, F) with T >= n_steps + horizon; typically
            ``generate_time_series(B, n_steps + horizon)``.
        n_steps: input length; the inputs are ``series[:, :n_steps]``.
        horizon: H, the number of future values predicted at each step.
        feature: which feature is forecast (the book's series have only feature 0).

    Returns:
        (B, n_steps, H) array with the dtype of ``series``.
    """
    series = _as_batch_of_series("series", series)
    n_steps = positive_int("n_steps", n_steps)
    horizon = positive_int("horizon", horizon)
    if series.shape[1] < n_steps + horizon:
        raise invalid(
            "series",
            f"at least n_steps + horizon = {n_steps + horizon} time steps",
            f"{series.shape[1]} steps (shape {series.shape})",
        )
    if not is_int(feature) or not -series.shape[2] <= feature < series.shape[2]:
        raise invalid("feature", f"an index into {series.shape[2]} features", feature)
    targets = np.empty((series.shape[0], n_steps, horizon), dtype=series.dtype)
    for step_ahead in range(1, horizon + 1):
        targets[:, :, step_ahead - 1] = series[:, step_ahead:step_ahead + n_steps, feature]
    return targets


def make_windows(
    series: np.ndarray,
    window: int,
    horizon: int = 1,
    target: Optional[int] = None,
    stride: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Cuts one long series into (input window, next ``horizon`` values) pairs.

    Window j covers ``series[j*stride : j*stride + window]`` and its target is
    ``series[j*stride + window : j*stride + window + horizon]``. Unlike
    ``timeseries_dataset_from_array`` this copies every window: use it for the small
    training sets of baselines and backtests.

    Args:
        series: (T,) or (T, F).
        window: input length L.
        horizon: H.
        target: feature forecast when F > 1; ``None`` needs F == 1 (or a 1-D series).
        stride: distance between consecutive window starts.

    Returns:
        x: float32 (N, L, F) with F = 1 for a 1-D series; y: float32 (N, H).
    """
    values = np.asarray(series, dtype=np.float32)
    if values.ndim == 1:
        values = values[:, np.newaxis]
    if values.ndim != 2:
        raise invalid("series", "an array of shape (steps,) or (steps, features)",
                      f"an array of shape {values.shape}")
    window = positive_int("window", window)
    horizon = positive_int("horizon", horizon)
    stride = positive_int("stride", stride)
    n_features = values.shape[1]
    if target is None:
        if n_features != 1:
            raise invalid("target", f"a feature index for a series with {n_features} features",
                          None)
        target = 0
    elif not is_int(target) or not -n_features <= target < n_features:
        raise invalid("target", f"an index into {n_features} features", target)
    count = values.shape[0] - window - horizon + 1
    if count < 1:
        raise invalid("series", f"at least window + horizon = {window + horizon} steps",
                      f"{values.shape[0]} steps")
    starts = np.arange(0, count, stride)
    x = values[starts[:, None] + np.arange(window)]
    y = values[starts[:, None] + window + np.arange(horizon), target]
    return x, y


def _origins(series: np.ndarray, origins: object, before: int, after: int) -> np.ndarray:
    values = np.asarray(series)
    if values.ndim != 1:
        raise invalid("series", "a 1-D series (steps,)", f"an array of shape {values.shape}")
    starts = np.asarray(origins)
    if starts.ndim != 1 or not (np.issubdtype(starts.dtype, np.integer) or starts.size == 0):
        raise invalid("origins", "a 1-D array of integer step indices", origins)
    starts = starts.astype(np.int64)
    if starts.size and (starts.min() < before or starts.max() + after > values.size):
        raise invalid("origins", f"indices in [{before}, {values.size - after}] for a series "
                      f"of {values.size} steps", f"indices from {starts.min()} to "
                      f"{starts.max()}")
    return starts


def windows_before(series: np.ndarray, origins: object, window: int) -> np.ndarray:
    """The ``window`` values just before each forecast origin: the model inputs for
    forecasts made at those steps.

    Args:
        series: (T,).
        origins: (N,) step indices; origin t uses ``series[t - window : t]``.
        window: L.

    Returns:
        float32 (N, L, 1).
    """
    window = positive_int("window", window)
    starts = _origins(series, origins, window, 0)
    values = np.asarray(series)
    return values[starts[:, None] - window + np.arange(window)][..., None].astype(np.float32)


def values_from(series: np.ndarray, origins: object, horizon: int) -> np.ndarray:
    """The ``horizon`` values from each origin on: the targets (or the truth) of forecasts
    made at those steps.

    Args:
        series: (T,).
        origins: (N,) step indices; origin t gives ``series[t : t + horizon]``.
        horizon: H.

    Returns:
        float32 (N, H).
    """
    horizon = positive_int("horizon", horizon)
    starts = _origins(series, origins, 0, horizon)
    values = np.asarray(series)
    return values[starts[:, None] + np.arange(horizon)].astype(np.float32)
