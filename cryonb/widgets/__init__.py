"""Notebook views over cryonb.core objects (ipywidgets, HoloViews, nglview).

Importing this package loads no view library: the views load on first use, and inside IPython
displaying a :class:`~cryonb.core.training.Trainer` shows its :class:`TrainingMonitor`.
"""

from __future__ import annotations

import importlib
import sys

_VIEWS = {
    "TrainingMonitor": "training_monitor",
    "monitor": "training_monitor",
    "LatentExplorer": "latent_explorer",
    "ParticleGallery": "gallery",
    "Exploration": "explore",  # the function explore is cryonb.explore: cryonb.widgets.explore is its module
    "VolumeViewer": "volume_viewer",
    "TrajectoryPlayer": "trajectory_player",
    "MapCompare": "map_compare",
    "SliceViewer": "slice_viewer",
    "LandscapeView": "landscape",
    "GaussianView": "gmm_view",
    "PairGrid": "latent_views",
    "Scatter3D": "latent_views",
    "AbinitView": "abinit_view",
}

__all__ = [*_VIEWS, "register_display"]


def __getattr__(name: str):
    if name in _VIEWS:
        return getattr(importlib.import_module(f".{_VIEWS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _trainer_bundle(trainer):
    try:
        from .training_monitor import monitor
    except ImportError:  # ipywidgets not installed: IPython falls back to the plain repr
        return None
    return monitor(trainer)._repr_mimebundle_()


def register_display(shell=None) -> bool:
    """Make ``shell`` (default: the running IPython) display a Trainer as its monitor; False outside IPython."""
    if shell is None:
        ipython = sys.modules.get("IPython")  # never imported here: only an IPython already running counts
        shell = ipython.get_ipython() if ipython else None
    if shell is None:
        return False
    formatter = shell.display_formatter.mimebundle_formatter
    formatter.for_type_by_name("cryonb.core.training", "Trainer", _trainer_bundle)
    return True


register_display()
