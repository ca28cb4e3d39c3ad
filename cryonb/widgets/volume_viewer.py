"""An isosurface of a map in NGL (nglview), with its threshold in σ and its opacity on sliders.

Maps travel to the browser as in-memory MRC bytes; nothing is written to disk.
"""

from __future__ import annotations

import importlib.metadata
import io
import sys
import types
import warnings

import ipywidgets as w
import numpy as np
from mrcfile.mrcinterpreter import MrcInterpreter

from ..core.errors import InputError
from ..core.movies import as_maps

# nglview 4.0.1 asks JupyterLab for its frontend "4.0" but ships the 3.1.5 one (nglview issue
# #1181): its views stay blank unless they ask for the version that is really there.
_SHIPPED_FRONTEND = {"4.0.1": "3.1.5"}


def import_nglview():
    """Import nglview so that its views render in JupyterLab (see ``_SHIPPED_FRONTEND``)."""
    try:
        shipped = _SHIPPED_FRONTEND.get(importlib.metadata.version("nglview"))
    except importlib.metadata.PackageNotFoundError:
        raise ImportError("the volume views need nglview: pip install 'cryonb[widgets]'") from None
    if shipped and "nglview" not in sys.modules:
        frontend = types.ModuleType("nglview._frontend")
        frontend.__frontend_version__ = shipped
        sys.modules[frontend.__name__] = frontend
    import nglview

    if shipped and sys.modules["nglview._frontend"].__frontend_version__ != shipped:
        warnings.warn("nglview was imported before cryonb's volume views, so they will stay blank in JupyterLab; "
                      "restart the kernel and import cryonb.widgets first", stacklevel=2)
    return nglview


nglview = import_nglview()


def mrc_bytes(volume: np.ndarray, apix: float) -> bytes:
    """A [z, y, x] map as the bytes of an MRC2014 file (float32, header statistics set)."""
    stream = io.BytesIO()
    with MrcInterpreter() as mrc:  # mrcfile's documented way to write to a stream of one's own
        mrc._create_default_attributes()
        mrc._iostream = stream
        mrc.set_data(np.ascontiguousarray(volume, dtype=np.float32))
        mrc.set_volume()
        mrc.voxel_size = apix
    return stream.getvalue()


def check_maps(maps, apix) -> tuple[np.ndarray, float]:
    """``maps`` as float32 (B, D, D, D) and a usable pixel size (1 Å when unknown)."""
    maps = as_maps(maps)
    if apix is not None and not (np.isfinite(apix) and apix >= 0):
        raise InputError(None, f"the pixel size must be a positive number of Å, got {apix}",
                         "pass apix in Å per pixel")
    return maps, float(apix or 1.0)


def _call_ngl(view, method: str, *args, target: str = "Widget", **kwargs):
    """Call an NGL method in the browser without adding it to nglview's message archive.

    nglview re-sends its whole archive, maps included, after every archived call: archiving each
    slider move or frame change would send every map again each time.
    """
    view._remote_call(method, target=target, args=list(args), kwargs=kwargs, fire_once=True)


class VolumeViewer:
    """An isosurface of one map at a time: a run's map for a latent (:meth:`show`) or any map.

    >>> viewer = VolumeViewer(run).show(run.z[0])   # displays in a notebook cell
    >>> viewer.show(run.z[100])                      # replaces the map, keeps the camera
    >>> viewer.show_map(*read_map("ref.mrc"))

    The threshold is in σ of each map (mean + threshold × standard deviation).
    """

    def __init__(self, run=None, *, threshold: float = 2.0, opacity: float = 1.0, color: str = "#8fb4d9"):
        self.run = run
        self.color = color
        self.view = nglview.NGLWidget()
        self.view.add_class("cryonb-volume-view")
        self.threshold = w.FloatSlider(value=threshold, min=0.0, max=10.0, step=0.1, description="threshold σ",
                                       continuous_update=False)
        self.opacity = w.FloatSlider(value=opacity, min=0.0, max=1.0, step=0.05, description="opacity",
                                     continuous_update=False)
        self.level_label = w.Label()
        for part, name in [(self.threshold, "threshold"), (self.opacity, "opacity"), (self.level_label, "level")]:
            part.add_class(f"cryonb-volume-{name}")
        self.controls = w.HBox([self.threshold, self.opacity, self.level_label])
        self.widget = w.VBox([self.view, self.controls])
        self.widget.add_class("cryonb-volume-viewer")
        self.maps = np.zeros((0, 0, 0, 0), np.float32)
        self.apix = 1.0
        self._shown = 0
        self.threshold.observe(self._on_surface_change, "value")
        self.opacity.observe(self._on_surface_change, "value")

    def show(self, z=None) -> VolumeViewer:
        """Generate the run's map for one latent ``z`` and show it."""
        if self.run is None:
            raise InputError(None, "this viewer has no run to generate maps from",
                             "create it as VolumeViewer(run), or show a map with show_map(volume, apix)")
        z = self.run.check_latents(z) if self.run.zdim else None
        if z is not None and len(z) != 1:
            raise InputError(None, f"show() takes one latent, got {len(z)}", "use TrajectoryPlayer for several")
        return self.show_map(self.run.volumes(z)[0], self.run.apix)

    def show_map(self, volume, apix: float | None = None) -> VolumeViewer:
        """Show a [z, y, x] map of pixel size ``apix`` Å in place of the current one."""
        volume, apix = check_maps(volume, apix)
        if len(volume) != 1:
            raise InputError(None, f"show_map() takes one map, got {len(volume)}", "use TrajectoryPlayer for several")
        self._load(volume, apix)
        return self

    def _surface(self) -> dict:
        """NGL's surface parameters, from the sliders."""
        return {"isolevelType": "sigma", "isolevel": self.threshold.value, "opacity": self.opacity.value,
                "color": self.color}

    def _load(self, maps: np.ndarray, apix: float, shown: int = 0):
        """Replace the maps in NGL by ``maps``, showing map ``shown``.

        The camera fits the first maps; later maps of the same extent keep the camera as it is.
        """
        fit = self.maps.shape[1:] != maps.shape[1:] or self.apix != apix
        old = len(self.maps)
        self.maps, self.apix, self._shown = maps, apix, shown
        for i, volume in enumerate(maps):
            component = self.view.add_component(io.BytesIO(mrc_bytes(volume, apix)), ext="mrc",
                                                defaultRepresentation=fit)
            if fit:
                _call_ngl(self.view, "updateRepresentationsByName", "surface", old + i, **self._surface())
            else:
                component.add_surface(**self._surface())
            if i != shown:
                _call_ngl(self.view, "setVisibility", False, target="compList", component_index=old + i)
        for _ in range(old):
            self.view.remove_component(self.view[0])
        self._update_level()

    def _show_only(self, index: int):
        """Make map ``index`` the one visible."""
        if index == self._shown:
            return
        _call_ngl(self.view, "setVisibility", True, target="compList", component_index=index)
        _call_ngl(self.view, "setVisibility", False, target="compList", component_index=self._shown)
        self._shown = index
        self._update_level()

    def _on_surface_change(self, _change):
        for index in range(len(self.maps)):
            _call_ngl(self.view, "updateRepresentationsByName", "surface", index, **self._surface())
        self._update_level()

    def _update_level(self):
        if not len(self.maps):
            return
        volume = self.maps[self._shown]
        level = volume.mean() + self.threshold.value * volume.std()
        self.level_label.value = f"level {level:.4g}"

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
