"""Print what a cryo-EM file holds (maps, stacks, .star, .cs, cryoDRGN pickles)."""

from __future__ import annotations


def add_args(parser):
    parser.add_argument("files", nargs="+", metavar="FILE", help="files to describe")
    parser.add_argument("--apix", type=float, help="pixel size in Å, for particle files that do not state it")


def main(args):
    from ..core.io import describe

    for path in args.files:
        print(describe(path, apix=args.apix))
        print()
