"""Chronological splits and per-feature scalers fitted on the training part only.

Scalers treat the last axis as features when the data has two or more axes
((T, F), (B, T, F), ...) and the whole array as one feature when it is 1-D.
"""

from __future__ import annotations

from typing import Any, Optional, Union

import numpy as np

from ._checks import invalid, is_int

Size = Union[int, float]


def _part_size(name: str, value: Any, total: int) -> int:
    if is_int(value):
        if value < 0:
            raise invalid(name, "a non-negative step count or a fraction in [0, 1]", value)
        return int(value)
    if isinstance(value, float) and 0.0 <= value <= 1.0:
        return int(value * total)  # floor, as in Deep Learning with Python's Jena split
    raise invalid(name, "a non-negative step count (int) or a fraction in [0, 1] (float)", value)


def split_points(
    length: int, train: Size = 0.7, val: Size = 0.15, test: Optional[Size] = None
) -> tuple[int, int, int]:
    """Boundaries of a chronological split of ``length`` steps.

    Fractions are rounded down (``int(0.5 * T)``), counts are taken as they are.
    ``test=None`` gives the test part every step after the validation part.

    Returns:
        ``(train_end, val_end, test_end)``: the parts are ``[0, train_end)``,
        ``[train_end, val_end)`` and ``[val_end, test_end)``; usable as
        ``start_index``/``end_index`` of :func:`timeseries_dataset_from_array`.
    """
    if not is_int(length) or length < 1:
        raise invalid("length", "a positive integer", length)
    n_train = _part_size("train", train, length)
    n_val = _part_size("val", val, length)
    n_test = 0 if test is None else _part_size("test", test, length)
    if n_train < 1:
        raise invalid("train", f"a part of at least one step out of {length}", train)
    if n_train + n_val + n_test > length:
        raise ValueError(
            f"Received invalid split sizes: train={train!r}, val={val!r}, test={test!r} ask "
            f"for {n_train} + {n_val} + {n_test} = {n_train + n_val + n_test} steps, but the "
            f"data has only {length}."
        )
    if test is None:
        n_test = length - n_train - n_val
    return n_train, n_train + n_val, n_train + n_val + n_test


