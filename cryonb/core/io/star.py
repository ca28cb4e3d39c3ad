"""RELION STAR particle files (3.0, 3.1, 5.0): poses, shifts, CTF and image locations.

RELION 3.1+ keeps per-group optics (voltage, Cs, pixel size) in a ``data_optics`` table
before or after ``data_particles``; :func:`read_star` merges it into each particle row.
RELION 3.0 files have a single table under any block name (``data_``, ``data_images``…).
The raw blocks are kept, so a subset can be written back with every original column.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import starfile
from starfile.writer import StarWriter

from ..errors import InputError
from ..rotations import relion_to_matrix
from ._common import ctf_table, reading, require_finite
from .atomic import atomic_path
from .sources import resolve_stack_paths

_FIX = "pass a RELION particle .star file (a loop with _rlnImageName or _rlnDefocusU per particle)"
_PARTICLE_COLUMNS = ("rlnImageName", "rlnDefocusU", "rlnAngleRot", "rlnCoordinateX")
_CTF_COLUMNS = {
    "defocus_u": "rlnDefocusU",
    "defocus_v": "rlnDefocusV",
    "defocus_angle": "rlnDefocusAngle",
    "voltage": "rlnVoltage",
    "cs": "rlnSphericalAberration",
    "amplitude_contrast": "rlnAmplitudeContrast",
    "phase_shift": "rlnPhaseShift",
    "bfactor": "rlnCtfBfactor",
}


@dataclass
class StarFile:
    """A particle .star file, parsed: per-particle arrays plus the raw blocks for write-back."""

    path: Path
    blocks: dict[str, pd.DataFrame | dict]  # as read, in file order
    particle_block: str
    optics_block: str | None
    version: str  # "3.0", "3.1" or "5.0"
    table: pd.DataFrame  # particle rows with their optics group's columns merged in
    rotations: np.ndarray | None  # (N, 3, 3) float32
    shifts: np.ndarray | None  # (N, 2) float32, pixels
    ctf: np.ndarray | None  # (N, 8) float32, CTF_COLUMNS
    pixel_sizes: np.ndarray | None  # (N,) Å per particle (optics groups may differ)
    image_paths: list[Path] | None  # per particle, resolved against datadir
    image_rows: np.ndarray | None  # per particle, 0-based row in its stack
    tilt_series_particles: int | None = None  # per-tilt file (see read_star): the particles its rows belong to
    image_indexed: np.ndarray | None = None  # per particle, whether its image name has an index@ (else: the whole file)
    datadir: Path | None = None  # the folder the image names were resolved against
    datadir_found: str | None = None  # how it was found (see read_star), or "not found"
    version_line: str | None = None  # the file's "# version NNNNN" line, written back with subsets

    def __len__(self) -> int:
        return len(self.table)

    @property
    def apix(self) -> float | None:
        """The pixel size shared by all particles (the most common one if groups differ)."""
        if self.pixel_sizes is None or len(self.pixel_sizes) == 0:
            return None
        values, counts = np.unique(self.pixel_sizes, return_counts=True)
        if len(values) > 1:
            warnings.warn(f"{self.path}: optics groups have different pixel sizes {values.tolist()} Å; using {values[counts.argmax()]}", stacklevel=2)
        return float(values[counts.argmax()])

    @property
    def box_size(self) -> int | None:
        """Image size from the optics table (rlnImageSize), if the file says."""
        if "rlnImageSize" not in self.table or len(self.table) == 0:
            return None
        return int(self.table["rlnImageSize"].iloc[0])


_TEXT_FIX = "pass the RELION .star text file itself"
# Leading bytes of files that are sometimes passed where a .star is expected.
_MAGIC = (
    (b"\x93NUMPY", "a numpy .npy array (a cryoSPARC .cs file?)", "pass a .cs file with the .cs suffix"),
    (b"\x1f\x8b", "gzip-compressed data", "decompress it first (gunzip)"),
    (b"PK\x03\x04", "a zip archive", "unzip it first"),
    (b"\x89HDF", "an HDF5 file", _TEXT_FIX),
    (b"\x89PNG", "a PNG image", _TEXT_FIX),
    (b"%PDF", "a PDF document", _TEXT_FIX),
)


def _version_line(text: str) -> str | None:
    """The ``# version NNNNN`` line RELION writes at the top of its files, if any."""
    match = re.search(r"^[ \t]*#[ \t]*version[ \t]+\d+[ \t]*$", text[:65536], flags=re.MULTILINE)
    return match.group(0).strip() if match else None


