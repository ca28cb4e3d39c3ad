"""cryonb finds the heterogeneity in small CPU versions of the benchmark suite's sets (seeded).

The full sets (10,000 images at D = 64, SNR 0.1, on a GPU, against cryoDRGN 4.3.1) are in
docs/benchmarks.md; these are 1,000 images at D = 24, SNR 1, with the CPU-sized model of the other
accuracy tests. Thresholds sit below the measured values (in each assertion's comment) and far
above chance (|Spearman| ≈ 0.05, ARI ≈ 0, same-class neighbours ≈ 0.3).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.suite import atoms, metrics, sets  # noqa: E402
from cryonb import TrainConfig, Trainer, load_particles  # noqa: E402

SMALL = dict(zdim=4, enc_width=128, dec_width=128, batch_size=32, lr=1e-3, seed=0, device="cpu")


def latent_scores(tmp_path, name: str, epochs: int, **options) -> dict:
    sets.SETS[name](tmp_path, n=1000, box=24, snr=1.0, seed=0, **options)
    trainer = Trainer(load_particles(tmp_path / "particles.star"), TrainConfig(**SMALL)).fit(epochs, progress=False)
    return metrics.latent_metrics(trainer.embed(), metrics.load_truth(tmp_path / "truth.npz"))


@pytest.mark.skipif(atoms.mdanalysistests_file("adk_dims.dcd") is None, reason="mdanalysistests is not installed")
def test_adk_latent_follows_the_opening(tmp_path):
    scores = latent_scores(tmp_path, "adk", 15)
    assert scores["spearman_pc1"] >= 0.85, scores  # measured 0.927


def test_ribosome_latent_follows_the_subtle_motion(tmp_path, real_data):
    scores = latent_scores(tmp_path, "ribosome_motion", 20, data_dir=real_data)
    assert scores["spearman_pc1"] >= 0.5, scores  # measured 0.663: an 8° turn of a quarter of the mass at 8 Å/px


@pytest.mark.slow
def test_assembly_latents_separate_the_states(tmp_path, real_data):
    scores = latent_scores(tmp_path, "assembly", 30, data_dir=real_data)
    # Measured over training seeds 0-2 and one or two CPU threads (summation orders): GMM ARI 0.82-0.87,
    # neighbourhood 0.896-0.913. k-means with the true k lands either near 0.9 (0.900-0.907) or at 0.608
    # (seed 0, two threads): rounding-level differences decide where it cuts these elongated clusters.
    assert scores["gmm_ari"] >= 0.7, scores
    assert scores["neighbourhood"] >= 0.85, scores
    assert scores["kmeans_ari"] >= 0.5, scores


def test_suite_run_keeps_latents_and_per_image_fsc(tmp_path, real_data):
    import json

    import numpy as np

    from benchmarks.suite import train

    data = tmp_path / "set"
    sets.SETS["assembly"](data, n=200, box=16, snr=1.0, seed=0, data_dir=real_data)
    record = train.run(data, jsonl=tmp_path / "suite.jsonl", zdim=2, epochs=2, score_every=1, fsc_particles=6,
                       device="cpu", overrides={k: v for k, v in SMALL.items() if k not in ("zdim", "device", "seed")},
                       results=tmp_path / "out")
    z = np.load(tmp_path / "out" / "z.npy")
    fsc = np.load(tmp_path / "out" / "fsc_auc.npz")
    truth = metrics.load_truth(data / "truth.npz")
    assert z.shape == (200, 2) and len(record["epochs"]) == 2
    assert len(fsc["auc"]) == 6 and truth.keep()[fsc["particles"]].all()  # junk is never scored
    assert record["final"]["fsc_auc_mean"] == pytest.approx(fsc["auc"].mean(), abs=1e-4)
    assert 0 < fsc["auc"].min() and fsc["auc"].max() <= 0.5
    assert fsc["fsc"].shape == (6, 16 // 2 + 1) and np.allclose(abs(fsc["fsc"][:, 0]), 1)  # DC (one voxel) to Nyquist
    assert json.loads((tmp_path / "suite.jsonl").read_text())["final"] == record["final"]


def test_suite_run_trains_the_schedule_it_is_given(tmp_path, real_data):
    from benchmarks.suite import train

    data = tmp_path / "set"
    sets.SETS["assembly"](data, n=100, box=16, snr=1.0, seed=0, data_dir=real_data)
    small = {k: v for k, v in SMALL.items() if k not in ("zdim", "device", "seed")}
    record = train.run(data, zdim=2, score_every=2, fsc_particles=0, device="cpu", overrides={**small, "epochs": 3})
    assert [e["epoch"] for e in record["epochs"]] == [2, 3] and record["params"]["epochs"] == 3  # no --epochs: the schedule's 3
    assert record["params"]["beta"] == 0.5  # the KL weight the run resolved: 1 / zdim on a CPU
    assert (record["params"]["snr"], record["params"]["data_seed"]) == (1.0, 0)  # which set, without the file's name
    record = train.run(data, zdim=2, epochs=1, score_every=2, fsc_particles=0, device="cpu", overrides=small)
    assert [e["epoch"] for e in record["epochs"]] == [1]


def test_suite_run_of_the_gaussian_mixture_decoder_backprojects_its_consensus(tmp_path, real_data, monkeypatch):
    import mrcfile
    import numpy as np

    from benchmarks.suite import train

    monkeypatch.setenv("CRYONB_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "set"
    sets.SETS["assembly"](data, n=100, box=16, snr=1.0, seed=0, data_dir=real_data)
    gmm = {"decoder": "gmm", "gmm_max_gaussians": 32, "batch_size": 32}
    record = train.run(data, zdim=2, epochs=1, score_every=1, fsc_particles=0, device="cpu", overrides=gmm, consensus=True,
                       results=tmp_path / "out")
    with mrcfile.open(record["params"]["overrides"]["neutral_map"]) as m:
        consensus = m.data
    assert consensus.shape == (16, 16, 16) and np.isfinite(consensus).all() and consensus.std() > 0
    assert np.isfinite(np.load(tmp_path / "out" / "z.npy")).all() and "gmm_ari" in record["final"]


def test_a_decoder_pass_and_the_fsc_figure(tmp_path, real_data):
    """polish_probe's pass trains the decoder alone (the latents stay as trained, the encoder trainable
    again after); fsc_figure reads curves from fsc_auc.npz and from a probe's JSON line."""
    import json

    import numpy as np
    import torch

    from benchmarks.suite import fsc_figure
    from benchmarks.suite.polish_probe import decoder_pass

    sets.SETS["assembly"](tmp_path / "set", n=200, box=16, snr=1.0, seed=0, data_dir=real_data)
    trainer = Trainer(load_particles(tmp_path / "set" / "particles.star"), TrainConfig(**SMALL)).fit(1, progress=False)
    z = trainer.embed()
    before = [p.detach().clone() for p in trainer.model.decoder.parameters()]
    assert decoder_pass(trainer, 1, 1e-3, noise=True) > 0
    assert np.array_equal(trainer.embed(), z)
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.decoder.parameters()))
    assert all(p.requires_grad for p in trainer.model.parameters())

    curves = np.stack([np.linspace(1, 0, 9), -np.linspace(1, 0, 9)])
    np.savez(tmp_path / "fsc_auc.npz", particles=[0, 1], auc=[0.25, 0.25], fsc=curves)
    (tmp_path / "probe.jsonl").write_text(json.dumps({"variant": "ideal z", "fsc_curve": [1.0] * 9}) + "\n")
    assert np.allclose(fsc_figure.read_curve(str(tmp_path / "fsc_auc.npz")), np.linspace(1, 0, 9))  # |FSC|, averaged
    assert fsc_figure.read_curve(f"{tmp_path / 'probe.jsonl'}#ideal z").tolist() == [1.0] * 9
    fsc_figure.main([str(tmp_path / "fsc.png"), f"a={tmp_path / 'fsc_auc.npz'}", f"b={tmp_path / 'probe.jsonl'}#ideal z"])
    assert (tmp_path / "fsc.png").stat().st_size > 10_000

    np.savez(tmp_path / "by_class.npz", particles=[0, 1, 2, 3], auc=[0.1, 0.3, 0.2, 0.5], fsc=np.ones((4, 9)))
    labels, names = np.array([2, 0, 2, 0, 1]), np.array(["a", "b", "c"])
    assert fsc_figure.aucs_by_class(tmp_path / "by_class.npz", labels, names) == {"a": 0.4, "c": 0.15}  # b: none scored


