"""The latent metrics of kept latents against a set's truth, one JSON line per latents file.

    python -m benchmarks.suite.rescore DATASET Z [Z ...] [--jsonl FILE] [--neighbours K ...] [--against Z0]
                                       [--clustering-seeds N]

Scores latents a run kept (``z.npy`` of cryonb, ``z.pkl`` of cryoDRGN) with today's
:func:`benchmarks.suite.metrics.latent_metrics`: a metric added after the run (``gmm_ari_seeds``)
reaches the earlier runs without training again. DATASET holds the set's ``truth.npz``; a set's truth
depends on its name, size and seed only, so a copy generated at a small box scores runs trained at any.

``--neighbours K`` adds the neighbourhood similarity at k = K (``neighbourhood_kK``); ``--against Z0``
adds, for the suite's k, the 95 % interval of each run's gap to the latents Z0 on the same particles
(``neighbourhood_gap_interval``, a paired bootstrap over particles): whether a gap exceeds what the
particles drawn could give. ``--clustering-seeds N`` (discrete sets) adds the mean and least ARI of the
Gaussian mixture and of k-means over N random starts each (``gmm_ari_meanN`` ...): how steadily the
latents' clusters are found, where one start is a lottery.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.records import emit
from benchmarks.suite import metrics
from benchmarks.suite.drgn import read_latents, rounded


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", type=Path)
    ap.add_argument("z", nargs="+", type=Path)
    ap.add_argument("--seed", type=int, default=0, help="the metrics' seed (the suite's records use 0)")
    ap.add_argument("--jsonl", type=Path, help="append the records here")
    ap.add_argument("--neighbours", type=int, nargs="+", default=[], metavar="K", help="also the neighbourhood similarity at these k")
    ap.add_argument("--against", type=Path, metavar="Z0", help="latents to compare each run's neighbourhood with, particle by particle")
    ap.add_argument("--clustering-seeds", type=int, metavar="N", help="also the mixture's and k-means' ARI over N starts each (discrete sets)")
    args = ap.parse_args(argv)
    truth = metrics.load_truth(args.dataset / "truth.npz")
    reference = truth.neighbourhood_fractions(_latents(args.against, truth, args.dataset)) if args.against else None
    records = []
    for path in args.z:
        z = _latents(path, truth, args.dataset)
        metrics_of = metrics.latent_metrics(z, truth, args.seed)
        for k in args.neighbours:
            metrics_of[f"neighbourhood_k{k}"] = float(truth.neighbourhood_fractions(z, k).mean())
        if args.clustering_seeds:
            metrics_of |= metrics.clustering_over_seeds(z, truth, args.clustering_seeds)
        if reference is not None:
            gap = metrics.paired_bootstrap_interval(truth.neighbourhood_fractions(z), reference)
            metrics_of["neighbourhood_gap_interval"] = [round(g, 5) for g in gap]
        records.append({"z": str(path), "metrics": rounded(metrics_of)} | ({"against": str(args.against)} if args.against else {}))
        emit(records[-1], args.jsonl)
    return records


def _latents(path: Path, truth: metrics.Truth, dataset: Path):
    z = read_latents(path)
    if len(z) != truth.n:
        raise SystemExit(f"{path}: {len(z)} latents, but {dataset} has {truth.n} particles")
    return z


if __name__ == "__main__":
    main()
