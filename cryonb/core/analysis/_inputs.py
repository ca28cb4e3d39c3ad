"""Checks shared by the analysis functions: arrays of the right shape, or a clear InputError."""

from __future__ import annotations

import numpy as np

from ..errors import InputError


def as_array(x, name: str, columns: int | None = None, min_rows: int = 1, row: str = "particle") -> np.ndarray:
    """``x`` as a finite 2D float array (N, columns), one ``row`` per line; ``columns=None``: any width."""
    a = np.asarray(x)
    if a.ndim != 2 or (columns is not None and a.shape[1] != columns) or a.shape[0] < min_rows:
        want = f"(N, {columns})" if columns else "(N, zdim)"
        raise InputError(
            None,
            f"{name} has shape {a.shape}, expected {want} with N >= {min_rows}",
            f"pass a 2D array with one {row} per row" + (f" and {columns} columns" if columns else ""),
        )
    if not np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise InputError(None, f"{name} contains NaN or infinite values", f"drop those rows first, e.g. {name}[np.isfinite({name}).all(1)]")
    return a


def as_latents(z, min_rows: int = 1) -> np.ndarray:
    """Latent coordinates (N, zdim) as a finite float array."""
    return as_array(z, "z", min_rows=min_rows)


def as_count(k, name: str, low: int, high: int | None = None) -> int:
    """An integer in [low, high] (no upper bound if ``high`` is None), or an InputError saying which."""
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k < low or (high is not None and k > high):
        allowed = f"{low} <= {name}" + ("" if high is None else f" <= {high}")
        raise InputError(None, f"{name}={k!r} is out of range", f"choose an integer {name} with {allowed}")
    return int(k)
