"""A live view of a :class:`~cryonb.core.training.Trainer`: curves, progress, and Pause/Resume/Stop.

The trainer calls the monitor's listener from its training thread; ipywidgets sends the trait
changes from there, so the view stays live while the notebook runs other cells.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import deque

import ipywidgets as w
import numpy as np
from matplotlib.figure import Figure

from ._figures import figure_png

MAX_CURVE_POINTS = 1000
log = logging.getLogger(__name__)


class TrainingMonitor(w.VBox):
    """Loss and KL curves, progress with images/s and ETA, and buttons that pause, resume or stop.

    >>> trainer.fit(20, background=True)
    >>> TrainingMonitor(trainer)      # or simply display ``trainer``
    """

    status_interval = 0.1  # seconds between label/progress updates while training
    plot_interval = 0.5  # seconds between curve redraws (at most 2 per second)

    def __init__(self, trainer, **kwargs):
        self.trainer = trainer
        self.epoch_label = w.Label()
        self.progress = w.IntProgress(min=0, max=1, layout=w.Layout(flex="1 1 auto", width="auto"))
        self.speed_label = w.Label()
        self.state_label = w.Label()
        self.pause_button = w.Button(description="Pause", icon="pause", button_style="warning")
        self.resume_button = w.Button(description="Resume", icon="play", button_style="success")
        self.stop_button = w.Button(description="Stop", icon="stop", button_style="danger")
        self.curves = w.Image(format="png")
        self.pause_button.on_click(lambda _: trainer.pause())
        self.resume_button.on_click(lambda _: trainer.resume())
        self.stop_button.on_click(lambda _: trainer.stop(wait=False))
        for part, name in [(self.epoch_label, "epoch"), (self.progress, "progress"), (self.speed_label, "speed"),
                           (self.state_label, "state"), (self.curves, "curves")]:
            part.add_class(f"cryonb-monitor-{name}")
        rows = [w.HBox([self.epoch_label, self.progress, self.speed_label]),
                w.HBox([self.pause_button, self.resume_button, self.stop_button, self.state_label])]
        self._parts = [*rows, *rows[0].children, *rows[1].children, self.curves]
        super().__init__([*rows, self.curves], **kwargs)
        self.add_class("cryonb-monitor")
        self._lock = threading.Lock()
        self._recent = deque(maxlen=50)  # (time, step_count) of recent steps, for images/s
        self._last_rate: float | None = None  # images/s last measured from steps, kept over a pause
        self._last_status = self._last_plot = -np.inf
        self._closed = False
        self._listener = self._on_event
        trainer.listeners.append(self._listener)
        self.refresh()

    def refresh(self):
        """Show the trainer's current state now, curves included."""
        self._show(running=self.trainer.running, plot=True)

    def close(self):
        """Detach from the trainer and close the view."""
        with self._lock:  # waits for an update in flight from the training thread
            self._closed = True
        if self._listener in self.trainer.listeners:
            self.trainer.listeners.remove(self._listener)
        for part in self._parts:
            part.close()
        super().close()

    @property
    def closed(self) -> bool:
        return self._closed

    def _on_event(self, event: str, trainer):
        now = time.monotonic()
        if event == "step":
            self._recent.append((now, trainer.step_count))
        elif event in ("resumed", "stopped"):
            # Time spent paused or stopped is not training time: the rate is measured afresh from
            # the steps after it. Until two have arrived the rate measured before stays shown (not
            # the last epoch's, which could be higher), so images/s never climbs over a pause.
            self._recent.clear()
        if event == "step" and now - self._last_status < self.status_interval:
            return
        # "stopped" comes from inside the training thread, still alive at that moment; "step" and
        # "epoch" also come from a fit in the foreground, where there is no thread.
        running = event in ("step", "epoch") or (trainer.running and event != "stopped")
        plot = event in ("paused", "stopped") or now - self._last_plot >= self.plot_interval
        try:
            self._show(running, plot)
        except Exception:  # a failing view must not end the training run that called it
            log.exception("cryonb: the training monitor could not update")

    def _show(self, running: bool, plot: bool):
        t = self.trainer
        with self._lock:
            if self._closed:
                return
            self._last_status = time.monotonic()
            bpe = t.batches_per_epoch
            target = t.target_epoch
            done = t.epoch * bpe + t.position
            self.epoch_label.value = f"epoch {t.epoch}/{target}"
            self.progress.max = max(target * bpe, done, 1)
            self.progress.value = done
            self.speed_label.value = self._speed_text(running, target * bpe - done)
            self.pause_button.disabled = not running or t.paused
            self.resume_button.disabled = not (running and t.paused)
            self.stop_button.disabled = not running
            # Last: each change reaches the browser as its own message, in order, so a page that shows
            # the new state shows its buttons too
            self.state_label.value = ("paused" if t.paused else "training") if running else "idle"
            if plot:
                self._last_plot = self._last_status
                self.curves.value = render_curves(t.steps, t.history, t.batches_per_epoch, t.config.kl_weight)

    def batch_rate(self) -> float | None:
        """Batches per second over the recent steps (the trainer's progress bar counts the same
        batches), the last rate measured before a pause while too few steps followed it, else the
        last epoch's (whose ``seconds`` exclude pauses); None before any."""
        if len(self._recent) >= 2:
            (t0, s0), (t1, s1) = self._recent[0], self._recent[-1]
            if t1 > t0:
                self._last_rate = (s1 - s0) / (t1 - t0)
        if self._last_rate is not None:
            return self._last_rate
        history = self.trainer.history
        if history and history[-1].get("seconds", 0) > 0:
            return self.trainer.batches_per_epoch / history[-1]["seconds"]
        return None

    def eta(self, batches_left: int) -> float | None:
        """Seconds left: batches left over the recent batch rate, as tqdm estimates it."""
        rate = self.batch_rate()
        return None if not rate else batches_left / rate

    def _speed_text(self, running: bool, batches_left: int) -> str:
        rate = self.batch_rate()
        if rate is None:
            if not self.trainer.history:
                return "– images/s"
            images = self.trainer.history[-1]["images_per_s"]
        else:
            images = rate * self.trainer.config.batch_size
        text = f"{images:,.0f} images/s"
        if running and rate:
            text += f" · ETA {format_duration(self.eta(batches_left))}"
        return text


