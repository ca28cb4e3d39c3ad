"""cryonb against cryoDRGN on every set and condition of the suite, at a glance (a dumbbell plot).

    python -m benchmarks.suite.versus_figure OUT.png "D 128, SNR 0.1=CRYONB.jsonl,CRYODRGN.jsonl" ...

Each argument names a condition and its two files of records (cryonb's, then cryoDRGN's, as
``train.py`` and ``drgn.py`` write them; several seeds of a set give their mean). Two panels, a row
per set and condition: the latents' headline (|Spearman| of PC1 on the continuous sets; on assembly
the mixture's ARI over ten starts) and the maps' per-image FSC AUC, each system a dot, joined by a
line. The values drawn are printed as a table too.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.suite.report import HEADLINE, kind, read

#: The discrete sets' headline: the mixture's ARI over ten starts (one start's is a lottery).
LATENT = {"continuous": HEADLINE["continuous"], "discrete": "gmm_ari_seeds"}
TITLES = {"latents": "latents: |Spearman| of PC1; assembly: mixture ARI (ten starts)", "maps": "maps: per-image FSC AUC"}


def mean_final(records, set_name: str, metric: str) -> float | None:
    """The mean of ``metric`` over a set's records (its seeds); None where any lacks it."""
    values = [r["final"].get(metric) for r in records if r["set"] == set_name]
    return sum(values) / len(values) if values and None not in values else None


def rows(conditions: list[tuple[str, Path, Path]]) -> list[dict]:
    """One row per set and condition: its label, the latent metric's name, and each system's latent and map values."""
    out = []
    for condition, ours, theirs in conditions:
        cryonb, cryodrgn = read([ours]), read([theirs])
        for set_name in sorted({r["set"] for r in cryonb} & {r["set"] for r in cryodrgn}):
            latent = LATENT[kind(next(r for r in cryonb if r["set"] == set_name))]
            metrics = {"latents": latent, "maps": "fsc_auc_mean"}
            out.append({"row": f"{set_name}, {condition}", "latent": latent,
                        **{f"{system}_{panel}": mean_final(records, set_name, metric)
                           for system, records in (("cryonb", cryonb), ("cryodrgn", cryodrgn)) for panel, metric in metrics.items()}})
    return out


def draw(table: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 0.36 * len(table) + 1.6), sharey=True)
    y = range(len(table))[::-1]
    for ax, panel in zip(axes, TITLES):
        for yi, row in zip(y, table):
            a, b = row[f"cryodrgn_{panel}"], row[f"cryonb_{panel}"]
            if a is not None and b is not None:
                ax.plot([a, b], [yi, yi], color="0.75", lw=2, zorder=1)
        for system, colour, label in (("cryodrgn", "0.45", "cryoDRGN 4.3.1 defaults"), ("cryonb", "C0", "cryonb defaults")):
            points = [(row[f"{system}_{panel}"], yi) for yi, row in zip(y, table) if row[f"{system}_{panel}"] is not None]
            ax.scatter(*(zip(*points) if points else ([], [])), color=colour, s=28, zorder=2, label=label)
        ax.set_title(TITLES[panel], fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(list(y), [row["row"] for row in table], fontsize=8)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="upper center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
    fig.savefig(path, dpi=130)


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="the figure (PNG)")
    ap.add_argument("conditions", nargs="+", metavar="LABEL=CRYONB.jsonl,CRYODRGN.jsonl")
    args = ap.parse_args(argv)
    conditions = []
    for spec in args.conditions:
        label, sep, files = spec.rpartition("=")
        paths = files.split(",")
        if not sep or len(paths) != 2:
            ap.error(f"{spec!r}: expected LABEL=CRYONB.jsonl,CRYODRGN.jsonl")
        for path in paths:
            if not Path(path).is_file():
                ap.error(f"{path}: no such file (in {spec!r})")
        conditions.append((label, Path(paths[0]), Path(paths[1])))
    table = rows(conditions)
    for row in table:
        cells = {k: "—" if row[k] is None else f"{row[k]:.4f}" for k in row if k.endswith(("_latents", "_maps"))}
        print(f"{row['row']:32s} {row['latent']:14s} cryonb {cells['cryonb_latents']} / {cells['cryonb_maps']}   "
              f"cryoDRGN {cells['cryodrgn_latents']} / {cells['cryodrgn_maps']}")
    draw(table, args.out)
    return table


if __name__ == "__main__":
    main()
