"""The per-image transform of training data, shared by in-memory and streamed data.

:class:`Preprocess` (window, Fourier crop, centred FFT, half-plane, shift phase ramp) and
:func:`estimate_scale`, so that :class:`~cryonb.core.imagedata.ImageData` and
:class:`~cryonb.core.streaming.StreamedImageData` see the same numbers.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .errors import InputError
from .finite import check_finite_images
from .fourier import fft2_center, fourier_crop, soft_circular_mask
from .model import HalfPlane

SCALE_ROWS = 5000  # the images whose transforms set the scale


def require_poses(particles):
    """An :class:`InputError` if the particles have no poses (for training at known poses)."""
    if particles.rotations is None:
        raise InputError(source_path(particles), "the particles have no poses",
                         "give a .star/.cs with refined angles, or poses=<cryoDRGN poses .pkl>; "
                         "or find them ab initio (cryonb abinit)")


def source_path(particles):
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
