"""Lasso on the latent explorer at 1M particles: time from a polygon event to the stored selection.

    python benchmarks/bench_lasso.py                   # 1M particles, 8-D latents
    python benchmarks/bench_lasso.py --n 100000

The explorer's widget is built first (rasterised plot rendered to Bokeh models, streams attached),
so an event also re-rasterises the selection layer, as in a notebook. Target: <= 1 s per lasso.
Prints one JSON line per result.
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

from cryonb.core.analysis import lasso_select
from cryonb.core.run import Run
from cryonb.widgets.latent_explorer import LatentExplorer


def star_polygon(radius: float, vertices: int, seed: int = 1) -> np.ndarray:
    """A concave polygon around the origin with ``vertices`` vertices of radius 0.5–1 × ``radius``."""
    rng = np.random.default_rng(seed)
    angle = np.sort(rng.uniform(0, 2 * np.pi, vertices))
    return np.stack([np.cos(angle), np.sin(angle)], 1) * radius * rng.uniform(0.5, 1.0, (vertices, 1))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--zdim", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    common = {"n": args.n, "zdim": args.zdim, "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine(),
              "command": "python " + shlex.join(sys.argv)}

    rng = np.random.default_rng(0)
    z = rng.normal(size=(args.n, args.zdim)).astype(np.float32)
    run = Run(model=None, scale=1.0, apix=1.0, z=z)
    start = time.perf_counter()
    explorer = LatentExplorer(run, coords=z[:, :2], color="norm", k=None)
    explorer.widget
    build_s = time.perf_counter() - start
    for radius, vertices in ((0.5, 50), (2.0, 50), (2.0, 400)):  # ~5 %, ~60 % of the points; a long drag
        polygon = star_polygon(radius, vertices)
        times = []
        for _ in range(args.repeats):
            explorer.reset()
            start = time.perf_counter()
            explorer.lasso.event(geometry=polygon)
            times.append(time.perf_counter() - start)
        assert np.array_equal(explorer.positions, lasso_select(explorer.coords, polygon))
        print(json.dumps({"bench": "lasso_event", "vertices": vertices, "selected": len(explorer.positions),
                          "best_s": round(min(times), 3), "worst_s": round(max(times), 3),
                          "build_widget_s": round(build_s, 2), **common}), flush=True)


if __name__ == "__main__":
    main()
