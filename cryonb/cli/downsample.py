"""Fourier-crop a particle stack to a smaller box: a new .mrcs and a matching .star.

Reads any particle file cryonb reads (.star, .cs, or an .mrcs with --poses/--ctf), crops each
image's centred transform to --box in chunks (memory stays bounded whatever the stack's size), and
writes OUT.mrcs and OUT.star atomically. The .star has the new pixel size (old × old box / new box),
the same shifts in Å, the same poses and CTF, and image names pointing at OUT.mrcs.
"""

from __future__ import annotations

from pathlib import Path


def add_args(parser):
    parser.add_argument("particles", help=".star, .cs or .mrcs (with --poses/--ctf) particle file")
    parser.add_argument("--box", "-D", type=int, required=True, help="the new box in pixels (even, at most the images' box)")
    parser.add_argument("--out", "-o", type=Path, required=True, help="the new stack (.mrcs); the .star is written beside it")
    parser.add_argument("--star", type=Path, help="where to write the .star (default: OUT with the suffix .star)")
    parser.add_argument("--datadir", help="folder of the image stacks (default: next to the particle file)")
    parser.add_argument("--apix", type=float, help="pixel size in Å of the input, overriding the files'")
    parser.add_argument("--poses", help="cryoDRGN poses .pkl (for a bare stack)")
    parser.add_argument("--ctf", help="cryoDRGN CTF .pkl (for a bare stack)")
    parser.add_argument("--chunk", type=int, default=1024, help="images cropped at a time (default: 1024)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args):
    from ..core.particles import load_particles

    particles = load_particles(args.particles, datadir=args.datadir, apix=args.apix, poses=args.poses, ctf=args.ctf)
    out = downsample(particles, args.box, args.out, star=args.star, chunk=args.chunk, progress=not args.no_progress)
    print(f"wrote {out['mrcs']} ({len(particles):,} images, box {args.box}, {out['apix']:.4g} Å/pixel) and {out['star']}")


def downsample(particles, box: int, out, star=None, chunk: int = 1024, progress: bool = True) -> dict:
    """Write ``particles``' images Fourier-cropped to ``box`` as ``out`` (.mrcs) and a matching .star."""
    import dataclasses
    import errno

    import numpy as np
    import torch
    from tqdm.auto import tqdm

    from ..core.errors import InputError
    from ..core.fourier import fourier_crop
    from ..core.io.images import ImageSource
    from ..core.io.mrc import write_stack
    from ..core.io.sources import MrcStackSource
    from ..core.particles import write_star

    out = Path(out)
    star = out.with_suffix(".star") if star is None else Path(star)
    if particles.images is None:
        raise InputError(particles.source.path, "the particle file names no images", "pass a file whose image stacks can be found (--datadir)")
    D0 = particles.box_size
    if box < 2 or box % 2 or box > D0:
        raise InputError(None, f"--box {box} must be even and at most the images' box ({D0})", f"pick an even box <= {D0}")
    if chunk < 1:
        raise InputError(None, f"--chunk must be at least 1 (got {chunk})", "pass e.g. --chunk 1024")
    if particles.apix is None:
        raise InputError(particles.source.path, "the pixel size is unknown", "pass --apix (Å per pixel of the input)")
    if out.resolve() in {Path(p).resolve() for p in (particles.images.locations() or ([], None))[0]}:
        raise InputError(out, "is one of the input stacks", "write the downsampled stack to a new file")
    apix = particles.apix * D0 / box
    bar = tqdm(total=len(particles), unit="image", desc=f"downsampling to {box}", disable=not progress, mininterval=0.5)

    class Cropped(ImageSource):  # the input's images, cropped as they are read (write_stack reads in chunks)
        def _read(self, positions):
            images = fourier_crop(torch.as_tensor(particles.images[positions]), box).numpy()
            bar.update(len(positions))
            return np.ascontiguousarray(images, dtype=np.float32)

        def _take(self, positions):  # pragma: no cover - write_stack only reads
            raise NotImplementedError

    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with bar:
            write_stack(out, Cropped(len(particles), box), apix, batch_size=chunk)
    except OSError as err:
        if err.errno == errno.ENOSPC:
            need = len(particles) * box * box * 4 / 2**30
            raise InputError(out, f"the disk is full ({need:.1f} GiB needed for the new stack)",
                             "free space there or write to another disk (--out)") from None
        raise
    shifts = None if particles.shifts is None else particles.shifts * (box / D0)  # pixels of the new box: the same Å
    small = dataclasses.replace(particles, images=MrcStackSource(out), shifts=shifts, apix=apix)
    write_star(small, star, stack=out)
    return {"mrcs": out, "star": star, "apix": apix}
