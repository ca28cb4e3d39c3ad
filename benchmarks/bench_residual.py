"""Step speed with cryonb's folded residual layers against autograd's, at D = 128 (one GPU).

    python benchmarks/bench_residual.py --batches 16 32 64 128 --jsonl out.jsonl
    python benchmarks/bench_residual.py --profile 32    # where an eager step's GPU time goes

cryonb's residual layer computes ``relu(x + x Wᵀ + b)`` as one product with the identity folded into
the weight (:class:`cryonb.core.nets.ResidualReLU`); the reference is the same layer written for
autograd, ``relu(x + linear(x))``. Both train the default GPU model (1024×3 residual, zdim 8,
CUDA graphs, bfloat16) on random images; an epoch of warm-up, then two timed epochs each.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from benchmarks.bench_train import synthetic_particles
from cryonb.core import nets
from cryonb.core.training import Trainer, TrainConfig


def autograd_forward(self, x):
    return torch.relu(x + self.linear(x))


LAYERS = {"autograd": autograd_forward, "folded": nets.Residual.forward}


def images_per_s(particles, batch: int, epochs: int = 2) -> tuple[float, float]:
    trainer = Trainer(particles, TrainConfig(zdim=8, batch_size=batch, device="cuda"))
    trainer.fit(1, progress=False)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    trainer.fit(epochs, progress=False)
    torch.cuda.synchronize()
    return len(particles) * epochs / (time.perf_counter() - t0), trainer.history[-1]["loss"]


def profile(particles, batch: int) -> None:
    """The GPU kernels of one eager epoch (no CUDA graph) with autograd's layers, and the share of
    elementwise and reduction kernels in their time."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    nets.Residual.forward = LAYERS["autograd"]
    trainer = Trainer(particles, TrainConfig(zdim=8, batch_size=batch, device="cuda", cuda_graphs=False))
    trainer.fit(1, progress=False)
    torch.cuda.synchronize()
    with torch_profile(activities=[ProfilerActivity.CUDA]) as prof:
        trainer.fit(1, progress=False)
        torch.cuda.synchronize()
    events = prof.key_averages()
    print(events.table(sort_by="cuda_time_total", row_limit=18, max_name_column_width=70))
    total = sum(e.self_device_time_total for e in events)
    pointwise = sum(e.self_device_time_total for e in events if "elementwise" in e.key or "reduce_kernel" in e.key)
    print(f"elementwise and reduction kernels: {pointwise / total:.0%} of {total / 1e6:.2f} s of GPU time")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--particles", type=int, default=6000)
    ap.add_argument("--box", type=int, default=128)
    ap.add_argument("--batches", type=int, nargs="+", default=[16, 32, 64, 128])
    ap.add_argument("--jsonl", default=None)
    ap.add_argument("--profile", type=int, metavar="BATCH", help="only profile an eager epoch at this batch size")
    args = ap.parse_args(argv)
    particles = synthetic_particles(args.particles, args.box)
    try:
        if args.profile:
            return profile(particles, args.profile)
        for batch in args.batches:
            for name, forward in LAYERS.items():
                nets.Residual.forward = forward
                rate, loss = images_per_s(particles, batch)
                record = {"box": args.box, "batch": batch, "layers": name, "images_per_s": round(rate),
                          "loss": round(loss, 5), "device": torch.cuda.get_device_name()}
                print(json.dumps(record), flush=True)
                if args.jsonl:
                    with open(args.jsonl, "a") as f:
                        f.write(json.dumps(record) + "\n")
                torch.cuda.empty_cache()
    finally:
        nets.Residual.forward = LAYERS["folded"]


if __name__ == "__main__":
    main()
