"""cryoDRGN's pickles (poses, CTF, indices), read through an unpickler that only builds arrays.

A pickle can run arbitrary code when loaded; these files come from other people, so only
numpy array reconstruction is admitted and anything else is refused.
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import struct

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
# What one pickle may build: containers nested this deep, this many container elements counted
# as a tree (a list shared n times counts n times: what np.asarray would expand), and arrays
# allocated by the unpickler no larger than the file plus this many bytes (their data is read
# from the file, so a real array never needs more).
MAX_DEPTH = 16
MAX_ELEMENTS = 1_000_000
ARRAY_SLACK_BYTES = 1 << 20
# Leading bytes of files passed where a pickle is expected.
_MAGIC = (
    (b"\x93NUMPY", "a numpy .npy file, not a pickle", "pass index files as .npy by that suffix; poses and CTF as cryoDRGN .pkl"),
    (b"PK\x03\x04", "a zip archive (a PyTorch checkpoint such as cryoDRGN's weights.pkl?), not a pickle of arrays", _FIX_PKL),
    (b"\x1f\x8b", "gzip-compressed data, not a pickle", "decompress it first (gunzip)"),
    (b"version https://git-lfs", "a git-LFS pointer, not the file itself (its content was never downloaded)", "run `git lfs pull` in the repository it came from"),
)
# What the C unpickler raises on corrupt, truncated or foreign bytes, beyond reading()'s list.
_PICKLE_ERRORS = (pickle.UnpicklingError, struct.error, AttributeError, ImportError, RecursionError)


class _Limits:
    def __init__(self, path, file_size: int):
        self.path = path
        self.max_array_bytes = file_size + ARRAY_SLACK_BYTES

    def array(self, shape, dtype) -> None:
        try:
            n = int(np.prod([int(k) for k in np.atleast_1d(shape)], dtype=object))
            nbytes = n * np.dtype(dtype).itemsize
        except (TypeError, ValueError, OverflowError):
            return  # numpy's own call will refuse the arguments
        if nbytes > self.max_array_bytes:
            raise InputError(self.path, f"the pickle asks for a {nbytes:,}-byte array, more than the whole file holds", _FIX_PKL)


class _NdarrayToken:
    """Stands for numpy.ndarray in a pickle: _reconstruct takes it, calling it fails."""

    def __repr__(self) -> str:
        return "numpy.ndarray"


_NDARRAY = _NdarrayToken()


def _checked(function, before):
    def call(*args):
        before(*args)
        return function(*args)

    return call


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that can build numpy arrays, tuples and lists, and nothing else.

    Arrays that numpy allocates before their data is read (``_reconstruct``) are bounded by the
    file's size, and ``numpy.ndarray`` itself cannot be called (only passed to ``_reconstruct``).
    """

    def __init__(self, file, path, file_size: int):
        super().__init__(file)
        self._path = path
        self._limits = _Limits(path, file_size)

    def find_class(self, module: str, name: str):
        if module == "numpy.core" or module.startswith("numpy.core."):
            module = "numpy._core" + module[len("numpy.core") :]  # pickles written by numpy < 2
        if (module, name) not in _ALLOWED:
            raise InputError(self._path, f"refusing to unpickle {module}.{name}", "only pickles of numpy arrays are loaded")
        found = super().find_class(module, name)
        limits = self._limits
        if name == "ndarray":
            return _NDARRAY  # only to be passed to _reconstruct, never called
        if name == "_reconstruct":
            def reconstruct(subtype, shape, dtype, *rest):
                limits.array(shape, dtype)
                return found(np.ndarray if subtype is _NDARRAY else subtype, shape, dtype, *rest)

            return reconstruct
        if name == "_frombuffer":
            return _checked(found, lambda buf, dtype, shape, *rest: limits.array(shape, dtype))
        if name in ("list", "tuple"):
            return _checked(found, lambda *args: _bounded(self._path, args, 0, [0]))
        return found


