"""Selections of particles: on a 2D embedding by lasso (polygon) and box, on any per-particle value by range."""

from __future__ import annotations

import numpy as np
from matplotlib.path import Path

from ..errors import InputError
from ._inputs import as_array


def lasso_select(points2d, polygon) -> np.ndarray:
    """Indices of the points (N, 2) inside a polygon (M, 2), even-odd rule.

    The polygon closes itself (last vertex back to the first). Points outside its
    bounding box are discarded first, so a small lasso on 1M points is cheap.
    """
    points = as_array(points2d, "points2d", columns=2, min_rows=0)
    polygon = as_array(polygon, "polygon", columns=2, min_rows=3, row="vertex")
    (x0, y0), (x1, y1) = polygon.min(0), polygon.max(0)
    candidates = box_select(points, x0, x1, y0, y1)
    inside = Path(polygon, closed=False).contains_points(points[candidates])
    return candidates[inside]


def box_select(points2d, x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
    """Indices of the points (N, 2) with x between x0 and x1 and y between y0 and y1 (inclusive)."""
    points = as_array(points2d, "points2d", columns=2, min_rows=0)
    (x0, x1), (y0, y1) = sorted((x0, x1)), sorted((y0, y1))
    x, y = points[:, 0], points[:, 1]
    return np.flatnonzero((x >= x0) & (x <= x1) & (y >= y0) & (y <= y1))


def range_select(values, low: float | None = None, high: float | None = None) -> np.ndarray:
    """Indices of the particles whose value (N,) lies between ``low`` and ``high`` (inclusive).

    ``values`` is any per-particle number: ‖z‖ (:func:`latent_norm`), a CTF column, one latent
    dimension, a loaded covariate. ``None`` leaves that side open (``low=2.5``: a threshold). NaN
    values are never selected. Combine with a lasso as sets, e.g.
    ``np.intersect1d(lasso_select(xy, polygon), range_select(norm, 1, 3))``.
    """
    values = np.asarray(values)
    if values.ndim != 1:
        raise InputError(None, f"values have shape {values.shape}, expected (N,)", "pass one value per particle")
    if not (np.issubdtype(values.dtype, np.number) or values.dtype == bool):
        raise InputError(None, f"values are {values.dtype}, not numbers", "pass a numeric array, one value per particle")
    for name, bound in (("low", low), ("high", high)):
        if bound is not None and np.isnan(bound):
            raise InputError(None, f"{name} is NaN", f"pass a number, or None for no {name} bound")
    if low is not None and high is not None and low > high:
        low, high = high, low
    keep = ~np.isnan(values) if np.issubdtype(values.dtype, np.floating) else np.ones(len(values), bool)
    if low is not None:
        keep &= values >= low
    if high is not None:
        keep &= values <= high
    return np.flatnonzero(keep)


def selection_latent(z, positions, how: str = "mean", most: int = 2000, seed: int = 0) -> np.ndarray:
    """One latent (1, zdim) standing for the particles at ``positions``: their ``"mean"``, or their
    ``"medoid"`` (the member with the least summed distance to the others; over a random ``most``
    of them for larger selections)."""
    z = as_array(z, "z", min_rows=1)
    positions = np.asarray(positions, np.int64).reshape(-1)
    if not len(positions):
        raise InputError(None, "the selection is empty", "select particles first")
    chosen = z[positions]
    if how == "mean":
        return chosen.mean(0, keepdims=True)
    if how != "medoid":
        raise InputError(None, f"unknown selection latent {how!r}", "use 'mean' or 'medoid'")
    if len(chosen) > most:
        chosen = chosen[np.random.default_rng(seed).choice(len(chosen), most, replace=False)]
    distances = np.linalg.norm(chosen[:, None] - chosen[None], axis=-1).sum(1)
    return chosen[distances.argmin()][None]
