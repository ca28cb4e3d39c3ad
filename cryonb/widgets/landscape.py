"""A view of a landscape analysis: the latent space coloured by a map PC, the sampled maps in map-PC
space coloured by state, and a state's (or a clicked map's) map in the volume viewer.

>>> result = analyze_landscape(run, 1000)
>>> LandscapeView(result, run)          # displays in a notebook cell
>>> LandscapeView(Landscape.load("runs/hinge/analysis/landscape"), run)   # from cryonb analyze --landscape

The view holds no analysis of its own: every array comes from the
:class:`~cryonb.core.analysis.landscape.Landscape` it is given.
"""

from __future__ import annotations

import functools

import ipywidgets as w
import numpy as np

from cryonb.core.analysis.embedding import pca
from cryonb.core.errors import InputError

from .bokeh_views import load_bokehjs, plot_widget

SIZE = (420, 380)


class LandscapeView:
    """Two plots and a volume viewer over ``landscape`` (of ``run``, whose maps it shows at full box).

    ``coords`` (N, 2) places the particles in the latent plot (default: the first two PCs of z).
    Without ``run`` the maps shown are the landscape's own linear model (mean + PCs, sketch box).
    """

    def __init__(self, landscape, run=None, coords=None, pc: int = 0):
        self.landscape, self.run = landscape, run
        if landscape.particle_coords is None:
            raise InputError(None, "the landscape has no map PCs for the particles",
                             "run analyze_landscape with regression=True")
        n = len(landscape.particle_coords)
        if coords is None:
            z = np.asarray(run.z) if run is not None else None
            coords = _two_pcs(z) if z is not None and len(z) == n else landscape.particle_coords[:, :2]
        self.coords = np.asarray(coords, dtype=np.float32)
        if self.coords.shape != (n, 2):
            raise InputError(None, f"coords have shape {self.coords.shape}, expected ({n}, 2)", "pass one (x, y) row per particle")
        n_pcs = landscape.particle_coords.shape[1]
        self.pc = w.Dropdown(options=[(f"map PC{i + 1}", i) for i in range(n_pcs)], value=pc, description="colour by",
                             layout=w.Layout(width="220px"))
        states = len(landscape.centers)
        self.state = w.Dropdown(options=[("—", None)] + [(f"state {i}", i) for i in range(states)], value=None,
                                description="show map", layout=w.Layout(width="220px"))
        self.caption = w.Label()
        for part, name in [(self.pc, "pc"), (self.state, "state"), (self.caption, "caption")]:
            part.add_class(f"cryonb-landscape-{name}")
        self.pc.observe(lambda change: self._latent_pipe.send(self._latent_table(change["new"])), "value")
        self.state.observe(lambda change: None if change["new"] is None else self.show_state(change["new"]), "value")
        self.shown: tuple[str, int] | None = None  # ("state", i) or ("map", i) once a map is shown
        self._build_streams()

    # --- what the view shows --------------------------------------------------------------

    def map_of(self, sample: int) -> tuple[np.ndarray, float]:
        """(map, apix) of sampled map ``sample``: generated from its z by the run, or the landscape's model of it."""
        result = self.landscape
        if self.run is not None:
            return np.asarray(self.run.volumes(result.z[sample : sample + 1]))[0], float(self.run.apix)
        return result.mean_map + result.unmask(result.coords[sample] @ result.components), result.apix

    def show_state(self, state: int) -> None:
        """Show the representative map of ``state`` (the sampled map nearest its centre)."""
        sample = int(self.landscape.representative[state])
        self._show(sample, f"state {state}: sampled map {sample} (particle {self.landscape.particle_index[sample]})")
        self.shown = ("state", state)

    def show_sample(self, sample: int) -> None:
        """Show sampled map ``sample``."""
        self._show(sample, f"sampled map {sample} (particle {self.landscape.particle_index[sample]}, "
                           f"state {self.landscape.labels[sample]})")
        self.shown = ("map", sample)

    def _show(self, sample: int, caption: str) -> None:
        volume, apix = self.map_of(sample)
        self.viewer.show_map(volume, apix)
        self.caption.value = caption
        self._picked_pipe.send(self.landscape.coords[sample : sample + 1, :2])

    def pick(self, x: float, y: float) -> int:
        """Show the sampled map nearest (x, y) in the map-PC plot; its index."""
        xy = self.landscape.coords[:, :2]
        sample = int(np.argmin(((xy - [x, y]) ** 2).sum(1)))
        self.show_sample(sample)
        return sample

    # --- HoloViews --------------------------------------------------------------------------

    def _latent_table(self, pc: int) -> dict:
        return {"x": self.coords[:, 0], "y": self.coords[:, 1], "value": self.landscape.particle_coords[:, pc]}

    def _build_streams(self):
        import holoviews as hv

        self._latent_pipe = hv.streams.Pipe(data=self._latent_table(self.pc.value))
        self._picked_pipe = hv.streams.Pipe(data=np.zeros((0, 2), np.float32))
        self.tap = hv.streams.Tap()
        self.tap.add_subscriber(lambda x, y: None if x is None else self.pick(x, y))

    @functools.cached_property
    def plots(self):
        """(latent plot, map-PC plot): HoloViews objects; ``map_points`` is the sampled maps' element."""
        import datashader as ds
        import holoviews as hv
        import holoviews.plotting.bokeh  # noqa: F401  (registers the Bokeh backend, displays nothing)
        from holoviews.operation.datashader import dynspread, rasterize

        result = self.landscape
        width, height = SIZE
        particles = hv.DynamicMap(lambda data: hv.Points(data, ["x", "y"], ["value"]), streams=[self._latent_pipe])
        latent = dynspread(rasterize(particles, aggregator=ds.mean("value"), width=width, height=height,
                                     streams=[hv.streams.RangeXY]), threshold=0.8)
        latent = latent.opts(cmap="viridis", colorbar=True, width=width, height=height, title="particles by map PC",
                             xlabel="", ylabel="", active_tools=["pan"])
        two = result.coords[:, :2] if result.coords.shape[1] > 1 else np.column_stack([result.coords[:, 0], np.zeros(len(result.coords))])
        maps = hv.Points({"x": two[:, 0], "y": two[:, 1], "state": result.labels.astype(str)}, ["x", "y"], ["state"])
        maps = maps.opts(color="state", cmap="Category10", size=4, alpha=0.7, tools=["tap"], width=width, height=height,
                         xlabel="map PC1", ylabel="map PC2", title="sampled maps by state", legend_position="right")
        self.tap.source = self.map_points = maps
        centres = hv.Points(two[result.representative], ["x", "y"]).opts(marker="circle", size=14, fill_alpha=0,
                                                                            line_color="black", line_width=2)
        picked = hv.DynamicMap(lambda data: hv.Points(data, ["x", "y"]), streams=[self._picked_pipe])
        picked = picked.opts(marker="x", size=16, color="black", line_width=3)
        return latent, maps * centres * picked

    @functools.cached_property
    def viewer(self):
        from .volume_viewer import VolumeViewer

        return VolumeViewer()

    @functools.cached_property
    def widget(self):
        import holoviews as hv
        import panel as pn

        load_bokehjs()
        latent, maps = self.plots
        plots = plot_widget(pn.pane.HoloViews(hv.Layout([latent, maps]).cols(2)))
        r2 = self.landscape.heldout_r2
        r2 = w.Label(f"z → map PC network: held-out R² {r2:.3f}" if r2 is not None else "")
        widget = w.VBox([w.HBox([self.pc, self.state, r2]), plots, self.caption, self.viewer.widget])
        widget.add_class("cryonb-landscape")
        return widget

    def _repr_mimebundle_(self, **kwargs):
        load_bokehjs()  # shown again in another page (JupyterLab reloaded): BokehJS there too
        return self.widget._repr_mimebundle_(**kwargs)


def _two_pcs(z: np.ndarray) -> np.ndarray:
    if z.shape[1] < 2:
        return np.column_stack([z[:, 0], np.zeros(len(z))]).astype(np.float32)
    return pca(z, 2).coords.astype(np.float32)
