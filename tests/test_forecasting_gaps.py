"""fill_gaps: missing periods and NaN values filled by ffill / zero / interpolate, against
plain-NumPy expectations; the default still refuses them; bad names and absurd grids
refused."""

from __future__ import annotations

import numpy as np
import pytest

from fastrnn.forecasting import RNNForecaster, StatsForecaster
from fastrnn.timeseries.panel import Panel

pd = pytest.importorskip("pandas")


def _gappy():
    """Series 'a' (monthly) lacks March and May 2000 and has a NaN in July; 'b' is whole.
    A promo covariate lacks the same rows."""
    a_times = ["2000-01-01", "2000-02-01", "2000-04-01", "2000-06-01", "2000-07-01",
               "2000-08-01"]
    a = pd.DataFrame({"unique_id": "a", "ds": pd.to_datetime(a_times),
                      "y": [1.0, 2.0, 4.0, 8.0, np.nan, 10.0],
                      "promo": [0.0, 1.0, 3.0, 5.0, 6.0, 7.0]})
    b = pd.DataFrame({"unique_id": "b", "ds": pd.date_range("2001-01-01", periods=4,
                                                            freq="MS"),
                      "y": [5.0, 6.0, 7.0, 8.0], "promo": 0.0})
    return pd.concat([a, b], ignore_index=True)


@pytest.mark.parametrize("method, expected", [
    # grid Jan..Aug: Mar, May absent; Jul NaN
    ("ffill", [1, 2, 2, 4, 4, 8, 8, 10]),
    ("zero", [1, 2, 0, 4, 0, 8, 0, 10]),
    ("interpolate", [1, 2, 3, 4, 6, 8, 9, 10]),
])
def test_missing_periods_and_nan_are_filled(method, expected):
    panel = Panel.from_long(_gappy(), covariates=["promo"], fill_gaps=method)
    np.testing.assert_array_equal(panel.values[0], expected)
    assert [str(t)[:7] for t in panel.times[0]] == [f"2000-0{m}" for m in range(1, 9)]
    assert panel.freqs[0] == ("months", 1)
    np.testing.assert_array_equal(panel.filled, [3, 0])
    promo = {"ffill": [0, 1, 1, 3, 3, 5, 6, 7], "zero": [0, 1, 0, 3, 0, 5, 6, 7],
             "interpolate": [0, 1, 2, 3, 4, 5, 6, 7]}[method]
    np.testing.assert_array_equal(panel.covariates[0][:, 0], promo)
    np.testing.assert_array_equal(panel.values[1], [5, 6, 7, 8])


def test_integer_times_fill_at_their_own_step():
    panel = Panel.from_arrays([np.array([1.0, np.nan, 3.0])], fill_gaps="interpolate")
    np.testing.assert_array_equal(panel.values[0], [1, 2, 3])
    df = pd.DataFrame({"unique_id": 0, "ds": [0, 2, 4, 10], "y": [0.0, 2.0, 4.0, 10.0]})
    panel = Panel.from_long(df, fill_gaps="interpolate")
    np.testing.assert_array_equal(panel.times[0], [0, 2, 4, 6, 8, 10])
    np.testing.assert_array_equal(panel.values[0], [0, 2, 4, 6, 8, 10])
    assert panel.future_times(2)[0].tolist() == [12, 14]
    with pytest.raises(ValueError, match="series 0: the times are irregular"):
        Panel.from_long(df.assign(ds=[0, 2, 5, 10]), fill_gaps="zero")


def test_without_fill_gaps_the_errors_stay_and_name_the_series():
    df = _gappy()
    with pytest.raises(ValueError, match="series 'a': a gap after time 2000-02-01"):
        Panel.from_long(df.dropna())
    nan = pd.DataFrame({"unique_id": "b", "ds": [1, 2, 3], "y": [1.0, np.nan, 2.0]})
    with pytest.raises(ValueError, match="series 'b': the target is NaN.*fill_gaps="):
        Panel.from_long(nan)
    lead = pd.DataFrame({"unique_id": "c", "ds": [1, 2, 3], "y": [np.nan, 1.0, 2.0]})
    with pytest.raises(ValueError, match="series 'c': the target starts with a missing"):
        Panel.from_long(lead, fill_gaps="ffill")
    np.testing.assert_array_equal(Panel.from_long(lead, fill_gaps="interpolate").values[0],
                                  [1, 1, 2])


def test_bad_names_and_absurd_grids_are_refused():
    for make in (lambda: Panel.from_long(_gappy(), fill_gaps="linear"),
                 lambda: RNNForecaster(h=2, fill_gaps="bfill"),
                 lambda: StatsForecaster("naive", fill_gaps=True)):
        with pytest.raises(ValueError, match=r"`fill_gaps`.*'ffill', 'zero', 'interpolate'"):
            make()
    # one-second steps with a year missing: 31.5 million rows for 3 values, refused
    t = np.array(["2020-01-01T00:00:00", "2020-01-01T00:00:01", "2021-01-01T00:00:00"],
                 dtype="datetime64[ns]")
    with pytest.raises(ValueError, match="series 's': filling its gaps would make 31622401"):
        Panel(["s"], [np.ones(3)], [t], fill_gaps="zero")


def test_the_callers_lists_are_not_changed():
    values, times = [np.array([1.0, np.nan, 3.0])], [np.array([0, 1, 2])]
    Panel([0], values, times, fill_gaps="zero")
    assert np.isnan(values[0][1]) and len(times[0]) == 3


def test_forecasters_fill_before_fitting():
    df = _gappy()
    out = StatsForecaster("naive", h=2, fill_gaps="ffill").fit(df).predict()
    np.testing.assert_array_equal(out.forecast, [10, 10, 8, 8])
    assert [str(t)[:7] for t in out.ds[:2]] == ["2000-09", "2000-10"]
    model = RNNForecaster(h=2, input_size=3, units=4, epochs=1, steps_per_epoch=3,
                          fill_gaps="interpolate")
    out = model.fit(df).predict()
    assert len(out) == 4 and np.all(np.isfinite(out.forecast))
    assert model.get_config()["fill_gaps"] == "interpolate"
    np.testing.assert_array_equal(model.panel_.values[0], [1, 2, 3, 4, 6, 8, 9, 10])