def test_suite_run_scores_averaged_weights_beside_the_trained_ones(tmp_path, real_data):
    import json

    import numpy as np

    from benchmarks.suite import train

    data = tmp_path / "set"
    sets.SETS["assembly"](data, n=100, box=16, snr=1.0, seed=0, data_dir=real_data)
    small = {k: v for k, v in SMALL.items() if k not in ("zdim", "device", "seed")}
    train.run(data, jsonl=tmp_path / "runs.jsonl", zdim=2, epochs=2, score_every=2, fsc_particles=4, device="cpu",
              overrides=small, averages=("0.5", "0.5:latents"), results=tmp_path / "out")
    records = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert [r["system"] for r in records] == ["cryonb", "cryonb [average=0.5]", "cryonb [average=0.5:latents]"]
    assert len({r["wall_s"] for r in records}) == 1 and records[1]["params"]["average"] == "0.5"  # one training
    z = {name: np.load(tmp_path / "out" / name / "z.npy") for name in (".", "average-0.5", "average-0.5-latents")}
    np.testing.assert_array_equal(z["average-0.5"], z["average-0.5-latents"])  # latents come from the encoder alone
    assert np.abs(z["."] - z["average-0.5"]).max() > 1e-4
    maps = [r["final"]["fsc_auc_mean"] for r in records]
    assert maps[1] != maps[2]  # the decoder averaged too, or as trained


