"""Select particles on a 2D view of the latent space, by lasso or box, at up to millions of points.

The scatter is rasterised by datashader, so the browser receives an image, not the points. A
selection therefore comes back as geometry (the lasso's polygon or the box's bounds, in data
coordinates, through HoloViews' ``Lasso`` and ``BoundsXY`` streams) and is resolved in the kernel
by :func:`~cryonb.core.analysis.lasso_select`, vectorised.
"""

from __future__ import annotations

import functools
import html
import os
import re
import warnings

import numpy as np
import pandas as pd

from cryonb.core.analysis import (GraphGapWarning, Regions, auto_clusters, box_select, kmeans, lasso_select, latent_norm, pca,
                                  range_select, read_region, trajectory, umap_embedding)
from cryonb.core.ctf import CTF_COLUMNS
from cryonb.core.errors import InputError
from cryonb.core.particles import save_selection
from cryonb.core.rotations import matrix_to_relion

from ._figures import figure_png
from .bokeh_views import load_bokehjs, no_wheel_zoom, padded_range, plot_widget, selections_start_in_margins

POSE_VALUES = ("rot", "tilt", "psi", "shift_x", "shift_y")  # RELION Euler angles (degrees) and shifts (pixels)
CYCLIC = ("rot", "psi")  # angles drawn with a cyclic colour map
COLORS = ("cluster", "norm", *CTF_COLUMNS, *POSE_VALUES)
RANGE_MODES = ("replace", "within", "add")  # how select_range combines with the current selection
SELECT_MODES = ("replace", "add", "remove", "within")  # how a cluster or region enters the selection
SELECTED_COLOR = "#e6007e"
REGION_COLORS = ("#ff7f0e", "#17becf", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#bcbd22", "#1f77b4")
ANCHOR_COLOR = "#111111"
GAP_COLOR = "#e65100"  # a trajectory's jumps between separate parts of the graph (dashed)
MAX_CATEGORIES = 256  # integer colour arrays with more distinct values are drawn as numbers


def embedding(z, coords, n_neighbors: int | None = None, min_dist: float = 0.1) -> np.ndarray:
    """2D coordinates (N, 2) of the latents: ``"umap"``, ``"pca"`` (first two PCs) or an array.

    ``n_neighbors`` and ``min_dist`` are UMAP's (``None``: 15, fewer for small sets, see
    :func:`~cryonb.core.analysis.auto_neighbors`).
    """
    if isinstance(coords, str):
        if coords == "umap":
            return umap_embedding(z, n_neighbors=n_neighbors, min_dist=min_dist)
        if coords == "pca":
            if z.shape[1] < 2:
                return np.column_stack([z[:, 0], np.zeros(len(z))]).astype(np.float32)
            return pca(z, 2).coords.astype(np.float32)
        raise InputError(None, f"unknown coords {coords!r}", "use 'umap', 'pca' or an (N, 2) array")
    coords = np.asarray(coords, dtype=np.float32)
    if coords.shape != (len(z), 2) or not np.isfinite(coords).all():
        raise InputError(None, f"coords have shape {coords.shape}, expected finite values of shape ({len(z)}, 2)",
                         "pass one (x, y) row per particle of the run")
    return coords


def color_values(run, color, labels: np.ndarray | None) -> tuple[np.ndarray, bool]:
    """Per-particle values for ``color`` and whether they are categories (cluster labels, integers)."""
    n = len(run.z)
    if isinstance(color, str):
        if color == "cluster":
            if labels is None:
                raise InputError(None, "colour 'cluster' needs k-means clusters", "pass k=<number of clusters>")
            return labels, True
        if color == "norm":
            return latent_norm(run.z), False
        if color in CTF_COLUMNS:
            if run.particles is None or run.particles.ctf is None:
                raise InputError(None, f"colour {color!r} needs the particles' CTF, which this run lacks",
                                 "open the run with its particles: Run.open(run_dir, particles)")
            return run.particles.ctf[:, CTF_COLUMNS.index(color)], False
        if color in POSE_VALUES:
            return pose_values(run.particles, color), False
        options = ", ".join(repr(c) for c in COLORS)
        raise InputError(None, f"unknown colour {color!r}", f"choose one of {options}, or pass an array of {n} values")
    values = np.asarray(color)
    if values.shape != (n,):
        raise InputError(None, f"colour array has shape {values.shape}, expected ({n},)", "pass one value per particle")
    if values.dtype == object or not (np.issubdtype(values.dtype, np.number) or values.dtype == bool):
        raise InputError(None, f"colour array holds {values.dtype}, not numbers", "pass numbers (integers are drawn as categories)")
    categorical = not np.issubdtype(values.dtype, np.floating) and len(np.unique(values)) <= MAX_CATEGORIES
    return (values if categorical else values.astype(np.float64)), categorical


def pose_values(particles, name: str) -> np.ndarray:
    """The particles' RELION Euler angle ``rot``/``tilt``/``psi`` (degrees) or shift ``shift_x``/``shift_y`` (pixels)."""
    if name in ("rot", "tilt", "psi"):
        if particles is None or particles.rotations is None:
            raise InputError(None, f"colour {name!r} needs the particles' poses, which this run lacks",
                             "open the run with its particles: Run.open(run_dir, particles)")
        return np.asarray(matrix_to_relion(particles.rotations.astype(np.float64))[("rot", "tilt", "psi").index(name)])
    if particles is None or particles.shifts is None:
        raise InputError(None, f"colour {name!r} needs the particles' shifts, which this run lacks",
                         "open the run with particles that have shifts (a .star or .cs with origins)")
    return particles.shifts[:, ("shift_x", "shift_y").index(name)].astype(np.float64)


class LatentExplorer:
    """A rasterised scatter of the run's latents with lasso/box selection, Keep/Remove/Invert and Save.

    ``coords``: ``"umap"``, ``"pca"`` or an (N, 2) array. ``color``: ``"cluster"`` (k-means into
    ``k``), ``"norm"`` (‖z‖), a CTF column (``"defocus_u"`` …) or an array of N values (integers
    are drawn as categories). ``k``: the number of k-means clusters; ``"auto"`` takes one per 10
    particles, from 2 to 8 (:func:`~cryonb.core.analysis.auto_clusters`); ``None`` skips k-means
    (no cluster colours, no centre markers). ``n_neighbors`` and ``min_dist`` are UMAP's
    (``n_neighbors=None``: 15, fewer for small sets). ``point_size``: every particle is drawn at
    least this many pixels out from its centre (a 3×3 square at 1), so that a rare state of 70
    particles among a million is seen, not a few faint pixels.

    Beyond the current selection, named regions (``regions``, a
    :class:`~cryonb.core.analysis.Regions`) are kept at once: store a selection, load an index
    file or a .star subset, combine, save or remove each on its own. Anchors (clicked particles
    or k-means centres) make a trajectory (:meth:`make_trajectory`) to export and play.

    ``positions`` are the selected rows of ``run.z``; ``selection`` the same particles' row numbers
    in the original particle file, which is what :meth:`save` writes.

    >>> explorer = LatentExplorer(run, coords="pca", color="defocus_u")
    >>> explorer            # lasso some particles, then
    >>> explorer.save("selected/open_state")
    """

    def __init__(self, run, coords="umap", color="cluster", k: int | str | None = "auto", width: int = 600, height: int = 450,
                 *, n_neighbors: int | None = None, min_dist: float = 0.1, point_size: int = 1):
        if run.z is None:
            raise InputError(run.run_dir, "the run has no latents (zdim=0)", "train a heterogeneous model (zdim > 0)")
        self.run = run
        self.coords = embedding(run.z, coords, n_neighbors=n_neighbors, min_dist=min_dist)
        if isinstance(k, str):
            if k != "auto":
                raise InputError(None, f"k={k!r} is not a number of clusters", 'pass an integer, "auto" or None (no k-means)')
            k = auto_clusters(len(run.z))
        self.clusters = None if k is None else kmeans(run.z, k)
        self.point_size = int(point_size)
        self._loaded_values: dict[str, np.ndarray] = {}  # arrays given to colour_by, by name
        self.color = color
        self.values, self.categorical = color_values(run, color, None if self.clusters is None else self.clusters.labels)
        if not isinstance(color, str):
            self._loaded_values["value"] = np.asarray(color)
        self._table = pd.DataFrame({"x": self.coords[:, 0], "y": self.coords[:, 1], "color": _column(self.values, self.categorical)})
        self._size = (width, height)
        self.working = np.arange(len(self.coords))
        self.positions = np.zeros(0, np.int64)
        self.path = np.zeros(0, np.int64)
        self.picked: int | None = None  # row of run.z of the particle last clicked
        self.regions = Regions(len(self.coords))
        self.shown_regions: list[str] = []  # names of the regions drawn on the plot
        self.anchors: list[int] = []  # rows of run.z that a trajectory goes through
        self.trajectory = None  # the last made, a cryonb.core.analysis.Trajectory
        self.trajectory_notice = ""  # what the last trajectory's graph path had to do (jump gaps, more neighbours), or ""
        self._listeners, self._pick_listeners, self._region_listeners = [], [], []
        self._build_streams()

    # --- state -------------------------------------------------------------------------------

    @property
    def selection(self) -> np.ndarray:
        """Original row numbers (``run.particles.indices``) of the selected particles."""
        particles = self.run.particles
        return self.positions.copy() if particles is None else particles.indices[self.positions]

    def select(self, positions) -> None:
        """Select the particles at ``positions`` (rows of ``run.z``) within the working set."""
        self.positions = np.flatnonzero(self._mask(np.asarray(positions, dtype=np.int64)) & self._mask(self.working))
        self._changed()

    def select_polygon(self, polygon) -> None:
        """Select the shown particles inside ``polygon`` (M, 2), in the scatter's data coordinates."""
        self.positions = self.working[lasso_select(self.coords[self.working], polygon)]
        self._changed()

    def select_box(self, x0: float, y0: float, x1: float, y1: float) -> None:
        """Select the shown particles inside a box, in the scatter's data coordinates."""
        self.positions = self.working[box_select(self.coords[self.working], x0, x1, y0, y1)]
        self._changed()

    def value_names(self) -> list[str]:
        """Names :meth:`values_of` knows for this run: ``"norm"`` (‖z‖), ``"z1"``…, the CTF columns, the
        pose (``"rot"``, ``"tilt"``, ``"psi"`` in degrees, ``"shift_x"``, ``"shift_y"`` in pixels) if the
        particles have them, and the arrays given to :meth:`colour_by` by their names."""
        names = ["norm", *(f"z{i + 1}" for i in range(self.run.z.shape[1]))]
        particles = self.run.particles
        if particles is not None and particles.ctf is not None:
            names += list(CTF_COLUMNS)
        if particles is not None and particles.rotations is not None:
            names += list(POSE_VALUES[:3])
        if particles is not None and particles.shifts is not None:
            names += list(POSE_VALUES[3:])
        return names + [name for name in self._loaded_values if name not in names]

    def colour_names(self) -> list[str]:
        """What the plot can be coloured by: ``"cluster"`` (with k-means) and :meth:`value_names`."""
        return (["cluster"] if self.clusters is not None else []) + self.value_names()

    def values_of(self, name) -> np.ndarray:
        """Per-particle values (N,) by name (see :meth:`value_names`), or an array of N values as given."""
        if isinstance(name, str) and name in self._loaded_values:
            return self._loaded_values[name]
        if isinstance(name, str) and name[:1] == "z" and name[1:].isdigit() and 1 <= int(name[1:]) <= self.run.z.shape[1]:
            return self.run.z[:, int(name[1:]) - 1]
        if isinstance(name, str) and name not in COLORS:
            names = ", ".join(repr(n) for n in self.value_names())
            raise InputError(None, f"unknown value {name!r}", f"choose one of {names}, or pass an array of {len(self.run.z)} values")
        return np.asarray(color_values(self.run, name, None if self.clusters is None else self.clusters.labels)[0])

    def colour_by(self, values, name: str | None = None) -> None:
        """Colour the particles by ``values``: a name of :meth:`colour_names` (``"tilt"``, ``"defocus_u"``,
        ``"z2"``…) or any per-particle array of N numbers (integers: categories; floats: a colour bar),
        kept under ``name`` (default ``"value"``) for the histogram and the colour menu.

        >>> explorer.colour_by(np.load("local_resolution.npy"), "local resolution")
        """
        if isinstance(values, str):
            array = self.values_of(values) if values != "cluster" else None
            label = values
        else:
            label = name or "value"
            array = self._loaded_values[label] = self._check_values(values)
        color = values if isinstance(values, str) and values in COLORS else array
        self.values, self.categorical = color_values(self.run, color, None if self.clusters is None else self.clusters.labels)
        self.color = label
        self._table["color"] = _column(self.values, self.categorical)
        if "plot" in self.__dict__:  # drawn already: draw again in the new colours
            import holoviews as hv

            del self.__dict__["plot"]
            # A pipe of its own for the new plot: the old one's operation expects the old colours.
            self._shown_pipe = hv.streams.Pipe(data=self._table.iloc[self.working])
            if "widget" in self.__dict__:
                self._pane.object = self.plot
                self._sync_colour_menu()
        for callback in self._region_listeners:
            callback()

    color_by = colour_by

    def _check_values(self, values) -> np.ndarray:
        values = np.asarray(values)
        if values.shape != (len(self.coords),):
            raise InputError(None, f"colour array has shape {values.shape}, expected ({len(self.coords)},)", "pass one value per particle of the run")
        return values

    # --- clusters ------------------------------------------------------------------------------

    def cluster_members(self, cluster: int) -> np.ndarray:
        """Rows of ``run.z`` of k-means cluster ``cluster`` that are shown."""
        if self.clusters is None:
            raise InputError(None, "this explorer has no k-means clusters", "make it with k=<number of clusters>")
        k = len(self.clusters.centers)
        if not 0 <= int(cluster) < k:
            raise InputError(None, f"cluster {cluster} does not exist", f"pick a cluster from 0 to {k - 1}")
        return np.flatnonzero((self.clusters.labels == int(cluster)) & self._mask(self.working))

    def select_clusters(self, clusters, mode: str = "replace") -> None:
        """Select whole k-means clusters: ``mode`` ``"replace"``, ``"add"`` them, ``"remove"`` them or keep
        only the selected particles ``"within"`` them."""
        clusters = [clusters] if np.ndim(clusters) == 0 else list(clusters)
        members = np.concatenate([self.cluster_members(c) for c in clusters]) if clusters else np.zeros(0, np.int64)
        self._combine(members, mode)

    def cluster_selected(self) -> dict[int, bool]:
        """For each cluster with shown particles: whether all of them are selected (its toggle is on)."""
        if self.clusters is None:
            return {}
        labels = self.clusters.labels
        shown, selected = self._mask(self.working), self._mask(self.positions)
        members = np.bincount(labels[shown], minlength=len(self.clusters.centers))
        chosen = np.bincount(labels[shown & selected], minlength=len(self.clusters.centers))
        return {c: bool(chosen[c] == members[c]) for c in range(len(members)) if members[c]}

    def _combine(self, positions, mode: str) -> None:
        if mode not in SELECT_MODES:
            raise InputError(None, f"unknown mode {mode!r}", f"use one of {', '.join(map(repr, SELECT_MODES))}")
        inside = self._mask(np.asarray(positions, dtype=np.int64)) & self._mask(self.working)
        current = self._mask(self.positions)
        inside = {"replace": inside, "add": current | inside, "remove": current & ~inside, "within": current & inside}[mode]
        self.positions = np.flatnonzero(inside)
        self._changed()

    # --- named regions -------------------------------------------------------------------------

    def store_region(self, name: str | None = None, positions=None, show: bool = True) -> str:
        """Keep the selection (or ``positions``, rows of ``run.z``) as region ``name`` (default
        ``"region 1"``, ``"region 2"``…); drawn on the plot if ``show``. Returns the name."""
        positions = self.positions if positions is None else positions
        name = self.regions.unique_name("region") if name is None else name
        self.regions.add(name, positions)
        if show and name not in self.shown_regions:
            self.shown_regions.append(name)
        self._regions_changed()
        return name

    def load_region(self, path: str | os.PathLike, name: str | None = None, show: bool = True) -> str:
        """Load a cryoDRGN index .pkl, a .npy/.txt of particle rows or a .star subset as a region
        (see :func:`~cryonb.core.analysis.read_region`), drawn on the plot; returns its name (default: the file's stem)."""
        positions = read_region(path, self.run.particles, len(self.coords))
        stem = os.path.basename(os.fspath(path)).split(".")[0] or "loaded"
        return self.store_region(self.regions.unique_name(stem) if name is None else name, positions, show)

    def select_region(self, name: str, mode: str = "replace") -> None:
        """Select region ``name`` (its shown particles): replacing, adding to, removing from or within the selection."""
        self._combine(self.regions[name], mode)

    def combine_regions(self, name: str, operation: str, names, show: bool = True) -> str:
        """Store the ``"union"``, ``"intersection"`` or ``"difference"`` (first less the others) of regions ``names`` as ``name``."""
        return self.store_region(name, self.regions.evaluate(operation, names), show)

    def remove_region(self, name: str) -> None:
        """Forget region ``name`` (the files it was saved to stay)."""
        self.regions.remove(name)
        self.shown_regions = [n for n in self.shown_regions if n != name]
        self._regions_changed()

    def show_regions(self, names) -> None:
        """Draw exactly the regions ``names`` on the plot, each in its colour (:meth:`region_color`)."""
        names = [names] if isinstance(names, str) else list(names)
        for name in names:
            self.regions.mask(name)  # an InputError for an unknown name
        self.shown_regions = names
        self._regions_changed()

    def region_color(self, name: str) -> str:
        """The colour region ``name`` is drawn in (by its place among the regions)."""
        return REGION_COLORS[self.regions.names.index(name) % len(REGION_COLORS)]

    def save_region(self, name: str, prefix: str | os.PathLike) -> dict:
        """Write region ``name`` next to ``prefix`` (.star or .cs, .ind.npy, .ind.pkl), as :meth:`save` the selection."""
        return self.regions.save(name, self.run.particles, prefix)

    def on_regions(self, callback) -> None:
        """Call ``callback()`` after regions are stored, removed or shown, and after the colours change."""
        self._region_listeners.append(callback)

    def _regions_changed(self) -> None:
        self._regions_pipe.send(self._region_table())
        for callback in self._region_listeners:
            callback()

    def _region_table(self) -> pd.DataFrame:
        """One row per (shown particle, shown region), the region's colour slot as category."""
        parts = [(np.flatnonzero(self.regions.mask(n) & self._mask(self.working)), self.regions.names.index(n) % len(REGION_COLORS))
                 for n in self.shown_regions if n in self.regions]
        rows = np.concatenate([p for p, _ in parts]) if parts else np.zeros(0, np.int64)
        slots = np.concatenate([np.full(len(p), c) for p, c in parts]) if parts else np.zeros(0, np.int64)
        return pd.DataFrame({"x": self.coords[rows, 0], "y": self.coords[rows, 1], "region": slots.astype(np.float32)})

    # --- trajectories --------------------------------------------------------------------------

    def add_anchor(self, position: int | None = None) -> None:
        """Add the particle at ``position`` (default: the one last clicked) as the next anchor of a trajectory."""
        position = self.picked if position is None else int(position)
        if position is None:
            raise InputError(None, "no particle is clicked", "click a particle on the plot, or pass its row of run.z")
        if not 0 <= position < len(self.coords):
            raise InputError(None, f"position {position} is out of range", f"pass a row of run.z, 0 to {len(self.coords) - 1}")
        self.anchors.append(position)
        self._anchors_changed()

    def anchors_from_centres(self) -> None:
        """Take the particles at the shown k-means centres as the anchors (in cluster order)."""
        if self.clusters is None:
            raise InputError(None, "this explorer has no k-means clusters", "make it with k=<number of clusters>, or click anchors")
        self.anchors = [int(c) for c in self.centres]
        self._anchors_changed()

    def clear_anchors(self) -> None:
        self.anchors = []
        self.trajectory = None
        self.trajectory_notice = ""
        self._anchors_changed()
        self.show_path([])

    def make_trajectory(self, order: str = "given", path: str = "graph", n: int | None = 20, **graph_kw):
        """A :class:`~cryonb.core.analysis.Trajectory` through the anchors, drawn on the plot.

        ``order``: ``"given"`` or ``"shortest"`` (the shortest open tour of the anchors in latent
        space). ``path``: ``"graph"`` (through the particles' nearest-neighbour graph, on the data)
        or ``"straight"`` (lines in latent space). ``n``: latents along the way, evenly spaced.

        Anchors in separate parts of the graph (well-separated clusters) are joined across the
        shortest gaps between the parts (``graph_kw`` ``disconnected="bridge"``, the default; or
        ``"grow"``, ``"raise"``: see :func:`~cryonb.core.analysis.graph_path`): the jumps are drawn
        dashed in orange, and the warning is kept as ``trajectory_notice``.
        """
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", GraphGapWarning)
            made = trajectory(self.run.z, self.anchors, order=order, path=path, n=n, **graph_kw)
        notices = [str(c.message) for c in caught if issubclass(c.category, GraphGapWarning)]
        for c in caught:
            warnings.warn_explicit(c.message, c.category, c.filename, c.lineno)  # as the notebook would have shown them
        self.trajectory, self.trajectory_notice = made, " ".join(notices)
        self.anchors = [int(a) for a in self.trajectory.anchors]  # in the order visited
        self._anchors_changed()
        if path == "graph":  # through the particles it passes (latents between them have no 2D place)
            particles = self.trajectory.particles
            self.show_path(particles[particles >= 0], gaps=_drawn_gaps(particles, self.trajectory.gaps))
        else:  # straight lines in latent space: drawn between the anchors' 2D places
            self.path = self.trajectory.anchors.copy()
            self._path_pipe.send([self.coords[self.trajectory.anchors]])
            self._gap_pipe.send([])
        return self.trajectory

    def export_trajectory(self, outdir: str | os.PathLike, maps: bool = True, prefix: str = "traj") -> dict:
        """Write the trajectory's latents as ``<outdir>/z-path.txt`` and, with ``maps``, its maps
        ``<outdir>/<prefix>_000.mrc``… (``Run.write_volumes``). Returns ``{"z": path, "maps": [paths]}``."""
        if self.trajectory is None:
            raise InputError(outdir, "no trajectory is made yet", "add anchors and call make_trajectory() (or press Make path)")
        from pathlib import Path

        outdir = Path(outdir)
        outdir.mkdir(parents=True, exist_ok=True)
        written = {"z": self.trajectory.save(outdir / "z-path.txt"), "maps": []}
        if maps:
            if getattr(self.run, "model", None) is None:
                raise InputError(outdir, "this run has no model to make maps with (z-path.txt is written)",
                                 "open the run from its folder (Run.open) to decode maps")
            written["maps"] = self.run.write_volumes(self.trajectory.z, outdir, prefix)
        return written

    def play_trajectory(self, **kwargs):
        """A :class:`~cryonb.widgets.trajectory_player.TrajectoryPlayer` of the trajectory's maps."""
        if self.trajectory is None:
            raise InputError(None, "no trajectory is made yet", "add anchors and call make_trajectory() (or press Make path)")
        from .trajectory_player import TrajectoryPlayer

        return TrajectoryPlayer(self.run, self.trajectory.z, **kwargs)

    def _anchors_changed(self) -> None:
        anchors = np.asarray(self.anchors, dtype=np.int64)
        self._anchors_pipe.send(pd.DataFrame({"x": self.coords[anchors, 0], "y": self.coords[anchors, 1],
                                              "label": [str(i + 1) for i in range(len(anchors))]}))
        for callback in self._region_listeners:
            callback()

    def select_range(self, values, low: float | None = None, high: float | None = None, mode: str = "replace") -> None:
        """Select the shown particles whose value lies in [low, high] (``None``: open on that side).

        ``values``: a name of :meth:`value_names` (``"norm"``, ``"z2"``, ``"defocus_u"``…) or N values.
        ``mode``: ``"replace"`` the selection, keep only the selected particles ``"within"`` the
        range (a lasso, then a range: both), or ``"add"`` the range to the selection.
        """
        if mode not in RANGE_MODES:
            raise InputError(None, f"unknown mode {mode!r}", f"use one of {', '.join(map(repr, RANGE_MODES))}")
        inside = self._mask(range_select(self.values_of(values), low, high)) & self._mask(self.working)
        if mode == "within":
            inside &= self._mask(self.positions)
        elif mode == "add":
            inside |= self._mask(self.positions)
        self.positions = np.flatnonzero(inside)
        self._changed()

    def keep(self) -> None:
        """Restrict the working set to the selection (which stays selected)."""
        self.working = self.positions.copy()
        self._changed(shown=True)

    def remove(self) -> None:
        """Drop the selection from the working set; nothing stays selected."""
        self.working = np.flatnonzero(self._mask(self.working) & ~self._mask(self.positions))
        self.positions = np.zeros(0, np.int64)
        self._changed(shown=True)

    def invert(self) -> None:
        """Select the rest of the working set instead."""
        self.positions = np.flatnonzero(self._mask(self.working) & ~self._mask(self.positions))
        self._changed()

    def reset(self) -> None:
        """Show every particle again, with nothing selected."""
        self.working = np.arange(len(self.coords))
        self.positions = np.zeros(0, np.int64)
        self._changed(shown=True)

    def show_path(self, indices, gaps=None) -> None:
        """Draw a traversal through the particles at ``indices`` (rows of ``run.z``, e.g. ``GraphPath.indices``).

        ``gaps``: True where the step into a particle jumps between separate parts of the graph
        (``GraphPath.gaps``): those steps are drawn dashed in orange, off the data.
        """
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if indices.size and (indices.min() < 0 or indices.max() >= len(self.coords)):
            raise InputError(None, f"path indices out of range for {len(self.coords)} particles", "pass rows of run.z")
        gaps = np.zeros(len(indices), bool) if gaps is None else np.asarray(gaps, bool).reshape(-1)
        if len(gaps) != len(indices):
            raise InputError(None, f"{len(gaps)} gap flags for a path of {len(indices)} particles", "pass one flag per particle")
        self.path = indices
        steps = np.flatnonzero(gaps[1:]) + 1  # the black line breaks where it jumps: the jump is drawn dashed
        self._path_pipe.send([self.coords[piece] for piece in np.split(indices, steps)])
        self._gap_pipe.send([self.coords[[indices[i - 1], indices[i]]] for i in steps])

    def pick(self, x: float, y: float) -> int:
        """Pick the shown particle nearest to (x, y), in the scatter's data coordinates."""
        shown = self.coords[self.working]
        self.picked = int(self.working[np.argmin(((shown - (x, y)) ** 2).sum(1))])
        self._picked_pipe.send(self.coords[[self.picked]])
        for callback in self._pick_listeners:
            callback(self.picked)
        return self.picked

    def _clicked(self, x: float, y: float) -> None:
        self.pick(x, y)
        if self.anchor_on_click:
            self.add_anchor(self.picked)

    def on_pick(self, callback) -> None:
        """Call ``callback(position)`` when a particle is clicked (see :meth:`pick`)."""
        self._pick_listeners.append(callback)

    def on_selection(self, callback) -> None:
        """Call ``callback(positions)`` after every change of the selection or the working set."""
        self._listeners.append(callback)

    def save(self, prefix: str | os.PathLike) -> dict:
        """Write the selection next to ``prefix`` (.star or .cs, .ind.npy, .ind.pkl); see ``save_selection``."""
        if self.run.particles is None:
            raise InputError(prefix, "the run has no particles to save", "open the run with them: Run.open(run_dir, particles)")
        if not self.positions.size:
            raise InputError(prefix, "no particles are selected", "select some with the lasso or box tool first")
        return save_selection(self.run.particles.subset(self.positions), prefix)

    def gallery(self, **kwargs):
        """A :class:`~cryonb.widgets.gallery.ParticleGallery` of the current selection."""
        from .gallery import ParticleGallery

        return ParticleGallery(self.run, self.positions, **kwargs)

    @property
    def centres(self) -> np.ndarray:
        """Rows of ``run.z`` of the particles marking k-means centres: one per cluster that still has particles shown."""
        if self.clusters is None:
            return np.zeros(0, np.int64)
        return self.clusters.on_data[np.unique(self.clusters.labels[self.working])]

    @property
    def ranges(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """The plot's axis ranges ((x0, x1), (y0, y1)): every particle's coordinates, padded by 5 %."""
        return padded_range(self.coords[:, 0]), padded_range(self.coords[:, 1])

    @property
    def summary(self) -> str:
        return f"{len(self.positions):,} selected of {len(self.working):,}"

    def _mask(self, positions: np.ndarray) -> np.ndarray:
        """Boolean mask (N,) of ``positions``: set operations in O(N), without sorting."""
        mask = np.zeros(len(self.coords), bool)
        mask[positions] = True
        return mask

    def _changed(self, shown: bool = False) -> None:
        if shown:
            self._shown_pipe.send(self._table.iloc[self.working])
            self._centres_pipe.send(self.coords[self.centres])
            if self.picked is not None and not self._mask(self.working)[self.picked]:
                self.picked = None  # removed from view: no longer marked
                self._picked_pipe.send(self.coords[:0])
            if self.shown_regions:
                self._regions_pipe.send(self._region_table())
        self._selected_pipe.send(self._table.iloc[self.positions])
        if "widget" in self.__dict__:  # only once the view has been built
            self._label.value = self.summary
            if shown:
                self._draw_histogram()  # of the particles shown
        for callback in self._listeners:
            callback(self.positions)

    # --- HoloViews ---------------------------------------------------------------------------

    def _build_streams(self):
        import holoviews as hv

        self._shown_pipe = hv.streams.Pipe(data=self._table)
        self._selected_pipe = hv.streams.Pipe(data=self._table.iloc[:0])
        self._path_pipe = hv.streams.Pipe(data=[])
        self._gap_pipe = hv.streams.Pipe(data=[])  # a path's jumps between separate parts of the graph
        self._centres_pipe = hv.streams.Pipe(data=self.coords[self.centres])
        self._picked_pipe = hv.streams.Pipe(data=self.coords[:0])
        self._regions_pipe = hv.streams.Pipe(data=self._region_table())
        self._anchors_pipe = hv.streams.Pipe(data=pd.DataFrame({"x": [], "y": [], "label": []}))
        self.anchor_on_click = False  # a click adds the particle as an anchor (besides picking it)
        self.lasso = hv.streams.Lasso()
        self.box = hv.streams.BoundsXY()
        self.tap = hv.streams.Tap()
        self.tap.add_subscriber(lambda x, y: None if x is None or not len(self.working) else self._clicked(x, y))
        self.lasso.add_subscriber(lambda geometry: None if geometry is None else self.select_polygon(geometry))
        self.box.add_subscriber(lambda bounds: None if bounds is None else self.select_box(*bounds))

    @functools.cached_property
    def plot(self):
        """The HoloViews overlay: shaded particles, selection, k-means centres and path."""
        import holoviews as hv
        import holoviews.plotting.bokeh  # noqa: F401  (registers the Bokeh backend, displays nothing)
        from holoviews.operation.datashader import datashade

        points = lambda data: hv.Points(data, ["x", "y"], ["color"])  # noqa: E731
        shown = hv.DynamicMap(points, streams=[self._shown_pipe])
        label = self.color if isinstance(self.color, str) else "value"
        # The plot's size is fixed, so the images are shaded at that size and follow only the axis
        # ranges: HoloViews' PlotSize stream (its default) logs UnsetValueError tracebacks when the
        # browser reports the frame's width before its height, and would shade every image twice.
        size = dict(width=self._size[0], height=self._size[1], streams=[hv.streams.RangeXY])
        base = self.shade(shown, **size).opts(tools=["lasso_select", "box_select", "tap"])
        self.lasso.source = self.box.source = self.tap.source = base
        selected = self._spread(datashade(hv.DynamicMap(points, streams=[self._selected_pipe]), cmap=[SELECTED_COLOR], **size), self.point_size)
        # Regions: each particle in the colour of a shown region holding it (the largest colour slot
        # among them, mapped linearly onto the region colours; datashade's count_cat fails on an
        # empty or single-point layer). One pixel wider than the particles and the selection: a
        # region shows as a halo around them.
        region_points = hv.DynamicMap(lambda data: hv.Points(data, ["x", "y"], ["region"]), streams=[self._regions_pipe])
        regions = self.shade_regions(region_points, **size)
        path = hv.DynamicMap(hv.Path, streams=[self._path_pipe]).opts(color="black", line_width=2)
        gaps = hv.DynamicMap(hv.Path, streams=[self._gap_pipe]).opts(color=GAP_COLOR, line_width=3, line_dash="dashed")
        anchors = hv.DynamicMap(lambda data: hv.Points(data, ["x", "y"], ["label"]), streams=[self._anchors_pipe])
        anchors = anchors.opts(marker="diamond", size=13, color="white", line_color=ANCHOR_COLOR, line_width=2)
        anchor_labels = hv.DynamicMap(lambda data: hv.Labels(data, ["x", "y"], ["label"]), streams=[self._anchors_pipe])
        anchor_labels = anchor_labels.opts(text_font_size="8pt", text_color=ANCHOR_COLOR, yoffset=0, text_font_style="bold")
        # The selection is an image (no legend of its own) and the clicked ring is often not drawn:
        # markers at no place give both a legend entry.
        ring = dict(marker="circle", size=18, fill_alpha=0, line_color="black", line_width=2.5)
        key = hv.Points([(np.nan, np.nan)], ["x", "y"], label="selected").opts(marker="square", size=10, color=SELECTED_COLOR)
        key = key * hv.Points([(np.nan, np.nan)], ["x", "y"], label="clicked").opts(**ring)
        picked = hv.DynamicMap(lambda data: hv.Points(data, ["x", "y"]), streams=[self._picked_pipe]).opts(**ring)
        overlay = base * regions * selected * key * path * gaps * anchors * anchor_labels * picked
        if self.clusters is not None:
            centres = hv.DynamicMap(lambda data: hv.Points(data, ["x", "y"], label="k-means centres"), streams=[self._centres_pipe])
            overlay = overlay * centres.opts(marker="x", size=14, color="black", line_width=3)
        xlim, ylim = self.ranges
        # Pan, not wheel-zoom, is active: scrolling the notebook over the plot must scroll the
        # notebook. The legend sits above the plot, so that it does not narrow it.
        return overlay.opts(width=self._size[0], height=self._size[1], xlabel="", ylabel="", xlim=xlim, ylim=ylim,
                            title=f"coloured by {label}", legend_position="top", legend_cols=4, active_tools=["pan"],
                            hooks=[no_wheel_zoom, selections_start_in_margins])

    def shade(self, points, **size):
        """The operation drawing ``points`` (an ``hv.Points`` or a DynamicMap of them, value ``"color"``)
        in the explorer's colours: categories as a blend of their palette colours, numbers as a mean
        with a colour bar. Every point is spread to at least ``point_size`` pixels around it."""
        import colorcet
        import datashader as ds
        from holoviews.operation.datashader import datashade, rasterize

        label = self.color if isinstance(self.color, str) else "value"
        if self.categorical:
            categories = self._table["color"].cat.categories
            palette = dict(zip(categories, colorcet.palette["glasbey_category10"][: len(categories)]))
            # min_alpha: a pixel of one particle is coloured nearly as strongly as a dense one.
            shaded = datashade(points, aggregator=ds.count_cat("color"), color_key=palette, min_alpha=160, **size)
        else:
            cmap = "colorwheel" if label in CYCLIC else "viridis"
            shaded = rasterize(points, aggregator=ds.mean("color"), **size).opts(cmap=cmap, colorbar=True, clabel=label)
            # "source": a pixel keeps its own mean and empty ones take a neighbour's (the default,
            # "add", summed the means of neighbouring pixels: colours beyond the data's range).
            return self._spread(shaded, self.point_size, how="source")
        return self._spread(shaded, self.point_size)

    def shade_regions(self, points, **size):
        """The operation drawing region points (value ``"region"``: the colour slot) in ``REGION_COLORS``."""
        import datashader as ds
        from holoviews.operation.datashader import datashade

        shaded = datashade(points, aggregator=ds.max("region"), cmap=list(REGION_COLORS), clims=(0, len(REGION_COLORS) - 1),
                           cnorm="linear", min_alpha=255, **size)
        from holoviews.operation.datashader import spread

        return spread(shaded, px=self.point_size + 1)  # a fixed halo: one operation less to run on every selection

    @staticmethod
    def _spread(shaded, px: int, how: str | None = None):
        from holoviews.operation.datashader import dynspread, spread

        if px > 0:
            shaded = spread(shaded, px=px, how=how)
        return dynspread(shaded, threshold=0.8, max_px=max(3, px + 1), how=how)

    def cluster_color(self, cluster: int) -> str:
        """The colour of k-means cluster ``cluster`` when the plot is coloured by cluster."""
        import colorcet

        return colorcet.palette["glasbey_category10"][int(cluster) % 256]

    # --- ipywidgets --------------------------------------------------------------------------

    @functools.cached_property
    def widget(self):
        """The view: status line, the plot (a Bokeh model synced both ways by jupyter_bokeh) and buttons."""
        import ipywidgets as w
        import panel as pn

        load_bokehjs()
        self._label = w.Label(self.summary)
        self._label.add_class("cryonb-explorer-count")
        buttons = []
        for name, action in [("Keep", self.keep), ("Remove", self.remove), ("Invert", self.invert), ("Reset", self.reset)]:
            button = w.Button(description=name)
            button.on_click(lambda _, action=action: action())
            buttons.append(button)
        self._prefix = w.Text(value="selection", description="prefix", layout=w.Layout(width="320px"))
        self._prefix.add_class("cryonb-explorer-prefix")
        save_button = w.Button(description="Save selection", icon="save", button_style="primary",
                               layout=w.Layout(width="auto", min_width="max-content"))
        save_button.add_class("cryonb-explorer-save")
        save_button.on_click(lambda _: self._save_clicked())
        # Below the button, wrapping: a Label cuts the message, and long paths ran off the edge.
        self._saved = w.HTML(layout=w.Layout(width=f"{self._size[0]}px"))
        self._saved.add_class("cryonb-explorer-saved")
        from . import explorer_panels as panels

        self._pane = pn.pane.HoloViews(self.plot)
        plot = self._plot_widget = plot_widget(self._pane)
        self._colour_menu = w.Dropdown(options=self.colour_names(), description="colour by", style={"description_width": "initial"},
                                       layout=w.Layout(width="240px"))
        self._colour_menu.add_class("cryonb-explorer-colour")
        self._syncing_menu = False
        self._sync_colour_menu()
        self._colour_menu.observe(self._colour_chosen, "value")
        top = [w.HBox([self._label, self._colour_menu], layout=w.Layout(justify_content="space-between", width=f"{self._size[0]}px"))]
        if self.clusters is not None:
            top.append(panels.cluster_toggles(self))
        sections = [("Select by value (histogram)", self._range_control()), ("Regions", panels.regions_panel(self)),
                    ("Trajectory", panels.trajectory_panel(self)), ("More views: pair grid, 3-D", panels.views_panel(self))]
        accordion = w.Accordion(children=[child for _, child in sections], titles=tuple(title for title, _ in sections), selected_index=None)
        accordion.add_class("cryonb-explorer-tools")
        self._tools = accordion
        widget = w.VBox([*top, plot, w.HBox(buttons), accordion, w.HBox([self._prefix, save_button]), self._saved])
        widget.add_class("cryonb-explorer")
        return widget

    def _colour_chosen(self, change) -> None:
        if not self._syncing_menu and change["new"] is not None and change["new"] != self.color:
            self.colour_by(change["new"])

    def _sync_colour_menu(self) -> None:
        names = self.colour_names()
        label = self.color if isinstance(self.color, str) else "value"
        if label not in names:
            names.append(label)
        self._syncing_menu = True
        try:
            self._colour_menu.options = names
            self._colour_menu.value = label
        finally:
            self._syncing_menu = False

    def _range_control(self):
        """"Select by value": a histogram of a per-particle value over the shown particles, a range
        slider on it, and a button that selects the range (replacing, within or adding to the selection)."""
        import ipywidgets as w

        wide = {"description_width": "initial"}
        self._range_name = w.Dropdown(options=self.value_names(), value="norm", description="value", style=wide,
                                      layout=w.Layout(width="200px"))
        self._range_slider = w.FloatRangeSlider(description="range", style=wide, readout_format=".4g", continuous_update=False,
                                                layout=w.Layout(width=f"{self._size[0]}px"))
        self._range_mode = w.ToggleButtons(options=RANGE_MODES, value="replace", style={"button_width": "70px"})
        self._range_mode.add_class("cryonb-explorer-range-mode")
        button = w.Button(description="Select range", icon="filter", layout=w.Layout(width="auto", min_width="max-content"))
        button.on_click(lambda _: self.select_range(self._range_name.value, *self._range_slider.value, mode=self._range_mode.value))
        self._histogram = w.Image(format="png", layout=w.Layout(width=f"{self._size[0]}px"))
        for part, name in [(self._range_name, "name"), (self._range_slider, "slider"), (button, "select"), (self._histogram, "histogram")]:
            part.add_class(f"cryonb-explorer-range-{name}")
        self._range_name.observe(lambda _: self._range_value_changed(), "value")
        self._range_slider.observe(lambda _: self._draw_histogram(), "value")
        self._range_value_changed()
        box = w.VBox([w.HBox([self._range_name, self._range_mode, button]), self._range_slider, self._histogram])
        box.add_class("cryonb-explorer-range")
        self.on_regions(self._range_names_changed)  # arrays given to colour_by join the menu
        return box

    def _range_names_changed(self):
        names = self.value_names()
        if list(self._range_name.options) != names:
            value = self._range_name.value
            self._range_name.options = names
            self._range_name.value = value if value in names else "norm"

    def _range_value_changed(self):
        values = self.values_of(self._range_name.value)
        finite = values[np.isfinite(values)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        high = high if high > low else low + 1.0
        with self._range_slider.hold_trait_notifications():
            self._range_slider.min, self._range_slider.max = min(low, self._range_slider.min), max(high, self._range_slider.max)
            self._range_slider.min, self._range_slider.max = low, high
            self._range_slider.step = (high - low) / 1000
            self._range_slider.value = (low, high)
        self._draw_histogram()

    def _draw_histogram(self):
        values = self.values_of(self._range_name.value)
        self._histogram.value = render_histogram(values[self.working], *self._range_slider.value, label=self._range_name.value,
                                                 width=self._size[0] / 80)

    def _save_clicked(self):
        try:
            written = self.save(self._prefix.value)
        except (InputError, OSError) as error:
            message = str(error)
        else:
            message = f"wrote {len(self.positions):,} particles to " + ", ".join(str(p) for p in written.values())
        self._saved.value = f'<div style="overflow-wrap: anywhere; line-height: 1.4">{html.escape(message)}</div>'

    @property
    def saved_message(self) -> str:
        """What the Save button last reported (written files, or why nothing was written)."""
        return html.unescape(re.sub(r"<[^>]+>", "", self._saved.value)) if "widget" in self.__dict__ else ""

    def _repr_mimebundle_(self, **kwargs):
        load_bokehjs()  # shown again in another page (JupyterLab reloaded): BokehJS there too
        return self.widget._repr_mimebundle_(**kwargs)


def render_histogram(values, low: float, high: float, label: str = "", width: float = 7.5, bins: int = 60) -> bytes:
    """PNG of a histogram of ``values`` with the range [low, high] shaded in the selection's colour."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    figure = Figure(figsize=(width, 1.6), dpi=80, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.hist(values, bins=bins, color="0.45")
    axes.axvspan(low, high, color=SELECTED_COLOR, alpha=0.25, lw=0)
    inside = int(((values >= low) & (values <= high)).sum())
    axes.set_title(f"{label}: {inside:,} of {len(values):,} shown particles in range", fontsize=9)
    axes.tick_params(labelsize=8)
    axes.set_yticks([])
    return figure_png(figure)


def _column(values: np.ndarray, categorical: bool):
    """Values as a pandas column; categories named by their values, in sorted order."""
    if not categorical:
        return values.astype(np.float32)
    categories, codes = np.unique(values, return_inverse=True)
    return pd.Categorical.from_codes(codes.reshape(-1), [str(c) for c in categories])


def _drawn_gaps(particles: np.ndarray, gaps: np.ndarray) -> np.ndarray:
    """For the particles of a trajectory (``particles >= 0``): whether the way into each from the
    particle drawn before it jumps a gap (any latent since then marked in ``gaps``)."""
    drawn = np.flatnonzero(particles >= 0)
    jumped = np.cumsum(gaps)[drawn]
    return np.r_[False, np.diff(jumped) > 0] if len(drawn) else np.zeros(0, bool)
