"""Accuracy of latent embeddings against a data set's ground truth (the benchmark suite's metrics).

Continuous truth (a coordinate per particle): |Spearman| of z's first principal component,
cross-validated kNN regression R², neighbourhood similarity. Discrete truth (a class per particle):
ARI of a Gaussian mixture and of k-means with the true number of classes, recall of the rare class,
neighbourhood similarity. Both: per-image FSC AUC (CryoBench) given a map generator.
Junk particles (flagged in the truth) are left out of every metric.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.stats import spearmanr
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import adjusted_rand_score, balanced_accuracy_score, r2_score
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor, NearestNeighbors

KNN_REGRESSION_K = 10
NEIGHBOURS_K = 20
# One mixture's ARI can be a lottery: where two classes are nearly one (the rare state beside its
# parent), a mixture with the true number of components may spend its spare one splitting the largest
# class instead, as its random starts decide (ARI 0.72-0.77 against 0.97 for the same latents).
# gmm_ari_seeds, the mean over this many mixtures' seeds, says how often a user's mixture finds the classes.
GMM_SEEDS = 10
FSC_PARTICLES = 100


@dataclass
class Truth:
    """Ground truth per particle: ``coordinate`` (continuous) or ``labels`` (classes), never both.

    ``rare_class`` is the label of the rare state (None if none); ``junk`` (N,) bool marks particles
    without a true state (None: no junk).
    """

    coordinate: np.ndarray | None = None
    labels: np.ndarray | None = None
    rare_class: int | None = None
    junk: np.ndarray | None = None

    @property
    def kind(self) -> str:
        return "continuous" if self.coordinate is not None else "discrete"

    @property
    def n(self) -> int:
        return len(self.coordinate if self.coordinate is not None else self.labels)

    def keep(self) -> np.ndarray:
        """Indices of the particles that count (not junk)."""
        return np.flatnonzero(~self.junk) if self.junk is not None else np.arange(self.n)

    def neighbourhood_fractions(self, z: np.ndarray, k: int = NEIGHBOURS_K) -> np.ndarray:
        """:func:`neighbourhood_fractions` of the particles that count, against this truth."""
        keep = self.keep()
        target = self.coordinate if self.kind == "continuous" else self.labels
        return neighbourhood_fractions(np.asarray(z, float)[keep], target[keep], k, discrete=self.kind == "discrete")


def load_truth(path, kind: str | None = None) -> Truth:
    """Read ``truth.npz`` of the suite's sets (:mod:`benchmarks.suite.sets`) or of cryonb's simulator.

    The suite's: ``coordinate`` (continuous), or ``class`` (also read as ``labels``) with
    ``rare_class`` and ``junk_class``; a ``junk`` flag per particle and negative labels also mark junk.
    cryonb's simulator writes ``state`` and ``reaction_coordinate``: continuous when there are more
    than 10 states (the hinge), discrete otherwise (the mixture), unless ``kind`` says.
    """
    with np.load(path, allow_pickle=False) as f:
        d = {k: f[k] for k in ("coordinate", "class", "labels", "state", "reaction_coordinate", "rare_class", "junk_class", "junk") if k in f.files}
    coordinate = d.get("coordinate")
    labels = d.get("class", d.get("labels"))
    if coordinate is None and labels is None:  # cryonb's simulator
        coordinate, labels = d["reaction_coordinate"], d["state"]
        kind = kind or ("continuous" if len(np.unique(labels)) > 10 else "discrete")
    kind = kind or ("discrete" if labels is not None else "continuous")
    if (coordinate if kind == "continuous" else labels) is None:
        raise ValueError(f"{path} has no {kind} ground truth")
    junk = np.asarray(d["junk"], bool) if "junk" in d else np.zeros(len(coordinate if labels is None else labels), bool)
    if kind == "continuous":
        coordinate, labels = np.asarray(coordinate, float), None
        junk |= np.isnan(coordinate)
    else:
        coordinate, labels = None, np.asarray(labels).astype(np.int64)
        junk |= labels < 0
        if "junk_class" in d:
            junk |= labels == int(d["junk_class"])
    rare = int(d["rare_class"]) if "rare_class" in d and labels is not None else None
    return Truth(coordinate, labels, rare, junk if junk.any() else None)


def first_pc(z: np.ndarray) -> np.ndarray:
    """Projection of z on its first principal component (z itself when zdim is 1)."""
    z = np.asarray(z, float)
    if z.shape[1] == 1:
        return z[:, 0]
    zc = z - z.mean(0)
    return zc @ np.linalg.svd(zc, full_matrices=False)[2][0]


def spearman_pc1(z: np.ndarray, coordinate: np.ndarray) -> float:
    """|Spearman ρ| between z's first principal component and the true coordinate."""
    rho = spearmanr(first_pc(z), coordinate)[0]
    return 0.0 if np.isnan(rho) else abs(float(rho))


