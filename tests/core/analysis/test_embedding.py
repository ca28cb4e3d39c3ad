from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from cryonb.core.analysis import kmeans, latent_norm, pca, umap_embedding
from cryonb.core.analysis.embedding import import_umap
from cryonb.core.errors import InputError


def test_pca_matches_the_covariance_eigenvectors():
    rng = np.random.default_rng(0)
    rotation = np.linalg.qr(rng.normal(size=(6, 6)))[0]
    z = (rng.normal(size=(3000, 6)) * [6, 4, 2, 1, 0.5, 0.1]) @ rotation + 3.0
    result = pca(z)
    values, vectors = np.linalg.eigh(np.cov(z, rowvar=False))
    values, vectors = values[::-1], vectors[:, ::-1].T
    np.testing.assert_allclose(result.explained_variance, values, rtol=1e-10)
    np.testing.assert_allclose(result.explained_variance_ratio, values / values.sum(), rtol=1e-10)
    np.testing.assert_allclose(np.abs((result.components * vectors).sum(1)), 1, atol=1e-8)  # same axes up to sign
    np.testing.assert_allclose(result.coords, (z - z.mean(0)) @ result.components.T, atol=1e-10)
    largest = result.components[np.arange(6), np.abs(result.components).argmax(1)]
    assert (largest > 0).all()
    np.testing.assert_allclose(np.abs(result.components @ rotation.T), np.eye(6), atol=0.05)  # the true axes


def test_pca_n_components_and_bad_shape():
    z = np.random.default_rng(1).normal(size=(50, 4))
    full, two = pca(z), pca(z, 2)
    assert two.coords.shape == (50, 2)
    np.testing.assert_allclose(two.components, full.components[:2])
    with pytest.raises(InputError, match=r"n_components=5 is out of range"):
        pca(z, 5)
    with pytest.raises(InputError, match=r"z has shape \(2, 3, 4\)"):
        pca(np.zeros((2, 3, 4)))


def test_latent_norm():
    np.testing.assert_allclose(latent_norm([[3.0, 4.0], [0.0, 0.0]]), [5.0, 0.0])


@pytest.fixture(scope="module")
def umap_ready():
    """Compile umap's numba code once for the module (~25 s on first import)."""
    pytest.importorskip("umap")
    import_umap().UMAP(n_neighbors=5, n_epochs=5).fit_transform(np.random.default_rng(0).normal(size=(60, 3)))


def test_umaps_compiled_code_is_kept_on_disk(umap_ready):
    """A UMAP's numba functions write numba's cache (index and code), so other processes load them
    instead of compiling them again."""
    from numba.core.caching import NullCache

    from umap.umap_ import compute_membership_strengths, smooth_knn_dist

    for function in (smooth_knn_dist, compute_membership_strengths):
        assert not isinstance(function._cache, NullCache)
        assert function.signatures and Path(function._cache._cache_file._index_path).is_file()  # compiled, and written


def assert_separated(xy, truth):
    assert xy.shape == (len(truth), 2) and xy.dtype == np.float32
    assert adjusted_rand_score(truth, kmeans(xy, 3).labels) == 1


def test_without_a_writable_place_for_numbas_cache_umap_still_runs(umap_ready, monkeypatch):
    """numba raises where it finds nowhere to write a cache (a read-only installation and home):
    the functions then compile in each process, as umap-learn has them."""
    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher
    from umap.umap_ import smooth_knn_dist

    asked = []

    def nowhere(self):
        asked.append(self)
        raise RuntimeError("cannot cache function: no locator available")

    monkeypatch.setattr(smooth_knn_dist, "_cache", NullCache())  # as before its cache was turned on
    monkeypatch.setattr(Dispatcher, "enable_caching", nowhere)
    umap = import_umap.__wrapped__()  # (import_umap keeps its first answer)
    assert asked and umap.UMAP is not None


def test_umap_keeps_blobs_apart(umap_ready, blobs):
    z, truth = blobs
    assert_separated(umap_embedding(z), truth)


def test_umap_fits_a_sample_and_places_the_rest(umap_ready, blobs):
    z, truth = blobs
    xy = umap_embedding(z, max_fit=300, chunk=250, seed=1, placement="transform")  # 600 of 900 by transform, in 3 chunks
    assert_separated(xy, truth)
    placed = umap_embedding(z, max_fit=300, seed=1)  # the other 600 placed from their nearest fitted latents
    assert_separated(placed, truth)
    fitted = np.zeros(len(z), bool)
    fitted[np.random.default_rng(1).choice(len(z), 300, replace=False)] = True
    np.testing.assert_array_equal(placed[fitted], xy[fitted])  # the sample's own embedding is untouched
    with pytest.raises(InputError, match="placement"):
        umap_embedding(z, max_fit=300, placement="nearest")
    with pytest.raises(InputError, match=r"max_fit=10 is out of range"):
        umap_embedding(z, max_fit=10)
