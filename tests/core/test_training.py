import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from cryonb.core.errors import CryonbError, InputError
from cryonb.core.simulate import simulate
from cryonb.core.training import Trainer, TrainConfig

TINY = dict(zdim=2, enc_width=32, enc_depth=2, dec_width=32, dec_depth=2, batch_size=16, lr=1e-3)


@pytest.fixture(scope="module")
def particles():
    return simulate("hinge", 96, D=16, apix=8.0, snr=1.0, seed=1, progress=False).particles


def losses(trainer):
    return [round(h["loss"], 12) for h in trainer.history]


def test_bad_configs_fail_before_training(particles):
    with pytest.raises(InputError, match="batch_size must be at least 1.*encoding must be one of"):
        Trainer(particles, TrainConfig(batch_size=0, encoding="fourier"))
    with pytest.raises(InputError, match="box must be an even size"):
        Trainer(particles, box=7)
    with pytest.raises(InputError, match="unknown configuration keys"):
        TrainConfig.from_dict({"zdim": 2, "learning_rate": 1})
    no_poses = particles.subset(slice(None))
    no_poses.rotations = None
    with pytest.raises(InputError, match="no poses"):
        Trainer(no_poses, TrainConfig(**TINY))


def test_fit_continues_where_it_stopped(particles):
    a = Trainer(particles, TrainConfig(**TINY)).fit(2, progress=False)
    b = Trainer(particles, TrainConfig(**TINY))
    b.fit(1, progress=False)
    assert b.epoch == 1 and b.position == 0
    b.fit(1, progress=False)
    assert losses(a) == losses(b)
    assert a.history[1]["loss"] < a.history[0]["loss"]
    assert {"epoch", "loss", "error", "kl", "seconds", "images_per_s"} <= set(a.history[0])


def test_step_by_step_and_outputs(particles):
    t = Trainer(particles, TrainConfig(**TINY))
    for _ in range(t.batches_per_epoch):
        t.step()
    assert t.epoch == 1 and len(t.steps) == t.batches_per_epoch
    z = t.embed()
    assert z.shape == (len(particles), 2) and np.isfinite(z).all()
    vol = t.volume(z[0])
    assert vol.shape == (16, 16, 16) and np.isfinite(vol).all() and vol.std() > 0


def test_the_progress_bar_is_drawn_at_intervals_not_at_every_step(particles, capsys):
    t = Trainer(particles, TrainConfig(**{**TINY, "batch_size": 4})).fit(4, progress=True)
    steps = 4 * t.batches_per_epoch
    drawn = capsys.readouterr().err.split("\r")  # a log file of a long run grew by a line a step
    assert 2 <= len(drawn) < steps / 4, f"{len(drawn)} draws for {steps} steps"
    assert "epoch 4" in drawn[-1] and f"{steps}/{steps}" in drawn[-1] and "loss=" in drawn[-1]


def test_losses_brought_to_the_host_in_bulk_are_the_same(particles):
    every_step = Trainer(particles, TrainConfig(**{**TINY, "batch_size": 20})).fit(2, progress=False)
    bulk = Trainer(particles, TrainConfig(**{**TINY, "batch_size": 20}))
    bulk._sync_every = 3  # as on a GPU: 5 steps per epoch, so one epoch ends with 2 pending steps
    bulk.fit(2, progress=False)
    assert bulk.steps == every_step.steps and len(bulk.steps) == 10
    assert losses(bulk) == losses(every_step)


def test_a_last_batch_too_small_to_share_between_processes_is_skipped(particles):
    from cryonb.core.training import Distributed

    t = Trainer(particles, TrainConfig(**{**TINY, "batch_size": 19}))  # 96 = 5 × 19 + 1
    assert (t.batches_per_epoch, t.particles_per_epoch) == (6, 96)
    t.dist = Distributed(rank=0, world=2)
    assert (t.batches_per_epoch, t.particles_per_epoch) == (5, 95)


def test_homogeneous_model_trains(particles):
    t = Trainer(particles, TrainConfig(**{**TINY, "zdim": 0})).fit(2, progress=False)
    assert t.history[1]["loss"] < t.history[0]["loss"]
    with pytest.raises(CryonbError, match="no latent space"):
        t.embed()


def test_resume_continues_exactly(particles, tmp_path):
    reference = Trainer(particles, TrainConfig(**TINY)).fit(3, progress=False)
    first = Trainer(particles, TrainConfig(**TINY), run_dir=tmp_path / "run").fit(1, progress=False)
    assert (tmp_path / "run" / "checkpoints" / "latest").read_text() == f"step_{first.step_count:08d}.pt"
    resumed = Trainer.from_run(tmp_path / "run", particles)
    assert resumed.epoch == 1
    resumed.fit(2, progress=False)
    assert losses(resumed) == losses(reference)
    np.testing.assert_array_equal(resumed.embed(), reference.embed())


