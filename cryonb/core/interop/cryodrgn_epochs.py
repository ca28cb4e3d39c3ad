"""Epochs of a cryoDRGN run side by side: how much the latents still move between saved epochs.

For each pair of consecutive saved epochs, the earlier latents are mapped onto the later ones by
the best affine map (least squares: a latent space may rotate, flip or stretch between epochs
without meaning anything), and two numbers are reported:

* ``median_drift`` / ``p90_drift``: the median (90th percentile) distance between a particle's
  mapped earlier latent and its later one, in units of the later latents' spread (the RMS
  distance to their mean): 0 when nothing moved, about 1.4 for unrelated latents;
* ``neighbour_overlap``: the mean fraction of each particle's ``k`` nearest neighbours that are
  the same in both epochs (1: same neighbourhoods; about k/N for unrelated latents).
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.neighbors import NearestNeighbors
from tqdm.auto import tqdm

from ..errors import InputError
from .cryodrgn_runs import cryodrgn_run_folder, read_latents, run_config

_Z_FILE = re.compile(r"z\.(\d+)\.pkl")
COLUMNS = ("epoch", "previous_epoch", "median_drift", "p90_drift", "neighbour_overlap", "n_particles")


def latent_epochs(run_dir: str | os.PathLike) -> list[int]:
    """The epochs N with a ``z.N.pkl`` in the folder, in order."""
    found = (_Z_FILE.fullmatch(p.name) for p in Path(run_dir).iterdir())
    return sorted(int(m.group(1)) for m in found if m)


def latent_drift(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Per-particle distance between ``before`` mapped affinely onto ``after`` and ``after``, over the spread of ``after``."""
    design = np.column_stack([before.astype(np.float64), np.ones(len(before))])
    target = after.astype(np.float64)
    weights, *_ = np.linalg.lstsq(design, target, rcond=None)
    distance = np.linalg.norm(design @ weights - target, axis=1)
    spread = np.sqrt(((target - target.mean(0)) ** 2).sum(1).mean())
    return distance / spread if spread > 0 else distance


def neighbour_overlap(before: np.ndarray, after: np.ndarray, k: int = 10) -> float:
    """Mean fraction of each point's ``k`` nearest neighbours (itself excluded) shared by both point sets."""
    k = min(k, len(before) - 1)
    if k < 1:
        return float("nan")
    sets = []
    for z in (before, after):
        index = NearestNeighbors(n_neighbors=k + 1).fit(z).kneighbors(z, return_distance=False)
        sets.append(np.sort(index[:, 1:], axis=1))
    shared = [len(np.intersect1d(a, b, assume_unique=True)) for a, b in zip(*sets)]
    return float(np.mean(shared) / k)


def epoch_convergence(path: str | os.PathLike, epochs=None, k: int = 10, max_particles: int = 20_000, seed: int = 0) -> pd.DataFrame:
    """A table of latent drift between consecutive saved epochs of a cryoDRGN run (see the module's text).

    ``epochs``: which saved epochs (default: every epoch with a ``z.N.pkl``). ``max_particles``:
    the same random subset of particles is compared in every pair (the nearest-neighbour
    search is the slow part).
    """
    found = cryodrgn_run_folder(path)
    if found is None:
        raise InputError(path, "is not a cryoDRGN run folder (no config.yaml or config.pkl)", "pass the folder cryoDRGN wrote")
    run_dir = found[0]
    config = run_config(run_dir)
    available = latent_epochs(run_dir)
    epochs = available if epochs is None else sorted(int(e) for e in epochs)
    missing = [e for e in epochs if e not in available]
    if missing:
        raise InputError(run_dir / f"z.{missing[0]}.pkl", f"epoch {missing[0]} has no latents (saved: {available or 'none'})",
                         "pass epochs with a z.N.pkl")
    if len(epochs) < 2:
        raise InputError(run_dir, f"needs latents of at least two epochs, found {len(epochs)}",
                         "train with --checkpoint 1 (or a small interval) so that several epochs are saved")
    rows, previous, keep = [], None, None
    for epoch in tqdm(epochs, desc="epochs", leave=False, disable=len(epochs) < 5):
        z = read_latents(run_dir / f"z.{epoch}.pkl", config.zdim)
        if keep is None:
            rng = np.random.default_rng(seed)
            keep = np.sort(rng.choice(len(z), max_particles, replace=False)) if len(z) > max_particles else np.arange(len(z))
        if previous is not None:
            before, n_before = previous
            if len(z) != n_before:
                raise InputError(run_dir / f"z.{epoch}.pkl", f"has {len(z)} latents, epoch {rows[-1]['epoch'] if rows else epochs[0]} had {n_before}",
                                 "compare epochs of the same run")
            drift = latent_drift(before, z[keep])
            rows.append({"epoch": epoch, "previous_epoch": epochs[len(rows)], "median_drift": float(np.median(drift)),
                         "p90_drift": float(np.quantile(drift, 0.9)), "neighbour_overlap": neighbour_overlap(before, z[keep], k),
                         "n_particles": len(keep)})
        previous = (z[keep], len(z))
    return pd.DataFrame(rows, columns=list(COLUMNS))


def choose_epoch(table: pd.DataFrame, max_drift: float = 0.1, min_overlap: float = 0.5) -> int:
    """The earliest epoch from which every later step is small: median drift at most ``max_drift``
    and neighbour overlap at least ``min_overlap``. The last epoch, with a warning, if the latents
    are still moving at the end."""
    if table.empty:
        raise InputError(None, "the convergence table is empty", "compute it with epoch_convergence on a run with two or more saved epochs")
    steady = (table["median_drift"] <= max_drift) & (table["neighbour_overlap"] >= min_overlap)
    if not steady.iloc[-1]:
        warnings.warn(f"the latents still move at the last saved epoch ({int(table['epoch'].iloc[-1])}): "
                      "train longer before trusting the landscape", stacklevel=2)
        return int(table["epoch"].iloc[-1])
    unsteady = np.flatnonzero(~steady.to_numpy())
    first = 0 if not len(unsteady) else unsteady[-1] + 1
    return int(table["previous_epoch"].iloc[first])
