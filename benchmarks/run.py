"""fastrnn's benchmark suite: kernels, inference latency and end-to-end training.

Compares fastrnn with its NumPy reference (``fastrnn.reference``), PyTorch CPU and TF-Keras
(each when installed), all in this one process, one after the other, with the same thread count.
Prints a markdown table and writes ``results.json``, ``RESULTS.md`` and plots to ``--out``.

Usage (from the repository root)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/run.py [--quick]
        [--out DIR] [--threads N] [--only kernels|e2e|latency|conv|stream|attention|serving]
        [--update]

``--update`` runs the sections named by ``--only`` and merges them into the ``results.json``
already in ``--out`` (its other sections kept), then writes RESULTS.md from the whole.

Unsetting OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE matters on machines that set them: they make
OpenBLAS pick slower kernels (the header of the report says which kernels ran). This script
never changes them itself.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Optional

SECTIONS = ("kernels", "latency", "e2e")
SECTIONS += ("conv",)  # Conv1D at the books' shapes (bench_conv.py)
SECTIONS += ("stream",)  # whole-model streaming, predict throughput, threads (bench_stream.py)
SECTIONS += ("attention",)  # MultiHeadAttention, Conv1DTranspose vs PyTorch (bench_attention.py)
SECTIONS += ("serving",)  # batch-1 step/window and batch-256 predict vs onnxruntime, a server


class Progress:
    """A progress bar over the run's steps (tqdm when installed, one line per step otherwise)."""

    def __init__(self, total: int) -> None:
        try:
            from tqdm import tqdm
        except ImportError:
            self._bar = None
        else:
            self._bar = tqdm(total=total, file=sys.stderr, unit="step", dynamic_ncols=True)
        self._started = False

    def __call__(self, label: str) -> None:
        """Marks the previous step done and names the next one."""
        if self._bar is None:
            print(f"... {label}", file=sys.stderr, flush=True)
            return
        if self._started:
            self._bar.update(1)
        self._started = True
        self._bar.set_description_str(label[:48])

    def close(self) -> None:
        """Marks the last step done."""
        if self._bar is not None:
            if self._started:
                self._bar.update(1)
            self._bar.close()


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(
        description="Benchmark fastrnn against NumPy, PyTorch and TF-Keras.",
        epilog="Run as `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/run.py` "
        "so OpenBLAS picks its best kernels.",
    )
    p.add_argument("--quick", action="store_true", help="smaller sizes; well under a minute")
    p.add_argument(
        "--smoke",
        action="store_true",
        help="the smallest sizes and fewest repeats: checks the suite runs (used by the tests)",
    )
    p.add_argument("--out", type=Path, default=Path("bench_out"), help="output directory")
    p.add_argument(
        "--threads", type=int, default=None, help="threads for every library (default: all cores)"
    )
    p.add_argument(
        "--only",
        choices=SECTIONS,
        action="append",
        help="run only this section (repeatable); default: all",
    )
    p.add_argument("--epochs", type=int, default=None, help="epochs per end-to-end model")
    p.add_argument("--update", action="store_true",
                   help="merge the --only sections into the results.json already in --out "
                   "(its other sections kept) and rewrite RESULTS.md from the whole")
    args = p.parse_args(argv)
    if args.update and not args.only:
        p.error("--update goes with --only (the sections to run again)")
    if args.update and not (args.out / "results.json").is_file():
        p.error(f"--update: no results.json in {args.out} to merge into")
    if args.threads is not None and args.threads < 1:
        p.error(f"--threads must be a positive integer, got {args.threads}")
    if args.epochs is not None and args.epochs < 1:
        p.error(f"--epochs must be a positive integer, got {args.epochs}")
    return args


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf become None, NumPy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def merged(earlier: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``earlier`` (a results.json) with the sections of ``new`` in place of its own; the
    meta of ``new`` records which sections were run again and when."""
    out = {k: v for k, v in earlier.items() if k not in ("targets", "plots")}
    for key, value in new.items():
        if key == "meta":
            meta = dict(earlier.get("meta", {}))
            meta["updated"] = {k: value.get(k) for k in ("date", "sections", "command",
                                                        "wall_seconds")}
            meta["sections"] = list(dict.fromkeys([*meta.get("sections", []),
                                                   *value.get("sections", [])]))
            out["meta"] = meta
        elif key == "warnings":
            out["warnings"] = list(dict.fromkeys([*earlier.get("warnings", []), *value]))
        else:
            out[key] = value
    return out


def render(results: dict[str, Any]) -> str:
    """RESULTS.md: the report, then the sections that format themselves."""
    import bench_attention
    import bench_conv
    import bench_report
    import bench_serving

    report = bench_report.markdown(results)
    if results.get("conv"):
        report += "\n\n" + bench_conv.markdown(results["conv"]) + "\n"
    if results.get("attention"):
        report += "\n" + "\n".join(bench_attention.markdown(results["attention"])) + "\n"
    if results.get("serving"):
        report += "\n" + "\n".join(bench_serving.markdown(results["serving"])) + "\n"
    if results["meta"].get("updated"):
        u = results["meta"]["updated"]
        report += (f"\nSections {', '.join(u.get('sections') or [])} run again on "
                   f"{u.get('date')} (`{u.get('command')}`) and merged into this report.\n")
    return report


def main(argv: Optional[list[str]] = None) -> int:
    """Runs the suite; returns the exit status."""
    args = parse_args(argv)
    # Import every library before pinning threads, so threadpoolctl sees their thread pools.
    import bench_attention
    import bench_common as common
    import bench_conv
    import bench_e2e
    import bench_kernels
    import bench_latency
    import bench_report
    import bench_serving
    import bench_stream
    import fastrnn

    common.optional_import("torch")
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    threads = args.threads or common.usable_cores()
    sections = tuple(args.only) if args.only else SECTIONS
    budget = {
        "full": common.Budget(
            seconds=0.6, min_repeats=6, min_repeats_slow=4, max_repeats=200,
            warmup_seconds=0.05, rounds=2,
        ),
        "quick": common.Budget(
            seconds=0.1, min_repeats=3, min_repeats_slow=2, max_repeats=50, warmup_seconds=0.03,
            settle_seconds=0.05,
        ),
        "smoke": common.Budget(
            seconds=0.01, min_repeats=2, max_repeats=5, warmup_seconds=0.0, settle_seconds=0.0
        ),
    }[mode]
    args.out.mkdir(parents=True, exist_ok=True)

    warnings: list[str] = []
    load_warning = common.load_warning(common.load_average(), common.usable_cores())
    if load_warning:
        warnings.append(load_warning)
        print(f"warning: {load_warning}", file=sys.stderr)
    env_warning = common.openblas_env_warning(common.openblas_environment())
    if env_warning:
        warnings.append(env_warning)
        print(f"warning: {env_warning}", file=sys.stderr)

    impls = bench_kernels.implementations()
    for name, (module, why) in impls.items():
        if module is None:
            warnings.append(f"{name}: {why}")

    cases = bench_kernels.plan(mode) if "kernels" in sections else []
    latency_plan = bench_latency.plan(mode) if "latency" in sections else []
    n_e2e = 3 * len(bench_e2e.FRAMEWORKS) if "e2e" in sections else 0
    n_masked = (1 if mode == "smoke" else len(bench_kernels.MASKED_SIZES)) if cases else 0
    conv_plan = bench_conv.plan(mode) if "conv" in sections else []
    stream_plan = bench_stream.plan(mode) if "stream" in sections else []
    attention_plan = bench_attention.plan(mode) if "attention" in sections else []
    n_serving = 10 if "serving" in sections else 0  # 3 rows x 3 libraries, the server
    progress = Progress(int(bool(cases)) + len(cases) + n_masked + len(latency_plan) + n_e2e
                        + len(conv_plan) + len(stream_plan) + len(attention_plan) + n_serving)

    started = time.perf_counter()
    results: dict[str, Any] = {}
    with common.pinned_threads(threads) as pinned:
        meta = common.environment_report(threads)
        meta.update(
            mode=mode,
            sections=list(sections),
            pinned=pinned,
            command=" ".join(shlex.quote(a) for a in ["python", *sys.argv]),
            fastrnn_path=str(Path(fastrnn.__file__).parent),
        )
        results["meta"] = meta
        if cases:
            progress("sgemm rates")
            results["sgemm"] = common.sgemm_rates(mode != "full", budget)
            results["sgemm_peak_gflops"] = common.sgemm_peak(results["sgemm"])
            results["kernels"] = []
            for case in cases:
                progress(f"{case.label} ({case.group})")
                results["kernels"] += bench_kernels.run_case(
                    case, impls, budget, results["sgemm_peak_gflops"]
                )
            results["masked"] = bench_kernels.run_masked(mode, impls, budget, progress)
        if latency_plan:
            results["latency"] = bench_latency.run(mode, impls, budget, progress)
        if n_e2e:
            results["e2e"] = bench_e2e.run(mode, threads, progress, args.epochs)
        if conv_plan:
            results["conv"] = bench_conv.run(mode, budget, progress)
        if stream_plan:
            results.update(bench_stream.run(mode, threads, budget, progress))
        if attention_plan:
            results["attention"] = bench_attention.run(mode, budget, progress)
        if n_serving:
            results["serving"] = bench_serving.run(
                mode != "full", progress, server_seconds=1.0 if mode == "smoke" else None)
    progress.close()
    results["meta"]["wall_seconds"] = time.perf_counter() - started
    results["meta"]["load_average_1min_end"] = common.load_average()
    results["warnings"] = warnings
    if args.update:
        results = merged(json.loads((args.out / "results.json").read_text(encoding="utf-8")),
                         results)
    results["targets"] = bench_report.targets(results)

    report = render(results)
    print(report)
    (args.out / "RESULTS.md").write_text(report, encoding="utf-8")
    plots = []
    for group in ("hidden", "batch"):
        path = args.out / f"kernels_{group}.png"
        try:
            if bench_report.plot(results, path, group):
                plots.append(path.name)
        except ImportError as exc:
            print(f"warning: no plot ({exc}); install matplotlib", file=sys.stderr)
            break
    results["plots"] = plots
    with open(args.out / "results.json", "w", encoding="utf-8") as f:
        json.dump(_clean(results), f, indent=1, allow_nan=False)
    print(
        f"wrote {args.out / 'results.json'}, {args.out / 'RESULTS.md'}"
        + "".join(f", {args.out / p}" for p in plots)
        + f" in {results['meta']['wall_seconds']:.1f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