def knn_r2(z: np.ndarray, coordinate: np.ndarray, k: int = KNN_REGRESSION_K, folds: int = 5, seed: int = 0) -> float:
    """R² of the coordinate predicted from z by k-nearest-neighbour regression (mean of k, default 10).

    Out-of-fold predictions of a shuffled ``folds``-fold split, pooled; 1 is perfect, random latents
    give about -1/k (the variance of a mean of k unrelated coordinates).
    """
    model = KNeighborsRegressor(n_neighbors=k)
    pred = cross_val_predict(model, np.asarray(z, float), coordinate, cv=KFold(folds, shuffle=True, random_state=seed))
    return float(r2_score(coordinate, pred))


def gmm_clusters(z: np.ndarray, n_classes: int, seed: int = 0, n_init: int = 5) -> np.ndarray:
    """Cluster labels of a full-covariance Gaussian mixture with ``n_classes`` components on standardised z (best of ``n_init``)."""
    gmm = GaussianMixture(n_classes, covariance_type="full", n_init=n_init, random_state=seed, reg_covar=1e-5)
    return gmm.fit_predict(_standardise(z))


def kmeans_clusters(z: np.ndarray, n_classes: int, seed: int = 0) -> np.ndarray:
    """Cluster labels of k-means with ``n_classes`` clusters (n_init 10)."""
    return KMeans(n_classes, n_init=10, random_state=seed).fit_predict(np.asarray(z, float))


def rare_recall(clusters: np.ndarray, labels: np.ndarray, rare_class: int) -> float:
    """Fraction of the rare class's particles that fall in a cluster whose majority is the rare class.

    Each predicted cluster is named after its most common true class; the rare state is found when
    at least one cluster is named after it, and its recall counts the rare particles in those clusters
    (0 when no cluster has a rare majority).
    """
    rare = labels == rare_class
    if not rare.any():
        return float("nan")
    return float(np.isin(clusters[rare], clusters_named(clusters, labels, rare_class)).mean())


def clusters_named(clusters: np.ndarray, labels: np.ndarray, cls: int) -> list:
    """The predicted clusters whose most common true class is ``cls``."""
    return [c for c in np.unique(clusters) if np.bincount(labels[clusters == c]).argmax() == cls]


def rare_separability(z: np.ndarray, labels: np.ndarray, rare_class: int, other_class: int, folds: int = 5,
                      seed: int = 0) -> dict:
    """How well z tells the rare class from ``other_class``: balanced accuracies (0.5 is chance) of
    out-of-fold predictions of a logistic regression (a linear probe) and of a 15-nearest-neighbour
    vote, over a shuffled, stratified ``folds``-fold split of the two classes' particles."""
    pair = np.isin(labels, [rare_class, other_class])
    x, y = _standardise(z[pair]), labels[pair] == rare_class
    split = StratifiedKFold(folds, shuffle=True, random_state=seed)
    probes = {"logistic": LogisticRegression(max_iter=2000, class_weight="balanced"), "knn": KNeighborsClassifier(15)}
    return {name: float(balanced_accuracy_score(y, cross_val_predict(p, x, y, cv=split))) for name, p in probes.items()}


