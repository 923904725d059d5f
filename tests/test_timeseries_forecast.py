"""Baselines, multi-step strategies and metrics."""

import numpy as np
import pytest

from fastrnn.timeseries import (
    LinearForecaster,
    NaiveForecaster,
    SeasonalNaiveForecaster,
    evaluate,
    forecast,
    generate_time_series,
    last_time_step_mse,
    mae,
    make_seq2seq_targets,
    mape,
    mase,
    mse,
    rmse,
    smape,
)


class NextValueModel:
    """Duck-typed one-step model on arange-like data: predicts last + 1, shape (B, 1)."""

    def __init__(self):
        self.calls = []

    def predict(self, x):
        self.calls.append(np.array(x))
        return x[:, -1, :1] + 1


class DirectModel:
    """Seq-to-vector: the next k values of an arange window, (B, k)."""

    def __init__(self, k):
        self.k = k

    def predict(self, x):
        return x[:, -1, :1] + np.arange(1, self.k + 1)


class Seq2SeqModel:
    """(B, T, k): at every step t the next k values after x[:, t]."""

    def __init__(self, k):
        self.k = k

    def predict(self, x):
        return x[:, :, :1] + np.arange(1, self.k + 1)


def arange_windows(batch=3, steps=6, features=1):
    base = np.arange(batch)[:, None] * 100 + np.arange(steps)
    return np.repeat(base[..., None], features, axis=2).astype(np.float32)


def test_naive_forecaster_shapes_and_values():
    x = arange_windows()
    out = NaiveForecaster(horizon=4).predict(x)
    assert out.shape == (3, 4) and np.all(out == x[:, -1:, 0])
    assert NaiveForecaster().predict(x[..., 0]).shape == (3, 1)  # (B, T) input
    multi = np.stack([x[..., 0], -x[..., 0]], axis=2)
    assert NaiveForecaster(horizon=2).predict(multi).shape == (3, 2, 2)
    one = NaiveForecaster(horizon=2, feature=1).predict(multi)
    assert one.shape == (3, 2) and np.all(one == -5 - np.array([[0], [100], [200]]))


def test_seasonal_naive_takes_the_value_one_season_back():
    x = arange_windows(batch=2, steps=10)
    out = SeasonalNaiveForecaster(season=4, horizon=6).predict(x)
    # forecast step k (1-based) at time 9 + k repeats time 9 + k - 4, wrapping per season
    assert out[0].tolist() == [6, 7, 8, 9, 6, 7]
    assert out[1].tolist() == [106, 107, 108, 109, 106, 107]
    assert SeasonalNaiveForecaster(season=1, horizon=3).predict(x)[0].tolist() == [9, 9, 9]
    with pytest.raises(ValueError, match="season = 12"):
        SeasonalNaiveForecaster(season=12).predict(x)
    with pytest.raises(ValueError, match="`season`"):
        SeasonalNaiveForecaster(season=0)


def test_seasonal_naive_is_exact_on_a_periodic_series():
    period = 7
    series = np.sin(2 * np.pi * np.arange(70) / period)
    x = series[None, :56, None]
    truth = series[56:70]
    assert np.allclose(SeasonalNaiveForecaster(period, 14).predict(x)[0], truth)
    assert mse(truth, NaiveForecaster(horizon=14).predict(x)[0]) > 0.1


def test_linear_forecaster_recovers_an_exact_linear_rule():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5, 2))
    weights = rng.normal(size=(10, 3))
    y = x.reshape(200, -1) @ weights + np.array([1.0, -2.0, 0.5])
    model = LinearForecaster().fit(x, y)
    assert np.allclose(model.coef_[:-1], weights, atol=1e-8)
    assert np.allclose(model.coef_[-1], [1.0, -2.0, 0.5], atol=1e-8)
    out = model.predict(x[:4])
    assert out.shape == (4, 3) and out.dtype == np.float32
    assert np.allclose(out, y[:4], atol=1e-4)
    assert model.predict(x[:4], horizon=2).shape == (4, 2)
    with pytest.raises(ValueError, match="`horizon`"):
        model.predict(x[:4], horizon=4)
    with pytest.raises(ValueError, match="like the training windows"):
        model.predict(x[:4, :4])


