"""Does a second run on one cluster find the assembly set's rare state that the first run missed?

    python -m benchmarks.suite.subset_probe SET_DIR [--z RUN_Z] [--jsonl results.jsonl]

The workflow a user follows in cryonb (cluster, keep one cluster, train again on it): trains
``Trainer`` with its defaults on a selection of an assembly set and probes the new latents as
:mod:`benchmarks.suite.rare_probe` does. Two selections:

- ``told``: the particles whose true class is 70S-AB or 70S-ABC (the rare state, 3 %, lacks a
  further 5 % of the mass), the best selection a first run could give;
- with ``--z``: the clusters of a Gaussian mixture with one component per class on a first run's latents whose most
  common true class is 70S-AB (a user names a cluster by its map).

Each record: the selection's size and rare share, the second run's wall time, the linear and
nearest-neighbour probes (70S-ABC against 70S-AB, balanced accuracy) on its latents, and the rare
recall of Gaussian mixtures of 2 and 3 components on them (counted against all rare particles of the set).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks.records import emit
from benchmarks.suite import metrics
from benchmarks.suite.drgn import read_latents, rounded
from benchmarks.suite.rare_probe import NEAREST, RARE
from benchmarks.suite.sets import ASSEMBLY_CLASSES
from cryonb.core.particles import load_particles
from cryonb.core.training import Trainer, TrainConfig


def second_run(particles, labels: np.ndarray, selection: np.ndarray, seed: int = 0) -> dict:
    """Train the defaults on ``selection`` (particle indices) and probe the rare state in its latents."""
    t0 = time.perf_counter()
    trainer = Trainer(particles.subset(selection), TrainConfig(zdim=8, seed=seed))
    trainer.fit(trainer.config.epochs, progress=False)
    z = trainer.embed()
    wall = time.perf_counter() - t0
    sub = labels[selection]
    result = {"n": int(len(selection)), "rare_in_selection": int((sub == RARE).sum()), "rare_in_set": int((labels == RARE).sum()),
              "wall_s": wall, **metrics.rare_separability(z, sub, RARE, NEAREST, seed=seed)}
    for k in (2, 3):
        found = metrics.rare_recall(metrics.gmm_clusters(z, k, seed), sub, RARE)
        result[f"gmm{k}_rare_recall"] = found * result["rare_in_selection"] / result["rare_in_set"]
    return result


def choose(labels: np.ndarray, z: np.ndarray | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """The selections to train again on (particle indices): ``told`` and, given a first run's ``z``, ``clusters``."""
    selections = {"told": np.flatnonzero(np.isin(labels, (RARE, NEAREST)))}
    if z is not None:
        clusters = metrics.gmm_clusters(z, len(ASSEMBLY_CLASSES), seed)
        selections["clusters"] = np.flatnonzero(np.isin(clusters, metrics.clusters_named(clusters, labels, NEAREST)))
    return selections


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--z", type=Path, help="a first run's latents (z.npy or z.pkl): also select its 70S-AB clusters")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jsonl", type=Path)
    args = ap.parse_args(argv)
    truth = metrics.load_truth(args.dataset / "truth.npz")
    labels = truth.labels
    particles = load_particles(args.dataset / "particles.star")
    selections = choose(labels, None if args.z is None else read_latents(args.z), args.seed)
    for name, selection in selections.items():
        head = {"set": args.dataset.name, "selection": name, "seed": args.seed}
        found = rounded(second_run(particles, labels, selection, args.seed)) if len(selection) else {"n": 0, "note": "no cluster is mostly 70S-AB"}
        emit({**head, **found}, args.jsonl)


if __name__ == "__main__":
    main()
