"""The tiny cryoDRGN 4.3.1 runs of tests/data/cryodrgn_runs (see its README), copied so each test may change them."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

RUNS = Path(__file__).resolve().parents[2] / "data" / "cryodrgn_runs"
ALL_RUNS = sorted(p.name for p in RUNS.iterdir() if (p / "zvalues.txt").is_file())  # with maps of eval_vol
RECORDED = "/tmp/drgnwork"  # where the runs were made: their configs name particle files there


@pytest.fixture
def cryodrgn_run(tmp_path):
    """copy(name) -> a copy of the fixture run whose recorded particle files point nowhere (so tests
    behave the same on every machine)."""

    def copy(name: str) -> Path:
        run = Path(shutil.copytree(RUNS / name, tmp_path / name))
        config = run / "config.yaml"
        config.write_text(config.read_text().replace(RECORDED, str(tmp_path / "not_here")))
        return run

    return copy


def write_cryodrgn_particles(folder: Path, particles, box: int) -> dict[str, Path]:
    """particles.mrcs plus cryoDRGN's pose pickle (rot, trans in fractions of the box) and CTF pickle (N, 9)."""
    from cryonb.core.io.mrc import write_stack

    folder.mkdir(parents=True, exist_ok=True)
    paths = {"particles": folder / "particles.mrcs", "poses": folder / "poses.pkl", "ctf": folder / "ctf.pkl"}
    write_stack(paths["particles"], particles.images[np.arange(len(particles))], particles.apix)
    shifts = np.zeros((len(particles), 2)) if particles.shifts is None else particles.shifts
    with open(paths["poses"], "wb") as f:
        pickle.dump((particles.rotations.astype(np.float32), (shifts / box).astype(np.float32)), f)
    ctf = particles.ctf
    table = np.column_stack([np.full(len(ctf), box), np.full(len(ctf), particles.apix), ctf[:, :7]])
    with open(paths["ctf"], "wb") as f:
        pickle.dump(table.astype(np.float32), f)
    return paths
