"""Procedural density maps with known heterogeneity, for simulations and tests.

Each map is a sum of isotropic 3D Gaussians laid out like a small protein complex: domains
(broad blobs) filled with pseudo-atoms (narrow blobs, placed once from a fixed seed) so that
the maps carry detail out to high resolution, as real densities do. The layout is asymmetric
(poses are identifiable) and defined in fractions of the box, so one layout serves every box
size ``D``; blob widths are floored at one voxel so that small boxes stay band-limited. Maps
are float32 tensors (D, D, D) indexed [z, y, x] with the box centre at voxel ``D // 2``.

- :func:`hinge` / :func:`hinge_states`: conformational heterogeneity, a fixed body with an arm
  that swings about a hinge axis, after the 1D continuous motion that the cryoDRGN paper
  (Zhong et al., Nat. Methods 18, 176-185, 2021) simulates with 50 states over 1.5 rad.
- :func:`assemblies`: compositional heterogeneity after the 30S/50S/70S idea, a small subunit,
  a large subunit and their complex, all built on a shared core in one frame.
- :func:`lacking_a_subunit`: any map less a compact region of its periphery, a rare state's map.
"""

from __future__ import annotations

import numpy as np
import torch

# Domains as rows of (x, y, z, sigma, weight); positions and sigma are fractions of the box.
_HINGE_BODY = np.array(
    [
        (-0.096, -0.04, 0.0, 0.072, 1.0),
        (-0.144, 0.064, 0.04, 0.06, 0.8),
        (-0.04, -0.096, -0.048, 0.06, 0.8),
        (-0.176, -0.08, -0.04, 0.051, 0.7),
        (0.0, -0.016, 0.016, 0.051, 0.7),
        (-0.08, -0.176, 0.08, 0.043, 0.6),
        (-0.224, 0.016, 0.096, 0.038, 0.5),
        (-0.04, 0.096, -0.096, 0.034, 0.5),
    ]
)
_HINGE_POINT = np.array([0.03, 0.0, 0.0])
_HINGE_AXIS = np.array([0.15, -0.25, 1.0]) / np.linalg.norm([0.15, -0.25, 1.0])
_ARM_DIRECTION = np.array([1.0, 0.15, -0.25]) / np.linalg.norm([1.0, 0.15, -0.25])
# The arm at angle 0: a rod of four domains from the hinge, ending in an off-axis head.
_HINGE_ARM = np.array(
    [(*(_HINGE_POINT + s * _ARM_DIRECTION), 0.034, 0.7) for s in (0.05, 0.1, 0.15, 0.2)]
    + [(*(_HINGE_POINT + 0.25 * _ARM_DIRECTION + [0.0, 0.03, 0.025]), 0.05, 0.9)]
)

_CORE = np.array(
    [
        (0.0, 0.016, 0.0, 0.051, 0.8),
        (0.008, -0.064, 0.032, 0.043, 0.7),
    ]
)
_SMALL_SUBUNIT = np.array(
    [
        (0.096, 0.0, -0.016, 0.064, 1.0),
        (0.112, 0.096, 0.032, 0.051, 0.8),  # head
        (0.08, -0.112, 0.0, 0.051, 0.8),
        (0.16, 0.16, 0.048, 0.038, 0.6),  # beak
        (0.144, -0.032, -0.096, 0.043, 0.6),  # platform
    ]
)
_LARGE_SUBUNIT = np.array(
    [
        (-0.112, 0.0, 0.0, 0.085, 1.0),
        (-0.096, 0.128, 0.016, 0.06, 0.8),  # central protuberance
        (-0.096, -0.12, 0.04, 0.068, 0.9),
        (-0.2, -0.016, -0.064, 0.06, 0.8),
        (-0.048, 0.04, 0.128, 0.043, 0.6),  # stalk
        (-0.032, 0.08, 0.192, 0.038, 0.5),
        (-0.16, 0.16, -0.08, 0.043, 0.6),
    ]
)


_ATOM_SIGMA = 0.018


def _with_atoms(domains: np.ndarray, seed: int) -> np.ndarray:
    """Domains at half weight plus pseudo-atoms that carry the other half of each domain's mass."""
    rng = np.random.default_rng(seed)
    rows = [domains * [1, 1, 1, 1, 0.5]]
    for x, y, z, sigma, weight in domains:
        n = int(np.clip(round(12 * (sigma / 0.05) ** 3), 4, 40))
        centers = np.array([x, y, z]) + rng.normal(0.0, 0.6 * sigma, (n, 3))
        atom_weight = 0.5 * weight * (sigma / _ATOM_SIGMA) ** 3 / n
        rows.append(np.column_stack([centers, np.full(n, _ATOM_SIGMA), np.full(n, atom_weight)]))
    return np.concatenate(rows)


