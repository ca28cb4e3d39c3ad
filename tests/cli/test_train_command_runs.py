"""Issue 13: `cryonb train` is honest about interrupted runs and about options it cannot apply to one."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from cryonb.cli import main as cli
from cryonb.core.simulate import simulate
from cryonb.core.checkpoints import INTERRUPTED, find_checkpoint

SMALL = ["--zdim", "2", "--width", "32", "--depth", "2", "--batch-size", "16", "--lr", "1e-3", "--device", "cpu"]


@pytest.fixture(scope="module")
def star(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sim")
    return simulate("hinge", 96, D=16, apix=8.0, snr=1.0, seed=1, progress=False).save(folder)["star"]


INTERRUPT_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from cryonb.cli import main
    from cryonb.core.training import Trainer
    notify = Trainer._notify
    def interrupting(self, event):
        notify(self, event)
        if event == "step" and self.step_count == 8:  # Ctrl-C in the middle of the second epoch
            os.kill(os.getpid(), signal.SIGINT)
    Trainer._notify = interrupting
    sys.exit(main(sys.argv[1:]))
    """
)


def train(star, outdir, *extra):
    return cli(["train", str(star), "--outdir", str(outdir), "--epochs", "3", *SMALL, *extra])


def test_ctrl_c_exits_130_marks_the_run_and_writes_no_latents(star, tmp_path):
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", INTERRUPT_SCRIPT, "train", str(star), "--outdir", str(run), "--epochs", "3", *SMALL],
                          capture_output=True, text=True)
    assert proc.returncode == 130, proc.stderr
    assert "interrupted at epoch 1 of 3 (step 8)" in proc.stderr and "Continue with:" in proc.stderr
    assert not (run / "z.npy").exists()
    assert "training was interrupted (Ctrl-C) at epoch 1 of 3" in (run / INTERRUPTED).read_text()
    assert find_checkpoint(run)[1]["step"] == 8  # a complete checkpoint at the step where it stopped
    with pytest.warns(UserWarning, match="training was interrupted"):  # opening it says so
        from cryonb.core.run import Run

        Run.open(run)
    # continuing clears the mark and ends exactly as an uninterrupted run
    assert train(star, run) == 0
    assert not (run / INTERRUPTED).exists()
    assert train(star, tmp_path / "straight") == 0
    # equal but for the last bits: on a loaded CI machine the CPU kernels' threads may add in another order
    np.testing.assert_allclose(np.load(run / "z.npy"), np.load(tmp_path / "straight" / "z.npy"), rtol=1e-5, atol=1e-6)


def test_ctrl_c_removes_latents_of_an_earlier_finished_fit(star, tmp_path):
    run = tmp_path / "run"
    assert train(star, run, "--epochs", "1") == 0 and (run / "z.npy").exists()
    proc = subprocess.run([sys.executable, "-c", INTERRUPT_SCRIPT, "train", str(star), "--outdir", str(run), "--epochs", "3", *SMALL],
                          capture_output=True, text=True)
    assert proc.returncode == 130, proc.stderr
    assert "the earlier z.npy was removed" in proc.stderr and not (run / "z.npy").exists()


def test_continuing_a_run_refuses_options_that_would_change_the_model(star, tmp_path, capsys):
    run = tmp_path / "run"
    assert train(star, run, "--epochs", "1") == 0
    capsys.readouterr()
    assert cli(["train", str(star), "--outdir", str(run), "--zdim", "4", "--width", "64", "--plain", "--seed", "0"]) == 2
    err = capsys.readouterr().err
    assert "--zdim 4 (the run has 2)" in err and "--width 64 (the run has 32)" in err
    assert "--plain" not in err and "--seed" not in err  # the run is plain (CPU default) with seed 0 already
    assert "Fix: pass a new --outdir" in err
    assert find_checkpoint(run)[1]["epoch"] == 1  # nothing trained


def test_a_run_saved_before_a_default_continues_with_what_it_trained_with(star, tmp_path, capsys):
    import json

    run = tmp_path / "run"
    assert train(star, run, "--epochs", "1") == 0
    path = run / "config.json"
    meta = json.loads(path.read_text())
    meta["config"]["beta"] = None  # as cryonb wrote it before the KL weight's default depended on the box: 1 / zdim
    path.write_text(json.dumps(meta))
    capsys.readouterr()
    assert cli(["train", str(star), "--outdir", str(run), "--beta", "0"]) == 2
    assert "--beta 0.0 (the run has 0.5)" in capsys.readouterr().err
    assert cli(["train", str(star), "--outdir", str(run), "--beta", "0.5", "--epochs", "2"]) == 0
    assert find_checkpoint(run)[1]["epoch"] == 2