def _version(text: str, blocks) -> str:
    line = _version_line(text)
    if line and int(line.split()[-1]) >= 50000:
        return "5.0"
    return "3.1" if "optics" in blocks else "3.0"


def _binary_kind(path, data: bytes) -> None:
    """Refuse files that are not text: empty, git-LFS / git-annex pointers, known binary formats."""
    if not data:
        raise InputError(path, "the file is empty (0 bytes)", "copy or export it again")
    if data.startswith(b"version https://git-lfs"):
        raise InputError(path, "this is a git-LFS pointer, not the file itself (its content was never downloaded)", "run `git lfs pull` in the repository it came from")
    if b"/annex/objects/" in data[:1024] and len(data) < 1024:
        raise InputError(path, "this is a git-annex pointer, not the file itself (its content was never downloaded)", "run `git annex get` on it")
    for magic, what, fix in _MAGIC:
        if data.startswith(magic):
            raise InputError(path, f"this is {what}, not a STAR text file", fix)
    if data[0] == 0x80 and len(data) > 1 and 2 <= data[1] <= 5:
        raise InputError(path, "this is a Python pickle, not a STAR text file", "pass pickles as --poses / --ctf, or the .star itself")
    if len(data) >= 212 and data[208:212] == b"MAP ":
        raise InputError(path, "this is an MRC file, not a STAR text file", "pass the .star that names the images, or the stack itself as .mrcs")
    head = data[:65536]
    controls = sum(head.count(bytes([c])) for c in range(32) if c not in (9, 10, 12, 13))
    if b"\0" in head or controls > 0.01 * len(head):
        raise InputError(path, "the file holds binary data, not STAR text (NUL or control bytes near the start)", _TEXT_FIX)


