"""Encoder input of the Gaussian-mixture model: each particle's gradient of the loss with respect to
the neutral model's parameters.

The gradient lives in the model's frame (positions, amplitudes and widths of its Gaussians), so it
does not depend on the particle's rotation or shift, only on how its image departs from the neutral
model's projection. Per-particle gradients of a batch come from one backward pass: each particle
gets its own copy of the neutral parameters, so the gradient of the summed loss with respect to a
copy is that particle's gradient. Features are normalised per feature with the dataset's mean and
standard deviation (:class:`FeatureScaler`).
"""

from __future__ import annotations

import torch
from torch import nn

from .loss import image_loss


def gradient_features(neutral, D: int, coords: torch.Tensor, images: torch.Tensor, ctf, rings: torch.Tensor,
                      loss: str = "frc", select: torch.Tensor | None = None, chunk_elements: int | None = None) -> torch.Tensor:
    """Per-particle gradients (B, F) of ``loss`` at the mixture ``neutral`` = (positions (N, 3),
    amplitudes (N,), widths (N,)) of a ``D`` box, for images (B, P) seen at frequencies ``coords``
    (B, P, 3) (the half-plane rotated by each particle's pose) with CTF (B, P).

    Features, per Gaussian: position (3), amplitude, width: ``5 N`` numbers, or ``5 M`` for the
    Gaussians where ``select`` (N,) is true. Amplitude and width gradients are taken with respect to
    their logarithms, so that all features are in units of relative change.
    """
    from .mixture import CHUNK_ELEMENTS, mixture_transform

    B = len(images)
    p0, a0, w0 = (t.detach().float() for t in neutral)
    with torch.enable_grad(), torch.autocast(coords.device.type, enabled=False):
        pos = p0.expand(B, -1, -1).clone().requires_grad_()
        loga = a0.abs().clamp(min=1e-30).log().expand(B, -1).clone().requires_grad_()
        logw = w0.log().expand(B, -1).clone().requires_grad_()
        pred = mixture_transform(coords.float(), pos, torch.sign(a0) * loga.exp(), logw.exp(), D,
                                 chunk_elements or CHUNK_ELEMENTS)
        total = image_loss(loss, pred * ctf, images, rings).sum()
        g_pos, g_a, g_w = torch.autograd.grad(total, (pos, loga, logw))
    features = torch.cat([g_pos, g_a[..., None], g_w[..., None]], dim=-1)  # (B, N, 5)
    if select is not None:
        features = features[:, select]
    return features.flatten(1)


class FeatureScaler(nn.Module):
    """Per-feature mean and standard deviation over a dataset; ``scaler(x)`` standardises ``x``."""

    def __init__(self, n_features: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))

    @torch.no_grad()
    def fit(self, batches) -> FeatureScaler:
        """Accumulate mean and variance (float64, one pass) over an iterable of (B, F) feature batches."""
        total, s1, s2 = 0, None, None
        for x in batches:
            x = x.double()
            s1 = x.sum(0) if s1 is None else s1 + x.sum(0)
            s2 = (x * x).sum(0) if s2 is None else s2 + (x * x).sum(0)
            total += len(x)
        mean = s1 / total
        var = (s2 / total - mean * mean).clamp(min=0)
        self.mean.copy_(mean.float())
        self.std.copy_(var.sqrt().clamp(min=var.sqrt().max() * 1e-6 + 1e-30).float())
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + "mean"
        if key in state_dict and state_dict[key].shape != self.mean.shape:  # resized with its decoder
            n = len(state_dict[key])
            self.mean = self.mean.new_zeros(n)
            self.std = self.std.new_ones(n)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
