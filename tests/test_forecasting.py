"""RNNForecaster and StatsForecaster: the long-table workflow, intervals with the right
coverage on data with known noise, cross-validation that never sees the future, save/load,
covariates, and errors that name the series."""

from __future__ import annotations

import numpy as np
import pytest

from fastrnn.forecasting import RNNForecaster, StatsForecaster
from fastrnn.timeseries.metrics import coverage

pd = pytest.importorskip("pandas")

SMALL = dict(units=8, epochs=2, steps_per_epoch=20, batch_size=32)


def _table(n_series=6, length=30, start="2000-01-01", seed=0, freq="MS"):
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n_series):
        n = length + 3 * i  # different lengths...
        ds = pd.date_range(pd.Timestamp(start) + pd.DateOffset(months=i), periods=n,
                           freq=freq)  # ...and start dates
        y = 10 + i + np.sin(np.arange(n) * 2 * np.pi / 12) + 0.1 * rng.normal(size=n)
        frames.append(pd.DataFrame({"unique_id": f"s{i}", "ds": ds, "y": y}))
    return pd.concat(frames, ignore_index=True)


def test_fit_predict_returns_the_pinned_columns():
    df = _table()
    model = RNNForecaster(h=4, input_size=8, loss="quantile", quantiles=[0.1, 0.9], **SMALL)
    out = model.fit(df).predict()
    assert list(out.columns) == ["unique_id", "ds", "forecast", "q0.1", "q0.5", "q0.9"]
    assert len(out) == 6 * 4
    first = out[out.unique_id == "s0"]
    last = df[df.unique_id == "s0"].ds.max()
    assert list(first.ds) == list(pd.date_range(last, periods=5, freq="MS")[1:])
    assert np.all(out["q0.1"] <= out["q0.5"]) and np.all(out["q0.5"] <= out["q0.9"])
    np.testing.assert_array_equal(out["forecast"], out["q0.5"])
    two = model.predict(2)
    assert len(two) == 12
    with pytest.raises(ValueError, match="`h`"):
        model.predict(5)


def test_list_of_arrays_and_short_series():
    rng = np.random.default_rng(1)
    arrays = [rng.normal(size=n) + 5 for n in (40, 12, 3)]  # 3 <= h: no training window
    model = RNNForecaster(h=4, input_size=10, **SMALL)
    with pytest.warns(UserWarning, match="series 2 has at most h = 4 values"):
        model.fit(arrays)
    out = model.predict()
    assert out.unique_id.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert out.ds.tolist()[-4:] == [3, 4, 5, 6]  # integer times continue
    assert np.all(np.isfinite(out.forecast))


def _noisy_levels(n_series, length, rng):
    """Per-series level and noise scale, iid normal noise: the 0.1..0.9 interval of the
    truth holds 80% of new values."""
    levels = rng.uniform(-5, 5, n_series)
    scales = rng.uniform(0.5, 3, n_series)
    return levels[:, None] + scales[:, None] * rng.normal(size=(n_series, length))


@pytest.mark.parametrize("loss", ["quantile", "normal"])
def test_interval_coverage_on_known_noise(loss):
    rng = np.random.default_rng(0)
    data = _noisy_levels(150, 64, rng)
    train, test = data[:, :60], data[:, 60:]
    model = RNNForecaster(h=4, input_size=12, loss=loss, quantiles=[0.1, 0.5, 0.9],
                          relative=False, units=16, epochs=4, steps_per_epoch=50,
                          batch_size=64, learning_rate=3e-3, seed=1)
    _, point, q = model.fit(list(train)).predict_arrays()
    cover = coverage(test, q[..., 0], q[..., -1])
    # 600 held-out values: the binomial spread of an exact 80% interval is 1.6 points;
    # the rest is the model's error in the levels and scales it learned
    assert 0.72 <= cover <= 0.88, cover
    # the median is close to each series' level (its noise scale is up to 3)
    assert np.mean(np.abs(point - train.mean(axis=1, keepdims=True))) < 0.6


