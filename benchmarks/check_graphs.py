"""A captured (CUDA graph) training step computes what the eager step computes.

    python benchmarks/check_graphs.py
    python benchmarks/check_graphs.py --latents table --poses table    # per-particle tables (RowAdam)

Trains the same model from the same seed with and without CUDA graphs on random particles (an
uneven last batch, so both paths run) and prints the largest relative difference of the per-step
losses and of the final weights (and which parameter differs most), beside the same differences
between two eager runs (the GPU kernels' own run-to-run spread). Needs a GPU.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from bench_train import synthetic_particles
from cryonb.core.training import Trainer, TrainConfig


def train(particles, graphs: bool, **sources) -> Trainer:
    """Three epochs from seed 0, with or without CUDA graphs (``sources``: latents=, poses=)."""
    t = Trainer(particles, TrainConfig(zdim=8, batch_size=16, device="cuda", cuda_graphs=graphs, lr_schedule="cosine", epochs=3,
                                       **sources))
    t.fit(3, progress=False)
    return t


def differences(a: Trainer, b: Trainer) -> dict:
    """Largest relative differences of two runs' per-step losses and final weights."""
    la, lb = np.array([s[1] for s in a.steps]), np.array([s[1] for s in b.steps])
    weights, worst = max((float((p - q).detach().abs().max() / p.detach().abs().max().clamp_min(1e-12)), name)
                         for (name, p), q in zip(a.model.named_parameters(), b.model.parameters()))
    return {"max_rel_loss_diff": float(np.max(np.abs(la - lb) / np.abs(la))), "max_rel_weight_diff": weights,
            "worst_parameter": worst if weights else None, "final_loss": [float(la[-1]), float(lb[-1])]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latents", choices=["encoder", "table"], default="encoder", help="TrainConfig.latents")
    parser.add_argument("--poses", choices=["known", "table"], default="known", help="TrainConfig.poses")
    sources = vars(parser.parse_args(argv))
    particles = synthetic_particles(16 * 40 + 5, 64)
    eager, again, captured = (train(particles, graphs, **sources) for graphs in (False, False, True))
    print(json.dumps({**sources, "steps": len(eager.steps), "graphs_used": bool(captured._captured),
                      "graphs_vs_eager": differences(eager, captured),
                      "eager_vs_eager": differences(eager, again)}), flush=True)  # the kernels' own run-to-run spread


if __name__ == "__main__":
    main()
