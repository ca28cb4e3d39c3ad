"""Trajectories through chosen anchors: their order (as given, or the shortest open tour) and the
latents along the way (a graph path through the data, or straight lines), ready to decode.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ._inputs import as_array, as_count, as_latents

EXACT_UP_TO = 10  # anchors ordered exactly (Held-Karp, O(2^n n^2)); more: nearest neighbour + 2-opt
ORDERS = ("given", "shortest")
PATHS = ("graph", "straight")


def tour_length(points, order) -> float:
    """Length of the open path visiting ``points`` (n, d) in ``order``."""
    points = np.asarray(points, dtype=np.float64)[np.asarray(order, dtype=np.int64)]
    return float(np.linalg.norm(np.diff(points, axis=0), axis=1).sum())


def shortest_tour(points, start: int | None = None) -> np.ndarray:
    """The order of ``points`` (n, d) that visits each once along the shortest open path.

    Exact (dynamic programming over subsets) up to ``EXACT_UP_TO`` points; beyond, the best
    nearest-neighbour tour from every start, improved by 2-opt (near the optimum, not proven
    optimal). ``start`` fixes the first point; otherwise both ends are free. Of a path and its
    reverse, the one starting at the lower index is returned.
    """
    points = as_array(points, "points", min_rows=1, row="anchor")
    n = len(points)
    if start is not None:
        start = as_count(start, "start", 0, n - 1)
    if n <= 2:
        order = np.arange(n)
        return order[::-1].copy() if start == 1 else order
    distance = np.linalg.norm(points[:, None] - points[None], axis=-1)
    order = _held_karp(distance, start) if n <= EXACT_UP_TO else _two_opt(distance, _nearest_neighbour(distance, start), start is not None)
    if start is None and order[-1] < order[0]:
        order = order[::-1]
    return np.asarray(order, dtype=np.int64)


def _held_karp(distance: np.ndarray, start: int | None) -> list[int]:
    n = len(distance)
    full = (1 << n) - 1
    cost = np.full((1 << n, n), np.inf)
    parent = np.full((1 << n, n), -1, np.int64)
    for i in range(n) if start is None else [start]:
        cost[1 << i, i] = 0.0
    for mask in range(1, 1 << n):
        ends = [j for j in range(n) if mask >> j & 1 and np.isfinite(cost[mask, j])]
        for j in ends:
            for k in range(n):
                if mask >> k & 1:
                    continue
                new = mask | 1 << k
                value = cost[mask, j] + distance[j, k]
                if value < cost[new, k]:
                    cost[new, k], parent[new, k] = value, j
    end = int(np.argmin(cost[full]))
    order, mask = [end], full
    while parent[mask, order[-1]] >= 0:
        previous = int(parent[mask, order[-1]])
        mask &= ~(1 << order[-1])
        order.append(previous)
    return order[::-1]


def _nearest_neighbour(distance: np.ndarray, start: int | None) -> list[int]:
    n = len(distance)
    best, best_length = None, np.inf
    for first in range(n) if start is None else [start]:
        order, left = [first], set(range(n)) - {first}
        while left:
            nearest = min(left, key=lambda k: distance[order[-1], k])
            order.append(nearest)
            left.remove(nearest)
        length = sum(distance[a, b] for a, b in itertools.pairwise(order))
        if length < best_length:
            best, best_length = order, length
    return best


def _two_opt(distance: np.ndarray, order: list[int], fixed_start: bool) -> list[int]:
    """Reverse segments of an open path while that shortens it (an end may move unless fixed)."""
    order = list(order)
    n = len(order)
    improved = True
    while improved:
        improved = False
        for i in range(1 if fixed_start else 0, n - 1):
            for j in range(i + 1, n):
                before = (distance[order[i - 1], order[i]] if i > 0 else 0.0) + (distance[order[j], order[j + 1]] if j < n - 1 else 0.0)
                after = (distance[order[i - 1], order[j]] if i > 0 else 0.0) + (distance[order[i], order[j + 1]] if j < n - 1 else 0.0)
                if after < before - 1e-12:
                    order[i : j + 1] = order[i : j + 1][::-1]
                    improved = True
    return order


@dataclass(frozen=True)
class Trajectory:
    """Latents along a trajectory through anchors, and where they come from."""

    z: np.ndarray  # (L, zdim) latents to decode, in order
    anchors: np.ndarray  # (A,) rows of the run's z, in the order visited
    particles: np.ndarray  # (L,) rows of z that each latent is (graph path), or -1 (between anchors on a line)
    # (L,) bool: True where the way from the previous latent to this one jumps a gap between separate
    # parts of the graph (a graph path through well-separated clusters; see graph_path): off the data.
    gaps: np.ndarray | None = None

    def __post_init__(self):
        if self.gaps is None:
            object.__setattr__(self, "gaps", np.zeros(len(self.z), bool))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the latents as text, one per line (cryoDRGN's ``z-path.txt`` format, for ``eval_vol --zfile``)."""
        from ..io.atomic import atomic_write

        path = Path(path)
        with atomic_write(path, "w") as f:
            np.savetxt(f, self.z, fmt="%.6g")
        return path


