"""Latent drift between saved epochs of a cryoDRGN run, and the epoch it suggests."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from cryonb.core.errors import InputError
from cryonb.core.interop import choose_epoch, epoch_convergence
from cryonb.core.interop.cryodrgn_epochs import latent_drift, neighbour_overlap

RNG = np.random.default_rng(0)
Z = RNG.normal(size=(300, 3))


def test_an_affine_change_of_the_latent_space_is_no_drift():
    moved = Z @ RNG.normal(size=(3, 3)) * 5 + 2
    assert np.median(latent_drift(Z, moved)) < 1e-6
    assert neighbour_overlap(Z, Z @ np.diag([2.0, -2.0, 2.0])) == 1.0


def test_unrelated_latents_drift_and_share_no_neighbours():
    other = RNG.normal(size=Z.shape)
    assert np.median(latent_drift(Z, other)) > 0.8
    assert neighbour_overlap(Z, other, k=10) < 0.15


def test_small_moves_drift_a_little():
    drift = np.median(latent_drift(Z, Z + RNG.normal(scale=0.05, size=Z.shape)))
    assert 0.03 < drift < 0.15


def test_the_fixture_runs_two_epochs(cryodrgn_run):
    table = epoch_convergence(cryodrgn_run("vae_gaussian_fourier"))
    assert list(table.columns) == ["epoch", "previous_epoch", "median_drift", "p90_drift", "neighbour_overlap", "n_particles"]
    assert table[["previous_epoch", "epoch", "n_particles"]].values.tolist() == [[1, 2, 200]]
    row = table.iloc[0]
    assert 0 <= row.median_drift <= row.p90_drift and 0 <= row.neighbour_overlap <= 1


def test_epochs_of_a_long_run_and_a_subset_of_particles(tmp_path):
    base = RNG.normal(size=(500, 2))
    (tmp_path / "config.yaml").write_text("model_args: {zdim: 2, players: 1, pdim: 8}\nlattice_args: {D: 9}\n"
                                          "dataset_args: {norm: [0, 1]}\n")
    for epoch, noise in zip(range(1, 6), (1.0, 0.5, 0.02, 0.01, 0.005)):
        base = base + RNG.normal(scale=noise, size=base.shape)
        with open(tmp_path / f"z.{epoch}.pkl", "wb") as f:
            pickle.dump(base.astype(np.float32), f)
    table = epoch_convergence(tmp_path, max_particles=200)
    assert table["epoch"].tolist() == [2, 3, 4, 5] and (table["n_particles"] == 200).all()
    assert table["median_drift"].iloc[0] > 0.2 > 0.05 > table["median_drift"].iloc[-1]
    assert choose_epoch(table) == 2  # from epoch 2 on, every step is small
    assert epoch_convergence(tmp_path, epochs=[1, 5])["epoch"].tolist() == [5]
    with pytest.raises(InputError, match=r"z\.7\.pkl: epoch 7 has no latents"):
        epoch_convergence(tmp_path, epochs=[1, 7])


def test_choose_epoch_warns_when_the_latents_still_move():
    table = pd.DataFrame({"epoch": [2, 3, 4], "previous_epoch": [1, 2, 3], "median_drift": [0.5, 0.05, 0.3],
                          "neighbour_overlap": [0.2, 0.8, 0.3]})
    with pytest.warns(UserWarning, match="still move at the last saved epoch"):
        assert choose_epoch(table) == 4
    table.loc[2, ["median_drift", "neighbour_overlap"]] = [0.02, 0.9]
    assert choose_epoch(table) == 2


def test_one_epoch_is_not_enough(cryodrgn_run):
    with pytest.raises(InputError, match="at least two epochs"):
        epoch_convergence(cryodrgn_run("abinit"))
