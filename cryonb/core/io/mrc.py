"""MRC/CCP4 maps and image stacks: tolerant of real-world headers, lazy for stacks, atomic writes.

Maps come back as float32 arrays indexed [z, y, x] whatever the file's axis order
(MAPC/MAPR/MAPS); stacks are memory-mapped so that nothing is read until indexed.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import mrcfile
import numpy as np

from ..errors import InputError
from ._common import reading, to_numpy
from .atomic import atomic_path
from .images import ArraySource, ImageSource

_FIX = "check that the file is a complete MRC/CCP4 file (re-export or re-download it)"
_MACHINE_STAMPS = {b"DD\x00\x00", b"DA\x00\x00", b"\x11\x11\x00\x00"}


@dataclass(frozen=True)
class MrcHeader:
    """What an MRC header says, with its departures from the MRC2014 standard."""

    path: Path
    data_shape: tuple[int, ...]  # as stored: (sections, rows, columns)
    voxel_size: tuple[float, float, float]  # Å along x, y, z
    axes: tuple[int, int, int]  # MAPC, MAPR, MAPS: the axis (1=x, 2=y, 3=z) of columns, rows, sections
    apix: float | None
    quirks: tuple[str, ...]

    @property
    def looks_like_stack(self) -> bool:
        """Square sections and a different depth: images, whatever the space group says."""
        return len(self.data_shape) == 2 or (self.data_shape[1] == self.data_shape[2] != self.data_shape[0])


def _open(path, mmap: bool):
    """Open permissively (real files lack the MAP id or machine stamp) but insist on data."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mrc = (mrcfile.mmap if mmap else mrcfile.open)(path, mode="r", permissive=True)
    if mrc.data is None:
        mrc.close()
        problems = "; ".join(dict.fromkeys(str(w.message) for w in caught)) or "no data block"
        raise InputError(path, f"the header is readable but the data are not ({problems})", _FIX)
    for w in caught:
        extra = re.fullmatch(r"MRC file is (\d+) bytes larger than expected", str(w.message))
        if extra:
            _more_data_than_header(path, mrc, int(extra.group(1)))
    return mrc


def _more_data_than_header(path, mrc, extra: int) -> None:
    """The file holds more bytes than its header describes: refuse if they are whole sections.

    Whole sections mean that NZ in the header is too small (an interrupted or hand-made
    stack): reading it would silently drop images, and only the user can tell which count is
    right. Other trailing bytes are ignored, with a warning.
    """
    data = mrc.data
    nz = 1 if data.ndim == 2 else data.shape[0]
    section = data.shape[-1] * data.shape[-2] * data.dtype.itemsize
    if section and extra % section == 0:
        mrc.close()
        more = extra // section
        raise InputError(
            path,
            f"the header says {nz} sections (images) but the file holds data for {nz + more}: NZ in the header is too "
            f"small, and {more} sections would be ignored",
            "correct NZ in the header (or re-export the file), or cut the file to the sections the header describes",
        )
    warnings.warn(f"{path}: {extra} bytes after the data block that the header describes are ignored (a truncated or wrongly sized header?)", stacklevel=3)


def _voxel_size(mrc) -> tuple[float, float, float]:
    vs = mrc.voxel_size
    return float(vs.x), float(vs.y), float(vs.z)


def _pixel_size(voxel_size, path, warn: bool) -> float | None:
    """Mean voxel size in Å, or None when the header leaves it unset (0) or invalid."""
    sizes = np.array(voxel_size)
    if not np.all(np.isfinite(sizes)) or np.all(sizes == 0) or np.any(sizes < 0):
        return None
    if warn and np.ptp(sizes) > 1e-3 * sizes.mean():
        warnings.warn(f"{path}: anisotropic voxels {tuple(round(float(v), 4) for v in sizes)} Å; using their mean", stacklevel=3)
    return float(sizes.mean())


def _quirks(mrc) -> list[str]:
    """Human-readable list of the header's non-standard or suspicious fields."""
    h = mrc.header
    found = []
    if bytes(h.map) != b"MAP ":
        found.append("no 'MAP ' id string (read permissively)")
    if bytes(h.machst) not in _MACHINE_STAMPS:
        found.append(f"unrecognised machine stamp {bytes(h.machst)!r} (read permissively)")
    sizes = _voxel_size(mrc)
    if all(v == 0 for v in sizes):
        found.append("pixel size unset (0)")
    elif all(v == 1.0 for v in sizes):
        found.append("pixel size exactly 1.0 Å (often a placeholder; check it)")
    elif np.ptp(sizes) > 1e-3 * np.mean(sizes):
        found.append(f"anisotropic voxels {tuple(round(v, 4) for v in sizes)} Å (mean used)")
    start = (int(h.nxstart), int(h.nystart), int(h.nzstart))
    if any(start):
        found.append(f"NXSTART/NYSTART/NZSTART = {start} (ignored for the data)")
    origin = tuple(float(v) for v in (h.origin.x, h.origin.y, h.origin.z))
    if any(origin):
        found.append(f"origin {tuple(round(v, 4) for v in origin)} Å")
    axes = (int(h.mapc), int(h.mapr), int(h.maps))
    if axes != (1, 2, 3):
        found.append(f"permuted axes MAPC/MAPR/MAPS = {axes} (transposed to z, y, x)")
    if int(h.nsymbt):
        found.append(f"{int(h.nsymbt)}-byte extended header (space group {int(h.ispg)})")
    return found


