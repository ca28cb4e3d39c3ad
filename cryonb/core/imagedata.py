"""Particle images prepared once for training, held on the device (:class:`ImageData`), or streamed
from a disk cache when they do not fit (:func:`image_data` chooses)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .ctf import particle_ctf
from .poses import metadata_rotations
from .train_config import TrainConfig


class ImageData:
    """Particle images prepared once for training: windowed, transformed, re-centred, on the device.

    Holds the half-plane of each image's centred transform (N, P) scaled to unit variance, with the
    rotations and CTF parameters, so that a training step does no CPU work. Data larger than memory:
    :class:`~cryonb.core.streaming.StreamedImageData` (same interface, a disk cache read per batch).
    """

    def __init__(self, particles, box: int | None = None, device="cpu", chunk: int = 1024, poses: bool = True):
        from .preprocess import Preprocess, estimate_scale
        from .streaming import check_fits

        self.device = torch.device(device)
        prep = Preprocess(particles, box, poses, self.device)
        self.D, self.apix, self.half = prep.D, prep.apix, prep.half
        check_fits(len(particles), self.D, self.device, getattr(particles.source, "path", None))
        # Transformed on the device, straight into the device's copy: no host copy of the whole set.
        out = torch.empty(len(particles), len(self.half), dtype=torch.complex64, device=self.device)
        for start in range(0, len(particles), chunk):
            out[start : start + chunk] = prep(start, min(start + chunk, len(particles)))
        self.scale = estimate_scale(lambda a, b: out[a:b], len(out), getattr(particles.source, "path", None))
        out /= self.scale
        self.images = out
        self.rotations = metadata_rotations(particles, self.device)
        if particles.ctf is None:
            self.ctf = None
        else:
            self.ctf = torch.as_tensor(np.asarray(particles.ctf, dtype=np.float32)).to(self.device)
        self.freqs = (self.half.coords[:, :2] / (self.D * self.apix)).to(self.device)

    def __len__(self) -> int:
        return len(self.images)

    def set_order(self, order, batch_size: int, n_batches: int, rank: int = 0, world: int = 1):
        """(Streamed data reads an epoch's batches ahead; everything here is on the device already.)"""

    def stage(self, idx: torch.Tensor, position: int):
        """(Streamed data moves the next batch to the device here.)"""

    def close(self):
        """(Streamed data stops its reader thread here.)"""

    def batch(self, idx: torch.Tensor):
        """Images, rotations and CTF (B, P) of the particles at ``idx`` (a device tensor)."""
        return self.images[idx], self.rotations[idx], particle_ctf(self.ctf, self.freqs, idx)


def image_data(particles, config: TrainConfig, device, run_dir=None):
    """The training data for ``config``: :class:`ImageData` in memory, or streamed from a disk cache
    (``config.stream``; None decides by :func:`~cryonb.core.streaming.should_stream`)."""
    from .particles import require_images
    from .streaming import StreamedImageData, should_stream

    require_images(particles, "train on")
    stream = config.stream
    if stream is None and particles.images is not None:
        stream = should_stream(len(particles), config.box or particles.box_size, device)
    poses = config.poses == "known"  # whether the particles must have poses
    if not stream:
        return ImageData(particles, config.box, device, poses=poses)
    cache_dir = config.cache_dir or (None if run_dir is None else Path(run_dir) / "cache")
    return StreamedImageData(particles, config.box, device, cache_dir, config.cache_dtype, poses=poses)
