"""Low-dimensional views of the latent space: PCA, UMAP and the latent norm."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from ..errors import InputError
from ._inputs import as_count, as_latents


@dataclass(frozen=True)
class PCAResult:
    """Principal axes of z: ``coords = (z - mean) @ components.T``."""

    components: np.ndarray  # (n_components, zdim), unit rows, by decreasing variance
    explained_variance: np.ndarray  # (n_components,), unbiased variance along each axis
    explained_variance_ratio: np.ndarray  # (n_components,), fraction of the total variance
    coords: np.ndarray  # (N, n_components)
    mean: np.ndarray  # (zdim,)


def pca(z, n_components: int | None = None) -> PCAResult:
    """Principal component analysis of z (N, zdim), all components by default.

    Each axis's sign is fixed so that its largest-magnitude entry is positive, so the
    same latents give the same axes on every run and machine.
    """
    z = as_latents(z, min_rows=2)
    k = z.shape[1] if n_components is None else as_count(n_components, "n_components", 1, min(z.shape))
    mean = z.mean(0)
    _, s, vt = np.linalg.svd(z - mean, full_matrices=False)
    vt = vt[:k] * np.sign(vt[np.arange(k), np.abs(vt[:k]).argmax(1)])[:, None]
    variance = s**2 / (len(z) - 1)
    return PCAResult(
        components=vt,
        explained_variance=variance[:k],
        explained_variance_ratio=variance[:k] / variance.sum(),
        coords=(z - mean) @ vt.T,
        mean=mean,
    )


def auto_neighbors(n: int) -> int:
    """UMAP's ``n_neighbors`` for ``n`` points: 15 (UMAP's default) from 45 points, n // 3 (at least 2) below."""
    return int(min(15, max(2, n // 3)))


def latent_norm(z) -> np.ndarray:
    """Euclidean norm of each latent (N,): a quick colour for a 2D embedding."""
    return np.linalg.norm(as_latents(z), axis=1)


def umap_embedding(
    z,
    *,
    max_fit: int = 50_000,
    seed: int | None = 0,
    n_neighbors: int | None = None,
    min_dist: float = 0.1,
    placement: str = "neighbors",
    chunk: int = 100_000,
) -> np.ndarray:
    """UMAP of z (N, zdim) to (N, 2) float32.

    ``n_neighbors=None`` takes :func:`auto_neighbors` of N: UMAP's 15, fewer for small sets
    (UMAP needs ``n_neighbors`` < N).

    Beyond ``max_fit`` points, UMAP is fitted on a random sample of ``max_fit`` and the rest is
    placed from it: with ``placement="neighbors"`` (default) at the inverse-distance weighted mean
    of the embeddings of its 5 nearest fitted latents (a k-d tree query: seconds at 1M points);
    with ``"transform"`` by UMAP's own ``transform``, in chunks of ``chunk`` (minutes at 1M).
    ``seed=None`` lets UMAP use every core, at the price of run-to-run differences.
    """
    import umap  # first import compiles with numba (~25 s), so only on demand

    z = as_latents(z, min_rows=3)
    if n_neighbors is None:
        n_neighbors = auto_neighbors(len(z))
    n_neighbors = as_count(n_neighbors, "n_neighbors", 2, len(z) - 1)
    max_fit = as_count(max_fit, "max_fit", n_neighbors + 1)
    if placement not in ("neighbors", "transform"):
        raise InputError(None, f"placement={placement!r} is not a placement", 'use "neighbors" or "transform"')
    reducer = umap.UMAP(
        n_neighbors=n_neighbors, min_dist=min_dist, random_state=seed, n_jobs=-1 if seed is None else 1
    )
    if len(z) <= max_fit:
        return reducer.fit_transform(z).astype(np.float32)
    fit = np.zeros(len(z), bool)
    fit[np.random.default_rng(seed).choice(len(z), max_fit, replace=False)] = True
    out = np.empty((len(z), 2), np.float32)
    out[fit] = reducer.fit_transform(z[fit])
    rest = np.flatnonzero(~fit)
    if placement == "neighbors":
        distance, neighbour = cKDTree(z[fit]).query(z[rest], k=5, workers=-1)
        weight = 1.0 / np.maximum(distance, 1e-12)
        out[rest] = np.einsum("nk,nkd->nd", weight / weight.sum(1, keepdims=True), out[fit][neighbour])
        return out
    for start in range(0, len(rest), chunk):
        rows = rest[start : start + chunk]
        out[rows] = reducer.transform(z[rows])
    return out
