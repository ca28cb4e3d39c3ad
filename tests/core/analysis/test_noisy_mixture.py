import numpy as np
import pytest
from scipy.stats import norm
from sklearn.mixture import GaussianMixture

from cryonb.core.analysis.noisy_mixture import NoisyMixture


def _draw(n=2000, rare=0.15, gap=1.6, seed=0):
    """A rare group ``gap`` below the rest, each point measured with its own noise (σ from 0.3 to 3)."""
    rng = np.random.default_rng(seed)
    truth = rng.random(n) < rare
    variance = rng.uniform(0.3, 3.0, n) ** 2
    z = np.where(truth, -gap, 0.0) + rng.normal(0, 0.2, n) + rng.normal(0, np.sqrt(variance))
    return z, variance, truth


def test_one_group_is_the_known_gaussian_likelihood():
    z, variance, _ = _draw(rare=0.0)
    one = NoisyMixture.fit(z, variance, groups=1)
    expected = norm.logpdf(z, one.means[0], np.sqrt(variance + one.spreads[0])).sum()
    assert one.log_likelihood(z, variance) == pytest.approx(expected, rel=1e-12)
    assert abs(one.means[0]) < 0.1 and one.spreads[0] == pytest.approx(0.04, abs=0.03)  # the points' own spread, 0.2²


def test_two_groups_under_uneven_noise_are_found_where_a_plain_mixture_blurs_them():
    z, variance, truth = _draw(gap=2.0)
    one, two = NoisyMixture.fit(z, variance, 1), NoisyMixture.fit(z, variance, 2)
    assert one.bic(z, variance) > two.bic(z, variance)  # two groups
    rare_group = int(np.argmin(two.means))
    assert two.means[rare_group] == pytest.approx(-2.0, abs=0.3) and two.weights[rare_group] == pytest.approx(0.15, abs=0.05)
    found = two.predict(z, variance) == rare_group
    precision = truth[found].mean()
    plain = GaussianMixture(2, n_init=3, random_state=0).fit(z[:, None])
    blurred = plain.predict(z[:, None]) == np.argmin(plain.means_[:, 0])
    assert precision > 0.7 and found[truth].mean() > 0.3, (precision, found[truth].mean())  # chance: 0.15
    # the plain mixture's lower group mixes in noisy points of the other; more points are placed right
    assert precision > truth[blurred].mean() + 0.2 and (found == truth).mean() > (blurred == truth).mean()
    assert np.allclose(two.posterior(z, variance).sum(1), 1)


def test_noise_alone_is_one_group():
    for seed in range(3):
        z, variance, _ = _draw(rare=0.0, seed=seed)
        assert NoisyMixture.fit(z, variance, 1).bic(z, variance) < NoisyMixture.fit(z, variance, 2).bic(z, variance)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="3 coordinates but 2 variances"):
        NoisyMixture.fit([0, 1, 2], [1, 1])
    with pytest.raises(ValueError, match="positive"):
        NoisyMixture.fit([0, 1, 2], [1, 0, 1])
    with pytest.raises(ValueError, match="groups must be 1 or 2"):
        NoisyMixture.fit([0, 1, 2], [1, 1, 1], groups=3)
