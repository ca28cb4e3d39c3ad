"""How long each of cryonb's Triton kernels takes to its first launch in a fresh process (GPU).

    TRITON_CACHE_DIR=$(mktemp -d) python -m benchmarks.kernel_first_launch [--threads] [--jsonl out.jsonl]

With an empty Triton cache the first launch includes the kernel's compilation (the first one also
Triton's own start); a second launch follows for comparison, and a cuBLAS product of the same
shapes. The shapes are a training step's at D = 128, batch 32, zdim 8 (6,425 frequencies, the
decoder's 1024-wide layers, its first layer's 392 columns). ``--threads``: the three kernels' first
launches side by side, each in a thread of its own (:func:`cryonb.core.kernels.compile_ahead`, as a
GPU trainer starts them), timed together. One JSON line, in seconds.
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks.records import emit
from cryonb.core import kernels

ROWS, WIDTH, PHASES, ZDIM = 32 * 6425, 1024, 192, 8


def timed(launch) -> float:
    torch.cuda.synchronize()
    start = time.perf_counter()
    launch()
    torch.cuda.synchronize()
    return round(time.perf_counter() - start, 3)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", action="store_true", help="the three kernels' first launches in three threads, timed together")
    ap.add_argument("--jsonl")
    args = ap.parse_args(argv)
    if not kernels.available():
        raise SystemExit("needs a CUDA GPU (sm_80 or later) and Triton")
    torch.zeros(1, device="cuda")
    bf = dict(device="cuda", dtype=torch.bfloat16)
    grad, weight, below = torch.randn(ROWS, WIDTH, **bf), torch.randn(WIDTH, WIDTH, **bf), torch.randn(ROWS, WIDTH, **bf).relu()
    out_grad, out_weight = torch.randn(ROWS, 2, **bf), torch.randn(2, WIDTH, **bf)
    coords, freqs = torch.randn(32, ROWS // 32, 3, device="cuda"), torch.randn(3, PHASES, device="cuda")
    z = torch.randn(32, ZDIM, device="cuda")
    launches = {"relu_grad_matmul_tma": lambda: kernels.relu_grad_matmul(grad, weight, below),
                "relu_grad_matmul_thin": lambda: kernels.relu_grad_matmul(out_grad, out_weight, below),
                "encoded_features": lambda: kernels.encoded_features(coords, freqs, z, 2 * PHASES + ZDIM, torch.bfloat16),
                "cublas_product": lambda: grad @ weight}
    if args.threads:
        kernels_only = [launch for name, launch in launches.items() if name != "cublas_product"]
        together = timed(lambda: kernels.compile_ahead(kernels_only, torch.device("cuda"))())
        record = {"benchmark": "triton_first_launch_threads", "device": torch.cuda.get_device_name(), "torch": torch.__version__,
                  "threads_s": together, "failed": sorted(map(str, kernels.failed))}
        emit(record, args.jsonl)
        return record
    first = {name: timed(launch) for name, launch in launches.items()}
    again = {name: timed(launch) for name, launch in launches.items()}
    record = {"benchmark": "triton_first_launch", "device": torch.cuda.get_device_name(), "torch": torch.__version__,
              "first_s": first, "again_s": again, "failed": sorted(map(str, kernels.failed))}
    emit(record, args.jsonl)
    return record


if __name__ == "__main__":
    main()
