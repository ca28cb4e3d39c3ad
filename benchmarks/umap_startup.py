"""A kernel's first UMAP: seconds from import to embedding, each in a fresh process (CPU).

    python benchmarks/umap_startup.py                 # 2,000 latents of 8 dimensions, 3 processes per variant
    python benchmarks/umap_startup.py --n 20000 --runs 2

Variants, each run ``--runs`` times one after the other in fresh Python processes (numba compiles
per process unless its disk cache holds the code):

- ``umap-learn``: ``umap.UMAP(...).fit_transform(z)`` as umap-learn does it (below 4,096 points its
  neighbours come from all pairwise distances, a Python loop over the pairs; numba compiles its
  functions in every process);
- ``cryonb``: :func:`cryonb.core.analysis.umap_embedding` (exact neighbours from a k-d tree below
  4,096 points; umap-learn's numba functions kept in numba's disk cache).

One JSON line per process: the variant, the seconds to import and to embed, and the CPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, sys, time
start = time.perf_counter()
import numpy as np
variant, n, zdim = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
z = np.random.default_rng(0).normal(size=(n, zdim)).astype(np.float32)
if variant == "umap-learn":
    import umap
    imported = time.perf_counter()
    umap.UMAP(n_neighbors=15, random_state=0, n_jobs=1).fit_transform(z)
else:
    from cryonb.core.analysis.embedding import import_umap, umap_embedding
    import_umap()
    imported = time.perf_counter()
    umap_embedding(z)
done = time.perf_counter()
print(json.dumps({"import_s": round(imported - start, 1), "embed_s": round(done - imported, 1)}))
"""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000, help="latents")
    p.add_argument("--zdim", type=int, default=8)
    p.add_argument("--runs", type=int, default=3, help="fresh processes per variant")
    p.add_argument("--variants", nargs="+", default=["umap-learn", "cryonb"], choices=["umap-learn", "cryonb"])
    a = p.parse_args(argv)
    for variant in a.variants:
        for run in range(a.runs):
            out = subprocess.run([sys.executable, "-c", CHILD, variant, str(a.n), str(a.zdim)], cwd=ROOT,
                                 capture_output=True, text=True, check=True)
            times = json.loads(out.stdout.strip().splitlines()[-1])
            print(json.dumps({"benchmark": "umap_startup", "variant": variant, "run": run, "n": a.n, "zdim": a.zdim,
                              **times, "cpu": platform.processor() or platform.machine()}), flush=True)


if __name__ == "__main__":
    main()
