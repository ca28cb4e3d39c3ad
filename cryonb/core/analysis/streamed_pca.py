"""PCA of rows that arrive in chunks (maps as they are generated), in memory bounded by the rank kept.

An incremental SVD (Brand 2006): the leading ``rank`` singular triplets of the rows seen so far are
updated with each chunk from the small Gram matrix of [S·Vᵀ; chunk], and the left vectors of all
rows are kept (N × rank), so every row gets its coordinates without a second pass. Rows are centred
on a fixed estimate of the mean while streaming; the exact mean is applied at the end as a rank-one
correction. Work is in float64 on the rows' device.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InputError


@dataclass(frozen=True)
class StreamedPCAResult:
    """Principal axes of the rows: ``coords = (rows - mean) @ components.T`` (approximately, past ``rank``)."""

    components: np.ndarray  # (n_components, V) unit rows, by decreasing variance
    explained_variance: np.ndarray  # (n_components,)
    explained_variance_ratio: np.ndarray  # (n_components,), of the exact total variance
    coords: np.ndarray  # (N, n_components)
    mean: np.ndarray  # (V,)


class StreamedPCA:
    """Feed chunks of rows (B, V) with ``update``, then ``result``.

    ``center`` (V,) is the estimate of the mean the rows are centred on while streaming (e.g. the
    mean of a first chunk); ``rank`` singular triplets are kept between chunks (a few more than the
    components wanted: what lies beyond them is dropped at each update).
    """

    def __init__(self, center: torch.Tensor, rank: int = 40):
        self.center = center.reshape(-1).to(torch.float64)
        self.rank = int(rank)
        device = self.center.device
        self.u = torch.zeros(0, 0, dtype=torch.float64, device=device)
        self.s = torch.zeros(0, dtype=torch.float64, device=device)
        self.vt = torch.zeros(0, len(self.center), dtype=torch.float64, device=device)
        self.sum = torch.zeros_like(self.center)
        self.sum_squares = torch.zeros((), dtype=torch.float64, device=device)

    @property
    def n(self) -> int:
        return self.u.shape[0]

    @torch.no_grad()
    def update(self, rows: torch.Tensor) -> None:
        rows = rows.reshape(len(rows), -1).to(self.center.device, torch.float64) - self.center
        if rows.shape[1] != len(self.center):
            raise InputError(None, f"rows have {rows.shape[1]} columns, expected {len(self.center)}", "pass rows of one mask")
        self.sum += rows.sum(0)
        self.sum_squares += rows.pow(2).sum()
        stacked = torch.cat([self.s[:, None] * self.vt, rows])
        k = len(self.s)
        u, s, vt = _thin_svd(stacked, self.rank)
        self.u = torch.cat([self.u @ u[:k], u[k:]])
        self.s, self.vt = s, vt

    @torch.no_grad()
    def result(self, n_components: int) -> StreamedPCAResult:
        n = self.n
        if n < 2:
            raise InputError(None, f"PCA needs at least 2 rows, got {n}", "generate more maps")
        shift = self.sum / n  # exact mean minus the centre used while streaming
        # rows - mean = [U, 1/√n] · [S·Vᵀ; -√n·shift]: re-orthonormalise the left factor, then a small SVD.
        left = torch.cat([self.u, torch.full((n, 1), n**-0.5, dtype=torch.float64, device=self.u.device)], 1)
        q, r = torch.linalg.qr(left)
        right = r @ torch.cat([self.s[:, None] * self.vt, -(n**0.5) * shift[None]])
        u, s, vt = _thin_svd(right, n_components)
        coords = (q @ u) * s
        sign = torch.sign(vt[torch.arange(len(vt), device=vt.device), vt.abs().argmax(1)])
        sign[sign == 0] = 1
        total = float(self.sum_squares - n * shift.pow(2).sum())
        variance = s.pow(2)
        return StreamedPCAResult(
            components=(vt * sign[:, None]).float().cpu().numpy(),
            explained_variance=(variance / (n - 1)).cpu().numpy(),
            explained_variance_ratio=(variance / max(total, np.finfo(np.float64).tiny)).cpu().numpy(),
            coords=(coords * sign).cpu().numpy(),
            mean=(self.center + shift).float().cpu().numpy(),
        )


def _thin_svd(a: torch.Tensor, rank: int):
    """The leading ``rank`` singular triplets of a short, wide matrix (m × V, m small), from its Gram matrix.

    Directions with a singular value below 1e-7 of the largest are dropped (they carry no variance
    in float64 arithmetic on the Gram matrix).
    """
    values, vectors = torch.linalg.eigh(a @ a.T)
    values, vectors = values.flip(0), vectors.flip(1)
    keep = int(min(rank, (values > values[0].clamp_min(0) * 1e-14).sum())) if len(values) else 0
    keep = max(keep, 1) if values.numel() and values[0] > 0 else 0
    s = values[:keep].clamp_min(0).sqrt()
    u = vectors[:, :keep]
    vt = (u.T @ a) / s[:, None] if keep else a[:0]
    return u, s, vt
