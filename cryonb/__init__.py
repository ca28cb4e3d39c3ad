"""cryonb: notebook-first analysis of structural heterogeneity in cryo-EM data."""

__version__ = "0.1.0"

from .core.errors import CryonbError, InputError  # noqa: E402

__all__ = ["CryonbError", "InputError", "__version__", "explore"]


def __getattr__(name):  # cryonb.explore(run): the notebook views load on first use only
    if name == "explore":
        from .widgets.explore import explore

        return explore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

import sys  # noqa: E402

if "IPython" in sys.modules:  # in a notebook, display a Trainer as its live monitor
    from . import widgets  # noqa: E402,F401
