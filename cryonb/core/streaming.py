"""Training data larger than memory: preprocess once into an on-disk cache, stream it per batch.

:class:`ImageData <cryonb.core.imagedata.ImageData>` keeps every image's transform on the device;
:class:`StreamedImageData` has the same interface but keeps them in a cache file and moves one
batch at a time to the device, read ahead by a background thread into pinned memory. Host memory
stays bounded by the batches in flight, whatever the number of particles.

The cache is a ``.npy`` file (``np.load(path, mmap_mode="r")`` opens it) of the half-plane
transforms, already divided by the data's scale: complex64 ``(N, P)``, or ``(N, P, 2)`` real/imag
pairs in float16 or bfloat16 (stored as uint16 bit patterns; half the bytes to read and move).
A JSON sidecar written last records what it was made from (box, pixel size, scale, source files,
N, dtype, a fingerprint of images and shifts); a cache is reused only when all of it matches and
the file has its full size and sampled checksums, and is rebuilt otherwise (a crash mid-write
leaves no sidecar, so the partial file is never used).

Both classes share :class:`Preprocess` (window, Fourier crop, centred FFT, half-plane, shift phase
ramp) and :func:`estimate_scale`, so an in-memory and a streamed run see the same numbers.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import math
import os
import queue
import shutil
import tempfile
import threading
import weakref
import zlib
from pathlib import Path

import numpy as np
import torch

from .ctf import compute_ctf
from .errors import CryonbError, InputError
from .finite import check_finite_images
from .fourier import fft2_center, fourier_crop, soft_circular_mask
from .model import HalfPlane
from .poses import metadata_rotations

CACHE_VERSION = 1
CACHE_DTYPES = ("complex64", "float16", "bfloat16")
SCALE_ROWS = 5000  # the images whose transforms set the scale
_TORCH = {"complex64": torch.complex64, "float16": torch.float16, "bfloat16": torch.bfloat16}
_NUMPY = {"complex64": np.dtype("<c8"), "float16": np.dtype("<f2"), "bfloat16": np.dtype("<u2")}


def require_poses(particles):
    """An :class:`InputError` if the particles have no poses (for training at known poses)."""
    if particles.rotations is None:
        raise InputError(_source_path(particles), "the particles have no poses",
                         "give a .star/.cs with refined angles, or poses=<cryoDRGN poses .pkl>; "
                         "or find them ab initio (cryonb abinit)")


def _source_path(particles):
    return getattr(particles.source, "path", None)


class Preprocess:
    """The per-image transform of the training data, chunk by chunk.

    ``prep(start, stop)`` reads images ``start:stop`` of the particle set and returns their
    half-plane transforms (n, P) complex64 on ``device``, not yet scaled: windowed, Fourier-cropped
    to ``box``, centred FFT, and translated by their shifts so the particle sits at the centre.
    """

    def __init__(self, particles, box: int | None = None, poses: bool = True, device="cpu"):
        if poses:
            require_poses(particles)
        self.particles = particles
        self.D0 = D0 = particles.box_size
        self.D = box or D0
        if self.D > D0:
            raise InputError(None, f"box {self.D} is larger than the images ({D0})", f"use box <= {D0}")
        self.apix = (particles.apix or 1.0) * D0 / self.D
        self.half = HalfPlane.build(self.D)
        self.device = torch.device(device)
        self.window = soft_circular_mask(D0, radius=0.85 * D0 / 2, width=0.1 * D0 / 2).to(self.device)
        shifts = np.zeros((len(particles), 2), np.float32) if particles.shifts is None else np.asarray(particles.shifts, dtype=np.float32)
        self.shifts = torch.as_tensor(shifts) * (self.D / D0)
        self.index = self.half.index.to(self.device)
        self.kx, self.ky = (self.half.coords[:, :2] / self.D).to(self.device).unbind(1)

    def __len__(self) -> int:
        return len(self.particles)

    def __call__(self, start: int, stop: int) -> torch.Tensor:
        imgs = torch.as_tensor(np.asarray(self.particles.images[start:stop], dtype=np.float32)).to(self.device)
        check_finite_images(imgs, self.particles, start)
        imgs = fourier_crop(imgs * self.window, self.D)
        F = fft2_center(imgs).flatten(1)[:, self.index]
        s = self.shifts[start:stop].to(self.device)
        # Translate each image by +shift so the particle sits at the centre.
        ramp = torch.polar(torch.ones((), device=self.device), -2 * math.pi * (s[:, :1] * self.kx + s[:, 1:] * self.ky))
        return F * ramp


def estimate_scale(rows, n: int, path=None, block: int = 1024) -> float:
    """The standard deviation of the real and imaginary parts of the first ``SCALE_ROWS`` transforms.

    ``rows(start, stop)`` gives transforms (complex, unscaled), read ``block`` at a time. Per-image
    sums in float64 are added exactly (``math.fsum``), so the result does not depend on ``block``:
    the in-memory and the cached data get the same scale.
    """
    n = min(n, SCALE_ROWS)
    sums, squares = [], []
    x = torch.zeros(0, 0)
    for start in range(0, n, block):
        x = torch.view_as_real(rows(start, min(start + block, n))).double().flatten(1)
        sums += x.sum(1).tolist()
        squares += (x * x).sum(1).tolist()
    count = n * x.shape[1]
    mean = math.fsum(sums) / max(count, 1)
    scale = math.sqrt(max(math.fsum(squares) - count * mean * mean, 0.0) / max(count - 1, 1))
    if not math.isfinite(scale) or scale == 0:
        raise InputError(path, "the images are empty or not finite", "check the stack (cryonb info) for NaNs or blank images")
    return scale


def transform_bytes(n: int, box: int) -> int:
    """Bytes of the complex64 half-plane transforms of ``n`` images at ``box`` (what ImageData holds)."""
    return int(n) * len(HalfPlane.build(box)) * 8


def free_memory(device) -> tuple[int, int | None]:
    """Available host memory and, for a CUDA device, free GPU memory (bytes)."""
    import psutil

    host = psutil.virtual_memory().available
    gpu = None
    device = torch.device(device)
    if device.type == "cuda":
        gpu = torch.cuda.mem_get_info(device)[0]
    return host, gpu


def should_stream(n: int, box: int, device) -> bool:
    """The rule for ``TrainConfig(stream=None)``: stream when the in-memory transforms
    (``n × P × 8`` bytes, P ≈ 0.39 box²) would take more than half of the memory they live in:
    the GPU's free memory on a GPU (they are transformed there), else the available host memory."""
    host, gpu = free_memory(device)
    return transform_bytes(n, box) > (host if gpu is None else gpu) / 2


