"""Plane sections of a map: orthogonal (x, y, z) or oblique, sampled by interpolation.

Coordinates are voxel indices about the box centre ``D // 2`` (cryonb's convention), so an
orthogonal slice at an integer offset is exactly a plane of the array.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import map_coordinates

from .errors import InputError

# (normal, rows, columns) of the orthogonal slices, as (x, y, z) vectors: "z" is volume[c, :, :].
AXES = {
    "x": ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, 1.0, 0.0)),
    "y": ((0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (1.0, 0.0, 0.0)),
    "z": ((0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0)),
}


def _rotate(v: np.ndarray, axis: np.ndarray, degrees: float) -> np.ndarray:
    """``v`` turned by ``degrees`` about the unit vector ``axis`` (Rodrigues)."""
    a = np.deg2rad(degrees)
    return v * np.cos(a) + np.cross(axis, v) * np.sin(a) + axis * axis.dot(v) * (1 - np.cos(a))


def plane_axes(normal="z", tilt=(0.0, 0.0)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit (normal, row, column) vectors, in (x, y, z), of a slicing plane.

    ``normal`` is ``"x"``, ``"y"``, ``"z"`` or a 3-vector (x, y, z); for a vector the columns follow
    x (or y when the normal is near x) projected onto the plane. ``tilt`` turns the plane by two
    angles in degrees: about its column direction, then about its (new) row direction.
    """
    if isinstance(normal, str):
        if normal not in AXES:
            raise InputError(None, f"unknown slice axis {normal!r}", "use 'x', 'y' or 'z', or a 3-vector")
        n, rows, cols = (np.array(v) for v in AXES[normal])
    else:
        n = np.asarray(normal, float).reshape(-1)
        if n.shape != (3,) or not np.isfinite(n).all() or not np.linalg.norm(n):
            raise InputError(None, f"the slice normal must be a non-zero 3-vector, got {normal!r}",
                             "pass (x, y, z) or 'x', 'y', 'z'")
        n = n / np.linalg.norm(n)
        ref = np.array([0.0, 1.0, 0.0]) if abs(n[0]) > 0.9 else np.array([1.0, 0.0, 0.0])
        cols = ref - n * n.dot(ref)
        cols /= np.linalg.norm(cols)
        rows = np.cross(n, cols)
    about_cols, about_rows = (float(t) for t in tilt)
    n, rows = _rotate(n, cols, about_cols), _rotate(rows, cols, about_cols)
    n, cols = _rotate(n, rows, about_rows), _rotate(cols, rows, about_rows)
    return n, rows, cols


def map_slice(volume, normal="z", offset: float = 0.0, size: int | None = None, *, tilt=(0.0, 0.0),
              order: int = 1) -> np.ndarray:
    """The (size, size) section of a [z, y, x] map through centre + ``offset`` × normal (in voxels).

    ``normal`` and ``tilt`` are those of :func:`plane_axes`; ``size`` defaults to the largest
    side of the map; points outside it are 0; ``order`` is the spline order (1: trilinear).

    >>> map_slice(vol, "z", 3)              # == vol[D // 2 + 3]
    >>> map_slice(vol, (1, 1, 0), tilt=(20, 0))
    """
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise InputError(None, f"a map has three dimensions, got shape {volume.shape}", "pass one [z, y, x] map")
    size = int(size or max(volume.shape))
    if size < 1:
        raise InputError(None, f"the slice size must be positive, got {size}", "pass size >= 1 or None")
    n, rows, cols = plane_axes(normal, tilt)
    centre = np.array(volume.shape[::-1]) // 2 + offset * n  # (x, y, z)
    steps = np.arange(size) - size // 2
    points = centre + steps[:, None, None] * rows + steps[None, :, None] * cols  # (size, size, xyz)
    coords = points[..., ::-1].transpose(2, 0, 1)  # (zyx, size, size)
    return map_coordinates(volume.astype(np.float32, copy=False), coords, order=order, mode="constant", cval=0.0)
