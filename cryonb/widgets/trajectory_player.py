"""Play the maps along a path in latent space: every frame is in NGL, one shown at a time.

NGL cannot replace a map's data in place, so all the frames are loaded once and playing only
switches which one is visible.
"""

from __future__ import annotations

import os
from pathlib import Path

import ipywidgets as w
import numpy as np

from ..core import movies
from ..core.errors import InputError
from .map_compare import MapCompare
from .volume_viewer import VolumeViewer, check_maps


class TrajectoryPlayer:
    """The maps of a run for a list of latents, with Play, a frame slider, threshold and opacity.

    >>> player = TrajectoryPlayer(run, pc_traversal(run.z, 0, n=10))   # displays in a notebook cell
    >>> player.frame = 3
    >>> player.save_gif("pc1.gif")

    ``TrajectoryPlayer.from_maps(maps, apix)`` plays maps computed elsewhere.
    """

    def __init__(self, run, zs, *, interval: int = 500, threshold: float = 2.0, opacity: float = 1.0):
        zs = run.check_latents(zs)
        if not len(zs):
            raise InputError(None, "the trajectory has no latents", "pass at least one latent")
        self._setup(run.volumes(zs), run.apix, zs, interval, threshold, opacity)

    @classmethod
    def from_maps(cls, maps, apix: float | None = None, *, interval: int = 500, threshold: float = 2.0,
                  opacity: float = 1.0) -> TrajectoryPlayer:
        """Play ``maps`` (B, D, D, D) of pixel size ``apix`` Å."""
        player = cls.__new__(cls)
        player._setup(maps, apix, None, interval, threshold, opacity)
        return player

    def _setup(self, maps, apix, zs, interval, threshold, opacity):
        self.z = zs
        self.viewer = VolumeViewer(threshold=threshold, opacity=opacity)
        self.viewer._load(*check_maps(maps, apix))
        last = len(self.maps) - 1
        self.play = w.Play(value=0, min=0, max=last, interval=interval, description="Play")
        self.slider = w.IntSlider(value=0, min=0, max=last, description="frame")
        w.jslink((self.play, "value"), (self.slider, "value"))
        self.play.add_class("cryonb-trajectory-play")
        self.slider.add_class("cryonb-trajectory-frame")
        self.slider.observe(lambda change: self.viewer._show_only(change["new"]), "value")
        self.compare_button = w.Button(description="Compare with frame 0", icon="columns",
                                       tooltip="the first frame and the one shown, side by side")
        self.compare_button.add_class("cryonb-trajectory-compare")
        self.compare_button.on_click(lambda _: self.compare(0, self.frame))
        self.compare_box = w.VBox()
        self.comparison = MapCompare(threshold=threshold)  # made now: NGL views made in a button's callback stay blank
        self.widget = w.VBox([self.viewer.view, w.HBox([self.play, self.slider, self.compare_button]),
                              self.viewer.controls, self.compare_box])
        self.widget.add_class("cryonb-trajectory-player")

    @property
    def maps(self) -> np.ndarray:
        """The frames (B, D, D, D)."""
        return self.viewer.maps

    @property
    def apix(self) -> float:
        return self.viewer.apix

    @property
    def frame(self) -> int:
        """The frame shown (set it to show another)."""
        return self.slider.value

    @frame.setter
    def frame(self, index: int):
        if not 0 <= index < len(self.maps):
            raise InputError(None, f"frame {index} is out of range", f"pick a frame from 0 to {len(self.maps) - 1}")
        self.slider.value = index

    def compare(self, i: int = 0, j: int = -1):
        """Frames ``i`` and ``j`` side by side, cameras linked, below the player; returns the MapCompare."""
        MapCompare.from_trajectory(self, i, j, into=self.comparison)
        self.compare_box.children = (self.comparison.widget,)
        return self.comparison

    def save_gif(self, path: str | os.PathLike, fps: float = 5, **render) -> Path:
        """Write the frames as an animated GIF (see :func:`cryonb.core.movies.render_frames`)."""
        return movies.write_gif(self.maps, path, fps=fps, **render)

    def save_strip(self, path: str | os.PathLike, **render) -> Path:
        """Write the frames side by side as one PNG."""
        return movies.write_strip(self.maps, path, **render)

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
