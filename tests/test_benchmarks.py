"""The benchmark suite runs and writes its files. No timing is asserted: benchmarks are not tests.

Each test runs ``benchmarks/run.py`` in a subprocess on the smallest sizes (``--smoke``), the way
a user runs it, so the suite's imports, argument parsing and output files are what is checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import fastrnn

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "benchmarks" / "run.py"
HANG_GUARD_SECONDS = 900  # only stops a hung run; the smoke run takes seconds


def run_suite(*args: str) -> subprocess.CompletedProcess:
    """Runs the suite with `args`, finding this fastrnn whether installed or on PYTHONPATH."""
    env = dict(os.environ)
    package_parent = str(Path(fastrnn.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (package_parent, env.get("PYTHONPATH", "")) if p
    )
    return subprocess.run(
        [sys.executable, str(RUN), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_SECONDS,
        check=False,
    )


def load_results(out: Path, proc: subprocess.CompletedProcess) -> dict[str, Any]:
    """The run's results.json, after checking the run succeeded."""
    assert proc.returncode == 0, f"run.py failed:\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return json.loads((out / "results.json").read_text(encoding="utf-8"))


def check_timing(result: dict[str, Any]) -> None:
    """A result is a positive median time, or says why it is missing."""
    if "median_s" in result:
        assert result["median_s"] > 0
        assert result["timing"]["repeats"] >= 1
    else:
        assert "skipped" in result or "error" in result, result


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], str]:
    """One smoke run of every section, shared by the tests below."""
    out = tmp_path_factory.mktemp("bench_out")
    proc = run_suite("--quick", "--smoke", "--epochs", "1", "--out", str(out))
    return out, load_results(out, proc), proc.stdout


