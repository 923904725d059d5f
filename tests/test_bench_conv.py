"""The Conv1D benchmark section runs (smallest sizes) and reports fastrnn against nn.Conv1d.
No timing is asserted: benchmarks are not tests."""

from __future__ import annotations

import json

from test_benchmarks import run_suite


def test_conv_section_runs_and_reports(tmp_path):
    out = tmp_path / "bench"
    proc = run_suite("--smoke", "--only", "conv", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    rows = results["conv"]
    assert {r["pass"] for r in rows} == {"forward", "forward+backward"}
    for r in rows:
        assert r["fastrnn"]["median_s"] > 0 and r["gflop"] > 0
    report = (out / "RESULTS.md").read_text(encoding="utf-8")
    assert "## Conv1D" in report and "DLwP Jena conv 1" in report
