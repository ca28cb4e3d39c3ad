"""cryoSPARC ``.cs`` particle files: numpy structured arrays with ``group/field`` names.

Poses are axis-angle vectors whose matrix is the transpose of cryonb's (RELION's)
rotation; shifts are in pixels with RELION's sign. Paths may carry a leading ``>``
(cryoSPARC's mark for imported files), which is stripped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..rotations import axis_angle_to_matrix
from ._common import ctf_table, reading, require_finite
from .atomic import atomic_write
from .sources import resolve_stack_paths

_FIX = "pass a cryoSPARC particles .cs file (exported from a job's particles output)"


@dataclass
class CsFile:
    """A cryoSPARC particle dataset, parsed; ``array`` is the raw structured array."""

    path: Path
    array: np.ndarray
    rotations: np.ndarray | None  # (N, 3, 3) float32
    shifts: np.ndarray | None  # (N, 2) float32, pixels
    ctf: np.ndarray | None  # (N, 8) float32, CTF_COLUMNS
    apix: float | None
    box_size: int | None
    image_paths: list[Path] | None
    image_rows: np.ndarray | None

    def __len__(self) -> int:
        return len(self.array)


def _field(path, array: np.ndarray, name: str, width: int | None = None) -> np.ndarray | None:
    """A numeric field as float64 (None if absent), checked finite and of the expected width."""
    if name not in array.dtype.names:
        return None
    values = np.asarray(array[name])
    if values.dtype.kind not in "fiu" or (width is not None and values.shape[1:] != (width,)):
        raise InputError(path, f"field {name} has dtype {values.dtype} and shape {values.shape[1:]}", _FIX)
    return require_finite(path, f"field {name}", values.astype(np.float64), f"re-export {Path(path).name} from cryoSPARC")


def _single(path, values: np.ndarray | None, what: str) -> float | None:
    if values is None or len(values) == 0:
        return None
    if np.ptp(values) > 1e-6 * abs(values[0]):
        raise InputError(path, f"particles have different {what}s {np.unique(values)[:5].tolist()}", "split the dataset by " + what)
    return float(str(np.float32(values[0])))  # the decimal cryoSPARC wrote: 2.95, not 2.9500000476


def read_cs(path: str | os.PathLike, *, datadir: str | os.PathLike | None = None, apix: float | None = None) -> CsFile:
    """Read a cryoSPARC ``.cs`` file (``np.load``, never unpickling).

    ``datadir`` is where stacks are looked for (default: the .cs's folder); ``apix``
    overrides ``blob/psize_A``.
    """
    path = Path(path)
    with reading(path, "a cryoSPARC .cs file", _FIX):
        # The memory map checks the data length against the header before anything is read.
        array = np.array(np.load(path, mmap_mode="r", allow_pickle=False))
        if array.ndim != 1 or array.dtype.names is None:
            raise InputError(path, f"expected a 1D structured array, got {array.dtype} {array.shape}", _FIX)
        names = array.dtype.names
        pose, shift = _field(path, array, "alignments3D/pose", 3), _field(path, array, "alignments3D/shift", 2)
        rad = {k: _field(path, array, f"ctf/{k}_rad") for k in ("df_angle", "phase_shift")}
        ctf = ctf_table(
            path,
            len(array),
            {
                "defocus_u": _field(path, array, "ctf/df1_A"),
                "defocus_v": _field(path, array, "ctf/df2_A"),
                "defocus_angle": None if rad["df_angle"] is None else np.degrees(rad["df_angle"]),
                "voltage": _field(path, array, "ctf/accel_kv"),
                "cs": _field(path, array, "ctf/cs_mm"),
                "amplitude_contrast": _field(path, array, "ctf/amp_contrast"),
                "phase_shift": None if rad["phase_shift"] is None else np.degrees(rad["phase_shift"]),
                "bfactor": _field(path, array, "ctf/bfactor"),
            },
            _FIX,
        )
        shape = _field(path, array, "blob/shape", 2)
        box = None if shape is None else _single(path, shape[:, 0], "box size")
        image_paths = image_rows = None
        if "blob/path" in names and "blob/idx" in names:
            stacks = [p.decode() if isinstance(p, bytes) else str(p) for p in array["blob/path"]]
            image_paths = resolve_stack_paths([s.removeprefix(">") for s in stacks], datadir or path.parent)
            image_rows = np.asarray(array["blob/idx"], dtype=np.int64)
        return CsFile(
            path=path,
            array=array,
            # cryoSPARC's matrix maps the other way: transpose to RELION's A (checked against cryoDRGN).
            rotations=None if pose is None else axis_angle_to_matrix(pose).transpose(0, 2, 1).astype(np.float32),
            shifts=None if shift is None else shift.astype(np.float32),
            ctf=ctf,
            apix=apix if apix is not None else _single(path, _field(path, array, "blob/psize_A"), "pixel size"),
            box_size=None if box is None else int(box),
            image_paths=image_paths,
            image_rows=image_rows,
        )


def write_cs_subset(src: CsFile | str | os.PathLike, indices, out: str | os.PathLike) -> Path:
    """Write the rows ``indices`` (in that order) of a .cs file to ``out`` with every field, atomically."""
    cs = src if isinstance(src, CsFile) else read_cs(src)
    indices = np.asarray(indices, dtype=np.int64)
    if indices.size and (indices.min() < 0 or indices.max() >= len(cs)):
        raise InputError(cs.path, f"indices out of range for {len(cs)} particles", "pass 0-based row numbers of this file")
    out = Path(out)
    with atomic_write(out) as f:  # through a file handle: np.save would append .npy to the name
        np.save(f, cs.array[indices])
    return out
