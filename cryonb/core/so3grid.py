"""A hierarchical grid on SO(3): HEALPix viewing directions times in-plane angles.

At resolution ``r`` the sphere of viewing directions is cut into the ``12·nside²`` equal-area
pixels of HEALPix (Górski et al., ApJ 622, 759, 2005) with ``nside = 2**r``, numbered in the
NESTED scheme, and the in-plane circle into ``6·2**r`` equal arcs; the grid is their product, as
in cryoDRGN's pose search (after Yershova et al., IJRR 29, 801, 2010). Resolution 2 (192
directions × 24 angles, 4,608 rotations) has a step of about 15°; each resolution halves it.

A grid point ``index = pixel * n_inplane + k`` is the rotation with RELION angles (rot, tilt,
psi) = (φ, θ, ψ_k) of the pixel centre (θ, φ) and the in-plane angle ψ_k (see
:mod:`cryonb.core.rotations`): its viewing direction, the map axis that projects along z, is
(sin θ cos φ, sin θ sin φ, cos θ).

A point's children at ``r + 1`` are its 4 HEALPix sub-pixels, each with the 2 finer in-plane
angles that bracket the in-plane angle best matching the parent's rotation. The bracket is
found per sub-pixel because with Euler angles a change of φ near the poles is mostly an
in-plane turn.
"""

from __future__ import annotations

import functools
import math

import torch

from .rotations import relion_to_matrix

_JRLL = (2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4)  # ring of each base face's southernmost corner, in nside units
_JPLL = (1, 3, 5, 7, 0, 2, 4, 6, 1, 3, 5, 7)  # longitude of each base face's centre, in π/4


def nside(resolution: int) -> int:
    return 2 ** int(resolution)


def n_inplane(resolution: int) -> int:
    """In-plane angles at ``resolution``: ``6 · 2**resolution``."""
    return 6 * 2 ** int(resolution)


def grid_size(resolution: int) -> int:
    """Rotations in the grid at ``resolution``: ``12·nside² × 6·2**resolution``."""
    return 12 * nside(resolution) ** 2 * n_inplane(resolution)


def step_degrees(resolution: int) -> float:
    """The grid's nominal step: the in-plane spacing, about the size of a HEALPix pixel."""
    return 360.0 / n_inplane(resolution)


def max_gap_degrees(resolution: int) -> float:
    """An upper bound on the angle from any rotation to its nearest grid rotation: the step.

    Measured on 200,000 uniform rotations at resolutions 0–2, the largest gap was 0.84–0.90 ×
    :func:`step_degrees`.
    """
    return step_degrees(resolution)


def _compact_bits(v: torch.Tensor, bits: int) -> torch.Tensor:
    """The even-position bits of ``v`` packed together (bit 2i of ``v`` becomes bit i, i < ``bits``)."""
    out = torch.zeros_like(v)
    for i in range(bits):
        out |= ((v >> (2 * i)) & 1) << i
    return out


def pix2ang_nested(nside: int, pixels) -> tuple[torch.Tensor, torch.Tensor]:
    """Colatitude θ and longitude φ (radians, float64) of HEALPix NESTED pixel centres."""
    pix = torch.as_tensor(pixels, dtype=torch.int64)
    npix = 12 * nside * nside
    if pix.numel() and (int(pix.min()) < 0 or int(pix.max()) >= npix):
        raise ValueError(f"HEALPix pixels of nside {nside} are 0 to {npix - 1}")
    face, within = pix // (nside * nside), pix % (nside * nside)
    bits = max(nside - 1, 1).bit_length()
    ix, iy = _compact_bits(within, bits), _compact_bits(within >> 1, bits)
    jrll = torch.tensor(_JRLL, device=pix.device)[face]
    jpll = torch.tensor(_JPLL, device=pix.device)[face]
    ring = jrll * nside - ix - iy - 1  # 1 (north pole) to 4·nside - 1 (south pole)
    north, south = ring < nside, ring > 3 * nside
    nr = torch.where(north, ring, torch.where(south, 4 * nside - ring, torch.full_like(ring, nside)))
    nrf = nr.double()
    z = torch.where(north, 1 - nrf**2 / (3.0 * nside**2),
                    torch.where(south, -1 + nrf**2 / (3.0 * nside**2), (2 * nside - ring).double() * 2 / (3.0 * nside)))
    kshift = torch.where(north | south, torch.zeros_like(ring), (ring - nside) & 1)
    jp = (jpll * nr + ix - iy + 1 + kshift) // 2
    jp = torch.where(jp > 4 * nr, jp - 4 * nr, jp)
    jp = torch.where(jp < 1, jp + 4 * nr, jp)
    phi = (jp.double() - (kshift.double() + 1) * 0.5) * (math.pi / 2 / nrf)
    return torch.arccos(z.clamp(-1, 1)), phi


def inplane_angles(resolution: int) -> torch.Tensor:
    """The in-plane angles (radians, float64) at ``resolution``: centres of equal arcs."""
    n = n_inplane(resolution)
    return (torch.arange(n, dtype=torch.float64) + 0.5) * (2 * math.pi / n)


