"""Conv1D at the books' shapes: fastrnn against its NumPy reference and PyTorch's nn.Conv1d.

Cases (batch x steps x channels -> filters x kernel_size, float32):

- Deep Learning with Python ch. 10, the Jena convnet's three convolutions at batch 256:
  120x14 -> Conv1D(8, 24), 48x8 -> Conv1D(8, 12), 18x8 -> Conv1D(8, 6);
- Hands-On ML ch. 15, ``Conv1D(20, 4, strides=2)`` on 50x1 series, at batch 32 (the book's) and
  256;
- its WaveNet at batch 32: the first causal layer (1 -> 20 filters of 2), a causal layer of
  20 -> 20 filters of 2 at each dilation 1, 2, 4, 8, and the 1x1 output layer (20 -> 10).

"forward+backward" is one forward and the gradients of x, kernel and bias for a given upstream
gradient. PyTorch gets its own layout (channels first) prepared outside the timed call; its
causal padding is ``F.pad`` on the left inside it (how a PyTorch user writes a causal
convolution). Run alone (``python benchmarks/bench_conv.py [--quick] [--threads N]``) or as the
``conv`` section of ``benchmarks/run.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any, Callable, Optional

import numpy as np

from bench_common import Budget, Timing, measure, optional_import, split_budget

PASSES = ("forward", "forward+backward")


@dataclasses.dataclass(frozen=True)
class ConvCase:
    label: str
    batch: int
    steps: int
    channels: int
    filters: int
    kernel_size: int
    strides: int = 1
    padding: str = "valid"
    dilation: int = 1

    def gflop(self, p: str) -> float:
        """Multiply-adds of the convolution (x2), three times that for forward+backward."""
        from fastrnn import ops

        length = ops.conv1d_output_length(self.steps, self.kernel_size, self.strides,
                                          self.padding, self.dilation)
        fwd = 2.0 * self.batch * length * self.kernel_size * self.channels * self.filters / 1e9
        return fwd if p == "forward" else 3 * fwd


def plan(mode: str) -> list[ConvCase]:
    """The cases of a run (smoke: two small ones)."""
    cases = [
        ConvCase("DLwP Jena conv 1", 256, 120, 14, 8, 24),
        ConvCase("DLwP Jena conv 2", 256, 48, 8, 8, 12),
        ConvCase("DLwP Jena conv 3", 256, 18, 8, 8, 6),
        ConvCase("Hands-On Conv1D(20, 4, strides=2)", 32, 50, 1, 20, 4, 2),
        ConvCase("Hands-On Conv1D(20, 4, strides=2)", 256, 50, 1, 20, 4, 2),
        ConvCase("WaveNet first layer", 32, 50, 1, 20, 2, 1, "causal", 1),
    ]
    cases += [ConvCase(f"WaveNet dilation {d}", 32, 50, 20, 20, 2, 1, "causal", d)
              for d in (1, 2, 4, 8)]
    cases.append(ConvCase("WaveNet 1x1 output", 32, 50, 20, 10, 1))
    if mode == "smoke":
        return [dataclasses.replace(cases[0], batch=8), cases[6]]
    return cases


def _arrays(case: ConvCase, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    f32 = np.float32
    x = rng.standard_normal((case.batch, case.steps, case.channels), dtype=f32)
    kernel = rng.standard_normal((case.kernel_size, case.channels, case.filters), dtype=f32)
    bias = rng.standard_normal(case.filters, dtype=f32)
    return x, kernel * f32(1 / np.sqrt(case.kernel_size * case.channels)), bias


def _ops_calls(module: Any, case: ConvCase) -> dict[str, Callable[[], Any]]:
    """fastrnn.ops or fastrnn.reference (same arguments)."""
    x, kernel, bias = _arrays(case)
    geo = dict(strides=case.strides, padding=case.padding, dilation_rate=case.dilation)
    d_y = np.ones_like(module.conv1d_forward(x, kernel, bias, **geo))

    def both() -> Any:
        module.conv1d_forward(x, kernel, bias, **geo)
        return module.conv1d_backward(x, kernel, d_y, **geo)

    return {"forward": lambda: module.conv1d_forward(x, kernel, bias, **geo),
            "forward+backward": both}


def _torch_calls(torch: Any, case: ConvCase) -> dict[str, Callable[[], Any]]:
    x, kernel, bias = _arrays(case)
    conv = torch.nn.Conv1d(case.channels, case.filters, case.kernel_size, stride=case.strides,
                           dilation=case.dilation)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(kernel.transpose(2, 1, 0).copy()))
        conv.bias.copy_(torch.from_numpy(bias))
    xt = torch.from_numpy(x.transpose(0, 2, 1).copy()).requires_grad_(True)  # (B, C, T)
    span = (case.kernel_size - 1) * case.dilation + 1
    pad = {"valid": (0, 0), "causal": (span - 1, 0)}[case.padding]

    def forward() -> Any:
        return conv(torch.nn.functional.pad(xt, pad) if pad != (0, 0) else xt)

    d_y = torch.ones_like(forward())

    def no_grad() -> Any:
        with torch.no_grad():
            return forward()

    def both() -> Any:
        conv.zero_grad(set_to_none=True)
        xt.grad = None
        forward().backward(d_y)

    return {"forward": no_grad, "forward+backward": both}


def run(mode: str, budget: Budget, progress: Optional[Callable[[str], None]] = None
        ) -> list[dict[str, Any]]:
    """One row per case and pass: median seconds of each implementation and the ratios."""
    import fastrnn

    reference, _ = optional_import("fastrnn.reference")
    torch, why_torch = optional_import("torch")
    rows = []
    for case in plan(mode):
        if progress is not None:
            progress(f"conv: {case.label}")
        calls = {"fastrnn": _ops_calls(fastrnn.ops, case)}
        if reference is not None and mode != "full" or reference is not None and case.batch <= 64:
            calls["numpy"] = _ops_calls(reference, case)
        if torch is not None:
            calls["torch"] = _torch_calls(torch, case)
        share = split_budget(budget, budget.rounds)
        for p in PASSES:
            parts: dict[str, list[Timing]] = {name: [] for name in calls}
            for _ in range(budget.rounds):  # implementations take turns
                for name, c in calls.items():
                    parts[name].append(measure(c[p], share))
            row: dict[str, Any] = {"case": dataclasses.asdict(case), "pass": p,
                                   "gflop": case.gflop(p)}
            for name, timings in parts.items():
                row[name] = {"median_s": Timing.combine(timings).median}
            ours = row["fastrnn"]["median_s"]
            for other in ("numpy", "torch"):
                if other in row:
                    row[f"vs_{other}"] = row[other]["median_s"] / ours
            if torch is None:
                row["torch"] = {"skipped": why_torch}
            rows.append(row)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    """The section of the report: a table, and the target (>= 2x nn.Conv1d)."""
    lines = ["## Conv1D (float32; forward+backward: gradients of x, kernel and bias)", "",
             "| case (B x T x C -> filters x kernel) | pass | fastrnn | NumPy reference | "
             "PyTorch nn.Conv1d | vs PyTorch |", "|---|---|---|---|---|---|"]

    def ms(r: dict[str, Any], name: str) -> str:
        t = r.get(name, {}).get("median_s")
        return "-" if t is None else f"{t * 1e3:.3f} ms"

    for r in rows:
        c = r["case"]
        shape = (f"{c['label']}: {c['batch']}x{c['steps']}x{c['channels']} -> "
                 f"{c['filters']}x{c['kernel_size']}")
        if c["strides"] > 1 or c["dilation"] > 1 or c["padding"] != "valid":
            shape += f" ({c['padding']}, strides {c['strides']}, dilation {c['dilation']})"
        ratio = r.get("vs_torch")
        lines.append(f"| {shape} | {r['pass']} | {ms(r, 'fastrnn')} | {ms(r, 'numpy')} | "
                     f"{ms(r, 'torch')} | {'-' if ratio is None else f'{ratio:.1f}x'} |")
    both = [r["vs_torch"] for r in rows if r["pass"] == "forward+backward" and "vs_torch" in r]
    if both:
        lines += ["", f"Target: Conv1D >= 2x nn.Conv1d, forward+backward: "
                  f"{'met' if min(both) >= 2 else 'not met'} (lowest ratio {min(both):.1f}x, "
                  f"median {float(np.median(both)):.1f}x)."]
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    import bench_common as common

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    common.optional_import("torch")
    budget = (Budget(seconds=0.1, min_repeats=3, max_repeats=50) if args.quick
              else Budget(seconds=0.6, min_repeats=6, min_repeats_slow=4, rounds=2))
    threads = args.threads or common.usable_cores()
    with common.pinned_threads(threads):
        rows = run("quick" if args.quick else "full", budget,
                   lambda label: print(f"... {label}", file=sys.stderr, flush=True))
    load = common.load_average()
    print(f"{threads} threads, {common.cpu_model()}, load average {load}\n")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
