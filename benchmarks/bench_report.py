"""Turning a run's results into the markdown report, the targets' verdicts and the plots."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

import bench_attention
import bench_serving
import bench_stream
from bench_common import CLEAN_ENV_HINT
from bench_kernels import CELL_NAMES

IMPL_NAMES = {"fastrnn": "fastrnn", "fastrnn_functional": "fastrnn (functional API)",
              "numpy": "NumPy", "torch": "PyTorch", "tf_keras": "TF-Keras"}

#: PyTorch's forward+backward times (ms) on the machine the targets were set on.
PERF_TORCH_MS = {
    "RNN 32x50x1x20": 1.56,
    "LSTM 32x50x1x20": 0.63,
    "GRU 32x50x1x20": 4.28,
    "RNN 64x100x32x128": 10.9,
    "LSTM 64x100x32x128": 26.3,
    "GRU 64x100x32x128": 33.5,
    "RNN 64x100x256x512": 106.0,
    "LSTM 64x100x256x512": 267.0,
    "GRU 64x100x256x512": 368.0,
    "LSTM 32x50x512x1024": 209.0,
}


# ----------------------------------------------------------------------------- formatting
def fmt_time(seconds: Optional[float]) -> str:
    """``512 us``, ``3.21 ms``, ``1.50 s``."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1.0:
        return f"{seconds * 1e3:.3g} ms" if seconds < 0.1 else f"{seconds * 1e3:.0f} ms"
    return f"{seconds:.2f} s"


def fmt_ratio(value: Optional[float]) -> str:
    """``2.31x`` or ``-``."""
    return "-" if value is None else f"{value:.2f}x"


def fmt_num(value: Optional[float], digits: int = 0) -> str:
    """A number with `digits` decimals, or ``-``."""
    return "-" if value is None else f"{value:.{digits}f}"


def cell_result(result: dict[str, Any]) -> str:
    """A timing cell: the median, or why there is none."""
    if "median_s" in result:
        return fmt_time(result["median_s"])
    if "error" in result:
        return "error"
    return "n/a"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table's lines."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


