"""The gradient encoder: latents from each particle's loss gradient at the neutral model (e2gmm).

:class:`GradientEncoder` keeps a frozen copy of the neutral mixture (as it was when training began,
gain included, so the features do not drift while the decoder learns), computes the standardised
gradient features of a batch (:func:`~cryonb.core.gmm.features.gradient_features`) and maps them
through an MLP to ``z``. Its variance is fixed (``noise_std``): training adds Gaussian noise of that
size to ``z`` instead of sampling a learnt variance, the fixed-variance VAE of Chen & Ludtke (2021),
whose KL term reduces to ``|mu|²/2``. It is a latent source of :mod:`cryonb.core.latents`
(``source(idx, images, noise, rotations=, ctf=)`` -> ``Latents``); its prior adds the decoder's
offset penalty (:meth:`~cryonb.core.gmm.decoder.GaussianDecoder.penalty`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..model import HalfPlane
from ..nets import mlp
from .features import FeatureScaler, gradient_features
from .loss import LOSSES, ring_index


class GradientEncoder(nn.Module):
    """``(images, rotations, ctf) -> (mu, logvar)`` through gradient features; ``logvar`` is constant.

    ``decoder``: the :class:`~cryonb.core.gmm.decoder.GaussianDecoder` whose neutral model (and
    movable Gaussians) define the features (held by reference, not as a submodule). ``radius``: the
    features use pixels up to this frequency radius (pixels of frequency; default: Nyquist).
    ``penalty``: weight of the decoder's offset penalty in the prior.

    Before training, :meth:`prepare` calibrates the decoder's gain and fits the feature scaler on the
    data; if it was not called, the first training batch does both. A particle's features depend only
    on its image and the frozen neutral model, so training computes them once
    (:meth:`cache_features`, as e2gmm does) when they fit in memory, not at every step.
    """

    has_table = False

    def __init__(self, decoder, zdim: int, width: int = 256, depth: int = 3, noise_std: float = 0.1,
                 loss: str = "frc", radius: float | None = None, penalty: float = 1.0):
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, not {loss!r}")
        self.D, self.zdim, self.loss, self.width, self.depth = decoder.D, zdim, loss, width, depth
        self.noise_std, self.penalty_weight = noise_std, penalty
        self.logvar = 2 * math.log(noise_std)
        self.chunk_elements = decoder.chunk_elements
        object.__setattr__(self, "decoder", decoder)  # a reference: the decoder is the model's own submodule
        half = HalfPlane.build(decoder.D)
        self.register_buffer("coords", half.coords, persistent=False)
        self.register_buffer("rings", ring_index(half.coords, decoder.D // 2 if radius is None else radius), persistent=False)
        self.register_buffer("ready", torch.zeros((), dtype=torch.bool))
        self._prepared = False  # mirrors ``ready`` on the host: no device sync per step (CUDA graphs)
        self._cache_data = None  # the training data whose features are cached (cache_features)
        self._cache = None  # (N, F) raw features of every particle of _cache_data, made at first use
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
    def snapshot(self) -> None:
        """Copy the decoder's current neutral model (gain included) as the features' reference."""
        p, a, w = self.decoder.gaussians(None)
        self._cache = None
        self.positions.copy_(p[0])
        self.amplitudes.copy_(a[0])
        self.widths.copy_(w[0])

    @torch.no_grad()
    def prepare(self, batches) -> GradientEncoder:
        """Calibrate the decoder's gain on the first of ``batches`` (images, rotations, ctf), snapshot the
        neutral model and standardise features with their mean and spread over all of them."""
        batches = iter(batches)
        first = next(batches)
        images, rotations, ctf = first
        self.decoder.calibrate(images, self.coords.to(rotations.dtype) @ rotations, ctf)
        self.snapshot()

        def all_batches():
            yield first
            yield from batches

        self.scaler.fit(self.features(*b) for b in all_batches())
        self.ready.fill_(True)
        self._prepared = True
        return self

    def cache_features(self, data, batch_size: int = 256, budget: int | None = None) -> bool:
        """Serve training batches of ``data`` (an ImageData or its streamed twin: ``len`` and
        ``batch(idx)``) from features computed once for every particle, if they take at most
        ``budget`` bytes (default: a quarter of the free GPU memory, 2 GiB on a CPU). They are
        computed at the first training step, in a fixed order (a resumed run gets the same numbers),
        and again after the neutral model changes. False: they would not fit; each step computes them.
        """
        n_bytes = len(data) * self.scaler.mean.numel() * 4
        if budget is None:
            device = self.coords.device
            budget = torch.cuda.mem_get_info(device)[0] // 4 if device.type == "cuda" else 2 * 2**30
        self._cache_data, self._cache = (data if n_bytes <= budget else None), None
        self._cache_batch = batch_size
        return self._cache_data is not None

    @torch.no_grad()
    def _cached(self, idx: torch.Tensor) -> torch.Tensor:
        if self._cache is None:
            data, n, step = self._cache_data, len(self._cache_data), self._cache_batch
            rows = (data.batch(torch.arange(s, min(s + step, n), device=self.coords.device)) for s in range(0, n, step))
            self._cache = torch.cat([self.features(*batch) for batch in rows])
        return self._cache[idx]

    def gaussian(self, images: torch.Tensor, rotations: torch.Tensor, ctf, idx: torch.Tensor | None = None):
        """Mean and (constant) log-variance of z; with ``idx``, the features are read from the cache
        (:meth:`cache_features`) when one is set: the training path (:meth:`means` computes them)."""
        if rotations is None:
            raise ValueError("the gradient encoder needs each image's rotation and CTF (rotations=..., ctf=...)")
        if ctf is None:
            ctf = torch.ones((), device=images.device)
        if not self._prepared:
            self._prepared = bool(self.ready)  # a loaded checkpoint was prepared
            if not self._prepared:
                self.prepare([(images, rotations, ctf)])
        cached = idx is not None and self._cache_data is not None
        x = self.scaler(self._cached(idx) if cached else self.features(images, rotations, ctf))
        mu = self.net(x).float()
        return mu, torch.full_like(mu, self.logvar)

    def forward(self, idx, images, noise: torch.Tensor | None = None, rotations=None, ctf=None):
        from ..latents import Latents

        mu, _ = self.gaussian(images, rotations, ctf, idx)
        z = mu if noise is None else mu + self.noise_std * noise
        prior = 0.5 * mu.pow(2).sum(-1)
        if self.penalty_weight and self.decoder.net is not None:
            prior = prior + self.penalty_weight * self.decoder.penalty(z)
        return Latents(z, mu, prior)

    def means(self, idx, images, rotations=None, ctf=None) -> torch.Tensor:
        return self.gaussian(images, rotations, ctf)[0]

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        key = prefix + "positions"
        self._cache = None
        if key in state_dict and state_dict[key].shape != self.positions.shape:
            self._build(state_dict[key], state_dict[prefix + "amplitudes"], state_dict[prefix + "widths"],
                        state_dict[prefix + "select"].bool())
            self.to(self.coords.device)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)
