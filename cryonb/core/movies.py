"""Still images of maps for movies and figures: GIFs and PNG strips, rendered without a 3D viewer.

Every view looks down the z axis with x to the right and y up (as ChimeraX and NGL open a map),
and all frames share one grey scale, so that what changes along a trajectory shows.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import InputError
from .io.atomic import atomic_write

VIEWS = ("surface", "projection", "slice")


def _surface(maps: np.ndarray, threshold: float) -> np.ndarray:
    """The isosurface at mean + threshold·σ seen from +z, lit from the viewer (0 where no surface).

    Brightness is the cosine between the line of sight and the map's outward gradient at the first
    voxel above the level, dimmed with depth.
    """
    D = maps.shape[1]
    levels = maps.mean((1, 2, 3), keepdims=True) + threshold * maps.std((1, 2, 3), keepdims=True)
    inside = maps[:, ::-1] > levels  # the first section is the one nearest the viewer
    hit = inside.any(1)
    z = D - 1 - inside.argmax(1)
    b, y, x = np.indices(hit.shape, sparse=True)

    def step(dz=0, dy=0, dx=0):  # the map at the surface voxel shifted by (dz, dy, dx), clipped to the box
        return maps[b, np.clip(z + dz, 0, D - 1), np.clip(y + dy, 0, D - 1), np.clip(x + dx, 0, D - 1)]

    gradient = np.stack([step(dz=1) - step(dz=-1), step(dy=1) - step(dy=-1), step(dx=1) - step(dx=-1)])
    facing = np.clip(-gradient[0] / np.maximum(np.linalg.norm(gradient, axis=0), 1e-12), 0, 1)
    return np.where(hit, (0.2 + 0.8 * facing) * (0.6 + 0.4 * z / D), 0)


def as_maps(maps) -> np.ndarray:
    """One map (D, D, D) or a stack (B, D, D, D) as a float32 stack, or an InputError saying why not."""
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim == 3:
        maps = maps[None]
    if maps.ndim != 4 or 0 in maps.shape:
        raise InputError(None, f"maps must have shape (D, D, D) or (B, D, D, D) with B ≥ 1, got {maps.shape}",
                         "pass one map or a stack of maps")
    if not np.isfinite(maps).all():
        raise InputError(None, "the maps contain NaN or infinite values", "pass finite maps")
    return maps


def render_frames(maps, view: str = "surface", size: int = 256, threshold: float = 2.0) -> np.ndarray:
    """Grey images (B, size, size) uint8 of maps (B, D, D, D) indexed [z, y, x].

    ``view`` is ``"surface"`` (the isosurface at ``threshold`` σ, shaded by depth and slope),
    ``"projection"`` (the sum along z, as the microscope sees the map) or ``"slice"`` (the
    central z section).
    """
    maps = as_maps(maps)
    if view not in VIEWS:
        raise InputError(None, f"unknown view {view!r}", f"use one of {', '.join(VIEWS)}")
    if view == "surface":
        images = _surface(maps, threshold)
    elif view == "projection":
        images = maps.sum(1)
    else:
        images = maps[:, maps.shape[1] // 2]
    low, high = np.percentile(images, [0.5, 99.5]) if view != "surface" else (0.0, 1.0)
    grey = np.clip((images - low) / max(high - low, np.finfo(np.float32).tiny), 0, 1)
    frames = (255 * grey[:, ::-1]).round().astype(np.uint8)  # rows from top to bottom: y up
    return np.stack([np.asarray(Image.fromarray(f).resize((size, size), Image.BILINEAR)) for f in frames])


def write_gif(maps, path: str | os.PathLike, fps: float = 5, loop: bool = True, **render) -> Path:
    """An animated GIF of the maps at ``fps`` frames per second; ``render`` goes to :func:`render_frames`."""
    if not fps > 0:
        raise InputError(path, f"{fps} frames per second cannot be played", "pass a positive fps")
    images = [Image.fromarray(frame) for frame in render_frames(maps, **render)]
    path = Path(path)
    with atomic_write(path) as f:
        images[0].save(f, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps),
                       **({"loop": 0} if loop else {}))
    return path


def write_strip(maps, path: str | os.PathLike, **render) -> Path:
    """The maps side by side, left to right, as one PNG; ``render`` goes to :func:`render_frames`."""
    frames = render_frames(maps, **render)
    path = Path(path)
    with atomic_write(path) as f:
        Image.fromarray(np.concatenate(list(frames), axis=1)).save(f, format="PNG")
    return path