def test_cross_validation_never_sees_the_future():
    df = _table(n_series=4, length=30)
    model = RNNForecaster(h=3, input_size=6, **SMALL)
    cv = model.cross_validation(df, n_windows=2, step_size=2)
    assert len(cv) == 4 * 3 * 2
    assert list(cv.columns) == ["unique_id", "ds", "cutoff", "y", "forecast"]
    assert np.all(cv.ds > cv.cutoff)
    # changing every value after the first window's cutoffs changes nothing of its forecasts
    first = cv.iloc[:12]
    cut = first.groupby("unique_id").cutoff.first()
    changed = df.copy()
    later = changed.ds > changed.unique_id.map(cut)
    changed.loc[later, "y"] = 1e6
    again = RNNForecaster(h=3, input_size=6, **SMALL).cross_validation(
        changed, n_windows=2, step_size=2)
    np.testing.assert_array_equal(again.forecast.iloc[:12], first.forecast)
    truth = df.set_index(["unique_id", "ds"]).y
    np.testing.assert_array_equal(first.y, truth.loc[list(zip(first.unique_id, first.ds))])


def test_scalers_are_fitted_on_the_training_part_only():
    df = _table(n_series=3, length=30)
    model = RNNForecaster(h=3, input_size=6, scaler="standard", **SMALL)
    model.cross_validation(df, n_windows=1)
    head = [g.y.iloc[:-3].to_numpy() for _, g in df.groupby("unique_id", sort=False)]
    np.testing.assert_allclose(model.scalers_[:, 0], [v.mean() for v in head])
    np.testing.assert_allclose(model.scalers_[:, 1], [v.std() for v in head])


def test_save_load_round_trip(tmp_path):
    df = _table(n_series=3)
    model = RNNForecaster(h=3, input_size=6, loss="quantile", ensemble=2, cell="gru",
                          **SMALL).fit(df)
    path = tmp_path / "model.fastrnn"
    model.save(str(path))
    loaded = RNNForecaster.load(str(path))
    pd.testing.assert_frame_equal(loaded.predict(), model.predict())
    assert loaded.get_config() == model.get_config()
    (tmp_path / "junk.fastrnn").write_bytes(b"not a zip")
    with pytest.raises(ValueError):
        RNNForecaster.load(str(tmp_path / "junk.fastrnn"))


def test_ensemble_is_the_median_of_its_members():
    arrays = [np.arange(30.0) + i for i in range(3)]
    model = RNNForecaster(h=2, input_size=4, ensemble=3, **SMALL).fit(arrays)
    _, point, _ = model.predict_arrays()
    members = []
    for window, member in model.members_:
        model.members_ = [(window, member)]
        members.append(model.predict_arrays()[1])
    np.testing.assert_allclose(point, np.median(members, axis=0), rtol=1e-6)


def test_covariates_static_future_and_calendar():
    df = _table(n_series=3)
    df["promo"] = (np.arange(len(df)) % 5 == 0).astype(float)
    df["size"] = df.unique_id.map({"s0": 1.0, "s1": 2.0, "s2": 3.0})
    model = RNNForecaster(h=3, input_size=6, future_covariates=["promo"], static=["size"],
                          calendar=True, **SMALL).fit(df)
    assert model._n_features == 2 + 1 + 6 + 1
    last = df.groupby("unique_id").ds.max()
    future = pd.concat([pd.DataFrame({"unique_id": k, "ds": pd.date_range(
        t, periods=4, freq="MS")[1:], "promo": [1.0, 0.0, 0.0]}) for k, t in last.items()])
    out = model.predict(futr_df=future)
    assert len(out) == 9 and np.all(np.isfinite(out.forecast))
    with pytest.raises(ValueError, match="series 's0'.*beyond the covariates"):
        model.predict(futr_df=future.groupby("unique_id").head(2))
    with pytest.raises(ValueError, match="futr_df"):
        model.predict()


@pytest.mark.parametrize("kwargs, name", [
    (dict(quantiles=[0.9, 0.1]), "quantiles"), (dict(quantiles=[0.0, 0.5]), "quantiles"),
    (dict(cell="transformer"), "cell"), (dict(loss="mape"), "loss"),
    (dict(strategy="seq2seq"), "strategy"), (dict(units=0), "units"),
])
def test_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        RNNForecaster(h=2, **kwargs)


