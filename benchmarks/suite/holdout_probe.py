"""Does the decoder fit each training particle's own noise? Maps of particles it trained on and of held-out ones.

    python -m benchmarks.suite.holdout_probe DATASET --jsonl holdout.jsonl [--seed S] [--holdout 1000] [--set KEY=VALUE ...]

Trains ``Trainer`` with its defaults (and any ``--set`` overrides) on all particles but a random
``--holdout`` of them, embeds the held-out images with the trained encoder, and scores the per-image
FSC AUC of the maps at the latents of 100 trained and 100 held-out particles. If the decoder had
learned each trained particle's noise at that particle's latent, the trained particles' maps would
score *lower* than the held-out ones'; equal scores mean the maps' error is not memorised noise.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import numpy as np
import torch

from benchmarks.records import emit
from benchmarks.suite import metrics
from benchmarks.suite.drgn import rounded, set_name, true_map_function
from benchmarks.suite.train import parse_override
from cryonb.core.distributed import resolve_device
from cryonb.core.imagedata import ImageData
from cryonb.core.particles import load_particles
from cryonb.core.training import Trainer, TrainConfig


def data_view(data: ImageData, idx: np.ndarray) -> ImageData:
    """``data`` restricted to the particles at ``idx`` (the images stay prepared and scaled as a whole)."""
    view = copy.copy(data)
    rows = torch.as_tensor(idx, device=data.device)
    view.images, view.rotations = data.images[rows], data.rotations[rows]
    view.ctf = None if data.ctf is None else data.ctf[rows]
    return view


def run(folder: Path, *, seed: int = 0, holdout: int = 1000, overrides: dict | None = None, device: str = "auto",
        fsc_particles: int = metrics.FSC_PARTICLES, epochs: int | None = None) -> dict:
    """Train on all but ``holdout`` particles; score maps of trained and held-out particles."""
    folder = Path(folder).resolve()
    truth = metrics.load_truth(folder / "truth.npz")
    particles = load_particles(folder / "particles.star")
    config = TrainConfig(**{"zdim": 8, "seed": seed, "device": device, **(overrides or {})})
    held = np.sort(np.random.default_rng([seed, 7]).choice(len(particles), size=holdout, replace=False))
    trained = np.setdiff1d(np.arange(len(particles)), held)
    data = ImageData(particles, config.box, resolve_device(config.device))  # prepared and scaled as one set
    trainer = Trainer(particles.subset(trained), config, data=data_view(data, trained))
    trainer.fit(epochs or trainer.config.epochs, progress=False)
    z = np.empty((len(particles), config.zdim))
    z[trained] = trainer.embed()
    trainer.data = data_view(data, held)
    z[held] = trainer.embed()
    true_map = true_map_function(folder, trainer.device)
    record = {"set": set_name(folder), "seed": seed, "holdout": holdout, "overrides": overrides or {}}
    for name, group in (("trained", trained), ("held_out", held)):
        aucs = metrics.per_image_fsc_aucs(z, trainer.volumes, true_map, k=fsc_particles, seed=0,
                                          candidates=np.intersect1d(group, truth.keep()))[1]
        record[name] = rounded(metrics.fsc_summary(aucs))
    record["latents"] = rounded(metrics.latent_metrics(z, truth))
    return record


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--jsonl", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--holdout", type=int, default=1000)
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--fsc-particles", type=int, default=metrics.FSC_PARTICLES)
    ap.add_argument("--set", dest="overrides", action="append", default=[], type=parse_override, metavar="KEY=VALUE")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    emit(run(args.dataset, seed=args.seed, holdout=args.holdout, overrides=dict(args.overrides), device=args.device,
             fsc_particles=args.fsc_particles, epochs=args.epochs), args.jsonl)


if __name__ == "__main__":
    main()
