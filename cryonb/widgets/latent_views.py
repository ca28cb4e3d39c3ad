"""Static views of a latent space that work offline and in static docs: a pair grid of latent
dimensions (datashaded small multiples) and a 3-D scatter of PC1-3 (matplotlib's mplot3d)."""

from __future__ import annotations

import numpy as np

from cryonb.core.analysis import pca
from cryonb.core.errors import InputError

from ._figures import figure_png

SELECTED_COLOR = "#e6007e"
MAX_PAIR_DIMS = 8  # a grid of 8 dimensions has 28 panels; more would be unreadable
MAX_3D_POINTS = 5_000  # mplot3d draws every marker: a subsample keeps a redraw under a second


def _check_z(z) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or len(z) < 2 or not np.isfinite(z).all():
        raise InputError(None, f"latents have shape {z.shape}", "pass finite latents (N, zdim) of two particles or more")
    return z


def render_pair_grid(z, dims=None, highlight=None, panel: float = 1.5, pixels: int = 120) -> bytes:
    """PNG of every pair of latent dimensions ``dims`` (default the first ``MAX_PAIR_DIMS``):
    densities below the diagonal (datashader, log scale: any number of particles), histograms on
    it; the particles at ``highlight`` (rows of z) in the selection's magenta over both."""
    import datashader as ds
    import datashader.transfer_functions as tf
    import pandas as pd
    from matplotlib.figure import Figure

    z = _check_z(z)
    dims = list(range(min(z.shape[1], MAX_PAIR_DIMS))) if dims is None else [int(d) for d in dims]
    if len(dims) < 2 or min(dims) < 0 or max(dims) >= z.shape[1]:
        raise InputError(None, f"dimensions {dims} for zdim {z.shape[1]}", f"pick two or more of 0 to {z.shape[1] - 1}")
    frame = pd.DataFrame({f"z{d + 1}": z[:, d] for d in dims})
    chosen = frame.iloc[np.asarray(highlight, dtype=np.int64)] if highlight is not None and len(highlight) else None
    ranges = {c: (float(frame[c].min()), float(frame[c].max()) + 1e-12) for c in frame}
    n = len(dims)
    figure = Figure(figsize=(panel * n, panel * n), dpi=80, layout="constrained")
    axes = figure.subplots(n, n, squeeze=False)
    for i, yname in enumerate(frame):
        for j, xname in enumerate(frame):
            ax = axes[i, j]
            ax.set_xticks([]), ax.set_yticks([])
            if j > i:
                ax.set_axis_off()
                continue
            if i == j:
                bins = np.linspace(*ranges[xname], 40)
                ax.hist(frame[xname], bins=bins, color="0.5")
                if chosen is not None:
                    ax.twinx().hist(chosen[xname], bins=bins, color=SELECTED_COLOR, alpha=0.6)
                    figure.axes[-1].set_yticks([])
            else:
                canvas = ds.Canvas(plot_width=pixels, plot_height=pixels, x_range=ranges[xname], y_range=ranges[yname])
                image = tf.shade(canvas.points(frame, xname, yname), cmap=["#d9d9d9", "#08306b"], how="log")
                if chosen is not None and len(chosen):
                    image = tf.stack(image, tf.spread(tf.shade(canvas.points(chosen, xname, yname), cmap=[SELECTED_COLOR]), px=1))
                ax.imshow(np.asarray(image.to_pil()), origin="upper", extent=(*ranges[xname], *ranges[yname]), aspect="auto")
            if i == n - 1:
                ax.set_xlabel(xname, fontsize=9)
            if j == 0:
                ax.set_ylabel(yname, fontsize=9)
    return figure_png(figure)


class PairGrid:
    """A pair grid of latent dimensions (see :func:`render_pair_grid`) as an image widget,
    redrawn with the explorer's current selection by its button.

    >>> PairGrid(run.z, dims=[0, 1, 2])           # or PairGrid.of(explorer)
    """

    def __init__(self, z, dims=None, highlight=None):
        import ipywidgets as w

        self.z, self.dims, self._highlight = _check_z(z), dims, (lambda: highlight)
        self.image = w.Image(format="png")
        self.image.add_class("cryonb-pairgrid")
        self.redraw_button = w.Button(description="Redraw with the selection", icon="refresh", layout=w.Layout(width="auto"))
        self.redraw_button.on_click(lambda _: self.redraw())
        self.widget = w.VBox([self.redraw_button, self.image])
        self.redraw()

    @classmethod
    def of(cls, explorer, dims=None) -> PairGrid:
        grid = cls(explorer.run.z, dims)
        grid._highlight = lambda: explorer.positions
        grid.redraw()
        return grid

    def redraw(self) -> None:
        self.image.value = render_pair_grid(self.z, self.dims, self._highlight())

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def subsample(n: int, keep=None, most: int = MAX_3D_POINTS, seed: int = 0) -> np.ndarray:
    """Sorted rows: all ``n`` if ``n <= most``, else ``most`` at random, always including ``keep`` (up to ``most``)."""
    if n <= most:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    keep = np.unique(np.asarray([] if keep is None else keep, dtype=np.int64))
    keep = rng.choice(keep, most, replace=False) if len(keep) > most else keep
    rest = np.setdiff1d(np.arange(n), keep, assume_unique=True)
    return np.sort(np.concatenate([keep, rng.choice(rest, most - len(keep), replace=False)]))


