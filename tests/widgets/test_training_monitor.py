"""TrainingMonitor without a browser: it mirrors the trainer, drives it, and lets go of it on close."""

import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("ipywidgets")

from IPython.core.formatters import DisplayFormatter  # noqa: E402

import cryonb.widgets  # noqa: E402
from cryonb.widgets import training_monitor  # noqa: E402
from cryonb.widgets.training_monitor import TrainingMonitor, format_duration, monitor, thin  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def wait_until(condition, timeout=30.0):
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(0.01)


def test_monitor_mirrors_a_finished_fit(tiny_trainer):
    view = TrainingMonitor(tiny_trainer)
    assert view.epoch_label.value == "epoch 0/0" and view.progress.value == 0
    tiny_trainer.fit(2, progress=False)
    bpe = tiny_trainer.batches_per_epoch
    assert bpe == 8
    assert view.epoch_label.value == "epoch 2/2"
    assert (view.progress.value, view.progress.max) == (2 * bpe, 2 * bpe)
    assert view.state_label.value == "idle"
    assert view.speed_label.value.endswith("images/s")  # no ETA once finished
    assert all(b.disabled for b in (view.pause_button, view.resume_button, view.stop_button))
    assert bytes(view.curves.value).startswith(PNG_MAGIC)


def test_monitor_shows_a_stopped_run_mid_epoch(tiny_trainer):
    tiny_trainer.fit(3, background=True, progress=False)
    wait_until(lambda: tiny_trainer.step_count >= 3)
    tiny_trainer.stop()
    view = TrainingMonitor(tiny_trainer)
    t = tiny_trainer
    assert view.progress.value == t.epoch * 8 + t.position == t.step_count
    assert view.progress.max == 3 * 8
    assert view.epoch_label.value == f"epoch {t.epoch}/3"


def test_buttons_pause_resume_and_stop_the_trainer(tiny_trainer):
    view = TrainingMonitor(tiny_trainer)
    tiny_trainer.fit(1000, background=True, progress=False)
    wait_until(lambda: "ETA" in view.speed_label.value)  # images/s measured over two steps or more
    assert view.state_label.value == "training"
    assert not view.pause_button.disabled and view.resume_button.disabled and not view.stop_button.disabled

    view.pause_button.click()
    assert tiny_trainer.paused and tiny_trainer.running
    assert view.state_label.value == "paused"
    assert view.pause_button.disabled and not view.resume_button.disabled
    time.sleep(0.3)  # let the step in flight finish
    paused_at = tiny_trainer.step_count
    time.sleep(0.3)
    assert tiny_trainer.step_count == paused_at

    view.resume_button.click()
    assert not tiny_trainer.paused
    wait_until(lambda: tiny_trainer.step_count > paused_at)

    view.stop_button.click()
    tiny_trainer.wait()
    assert not tiny_trainer.running and tiny_trainer.epoch < 1000
    assert view.state_label.value == "idle"
    assert view.progress.value == tiny_trainer.step_count
    assert all(b.disabled for b in (view.pause_button, view.resume_button, view.stop_button))


def test_a_failing_update_does_not_end_training(tiny_trainer, monkeypatch, caplog):
    view = TrainingMonitor(tiny_trainer)

    def broken(*args):
        raise RuntimeError("no display")

    monkeypatch.setattr(training_monitor, "render_curves", broken)
    tiny_trainer.fit(1, progress=False)
    assert tiny_trainer.epoch == 1
    assert "the training monitor could not update" in caplog.text
    view.close()


def test_close_detaches_the_listener(tiny_trainer):
    view = TrainingMonitor(tiny_trainer)
    assert len(tiny_trainer.listeners) == 1
    view.close()
    assert tiny_trainer.listeners == [] and view.closed
    tiny_trainer.fit(1, progress=False)
    assert view.progress.value == 0 and view.epoch_label.value == "epoch 0/0"


def test_curves_redraw_at_most_twice_a_second(tiny_trainer, monkeypatch):
    clock = iter(np.arange(0, 100, 0.05))  # a fake clock: every reading is 50 ms later

    class FakeTime:
        @staticmethod
        def monotonic():
            return next(clock)

    monkeypatch.setattr(training_monitor, "time", FakeTime)
    renders = []
    real_render = training_monitor.render_curves
    monkeypatch.setattr(training_monitor, "render_curves", lambda *a: renders.append(1) or real_render(*a))
    view = TrainingMonitor(tiny_trainer)
    start = FakeTime.monotonic()
    for _ in range(40):
        view._on_event("step", tiny_trainer)
    elapsed = FakeTime.monotonic() - start
    assert 1 < len(renders) <= 1 + 2 * elapsed


def test_displaying_a_trainer_shows_its_shared_monitor(tiny_trainer):
    class Shell:
        display_formatter = DisplayFormatter()

    assert cryonb.widgets.register_display(Shell)
    data, _ = Shell.display_formatter.format(tiny_trainer)
    again, _ = Shell.display_formatter.format(tiny_trainer)
    view = monitor(tiny_trainer)
    assert data[WIDGET_MIME]["model_id"] == again[WIDGET_MIME]["model_id"] == view.model_id
    assert tiny_trainer.listeners == [view._listener]
    view.close()
    assert monitor(tiny_trainer) is not view


