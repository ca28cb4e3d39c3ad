"""The suite's table (markdown) and time-to-accuracy figure from its JSON lines.

    python -m benchmarks.suite.report benchmarks/results/suite/*.jsonl --figure docs/_static/suite_time_to_accuracy.png

A file given as ``PATH=LABEL`` has its runs labelled LABEL (rows and figure lines are a set and a
label; a run's label is otherwise its system): several files of one setting make one row.
``PATH#SYSTEM`` (``PATH#SYSTEM=LABEL``) takes only the file's runs of that system.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

CONTINUOUS = ("spearman_pc1", "knn_r2", "neighbourhood", "fsc_auc_mean")
DISCRETE = ("gmm_ari", "gmm_ari_seeds", "kmeans_ari", "neighbourhood", "rare_recall", "fsc_auc_mean")
HEADLINE = {"continuous": "spearman_pc1", "discrete": "gmm_ari"}


def read(paths) -> list[dict]:
    """The records of JSON-lines files; ``PATH=LABEL`` gives that file's records the label LABEL, and
    ``PATH#SYSTEM`` (``PATH#SYSTEM=LABEL``) keeps only its records of that system."""
    records = []
    for spec in map(str, paths):
        system = None
        if "#" in spec and not Path(spec).exists():
            path, _, rest = spec.partition("#")
            file_records = _records(path)
            system, label = _system_and_label(rest, {r["system"] for r in file_records}, path)
        else:
            path, _, label = spec.partition("=") if "=" in spec and not Path(spec).exists() else (spec, "", "")
            file_records = _records(path)
        records += [r | ({"label": label} if label else {}) for r in file_records if system in (None, r["system"])]
    return records


def _records(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def _system_and_label(text: str, systems: set, path) -> tuple[str, str]:
    """``SYSTEM`` or ``SYSTEM=LABEL``, where a system's name may hold "=" itself: the longest of its systems it starts with."""
    for name in sorted(systems, key=len, reverse=True):
        if text == name or text.startswith(name + "="):
            return name, text[len(name) + 1:]
    raise SystemExit(f"{path}: no runs of system {text!r} (its systems: {', '.join(sorted(systems))})")


def kind(record) -> str:
    return "continuous" if "spearman_pc1" in record["final"] else "discrete"


def table(records, wall: bool = True) -> str:
    """One markdown table per kind of set: a row per set and system, its final metrics and wall time
    (with its share of cryoDRGN's on that set, where the records hold a cryoDRGN run; ``wall=False``:
    none, for runs that shared a GPU); runs of
    several seeds give their mean ± standard deviation, to 3 decimals (4 in a column whose values are all
    below 0.01, not all 0). Rescored runs (``drgn.py --rescore``) carry no wall time, and records older than a
    metric lack it: "—" (for a group where any run lacks it)."""
    out = []
    for k, names in (("continuous", CONTINUOUS), ("discrete", DISCRETE)):
        rows = [r for r in records if kind(r) == k]
        if not rows:
            continue
        reference = {}  # set: cryoDRGN's mean wall time
        for name in {r["set"] for r in rows}:
            walls = [r["wall_s"] for r in rows if r["set"] == name and is_cryodrgn(r) and r["wall_s"] is not None]
            if walls:
                reference[name] = sum(walls) / len(walls)
        heading = (" wall s (share of cryoDRGN's) |" if reference else " wall s |") if wall else ""
        out.append("| set | system | " + " | ".join(names) + " |" + heading)
        out.append("|---" * (len(names) + 2 + wall) + "|")
        groups: dict[tuple[str, str], list[dict]] = {}
        for r in rows:
            groups.setdefault((r["set"], r.get("label", r["system"])), []).append(r)
        digits = {n: column_digits([r["final"][n] for r in rows if n in r["final"]]) for n in names}
        for (name, label), runs in sorted(groups.items()):
            values = " | ".join(summary([r["final"][n] for r in runs], digits[n]) if all(n in r["final"] for r in runs) else "—"
                                for n in names)
            seeds = f" ({len(runs)} seeds)" if len(runs) > 1 else ""
            walls = [r["wall_s"] for r in runs if r["wall_s"] is not None]
            share = (f" ({100 * sum(walls) / len(walls) / reference[name]:.0f} %)"
                     if walls and name in reference and not is_cryodrgn(runs[0]) else "")
            timing = f" {summary(walls, 0) if walls else '—'}{share} |" if wall else ""
            out.append(f"| {name} | {label}{seeds} | {values} |{timing}")
        out.append("")
    return "\n".join(out)


def is_cryodrgn(record) -> bool:
    return record["system"].lower().startswith("cryodrgn")


def column_digits(values) -> int:
    """Decimals for a column: 3, or 4 where every value is below 0.01 and one is not 0 (a neighbourhood near chance)."""
    return 4 if values and 0 < max(abs(v) for v in values) < 0.01 else 3


def summary(values, digits: int = 3) -> str:
    """``mean`` of one value, ``mean ± sd`` (sample standard deviation) of several."""
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def figure(records, path):
    """Headline metric against wall seconds, one panel per set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

    sets = sorted({r["set"] for r in records})
    labels = sorted({r.get("label", r["system"]) for r in records})
    colours = dict(zip(labels, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    fig, axes = plt.subplots(1, len(sets) + 1, figsize=(3.6 * len(sets) + 3.4, 3.2), squeeze=False)
    for ax, name in zip(axes[0], sets):
        runs = [r for r in records if r["set"] == name]
        metric = HEADLINE[kind(runs[0])]
        drawn = set()
        for r in runs:  # several seeds of one label: lines of one colour, one legend entry
            if r["wall_s"] is None:  # rescored: no times to draw
                continue
            label = r.get("label", r["system"])
            t = [e["wall_s"] for e in r["epochs"]]
            y = [e["metrics"][metric] for e in r["epochs"]]
            ax.plot(t, y, marker="o", ms=3, color=colours[label], label=None if label in drawn else label)
            drawn.add(label)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator([5, 10, 20, 50, 100, 200, 500, 1000]))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("wall time (s)")
        ax.set_ylabel(metric.replace("_", " "))
        ax.set_title(name)
        ax.grid(alpha=0.3)
    legend = axes[0][-1]
    legend.axis("off")
    legend.legend(*axes[0][0].get_legend_handles_labels(), loc="center left", fontsize=7, frameon=False,
                  title="latents scored while training")
    fig.tight_layout()
    fig.savefig(path, dpi=130)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("jsonl", nargs="+")
    ap.add_argument("--figure", type=Path)
    ap.add_argument("--no-wall", action="store_true", help="leave out the wall times (runs that shared a GPU)")
    args = ap.parse_args(argv)
    records = read(args.jsonl)
    print(table(records, wall=not args.no_wall))
    if args.figure:
        figure(records, args.figure)


if __name__ == "__main__":
    main()
