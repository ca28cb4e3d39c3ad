"""Plot the per-epoch loss of bench_accuracy.py runs against each other (e.g. one GPU against two).

    python benchmarks/plot_loss_curves.py benchmarks/results/hinge_b512_1gpu.jsonl benchmarks/results/hinge_b512_2gpu.jsonl -o docs/_static/ddp_loss_curves.png

Each input is the JSON-lines output of ``bench_accuracy.py``; runs with the same batch size share a
colour, and the right panel shows each run's difference from the first run of its batch size.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def read_run(path: Path) -> dict:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]
    settings = next(r for r in rows if "batch" in r)
    curve = next(r for r in rows if "epoch_loss" in r)
    last = [r for r in rows if "score" in r][-1]
    return {"batch": settings["batch"], "processes": curve["processes"], "loss": np.array(curve["epoch_loss"]),
            "score": last["score"], "images_per_s": last["images_per_s"]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("-o", "--output", type=Path, required=True)
    args = ap.parse_args(argv)
    runs = [read_run(p) for p in args.runs]
    batches = sorted({r["batch"] for r in runs})
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4), constrained_layout=True)
    for colour, batch in zip(("tab:blue", "tab:orange", "tab:green"), batches):
        group = [r for r in runs if r["batch"] == batch]
        for r, style in zip(group, ("-", "--", ":")):
            epochs = np.arange(1, len(r["loss"]) + 1)
            label = (f"batch {batch}, {r['processes']} GPU{'s' * (r['processes'] > 1)}: "
                     f"|ρ| {r['score']:.4f}, {r['images_per_s']:,} img/s")
            left.plot(epochs, r["loss"], style, color=colour, label=label)
            if r is not group[0]:
                right.plot(epochs, 100 * (r["loss"] / group[0]["loss"] - 1), style, color=colour, label=f"batch {batch}")
    low = min(r["loss"].min() for r in runs)
    left.set(xlabel="epoch", ylabel="loss", title="training loss", ylim=(low - 0.005, low + 0.1))
    left.legend(fontsize=7)
    right.axhline(0, color="0.6", lw=0.8)
    right.set(xlabel="epoch", ylabel="difference from the first run (%)", title="each run against the first of its batch")
    right.legend(fontsize=7)
    fig.savefig(args.output, dpi=130)
    print(args.output)


if __name__ == "__main__":
    main()
