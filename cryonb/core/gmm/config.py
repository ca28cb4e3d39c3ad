"""Building the Gaussian-mixture model's parts from a :class:`~cryonb.core.train_config.TrainConfig`.

``decoder_from_config(config, D)`` (``TrainConfig(decoder="gmm", neutral_map=...)``): the neutral
model is ``neutral_map`` itself when it is a mixture file (``.npz`` from
:meth:`GaussianMixture.save <cryonb.core.gmm.mixture.GaussianMixture.save>`), or fitted to it when
it is a map (fits are cached under ``~/.cache/cryonb/gmm``, keyed by the map's bytes, the box and the
fit options, so reopening a run does not fit again; the checkpoint holds the neutral model anyway).
``latents_from_config(config, decoder)``: the gradient encoder.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from ..errors import InputError
from .decoder import GaussianDecoder
from .encoder import GradientEncoder
from .mixture import GaussianMixture

#: Defaults of the options a configuration may leave out (TrainConfig fields of the same names win).
GMM_DEFAULTS = {"gmm_mode": "both", "gmm_resolution": 3.0, "gmm_max_gaussians": 4096, "gmm_noise": 0.1,
                "gmm_feature_loss": "frc", "gmm_penalty": 1.0, "gmm_mask": None}


def option(config, name: str):
    value = getattr(config, name, None)
    return GMM_DEFAULTS[name] if value is None else value


def cache_dir() -> Path:
    return Path(os.environ.get("CRYONB_CACHE", Path.home() / ".cache" / "cryonb")) / "gmm"


def neutral_for_box(path, D: int, resolution_px: float = 3.0, max_gaussians: int = 4096, device=None,
                    progress: bool | None = None) -> GaussianMixture:
    """The neutral mixture for a ``D`` box from ``path``: a mixture ``.npz`` (rescaled to ``D`` at the same
    field of view) or a map fitted down to ``resolution_px`` pixels of the ``D`` box (cached)."""
    from ..fourier import fourier_crop
    from ..io.mrc import read_map
    from .fit import fit_mixture

    path = Path(path)
    if path.suffix == ".npz":
        m = GaussianMixture.load(path)
        f = D / m.D
        return GaussianMixture(m.positions * f, m.amplitudes, m.widths * f, D, m.apix / f)
    data = path.read_bytes() if path.is_file() else None
    if data is None:
        raise InputError(path, "neutral map not found", "pass the consensus map (e.g. from cryonb backproject) or a .npz mixture")
    key = hashlib.sha256(data + json.dumps([D, resolution_px, max_gaussians]).encode()).hexdigest()[:24]
    cached = cache_dir() / f"{key}.npz"
    if cached.is_file():
        try:
            return GaussianMixture.load(cached)
        except InputError:
            pass  # a damaged cache entry: fit again
    volume, apix = read_map(path)
    if volume.ndim != 3 or len(set(volume.shape)) != 1:
        raise InputError(path, f"the neutral map is not cubic ({volume.shape})", "pass a cubic map")
    D0 = volume.shape[-1]
    if D0 < D:
        raise InputError(path, f"the neutral map's box ({D0}) is smaller than the training box ({D})",
                         f"train at --box {D0} or less, or give a map of the particles' box")
    apix = (apix or 1.0) * D0 / D
    volume = fourier_crop(torch.from_numpy(volume.copy()), D, ndim=3)
    result = fit_mixture(volume, apix, resolution=resolution_px * apix, max_gaussians=max_gaussians, device=device,
                         progress=progress)
    cached.parent.mkdir(parents=True, exist_ok=True)
    result.mixture.save(cached)
    return result.mixture


def unit_projection_scale(mixture: GaussianMixture) -> GaussianMixture:
    """The mixture scaled so that its central slices have unit RMS over the half-plane (the training
    images' scale, before the decoder's gain)."""
    from ..model import HalfPlane
    from ..rotations import random_rotations

    coords = HalfPlane.build(mixture.D).coords
    R = random_rotations(4, torch.Generator().manual_seed(0))
    rms = float(torch.stack([mixture.transform(coords @ r) for r in R]).abs().pow(2).mean().sqrt())
    rms = rms if rms > 0 else 1.0
    return GaussianMixture(mixture.positions, mixture.amplitudes / rms, mixture.widths, mixture.D, mixture.apix)


def movable_from_mask(mixture: GaussianMixture, path) -> torch.Tensor:
    """The Gaussians (N,) bool whose centres fall where the mask map at ``path`` exceeds 0.5 (focused analysis).

    The mask covers the same field of view as the mixture's box (any box size: its voxel is looked up
    at the same fraction of the box)."""
    from ..io.mrc import read_map

    mask, _ = read_map(path)
    if mask.ndim != 3 or len(set(mask.shape)) != 1:
        raise InputError(path, f"the mask is not cubic ({mask.shape})", "pass a cubic mask of the particles' field of view")
    M = mask.shape[-1]
    idx = ((mixture.positions + mixture.D // 2) * (M / mixture.D)).round().long().clamp(0, M - 1)
    movable = torch.from_numpy(mask.copy())[idx[:, 2], idx[:, 1], idx[:, 0]] > 0.5
    if not bool(movable.any()):
        raise InputError(path, "no Gaussian lies inside the mask", "check that the mask is in the frame of the neutral map")
    return movable


def decoder_from_config(config, D: int) -> GaussianDecoder:
    """The Gaussian decoder that ``config`` (``decoder="gmm"``, ``neutral_map``) describes, for a ``D`` box;
    with ``gmm_mask`` (a map) only the Gaussians inside the mask vary."""
    neutral = neutral_for_box(config.neutral_map, D, option(config, "gmm_resolution"), option(config, "gmm_max_gaussians"))
    mask = option(config, "gmm_mask")
    movable = None if mask is None else movable_from_mask(neutral, mask)
    return GaussianDecoder(unit_projection_scale(neutral), config.zdim, config.dec_width or 256, config.dec_depth,
                           option(config, "gmm_mode"), movable)


def latents_from_config(config, decoder: GaussianDecoder) -> GradientEncoder:
    """The gradient encoder of a Gaussian decoder (``latents="gradient"``)."""
    return GradientEncoder(decoder, config.zdim, config.enc_width or 256, config.enc_depth, option(config, "gmm_noise"),
                           option(config, "gmm_feature_loss"), penalty=option(config, "gmm_penalty"))