def test_linear_forecaster_beats_naive_on_the_books_series():
    n_steps = 50
    series = generate_time_series(3000, n_steps + 1, seed=42)
    x_train, y_train = series[:2000, :n_steps], series[:2000, -1]
    x_test, y_test = series[2000:, :n_steps], series[2000:, -1]
    linear = LinearForecaster().fit(x_train, y_train)
    pred = linear.predict(x_test)
    assert pred.shape == (1000, 1)  # like Dense(1)
    naive_mse = mse(y_test, NaiveForecaster().predict(x_test))
    linear_mse = mse(y_test, pred)
    # the book: naive ~0.020, linear ~0.004
    assert 0.015 < naive_mse < 0.025
    assert linear_mse < 0.006 and linear_mse < naive_mse / 3


def test_linear_forecaster_errors():
    with pytest.raises(RuntimeError, match="not fitted"):
        LinearForecaster().predict(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="`y`"):
        LinearForecaster().fit(np.zeros((4, 3)), np.zeros(5))
    with pytest.raises(ValueError, match="needs training windows"):
        LinearForecaster().fit()


def test_recursive_strategy_feeds_predictions_back_with_a_sliding_window():
    model = NextValueModel()
    history = arange_windows(batch=2, steps=5)
    out = forecast(model, history, horizon=4, strategy="recursive")
    assert out.shape == (2, 4)
    assert out.tolist() == [[5, 6, 7, 8], [105, 106, 107, 108]]
    assert len(model.calls) == 4
    assert all(call.shape == (2, 5, 1) for call in model.calls)  # the window keeps T steps
    assert model.calls[2][0, :, 0].tolist() == [2, 3, 4, 5, 6]  # the book's X[:, step_ahead:]


def test_recursive_matches_the_books_loop_with_a_linear_model():
    n_steps = 20
    series = generate_time_series(500, n_steps + 10, seed=0)
    model = LinearForecaster().fit(series[:, :n_steps], series[:, n_steps])

    class Wrapped:  # seen as a plain model, not as a baseline
        def predict(self, x):
            return model.predict(x)

    x = series[:5, :n_steps]
    book = x
    for step_ahead in range(10):
        y_pred_one = Wrapped().predict(book[:, step_ahead:])[:, np.newaxis, :]
        book = np.concatenate([book, y_pred_one], axis=1)
    expected = book[:, n_steps:, 0]
    assert np.allclose(forecast(Wrapped(), x, 10, "recursive"), expected)
    assert np.allclose(forecast(model, x, 10, "recursive"), expected)  # the baseline itself
    with pytest.raises(ValueError, match="predicts 1 steps per window but horizon=10"):
        forecast(model, x, 10, "direct")


def test_direct_and_seq2seq_strategies():
    history = arange_windows(batch=2, steps=5)
    out = forecast(DirectModel(6), history, 4, strategy="direct")
    assert out.tolist() == [[5, 6, 7, 8], [105, 106, 107, 108]]
    out = forecast(Seq2SeqModel(3), history, 3, strategy="seq2seq")
    assert out.tolist() == [[5, 6, 7], [105, 106, 107]]
    with pytest.raises(ValueError, match="predicts 2 steps per window but horizon=3"):
        forecast(DirectModel(2), history, 3, strategy="direct")
    with pytest.raises(ValueError, match="seq2seq.*\\(batch, steps, horizon\\)"):
        forecast(DirectModel(3), history, 3, strategy="seq2seq")
    with pytest.raises(ValueError, match="strategy='recursive'.*seq2seq"):
        forecast(Seq2SeqModel(3), history, 3, strategy="recursive")


