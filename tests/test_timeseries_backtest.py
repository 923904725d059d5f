"""Walk-forward backtests and plots."""

import json
import sys

import numpy as np
import pytest

from fastrnn.timeseries import (
    BacktestResult,
    LinearForecaster,
    NaiveForecaster,
    SeasonalNaiveForecaster,
    backtest,
    plot_forecast,
    plot_learning_curves,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def seasonal_series(steps=240, period=12, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    return 10 + 0.05 * t + 3 * np.sin(2 * np.pi * t / period) + rng.normal(0, 0.2, steps)


class Recorder:
    """A duck-typed model that records the windows it is given and repeats their mean."""

    def __init__(self):
        self.windows = []

    def predict(self, x):
        self.windows.append(np.array(x))
        return x.mean(axis=1)[:, :1]


def test_folds_origins_and_windows_on_arange():
    series = np.arange(50.0)
    recorder = Recorder()
    result = backtest({"rec": recorder, "naive": NaiveForecaster()}, series, window=5,
                      horizon=3, start=20, stride=10)
    assert isinstance(result, BacktestResult)
    assert result.origins.tolist() == [20, 30, 40]  # 40 + 3 <= 50, 50 would not fit
    assert result.truth.tolist() == [[20, 21, 22], [30, 31, 32], [40, 41, 42]]
    assert result.forecasts["naive"].tolist() == [[19] * 3, [29] * 3, [39] * 3]
    # the recursive strategy slides the 5-step window over its own predictions
    assert recorder.windows[0][0, :, 0].tolist() == [15, 16, 17, 18, 19]
    assert recorder.windows[1][0, :, 0].tolist() == [16, 17, 18, 19, 17]
    fold = result.folds[1]
    assert (fold["origin"], fold["train_start"], fold["train_end"]) == (30, 0, 30)
    assert fold["metrics"]["naive"]["mae"] == pytest.approx((1 + 2 + 3) / 3)
    assert result.overall["naive"]["mse"] == pytest.approx((1 + 4 + 9) / 3)


def test_sliding_mode_and_default_stride():
    seen = []

    def fit(name, model, train):
        seen.append((name, train[0, 0], len(train)))

    result = backtest({"naive": NaiveForecaster()}, np.arange(40.0), window=4, horizon=5,
                      start=20, mode="sliding", train_size=8, fit=fit)
    assert result.origins.tolist() == [20, 25, 30, 35]  # stride defaults to the horizon
    assert seen == [("naive", 12.0, 8), ("naive", 17.0, 8), ("naive", 22.0, 8),
                    ("naive", 27.0, 8)]
    assert [f["train_start"] for f in result.folds] == [12, 17, 22, 27]


def test_refit_linear_and_compare_with_baselines():
    series = seasonal_series()
    models = {
        "naive": NaiveForecaster(),
        "seasonal": SeasonalNaiveForecaster(12),
        "linear": LinearForecaster(),
    }
    result = backtest(models, series, window=24, horizon=6, start=120, fit=True,
                      strategy={"naive": "recursive", "seasonal": "direct", "linear": "direct"},
                      metrics=("mse", "mae", "mase"), season=12)
    assert len(result.folds) == 20
    overall = result.overall
    assert overall["seasonal"]["mse"] < overall["naive"]["mse"] / 3
    assert overall["linear"]["mse"] < overall["naive"]["mse"] / 3
    assert overall["seasonal"]["mase"] < 1.5
    assert result.forecasts["linear"].shape == (20, 6)
    table = result.table(reference="naive", sort_by="mse")
    lines = table.splitlines()
    assert lines[0].split() == ["model", "mse", "mae", "mase", "mse/naive", "seconds"]
    assert lines[2].split()[0] in ("seasonal", "linear") and lines[-2].split()[0] == "naive"
    naive_row = next(line for line in lines if line.startswith("naive"))
    assert naive_row.split()[4] == "1.000"
    assert "20 folds, horizon 6" in lines[-1]
    as_dict = result.to_dict()
    assert json.loads(json.dumps(as_dict)) == as_dict
    assert as_dict["overall"]["naive"]["mse"] == overall["naive"]["mse"]
    assert len(as_dict["folds"]) == 20 and as_dict["origins"][0] == 120


def test_callable_fit_can_replace_the_model():
    def fit(name, model, train):
        x = np.lib.stride_tricks.sliding_window_view(train[:, 0], 10)[:-1, :, None]
        return LinearForecaster().fit(x, train[10:, 0])

    series = seasonal_series(120)
    result = backtest({"lin": NaiveForecaster()}, series, window=10, horizon=1, start=80,
                      fit=fit)
    assert result.overall["lin"]["mse"] < 0.3


def test_multivariate_series_needs_a_target():
    series = np.stack([np.arange(30.0), -np.arange(30.0)], axis=1)
    result = backtest({"naive": NaiveForecaster()}, series, window=3, horizon=2, start=10,
                      target=1)
    assert result.truth[0].tolist() == [-10, -11]
    assert result.forecasts["naive"][0].tolist() == [-9, -9]
    with pytest.raises(ValueError, match="`target`"):
        backtest({"naive": NaiveForecaster()}, series, window=3, horizon=2)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"models": {}}, "`models`"),
        ({"mode": "rolling"}, "`mode`"),
        ({"start": 2}, "`start`: expected an origin of at least window = 5"),
        ({"start": 48}, "start \\+ horizon <= len\\(series\\) = 50"),
        ({"strategy": "magic"}, "`strategy`"),
        ({"metrics": ("r2",)}, "`metric`"),
        ({"mode": "sliding", "start": 10, "train_size": 20}, "`train_size`"),
        ({"fit": 3}, "`fit`"),
        ({"horizon": 0}, "`horizon`"),
    ],
)
def test_backtest_argument_errors(kwargs, pattern):
    arguments = {"models": {"naive": NaiveForecaster()}, "series": np.arange(50.0), "window": 5,
                 "horizon": 3, **kwargs}
    with pytest.raises(ValueError, match=pattern):
        backtest(**arguments)


