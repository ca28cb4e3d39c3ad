"""Helpers shared by the readers: one error boundary, the CTF table, finite-value checks."""

from __future__ import annotations

import os
import tokenize
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import numpy as np

from ..ctf import CTF_COLUMNS
from ..errors import InputError

_CTF_OPTIONAL = {"phase_shift": 0.0, "bfactor": 0.0}

# What third-party parsers raise on malformed input (numpy parses .npy headers with the
# tokenizer). Caught once per reader and turned into an InputError; anything else is a
# bug in cryonb and must surface as such.
_LIBRARY_ERRORS = (
    OSError, ValueError, TypeError, KeyError, IndexError, EOFError, ArithmeticError, RuntimeError,
    SyntaxError, tokenize.TokenError,
)


@contextmanager
def reading(path: str | os.PathLike, what: str, fix: str) -> Iterator[None]:
    """Turn a library's exception while reading ``path`` into an :class:`InputError`."""
    try:
        yield
    except InputError:
        raise
    except FileNotFoundError as e:
        raise InputError(path, "file not found", "check the path") from e
    except MemoryError as e:
        raise InputError(path, f"header asks for more memory than available; not {what}", fix) from e
    except _LIBRARY_ERRORS as e:
        raise InputError(path, f"cannot be read as {what} ({type(e).__name__}: {e})", fix) from e


def require_finite(path, name: str, values: np.ndarray, fix: str) -> np.ndarray:
    """Return ``values`` or raise if any entry is NaN or infinite (never pass garbage on)."""
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.flatnonzero(bad.reshape(len(values), -1).any(1))[0]) if values.ndim else 0
        raise InputError(path, f"{name} has {int(bad.sum())} NaN or infinite values (first in row {row + 1})", fix)
    return values


def ctf_table(path, n: int, values: Mapping[str, np.ndarray | float | None], fix: str) -> np.ndarray | None:
    """Stack per-particle CTF parameters into the (N, 8) table, or None if any are missing.

    ``values`` maps names of :data:`CTF_COLUMNS` to arrays or scalars; phase shift and
    B-factor default to 0. Non-finite values raise an :class:`InputError`.
    """
    columns = []
    for name in CTF_COLUMNS:
        value = values.get(name)
        if value is None:
            if name not in _CTF_OPTIONAL:
                return None
            value = _CTF_OPTIONAL[name]
        columns.append(np.broadcast_to(np.asarray(value, dtype=np.float64), (n,)))
    table = np.stack(columns, axis=1).astype(np.float32)
    return require_finite(path, "CTF parameters", table, fix)


def to_numpy(x, dtype=np.float32) -> np.ndarray:
    """An ndarray of ``dtype`` from a numpy array, list or (any-device) torch tensor."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)
