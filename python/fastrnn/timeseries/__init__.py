"""Time-series toolkit: synthetic data, windows, splits, scaling, loaders (CSV too), baselines,
multi-step forecasting, metrics, backtests and plots; many series as a :class:`Panel` (long
tables, per-series scaling, windows across series) and the classic methods (naive, seasonal
naive, drift, SES, Theta). The global models over many series are in
:mod:`fastrnn.forecasting`.

Plain NumPy; it imports nothing else from fastrnn. matplotlib (``fastrnn[plot]``) and
statsmodels (``fastrnn[data]``) are imported only by the functions that need them.
Models and baselines are interchangeable: everything here takes any object with a
``predict(x)`` method.
"""

from __future__ import annotations

from .backtest import BacktestResult, backtest
from .baselines import (
    Forecaster,
    LinearForecaster,
    NaiveForecaster,
    SeasonalNaiveForecaster,
)
from .classical import (
    classical_forecast,
    classical_quantiles,
    drift,
    forecast_std,
    naive,
    seasonal_naive,
    ses,
    theta,
)
from .data import (
    generate_time_series,
    make_seq2seq_targets,
    make_windows,
    values_from,
    windows_before,
)
from .datasets import (
    DATASETS,
    JENA_COLUMNS,
    TimeSeriesData,
    fill_gaps,
    load_dataset,
    load_jena_climate,
)
from .forecast import STRATEGIES, RelativeModel, forecast
from .metrics import (
    METRICS,
    check_quantiles,
    coverage,
    crps_from_quantiles,
    evaluate,
    last_time_step_mse,
    mae,
    mape,
    mase,
    mse,
    pinball_loss,
    rmse,
    smape,
)
from .panel import SCALERS, Panel, PanelWindows, fit_scalers, gather_windows, read_long_csv
from .plots import plot_forecast, plot_learning_curves
from .readers import MISSING_VALUES, csv_columns, infer_season, read_csv
from .split import MinMaxScaler, StandardScaler, split_points, train_val_test_split
from .windows import WindowDataset, timeseries_dataset_from_array

__all__ = [
    "DATASETS",
    "JENA_COLUMNS",
    "METRICS",
    "MISSING_VALUES",
    "SCALERS",
    "STRATEGIES",
    "BacktestResult",
    "Forecaster",
    "LinearForecaster",
    "MinMaxScaler",
    "NaiveForecaster",
    "Panel",
    "PanelWindows",
    "RelativeModel",
    "SeasonalNaiveForecaster",
    "StandardScaler",
    "TimeSeriesData",
    "WindowDataset",
    "backtest",
    "check_quantiles",
    "classical_forecast",
    "classical_quantiles",
    "coverage",
    "crps_from_quantiles",
    "csv_columns",
    "drift",
    "evaluate",
    "fill_gaps",
    "fit_scalers",
    "forecast",
    "forecast_std",
    "gather_windows",
    "generate_time_series",
    "infer_season",
    "last_time_step_mse",
    "load_dataset",
    "load_jena_climate",
    "mae",
    "make_seq2seq_targets",
    "make_windows",
    "mape",
    "mase",
    "mse",
    "naive",
    "pinball_loss",
    "plot_forecast",
    "plot_learning_curves",
    "read_csv",
    "read_long_csv",
    "rmse",
    "seasonal_naive",
    "ses",
    "smape",
    "split_points",
    "theta",
    "timeseries_dataset_from_array",
    "train_val_test_split",
    "values_from",
    "windows_before",
]
