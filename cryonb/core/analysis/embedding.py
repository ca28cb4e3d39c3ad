"""Low-dimensional views of the latent space: PCA, UMAP and the latent norm."""

from __future__ import annotations

import functools
import importlib
import warnings
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


SMALL_SET = 4096  # below this, UMAP finds neighbours among all pairwise distances

# umap-learn's and pynndescent's modules whose numba functions compile on first use
_NUMBA_MODULES = ("umap.umap_", "umap.layouts", "umap.utils", "umap.distances", "umap.sparse", "umap.spectral",
                  "pynndescent.pynndescent_", "pynndescent.utils", "pynndescent.distances", "pynndescent.rp_trees",
                  "pynndescent.sparse", "pynndescent.sparse_nndescent", "pynndescent.graph_utils")


@functools.cache
def import_umap():
    """``umap``, with its numba functions keeping their compiled code on disk.

    umap-learn compiles them anew in every process, about 15 s of a kernel's first UMAP of a few
    thousand points (23 s against 8 s on a CPU core). Numba's own cache (what ``cache=True`` turns
    on; numba keeps it beside the modules, or in ``NUMBA_CACHE_DIR``) makes that once per
    installation. Functions it cannot cache are compiled as before.
    """
    import umap

    try:
        from numba.core.caching import NullCache
        from numba.core.dispatcher import Dispatcher
    except ImportError:  # another numba layout: compiled in each process, as umap does
        return umap
    for name in _NUMBA_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        for function in vars(module).values():
            if isinstance(function, Dispatcher) and isinstance(getattr(function, "_cache", None), NullCache):
                try:
                    function.enable_caching()
                except RuntimeError:  # no writable place for a cache (numba found none): compiled per process
                    return umap
    return umap


def _exact_neighbours(z: np.ndarray, k: int) -> tuple:
    """Each point's ``k`` nearest points (itself first) and their distances, as UMAP's ``precomputed_knn``."""
    distance, index = cKDTree(z).query(z, k=k)
    return index, distance, None


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

    Below ``SMALL_SET`` points UMAP takes each point's neighbours from all pairwise distances,
    computed in a Python loop over the pairs (13 s at 2,000 points); they are given to it instead,
    the same exact neighbours, from a k-d tree (a tenth of a second). A sample is fitted as UMAP
    would, with its own search, which its ``transform`` needs.
    """
    umap = import_umap()  # the first import compiles with numba, so only on demand

    z = as_latents(z, min_rows=3)
    if n_neighbors is None:
        n_neighbors = auto_neighbors(len(z))
    n_neighbors = as_count(n_neighbors, "n_neighbors", 2, len(z) - 1)
    max_fit = as_count(max_fit, "max_fit", n_neighbors + 1)
    if placement not in ("neighbors", "transform"):
        raise InputError(None, f"placement={placement!r} is not a placement", 'use "neighbors" or "transform"')
    small = len(z) <= max_fit and len(z) < SMALL_SET
    reducer = umap.UMAP(n_neighbors=n_neighbors, min_dist=min_dist, random_state=seed, n_jobs=-1 if seed is None else 1,
                        precomputed_knn=_exact_neighbours(z, n_neighbors) if small else (None, None, None))
    if len(z) <= max_fit:
        with warnings.catch_warnings():  # UMAP warns that it cannot transform without its own search: not needed
            warnings.filterwarnings("ignore", message=r"precomputed_knn\[2\]", category=UserWarning)
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
