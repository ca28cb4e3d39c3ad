"""A captured (CUDA graph) training step computes what the eager step computes.

    python benchmarks/check_graphs.py

Trains the same model from the same seed with and without CUDA graphs on random particles (an
uneven last batch, so both paths run) and prints the largest relative difference of the per-step
losses, of the final weights and of the weights averaged over the last epoch (``average_epochs``,
updated inside the captured step). Needs a GPU.
"""

from __future__ import annotations

import json

import numpy as np

from bench_train import synthetic_particles
from cryonb.core.training import Trainer, TrainConfig


def main():
    particles = synthetic_particles(16 * 40 + 5, 64)
    runs = {}
    for graphs in (False, True):
        t = Trainer(particles, TrainConfig(zdim=8, batch_size=16, device="cuda", cuda_graphs=graphs,
                                           lr_schedule="cosine", epochs=3, average_epochs=1))
        t.fit(3, progress=False)
        runs[graphs] = t
    a, b = runs[False], runs[True]
    la, lb = np.array([s[1] for s in a.steps]), np.array([s[1] for s in b.steps])
    weights = max(float((p - q).detach().abs().max() / p.detach().abs().max().clamp_min(1e-12))
                  for p, q in zip(a.model.parameters(), b.model.parameters()))
    ma, mb = a.state_dict()["model"], b.state_dict()["model"]
    averaged = max(float((ma[k] - mb[k]).abs().max() / ma[k].abs().max().clamp_min(1e-12)) for k in ma if ma[k].is_floating_point())
    print(json.dumps({"steps": len(la), "graphs_used": bool(b._captured),
                      "max_rel_loss_diff": float(np.max(np.abs(la - lb) / np.abs(la))),
                      "max_rel_weight_diff": weights, "max_rel_averaged_weight_diff": averaged,
                      "final_loss": [float(la[-1]), float(lb[-1])]}), flush=True)


if __name__ == "__main__":
    main()
