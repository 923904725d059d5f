"""Many series as a long table: checks that name the series, frequencies and future dates,
windows across series, per-series scalers, and the classic methods."""

from __future__ import annotations

import numpy as np
import pytest

from fastrnn.timeseries.classical import (
    classical_forecast,
    drift,
    naive,
    seasonal_indices,
    seasonal_naive,
    ses,
    theta,
)
from fastrnn.timeseries.panel import (
    Panel,
    PanelWindows,
    extend_times,
    fit_scalers,
    gather_windows,
    read_long_csv,
)


def _long(pd, rows):
    return pd.DataFrame(rows, columns=["unique_id", "ds", "y"])


@pytest.fixture
def pd():
    return pytest.importorskip("pandas")


def test_from_long_groups_series_of_different_lengths_and_starts(pd):
    df = pd.DataFrame({
        "unique_id": ["b", "a", "b", "a", "a"],
        "ds": pd.to_datetime(["2000-03-01", "1990-01-01", "2000-04-01", "1990-02-01",
                              "1990-03-01"]),
        "y": [5.0, 1.0, 6.0, 2.0, 3.0]})
    panel = Panel.from_long(df)
    assert panel.ids == ["b", "a"]  # first-appearance order
    np.testing.assert_array_equal(panel.values[0], [5.0, 6.0])
    np.testing.assert_array_equal(panel.values[1], [1.0, 2.0, 3.0])
    assert panel.freqs == [("months", 1), ("months", 1)]
    future = panel.future_times(2)
    assert [str(t)[:10] for t in future[0]] == ["2000-05-01", "2000-06-01"]
    assert [str(t)[:10] for t in future[1]] == ["1990-04-01", "1990-05-01"]
    assert panel.season() == [12, 12]


def test_configurable_column_names_and_list_of_arrays(pd):
    df = pd.DataFrame({"store": [1, 1, 2], "week": [3, 4, 10], "sales": [1.0, 2.0, 3.0]})
    panel = Panel.from_long(df, "store", "week", "sales")
    assert panel.ids == [1, 2] and panel.freqs[1] == ("int", 1)  # one time: borrowed
    np.testing.assert_array_equal(panel.future_times(2)[0], [5, 6])
    arrays = Panel.from_arrays([np.arange(3.0), np.arange(5.0)])
    assert arrays.ids == [0, 1] and list(arrays.lengths) == [3, 5]


@pytest.mark.parametrize("times, step, expected", [
    (["2001-01-31", "2001-02-28", "2001-03-31"], ("months", 1), ["2001-04-30", "2001-05-31"]),
    (["1990-01-01", "1990-04-01"], ("months", 3), ["1990-07-01", "1990-10-01"]),
    (["1990-01-01", "1991-01-01"], ("months", 12), ["1992-01-01", "1993-01-01"]),
    (["2020-01-06", "2020-01-13"], ("ns", 7 * 86400 * 10**9), ["2020-01-20", "2020-01-27"]),
])
def test_frequencies_and_their_continuation(times, step, expected):
    t = np.array(times, dtype="datetime64[ns]")
    panel = Panel(["s"], [np.ones(len(t))], [t])
    assert panel.freqs == [step]
    got = extend_times(t, step, 2)
    assert [str(v)[:10] for v in got] == expected


@pytest.mark.parametrize("rows, message", [
    ([("a", 1, 1.0), ("a", 1, 2.0)], "series 'a': duplicate rows for time 1"),
    ([("a", 2, 1.0), ("a", 1, 2.0)], "series 'a': times are not increasing"),
    ([("a", 1, 1.0), ("a", 2, 1.0), ("a", 4, 2.0)], "series 'a': a gap after time 2"),
    ([("a", 1, 1.0), ("b", 1, float("nan"))], "series 'b': the target is NaN"),
    ([("a", 1, 1.0), ("b", 1, "x")], "series 'b': column 'y' is not numeric"),
])
def test_bad_tables_name_the_series(pd, rows, message):
    with pytest.raises(ValueError, match=message):
        Panel.from_long(_long(pd, rows))


def test_unknown_columns_and_mixed_types(pd):
    df = _long(pd, [("a", 1, 1.0)])
    with pytest.raises(ValueError, match="`target_col`.*'value'"):
        Panel.from_long(df, target_col="value")
    with pytest.raises(ValueError, match="`df`"):
        Panel.coerce(42)


