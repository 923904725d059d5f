"""Shortened runs of the functional-API examples (DLwP ch.10 and the encoder-decoders)."""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import numpy as np
import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dlwp():
    yield _load("deep_learning_with_python_ch10")
    sys.modules.pop("deep_learning_with_python_ch10", None)


@pytest.fixture(scope="module")
def encdec():
    yield _load("encoder_decoder")
    sys.modules.pop("encoder_decoder", None)


def test_generated_jena_file_parses_like_the_real_one(dlwp, tmp_path):
    path = str(tmp_path / "jena.csv")
    dlwp.write_synthetic_jena(path, 3000)
    temperature, raw = dlwp.load(path)
    assert raw.shape == (3000, 14) and temperature.shape == (3000,)
    np.testing.assert_array_equal(temperature, raw[:, 1])
    assert np.isfinite(raw).all() and temperature.std() > 1.0  # a daily cycle at least


def test_dlwp_chapter_runs_and_learns(dlwp, capsys):
    results = dlwp.main(["--rows", "8000", "--epochs", "2",
                         "--models", "dense,lstm,bidirectional_lstm"])
    out = capsys.readouterr().out
    assert "| lstm | 2 |" in out and "common-sense baseline" in out
    for name in ("dense", "lstm", "bidirectional_lstm"):
        mae, seconds = results[name]["fastrnn"]
        assert np.isfinite(mae) and seconds > 0
    # a trained LSTM beats predicting the mean temperature by far
    assert results["lstm"]["fastrnn"][0] < 6.0


def test_encoder_decoder_example_runs(encdec, capsys):
    results = encdec.main(["--epochs", "2", "--series", "1500"])
    assert set(results) == set(encdec.NAMES)
    for by in results.values():
        assert np.isfinite(by["fastrnn"][0])
    # every way beats forecasting zeros for the 10 steps (the series' mean square is ~0.1)
    assert max(by["fastrnn"][0] for by in results.values()) < 0.1
    assert "| encoder_decoder |" in capsys.readouterr().out