# ----------------------------------------------------------------------------- targets
def _verdict(measured: Optional[float], goal: float, unit: str = "x") -> str:
    if measured is None:
        return "n/a"
    if measured >= goal:
        return "met"
    return f"unmet (short by {100 * (1 - measured / goal):.0f}%)"


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target (benchmarks/README.md) with the ratio measured in this run and a
    verdict."""
    out: list[dict[str, Any]] = []

    def add(name: str, measured: Optional[float], goal: float, unit: str = "x") -> None:
        out.append(
            {"target": name, "goal": goal, "unit": unit, "measured": measured,
             "status": _verdict(measured, goal)}
        )

    fb = [r for r in results.get("kernels", []) if r["pass"] == "forward+backward"]
    perf = [r for r in fb if r["group"] == "perf"]
    for r in perf:
        if r["hidden"] <= 128:
            add(f"{r['label']} fwd+bwd vs PyTorch >= 2x", r["speedup_vs_torch"], 2.0)
        else:
            add(f"{r['label']} fwd+bwd vs PyTorch >= 1.3x", r["speedup_vs_torch"], 1.3)
    with_numpy = [r for r in fb if r["speedup_vs_numpy"] is not None]
    if with_numpy:
        worst = min(with_numpy, key=lambda r: r["speedup_vs_numpy"])
        add(
            f"fwd+bwd never slower than NumPy (worst of {len(with_numpy)}: {worst['label']})",
            worst["speedup_vs_numpy"],
            1.0,
        )
    elif fb:
        add("fwd+bwd never slower than NumPy", None, 1.0)
    for r in perf:
        if r["hidden"] >= 512:
            pct = r["fastrnn_pct_of_sgemm"]
            add(f"{r['label']} fwd+bwd >= 85% of sgemm GFLOP/s", pct, 85.0, "%")

    for r in results.get("masked", []):
        ratio = r["masked_over_unmasked"]
        out.append(
            {"target": f"{r['label']} masked fwd+bwd <= 1.1x unmasked", "goal": 1.1,
             "unit": "x", "measured": ratio,
             "status": "n/a" if ratio is None else "met" if ratio <= 1.1 else "unmet"}
        )

    e2e = {r["model"]: r for r in results.get("e2e", [])}
    for name, r in e2e.items():
        if "layer_norm_over_plain" in r:  # fastrnn only: no functional twin
            continue
        # functional s/epoch over Sequential's: from interleaved pairs when measured
        ratio = r.get("functional_over_sequential_paired") or r.get(
            "speedup_vs_fastrnn_functional")
        add(f"{name}: functional model's epoch within 5% of Sequential's (Sequential/functional)",
            None if not ratio else 1.0 / ratio, 1.0 / 1.05)
    if "deep_rnn" in e2e:
        r = e2e["deep_rnn"]
        add("deep RNN fit vs PyTorch eager >= 30x per epoch", r["speedup_vs_torch"], 30.0)
        ours = r["results"]["fastrnn"].get("val_mse")
        theirs = r["results"]["torch"].get("val_mse")
        ok = None if ours is None or theirs is None else ours <= theirs
        out.append(
            {"target": "deep RNN val MSE <= PyTorch's (same epochs)", "goal": theirs,
             "unit": "mse", "measured": ours,
             "status": "n/a" if ok is None else "met" if ok else "unmet"}
        )
    if "deep_rnn_layer_norm" in e2e:
        ratio = e2e["deep_rnn_layer_norm"].get("layer_norm_over_plain")
        out.append(
            {"target": "deep RNN layer_norm epoch <= 1.5x plain (fastrnn, s/epoch ratio)",
             "goal": 1.5, "unit": "x", "measured": ratio,
             "status": "n/a" if ratio is None else "met" if ratio <= 1.5 else "unmet"}
        )
    if "jena_lstm" in e2e:
        r = e2e["jena_lstm"]
        add("Jena LSTM fit vs PyTorch eager >= 3x per epoch", r["speedup_vs_torch"], 3.0)
        add("Jena LSTM fit vs TF-Keras >= 10x per epoch", r["speedup_vs_tf_keras"], 10.0)
    for r in results.get("latency", []):
        if r["kind"] == "streaming step":
            add(f"streaming LSTM step H{r['hidden']} vs PyTorch >= 5x", r["speedup_vs_torch"], 5.0)
    bench_stream.targets(results, add)  # whole-model streaming and predict
    bench_attention.targets(results.get("attention", []), add)
    bench_serving.targets(results.get("serving", {}), add)
    return out


# ----------------------------------------------------------------------------- markdown
def _kernel_rows(rows: list[dict[str, Any]], with_perf: bool) -> list[list[str]]:
    lines = []
    for r in rows:
        res = r["results"]
        line = [
            r["label"],
            r["pass"],
            cell_result(res.get("fastrnn", {})),
            cell_result(res.get("numpy", {})),
            cell_result(res.get("torch", {})),
            fmt_ratio(r["speedup_vs_numpy"]),
            fmt_ratio(r["speedup_vs_torch"]),
            fmt_num(res.get("fastrnn", {}).get("gflops"), 1),
            fmt_num(res.get("torch", {}).get("gflops"), 1),
            fmt_num(r["fastrnn_pct_of_sgemm"], 0),
        ]
        if with_perf:
            ref = PERF_TORCH_MS.get(r["label"]) if r["pass"] == "forward+backward" else None
            line.append("-" if ref is None else f"{ref:g} ms")
        lines.append(line)
    return lines


KERNEL_HEADER = [
    "case (B x T x I x H)", "pass", "fastrnn", "NumPy", "PyTorch", "vs NumPy", "vs PyTorch",
    "fastrnn GFLOP/s", "PyTorch GFLOP/s", "% of sgemm",
]


def header_lines(meta: dict[str, Any]) -> list[str]:
    """Date, machine, versions, threads, BLAS kernels and the OpenBLAS environment."""
    m, v = meta["machine"], meta["versions"]
    versions = ", ".join(f"{k} {val}" for k, val in v.items() if val is not None)
    lines = [
        f"- Date: {meta['date']}",
        f"- Machine: {m['cpu_model']}, {m['cores']} cores ({m['platform']})",
        f"- Versions: {versions}",
        f"- Threads: {meta['threads']} for every implementation (fastrnn.set_num_threads, "
        "torch.set_num_threads, threadpoolctl for the BLAS libraries)",
        f"- fastrnn kernel set: {meta['fastrnn_kernel_set']}; fastrnn's BLAS: "
        f"{meta['fastrnn_blas_config']}",
    ]
    for b in meta["blas"]:
        lines.append(
            f"- BLAS loaded by {b['owner']}: {b['library']} {b['version']}, kernel "
            f"{b['kernel']}, {b['threads']} threads"
        )
    env = meta["openblas_env"]
    if any(val is not None for val in env.values()):
        set_vars = ", ".join(f"{k}={val}" for k, val in env.items() if val is not None)
        lines.append(
            f"- **Warning**: {set_vars} set: OpenBLAS may run slower kernels; rerun with "
            f"`{CLEAN_ENV_HINT} python benchmarks/run.py`"
        )
    else:
        lines.append("- OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE: not set (clean environment)")
    load, load_end = meta.get("load_average_1min"), meta.get("load_average_1min_end")
    if load is not None:
        lines.append(
            f"- 1-minute load average: {load:.2f} at the start, "
            f"{fmt_num(load_end, 2)} at the end (on an idle machine, below 0.5 at the start)"
        )
    wall = meta.get("wall_seconds")
    lines.append(
        f"- Mode: {meta['mode']}; command: `{meta['command']}`"
        + ("" if wall is None else f"; {wall:.0f} s")
    )
    return lines


def markdown(results: dict[str, Any]) -> str:
    """The whole report as markdown."""
    meta = results["meta"]
    out = ["# fastrnn benchmarks", ""] + header_lines(meta) + [""]
    out += [
        "Times are medians over repeats after warm-up (time.perf_counter). 'vs X' is X's time "
        "divided by fastrnn's (above 1: fastrnn is faster). GFLOP/s use 2*T*B*(I+H)*G*H per "
        "forward, 3x for forward+backward. PyTorch's forward runs under no_grad; fastrnn's and "
        "NumPy's forward also record their tape.",
        "",
    ]
    if results.get("sgemm"):
        out += ["## sgemm (NumPy float32 matmul, same run)", ""]
        out += table(
            ["shape", "M x N x K", "GFLOP/s", "time"],
            [
                [s["label"], f"{s['m']}x{s['n']}x{s['k']}", f"{s['gflops']:.1f}",
                 fmt_time(s["median_s"])]
                for s in results["sgemm"]
            ],
        )
        out += ["", f"sgemm peak (best square size): {results.get('sgemm_peak_gflops', 0):.1f} "
                "GFLOP/s, the yardstick of '% of sgemm'.", ""]
    kernels = results.get("kernels", [])
    if kernels:
        for group, title in (
            ("perf", "Kernels at the target sizes"),
            ("hidden", "Kernels: sweep over hidden size"),
            ("batch", "Kernels: sweep over batch size"),
        ):
            rows = [r for r in kernels if r["group"] == group]
            if not rows:
                continue
            with_perf = group == "perf"
            header = KERNEL_HEADER + (["PyTorch when set"] if with_perf else [])
            out += [f"## {title}", ""] + table(header, _kernel_rows(rows, with_perf)) + [""]
        devs = [r["max_abs_diff_vs_numpy"] for r in kernels]
        devs = [d for d in devs if d is not None]
        if devs:
            out += [f"Largest |fastrnn - NumPy| over all forward outputs: {max(devs):.2e}.", ""]
    if results.get("masked"):
        out += ["## Masked batches (LSTM forward+backward, right padding)", ""]
        out += [
            "A padded batch whose rows keep a random length in [T/2, T] (the first row T): "
            "fastrnn with the step mask, fastrnn on the same padded shape without one, "
            "PyTorch with pack_padded_sequence, and PyTorch on the padded batch.",
            "",
        ]
        out += table(
            ["case (B x T x I x H)", "kept", "fastrnn masked", "fastrnn unmasked",
             "torch packed", "torch padded", "masked / unmasked", "torch packed / masked"],
            [
                [r["label"], f"{100 * r['kept_fraction']:.0f}%"]
                + [cell_result(r["results"].get(n, {})) for n in (
                    "fastrnn masked", "fastrnn unmasked", "torch packed", "torch padded")]
                + [fmt_ratio(r["masked_over_unmasked"]), fmt_ratio(r["torch_packed_over_masked"])]
                for r in results["masked"]
            ],
        )
        out += [""]
    if results.get("latency"):
        out += ["## Inference latency (LSTM, batch 1, 14 inputs)", ""]
        out += table(
            ["call", "H", "T", "fastrnn", "NumPy", "PyTorch", "vs NumPy", "vs PyTorch"],
            [
                [r["kind"], str(r["hidden"]), str(r["time"]),
                 cell_result(r["results"].get("fastrnn", {})),
                 cell_result(r["results"].get("numpy", {})),
                 cell_result(r["results"].get("torch", {})),
                 fmt_ratio(r["speedup_vs_numpy"]), fmt_ratio(r["speedup_vs_torch"])]
                for r in results["latency"]
            ],
        )
        out += [""]
    if results.get("e2e"):
        out += ["## End-to-end training (seconds per epoch, validation MSE after the same epochs)",
                ""]
        rows = []
        for r in results["e2e"]:
            for name, res in r["results"].items():
                if "s_per_epoch" in res:
                    speed = "" if name == "fastrnn" else fmt_ratio(r.get(f"speedup_vs_{name}"))
                    mem = fmt_num(res.get("peak_rss_growth_mib"), 1)
                    traced = res.get("tracemalloc_peak_mib_4_batches")
                    if traced is not None:
                        mem += f" (traced {traced:.1f})"
                    rows.append([
                        r["model"], IMPL_NAMES[name], fmt_time(res["s_per_epoch"]),
                        fmt_time(res["first_epoch_s"]), f"{res['val_mse']:.5f}", speed, mem,
                    ])
                else:
                    why = res.get("skipped") or f"error: {res.get('error')}"
                    rows.append([r["model"], IMPL_NAMES[name], why.replace("|", "/"),
                                 "", "", "", ""])
        out += table(
            ["model", "framework", "s/epoch", "first epoch", "val MSE", "fastrnn speed-up",
             "peak RSS growth MiB"],
            rows,
        )
        out += [""]
        for r in results["e2e"]:
            out.append(f"- {r['model']}: {r['description']}; {r['n_train']} train / "
                       f"{r['n_valid']} valid, {r['epochs']} epochs (s/epoch: median after the "
                       "first)")
            if r.get("layer_norm_over_plain") is not None:
                out.append(f"  - layer_norm epoch / plain deep_rnn epoch: "
                           f"{r['layer_norm_over_plain']:.2f}x")
            if r.get("functional_over_sequential_paired") is not None:
                out.append(f"  - functional epoch / Sequential epoch, median of interleaved "
                           f"pairs: {r['functional_over_sequential_paired']:.3f}")
            if "expected_tape_mib" in r:
                out.append(f"  - expected LSTM tape per batch (T*B*5H + outputs): "
                           f"{r['expected_tape_mib']:.1f} MiB")
        out += [""]
    out += bench_stream.markdown(results, fmt_time, fmt_ratio, cell_result, table)
    if results.get("targets"):
        out += ["## Targets (benchmarks/README.md)", ""]
        out += table(
            ["target", "measured", "status"],
            [
                [t["target"],
                 "-" if t["measured"] is None
                 else f"{t['measured']:.1f}%" if t["unit"] == "%"
                 else f"{t['measured']:.5f}" if t["unit"] == "mse"
                 else f"{t['measured']:.2f}x",
                 t["status"]]
                for t in results["targets"]
            ],
        )
        out += [""]
    for w in results.get("warnings", []):
        out += [f"> {w}", ""]
    return "\n".join(out).rstrip() + "\n"


# ----------------------------------------------------------------------------- plots
def plot(results: dict[str, Any], path: Path, group: str = "hidden") -> bool:
    """Time vs hidden size (or batch size), log-log, one line per implementation and cell.

    Two panels: forward and forward+backward. Returns False when there is nothing to plot.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    rows = [r for r in results.get("kernels", []) if r["group"] == group]
    if not rows:
        return False
    axis_key = "hidden" if group == "hidden" else "batch"
    colors = {"simple_rnn": "tab:blue", "lstm": "tab:orange", "gru": "tab:green"}
    styles = {"fastrnn": "-", "numpy": ":", "torch": "--"}
    markers = {"fastrnn": "o", "numpy": "s", "torch": "^"}
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), sharey=False)
    for ax, pass_ in zip(axes, ("forward", "forward+backward")):
        for cell in colors:
            for impl in styles:
                points = sorted(
                    (r[axis_key], r["results"][impl]["median_s"] * 1e3)
                    for r in rows
                    if r["cell"] == cell and r["pass"] == pass_
                    and "median_s" in r["results"].get(impl, {})
                )
                if not points:
                    continue
                xs, ys = zip(*points)
                ax.plot(xs, ys, styles[impl], marker=markers[impl], color=colors[cell],
                        label=f"{IMPL_NAMES[impl]} {CELL_NAMES[cell]}", markersize=4)
        first = rows[0]
        fixed = (f"B={first['batch']}" if group == "hidden" else f"H={first['hidden']}")
        ax.set_title(f"{pass_} (T={first['time']}, I={first['input']}, {fixed})")
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.set_yscale("log")
        ax.set_xlabel("hidden units" if group == "hidden" else "batch size")
        ax.set_ylabel("median time per call (ms)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=3)
    fig.suptitle(f"fastrnn vs NumPy vs PyTorch, {results['meta']['threads']} threads")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
