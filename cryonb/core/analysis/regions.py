"""Named regions of a latent space: several selections kept at once, combined as sets, saved one by one.

A region is a set of particles, stored as rows of the run's latents ``z`` (positions 0..N-1, not
the rows of the original particle file). Lasso, box, range and cluster selections become regions
under a name; regions combine by union, intersection and difference into new ones; each can be
saved as a RELION/cryoSPARC subset with cryoDRGN index files. :func:`read_region` turns an index
file (cryoDRGN .pkl, .npy, .txt) or a .star subset into positions of a run.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from ..errors import InputError

OPERATIONS = ("union", "intersection", "difference")
_BAD_NAME = re.compile(r"[/\\\x00-\x1f]")


class Regions:
    """Named sets of positions (rows of ``z``) among ``n`` particles, in the order they were added.

    >>> regions = Regions(len(run.z))
    >>> regions.add("open", lasso_positions)
    >>> regions.add("thin", range_select(latent_norm(run.z), high=1.0))
    >>> regions.combine("open and thin", "intersection", ["open", "thin"])
    >>> regions.save("open and thin", run.particles, "selected/open_thin")
    """

    def __init__(self, n: int):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise InputError(None, f"n={n!r} is not a number of particles", "pass len(run.z)")
        self.n = int(n)
        self._masks: dict[str, np.ndarray] = {}

    # --- contents -----------------------------------------------------------------------------

    def add(self, name: str, positions) -> np.ndarray:
        """Store ``positions`` (indices into ``z``, or a boolean mask of N) as region ``name``, replacing
        one of that name; returns the sorted positions."""
        name = check_name(name)
        self._masks[name] = self._as_mask(positions, name)
        return self[name]

    def remove(self, name: str) -> None:
        """Forget region ``name``."""
        self._check(name)
        del self._masks[name]

    def rename(self, old: str, new: str) -> None:
        """Give region ``old`` the name ``new`` (keeping its place in the order)."""
        self._check(old)
        new = check_name(new)
        if new != old and new in self._masks:
            raise InputError(None, f"a region named {new!r} exists already", "remove it first or choose another name")
        self._masks = {new if key == old else key: mask for key, mask in self._masks.items()}

    def __getitem__(self, name: str) -> np.ndarray:
        """The sorted positions of region ``name``."""
        return np.flatnonzero(self.mask(name))

    def mask(self, name: str) -> np.ndarray:
        """Boolean mask (N,) of region ``name`` (a copy)."""
        self._check(name)
        return self._masks[name].copy()

    def __contains__(self, name) -> bool:
        return name in self._masks

    def __iter__(self):
        return iter(list(self._masks))

    def __len__(self) -> int:
        return len(self._masks)

    @property
    def names(self) -> list[str]:
        """Region names, in the order they were added."""
        return list(self._masks)

    def counts(self) -> dict[str, int]:
        """Particles per region, by name."""
        return {name: int(mask.sum()) for name, mask in self._masks.items()}

    def unique_name(self, stem: str) -> str:
        """``stem``, or ``stem 2``, ``stem 3``… : the first name not yet taken."""
        stem = check_name(stem)
        name, i = stem, 1
        while name in self._masks:
            i += 1
            name = f"{stem} {i}"
        return name

    # --- set algebra --------------------------------------------------------------------------

    def evaluate(self, operation: str, names) -> np.ndarray:
        """Positions of the ``operation`` (``"union"``, ``"intersection"``, ``"difference"``) of regions ``names``.

        ``difference`` is the first region less all the others. O(N) per region, no sorting.
        """
        names = [names] if isinstance(names, str) else list(names)
        if operation not in OPERATIONS:
            raise InputError(None, f"unknown operation {operation!r}", f"use one of {', '.join(map(repr, OPERATIONS))}")
        if not names:
            raise InputError(None, f"{operation} of no regions", "name one region or more")
        masks = [self.mask(name) for name in names]
        result = masks[0]
        for other in masks[1:]:
            if operation == "union":
                result |= other
            elif operation == "intersection":
                result &= other
            else:
                result &= ~other
        return np.flatnonzero(result)

    def union(self, *names: str) -> np.ndarray:
        return self.evaluate("union", names)

    def intersection(self, *names: str) -> np.ndarray:
        return self.evaluate("intersection", names)

    def difference(self, first: str, *others: str) -> np.ndarray:
        return self.evaluate("difference", [first, *others])

    def combine(self, name: str, operation: str, names) -> np.ndarray:
        """Store the ``operation`` of regions ``names`` as region ``name``; returns its positions."""
        return self.add(name, self.evaluate(operation, names))

    def labels(self, names=None) -> np.ndarray:
        """(N,) int: for each particle, the index in ``names`` (default all) of the last region holding it, else -1."""
        names = self.names if names is None else list(names)
        out = np.full(self.n, -1, np.int64)
        for i, name in enumerate(names):
            out[self.mask(name)] = i
        return out

    # --- files --------------------------------------------------------------------------------

    def save(self, name: str, particles, prefix: str | os.PathLike) -> dict[str, Path]:
        """Write region ``name`` of ``particles`` (the run's, one per row of ``z``) next to ``prefix``:
        .star or .cs and cryoDRGN .ind.npy / .ind.pkl (see ``cryonb.core.particles.save_selection``)."""
        from ..particles import save_selection

        positions = self[name]
        if particles is None:
            raise InputError(prefix, "the run has no particles to save", "open the run with them: Run.open(run_dir, particles)")
        if len(particles) != self.n:
            raise InputError(prefix, f"{len(particles)} particles for regions of {self.n}", "pass the run's own particles")
        if not positions.size:
            raise InputError(prefix, f"region {name!r} is empty", "add particles to it, or save another region")
        return save_selection(particles.subset(positions), prefix)

    def _as_mask(self, positions, name: str) -> np.ndarray:
        values = np.asarray(positions)
        if values.dtype == bool:
            if values.shape != (self.n,):
                raise InputError(None, f"region {name!r}: a mask of shape {values.shape}, expected ({self.n},)", "pass one bool per particle")
            return values.copy()
        values = values.reshape(-1)
        if values.size and not np.issubdtype(values.dtype, np.integer):
            raise InputError(None, f"region {name!r}: positions are {values.dtype}, not integers", "pass rows of z (integers) or a bool mask")
        values = values.astype(np.int64)
        if values.size and (values.min() < 0 or values.max() >= self.n):
            bad = int(values[(values < 0) | (values >= self.n)][0])
            raise InputError(None, f"region {name!r}: position {bad} is out of range for {self.n} particles", f"use rows from 0 to {self.n - 1}")
        mask = np.zeros(self.n, bool)
        mask[values] = True
        return mask

    def _check(self, name) -> None:
        if name not in self._masks:
            known = ", ".join(map(repr, self._masks)) or "none yet"
            raise InputError(None, f"no region named {name!r}", f"use one of the regions ({known})")

    def __repr__(self) -> str:
        inside = ", ".join(f"{name}: {count:,}" for name, count in self.counts().items())
        return f"Regions({self.n:,} particles; {inside or 'empty'})"


def check_name(name) -> str:
    """A region name: a non-empty string without slashes, control characters or surrounding spaces."""
    if not isinstance(name, str) or not name.strip() or name != name.strip() or _BAD_NAME.search(name):
        raise InputError(None, f"{name!r} is not a region name", "use a short text without slashes, e.g. 'open state'")
    return name


# --- index files and subsets -----------------------------------------------------------------

def read_region(path: str | os.PathLike, particles=None, n: int | None = None) -> np.ndarray:
    """Positions (rows of the run's ``z``) of the particles listed in ``path``.

    ``path`` is a cryoDRGN index pickle (``.pkl``, read by cryonb's restricted unpickler), a
    ``.npy`` or a ``.txt`` of row numbers in the original particle file, or a RELION ``.star``
    subset, matched to ``particles`` by image (stack file name and row, ``idx@stack``). Row
    numbers are matched to ``particles.indices``, so a run trained on part of a file is handled;
    without ``particles`` they are taken as positions among ``n``. Rows of the file that are not
    among the run's particles are left out; a file none of whose particles is in the run is an error.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".star":
        return _star_positions(path, particles)
    if suffix == ".txt":
        rows = _read_text_index(path)
    elif suffix in (".pkl", ".pickle", ".npy"):
        from ..io.pickles import read_index

        rows = read_index(path)
    else:
        raise InputError(path, f"cannot read particle indices from a {suffix or 'suffix-less'} file",
                         "pass a cryoDRGN index .pkl, a .npy or .txt of row numbers, or a .star subset")
    if particles is not None:
        positions = np.flatnonzero(np.isin(particles.indices, rows))
        total = len(particles)
    else:
        if n is None:
            raise InputError(path, "row numbers need the run's particles (or their number n) to be placed", "pass particles=run.particles")
        positions, total = np.unique(rows[rows < n]), n
    if not positions.size and len(rows):
        raise InputError(path, f"none of its {len(rows):,} particle rows is among the run's {total:,} particles",
                         "pass an index file made for this particle stack")
    return positions


def _read_text_index(path: Path) -> np.ndarray:
    from ..io._common import reading
    from ..io.pickles import check_indices

    fix = "write one integer row number per line (or separated by spaces or commas)"
    with reading(path, "a text file of particle row numbers", fix):
        text = path.read_text()
    text = "\n".join(line.split("#", 1)[0] for line in text.splitlines())  # comments dropped
    tokens = [t for t in re.split(r"[\s,]+", text) if t]
    try:
        rows = np.array([int(t) for t in tokens], dtype=np.int64)
    except ValueError:
        bad = next(t for t in tokens if not re.fullmatch(r"[+-]?\d+", t))
        raise InputError(path, f"{bad!r} is not an integer row number", fix) from None
    return check_indices(path, rows)


def _star_positions(path: Path, particles) -> np.ndarray:
    from ..io.star import read_star

    fix = "pass the run's particles (Run.open(run_dir, particles)) read from image stacks"
    if particles is None or particles.images is None or particles.images.locations() is None:
        raise InputError(path, "a .star subset is matched to the run's particles by image name, and the run's particles have no image files", fix)
    star = read_star(path)
    if star.image_paths is None:
        raise InputError(path, "has no _rlnImageName column to match particles by", "pass a .star with image names, or an index file")
    keys = {(p.name, int(r)): i for i, (p, r) in enumerate(zip(*particles.images.locations()))}
    found = [keys.get((p.name, int(r)), -1) for p, r in zip(star.image_paths, star.image_rows)]
    positions = np.unique(np.array([i for i in found if i >= 0], dtype=np.int64))
    if not positions.size and len(found):
        raise InputError(path, f"none of its {len(found):,} images is among the run's particles (matched by stack file name and row)",
                         "pass a subset of the particle file the run was trained on")
    return positions
