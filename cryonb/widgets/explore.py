"""One linked view of a run: latent explorer, gallery of the selection, and the selection's mean-z map."""

from __future__ import annotations

import os

import ipywidgets as w
import numpy as np

from cryonb.core.errors import InputError
from cryonb.core.particles import load_particles
from cryonb.core.run import Run
from cryonb.core.training import Trainer

from .gallery import ParticleGallery
from .latent_explorer import LatentExplorer


HINT = ("<i>3D view: click a particle on the plot to see the map at its latent, or select particles "
        "and press <b>Mean-z volume</b> for the map at their mean latent.</i>")


class Exploration(w.VBox):
    """The explorer above the gallery of its selection and, where available, a volume viewer.

    The gallery follows the selection; "Mean-z volume" shows the map decoded at the mean latent
    of the selection, and clicking a particle in the scatter shows the map at its latent.
    """

    def __init__(self, run: Run, explorer: LatentExplorer, **kwargs):
        self.run, self.explorer = run, explorer
        self.gallery = ParticleGallery(run, explorer.positions)
        self.viewer, why_not = _volume_viewer(run)
        self.volume_button = w.Button(description="Mean-z volume", icon="cube", disabled=True)
        self.volume_button.on_click(lambda _: self.show_mean_volume())
        self.compare_button = w.Button(description="Compare: pin A", icon="columns", disabled=True,
                                       tooltip="pin this selection, then select another and compare their maps")
        self.compare_button.add_class("cryonb-explore-compare")
        self.compare_button.on_click(lambda _: self._compare_clicked())
        self.pinned = None  # the positions pinned as A
        self.comparison = _map_compare() if self.viewer is not None else None
        if self.viewer is None:
            volume = [w.Label(f"No 3D view: {why_not}")]
        else:
            # A hint until the first map is asked for; then the 3D view takes its place (an empty
            # 3D view was a blank box of 300 px).
            self.volume_hint = w.HTML(HINT)
            self.volume_hint.add_class("cryonb-explore-volume-hint")
            self.volume_box = w.VBox([self.volume_hint])
            volume = [w.HBox([self.volume_button, self.compare_button]), self.volume_box]
        explorer.on_selection(self._selection_changed)
        if self.viewer is not None:
            explorer.on_pick(lambda position: self.show_volume(self.run.z[position]))
        super().__init__([explorer.widget, w.HTML("<b>Selected particles</b>"), self.gallery, *volume], **kwargs)
        self.add_class("cryonb-explore")

    def mean_latent(self) -> np.ndarray:
        """The mean latent (1, zdim) of the selection."""
        return self.run.z[self.explorer.positions].mean(0, keepdims=True)

    def show_mean_volume(self) -> None:
        self.show_volume(self.mean_latent())

    def show_volume(self, z) -> None:
        """Show the map at latent ``z`` (1, zdim) in the 3D view, which replaces the hint the first time."""
        self.viewer.show(z)
        if self.volume_box.children != (self.viewer.widget,):
            self.volume_box.children = (self.viewer.widget,)

    def compare(self, positions_a, positions_b, how: str = "mean"):
        """Show the maps at two selections' mean (or medoid) latents side by side; returns the MapCompare."""
        self.comparison.show_selections(self.run, positions_a, positions_b, how)
        self.volume_box.children = (self.comparison.widget,)
        return self.comparison

    def _compare_clicked(self):
        positions = np.asarray(self.explorer.positions)
        if self.pinned is None:
            self.pinned = positions
            self.compare_button.description = f"Compare with A ({len(positions)})"
        else:
            self.compare(self.pinned, positions)
            self.pinned = None
            self.compare_button.description = "Compare: pin A"

    def _selection_changed(self, positions):
        self.gallery.show(positions)
        self.volume_button.disabled = not len(positions)
        self.compare_button.disabled = not len(positions)


def explore(
    source,
    coords=None,
    color=None,
    k: int | str | None = "auto",
    particles=None,
    *,
    n_neighbors: int | None = None,
    min_dist: float = 0.1,
) -> Exploration:
    """Explore a run: a :class:`Run`, a :class:`Trainer`, a run folder (``cryonb train`` output), or a
    shared bundle (:func:`cryonb.core.share.open_bundle`, or its folder).

    ``coords``, ``color``, ``k`` (k-means clusters: ``"auto"`` is one per 10 particles, from 2
    to 8; ``None`` for none) and UMAP's ``n_neighbors`` (``None``: 15, fewer for small sets)
    and ``min_dist`` are those of :class:`LatentExplorer`; ``coords`` and ``color`` default to
    ``"umap"`` and ``"cluster"``, or for a bundle to the 2D view and cluster labels saved in it.
    For a run folder, ``particles`` defaults to the particle file recorded in its configuration.
    """
    from cryonb.core.share import Bundle, is_bundle, open_bundle

    bundle = source if isinstance(source, Bundle) else open_bundle(source) if is_bundle(source) else None
    run = bundle.run if bundle is not None else _as_run(source, particles)
    if coords is None:
        coords = bundle.coords if bundle is not None and bundle.coords is not None else "umap"
    if color is None:
        color = bundle.clusters if bundle is not None and bundle.clusters is not None else "cluster"
        if not isinstance(color, str) and k == "auto":
            k = None  # the saved clusters colour the plot: no k-means of its own
    explorer = LatentExplorer(run, coords=coords, color=color, k=k, n_neighbors=n_neighbors, min_dist=min_dist)
    return Exploration(run, explorer)


def _as_run(source, particles) -> Run:
    if isinstance(source, Run):
        return source
    if isinstance(source, Trainer):
        return Run.from_trainer(source)
    if isinstance(source, (str, os.PathLike)):
        run = Run.open(source, particles)
        if run.particles is None and run.config.particles:
            run.particles = load_particles(run.config.particles)
        return run
    raise InputError(None, f"cannot explore a {type(source).__name__}", "pass a Run, a Trainer or a run folder")


def _map_compare():
    """An empty MapCompare, made now: NGL views first made inside a button's callback stay blank."""
    from .map_compare import MapCompare

    return MapCompare()


def _volume_viewer(run):
    """(VolumeViewer(run), None), or (None, why) when the 3D view cannot be built here."""
    from cryonb import widgets

    try:
        return widgets.VolumeViewer(run), None
    except ImportError as error:
        return None, str(error)
