"""Still figures for headless analysis (matplotlib, no display): latent scatters, map snapshots, image galleries.

Every function returns a :class:`matplotlib.figure.Figure` drawn on the Agg canvas, so nothing
needs a screen; :func:`png_bytes` turns one into PNG bytes.
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

MAP_VIEWS = ("projection", "section z", "section y", "section x")


def png_bytes(figure: Figure, dpi: int = 100) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _draw_order(n: int, limit: int = 200_000, seed: int = 0) -> np.ndarray:
    """At most ``limit`` points in a random order (so no group is painted over another wholesale)."""
    rng = np.random.default_rng(seed)
    return rng.permutation(n)[:limit]


def scatter_figure(xy, values=None, *, title: str = "", axes_labels=("1", "2"), categorical: bool = False,
                   colorbar: str = "", highlight=None, highlight_labels=None, size: float = 4.5) -> Figure:
    """2D points (N, 2) coloured by ``values`` (N,), categories or a continuous colour scale.

    ``highlight`` (k, 2) marks points (e.g. cluster centres) with numbered circles. Beyond 200,000
    points a random 200,000 are drawn.
    """
    xy = np.asarray(xy, dtype=np.float32)
    figure = _figure(size + (1.0 if colorbar and not categorical else 0.0), size)
    ax = figure.add_subplot()
    order = _draw_order(len(xy))
    marker = max(0.5, min(12.0, 3000 / max(len(order), 1)))
    if values is None:
        ax.scatter(xy[order, 0], xy[order, 1], s=marker, c="#4878a8", alpha=0.6, linewidths=0, rasterized=True)
    elif categorical:
        values = np.asarray(values)
        cmap = "tab10" if values.max() < 10 else "tab20"
        ax.scatter(xy[order, 0], xy[order, 1], s=marker, c=values[order] % 20, cmap=cmap, vmin=0,
                   vmax=9 if cmap == "tab10" else 19, alpha=0.7, linewidths=0, rasterized=True)
    else:
        values = np.asarray(values, dtype=np.float64)
        low, high = np.nanpercentile(values, [1, 99]) if np.isfinite(values).any() else (0, 1)
        points = ax.scatter(xy[order, 0], xy[order, 1], s=marker, c=values[order], cmap="viridis", vmin=low,
                            vmax=high, alpha=0.7, linewidths=0, rasterized=True)
        figure.colorbar(points, ax=ax, label=colorbar, shrink=0.8)
    if highlight is not None:
        highlight = np.asarray(highlight, dtype=np.float32)
        ax.scatter(highlight[:, 0], highlight[:, 1], s=120, facecolors="white", edgecolors="black", linewidths=1, alpha=0.85)
        for i, (x, y) in enumerate(highlight):
            label = str(i) if highlight_labels is None else str(highlight_labels[i])
            ax.annotate(label, (x, y), ha="center", va="center", fontsize=7)
    ax.set(title=title, xlabel=axes_labels[0], ylabel=axes_labels[1])
    return figure


def map_views(maps) -> dict[str, np.ndarray]:
    """Images (B, D, D) of maps (B, D, D, D) [z, y, x]: the projection along z and the three central sections."""
    maps = np.asarray(maps, dtype=np.float32)
    c = maps.shape[1] // 2
    return {"projection": maps.sum(1), "section z": maps[:, c], "section y": maps[:, :, c], "section x": maps[:, :, :, c]}


def maps_figure(maps, titles, *, title: str = "", views=MAP_VIEWS, tile: float = 1.3) -> Figure:
    """One column per map, one row per view (:func:`map_views`); each row shares one grey scale,
    so what changes from map to map shows. Images are drawn with y up, as a map viewer opens them."""
    images = map_views(maps)
    figure = _figure(tile * len(titles) + 0.9, tile * len(views) + 0.5)
    grid = figure.subplots(len(views), len(titles), squeeze=False)
    for row, view in enumerate(views):
        low, high = np.percentile(images[view], [0.5, 99.5])
        for col, name in enumerate(titles):
            ax = grid[row, col]
            ax.imshow(images[view][col], cmap="gray", vmin=low, vmax=high, origin="lower", interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(str(name), fontsize=8)
            if col == 0:
                ax.set_ylabel(view, fontsize=8)
    if title:
        figure.suptitle(title, fontsize=10)
    return figure


def gallery_figure(images, titles, *, title: str = "", columns: int = 8, tile: float = 1.1) -> Figure:
    """Images (B, D, D) in a grid, each scaled to its own 1–99th percentiles (particle images are noisy)."""
    images = np.asarray(images, dtype=np.float32)
    columns = max(1, min(columns, len(images)))
    rows = -(-len(images) // columns)
    figure = _figure(tile * columns, tile * rows + (0.35 if title else 0.1))
    for i, (image, name) in enumerate(zip(images, titles)):
        ax = figure.add_subplot(rows, columns, i + 1)
        low, high = np.percentile(image, [1, 99])
        ax.imshow(image, cmap="gray", vmin=low, vmax=high, interpolation="antialiased")
        ax.set_title(str(name), fontsize=7, pad=2)
        ax.set_axis_off()
    if title:
        figure.suptitle(title, fontsize=9)
    return figure


def bars_figure(values, *, title: str = "", xlabel: str = "", ylabel: str = "", labels=None) -> Figure:
    """A bar per value (e.g. explained variance per PC, particles per state)."""
    values = np.asarray(values, dtype=np.float64)
    figure = _figure(max(3.5, 0.35 * len(values) + 1.5), 2.8)
    ax = figure.add_subplot()
    ax.bar(np.arange(len(values)), values, color="#4878a8")
    ax.set_xticks(np.arange(len(values)), labels if labels is not None else np.arange(len(values)), fontsize=7)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    return figure
