"""Driving a run from a notebook: ``fit`` in the foreground or in a background thread,
``pause``/``resume``/``stop``, Ctrl-C as a clean stop at the next step, listeners told of each event.

:class:`Driven` is that part of :class:`~cryonb.core.training.Trainer`. The trainer supplies one
step (``_advance``), bringing its losses to the host (``_record``), its counters (``epoch``,
``position``, ``step_count``, ``batches_per_epoch``, ``steps``), ``run_dir``, ``dist``,
``save_checkpoint`` and ``data`` (closed when a fit ends: no reader thread outlives it).
"""

from __future__ import annotations

import contextlib
import signal
import threading

from .checkpoints import INTERRUPTED
from .errors import CryonbError


class Driven:
    """Foreground or background training with pause, resume, stop and listeners (see the module)."""

    def _init_driving(self):
        self.listeners: list = []  # callables (event, trainer); events "epoch", "paused", "resumed", "stopped"
        self.interrupted = False  # set by Ctrl-C (SIGINT) during fit
        self._target_epochs = 0
        self._run = threading.Event()  # cleared while paused
        self._run.set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def fit(self, epochs: int = 1, background: bool = False, progress: bool = True):
        """Train ``epochs`` more epochs (continuing a part-done epoch first).

        With ``background=True`` training runs in a thread and this returns at once; use
        ``pause()``, ``resume()``, ``stop()`` and ``wait()``.
        """
        if self.running:
            raise CryonbError("this trainer is already training in the background; call stop() or wait() first")
        self._target_epochs = self.epoch + int(epochs)
        self.interrupted = False  # set by Ctrl-C (SIGINT) during this fit
        if self.run_dir is not None and self.dist.main:
            (self.run_dir / INTERRUPTED).unlink(missing_ok=True)  # resuming clears an interrupted run's mark
        self._stop.clear()
        self._run.set()
        if background:
            self._thread = threading.Thread(target=self._loop, args=(False,), daemon=True, name="cryonb-train")
            self._thread.start()
            return self
        with _stop_on_sigint(self):
            self._loop(progress)
        return self

    def _loop(self, progress: bool):
        bar = None
        if progress and self.dist.main:
            from tqdm.auto import tqdm

            total = (self._target_epochs - self.epoch) * self.batches_per_epoch - self.position
            bar = tqdm(total=total, unit="batch", desc=f"epoch {self.epoch + 1}", mininterval=0.5)
        try:
            while self.epoch < self._target_epochs and not self._stop.is_set():
                if self.paused:
                    self._record()  # the pause must not count as training time
                    self._run.wait()
                if self._stop.is_set():
                    break
                self._advance()
                if bar is not None:  # drawn by update() at most every mininterval, not at every step
                    bar.set_description(f"epoch {self.epoch + (self.position > 0)}", refresh=False)
                    if self.steps:
                        bar.set_postfix(loss=f"{self.steps[-1][1]:.4g}", refresh=False)
                    bar.update(1)
        finally:
            self.data.close()  # streamed data's reader; a later fit restarts it where this one stopped
            self._record()
            if bar is not None:
                bar.close()
            if self._stop.is_set() and self.run_dir is not None:
                self.save_checkpoint()
            self._notify("stopped")

    @property
    def target_epoch(self) -> int:
        """The epoch at which the current (or last) ``fit`` ends."""
        return max(self._target_epochs, self.epoch)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def paused(self) -> bool:
        return not self._run.is_set()

    def pause(self):
        self._run.clear()
        self._notify("paused")

    def resume(self):
        self._run.set()
        self._notify("resumed")

    def stop(self, wait: bool = True):
        """Stop after the current step (writing a checkpoint if there is a run folder)."""
        self._stop.set()
        self._run.set()
        if wait:
            self.wait()

    def wait(self):
        if self._thread is not None:
            self._thread.join()

    def _notify(self, event: str):
        for listener in list(self.listeners):
            listener(event, self)


@contextlib.contextmanager
def _stop_on_sigint(trainer):
    """Turn Ctrl-C / the notebook's interrupt into a clean stop at the next step boundary."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        trainer._stop.set()
        trainer.interrupted = True
        hint = getattr(trainer, "interrupt_hint", "call fit() to continue")
        print(f"\ncryonb: interrupted; stopping after step {trainer.step_count + 1} ({hint})")

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
