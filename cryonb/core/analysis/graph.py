"""Nearest-neighbour graphs of latents and shortest paths through them (graph traversal)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from ..errors import InputError
from ._inputs import as_count, as_latents


@dataclass(frozen=True)
class GraphPath:
    """Particles visited by a graph path, in order, and the path length up to each."""

    indices: np.ndarray  # (L,) int, particle indices from the first anchor to the last
    distances: np.ndarray  # (L,) float, cumulative graph distance from the first anchor


APPROXIMATE_ABOVE = 200_000  # latents beyond which knn_graph searches approximately by default


def knn_graph(
    z,
    k: int = 10,
    *,
    mode: Literal["knn", "threshold"] = "knn",
    mean_degree: float = 5,
    max_degree: int = 10,
    eps: float | None = None,
) -> sp.csr_matrix:
    """Symmetric sparse graph (N, N) of z (N, zdim), Euclidean distances as edge weights.

    ``"knn"`` joins every particle to its k nearest neighbours (and keeps an edge if either
    end chose it), so sparse regions stay connected. ``"threshold"`` is the variant of the
    cryoDRGN paper: among each particle's ``max_degree`` nearest neighbours keep those
    closer than one global distance, chosen so that the mean degree is ``mean_degree``;
    it cuts off sparse regions and outlying particles, breaking the graph into pieces. ``eps > 0`` accepts
    neighbours up to (1 + eps) times farther than the true ones (cKDTree's approximate
    search): several times faster in 10-D, still a faithful graph for paths. ``eps=None``
    searches exactly up to 200,000 latents and with ``eps=2`` beyond (1M latents in 10-D:
    about 4 s instead of 34 s on 2 cores, with the same path; see docs/benchmarks.md).
    """
    z = as_latents(z, min_rows=2)
    n = len(z)
    if mode == "knn":
        k = as_count(k, "k", 1, n - 1)
    elif mode == "threshold":
        k = as_count(max_degree, "max_degree", 1, n - 1)
        if not 0 < mean_degree <= k:
            raise InputError(None, f"mean_degree={mean_degree} is out of range", f"choose 0 < mean_degree <= max_degree ({k})")
    else:
        raise InputError(None, f"mode={mode!r} is not a graph mode", 'use mode="knn" or mode="threshold"')
    if eps is None:
        eps = 0.0 if n <= APPROXIMATE_ABOVE else 2.0
    distance, neighbour = cKDTree(z).query(z, k=k + 1, eps=eps, workers=-1)
    source = np.repeat(np.arange(n), k + 1)
    distance, neighbour = distance.ravel(), neighbour.ravel()
    keep = neighbour != source  # drop each point itself (wherever ties put it)
    if mode == "threshold":
        rank = max(1, int(n * mean_degree)) - 1
        cutoff = np.partition(distance[keep], rank)[rank]
        keep &= distance <= cutoff
    # Zero distances (duplicate latents) would vanish from a sparse matrix: weigh them a hair above 0.
    weight = np.maximum(distance[keep], np.finfo(np.float64).tiny)
    graph = sp.csr_matrix((weight, (source[keep], neighbour[keep])), shape=(n, n))
    return graph.maximum(graph.T).tocsr()


def graph_path(z, anchors, graph: sp.spmatrix | None = None, **graph_kw) -> GraphPath:
    """Shortest graph path through ``anchors`` (particle indices) in order.

    The graph is :func:`knn_graph` of z (``graph_kw`` go to it) unless given. Segments
    anchor0 -> anchor1 -> ... are found with Dijkstra and joined without repeating the
    anchors where they meet.
    """
    z = as_latents(z, min_rows=2)
    n = len(z)
    anchors = np.asarray(anchors)
    if anchors.ndim != 1 or len(anchors) < 2 or not np.issubdtype(anchors.dtype, np.integer):
        raise InputError(None, f"anchors {anchors.tolist()} are not a list of two or more particle indices", "pass e.g. anchors=[start, end]")
    if ((anchors < 0) | (anchors >= n)).any():
        raise InputError(None, f"anchors {anchors.tolist()} are out of range for {n} particles", f"use indices from 0 to {n - 1}")
    if graph is None:
        graph = knn_graph(z, **graph_kw)
    elif graph.shape != (n, n):
        raise InputError(None, f"graph has shape {graph.shape} but z has {n} rows", "build the graph from the same z with knn_graph(z)")
    sources, targets = anchors[:-1], anchors[1:]
    distance, predecessor = dijkstra(graph, directed=False, indices=np.unique(sources), return_predecessors=True)
    row = np.searchsorted(np.unique(sources), sources)
    indices, lengths = [anchors[:1]], [np.zeros(1)]
    for r, a, b in zip(row, sources, targets):
        if not np.isfinite(distance[r, b]):
            raise InputError(
                None,
                f"anchors {a} and {b} are not connected in the graph",
                "build the graph with more neighbours, e.g. graph_path(z, anchors, k=20), or pick anchors in one region",
            )
        segment = [b]
        while segment[-1] != a:
            segment.append(predecessor[r, segment[-1]])
        segment = np.array(segment[-2::-1])  # a's successor ... b
        indices.append(segment)
        lengths.append(lengths[-1][-1] + distance[r, segment])
    return GraphPath(indices=np.concatenate(indices).astype(np.int64), distances=np.concatenate(lengths))
