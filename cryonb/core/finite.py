"""Non-finite images are refused where images are consumed, in the pass that already reads them.

One NaN pixel spreads through a Fourier transform to the whole image, and through a
back-projection or a training step to the whole map or model. Every consumer of images
(the back-projection, the training data) calls :func:`check_finite_images` on each batch it
reads, so the cost is one ``isfinite`` per pixel already in memory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import InputError

SHOWN = 5  # particles named in the message


def _where(particles) -> Path | None:
    source = getattr(particles, "source", None)
    if source is None or getattr(source, "format", None) == "arrays":
        return None
    return source.path


def _bad_rows(images) -> np.ndarray:
    """Positions in the batch of the images with a NaN or infinite pixel."""
    if hasattr(images, "detach"):
        import torch

        return torch.nonzero(~torch.isfinite(images.flatten(1)).all(1))[:, 0].cpu().numpy()
    images = np.asarray(images)
    return np.flatnonzero(~np.isfinite(images.reshape(len(images), -1)).all(1))


def check_finite_images(images, particles, start: int = 0) -> None:
    """Raise an :class:`InputError` if any of the (B, D, D) ``images`` has a NaN or infinite pixel.

    ``images`` are positions ``start, start + 1, ...`` of ``particles`` (a ParticleSet): the error
    names the first few bad particles by their row in the file they came from, with the stack
    file and image for file-backed images, and the metadata file.
    """
    if hasattr(images, "detach"):
        import torch

        if bool(torch.isfinite(images).all()):
            return
    elif np.isfinite(images).all():
        return
    positions = start + _bad_rows(images)
    indices = getattr(particles, "indices", None)
    rows = positions if indices is None else np.asarray(indices)[positions]
    named = []
    locations = particles.images.locations() if getattr(particles, "images", None) is not None else None
    for position, row in zip(positions[:SHOWN], rows[:SHOWN]):
        where = f" ({locations[1][position] + 1}@{Path(locations[0][position]).name})" if locations is not None else ""
        named.append(f"{int(row)}{where}")
    more = f" and {len(positions) - SHOWN} more in this batch" if len(positions) > SHOWN else ""
    raise InputError(
        _where(particles),
        f"the images of particles {', '.join(named)}{more} (0-based rows; image@stack in brackets) have NaN or "
        "infinite pixels, which would turn the whole result into NaN",
        "remove those particles (e.g. particles.subset(mask)) or fix the stack, then run again",
    )
