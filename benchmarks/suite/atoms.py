"""Atomic and pseudo-atomic models: (M, 3) coordinates in Å and (M,) weights.

- :func:`adk_trajectory`: adenylate kinase, closed → open (the DIMS trajectory ``adk_dims.dcd``
  of the PyPI package ``mdanalysistests``, 98 frames of 3341 atoms), read by the small numpy
  DCD and PSF readers below (MDAnalysis itself is not needed). Weights are atomic numbers Z
  (the electron count of the neutral atom, a stand-in for the scattering power).
- :func:`map_pseudo_atoms`: Gaussian pseudo-atoms from a real density map, thresholded so the
  enclosed volume holds the given mass at 1.21 Å³/Da, then reduced on a coarse grid (one atom
  per occupied cell at its density-weighted centroid, weight = the cell's density); deterministic.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

#: Atomic numbers by element mass (Da), for PSF files, which give masses and not elements.
_ELEMENTS = {1.008: 1, 12.011: 6, 14.007: 7, 15.999: 8, 30.974: 15, 32.06: 16, 22.99: 11, 24.305: 12, 35.45: 17, 39.098: 19, 40.078: 20, 65.38: 30}
#: Protein volume per dalton (Å³/Da), for choosing a map's threshold from its mass.
VOLUME_PER_DALTON = 1.21


def mdanalysistests_file(name: str) -> Path | None:
    """Path of a data file of the ``mdanalysistests`` package, without importing it; None if absent."""
    spec = importlib.util.find_spec("MDAnalysisTests")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / name
    return path if path.is_file() else None


def _records(data: bytes, start: int, endian: str):
    """Yield (payload offset, payload length) of Fortran unformatted records from ``start``."""
    pos = start
    while pos + 4 <= len(data):
        (size,) = np.frombuffer(data, endian + "i4", 1, pos)
        if pos + 8 + size > len(data):
            return
        (end,) = np.frombuffer(data, endian + "i4", 1, pos + 4 + size)
        if end != size:
            raise ValueError(f"DCD record at byte {pos} is corrupt ({size} != {end})")
        yield pos + 4, int(size)
        pos += 8 + size


def read_dcd(path: str | os.PathLike) -> np.ndarray:
    """Coordinates (F, N, 3) float32 in Å of a CHARMM/NAMD DCD trajectory.

    Layout: an 84-byte header record ("CORD", counts, and at word 11 a flag for a unit-cell
    record per frame), a title record, a record holding N, then per frame an optional 48-byte
    unit cell and three records of N float32: X, Y and Z. The frame count is read off the file
    (headers often overstate it).
    """
    data = Path(path).read_bytes()
    endian = "<" if np.frombuffer(data, "<i4", 1)[0] == 84 else ">"
    records = _records(data, 0, endian)
    offset, size = next(records)
    if size != 84 or data[offset : offset + 4] != b"CORD":
        raise ValueError(f"{path} is not a DCD file")
    icntrl = np.frombuffer(data, endian + "i4", 20, offset + 4)
    has_cell = bool(icntrl[10]) and icntrl[19] != 0  # CHARMM version != 0 means a CHARMM DCD
    next(records)  # title
    offset, _ = next(records)
    (natoms,) = np.frombuffer(data, endian + "i4", 1, offset)
    frames, current = [], []
    for offset, size in records:
        if size == 48 and has_cell and not current:
            continue
        if size != 4 * natoms:
            raise ValueError(f"{path}: record of {size} bytes where {4 * natoms} were expected")
        current.append(np.frombuffer(data, endian + "f4", natoms, offset))
        if len(current) == 3:
            frames.append(np.stack(current, 1))
            current = []
    return np.asarray(frames, dtype=np.float32)


def read_psf_atomic_numbers(path: str | os.PathLike) -> np.ndarray:
    """Atomic numbers (N,) of the atoms of a CHARMM PSF file, from their masses (column 8)."""
    lines = Path(path).read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if "!NATOM" in line)
    n = int(lines[start].split()[0])
    masses = np.array([float(line.split()[7]) for line in lines[start + 1 : start + 1 + n]])
    table = np.array(sorted(_ELEMENTS))
    nearest = np.abs(masses[:, None] - table[None]).argmin(1)
    if np.any(np.abs(masses - table[nearest]) > 0.6):
        raise ValueError(f"{path}: unknown atomic masses {sorted(set(masses[np.abs(masses - table[nearest]) > 0.6]))}")
    return np.array([_ELEMENTS[m] for m in table[nearest]], dtype=np.float32)


def kabsch_align(frames: np.ndarray, weights: np.ndarray, reference: int = 0) -> np.ndarray:
    """Frames (F, N, 3) centred on their weighted centroid and rotated onto frame ``reference``."""
    w = weights / weights.sum()
    centred = frames - np.einsum("n,fnd->fd", w, frames)[:, None]
    ref = centred[reference]
    out = np.empty_like(centred)
    for f, x in enumerate(centred):
        u, _, vt = np.linalg.svd((x * w[:, None]).T @ ref)
        d = np.sign(np.linalg.det(u @ vt))
        out[f] = x @ (u @ np.diag([1.0, 1.0, d]) @ vt)
    return out


def rmsd(a: np.ndarray, b: np.ndarray) -> float:
    """Root-mean-square deviation (Å) of two aligned (N, 3) coordinate sets."""
    return float(np.sqrt(((a - b) ** 2).sum(1).mean()))


def adk_trajectory() -> tuple[np.ndarray, np.ndarray]:
    """(frames (98, 3341, 3) float32 Å, aligned and centred; weights (3341,) = Z) of AdK closed → open.

    Raises FileNotFoundError without the ``mdanalysistests`` package (``pip install mdanalysistests``).
    """
    psf, dcd = mdanalysistests_file("adk.psf"), mdanalysistests_file("adk_dims.dcd")
    if psf is None or dcd is None:
        raise FileNotFoundError("adk.psf / adk_dims.dcd not found: pip install mdanalysistests (see the bench extra)")
    z = read_psf_atomic_numbers(psf)
    frames = read_dcd(dcd).astype(np.float64)
    return kabsch_align(frames, z).astype(np.float32), z


def map_pseudo_atoms(
    path: str | os.PathLike,
    mass_kda: float,
    *,
    apix: float | None = None,
    cell: int = 2,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Pseudo-atoms of a map: (coords (M, 3) Å centred on the centroid, weights (M,), σ in Å).

    Voxels above the threshold whose enclosed volume is ``mass_kda`` × 1.21 Å³/Da (their largest
    connected piece) are grouped in cubes of ``cell`` voxels; each occupied cube gives one atom at
    the density-weighted centroid of its voxels, weighing their density (normalised to a mean of
    1 per Å³ of enclosed volume, so maps of different scales are comparable), with σ = half the
    cube's side (neighbours merge smoothly: no lattice texture).
    ``apix`` overrides the header's pixel size (needed for maps whose header has 0).
    """
    from scipy import ndimage

    from cryonb.core.io.mrc import read_map

    volume, header_apix = read_map(path)
    apix = float(apix or header_apix or 0)
    if apix <= 0:
        raise ValueError(f"{path}: the pixel size is unknown; pass apix=")
    n_inside = int(round(mass_kda * 1e3 * VOLUME_PER_DALTON / apix**3))
    values = np.sort(volume.ravel())[::-1]
    threshold = values[min(n_inside, values.size - 1)]
    labels, _ = ndimage.label(volume > threshold)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    z, y, x = np.nonzero(labels == sizes.argmax())  # the largest connected piece: no noise specks
    density = volume[z, y, x].astype(np.float64)
    density *= apix**3 / density.mean()
    c = (np.array(volume.shape) - 1) / 2.0
    xyz = np.stack([x - c[2], y - c[1], z - c[0]], 1) * apix
    n = max(volume.shape) // cell + 1
    _, group = np.unique(x // cell + n * (y // cell + n * (z // cell)), return_inverse=True)
    weights = np.bincount(group, density)
    coords = np.stack([np.bincount(group, density * xyz[:, k]) for k in range(3)], 1) / weights[:, None]
    coords -= (weights[:, None] * coords).sum(0) / weights.sum()
    return coords.astype(np.float32), weights.astype(np.float32), 0.5 * cell * apix


def radius(coords: np.ndarray) -> float:
    """Largest distance (Å) of an atom from the origin."""
    return float(np.sqrt((np.asarray(coords, np.float64) ** 2).sum(-1)).max())