def test_registering_outside_ipython_does_nothing():
    assert cryonb.widgets.register_display() is False


def test_importing_cryonb_widgets_in_ipython_registers_the_trainer_display():
    code = ("from IPython.core.interactiveshell import InteractiveShell\n"
            "shell = InteractiveShell.instance()\n"
            "import cryonb.widgets\n"
            "print(sorted(shell.display_formatter.mimebundle_formatter.deferred_printers))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[('cryonb.core.training', 'Trainer')]"


def test_importing_cryonb_widgets_loads_no_view_library():
    views = {"ipywidgets", "IPython", "matplotlib", "traitlets"}
    code = f"import sys, cryonb.widgets\nprint(sorted({{m.split('.')[0] for m in sys.modules}} & {views!r}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_format_duration():
    assert [format_duration(s) for s in (0, 59.6, 65, 3725)] == ["0:00", "1:00", "1:05", "1:02:05"]


def test_the_kl_panel_says_when_the_term_is_not_fitted():
    assert training_monitor.kl_title(0.125) == "KL" and "not in the loss" in training_monitor.kl_title(0.0)

def test_thin_averages_consecutive_bins():
    values = np.arange(10.0)[:, None]
    np.testing.assert_array_equal(thin(values, 5), [[0.5], [2.5], [4.5], [6.5], [8.5]])
    assert thin(values, 10) is values


def test_images_per_second_hold_still_while_paused(monkeypatch):
    """Issue 14, item 6: pausing keeps the rate of the steps before the pause; it must not jump to
    the last epoch's (higher here) or rise while nothing trains."""
    from types import SimpleNamespace

    clock = [100.0]
    monkeypatch.setattr(training_monitor.time, "monotonic", lambda: clock[0])
    trainer = SimpleNamespace(
        listeners=[], batches_per_epoch=100, target_epoch=2, epoch=1, position=0, step_count=100, steps=[], paused=False,
        running=True, config=SimpleNamespace(batch_size=10, kl_weight=0.125), history=[{"epoch": 1, "loss": 1.0, "kl": 0.1, "images_per_s": 5000.0}],
    )
    view = TrainingMonitor(trainer)
    view.status_interval = 0
    rate = lambda: float(view.speed_label.value.split(" images/s")[0].replace(",", ""))  # noqa: E731
    for _ in range(10):  # 10 images per 0.1 s: 100 images/s
        clock[0] += 0.1
        trainer.step_count += 1
        trainer.position += 1
        view._on_event("step", trainer)
    assert rate() == pytest.approx(100)
    trainer.paused = True
    view._on_event("paused", trainer)
    clock[0] += 0.05  # the step under way when Pause was pressed still ends
    trainer.step_count += 1
    view._on_event("step", trainer)
    shown = view.speed_label.value
    assert rate() == pytest.approx(100, rel=0.1)
    clock[0] += 60
    view.refresh()
    assert view.speed_label.value == shown and view.state_label.value == "paused"
    trainer.paused = False
    view._on_event("resumed", trainer)  # measured afresh: the minute paused does not count
    for _ in range(3):
        clock[0] += 0.2
        trainer.step_count += 1
        view._on_event("step", trainer)
    assert rate() == pytest.approx(50)


class FakeTrainer:
    """What the monitor reads of a trainer, moved by hand."""

    def __init__(self):
        from types import SimpleNamespace

        self.listeners, self.history, self.steps = [], [], []
        self.config = SimpleNamespace(batch_size=10, kl_weight=0.125)
        self.batches_per_epoch, self.target_epoch = 100, 5
        self.epoch = self.position = self.step_count = 0
        self.running, self.paused = True, False

    def advance(self, steps: int = 1):
        for _ in range(steps):
            self.step_count += 1
            self.position += 1
            if self.position == self.batches_per_epoch:
                self.epoch, self.position = self.epoch + 1, 0


def test_eta_is_batches_left_over_the_recent_rate_and_a_pause_does_not_raise_the_rate(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(training_monitor.time, "monotonic", lambda: clock[0])
    trainer = FakeTrainer()
    view = TrainingMonitor(trainer)
    for _ in range(20):  # 4 batches a second
        clock[0] += 0.25
        trainer.advance()
        view._on_event("step", trainer)
    assert view.batch_rate() == pytest.approx(4.0)
    left = 5 * 100 - 20
    assert view.eta(left) == pytest.approx(left / 4.0)  # what tqdm shows for the same batches and rate
    assert view.speed_label.value == f"40 images/s · ETA {format_duration(left / 4.0)}"
    trainer.paused = True
    view._on_event("paused", trainer)
    for _ in range(5):  # a long pause, the view refreshed now and then
        clock[0] += 60
        view.refresh()
        assert view.speed_label.value.startswith("40 images/s")
    trainer.paused = False
    view._on_event("resumed", trainer)
    clock[0] += 0.5  # one slow step after the pause: not enough to measure, the old rate stays
    trainer.advance()
    view._on_event("step", trainer)
    assert view.speed_label.value.startswith("40 images/s")
    for _ in range(4):  # then 2 batches a second, measured afresh without the pause
        clock[0] += 0.5
        trainer.advance()
        view._on_event("step", trainer)
    assert view.batch_rate() == pytest.approx(2.0)
    assert view.eta(5 * 100 - 25) == pytest.approx((500 - 25) / 2.0)
