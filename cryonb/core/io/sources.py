"""Where a particle set's images come from: one interface, in memory or in MRC stacks.

Every source has ``len``, ``shape`` (N, D, D), ``box_size``, indexing that returns float32
copies (an int gives (D, D), anything else (n, D, D)), ``subset`` and ``chunks``.
File-backed sources are memory-mapped and read only what is indexed, one vectorised read
per stack in file order.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import InputError
from .images import ArraySource, ImageSource
from .mrc import MrcStack, read_header

__all__ = ["ArraySource", "ImageSource", "MrcStackSource", "MultiStackSource", "resolve_stack_paths"]


def _gather(data: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Rows of a (memory-mapped) stack as float32: one slice if contiguous, else one sorted read."""
    if len(rows) and rows[-1] - rows[0] + 1 == len(rows) and np.all(np.diff(rows) == 1):
        return np.array(data[rows[0] : rows[-1] + 1], dtype=np.float32)
    order = np.argsort(rows, kind="stable")
    out = np.empty((len(rows),) + data.shape[1:], dtype=np.float32)
    out[order] = data[rows[order]]
    return out


class MrcStackSource(ImageSource):
    """Images from one memory-mapped MRC stack (optionally a selection of its rows)."""

    def __init__(self, stack: MrcStack | str | os.PathLike, rows: np.ndarray | None = None):
        self.stack = stack if isinstance(stack, MrcStack) else MrcStack(stack)
        self._rows = np.arange(len(self.stack), dtype=np.int64) if rows is None else np.asarray(rows, np.int64)
        super().__init__(len(self._rows), self.stack.box_size)

    def _read(self, positions):
        return _gather(self.stack.data, self._rows[positions])

    def _take(self, positions):
        return MrcStackSource(self.stack, self._rows[positions])

    def locations(self):
        return [self.stack.path] * self._n, self._rows.copy()


class MultiStackSource(ImageSource):
    """Images addressed row by row as (stack file, 0-based row), over any number of stacks.

    Headers are checked at construction (files exist, rows in range, one box size); each
    stack is memory-mapped once, on first read, and shared by subsets. A batch is read
    with one vectorised read per stack it touches, so memory is bounded by the batch.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike],
        rows: np.ndarray,
        *,
        referenced_by=None,
        fix: str | None = None,
        indexed: np.ndarray | None = None,
    ):
        if len(paths) != len(rows):
            raise InputError(referenced_by, f"{len(paths)} stack paths for {len(rows)} rows", fix)
        names, file_of = np.unique(np.array([os.fspath(p) for p in paths], dtype=str), return_inverse=True)
        self._files = [Path(name) for name in names]
        self._file_of = file_of.astype(np.int64).reshape(-1)
        self._rows = np.asarray(rows, dtype=np.int64)
        self._stacks: dict[int, MrcStack] = {}
        indexed = np.ones(len(self._rows), bool) if indexed is None else np.asarray(indexed, bool)
        box = self._check_headers(self._files, self._file_of, self._rows, referenced_by, fix, indexed)
        super().__init__(len(self._rows), box)

    @staticmethod
    def _check_headers(files, file_of, rows, referenced_by, fix, indexed) -> int:
        boxes = set()
        for i, path in enumerate(files):
            if not path.exists():
                raise InputError(path, f"image stack not found (named in {referenced_by})", fix)
            header = read_header(path)
            n = 1 if len(header.data_shape) == 2 else header.data_shape[0]
            if n > 1 and not indexed[file_of == i].all():
                _refuse_whole_file(referenced_by, path, header.data_shape)
            used = rows[file_of == i]
            if used.min() < 0 or used.max() >= n:
                raise InputError(
                    referenced_by,
                    f"refers to image {int(used.max()) + 1} of {path}, which holds {n} images",
                    "point the metadata at the stack it was made for",
                )
            boxes.add(header.data_shape[-1])
        if len(boxes) > 1:
            raise InputError(referenced_by, f"its stacks have different box sizes {sorted(boxes)}", "re-extract the particles at one box size")
        return boxes.pop() if boxes else 0

    def _stack(self, i: int) -> MrcStack:
        if i not in self._stacks:
            self._stacks[i] = MrcStack(self._files[i])
        return self._stacks[i]

    def _read(self, positions):
        files, rows = self._file_of[positions], self._rows[positions]
        order = np.lexsort((rows, files))
        out = np.empty((len(positions), self._box_size, self._box_size), dtype=np.float32)
        for run in np.split(order, np.flatnonzero(np.diff(files[order])) + 1):
            if len(run):
                out[run] = _gather(self._stack(int(files[run[0]])).data, rows[run])
        return out

    def _take(self, positions):
        view = copy.copy(self)  # shares the file list and the opened stacks
        view._file_of, view._rows, view._n = self._file_of[positions], self._rows[positions], len(positions)
        return view

    def locations(self):
        return [self._files[i] for i in self._file_of], self._rows.copy()


def _refuse_whole_file(referenced_by, path: Path, shape: tuple[int, ...]) -> None:
    """An image name without ``index@`` names a whole file; it must hold one image, not several."""
    n, d = shape[0], shape[-1]
    if shape[0] == shape[1] == shape[2]:
        raise InputError(
            referenced_by,
            f"names {path.name} as one image (no index@), but it is a {n}x{d}x{d} volume: a 3D subtomogram? cryonb reads "
            "single-particle 2D images (it would read z-slice 0 of each volume)",
            "for subtomograms use tomoDRGN or cryoDRGN-ET, or pass 2D particle images (one row per image, index@stack)",
        )
    raise InputError(
        referenced_by,
        f"names {path.name} as one image (no index@), but it holds {n} images of {d}x{d} (a stack of tilt images, or a "
        "particle stack) and only the first would be read",
        f"name each image index@stack (1@{path.name}, 2@{path.name}, ...); for tilt-series particle stacks use tomoDRGN or cryoDRGN-ET",
    )


def resolve_stack_paths(names: Sequence[str], datadir: str | os.PathLike) -> list[Path]:
    """Resolve image-stack names from metadata against ``datadir``.

    Tries the name as given (absolute, or relative to ``datadir``), then its base name in
    ``datadir`` (as cryoDRGN does). Names that match nothing resolve to ``datadir / name``
    so that the error names the path that was looked for.
    """
    datadir = Path(datadir)
    resolved = {}
    for name in dict.fromkeys(names):
        as_given = datadir / name
        flat = datadir / Path(name).name
        resolved[name] = as_given if as_given.exists() or not flat.exists() else flat
    return [resolved[name] for name in names]