_BODY_BLOBS = _with_atoms(_HINGE_BODY, seed=1)
_ARM_BLOBS = _with_atoms(_HINGE_ARM, seed=2)
_CORE_BLOBS = _with_atoms(_CORE, seed=3)
_SMALL_BLOBS = _with_atoms(_SMALL_SUBUNIT, seed=4)
_LARGE_BLOBS = _with_atoms(_LARGE_SUBUNIT, seed=5)


def render_blobs(blobs: np.ndarray, D: int) -> torch.Tensor:
    """Density (D, D, D) of Gaussian blobs given as rows of (x, y, z, sigma, weight) in box fractions.

    ``weight`` is the peak height. Widths below one voxel are raised to one voxel with the mass
    kept. Isotropic Gaussians are separable, so the map is one contraction of per-axis profiles,
    with no (n, D, D, D) intermediate.
    """
    b = torch.as_tensor(np.asarray(blobs), dtype=torch.float64)
    r = (torch.arange(D, dtype=torch.float64) - D // 2) / D
    center, sigma = b[:, :3], b[:, 3].clamp(min=1.0 / D)
    weight = b[:, 4] * (b[:, 3] / sigma) ** 3
    profiles = torch.exp(-((r - center[:, :, None]) ** 2) / (2 * sigma[:, None, None] ** 2))
    gx, gy, gz = profiles.unbind(1)
    return torch.einsum("n,nz,ny,nx->zyx", weight, gz, gy, gx).to(torch.float32)


def _rotate_about_axis(points: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues rotation of row vectors ``points`` by ``angle`` radians about unit ``axis``."""
    c, s = np.cos(angle), np.sin(angle)
    return points * c + np.cross(axis, points) * s + np.outer(points @ axis, axis) * (1 - c)


def hinge(D: int, angle: float = 0.0) -> torch.Tensor:
    """Two-domain complex (D, D, D) with its arm swung by ``angle`` radians about the hinge axis."""
    arm = _ARM_BLOBS.copy()
    arm[:, :3] = _HINGE_POINT + _rotate_about_axis(arm[:, :3] - _HINGE_POINT, _HINGE_AXIS, angle)
    return render_blobs(np.concatenate([_BODY_BLOBS, arm]), D)


def hinge_states(D: int, n_states: int = 50, span: float = 1.5) -> tuple[torch.Tensor, torch.Tensor]:
    """``n_states`` hinge maps with angles evenly spaced over [0, ``span``] radians.

    Returns ``(volumes (n_states, D, D, D), angles (n_states,))``; the angle is the ground-truth
    reaction coordinate of each state.
    """
    angles = torch.linspace(0.0, span, n_states, dtype=torch.float64)
    return torch.stack([hinge(D, float(a)) for a in angles]), angles


def assemblies(D: int) -> dict[str, torch.Tensor]:
    """Three maps (D, D, D) of one assembly, in one frame: ``small``, ``large`` and ``complex``.

    Both subunits contain the shared core, and the complex is the core with both subunits,
    so ``complex = small + large - core`` voxel for voxel.
    """
    return {
        "small": render_blobs(np.concatenate([_CORE_BLOBS, _SMALL_BLOBS]), D),
        "large": render_blobs(np.concatenate([_CORE_BLOBS, _LARGE_BLOBS]), D),
        "complex": render_blobs(np.concatenate([_CORE_BLOBS, _SMALL_BLOBS, _LARGE_BLOBS]), D),
    }


def lacking_a_subunit(volume: torch.Tensor, fraction: float = 0.1) -> torch.Tensor:
    """``volume`` less a ball at its periphery holding about ``fraction`` of its mass.

    The ball is centred on the density voxel (above a fifth of the maximum) farthest from the
    centre of mass, and grown in half-voxel steps until it holds ``fraction`` of the positive mass.
    """
    D = volume.shape[-1]
    k = torch.arange(D, dtype=torch.float32) - D // 2
    axes = torch.meshgrid(k, k, k, indexing="ij")
    mass = volume.clamp(min=0)
    centre = torch.stack([(c * mass).sum() / mass.sum() for c in axes])
    dense = (mass > 0.2 * mass.max()).flatten()
    points = torch.stack([c.flatten()[dense] for c in axes], -1)
    point = points[((points - centre) ** 2).sum(-1).argmax()]
    distance = sum((c - p) ** 2 for c, p in zip(axes, point)).sqrt()
    radius = next(r for r in np.arange(1.0, D, 0.5) if mass[distance <= r].sum() >= fraction * mass.sum())
    return volume * (distance > radius)
