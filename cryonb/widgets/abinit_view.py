"""A live view of an ab initio run (:class:`~cryonb.core.abinit.Abinit`): the map forming, as its
three central sections, and, given reference poses, the median pose error per epoch."""

from __future__ import annotations

import logging

import ipywidgets as w
import numpy as np
from matplotlib.figure import Figure

from ..core.abinit_starts import other_starts
from ._figures import figure_png

log = logging.getLogger(__name__)


class AbinitView(w.VBox):
    """Redrawn after every epoch of ``abinit``'s training (foreground or background).

    >>> view = AbinitView(ab, reference=sim.particles.rotations)   # display it, then
    >>> ab.fit(10)

    ``reference`` (N, 3, 3): rotations to align the poses to (e.g. a simulation's truth); each
    epoch's median error after alignment is kept in :attr:`errors` as ``(epoch, phase, degrees)``.
    """

    def __init__(self, abinit, reference=None, **kwargs):
        self.abinit = abinit
        self.reference = None if reference is None else np.asarray(reference)
        self.errors: list[tuple[int, str, float]] = []
        self.label = w.Label()
        self.image = w.Image(format="png")
        super().__init__([self.label, self.image], **kwargs)
        self._listener = self._on_event
        abinit.trainer.listeners.append(self._listener)
        self.refresh()

    def refresh(self):
        """Show the run's current map (and error curve) now."""
        t = self.abinit.trainer
        phase = t.history[-1].get("phase", "") if t.history else ""
        text = f"epoch {t.epoch}" + (f" ({phase})" if phase else "") + f", next: {self.abinit.phase}"
        checks = self.abinit.checks()  # without a reference, the signs of right poses (see cryonb abinit)
        if "poses_moved" in checks:
            text += f", the last search turned the poses {checks['poses_moved'][-1]:.1f}°"
        if checks.get("reproduced") is not None:
            nearest = min(other_starts(checks["start_agreement"], checks["kept_start"]))
            text += (f", another start found these poses ({nearest:.0f}°)" if checks["reproduced"]
                     else f", no other start found these poses (the nearest {nearest:.0f}° away)")
        if self.errors:
            text += f", median pose error {self.errors[-1][2]:.1f}°"
        self.label.value = text
        self.image.value = render(self.abinit.volume(), self.errors)

    def close(self):
        """Detach from the run and close the view."""
        if self._listener in self.abinit.trainer.listeners:
            self.abinit.trainer.listeners.remove(self._listener)
        super().close()

    def _on_event(self, event: str, trainer):
        if event != "epoch":
            return
        try:
            if self.reference is not None:
                phase = trainer.history[-1].get("phase", "")
                self.errors.append((trainer.epoch, phase, self.abinit.align(self.reference).median_error))
            self.refresh()
        except Exception:  # a failing view must not end the run that called it
            log.exception("cryonb: the ab initio view could not update")


def render(volume: np.ndarray, errors=()) -> bytes:
    """PNG of the map's central sections (z, y, x) and, if any, the pose error per epoch."""
    panels = 4 if errors else 3
    fig = Figure(figsize=(2.2 * panels + (1.2 if errors else 0), 2.3), dpi=80, layout="constrained")
    axes = fig.subplots(1, panels, width_ratios=[1, 1, 1, 1.6][:panels])
    c = volume.shape[0] // 2
    for ax, section, name in zip(axes, (volume[c], volume[:, c], volume[:, :, c]), ("xy", "xz", "yz")):
        ax.imshow(section, cmap="gray", origin="lower")
        ax.set_title(f"section {name}", fontsize=9)
        ax.set_axis_off()
    if errors:
        ax = axes[-1]
        epochs, phases, degrees = zip(*errors)
        ax.plot(epochs, degrees, "-", color="0.6", lw=1)
        for phase, colour in (("pretrain", "0.5"), ("search", "tab:blue"), ("map", "tab:green"), ("refine", "tab:red")):
            at = [i for i, p in enumerate(phases) if p == phase]
            if at:
                ax.plot([epochs[i] for i in at], [degrees[i] for i in at], "o", ms=3, color=colour, label=phase)
        ax.set_yscale("log")
        ax.set_xlabel("epoch", fontsize=9)
        ax.set_title("median pose error (°)", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=7, frameon=False)
    return figure_png(fig)
