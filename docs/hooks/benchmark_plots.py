"""MkDocs hook: draws the kernel sweeps of benchmarks/RESULTS.md as plots on the performance page.

The page holds the marker ``<!-- benchmark-plots -->``; this hook replaces it with one inline SVG
per sweep (time of forward+backward against hidden size, and against batch size; fastrnn, the
NumPy reference and PyTorch; log scales), read from the tables of the file the page includes, so
the plots always show the same run as the tables. Without matplotlib the marker becomes a
sentence saying so (the build does not fail: matplotlib comes with ``pip install ".[docs]"``).
"""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path

MARKER = "<!-- benchmark-plots -->"
RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "RESULTS.md"
SWEEPS = {
    "Kernels: sweep over hidden size": ("hidden units", 3),
    "Kernels: sweep over batch size": ("batch size", 0),
}
UNITS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
IMPLEMENTATIONS = {"fastrnn": "-", "NumPy": ":", "PyTorch": "--"}
CELLS = {"RNN": "tab:blue", "LSTM": "tab:orange", "GRU": "tab:green"}

log = logging.getLogger("mkdocs.hooks.benchmark_plots")


def _milliseconds(text: str) -> float | None:
    match = re.fullmatch(r"\s*([\d.]+)\s*(ns|us|ms|s)\s*", text)
    return float(match[1]) * UNITS[match[2]] if match else None


def sweep(markdown: str, title: str, axis: int) -> dict:
    """``{(cell, implementation): [(size, ms), ...]}`` of the forward+backward rows of the
    table under the heading `title`; `axis` picks B, T, I or H from the case's ``BxTxIxH``."""
    # the first table under a heading of that title at any level (the report by kernel set has
    # one per set, the CPU's best first), up to the next heading
    section = re.split(rf"^#+ {re.escape(title)}[ \t]*$", markdown, maxsplit=1, flags=re.M)
    if len(section) < 2:
        return {}
    lines = re.split(r"^#+ ", section[1], maxsplit=1, flags=re.M)[0].splitlines()
    table = [line for line in lines if line.startswith("|")]
    if len(table) < 3:
        return {}
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    points: dict = {}
    for line in table[2:]:
        row = dict(zip(header, (cell.strip() for cell in line.strip("|").split("|"))))
        case = row.get(header[0], "").split()
        if len(case) != 2 or row.get("pass") != "forward+backward":
            continue
        dims = case[1].split("x")
        size = int(dims[axis])
        fixed = ", ".join(f"{n}={d}" for i, (n, d) in enumerate(zip("BTIH", dims))
                          if i != axis)
        points["fixed"] = fixed
        for name in IMPLEMENTATIONS:
            value = _milliseconds(row.get(name, ""))
            if value is not None:
                points.setdefault((case[0], name), []).append((size, value))
    return points


def _svg(points: dict, xlabel: str, title: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(7, 4.2))
    fixed = points.pop("fixed", "")
    for (cell, name), values in sorted(points.items()):
        xs, ys = zip(*sorted(values))
        ax.plot(xs, ys, IMPLEMENTATIONS[name], marker="o", markersize=3,
                color=CELLS.get(cell, "black"), label=f"{name} {cell}")
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_yscale("log")
    ax.set_xlabel(f"{xlabel} ({fixed})" if fixed else xlabel)
    ax.set_ylabel("forward + backward, ms (median)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    out = io.StringIO()
    fig.savefig(out, format="svg")
    plt.close(fig)
    svg = out.getvalue()
    return svg[svg.index("<svg"):]


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ANN001 - MkDocs API
    if MARKER not in markdown:
        return markdown
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        log.info("matplotlib is not installed: the benchmark plots are left out")
        return markdown.replace(MARKER, "*(The plots need matplotlib: "
                                        "`pip install \".[docs]\"`.)*")
    text = RESULTS.read_text(encoding="utf-8")
    figures = []
    for title, (xlabel, axis) in SWEEPS.items():
        points = sweep(text, title, axis)
        if points:
            figures.append(f'<div class="benchmark-plot">{_svg(points, xlabel, title)}</div>')
    return markdown.replace(MARKER, "\n\n".join(figures))
