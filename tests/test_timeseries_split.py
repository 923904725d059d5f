"""Chronological splits and scalers."""

import numpy as np
import pytest

from fastrnn.timeseries import (
    MinMaxScaler,
    StandardScaler,
    split_points,
    train_val_test_split,
)


def test_fraction_split_is_chronological_and_rounds_down():
    data = np.arange(101)
    train, val, test = train_val_test_split(data, train=0.5, val=0.25)
    assert train.tolist() == list(range(50))  # int(0.5 * 101) = 50, like the Jena code
    assert val.tolist() == list(range(50, 75))
    assert test.tolist() == list(range(75, 101))
    assert np.shares_memory(train, data)  # views, no copy


def test_count_split_and_unused_tail():
    data = np.arange(40).reshape(20, 2)
    train, val, test = train_val_test_split(data, train=10, val=4, test=3)
    assert train.shape == (10, 2) and val.shape == (4, 2) and test.shape == (3, 2)
    assert test[0, 0] == 28 and test[-1, 0] == 32  # steps 14..16; 17..19 unused
    assert split_points(20, 10, 4, 3) == (10, 14, 17)
    assert split_points(20, 0.6, 0) == (12, 12, 20)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"train": 0.0}, "`train`"),
        ({"train": 1.5}, "`train`: expected a non-negative step count"),
        ({"val": -2}, "`val`"),
        ({"train": 0.7, "val": 0.4}, "ask for 7 \\+ 4 \\+ 0 = 11 steps"),
        ({"train": 5, "val": 5, "test": 1}, "5 \\+ 5 \\+ 1 = 11 steps, but the data has only 10"),
        ({"train": "half"}, "`train`"),
    ],
)
def test_split_errors(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        train_val_test_split(np.arange(10), **kwargs)


def test_split_rejects_scalars():
    with pytest.raises(ValueError, match="`data`"):
        train_val_test_split(np.float64(1.0))


def test_standard_scaler_fits_on_train_only_per_feature():
    rng = np.random.default_rng(0)
    data = np.stack([rng.normal(5, 2, 500), rng.normal(-3, 0.5, 500)], axis=1)
    data[400:] += 100  # the future is different; it must not leak into the statistics
    train, _, test = train_val_test_split(data, 0.6, 0.2)
    scaler = StandardScaler().fit(train)
    assert np.allclose(scaler.mean_, train.mean(axis=0))
    assert np.allclose(scaler.scale_, train.std(axis=0))
    scaled = scaler.transform(train)
    assert np.allclose(scaled.mean(axis=0), 0, atol=1e-12)
    assert np.allclose(scaled.std(axis=0), 1)
    assert scaler.transform(test).mean() > 10  # test stays off-scale: not refitted
    assert np.allclose(scaler.inverse_transform(scaler.transform(test)), test)


def test_standard_scaler_on_windows_and_forecasts_of_one_feature():
    rng = np.random.default_rng(1)
    train = (rng.normal(size=(300, 3)) * [1, 10, 100] + [0, 5, 50]).astype(np.float32)
    scaler = StandardScaler().fit(train)
    windows = train[:200].reshape(20, 10, 3)  # (B, T, F) works too
    assert scaler.transform(windows).dtype == np.float32
    assert np.allclose(scaler.transform(windows).reshape(200, 3), scaler.transform(train[:200]),
                       atol=1e-6)
    forecast_scaled = scaler.transform(train[:12, 2], feature=2).reshape(4, 3)  # (B, H)
    back = scaler.inverse_transform(forecast_scaled, feature=2)
    assert np.allclose(back.reshape(-1), train[:12, 2], rtol=1e-5)
    with pytest.raises(ValueError, match="last axis of 3 features"):
        scaler.transform(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="`feature`"):
        scaler.inverse_transform(np.zeros(3), feature=3)


def test_scalers_handle_constant_columns_and_1d_series():
    data = np.stack([np.full(10, 7.0), np.arange(10.0)], axis=1)
    standard = StandardScaler().fit(data)
    assert np.array_equal(standard.transform(data)[:, 0], np.zeros(10))
    minmax = MinMaxScaler().fit(data)
    out = minmax.transform(data)
    assert np.all(np.isfinite(out)) and np.array_equal(out[:, 0], np.zeros(10))
    assert out[:, 1].min() == 0 and out[:, 1].max() == 1
    assert np.allclose(minmax.inverse_transform(out), data)
    series = np.arange(5.0)
    one = StandardScaler().fit(series)
    assert one.mean_.shape == () and one.n_features_ is None
    assert np.allclose(one.inverse_transform(one.transform(series)), series)
    with pytest.raises(ValueError, match="`feature`"):
        one.transform(series, feature=0)


def test_minmax_feature_range_and_out_of_range_values():
    scaler = MinMaxScaler(feature_range=(-1, 1)).fit(np.array([[0.0], [10.0]]))
    assert np.allclose(scaler.transform(np.array([[0.0], [5.0], [20.0]]))[:, 0], [-1, 0, 3])
    with pytest.raises(ValueError, match="`feature_range`"):
        MinMaxScaler(feature_range=(1, 1))


def test_scaler_errors():
    with pytest.raises(RuntimeError, match="not fitted"):
        StandardScaler().transform(np.zeros(3))
    with pytest.raises(RuntimeError, match="not fitted"):
        MinMaxScaler().inverse_transform(np.zeros(3))
    with pytest.raises(ValueError, match="finite values"):
        StandardScaler().fit(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="non-empty"):
        MinMaxScaler().fit(np.zeros((0, 2)))
    with pytest.raises(ValueError, match="numeric"):
        StandardScaler().fit(np.array(["a", "b"]))
    integers = StandardScaler().fit_transform(np.arange(4))
    assert integers.dtype == np.float64


# Extreme but finite ranges: statistics in float64 without overflow.
HUGE = np.finfo(np.float64).max / 2


@pytest.mark.parametrize("scaler_class", [StandardScaler, MinMaxScaler])
@pytest.mark.parametrize(
    "data",
    [
        np.array([-HUGE, 0.0, HUGE]),              # max - min overflows
        np.array([HUGE, HUGE * 0.5, HUGE]),        # the sum overflows
        np.array([1e-310, 3e-310, 2e-310]),        # subnormal: a tiny spread
        np.array([1e300, 1e300 + 1e285, 1e300 - 1e285]),
        np.array([3e38, -3e38, 1e38], dtype=np.float32),  # near float32's limit
    ],
    ids=["wide", "sum-overflow", "subnormal", "offset", "float32"],
)
def test_scalers_on_extreme_finite_ranges(scaler_class, data):
    scaler = scaler_class().fit(data)
    out = scaler.transform(data)
    assert np.all(np.isfinite(out)), out
    assert out.dtype == data.dtype
    # a real scaling: distinct inputs stay distinct, in the same order
    assert np.array_equal(np.argsort(out, kind="stable"), np.argsort(data, kind="stable"))
    if scaler_class is MinMaxScaler:
        assert np.isclose(out.min(), 0.0) and np.isclose(out.max(), 1.0)
    else:
        assert abs(float(np.mean(out.astype(np.float64)))) < 1e-6
        assert np.isclose(np.std(out.astype(np.float64)), 1.0, rtol=1e-5)
    back = scaler.inverse_transform(out)
    assert np.all(np.isfinite(back))
    assert np.allclose(back.astype(np.float64), data.astype(np.float64), rtol=1e-5, atol=0)


def test_scalers_refuse_results_outside_the_dtype_range():
    scaler = StandardScaler().fit(np.array([0.0, 1e-300]))
    with pytest.raises(ValueError, match="outside the range of float64"):
        scaler.transform(np.array([1e10]))  # 1e10 / 5e-301: not a float64
    wide = MinMaxScaler().fit(np.array([0.0, 1e30], dtype=np.float32))
    with pytest.raises(ValueError, match="outside the range of float32"):
        wide.inverse_transform(np.array([1e9], dtype=np.float32))  # 1e39: not a float32
    with pytest.raises(ValueError, match="`feature_range`"):
        MinMaxScaler(feature_range=(-np.inf, 1.0))
    with pytest.raises(ValueError, match="`feature_range`"):
        MinMaxScaler(feature_range=(0.0, np.nan))
    with pytest.raises(ValueError, match="too wide"):
        MinMaxScaler(feature_range=(0.0, 1e-300)).fit(np.array([-HUGE, HUGE]))