def read_header(path: str | os.PathLike) -> MrcHeader:
    """Read only the header (and check that the data block is complete)."""
    with reading(path, "an MRC file", _FIX):
        with _open(path, mmap=True) as mrc:
            return MrcHeader(
                path=Path(path),
                data_shape=tuple(mrc.data.shape),
                voxel_size=_voxel_size(mrc),
                axes=(int(mrc.header.mapc), int(mrc.header.mapr), int(mrc.header.maps)),
                apix=_pixel_size(_voxel_size(mrc), path, warn=False),
                quirks=tuple(_quirks(mrc)),
            )


def _canonical_axes(path, data: np.ndarray, header) -> np.ndarray:
    """Transpose stored (sections, rows, columns) data to [z, y, x]."""
    labels = [int(header.maps), int(header.mapr), int(header.mapc)]
    if sorted(labels) != [1, 2, 3]:
        raise InputError(path, f"MAPS/MAPR/MAPC = {labels} is not an ordering of the x, y, z axes", _FIX)
    return data.transpose([labels.index(3), labels.index(2), labels.index(1)])


def read_map(path: str | os.PathLike) -> tuple[np.ndarray, float | None]:
    """Read a 3D map as float32 [z, y, x] and its pixel size in Å (None if the header has 0).

    Permuted axes are transposed to the canonical order, NXSTART and the origin are ignored,
    anisotropic voxels give their mean (with a warning). NaNs are an error.
    """
    with reading(path, "an MRC map", _FIX):
        with _open(path, mmap=False) as mrc:
            if mrc.data.ndim != 3:
                raise InputError(path, f"holds a {mrc.data.ndim}D array {mrc.data.shape}, not a volume", "pass a 3D map")
            if np.iscomplexobj(mrc.data):
                raise InputError(path, "holds complex (Fourier-space) data", "pass a real-space map")
            volume = np.ascontiguousarray(_canonical_axes(path, mrc.data, mrc.header), dtype=np.float32)
            apix = _pixel_size(_voxel_size(mrc), path, warn=True)
    bad = ~np.isfinite(volume)
    if bad.any():
        raise InputError(path, f"{int(bad.sum())} voxels are NaN or infinite", "replace them (e.g. with 0) before loading")
    return volume, apix


def write_map(path: str | os.PathLike, volume, apix: float | None) -> None:
    """Write a [z, y, x] volume as a standard MRC2014 map, atomically."""
    data = np.ascontiguousarray(to_numpy(volume))
    if data.ndim != 3:
        raise InputError(path, f"a map must be 3D, got shape {data.shape}", "pass a (D, D, D) volume")
    with atomic_path(path) as tmp:
        with mrcfile.new(tmp, overwrite=True) as mrc:
            mrc.set_data(data)
            mrc.set_volume()
            mrc.voxel_size = apix or 0.0


class MrcStack:
    """A memory-mapped image stack (N, D, D); nothing is read until it is indexed.

    A single 2D image counts as a stack of one, and a 3D ``.mrc`` is read as a stack
    whatever its space group says (many tools write stacks with ISPG 1).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        with reading(path, "an MRC image stack", _FIX):
            self._mrc = _open(path, mmap=True)
            data = self._mrc.data
            self.apix = _pixel_size(_voxel_size(self._mrc), path, warn=False)
        if data.ndim == 2:
            data = data[None]
        if data.ndim != 3 or data.shape[1] != data.shape[2] or np.iscomplexobj(data):
            self.close()
            raise InputError(path, f"images must be square and real, got data of shape {data.shape}", "pad or crop the images to a square box")
        self.data = data

    def __len__(self) -> int:
        return self.data.shape[0]

    @property
    def box_size(self) -> int:
        return self.data.shape[-1]

    def close(self) -> None:
        self._mrc.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"MrcStack({str(self.path)!r}, n={len(self)}, box={self.box_size})"


def open_stack(path: str | os.PathLike) -> MrcStack:
    """Memory-map an image stack (``.mrcs``, or a ``.mrc`` holding one or several images)."""
    return MrcStack(path)


def write_stack(path: str | os.PathLike, images, apix: float | None, batch_size: int = 1024) -> None:
    """Write (N, D, D) images (array, tensor or ImageSource) as an MRC stack, atomically.

    Images are written through a memory map in batches, so an ImageSource larger than
    memory can be written.
    """
    source = images if isinstance(images, ImageSource) else ArraySource(to_numpy(images))
    n, d, _ = source.shape
    with atomic_path(path) as tmp:
        with mrcfile.new_mmap(tmp, shape=(n, d, d), mrc_mode=2, overwrite=True) as mrc:
            mrc.set_image_stack()
            for start, chunk in zip(range(0, n, batch_size), source.chunks(batch_size)):
                mrc.data[start : start + len(chunk)] = chunk
            mrc.voxel_size = apix or 0.0
            mrc.reset_header_stats()
