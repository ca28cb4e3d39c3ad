"""Print what a cryo-EM file holds (maps, stacks, .star, .cs, cryoDRGN pickles)."""

from __future__ import annotations


def add_args(parser):
    parser.add_argument("files", nargs="+", metavar="FILE", help="files to describe")


def main(args):
    from ..core.io import describe

    for path in args.files:
        print(describe(path))
        print()
