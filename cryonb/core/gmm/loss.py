"""Losses between predicted and observed half-plane transforms: Fourier ring correlation and squared error."""

from __future__ import annotations

import torch


def ring_index(coords: torch.Tensor, max_radius: float | None = None) -> torch.Tensor:
    """The ring (``|k|`` rounded, pixels of frequency) of each half-plane pixel ``coords`` (P, 2 or 3);
    -1 beyond ``max_radius``."""
    r = coords[:, :2].float().norm(dim=-1).round().long()
    if max_radius is not None:
        r = torch.where(r <= max_radius, r, torch.full_like(r, -1))
    return r


def frc(pred: torch.Tensor, images: torch.Tensor, rings: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Fourier ring correlation (B, R) per image between complex (B, P) transforms; ``rings`` (P,) from
    :func:`ring_index` (pixels at -1 are left out). Half-plane pixels suffice: the other half is their
    complex conjugate, which adds the same real parts."""
    keep = rings >= 0
    r = rings[keep]
    n = int(r.max()) + 1
    p, x = pred[:, keep], images[:, keep]

    def ring_sum(v: torch.Tensor) -> torch.Tensor:
        return v.new_zeros(len(v), n).index_add_(1, r, v)

    cross = ring_sum((p * x.conj()).real.float())
    power = ring_sum(p.abs().pow(2).float()) * ring_sum(x.abs().pow(2).float())
    return cross / (power + eps).sqrt()


def frc_loss(pred: torch.Tensor, images: torch.Tensor, rings: torch.Tensor, min_ring: int = 1) -> torch.Tensor:
    """``1 - mean FRC`` per image (B,) over rings ``min_ring`` and beyond (the DC ring carries no shape).

    Insensitive to each image's scale, as e2gmm's loss; cryonb's CTF-weighted squared error
    (the Trainer's default) is the other choice.
    """
    values = frc(pred, images, rings)
    return 1 - values[:, min_ring:].mean(-1)


def squared_error(pred: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image (B,) between complex (B, P) transforms (real and imaginary parts)."""
    return torch.view_as_real(pred - images).pow(2).sum(-1).mean(-1)


LOSSES = ("frc", "mse")


def image_loss(kind: str, pred: torch.Tensor, images: torch.Tensor, rings: torch.Tensor) -> torch.Tensor:
    """Per-image loss (B,) of kind ``"frc"`` or ``"mse"`` (``pred`` already multiplied by the CTF)."""
    if kind == "frc":
        return frc_loss(pred, images, rings)
    if kind == "mse":
        return squared_error(pred, images)
    raise ValueError(f"loss must be one of {LOSSES}, not {kind!r}")