def test_background_fit_pause_resume_stop_and_mid_epoch_resume(particles, tmp_path):
    reference = Trainer(particles, TrainConfig(**TINY)).fit(4, progress=False)
    t = Trainer(particles, TrainConfig(**TINY), run_dir=tmp_path / "run")
    paused_at = []

    def pause_once(event, trainer):
        if event == "step" and trainer.step_count == 3 and not paused_at:
            trainer.pause()
            paused_at.append(trainer.step_count)

    t.listeners.append(pause_once)
    t.fit(4, background=True)
    while not t.paused:
        pass
    with pytest.raises(CryonbError, match="already training"):
        t.fit(1)
    assert t.running and t.step_count == 3
    t.stop()  # stopping a paused trainer ends it cleanly, with a checkpoint mid-epoch
    assert not t.running and t.step_count == 3 and t.position == 3
    resumed = Trainer.from_run(tmp_path / "run", particles)
    assert (resumed.epoch, resumed.position) == (0, 3)
    resumed.fit(4, progress=False)
    assert losses(resumed) == losses(reference)


def test_interrupt_stops_cleanly_at_a_step_boundary(particles):
    reference = Trainer(particles, TrainConfig(**TINY)).fit(2, progress=False)
    t = Trainer(particles, TrainConfig(**TINY))

    def interrupt(event, trainer):
        if event == "step" and trainer.step_count == 4:
            os.kill(os.getpid(), signal.SIGINT)

    t.listeners.append(interrupt)
    t.fit(2, progress=False)  # returns instead of raising KeyboardInterrupt
    assert t.step_count == 4 and t.epoch == 0
    t.listeners.clear()
    t.fit(2 - t.epoch, progress=False)
    assert losses(t) == losses(reference)


KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, torch
    from cryonb.core.simulate import simulate
    from cryonb.core.training import Trainer, TrainConfig
    particles = simulate("hinge", 96, D=16, apix=8.0, snr=1.0, seed=1, progress=False).particles
    real_save = torch.save
    calls = []
    def dying_save(obj, f, *a, **k):
        calls.append(1)
        if len(calls) == 2:  # the second checkpoint: write half of it, then die
            import io
            buf = io.BytesIO(); real_save(obj, buf)
            f.write(buf.getvalue()[: len(buf.getvalue()) // 2]); f.flush(); os.fsync(f.fileno())
            os.kill(os.getpid(), signal.SIGKILL)
        return real_save(obj, f, *a, **k)
    torch.save = dying_save
    Trainer(particles, TrainConfig(**{tiny}), run_dir=sys.argv[1]).fit(3, progress=False)
    """
)


def test_sigkill_while_writing_a_checkpoint_leaves_the_last_good_one(particles, tmp_path):
    run = tmp_path / "run"
    script = KILL_SCRIPT.replace("{tiny}", repr(TINY))
    proc = subprocess.run([sys.executable, "-c", script, str(run)], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    leftovers = [p.name for p in (run / "checkpoints").iterdir()]
    assert (run / "checkpoints" / "latest").read_text() == "step_00000006.pt"
    assert "step_00000012.pt" not in leftovers  # the half-written file never took the real name
    resumed = Trainer.from_run(run, particles)
    assert resumed.epoch == 1
    resumed.fit(2, progress=False)
    reference = Trainer(particles, TrainConfig(**TINY)).fit(3, progress=False)
    assert losses(resumed) == losses(reference)


def test_resume_rejects_incomplete_or_newer_runs(particles, tmp_path):
    with pytest.raises(InputError, match="config.json is missing"):
        Trainer.from_run(tmp_path, particles)
    t = Trainer(particles, TrainConfig(**TINY), run_dir=tmp_path / "run")
    config = (tmp_path / "run" / "config.json")
    config.write_text(config.read_text().replace('"cryonb_checkpoint_version": 1', '"cryonb_checkpoint_version": 99'))
    with pytest.raises(InputError, match="newer cryonb"):
        Trainer.from_run(tmp_path / "run", particles)
    with pytest.raises(InputError, match="trained on 96 particles but 10 were given"):
        config.write_text(config.read_text().replace("99", "1"))
        Trainer.from_run(tmp_path / "run", particles.subset(slice(0, 10)))
    assert t.epoch == 0


def test_checkpoints_load_without_unpickling_objects(particles, tmp_path):
    t = Trainer(particles, TrainConfig(**TINY), run_dir=tmp_path / "run").fit(1, progress=False)
    path = tmp_path / "run" / "checkpoints" / "step_00000006.pt"
    state = torch.load(path, weights_only=True)
    assert state["epoch"] == 1 and "model" in state
    assert t.epoch == 1


def test_gpu_out_of_memory_names_a_batch_size_to_try(particles, monkeypatch):
    t = Trainer(particles, TrainConfig(**TINY))

    def exhausted(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(t, "loss", exhausted)
    with pytest.raises(CryonbError, match="out of memory at batch size 16. Fix: try batch_size=8"):
        t.step()
    assert t.step_count == 0 and t.position == 0  # nothing half-done


def test_learning_rate_can_be_annealed_between_fits(particles):
    t = Trainer(particles, TrainConfig(**TINY)).fit(1, progress=False)
    t.set_learning_rate(1e-5)
    assert t.config.lr == 1e-5 and all(g["lr"] == 1e-5 for g in t.optimizer.param_groups)
    with pytest.raises(InputError, match="positive"):
        t.set_learning_rate(0)
