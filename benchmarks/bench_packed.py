"""The packed recurrent micro-kernel against OpenBLAS at the shapes of a step's recurrent product.

Run: ``python benchmarks/bench_packed.py [--kernel-set avx512] [--shapes 32x512x128,...]``.
Each shape is ``MxNxK``: M rows (a thread's batch rows), N columns and K depth, float32, one
thread, ``C = A W + C`` repeated in C++ (the test-only ``_core._packed_product``). Times are the
calling thread's CPU time, so a busy machine's waiting is left out; packed and OpenBLAS calls
alternate, and the medians of 7 rounds are printed. The default shapes are the per-step
products of the kernel benchmarks' layers (forward ``B x G x H``, backward ``B x H x G``, split
over two threads) and tiny ones; the rule in ``recurrent_packed`` (cpp/bindings/cells.hpp) is read
from this table.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from fastrnn import _core

DEFAULT_SHAPES = (
    "32x80x20,16x80x20,32x128x32,32x256x64,32x64x256,32x512x128,32x128x512,16x1024x256,"
    "16x256x1024,64x2048x512,64x512x2048,64x256x1536,32x2048x512,32x4096x1024,32x1024x4096"
)


def time_product(a, w, c, blas: bool, repeat: int) -> float:
    """Seconds of thread CPU time per product."""
    start = time.thread_time()
    _core._packed_product(a, w, c, 1.0, 0, w.shape[1], blas, repeat)
    return (time.thread_time() - start) / repeat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernel-set", default=_core.kernel_set())
    parser.add_argument("--shapes", default=DEFAULT_SHAPES)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    _core.select_kernel_set(args.kernel_set)
    rng = np.random.default_rng(0)
    print(f"kernel set {args.kernel_set}, float32, 1 thread, thread CPU time, medians")
    print("| M x N x K | packed us | GFLOP/s | OpenBLAS us | GFLOP/s | packed / OpenBLAS |")
    print("|---|---|---|---|---|---|")
    for shape in args.shapes.split(","):
        M, N, K = map(int, shape.split("x"))
        a = rng.standard_normal((M, K)).astype(np.float32)
        w = rng.standard_normal((K, N)).astype(np.float32)
        c = np.zeros((M, N), np.float32)
        flops = 2.0 * M * N * K
        repeat = max(3, int(2e8 / flops))
        times: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.rounds):
            for blas in (False, True):
                times[blas].append(time_product(a, w, c, blas, repeat))
        p, b = np.median(times[False]), np.median(times[True])
        print(
            f"| {M}x{N}x{K} | {p * 1e6:.1f} | {flops / p / 1e9:.0f} | {b * 1e6:.1f} | "
            f"{flops / b / 1e9:.0f} | {p / b:.2f} |"
        )


if __name__ == "__main__":
    main()
