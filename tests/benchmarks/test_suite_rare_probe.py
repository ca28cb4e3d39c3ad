"""The ideal observer of the assembly set's rare state: the ceiling for any method that finds it."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import norm

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.suite import imaging, sets  # noqa: E402
from benchmarks.suite.rare_probe import NEAREST, RARE, ideal_majority_recall, ideal_recall, ideal_separation  # noqa: E402


@pytest.fixture(scope="module")
def assembly_folder(tmp_path_factory, real_data):
    folder = tmp_path_factory.mktemp("assembly")
    sets.assembly(folder, n=300, box=32, snr=0.1, seed=0, data_dir=real_data, progress=False)
    return folder


def test_the_region_alone_gives_the_two_classes_images_distance(assembly_folder):
    t = dict(np.load(assembly_folder / "truth.npz"))
    rare = np.flatnonzero(t["class"] == RARE)
    rotations = torch.as_tensor(imaging.euler_to_matrix(*t["euler"][rare].T))
    shifts, ctf, apix = torch.as_tensor(t["shifts"][rare]), torch.as_tensor(t["ctf"][rare]), float(t["apix"])

    def image(k):  # the whole class's atoms
        coords, weights, sigma = (torch.as_tensor(np.asarray(a, float)) for a in sets.class_atoms(t, k))
        return imaging.apply_ctf(imaging.splat_images(coords, weights, sigma, rotations, shifts, 32, apix), ctf, apix)

    expected = (image(NEAREST) - image(RARE)).pow(2).sum((1, 2)).sqrt().numpy() / float(t["noise_sigma"])
    d = ideal_separation(assembly_folder)
    np.testing.assert_allclose(d, expected, rtol=1e-4)
    assert len(d) == len(rare) and d.min() > 0
    limited = ideal_separation(assembly_folder, resolution=40.0)
    assert (limited < d).all() and (limited > 0).all()  # fewer frequencies hold less of the difference
    np.testing.assert_allclose(ideal_separation(assembly_folder, images=3), d[:3], rtol=1e-6)


def test_ideal_recall_known_values():
    d = np.full(10, 2.0)  # the log likelihood ratio is N(±2, 4)
    recall, false = ideal_recall(d, odds=1)
    assert recall == pytest.approx(norm.cdf(1.0)) and false == pytest.approx(norm.cdf(-1.0))
    recall, false = ideal_recall(d, odds=5)  # the threshold moves up by ln 5: fewer found, fewer false alarms
    assert recall == pytest.approx(norm.cdf(1 - np.log(5) / 2)) and false == pytest.approx(norm.cdf(-1 - np.log(5) / 2))
    assert ideal_recall(np.full(3, 12.0), odds=30)[0] > 0.999


def test_the_majority_ceiling_keeps_the_rare_particles_ahead():
    d = np.full(10, 2.0)
    best = ideal_majority_recall(d, odds=5)
    assert best > ideal_recall(d, odds=5)[0]  # a group may be less pure than the posterior's call and still rare-led
    threshold = next(t for t in np.linspace(-10, 20, 601) if ideal_recall(d, 5, t)[0] == pytest.approx(best))
    recall, false = ideal_recall(d, 5, threshold)
    assert recall > 5 * false and ideal_recall(d, 5, threshold - 0.1)[0] <= 5 * ideal_recall(d, 5, threshold - 0.1)[1]
    assert ideal_majority_recall(np.full(10, 0.01), odds=5) < 0.05  # nothing to see: almost nothing found
