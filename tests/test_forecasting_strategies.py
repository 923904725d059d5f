"""RNNForecaster's three strategies (direct, recursive, encoder-decoder): the DataFrame
contract, the equivalences that hold by construction, causality in the future-known
covariates, learning a noiseless panel, save/load, and refused names."""

from __future__ import annotations

import numpy as np
import pytest

from fastrnn.forecasting import RNNForecaster

pd = pytest.importorskip("pandas")

STRATEGIES = ["direct", "recursive", "encoder-decoder"]
SMALL = dict(units=8, epochs=2, steps_per_epoch=20, batch_size=32)


def _table(n_series=4, length=30, seed=0):
    """Monthly series of different lengths and start dates, a promo (future-known), a
    temperature (past-observed) and a size (static) column."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n_series):
        n = length + 3 * i
        ds = pd.date_range(pd.Timestamp("2000-01-01") + pd.DateOffset(months=i), periods=n,
                           freq="MS")
        y = 10 + i + np.sin(np.arange(n) * 2 * np.pi / 12) + 0.1 * rng.normal(size=n)
        frames.append(pd.DataFrame({"unique_id": f"s{i}", "ds": ds, "y": y,
                                    "promo": (np.arange(n) % 5 == 0).astype(float),
                                    "temp": rng.normal(size=n),
                                    "size": float(i + 1)}))
    return pd.concat(frames, ignore_index=True)


def _future(df, steps, promo=None):
    last = df.groupby("unique_id").ds.max()
    return pd.concat([pd.DataFrame({
        "unique_id": k, "ds": pd.date_range(t, periods=steps + 1, freq="MS")[1:],
        "promo": np.zeros(steps) if promo is None else promo}) for k, t in last.items()],
        ignore_index=True)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("loss, scaler, transform", [("quantile", "robust", "log"),
                                                     ("student_t", "mean_abs", None)])
def test_dataframe_contract(strategy, loss, scaler, transform):
    """Every strategy with every kind of covariate, an ensemble of two windows, a scaler,
    a probabilistic head: the pinned columns and times, in predict and cross_validation."""
    df = _table()
    model = RNNForecaster(h=4, input_size=8, strategy=strategy, loss=loss,
                          quantiles=[0.1, 0.5, 0.9], future_covariates=["promo"],
                          past_covariates=["temp"], static=["size"], calendar=True,
                          ensemble=2, input_sizes=(6, 8), scaler=scaler,
                          transform=transform, **SMALL).fit(df)
    out = model.predict(futr_df=_future(df, 4))
    assert list(out.columns) == ["unique_id", "ds", "forecast", "q0.1", "q0.5", "q0.9"]
    assert len(out) == 4 * 4 and np.all(np.isfinite(out.forecast))
    last = df[df.unique_id == "s2"].ds.max()
    assert list(out[out.unique_id == "s2"].ds) == list(
        pd.date_range(last, periods=5, freq="MS")[1:])
    assert np.all(out["q0.1"] <= out["q0.5"]) and np.all(out["q0.5"] <= out["q0.9"])
    if loss == "quantile":
        np.testing.assert_array_equal(out.forecast, out["q0.5"])
    assert len(model.predict(2, futr_df=_future(df, 4))) == 4 * 2
    cv = model.cross_validation(df, n_windows=2, step_size=2)  # futures from df
    assert list(cv.columns) == ["unique_id", "ds", "cutoff", "y", "forecast", "q0.1",
                                "q0.5", "q0.9"]
    assert len(cv) == 4 * 4 * 2 and np.all(cv.ds > cv.cutoff)


def test_horizon_beyond_training_only_for_recursive():
    arrays = [np.arange(20.0) + i for i in range(3)]
    for strategy in ("direct", "encoder-decoder"):
        model = RNNForecaster(h=3, input_size=4, strategy=strategy, **SMALL).fit(arrays)
        with pytest.raises(ValueError, match=f"`h`.*{strategy}"):
            model.predict(5)
    model = RNNForecaster(h=3, input_size=4, strategy="recursive", **SMALL).fit(arrays)
    out = model.predict(7)
    assert len(out) == 3 * 7 and out.ds.tolist()[:7] == list(range(20, 27))


def test_recursive_with_h1_is_the_direct_model_with_h1():
    """With h = 1 both strategies build the same network, draw the same windows with the
    same seed and predict once: identical forecasts."""
    df = _table(n_series=3)
    common = dict(h=1, input_size=6, loss="quantile", future_covariates=["promo"],
                  static=["size"], calendar=True, **SMALL)
    direct = RNNForecaster(strategy="direct", **common).fit(df)
    recursive = RNNForecaster(strategy="recursive", **common).fit(df)
    future = _future(df, 1, promo=[1.0])
    pd.testing.assert_frame_equal(direct.predict(futr_df=future),
                                  recursive.predict(futr_df=future))


def test_recursion_is_one_step_forecasts_fed_back():
    """h steps of the recursive model are h one-step forecasts, each appended to the data
    before the next (the scalers stay the training series')."""
    df = _table(n_series=3)[["unique_id", "ds", "y", "promo"]]  # no past covariates
    model = RNNForecaster(h=3, input_size=6, strategy="recursive", loss="quantile",
                          future_covariates=["promo"], calendar=True, **SMALL).fit(df)
    promo = [1.0, 0.0, 1.0]
    future = _future(df, 3, promo=promo)
    out = model.predict(futr_df=future)
    data = df.copy()
    for k in range(3):
        step = model.predict(1, df=data, futr_df=future)
        row = out.groupby("unique_id").nth(k).reset_index(drop=True)
        np.testing.assert_allclose(step.forecast, row.forecast, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(step["q0.9"], row["q0.9"], rtol=1e-5, atol=1e-5)
        data = pd.concat([data, step.rename(columns={"forecast": "y"})[
            ["unique_id", "ds", "y"]].assign(promo=promo[k])], ignore_index=True)
        data = data.sort_values(["unique_id", "ds"], kind="stable")


@pytest.mark.parametrize("strategy", ["recursive", "encoder-decoder"])
def test_a_step_sees_no_later_future_covariate(strategy):
    """Recursive and encoder-decoder forecasts are causal in the future-known covariates:
    changing step 3's value changes step 3 and later, never steps 1-2."""
    df = _table(n_series=3)
    model = RNNForecaster(h=4, input_size=6, strategy=strategy,
                          future_covariates=["promo"], **SMALL).fit(df)
    a = model.predict(futr_df=_future(df, 4, promo=[0.0, 0.0, 0.0, 0.0]))
    b = model.predict(futr_df=_future(df, 4, promo=[0.0, 0.0, 5.0, 0.0]))
    step = np.tile(np.arange(4), 3)
    np.testing.assert_array_equal(a.forecast[step < 2], b.forecast[step < 2])
    assert np.all(a.forecast[step == 2].to_numpy() != b.forecast[step == 2].to_numpy())


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_each_strategy_learns_a_noiseless_panel(strategy):
    """20 series, each a level, a linear trend and a yearly sine of its own amplitude and
    phase: every strategy forecasts 6 held-out steps within a small fraction of the
    series' spread (seasonal naive, which misses the trend, is 3-5x worse)."""
    rng = np.random.default_rng(0)
    t = np.arange(48)
    data = np.stack([rng.uniform(5, 15) + rng.uniform(-0.1, 0.1) * t
                     + rng.uniform(1, 3) * np.sin(2 * np.pi * (t + rng.integers(12)) / 12)
                     for _ in range(20)])
    train, test = data[:, :-6], data[:, -6:]
    model = RNNForecaster(h=6, input_size=12, strategy=strategy, units=16, epochs=8,
                          steps_per_epoch=100, batch_size=32, learning_rate=1e-2, seed=0)
    _, point, _ = model.fit(list(train)).predict_arrays()
    error = np.mean(np.abs(point - test))
    spread = np.mean(data.std(axis=1))  # 1.5
    seasonal_naive = np.mean(np.abs(train[:, -12:-6] - test))  # 0.51
    assert error < 0.15 * spread and error < 0.5 * seasonal_naive, (error, spread)


@pytest.mark.parametrize("strategy", ["recursive", "encoder-decoder"])
def test_save_load_round_trip(strategy, tmp_path):
    df = _table(n_series=3)
    model = RNNForecaster(h=3, input_size=6, strategy=strategy, loss="normal",
                          quantiles=[0.2, 0.8], cell="gru", layers=2, ensemble=2,
                          future_covariates=["promo"], static=["size"], **SMALL).fit(df)
    path = tmp_path / "model.fastrnn"
    model.save(str(path))
    loaded = RNNForecaster.load(str(path))
    assert loaded.get_config() == model.get_config()
    future = _future(df, 3, promo=[1.0, 0.0, 1.0])
    pd.testing.assert_frame_equal(loaded.predict(futr_df=future),
                                  model.predict(futr_df=future))


@pytest.mark.parametrize("name", ["seq2seq", "Recursive", "mimo", None])
def test_bad_strategy_names_are_refused(name):
    with pytest.raises(ValueError, match=r"`strategy`.*'direct', 'recursive', "
                                         r"'encoder-decoder'"):
        RNNForecaster(h=2, strategy=name)


@pytest.mark.parametrize("strategy", ["direct", "encoder-decoder"])
def test_training_windows_hide_past_covariates_on_the_horizon(strategy):
    """A past-observed covariate is unknown after the forecast origin: training inputs
    carry 0 there (its normalised mean), as prediction inputs do, never its real value."""
    df = _table(n_series=3)
    model = RNNForecaster(h=3, input_size=5, strategy=strategy, past_covariates=["temp"],
                          future_covariates=["promo"], **SMALL).fit(df)
    data = model._prepare(model.panel_, model.scalers_)
    series, origins = np.array([0, 1, 2, 2]), np.array([10, 12, 20, 30])
    x, _, _ = model._design(data, series, origins, 5, targets=True)
    assert x.shape == (4, 5 + 3, model._n_features)
    temp, promo = x[..., 2], x[..., 3]  # feature order: target, observed, past, future
    assert np.all(temp[:, 5:] == 0) and np.all(temp[:, :5] != 0)
    assert np.any(promo[:, 5:] != 0)  # future-known values stay


def test_recursive_sample_paths_widen_the_intervals():
    """On random walks a one-step model's intervals, fed back along the median path, stay
    one-step wide (the 8th step's 80% interval covers ~30%); sample paths (num_samples)
    accumulate the steps' noise and cover ~80% at every step."""
    rng = np.random.default_rng(0)
    n, h = 60, 8
    walks = 50 + np.cumsum(rng.uniform(0.5, 2, (150, 1)) * rng.normal(size=(150, n + h)),
                           axis=1)
    train, test = walks[:, :n], walks[:, n:]
    model = RNNForecaster(h=h, input_size=12, strategy="recursive", loss="normal",
                          quantiles=[0.1, 0.5, 0.9], units=16, epochs=4, steps_per_epoch=50,
                          batch_size=64, learning_rate=3e-3, seed=1).fit(list(train))
    _, _, narrow = model.predict_arrays()
    _, point, q = model.predict_arrays(num_samples=200)
    inside = (test >= q[..., 0]) & (test <= q[..., -1])
    inside_narrow = (test >= narrow[..., 0]) & (test <= narrow[..., -1])
    # 1200 values of 150 walks, correlated along each walk: a spread of ~0.03
    assert 0.70 <= inside.mean() <= 0.88, inside.mean(axis=0)
    assert inside[:, -1].mean() >= 0.6 and inside_narrow[:, -1].mean() < 0.45
    assert np.all(q[..., 0] <= point) and np.all(point <= q[..., -1])
    _, again, _ = model.predict_arrays(num_samples=200)
    np.testing.assert_array_equal(point, again)  # seeded: reproducible
    with pytest.raises(ValueError, match="`num_samples`"):
        model.predict_arrays(num_samples=0)
    with pytest.raises(ValueError, match="`num_samples`.*recursive"):
        RNNForecaster(h=2, input_size=4, loss="normal", **SMALL).fit(
            list(train[:3])).predict(num_samples=10)


@pytest.mark.parametrize("loss", ["quantile", "student_t"])
def test_sample_paths_of_every_probabilistic_head(loss):
    df = _table(n_series=3)
    model = RNNForecaster(h=3, input_size=6, strategy="recursive", loss=loss,
                          quantiles=[0.1, 0.5, 0.9], future_covariates=["promo"],
                          ensemble=2, **SMALL).fit(df)
    out = model.predict(5, futr_df=_future(df, 5), num_samples=50)
    assert len(out) == 15 and np.all(np.isfinite(out[["forecast", "q0.1", "q0.9"]]))
    assert np.all(out["q0.1"] <= out["q0.5"]) and np.all(out["q0.5"] <= out["q0.9"])
    width = (out["q0.9"] - out["q0.1"]).to_numpy().reshape(3, 5)
    assert np.all(width[:, -1] > 0)


def test_one_step_draws_follow_the_forecast_distribution():
    """_sample draws from each head's distribution: the quantile head's draws have the
    predicted quantiles (its CDF is piecewise linear through them), the Gaussian's its
    location and scale."""
    n = 40000
    rng = np.random.default_rng(0)
    model = RNNForecaster(h=2, strategy="recursive", loss="quantile",
                          quantiles=[0.1, 0.5, 0.9])
    draws = model._sample(np.tile([-1.0, 0.0, 2.0], (n, 1)), rng)
    # empirical quantiles of 40000 draws: sd sqrt(q(1-q)/n) / density, below 0.01 here
    np.testing.assert_allclose(np.quantile(draws, [0.1, 0.5, 0.9]), [-1, 0, 2], atol=0.03)
    model = RNNForecaster(h=2, strategy="recursive", loss="normal")
    raw = np.log(np.expm1(2.0))  # softplus(raw) = 2
    draws = model._sample(np.tile([3.0, raw], (n, 1)), rng)
    assert abs(draws.mean() - 3) < 0.04 and abs(draws.std() - 2) < 0.04  # sd 0.01


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_predict_ids_forecasts_those_series_alone(strategy):
    """predict(ids=...) gives the rows predict() gives for those series, in the order asked,
    and runs only their windows through the network (static and future covariates, scalers
    and times follow each series)."""
    df = _table(n_series=5)
    model = RNNForecaster(h=3, input_size=6, strategy=strategy, loss="quantile",
                          quantiles=[0.2, 0.8], future_covariates=["promo"],
                          past_covariates=["temp"], static=["size"], calendar=True,
                          ensemble=2, input_sizes=(5, 6), **SMALL).fit(df)
    future = _future(df, 3, promo=[1.0, 0.0, 1.0])
    full = model.predict(futr_df=future)
    rows = []
    for _, member in model.members_:
        run = member.predict
        member.predict = (lambda x, *a, run=run, **k: rows.append(len(x)) or run(x, *a, **k))
    try:
        part = model.predict(futr_df=future, ids=["s3", "s1"])
    finally:
        for _, member in model.members_:
            del member.predict
    assert rows and set(rows) == {2}  # two series' windows a call, never five
    want = pd.concat([full[full.unique_id == sid] for sid in ("s3", "s1")], ignore_index=True)
    assert part.unique_id.tolist() == want.unique_id.tolist()
    assert part.ds.tolist() == want.ds.tolist()
    for column in ("forecast", "q0.2", "q0.5", "q0.8"):
        np.testing.assert_allclose(part[column], want[column], rtol=1e-5)
    # the same from a given table, and refusals naming the argument
    other = model.predict(df=df, futr_df=future, ids=["s4"])
    np.testing.assert_allclose(other.forecast, full[full.unique_id == "s4"].forecast,
                               rtol=1e-5)
    with pytest.raises(ValueError, match=r"unknown series id 'nope'"):
        model.predict(ids=["s0", "nope"])
    with pytest.raises(ValueError, match=r"'s0' is asked for twice"):
        model.predict(ids=["s0", "s0"])
    with pytest.raises(ValueError, match=r"`ids`.*non-empty list"):
        model.predict(ids="s0")
    with pytest.raises(ValueError, match=r"`ids`.*non-empty list"):
        model.predict(ids=[])
