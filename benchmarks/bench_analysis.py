"""Latent-space analysis at 1M particles: k-NN graph + path, the paper's thresholded graph, lasso, UMAP.

    python benchmarks/bench_analysis.py                # 1M x 10-D, all four
    python benchmarks/bench_analysis.py --n 100000 --skip-umap --eps 1

The latents lie on a noisy curve in 10-D (uniform along it, Gaussian noise 0.02 across),
and the path runs between the particles at its two ends. The k-NN graph is timed exact and
with cKDTree's approximate search (``--eps``). Prints one JSON line per result.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time

import numpy as np
from scipy.stats import spearmanr

from cryonb.core.analysis import graph_path, knn_graph, lasso_select, umap_embedding
from cryonb.core.errors import InputError


def noisy_curve(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(t, z): n latents along a unit-speed closed-form curve in 10-D, sorted by t in [0, 1]."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.random(n))
    freq = np.arange(1, 6)
    angle = np.pi * np.outer(t, freq)
    z = np.concatenate([np.cos(angle) / freq, np.sin(angle) / freq], 1) + rng.normal(0, 0.02, (n, 10))
    return t, z.astype(np.float32)


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, round(time.perf_counter() - start, 3)


def bench_path(t: np.ndarray, z: np.ndarray, mode: str, eps: float) -> dict:
    graph, graph_s = timed(knn_graph, z, mode=mode, eps=eps)
    try:
        path, path_s = timed(graph_path, z, [0, len(z) - 1], graph=graph)
    except InputError as error:
        return {"mode": mode, "eps": eps, "graph_s": graph_s, "found": False, "error": str(error)}
    order = spearmanr(np.arange(len(path.indices)), t[path.indices]).statistic
    return {"mode": mode, "eps": eps, "graph_s": graph_s, "path_s": path_s, "total_s": round(graph_s + path_s, 3),
            "found": True, "path_particles": len(path.indices), "spearman_vs_truth": round(float(order), 5)}


def bench_lasso(n: int) -> dict:
    rng = np.random.default_rng(1)
    points = rng.normal(size=(n, 2)).astype(np.float32)
    angle = np.sort(rng.uniform(0, 2 * np.pi, 50))
    polygon = np.stack([np.cos(angle), np.sin(angle)], 1) * rng.uniform(0.5, 2.0, (50, 1))  # concave, 50 vertices
    times, selected = [], None
    for _ in range(3):
        selected, seconds = timed(lasso_select, points, polygon)
        times.append(seconds)
    return {"lasso_vertices": 50, "selected": len(selected), "best_of_3_s": min(times)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--max-fit", type=int, default=50_000, help="UMAP fit sample; the rest is placed from it")
    ap.add_argument("--placement", default="neighbors", choices=("neighbors", "transform"))
    ap.add_argument("--eps", type=float, default=2.0, help="also time the k-NN graph with this approximate search")
    ap.add_argument("--skip-umap", action="store_true")
    ap.add_argument("--skip-graph", action="store_true")
    args = ap.parse_args(argv)
    common = {"n": args.n, "zdim": 10, "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine(),
              "command": "python " + shlex.join(sys.argv)}

    def report(name, result):
        print(json.dumps({"bench": name, **result, **common}), flush=True)

    t, z = noisy_curve(args.n)
    if not args.skip_graph:
        for mode, eps in (("knn", 0.0), ("knn", args.eps), ("threshold", 0.0)):
            report("graph_path", bench_path(t, z, mode, eps))
        report("lasso_select", bench_lasso(args.n))
    if not args.skip_umap:
        xy, seconds = timed(umap_embedding, z, max_fit=args.max_fit, placement=args.placement)
        order = spearmanr(xy[:, 0], t)[0] if len(t) else float("nan")
        report("umap_embedding", {"max_fit": args.max_fit, "placement": args.placement, "seconds": seconds,
                                  "finite": bool(np.isfinite(xy).all()), "spearman_x_vs_curve": round(abs(order), 4)})


if __name__ == "__main__":
    main()