def _bounded(path, obj, depth: int, count: list[int]) -> None:
    """Walk what a pickle built; raise if it is deeper or larger (as a tree) than the limits."""
    if depth > MAX_DEPTH:
        raise InputError(path, f"the pickle nests containers more than {MAX_DEPTH} deep", _FIX_PKL)
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise InputError(path, "the pickle holds an array of Python objects, not numbers", _FIX_PKL)
        return
    if isinstance(obj, dict):
        items = [*obj.keys(), *obj.values()]
    elif isinstance(obj, (list, tuple, set, frozenset)):
        items = obj
    else:
        return
    count[0] += len(items)
    if count[0] > MAX_ELEMENTS:
        raise InputError(path, f"the pickle's containers expand to more than {MAX_ELEMENTS:,} elements (nested shared lists?)", _FIX_PKL)
    for item in items:
        _bounded(path, item, depth + 1, count)


def _check_opcodes(path, data: bytes) -> None:
    """Scan the opcodes without running them: the unpickler allocates a counted string or bytes
    object at its declared length before reading it, so a few bytes could ask for gigabytes."""
    try:
        for _ in pickletools.genops(io.BytesIO(data)):  # reads each argument only as far as the data goes
            pass
    except Exception as e:  # pickletools raises ValueError for truncation, and others for junk
        raise InputError(path, f"is not a readable pickle: corrupt, truncated or another format ({type(e).__name__}: {e})", _FIX_PKL) from None


def load_pickle(path: str | os.PathLike):
    """Load a pickle of numpy arrays (possibly in tuples or lists), refusing anything else.

    Corrupt, truncated or foreign files (a .npy, a PyTorch checkpoint, junk) and pickles that
    would expand beyond ``MAX_DEPTH`` / ``MAX_ELEMENTS`` raise an :class:`InputError`.
    """
    with reading(path, "a pickle of numpy arrays", _FIX_PKL):
        with open(path, "rb") as f:
            head = f.read(64)
            for magic, what, fix in _MAGIC:
                if head.startswith(magic):
                    raise InputError(path, f"this is {what}", fix)
            if not head:
                raise InputError(path, "the file is empty (0 bytes)", _FIX_PKL)
            f.seek(0)
            data = f.read()
            _check_opcodes(path, data)
            try:
                obj = _ArrayUnpickler(io.BytesIO(data), path, len(data)).load()
            except _PICKLE_ERRORS as e:
                raise InputError(path, f"is not a readable pickle: corrupt, truncated or another format ({type(e).__name__}: {e})", _FIX_PKL) from e
        _bounded(path, obj, 0, [0])
        return obj


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


def write_cryodrgn_poses(path: str | os.PathLike, rotations, shifts, D: int) -> None:
    """Write a cryoDRGN pose pickle ``(rot (N, 3, 3), trans (N, 2))``, ``trans`` in fractions of the
    box ``D`` (the inverse of :func:`read_cryodrgn_poses`), atomically."""
    rot = np.asarray(rotations, dtype=np.float32)
    trans = np.asarray(shifts, dtype=np.float32) / D
    with atomic_write(path) as f:
        pickle.dump((rot, trans), f, protocol=4)


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
    return check_indices(path, indices)


INDEX_MAX = np.iinfo(np.int64).max


def check_indices(path, indices: np.ndarray) -> np.ndarray:
    """Integer ``indices`` as int64 row numbers, or an :class:`InputError` naming the first that is not
    one (negative, or beyond int64: an unsigned or overflowed value would otherwise wrap silently)."""
    fix = "pass 0-based particle row numbers (from 0 to the number of particles - 1)"
    if len(indices) and np.issubdtype(indices.dtype, np.unsignedinteger) and indices.max() > INDEX_MAX:
        at = int(np.argmax(indices > INDEX_MAX))
        raise InputError(path, f"index {int(indices[at])} at position {at} is beyond the largest possible row number "
                               f"2**63 - 1 (an overflowed or corrupt value)", fix)
    indices = indices.astype(np.int64)
    if len(indices) and indices.min() < 0:
        at = int(np.argmax(indices < 0))
        raise InputError(path, f"index {int(indices[at])} at position {at} is negative; row numbers start at 0", fix)
    return indices


def write_index_pickle(indices, path: str | os.PathLike) -> None:
    """Write indices as cryoDRGN does (a pickled int64 array), atomically."""
    with atomic_write(path) as f:
        pickle.dump(np.asarray(indices, dtype=np.int64), f, protocol=4)


def write_index_npy(indices, path: str | os.PathLike) -> None:
    """Write indices as a ``.npy`` int64 array, atomically."""
    with atomic_write(path) as f:
        np.save(f, np.asarray(indices, dtype=np.int64))