def _decode(path, data: bytes) -> str:
    """UTF-8 text; comment lines in another encoding are read as Latin-1, anything else is refused."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    lines = []
    offset = 0
    for number, raw in enumerate(data.splitlines(keepends=True), start=1):
        try:
            lines.append(raw.decode("utf-8-sig" if number == 1 else "utf-8"))
        except UnicodeDecodeError as e:
            if raw.lstrip().startswith(b"#"):
                lines.append(raw.decode("latin-1"))  # a comment: its bytes do not matter
            else:
                at = offset + e.start
                raise InputError(
                    path,
                    f"byte {at} (line {number}) is 0x{data[at]:02x}, which is not UTF-8 text: {raw.decode('utf-8', 'replace').strip()[:80]!r}",
                    "save the file as UTF-8 (or plain ASCII), or fix that line",
                ) from None
        offset += len(raw)
    return "".join(lines)


def _read_text(path: Path) -> str:
    with open(path, "rb") as f:
        data = f.read()
    _binary_kind(path, data)
    return _decode(path, data)


def _parse(path: Path, text: str) -> dict:
    """STAR blocks of ``text`` (starfile reads files only: it gets a private UTF-8 copy).

    starfile reads lines through Python's ``linecache``, keyed by file name and kept after a
    failed parse: re-reading a fixed file would return the old lines (and the old error),
    and a non-UTF-8 byte makes the whole file read as empty. Parsing a copy under a new name,
    then clearing the cache, avoids both.
    """
    import linecache
    import tempfile

    with tempfile.TemporaryDirectory(prefix="cryonb-star-") as folder:
        copy = Path(folder) / "copy.star"
        copy.write_text(text, encoding="utf-8")
        try:
            blocks = starfile.read(copy, always_dict=True)
        finally:
            linecache.clearcache()
    if not blocks:
        first = next((line.strip() for line in text.splitlines() if line.strip()), "")
        raise InputError(path, f"no data_ block, so not a STAR file (it begins {first[:60]!r})", _FIX)
    return blocks


def read_blocks(path: str | os.PathLike) -> dict:
    """All blocks of a STAR file: loops as DataFrames, key/value blocks as dicts.

    Empty files, git-LFS pointers, binary files and text that is not UTF-8 (outside comments,
    which may be Latin-1) raise an :class:`InputError` saying what the file is.
    """
    path = Path(path)
    with reading(path, "a STAR file", _FIX):
        return _parse(path, _read_text(path))


_TOMO_FIX = (
    "cryonb reads single-particle images (one 2D image per row); for subtomogram heterogeneity use "
    "tomoDRGN or cryoDRGN-ET, or pass a .star with one row per tilt image (index@stack, with that tilt's "
    "pose and CTF, as cryoDRGN-ET's and Warp's 2D particle-series exports)"
)
_TILT_SERIES_COLUMNS = {"rlnTomoNominalStageTiltAngle", "rlnTomoNominalTiltAxisAngle", "rlnTomoXTilt", "rlnTomoYTilt", "rlnMicrographPreExposure"}
_TOMOGRAM_COLUMNS = {"rlnTomoTiltSeriesStarFile", "rlnTomoTiltSeriesName", "rlnTomoSizeX", "rlnTomoName"}


def _columns(blocks) -> set[str]:
    names: set[str] = set()
    for block in blocks.values():
        names.update(block.columns if isinstance(block, pd.DataFrame) else block.keys())
    return names


def _values(blocks, column: str) -> list:
    found = []
    for block in blocks.values():
        if isinstance(block, pd.DataFrame) and column in block:
            found += block[column].tolist()
        elif isinstance(block, dict) and column in block:
            found.append(block[column])
    return [pd.to_numeric(v, errors="coerce") for v in found]


def identify(blocks) -> tuple[str, str] | None:
    """What a STAR file that is *not* single-particle images is, and what to do: (what, fix), else None.

    Tomography files are recognised by their RELION 4/5 and WarpTools columns: 3D subtomograms
    (``rlnImageDimensionality 3``, or ``rlnTomoSubTomosAre2DStacks 0``) and 2D tilt-series particles
    (``rlnTomoSubTomosAre2DStacks 1``, ``rlnTomoParticleName``, ``rlnTomoVisibleFrames``) hold, per row,
    a volume or a stack of tilt images: reading them as particles would take z-slice 0 or the first
    tilt only, so they are refused. Tilt-series and tomogram tables, angular sampling files, model
    files and micrograph tables are named for what they are.
    """
    columns = _columns(blocks)
    stacks_2d = _values(blocks, "rlnTomoSubTomosAre2DStacks")
    if 3 in _values(blocks, "rlnImageDimensionality") or 0 in stacks_2d:
        return (
            "this is a tomography file of 3D subtomograms (rlnImageDimensionality 3): each image is a volume, "
            "and cryonb reads single-particle 2D images (it would read z-slice 0 of each volume)",
            _TOMO_FIX,
        )
    if 1 in stacks_2d or {"rlnTomoParticleName", "rlnTomoVisibleFrames"} & columns:
        return (
            "this is a RELION 5 / WarpTools tomography tilt-series particle file: each row is one particle whose "
            "image is a stack of its tilt images, and cryonb reads single-particle stacks (it would read the "
            "first tilt of each particle only)",
            _TOMO_FIX,
        )
    if _TILT_SERIES_COLUMNS & columns and "rlnImageName" not in columns:
        return ("this is a tomography tilt-series table (one row per tilt image of a tilt series), not particles", _FIX)
    if _TOMOGRAM_COLUMNS & columns and "rlnImageName" not in columns:
        if {"rlnCoordinateX", "rlnCenteredCoordinateXAngst"} & columns:
            return ("this is a table of particle coordinates in tomograms (picks), without particle images", _FIX)
        return ("this is a tomogram table (one row per tomogram, as tomograms.star), not particles", _FIX)
    if any(name.startswith("sampling") for name in blocks) or "rlnHealpixOrder" in columns:
        return ("this is a RELION angular sampling file (_sampling.star), not particles", _FIX)
    if "rlnReferenceImage" in columns or any(name.startswith("model_general") for name in blocks):
        return ("this is a RELION model file (_model.star: classes and their statistics), not particles", _FIX)
    if "fsc" in blocks or "rlnFinalResolution" in columns:
        return ("this is a RELION post-processing result (resolution and FSC curves), not particles", _FIX)
    if "rlnMicrographName" in columns and not {"rlnImageName", "rlnCoordinateX"} & columns:
        return ("this is a micrograph table (one row per micrograph, e.g. motion correction or CTF estimation output), not particles", _FIX)
    return None


def _tilt_groups(table: pd.DataFrame) -> int | None:
    """Particles in a RELION 3.0-style per-tilt file (cryoDRGN-ET, Warp): one row per tilt image.

    Such a file groups the tilt images of a particle by ``_rlnGroupName``, each from a different
    micrograph (tilt). Returns the number of particles, or None for a single-particle file.
    """
    if not {"rlnGroupName", "rlnMicrographName", "rlnImageName"} <= set(table) or len(table) < 2:
        return None
    groups = table.groupby("rlnGroupName", sort=False)["rlnMicrographName"]
    sizes, distinct = groups.size(), groups.nunique()
    if sizes.max() < 2 or (distinct != sizes).any() or table["rlnMicrographName"].nunique() == len(table):
        return None
    return len(sizes)


def _particle_block(path: Path, blocks) -> str:
    if isinstance(blocks.get("particles"), pd.DataFrame):
        return "particles"
    for name, block in blocks.items():
        if name != "optics" and isinstance(block, pd.DataFrame) and any(c in block for c in _PARTICLE_COLUMNS):
            return name
    found = ", ".join(f"data_{name}" for name in blocks) or "none"
    raise InputError(path, f"no particle table found (blocks: {found})", _FIX)


def _refuse_other_kinds(path: Path, blocks) -> None:
    kind = identify(blocks)
    if kind is not None:
        what, fix = kind
        found = ", ".join(f"data_{name}" for name in blocks)
        raise InputError(path, f"{what} (blocks: {found})", fix)


def _numeric(path, table: pd.DataFrame, column: str) -> np.ndarray:
    values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return require_finite(path, f"column _{column}", values, f"fix or remove the bad rows of _{column}")


def _merge_optics(path, particles: pd.DataFrame, optics: pd.DataFrame) -> pd.DataFrame:
    """Copy each optics group's columns (those the particle table lacks) onto its particles."""
    if "rlnOpticsGroup" not in optics:
        raise InputError(path, "the optics table has no _rlnOpticsGroup column", _FIX)
    groups = _numeric(path, optics, "rlnOpticsGroup").astype(np.int64)
    if "rlnOpticsGroup" in particles:
        of_particle = _numeric(path, particles, "rlnOpticsGroup").astype(np.int64)
    elif len(groups) == 1:
        of_particle = np.full(len(particles), groups[0])
    else:
        raise InputError(path, f"{len(groups)} optics groups but particles have no _rlnOpticsGroup", _FIX)
    unknown = np.setdiff1d(of_particle, groups)
    if len(unknown):
        raise InputError(path, f"particles refer to optics groups {unknown.tolist()} missing from the optics table", _FIX)
    row_of_group = pd.Series(np.arange(len(groups)), index=groups)
    rows = row_of_group.loc[of_particle].to_numpy()
    particles = particles.reset_index(drop=True)
    for column in OPTICS_OWN:  # the optics group's value is the one RELION (and cryoDRGN) use
        if column in particles and column in optics:
            ours = _numeric(path, optics, column)[rows]
            theirs = pd.to_numeric(particles[column], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            differ = ~np.isclose(ours, theirs, rtol=1e-6, equal_nan=False)
            if differ.any():
                warnings.warn(f"{path}: _{column} of {int(differ.sum())} particle(s) differs from their optics group's "
                              f"(e.g. {theirs[differ][0]:g} vs {ours[differ][0]:g}); using the optics group's, as RELION does",
                              stacklevel=4)
            particles = particles.drop(columns=column)
    extra = [c for c in optics.columns if c not in particles]
    merged = optics[extra].iloc[rows].reset_index(drop=True)
    return pd.concat([particles, merged], axis=1)


# Per-group microscope and image settings: an optics table's value beats a particle row's.
OPTICS_OWN = ("rlnVoltage", "rlnSphericalAberration", "rlnAmplitudeContrast", "rlnImagePixelSize", "rlnImageSize")


def _pixel_sizes(path, table: pd.DataFrame, apix: float | None) -> np.ndarray | None:
    if apix is not None:
        return np.full(len(table), float(apix))
    if "rlnImagePixelSize" in table:
        return _numeric(path, table, "rlnImagePixelSize")
    if "rlnDetectorPixelSize" in table and "rlnMagnification" in table:
        return _numeric(path, table, "rlnDetectorPixelSize") * 1e4 / _numeric(path, table, "rlnMagnification")
    return None


def _shifts(path, table: pd.DataFrame, pixel_sizes: np.ndarray | None) -> np.ndarray | None:
    if {"rlnOriginXAngst", "rlnOriginYAngst"} <= set(table):
        if pixel_sizes is None:
            raise InputError(path, "shifts are in Å but the pixel size is unknown",
                             "pass the pixel size: apix=... in Python, --apix on the command line")
        angst = np.stack([_numeric(path, table, "rlnOriginXAngst"), _numeric(path, table, "rlnOriginYAngst")], 1)
        return (angst / pixel_sizes[:, None]).astype(np.float32)
    if {"rlnOriginX", "rlnOriginY"} <= set(table):
        return np.stack([_numeric(path, table, "rlnOriginX"), _numeric(path, table, "rlnOriginY")], 1).astype(np.float32)
    return None


def _rotations(path, table: pd.DataFrame) -> np.ndarray | None:
    if not {"rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"} <= set(table):
        return None
    angles = [_numeric(path, table, c) for c in ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")]
    return relion_to_matrix(*angles).astype(np.float32)


_RECORDED = re.compile(r"^#[ \t]*cryonb datadir:[ \t]*(.+?)[ \t]*$", re.MULTILINE)


def _recorded_datadir(path: Path) -> Path | None:
    """The data folder :func:`write_star_subset` recorded in a comment line, if any."""
    with open(path, encoding="utf-8", errors="replace") as f:
        match = _RECORDED.search(f.read(4096))
    return Path(match.group(1)) if match else None


def _locate_stacks(path: Path, files: list[str], datadir: Path | None) -> tuple[list[Path], Path, str]:
    """Per particle, its stack file; the folder the names were resolved against; how it was found.

    RELION writes image names relative to its project folder, where it runs, and keeps each
    job's files two folders down (``Select/job020/particles.star``). Without ``datadir``, the
    folders tried are the .star's own, the one recorded in it by :func:`write_star_subset`,
    then each folder above the .star; the first that holds every stack is used.
    """
    if datadir is not None:
        return resolve_stack_paths(files, datadir), datadir, "datadir="
    unique = list(dict.fromkeys(files))
    here = path.parent
    candidates = [(here, "the .star's folder", True)]
    recorded = _recorded_datadir(path)
    if recorded is not None:
        candidates.append((recorded, "the data folder recorded in the .star", True))
    for up, folder in enumerate(here.resolve().parents, 1):
        candidates.append((folder, f"{up} folder{'s' if up > 1 else ''} above the .star, as in a RELION project", False))
    for folder, how, by_base_name in candidates:
        if by_base_name:  # a name as given, or its base name there (as cryoDRGN)
            found = resolve_stack_paths(unique, folder)
        elif (folder / unique[0]).exists():
            found = [folder / name for name in unique]
        else:
            continue
        if all(p.exists() for p in found):
            of_name = dict(zip(unique, found))
            return [of_name[f] for f in files], folder, how
    return resolve_stack_paths(files, here), here, "not found"


def _image_locations(path, table: pd.DataFrame, datadir: Path | None):
    if "rlnImageName" not in table:
        return None, None, None, None, None
    names = table["rlnImageName"].astype(str)
    parts = names.str.partition("@")
    has_index = parts[1] == "@"
    files = parts[2].where(has_index, parts[0])
    rows = pd.to_numeric(parts[0].where(has_index, "1"), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(rows) | (rows < 1) | (rows != np.round(rows)) | (files.str.len() == 0).to_numpy()
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise InputError(path, f"_rlnImageName {names.iloc[first]!r} (row {first + 1}) is not of the form index@stack", _FIX)
    paths, folder, how = _locate_stacks(path, files.tolist(), datadir)
    return paths, rows.astype(np.int64) - 1, has_index.to_numpy(dtype=bool), folder, how


def read_star(
    path: str | os.PathLike,
    *,
    datadir: str | os.PathLike | None = None,
    apix: float | None = None,
    ctf_defaults: Mapping[str, float] | None = None,
) -> StarFile:
    """Read a RELION particle .star file.

    ``datadir`` is where image stacks are looked for. Without it, image names are resolved
    against the .star's folder, the data folder recorded in the file by
    :func:`write_star_subset`, or the nearest folder above the .star that holds the stacks
    (RELION's names are relative to its project folder); ``datadir_found`` says which.
    ``apix`` (Å) overrides the file's pixel size. ``ctf_defaults`` fills CTF parameters
    missing from the file, keyed by :data:`CTF_COLUMNS` names (e.g. ``{"amplitude_contrast":
    0.1}``, as cryoDRGN's ``-w``). Missing poses or CTF give None, not an error.

    Tomography files are refused (:func:`identify`): a RELION 5 / WarpTools tilt-series particle
    file holds a stack of tilts per row and a 3D subtomogram file a volume per row; cryonb would
    read the first tilt or z-slice 0. A RELION 3.0-style per-tilt file (cryoDRGN-ET's and Warp's
    2D exports, one row per tilt image, ``_rlnGroupName`` naming the particle) is loaded, with a
    warning: each row is a genuine 2D image with its own pose and CTF (dose in
    ``_rlnCtfBfactor``), so back-projection is right, but each tilt image is a separate particle
    (a latent space has one point per tilt image, not per particle).
    """
    path = Path(path)
    with reading(path, "a RELION STAR file", _FIX):
        text = _read_text(path)
        blocks = _parse(path, text)
        _refuse_other_kinds(path, blocks)
        name = _particle_block(path, blocks)
        optics = blocks.get("optics") if name != "optics" else None
        optics = optics if isinstance(optics, pd.DataFrame) else None
        table = blocks[name].reset_index(drop=True)
        if optics is not None:
            table = _merge_optics(path, table, optics)
        pixel_sizes = _pixel_sizes(path, table, apix)
        defaults = dict(ctf_defaults or {})
        ctf_values = {k: _numeric(path, table, c) if c in table else defaults.get(k) for k, c in _CTF_COLUMNS.items()}
        image_paths, image_rows, image_indexed, found_in, found = _image_locations(path, table, Path(datadir) if datadir else None)
        tilt_particles = _tilt_groups(table)
        if tilt_particles is not None:
            warnings.warn(
                f"{path}: a tomography tilt-series file (RELION 3.0 style): each of its {len(table)} rows is one tilt "
                f"image of {tilt_particles} particles (grouped by _rlnGroupName) and is read as its own particle, with "
                "its own pose and CTF. Back-projection is right; a latent space has one point per tilt image, not per particle",
                stacklevel=2,
            )
        return StarFile(
            path=path,
            blocks=blocks,
            particle_block=name,
            optics_block="optics" if optics is not None else None,
            version=_version(text, blocks),
            table=table,
            rotations=_rotations(path, table),
            shifts=_shifts(path, table, pixel_sizes),
            ctf=ctf_table(path, len(table), ctf_values, f"fix the CTF columns of {path.name}"),
            pixel_sizes=pixel_sizes,
            image_paths=image_paths,
            image_rows=image_rows,
            tilt_series_particles=tilt_particles,
            image_indexed=image_indexed,
            datadir=found_in,
            datadir_found=found,
            version_line=_version_line(text),
        )


def write_star_subset(src: StarFile | str | os.PathLike, indices, out: str | os.PathLike) -> Path:
    """Write the rows ``indices`` (in that order) of a .star file to ``out``, atomically.

    Every other block (optics included), every column, the block names and order and the
    ``# version`` line (RELION 5's ``50001``) are kept. Image names are copied verbatim, so RELION run from its project folder finds the
    images; the folder they resolved against is recorded in a comment line (``# cryonb
    datadir: …``, which RELION skips), so that :func:`read_star` finds them from wherever
    the subset is saved.
    """
    star = src if isinstance(src, StarFile) else read_star(src)
    indices = np.asarray(indices, dtype=np.int64)
    if indices.size and (indices.min() < 0 or indices.max() >= len(star)):
        raise InputError(star.path, f"indices out of range for {len(star)} particles", "pass 0-based row numbers of this file")
    blocks = dict(star.blocks)
    blocks[star.particle_block] = blocks[star.particle_block].iloc[indices].reset_index(drop=True)
    found = star.image_paths is not None and star.datadir_found not in (None, "not found")
    header = f"# cryonb datadir: {star.datadir.resolve()}\n" if found else ""
    if star.version_line:
        header = f"{star.version_line}\n{header}"
    return write_blocks(blocks, out, header=header)


def write_blocks(
    blocks: Mapping[str, pd.DataFrame | dict], out: str | os.PathLike, *, single_precision: bool = False, header: str = ""
) -> Path:
    """Write STAR blocks atomically, each float in its shortest exact decimal form.

    ``single_precision`` writes float32 data as such (0.1, not 0.100000001490116).
    ``header``: comment lines (each starting with ``#``) written first.
    """
    if single_precision:
        float_text = lambda x: str(np.float32(x))  # noqa: E731
    else:
        float_text = lambda x: repr(float(x))  # noqa: E731
    out = Path(out)
    text = StarWriter(dict(blocks), float_format=float_text).to_string()
    with atomic_path(out) as tmp:
        tmp.write_text(header + text, encoding="utf-8")
    return out
