"""A plane section of a map as an image, its axis, two tilt angles and offset on sliders."""

from __future__ import annotations

import io

import ipywidgets as w
import numpy as np
from PIL import Image

from ..core.errors import InputError
from ..core.slicing import map_slice
from .volume_viewer import check_maps


def slice_png(section: np.ndarray, size: int = 320) -> bytes:
    """A grey PNG of ``size`` px of a section, scaled between its 1st and 99th percentiles."""
    lo, hi = np.percentile(section, [1, 99])
    grey = np.clip((section - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    image = Image.fromarray((grey * 255).astype(np.uint8)).resize((size, size), Image.NEAREST)
    stream = io.BytesIO()
    image.save(stream, format="PNG")
    return stream.getvalue()


class SliceViewer:
    """The section of a [z, y, x] map through its centre + offset, orthogonal or tilted.

    >>> SliceViewer(volume, apix)                      # displays in a notebook cell
    >>> SliceViewer(volume).set(axis="x", tilt=(20, 0), offset=4)
    >>> SliceViewer.from_run(run, run.z[0])

    Axis x, y, z gives planes of the array (rows z, y; columns y, x); the tilts turn the plane
    about its columns, then its rows (degrees); the offset moves it along its normal (in voxels).
    """

    def __init__(self, volume, apix: float | None = None, *, axis: str = "z", size: int = 320):
        self.size = size
        self.axis = w.ToggleButtons(options=["x", "y", "z"], value=axis, description="axis",
                                    style={"button_width": "40px"})
        self.tilt_a = w.FloatSlider(value=0, min=-90, max=90, step=1, description="tilt a°")
        self.tilt_b = w.FloatSlider(value=0, min=-90, max=90, step=1, description="tilt b°")
        self.offset = w.FloatSlider(value=0, step=0.5, description="offset px")
        self.image = w.Image(format="png", width=size, height=size)
        self.label = w.Label()
        for part, name in [(self.axis, "axis"), (self.tilt_a, "tilt-a"), (self.tilt_b, "tilt-b"),
                           (self.offset, "offset"), (self.image, "image"), (self.label, "label")]:
            part.add_class(f"cryonb-slice-{name}")
        self.widget = w.VBox([w.HBox([self.image, w.VBox([self.axis, self.tilt_a, self.tilt_b, self.offset,
                                                          self.label])])])
        self.widget.add_class("cryonb-slice-viewer")
        self._ready = False
        self.show_map(volume, apix)
        for part in (self.axis, self.tilt_a, self.tilt_b, self.offset):
            part.observe(lambda _: self._redraw(), "value")

    @classmethod
    def from_run(cls, run, z=None, **options) -> SliceViewer:
        """The run's map at one latent ``z``."""
        z = run.check_latents(z) if run.zdim else None
        if z is not None and len(z) != 1:
            raise InputError(None, f"from_run() takes one latent, got {len(z)}", "pass one latent")
        return cls(run.volumes(z)[0], run.apix, **options)

    def show_map(self, volume, apix: float | None = None) -> SliceViewer:
        """Show the sections of another map (the sliders stay)."""
        maps, self.apix = check_maps(volume, apix)
        if len(maps) != 1:
            raise InputError(None, f"SliceViewer takes one map, got {len(maps)}", "pass one [z, y, x] map")
        self.volume = maps[0]
        half = max(self.volume.shape) / 2
        self.offset.min, self.offset.max = -half, half
        self._ready = True
        self._redraw()
        return self

    def set(self, *, axis: str | None = None, tilt=None, offset: float | None = None) -> SliceViewer:
        """Set the sliders (one redraw)."""
        self._ready = False
        if axis is not None:
            self.axis.value = axis
        if tilt is not None:
            self.tilt_a.value, self.tilt_b.value = tilt
        if offset is not None:
            self.offset.value = offset
        self._ready = True
        self._redraw()
        return self

    @property
    def section(self) -> np.ndarray:
        """The section shown (D, D)."""
        return map_slice(self.volume, self.axis.value, self.offset.value, tilt=(self.tilt_a.value, self.tilt_b.value))

    def _redraw(self):
        if not self._ready:
            return
        self.image.value = slice_png(self.section, self.size)
        self.label.value = f"offset {self.offset.value * self.apix:.1f} Å"

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