def test_linear_forecaster_in_seq2seq_and_direct_roles():
    n_steps, horizon = 20, 5
    series = generate_time_series(400, n_steps + horizon, seed=5)
    x = series[:, :n_steps]
    seq = LinearForecaster().fit(x, make_seq2seq_targets(series, n_steps, horizon))
    assert seq.predict(x[:3]).shape == (3, n_steps, horizon)
    direct = LinearForecaster().fit(x, series[:, n_steps:, 0])
    out_seq = forecast(seq, x[:3], horizon, "seq2seq")
    out_direct = forecast(direct, x[:3], horizon, "direct")
    assert out_seq.shape == out_direct.shape == (3, horizon)
    square = LinearForecaster().fit(x[:, :horizon], make_seq2seq_targets(series, horizon,
                                                                          horizon))
    assert forecast(square, x[:3, :horizon], horizon, "seq2seq").shape == (3, horizon)
    # the last step of the seq2seq targets are the direct targets: same least squares
    assert np.allclose(out_seq, out_direct, atol=1e-3)


def test_baselines_go_through_forecast_with_any_strategy():
    history = arange_windows(batch=2, steps=8)
    for strategy in ("recursive", "direct", "seq2seq"):
        assert forecast(NaiveForecaster(), history, 3, strategy).tolist() == [[7] * 3, [107] * 3]
    season = forecast(SeasonalNaiveForecaster(4), history, 5)
    assert season[0].tolist() == [4, 5, 6, 7, 4]


def test_single_series_history_and_multivariate_recursive():
    out = forecast(NextValueModel(), np.arange(5.0), 3)
    assert out.shape == (3,) and out.tolist() == [5, 6, 7]

    class AllFeatures:
        def predict(self, x):
            return x[:, -1, :] + 1  # (B, F)

    multi = np.stack([np.arange(5.0), 10 * np.arange(5.0)], axis=1)[None]
    out = forecast(AllFeatures(), multi, 2)
    assert out.shape == (1, 2, 2) and out[0].tolist() == [[5, 41], [6, 42]]
    with pytest.raises(ValueError, match="return all 2 features"):
        forecast(NextValueModel(), multi, 2)


def test_forecast_argument_errors():
    with pytest.raises(ValueError, match="`strategy`.*'recursive', 'direct', 'seq2seq'"):
        forecast(NaiveForecaster(), np.zeros((1, 3)), 2, strategy="dirty")
    with pytest.raises(ValueError, match="`horizon`"):
        forecast(NaiveForecaster(), np.zeros((1, 3)), 0)
    with pytest.raises(ValueError, match="`model`.*predict"):
        forecast(object(), np.zeros((1, 3)), 2)
    with pytest.raises(ValueError, match="`history`"):
        forecast(NaiveForecaster(), np.zeros((1, 3, 1, 1)), 2)


def test_point_metrics_against_hand_computed_values():
    y = np.array([1.0, 2.0, 4.0, -2.0])
    p = np.array([2.0, 2.0, 1.0, -1.0])
    assert mse(y, p) == pytest.approx((1 + 0 + 9 + 1) / 4)
    assert rmse(y, p) == pytest.approx(np.sqrt(11 / 4))
    assert mae(y, p) == pytest.approx(5 / 4)
    assert mape(y, p) == pytest.approx(100 * (1 + 0 + 0.75 + 0.5) / 4)
    assert smape(y, p) == pytest.approx(100 * (2 / 3 + 0 + 6 / 5 + 2 / 3) / 4)
    assert smape([0.0, 1.0], [0.0, 1.0]) == 0.0
    assert mse(y[:, None], p) == mse(y, p)  # (B, 1) against (B,) is accepted
    assert isinstance(mse(y, p), float)


