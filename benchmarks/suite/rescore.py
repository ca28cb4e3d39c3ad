"""The latent metrics of kept latents against a set's truth, one JSON line per latents file.

    python -m benchmarks.suite.rescore DATASET Z [Z ...] [--jsonl FILE]

Scores latents a run kept (``z.npy`` of cryonb, ``z.pkl`` of cryoDRGN) with today's
:func:`benchmarks.suite.metrics.latent_metrics`: a metric added after the run (``gmm_ari_seeds``)
reaches the earlier runs without training again. DATASET holds the set's ``truth.npz``; a set's truth
depends on its name, size and seed only, so a copy generated at a small box scores runs trained at any.
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
    args = ap.parse_args(argv)
    truth = metrics.load_truth(args.dataset / "truth.npz")
    records = []
    for path in args.z:
        z = read_latents(path)
        if len(z) != truth.n:
            raise SystemExit(f"{path}: {len(z)} latents, but {args.dataset} has {truth.n} particles")
        records.append({"z": str(path), "metrics": rounded(metrics.latent_metrics(z, truth, args.seed))})
        emit(records[-1], args.jsonl)
    return records


if __name__ == "__main__":
    main()
