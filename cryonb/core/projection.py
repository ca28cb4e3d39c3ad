"""Projections of 3D maps: central slices in Fourier space, real-space projections, shifts.

Geometry (see :mod:`cryonb.core.rotations`): the image of a particle with rotation ``R`` is the
projection along z of ``V(R^T x)``; its 2D transform at frequency (kx, ky) is the 3D transform of
``V`` at ``[kx, ky, 0] @ R``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def plane_coordinates(D: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Integer-spaced (x, y, 0) coordinates of a centred ``D``×``D`` plane, shape (D, D, 3)."""
    k = torch.arange(D, device=device, dtype=dtype) - D // 2
    y, x = torch.meshgrid(k, k, indexing="ij")
    return torch.stack([x, y, torch.zeros_like(x)], dim=-1)


def sample_volume(volume: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Trilinear samples of a centred volume (D, D, D) at (x, y, z) voxel offsets from its centre.

    ``coords`` has shape (..., 3); points outside the box read as zero. Complex volumes are
    sampled as real and imaginary parts. A real volume may have leading channels (C, D, D, D):
    the samples are then (C, ...).
    """
    D = volume.shape[-1]
    grid = (coords + D // 2) * (2.0 / (D - 1)) - 1.0
    if volume.is_complex():
        channels = torch.stack([volume.real, volume.imag])
    else:
        channels = volume.reshape(-1, D, D, D)
    shape = coords.shape[:-1]
    out = F.grid_sample(
        channels[None].to(grid.dtype),
        grid.reshape(1, 1, 1, -1, 3),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=True,
    )[0, :, 0, 0]
    if volume.is_complex():
        return torch.complex(out[0], out[1]).reshape(shape)
    return out.reshape(*volume.shape[:-3], *shape)


def extract_slices(volume_ft: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """Central slices (B, D, D) of a centred 3D transform at the given rotations (B, 3, 3)."""
    D = volume_ft.shape[-1]
    plane = plane_coordinates(D, device=volume_ft.device, dtype=rotations.dtype)
    return sample_volume(volume_ft, plane.reshape(1, -1, 3) @ rotations).reshape(-1, D, D)


def project(volume: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """Real-space projections (B, D, D) along z of the rotated map ``V(R^T x)``."""
    D = volume.shape[-1]
    k = torch.arange(D, device=volume.device, dtype=rotations.dtype) - D // 2
    z, y, x = torch.meshgrid(k, k, k, indexing="ij")
    points = torch.stack([x, y, z], dim=-1).reshape(1, -1, 3)
    rotated = sample_volume(volume, points @ rotations)
    return rotated.reshape(-1, D, D, D).sum(dim=1)


def phase_ramp(D: int, shifts: torch.Tensor) -> torch.Tensor:
    """exp(-2πi k·s) for centred frequencies k (cycles/pixel) and shifts (B, 2) in pixels (x, y)."""
    k = (torch.arange(D, device=shifts.device, dtype=shifts.dtype) - D // 2) / D
    phase = shifts[:, 0, None, None] * k[None, None, :] + shifts[:, 1, None, None] * k[None, :, None]
    return torch.polar(torch.ones_like(phase), -2 * torch.pi * phase)


def shift_images_ft(images_ft: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Centred transforms of images translated by ``+shifts`` (B, 2) pixels."""
    return images_ft * phase_ramp(images_ft.shape[-1], shifts.to(images_ft.real.dtype))


def shift_images(images: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Real-space images translated by ``+shifts`` (B, 2) pixels (periodic, sub-pixel exact)."""
    from .fourier import fft2_center, ifft2_center

    return ifft2_center(shift_images_ft(fft2_center(images), shifts)).real
