"""The gradient encoder: latents from each particle's loss gradient at the neutral model (e2gmm).

:class:`GradientEncoder` keeps a frozen copy of the neutral mixture (as it was when training began,
gain included, so the features do not drift while the decoder learns), computes the standardised
gradient features of a batch (:func:`~cryonb.core.gmm.features.gradient_features`) and maps them
through an MLP to ``z``. Its variance is fixed (``noise_std``): training adds Gaussian noise of that
size to ``z`` instead of a KL term, the fixed-variance VAE of Chen & Ludtke (2021).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..model import HalfPlane, mlp
from .features import FeatureScaler, gradient_features
from .loss import LOSSES, ring_index


class GradientEncoder(nn.Module):
    """``(images, rotations, ctf) -> (mu, logvar)`` through gradient features; ``logvar`` is constant.

    ``decoder``: the :class:`~cryonb.core.gmm.decoder.GaussianDecoder` whose neutral model (and
    movable Gaussians) define the features. ``radius``: the features use pixels up to this
    frequency radius (pixels of frequency; default: Nyquist).
    """

    def __init__(self, decoder, zdim: int, width: int = 256, depth: int = 3, noise_std: float = 0.1,
                 loss: str = "frc", radius: float | None = None):
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, not {loss!r}")
        self.D, self.zdim, self.loss, self.width, self.depth = decoder.D, zdim, loss, width, depth
        self.logvar = 2 * math.log(noise_std)
        self.chunk_elements = decoder.chunk_elements
        half = HalfPlane.build(decoder.D)
        self.register_buffer("coords", half.coords, persistent=False)
        self.register_buffer("rings", ring_index(half.coords, decoder.D // 2 if radius is None else radius), persistent=False)
        self._build(*(t.detach() for t in decoder.gaussians(None)), decoder.movable)

    def _build(self, positions, amplitudes, widths, select):
        positions, amplitudes, widths = positions.reshape(-1, 3), amplitudes.reshape(-1), widths.reshape(-1)
        for name, value in (("positions", positions), ("amplitudes", amplitudes), ("widths", widths), ("select", select)):
            self._buffers.pop(name, None)
            self.register_buffer(name, value.clone())
        n_features = 5 * int(select.sum())
        self.scaler = FeatureScaler(n_features)
        self.net = mlp(n_features, self.width, self.depth, self.zdim)

    def features(self, images: torch.Tensor, rotations: torch.Tensor, ctf) -> torch.Tensor:
        """Raw gradient features (B, 5M) of a batch."""
        coords = self.coords.to(rotations.dtype) @ rotations
        return gradient_features((self.positions, self.amplitudes, self.widths), self.D, coords, images, ctf, self.rings,
                                 self.loss, self.select, self.chunk_elements)

    @torch.no_grad()
    def fit_scaler(self, batches) -> GradientEncoder:
        """Standardise features with the mean and spread over ``batches`` of (images, rotations, ctf)."""
        self.scaler.fit(self.features(*b) for b in batches)
        return self

    def forward(self, images: torch.Tensor, rotations: torch.Tensor, ctf) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.scaler(self.features(images, rotations, ctf))
        mu = self.net(x).float()
        return mu, torch.full_like(mu, self.logvar)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        key = prefix + "positions"
        if key in state_dict and state_dict[key].shape != self.positions.shape:
            self._build(state_dict[key], state_dict[prefix + "amplitudes"], state_dict[prefix + "widths"],
                        state_dict[prefix + "select"].bool())
            self.to(self.coords.device)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)
