"""What views of a Gaussian model draw: spheres for the Gaussians at a latent, and the motion between two latents.

Coordinates are in Å from the box's corner (voxel ``(0, 0, 0)`` at the origin), as a map written by
:func:`cryonb.core.io.mrc.write_map` places them, so spheres and maps overlay in a viewer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Spheres:
    """``centers`` (N, 3) Å, ``radii`` (N,) Å (the Gaussians' widths), ``colors`` (N, 3) in [0, 1] by amplitude."""

    centers: np.ndarray
    radii: np.ndarray
    colors: np.ndarray

    def buffer(self) -> dict:
        """Flat lists in the layout of NGL's sphere buffer (position, color, radius)."""
        return {"position": self.centers.ravel().tolist(), "color": self.colors.ravel().tolist(),
                "radius": self.radii.tolist()}


def _corner_angstrom(positions: torch.Tensor, D: int, apix: float) -> np.ndarray:
    return ((positions.detach().float().cpu().numpy() + D // 2) * apix).astype(np.float32)


def amplitude_colors(amplitudes: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """Blue (faded) to orange (full) by amplitude relative to ``reference`` (default: its own maximum)."""
    ref = np.abs(reference if reference is not None else amplitudes).max() or 1.0
    t = np.clip(amplitudes / ref, 0, 1)[:, None]
    return (np.array([0.35, 0.55, 0.85]) * (1 - t) + np.array([0.95, 0.55, 0.15]) * t).astype(np.float32)


@torch.no_grad()
def spheres(decoder, z=None, apix: float | None = None) -> Spheres:
    """The Gaussians of ``decoder`` (a :class:`~cryonb.core.gmm.decoder.GaussianDecoder`) at one latent ``z``."""
    apix = decoder.apix if apix is None else apix
    zt = None if z is None else torch.as_tensor(np.reshape(z, (1, -1)), dtype=torch.float32, device=decoder.gain.device)
    p, a, w = decoder.gaussians(zt)
    amps = a[0].cpu().numpy()
    reference = (decoder.amplitudes * decoder.scale).cpu().numpy()
    return Spheres(_corner_angstrom(p[0], decoder.D, apix), (w[0].cpu().numpy() * apix).astype(np.float32),
                   amplitude_colors(amps, reference))


@torch.no_grad()
def motion(decoder, z0, z1, apix: float | None = None, min_shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Start points (M, 3) Å and displacements (M, 3) Å of the Gaussians from latent ``z0`` to ``z1``
    (only those that move more than ``min_shift`` Å): the arrows of a quiver plot."""
    apix = decoder.apix if apix is None else apix
    z = torch.as_tensor(np.stack([np.ravel(z0), np.ravel(z1)]), dtype=torch.float32, device=decoder.gain.device)
    p = decoder.gaussians(z)[0]
    start = _corner_angstrom(p[0], decoder.D, apix)
    shift = ((p[1] - p[0]).cpu().numpy() * apix).astype(np.float32)
    keep = np.linalg.norm(shift, axis=1) > min_shift
    return start[keep], shift[keep]
