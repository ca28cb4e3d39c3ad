"""Fourier shell correlation of two maps: resolution at FSC 0.143 and 0.5, optional plot."""

from __future__ import annotations

from pathlib import Path


def add_args(parser):
    parser.add_argument("map_a", type=Path, help="first map (.mrc)")
    parser.add_argument("map_b", type=Path, help="second map (.mrc), same box")
    parser.add_argument("--mask", nargs="?", const="soft", metavar="MASK.mrc",
                        help="multiply both maps by a mask first: a soft sphere filling the box, or a mask map")
    parser.add_argument("--apix", type=float, help="pixel size in Å (default: the first map's header)")
    parser.add_argument("--plot", type=Path, metavar="PNG", help="write the FSC curve to this PNG")


def main(args):
    from ..core.errors import InputError
    from ..core.fsc import fsc, plot_fsc
    from ..core.io.mrc import read_map

    a, apix_a = read_map(args.map_a)
    b, _ = read_map(args.map_b)
    if a.shape != b.shape or len(set(a.shape)) != 1:
        raise InputError(args.map_b, f"shape {b.shape} does not match {args.map_a}'s {a.shape} (or is not cubic)", "resample both maps to one cubic box")
    apix = apix_a if args.apix is None else args.apix
    if apix is None:
        raise InputError(args.map_a, "the header has no pixel size", "pass --apix")
    if not apix > 0:
        raise InputError(None, f"--apix {apix} is not a pixel size", "pass the pixel size in Å, e.g. --apix 1.1")
    mask = None
    if args.mask == "soft":
        mask = "soft"
    elif args.mask is not None:
        mask, _ = read_map(args.mask)
        if mask.shape != a.shape:
            raise InputError(args.mask, f"mask shape {mask.shape} does not match the maps' {a.shape}", "pass a mask of the maps' box")
    curve = fsc(a, b, apix=apix, mask=mask)
    print(f"resolution at FSC 0.143: {curve.resolution(0.143):.2f} Å")
    print(f"resolution at FSC 0.5:   {curve.resolution(0.5):.2f} Å")
    if args.plot is not None:
        plot_fsc(curve, labels=[f"{args.map_a.name} vs {args.map_b.name}"], path=args.plot)
        print(f"wrote {args.plot}")