def check_fits(n: int, box: int, device, path=None) -> None:
    """Raise a clear error, before allocating, when in-memory data cannot fit (item: no raw allocator errors)."""
    need = transform_bytes(n, box)
    host, gpu = free_memory(device)
    free, where = (host, f"host memory ({host / 2**30:.1f} GiB available)") if gpu is None else \
        (gpu, f"GPU memory ({gpu / 2**30:.1f} GiB free)")
    if need > 0.9 * free:
        raise InputError(path, f"the transforms of {n:,} images at box {box} need {need / 2**30:.1f} GiB, more than the {where}",
                         "stream them from a disk cache (TrainConfig(stream=True), or leave stream=None), "
                         "train at a smaller box (box=... or `cryonb downsample`), or free memory")


def chunked_permutation(n: int, generator: torch.Generator, block: int = 4096, group: int = 8) -> torch.Tensor:
    """An epoch's order that reads mostly in sequence (``TrainConfig(shuffle="chunked")``).

    The particles in blocks of ``block`` consecutive rows, the blocks in a random order, and the
    particles of each ``group`` consecutive blocks of that order shuffled together: a batch comes from
    at most ``group`` (or, across a group's end, 2 × ``group``) regions of the cache, each read many
    times in a row, instead of from anywhere in it.
    """
    blocks = torch.randperm(max(1, math.ceil(n / block)), generator=generator)
    out = []
    for start in range(0, len(blocks), group):
        rows = torch.cat([torch.arange(int(b) * block, min((int(b) + 1) * block, n)) for b in blocks[start : start + group]])
        out.append(rows[torch.randperm(len(rows), generator=generator)])
    return torch.cat(out)


