"""ParticleSet: images with their poses, shifts and CTF, loaded from what users have.

``load_particles`` reads RELION .star, cryoSPARC .cs, or an MRC stack with cryoDRGN pose
and CTF pickles, lazily (headers only). ``save_selection`` writes a subset back in the
format it came from, plus cryoDRGN-style index files.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import InputError
from .io._common import to_numpy
from .io.cryosparc import read_cs, write_cs_subset
from .io.mrc import write_stack
from .io.pickles import read_cryodrgn_ctf, read_cryodrgn_poses, write_index_npy, write_index_pickle
from .io.sources import ArraySource, ImageSource, MrcStackSource, MultiStackSource
from .io.star import read_star, write_blocks, write_star_subset
from .rotations import matrix_to_relion

_STACK_SUFFIXES = (".mrcs", ".mrc")


@dataclass(frozen=True)
class Origin:
    """The file a particle set was read from, for writing selections back."""

    path: Path
    format: str  # "star", "cs", "mrcs" or "arrays"
    datadir: Path | None = None  # for a .star: the folder its image names resolved against


@dataclass
class ParticleSet:
    """N particles: images and/or per-particle metadata, all of the same length.

    ``rotations`` (N, 3, 3) are RELION's matrices A, ``shifts`` (N, 2) pixels (x, y) that
    re-centre the particle, ``ctf`` (N, 8) in :data:`CTF_COLUMNS` order, ``indices`` the
    particles' row numbers in the original file (kept through subsetting).
    """

    images: ImageSource | None = None
    rotations: np.ndarray | None = None
    shifts: np.ndarray | None = None
    ctf: np.ndarray | None = None
    apix: float | None = None
    indices: np.ndarray | None = None
    source: Origin = field(default_factory=lambda: Origin(Path(), "arrays"))

    def __post_init__(self):
        if self.images is not None and not isinstance(self.images, ImageSource):
            self.images = ArraySource(to_numpy(self.images))
        shapes = {"rotations": (3, 3), "shifts": (2,), "ctf": (8,)}
        for name, tail in shapes.items():
            value = getattr(self, name)
            if value is not None:
                value = to_numpy(value)
                if value.shape[1:] != tail:
                    raise InputError(self.source.path, f"{name} must have shape (N, {', '.join(map(str, tail))}), got {value.shape}", f"pass {name} of that shape")
                setattr(self, name, value)
        lengths = {name: len(getattr(self, name)) for name in ("images", *shapes, "indices") if getattr(self, name) is not None}
        if not lengths:
            raise InputError(self.source.path, "a particle set needs images or metadata", "pass at least one of images, rotations, shifts, ctf")
        if len(set(lengths.values())) > 1:
            raise InputError(self.source.path, f"lengths disagree: {lengths}", "pass arrays with one row per particle")
        n = next(iter(lengths.values()))
        self.indices = np.arange(n, dtype=np.int64) if self.indices is None else to_numpy(self.indices, np.int64)
        self.apix = None if self.apix is None else float(self.apix)

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def box_size(self) -> int | None:
        return None if self.images is None else self.images.box_size

    def subset(self, idx) -> ParticleSet:
        """Particles at positions ``idx`` (int array, bool mask or slice) of this set."""
        pos = np.arange(len(self))[idx] if isinstance(idx, slice) else np.asarray(idx)
        pos = np.flatnonzero(pos) if pos.dtype == bool else pos.astype(np.int64)
        take = lambda a: None if a is None else a[pos]  # noqa: E731
        return dataclasses.replace(
            self,
            images=None if self.images is None else self.images.subset(pos),
            rotations=take(self.rotations),
            shifts=take(self.shifts),
            ctf=take(self.ctf),
            indices=self.indices[pos],
        )

    def __repr__(self) -> str:
        parts = [f"n={len(self)}", f"box={self.box_size}", f"apix={self.apix}"]
        parts += [name for name in ("rotations", "shifts", "ctf") if getattr(self, name) is not None]
        return f"ParticleSet({', '.join(parts)}; from {self.source.format} {self.source.path})"


def _images(meta, origin: Path, load: bool) -> ImageSource | None:
    """Images named by a .star/.cs file, as one lazy source over all its stacks."""
    if not load or meta.image_paths is None:
        return None
    fix = f"pass datadir= (the folder holding the stacks named in {origin.name})"
    return MultiStackSource(meta.image_paths, meta.image_rows, referenced_by=origin, fix=fix, indexed=getattr(meta, "image_indexed", None))


def require_images(particles: ParticleSet, purpose: str) -> None:
    """An :class:`InputError` saying why a particle set has no images, for commands that need them."""
    if particles.images is not None:
        return
    origin = particles.source
    path = getattr(origin, "path", None)
    kind = getattr(origin, "format", None)
    if kind == "cs":
        raise InputError(path, f"has no image locations (it lacks the blob/path and blob/idx fields), so there are no images to {purpose}",
                         "pass the .cs that holds the blob/path and blob/idx fields (a job's particles .cs, or its "
                         "passthrough .cs when the blob fields come through it); or a .star with rlnImageName")
    if kind == "star":
        raise InputError(path, f"has no rlnImageName column, so there are no images to {purpose}",
                         "pass a particle .star that names its images (idx@stack.mrcs)")
    raise InputError(path, f"the particle set has no images to {purpose}", "load it with its images (images=True)")


def load_particles(
    path: str | os.PathLike,
    *,
    datadir: str | os.PathLike | None = None,
    apix: float | None = None,
    poses: str | os.PathLike | None = None,
    ctf: str | os.PathLike | None = None,
    images: bool = True,
) -> ParticleSet:
    """Load particles from a .star, a .cs, or an .mrcs/.mrc stack, lazily.

    ``datadir``: folder of the image stacks (default: the metadata file's folder).
    ``apix``: pixel size in Å, overriding the files'. ``poses``/``ctf``: cryoDRGN pose and
    CTF pickles, used instead of the file's own. ``images=False`` loads metadata only
    (for files whose stacks are elsewhere).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".star":
        meta = read_star(path, datadir=datadir, apix=apix)
        found = meta.datadir if meta.datadir_found not in (None, "not found") else None
        particles = ParticleSet(_images(meta, path, images), meta.rotations, meta.shifts, meta.ctf, meta.apix, source=Origin(path, "star", found))
    elif suffix == ".cs":
        meta = read_cs(path, datadir=datadir, apix=apix)
        particles = ParticleSet(_images(meta, path, images), meta.rotations, meta.shifts, meta.ctf, meta.apix, indices=np.arange(len(meta)), source=Origin(path, "cs"))
    elif suffix in _STACK_SUFFIXES:
        _refuse_map(path, suffix)
        stack = MrcStackSource(path)
        particles = ParticleSet(stack if images else None, apix=stack.stack.apix, indices=np.arange(len(stack)), source=Origin(path, "mrcs"))
    else:
        raise InputError(path, f"unknown particle file type {suffix!r}", "pass a .star, .cs, .mrcs or .mrc file")
    return _with_pickles(particles, path, poses, ctf, apix)


def _refuse_map(path: Path, suffix: str) -> None:
    """A ``.mrc`` with cubic data is a map (a reference, a class average volume), not N images of N x N:
    reading its z-sections as particles would give wrong pixels without a word."""
    if suffix != ".mrc":
        return  # .mrcs says "stack"
    from .io.mrc import read_header

    header = read_header(path)
    if not header.looks_like_stack:
        shape = "x".join(map(str, reversed(header.data_shape)))
        raise InputError(path, f"is a 3D map of {shape} voxels, not a stack of particle images",
                         f"pass the particle stack or a .star/.cs naming it; if this file really is a stack of "
                         f"{header.data_shape[0]} images, rename it to .mrcs")


def _with_pickles(particles: ParticleSet, path: Path, poses, ctf, apix) -> ParticleSet:
    """Replace poses/CTF with cryoDRGN pickles, checking they have one row per particle."""
    changes = {}
    if ctf is not None:
        table, ctf_box, ctf_apix = read_cryodrgn_ctf(ctf)
        _same_length(particles, path, len(table), ctf)
        changes["ctf"] = table
        # cryoDRGN's rule: the pickle's (D, Apix) describe the images it was made from; a
        # downsampled stack keeps the same field of view, so its pixel is D * Apix / box.
        box = particles.box_size or ctf_box
        changes["apix"] = apix if apix is not None else ctf_apix * ctf_box / box
    if poses is not None:
        if particles.box_size is None:
            raise InputError(poses, "pose shifts are in fractions of the box, which is unknown without images", "load the images too")
        rotations, shifts = read_cryodrgn_poses(poses, particles.box_size)
        _same_length(particles, path, len(rotations), poses)
        changes.update(rotations=rotations, shifts=shifts)
    return dataclasses.replace(particles, **changes) if changes else particles


def _same_length(particles: ParticleSet, path: Path, n: int, other) -> None:
    if n != len(particles):
        raise InputError(
            other,
            f"has {n} rows but {path} has {len(particles)} particles",
            "use the stack and pickles made together, or select matching rows first",
        )


def _optics_groups(ctf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique (voltage, Cs, amplitude contrast) triples and each particle's 1-based group."""
    optics, group = np.unique(ctf[:, 3:6], axis=0, return_inverse=True)
    return optics, group.reshape(-1) + 1


def write_star(particles: ParticleSet, path: str | os.PathLike, *, stack: str | os.PathLike | None = None) -> Path:
    """Write a fresh RELION 3.1 .star (optics + particles), atomically.

    Image names (``000001@file.mrcs``, RELION's 1-based rows, paths relative to the .star)
    come from ``stack`` (an .mrcs holding exactly these images, in order) or from the set's
    own stack files. In-memory images without ``stack`` are first written, atomically, to
    an .mrcs beside the .star (``particles.star`` -> ``particles.mrcs``), so that RELION and
    :func:`load_particles` find them. Poses are written as Euler angles, shifts in Å, the CTF per particle and per optics
    group (one group per distinct voltage, Cs and amplitude contrast).
    """
    path = Path(path)
    n = len(particles)
    if particles.apix is None:
        raise InputError(path, "the pixel size is unknown", "set apix on the particle set (dataclasses.replace(p, apix=...))")
    ctf = particles.ctf
    optics_values, group = _optics_groups(ctf) if ctf is not None else (np.zeros((1, 3)), np.ones(n, np.int64))
    optics = pd.DataFrame(
        {
            "rlnOpticsGroup": np.arange(1, len(optics_values) + 1),
            "rlnOpticsGroupName": [f"opticsGroup{i}" for i in range(1, len(optics_values) + 1)],
            "rlnImagePixelSize": particles.apix,
            "rlnImageSize": particles.box_size or 0,
            "rlnImageDimensionality": 2,
        }
    )
    if ctf is not None:
        optics["rlnVoltage"], optics["rlnSphericalAberration"], optics["rlnAmplitudeContrast"] = optics_values.T
    if stack is None and _in_memory(particles):
        stack = stack_beside(path)
        write_stack(stack, particles.images, particles.apix)
    table = {}
    names = _image_names(particles, path, stack)
    if names is not None:
        table["rlnImageName"] = names
    if particles.rotations is not None:
        table["rlnAngleRot"], table["rlnAngleTilt"], table["rlnAnglePsi"] = matrix_to_relion(particles.rotations.astype(np.float64))
    if particles.shifts is not None:
        table["rlnOriginXAngst"], table["rlnOriginYAngst"] = (particles.shifts.astype(np.float64) * particles.apix).T
    if ctf is not None:
        for column, i in (("rlnDefocusU", 0), ("rlnDefocusV", 1), ("rlnDefocusAngle", 2), ("rlnPhaseShift", 6), ("rlnCtfBfactor", 7)):
            table[column] = ctf[:, i]
    table["rlnOpticsGroup"] = group
    return write_blocks({"optics": optics, "particles": pd.DataFrame(table)}, path, single_precision=True)


def _in_memory(particles: ParticleSet) -> bool:
    """True when the set has images but no stack files to name (simulated, or built from arrays)."""
    return particles.images is not None and particles.images.locations() is None


def stack_beside(star_path: str | os.PathLike) -> Path:
    """Where :func:`write_star` puts in-memory images: the .star's name with the suffix .mrcs."""
    return Path(star_path).with_suffix(".mrcs")


def _image_names(particles: ParticleSet, star_path: Path, stack) -> list[str] | None:
    if stack is not None:
        files, rows = [Path(stack)] * len(particles), np.arange(len(particles))
    elif particles.images is not None and particles.images.locations() is not None:
        files, rows = particles.images.locations()
    else:
        return None
    folder = star_path.resolve().parent
    relative = {f: os.path.relpath(Path(f).resolve(), folder) for f in set(files)}
    return [f"{row + 1:06d}@{relative[f]}" for f, row in zip(files, rows)]


def save_selection(particles: ParticleSet, prefix: str | os.PathLike) -> dict[str, Path]:
    """Write a selection as the source's format plus cryoDRGN index files.

    Writes ``<prefix>.star`` (a subset of the source .star, image names as RELION wrote them
    and the folder they resolve against recorded; or a fresh RELION 3.1 file for
    stacks/arrays), ``<prefix>.mrcs`` (the images, for particles held in memory: simulated
    or built from arrays), ``<prefix>.cs`` (for a .cs source), and ``<prefix>.ind.npy`` /
    ``<prefix>.ind.pkl`` holding the particles' original row numbers.
    """
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    out = {}
    fmt, src = particles.source.format, particles.source.path
    if fmt == "star":
        star = read_star(src, datadir=particles.source.datadir)  # image names resolve as when loaded
        out["star"] = write_star_subset(star, particles.indices, prefix.with_name(prefix.name + ".star"))
    elif fmt == "cs":
        out["cs"] = write_cs_subset(src, particles.indices, prefix.with_name(prefix.name + ".cs"))
    else:
        star = prefix.with_name(prefix.name + ".star")
        if _in_memory(particles):
            out["mrcs"] = stack_beside(star)
        out["star"] = write_star(particles, star)
    out["ind_npy"] = prefix.with_name(prefix.name + ".ind.npy")
    out["ind_pkl"] = prefix.with_name(prefix.name + ".ind.pkl")
    write_index_npy(particles.indices, out["ind_npy"])
    write_index_pickle(particles.indices, out["ind_pkl"])
    return out