def format_duration(seconds: float) -> str:
    """``h:mm:ss`` (or ``m:ss`` under an hour)."""
    minutes, s = divmod(round(seconds), 60)
    h, m = divmod(minutes, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def thin(values: np.ndarray, n: int = MAX_CURVE_POINTS) -> np.ndarray:
    """Average the rows of ``values`` in ``n`` consecutive bins (unchanged if it has ``n`` rows or fewer)."""
    if len(values) <= n:
        return values
    return np.stack([chunk.mean(0) for chunk in np.array_split(values, n)])


def kl_title(weight: float) -> str:
    """The KL panel's title; with weight 0 (the GPU default from a box of 128) the term is shown but not fitted."""
    return "KL" if weight else "KL (β = 0: not in the loss)"


def render_curves(steps, history, batches_per_epoch: int, kl_weight: float = 1.0) -> bytes:
    """PNG of the loss and KL per step, with the per-epoch means as dots."""
    fig = Figure(figsize=(8, 2.4), dpi=80, layout="constrained")
    loss_ax, kl_ax = fig.subplots(1, 2)
    if steps:
        s = thin(np.asarray(steps, dtype=float))
        loss_ax.plot(s[:, 0], s[:, 1], lw=1, color="tab:blue", alpha=0.6)
        kl_ax.plot(s[:, 0], s[:, 2], lw=1, color="tab:orange", alpha=0.6)
    if history:
        at = [row["epoch"] * batches_per_epoch for row in history]
        loss_ax.plot(at, [row["loss"] for row in history], "o", ms=3, color="tab:blue")
        kl_ax.plot(at, [row["kl"] for row in history], "o", ms=3, color="tab:orange")
    for ax, name in [(loss_ax, "loss"), (kl_ax, kl_title(kl_weight))]:
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step", fontsize=9)
        ax.tick_params(labelsize=8)
    return figure_png(fig)


_monitors: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def monitor(trainer) -> TrainingMonitor:
    """The trainer's monitor, shared by every place that displays it (a new one once closed)."""
    view = _monitors.get(trainer)
    if view is None or view.closed:
        view = _monitors[trainer] = TrainingMonitor(trainer)
    return view