def order_anchors(z, anchors, order: str = "given") -> np.ndarray:
    """``anchors`` (rows of ``z``) as given, or reordered along the shortest open tour in latent space."""
    z = as_latents(z)
    anchors = _anchor_rows(anchors, len(z))
    if order not in ORDERS:
        raise InputError(None, f"unknown order {order!r}", f"use one of {', '.join(map(repr, ORDERS))}")
    return anchors if order == "given" else anchors[shortest_tour(z[anchors])]


def trajectory(z, anchors, *, order: str = "given", path: str = "graph", n: int | None = 20, graph=None,
               disconnected: str = "bridge", **graph_kw) -> Trajectory:
    """Latents from the first anchor to the last, through the others.

    ``anchors``: two or more rows of ``z`` (clicked particles, k-means centres' ``on_data``).
    ``order``: ``"given"`` or ``"shortest"`` (:func:`shortest_tour`). ``path``: ``"graph"``, the
    shortest path through the particles' nearest-neighbour graph (:func:`graph_path`, staying
    on the data; ``graph_kw`` go to :func:`knn_graph`), or ``"straight"`` lines between anchors.
    ``n``: the number of latents, evenly spaced by distance along the way, every anchor kept
    (``None``: every particle of a graph path; on straight lines, 10 per segment). A graph path
    with fewer particles than ``n`` keeps them all and adds latents on the segments between them
    (``particles`` -1 there).

    ``disconnected`` (graph paths): anchors in separate parts of the graph (well-separated
    clusters) are joined across the shortest gaps between the parts (``"bridge"``, marked in
    ``Trajectory.gaps``, with a :class:`~cryonb.core.analysis.graph.GraphGapWarning`), by a graph
    of more neighbours (``"grow"``), or refused (``"raise"``); see :func:`graph_path`.
    """
    from .graph import graph_path

    z = as_latents(z, min_rows=2)
    anchors = order_anchors(z, anchors, order)
    if len(anchors) < 2:
        raise InputError(None, "a trajectory needs two anchors or more", "add anchors: clicked particles or k-means centres")
    if path not in PATHS:
        raise InputError(None, f"unknown path {path!r}", f"use one of {', '.join(map(repr, PATHS))}")
    if n is not None:
        n = as_count(n, "n", len(anchors))
    if path == "graph":
        walk = graph_path(z, anchors, graph=graph, disconnected=disconnected, **graph_kw)
        rows, distances = walk.indices, walk.distances
        if n is not None and n > len(rows):  # fewer particles on the way than latents asked for
            return _resample(z[rows], rows, distances, walk.gaps, anchors, n)
        keep = _spread(distances, np.isin(np.arange(len(rows)), _anchor_steps(rows, anchors)), n)
        jumped = np.cumsum(walk.gaps)[keep]  # a kept latent is off-gap unless a gap lies since the one before
        gaps = np.r_[False, np.diff(jumped) > 0]
        return Trajectory(z=z[rows[keep]].astype(np.float32), anchors=anchors, particles=rows[keep], gaps=gaps)
    points = z[anchors].astype(np.float64)
    lengths = np.linalg.norm(np.diff(points, axis=0), axis=1)
    if n is None:
        per_segment = np.full(len(lengths), 10)
    else:  # the n - A latents between anchors shared by segment length
        share = (n - len(anchors)) * lengths / max(lengths.sum(), 1e-30)
        per_segment = np.floor(share).astype(int)
        per_segment[np.argsort(share - per_segment)[::-1][: (n - len(anchors)) - per_segment.sum()]] += 1
        per_segment += 1
    out, rows = [points[:1]], [anchors[:1]]
    for (a, b), steps, end in zip(itertools.pairwise(points), per_segment, anchors[1:]):
        t = np.arange(1, steps + 1)[:, None] / steps
        out.append(a + t * (b - a))
        rows.append(np.r_[np.full(steps - 1, -1), end])
    return Trajectory(z=np.concatenate(out).astype(np.float32), anchors=anchors, particles=np.concatenate(rows).astype(np.int64))


