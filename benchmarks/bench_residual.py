"""Step speed with cryonb's folded residual layers against autograd's, at D = 128 (one GPU).

    python benchmarks/bench_residual.py --batches 16 32 64 128 --jsonl out.jsonl

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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--particles", type=int, default=6000)
    ap.add_argument("--box", type=int, default=128)
    ap.add_argument("--batches", type=int, nargs="+", default=[16, 32, 64, 128])
    ap.add_argument("--jsonl", default=None)
    args = ap.parse_args(argv)
    particles = synthetic_particles(args.particles, args.box)
    try:
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
