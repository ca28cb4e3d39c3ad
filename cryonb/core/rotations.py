"""Rotations: RELION ZYZ Euler angles, cryoSPARC axis-angle, quaternions, uniform SO(3).

cryonb uses the convention of cryoDRGN: a particle with rotation ``R`` shows the central
slice whose 3D Fourier coordinates are ``[kx, ky, 0] @ R`` (row vectors), so its image is
the projection along z of ``V(R^T x)``. This is RELION's own
matrix ``A``; cryoSPARC poses are converted to it on reading.
"""

from __future__ import annotations

import numpy as np
import torch

Array = np.ndarray | torch.Tensor


def _backend(x):
    return torch if isinstance(x, torch.Tensor) else np


def _zyz(a, b, c):
    """Matrices ``Rz(c) @ Ry(b) @ Rz(a)`` for angles in radians (any leading shape)."""
    xp = _backend(a)
    ca, sa, cb, sb, cc, sc = xp.cos(a), xp.sin(a), xp.cos(b), xp.sin(b), xp.cos(c), xp.sin(c)
    rows = [
        [cc * cb * ca - sc * sa, cc * cb * sa + sc * ca, -cc * sb],
        [-sc * cb * ca - cc * sa, -sc * cb * sa + cc * ca, sc * sb],
        [sb * ca, sb * sa, cb],
    ]
    return xp.stack([xp.stack(r, -1) for r in rows], -2)


def relion_to_matrix(rot: Array, tilt: Array, psi: Array) -> Array:
    """RELION Euler angles (degrees) to cryonb rotation matrices, shape (..., 3, 3).

    This is RELION's matrix ``A = Rz(psi) Ry(tilt) Rz(rot)``, which maps map coordinates
    to image coordinates (and equals cryoDRGN's ``R_from_relion``).
    """
    return _zyz(*(x * (np.pi / 180.0) for x in (rot, tilt, psi)))


def matrix_to_relion(R: Array) -> tuple[Array, Array, Array]:
    """Inverse of :func:`relion_to_matrix`: (rot, tilt, psi) in degrees, tilt in [0, 180].

    At tilt 0 or 180 only rot ± psi is defined; like RELION, cryonb then sets rot = 0.
    """
    xp = _backend(R)
    A = R
    tilt = xp.arccos(xp.clip(A[..., 2, 2], -1.0, 1.0))
    regular = xp.sqrt(A[..., 0, 2] ** 2 + A[..., 1, 2] ** 2) > 1e-6
    flat = xp.where(A[..., 2, 2] > 0, xp.arctan2(-A[..., 1, 0], A[..., 0, 0]), xp.arctan2(A[..., 1, 0], -A[..., 0, 0]))
    rot = xp.where(regular, xp.arctan2(A[..., 2, 1], A[..., 2, 0]), xp.zeros_like(tilt))
    psi = xp.where(regular, xp.arctan2(A[..., 1, 2], -A[..., 0, 2]), flat)
    deg = 180.0 / np.pi
    return rot * deg, tilt * deg, psi * deg


def axis_angle_to_matrix(v: Array) -> Array:
    """Rodrigues' formula: axis-angle vectors (..., 3), angle = norm, to matrices (..., 3, 3)."""
    xp = _backend(v)
    theta = xp.sqrt((v * v).sum(-1))[..., None, None]
    small = theta < 1e-8
    safe = xp.where(small, xp.ones_like(theta), theta)
    k = v / safe[..., 0]
    zero = xp.zeros_like(k[..., 0])
    K = xp.stack(
        [
            xp.stack([zero, -k[..., 2], k[..., 1]], -1),
            xp.stack([k[..., 2], zero, -k[..., 0]], -1),
            xp.stack([-k[..., 1], k[..., 0], zero], -1),
        ],
        -2,
    )
    eye = xp.eye(3, dtype=v.dtype) if xp is np else torch.eye(3, dtype=v.dtype, device=v.device)
    R = eye + xp.sin(safe) * K + (1 - xp.cos(safe)) * (K @ K)
    return xp.where(small, eye + 0 * R, R)


def quaternion_to_matrix(q: Array) -> Array:
    """Unit quaternions (w, x, y, z), shape (..., 4), to rotation matrices (..., 3, 3)."""
    xp = _backend(q)
    q = q / xp.sqrt((q * q).sum(-1, keepdims=True)) if xp is np else q / q.norm(dim=-1, keepdim=True)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ]
    return xp.stack([xp.stack(r, -1) for r in rows], -2)


def matrix_to_quaternion(R: Array) -> Array:
    """Rotation matrices (..., 3, 3) to unit quaternions (w, x, y, z) with w >= 0."""
    xp = _backend(R)
    m = R
    trace = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    # Four candidate solutions; take the numerically largest per rotation.
    cands = xp.stack(
        [
            xp.stack([1 + trace, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1),
            xp.stack([m[..., 2, 1] - m[..., 1, 2], 1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2], m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0]], -1),
            xp.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0], 1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2], m[..., 1, 2] + m[..., 2, 1]], -1),
            xp.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1], 1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2]], -1),
        ],
        -2,
    )
    norms = xp.sqrt((cands * cands).sum(-1))
    best = norms.argmax(-1)
    if xp is np:
        q = np.take_along_axis(cands, best[..., None, None], -2)[..., 0, :]
    else:
        q = torch.gather(cands, -2, best[..., None, None].expand(*best.shape, 1, 4))[..., 0, :]
    q = q / xp.sqrt((q * q).sum(-1, keepdims=True) if xp is np else (q * q).sum(-1, keepdim=True))
    return q * xp.where(q[..., :1] < 0, -1.0, 1.0)


def random_rotations(n: int, generator: torch.Generator | None = None, dtype=torch.float32) -> torch.Tensor:
    """``n`` rotations drawn uniformly from SO(3) (normalised Gaussian quaternions)."""
    q = torch.randn(n, 4, generator=generator, dtype=torch.float64)
    return quaternion_to_matrix(q).to(dtype)