def test_meta_describes_machine_and_blas(quick_run):
    _, results, _ = quick_run
    meta = results["meta"]
    for key in ("date", "machine", "versions", "threads", "blas", "openblas_env",
                "fastrnn_kernel_set", "fastrnn_blas_config", "mode"):
        assert key in meta, key
    assert meta["mode"] == "smoke"
    assert meta["threads"] >= 1
    assert set(meta["openblas_env"]) == {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"}
    assert meta["machine"]["cores"] >= 1


def test_sgemm_rates_recorded(quick_run):
    _, results, _ = quick_run
    assert results["sgemm"], "no sgemm rates"
    for row in results["sgemm"]:
        assert {"label", "m", "n", "k", "gflops", "median_s"} <= set(row)
        assert row["gflops"] > 0
    assert results["sgemm_peak_gflops"] > 0


def test_kernel_rows_cover_every_cell_and_pass(quick_run):
    _, results, _ = quick_run
    rows = results["kernels"]
    keys = {"group", "label", "cell", "pass", "batch", "time", "input", "hidden", "gflop",
            "results", "speedup_vs_numpy", "speedup_vs_torch", "fastrnn_pct_of_sgemm"}
    for row in rows:
        assert keys <= set(row), keys - set(row)
        assert set(row["results"]) == {"fastrnn", "numpy", "torch"}
        assert "median_s" in row["results"]["fastrnn"], row["results"]["fastrnn"]
        for result in row["results"].values():
            check_timing(result)
    seen = {(r["cell"], r["pass"], r["group"]) for r in rows}
    for cell in ("simple_rnn", "lstm", "gru"):
        for pass_ in ("forward", "forward+backward"):
            for group in ("perf", "hidden", "batch"):
                assert (cell, pass_, group) in seen


def test_latency_and_e2e_rows(quick_run):
    _, results, _ = quick_run
    kinds = {r["kind"] for r in results["latency"]}
    assert kinds == {"streaming step", "whole sequence"}
    for row in results["latency"]:
        for result in row["results"].values():
            check_timing(result)
    assert [r["model"] for r in results["e2e"]] == [
        "deep_rnn_layer_norm", "deep_rnn", "seq2seq", "jena_lstm"]
    for row in results["e2e"]:
        assert set(row["results"]) == {"fastrnn", "fastrnn_functional", "torch", "tf_keras"}
        # fastrnn itself must always train (an error here is a bug, not a missing package)
        only = row["model"] == "deep_rnn_layer_norm"  # fastrnn only, with its ratio to plain
        if only:
            assert row["layer_norm_over_plain"] > 0
            # (or skipped for a missing package first: PyTorch and TF-Keras are optional)
            assert all(set(row["results"][f]) == {"skipped"}
                       for f in ("fastrnn_functional", "torch", "tf_keras"))
            assert row["results"]["fastrnn_functional"] == {"skipped": "fastrnn only"}
        for ours in ("fastrnn",) if only else ("fastrnn", "fastrnn_functional"):
            assert "s_per_epoch" in row["results"][ours], row["results"][ours]
        if not only:  # the functional/Sequential ratio from interleaved pairs of epochs
            assert 0.2 < row["functional_over_sequential_paired"] < 5
        for result in row["results"].values():
            assert "s_per_epoch" in result or "skipped" in result or "error" in result
            if "s_per_epoch" in result:
                assert result["s_per_epoch"] > 0 and result["val_mse"] >= 0
    jena = results["e2e"][-1]["results"]
    for result in jena.values():
        if "s_per_epoch" in result:
            assert result["peak_rss_mib"] > 0


def test_stream_predict_and_thread_rows(quick_run):
    _, results, _ = quick_run
    stream = results["stream"]
    assert {(r["model"], r["batch"]) for r in stream} == {
        (m, b) for m in ("deep_rnn", "jena_lstm", "dlwp_gru") for b in (1, 256)}
    for row in stream:
        assert set(row["results"]) == {"fastrnn", "numpy", "torch"}
        assert "median_s" in row["results"]["fastrnn"], row["results"]["fastrnn"]
        for result in row["results"].values():
            check_timing(result)
        # every implementation streams the same model (float32 rounding apart)
        for diff in row["max_abs_diff_vs_fastrnn"].values():
            assert diff < 1e-4
    predict = results["predict"]
    assert {(r["model"], r["batch"]) for r in predict} == {
        (m, b) for m in ("deep_rnn", "jena_lstm") for b in (256, 1)}
    for row in predict:
        assert row["windows"] >= 1 and row["chunk"] >= 1
        fast = row["results"]["fastrnn"]
        assert fast["windows_per_s"] > 0, fast
        for result in row["results"].values():
            check_timing(result)
    threads = results["threads"]
    kinds = [r["kind"] for r in threads]
    # smoke: the book's size, and every end-to-end workload
    assert kinds.count("kernel") == 3 and kinds.count("fit") == len(results["e2e"])
    for row in threads:
        n = row["threads"]
        assert row["s_1"] > 0 and row[f"s_{n}"] > 0 and row["speedup"] > 0
    names = [t["target"] for t in results["targets"]]
    assert "streaming step jena_lstm B1 vs PyTorch >= 10x" in names
    assert "predict deep_rnn B256 vs PyTorch >= 10x (windows/s)" in names


def test_targets_and_report_written(quick_run):
    out, results, stdout = quick_run
    assert results["targets"]
    for target in results["targets"]:
        assert {"target", "goal", "measured", "status"} <= set(target)
    report = (out / "RESULTS.md").read_text(encoding="utf-8")
    assert report.startswith("# fastrnn benchmarks")
    for heading in ("Kernels at the target sizes", "Inference latency", "End-to-end", "Targets",
                    "Whole-model streaming", "Predict throughput", "Thread scaling",
                    "MultiHeadAttention and Conv1DTranspose", "Serving: a 2-layer LSTM(64)"):
        assert heading in report
        assert heading in stdout


def test_attention_and_serving_rows(quick_run):
    _, results, _ = quick_run
    cases = [r["case"] for r in results["attention"]]
    assert any(c.startswith("MHA") for c in cases)
    assert any(c.startswith("Conv1DTranspose") for c in cases)
    for r in results["attention"]:
        assert "skipped" in r or (r["fastrnn_s"] > 0 and r["torch_s"] > 0)
    rows = results["serving"]["rows"]
    assert set(rows) == {"step", "window", "batch256"}
    for impls in rows.values():
        assert impls["fastrnn"] > 0  # fastrnn itself always runs
    named = [t["target"] for t in results["targets"]]
    assert any(t.startswith("serving: 50-step window B1 vs onnxruntime") for t in named)
    assert any(t.startswith("MultiHeadAttention fwd+bwd vs PyTorch") for t in named) == (
        "torch_s" in results["attention"][0])


def test_update_merges_sections_into_an_earlier_run(tmp_path):
    proc = run_suite("--smoke", "--only", "latency", "--out", str(tmp_path))
    first = load_results(tmp_path, proc)
    proc = run_suite("--smoke", "--only", "attention", "--update", "--out", str(tmp_path))
    both = load_results(tmp_path, proc)
    assert both["latency"] == first["latency"]  # kept as it was
    assert both["attention"] and both["meta"]["sections"] == ["latency", "attention"]
    assert both["meta"]["updated"]["sections"] == ["attention"]
    report = (tmp_path / "RESULTS.md").read_text(encoding="utf-8")
    assert "Inference latency" in report and "MultiHeadAttention and Conv1DTranspose" in report
    assert "run again on" in report
    # --update needs sections to run and an earlier run to merge into
    assert run_suite("--smoke", "--update", "--out", str(tmp_path)).returncode == 2
    proc = run_suite("--smoke", "--only", "attention", "--update", "--out",
                     str(tmp_path / "empty"))
    assert proc.returncode == 2 and "no results.json" in proc.stderr


def test_plots_written(quick_run):
    pytest.importorskip("matplotlib")
    out, results, _ = quick_run
    assert "kernels_hidden.png" in results["plots"]
    for name in results["plots"]:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_only_one_section(tmp_path):
    proc = run_suite("--smoke", "--only", "latency", "--out", str(tmp_path))
    results = load_results(tmp_path, proc)
    assert results["latency"]
    for section in ("kernels", "sgemm", "e2e"):
        assert section not in results


def test_bad_arguments_rejected(tmp_path):
    proc = run_suite("--threads", "0", "--out", str(tmp_path))
    assert proc.returncode == 2
    assert "--threads" in proc.stderr


def _kernel_sets_module():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import kernel_sets
    finally:
        sys.path.pop(0)
    return kernel_sets


def test_kernel_sets_report_has_a_column_per_set():
    """The per-kernel-set report: one row per target, one column per set, the case a 'worst
    of' target was measured on kept in its cell, and every set's own report appended."""
    ks = _kernel_sets_module()

    def run(ratio: float, worst: str) -> dict[str, Any]:
        meta = {"date": "d", "machine": {"cpu_model": "cpu", "cores": 2, "platform": "p"},
                "threads": 2}
        return {
            "meta": meta,
            "targets": [
                {"target": "LSTM fwd+bwd vs PyTorch >= 2x", "unit": "x", "measured": ratio,
                 "status": "met" if ratio >= 2 else "unmet (short by 10%)"},
                {"target": f"fwd+bwd never slower than NumPy (worst of 3: {worst})",
                 "unit": "x", "measured": 1.5, "status": "met"},
            ],
            "_markdown": "# fastrnn benchmarks\n\n## Kernels\n\nrows\n",
        }

    report = ks.combined({"avx512": run(2.5, "RNN 4x10"), "avx2": run(1.8, "GRU 8x10")},
                         {"avx512": "cmd a", "avx2": "cmd b"})
    lines = report.splitlines()
    assert "| target | avx512 | avx2 |" in lines
    assert "| LSTM fwd+bwd vs PyTorch >= 2x | 2.50x (met) | 1.80x (unmet) |" in lines
    assert ("| fwd+bwd never slower than NumPy | 1.50x (met, RNN 4x10) | "
            "1.50x (met, GRU 8x10) |") in lines
    assert "Unmet targets: avx512 0, avx2 1" in lines
    assert "## Kernel set avx2" in lines and "### Kernels" in lines


def test_kernel_sets_environment():
    """A set below the best also holds OpenBLAS, oneDNN and MKL to its instructions; the best
    set runs with none of those variables, whatever the caller's environment had."""
    ks = _kernel_sets_module()
    os.environ["OPENBLAS_CORETYPE"] = "Prescott"
    try:
        best = ks.environment_for("avx512", "avx512")
        lower = ks.environment_for("avx2", "avx512")
    finally:
        del os.environ["OPENBLAS_CORETYPE"]
    assert best["FASTRNN_KERNELS"] == "avx512" and "OPENBLAS_CORETYPE" not in best
    assert lower["OPENBLAS_CORETYPE"] == "Haswell" and lower["ONEDNN_MAX_CPU_ISA"] == "AVX2"


def test_kernel_sets_refuses_unknown_set(tmp_path):
    script = ROOT / "benchmarks" / "kernel_sets.py"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(Path(fastrnn.__file__).resolve().parents[1]), env.get("PYTHONPATH", ""))
        if p)
    done = subprocess.run([sys.executable, str(script), "--sets", "sse9", "--out",
                           str(tmp_path)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "--sets" in done.stderr and "sse9" in done.stderr