# --------------------------------------------------------------------------- the cache file
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
            "source": None if _source_path(particles) is None else str(Path(_source_path(particles)).resolve()),
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
        scale = estimate_scale(prep, n, _source_path(particles), block=chunk)
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
        return buf.view(_TORCH[self.dtype]).view(n, *self.row_shape)

    def read_slice(self, start: int, stop: int, pin: bool = False) -> torch.Tensor:
        return self.read(np.arange(start, min(stop, self.n)), pin)


def decode(x: torch.Tensor) -> torch.Tensor:
    """Cache rows (on any device) as complex64 (n, P)."""
    if x.dtype == torch.complex64:
        return x
    return torch.view_as_complex(x.float().contiguous())


# --------------------------------------------------------------------------- streamed data
class _Rows:
    """``data.images[start:stop]``: a slice of the transforms, loaded to the device on demand."""

    def __init__(self, data: StreamedImageData):
        self._data = data

    def __len__(self) -> int:
        return self._data.cache.n

    def __getitem__(self, key):
        data = self._data
        if isinstance(key, slice):
            rows = np.arange(*key.indices(len(self)))
        else:
            rows = np.asarray(key.cpu() if torch.is_tensor(key) else key, np.int64).reshape(-1)
        return decode(data.cache.read(rows, pin=data._pin).to(data.device, non_blocking=data._pin))


class _Prefetcher(threading.Thread):
    """Reads batches ``start, start+1, ...`` of an epoch's order ahead of use, into a ring of
    reused (pinned) host buffers: the host memory is the ring's, whatever the number of batches."""

    def __init__(self, cache: ImageCache, batches, start: int, ring: list, events: list):
        super().__init__(daemon=True, name="cryonb-prefetch")
        self.cache, self.batches, self.first, self.next = cache, batches, start, start
        self.ring, self.events = ring, events  # events[i]: the copy out of ring[i] still in flight (CUDA)
        self.free: queue.Queue = queue.Queue()
        for i in range(len(ring)):
            self.free.put(i)
        self.queue: queue.Queue = queue.Queue()
        self.halt = threading.Event()

    def _wait(self, q: queue.Queue):
        while not self.halt.is_set():
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                continue
        return None

    def run(self):
        try:
            for p in range(self.first, len(self.batches)):
                i = self._wait(self.free)
                if i is None:
                    return
                if self.events[i] is not None:
                    self.events[i].synchronize()
                rows = self.batches[p]
                self.cache.read(rows, out=self.ring[i])
                self.queue.put((p, i, len(rows)))
        except BaseException as err:  # handed to the consumer, raised there
            self.queue.put((None, err, 0))

    def take(self, position: int):
        """(buffer index, rows) of the batch at ``position`` if it comes next, else None."""
        if position != self.next or self.next >= len(self.batches):
            return None
        p, i, n = self.queue.get()
        if p is None:
            raise i
        self.next += 1
        return i, n

    def release(self, i: int, event=None):
        self.events[i] = event
        self.free.put(i)

    def stop(self):
        self.halt.set()


class _Batches:
    """An epoch's per-step index lists for this process, computed on demand from the host order."""

    def __init__(self, order: np.ndarray, batch_size: int, n_batches: int, rank: int, world: int):
        self.order, self.bs, self.n, self.rank, self.world = order, batch_size, n_batches, rank, world

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, p: int) -> np.ndarray:
        return self.order[p * self.bs : (p + 1) * self.bs][self.rank :: self.world]


