"""cryonb: notebook-first analysis of structural heterogeneity in cryo-EM data.

One import gives a notebook what it needs::

    import cryonb
    particles = cryonb.load_particles("particles.star")
    trainer = cryonb.Trainer(particles, cryonb.TrainConfig(zdim=8))
    cryonb.explore(cryonb.Run.from_trainer(trainer.fit(20)))

The names load on first use: ``import cryonb`` imports neither torch nor a widget library,
and ``cryonb.explore`` loads the notebook views only when called for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

from .core.errors import CryonbError, InputError  # noqa: E402

# name -> module that defines it; loaded on first access (PEP 562)
_LAZY = {
    "load_particles": ".core.particles",
    "save_selection": ".core.particles",
    "ParticleSet": ".core.particles",
    "simulate": ".core.simulate",
    "Trainer": ".core.training",
    "TrainConfig": ".core.training",
    "Abinit": ".core.abinit",
    "AbinitConfig": ".core.abinit",
    "Run": ".core.run",
    "explore": ".widgets.explore",  # the notebook views load on first use only
}

__all__ = ["CryonbError", "InputError", "__version__", *_LAZY]

if TYPE_CHECKING:  # for editors and type checkers; at run time these load lazily
    from .core.abinit import Abinit, AbinitConfig
    from .core.particles import ParticleSet, load_particles, save_selection
    from .core.run import Run
    from .core.simulate import simulate
    from .core.training import TrainConfig, Trainer
    from .widgets.explore import explore


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


import sys  # noqa: E402

if "IPython" in sys.modules:  # in a notebook, display a Trainer as its live monitor
    from . import widgets  # noqa: E402,F401
