"""The benchmark suite's metrics on synthetic latents whose answer is known: perfect → 1, random → about 0."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.suite import metrics  # noqa: E402

N = 600


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def continuous(rng):
    c = rng.uniform(0, 1, N)
    perfect = np.stack([np.tanh(3 * c - 1.5), 0.01 * rng.normal(size=N)], 1)  # monotonic in c along PC1
    return c, perfect, rng.normal(size=(N, 8))


def discrete(rng, sizes=(270, 270, 60)):
    labels = np.repeat(np.arange(len(sizes)), sizes)
    centres = 10 * rng.normal(size=(len(sizes), 8))
    return labels, centres[labels] + 0.3 * rng.normal(size=(N, 8)), rng.normal(size=(N, 8))


def test_continuous_perfect_and_random(rng):
    c, good, bad = continuous(rng)
    assert metrics.spearman_pc1(good, c) > 0.999
    assert metrics.spearman_pc1(-good, c) > 0.999  # sign of the PC does not matter
    assert metrics.spearman_pc1(bad, c) < 0.15
    assert metrics.knn_r2(good, c) > 0.98
    assert abs(metrics.knn_r2(bad, c)) < 0.2
    assert metrics.neighbourhood_similarity(good, c) > 0.9
    assert metrics.neighbourhood_similarity(bad, c) < 0.1
    assert metrics.spearman_pc1(c[:, None], c) == pytest.approx(1.0)  # zdim 1: z itself


def test_neighbourhood_with_tied_coordinates(rng):
    """A coordinate with few distinct values (the simulator's hinge states): ties count as neighbours."""
    c = rng.integers(0, 50, N).astype(float)
    assert metrics.neighbourhood_similarity(c[:, None] + 1e-6 * rng.normal(size=(N, 1)), c, k=10) == 1.0


def test_discrete_perfect_and_random(rng):
    labels, good, bad = discrete(rng)
    for cluster in (metrics.gmm_clusters, metrics.kmeans_clusters):
        assert adjusted_rand_score(labels, cluster(good, 3)) == pytest.approx(1.0)
        assert abs(adjusted_rand_score(labels, cluster(bad, 3))) < 0.05
    assert metrics.neighbourhood_similarity(good, labels, discrete=True) == 1.0
    chance = np.sum((np.bincount(labels) / N) ** 2)
    assert metrics.neighbourhood_similarity(bad, labels, discrete=True) == pytest.approx(chance, abs=0.05)


def test_rare_recall_definition():
    labels = np.array([0] * 10 + [1] * 4)
    assert metrics.rare_recall(labels.copy(), labels, 1) == 1.0
    # 3 of the 4 rare particles in a cluster that is mostly rare, one lost in the big cluster
    clusters = np.array([0] * 10 + [1, 1, 1, 0])
    assert metrics.rare_recall(clusters, labels, 1) == 0.75
    # the rare particles are a minority in every cluster: not found
    assert metrics.rare_recall(np.zeros(14, int), labels, 1) == 0.0


def test_latent_metrics_and_junk(rng, tmp_path):
    labels, good, bad = discrete(rng)
    junk = np.zeros(N, bool)
    junk[::50] = True
    np.savez(tmp_path / "neg.npz", labels=np.where(junk, -1, labels))  # junk as negative labels
    assert metrics.load_truth(tmp_path / "neg.npz").junk.sum() == junk.sum()
    # the suite's sets: "class" with a junk class and a rare class
    np.savez(tmp_path / "truth.npz", **{"class": np.where(junk, 3, labels)}, rare_class=2, junk_class=3, class_names=np.array(list("abcj")))
    truth = metrics.load_truth(tmp_path / "truth.npz")
    assert truth.kind == "discrete" and truth.rare_class == 2 and truth.junk.sum() == junk.sum()
    z = good.copy()
    z[junk] = 100 * rng.normal(size=(junk.sum(), 8))  # junk far away must not matter
    m = metrics.latent_metrics(z, truth)
    assert m["gmm_ari"] == pytest.approx(1.0) and m["kmeans_ari"] == pytest.approx(1.0)
    assert m["gmm_ari_seeds"] == pytest.approx(1.0)
    assert m["rare_recall"] == 1.0 and m["neighbourhood"] == 1.0
    m = metrics.latent_metrics(bad, truth, seed=3)
    assert m["gmm_ari"] < 0.05 and m["rare_recall"] < 0.5
    keep = truth.keep()  # the mean over the mixtures of seeds 3 to 12, the first of them gmm_ari's
    aris = [adjusted_rand_score(labels[keep], metrics.gmm_clusters(bad[keep], 3, s)) for s in range(3, 3 + metrics.GMM_SEEDS)]
    assert m["gmm_ari"] == aris[0] and m["gmm_ari_seeds"] == pytest.approx(np.mean(aris))

    c, good, _ = continuous(rng)
    np.savez(tmp_path / "truth.npz", coordinate=c, junk=junk)
    truth = metrics.load_truth(tmp_path / "truth.npz")
    assert truth.kind == "continuous" and len(truth.keep()) == N - junk.sum()
    assert set(metrics.latent_metrics(good, truth)) == {"spearman_pc1", "knn_r2", "neighbourhood"}


def test_load_truth_of_cryonb_simulator(tmp_path):
    """cryonb's simulator: state + reaction_coordinate; many states mean continuous, few discrete."""
    state = np.arange(100) % 50
    np.savez(tmp_path / "hinge.npz", state=state, reaction_coordinate=state * 0.03)
    assert metrics.load_truth(tmp_path / "hinge.npz").kind == "continuous"
    np.savez(tmp_path / "mix.npz", state=state % 3, reaction_coordinate=(state % 3).astype(float))
    assert metrics.load_truth(tmp_path / "mix.npz").kind == "discrete"
    assert metrics.load_truth(tmp_path / "mix.npz", kind="continuous").kind == "continuous"


def per_image_fsc_auc(*args, **kwargs) -> dict:
    return metrics.fsc_summary(metrics.per_image_fsc_aucs(*args, **kwargs)[1])


def test_per_image_fsc_auc(rng):
    """Maps equal to the truth give the full area 0.5; unrelated noise maps about 0."""
    D = 16
    states = rng.normal(size=(4, D, D, D))
    z = np.repeat(np.arange(4), 10)[:, None].astype(float)
    exact = per_image_fsc_auc(z, lambda zb: states[zb[:, 0].astype(int)], lambda i: states[int(z[i, 0])], k=12, batch=5)
    assert exact["fsc_particles"] == 12 and exact["fsc_auc_mean"] == pytest.approx(0.5)
    noise = per_image_fsc_auc(z, lambda zb: rng.normal(size=(len(zb), D, D, D)), lambda i: states[int(z[i, 0])], k=12)
    assert noise["fsc_auc_mean"] < 0.1
    only = per_image_fsc_auc(z, lambda zb: states[zb[:, 0].astype(int)], lambda i: states[int(z[i, 0])], k=50, candidates=[3, 7])
    assert only["fsc_particles"] == 2
    picks, aucs, curves = metrics.per_image_fsc_aucs(z, lambda zb: -states[zb[:, 0].astype(int)], lambda i: states[int(z[i, 0])], k=3)
    assert curves.shape == (3, D // 2 + 1) and np.allclose(curves, -1) and np.allclose(aucs, 0.5)  # |FSC| for the area


def test_drgn_log_and_z_pickle(tmp_path):
    """The cryoDRGN runner's readers: per-epoch times from its log, z_mu from its two-object z pickle."""
    import pickle

    from benchmarks.suite import drgn

    log = "(INFO) # =====> Epoch: 1 Average gen loss = 0.6, KLD = 2.2, total loss = 0.6; Finished in 0:01:34.883893\n" \
          "(INFO) # =====> Epoch: 12 Average gen loss = 0.5, KLD = 3.9, total loss = 0.5; Finished in 1:00:02.5\n"
    assert drgn.epoch_train_seconds(log) == {1: pytest.approx(94.883893), 12: pytest.approx(3602.5)}
    z_mu, z_logvar = np.arange(12, dtype=np.float32).reshape(6, 2), np.zeros((6, 2), np.float32)
    with open(tmp_path / "z.1.pkl", "wb") as f:
        pickle.dump(z_mu, f)
        pickle.dump(z_logvar, f)
    np.testing.assert_array_equal(drgn.read_z(tmp_path / "z.1.pkl"), z_mu)


def test_drgn_rescore_scores_a_trained_run_without_training(tmp_path, rng):
    """``drgn.py --rescore``: the z pickles of a run trained before are scored, no cryoDRGN command
    runs (the command given would fail), and the record carries no wall time."""
    import pickle

    from benchmarks.suite import drgn, sets
    from cryonb.core.io.mrc import write_stack

    n = 60
    data, train = tmp_path / "set", tmp_path / "work" / "train"
    data.mkdir(), train.mkdir(parents=True)
    write_stack(data / "particles.mrcs", rng.normal(size=(n, 8, 8)).astype(np.float32), 2.0)
    sets._write_star(data / "particles.star", "particles.mrcs", np.zeros((n, 3)), np.zeros((n, 2)),
                     np.tile([15000.0, 15000.0, 0.0], (n, 1)), 2.0, 8)
    coordinate = rng.uniform(0, 1, n)
    np.savez(data / "truth.npz", coordinate=coordinate)
    z = np.stack([coordinate, 0.01 * rng.normal(size=n)], 1).astype(np.float32)
    for name in ("z.1.pkl", "z.2.pkl", "z.pkl"):
        with open(train / name, "wb") as f:
            pickle.dump(z, f)
            pickle.dump(np.zeros_like(z), f)
    record = drgn.run(data, workdir=tmp_path / "work", rescore=True, epochs=2, drgn="false", fsc_particles=0)
    assert record["rescored"] and record["complete"] and record["wall_s"] is None
    assert record["params"]["snr"] is None and record["params"]["data_seed"] is None  # a truth.npz without them
    assert [e["epoch"] for e in record["epochs"]] == [1, 2] and record["final"]["spearman_pc1"] > 0.99
    with pytest.raises(ValueError, match="workdir"):
        drgn.run(data, rescore=True)


def test_rare_separability_from_chance_to_perfect(rng):
    labels = np.repeat([0, 1, 2], [300, 300, 60])  # class 2 is rare; class 1 its neighbour
    apart = np.where((labels == 2)[:, None], 5.0, 0.0) + rng.normal(size=(660, 3))
    mixed = rng.normal(size=(660, 3))
    found = metrics.rare_separability(apart, labels, 2, 1)
    chance = metrics.rare_separability(mixed, labels, 2, 1)
    assert found["logistic"] > 0.97 and found["knn"] > 0.97
    assert abs(chance["logistic"] - 0.5) < 0.15 and abs(chance["knn"] - 0.5) < 0.15


def test_latent_noise_along_and_across_a_known_path(rng):
    """A straight path z = (3c, 0) with noise of 0.06 along it and 0.3 across: 0.02 coordinate units
    along, 0.1 of the length across (less the twentieth that the ideal latents' averaging keeps)."""
    from benchmarks.suite.latent_noise import latent_noise, principal_variances, view_r2

    c = np.sort(rng.uniform(0, 1, 6000))
    z = np.stack([3 * c + 0.06 * rng.normal(size=c.size), 0.3 * rng.normal(size=c.size)], 1)
    r = latent_noise(z, c)
    assert r["path_length"] == pytest.approx(3 * np.diff(np.quantile(c, [0.01, 0.99]))[0], rel=0.02)
    assert r["along_rms"] == pytest.approx(0.02 * np.sqrt(19 / 20), rel=0.1)
    assert r["across_rms_fraction"] == pytest.approx(0.3 * np.sqrt(19 / 20) / r["path_length"], rel=0.1)
    assert np.allclose(metrics.ideal_latents(np.stack([c, c], 1), c), np.stack([c, c], 1), atol=0.01)
    junk = np.where(np.arange(c.size) < 10, np.nan, c)  # no coordinate: own z kept, and nobody's neighbour
    ideal = metrics.ideal_latents(z, junk)
    assert np.array_equal(ideal[:10], z[:10]) and np.allclose(ideal[10:], metrics.ideal_latents(z[10:], c[10:]))
    q = rng.normal(size=(3000, 4))
    rotations = np.linalg.qr(rng.normal(size=(3000, 3, 3)))[0]
    assert view_r2(q, rotations) < 0.0 < 0.9 < view_r2(rotations[:, 2, :], rotations)
    assert np.allclose(principal_variances(z), [np.var(z[:, 0]), np.var(z[:, 1])], rtol=0.01)  # the path, then across


def test_smoothed_latents_average_each_point_with_its_own_neighbours():
    """Evenly spaced points on a line: inner points keep their place (symmetric neighbours), the ends
    move inward by the mean of their two nearest, k = 1 changes nothing."""
    z = np.stack([np.arange(10.0), np.zeros(10)], 1)
    assert np.array_equal(metrics.smoothed_latents(z, 1), z)
    smooth = metrics.smoothed_latents(z, 3)
    assert np.allclose(smooth[1:-1], z[1:-1]) and np.allclose(smooth[[0, -1], 0], [1.0, 8.0])


def test_maps_at_ideal_latents_lose_the_per_particle_error(rng):
    """Maps that follow a noisy latent score worse than at the latents averaged over true neighbours;
    junk particles (no coordinate) are neither scored nor averaged."""
    D, n = 8, 400
    base, change = rng.normal(size=(D, D, D)), rng.normal(size=(D, D, D))
    coordinate = rng.uniform(0, 1, n)
    coordinate[:20] = np.nan  # junk
    truth = metrics.Truth(coordinate=coordinate, junk=np.isnan(coordinate))
    z = np.nan_to_num(coordinate, nan=5.0)[:, None] + 0.3 * rng.normal(size=(n, 1))
    maps_at = lambda zb: base + 3 * zb[:, 0, None, None, None] * change  # noqa: E731
    true_map = lambda i: base + 3 * coordinate[i] * change  # noqa: E731
    ideal = metrics.probe_latent_fsc(z, maps_at, true_map, truth, k=30)
    noisy = metrics.fsc_summary(metrics.per_image_fsc_aucs(z, maps_at, true_map, k=30, candidates=truth.keep())[1])
    assert set(ideal) == {"ideal_z_fsc_auc_mean", "ideal_z_fsc_auc_median"}
    both = metrics.probe_latent_fsc(z, maps_at, true_map, truth, smooth_k=5, k=30)
    assert both["ideal_z_fsc_auc_mean"] == ideal["ideal_z_fsc_auc_mean"] and "knn5_z_fsc_auc_mean" in both
    assert set(metrics.probe_latent_fsc(z, maps_at, true_map, truth, ideal=False, smooth_k=5, k=30)) == {
        "knn5_z_fsc_auc_mean", "knn5_z_fsc_auc_median"}
    assert noisy["fsc_auc_mean"] < ideal["ideal_z_fsc_auc_mean"] - 0.02 and ideal["ideal_z_fsc_auc_mean"] > 0.45


def test_rescore_scores_kept_latents_with_todays_metrics(rng, tmp_path):
    from benchmarks.suite import rescore

    labels, good, _ = discrete(rng)
    np.savez(tmp_path / "truth.npz", **{"class": labels}, rare_class=2)
    np.save(tmp_path / "z.npy", good)
    (record,) = rescore.main([str(tmp_path), str(tmp_path / "z.npy"), "--jsonl", str(tmp_path / "out.jsonl")])
    assert record["metrics"]["gmm_ari_seeds"] == pytest.approx(1.0) and record["metrics"]["rare_recall"] == 1.0
    assert (tmp_path / "out.jsonl").read_text().count("\n") == 1
    np.save(tmp_path / "short.npy", good[:10])
    with pytest.raises(SystemExit, match="10 latents, but .* has 600 particles"):
        rescore.main([str(tmp_path), str(tmp_path / "short.npy")])


def test_rescore_scores_clusters_over_several_starts(rng, tmp_path):
    """``--clustering-seeds N``: the mixture's and k-means' mean and least ARI over N starts each."""
    from benchmarks.suite import rescore

    labels, good, bad = discrete(rng)
    np.savez(tmp_path / "truth.npz", **{"class": labels})
    for name, z in {"good": good, "bad": bad}.items():
        np.save(tmp_path / f"{name}.npy", z)
    found, lost = (r["metrics"] for r in rescore.main([str(tmp_path), str(tmp_path / "good.npy"), str(tmp_path / "bad.npy"),
                                                          "--clustering-seeds", "3"]))
    assert {k for k in found if "3" in k} == {"gmm_ari_mean3", "gmm_ari_min3", "kmeans_ari_mean3", "kmeans_ari_min3"}
    assert found["gmm_ari_min3"] == pytest.approx(1.0) and found["kmeans_ari_min3"] == pytest.approx(1.0)
    assert lost["gmm_ari_min3"] <= lost["gmm_ari_mean3"] < 0.1 and lost["kmeans_ari_mean3"] < 0.1


def test_rescore_compares_neighbourhoods_particle_by_particle(rng, tmp_path):
    """``--neighbours`` adds the similarity at other k; ``--against`` an interval of the gap that excludes 0
    only where one run's neighbours are truer than the other's on the particles themselves."""
    from benchmarks.suite import rescore

    c, perfect, random = continuous(rng)
    np.savez(tmp_path / "truth.npz", coordinate=c)
    for name, z in {"perfect": perfect, "random": random, "jittered": perfect + 1e-9 * rng.normal(size=perfect.shape)}.items():
        np.save(tmp_path / f"{name}.npy", z)
    good, bad, same = rescore.main([str(tmp_path)] + [str(tmp_path / f"{n}.npy") for n in ("perfect", "random", "jittered")]
                                   + ["--neighbours", "50", "--against", str(tmp_path / "perfect.npy")])
    assert good["metrics"]["neighbourhood_k50"] > 0.9 > 0.2 > bad["metrics"]["neighbourhood_k50"]
    assert good["metrics"]["neighbourhood_gap_interval"] == [0.0, 0.0]
    lo, hi = bad["metrics"]["neighbourhood_gap_interval"]
    assert lo < hi < -0.5
    lo, hi = same["metrics"]["neighbourhood_gap_interval"]
    assert lo <= 0 <= hi


def test_paired_bootstrap_interval_covers_the_true_gap(rng):
    a = rng.normal(size=5000)
    lo, hi = metrics.paired_bootstrap_interval(a + 0.1, a + rng.normal(0, 0.5, 5000))
    assert lo < 0.1 < hi and hi - lo < 0.06


def test_a_stratified_feature_draw_has_the_gaussians_spread_without_its_gaps():
    import torch
    from scipy.stats import chi

    from benchmarks.suite.feature_draws import drawn, stratified

    B = stratified(192, seed=3)
    radii = np.sort(B.norm(dim=0).numpy())
    assert np.allclose(radii, chi.ppf((np.arange(192) + 0.5) / 192, df=3), atol=1e-5)  # one radius per quantile
    assert abs(B.pow(2).mean().item() - 1) < 0.02  # unit variance per axis, as N(0, I)
    assert abs(B.mean(dim=1)).max() < 0.15  # directions spread over the sphere
    assert not torch.equal(B, stratified(192, seed=4)) and torch.equal(B, stratified(192, seed=3))
    assert torch.equal(drawn("seed1", 192, 3), torch.randn(3, 192, generator=torch.Generator().manual_seed(1)))


def test_second_run_selections_follow_the_first_runs_clusters(rng):
    from benchmarks.suite.rare_probe import NEAREST, RARE
    from benchmarks.suite.sets import assembly_labels
    from benchmarks.suite.subset_probe import choose

    labels = assembly_labels(2000, 0)
    centres = 10 * rng.normal(size=(labels.max() + 1, 8))
    merged = np.where(labels == RARE, NEAREST, labels)  # a first run that missed the rare state
    chosen = choose(labels, centres[merged] + 0.3 * rng.normal(size=(2000, 8)))
    told = np.flatnonzero(np.isin(labels, (RARE, NEAREST)))
    np.testing.assert_array_equal(chosen["told"], told)
    np.testing.assert_array_equal(chosen["clusters"], told)  # the 70S-AB cluster holds the rare particles too
    separated = choose(labels, centres[labels] + 0.3 * rng.normal(size=(2000, 8)))
    np.testing.assert_array_equal(separated["clusters"], np.flatnonzero(labels == NEAREST))