def test_read_long_csv(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text("id,date,value\nx,1990-01-01,1\nx,1990-02-01,2\ny,1995-01-01,3\n"
                    "y,1995-04-01,\n")
    with pytest.raises(ValueError, match="series 'y': the target is NaN"):
        read_long_csv(str(path), "id", "date", "value")
    path.write_text("id,date,value\nx,1990-01-01,1\nx,1990-02-01,2\ny,1995-01-01,3\n"
                    "y,1995-04-01,4\n")
    panel = read_long_csv(str(path), "id", "date", "value")
    assert panel.ids == ["x", "y"] and panel.freqs == [("months", 1), ("months", 3)]
    with pytest.raises(ValueError, match="`id_col`"):
        read_long_csv(str(path), "series", "date", "value")


def test_windows_cover_each_series_without_crossing(pd):
    lengths = np.array([10, 4, 7])
    windows = PanelWindows(lengths, window=3, horizon=2)
    # origins: series 0: 3..8; series 1 (shorter than window + horizon): 2..2; series 2: 3..5
    assert list(zip(windows.series.tolist(), windows.origins.tolist())) == (
        [(0, t) for t in range(3, 9)] + [(1, 2)] + [(2, t) for t in range(3, 6)])
    flat = np.arange(21.0)  # each value identifies its series and step
    offsets = np.array([0, 10, 14])
    values, inside = gather_windows(flat, offsets, lengths, np.array([1, 2]),
                                    np.array([2, 5]), 3, 2)
    # series 1 at origin 2: step -1 is padding (0, masked), then 10, 11 | 12, 13
    np.testing.assert_array_equal(values, [[0, 10, 11, 12, 13], [16, 17, 18, 19, 20]])
    np.testing.assert_array_equal(inside[0], [False, True, True, True, True])
    assert np.all(values[inside] >= offsets[[1, 2]].repeat(inside.sum(1)))


def test_history_limit_keeps_the_last_origins():
    windows = PanelWindows(np.array([10, 4]), window=3, horizon=2, history_limit=2)
    assert list(zip(windows.series.tolist(), windows.origins.tolist())) == [
        (0, 7), (0, 8), (1, 2)]


def test_window_weights_are_probabilities():
    windows = PanelWindows(np.array([5, 5]), 2, 1, weights=np.r_[np.ones(3), np.zeros(3)])
    series, _ = windows.sample(np.random.default_rng(0), 200)
    assert set(series.tolist()) == {0}
    with pytest.raises(ValueError, match="`weights`"):
        PanelWindows(np.array([5]), 2, 1, weights=np.array([-1.0, 1, 1]))


def test_scalers():
    values = [np.array([1.0, 2.0, 3.0, 100.0]), np.array([5.0, 5.0])]
    standard = fit_scalers(values, "standard")
    np.testing.assert_allclose(standard[0], [26.5, np.std(values[0])])
    assert standard[1, 1] == 1.0  # a constant series: scale 1, not 0
    robust = fit_scalers(values, "robust")
    q1, med, q3 = np.percentile(values[0], [25, 50, 75])
    np.testing.assert_allclose(robust[0], [med, (q3 - q1) / 1.349])
    np.testing.assert_allclose(fit_scalers(values, "mean_abs")[0], [0.0, 26.5])
    with pytest.raises(ValueError, match="`scaler`"):
        fit_scalers(values, "minmax")


def test_classic_methods():
    y = np.array([1.0, 3.0, 2.0, 4.0, 3.0, 5.0])
    np.testing.assert_array_equal(naive(y, 3), [5, 5, 5])
    np.testing.assert_array_equal(seasonal_naive(y, 5, 2), [3, 5, 3, 5, 3])
    np.testing.assert_allclose(drift(y, 2), [5.8, 6.6])
    # SES of a constant series is that constant; Theta continues a straight line at half
    # its slope (SES's alpha -> 1 keeps the last value; the theta = 2 line adds b/2 a step)
    np.testing.assert_allclose(ses(np.full(10, 4.0), 3), 4.0)
    line = 2.0 + 0.5 * np.arange(30)
    np.testing.assert_allclose(theta(line, 4), line[-1] + 0.25 * np.arange(1, 5), rtol=1e-4)
    with pytest.raises(ValueError, match="`method`"):
        classical_forecast("arima", y, 2)


def test_ses_matches_statsmodels():
    holtwinters = pytest.importorskip("statsmodels.tsa.holtwinters")
    rng = np.random.default_rng(3)
    y = 10 + np.cumsum(rng.normal(size=60)) * 0.3 + rng.normal(size=60)
    fit = holtwinters.SimpleExpSmoothing(y, initialization_method="estimated").fit()
    # both minimise the same squared one-step errors over alpha and the initial level;
    # ours on a 0.0002-wide grid of alpha, so they agree to the flatness of the optimum
    np.testing.assert_allclose(ses(y, 3), fit.forecast(3), rtol=2e-3)


def test_seasonal_indices_recover_a_multiplicative_season():
    season = np.array([0.8, 1.0, 1.2, 1.0])
    y = np.tile(season, 10) * 100.0
    np.testing.assert_allclose(seasonal_indices(y, 4), season, rtol=1e-12)
    forecast = theta(y * np.linspace(1, 1.01, 40), 4, season=4)
    assert np.argmax(forecast) == 2 and np.argmin(forecast) == 0
