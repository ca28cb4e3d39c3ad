import dataclasses

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from cryonb.core.errors import InputError
from cryonb.core.fourier import fft3_center, ifft3_center, shell_index
from cryonb.core.phantoms import hinge
from cryonb.core.simulate import simulate
from cryonb.core.variability import AGREEMENT, VariabilityComponent, _kept, variability_component

D = 32



def test_a_rare_missing_subunit_is_found_from_a_random_start(rare_state):
    component = variability_component(rare_state.particles, resolution=12.0, regions=0, progress=False)
    rare = rare_state.state == 1
    auc = roc_auc_score(rare, component.coordinates)
    assert max(auc, 1 - auc) > 0.9
    split = component.split()
    assert split.sum() < len(split) / 2  # 1 is the smaller group
    recall, precision, accuracy = split[rare].mean(), rare[split == 1].mean(), ((split == 1) == rare).mean()
    # each particle in its most probable group, its own noise counted: a small group that is mostly the rare state
    assert recall > 0.6 and precision > 0.8 and accuracy > 0.9, (recall, precision, accuracy)  # chance: 0.5, 0.2, 0.68
    # the component is the subunit, at the resolution used (12 Å: 8 pixels of frequency)
    difference = ifft3_center(fft3_center(rare_state.volumes[0] - rare_state.volumes[1]) * (shell_index(D, 3) <= 8)).real
    cosine = (difference * component.component).sum() / (difference.norm() * component.component.norm())
    assert abs(float(cosine)) > 0.5, float(cosine)
    assert component.history and component.history[-1]["half_agreement"] > 0.5
    assert len(component.starts) == 3 and component.bimodality == max(b for _, b in component.starts) > 0  # the most bimodal of three
    assert component.significance is None and "agreement" in repr(component)


def test_a_region_of_the_consensus_finds_the_subunit_where_the_iteration_does_not(rare_state):
    """From this random start the iteration settles on noise (its halves agree at 0.13); among the
    consensus's regions, the one the particles lack is found, its coordinates from two halves of the
    pixels correlating at about ten standard errors, and is kept as the more bimodal candidate."""
    from cryonb.core import variability

    component = variability_component(rare_state.particles, resolution=12.0, starts=1, seed=1, progress=False)
    (agreement, _), (significance, _) = component.starts
    assert agreement < 0.5 and significance == component.significance > variability.SIGNIFICANCE
    assert not component.history and np.isnan(component.agreement) and "a region" in repr(component)
    rare = rare_state.state == 1
    auc = roc_auc_score(rare, component.coordinates)
    assert max(auc, 1 - auc) > 0.9
    split = component.split()
    assert split[rare].mean() > 0.6 and rare[split == 1].mean() > 0.8
    # each coordinate's noise variance, from the least squares, is the scatter inside either state
    for state in (rare, ~rare):
        calibration = component.coordinates[state].var() / component.noise[state].mean()
        assert 0.7 < calibration < 1.3, calibration


def test_images_of_noise_give_no_significant_region(monkeypatch):
    """Images of noise with poses and CTFs: the best of the 96 regions correlates between the two
    halves of the pixels by no more than chance allows (its significance kept here, whatever it is)."""
    from cryonb.core import variability

    noise = simulate(torch.stack([hinge(D)]), 1000, D=D, snr=1e-8, seed=4, progress=False)
    assert variability_component(noise.particles, resolution=12.0, starts=1, progress=False).significance is None
    monkeypatch.setattr(variability, "SIGNIFICANCE", -np.inf)
    component = variability_component(noise.particles, resolution=12.0, starts=1, iterations=5, progress=False)
    (_, _), (significance, _) = component.starts
    assert abs(significance) < 4, significance


def test_a_small_selection_of_one_state_is_not_split_into_its_random_halves():
    """Each half's coordinates are measured along the other half's component, which holds its own
    half's mean residual: uncentred, the halves sat 1.7 standard deviations apart here and the two
    groups were the random halves (91 %), bimodality +0.20."""
    one_state = simulate(hinge(D)[None], 100, D=D, snr=0.02, shift_sigma=1.0, seed=4, progress=False)
    component = variability_component(one_state.particles, resolution=12.0, regions=0, starts=1, progress=False)
    halves = (torch.randperm(100, generator=torch.Generator().manual_seed(0)) % 2).numpy()  # the module's, from seed 0
    groups = component.split()
    assert max((groups == halves).mean(), (groups != halves).mean()) < 0.7
    assert component.bimodality < 0


def test_without_poses_or_with_too_few_particles_one_clear_error(rare_state):
    particles = rare_state.particles
    with pytest.raises(InputError, match="poses"):
        variability_component(dataclasses.replace(particles, rotations=None))
    with pytest.raises(InputError, match="at least 20"):
        variability_component(particles.subset(np.arange(10)), progress=False)


