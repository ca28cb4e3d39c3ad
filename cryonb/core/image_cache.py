"""The on-disk cache of training transforms that streamed data reads (:class:`ImageCache`).

The cache is a ``.npy`` file (``np.load(path, mmap_mode="r")`` opens it) of the half-plane
transforms, already divided by the data's scale: complex64 ``(N, P)``, or ``(N, P, 2)`` real/imag
pairs in float16 or bfloat16 (stored as uint16 bit patterns; half the bytes to read and move).
A JSON sidecar written last records what it was made from (box, pixel size, scale, source files,
N, dtype, a fingerprint of images and shifts); a cache is reused only when all of it matches and
the file has its full size and sampled checksums, and is rebuilt otherwise (a crash mid-write
leaves no sidecar, so the partial file is never used).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import math
import os
import zlib
from pathlib import Path

import numpy as np
import torch

from .errors import CryonbError, InputError
from .preprocess import Preprocess, estimate_scale, source_path

CACHE_VERSION = 1
CACHE_DTYPES = ("complex64", "float16", "bfloat16")
_TORCH = {"complex64": torch.complex64, "float16": torch.float16, "bfloat16": torch.bfloat16}
_NUMPY = {"complex64": np.dtype("<c8"), "float16": np.dtype("<f2"), "bfloat16": np.dtype("<u2")}


def _fingerprint(particles, box: int, dtype: str) -> dict:
    """What the cache depends on: files (size, mtime), rows, shifts, sampled images."""
    h = hashlib.sha1()
    images = particles.images
    n = len(particles)
    files = []
    loc = images.locations()
    if loc is not None:
        paths, rows = loc
        for p in sorted({str(Path(f).resolve()) for f in paths}):
            st = os.stat(p)
            files.append([p, st.st_size, st.st_mtime_ns])
        h.update(np.asarray(rows, np.int64).tobytes())
    h.update(np.asarray(particles.indices, np.int64).tobytes())
    if particles.shifts is not None:
        h.update(np.asarray(particles.shifts, np.float32).tobytes())
    sample = np.unique(np.linspace(0, n - 1, min(n, 16)).astype(np.int64))
    h.update(np.ascontiguousarray(images[sample], dtype=np.float32).tobytes())
    return {"version": CACHE_VERSION, "n": n, "source_box": images.box_size, "box": int(box),
            "apix": None if particles.apix is None else float(particles.apix), "dtype": dtype,
            "source": None if source_path(particles) is None else str(Path(source_path(particles)).resolve()),
            "files": files, "fingerprint": h.hexdigest()}


def _row_shape(P: int, dtype: str) -> tuple[int, ...]:
    return (P,) if dtype == "complex64" else (P, 2)


def _encode(F: torch.Tensor, dtype: str) -> np.ndarray:
    """Scaled transforms (n, P) complex64 as the cache's rows."""
    if dtype == "complex64":
        return F.cpu().numpy()
    pairs = torch.view_as_real(F).to(_TORCH[dtype]).cpu()
    return pairs.view(torch.int16).numpy().view(_NUMPY[dtype]) if dtype == "bfloat16" else pairs.numpy()


def _crc_rows(path: Path, offset: int, row_bytes: int, n: int) -> dict:
    """CRC32 of up to 16 evenly spaced rows, the cheap check of a cache's contents."""
    rows = np.unique(np.linspace(0, n - 1, min(n, 16)).astype(np.int64))
    out = {}
    with open(path, "rb") as f:
        for r in rows:
            f.seek(offset + int(r) * row_bytes)
            out[str(int(r))] = zlib.crc32(f.read(row_bytes))
    return out


