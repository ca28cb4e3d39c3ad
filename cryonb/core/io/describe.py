"""A human summary of any file cryonb reads (what ``cryonb info FILE`` prints)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from .cryosparc import read_cs
from .mrc import read_header
from .pickles import check_indices, load_pickle, read_index
from .star import identify, read_blocks, read_star

_MRC_SUFFIXES = (".mrc", ".mrcs", ".map", ".ccp4", ".st")


def _apix(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.4g} Å"


def _describe_mrc(path: Path) -> list[str]:
    h = read_header(path)
    if path.suffix.lower() == ".mrcs" or h.looks_like_stack:
        n = 1 if len(h.data_shape) == 2 else h.data_shape[0]
        lines = [f"MRC image stack: {n} images of {h.data_shape[-2]}x{h.data_shape[-1]} px, header pixel size {_apix(h.apix)}"]
    else:
        nxyz = {axis: n for axis, n in zip(h.axes, reversed(h.data_shape))}
        shape = ", ".join(str(nxyz.get(axis, "?")) for axis in (3, 2, 1))
        lines = [f"MRC map: (z, y, x) = ({shape}) voxels, pixel size {_apix(h.apix)}"]
    return lines + [f"  header quirk: {q}" for q in h.quirks]


def _describe_star(path: Path, apix: float | None = None) -> list[str]:
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*tilt-series file")  # said below
            star = read_star(path, apix=apix)
    except InputError as error:
        try:
            blocks = read_blocks(path)
        except InputError:
            raise error from None
        kind = identify(blocks)
        if kind is None and "no particle table" not in error.problem:
            raise
        shapes = {name: f"{len(b)} rows x {b.shape[1]} columns" if isinstance(b, pd.DataFrame) else f"{len(b)} key/value pairs" for name, b in blocks.items()}
        first = "STAR file without a particle table" + (f": {kind[0]}" if kind else "")
        return [first] + [f"  data_{name}: {shape}" for name, shape in shapes.items()]
    groups = star.blocks[star.optics_block] if star.optics_block else None
    what = f"{len(star)} particles"
    if star.tilt_series_particles is not None:
        what = f"{len(star)} tilt images of {star.tilt_series_particles} tomography particles (one row per tilt, each read as a particle)"
    lines = [
        f"RELION {star.version} particle STAR: {what} in data_{star.particle_block}"
        + (f", {len(groups)} optics group(s)" if groups is not None else ""),
        f"  pixel size {_apix(star.apix)}; box {star.box_size or 'not stated'}",
        f"  poses: {'yes' if star.rotations is not None else 'no'}; shifts: {'yes' if star.shifts is not None else 'no'}; "
        f"CTF: {'yes' if star.ctf is not None else 'incomplete or none'}",
        f"  columns: {', '.join(star.table.columns)}",
    ]
    if star.image_paths is not None:
        stacks = sorted(set(map(str, star.image_paths)))
        missing = sum(not Path(p).exists() for p in stacks)
        if missing:  # read_star looked in the .star's folder, the one recorded in it and the folders above
            where = f", {missing} not found next to the .star, in a data folder it records or in a folder above it"
        else:
            where = f", found in {star.datadir} ({star.datadir_found})"
        lines.append(f"  images in {len(stacks)} stack file(s){where}")
    return lines


def _describe_cs(path: Path, apix: float | None = None) -> list[str]:
    cs = read_cs(path, apix=apix)
    groups: dict[str, list[str]] = {}
    for name in cs.array.dtype.names:
        group, _, fieldname = name.rpartition("/")
        groups.setdefault(group or "(top)", []).append(fieldname)
    lines = [
        f"cryoSPARC particles: {len(cs)} rows, pixel size {_apix(cs.apix)}, box {cs.box_size or 'not stated'}",
        f"  poses (alignments3D): {'yes' if cs.rotations is not None else 'no'}; CTF: {'yes' if cs.ctf is not None else 'no'}",
    ]
    return lines + [f"  {group}/: {', '.join(fields)}" for group, fields in groups.items()]


def _describe_pickle(path: Path) -> list[str]:
    obj = load_pickle(path)
    if isinstance(obj, (tuple, list)):
        shapes = ", ".join(str(np.shape(x)) for x in obj)
        kind = "cryoDRGN poses (rotations, translations as box fractions)" if len(obj) == 2 and np.shape(obj[0])[1:] == (3, 3) else "tuple of arrays"
        return [f"{kind}: {shapes}"]
    array = np.asarray(obj)
    if array.ndim == 2 and array.shape[1] == 9:
        return [f"cryoDRGN CTF parameters: {len(array)} particles, D={array[0, 0]:g}, Apix={array[0, 1]:g} Å" if len(array) else "empty cryoDRGN CTF table"]
    if array.ndim == 3 and array.shape[1:] == (3, 3):
        return [f"cryoDRGN rotations: {len(array)} matrices"]
    if array.ndim == 1 and np.issubdtype(array.dtype, np.integer):
        array = check_indices(path, array)
        return [f"particle index array: {len(array)} indices" + (f" from {array.min()} to {array.max()}" if len(array) else "")]
    return [f"numpy array {array.dtype} {array.shape}"]


def describe(path: str | os.PathLike, *, apix: float | None = None) -> str:
    """Summarise an MRC map or stack, a .star, a .cs, a cryoDRGN .pkl or an index .npy.

    ``apix`` is the pixel size in Å for particle files that do not state it (or state it wrongly).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.exists():
        raise InputError(path, "file not found", "check the path")
    if suffix in _MRC_SUFFIXES:
        lines = _describe_mrc(path)
    elif suffix == ".star":
        lines = _describe_star(path, apix)
    elif suffix == ".cs":
        lines = _describe_cs(path, apix)
    elif suffix == ".pkl":
        lines = _describe_pickle(path)
    elif suffix == ".npy":
        lines = [f"particle index array: {len(read_index(path))} indices"]
    else:
        raise InputError(path, f"unknown file type {suffix!r}", "pass an .mrc/.mrcs/.map, .star, .cs, .pkl or .npy file")
    return "\n".join([str(path)] + lines)
