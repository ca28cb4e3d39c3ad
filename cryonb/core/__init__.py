"""cryonb's core: data, physics, reconstruction and models. Never imports a widget library."""

from .errors import CryonbError, InputError

__all__ = ["CryonbError", "InputError"]
