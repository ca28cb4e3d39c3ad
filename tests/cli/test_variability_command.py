"""`cryonb variability`: a rare state lacking a subunit, divided out of a simulated stack into selections.

One or two random starts (``--starts``) instead of the default's three: the command's outputs are tested
here, the choice among starts in tests/core/test_variability.py."""

import numpy as np
import pytest
import torch

from cryonb.cli import main as cli
from cryonb.core.io.mrc import read_map
from cryonb.core.io.pickles import read_index
from cryonb.core.particles import load_particles
from cryonb.core.phantoms import hinge, lacking_a_subunit
from cryonb.core.simulate import simulate


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    full = hinge(32)
    sim = simulate(torch.stack([full, lacking_a_subunit(full)]), 1000, D=32, snr=0.1, proportions=[0.8, 0.2], seed=3, progress=False)
    return sim.save(tmp_path_factory.mktemp("rare"))["star"], sim.state


@pytest.mark.slow
def test_variability_writes_the_component_and_the_two_groups_as_selections(stack, tmp_path, capsys):
    star, state = stack
    out = tmp_path / "split"
    assert cli(["variability", str(star), "-o", str(out), "--resolution", "12", "--starts", "1"]) == 0
    printed = capsys.readouterr().out
    assert ("agreement" in printed or "a region" in printed) and "note:" not in printed
    component, _ = read_map(out / "component.mrc")
    assert component.shape == (32, 32, 32) and np.isfinite(component).all()
    assert (out / "coordinates.png").stat().st_size > 1000
    assert len(np.load(out / "coordinates.npy")) == 1000
    rows = [read_index(out / f"group_{g}.ind.npy") for g in (0, 1)]
    assert sorted(np.concatenate(rows).tolist()) == list(range(1000))
    assert len(rows[1]) < len(rows[0])
    assert state[rows[1]].mean() > 0.5  # the smaller group is mostly the rare state (a fifth of the stack)
    assert len(load_particles(out / "group_1.star")) == len(rows[1])  # a .star RELION reads back


def test_variability_of_an_index_selection_and_of_noise_says_so(stack, tmp_path, capsys):
    star, state = stack
    common = np.flatnonzero(state == 0)[:300]  # one state only: nothing to find
    np.save(tmp_path / "common.npy", common)
    assert cli(["variability", str(star), "-o", str(tmp_path / "noise"), "--ind", str(tmp_path / "common.npy"), "--resolution", "12",
                "--starts", "2"]) == 0
    printed = capsys.readouterr().out
    assert "note: " in printed and "so the two groups are not meaningful" in printed and "(kept of 2 candidates: " in printed
    rows = np.concatenate([read_index(tmp_path / "noise" / f"group_{g}.ind.npy") for g in (0, 1)])
    assert sorted(rows.tolist()) == sorted(common.tolist())  # the file's own row numbers


def test_variability_without_poses_is_one_clear_error(tmp_path, capsys):
    sim = simulate("hinge", 40, D=16, progress=False)
    from cryonb.core.io.mrc import write_stack

    write_stack(tmp_path / "bare.mrcs", sim.particles.images, 3.0)
    assert cli(["variability", str(tmp_path / "bare.mrcs"), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "bare.mrcs" in err and "poses" in err and "Traceback" not in err