class StreamedImageData:
    """The interface of :class:`~cryonb.core.imagedata.ImageData`, the transforms streamed from a disk cache.

    ``rotations``, ``ctf`` and ``freqs`` are on the device (68 bytes a particle); the images are
    read per batch from the cache (see :class:`ImageCache`). The trainer tells it each epoch's
    order (:meth:`set_order`) and which batch comes next (:meth:`stage`); a background thread
    reads ``prefetch`` batches ahead into pinned memory, and :meth:`stage` copies one to a static
    device buffer (the address a CUDA-graph step reads). :meth:`batch` with other indices, and
    ``images[start:stop]`` (embedding), read synchronously.
    """

    def __init__(self, particles, box: int | None = None, device="cpu", cache_dir=None, dtype: str = "complex64",
                 prefetch: int = 4, progress: bool = True, chunk: int = 1024, poses: bool = True):
        self.device = torch.device(device)
        D0 = particles.box_size
        self.D = box or D0
        if self.D > D0:
            raise InputError(None, f"box {self.D} is larger than the images ({D0})", f"use box <= {D0}")
        if poses:
            require_poses(particles)
        if cache_dir is None:
            cache_dir = tempfile.mkdtemp(prefix="cryonb-cache-")
            weakref.finalize(self, shutil.rmtree, cache_dir, True)
        self.cache = ImageCache.open(cache_dir, particles, self.D, dtype, progress, chunk, device=self.device)
        self.apix = (particles.apix or 1.0) * D0 / self.D
        self.half = HalfPlane.build(self.D)
        self.scale = self.cache.scale
        self.rotations = metadata_rotations(particles, self.device)
        self.ctf = None if particles.ctf is None else torch.as_tensor(np.asarray(particles.ctf, dtype=np.float32)).to(self.device)
        self.freqs = (self.half.coords[:, :2] / (self.D * self.apix)).to(self.device)
        self.images = _Rows(self)
        self._pin = self.device.type == "cuda"
        self._depth = prefetch
        self._ring: list[torch.Tensor] = []  # prefetch + 1 host buffers of a batch's rows, made at the first epoch
        self._events: list = []
        self._batches: _Batches | None = None
        self._loader: _Prefetcher | None = None
        self._static: torch.Tensor | None = None  # the staged batch (rows of the cache's dtype), on the device
        self._staged_idx = None
        self._staged_n = 0
        self._holder = [None]  # the reader, for the finaliser to stop
        weakref.finalize(self, StreamedImageData._halt, self._holder)

    def __len__(self) -> int:
        return self.cache.n

    @staticmethod
    def _halt(holder):
        if holder[0] is not None:
            holder[0].stop()

    def set_order(self, order, batch_size: int, n_batches: int, rank: int = 0, world: int = 1):
        """This epoch's particle order (host), so that its batches can be read ahead."""
        self.close()
        self._batches = _Batches(np.asarray(order, np.int64), batch_size, n_batches, rank, world)
        if not self._ring or len(self._ring[0]) < batch_size:
            self._ring = [torch.empty((batch_size, self.cache.row_bytes), dtype=torch.uint8, pin_memory=self._pin)
                          for _ in range(self._depth + 1)]
            self._events = [None] * len(self._ring)

    def stage(self, idx: torch.Tensor, position: int):
        """Put the epoch's batch ``position`` (whose indices are ``idx``) in the device buffer."""
        if self._batches is None:
            return
        loader = self._loader
        item = None if loader is None else loader.take(position)
        if item is None:  # first batch of an epoch, or the trainer jumped (resume): restart the reader here
            self.close()
            self._loader = loader = _Prefetcher(self.cache, self._batches, position, self._ring, self._events)
            self._holder[0] = loader
            loader.start()
            item = loader.take(position)
        i, n = item
        rows = self._ring[i][:n].view(_TORCH[self.cache.dtype]).view(n, *self.cache.row_shape)
        if self._static is None or len(self._static) < n:
            self._static = torch.empty((max(n, self._batches.bs), *self.cache.row_shape), dtype=rows.dtype, device=self.device)
        self._static[:n].copy_(rows, non_blocking=self._pin)
        event = None
        if self._pin:  # on this device's stream: the current device of a process may be another GPU
            event = torch.cuda.Event()
            event.record(torch.cuda.current_stream(self.device))
        loader.release(i, event)
        self._staged_idx, self._staged_n = idx, n

    def close(self):
        """Stop the reader thread (a new one starts at the next :meth:`stage`)."""
        if self._loader is not None:
            self._loader.stop()
            self._loader.join()
            self._loader = None

    def batch(self, idx: torch.Tensor):
        """Images, rotations and CTF (B, P) of the particles at ``idx`` (a device tensor)."""
        capturing = self.device.type == "cuda" and torch.cuda.is_current_stream_capturing()
        if capturing or (idx is self._staged_idx and len(idx) == self._staged_n):
            images = decode(self._static[: len(idx)])
        else:
            images = self.images[idx]
        if self.ctf is None:
            ctf = torch.ones((), device=self.device)
        else:
            p = self.ctf[idx][:, :, None]
            ctf = compute_ctf(self.freqs, *p.unbind(1))
        return images, self.rotations[idx], ctf