def test_metric_shape_and_value_errors():
    with pytest.raises(ValueError, match="same shape, got \\(4,\\) and \\(4, 4\\)"):
        mse(np.zeros(4), np.zeros((4, 4)))
    with pytest.raises(ValueError, match="zeros"):
        mape([0.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="non-empty"):
        mae([], [])


def test_mase_scales_by_in_sample_naive_error():
    train = np.array([1.0, 3.0, 2.0, 6.0])  # naive errors 2, 1, 4 -> scale 7/3
    assert mase([7.0, 9.0], [6.0, 6.0], train) == pytest.approx(2.0 / (7 / 3))
    seasonal = np.array([1.0, 2.0, 1.5, 2.5, 2.0])  # season 2: errors 0.5, 0.5, 0.5
    assert mase([3.0], [2.0], seasonal, season=2) == pytest.approx(2.0)
    per_series = np.array([[0.0, 1.0, 2.0], [0.0, 2.0, 4.0]])  # scales 1 and 2
    assert mase([[3.0], [6.0]], [[2.0], [2.0]], per_series) == pytest.approx((1 / 1 + 4 / 2) / 2)
    with pytest.raises(ValueError, match="constant"):
        mase([1.0], [1.0], np.ones(5))
    with pytest.raises(ValueError, match="season = 5"):
        mase([1.0], [1.0], np.arange(5.0), season=5)
    with pytest.raises(ValueError, match="`y_train`"):
        mase([1.0, 2.0], [1.0, 2.0], np.ones((3, 4)))


def test_last_time_step_mse_scores_only_the_final_step():
    y = np.zeros((2, 5, 3))
    p = np.zeros((2, 5, 3))
    p[:, :-1] = 100.0  # errors before the last step are ignored
    p[:, -1] = 2.0
    assert last_time_step_mse(y, p) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="\\(batch, steps"):
        last_time_step_mse(np.zeros(3), np.zeros(3))


def test_evaluate_and_unknown_metrics():
    out = evaluate([1.0, 2.0], [1.0, 4.0], ("mse", "mae", "mase"), y_train=[0.0, 1.0, 2.0])
    assert out == {"mse": 2.0, "mae": 1.0, "mase": 1.0}
    with pytest.raises(ValueError, match="needs y_train"):
        evaluate([1.0], [1.0], ("mase",))
    with pytest.raises(ValueError, match="`metric`.*'r2'"):
        evaluate([1.0], [1.0], ("r2",))


class PlusHalf:
    """Predicts the last value plus 0.5 (a float forecast from any history)."""

    def predict(self, x):
        return np.asarray(x, dtype=np.float64)[:, -1, :] + 0.5


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.bool_])
def test_recursive_forecast_of_an_integer_history_stays_float(dtype):
    history = np.ones((2, 4), dtype=dtype)
    out = forecast(PlusHalf(), history, 3, strategy="recursive")
    assert np.issubdtype(out.dtype, np.floating)
    assert np.array_equal(out, [[1.5, 2.0, 2.5]] * 2)  # fed back as floats, not truncated
    single = forecast(PlusHalf(), np.array([3, 4, 5]), 2)
    assert np.array_equal(single, [5.5, 6.0])


def test_forecast_refuses_non_numeric_history():
    with pytest.raises(ValueError, match="`history`"):
        forecast(PlusHalf(), np.array([["a", "b"]]), 2)


class ConstantChange:
    """Predicts the same change (in the wrapped, scaled units) for every window."""

    def __init__(self, change):
        self.change = change
        self.seen = None

    def predict(self, x):
        self.seen = np.array(x)
        return np.full((len(x), 1), self.change)


def test_relative_model_trains_on_changes_and_forecasts_in_levels():
    from fastrnn.timeseries import RelativeModel

    x = (np.arange(12, dtype=np.float32).reshape(3, 4, 1) * 2 + 100)  # 3 rising windows
    y = x[:, -1, :] + 6  # (3, 1): 6 above each window's last value
    wrapper = RelativeModel(ConstantChange(3.0), scale=2.0)
    assert np.allclose(wrapper.targets(x, y), 3.0)  # (y - last) / scale
    assert np.allclose(wrapper.inputs(x)[:, -1, 0], 0) and np.allclose(
        wrapper.inputs(x)[:, 0, 0], -3.0)  # (x - last) / scale
    out = wrapper.predict(x)
    assert out.dtype == np.float32 and np.allclose(out[:, 0], x[:, -1, 0] + 6)
    assert np.allclose(wrapper.model.seen, wrapper.inputs(x))  # the model saw changes
    # a wrapper works wherever a model does: recursive forecasts keep climbing
    steps = forecast(RelativeModel(ConstantChange(1.0), 0.5), x[0, :, 0], 3)
    assert np.allclose(steps, x[0, -1, 0] + 0.5 * np.arange(1, 4))
    for bad in (0.0, -1.0, float("nan"), float("inf"), True, "1"):
        with pytest.raises(ValueError, match="`scale`"):
            RelativeModel(None, bad)
