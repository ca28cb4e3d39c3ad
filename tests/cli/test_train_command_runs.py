"""Issue 13: `cryonb train` is honest about interrupted runs and about options it cannot apply to one."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from cryonb.cli import main as cli
from cryonb.core.simulate import simulate
from cryonb.core.training import INTERRUPTED, find_checkpoint

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
    np.testing.assert_array_equal(np.load(run / "z.npy"), np.load(tmp_path / "straight" / "z.npy"))


def test_ctrl_c_removes_latents_of_an_earlier_finished_fit(star, tmp_path):
    run = tmp_path / "run"
    assert train(star, run, "--epochs", "1") == 0 and (run / "z.npy").exists()
    proc = subprocess.run([sys.executable, "-c", INTERRUPT_SCRIPT, "train", str(star), "--outdir", str(run), "--epochs", "3", *SMALL],
                          capture_output=True, text=True)
    assert proc.returncode == 130, proc.stderr
    assert "the earlier z.npy was removed" in proc.stderr and not (run / "z.npy").exists()
