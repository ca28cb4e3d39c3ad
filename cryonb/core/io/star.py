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


def _version(path: Path, blocks) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        head = f.read(65536)
    match = re.search(r"#\s*version\s+(\d+)", head)
    if match and int(match.group(1)) >= 50000:
        return "5.0"
    return "3.1" if "optics" in blocks else "3.0"


def _particle_block(path: Path, blocks) -> str:
    if isinstance(blocks.get("particles"), pd.DataFrame):
        return "particles"
    for name, block in blocks.items():
        if name != "optics" and isinstance(block, pd.DataFrame) and any(c in block for c in _PARTICLE_COLUMNS):
            return name
    found = ", ".join(f"data_{name}" for name in blocks) or "none"
    raise InputError(path, f"no particle table found (blocks: {found})", _FIX)


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
    extra = [c for c in optics.columns if c not in particles]
    merged = optics[extra].iloc[rows].reset_index(drop=True)
    return pd.concat([particles.reset_index(drop=True), merged], axis=1)


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
            raise InputError(path, "shifts are in Å but the pixel size is unknown", "pass apix=")
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


def _image_locations(path, table: pd.DataFrame, datadir: Path):
    if "rlnImageName" not in table:
        return None, None
    names = table["rlnImageName"].astype(str)
    parts = names.str.partition("@")
    has_index = parts[1] == "@"
    files = parts[2].where(has_index, parts[0])
    rows = pd.to_numeric(parts[0].where(has_index, "1"), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(rows) | (rows < 1) | (rows != np.round(rows)) | (files.str.len() == 0).to_numpy()
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise InputError(path, f"_rlnImageName {names.iloc[first]!r} (row {first + 1}) is not of the form index@stack", _FIX)
    return resolve_stack_paths(files.tolist(), datadir), rows.astype(np.int64) - 1


def read_star(
    path: str | os.PathLike,
    *,
    datadir: str | os.PathLike | None = None,
    apix: float | None = None,
    ctf_defaults: Mapping[str, float] | None = None,
) -> StarFile:
    """Read a RELION particle .star file.

    ``datadir`` is where image stacks are looked for (default: the .star's folder).
    ``apix`` (Å) overrides the file's pixel size. ``ctf_defaults`` fills CTF parameters
    missing from the file, keyed by :data:`CTF_COLUMNS` names (e.g. ``{"amplitude_contrast":
    0.1}``, as cryoDRGN's ``-w``). Missing poses or CTF give None, not an error.
    """
    path = Path(path)
    with reading(path, "a RELION STAR file", _FIX):
        blocks = starfile.read(path, always_dict=True)
        name = _particle_block(path, blocks)
        optics = blocks.get("optics") if name != "optics" else None
        optics = optics if isinstance(optics, pd.DataFrame) else None
        table = blocks[name].reset_index(drop=True)
        if optics is not None:
            table = _merge_optics(path, table, optics)
        pixel_sizes = _pixel_sizes(path, table, apix)
        defaults = dict(ctf_defaults or {})
        ctf_values = {k: _numeric(path, table, c) if c in table else defaults.get(k) for k, c in _CTF_COLUMNS.items()}
        image_paths, image_rows = _image_locations(path, table, Path(datadir) if datadir else path.parent)
        return StarFile(
            path=path,
            blocks=blocks,
            particle_block=name,
            optics_block="optics" if optics is not None else None,
            version=_version(path, blocks),
            table=table,
            rotations=_rotations(path, table),
            shifts=_shifts(path, table, pixel_sizes),
            ctf=ctf_table(path, len(table), ctf_values, f"fix the CTF columns of {path.name}"),
            pixel_sizes=pixel_sizes,
            image_paths=image_paths,
            image_rows=image_rows,
        )


def write_star_subset(src: StarFile | str | os.PathLike, indices, out: str | os.PathLike) -> Path:
    """Write the rows ``indices`` (in that order) of a .star file to ``out``, atomically.

    Every other block (optics included), every column and the block names and order are
    kept; image names are copied verbatim, so read the result with the same ``datadir``.
    """
    star = src if isinstance(src, StarFile) else read_star(src)
    indices = np.asarray(indices, dtype=np.int64)
    if indices.size and (indices.min() < 0 or indices.max() >= len(star)):
        raise InputError(star.path, f"indices out of range for {len(star)} particles", "pass 0-based row numbers of this file")
    blocks = dict(star.blocks)
    blocks[star.particle_block] = blocks[star.particle_block].iloc[indices].reset_index(drop=True)
    return write_blocks(blocks, out)


def write_blocks(blocks: Mapping[str, pd.DataFrame | dict], out: str | os.PathLike, *, single_precision: bool = False) -> Path:
    """Write STAR blocks atomically, each float in its shortest exact decimal form.

    ``single_precision`` writes float32 data as such (0.1, not 0.100000001490116).
    """
    if single_precision:
        float_text = lambda x: str(np.float32(x))  # noqa: E731
    else:
        float_text = lambda x: repr(float(x))  # noqa: E731
    out = Path(out)
    with atomic_path(out) as tmp:
        starfile.write(dict(blocks), tmp, float_format=float_text)
    return out