def test_table_errors():
    result = backtest({"naive": NaiveForecaster()}, np.arange(20.0), window=2, horizon=2)
    with pytest.raises(ValueError, match="`reference`"):
        result.table(reference="lstm")
    with pytest.raises(ValueError, match="`sort_by`"):
        result.table(sort_by="r2")
    assert result.origins.tolist() == [10, 12, 14, 16, 18]  # default start: half the series
    assert result.table().splitlines()[-1] == "(5 folds, horizon 2)"


def test_plot_forecast_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    history = np.sin(np.arange(50) / 4)[:, None]
    path = plot_forecast(history, {"naive": np.full(10, history[-1, 0]),
                                   "linear": np.sin(np.arange(50, 60) / 4)},
                         truth=np.sin(np.arange(50, 60) / 4), path=tmp_path / "out" / "f.png",
                         title="test")
    assert path == str(tmp_path / "out" / "f.png")
    with open(path, "rb") as handle:
        assert handle.read(8) == PNG_MAGIC
    single = plot_forecast(np.arange(5.0), np.arange(5.0, 8.0), path=tmp_path / "g.png",
                           history_index=np.arange(100, 105))
    assert (tmp_path / "g.png").stat().st_size > 1000 and single.endswith("g.png")
    with pytest.raises(ValueError, match="`history_index`"):
        plot_forecast(np.arange(5.0), np.arange(2.0), path=tmp_path / "h.png",
                      history_index=np.arange(4))
    with pytest.raises(ValueError, match="`forecast`"):
        plot_forecast(np.arange(5.0), np.zeros((2, 3)), path=tmp_path / "i.png")


def test_plot_learning_curves_from_history_or_dict(tmp_path):
    pytest.importorskip("matplotlib")

    class History:
        history = {"loss": [1.0, 0.5, 0.3], "val_loss": [1.2, 0.7, 0.6], "mae": [0.9, 0.6, 0.4]}

    path = plot_learning_curves(History(), path=tmp_path / "lc.png")
    with open(path, "rb") as handle:
        assert handle.read(8) == PNG_MAGIC
    plot_learning_curves({"val_loss": [1.0, 0.9]}, path=tmp_path / "val_only.png")
    assert (tmp_path / "val_only.png").exists()
    with pytest.raises(ValueError, match="`history`"):
        plot_learning_curves({}, path=tmp_path / "empty.png")


def test_plots_do_not_touch_pyplot_state(tmp_path):
    pytest.importorskip("matplotlib")
    plot_forecast(np.arange(5.0), np.arange(2.0), path=tmp_path / "a.png")
    if "matplotlib.pyplot" in sys.modules:  # another test may have imported it
        assert sys.modules["matplotlib.pyplot"].get_fignums() == []


def test_missing_matplotlib_names_the_extra(monkeypatch, tmp_path):
    for module in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install 'fastrnn\[plot\]'"):
        plot_forecast(np.arange(5.0), np.arange(2.0), path=tmp_path / "x.png")
    with pytest.raises(ImportError, match=r"fastrnn\[plot\]"):
        plot_learning_curves({"loss": [1.0]}, path=tmp_path / "y.png")
