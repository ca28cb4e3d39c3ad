"""Training data larger than memory, streamed per batch from an on-disk cache.

:class:`ImageData <cryonb.core.imagedata.ImageData>` keeps every image's transform on the device;
:class:`StreamedImageData` has the same interface but keeps them in a cache file
(:class:`~cryonb.core.image_cache.ImageCache`, built once) and moves one batch at a time to the
device, read ahead by a background thread into pinned memory. Host memory stays bounded by the
batches in flight, whatever the number of particles. :func:`should_stream` and :func:`check_fits`
decide between the two from the memory the transforms would take.
"""

from __future__ import annotations

import math
import queue
import shutil
import tempfile
import threading
import weakref

import numpy as np
import torch

from .ctf import particle_ctf
from .errors import InputError
from .image_cache import ImageCache, decode
from .model import HalfPlane
from .poses import metadata_rotations
from .preprocess import require_poses



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
        rows = self.cache.as_rows(self._ring[i], n)
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
        return images, self.rotations[idx], particle_ctf(self.ctf, self.freqs, idx)
