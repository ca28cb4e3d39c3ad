"""Two maps side by side in NGL, their cameras linked and one contour level for both."""

from __future__ import annotations

import html

import ipywidgets as w
import numpy as np

from ..core.analysis.selection import selection_latent
from ..core.errors import InputError
from .volume_viewer import VolumeViewer, _call_ngl, check_maps

class MapCompare:
    """Maps ``a`` and ``b`` ([z, y, x], ``apix`` Å) in two NGL views whose cameras move together.

    >>> MapCompare(map_a, map_b, labels=("open", "closed"))
    >>> MapCompare.from_selections(run, positions_a, positions_b, how="medoid")
    >>> MapCompare.from_trajectory(player, 0, -1)

    Rotating or zooming one view turns the other in the browser (nglview's camera sync, no kernel
    round trip); :meth:`orient` sets both from Python. The threshold (σ of each map) and opacity
    sliders act on both.
    """

    def __init__(self, a=None, b=None, apix: float | None = None, *, labels=("A", "B"), threshold: float = 2.0,
                 opacity: float = 1.0):
        self.viewer = VolumeViewer(threshold=threshold, opacity=opacity)  # the shared sliders live here
        self.other = VolumeViewer(threshold=threshold, opacity=opacity, color="#d9a88f")
        self.threshold, self.opacity = self.viewer.threshold, self.viewer.opacity
        for name in ("threshold", "opacity"):
            w.link((getattr(self.viewer, name), "value"), (getattr(self.other, name), "value"))
        self.views = (self.viewer.view, self.other.view)
        self._link_cameras()
        self.titles = (w.HTML(), w.HTML())
        panes = []
        for viewer, title in zip((self.viewer, self.other), self.titles):
            viewer.view.layout.width = "100%"
            pane = w.VBox([title, viewer.view, viewer.level_label], layout=w.Layout(width="50%"))
            pane.add_class("cryonb-compare-pane")
            panes.append(pane)
        self.widget = w.VBox([w.HBox(panes), w.HBox([self.threshold, self.opacity])])
        self.widget.add_class("cryonb-map-compare")
        self.labels = ("A", "B")
        if a is not None or b is not None:
            self.show_maps(a, b, apix, labels=labels)

    def show_maps(self, a, b, apix: float | None = None, *, labels=("A", "B")) -> MapCompare:
        """Show maps ``a`` and ``b`` in place of the current ones (the cameras stay)."""
        labels = tuple(str(label) for label in labels)
        if len(labels) != 2:
            raise InputError(None, f"two labels are needed, got {len(labels)}", "pass labels=(name_a, name_b)")
        (a, b), apix = (_one_map(a, apix), _one_map(b, apix)), check_maps(a, apix)[1]
        self.viewer.show_map(a, apix)
        self.other.show_map(b, apix)
        self.labels = labels
        for title, label in zip(self.titles, labels):
            title.value = f"<b>{html.escape(label)}</b>"
        return self

    def show_selections(self, run, positions_a, positions_b, how: str = "mean", *, labels=None) -> MapCompare:
        """Show the run's maps at two selections' ``"mean"`` or ``"medoid"`` latents."""
        if not run.zdim:
            raise InputError(None, "the run has no latent space", "compare two maps with MapCompare(a, b)")
        z = np.concatenate([selection_latent(run.z, p, how) for p in (positions_a, positions_b)])
        maps = run.volumes(z.astype(np.float32))
        if labels is None:
            labels = [f"{name}: {how} of {len(np.atleast_1d(p))}" for name, p in (("A", positions_a), ("B", positions_b))]
        return self.show_maps(maps[0], maps[1], run.apix, labels=labels)

    @property
    def maps(self) -> np.ndarray:
        """The two maps (2, D, D, D)."""
        return np.concatenate([self.viewer.maps, self.other.maps])

    def _link_cameras(self):
        a, b = self.views
        # In the browser: nglview orients the other view's camera as the pointer moves one.
        a._set_sync_camera([b])
        b._set_sync_camera([a])
        # Once, through the kernel: B starts from A's first camera (two maps can be fitted differently).
        def first_camera(change):
            if len(change["new"]) == 16:
                a.unobserve(first_camera, "_camera_orientation")
                _call_ngl(b, "set_camera_orientation", list(change["new"]))

        a.observe(first_camera, "_camera_orientation")

    def orient(self, orientation) -> MapCompare:
        """Set both cameras to ``orientation`` (NGL's 16 numbers, as in ``view._camera_orientation``)."""
        orientation = [float(v) for v in np.asarray(orientation, float).reshape(-1)]
        if len(orientation) != 16:
            raise InputError(None, f"a camera orientation has 16 numbers, got {len(orientation)}",
                             "pass a 4×4 matrix or view._camera_orientation")
        for view in self.views:
            _call_ngl(view, "set_camera_orientation", orientation)
        return self

    @classmethod
    def from_selections(cls, run, positions_a, positions_b, how: str = "mean", *, labels=None,
                        **options) -> MapCompare:
        """The run's maps at two selections' ``"mean"`` or ``"medoid"`` latents."""
        return cls(**options).show_selections(run, positions_a, positions_b, how, labels=labels)

    @classmethod
    def from_trajectory(cls, player, i: int = 0, j: int = -1, **options) -> MapCompare:
        """Frames ``i`` and ``j`` of a :class:`TrajectoryPlayer` (or of maps (B, D, D, D) with ``apix=``);
        ``into=`` an existing MapCompare shows them there."""
        maps = getattr(player, "maps", player)
        apix = options.pop("apix", getattr(player, "apix", None))
        n = len(maps)
        for k in (i, j):
            if not -n <= k < n:
                raise InputError(None, f"frame {k} is out of range", f"pick frames from 0 to {n - 1}")
        labels = options.pop("labels", (f"frame {i % n}", f"frame {j % n}"))
        into = options.pop("into", None) or cls(**options)
        return into.show_maps(maps[i], maps[j], apix, labels=labels)

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def _one_map(volume, apix) -> np.ndarray:
    maps, _ = check_maps(volume, apix)
    if len(maps) != 1:
        raise InputError(None, f"MapCompare takes one map on each side, got {len(maps)}", "pass two [z, y, x] maps")
    return maps[0]
