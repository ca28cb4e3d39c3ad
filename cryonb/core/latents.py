"""Where each particle's latent ``z`` comes from: an amortised encoder, or a table of latents.

A latent source is a module called as ``source(idx, images, noise, rotations=, ctf=)`` for the
particles at ``idx`` (their half-plane transforms ``images``, poses and CTF) returning :class:`Latents`: the ``z`` the decoder sees,
the means reported by :meth:`~Encoder.means`, and a per-particle ``prior`` penalty (the KL term of
a VAE, or the Gaussian prior of an autodecoder). ``noise`` (B, zdim) is a standard normal draw,
or None to use the means.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .nets import mlp, residual_mlp
from .projection import sample_volume
from .row_adam import rows


@dataclass
class Latents:
    z: torch.Tensor  # (B, zdim) what the decoder sees
    mu: torch.Tensor  # (B, zdim) the particle's latent mean
    prior: torch.Tensor  # (B,) the regularising penalty
    features_error: torch.Tensor | None = None  # (B,) squared error of z's linear prediction of the encoder's fixed features


class SliceFilters(nn.Module):
    """Learned 3D filters read at each image's pose: for filter ``j`` the image's correlation with the
    central slice of ``W_j`` at the image's rotation, CTF applied, Σ_k Re(conj W_j(R k) · c(k) · Y(k)),
    over the half-plane pixels ``coords`` (P, 3) within ``radius`` pixels of frequency.

    A part of the map present in some particles and missing in others is one filter, whatever the
    view; an encoder that reads pixels alone must learn it anew for every view. The poses are read,
    not trained: no gradient reaches them from here.
    """

    def __init__(self, coords: torch.Tensor, n: int, radius: float):
        super().__init__()
        keep = torch.nonzero(coords[:, :2].norm(dim=-1) <= radius).squeeze(1)
        self.n = n
        self.register_buffer("pixels", keep, persistent=False)
        self.register_buffer("coords", coords[keep].float(), persistent=False)
        side = 2 * math.ceil(radius) + 1  # frequencies -ceil(radius)..ceil(radius) on each axis
        g = torch.Generator().manual_seed(0)
        # real and imaginary parts as channels; statistics about as large as one pixel's value at the start
        self.weight = nn.Parameter(torch.randn(2 * n, side, side, side, generator=g) / math.sqrt(len(keep)))

    def forward(self, images: torch.Tensor, rotations: torch.Tensor, ctf: torch.Tensor) -> torch.Tensor:
        """(B, n) statistics for images (B, P) at rotations (B, 3, 3) with CTF (B, P, or a scalar)."""
        y = images[:, self.pixels] * (ctf[:, self.pixels] if ctf.ndim else ctf)
        with torch.autocast(y.device.type, enabled=False):  # the rotated frequencies and their sampling in float32
            w = sample_volume(self.weight, self.coords @ rotations.detach().float())  # (2n, B, Pf)
        return torch.einsum("jbp,bp->bj", w[: self.n], y.real) + torch.einsum("jbp,bp->bj", w[self.n :], y.imag)


class Encoder(nn.Module):
    """A VAE encoder: the low-pass disc of an image's transform → a diagonal Gaussian over z.

    ``pixels`` selects the half-plane pixels it reads (high frequencies of cryo-EM images are
    mostly noise). With ``phase_flip`` it reads each image times the sign of its CTF, so that a
    feature of the map has one sign in every image whatever the defocus. With ``slices`` it also
    reads the image's correlations with learned 3D filters at its pose (:class:`SliceFilters`).
    With ``features`` it also reads that many fixed numbers per particle, a table (n_particles,
    features) filled before training (:func:`cryonb.core.region_features.region_features`); with
    ``predict_features`` z also predicts them through a linear head, and with ``read_features`` False
    they are only that head's target.
    Its prior penalty is KL(N(mu, σ²) ‖ N(0, I)).
    """

    has_table = False

    def __init__(self, pixels: torch.Tensor, zdim: int, width: int = 256, depth: int = 3, residual: bool = False,
                 phase_flip: bool = False, slices: SliceFilters | None = None, features: int = 0, n_particles: int = 0,
                 read_features: bool = True, predict_features: bool = False):
        super().__init__()
        self.zdim, self.phase_flip, self.slices = zdim, phase_flip, slices
        self.register_buffer("pixels", pixels, persistent=False)
        self.register_buffer("features", torch.zeros(n_particles if features else 0, features), persistent=bool(features))
        self.read_features = bool(features) and read_features
        inputs = 2 * len(pixels) + (slices.n if slices is not None else 0) + (features if self.read_features else 0)
        self.predict = nn.Linear(zdim, features) if features and predict_features else None  # z must hold what they hold
        self.net = (residual_mlp if residual else mlp)(inputs, width, depth, 2 * zdim)

    def gaussian(self, images: torch.Tensor, ctf: torch.Tensor | None = None, rotations: torch.Tensor | None = None,
                 idx: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance (B, zdim) for images (B, P), their CTF (B, P; a scalar when none), poses and
        positions ``idx`` in the particle set (read only with ``features``)."""
        if (self.phase_flip or self.slices is not None) and ctf is None:
            raise ValueError("this encoder reads the images' CTF: pass it")
        x = torch.view_as_real((images * ctf.sign() if self.phase_flip else images)[:, self.pixels]).flatten(1)
        if self.slices is not None:
            if rotations is None:
                raise ValueError("this encoder reads the images' poses: pass their rotations")
            stats = self.slices(images, rotations, ctf)
            x = torch.cat([x, stats.to(x.dtype)], dim=1)
        if self.read_features:
            x = torch.cat([x, self.features[idx].to(x.dtype)], dim=1)
        out = self.net(x).float()
        return out[:, : self.zdim], out[:, self.zdim :].clamp(-20, 10)

    def forward(self, idx, images, noise: torch.Tensor | None = None, rotations=None, ctf=None) -> Latents:
        mu, logvar = self.gaussian(images, ctf, rotations, idx)
        z = mu if noise is None else mu + noise * torch.exp(0.5 * logvar)
        error = None if self.predict is None else (self.predict(mu) - self.features[idx]).pow(2).sum(-1)
        return Latents(z, mu, gaussian_kl(mu, logvar), error)

    def means(self, idx, images, rotations=None, ctf=None) -> torch.Tensor:
        return self.gaussian(images, ctf, rotations, idx)[0]


