"""The particle metadata of a shared bundle: the run's particle file without images, gzip-compressed.

A .star source is kept as a .star and a .cs source as a .cs, row for row, so that the row numbers
of a selection made on the bundle are those of the original file and a saved selection selects the
same particles there. ``columns="compact"`` keeps what maps a particle back and what the explorer
shows (image and micrograph names, poses, shifts, CTF, optics groups, class and half-set); ``"all"``
keeps every column (picking coordinates, figures of merit…). Particles held in memory or read from a bare stack get a fresh RELION 3.1 .star with
one row per particle of the run (image names ``000123@stack.mrcs`` by base name only).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import shutil
import tempfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io.atomic import atomic_path, atomic_write
from ..io.star import read_blocks, read_star, write_blocks

COLUMN_CHOICES = ("compact", "all")

# RELION particle columns kept by "compact" (every column of the optics block is kept).
STAR_COLUMNS = (
    "rlnImageName", "rlnMicrographName",
    "rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi", "rlnOriginX", "rlnOriginY", "rlnOriginXAngst", "rlnOriginYAngst",
    "rlnDefocusU", "rlnDefocusV", "rlnDefocusAngle", "rlnPhaseShift", "rlnCtfBfactor", "rlnCtfScalefactor",
    "rlnVoltage", "rlnSphericalAberration", "rlnAmplitudeContrast", "rlnMagnification", "rlnDetectorPixelSize",
    "rlnImagePixelSize", "rlnOpticsGroup", "rlnGroupName", "rlnClassNumber", "rlnRandomSubset",
)
# cryoSPARC fields kept by "compact": the particle's uid, its image, CTF, 3D alignment and picking location.
CS_PREFIXES = ("uid", "blob/", "ctf/", "alignments3D/pose", "alignments3D/shift", "alignments3D/psize_A", "location/")


def write_metadata(particles, folder: Path, columns: str = "compact") -> dict:
    """Write the metadata of ``particles`` into ``folder`` (a bundle's ``particles/``).

    Returns the manifest entry: the compressed file, its format, the source's base name, the
    columns kept, the particle block's name, the file's row count, and ``rows`` (N,): each
    particle's row in the written file.
    """
    if columns not in COLUMN_CHOICES:
        raise InputError(None, f"unknown metadata columns {columns!r}", f"use one of {', '.join(COLUMN_CHOICES)}")
    folder.mkdir(parents=True, exist_ok=True)
    origin = particles.source
    block = None
    if origin.format == "star":
        name, rows = "particles.star", particles.indices
        block, n_rows = _write_star_rows(Path(origin.path), folder / name, columns)
    elif origin.format == "cs":
        name, rows = "particles.cs", particles.indices
        n_rows = _write_cs_fields(Path(origin.path), folder / name, columns)
    else:
        name, rows, block, n_rows = "particles.star", np.arange(len(particles)), "particles", len(particles)
        _write_fresh_star(particles, folder / name)
    compressed = gzip_file(folder / name)
    return {"file": compressed.name, "format": Path(name).suffix[1:], "source": Path(origin.path).name or None,
            "source_format": origin.format, "columns": columns if origin.format in ("star", "cs") else "compact",
            "particle_block": block, "n_rows": int(n_rows), "rows": np.asarray(rows, dtype=np.int64)}


def _write_star_rows(src: Path, out: Path, columns: str) -> tuple[str, int]:
    """Every row of the .star ``src`` (its other blocks whole, the particle block last, so that a
    reader can take its rows in chunks), with the compact columns or all."""
    star = read_star(src)
    table = star.blocks[star.particle_block]
    if columns == "compact":
        table = table[[c for c in table.columns if c in STAR_COLUMNS]]
    blocks = {name: block for name, block in star.blocks.items() if name != star.particle_block}
    blocks[star.particle_block] = table
    # No "# cryonb datadir" line: a folder of the sharer's machine means nothing to the recipient.
    header = f"{star.version_line}\n" if star.version_line else ""
    header += f"# cryonb shared bundle: the rows of {src.name}, in its order\n"
    write_blocks(blocks, out, header=header)
    return star.particle_block, len(table)


def _write_cs_fields(src: Path, out: Path, columns: str) -> None:
    from numpy.lib.recfunctions import repack_fields

    from ..io.cryosparc import read_cs

    array = read_cs(src).array
    if columns == "compact":
        keep = [n for n in array.dtype.names if n.startswith(CS_PREFIXES)]
        array = repack_fields(array[keep])
    with atomic_write(out) as f:  # through a handle: np.save would append .npy to the name
        np.save(f, array, allow_pickle=False)
    return len(array)


def _write_fresh_star(particles, out: Path) -> None:
    """A RELION 3.1 .star of the particles' poses and CTF; image names of a bare stack by base name."""
    from ..particles import write_star

    locations = None if particles.images is None else particles.images.locations()
    write_star(dataclasses.replace(particles, images=None), out)  # images=None: nothing is written beside it
    if locations is None:
        return
    blocks = read_blocks(out)
    files, rows = locations
    names = [f"{row + 1:06d}@{Path(f).name}" for f, row in zip(files, rows)]
    blocks["particles"].insert(0, "rlnImageName", names)
    blocks["optics"]["rlnImageSize"] = particles.images.box_size
    write_blocks(blocks, out, single_precision=True)


def gzip_file(path: Path) -> Path:
    """``path`` compressed to ``path.gz`` (no time stamp, so equal files give equal bytes); ``path`` removed."""
    out = path.with_name(path.name + ".gz")
    with open(path, "rb") as src, atomic_path(out) as tmp:
        with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as f:
            shutil.copyfileobj(src, f, 1 << 20)
    path.unlink()
    return out


def unpacked(bundle: Path, entry: dict, digest: str) -> Path:
    """The decompressed metadata file of a bundle, made once in ``<bundle>/.cache`` (or a temporary
    folder if the bundle may not be written), named by the compressed file's checksum."""
    name = Path(entry["file"]).name.removesuffix(".gz")
    source = bundle / "particles" / entry["file"]
    for cache in (bundle / ".cache", Path(tempfile.gettempdir()) / "cryonb-bundles"):
        target = cache / digest[:16] / name
        if target.exists():
            return target
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with gzip.open(source, "rb") as src, atomic_path(target) as tmp, open(tmp, "wb") as f:
                shutil.copyfileobj(src, f, 1 << 20)
            return target
        except (gzip.BadGzipFile, EOFError, zlib.error):
            raise InputError(source, "is not a complete gzip file", "copy the bundle again (the file was cut short)") from None
        except (OSError, InputError):
            continue  # this folder may not be written: try the next
    raise InputError(bundle, "no folder could be written to unpack the particle metadata into",
                     "make the bundle's folder, or the temporary folder, writable")


def file_digest(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


CHUNK_ROWS = 100_000  # rows of a large .star parsed at a time: parsing costs ~2.5 kB of memory per row


def load_metadata(path: Path, rows: np.ndarray | None, particle_block: str | None = None, chunk_rows: int = CHUNK_ROWS):
    """The run's particles (metadata only) from an unpacked bundle file: the rows ``rows`` of it
    (None: all, in order). A .star of more than ``chunk_rows`` rows whose particle block comes last
    (as bundles write it) is parsed ``chunk_rows`` at a time, so that memory stays bounded."""
    from ..particles import load_particles

    particles = None
    if path.suffix == ".star" and particle_block:
        particles = _load_star_in_chunks(path, particle_block, chunk_rows)
    if particles is None:
        particles = load_particles(path, images=False)
    if rows is None:
        return particles
    if len(rows) and (rows.min() < 0 or rows.max() >= len(particles)):
        raise InputError(path, f"the run's rows go up to {rows.max()} but the file has {len(particles)} particles",
                         "copy the bundle again: its files do not belong together")
    return particles if np.array_equal(rows, np.arange(len(particles))) else particles.subset(rows)


def _load_star_in_chunks(path: Path, block: str, chunk_rows: int):
    """The particles of a .star whose block ``block`` comes last, read by ``load_particles`` on files
    of the header and ``chunk_rows`` rows each; None if the file is not laid out so."""
    import warnings

    from ..particles import Origin, ParticleSet

    pieces, seen = [], set()
    with open(path, encoding="utf-8") as f:
        header, first = _header_of_last_block(f, block)
        if first is None:
            return None
        chunk = [first]
        with tempfile.TemporaryDirectory(prefix="cryonb-bundle-") as folder:
            for line in f:
                if line.strip() and not line.lstrip().startswith("#"):
                    chunk.append(line)
                if len(chunk) == chunk_rows:
                    pieces.append(_read_chunk(Path(folder), header, chunk, seen))
                    chunk = []
            if chunk:
                pieces.append(_read_chunk(Path(folder), header, chunk, seen))
    for message in seen:
        warnings.warn(message, stacklevel=3)
    join = lambda name: None if getattr(pieces[0], name) is None else np.concatenate([getattr(p, name) for p in pieces])  # noqa: E731
    return ParticleSet(rotations=join("rotations"), shifts=join("shifts"), ctf=join("ctf"), apix=pieces[0].apix,
                       source=Origin(path, "star"))


def _header_of_last_block(f, block: str) -> tuple[list[str], str | None]:
    """The lines up to the columns of ``data_<block>``'s loop, and its first row (None if none)."""
    header, in_block, in_loop = [], False, False
    for line in f:
        text = line.strip()
        if in_loop and text and not text.startswith(("_", "#")):
            return header, line
        header.append(line)
        if text.startswith("data_"):
            in_block, in_loop = text == f"data_{block}", False
        elif in_block and text == "loop_":
            in_loop = True
    return header, None


def _read_chunk(folder: Path, header: list[str], lines: list[str], seen: set):
    import warnings

    from ..particles import load_particles

    piece = folder / "chunk.star"
    piece.write_text("".join(header) + "".join(lines), encoding="utf-8")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        particles = load_particles(piece, images=False)
    seen.update(str(w.message).replace(str(piece), "") for w in caught)
    return particles


__all__ = ["COLUMN_CHOICES", "file_digest", "gzip_file", "load_metadata", "unpacked", "write_metadata"]
