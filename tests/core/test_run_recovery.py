"""Issue 13, recovery and honesty: corrupt or incomplete checkpoints, config files and latents."""

import json
import warnings

import numpy as np
import pytest
import torch

from cryonb.core.errors import InputError
from cryonb.core.run import Run
from cryonb.core.simulate import simulate
from cryonb.core.training import Trainer, TrainConfig, read_run_config

TINY = dict(zdim=2, enc_width=32, enc_depth=2, dec_width=32, dec_depth=2, batch_size=16, lr=1e-3)


@pytest.fixture(scope="module")
def particles():
    return simulate("hinge", 96, D=16, apix=8.0, snr=1.0, seed=1, progress=False).particles


@pytest.fixture(scope="module")
def reference(particles):
    return [h["loss"] for h in Trainer(particles, TrainConfig(**TINY)).fit(3, progress=False).history]


def trained(particles, run, epochs):
    return Trainer(particles, TrainConfig(**TINY), run_dir=run).fit(epochs, progress=False)


def test_two_checkpoints_are_kept_and_older_ones_pruned(particles, tmp_path):
    trained(particles, tmp_path / "run", 3)
    names = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert names == ["latest", "step_00000012.pt", "step_00000018.pt"]


def test_a_corrupt_latest_checkpoint_falls_back_to_the_previous_one(particles, reference, tmp_path):
    run = tmp_path / "run"
    trained(particles, run, 3)
    newest = run / "checkpoints" / "step_00000018.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # a disk fault, or a copy cut short
    with pytest.warns(UserWarning, match=r"step_00000018\.pt.*not a readable cryonb checkpoint.*previous complete checkpoint .*step_00000012\.pt"):
        resumed = Trainer.from_run(run, particles)
    assert resumed.epoch == 2
    resumed.fit(1, progress=False)
    assert [h["loss"] for h in resumed.history] == reference  # exactly as if nothing had happened
    # the corrupt file was replaced by a good one; the run opens without a warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Run.open(run, particles)


def test_an_incomplete_checkpoint_also_falls_back_and_run_open_does_too(particles, tmp_path):
    run = tmp_path / "run"
    trained(particles, run, 2)
    torch.save({"model": {}, "epoch": 2}, run / "checkpoints" / "step_00000012.pt")
    with pytest.warns(UserWarning, match=r"incomplete cryonb checkpoint \(no optimizer.*step_00000006\.pt"):
        opened = Run.open(run, particles)
    assert opened.z.shape == (96, 2)


def test_no_readable_checkpoint_is_one_clear_error(particles, tmp_path):
    run = tmp_path / "run"
    trained(particles, run, 1)
    (run / "checkpoints" / "step_00000006.pt").write_bytes(b"\x00" * 100)
    with pytest.raises(InputError, match=r"step_00000006\.pt: not a readable cryonb checkpoint.*Fix: "):
        Trainer.from_run(run, particles)
    torch.save([1, 2, 3], run / "checkpoints" / "step_00000006.pt")
    with pytest.raises(InputError, match=r"step_00000006\.pt: not a cryonb checkpoint \(holds a list"):
        Trainer.from_run(run, particles)


def test_a_missing_latest_pointer_still_finds_the_checkpoints(particles, tmp_path):
    run = tmp_path / "run"
    trained(particles, run, 2)
    (run / "checkpoints" / "latest").unlink()
    with pytest.warns(UserWarning, match=r"latest: skipped .*is missing.*step_00000012\.pt"):
        assert Trainer.from_run(run, particles).epoch == 2


def test_files_half_written_by_a_killed_process_are_removed_at_the_next_start(particles, tmp_path):
    run = tmp_path / "run"
    trained(particles, run, 1)
    orphans = [run / "checkpoints" / ".step_00000012.pt.k3j_9x2a.tmp", run / ".z.npy.ab12cd34.tmp"]
    for orphan in orphans:
        orphan.write_bytes(b"half")
    (run / "notes.tmp").write_text("mine")  # not ours: kept
    with pytest.warns(UserWarning, match=r"removed 2 partly written file"):
        Trainer.from_run(run, particles)
    assert not any(p.exists() for p in orphans) and (run / "notes.tmp").exists()


