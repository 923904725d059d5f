"""The benchmark suite once per fastrnn kernel set, and one report with a column per set.

    python benchmarks/kernel_sets.py                       # every set this CPU can run, full
    python benchmarks/kernel_sets.py --sets avx512,avx2 --quick --out bench_out/sets
    python benchmarks/kernel_sets.py --sets avx2 -- --only kernels --threads 1

Each set runs `benchmarks/run.py` in a process of its own with `FASTRNN_KERNELS` set. A set
below the CPU's best also makes the other libraries run their kernels for that instruction set,
so each column is as close as one machine gets to a CPU that has only that set:

- avx512: `FASTRNN_KERNELS=avx512`; OpenBLAS, oneDNN and MKL choose their own kernels.
- avx2: `FASTRNN_KERNELS=avx2`, `OPENBLAS_CORETYPE=Haswell` (fastrnn's and NumPy's OpenBLAS),
  `ONEDNN_MAX_CPU_ISA=AVX2` and `MKL_ENABLE_INSTRUCTIONS=AVX2` (PyTorch).
- generic: `FASTRNN_KERNELS=generic`, `OPENBLAS_CORETYPE=Nehalem` (SSE4.2),
  `ONEDNN_MAX_CPU_ISA=SSE41`, `MKL_ENABLE_INSTRUCTIONS=SSE4_2`.

TF-Keras keeps its own kernels (TensorFlow reads no such variable). These variables belong in
benchmark commands only, never in tests or CI.

Output (in `--out`): `RESULTS.md` (the targets with one column per set, then each set's whole
report), `<set>/` (each run's own RESULTS.md, results.json and plots).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
ORDER = ("avx512", "avx2", "generic")
# What each set below the CPU's best asks of OpenBLAS, oneDNN and MKL (see the docstring).
EMULATION = {
    "avx2": {
        "OPENBLAS_CORETYPE": "Haswell",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    },
    "generic": {
        "OPENBLAS_CORETYPE": "Nehalem",
        "ONEDNN_MAX_CPU_ISA": "SSE41",
        "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
    },
}
CLEARED = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "ONEDNN_MAX_CPU_ISA",
           "MKL_ENABLE_INSTRUCTIONS", "FASTRNN_KERNELS")


def available_sets() -> list[str]:
    """The kernel sets this CPU can run, best first."""
    code = "import fastrnn.backend as b; print(','.join(b.available_kernel_sets()))"
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                         capture_output=True, text=True).stdout.strip()
    names = [n for n in out.split(",") if n]
    return sorted(names, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER))


def environment_for(name: str, best: str) -> dict[str, str]:
    """The process environment of one set's run."""
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env["FASTRNN_KERNELS"] = name
    if name != best:
        env.update(EMULATION.get(name, {}))
    return env


def parse_args(argv: Optional[list[str]]) -> tuple[argparse.Namespace, list[str]]:
    argv = list(sys.argv[1:] if argv is None else argv)
    passed: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, passed = argv[:cut], argv[cut + 1:]
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sets", default=None,
                   help="comma-separated kernel sets (default: every set this CPU runs)")
    p.add_argument("--quick", action="store_true", help="run.py --quick for every set")
    p.add_argument("--out", type=Path, default=Path("bench_out/kernel_sets"))
    return p.parse_args(argv), passed


# A target whose name carries the case it was measured on ("... (worst of 46: LSTM 16x...)")
# is one row; the case goes into each set's cell.
_CASE = re.compile(r" \(worst of \d+: (?P<case>[^)]*)\)")


def row_of(target: dict[str, Any]) -> tuple[str, str]:
    """(row name, the cell's text) of one target of one run."""
    name = target["target"]
    found = _CASE.search(name)
    case = ""
    if found:
        name = name[: found.start()] + name[found.end():]
        case = f", {found.group('case')}"
    value = target.get("measured")
    if value is None:
        return name, "n/a"
    unit = target.get("unit", "x")
    shown = f"{value:.1f}%" if unit == "%" else f"{value:.3g}" if unit == "mse" else f"{value:.2f}x"
    return name, f"{shown} ({target['status'].split(' (')[0]}{case})"


def combined(results: dict[str, dict[str, Any]], commands: dict[str, str]) -> str:
    """The report: the targets, a column per set, then every set's own report."""
    names = list(results)
    lines = ["# fastrnn benchmarks, by kernel set", ""]
    first = results[names[0]]["meta"]
    m = first["machine"]
    lines += [
        f"- Date: {first['date']}",
        f"- Machine: {m['cpu_model']}, {m['cores']} cores ({m['platform']})",
        f"- Threads: {first['threads']} for every implementation",
        "- Each column is one run of `benchmarks/run.py` in its own process:",
    ]
    for name in names:
        lines.append(f"  - **{name}**: `{commands[name]}`")
    lines += [
        "",
        "A set below the CPU's best runs with OpenBLAS, oneDNN and MKL held to that set's "
        "instructions too (see `benchmarks/kernel_sets.py`); TF-Keras keeps its own kernels.",
        "",
        "## Targets",
        "",
        "| target | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    rows: dict[str, dict[str, str]] = {}
    for name in names:
        for t in results[name].get("targets", []):
            row, cell = row_of(t)
            rows.setdefault(row, {})[name] = cell
    for target, cells in rows.items():
        lines.append(f"| {target} | " + " | ".join(cells.get(n, "-") for n in names) + " |")
    unmet = {n: sum(1 for t in results[n].get("targets", []) if t["status"].startswith("unmet"))
             for n in names}
    lines += ["", "Unmet targets: " + ", ".join(f"{n} {k}" for n, k in unmet.items()), ""]
    for name in names:
        report = (results[name]["_markdown"]).splitlines()
        body = [("#" + line) if line.startswith("#") else line for line in report[1:]]
        lines += [f"## Kernel set {name}", ""] + body + [""]
    return "\n".join(lines) + "\n"


def main(argv: Optional[list[str]] = None) -> int:
    args, passed = parse_args(argv)
    usable = available_sets()
    names = usable if args.sets is None else [n.strip() for n in args.sets.split(",") if n.strip()]
    refused = [n for n in names if n not in usable]
    if refused or not names:
        print(f"kernel_sets.py: error: --sets: expected some of {', '.join(usable)}, "
              f"got {args.sets!r}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    commands: dict[str, str] = {}
    for name in names:
        out = args.out / name
        env = environment_for(name, usable[0])
        cmd = [sys.executable, str(HERE / "run.py"), "--out", str(out)]
        cmd += (["--quick"] if args.quick else []) + passed
        shown = {k: env[k] for k in ("FASTRNN_KERNELS", *EMULATION.get(name, {})) if k in env}
        commands[name] = " ".join(
            [f"{k}={v}" for k, v in shown.items()]
            + ["python", "benchmarks/run.py"] + [shlex.quote(a) for a in cmd[2:]])
        print(f"== {commands[name]}", file=sys.stderr, flush=True)
        done = subprocess.run(cmd, env=env)
        if done.returncode != 0:
            print(f"kernel_sets.py: error: the {name} run failed (exit {done.returncode})",
                  file=sys.stderr)
            return 1
        data = json.loads((out / "results.json").read_text(encoding="utf-8"))
        data["_markdown"] = (out / "RESULTS.md").read_text(encoding="utf-8")
        results[name] = data
    report = combined(results, commands)
    (args.out / "RESULTS.md").write_text(report, encoding="utf-8")
    print(f"wrote {args.out / 'RESULTS.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