def neighbourhood_similarity(z: np.ndarray, truth: np.ndarray, k: int = NEIGHBOURS_K, discrete: bool = False) -> float:
    """CryoBench's neighbourhood similarity: mean fraction of each particle's k nearest z-neighbours that are true neighbours.

    Continuous: a z-neighbour is a true neighbour when it is no farther in the true coordinate than the
    particle's k-th nearest true neighbour (ties count). Discrete: when it has the same class.
    The particle itself is excluded. Chance level: about k/N (continuous), Σ p_c² (discrete).
    """
    return float(neighbourhood_fractions(z, truth, k, discrete).mean())


def neighbourhood_fractions(z: np.ndarray, truth: np.ndarray, k: int = NEIGHBOURS_K, discrete: bool = False) -> np.ndarray:
    """Each particle's fraction of true neighbours among its k nearest z-neighbours (see :func:`neighbourhood_similarity`)."""
    z = np.asarray(z, float)
    k = min(k, len(z) - 1)
    zn = NearestNeighbors(n_neighbors=k).fit(z).kneighbors(return_distance=False)  # without the query itself
    if discrete:
        return (truth[zn] == truth[:, None]).mean(1)
    t = np.asarray(truth, float).reshape(len(truth), -1)
    dk = NearestNeighbors(n_neighbors=k).fit(t).kneighbors()[0][:, -1]
    d = np.linalg.norm(t[zn] - t[:, None], axis=-1)
    return (d <= dk[:, None] * (1 + 1e-9) + 1e-12).mean(1)


