"""Mean per-image |FSC| against frequency, one curve per run, and the difference from the first.

    python -m benchmarks.suite.fsc_figure OUT.png LABEL=RESULTS/fsc_auc.npz LABEL=probe.jsonl#VARIANT ...

A curve is the mean |FSC| of a run's scored particles (DC to Nyquist): from a ``fsc_auc.npz`` that
``train.py``/``drgn.py --results`` write, or from the ``fsc_curve`` of the line of a
``polish_probe.py`` JSONL whose ``variant`` is VARIANT. The lower panel shows each curve minus the
first, where in frequency the maps differ; the legend gives each run's FSC AUC.

``--classes DATASET`` (a discrete set's folder with its ``truth.npz``) also prints, for each
``fsc_auc.npz``, its particles' mean FSC AUC in each true class: whether a run's maps are better in
every class or in some.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def read_curve(spec: str) -> np.ndarray:
    """Mean |FSC| per shell from ``path.npz`` or ``path.jsonl#variant``."""
    path, _, variant = spec.partition("#")
    if path.endswith(".npz"):
        with np.load(path) as f:
            return np.abs(f["fsc"]).mean(0)
    for line in Path(path).read_text().splitlines():
        record = json.loads(line)
        if record.get("variant") == variant:
            return np.asarray(record["fsc_curve"])
    raise SystemExit(f"{path} has no line with variant {variant!r}")


def aucs_by_class(path, labels: np.ndarray, names) -> dict[str, float]:
    """Mean per-image FSC AUC of the particles of ``path`` (an ``fsc_auc.npz``) in each true class."""
    with np.load(path) as f:
        particles, auc = f["particles"], f["auc"]
    classes = labels[particles]
    return {str(names[k]): round(float(auc[classes == k].mean()), 4) for k in np.unique(classes)}


def figure(curves: dict[str, np.ndarray], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.4, 5.2), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    first = next(iter(curves.values()))
    for label, curve in curves.items():
        f = np.arange(len(curve)) / (2 * (len(curve) - 1))  # cycles per pixel, DC to Nyquist
        auc = np.trapezoid(curve, f)
        top.plot(f, curve, label=f"{label} (AUC {auc:.4f})")
        bottom.plot(f, curve - first)
    top.set_ylabel("mean |FSC| with the true map")
    top.legend(fontsize=8, frameon=False)
    bottom.axhline(0, color="grey", linewidth=0.8)
    bottom.set_ylabel("minus the first")
    bottom.set_xlabel("frequency (cycles per pixel)")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=130)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("curves", nargs="+", help="LABEL=PATH.npz or LABEL=PATH.jsonl#VARIANT")
    ap.add_argument("--classes", type=Path, metavar="DATASET", help="also print each run's mean FSC AUC per true class")
    args = ap.parse_args(argv)
    curves, sources = {}, {}
    for spec in args.curves:
        label, sep, source = spec.partition("=")
        if not sep:
            raise SystemExit(f"{spec!r}: give LABEL=PATH")
        curves[label], sources[label] = read_curve(source), source
    figure(curves, args.out)
    if args.classes:
        with np.load(args.classes / "truth.npz") as truth:
            labels, names = truth["class"], truth["class_names"]
        for label, source in sources.items():
            if source.endswith(".npz"):
                print(json.dumps({"run": label, "fsc_auc_by_class": aucs_by_class(source, labels, names)}))


if __name__ == "__main__":
    main()
