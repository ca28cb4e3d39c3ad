"""Reconstruct a map from particles with known poses: map, half maps, FSC plot, resolution.

Writes OUTPUT, OUTPUT_half1.mrc and OUTPUT_half2.mrc next to it, and OUTPUT_fsc.png with the
gold-standard FSC between the half maps (soft spherical mask).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ._particles import add_input_args, load_input


def add_args(parser):
    parser.add_argument("particles", type=Path, help="particles with poses: .star, .cs, or .mrcs with --poses")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output map (.mrc)")
    add_input_args(parser)
    parser.add_argument("--no-ctf", action="store_true", help="do not correct for the CTF")
    parser.add_argument("--half-maps", action=argparse.BooleanOptionalAction, default=True, help="reconstruct two random halves too, for the FSC (default: yes)")
    parser.add_argument("--wiener", type=float, default=1.0, help="Wiener constant, 1/SNR per image (default: 1; 1e-3 for clean images)")
    parser.add_argument("--reference", type=Path, help="a map (.mrc) to compare the result with, e.g. the ground truth of a simulation")
    parser.add_argument("--batch-size", type=int, default=64, help="images per batch (default: 64)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda (default: cpu)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random half split (default: 0)")


def main(args):
    from ..core.errors import InputError
    from ..core.fsc import plot_fsc
    from ..core.reconstruct import backproject

    particles = load_input(args, "back-project")
    if particles.rotations is None:
        raise InputError(args.particles, "has no poses to back-project with", "pass a .star/.cs with angles, or an .mrcs with --poses")
    if particles.apix is None:
        raise InputError(args.particles, "the pixel size is unknown", "pass --apix")
    if not args.no_ctf and particles.ctf is None:
        raise InputError(args.particles, "has no CTF parameters", "pass --ctf-pkl, or --no-ctf for images without CTF")
    rec = backproject(particles, batch_size=args.batch_size, device=args.device, ctf=not args.no_ctf,
                      half_maps=args.half_maps, wiener=args.wiener, seed=args.seed)
    for path in rec.write(args.output):
        print(f"wrote {path}")
    if args.half_maps:
        curve = rec.fsc()
        png = args.output.with_name(f"{args.output.stem}_fsc.png")
        plot_fsc(curve, labels=["half maps"], path=png, title=args.output.name)
        print(f"wrote {png}")
        print(f"resolution (half maps, FSC 0.143): {curve.resolution(0.143):.2f} Å")
    if args.reference is not None:
        _compare(rec.volume, args.reference, rec.apix)


def _compare(volume, reference_path, apix):
    """Print the FSC of the map against a reference: resolutions and lowest value to 80% Nyquist."""
    from ..core.errors import InputError
    from ..core.fsc import fsc
    from ..core.io.mrc import read_map

    reference, _ = read_map(reference_path)
    if reference.shape != tuple(volume.shape):
        raise InputError(reference_path, f"box {reference.shape} differs from the reconstruction's {tuple(volume.shape)}", "pass a reference of the same box")
    curve = fsc(volume, reference, apix=apix)
    shells = int(0.8 * (len(curve.values) - 1))
    print(f"against {reference_path}: resolution {curve.resolution(0.5):.2f} Å at FSC 0.5, {curve.resolution(0.143):.2f} Å at 0.143")
    print(f"lowest FSC up to 80% of Nyquist: {curve.values[: shells + 1].min():.3f}")