class LatentTable(nn.Module):
    """An autodecoder's latents: one learned row per particle, with a standard normal prior.

    Only the batch's rows get gradients (:func:`~cryonb.core.row_adam.rows`), and
    :class:`~cryonb.core.row_adam.RowAdam` moves only those. ``noise`` adds a fixed spread ``sigma`` to z during training, as a fixed-variance VAE
    does; the prior penalty is ½‖z‖².
    """

    has_table = True

    def __init__(self, n: int, zdim: int, sigma: float = 0.1, seed: int = 0):
        super().__init__()
        self.zdim, self.sigma = zdim, sigma
        g = torch.Generator().manual_seed(seed)
        self.table = nn.Embedding(n, zdim)
        with torch.no_grad():
            self.table.weight.copy_(torch.randn(n, zdim, generator=g) * 0.1)

    def forward(self, idx, images, noise: torch.Tensor | None = None, rotations=None, ctf=None) -> Latents:
        mu = rows(self.table, idx)
        z = mu if noise is None else mu + self.sigma * noise
        return Latents(z, mu, 0.5 * mu.pow(2).sum(-1))

    def means(self, idx, images, rotations=None, ctf=None) -> torch.Tensor:
        return rows(self.table, idx)


class ClassTable(nn.Module):
    """Discrete classes: each particle's class (a label, set by a search), seen by the decoder as a
    one-hot ``z`` of length ``classes`` (so one decoder holds ``classes`` maps). No prior penalty.
    Labels start uniformly random (seeded)."""

    has_table = True

    def __init__(self, n: int, classes: int, seed: int = 0):
        super().__init__()
        self.classes = classes
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("labels", torch.randint(classes, (n,), generator=g))

    def codes(self, labels: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(labels, self.classes).float()

    def forward(self, idx, images, noise: torch.Tensor | None = None, rotations=None, ctf=None) -> Latents:
        z = self.codes(self.labels[idx])
        return Latents(z, z, torch.zeros(len(z), device=z.device))

    def means(self, idx, images, rotations=None, ctf=None) -> torch.Tensor:
        return self.codes(self.labels[idx])

    @torch.no_grad()
    def assign(self, idx, labels: torch.Tensor):
        self.labels[idx] = labels.to(self.labels)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per image."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1)
