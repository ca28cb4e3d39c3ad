"""Simulate particle images of a phantom or a map, with their ground truth.

Writes particles.mrcs, particles.star (RELION 3.1), volumes/*.mrc and truth.npz to --outdir.
Models: "hinge" (50 conformations of a two-domain complex over 1.5 rad), "mixture" (small
subunit, large subunit and complex), or an .mrc map.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np


def add_args(parser):
    parser.add_argument("--model", default="hinge", help='"hinge", "mixture" or a map (.mrc) (default: hinge)')
    parser.add_argument("--n", type=int, default=1000, help="number of particles (default: 1000)")
    parser.add_argument("--box", type=int, help="box size in pixels (default: 64, or the map's box; a smaller box Fourier-crops the map)")
    parser.add_argument("--apix", type=float, help="pixel size in Å (default: 3.0, or the map's)")
    parser.add_argument("--snr", type=float, default=0.1, help="signal-to-noise ratio (variance ratio); inf for clean images (default: 0.1)")
    parser.add_argument("--occupancy", choices=("uniform", "cooperative", "noncontiguous"), default="uniform", help="how states are populated (default: uniform)")
    parser.add_argument("--proportions", type=float, nargs="+", metavar="P", help="explicit weight of each state, e.g. 1 1 2 for the mixture")
    parser.add_argument("--defocus", type=float, nargs=2, default=(1.0, 2.5), metavar=("MIN", "MAX"), help="defocus range in µm (default: 1.0 2.5)")
    parser.add_argument("--astigmatism", type=float, default=300.0, help="largest defocus U - V in Å (default: 300)")
    parser.add_argument("--bfactor", type=float, default=0.0, help="CTF B-factor in Å² (default: 0)")
    parser.add_argument("--shift-sigma", type=float, default=0.0, help="standard deviation of the shifts in pixels (default: 0)")
    parser.add_argument("--no-ctf", action="store_true", help="images without CTF (parameters are still drawn and written)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda (default: cpu)")
    parser.add_argument("--outdir", type=Path, required=True, help="output folder")


def _model(args: argparse.Namespace):
    """(model for simulate, box, pixel size) from the command line."""
    if args.model in ("hinge", "mixture"):
        return args.model, args.box or 64, args.apix or 3.0
    from ..core.errors import InputError
    from ..core.fourier import fourier_crop
    from ..core.io.mrc import read_map

    volume, header_apix = read_map(args.model)
    apix = args.apix or header_apix
    if apix is None:
        raise InputError(args.model, "the map's header has no pixel size", "pass --apix")
    D = volume.shape[-1]
    box = args.box or D
    if box > D:
        raise InputError(args.model, f"--box {box} is larger than the map's box {D}", f"pass --box {D} or smaller")
    import torch

    return fourier_crop(torch.tensor(volume), box, ndim=3), box, apix * D / box


def main(args):
    from ..core.simulate import simulate

    model, box, apix = _model(args)
    sim = simulate(
        model,
        args.n,
        D=box,
        apix=apix,
        snr=None if math.isinf(args.snr) else args.snr,
        occupancy=args.occupancy,
        proportions=args.proportions,
        defocus_range=(args.defocus[0] * 1e4, args.defocus[1] * 1e4),
        astigmatism=args.astigmatism,
        bfactor=args.bfactor,
        shift_sigma=args.shift_sigma,
        ctf=not args.no_ctf,
        seed=args.seed,
        device=args.device,
    )
    paths = sim.save(args.outdir)
    counts = np.bincount(sim.state, minlength=len(sim.state_names))
    print(f"{args.n} particles, box {box}, {apix:.3f} Å/px, SNR {args.snr:g}, {len(counts)} state(s)")
    print("particles per state: " + ", ".join(f"{name} {c}" for name, c in zip(sim.state_names, counts) if c))
    for what in ("star", "stack", "volumes", "truth"):
        print(f"wrote {paths[what]}")