def test_suite_run_scores_the_encoder_as_trained_beside_its_average(tmp_path, real_data):
    import json

    import numpy as np

    from benchmarks.suite import train

    data = tmp_path / "set"
    sets.SETS["assembly"](data, n=100, box=16, snr=1.0, seed=0, data_dir=real_data)
    small = {k: v for k, v in SMALL.items() if k not in ("zdim", "device", "seed")}
    for share in (0.5, 0.0):
        train.run(data, jsonl=tmp_path / f"runs{share}.jsonl", zdim=2, epochs=2, score_every=2, fsc_particles=4,
                  device="cpu", overrides={**small, "encoder_average": share}, as_trained=True, results=tmp_path / f"out{share}")
    records = [json.loads(line) for line in (tmp_path / "runs0.5.jsonl").read_text().splitlines()]
    assert [r["system"] for r in records] == ["cryonb", "cryonb [average=none]"]
    assert len((tmp_path / "runs0.0.jsonl").read_text().splitlines()) == 1  # nothing averaged: nothing more to score
    averaged, trained = (np.load(tmp_path / "out0.5" / name / "z.npy") for name in (".", "average-none"))
    np.testing.assert_array_equal(trained, np.load(tmp_path / "out0.0" / "z.npy"))  # the same training, read as trained
    assert np.abs(averaged - trained).max() > 1e-4


def test_a_change_is_trained_beside_the_defaults_seed_by_seed(tmp_path, real_data):
    import json

    from benchmarks.suite import paired

    data = tmp_path / "set"
    sets.SETS["assembly"](data, n=100, box=16, snr=1.0, seed=0, data_dir=real_data)
    small = {k: v for k, v in SMALL.items() if k not in ("zdim", "device", "seed")}
    pairs = paired.paired(data, {"beta": 0.0}, [0, 1], base=small, zdim=2, epochs=1, score_every=1, fsc_particles=0,
                          device="cpu", jsonl=tmp_path / "ab.jsonl")
    runs = [json.loads(line) for line in (tmp_path / "ab.jsonl").read_text().splitlines()]
    # the change first on even seeds, last on odd ones; the base overrides on both sides
    assert [(r["system"], r["params"]["seed"]) for r in runs] == [
        ("cryonb [beta=0.0]", 0), ("cryonb", 0), ("cryonb", 1), ("cryonb [beta=0.0]", 1)]
    assert [(a["params"]["beta"], b["params"]["beta"]) for a, b in pairs] == [(0.5, 0.0), (0.5, 0.0)]
    assert all(r["params"]["batch_size"] == SMALL["batch_size"] for r in runs)
    table = paired.summary(pairs)
    row = next(line for line in table.splitlines() if line.startswith("| kmeans_ari |"))
    a, b = ([r["final"]["kmeans_ari"] for r in side] for side in zip(*pairs))
    assert f"{(sum(b) - sum(a)) / 2:+.4g}" in row and f"{sum(x > y for x, y in zip(b, a))} of 2" in row
    assert "| wall_s |" in table
