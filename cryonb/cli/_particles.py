"""The options and loading shared by the commands that read particles with poses (backproject, variability)."""

from __future__ import annotations

from pathlib import Path


def add_input_args(parser):
    """Where the images, poses, CTF and pixel size come from: for commands that read particles with poses."""
    parser.add_argument("--datadir", type=Path, help="folder of the image stacks (default: the metadata file's folder)")
    parser.add_argument("--poses", type=Path, help="cryoDRGN pose pickle, instead of the file's poses")
    parser.add_argument("--ctf-pkl", type=Path, help="cryoDRGN CTF pickle, instead of the file's CTF")
    parser.add_argument("--apix", type=float, help="pixel size in Å, overriding the files'")


def load_input(args, purpose: str):
    """The particles that :func:`add_input_args`' options name, with their images (one clear error if none)."""
    from ..core.particles import load_particles, require_images

    particles = load_particles(args.particles, datadir=args.datadir, apix=args.apix, poses=args.poses, ctf=args.ctf_pkl)
    require_images(particles, purpose)
    return particles
