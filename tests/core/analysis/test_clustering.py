import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from cryonb.core.analysis import gaussian_mixture, kmeans
from cryonb.core.errors import InputError


def test_kmeans_finds_the_blobs_and_a_member_nearest_each_centre(blobs):
    z, truth = blobs
    result = kmeans(z, 3, seed=0)
    assert adjusted_rand_score(truth, result.labels) == 1
    for j, i in enumerate(result.on_data):
        members = np.flatnonzero(result.labels == j)
        assert i in members
        np.testing.assert_allclose(result.centers[j], z[members].mean(0))
        distance = np.linalg.norm(z[members] - result.centers[j], axis=1)
        assert members[distance.argmin()] == i
        assert np.linalg.norm(z - result.centers[j], axis=1).argmin() == i  # nearest of all, too


def test_kmeans_of_fewer_distinct_latents_than_clusters_keeps_the_clusters_that_exist():
    # one-hot classes (an ab initio run with classes): 2 distinct latents, 8 clusters asked
    labels = np.tile([0, 1, 1], 100)
    z = np.eye(2)[labels]
    result = kmeans(z, 8, seed=0)
    assert len(result.centers) == len(result.on_data) == 2
    assert adjusted_rand_score(labels, result.labels) == 1
    np.testing.assert_allclose(z[result.on_data], result.centers, atol=1e-6)


def test_gaussian_mixture_finds_the_blobs(blobs):
    z, truth = blobs
    labels = gaussian_mixture(z, 3, seed=0)
    assert labels.shape == truth.shape and adjusted_rand_score(truth, labels) == 1


def test_k_out_of_range():
    with pytest.raises(InputError, match=r"k=6 is out of range.*1 <= k <= 5"):
        kmeans(np.zeros((5, 2)), 6)
    with pytest.raises(InputError, match=r"k=0 is out of range"):
        gaussian_mixture(np.zeros((5, 2)), 0)
