"""Do cryonb's maps gain from a last pass of the decoder alone at the encoder's mean latents?

    python -m benchmarks.suite.polish_probe DATASET --jsonl polish.jsonl [--seed S] [--variants 1:1e-4 2:1e-4:noise ...]

Trains ``Trainer(particles)`` with its defaults once, scores its maps (per-image FSC AUC, the suite's
100 particles), then for each variant ``EPOCHS:LR[:noise]`` restores the trained decoder and trains it
alone for EPOCHS epochs with a fresh Adam at constant LR, the encoder frozen and each image's z its
encoder mean (``:noise``: drawn from the encoder's Gaussian, as in training), and scores the maps
again. The latents are the trained encoder's throughout, so every latent metric stays as trained.
One JSON line per variant, with the FSC curves' mean (DC to Nyquist) and the seconds of the pass.
``--ideal-z`` (continuous sets) also scores the trained decoder at each scored particle's *ideal*
latent: the mean z of the 20 particles nearest to it in the true coordinate, which averages the
encoder's per-particle error away, to tell the decoder's share of the maps' error from the latents'.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.records import emit
from benchmarks.suite import metrics
from benchmarks.suite.drgn import rounded, set_name, true_map_function
from benchmarks.suite.train import synchronize
from cryonb.core.particles import load_particles
from cryonb.core.training import Trainer, TrainConfig


def decoder_pass(trainer: Trainer, epochs: int, lr: float, noise: bool) -> float:
    """Train the decoder alone for ``epochs`` at ``lr``; returns the seconds taken."""
    decoder = trainer.model.decoder
    frozen = [p for name, p in trainer.model.named_parameters() if not name.startswith("decoder.")]
    for p in frozen:
        p.requires_grad_(False)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=lr)
    g = torch.Generator(device=trainer.device).manual_seed(trainer.config.seed + 12345)
    bs, zdim = trainer.config.batch_size, trainer.config.zdim
    synchronize(trainer)
    t0 = time.perf_counter()
    trainer.model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(trainer.data), generator=torch.Generator().manual_seed(epoch)).to(trainer.device)
        for start in range(0, len(order) - bs + 1, bs):
            idx = order[start : start + bs]
            eps = torch.randn(len(idx), zdim, generator=g, device=trainer.device) if noise else None
            optimizer.zero_grad(set_to_none=True)
            trainer.loss(idx, eps)[1].backward()  # the reconstruction error alone: z is not trained
            optimizer.step()
    synchronize(trainer)
    for p in frozen:
        p.requires_grad_(True)
    return time.perf_counter() - t0


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--jsonl", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variants", nargs="+", default=["1:1e-4", "2:1e-4", "2:1e-4:noise", "1:3e-4", "2:3e-5"])
    ap.add_argument("--fsc-particles", type=int, default=metrics.FSC_PARTICLES)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--ideal-z", action="store_true", help="also score the maps at the latents averaged over true neighbours")
    args = ap.parse_args(argv)

    folder = args.dataset.resolve()
    truth = metrics.load_truth(folder / "truth.npz")
    t0 = time.perf_counter()
    trainer = Trainer(load_particles(folder / "particles.star"), TrainConfig(zdim=8, seed=args.seed, device=args.device))
    trainer.fit(trainer.config.epochs, progress=False)
    z = trainer.embed()
    train_s = time.perf_counter() - t0
    latent = rounded(metrics.latent_metrics(z, truth))
    true_map = true_map_function(folder, trainer.device)
    trained = copy.deepcopy(trainer.model.decoder.state_dict())
    base = {"set": set_name(folder), "seed": args.seed, "train_s": round(train_s, 2), "latents": latent}

    def score(variant: str, seconds: float, latents=z) -> None:
        _, aucs, curves = metrics.per_image_fsc_aucs(latents, trainer.volumes, true_map, k=args.fsc_particles,
                                                     candidates=truth.keep())  # the same picks for every variant
        emit({**base, "variant": variant, "pass_s": round(seconds, 2), **rounded(metrics.fsc_summary(aucs)),
              "fsc_curve": np.round(np.abs(curves).mean(0), 4).tolist()}, args.jsonl)

    score("trained", 0.0)
    if args.ideal_z:
        score("ideal z", 0.0, metrics.ideal_latents(z, truth.coordinate))
    for variant in args.variants:
        epochs, lr, *rest = variant.split(":")
        trainer.model.decoder.load_state_dict(trained)
        score(variant, decoder_pass(trainer, int(epochs), float(lr), noise=rest == ["noise"]))


if __name__ == "__main__":
    main()
