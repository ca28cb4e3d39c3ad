"""Each run's maps at its latents as trained, smoothed over their own neighbours, and ideal: one line per run.

    python -m benchmarks.suite.probe_figure OUT.png RECORDS.jsonl [...] [--set adk]

RECORDS: lines of ``train.py``/``drgn.py`` run with ``--ideal-z --smooth-z K`` (the FSC AUCs in
``final``, or at the top level). The rise from the first point to the last is what the latents'
per-particle error costs the maps; the middle point, how much of it lies off the populated region.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.suite.report import read


def probe_values(record: dict) -> tuple[str, list[float]] | None:
    """(label, [as trained, smoothed, ideal]) of a record holding all three, else None."""
    scores = record.get("final", record)
    smoothed = [key for key in scores if key.startswith("knn") and key.endswith("_z_fsc_auc_mean")]
    if not smoothed or "ideal_z_fsc_auc_mean" not in scores:
        return None
    params = record.get("params", {})
    overrides = " ".join(f"{k}={v}" for k, v in params.get("overrides", {}).items())
    label = f"{record['system']} {overrides or 'defaults'}, seed {params.get('seed', record.get('seed', 0))}"
    return label, [scores["fsc_auc_mean"], scores[smoothed[0]], scores["ideal_z_fsc_auc_mean"]]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("records", nargs="+", type=Path)
    ap.add_argument("--set", default="adk", help="the data set whose runs are drawn")
    args = ap.parse_args(argv)
    records = read(args.records)
    rows = [row for r in records if r.get("set") == args.set and (row := probe_values(r)) is not None]
    if not rows:
        raise SystemExit(f"no {args.set} record has the ideal and smoothed latents' scores (--ideal-z --smooth-z K)")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(rows) + 1.4))
    for i, (label, values) in enumerate(rows):
        colour = "tab:red" if label.lower().startswith("cryodrgn") else "tab:blue"
        ax.plot(values, [i] * 3, color=colour, lw=1, alpha=0.6)
        for value, marker in zip(values, "o^s"):
            ax.plot(value, i, marker, color=colour, ms=6)
    ax.set_yticks(range(len(rows)), [label for label, _ in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("mean per-image FSC AUC (100 particles)")
    ax.set_title(f"{args.set}: maps at the latents as trained (o), smoothed (^), ideal (s)", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out, dpi=130)


if __name__ == "__main__":
    main()
