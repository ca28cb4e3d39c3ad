"""cryoDRGN's pickles (poses, CTF, indices), read through an unpickler that only builds arrays.

A pickle can run arbitrary code when loaded; these files come from other people, so only
numpy array reconstruction is admitted and anything else is refused.
"""

from __future__ import annotations

import os
import pickle

import numpy as np

from ..errors import InputError
from ..ctf import CTF_COLUMNS
from ._common import ctf_table, reading, require_finite
from .atomic import atomic_write

_ALLOWED = {
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"),  # arrays pickled with protocol 5
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("builtins", "tuple"),
    ("builtins", "list"),
}
_FIX_PKL = "pass a pickle written by cryoDRGN (parse_pose_*, parse_ctf_*, or an index file)"


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that can build numpy arrays, tuples and lists, and nothing else."""

    def __init__(self, file, path):
        super().__init__(file)
        self._path = path

    def find_class(self, module: str, name: str):
        if module == "numpy.core" or module.startswith("numpy.core."):
            module = "numpy._core" + module[len("numpy.core") :]  # pickles written by numpy < 2
        if (module, name) not in _ALLOWED:
            raise InputError(self._path, f"refusing to unpickle {module}.{name}", "only pickles of numpy arrays are loaded")
        return super().find_class(module, name)


def load_pickle(path: str | os.PathLike):
    """Load a pickle of numpy arrays (possibly in tuples or lists), refusing anything else."""
    with reading(path, "a pickle of numpy arrays", _FIX_PKL):
        with open(path, "rb") as f:
            return _ArrayUnpickler(f, path).load()


def read_cryodrgn_poses(path: str | os.PathLike, D: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Rotations (N, 3, 3) and shifts in pixels (N, 2) from a cryoDRGN pose pickle.

    cryoDRGN stores ``(rot, trans)`` with ``trans`` in fractions of the box ``D``, or
    ``rot`` alone (then shifts are None).
    """
    obj = load_pickle(path)
    rot, trans = (obj[0], obj[1]) if isinstance(obj, (tuple, list)) and len(obj) == 2 else (obj, None)
    rot = np.asarray(rot)
    if rot.ndim != 3 or rot.shape[1:] != (3, 3):
        raise InputError(path, f"expected rotations of shape (N, 3, 3), got {rot.shape}", _FIX_PKL)
    rot = require_finite(path, "rotations", rot.astype(np.float32), _FIX_PKL)
    if trans is None:
        return rot, None
    trans = np.asarray(trans)
    if trans.shape != (len(rot), 2):
        raise InputError(path, f"expected translations of shape ({len(rot)}, 2), got {trans.shape}", _FIX_PKL)
    return rot, require_finite(path, "translations", (trans * D).astype(np.float32), _FIX_PKL)


def read_cryodrgn_ctf(path: str | os.PathLike) -> tuple[np.ndarray, int, float]:
    """CTF table (N, 8), box size D and pixel size (Å) from cryoDRGN's (N, 9) ctf pickle.

    cryoDRGN's columns are [D, Apix, dfU, dfV, dfang, kV, Cs, w, phase_shift]; D and Apix
    must be the same for every row.
    """
    params = np.asarray(load_pickle(path))
    if params.ndim != 2 or params.shape[1] != 9 or params.dtype.kind not in "fiu":
        raise InputError(path, f"expected a numeric (N, 9) CTF array, got {params.dtype} {params.shape}", _FIX_PKL)
    params = require_finite(path, "CTF parameters", params, _FIX_PKL)
    if len(params) == 0 or np.ptp(params[:, 0]) or np.ptp(params[:, 1]):
        raise InputError(path, "box size (column 0) and pixel size (column 1) must be present and equal in every row", _FIX_PKL)
    apix = float(str(params[0, 1])) if params.dtype == np.float32 else float(params[0, 1])  # 1.035, not 1.0349999
    ctf = ctf_table(path, len(params), dict(zip(CTF_COLUMNS[:7], params[:, 2:].T)), _FIX_PKL)
    return ctf, int(params[0, 0]), apix


def read_index(path: str | os.PathLike) -> np.ndarray:
    """Particle indices (int64) from a cryoDRGN index pickle or a ``.npy`` file."""
    fix = "pass a 1D array of integer particle indices"
    if str(path).endswith(".npy"):
        with reading(path, "a .npy index file", fix):
            indices = np.load(path, allow_pickle=False)
    else:
        indices = np.asarray(load_pickle(path))
    if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer):
        raise InputError(path, f"expected a 1D integer array, got {indices.dtype} {indices.shape}", fix)
    return indices.astype(np.int64)


def write_index_pickle(indices, path: str | os.PathLike) -> None:
    """Write indices as cryoDRGN does (a pickled int64 array), atomically."""
    with atomic_write(path) as f:
        pickle.dump(np.asarray(indices, dtype=np.int64), f, protocol=4)


def write_index_npy(indices, path: str | os.PathLike) -> None:
    """Write indices as a ``.npy`` int64 array, atomically."""
    with atomic_write(path) as f:
        np.save(f, np.asarray(indices, dtype=np.int64))
