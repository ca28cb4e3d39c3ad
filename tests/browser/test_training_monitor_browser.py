"""The training monitor in JupyterLab: it updates live from the training thread and its buttons work."""

import re
import time

import pytest
from harness import element_pixels

pytestmark = pytest.mark.slow

NOTEBOOK = [
    # A tiny run (256 noise images of 16² pixels, 8 batches per epoch) on one thread, leaving a
    # core for the browser.
    """\
import numpy as np, torch
import cryonb.widgets  # displays a Trainer as its monitor
from cryonb.core.particles import ParticleSet
from cryonb.core.rotations import random_rotations
from cryonb.core.training import TrainConfig, Trainer

torch.set_num_threads(1)
n, box = 256, 16
rng = np.random.default_rng(0)
particles = ParticleSet(
    images=rng.standard_normal((n, box, box), dtype=np.float32),
    rotations=random_rotations(n, torch.Generator().manual_seed(0)).numpy(),
    ctf=np.tile(np.array([15000, 15000, 0, 300, 2.7, 0.1, 0, 0], np.float32), (n, 1)),
    apix=4.0,
)
trainer = Trainer(particles, TrainConfig(zdim=2, enc_width=32, dec_width=32, batch_size=32, device="cpu"))""",
    "trainer",
    "trainer.fit(200, background=True)\nprint('TRAINING STARTED')",
]


def state(lab_page) -> tuple[bool, bool, int]:
    """(running, paused, step_count) as the kernel sees them."""
    running, paused, steps = lab_page.execute("print(trainer.running, trainer.paused, trainer.step_count)").split()
    return running == "True", paused == "True", int(steps)


def test_monitor_follows_and_controls_background_training(lab, lab_page):
    lab_page.run_notebook("monitor.ipynb", *NOTEBOOK, until="TRAINING STARTED")

    # The rendered bar grows, and the epoch counter counts up to the 200 epochs asked for.
    progress = ".cryonb-monitor-progress"
    lab_page.wait_until(lambda: lab_page.progress(progress) > 0, message="progress bar moving")
    first = lab_page.progress(progress)
    lab_page.wait_until(lambda: lab_page.progress(progress) > first, message="progress bar growing")
    lab_page.wait_until(lambda: re.fullmatch(r"epoch [1-9]\d*/200", lab_page.text(".cryonb-monitor-epoch")),
                        message="a finished epoch on the counter")
    assert lab_page.text(".cryonb-monitor-state") == "training"
    assert "ETA" in lab_page.text(".cryonb-monitor-speed")
    assert lab_page.button("Resume").is_disabled() and lab_page.button("Pause").is_enabled()
    assert element_pixels(lab_page.widget(".cryonb-monitor-curves")) > 2000  # axes, ticks and curves drawn

    lab_page.click_button("Pause")
    lab_page.wait_until(lambda: lab_page.text(".cryonb-monitor-state") == "paused", message="paused label")
    assert lab_page.button("Pause").is_disabled() and lab_page.button("Resume").is_enabled()
    running, paused, _ = state(lab_page)
    assert running and paused
    time.sleep(0.5)  # the step in flight, if any, finishes
    _, _, paused_at = state(lab_page)
    bar_at = lab_page.progress(progress)
    time.sleep(1.0)
    assert state(lab_page) == (True, True, paused_at)
    assert lab_page.progress(progress) == bar_at

    lab_page.click_button("Resume")
    lab_page.wait_until(lambda: lab_page.text(".cryonb-monitor-state") == "training", message="training label")
    lab_page.wait_until(lambda: state(lab_page)[2] > paused_at, message="steps after resuming")
    lab_page.wait_until(lambda: lab_page.progress(progress) > bar_at, message="bar growing after resuming")

    lab_page.click_button("Stop")
    lab_page.wait_until(lambda: lab_page.text(".cryonb-monitor-state") == "idle", message="idle label")
    lab_page.wait_until(lambda: not state(lab_page)[0], message="training thread ended")
    _, paused, stopped_at = state(lab_page)
    assert not paused
    assert all(lab_page.button(name).is_disabled() for name in ("Pause", "Resume", "Stop"))
    assert 0 < stopped_at < 200 * 8
