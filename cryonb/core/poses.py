"""Where each particle's pose comes from: the particle metadata, or a table refined with the model.

A pose source is a module called as ``source(idx, rotations)`` for the particles at ``idx`` (with
the rotations their metadata holds, or identities when it holds none), returning the rotations
(B, 3, 3) to project at and the extra shifts (B, 2) in pixels, or None, that re-centre the images
(the convention of the metadata's shifts: translating an image by ``+shift`` centres its particle).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .row_adam import rows


def metadata_rotations(particles, device) -> torch.Tensor:
    """The metadata's rotations (N, 3, 3) on ``device``; identities where it has none (poses to be found)."""
    if particles.rotations is None:
        return torch.eye(3, device=device).expand(len(particles), 3, 3)
    return torch.as_tensor(np.asarray(particles.rotations, dtype=np.float32)).to(device)


class KnownPoses(nn.Module):
    """The poses of a consensus refinement, as the particle metadata records them."""

    has_table = False

    def forward(self, idx, rotations):
        return rotations, None


class PoseTable(nn.Module):
    """Per-particle poses refined by gradient descent: a rotation and an in-plane shift each.

    A rotation is a fixed base times a small learned rotation (an axis-angle vector), so that a
    pose search can set the base (:meth:`assign`) and descent refine it without wrapping around.
    The learned parts are tables of rows (:func:`~cryonb.core.row_adam.rows`): only a batch's rows
    get gradients, and :class:`~cryonb.core.row_adam.RowAdam` moves only those.
    """

    has_table = True

    def __init__(self, n: int):
        super().__init__()
        self.register_buffer("base", torch.eye(3).repeat(n, 1, 1))
        self.turn = nn.Embedding(n, 3)
        self.shift = nn.Embedding(n, 2)
        with torch.no_grad():
            self.turn.weight.zero_()
            self.shift.weight.zero_()

    def forward(self, idx, rotations):
        return self.base[idx] @ small_rotation(rows(self.turn, idx)), rows(self.shift, idx)

    @torch.no_grad()
    def assign(self, idx, rotations: torch.Tensor, shifts: torch.Tensor | None = None):
        """Set the poses of the particles at ``idx`` (from a search, or another program)."""
        self.base[idx] = rotations.to(self.base)
        self.turn.weight[idx] = 0
        if shifts is not None:
            self.shift.weight[idx] = shifts.to(self.shift.weight)

    @torch.no_grad()
    def poses(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every particle's rotation (N, 3, 3) and shift (N, 2)."""
        idx = torch.arange(len(self.base), device=self.base.device)
        return self(idx, None)


def recentre(images: torch.Tensor, coords: torch.Tensor, shifts: torch.Tensor, D: int) -> torch.Tensor:
    """Half-plane transforms (B, P) translated by ``shifts`` (B, 2) pixels (coords (P, ≥2) in pixels of frequency)."""
    phase = -2 * math.pi / D * (shifts[:, :1] * coords[:, 0] + shifts[:, 1:2] * coords[:, 1])
    return images * torch.polar(torch.ones_like(phase), phase)


def small_rotation(v: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) for axis-angle vectors (..., 3), smooth at zero (Taylor terms
    below 1e-3 rad, so that gradients exist where descent starts)."""
    t2 = (v * v).sum(-1)[..., None, None]
    small = t2 < 1e-6
    t = torch.sqrt(t2.clamp_min(1e-12))
    a = torch.where(small, 1 - t2 / 6, torch.sin(t) / t)
    b = torch.where(small, 0.5 - t2 / 24, (1 - torch.cos(t)) / t2.clamp_min(1e-12))
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    K = torch.stack([torch.stack([o, -z, y], -1), torch.stack([z, o, -x], -1), torch.stack([-y, x, o], -1)], -2)
    return torch.eye(3, dtype=v.dtype, device=v.device) + a * K + b * (K @ K)
