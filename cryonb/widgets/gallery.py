"""A look at the particles behind a selection: the first images in a grid, and their average."""

from __future__ import annotations

import ipywidgets as w
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ._figures import figure_png


EMPTY = "No particles selected: draw a lasso or a box on the plot to see them here."
NO_IMAGES = ("Particle images are absent: the run was opened without them (a shared bundle without thumbnails, "
             "or metadata only). Open it with its particles to see them: Run.open(run_dir, particles).")


class ParticleGallery(w.VBox):
    """The first ``n`` images of the particles at ``positions`` and the average of up to ``average_of``.

    The average is of the images as recorded (not aligned): a quick check of what a selection
    holds, e.g. junk or empty images, not a 2D class average. ``show(positions)`` updates it.
    A run without images shows the thumbnails of its shared bundle (those of the selected particles
    that have one), or says that the images are absent.
    """

    def __init__(self, run, positions=(), n: int = 24, columns: int = 8, average_of: int = 1000, **kwargs):
        from cryonb.core.share import thumbnails_of

        particles = run.particles
        # Without images (a shared bundle, or metadata only): the bundle's thumbnails, if any, or a message.
        self.thumbnails = None if particles is not None and particles.images is not None else thumbnails_of(run)
        if self.thumbnails is not None:
            rows = self.thumbnails.positions
            self.images, self.indices = self.thumbnails.images, rows if particles is None else particles.indices[rows]
        elif particles is not None and particles.images is not None:
            self.images, self.indices = particles.images, particles.indices
        else:
            self.images = self.indices = None
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
        if self.images is None or not positions.size:
            # No image at all rather than an empty one, which the browser draws as a broken image.
            self.caption.value, self.grid.value = NO_IMAGES if self.images is None else EMPTY, b""
            self.grid.layout.display = "none"
            self.average = None
            return
        selected = len(positions)
        note = ""
        if self.thumbnails is not None:  # show the selected particles that have a thumbnail
            rows = np.flatnonzero(np.isin(self.thumbnails.positions, positions))
            note = f" (thumbnails of a shared bundle: {len(rows):,} of the {selected:,} selected have one)"
            positions = rows
        if not positions.size:
            why = f"None of the {selected:,} selected particles has a thumbnail in this bundle ({len(self.images):,} in all)."
            self.caption.value, self.grid.value = why, b""
            self.grid.layout.display = "none"
            self.average = None
            return
        self.grid.layout.display = None
        shown = positions[: self.n]
        self.average = self.images[positions[: self.average_of]].mean(0)
        titles = [f"#{i}" for i in self.indices[shown]]
        self.grid.value = render_gallery(self.images[shown], titles, self.average, self.columns)
        averaged = min(len(positions), self.average_of)
        self.caption.value = f"{len(shown):,} of {len(positions):,} particles shown; average of {averaged:,}{note}"


def render_gallery(images: np.ndarray, titles, average: np.ndarray, columns: int = 8) -> bytes:
    """PNG of the average then ``images`` (B, D, D) in a grid, each scaled to its own 1–99 percentiles."""
    return figure_png(gallery_figure(images, titles, average, columns))


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
