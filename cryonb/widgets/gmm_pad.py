"""The live latent pad: a picture of the latent scatter; moving or dragging the mouse over it moves
the Gaussians of a :class:`~cryonb.widgets.gmm_view.GaussianView`.

The picture is a PNG (matplotlib) in an ipywidgets Image. A script run in the NGL view
(:func:`cryonb.widgets.gmm_scripts.pad_script`) listens to the pointer over it and sends the latent
under the pointer to the kernel, one position at a time: while a drawing is on its way only the
latest position is kept, so the kernel never falls behind the mouse, and no plotting library sits
between the mouse and the drawing.
"""

from __future__ import annotations

import uuid

import ipywidgets as w
import numpy as np

from ._figures import figure_png
from .gmm_scripts import PAD_MOVE, PAD_READY, pad_script

SIZE = (420, 380)  # pixels
AXES = (0.15, 0.13, 0.81, 0.82)  # left, bottom, width, height: figure fractions of the plot area
PADDING = 0.05  # of the data's range, on each side


def limits(values: np.ndarray) -> tuple[float, float]:
    lo, hi = float(np.min(values)), float(np.max(values))
    pad = PADDING * (hi - lo) if hi > lo else 0.5
    return lo - pad, hi + pad


def render(x: np.ndarray, y: np.ndarray, labels: tuple[str, str]) -> tuple[bytes, dict]:
    """PNG of the scatter and its frame: where the plot area lies in the image (fractions, from the
    top left) and the data range it spans (``x0, x1, y0, y1``)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dpi = 100
    figure = Figure(figsize=(SIZE[0] / dpi, SIZE[1] / dpi), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.add_axes(AXES)
    axes.scatter(x, y, s=3, alpha=0.4, linewidths=0, color="#1f77b4")
    (x0, x1), (y0, y1) = limits(x), limits(y)
    axes.set(xlim=(x0, x1), ylim=(y0, y1), xlabel=labels[0], ylabel=labels[1])
    png = figure_png(figure)  # at the figure's dpi
    left, bottom, width, height = AXES
    frame = {"left": left, "top": 1 - bottom - height, "width": width, "height": height,
             "x0": x0, "x1": x1, "y0": y0, "y1": y1}
    return png, frame


class LatentPad:
    """The pad for ``gaussians`` (a GaussianView): ``x``, ``y`` the plotted coordinates of its particles."""

    def __init__(self, gaussians, x, y, labels: tuple[str, str]):
        self.gaussians = gaussians
        png, self.frame = render(np.asarray(x), np.asarray(y), labels)
        self.key = f"cryonb-pad-{uuid.uuid4().hex[:12]}"
        self.image = w.Image(value=png, format="png", layout=w.Layout(width=f"{SIZE[0]}px", height=f"{SIZE[1]}px"))
        self.image.add_class(self.key)
        self.moves = 0  # positions received from the browser
        view = gaussians.view
        view.on_msg(self._on_message)
        # archived by nglview, so a view displayed again listens again
        view._remote_call("executeCode", target="Widget", args=[pad_script(self.key, self.frame)])

    def _on_message(self, _widget, content, buffers=None):
        if not isinstance(content, dict):
            return
        if content.get("type") == PAD_MOVE:
            self.moves += 1
            self.gaussians.show(self.gaussians.latent_at(float(content["x"]), float(content["y"])))
        elif content.get("type") == PAD_READY:
            self.gaussians.redraw()  # a view just displayed has no Gaussians yet
