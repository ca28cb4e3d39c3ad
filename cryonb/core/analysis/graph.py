"""Nearest-neighbour graphs of latents and shortest paths through them (graph traversal).

A latent space with well-separated clusters gives a graph in several parts (connected
components). A path between anchors in different parts is still made: by default the parts are
joined by their shortest links (a minimum spanning tree over the parts, each link the closest pair
of particles of two parts), the path jumps across those gaps only, each jump is marked
(``GraphPath.gaps``) and a :class:`GraphGapWarning` says so. ``disconnected="grow"`` raises
the number of neighbours until the anchors are joined instead, and ``"raise"`` refuses.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components, dijkstra, minimum_spanning_tree
from scipy.spatial import cKDTree

from ..errors import InputError
from ._inputs import as_count, as_latents


DISCONNECTED = ("bridge", "grow", "raise")


class GraphGapWarning(UserWarning):
    """A graph path that had to leave the data: the anchors lie in separate parts of the graph."""


@dataclass(frozen=True)
class GraphPath:
    """Particles visited by a graph path, in order, and the path length up to each.

    ``gaps[i]`` is True where the step from particle ``i - 1`` to particle ``i`` jumps between
    two separate parts of the graph (a link added to join them: between its ends the path is not
    on the data). ``parts`` is the number of separate parts the graph had.
    """

    indices: np.ndarray  # (L,) int, particle indices from the first anchor to the last
    distances: np.ndarray  # (L,) float, cumulative graph distance from the first anchor
    gaps: np.ndarray | None = None  # (L,) bool, True where the step into this particle jumps a gap
    parts: int = 1  # connected parts of the graph

    def __post_init__(self):
        if self.gaps is None:
            object.__setattr__(self, "gaps", np.zeros(len(self.indices), bool))


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


def graph_path(z, anchors, graph: sp.spmatrix | None = None, *, disconnected: str = "bridge", **graph_kw) -> GraphPath:
    """Shortest graph path through ``anchors`` (particle indices) in order.

    The graph is :func:`knn_graph` of z (``graph_kw`` go to it) unless given. Segments
    anchor0 -> anchor1 -> ... are found with Dijkstra and joined without repeating the
    anchors where they meet.

    ``disconnected``: what to do when the anchors lie in separate parts of the graph (well
    separated clusters). ``"bridge"`` (the default) joins the parts by their shortest links, the
    closest pair of particles of two parts, as single-linkage clustering would (a minimum spanning
    tree over the parts): the path stays on the data except across those gaps, which
    ``GraphPath.gaps`` marks, and a :class:`GraphGapWarning` gives their number and lengths.
    ``"grow"`` doubles the number of neighbours ``k`` until the anchors are in one part (only for a
    graph built here in ``"knn"`` mode; it can take a large ``k`` and much time), with a warning
    naming the ``k`` used. ``"raise"`` raises an :class:`~cryonb.core.errors.InputError`.
    """
    z = as_latents(z, min_rows=2)
    n = len(z)
    anchors = np.asarray(anchors)
    if anchors.ndim != 1 or len(anchors) < 2 or not np.issubdtype(anchors.dtype, np.integer):
        raise InputError(None, f"anchors {anchors.tolist()} are not a list of two or more particle indices", "pass e.g. anchors=[start, end]")
    if ((anchors < 0) | (anchors >= n)).any():
        raise InputError(None, f"anchors {anchors.tolist()} are out of range for {n} particles", f"use indices from 0 to {n - 1}")
    if disconnected not in DISCONNECTED:
        raise InputError(None, f"disconnected={disconnected!r} is not a choice", f"use one of {', '.join(map(repr, DISCONNECTED))}")
    built = graph is None
    if built:
        graph = knn_graph(z, **graph_kw)
    elif graph.shape != (n, n):
        raise InputError(None, f"graph has shape {graph.shape} but z has {n} rows", "build the graph from the same z with knn_graph(z)")
    parts, labels = connected_components(graph, directed=False)
    split = len(np.unique(labels[anchors])) > 1
    bridges = np.zeros((0, 3))
    if split and disconnected == "raise":
        a, b = next((a, b) for a, b in zip(anchors[:-1], anchors[1:]) if labels[a] != labels[b])
        raise InputError(
            None,
            f"anchors {a} and {b} are not connected in the graph (it has {parts} separate parts)",
            "build the graph with more neighbours, e.g. graph_path(z, anchors, k=20), pick anchors in one region, "
            'or let the path jump the gaps with disconnected="bridge"',
        )
    if split and disconnected == "grow":
        graph, parts, labels = _grow(z, anchors, graph if built else None, graph_kw)
    elif split:  # bridge
        bridges = _bridges(z, labels, graph_kw.get("eps"))
        rows, cols = bridges[:, 0].astype(np.int64), bridges[:, 1].astype(np.int64)
        weight = np.maximum(bridges[:, 2], np.finfo(np.float64).tiny)
        links = sp.csr_matrix((np.r_[weight, weight], (np.r_[rows, cols], np.r_[cols, rows])), shape=(n, n))
        graph = (sp.csr_matrix(graph) + links).tocsr()
    sources, targets = anchors[:-1], anchors[1:]
    distance, predecessor = dijkstra(graph, directed=False, indices=np.unique(sources), return_predecessors=True)
    row = np.searchsorted(np.unique(sources), sources)
    indices, lengths = [anchors[:1]], [np.zeros(1)]
    for r, a, b in zip(row, sources, targets):
        if not np.isfinite(distance[r, b]):  # only a grown approximate graph can still be split here
            raise InputError(None, f"anchors {a} and {b} are not connected in the graph",
                             'use disconnected="bridge", or search neighbours exactly (eps=0)')
        segment = [b]
        while segment[-1] != a:
            segment.append(predecessor[r, segment[-1]])
        segment = np.array(segment[-2::-1])  # a's successor ... b
        indices.append(segment)
        lengths.append(lengths[-1][-1] + distance[r, segment])
    indices = np.concatenate(indices).astype(np.int64)
    gaps = np.zeros(len(indices), bool)
    if len(bridges):
        ends = {(int(i), int(j)) for i, j in bridges[:, :2]}
        ends |= {(j, i) for i, j in ends}
        gaps[1:] = [(int(i), int(j)) in ends for i, j in zip(indices[:-1], indices[1:])]
        jumps = np.linalg.norm(z[indices[1:]][gaps[1:]] - z[indices[:-1]][gaps[1:]], axis=1)
        warnings.warn(GraphGapWarning(gap_notice(parts, jumps, graph_kw)), stacklevel=2)
    return GraphPath(indices=indices, distances=np.concatenate(lengths), gaps=gaps, parts=int(parts))


def gap_notice(parts: int, jumps, graph_kw: dict | None = None) -> str:
    """What a user is told about a path that jumps ``jumps`` (lengths in z) between ``parts`` parts of a graph."""
    jumps = np.asarray(jumps, dtype=np.float64)
    k = (graph_kw or {}).get("k", 10)
    lengths = ", ".join(f"{d:.3g}" for d in jumps[:6]) + (" …" if len(jumps) > 6 else "")
    return (f"the nearest-neighbour graph is in {parts} separate parts and the anchors are not all in one: "
            f"the path jumps {len(jumps)} gap{'s' * (len(jumps) != 1)} off the data (length{'s' * (len(jumps) != 1)} "
            f"{lengths} in z), each between the closest particles of two parts. Fix: accept the jumps, pick anchors "
            f"in one part, or join the parts with more neighbours (k={max(2 * k, 20)} or more)")


def _bridges(z: np.ndarray, labels: np.ndarray, eps: float | None, few: int = 16) -> np.ndarray:
    """Links (i, j, length) joining every part of a graph (``labels``: each particle's part) into one.

    The links of a minimum spanning tree over the parts, each the closest pair of particles of two
    parts, found in rounds as in Boruvka's algorithm: a part of at most ``few`` particles finds its
    nearest outside particles among its particles' ``few`` nearest neighbours; larger parts are
    compared pairwise, a k-d tree each. Each round joins every part to another but perhaps one.
    """
    n = len(z)
    if eps is None:
        eps = 0.0 if n <= APPROXIMATE_ABOVE else 2.0
    tree = cKDTree(z)
    links = []
    labels = np.unique(labels, return_inverse=True)[1]
    while labels.max() > 0:
        few = min(few, n - 1)
        parts = labels.max() + 1
        sizes = np.bincount(labels)
        if parts > 33:  # many parts: the 32 largest compared pairwise, the rest (up to 256 particles) by neighbours
            few = min(max(few, int(np.sort(sizes)[-33]), 16), 256, n - 1)
        candidates = []  # (i, j, d) arrays
        small = np.flatnonzero(sizes[labels] <= few)
        if len(small):
            d, nb = tree.query(z[small], k=few + 1, eps=eps, workers=-1)
            outside = labels[nb] != labels[small][:, None]
            has = outside.any(1)
            first = outside.argmax(1)
            rows = np.flatnonzero(has)
            candidates.append(np.column_stack([small[rows], nb[rows, first[rows]], d[rows, first[rows]]]))
        large = np.flatnonzero(sizes > few)
        members = {p: np.flatnonzero(labels == p) for p in large}
        for a, p in enumerate(large[:-1]):
            others = np.concatenate([members[q] for q in large[a + 1:]])
            d, nearest = cKDTree(z[members[p]]).query(z[others], k=1, eps=eps, workers=-1)
            for q in large[a + 1:]:
                mine = labels[others] == q
                best = int(np.argmin(np.where(mine, d, np.inf)))
                candidates.append(np.array([[others[best], members[p][nearest[best]], d[best]]]))
        candidates = np.concatenate(candidates)
        pi, pj = labels[candidates[:, 0].astype(np.int64)], labels[candidates[:, 1].astype(np.int64)]
        # The cheapest candidate of each pair of parts, then a minimum spanning tree over the parts.
        order = np.lexsort((candidates[:, 2], np.maximum(pi, pj), np.minimum(pi, pj)))
        lo, hi = np.minimum(pi, pj)[order], np.maximum(pi, pj)[order]
        first = np.r_[True, (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])]
        chosen = candidates[order][first]
        lo, hi = lo[first], hi[first]
        weights = np.maximum(chosen[:, 2], np.finfo(np.float64).tiny)
        tree_parts = minimum_spanning_tree(sp.csr_matrix((weights, (lo, hi)), shape=(parts, parts))).tocoo()
        index = {(int(a), int(b)): i for i, (a, b) in enumerate(zip(lo, hi))}
        picked = [index[(min(a, b), max(a, b))] for a, b in zip(tree_parts.row, tree_parts.col)]
        links.append(chosen[picked])
        joined = sp.csr_matrix((np.ones(len(picked)), (lo[picked], hi[picked])), shape=(parts, parts))
        labels = connected_components(joined, directed=False)[1][labels]
    return np.concatenate(links) if links else np.zeros((0, 3))


def _grow(z: np.ndarray, anchors: np.ndarray, graph, graph_kw: dict):
    """A k-NN graph of z with k doubled until the anchors are in one part: (graph, parts, labels)."""
    if graph is None or graph_kw.get("mode", "knn") != "knn":
        raise InputError(None, 'disconnected="grow" needs a "knn" graph that graph_path builds itself',
                         'leave out graph= and mode=, or use disconnected="bridge"')
    n = len(z)
    start = k = as_count(graph_kw.get("k", 10), "k", 1, n - 1)
    while True:
        k = min(2 * k, n - 1)
        graph = knn_graph(z, **{**graph_kw, "k": k})
        parts, labels = connected_components(graph, directed=False)
        if len(np.unique(labels[anchors])) == 1 or k == n - 1:
            break
    warnings.warn(GraphGapWarning(f"the nearest-neighbour graph with k={start} leaves the anchors in separate parts: "
                                  f"k={k} joins them (the path stays on the data, its steps may be long)"), stacklevel=3)
    return graph, parts, labels
