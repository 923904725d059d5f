"""`fastrnn forecast --id-column`: the strategies, --fill-gaps and the baselines' intervals
reach the library."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from fastrnn.cli import main

LONG = ["--id-column", "id", "--time-column", "month", "--column", "y", "--epochs", "1",
        "--units", "4", "--quiet"]


def _write(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([["id", "month", "y"], *rows])
    return path


def _rows(gap: bool = False) -> list[list[str]]:
    rows = []
    for sid in ("a", "b"):
        for t in range(24):
            if gap and sid == "a" and t in (5, 6):
                continue  # two missing months
            rows.append([sid, str(np.datetime64("2000-01") + np.timedelta64(t, "M")) + "-01",
                         f"{20 + t + 3 * np.sin(t):.3f}"])
    return rows


def _read(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("strategy", ["recursive", "encoder-decoder"])
def test_long_csv_strategies(tmp_path, capsys, strategy):
    path = _write(tmp_path / "long.csv", _rows())
    assert main(["forecast", "--csv", str(path), *LONG[:-1], "--horizon", "3", "--strategy",
                 strategy, "--quantiles", "0.1,0.5,0.9", "--out", str(tmp_path / "o")]) == 0
    rows = _read(tmp_path / "o" / "forecasts.csv")
    assert len(rows) == 6 and list(rows[0]) == ["id", "month", "forecast", "q0.1", "q0.5",
                                                "q0.9"]
    assert f"strategy={strategy!r}" in capsys.readouterr().out  # the trained model's


def test_encoder_decoder_needs_many_series(tmp_path, capsys):
    path = tmp_path / "one.csv"
    path.write_text("t,x\n" + "".join(f"{i},{np.sin(i / 3):.4f}\n" for i in range(60)))
    status = main(["forecast", "--csv", str(path), "--column", "x", "--strategy",
                   "encoder-decoder", "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err
    assert status == 2 and "--strategy encoder-decoder goes with --id-column" in err


def test_long_csv_fill_gaps_and_baseline_intervals(tmp_path, capsys):
    path = _write(tmp_path / "gaps.csv", _rows(gap=True))
    assert main(["forecast", "--csv", str(path), *LONG, "--horizon", "2",
                 "--out", str(tmp_path / "refused")]) == 1
    assert "series 'a': a gap after time 2000-05-01" in capsys.readouterr().err
    assert main(["forecast", "--csv", str(path), *LONG[:-1], "--horizon", "2", "--fill-gaps",
                 "--model", "theta", "--quantiles", "0.1,0.9",
                 "--out", str(tmp_path / "o")]) == 0
    assert "2 missing values filled (interpolate) in 1 series" in capsys.readouterr().out
    rows = _read(tmp_path / "o" / "forecasts.csv")
    assert [r["month"] for r in rows[:2]] == ["2002-01-01", "2002-02-01"]
    assert all(float(r["q0.1"]) < float(r["forecast"]) < float(r["q0.9"]) for r in rows)


def test_default_training_length_follows_the_data_as_validated_on_m3():
    """The command's default length reproduces the M3 validation's choice per group (2,000
    steps for yearly and other, 4,000 quarterly, 8,000 monthly) within the rule's rounding."""
    from fastrnn.forecasting.pipeline import default_steps

    chosen = {4351: 2000, 7931: 2000, 13984: 4000, 67091: 8000}  # M3's windows (h, 2h)
    for windows, steps in chosen.items():
        assert abs(default_steps(windows) - steps) <= 0.4 * steps
    assert default_steps(0) == 2000 and default_steps(10**9) == 8000
    lengths = [default_steps(w) for w in (1000, 5000, 20000, 50000, 100000)]
    assert lengths == sorted(lengths) and all(v % 100 == 0 for v in lengths)


def test_default_training_length_is_used_and_said(tmp_path, capsys, monkeypatch):
    from fastrnn.forecasting import pipeline

    seen = []
    real = pipeline.default_steps
    monkeypatch.setattr(pipeline, "default_steps", lambda w: seen.append(w) or 200)
    path = _write(tmp_path / "long.csv", _rows())
    args = ["forecast", "--csv", str(path), "--id-column", "id", "--time-column", "month",
            "--column", "y", "--units", "4", "--horizon", "3", "--out", str(tmp_path / "o")]
    assert main(args) == 0
    out = capsys.readouterr().out
    from fastrnn.timeseries.panel import PanelWindows

    assert seen == [len(PanelWindows(np.array([24, 24]), 6, 3))]  # window 2h, horizon 3
    assert "training length: 200 steps a member" in out
    assert real(4000) == 2000


@pytest.mark.parametrize("extra, want", [
    ([], "deseasonalize=True, season_length=None"),
    (["--season", "6"], "deseasonalize=True, season_length=6"),
    (["--no-deseasonalize"], None),
])
def test_long_csv_deseasonalizes_by_default(tmp_path, capsys, extra, want):
    """The command's default (M3's validated choice) deseasonalizes seasonal series, the
    season from the dates unless --season gives it; --no-deseasonalize turns it off."""
    path = _write(tmp_path / "long.csv", _rows())
    assert main(["forecast", "--csv", str(path), *LONG[:-1], "--horizon", "3", *extra,
                 "--out", str(tmp_path / "o")]) == 0
    trained = [line for line in capsys.readouterr().out.splitlines() if "training " in line]
    assert trained and ((want in trained[0]) if want else "deseasonalize" not in trained[0])


def test_no_deseasonalize_goes_with_many_series(tmp_path, capsys):
    path = tmp_path / "one.csv"
    path.write_text("t,x\n" + "".join(f"{i},{np.sin(i / 3):.4f}\n" for i in range(60)))
    status = main(["forecast", "--csv", str(path), "--column", "x", "--no-deseasonalize",
                   "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err
    assert status == 2 and "--no-deseasonalize goes with --id-column" in err