def split_index(resolution: int, index) -> tuple[torch.Tensor, torch.Tensor]:
    """(HEALPix pixel, in-plane index) of grid indices."""
    index = torch.as_tensor(index, dtype=torch.int64)
    return index // n_inplane(resolution), index % n_inplane(resolution)


@functools.lru_cache(maxsize=None)
def _frame_table(resolution: int, device: torch.device) -> torch.Tensor:
    """``Ry(θ) Rz(φ)`` of every pixel centre at ``resolution`` (12·nside², 3, 3), float64, made once per
    device: a search asks for thousands of pixels' frames per batch, on the device it runs on."""
    theta, phi = pix2ang_nested(nside(resolution), torch.arange(12 * nside(resolution) ** 2))
    return relion_to_matrix(phi * (180 / math.pi), theta * (180 / math.pi), torch.zeros_like(theta)).to(device)


def _direction_frames(resolution: int, pixels: torch.Tensor) -> torch.Tensor:
    """``Ry(θ) Rz(φ)`` for the pixels' centres: the grid rotations at ψ = 0."""
    table = _frame_table(resolution, pixels.device)
    # Checked where it is free; on a GPU the check would wait for the search's kernels every round, and an
    # index out of range stops the kernel there anyway (a negative one would wrap around silently here).
    if pixels.device.type == "cpu" and pixels.numel() and (int(pixels.min()) < 0 or int(pixels.max()) >= len(table)):
        raise ValueError(f"HEALPix pixels of nside {nside(resolution)} are 0 to {len(table) - 1}")
    return table[pixels]


def rotations(resolution: int, index=None) -> torch.Tensor:
    """Rotation matrices (N, 3, 3), float64, of grid ``index`` (default: the whole grid, in index order)."""
    if index is None:
        index = torch.arange(grid_size(resolution))
    pixel, k = split_index(resolution, index)
    shape = pixel.shape
    pixel, k = pixel.reshape(-1), k.reshape(-1)
    psi = (k.double() + 0.5) * (2 * math.pi / n_inplane(resolution))
    return (_rz(psi) @ _direction_frames(resolution, pixel)).reshape(*shape, 3, 3)


def _rz(psi: torch.Tensor) -> torch.Tensor:
    """The in-plane turn ``Rz(ψ)`` of :func:`cryonb.core.rotations.relion_to_matrix`."""
    c, s = torch.cos(psi), torch.sin(psi)
    zero, one = torch.zeros_like(c), torch.ones_like(c)
    return torch.stack([torch.stack([c, s, zero], -1), torch.stack([-s, c, zero], -1),
                        torch.stack([zero, zero, one], -1)], -2)


def children(resolution: int, index) -> torch.Tensor:
    """The 8 grid indices at ``resolution + 1`` (shape (..., 8)) subdividing grid ``index`` at ``resolution``.

    For each of the 4 HEALPix sub-pixels, the in-plane angle ψ* whose rotation is closest to the
    parent's is found in closed form (it maximises ``trace(Rz(ψ) F Rₚᵀ)`` for the sub-pixel's frame
    F), and the two finer in-plane angles on either side of ψ* are taken.
    """
    index = torch.as_tensor(index, dtype=torch.int64)
    shape = index.shape
    parent = rotations(resolution, index.reshape(-1))  # (n, 3, 3)
    pixel, _ = split_index(resolution, index.reshape(-1))
    sub = (4 * pixel[:, None] + torch.arange(4, device=index.device)).reshape(-1)  # (n*4,)
    frames = _direction_frames(resolution + 1, sub).reshape(-1, 4, 3, 3)
    N = frames @ parent.transpose(-1, -2)[:, None]
    best = torch.atan2(N[..., 1, 0] - N[..., 0, 1], N[..., 0, 0] + N[..., 1, 1])  # (n, 4)
    n = n_inplane(resolution + 1)
    below = torch.floor(torch.remainder(best, 2 * math.pi) / (2 * math.pi / n) - 0.5).long()
    k = torch.remainder(below[..., None] + torch.arange(2, device=index.device), n)  # (n, 4, 2)
    out = sub.reshape(-1, 4, 1) * n + k
    return out.reshape(*shape, 8)


def angle_between(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Geodesic angles (degrees) between rotations ``a`` and ``b`` (broadcast over leading axes)."""
    trace = (a * b).sum((-1, -2))  # trace(a bᵀ)
    return torch.rad2deg(torch.arccos(((trace - 1) / 2).clamp(-1, 1)))


def nearest(resolution: int, R: torch.Tensor, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """The grid index nearest to each rotation ``R`` (n, 3, 3) and its angle in degrees (brute force)."""
    grid = rotations(resolution).to(R.device, torch.float64).reshape(-1, 9)
    best, angle = [], []
    for part in R.to(torch.float64).reshape(-1, 9).split(chunk):
        trace = part @ grid.T
        value, idx = trace.max(1)
        best.append(idx)
        angle.append(torch.rad2deg(torch.arccos(((value - 1) / 2).clamp(-1, 1))))
    return torch.cat(best), torch.cat(angle)


__all__ = ["nside", "n_inplane", "grid_size", "step_degrees", "max_gap_degrees", "pix2ang_nested", "inplane_angles",
           "split_index", "rotations", "children", "angle_between", "nearest"]
