"""A captured (CUDA graph) training step computes what the eager step computes.

    python benchmarks/check_graphs.py

Trains the same model from the same seed with and without CUDA graphs on random particles (an
uneven last batch, so both paths run) and prints the largest relative difference of the per-step
losses and of the final weights. Needs a GPU.
"""

from __future__ import annotations

import json

import numpy as np
import torch

from bench_train import synthetic_particles
from cryonb.core.training import Trainer, TrainConfig


def main():
    particles = synthetic_particles(16 * 40 + 5, 64)
    runs = {}
    for graphs in (False, True):
        t = Trainer(particles, TrainConfig(zdim=8, batch_size=16, device="cuda", cuda_graphs=graphs,
                                           lr_schedule="cosine", epochs=3))
        t.fit(3, progress=False)
        runs[graphs] = t
    a, b = runs[False], runs[True]
    la, lb = np.array([s[1] for s in a.steps]), np.array([s[1] for s in b.steps])
    weights = max(float((p - q).detach().abs().max() / p.detach().abs().max().clamp_min(1e-12))
                  for p, q in zip(a.model.parameters(), b.model.parameters()))
    print(json.dumps({"steps": len(la), "graphs_used": bool(b._captured),
                      "max_rel_loss_diff": float(np.max(np.abs(la - lb) / np.abs(la))),
                      "max_rel_weight_diff": weights, "final_loss": [float(la[-1]), float(lb[-1])]}), flush=True)


if __name__ == "__main__":
    main()