def test_bad_tables_fail_before_training_and_leave_the_model_unchanged():
    df = _table(n_series=2)
    model = RNNForecaster(h=2, input_size=4, **SMALL).fit(df)
    before = model.predict()
    bad = pd.concat([df.iloc[:4], df.iloc[[3]], df.iloc[4:]], ignore_index=True)
    with pytest.raises(ValueError, match="series 's0': duplicate rows"):
        model.fit(bad)
    pd.testing.assert_frame_equal(model.predict(), before)
    with pytest.raises(ValueError, match="transform='log'"):
        RNNForecaster(h=2, transform="log").fit([np.array([1.0, -1.0, 2.0, 3.0])])
    with pytest.raises(RuntimeError, match="not fitted"):
        RNNForecaster(h=2).predict()


def test_stats_forecaster_same_api():
    df = _table(n_series=2, length=36)
    out = StatsForecaster("seasonal_naive", h=3).fit(df).predict()
    assert list(out.columns) == ["unique_id", "ds", "forecast"]
    s0 = df[df.unique_id == "s0"].y.to_numpy()
    np.testing.assert_allclose(out.forecast[:3], s0[-12:-9])  # monthly dates: season 12
    cv = StatsForecaster("theta", h=3).cross_validation(df, n_windows=2)
    assert len(cv) == 2 * 3 * 2 and np.all(cv.ds > cv.cutoff)


def test_polars_in_polars_out():
    pl = pytest.importorskip("polars")
    table = _table(n_series=2)  # column by column: polars.from_pandas needs pyarrow for strings
    df = pl.DataFrame({name: table[name].tolist() if table[name].dtype == object
                       else table[name].to_numpy() for name in table.columns})
    model = RNNForecaster(h=2, input_size=4, **SMALL).fit(df)
    out = model.predict()
    assert isinstance(out, pl.DataFrame)
    assert out.columns == ["unique_id", "ds", "forecast"] and out.height == 4


def test_cross_validation_without_refit_trains_once(monkeypatch):
    df = _table(n_series=3, length=30)
    model = RNNForecaster(h=2, input_size=4, **SMALL)
    fits = []
    original = RNNForecaster.fit

    def counting_fit(self, data, **kwargs):
        fits.append(data)
        return original(self, data, **kwargs)

    monkeypatch.setattr(RNNForecaster, "fit", counting_fit)
    cv = model.cross_validation(df, n_windows=3, step_size=1, refit=False)
    assert len(fits) == 1 and len(cv) == 3 * 2 * 3
    # the later windows forecast from their own cutoffs, with the first window's model
    assert all(len(c) == 3 for c in cv.groupby("unique_id").cutoff.unique())
    assert np.all(cv.ds > cv.cutoff)


def test_student_t_head_learns_its_tails():
    """The default Student-t head learns its degrees of freedom per step: on t(2.5) noise
    its (q0.01, q0.99) interval is ~6 times its interquartile range (the t(2.5) ratio is
    6.0), on normal noise much less (3.45 for the normal itself)."""
    rng = np.random.default_rng(0)
    ratios = {}
    for name, noise in (("normal", rng.normal(size=(100, 64))),
                        ("t", rng.standard_t(2.5, size=(100, 64)) / np.sqrt(5))):
        model = RNNForecaster(h=4, input_size=12, loss="student_t",
                              quantiles=[0.01, 0.25, 0.75, 0.99], relative=False, units=16,
                              epochs=4, steps_per_epoch=50, batch_size=64,
                              learning_rate=3e-3, seed=0)
        assert model._width == 3
        _, _, q = model.fit(list(5 + noise)).predict_arrays()
        ratios[name] = np.median((q[..., 3] - q[..., 0]) / (q[..., 2] - q[..., 1]))
    assert 5.0 < ratios["t"] < 8.0 and ratios["normal"] < ratios["t"] - 1.5, ratios
    fixed = RNNForecaster(h=2, loss="student_t", student_t_df=4.0)
    assert fixed._width == 2
    with pytest.raises(ValueError, match="`student_t_df`"):
        RNNForecaster(h=2, student_t_df=0.0)