def train_val_test_split(
    data: Any, train: Size = 0.7, val: Size = 0.15, test: Optional[Size] = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Splits a series along time (axis 0) into train, validation and test parts.

    Never shuffles: the validation part follows the training part and the test part
    follows the validation part, so no model sees the future. Each size is a fraction
    of the steps (float, rounded down) or a number of steps (int); ``test=None`` takes
    the rest. Sizes that sum to less than the data leave the last steps unused.

    Args:
        data: (T, ...) array.

    Returns:
        Views ``(data[:a], data[a:b], data[b:c])``; the validation or test part may be
        empty when its size is 0.
    """
    data = np.asarray(data)
    if data.ndim < 1:
        raise invalid("data", "an array with a time axis", f"a scalar {data!r}")
    train_end, val_end, test_end = split_points(data.shape[0], train, val, test)
    return data[:train_end], data[train_end:val_end], data[val_end:test_end]


def _power_of_two_scale(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Per-feature exponents e with |x| * 2**-e < 1 (0 for an all-zero feature): dividing by
    a power of two is exact, so statistics of ``x * 2**-e`` scaled back are those of ``x``,
    without the overflow of summing or subtracting values near the float64 limit."""
    _, exponents = np.frexp(np.max(np.abs(x), axis=axes))
    return exponents


def _out_of_range(x: np.ndarray, out: np.ndarray, out_dtype: Any, what: str) -> None:
    """Refuses results that are not numbers of ``out_dtype`` although their inputs were."""
    with np.errstate(over="ignore"):
        cast = out.astype(out_dtype, copy=False)
    bad = ~np.isfinite(cast) & np.isfinite(x)
    if bad.any():
        raise ValueError(
            f"{what}: {int(bad.sum())} value(s) map outside the range of "
            f"{np.dtype(out_dtype).name} (e.g. {x[bad].flat[0]!r} -> "
            f"{out[bad].flat[0]!r}); the data is far outside the fitted range."
        )


class _Scaler:
    """Shared plumbing: fit statistics per feature, then map arrays with them.

    Subclasses give ``(center, scale, shift)`` per feature: ``transform(x) = (x - center) /
    scale + shift``. Both directions compute in float64 and never overflow in an
    intermediate step when the result itself is a float64 number.
    """

    _fitted_attribute = ""

    def __init__(self) -> None:
        self.n_features_: Optional[int] = None  # None: fitted on a 1-D series

    @staticmethod
    def _check_values(name: str, x: Any) -> np.ndarray:
        x = np.asarray(x)
        if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
            raise invalid(name, "a numeric array", f"dtype {x.dtype}")
        if x.size == 0:
            raise invalid(name, "a non-empty array", f"shape {x.shape}")
        return x

    def _reduce_axes(self, x: np.ndarray) -> tuple[int, ...]:
        return tuple(range(x.ndim - 1)) if x.ndim >= 2 else (0,)

    def _prepare_fit(self, x: Any) -> np.ndarray:
        x = self._check_values("x", x).astype(np.float64)
        if not np.all(np.isfinite(x)):
            raise invalid("x", "finite values (fill NaN gaps before fitting a scaler)",
                          f"{int(np.sum(~np.isfinite(x)))} non-finite values")
        self.n_features_ = x.shape[-1] if x.ndim >= 2 else None
        return x

    def _stats(self) -> tuple[np.ndarray, np.ndarray, float]:
        raise NotImplementedError

    def _select(self, x: Any, feature: Optional[int]
                ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, float], Any]:
        if self.n_features_ is None and not hasattr(self, self._fitted_attribute):
            raise RuntimeError(f"{type(self).__name__} is not fitted yet: call fit(train) first.")
        x = self._check_values("x", x)
        out_dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
        center, scale, shift = self._stats()
        if feature is not None:
            if self.n_features_ is None:
                raise invalid("feature", "None for a scaler fitted on a 1-D series", feature)
            if not is_int(feature) or not -self.n_features_ <= feature < self.n_features_:
                raise invalid("feature", f"an index into {self.n_features_} features", feature)
            center, scale = center[feature], scale[feature]
        elif self.n_features_ is not None and self.n_features_ > 1:
            if x.ndim < 1 or x.shape[-1] != self.n_features_:
                raise invalid(
                    "x",
                    f"a last axis of {self.n_features_} features (or pass `feature=` to "
                    "map values of one feature, e.g. forecasts of the target column)",
                    f"shape {x.shape}",
                )
        return x, (center, scale, shift), out_dtype

    def transform(self, x: Any, feature: Optional[int] = None) -> np.ndarray:
        """Scales x (same shape). ``feature=k`` scales values of feature k only
        (any shape, e.g. (B, H) forecasts).

        Raises:
            ValueError: a finite value maps outside the range of the output dtype.
        """
        x, (center, scale, shift), out_dtype = self._select(x, feature)
        wide = x.astype(np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            out = (wide - center) / scale
            overflowed = ~np.isfinite(out) & np.isfinite(wide)
            if overflowed.any():  # x - center beyond float64: divide first
                out = np.where(overflowed, wide / scale - center / scale, out)
            out = out + shift
        _out_of_range(x, out, out_dtype, f"{type(self).__name__}.transform")
        return out.astype(out_dtype, copy=False)

    def inverse_transform(self, x: Any, feature: Optional[int] = None) -> np.ndarray:
        """Maps scaled values back to the data's units (same shape). ``feature=k`` treats
        every value as feature k, e.g. (B, H) forecasts of a target column.

        Raises:
            ValueError: a finite value maps outside the range of the output dtype.
        """
        x, (center, scale, shift), out_dtype = self._select(x, feature)
        wide = x.astype(np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            out = (wide - shift) * scale + center
            overflowed = ~np.isfinite(out) & np.isfinite(wide)
            if overflowed.any():  # an intermediate beyond float64: halve it (exactly)
                half = ((wide - shift) * (scale / 2) + center / 2) * 2
                out = np.where(overflowed, half, out)
        _out_of_range(x, out, out_dtype, f"{type(self).__name__}.inverse_transform")
        return out.astype(out_dtype, copy=False)

    def fit_transform(self, x: Any) -> np.ndarray:
        return self.fit(x).transform(x)


class StandardScaler(_Scaler):
    """Standardises each feature: ``(x - mean) / std`` with statistics of the data given
    to ``fit`` (the training part only, never the validation or test parts).

    A constant feature (std 0) gets a scale of 1, so it maps to 0 instead of NaN.
    Statistics are float64 and exact for data anywhere in the float64 range.

    Attributes after fit: ``mean_`` and ``scale_``, shape (F,) or () for a 1-D series.
    """

    _fitted_attribute = "mean_"

    def fit(self, x: Any) -> StandardScaler:
        """x: (T,), (T, F) or (B, T, F); statistics over every axis but the last."""
        x = self._prepare_fit(x)
        axes = self._reduce_axes(x)
        exponents = _power_of_two_scale(x, axes)
        scaled = np.ldexp(x, -exponents)  # |scaled| < 1, per feature
        self.mean_ = np.ldexp(scaled.mean(axis=axes), exponents)
        std = np.ldexp(scaled.std(axis=axes), exponents)
        self.scale_ = np.where(std > 0, std, 1.0)
        return self

    def _stats(self) -> tuple[np.ndarray, np.ndarray, float]:
        return self.mean_, self.scale_, 0.0


class MinMaxScaler(_Scaler):
    """Maps each feature's training range [min, max] linearly onto ``feature_range``.

    A constant feature (max == min) gets a range of 1, so it maps to the lower bound of
    ``feature_range``. Values outside the training range map outside ``feature_range``
    (no clipping: test data may exceed the training extremes).

    Attributes after fit: ``data_min_``, ``data_max_``, shape (F,) or ().
    """

    _fitted_attribute = "data_min_"

    def __init__(self, feature_range: tuple[float, float] = (0.0, 1.0)) -> None:
        super().__init__()
        low, high = feature_range
        if not (np.isfinite(low) and np.isfinite(high) and low < high
                and np.isfinite(float(high) - float(low))):
            raise invalid("feature_range", "a pair of finite numbers (low, high) with "
                          "low < high", feature_range)
        self.feature_range = (float(low), float(high))

    def fit(self, x: Any) -> MinMaxScaler:
        """x: (T,), (T, F) or (B, T, F); extremes over every axis but the last.

        Raises:
            ValueError: the training range is too wide (or too narrow) for
                ``feature_range`` to be a float64 scale factor.
        """
        x = self._prepare_fit(x)
        axes = self._reduce_axes(x)
        data_min, data_max = x.min(axis=axes), x.max(axis=axes)
        low, high = self.feature_range
        # range / (high - low), in halves where max - min is beyond float64
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            data_range = data_max - data_min
            half = data_max / 2 - data_min / 2
            scale = np.where(np.isfinite(data_range), data_range / (high - low),
                             half / ((high - low) / 2))
        scale = np.where(data_max > data_min, scale, 1.0 / (high - low))
        if not np.all(np.isfinite(scale) & (scale > 0)):
            raise ValueError(
                f"MinMaxScaler: the training range [{data_min!r}, {data_max!r}] is too wide "
                f"(or too narrow) to map onto feature_range={self.feature_range} in float64."
            )
        self.data_min_, self.data_max_, self._scale = data_min, data_max, scale
        return self

    def _stats(self) -> tuple[np.ndarray, np.ndarray, float]:
        # x_scaled = (x - data_min) / scale + low, data_max mapping to high
        return self.data_min_, self._scale, self.feature_range[0]
