"""Are the assembly set's rare states found when each latent cluster is split along its focused variability?

    python -m benchmarks.suite.focused_split SET_DIR --z RUN_Z [--system NAME] [--device cuda] [--jsonl results.jsonl]

The workflow a user follows in cryonb after training: cluster the latents, then ask each cluster,
with the poses, which localised change of the map its particles differ by
(:func:`cryonb.core.analysis.divisions.divide_clusters`) and divide it there. Here the clusters are
those the suite scores (junk left out, a Gaussian mixture with one component per class on the run's
latents, whose rare recall the suite reports); a
group is divided in two along its component while the component is reproducible (its two halves'
maps agree, cosine ≥ ``--agreement``), at most ``--depth`` times. Works on any run's latents (cryonb's z.npy, cryoDRGN's z.pkl).

``--kmeans K`` clusters as ``cryonb analyze --divide`` does instead: k-means with K clusters on every
particle's latents, junk kept as in a user's stack (``--rare-clusters N``: only the clusters that hold
N rare particles or more are divided, to spare a CPU the others).

One record per run: the groups' count, the rare state's recall over them (as the suite counts it,
against all rare particles; ``unpooled_``: with the clusters' own divisions alone, before groups of several clusters were pooled), the ARI of the groups against the true classes, each division's
size, agreement, outcome, outliers (particles counted less) and particles left out of the groups' fit, and the wall time.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import adjusted_rand_score

from benchmarks.records import emit
from benchmarks.suite import metrics
from benchmarks.suite.drgn import read_latents, rounded
from benchmarks.suite.sets import ASSEMBLY_CLASSES
from cryonb.core.analysis.clustering import kmeans
from cryonb.core.analysis.divisions import divide_clusters, divided_labels
from cryonb.core.particles import load_particles
from cryonb.core.variability import RESOLUTION


def record_of(d, labels: np.ndarray) -> dict:
    """One division: its place, size, agreement, bimodality, outcome and true classes on either side."""
    return {"group": f"c{d.cluster}:{d.path}", "pooled": [int(c) for c in d.pooled], "n": int(len(d.members)), **d.component.reproducibility_record,
            "bimodality": round(d.component.bimodality, 4),
            "smaller_share": round(float(d.groups.mean()), 3), "purity": [round(x, 3) for x in d.purity], "divided": d.divided, "outliers": int(len(d.component.outliers)),
            "left_out": int(len(d.component.left_out)),
            "classes": {ASSEMBLY_CLASSES[k]: [int(((labels[d.members] == k) & (d.groups == side)).sum()) for side in (0, 1)]
                        for k in np.unique(labels[d.members]) if k >= 0}}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--z", type=Path, required=True, help="the run's latents (z.npy or z.pkl)")
    ap.add_argument("--system", default="cryonb", help="whose latents, for the record")
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--agreement", type=float, default=0.5)
    ap.add_argument("--min-particles", type=int, default=100, help="groups smaller than this are not divided")
    ap.add_argument("--kmeans", type=int, metavar="K", help="k-means with K clusters on every particle, junk kept (cryonb analyze's)")
    ap.add_argument("--rare-clusters", type=int, metavar="N", help="with --kmeans: divide only the clusters holding N rare particles or more")
    ap.add_argument("--no-pool", action="store_true", help="no pools of groups from several clusters")
    ap.add_argument("--resolution", type=float, default=RESOLUTION, help=f"the variability's resolution limit, Å (default: {RESOLUTION:g})")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jsonl", type=Path)
    args = ap.parse_args(argv)
    truth = metrics.load_truth(args.dataset / "truth.npz")
    # the particles the suite scores (junk left out), or with --kmeans every particle, as a user's stack holds them
    keep = np.arange(truth.n) if args.kmeans else truth.keep()
    labels, rare = truth.labels[keep], truth.rare_class
    particles = load_particles(args.dataset / "particles.star").subset(keep)
    t0 = time.perf_counter()
    z = np.asarray(read_latents(args.z), float)[keep]
    clusters = kmeans(z, args.kmeans, seed=args.seed).labels if args.kmeans else metrics.gmm_clusters(z, len(np.unique(labels)), args.seed)
    asked = None  # every cluster
    if args.kmeans and args.rare_clusters:
        held, counts = np.unique(clusters[labels == rare], return_counts=True)
        asked = held[counts >= args.rare_clusters]
    divisions = divide_clusters(particles, clusters, clusters=asked, depth=args.depth, min_particles=args.min_particles,
                                agreement=args.agreement, pool=not args.no_pool, device=args.device, resolution=args.resolution)
    final = divided_labels(clusters, divisions)
    unpooled = divided_labels(clusters, [d for d in divisions if not d.pooled])  # the clusters' own divisions alone
    record = {"set": args.dataset.name, "system": args.system, "seed": args.seed, "clusters": f"kmeans{args.kmeans}" if args.kmeans else "gmm",
              "rare_clusters": args.rare_clusters if args.kmeans else None, "pool": not args.no_pool, "depth": args.depth, "agreement": args.agreement, "resolution": args.resolution,
              "min_particles": args.min_particles, "clusters_rare_recall": metrics.rare_recall(clusters, labels, rare),
              "groups": len(np.unique(final)), "rare_recall": metrics.rare_recall(final, labels, rare), "ari": adjusted_rand_score(labels, final),
              "unpooled_rare_recall": metrics.rare_recall(unpooled, labels, rare), "unpooled_ari": adjusted_rand_score(labels, unpooled),
              "clusters_ari": adjusted_rand_score(labels, clusters), "wall_s": time.perf_counter() - t0,
              "divisions": [record_of(d, labels) for d in divisions]}
    emit(rounded(record), args.jsonl)
    return record


if __name__ == "__main__":
    main()
