"""MultiHeadAttention and Conv1DTranspose, forward+backward, against PyTorch's
``nn.MultiheadAttention`` and ``nn.ConvTranspose1d`` at the shapes of a seq2seq with attention.

Cases (float32, batch 64):

- MultiHeadAttention, cross-attention of a 50- or 100-step decoder over a 100-step encoder,
  model width E = 64, 128 or 256 with 4 or 8 heads (key_dim = E / heads); PyTorch's
  ``nn.MultiheadAttention(E, heads, batch_first=True)`` with ``need_weights=False`` (its
  fused scaled-dot-product path);
- the same with the causal mask (self-attention, ``use_causal_mask=True`` / PyTorch's
  ``attn_mask`` + ``is_causal=True``);
- Conv1DTranspose upsampling 50 steps by 2 (kernel 4, "same") at 64, 128 and 256 channels,
  against ``nn.ConvTranspose1d(C, C, 4, stride=2, padding=1)`` (the same output length).

"forward+backward" is one training forward and the gradients of every input and weight for a
given upstream gradient. Both libraries get the same threads (``--threads``, default all
cores). Prints a Markdown table of medians and the ratio PyTorch / fastrnn (above 1: fastrnn
is faster). Run: ``python benchmarks/bench_attention.py [--quick] [--threads N]``, or as the
``attention`` section of ``benchmarks/run.py`` (unset OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, Optional

import numpy as np

from bench_common import (
    Budget,
    Timing,
    measure,
    optional_import,
    pinned_threads,
    split_budget,
    usable_cores,
)

ROUNDS = 3  # turns each implementation takes per case (see run)


def mha_case(batch: int, tq: int, tv: int, width: int, heads: int, causal: bool,
             torch: Any) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """(fastrnn call, torch call), each one forward+backward."""
    from fastrnn import layers

    rng = np.random.default_rng(0)
    q = rng.standard_normal((batch, tq, width)).astype(np.float32)
    kv = q if causal else rng.standard_normal((batch, tv, width)).astype(np.float32)
    mine = layers.MultiHeadAttention(heads, width // heads)
    out = mine(q, kv, training=True, use_causal_mask=causal)
    g = rng.standard_normal(out.shape).astype(np.float32)

    def fastrnn_step() -> Any:
        mine(q, kv, training=True, use_causal_mask=causal)
        return mine.backward(g)

    theirs = torch.nn.MultiheadAttention(width, heads, batch_first=True)
    qt = torch.from_numpy(q).requires_grad_()
    kvt = qt if causal else torch.from_numpy(kv).requires_grad_()
    gt = torch.from_numpy(g)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(tq) if causal else None

    def torch_step() -> Any:
        qt.grad = None
        theirs.zero_grad(set_to_none=True)
        o, _ = theirs(qt, kvt, kvt, need_weights=False, attn_mask=mask, is_causal=causal)
        o.backward(gt)
        return qt.grad

    return fastrnn_step, torch_step


def conv_transpose_case(batch: int, steps: int, channels: int,
                        torch: Any) -> tuple[Callable[[], Any], Callable[[], Any]]:
    from fastrnn import layers

    rng = np.random.default_rng(1)
    x = rng.standard_normal((batch, steps, channels)).astype(np.float32)
    mine = layers.Conv1DTranspose(channels, 4, strides=2, padding="same")
    out = mine.forward(x, training=True)
    g = rng.standard_normal(out.shape).astype(np.float32)

    def fastrnn_step() -> Any:
        mine.forward(x, training=True)
        return mine.backward(g)

    theirs = torch.nn.ConvTranspose1d(channels, channels, 4, stride=2, padding=1)
    xt = torch.from_numpy(x.transpose(0, 2, 1).copy()).requires_grad_()
    gt = torch.from_numpy(g.transpose(0, 2, 1).copy())
    assert theirs(xt).shape[-1] == out.shape[1]

    def torch_step() -> Any:
        xt.grad = None
        theirs.zero_grad(set_to_none=True)
        theirs(xt).backward(gt)
        return xt.grad

    return fastrnn_step, torch_step


def plan(mode: str) -> list[tuple[str, Callable[[Any], tuple]]]:
    """(label, make) per case; ``make(torch)`` returns (fastrnn call, torch call). ``mode`` is
    run.py's: "full" every case, "quick" one width per kind, "smoke" one case per kind."""
    widths = {"full": (64, 128, 256), "quick": (64, 256), "smoke": (64,)}[mode]
    cases: list[tuple[str, Callable[[Any], tuple]]] = []
    for width in widths:
        heads = 4 if width == 64 else 8
        for tq in ((50,) if mode != "full" else (50, 100)):
            cases.append((f"MHA cross B=64 Tq={tq} Tv=100 E={width} H={heads}",
                          lambda torch, tq=tq, w=width, h=heads: mha_case(
                              64, tq, 100, w, h, False, torch)))
        if mode != "smoke":
            cases.append((f"MHA causal self B=64 T=100 E={width} H={heads}",
                          lambda torch, w=width, h=heads: mha_case(64, 100, 100, w, h, True,
                                                                   torch)))
    for channels in widths:
        cases.append((f"Conv1DTranspose B=64 T=50 C={channels} k=4 s=2",
                      lambda torch, c=channels: conv_transpose_case(64, 50, c, torch)))
    return cases