def test_the_working_box_gives_the_component_the_whole_box_gives(rare_state, monkeypatch):
    """At 24 Å only the frequencies up to 4 pixels are used, so the component is computed in a box of
    24 for these images of 32; the same computation in their own box finds the same component."""
    from cryonb.core import variability

    assert variability.working_box(32, 4) == 24 and variability.working_box(128, 9) == 40 and variability.working_box(32, 8) == 32
    small = variability_component(rare_state.particles, resolution=24.0, regions=0, progress=False)
    monkeypatch.setattr(variability, "working_box", lambda D, radius: D)
    whole = variability_component(rare_state.particles, resolution=24.0, regions=0, progress=False)
    assert small.component.shape == whole.component.shape == (D, D, D)
    assert small.consensus.shape == (D, D, D) and torch.allclose(small.consensus, whole.consensus)
    cosine = float((small.component * whole.component).sum())  # both of unit norm
    assert abs(cosine) > 0.9, cosine
    assert abs(np.corrcoef(small.coordinates, whole.coordinates)[0, 1]) > 0.9
    assert small.agreement > 0.5 and whole.agreement > 0.5


def _along(coordinates: np.ndarray, outlier: int | None = None, noise: np.ndarray | None = None, agreement: float = 0.9) -> VariabilityComponent:
    trust = np.ones(len(coordinates))
    if outlier is not None:
        trust[outlier] = 0.01
    return VariabilityComponent(coordinates, torch.zeros(D, D, D), torch.zeros(D, D, D), np.arange(len(coordinates)), 12.0,
                                [{"iteration": 1, "change": 1.0, "half_agreement": agreement}], trust, noise=noise)


def test_the_most_bimodal_reproducible_candidate_is_kept_before_any_other():
    """A start whose halves disagree is kept only where no candidate is reproducible, however bimodal."""
    rng = np.random.default_rng(1)
    two = np.where(np.arange(1000) < 200, 3.0, 0.0) + rng.normal(size=1000)
    unreproducible = _along(two, agreement=0.2)
    reproducible = _along(0.5 * two + rng.normal(size=1000), agreement=0.8)
    region = dataclasses.replace(_along(0.3 * two + rng.normal(size=1000)), history=[], significance=6.0)
    assert unreproducible.bimodality > reproducible.bimodality > region.bimodality and region.reproducible()
    assert _kept([unreproducible, region, reproducible], AGREEMENT) is reproducible
    assert _kept([unreproducible, region], AGREEMENT) is region
    assert _kept([unreproducible, _along(rng.normal(size=1000), agreement=0.3)], AGREEMENT) is unreproducible


@pytest.mark.parametrize("known_noise", [False, True], ids=["plain mixture", "each coordinate's noise known"])
def test_bimodality_tells_two_groups_from_one_spread(known_noise):
    """Coordinates of one Gaussian spread (however reproducible the component) score below 0; a fifth
    of the particles three spreads away, above; a single extreme coordinate (an outlier) is left out.
    With each coordinate's noise known, the spread is that noise, from 0.5 to 1.5 of a unit."""
    rng = np.random.default_rng(0)
    sigma = rng.uniform(0.5, 1.5, 1000) if known_noise else np.ones(1000)
    noise = sigma**2 if known_noise else None
    spread = rng.normal(size=1000) * sigma
    two = np.where(np.arange(1000) < 200, 3.0, 0.0) + rng.normal(size=1000) * sigma
    assert _along(spread, noise=noise).bimodality < 0 < _along(two, noise=noise).bimodality
    with_outlier = spread.copy()
    with_outlier[7] = 60.0
    assert _along(with_outlier, outlier=7, noise=noise).bimodality < 0
    far = _along(with_outlier, noise=noise)  # as far out, from an image no noisier than the rest: no group of its own
    assert list(far.left_out) == [7] and len(far.fitted) == 999 and far.bimodality < 0 and far.split()[7] == 0
    few = two.copy()
    few[:200] = rng.normal(size=200) * sigma[:200]  # 20 particles six spreads away are a group, however few
    few[:20] += 6.0
    few = _along(few, noise=noise)
    assert few.bimodality > 0 and len(few.fitted) == 1000 and few.split()[:20].all() and few.split().sum() < 40
    groups = _along(two, noise=noise).split()
    assert groups.sum() < 500 and groups[:200].mean() > 0.8  # 1 is the smaller group, the fifth


@pytest.mark.parametrize("known_noise, apart", [(False, 4.0), (True, 2.5)], ids=["plain mixture", "each coordinate's noise known"])
def test_purity_is_the_share_of_each_group_that_belongs_to_it(known_noise, apart):
    """Two states ``apart`` spreads apart, the rarer 15 % (with each coordinate's noise known, as for a
    component from images, 2.5 spreads; a plain mixture needs more to fit them): each group's purity
    comes within 0.03 of the true share of its particles that are of its state; 12 spreads apart, both are 1."""
    rng = np.random.default_rng(3)
    n, rare = 8000, np.arange(8000) < 1200
    sigma = rng.uniform(0.7, 1.3, n) if known_noise else np.ones(n)
    noise = sigma**2 if known_noise else None
    close = _along(np.where(rare, apart, 0.0) + rng.normal(size=n) * sigma, noise=noise)
    groups, purity = close.split(), close.purity()
    true = ((~rare[groups == 0]).mean(), rare[groups == 1].mean())
    assert groups.sum() < n / 2 and 0.6 < purity[1] < purity[0] < 1
    np.testing.assert_allclose(purity, true, atol=0.03)
    far = _along(np.where(rare, 12.0, 0.0) + rng.normal(size=n) * sigma, noise=noise)
    np.testing.assert_allclose(far.purity(), (1.0, 1.0), atol=1e-6)
