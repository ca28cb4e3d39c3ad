"""Does arithmetic precision limit cryonb's maps? One suite set trained in bfloat16 (the default) or
float16, its maps scored with the decoder in bfloat16, float16 and float32.

    python -m benchmarks.suite.precision DATASET --train float16 --jsonl precision.jsonl [--set lr=4e-4]

``--train float16`` runs the steps eagerly (no CUDA graph) under float16 autocast with a dynamic
loss scale (``torch.amp.GradScaler``), as cryoDRGN trains; ``bfloat16`` is cryonb's default step.
Each map precision scores the same 100 particles' per-image FSC AUC
(:func:`benchmarks.suite.metrics.per_image_fsc_aucs`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from benchmarks.records import emit
from benchmarks.suite import metrics
from benchmarks.suite.drgn import rounded, set_name, true_map_function
from benchmarks.suite.train import parse_override
from cryonb.core.particles import load_particles
from cryonb.core.training import Trainer, TrainConfig

MAP_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


class Float16Trainer(Trainer):
    """cryonb's trainer with float16 autocast and a dynamic loss scale, eager steps."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.scaler = torch.amp.GradScaler("cuda")

    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.float16, cache_enabled=False)

    def _update(self, idx, noise, scale: float = 1.0):
        loss, error, kl = self.loss(idx, noise)
        self.scaler.scale(loss * scale).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach(), error.detach(), kl.detach()


def run(folder, train: str = "bfloat16", overrides: dict | None = None, epochs: int = 20, seed: int = 0) -> dict:
    folder = Path(folder).resolve()
    truth = metrics.load_truth(folder / "truth.npz")
    overrides = dict(overrides or {}, **({"cuda_graphs": False} if train == "float16" else {}))
    t0 = time.perf_counter()
    cls = Float16Trainer if train == "float16" else Trainer
    trainer = cls(load_particles(folder / "particles.star"), TrainConfig(zdim=8, seed=seed, device="cuda", **overrides))
    trainer.fit(epochs, progress=False)
    z = trainer.embed()
    record = {"set": set_name(folder), "train": train, "overrides": overrides, "wall_s": round(time.perf_counter() - t0, 1),
              "latent": rounded(metrics.latent_metrics(z, truth))}
    true_map = true_map_function(folder, trainer.device)
    trainer.model.eval()
    for name, dtype in MAP_DTYPES.items():
        def maps_at(zz, dtype=dtype):
            return (trainer.model.decoder.volumes(torch.as_tensor(zz), dtype=dtype) * trainer.data.scale).cpu().numpy()
        aucs = metrics.per_image_fsc_aucs(z, maps_at, true_map, candidates=truth.keep())[1]
        record["maps_" + name] = rounded(metrics.fsc_summary(aucs))
    return record


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset")
    ap.add_argument("--train", choices=("bfloat16", "float16"), default="bfloat16")
    ap.add_argument("--set", action="append", default=[], type=parse_override, metavar="KEY=VALUE")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--jsonl")
    args = ap.parse_args(argv)
    record = run(args.dataset, args.train, dict(args.set), args.epochs)
    emit(record, args.jsonl)


if __name__ == "__main__":
    main()