def test_a_checkpoint_that_does_not_fit_the_config_is_a_clear_error(particles, tmp_path):
    run = tmp_path / "run"
    trained(particles, run, 1)
    config = run / "config.json"
    meta = json.loads(config.read_text())
    meta["config"]["dec_width"] = 48
    config.write_text(json.dumps(meta))
    with pytest.raises(InputError, match=r"step_00000006\.pt: checkpoint does not fit the run's config.json \(RuntimeError"):
        Trainer.from_run(run, particles)
    with pytest.raises(InputError, match=r"step_00000006\.pt: checkpoint does not fit"):
        Run.open(run, particles)


@pytest.mark.parametrize("edit, message", [
    (lambda m: [m], "holds a JSON list"),
    (lambda m: {k: v for k, v in m.items() if k != "n_particles"}, r"incomplete \(no n_particles\)"),
    (lambda m: {**m, "box": "16"}, "box = '16', not a positive number"),
    (lambda m: {**m, "config": {**m["config"], "zdim": "8"}}, "zdim = '8', expected int"),
    (lambda m: {**m, "config": {**m["config"], "lr": None, "enc_depth": 0}}, "enc_depth must be at least 1"),
    (lambda m: {k: v for k, v in m.items() if k != "cryonb_checkpoint_version"}, "no cryonb_checkpoint_version"),
])
def test_damaged_config_files_are_input_errors_naming_the_file(particles, tmp_path, edit, message):
    run = tmp_path / "run"
    Trainer(particles, TrainConfig(**TINY), run_dir=run)
    config = run / "config.json"
    config.write_text(json.dumps(edit(json.loads(config.read_text()))))
    with pytest.raises(InputError, match=rf"config\.json: .*{message}.*Fix: "):
        read_run_config(run)
    with pytest.raises(InputError, match=message):
        Trainer.from_run(run, particles)


@pytest.mark.parametrize("latents, message", [
    (np.array([{"a": 1}] * 96, dtype=object), "holds Python objects"),
    (np.array(["x"] * 96), "holds <U1 values, not real numbers"),
    (np.full((96, 2), np.nan, dtype=np.float32), "latents contain NaN or infinite"),
])
def test_damaged_latents_are_input_errors_naming_the_file(particles, tmp_path, latents, message):
    run = tmp_path / "run"
    trained(particles, run, 1)
    np.save(run / "z.npy", latents, allow_pickle=True)
    with pytest.raises(InputError, match=rf"z\.npy: {message}.*Fix: delete z\.npy"):
        Run.open(run, particles)
    (run / "z.npy").write_bytes(b"junk")
    with pytest.raises(InputError, match=r"z\.npy: is not a readable \.npy array"):
        Run.open(run, particles)


@pytest.mark.parametrize("change, message", [
    (lambda s: {**s, "scale": float("nan")}, r"image scale is nan"),
    (lambda s: {**s, "epoch": -1}, r"epoch is -1, not a count"),
    (lambda s: {**s, "model": {k: v * float("nan") for k, v in s["model"].items()}}, r"weights hold NaN or infinite values"),
])
def test_checkpoints_with_impossible_values_are_refused_and_skipped(particles, tmp_path, change, message):
    run = tmp_path / "run"
    trained(particles, run, 2)
    path = run / "checkpoints" / "step_00000012.pt"
    torch.save(change(torch.load(path, weights_only=True)), path)
    with pytest.warns(UserWarning, match=rf"step_00000012\.pt.*{message}.*step_00000006\.pt"):
        assert Trainer.from_run(run, particles).epoch == 1


def test_a_config_asking_for_an_absurd_model_is_refused_before_building_it(particles, tmp_path):
    run = tmp_path / "run"
    Trainer(particles, TrainConfig(**TINY), run_dir=run)
    config = run / "config.json"
    meta = json.loads(config.read_text())
    meta["config"]["dec_width"] = 10**9
    config.write_text(json.dumps(meta))
    with pytest.raises(InputError, match=r"config\.json: config\.json has dec_width = 1000000000, more than any run uses"):
        Trainer.from_run(run, particles)
