"""The fused ReLU-gradient product (cryonb.core.kernels.relu_grad_matmul) against torch's three passes.

    python -m benchmarks.bench_relu_grad [--jsonl out.jsonl] [--sweep]

Between two of the decoder's ReLU layers the backward pass computes ``(g W) ⊙ (h > 0)`` and its
column sums (the lower layer's bias gradient). torch does it as a product, ``threshold_backward``
and a sum; the kernel as one product whose tiles are masked and summed before they are written (its
default tiles: ``kernels._config``). At D = 128 the decoder's rows are the pixels of a batch (6,425
per image): 1024-wide layers at batch 32 (205,600 rows), 256-wide at batch 64 (411,200), and the
output layer's two columns (N = 2).
Median of 20 CUDA-event timings after 5 warm-up calls, bfloat16, one GPU. ``--sweep`` also times
other tile shapes (BLOCK_M, BLOCK_K, BLOCK_N, warps, stages[, "tma": tiles moved by Hopper's
tensor memory accelerator]).
"""

from __future__ import annotations

import argparse
import json

import torch

from benchmarks.records import emit
from cryonb.core import kernels

SHAPES = [(205600, 1024, 1024), (205600, 2, 1024), (411200, 256, 256), (411200, 2, 256)]  # rows, N, K
SWEEP = [(128, 128, 32, 4, 4), (256, 128, 64, 8, 3), (128, 256, 64, 8, 3, "tma"), (128, 256, 64, 8, 4, "tma"),
         (256, 128, 64, 8, 3, "tma"), (128, 128, 64, 4, 4, "tma"), (128, 128, 64, 8, 4, "tma"),
         (128, 128, 32, 4, 4, "tma"), (128, 256, 32, 8, 4, "tma"), (128, 128, 16, 4, 2), (64, 128, 16, 4, 2)]


def median_us(fn, repeats: int = 20) -> float:
    for _ in range(5):
        fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1000)
    return sorted(times)[len(times) // 2]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jsonl", default=None)
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--widths", type=int, nargs="+", default=[1024, 256], help="the layers' widths (K) to time")
    args = ap.parse_args(argv)
    for rows, N, K in (shape for shape in SHAPES if shape[2] in args.widths):
        torch.manual_seed(0)
        g = torch.randn(rows, N, device="cuda", dtype=torch.bfloat16) / 100
        w = (torch.randn(N, K, device="cuda") / N**0.5).bfloat16()
        h = torch.relu(torch.randn(rows, K, device="cuda")).bfloat16()
        expected, expected_sums = kernels._three_passes(g, w, h)
        forms = {"torch": (kernels._three_passes, None), "kernels.relu_grad_matmul": (kernels.relu_grad_matmul, None)}
        if args.sweep:
            forms.update({f"kernel {c}": (kernels.relu_grad_matmul, c) for c in SWEEP if N % 8 == 0 or "tma" not in c})
        for name, (fn, config) in forms.items():
            call = (lambda: fn(g, w, h)) if config is None else (lambda: fn(g, w, h, config))
            try:
                out, sums = call()
                us = median_us(call)
            except Exception as error:  # a tile shape this GPU cannot run (shared memory)
                print(json.dumps({"rows": rows, "N": N, "K": K, "form": name, "error": str(error)[:120]}))
                continue
            record = {"rows": rows, "N": N, "K": K, "form": name, "us": round(us, 1),
                      "max_error": float((out.float() - expected.float()).abs().max()),
                      "bias_error": float((sums - expected_sums).abs().max() / expected_sums.abs().max()),
                      "device": torch.cuda.get_device_name()}
            emit(record, args.jsonl)


if __name__ == "__main__":
    main()
