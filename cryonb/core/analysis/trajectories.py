"""Series of latents to decode into volume movies: along a principal axis, or a straight line."""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ._inputs import as_count, as_latents
from .embedding import pca


def pc_traversal(z, pc: int = 0, n: int = 10, lo: float = 5, hi: float = 95) -> np.ndarray:
    """n latents (n, zdim) evenly spaced along principal axis ``pc`` (0-based).

    They run from the ``lo``-th to the ``hi``-th percentile of the data's coordinate on
    that axis, with every other principal coordinate at the mean.
    """
    z = as_latents(z, min_rows=2)
    pc = as_count(pc, "pc", 0, min(z.shape) - 1)
    n = as_count(n, "n", 1)
    if not 0 <= lo <= hi <= 100:
        raise InputError(None, f"percentiles lo={lo}, hi={hi} are out of order", "choose 0 <= lo <= hi <= 100")
    axes = pca(z, pc + 1)
    ends = np.percentile(axes.coords[:, pc], [lo, hi])
    return axes.mean + np.linspace(*ends, n)[:, None] * axes.components[pc]


def interpolate(z0, z1, n: int) -> np.ndarray:
    """n latents (n, zdim) evenly spaced on the straight line from z0 to z1, both included."""
    ends = np.asarray(z0, dtype=float), np.asarray(z1, dtype=float)
    if ends[0].ndim != 1 or ends[0].shape != ends[1].shape:
        raise InputError(None, f"z0 and z1 have shapes {ends[0].shape} and {ends[1].shape}", "pass two latents of the same length (zdim,)")
    n = as_count(n, "n", 1)
    return np.linspace(*ends, n)
