"""Clusters of latents: k-means with on-data centres, and Gaussian mixtures."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ._inputs import as_count, as_latents


@dataclass(frozen=True)
class KMeansResult:
    """k-means labels and centres, plus the particle that stands for each centre."""

    labels: np.ndarray  # (N,) int, cluster of each particle
    centers: np.ndarray  # (k, zdim), cluster means
    on_data: np.ndarray  # (k,) int, index of the member of each cluster nearest its centre


def auto_clusters(n: int, most: int = 8) -> int:
    """A number of k-means clusters for ``n`` particles: one per 10 particles, at least 2, at most ``most`` (and n)."""
    return int(max(1, min(most, n, max(2, n // 10))))


def kmeans(z, k: int, seed: int = 0) -> KMeansResult:
    """k-means of z (N, zdim) into k clusters.

    ``on_data`` gives a real particle per cluster (the member nearest the centre), whose
    latent can be decoded to a volume that the data actually support.
    """
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    z = as_latents(z)
    k = as_count(k, "k", 1, len(z))
    with warnings.catch_warnings():  # fewer distinct latents than k (e.g. one-hot classes): handled below
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(z)
    labels, centers = model.labels_.astype(np.int64), model.cluster_centers_
    used = np.unique(labels)
    if len(used) < k:  # the empty clusters are dropped
        labels, centers, k = np.searchsorted(used, labels), centers[used], len(used)
    distance = np.linalg.norm(z - centers[labels], axis=1)
    order = np.lexsort((distance, labels))  # by cluster, then nearest first
    first = np.searchsorted(labels[order], np.arange(k))
    return KMeansResult(labels=labels, centers=centers, on_data=order[first])


def gaussian_mixture(z, k: int, seed: int = 0) -> np.ndarray:
    """Labels (N,) of a k-component full-covariance Gaussian mixture fitted to z (N, zdim)."""
    from sklearn.mixture import GaussianMixture

    z = as_latents(z)
    k = as_count(k, "k", 1, len(z))
    return GaussianMixture(n_components=k, covariance_type="full", random_state=seed).fit_predict(z).astype(np.int64)
