"""Are the assembly set's rare states found when each latent cluster is split along its focused variability?

    python -m benchmarks.suite.focused_split SET_DIR --z RUN_Z [--system NAME] [--device cuda] [--jsonl results.jsonl]

The workflow a user follows in cryonb after training: cluster the latents, then ask each cluster,
with the poses, which localised change of the map its particles differ by
(:func:`cryonb.core.analysis.divisions.divide`) and divide it there. Here the clusters are
those the suite scores (junk left out, a Gaussian mixture with one component per class on the run's
latents, whose rare recall the suite reports); a
group is divided in two along its component while the component is reproducible (its two halves'
maps agree, cosine ≥ ``--agreement``) and the smaller side holds at least ``--min-group`` of the
group, at most ``--depth`` times. Works on any run's latents (cryonb's z.npy, cryoDRGN's z.pkl).

One record per run: the groups' count, the rare state's recall over them (as the suite counts it,
against all rare particles), the ARI of the groups against the true classes, each division's
size, agreement and outcome, and the wall time.
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
from cryonb.core.particles import load_particles
from cryonb.core.analysis.divisions import divide


def divide_recursively(particles, selection: np.ndarray, labels: np.ndarray, *, depth: int, agreement: float, min_group: float,
                       min_particles: int, device: str, log: list, name: str = "") -> list[np.ndarray]:
    """Groups (particle indices) from dividing ``selection`` again and again along focused components."""
    if depth == 0 or len(selection) < min_particles:
        return [selection]
    d = divide(particles, selection, agreement=agreement, min_group=min_group, device=device)
    log.append({"group": name or "root", "n": int(len(selection)), "agreement": round(d.agreement, 3),
                "smaller_share": round(float(d.groups.mean()), 3), "divided": d.divided,
                "classes": {ASSEMBLY_CLASSES[k]: [int(((labels[selection] == k) & (d.groups == side)).sum()) for side in (0, 1)]
                            for k in np.unique(labels[selection]) if k >= 0}})
    if not d.divided:
        return [selection]
    return [group for side in (0, 1) for group in divide_recursively(particles, d.group(side), labels, depth=depth - 1, agreement=agreement,
                                                                     min_group=min_group, min_particles=min_particles, device=device,
                                                                     log=log, name=f"{name}{side}")]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--z", type=Path, required=True, help="the run's latents (z.npy or z.pkl)")
    ap.add_argument("--system", default="cryonb", help="whose latents, for the record")
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--agreement", type=float, default=0.5)
    ap.add_argument("--min-group", type=float, default=0.02, help="the smaller side's least share of a group divided")
    ap.add_argument("--min-particles", type=int, default=100, help="groups smaller than this are not divided")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jsonl", type=Path)
    args = ap.parse_args(argv)
    truth = metrics.load_truth(args.dataset / "truth.npz")
    keep = truth.keep()  # indices of the particles the suite scores: junk left out
    labels, rare = truth.labels[keep], truth.rare_class
    particles = load_particles(args.dataset / "particles.star").subset(keep)
    t0 = time.perf_counter()
    clusters = metrics.gmm_clusters(np.asarray(read_latents(args.z), float)[keep], len(np.unique(labels)), args.seed)
    log, groups = [], []
    for c in np.unique(clusters):
        groups += divide_recursively(particles, np.flatnonzero(clusters == c), labels, depth=args.depth, agreement=args.agreement,
                         min_group=args.min_group, min_particles=args.min_particles, device=args.device, log=log, name=f"c{c}:")
    final = np.empty(len(labels), dtype=np.int64)
    for g, group in enumerate(groups):
        final[group] = g
    record = {"set": args.dataset.name, "system": args.system, "seed": args.seed, "depth": args.depth, "agreement": args.agreement,
              "min_group": args.min_group, "min_particles": args.min_particles, "clusters_rare_recall": metrics.rare_recall(clusters, labels, rare),
              "groups": len(groups), "rare_recall": metrics.rare_recall(final, labels, rare), "ari": adjusted_rand_score(labels, final),
              "clusters_ari": adjusted_rand_score(labels, clusters), "wall_s": time.perf_counter() - t0, "divisions": log}
    emit(rounded(record), args.jsonl)
    return record


if __name__ == "__main__":
    main()