def _seasonal_arrays(n_series=4, n=96, m=12, seed=0):
    """Multiplicative seasonal series (the season's indices known), and one without."""
    rng = np.random.default_rng(seed)
    season = 1 + 0.3 * np.sin(2 * np.pi * np.arange(m) / m)
    ys = [(10 + i + 0.05 * np.arange(n + i) + rng.normal(0, 0.1, n + i))
          * season[np.arange(n + i) % m] for i in range(n_series)]
    return ys + [5 + rng.normal(0, 1, n) ** 2], season


@pytest.mark.parametrize("strategy", ["direct", "recursive"])
def test_deseasonalize_is_the_model_of_the_adjusted_series_reseasonalized(strategy):
    """deseasonalize=True forecasts exactly what the same forecaster forecasts for the series
    divided by their seasonal indices (Theta's classical decomposition, found by the 90%
    test), multiplied back by the indices of the forecast positions; a series without a
    season is left as it is."""
    from fastrnn.timeseries.classical import seasonal_factors

    ys, _ = _seasonal_arrays()
    kw = dict(h=6, input_size=24, loss="quantile", transform="log", scaler="none", seed=3,
              strategy=strategy, **SMALL)
    _, point, q = RNNForecaster(deseasonalize=True, season_length=12, **kw).fit(
        ys).predict_arrays()
    index = [seasonal_factors(y, 12) for y in ys]
    assert [i is None for i in index] == [False] * 4 + [True]
    adjusted = [y if i is None else y / i[np.arange(len(y)) % 12] for y, i in zip(ys, index)]
    _, want_point, want_q = RNNForecaster(**kw).fit(adjusted).predict_arrays()
    factors = np.stack([np.ones(6) if i is None else i[(len(y) + np.arange(6)) % 12]
                        for y, i in zip(ys, index)])
    np.testing.assert_allclose(point, want_point * factors, rtol=1e-12)
    np.testing.assert_allclose(q, want_q * factors[..., None], rtol=1e-12)
    np.testing.assert_array_equal(point[-1], want_point[-1])  # no season: as it was


def test_deseasonalize_takes_the_season_from_the_dates_and_survives_save_load(tmp_path):
    """Monthly dates give a season of 12 (integer times none); cross-validation fits the
    indices on each window's training part; the setting is saved with the model."""
    ys, season = _seasonal_arrays(n_series=3, n=72)
    frames = [pd.DataFrame({"unique_id": f"s{i}", "y": y, "ds": pd.date_range(
        "1990-01-01", periods=len(y), freq="MS")}) for i, y in enumerate(ys)]
    df = pd.concat(frames, ignore_index=True)
    model = RNNForecaster(h=4, input_size=12, deseasonalize=True, **SMALL).fit(df)
    dated = model.predict()
    assert model.get_config()["deseasonalize"] is True
    # the forecasts follow the season: their month-to-month ratios are the indices'
    s0 = dated[dated.unique_id == "s0"].forecast.to_numpy()
    months = (len(ys[0]) + np.arange(4)) % 12
    np.testing.assert_allclose(s0[1:] / s0[:-1], season[months[1:]] / season[months[:-1]],
                               rtol=0.1)
    path = tmp_path / "seasonal.fastrnn"
    model.save(str(path))
    pd.testing.assert_frame_equal(RNNForecaster.load(str(path)).predict(), dated)
    plain = RNNForecaster(h=4, input_size=12, deseasonalize=True, **SMALL)
    assert plain.fit(ys)._seasons(plain.panel_) == [None] * 4  # integer times: no season
    cv = RNNForecaster(h=4, input_size=12, deseasonalize=True, **SMALL).cross_validation(
        df, n_windows=2, step_size=4)
    assert np.all(np.isfinite(cv.forecast)) and np.all(cv.ds > cv.cutoff)


@pytest.mark.parametrize("kwargs, name", [
    (dict(deseasonalize="yes"), "deseasonalize"), (dict(deseasonalize=1), "deseasonalize"),
    (dict(season_length=0), "season_length"), (dict(season_length=2.5), "season_length"),
])
def test_bad_season_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        RNNForecaster(h=2, **kwargs)
