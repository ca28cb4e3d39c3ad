"""A Gaussian-mixture run's Gaussians in NGL, following the mouse over the latent scatter.

Thin over :mod:`cryonb.core.gmm.views`: moving the pointer over the scatter of ``z`` (two latent
dimensions, or ``z`` against particle index for a 1-D latent) draws the decoder's Gaussians at the
pointer's latent as spheres (coloured by amplitude); :meth:`GaussianView.quiver` draws arrows for the
motion between two latents, :meth:`GaussianView.eigen_motion` along a principal axis of the latents.
Drawings are small scripts run in the view (:mod:`cryonb.widgets.gmm_scripts`): while the mouse moves,
only the spheres' coordinates change in the browser.
"""

from __future__ import annotations

import ipywidgets as w
import numpy as np

from ..core.errors import InputError
from ..core.gmm.decoder import GaussianDecoder
from ..core.gmm.views import motion, spheres
from .gmm_scripts import draw_script, execute
from .volume_viewer import nglview


def _gaussian_decoder(run) -> GaussianDecoder:
    decoder = getattr(getattr(run, "model", None), "decoder", None)
    if not isinstance(decoder, GaussianDecoder):
        raise InputError(getattr(run, "run_dir", None), "this run's decoder is not a Gaussian mixture",
                         "train with decoder='gmm' (cryonb train --decoder gmm) to view Gaussians")
    return decoder