def run(mode: str, budget: Budget, progress: Callable[[str], None] = lambda _: None
        ) -> list[dict[str, Any]]:
    """One row per case: ``{case, fastrnn_s, torch_s, speedup_vs_torch}`` (median seconds of
    one forward+backward; the ratio PyTorch / fastrnn), or ``{case, skipped}`` without
    PyTorch. Threads are the caller's (run.py pins every library to the same count)."""
    torch, why = optional_import("torch")
    rows: list[dict[str, Any]] = []
    for label, make in plan(mode):
        progress(label)
        if torch is None:
            rows.append({"case": label, "skipped": why})
            continue
        mine, theirs = make(torch)
        # The two take turns (at least 3 rounds, each a share of the budget) and each one's
        # median is over all its rounds' samples: a few-millisecond case measured once each
        # swung by 30% between runs of the suite on a shared VM.
        rounds = max(budget.rounds, ROUNDS)
        share = split_budget(budget, rounds)
        parts: dict[str, list[Timing]] = {"fastrnn": [], "torch": []}
        for _ in range(rounds):
            parts["fastrnn"].append(measure(mine, share))
            parts["torch"].append(measure(theirs, share))
        t_mine = Timing.combine(parts["fastrnn"]).median
        t_theirs = Timing.combine(parts["torch"]).median
        rows.append({"case": label, "fastrnn_s": t_mine, "torch_s": t_theirs,
                     "speedup_vs_torch": t_theirs / t_mine})
    return rows


def targets(rows: list[dict[str, Any]], add: Callable[[str, Optional[float], float], None]
            ) -> None:
    """At least PyTorch's speed, the worst case of each layer."""
    for layer, prefix in (("MultiHeadAttention", "MHA"), ("Conv1DTranspose", "Conv1DTranspose")):
        measured = [r for r in rows if r["case"].startswith(prefix) and "speedup_vs_torch" in r]
        if measured:
            worst = min(measured, key=lambda r: r["speedup_vs_torch"])
            add(f"{layer} fwd+bwd vs PyTorch >= 1x (worst of {len(measured)}: "
                f"{worst['case']})", worst["speedup_vs_torch"], 1.0)


def markdown(rows: list[dict[str, Any]]) -> list[str]:
    """The section's table."""
    out = ["## MultiHeadAttention and Conv1DTranspose (forward+backward, float32)", "",
           "| case | fastrnn | PyTorch | PyTorch / fastrnn |", "|---|---:|---:|---:|"]
    for r in rows:
        if "skipped" in r:
            out.append(f"| {r['case']} | - | skipped: {r['skipped']} | - |")
        else:
            out.append(f"| {r['case']} | {r['fastrnn_s'] * 1e3:.2f} ms | "
                       f"{r['torch_s'] * 1e3:.2f} ms | {r['speedup_vs_torch']:.2f}x |")
    out += ["", "fastrnn: `layers.MultiHeadAttention` / `layers.Conv1DTranspose` forward "
            "(training) then backward; PyTorch: `nn.MultiheadAttention(batch_first=True)` with "
            "`need_weights=False` / `nn.ConvTranspose1d`, `.backward` of the same upstream "
            "gradient; every input and weight gradient computed.", ""]
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer cases, shorter timing")
    parser.add_argument("--threads", type=int, default=usable_cores())
    args = parser.parse_args(argv)
    torch, why = optional_import("torch")
    if torch is None:
        print(f"bench_attention: PyTorch is needed for the comparison ({why})", file=sys.stderr)
        return 1
    import fastrnn  # noqa: F401  (imported before pinning, so threadpoolctl sees it)

    budget = Budget(seconds=0.3 if args.quick else 1.0, min_repeats=3 if args.quick else 5)
    print(f"threads: {args.threads}; float32; forward+backward; median ms\n")
    with pinned_threads(args.threads):
        rows = run("quick" if args.quick else "full", budget)
    print("\n".join(markdown(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
