"""A test system of e2gmm's paper: a rigid body with a small domain that moves along a line.

The body is a blob of Gaussians; the domain, a smaller cluster on its side, slides by ``travel``
pixels along a fixed direction with a hidden coordinate ``t`` in [0, 1]. Its maps feed
:func:`cryonb.core.simulate.simulate` (one map per state along the line).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .mixture import GaussianMixture


@dataclass
class MovingDomain:
    """The body and domain Gaussians at ``t = 0`` and the domain's displacement (pixels) at ``t = 1``."""

    start: GaussianMixture
    domain: torch.Tensor  # (N,) bool: the Gaussians that move
    displacement: torch.Tensor  # (3,) pixels

    def at(self, t: float) -> GaussianMixture:
        """The mixture at coordinate ``t`` (0 to 1)."""
        shift = self.domain[:, None].float() * self.displacement * float(t)
        m = self.start
        return GaussianMixture(m.positions + shift, m.amplitudes, m.widths, m.D, m.apix)

    def maps(self, n_states: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Maps (K, D, D, D) at ``K`` evenly spaced coordinates, and the coordinates (K,)."""
        t = torch.linspace(0, 1, n_states)
        return torch.stack([self.at(float(ti)).render() for ti in t]), t


def moving_domain(D: int = 32, n_body: int = 60, n_domain: int = 12, travel: float | None = None,
                  width: float | None = None, apix: float = 1.0, seed: int = 0) -> MovingDomain:
    """The system for a ``D`` box: body Gaussians uniform in an ellipsoid of semi-axes (0.25, 0.18,
    0.15)·D, a domain of ``n_domain`` in a ball of 0.08·D beside it along +x, moving ``travel`` pixels
    (default 0.15·D) along y."""
    g = torch.Generator().manual_seed(seed)
    width = width or max(1.0, D / 24)

    def ball(n: int) -> torch.Tensor:
        x = torch.randn(n, 3, generator=g)
        return x / x.norm(dim=1, keepdim=True) * torch.rand(n, 1, generator=g) ** (1 / 3)

    body = ball(n_body) * torch.tensor([0.25, 0.18, 0.15]) * D
    domain = ball(n_domain) * 0.08 * D + torch.tensor([0.33 * D, -0.075 * D, 0.0])
    positions = torch.cat([body, domain])
    mask = torch.cat([torch.zeros(n_body, dtype=torch.bool), torch.ones(n_domain, dtype=torch.bool)])
    n = n_body + n_domain
    start = GaussianMixture(positions, torch.ones(n), torch.full((n,), float(width)), D, apix)
    travel = 0.15 * D if travel is None else travel
    return MovingDomain(start, mask, torch.tensor([0.0, float(travel), 0.0]))


