"""How far do the halves' components agree on images of noise alone, with a set's poses and CTFs?

    python -m benchmarks.suite.noise_agreement DIR --n 500 1800 4000 [--seeds 0 1] [--device cuda] [--jsonl OUT]

Every image of the set (its first N particles) is replaced by white noise as it is read, so the
poses, CTFs, shifts and box are the set's and nothing else is; :func:`variability_component` then runs
with its defaults, one start and no regions (the agreement is what it measures). One record per (N, seed): the agreement and the bimodality.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import cryonb.core.variability as variability
from benchmarks.records import emit
from cryonb.core.fourier import fft_center
from cryonb.core.particles import load_particles


def noise_batches(read):
    """``read`` (:func:`cryonb.core.reconstruct.image_batches`) with each batch's images replaced by
    white noise, the same for the same rows."""
    def batches(*args, **kwargs):
        for rows, images_ft, ctf, rotations in read(*args, **kwargs):
            noise = torch.randn(images_ft.shape, generator=torch.Generator().manual_seed(int(rows.start)))
            yield rows, fft_center(noise, 2).to(images_ft.dtype).to(images_ft.device), ctf, rotations
    return batches


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--n", type=int, nargs="+", default=[500, 1800])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--jsonl", type=Path)
    args = ap.parse_args(argv)
    particles = load_particles(args.dataset / "particles.star")
    read, variability.image_batches = variability.image_batches, noise_batches(variability.image_batches)
    try:
        for n in args.n:
            for seed in args.seeds:
                c = variability.variability_component(particles.subset(np.arange(n)), starts=1, regions=0, seed=seed, device=args.device, progress=False)
                emit({"set": args.dataset.name, "particles": n, "seed": seed, "agreement": round(c.agreement, 3),
                      "bimodality": round(c.bimodality, 4)}, args.jsonl)
    finally:
        variability.image_batches = read


if __name__ == "__main__":
    main()
