"""Bring runs of other programs into cryonb: cryoDRGN run folders (latents, maps, particles, epochs)."""

from .cryodrgn_decoder import AbinitHyperVolume, CryodrgnDecoder
from .cryodrgn_epochs import choose_epoch, epoch_convergence
from .cryodrgn_runs import (
    CryodrgnRunConfig,
    is_cryodrgn_run,
    open_cryodrgn_run,
    particles_from_cryodrgn_run,
    read_analysis,
    saved_epochs,
)

__all__ = [
    "AbinitHyperVolume",
    "CryodrgnDecoder",
    "CryodrgnRunConfig",
    "choose_epoch",
    "epoch_convergence",
    "is_cryodrgn_run",
    "open_cryodrgn_run",
    "particles_from_cryodrgn_run",
    "read_analysis",
    "saved_epochs",
]
