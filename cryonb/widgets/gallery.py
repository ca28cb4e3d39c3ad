"""A look at the particles behind a selection: the first images in a grid, and their average."""

from __future__ import annotations

import io

import ipywidgets as w
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from cryonb.core.errors import InputError


EMPTY = "No particles selected: draw a lasso or a box on the plot to see them here."


class ParticleGallery(w.VBox):
    """The first ``n`` images of the particles at ``positions`` and the average of up to ``average_of``.

    The average is of the images as recorded (not aligned): a quick check of what a selection
    holds, e.g. junk or empty images, not a 2D class average. ``show(positions)`` updates it.
    """

    def __init__(self, run, positions=(), n: int = 24, columns: int = 8, average_of: int = 1000, **kwargs):
        particles = run.particles
        if particles is None or particles.images is None:
            raise InputError(run.run_dir, "the run has no particle images", "open the run with them: Run.open(run_dir, particles)")
        self.images, self.indices = particles.images, particles.indices
        self.n, self.columns, self.average_of = n, columns, average_of
        self.caption = w.Label()
        self.caption.add_class("cryonb-gallery-caption")
        self.grid = w.Image(format="png")
        self.grid.add_class("cryonb-gallery-images")
        super().__init__([self.caption, self.grid], **kwargs)
        self.add_class("cryonb-gallery")
        self.show(positions)

    def show(self, positions) -> None:
        """Show the particles at ``positions`` (rows of the run's particle set)."""
        positions = np.asarray(positions, dtype=np.int64).reshape(-1)
        self.positions = positions
        if not positions.size:
            # No image at all rather than an empty one, which the browser draws as a broken image.
            self.caption.value, self.grid.value = EMPTY, b""
            self.grid.layout.display = "none"
            self.average = None
            return
        self.grid.layout.display = None
        shown = positions[: self.n]
        self.average = self.images[positions[: self.average_of]].mean(0)
        titles = [f"#{i}" for i in self.indices[shown]]
        self.grid.value = render_gallery(self.images[shown], titles, self.average, self.columns)
        averaged = min(len(positions), self.average_of)
        self.caption.value = f"{len(shown):,} of {len(positions):,} particles shown; average of {averaged:,}"


def render_gallery(images: np.ndarray, titles, average: np.ndarray, columns: int = 8) -> bytes:
    """PNG of the average then ``images`` (B, D, D) in a grid, each scaled to its own 1–99 percentiles."""
    buffer = io.BytesIO()
    gallery_figure(images, titles, average, columns).savefig(buffer, format="png")
    return buffer.getvalue()


def gallery_figure(images: np.ndarray, titles, average: np.ndarray, columns: int = 8) -> Figure:
    """The Figure of :func:`render_gallery`: one panel per image, its title in a row of its own above it.

    Images of any size are drawn at the same size (their pixels resampled); the constrained layout
    keeps every title whole and clear of the row above.
    """
    panels = [average, *images]
    titles = ["average", *titles]
    columns = min(columns, len(panels))
    rows = -(-len(panels) // columns)
    figure = Figure(figsize=(1.4 * columns, 1.65 * rows), dpi=80, layout="constrained")
    figure.get_layout_engine().set(w_pad=0.02, h_pad=0.02, wspace=0.02, hspace=0.02)
    FigureCanvasAgg(figure)
    for i, (image, title) in enumerate(zip(panels, titles)):
        axes = figure.add_subplot(rows, columns, i + 1)
        low, high = np.percentile(image, [1, 99])
        axes.imshow(image, cmap="gray", vmin=low, vmax=high, origin="upper", interpolation="antialiased")
        axes.set_title(title, fontsize=8, color="C3" if i == 0 else "black", pad=2)
        axes.set_axis_off()
    return figure
