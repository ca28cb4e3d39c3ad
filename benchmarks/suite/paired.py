"""A change to the defaults against the defaults, seed by seed in one process (a paired comparison).

    python -m benchmarks.suite.paired DATASET --set beta=0.0 --seeds 0 1 2 --jsonl OUT.jsonl

Each seed trains twice on DATASET, with and without the ``--set`` overrides (``--base`` ones apply to
both), one after the other: the change first on even seeds, last on odd ones, so that neither side
always runs second. Every training is :func:`benchmarks.suite.train.run`'s, with its record in
``--jsonl`` (system ``cryonb`` and ``cryonb [KEY=VALUE ...]``). The table printed gives both sides'
final scores, their means, the mean paired difference and the seeds where the change scored higher:
a run-to-run spread as wide as the assembly mixture's needs several seeds before a change is kept.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from benchmarks.suite import train


def label(change: dict) -> str:
    """The system name of the changed runs: ``cryonb [KEY=VALUE ...]``."""
    return "cryonb [" + " ".join(f"{k}={v}" for k, v in change.items()) + "]"


def paired(folder, change: dict, seeds, base: dict | None = None, **run_options) -> list[tuple[dict, dict]]:
    """(defaults' record, changed record) per seed, trained one after the other (see the module)."""
    sides = {"defaults": ("cryonb", dict(base or {})), "change": (label(change), {**(base or {}), **change})}
    pairs = []
    for seed in seeds:
        order = ("change", "defaults") if seed % 2 == 0 else ("defaults", "change")
        records = {side: train.run(folder, seed=seed, overrides=sides[side][1], system=sides[side][0], **run_options)
                   for side in order}
        pairs.append((records["defaults"], records["change"]))
    return pairs


def summary(pairs: list[tuple[dict, dict]]) -> str:
    """A Markdown table: per metric, both sides' scores and means, the mean paired difference and the seeds where
    the change is higher."""
    metrics = [k for k, v in pairs[0][0]["final"].items() if isinstance(v, (int, float)) and k != "fsc_particles"]
    metrics.append("wall_s")
    lines = ["| metric | defaults | change | change − defaults (mean) | seeds where the change is higher |", "|---|---|---|---|---|"]
    for name in metrics:
        a, b = (np.array([(r["final"] if name != "wall_s" else r)[name] for r in side]) for side in zip(*pairs))
        higher = int((b > a).sum())
        lines.append(f"| {name} | {' / '.join(f'{x:g}' for x in a)} ({a.mean():.4g}) | {' / '.join(f'{x:g}' for x in b)} "
                     f"({b.mean():.4g}) | {(b - a).mean():+.4g} | {higher} of {len(a)} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", required=True, help="the change (TrainConfig overrides)")
    ap.add_argument("--base", action="append", default=[], metavar="KEY=VALUE", help="overrides both sides train with")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--score-every", type=int, default=16)
    ap.add_argument("--fsc-particles", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--jsonl", type=Path)
    args = ap.parse_args(argv)
    pairs = paired(args.dataset, dict(map(train.parse_override, args.set)), args.seeds, dict(map(train.parse_override, args.base)),
                   jsonl=args.jsonl, score_every=args.score_every, fsc_particles=args.fsc_particles, device=args.device)
    print(summary(pairs), flush=True)


if __name__ == "__main__":
    main()