def _resample(points, rows, distances, walk_gaps, anchors, n: int) -> Trajectory:
    """``n`` latents along the polyline through ``points`` evenly spaced by distance, every
    particle of the walk among them; between particles, latents on the straight segment (marked as
    gaps where the walk jumps one, ``walk_gaps``)."""
    extra = n - len(rows)
    gaps = np.diff(distances)
    share = extra * gaps / max(gaps.sum(), 1e-30)
    per_gap = np.floor(share).astype(int)
    per_gap[np.argsort(share - per_gap)[::-1][: extra - per_gap.sum()]] += 1
    out, particles, gaps = [points[:1]], [rows[:1]], [np.zeros(1, bool)]
    for i, steps in enumerate(per_gap):
        t = np.arange(1, steps + 2)[:, None] / (steps + 1)
        out.append(points[i] + t * (points[i + 1] - points[i]))
        particles.append(np.r_[np.full(steps, -1), rows[i + 1]])
        gaps.append(np.full(steps + 1, bool(walk_gaps[i + 1])))
    return Trajectory(z=np.concatenate(out).astype(np.float32), anchors=anchors, particles=np.concatenate(particles).astype(np.int64),
                      gaps=np.concatenate(gaps))


def _anchor_rows(anchors, n: int) -> np.ndarray:
    anchors = np.asarray(anchors).reshape(-1)
    if anchors.size and not np.issubdtype(anchors.dtype, np.integer):
        raise InputError(None, f"anchors are {anchors.dtype}, not particle rows", "pass integer rows of z")
    anchors = anchors.astype(np.int64)
    if anchors.size and (anchors.min() < 0 or anchors.max() >= n):
        raise InputError(None, f"anchors {anchors.tolist()} are out of range for {n} particles", f"use rows from 0 to {n - 1}")
    return anchors


def _anchor_steps(rows: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Steps of a graph walk at which it reaches each anchor in turn."""
    steps, at = [], 0
    for anchor in anchors:
        at = at + int(np.argmax(rows[at:] == anchor))
        steps.append(at)
    return np.array(steps)


def _spread(distances: np.ndarray, fixed: np.ndarray, n: int | None) -> np.ndarray:
    """Indices of ``n`` steps of a walk evenly spaced by distance, the ``fixed`` steps always among them."""
    everything = np.arange(len(distances))
    if n is None or n >= len(distances):
        return everything
    chosen = set(np.flatnonzero(fixed).tolist())
    targets = np.linspace(distances[0], distances[-1], n)
    for target in targets:
        if len(chosen) >= n:
            break
        candidates = [i for i in np.argsort(np.abs(distances - target)) if i not in chosen]
        if candidates:
            chosen.add(int(candidates[0]))
    return np.array(sorted(chosen))
