"""The image-source interface and its in-memory implementation, shared by the MRC and stack modules.

Kept apart from :mod:`.sources` (the file-backed sources, which need :mod:`.mrc`) so that
:mod:`.mrc` can write any source without importing :mod:`.sources`: no import cycle.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import InputError


class ImageSource(ABC):
    """(N, D, D) float32 images, read on demand."""

    def __init__(self, n: int, box_size: int):
        self._n = int(n)
        self._box_size = int(box_size)

    def __len__(self) -> int:
        return self._n

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self._n, self._box_size, self._box_size)

    @property
    def box_size(self) -> int:
        return self._box_size

    def positions(self, key) -> np.ndarray:
        """Normalise an int, slice, integer array or boolean mask to int64 positions."""
        if isinstance(key, slice):
            return np.arange(*key.indices(self._n), dtype=np.int64)
        key = np.asarray(key)
        if key.dtype == bool:
            if key.shape != (self._n,):
                raise IndexError(f"boolean mask of shape {key.shape} for {self._n} images")
            return np.flatnonzero(key)
        if not np.issubdtype(key.dtype, np.integer) and key.size:
            raise IndexError(f"images are indexed by int, slice, int array or bool mask, not {key.dtype}")
        pos = key.astype(np.int64).reshape(-1)
        if pos.size and (pos.min() < -self._n or pos.max() >= self._n):
            raise IndexError(f"image index out of range for {self._n} images")
        return np.where(pos < 0, pos + self._n, pos)

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self._read(self.positions(key))[0]
        return self._read(self.positions(key))

    def subset(self, key) -> ImageSource:
        """The images at ``key`` (positions in this source) as a new source; reads nothing."""
        return self._take(self.positions(key))

    def chunks(self, batch_size: int) -> Iterator[np.ndarray]:
        """Consecutive batches of at most ``batch_size`` images, in order."""
        for start in range(0, self._n, batch_size):
            yield self[start : start + batch_size]

    def locations(self) -> tuple[list[Path], np.ndarray] | None:
        """Per image, the stack file and the 0-based row in it; None for in-memory images."""
        return None

    @abstractmethod
    def _read(self, positions: np.ndarray) -> np.ndarray:
        """Images at int64 ``positions`` as a new (n, D, D) float32 array."""

    @abstractmethod
    def _take(self, positions: np.ndarray) -> ImageSource:
        """A source of the images at int64 ``positions``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={self._n}, box={self._box_size})"


class ArraySource(ImageSource):
    """Images held in memory as an (N, D, D) array."""

    def __init__(self, images: np.ndarray):
        images = np.asarray(images, dtype=np.float32)
        if images.ndim == 2:
            images = images[None]
        if images.ndim != 3 or images.shape[1] != images.shape[2]:
            raise InputError(None, f"images must be (N, D, D), got shape {images.shape}", "pass square images")
        super().__init__(len(images), images.shape[-1])
        self.array = images

    def _read(self, positions):
        return self.array[positions]

    def _take(self, positions):
        return ArraySource(self.array[positions])
