"""The focused split of latent clusters (benchmarks.suite.focused_split) on a small assembly set."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.suite import focused_split, sets  # noqa: E402


def test_each_cluster_is_divided_or_kept_and_the_groups_cover_every_particle(tmp_path, real_data):
    sets.assembly(tmp_path / "set", n=600, box=32, snr=0.1, seed=0, data_dir=real_data, progress=False)
    labels = np.load(tmp_path / "set" / "truth.npz")["class"]
    merged = np.where(labels == sets.ASSEMBLY_CLASSES.index("70S-ABC"), sets.ASSEMBLY_CLASSES.index("70S-AB"), labels)
    z = np.eye(len(sets.ASSEMBLY_CLASSES))[merged] + 0.05 * np.random.default_rng(0).normal(size=(len(labels), 6))  # the rare state hidden in its neighbour's cluster
    np.save(tmp_path / "z.npy", z)
    record = focused_split.main([str(tmp_path / "set"), "--z", str(tmp_path / "z.npy"), "--depth", "1", "--min-particles", "50",
                                 "--jsonl", str(tmp_path / "split.jsonl")])
    written = json.loads((tmp_path / "split.jsonl").read_text().splitlines()[-1])
    assert written["groups"] == record["groups"] and record["clusters_rare_recall"] == 0.0  # no cluster is mostly rare
    big = [d for d in record["divisions"] if d["n"] >= 50]
    assert big and all(0 <= d["smaller_share"] <= 0.5 and -1 <= d["agreement"] <= 1 for d in big)
    assert record["groups"] == 5 + sum(d["divided"] for d in record["divisions"])  # one cluster per class but junk
    assert sum(sum(sides) for d in record["divisions"] for sides in d["classes"].values()) == sum(d["n"] for d in record["divisions"])
    assert 0.0 <= record["rare_recall"] <= 1.0 and -1 <= record["ari"] <= 1