class ImageCache:
    """A cache file of scaled half-plane transforms and its JSON sidecar."""

    def __init__(self, path: Path, meta: dict):
        self.path = Path(path)
        self.meta = meta
        self.n, self.P, self.dtype, self.scale = meta["n"], meta["P"], meta["dtype"], meta["scale"]
        self.row_shape = _row_shape(self.P, self.dtype)
        self.row_bytes = int(np.prod(self.row_shape)) * _NUMPY[self.dtype].itemsize
        self.offset = meta["offset"]

    @staticmethod
    def paths(folder, box: int, dtype: str) -> tuple[Path, Path]:
        data = Path(folder) / f"images_{box}_{dtype}.npy"
        return data, data.with_suffix(".json")

    @classmethod
    def open(cls, folder, particles, box: int, dtype: str = "complex64", progress: bool = True,
             chunk: int = 1024, rebuild: bool = False, device="cpu") -> ImageCache:
        """The cache for ``particles`` at ``box`` in ``folder``: reused if it matches, else (re)built
        (the transforms computed on ``device``)."""
        if dtype not in CACHE_DTYPES:
            raise InputError(None, f"cache dtype must be one of {', '.join(CACHE_DTYPES)} (got {dtype!r})", "pick one of those")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        data, sidecar = cls.paths(folder, box, dtype)
        want = _fingerprint(particles, box, dtype)
        # One builder at a time (the processes of a multi-GPU run share the folder): the others wait, then reuse it.
        with open(folder / f".{data.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not rebuild:
                cache = cls._existing(data, sidecar, want)
                if cache is not None:
                    return cache
            return cls.build(data, sidecar, particles, box, dtype, want, progress, chunk, device)

    @classmethod
    def _existing(cls, data: Path, sidecar: Path, want: dict) -> ImageCache | None:
        """The cache at ``data`` if its sidecar matches ``want`` and the file is whole; else None."""
        try:
            meta = json.loads(sidecar.read_text())
            if any(meta.get(k) != v for k, v in want.items()):
                return None
            cache = cls(data, meta)
            if data.stat().st_size != cache.offset + cache.n * cache.row_bytes:
                return None
            with open(data, "rb") as f:
                if np.lib.format.read_magic(f) != (1, 0):
                    return None
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            if shape != (cache.n, *cache.row_shape) or dtype != _NUMPY[cache.dtype]:
                return None
            if _crc_rows(data, cache.offset, cache.row_bytes, cache.n) != meta["crc"]:
                return None
            return cache
        except (OSError, ValueError, KeyError, TypeError):
            return None

    @classmethod
    def build(cls, data: Path, sidecar: Path, particles, box: int, dtype: str, meta: dict,
              progress: bool = True, chunk: int = 1024, device="cpu") -> ImageCache:
        """Transform every image once and write the cache, in chunks, atomically (sidecar last)."""
        from tqdm.auto import tqdm

        from .io.atomic import atomic_path, atomic_write

        sidecar.unlink(missing_ok=True)  # the old data is invalid from here on
        prep = Preprocess(particles, box, poses=False, device=device)
        n, P = len(prep), len(prep.half)
        scale = estimate_scale(prep, n, source_path(particles), block=chunk)
        row_shape = _row_shape(P, dtype)
        header = {"descr": np.lib.format.dtype_to_descr(_NUMPY[dtype]), "fortran_order": False, "shape": (n, *row_shape)}
        try:
            with atomic_path(data) as tmp, open(tmp, "wb") as f:
                np.lib.format.write_array_header_1_0(f, header)
                offset = f.tell()
                with tqdm(total=n, unit="image", desc="caching transforms", disable=not progress, mininterval=0.5) as bar:
                    for start in range(0, n, chunk):
                        stop = min(start + chunk, n)
                        F = prep(start, stop)
                        F /= scale
                        f.write(np.ascontiguousarray(_encode(F, dtype)).tobytes())
                        bar.update(stop - start)
                f.flush()
            meta = {**meta, "P": P, "scale": scale, "offset": offset, "apix_out": prep.apix,
                    "crc": _crc_rows(data, offset, int(np.prod(row_shape)) * _NUMPY[dtype].itemsize, n)}
            with atomic_write(sidecar, "w") as f:
                json.dump(meta, f, indent=1)
        except OSError as err:
            if err.errno == errno.ENOSPC:
                need = n * int(np.prod(row_shape)) * _NUMPY[dtype].itemsize
                raise CryonbError(f"{data.parent}: the disk is full while caching {n:,} transforms ({need / 2**30:.1f} GiB). "
                                  f"Fix: free space there, put the cache elsewhere (TrainConfig(cache_dir=...)), "
                                  f"use cache_dtype='bfloat16' (half the size), or a smaller box") from None
            raise
        return cls(data, meta)

    def read(self, rows: np.ndarray, pin: bool = False, out: torch.Tensor | None = None) -> torch.Tensor:
        """Rows (in the given order) as a host tensor of the storage dtype, ``(n, *row_shape)``.

        Positioned reads straight into the (pinned) buffer, or into the first rows of ``out``
        (uint8, (≥ n, row_bytes)): one syscall per run of consecutive rows, so a sorted or
        sequential batch is one read, and nothing goes through the page cache's mapping into this
        process's memory.
        """
        rows = np.asarray(rows, np.int64)
        n = len(rows)
        buf = torch.empty((n, self.row_bytes), dtype=torch.uint8, pin_memory=pin) if out is None else out[:n]
        view = buf.numpy()
        order = np.argsort(rows, kind="stable")
        srt = rows[order]
        breaks = np.flatnonzero(np.diff(srt) != 1) + 1
        fd = os.open(self.path, os.O_RDONLY)
        try:
            for run in np.split(np.arange(n), breaks):
                for part in np.array_split(run, max(1, math.ceil(len(run) / 512))):
                    if not len(part):
                        continue
                    dests = [memoryview(view[order[j]]) for j in part]
                    want = len(part) * self.row_bytes
                    got = os.preadv(fd, dests, self.offset + int(srt[part[0]]) * self.row_bytes)
                    if got != want:
                        raise CryonbError(f"{self.path}: the cache file is shorter than its sidecar says. "
                                          f"Fix: delete it (and its .json); it is rebuilt on the next run")
        finally:
            os.close(fd)
        return self.as_rows(buf, n)

    def as_rows(self, raw: torch.Tensor, n: int) -> torch.Tensor:
        """The first ``n`` rows of raw bytes (uint8, (≥ n, row_bytes)) as ``(n, *row_shape)`` of the storage dtype."""
        return raw[:n].view(_TORCH[self.dtype]).view(n, *self.row_shape)

    def read_slice(self, start: int, stop: int, pin: bool = False) -> torch.Tensor:
        return self.read(np.arange(start, min(stop, self.n)), pin)


def decode(x: torch.Tensor) -> torch.Tensor:
    """Cache rows (on any device) as complex64 (n, P)."""
    if x.dtype == torch.complex64:
        return x
    return torch.view_as_complex(x.float().contiguous())
