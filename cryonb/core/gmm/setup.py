"""Getting a Gaussian-mixture model ready for training: the neutral model from a map (or from the
particles' consensus back-projection), the decoder's gain and the encoder's feature statistics."""

from __future__ import annotations

import os

import numpy as np
import torch

from ..errors import InputError
from ..fourier import fourier_crop
from .fit import FitResult, fit_mixture

#: Particles whose gradient features set the encoder's per-feature mean and spread.
SCALER_ROWS = 5000


def consensus_map(particles, box: int, device=None, progress: bool | None = None) -> tuple[torch.Tensor, float]:
    """The particles' back-projection (CTF-weighted, Wiener-filtered), Fourier-cropped to ``box``; and its pixel size."""
    from ..reconstruct import backproject

    rec = backproject(particles, device=device or "cpu", half_maps=False, progress=progress)
    volume = rec.volume.float().cpu()
    D0 = volume.shape[-1]
    return fourier_crop(volume, box, ndim=3), rec.apix * D0 / box


def map_at_box(path: str | os.PathLike, box: int, apix: float) -> torch.Tensor:
    """A map file brought to the training box: Fourier-cropped when its box is larger at the same field of view."""
    from ..io.mrc import read_map

    volume, map_apix = read_map(path)
    if volume.ndim != 3 or len(set(volume.shape)) != 1:
        raise InputError(path, f"the map is not cubic ({volume.shape})", "pass a cubic map")
    D = volume.shape[-1]
    if map_apix and abs(map_apix * D - apix * box) > 0.02 * apix * box:
        raise InputError(path, f"the map spans {map_apix * D:.1f} Å but the particles {apix * box:.1f} Å",
                         "give a map of the particles' box and pixel size (e.g. from cryonb backproject)")
    if D < box:
        raise InputError(path, f"the map's box ({D}) is smaller than the training box ({box})", f"use --box {D} or smaller")
    return fourier_crop(torch.from_numpy(np.array(volume)), box, ndim=3)


def neutral_model(particles, box: int, apix: float, map_path=None, resolution: float | None = None,
                  max_gaussians: int = 4096, device=None, progress: bool | None = None, **fit_options) -> FitResult:
    """Fit the neutral mixture to ``map_path`` or, without one, to the particles' consensus map."""
    if map_path is None:
        volume, apix = consensus_map(particles, box, device, progress)
    else:
        volume = map_at_box(map_path, box, apix)
    return fit_mixture(volume, apix, resolution=resolution, max_gaussians=max_gaussians, device=device,
                       progress=progress, **fit_options)


def prepare(encoder, data, rows: int = SCALER_ROWS, batch_size: int = 256):
    """:meth:`GradientEncoder.prepare <cryonb.core.gmm.encoder.GradientEncoder.prepare>` on the first
    ``rows`` particles of ``data`` (an ImageData): the decoder's gain and the feature scaler."""
    n = min(len(data), rows)
    device = data.device
    return encoder.prepare(data.batch(torch.arange(s, min(s + batch_size, n), device=device)) for s in range(0, n, batch_size))
