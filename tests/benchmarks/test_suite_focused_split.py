"""The focused split of latent clusters (benchmarks.suite.focused_split) on a small assembly set.

Each division iterates one random start beside the regions (``starts=1``) instead of the default's
three: the script's record is tested here, the choice among starts in tests/core/test_variability.py."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.suite import focused_split, sets  # noqa: E402
from cryonb.core.analysis.clustering import kmeans  # noqa: E402


@pytest.fixture(autouse=True)
def one_start(monkeypatch):
    monkeypatch.setattr(focused_split, "divide_clusters", functools.partial(focused_split.divide_clusters, starts=1))


@pytest.fixture(scope="module")
def hidden_rare_state(tmp_path_factory, real_data):
    """A small assembly set and latents that put its rare state in its neighbour's cluster: (folder, labels)."""
    folder = tmp_path_factory.mktemp("focused")
    sets.assembly(folder / "set", n=600, box=32, snr=0.1, seed=0, data_dir=real_data, progress=False)
    labels = np.load(folder / "set" / "truth.npz")["class"]
    merged = np.where(labels == sets.ASSEMBLY_CLASSES.index("70S-ABC"), sets.ASSEMBLY_CLASSES.index("70S-AB"), labels)
    z = np.eye(len(sets.ASSEMBLY_CLASSES))[merged] + 0.05 * np.random.default_rng(0).normal(size=(len(labels), 6))
    np.save(folder / "z.npy", z)
    return folder, labels


@pytest.mark.slow
def test_each_cluster_is_divided_or_kept_and_the_groups_cover_every_particle(hidden_rare_state, tmp_path):
    folder, _ = hidden_rare_state
    record = focused_split.main([str(folder / "set"), "--z", str(folder / "z.npy"), "--depth", "1", "--min-particles", "50",
                                 "--jsonl", str(tmp_path / "split.jsonl")])
    written = json.loads((tmp_path / "split.jsonl").read_text().splitlines()[-1])
    assert written["groups"] == record["groups"] and record["clusters_rare_recall"] == 0.0  # no cluster is mostly rare
    big = [d for d in record["divisions"] if d["n"] >= 50]
    assert big and all(0 <= d["smaller_share"] <= 0.5 and (-1 <= d["agreement"] <= 1 if d["significance"] is None else d["agreement"] is None and d["significance"] >= 5) and (d["bimodality"] > 0) >= d["divided"] for d in big)
    assert record["groups"] == 5 + sum(d["divided"] for d in record["divisions"])  # one cluster per class but junk
    assert sum(sum(sides) for d in record["divisions"] for sides in d["classes"].values()) == sum(d["n"] for d in record["divisions"])
    assert 0.0 <= record["rare_recall"] <= 1.0 and -1 <= record["ari"] <= 1
    assert record["resolution"] == 30.0  # the variability's default limit, recorded beside the figures


def test_kmeans_clusters_as_analyze_makes_them_junk_kept_and_only_the_rare_ones_asked(hidden_rare_state):
    folder, labels = hidden_rare_state
    record = focused_split.main([str(folder / "set"), "--z", str(folder / "z.npy"), "--kmeans", "6", "--rare-clusters", "5",
                                 "--depth", "1", "--min-particles", "50"])
    assert record["clusters"] == "kmeans6" and record["rare_clusters"] == 5
    asked = [d for d in record["divisions"]]
    assert asked and all(sum(d["classes"].get("70S-ABC", [0])) >= 5 for d in asked)  # every cluster asked holds rare particles
    assert sum(d["n"] for d in asked) < len(labels)  # and not every cluster does
    clusters = kmeans(np.load(folder / "z.npy"), 6, seed=0).labels  # cryonb analyze's k-means, on every particle (junk too)
    assert (labels == sets.ASSEMBLY_CLASSES.index("junk")).any()
    assert record["clusters_ari"] == pytest.approx(adjusted_rand_score(labels, clusters), abs=1e-3)
