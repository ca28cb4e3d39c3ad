"""Aligning poses and maps found ab initio to a reference: the global rotation and the hand.

Poses found from projections alone are defined up to a global rotation and a mirror (the hand):
:func:`align_poses` finds both against reference poses (a consensus refinement's, or a simulation's
truth), :func:`align_map` applies them to a map.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

MIRROR = torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64))


@dataclass
class PoseAlignment:
    """A global rotation (and mirror) taking reference poses onto estimated ones.

    ``estimated[i] ≈ J R[i] J @ rotation`` with ``J = diag(1, 1, -1)`` if ``mirrored``, else
    ``estimated[i] ≈ R[i] @ rotation``. ``errors`` (N,) are the angles (degrees) left after the
    alignment, in the better hand; ``median_error`` their median, ``median_error_other_hand`` the
    median in the other hand (a large gap means the hand is determined).
    """

    rotation: np.ndarray  # (3, 3)
    mirrored: bool
    errors: np.ndarray
    median_error: float
    median_error_other_hand: float

    def apply(self, reference: np.ndarray) -> np.ndarray:
        """The reference poses (N, 3, 3) mapped into the estimate's frame."""
        R = torch.as_tensor(np.asarray(reference), dtype=torch.float64)
        if self.mirrored:
            R = MIRROR @ R @ MIRROR
        return (R @ torch.as_tensor(self.rotation)).numpy()


def _procrustes(reference: torch.Tensor, estimated: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The rotation ``A`` minimising Σ‖R_i A − E_i‖² and the angles (degrees) left."""
    from .so3grid import angle_between

    M = (reference.transpose(-1, -2) @ estimated).sum(0)
    U, _, Vt = torch.linalg.svd(M)
    d = torch.sign(torch.det(U @ Vt))
    A = U @ torch.diag(torch.tensor([1.0, 1.0, float(d)], dtype=M.dtype)) @ Vt
    return A, angle_between(reference @ A, estimated)


def _robust_procrustes(reference, estimated, rounds: int = 3):
    """Procrustes, then again on the better half of the particles (a few wrong poses must not tilt the fit)."""
    from .so3grid import angle_between

    A, errors = _procrustes(reference, estimated)
    for _ in range(rounds):
        good = errors <= errors.median()
        if int(good.sum()) < 3:
            break
        A, _ = _procrustes(reference[good], estimated[good])
        errors = angle_between(reference @ A, estimated)
    return A, errors


def align_poses(estimated, reference) -> PoseAlignment:
    """The global rotation and hand that best take ``reference`` poses (N, 3, 3) onto ``estimated``.

    Both hands are fitted (least squares on the rotation matrices, refitted on the better half of
    the particles so that outliers do not bias it); the hand with the smaller median error wins.
    """
    E = torch.as_tensor(np.asarray(estimated), dtype=torch.float64)
    R = torch.as_tensor(np.asarray(reference), dtype=torch.float64)
    if E.shape != R.shape or E.ndim != 3 or E.shape[1:] != (3, 3):
        raise ValueError(f"poses must be two (N, 3, 3) arrays of the same N, got {tuple(E.shape)} and {tuple(R.shape)}")
    direct = _robust_procrustes(R, E)
    mirror = _robust_procrustes(MIRROR @ R @ MIRROR, E)
    med = [float(direct[1].median()), float(mirror[1].median())]
    mirrored = med[1] < med[0]
    A, errors = mirror if mirrored else direct
    return PoseAlignment(A.numpy(), bool(mirrored), errors.numpy(), min(med), max(med))


def align_map(volume, alignment: PoseAlignment) -> np.ndarray:
    """A map (D, D, D) reconstructed with the estimated poses, brought into the reference's frame and hand."""
    from .projection import sample_volume

    V = torch.as_tensor(np.asarray(volume), dtype=torch.float32)
    D = V.shape[-1]
    k = torch.arange(D, dtype=torch.float32) - D // 2
    z, y, x = torch.meshgrid(k, k, k, indexing="ij")
    points = torch.stack([x, y, z], -1).reshape(-1, 3).double()
    transform = torch.as_tensor(alignment.rotation)
    if alignment.mirrored:
        transform = MIRROR @ transform
    return sample_volume(V, (points @ transform).float()).reshape(D, D, D).numpy()
