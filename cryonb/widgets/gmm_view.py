"""A Gaussian-mixture run's Gaussians in NGL, following the mouse over the latent scatter.

Thin over :mod:`cryonb.core.gmm.views`: moving the pointer over the scatter of ``z`` (two latent
dimensions, or ``z`` against particle index for a 1-D latent) draws the decoder's Gaussians at the
pointer's latent as spheres (coloured by amplitude); :meth:`GaussianView.quiver` draws arrows for the
motion between two latents. Shapes are replaced by a small script run in the view, outside
nglview's message archive, so moving the mouse does not pile up messages.
"""

from __future__ import annotations

import json

import ipywidgets as w
import numpy as np

from ..core.errors import InputError
from ..core.gmm.decoder import GaussianDecoder
from ..core.gmm.views import motion, spheres
from .volume_viewer import _call_ngl, nglview

_NAME = "cryonb-gmm"


def _replace_script(buffers: list[tuple[str, dict]]) -> str:
    """JavaScript that removes the previous Gaussians and adds ``buffers`` (NGL buffer kind, arrays)."""
    adds = "".join(
        "shape.addBuffer(new NGL." + kind + "Buffer("
        + "{" + ", ".join(f"{k}: new Float32Array({json.dumps(v)})" for k, v in data.items()) + "}));"
        for kind, data in buffers)
    return ("var stage = this.stage;"
            f"stage.getComponentsByName('{_NAME}').list.slice().forEach(function (c) {{ stage.removeComponent(c); }});"
            f"var shape = new NGL.Shape('{_NAME}');" + adds +
            "var comp = stage.addComponentFromObject(shape); comp.addRepresentation('buffer');")


def _gaussian_decoder(run) -> GaussianDecoder:
    decoder = getattr(getattr(run, "model", None), "decoder", None)
    if not isinstance(decoder, GaussianDecoder):
        raise InputError(getattr(run, "run_dir", None), "this run's decoder is not a Gaussian mixture",
                         "train with decoder='gmm' (cryonb train --decoder gmm) to view Gaussians")
    return decoder


class GaussianView:
    """Spheres for the Gaussians of ``run`` (a :class:`~cryonb.core.run.Run` with a Gaussian decoder)
    at the latent under the mouse.

    >>> GaussianView(run)                       # displays the scatter and the 3D view side by side
    >>> GaussianView(run).quiver(z0, z1)        # arrows from z0's Gaussians to z1's
    """

    def __init__(self, run, dims: tuple[int, int] = (0, 1), max_points: int = 20000, seed: int = 0):
        self.decoder = _gaussian_decoder(run)
        self.apix = float(getattr(run, "apix", None) or self.decoder.apix)
        z = np.asarray(run.z, dtype=np.float32)
        self.z = z.reshape(len(z), -1)
        self.dims = tuple(d for d in dims if d < self.z.shape[1])[:2] or (0,)
        self.centre = np.median(self.z, axis=0)
        rng = np.random.default_rng(seed)
        self.shown = np.sort(rng.choice(len(self.z), min(max_points, len(self.z)), replace=False))
        self.view = nglview.NGLWidget()
        self.label = w.HTML()
        self.current = self.centre.copy()
        self._plot = None

    def latent_at(self, x: float, y: float | None) -> np.ndarray:
        """The latent at scatter coordinates (x, y): the median latent with the plotted dimensions replaced."""
        z = self.centre.copy()
        if len(self.dims) == 2:
            z[self.dims[0]], z[self.dims[1]] = x, y
        else:
            z[self.dims[0]] = y if y is not None else x  # 1-D: z is on the vertical axis
        return z

    def show(self, z) -> GaussianView:
        """Draw the Gaussians at latent ``z``."""
        self.current = np.asarray(z, dtype=np.float32).reshape(-1)
        s = spheres(self.decoder, self.current, self.apix)
        _call_ngl(self.view, "executeCode", _replace_script([("Sphere", s.buffer())]))
        self.label.value = "z = (" + ", ".join(f"{v:.2f}" for v in self.current) + ")"
        return self

    def quiver(self, z0, z1, min_shift: float = 0.0, scale: float = 1.0) -> GaussianView:
        """Draw the Gaussians at ``z0`` and arrows along their motion to ``z1`` (× ``scale``)."""
        s = spheres(self.decoder, z0, self.apix)
        start, shift = motion(self.decoder, z0, z1, self.apix, min_shift)
        end = start + scale * shift
        n = len(start)
        arrows = {"position1": start.ravel().tolist(), "position2": end.ravel().tolist(),
                  "color": np.tile([0.9, 0.2, 0.2], n).tolist(), "radius": np.full(n, 0.3 * self.apix).tolist()}
        _call_ngl(self.view, "executeCode", _replace_script([("Sphere", s.buffer()), ("Arrow", arrows)]))
        return self

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
        points = hv.Points(data, kdims=labels).opts(size=3, alpha=0.4, width=420, height=380, tools=["crosshair"])
        self.pointer = pointer = hv.streams.PointerXY(source=points)
        pointer.add_subscriber(lambda x=None, y=None: None if x is None else self.show(self.latent_at(x, y)))
        self._plot = points
        return points

    def widget(self) -> w.Widget:
        """The scatter and the 3D view side by side (an ipywidget)."""
        import panel as pn

        from .latent_explorer import plot_widget

        self.show(self.centre)
        return w.HBox([plot_widget(pn.pane.HoloViews(self.scatter())), w.VBox([self.view, self.label])])

    def _repr_mimebundle_(self, **kwargs):
        return self.widget()._repr_mimebundle_(**kwargs)