def render_scatter3d(coords, colors=None, categorical: bool = False, highlight=None, elev: float = 25, azim: float = -60,
                     label: str = "", size: float = 5.0) -> bytes:
    """PNG of points (N, 3) seen from elevation ``elev`` and azimuth ``azim`` (degrees), coloured by
    ``colors`` (categories or numbers), rows ``highlight`` in magenta on top."""
    import colorcet
    from matplotlib.figure import Figure

    coords = np.asarray(coords, dtype=np.float64)
    figure = Figure(figsize=(size, size * 0.85), dpi=80, layout="constrained")
    ax = figure.add_subplot(projection="3d")
    style = dict(s=4, depthshade=False, linewidths=0)
    if colors is None:
        ax.scatter(*coords.T, color="0.4", **style)
    elif categorical:
        _, codes = np.unique(colors, return_inverse=True)
        palette = np.array(colorcet.palette["glasbey_category10"])
        ax.scatter(*coords.T, color=palette[codes.reshape(-1) % len(palette)], **style)
    else:
        points = ax.scatter(*coords.T, c=np.asarray(colors, dtype=np.float64), cmap="viridis", **style)
        figure.colorbar(points, ax=ax, shrink=0.6, label=label)
    if highlight is not None and len(highlight):
        ax.scatter(*coords[np.asarray(highlight, dtype=np.int64)].T, color=SELECTED_COLOR, s=10, depthshade=False, linewidths=0)
    ax.view_init(elev=elev, azim=azim)
    ax.set_box_aspect(None, zoom=0.85)  # the axis labels inside the figure (constrained layout does not see them)
    ax.set_xlabel("PC1"), ax.set_ylabel("PC2"), ax.set_zlabel("PC3")
    ax.tick_params(labelsize=7)
    return figure_png(figure)


class Scatter3D:
    """A 3-D scatter of the latents' first three principal components, turned by elevation and
    azimuth sliders.

    It is drawn by matplotlib's mplot3d into an image (re-rendered when a slider moves), so it
    needs no WebGL, no internet and no plotting library beyond matplotlib, and a saved notebook or
    a static docs page shows it as it was. At most ``MAX_3D_POINTS`` particles are drawn (a
    random subsample that keeps the selected ones).

    >>> Scatter3D(run.z, colors=labels, categorical=True)      # or Scatter3D.of(explorer)
    """

    def __init__(self, z, colors=None, categorical: bool = False, highlight=None, label: str = "", most: int = MAX_3D_POINTS):
        import ipywidgets as w

        z = _check_z(z)
        if z.shape[1] < 3:
            raise InputError(None, f"a 3-D view needs zdim >= 3 (this run has {z.shape[1]})", "use the 2D explorer or the pair grid")
        self.rows = subsample(len(z), highlight, most)
        self.coords = pca(z, 3).coords[self.rows]
        self.colors = None if colors is None else np.asarray(colors)[self.rows]
        self.categorical, self.label = categorical, label
        chosen = np.zeros(len(z), bool)
        if highlight is not None:
            chosen[np.asarray(highlight, dtype=np.int64)] = True
        self.highlight = np.flatnonzero(chosen[self.rows])
        style = {"description_width": "initial"}
        self.elevation = w.IntSlider(value=25, min=-90, max=90, description="elevation", continuous_update=False, style=style)
        self.azimuth = w.IntSlider(value=-60, min=-180, max=180, description="azimuth", continuous_update=False, style=style)
        self.image = w.Image(format="png")
        self.image.add_class("cryonb-scatter3d")
        for slider in (self.elevation, self.azimuth):
            slider.observe(lambda _: self.redraw(), "value")
        caption = w.HTML(f"<i>{len(self.rows):,} of {len(z):,} particles, PC1-3 of z</i>")
        self.widget = w.VBox([w.HBox([self.elevation, self.azimuth]), self.image, caption])
        self.redraw()

    @classmethod
    def of(cls, explorer, most: int = MAX_3D_POINTS) -> Scatter3D:
        """The explorer's latents in its colours, its selection in magenta."""
        label = explorer.color if isinstance(explorer.color, str) else "value"
        return cls(explorer.run.z, explorer.values, explorer.categorical, explorer.positions, label, most)

    def redraw(self) -> None:
        self.image.value = render_scatter3d(self.coords, self.colors, self.categorical, self.highlight,
                                            self.elevation.value, self.azimuth.value, self.label)

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
