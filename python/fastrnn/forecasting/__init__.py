"""Forecasting many series with global recurrent models: the workflow over
:mod:`fastrnn.timeseries` (data, metrics, classical methods) and the models.

* :class:`RNNForecaster`: one global RNN over every series (per-series scaling, windows drawn
  across series, the direct, recursive and encoder-decoder strategies, quantile or
  distribution heads, ensembles by median, covariates, filled gaps, cross-validation,
  save/load);
* :class:`StatsForecaster`: naive, seasonal naive, drift, SES and Theta with the same
  ``fit(df)`` / ``predict(h)`` / ``cross_validation`` API and their textbook prediction
  intervals;
* :mod:`fastrnn.forecasting.losses`: the quantile loss and the Gaussian / Student-t
  negative log-likelihoods;
* :mod:`fastrnn.forecasting.pipeline` and :mod:`fastrnn.forecasting.single`: the runs behind
  ``fastrnn forecast`` (many series from a long CSV; one series), so the command only parses
  its arguments and calls them.
"""

from __future__ import annotations

from .forecaster import RNNForecaster, quantile_column
from .losses import GaussianNLL, QuantileLoss, StudentTNLL
from .stats import StatsForecaster

__all__ = [
    "GaussianNLL",
    "QuantileLoss",
    "RNNForecaster",
    "StatsForecaster",
    "StudentTNLL",
    "quantile_column",
]