def test_continuing_a_run_applies_epochs_and_learning_rate_and_says_so(star, tmp_path, capsys):
    import json

    run = tmp_path / "run"
    assert train(star, run, "--epochs", "1") == 0
    capsys.readouterr()
    # the same options again: nothing to apply; no --epochs: the run's own (1), not the default 20
    assert cli(["train", str(star), "--outdir", str(run), *SMALL]) == 0
    out = capsys.readouterr().out
    assert "continuing" in out and "applied" not in out and find_checkpoint(run)[1]["epoch"] == 1
    assert cli(["train", str(star), "--outdir", str(run), "--epochs", "2", "--lr", "5e-4"]) == 0
    out = capsys.readouterr().out
    assert "applied to the continued run: epochs 1 -> 2, lr 0.001 -> 0.0005" in out
    path, state = find_checkpoint(run)
    assert state["epoch"] == 2 and state["optimizer"]["param_groups"][0]["lr"] == 5e-4
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["epochs"] == 2 and config["lr"] == 5e-4


def test_decoder_learning_rate_scale_is_a_setting_of_the_run(star, tmp_path, capsys):
    run = tmp_path / "run"
    assert train(star, run, "--epochs", "1", "--decoder-lr-scale", "2") == 0
    groups = find_checkpoint(run)[1]["optimizer"]["param_groups"]
    assert [g["lr"] for g in groups] == pytest.approx([1e-3, 2e-3])  # the encoder's, the decoder's
    capsys.readouterr()
    assert cli(["train", str(star), "--outdir", str(run), "--decoder-lr-scale", "3"]) == 2
    assert "--decoder-lr-scale 3.0 (the run has 2.0)" in capsys.readouterr().err
    assert cli(["train", str(star), "--outdir", str(run), "--epochs", "2", "--lr", "5e-4"]) == 0
    groups = find_checkpoint(run)[1]["optimizer"]["param_groups"]
    assert find_checkpoint(run)[1]["epoch"] == 2 and [g["lr"] for g in groups] == pytest.approx([5e-4, 1e-3])


def test_pixel_fraction_is_a_setting_of_the_run(star, tmp_path, capsys):
    import json

    run = tmp_path / "run"
    assert train(star, run, "--epochs", "1", "--pixel-fraction", "0.5") == 0
    assert json.loads((run / "config.json").read_text())["config"]["pixel_fraction"] == 0.5
    capsys.readouterr()
    assert cli(["train", str(star), "--outdir", str(run), "--pixel-fraction", "0.25"]) == 2
    assert "--pixel-fraction 0.25 (the run has 0.5)" in capsys.readouterr().err
    assert train(star, tmp_path / "other", "--pixel-fraction", "1.5") == 2
    assert "pixel_fraction must be in (0, 1] (got 1.5)" in capsys.readouterr().err
    core = tmp_path / "core"
    assert train(star, core, "--epochs", "1", "--pixel-fraction", "0.5", "--pixel-core", "0.5", "--pixel-until", "0.75") == 0
    recorded = json.loads((core / "config.json").read_text())["config"]
    assert (recorded["pixel_core"], recorded["pixel_until"]) == (0.5, 0.75)
    capsys.readouterr()
    assert cli(["train", str(star), "--outdir", str(core), "--pixel-fraction", "0.5", "--pixel-core", "0.25"]) == 2
    assert "--pixel-core 0.25 (the run has 0.5)" in capsys.readouterr().err


def test_slice_filters_are_a_setting_of_the_run(star, tmp_path, capsys):
    import json

    run = tmp_path / "run"
    assert train(star, run, "--epochs", "1", "--slice-filters", "4") == 0
    assert json.loads((run / "config.json").read_text())["config"]["slice_filters"] == 4
    assert find_checkpoint(run)[1]["model"]["latents.slices.weight"].shape[0] == 8  # real and imaginary parts
    capsys.readouterr()
    assert cli(["train", str(star), "--outdir", str(run), "--slice-filters", "8"]) == 2
    assert "--slice-filters 8 (the run has 4)" in capsys.readouterr().err
    assert cli(["train", str(star), "--outdir", str(run), "--epochs", "2"]) == 0
    assert train(star, tmp_path / "other", "--slice-filters", "-2") == 2
    assert "slice_filters must be 0 (none) or more (got -2)" in capsys.readouterr().err


def test_a_number_given_as_zero_is_taken_or_refused_not_dropped(star, tmp_path, capsys):
    import json

    assert train(star, tmp_path / "run", "--epochs", "1", "--beta", "0") == 0  # no KL term: on a CPU a choice, not the default
    assert json.loads((tmp_path / "run" / "config.json").read_text())["config"]["beta"] == 0
    capsys.readouterr()
    assert train(star, tmp_path / "other", "--decoder-lr-scale", "0") == 2
    assert "decoder_lr_scale must be a positive number (got 0.0)" in capsys.readouterr().err


def test_continuing_on_another_particle_file_says_so(star, tmp_path, capsys):
    other = simulate("hinge", 96, D=16, apix=8.0, snr=1.0, seed=2, progress=False).save(tmp_path / "other")["star"]
    run = tmp_path / "run"
    assert train(star, run, "--epochs", "1") == 0
    capsys.readouterr()
    assert cli(["train", str(other), "--outdir", str(run), "--epochs", "1"]) == 0
    err = capsys.readouterr().err
    assert f"note: the run was started on {star.resolve()}; continuing on {other.resolve()} (96 particles, as before" in err