class GaussianView:
    """Spheres for the Gaussians of ``run`` (a :class:`~cryonb.core.run.Run` with a Gaussian decoder)
    at the latent under the mouse.

    >>> GaussianView(run)                       # displays the latent pad and the 3D view side by side
    >>> GaussianView(run).quiver(z0, z1)        # arrows from z0's Gaussians to z1's
    """

    def __init__(self, run, dims: tuple[int, int] = (0, 1), max_points: int = 20000, seed: int = 0,
                 sphere_scale: float = 0.5):
        self.decoder = _gaussian_decoder(run)
        self.apix = float(getattr(run, "apix", None) or self.decoder.apix)
        self.sphere_scale = sphere_scale  # sphere radius / Gaussian width: smaller spheres show the inside (and draw faster)
        z = np.asarray(run.z, dtype=np.float32)
        self.z = z.reshape(len(z), -1)
        self.dims = tuple(d for d in dims if d < self.z.shape[1])[:2] or (0,)
        self.centre = np.median(self.z, axis=0)
        rng = np.random.default_rng(seed)
        self.shown = np.sort(rng.choice(len(self.z), min(max_points, len(self.z)), replace=False))
        self.view = nglview.NGLWidget()
        self.view.layout.width, self.view.layout.height = "420px", "380px"  # nglview sizes its stage from these
        self.label = w.HTML()
        self.current = self.centre.copy()
        self._plot = None
        self._widget = None
        self._sent = None  # the colours and radii last sent to the browser
        self._last = lambda: self.show(self.current)  # what redraw() draws
        self.pad = None  # the LatentPad, once the widget is made

    def latent_at(self, x: float, y: float | None) -> np.ndarray:
        """The latent at scatter coordinates (x, y): the median latent with the plotted dimensions replaced."""
        z = self.centre.copy()
        if len(self.dims) == 2:
            z[self.dims[0]], z[self.dims[1]] = x, y
        else:
            z[self.dims[0]] = y if y is not None else x  # 1-D: z is on the vertical axis
        return z

    def redraw(self) -> GaussianView:
        """Draw again what was last drawn, colours and radii included (a view just displayed has nothing)."""
        self._sent = None
        return self._last()

    def show(self, z, full: bool = False) -> GaussianView:
        """Draw the Gaussians at latent ``z`` (``full``: send colours and radii even if unchanged)."""
        if full:
            self._sent = None
        self._last = lambda: self.show(self.current)
        self.current = np.asarray(z, dtype=np.float32).reshape(-1)
        s = spheres(self.decoder, self.current, self.apix)
        radii = self.sphere_scale * s.radii
        # colours and radii travel only when they changed (positions alone in the "position" mode)
        same = self._sent is not None and np.array_equal(self._sent[0], s.colors) and np.array_equal(self._sent[1], radii)
        self._sent = (s.colors, radii)
        execute(self.view, draw_script(s.centers, None if same else s.colors, None if same else radii, pad=self._pad_key))
        self.label.value = "z = (" + ", ".join(f"{v:.2f}" for v in self.current) + ")"
        return self

    @property
    def _pad_key(self) -> str | None:
        return None if self.pad is None else self.pad.key

    def quiver(self, z0, z1, min_shift: float = 0.0, scale: float = 1.0) -> GaussianView:
        """Draw the Gaussians at ``z0`` and arrows along their motion to ``z1`` (× ``scale``)."""
        s = spheres(self.decoder, z0, self.apix)
        start, shift = motion(self.decoder, z0, z1, self.apix, min_shift)
        end = start + scale * shift
        n = len(start)
        arrows = {"position1": start, "position2": end, "color": np.tile([0.9, 0.2, 0.2], (n, 1)),
                  "radius": np.full(n, 0.3 * self.apix)}
        self._sent = None
        self._last = lambda: self.quiver(z0, z1, min_shift, scale)
        execute(self.view, draw_script(s.centers, s.colors, self.sphere_scale * s.radii, arrows, pad=self._pad_key))
        self.label.value = f"arrows: {n} Gaussians moving more than {min_shift:g} Å, × {scale:g}"
        return self

    def eigen_motion(self, pc: int = 0, scale: float = 1.0, min_shift: float = 0.0) -> GaussianView:
        """Arrows for the motion along principal axis ``pc`` of the latents, from its 5th to its 95th percentile."""
        from ..core.analysis import pc_traversal

        z0, z1 = pc_traversal(self.z, pc=pc, n=2)
        return self.quiver(z0, z1, min_shift, scale)

    def scatter(self):
        """The latent scatter (HoloViews) whose pointer moves the Gaussians."""
        import holoviews as hv
        import holoviews.plotting.bokeh  # noqa: F401  (registers the Bokeh backend)

        if self._plot is not None:
            return self._plot
        if len(self.dims) == 2:
            data = self.z[self.shown][:, list(self.dims)]
            labels = [f"z{self.dims[0] + 1}", f"z{self.dims[1] + 1}"]
        else:
            data = np.column_stack([self.shown, self.z[self.shown, self.dims[0]]])
            labels = ["particle", f"z{self.dims[0] + 1}"]
        # no drag tool: a drag over the pad moves the Gaussians (Draw), as a plain move does (PointerXY)
        points = hv.Points(data, kdims=labels).opts(size=3, alpha=0.4, width=420, height=380, default_tools=[],
                                                    tools=["crosshair", "wheel_zoom", "reset"], active_tools=[])
        self.pointer = hv.streams.PointerXY(source=points)
        self.drag = hv.streams.Draw(source=points)
        for stream in (self.pointer, self.drag):
            stream.add_subscriber(self._follow)
        self._plot = points
        return points

    def _follow(self, x=None, y=None, **_):
        if x is not None:
            self.show(self.latent_at(x, y))

    def pad_coordinates(self) -> tuple[np.ndarray, np.ndarray, tuple[str, str]]:
        """The plotted coordinates of the shown particles, and the axes' labels."""
        if len(self.dims) == 2:
            z = self.z[self.shown]
            return z[:, self.dims[0]], z[:, self.dims[1]], (f"z{self.dims[0] + 1}", f"z{self.dims[1] + 1}")
        return self.shown.astype(np.float32), self.z[self.shown, self.dims[0]], ("particle", f"z{self.dims[0] + 1}")

    def widget(self) -> w.Widget:
        """The latent pad and the 3D view side by side (an ipywidget); one per view."""
        if self._widget is None:
            from .gmm_pad import LatentPad

            self.pad = LatentPad(self, *self.pad_coordinates())
            self._widget = w.HBox([self.pad.image, w.VBox([self.view, self.label])])
            self._widget.add_class("cryonb-gaussians")
            self.redraw()
        return self._widget

    def _repr_mimebundle_(self, **kwargs):
        return self.widget()._repr_mimebundle_(**kwargs)
