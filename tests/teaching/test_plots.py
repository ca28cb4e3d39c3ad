"""cryonb.teaching: radial profiles, ring correlations and image rows against known answers."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from cryonb.core.fourier import shell_index
from cryonb.teaching import radial_profile, ring_correlation, show_images


@pytest.mark.parametrize("D", [16, 17])
def test_radial_profile_of_the_shell_index_is_the_shell_number(D):
    assert np.allclose(radial_profile(shell_index(D, 2).double()), np.arange(D // 2 + 1))
    assert np.allclose(radial_profile(shell_index(D, 3).double(), ndim=3), np.arange(D // 2 + 1))


def test_radial_profile_is_batched_over_leading_axes():
    images = torch.stack([torch.full((12, 12), 2.0), torch.full((12, 12), -3.0)])
    assert np.allclose(radial_profile(images), [[2.0] * 7, [-3.0] * 7])


def test_ring_correlation_is_one_for_scaled_copies_and_minus_one_for_negatives():
    image = torch.randn(24, 24, generator=torch.Generator().manual_seed(0))
    assert np.allclose(ring_correlation(image, 3 * image), 1.0)
    assert np.allclose(ring_correlation(image, -image), -1.0)


def test_ring_correlation_of_independent_noise_is_near_zero_in_large_rings():
    g = torch.Generator().manual_seed(1)
    frc = ring_correlation(torch.randn(128, 128, generator=g), torch.randn(128, 128, generator=g))
    # Friedel symmetry leaves about pi * r independent pixels in ring r: 5 standard deviations at r = 20.
    assert np.abs(frc[20:]).max() < 5 / np.sqrt(np.pi * 20)


def test_show_images_draws_one_panel_per_image_with_the_requested_colour_scales():
    a, b = np.array([[0.0, 1.0], [2.0, 4.0]]), np.array([[-1.0, 0.5], [0.0, 0.0]])
    axes = show_images([a, b], ["a", "b"], symmetric=[False, True])
    assert [ax.get_title() for ax in axes] == ["a", "b"]
    assert axes[0].images[0].get_clim() == (0.0, 4.0)
    assert axes[1].images[0].get_clim() == (-1.0, 1.0)
    shared = show_images([a, b], shared=True)
    assert shared[0].images[0].get_clim() == shared[1].images[0].get_clim() == (-1.0, 4.0)
    plt.close("all")