def paired_bootstrap_interval(a: np.ndarray, b: np.ndarray, draws: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Interval of mean(a − b) over particles resampled with replacement (a, b: per-particle scores of the same particles)."""
    d = np.asarray(a, float) - np.asarray(b, float)
    means = d[np.random.default_rng(seed).integers(0, len(d), (draws, len(d)))].mean(1)
    lo, hi = np.percentile(means, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def per_image_fsc_aucs(
    z: np.ndarray,
    maps_at: Callable[[np.ndarray], np.ndarray],
    true_map: Callable[[int], np.ndarray],
    k: int = FSC_PARTICLES,
    seed: int = 0,
    batch: int = 16,
    candidates: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CryoBench's per-image FSC AUC of ``k`` random particles (of ``candidates``, default all).

    For each, the area under |FSC| (cycles per pixel, DC to Nyquist: at most 0.5) between
    ``maps_at(z[picks])`` (B, D, D, D) and ``true_map(i)`` (D, D, D). Returns the particles, their AUCs
    and their FSC curves (k, D // 2 + 1), shell 0 (DC) to Nyquist, to see where in frequency maps differ.
    """
    from cryonb.core.fsc import fsc

    candidates = np.arange(len(z)) if candidates is None else np.asarray(candidates)
    picks = np.sort(np.random.default_rng(seed).choice(candidates, size=min(k, len(candidates)), replace=False))
    curves = []
    for start in range(0, len(picks), batch):
        idx = picks[start : start + batch]
        curves += [fsc(true_map(int(i)), m) for m, i in zip(maps_at(np.asarray(z)[idx]), idx)]
    return picks, np.asarray([c.auc() for c in curves]), np.asarray([c.values for c in curves])


def ideal_latents(z: np.ndarray, coordinate: np.ndarray, k: int = 20) -> np.ndarray:
    """Each particle's z replaced by the mean z of the ``k`` particles nearest to it in the true coordinate:
    the path the latents trace, with each particle's own error averaged away (only a benchmark can).
    Particles without a coordinate (NaN: junk) keep their own z and are nobody's neighbour."""
    z = np.asarray(z, float)
    c = np.asarray(coordinate, float).reshape(len(z), -1)
    known = np.flatnonzero(~np.isnan(c).any(1))
    _, nearest = NearestNeighbors(n_neighbors=k).fit(c[known]).kneighbors(c[known])
    ideal = z.copy()
    ideal[known] = z[known][nearest].mean(1)
    return ideal


def smoothed_latents(z: np.ndarray, k: int = 20) -> np.ndarray:
    """Each particle's z replaced by the mean z of its ``k`` nearest neighbours in z itself (itself
    included): what any user can do without a truth, to tell how much of the maps' error comes from
    latent error off the region the latents populate (it leaves error along that region in place)."""
    z = np.asarray(z, float)
    _, nearest = NearestNeighbors(n_neighbors=k).fit(z).kneighbors(z)
    return z[nearest].mean(1)


def probe_latent_fsc(z: np.ndarray, maps_at, true_map, truth: Truth, ideal: bool = True, smooth_k: int | None = None,
                     **kwargs) -> dict:
    """Per-image FSC AUC of the maps at the scored particles' ideal latents (``ideal``: :func:`ideal_latents`;
    continuous sets only), as ``ideal_z_fsc_auc_mean`` and ``_median`` — what the decoder draws when the
    latents' per-particle error is taken away — and, with ``smooth_k``, at latents smoothed over their
    own neighbours (:func:`smoothed_latents`), as ``knn{k}_z_fsc_auc_*``. ``kwargs``:
    :func:`per_image_fsc_aucs`'s (the same picks)."""
    probes = {"ideal_z": ideal_latents(z, truth.coordinate)} if ideal and truth.kind == "continuous" else {}
    if smooth_k:
        probes[f"knn{smooth_k}_z"] = smoothed_latents(z, smooth_k)
    out = {}
    for name, latents in probes.items():
        summary = fsc_summary(per_image_fsc_aucs(latents, maps_at, true_map, candidates=truth.keep(), **kwargs)[1])
        out.update({f"{name}_{key}": value for key, value in summary.items() if key != "fsc_particles"})
    return out


def fsc_summary(aucs: np.ndarray) -> dict:
    """Mean, median and count of per-image FSC AUCs."""
    return {"fsc_auc_mean": float(np.mean(aucs)), "fsc_auc_median": float(np.median(aucs)), "fsc_particles": len(aucs)}


def latent_metrics(z: np.ndarray, truth: Truth, seed: int = 0) -> dict:
    """Every latent-only metric that applies to ``truth`` (junk excluded), as a flat dict of floats.

    Continuous: spearman_pc1, knn_r2, neighbourhood. Discrete: gmm_ari (one mixture, seed ``seed``),
    gmm_ari_seeds (the mean over ``GMM_SEEDS`` mixtures' seeds from ``seed``), kmeans_ari, neighbourhood,
    and rare_recall (of the Gaussian mixture's clusters) when the truth names a rare class.
    """
    keep = truth.keep()
    z = np.asarray(z, float)[keep]
    if truth.kind == "continuous":
        c = truth.coordinate[keep]
        return {
            "spearman_pc1": spearman_pc1(z, c),
            "knn_r2": knn_r2(z, c, seed=seed),
            "neighbourhood": neighbourhood_similarity(z, c),
        }
    labels = truth.labels[keep]
    n_classes = len(np.unique(labels))
    mixtures = [gmm_clusters(z, n_classes, s) for s in range(seed, seed + GMM_SEEDS)]
    gmm, aris = mixtures[0], [adjusted_rand_score(labels, m) for m in mixtures]
    out = {
        "gmm_ari": float(aris[0]),
        "gmm_ari_seeds": float(np.mean(aris)),
        "kmeans_ari": float(adjusted_rand_score(labels, kmeans_clusters(z, n_classes, seed))),
        "neighbourhood": neighbourhood_similarity(z, labels, discrete=True),
    }
    if truth.rare_class is not None:
        out["rare_recall"] = rare_recall(gmm, labels, truth.rare_class)
    return out


def clustering_over_seeds(z: np.ndarray, truth: Truth, seeds: int) -> dict:
    """How steadily clusters with the true number of classes find them: the mean and least ARI of a Gaussian
    mixture and of k-means over ``seeds`` random starts each (junk excluded)."""
    keep = truth.keep()
    z, labels = np.asarray(z, float)[keep], truth.labels[keep]
    n_classes = len(np.unique(labels))
    out = {}
    for name, clusters in (("gmm", gmm_clusters), ("kmeans", kmeans_clusters)):
        aris = [adjusted_rand_score(labels, clusters(z, n_classes, s)) for s in range(seeds)]
        out |= {f"{name}_ari_mean{seeds}": float(np.mean(aris)), f"{name}_ari_min{seeds}": float(np.min(aris))}
    return out


def _standardise(z) -> np.ndarray:
    z = np.asarray(z, float)
    return (z - z.mean(0)) / np.maximum(z.std(0), 1e-12)

