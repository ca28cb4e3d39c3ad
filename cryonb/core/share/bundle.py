"""Write and open shared bundles: a trained run's decoder, latents, particle metadata and selections.

A bundle is a folder, ready to be a repository of its own, that explores a run without its
particle stack. Its ``cryonb-bundle.json`` lists every file with its size and SHA-256 and carries a
format version; a reader checks both, loads arrays with ``allow_pickle=False`` and the weights with
``torch.load(weights_only=True)``, so that opening a bundle never runs code from it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from ..io.atomic import atomic_write
from . import metadata, template

BUNDLE_VERSION = 1
MANIFEST = "cryonb-bundle.json"
LATENT_CHOICES = ("auto", "float16", "float32")
MAP_CHANGE_LIMIT = 1e-3  # float16 latents when the decoder's output moves by less than this (relative)
SPREAD_LIMIT = 1e-2  # ... and no latent moves by more than this fraction of the latents' spread
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# Files and folders a bundle owns: replaced when a bundle is written again into the same folder.
_OWNED = (MANIFEST, "README.md", "explore.ipynb", "index.html", ".gitignore", "run", "particles", "selections",
          "thumbnails", "binder", ".cache")


@dataclass
class Thumbnails:
    """A few hundred particle images, reduced, for the gallery of a bundle without its stack."""

    images: np.ndarray  # (K, d, d) float32
    positions: np.ndarray  # (K,) rows of run.z they show


@dataclass
class Bundle:
    """An opened bundle: its :class:`~cryonb.core.run.Run` (decoder, latents, particle metadata) and
    what the sharer saved with it: a 2D view of the latents, cluster labels, traversals, selections."""

    path: Path
    run: object
    manifest: dict
    coords: np.ndarray | None = None  # (N, 2) the sharer's 2D view of the latents
    clusters: np.ndarray | None = None  # (N,) cluster labels
    traversals: dict[str, np.ndarray] = field(default_factory=dict)  # name -> latents (B, zdim)
    selections: dict[str, np.ndarray] = field(default_factory=dict)  # name -> rows of run.z
    thumbnails: Thumbnails | None = None

    def __repr__(self) -> str:
        m = self.manifest
        parts = [f"{m['n_particles']:,} particles", f"zdim {m['zdim']}", f"box {m['box']}", f"{m['apix']:g} Å/px"]
        lines = [f"cryonb bundle {self.path} ({', '.join(parts)}; written by {m['written_by']})"]
        lines.append(f"  particles: {m['particles']['file']} ({m['particles']['source_format']} source "
                     f"{m['particles']['source'] or '(in memory)'}), latents {m['latents']['dtype']}")
        if self.clusters is not None:
            lines.append(f"  clusters: {len(np.unique(self.clusters))}")
        for kind in ("selections", "traversals"):
            items = getattr(self, kind)
            if items:
                lines.append(f"  {kind}: " + ", ".join(f"{k} ({len(v):,})" for k, v in items.items()))
        shown = "none (no images in the bundle)" if self.thumbnails is None else f"{len(self.thumbnails.positions):,}"
        lines.append(f"  thumbnails: {shown}")
        return "\n".join(lines)


@dataclass
class ShareReport:
    """What :func:`share` wrote: the folder, the bytes of each part and the latents' precision."""

    path: Path
    sizes: dict[str, int]  # top-level part -> bytes
    latents: dict

    @property
    def total(self) -> int:
        return sum(self.sizes.values())

    def __str__(self) -> str:
        lines = [f"wrote {self.path}: {_mb(self.total)} in all"]
        lines += [f"  {name:<12} {_mb(size):>10}" for name, size in sorted(self.sizes.items(), key=lambda kv: -kv[1])]
        z = self.latents
        if z["dtype"] == "float16":
            lines.append(f"latents stored as float16: largest rounding {z['max_error']:.2g} (latent spread {z['spread']:.3g}), "
                         f"maps change by {z['map_change']:.1e} of their norm: nothing visible")
        else:
            lines.append(f"latents stored as float32 (float16 would move them by {z['max_error']:.2g} for a spread of "
                         f"{z['spread']:.3g}, and maps by {z['map_change']:.1e} of their norm)")
        return "\n".join(lines)

    __repr__ = __str__


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 10_000 else f"{n:,} B"


# ------------------------------------------------------------------------------------------ writing
def share(run, out: str | os.PathLike, *, explorer=None, coords=None, clusters=None, selections=None, traversals=None,
          thumbnails: int = 300, thumbnail_box: int = 64, latents: str = "auto", columns: str = "compact",
          title: str | None = None, requirement: str | None = None, overwrite: bool = False,
          progress: bool = True) -> ShareReport:
    """Write ``run`` as a bundle folder ``out`` that explores it without the particle stack.

    ``explorer``: a :class:`~cryonb.widgets.latent_explorer.LatentExplorer` or the view of
    ``cryonb.explore``, whose 2D coordinates, clusters, selection and drawn path are saved unless
    ``coords``, ``clusters``, ``selections`` or ``traversals`` are given. ``coords``: (N, 2);
    ``clusters``: (N,) labels or a k-means result; ``selections``: name -> rows of ``run.z`` (or a
    boolean mask); ``traversals``: name -> latents (B, zdim). ``thumbnails``: how many particle
    images (reduced to ``thumbnail_box`` pixels) the gallery gets, 0 for none. ``latents``:
    ``"auto"`` stores float16 when no latent moves by 1 % of the latents' spread and the decoder's
    output changes by under 0.1 % (:func:`lossless_in_float16`).
    ``columns``: ``"compact"`` or ``"all"`` columns of the particle file. ``requirement``: the line
    that installs cryonb on Binder (default ``cryonb[widgets]==<this version>``). ``overwrite``:
    replace an earlier bundle in ``out`` (files of its own only: a ``.git`` folder stays).
    """
    from tqdm.auto import tqdm

    from ... import __version__

    out = Path(out)
    z, particles = _check_run(run)
    if latents not in LATENT_CHOICES:
        raise InputError(None, f"unknown latents {latents!r}", f"use one of {', '.join(LATENT_CHOICES)}")
    coords, clusters, selections, traversals = _from_explorer(run, explorer, coords, clusters, selections, traversals)
    coords, clusters = _check_coords(coords, len(z)), _check_labels(clusters, len(z))
    selections = {name: _check_selection(name, rows, len(z)) for name, rows in (selections or {}).items()}
    traversals = {name: _check_traversal(run, name, zs) for name, zs in (traversals or {}).items()}
    _check_target(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
    steps = tqdm(total=6, desc="share", disable=not progress, unit="step")
    try:
        manifest = {"cryonb_bundle_version": BUNDLE_VERSION, "written_by": f"cryonb {__version__}",
                    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "title": title or out.name,
                    "n_particles": len(z), "zdim": int(z.shape[1]), "box": int(run.box_size), "apix": float(run.apix),
                    "scale": float(run.scale)}
        manifest["latents"] = _write_run(run, z, work / "run", latents)
        steps.update()
        entry = metadata.write_metadata(particles, work / "particles", columns)
        rows = entry.pop("rows")
        if entry["n_rows"] != len(rows) or not np.array_equal(rows, np.arange(len(rows))):  # else: every row, in order
            _save_array(work / "particles" / "rows.npy", rows.astype(np.int32 if entry["n_rows"] < 2**31 else np.int64))
        manifest["particles"] = {**entry, "rows": "rows.npy" if (work / "particles" / "rows.npy").exists() else None}
        steps.update()
        if coords is not None:
            _save_array(work / "run" / "coords.npy", coords.astype(np.float16 if manifest["latents"]["dtype"] == "float16" else np.float32))
        if clusters is not None:
            _save_array(work / "run" / "clusters.npy", clusters)
        for name, zs in traversals.items():
            _save_array(work / "run" / "traversals" / f"{name}.npy", zs)
        for name, rows in selections.items():
            _save_array(work / "selections" / f"{name}.npy", rows)
        manifest.update(coords=coords is not None, clusters=clusters is not None, traversals=sorted(traversals),
                        selections=sorted(selections))
        steps.update()
        manifest["thumbnails"] = _write_thumbnails(particles, clusters, thumbnails, thumbnail_box, work / "thumbnails")
        steps.update()
        template.write_files(work, manifest, requirement or f"cryonb[widgets]=={__version__}")
        steps.update()
        manifest["files"] = {p.relative_to(work).as_posix(): {"bytes": p.stat().st_size, "sha256": metadata.file_digest(p)}
                             for p in sorted(work.rglob("*")) if p.is_file()}
        with atomic_write(work / MANIFEST, "w") as f:
            json.dump(manifest, f, indent=1)
        _move_into_place(work, out)
        steps.update()
    finally:
        steps.close()
        shutil.rmtree(work, ignore_errors=True)
    sizes: dict[str, int] = {}
    for p in out.rglob("*"):
        relative = p.relative_to(out)
        if p.is_file() and relative.parts[0] not in (".git", ".cache"):
            sizes[relative.parts[0]] = sizes.get(relative.parts[0], 0) + p.stat().st_size
    return ShareReport(out, sizes, manifest["latents"])


def _check_run(run):
    if run.z is None or not run.zdim:
        raise InputError(run.run_dir, "a homogeneous run (zdim=0) has no latent space to share",
                         "share a run trained with zdim > 0; write its map with run.write_volumes instead")
    if run.config is None:
        raise InputError(run.run_dir, "the run carries no training configuration, which a bundle needs to rebuild the decoder",
                         "open it with Run.open(run_dir) or Run.from_trainer(trainer)")
    particles = run.particles
    if particles is None:
        raise InputError(run.run_dir, "the run has no particles: the bundle needs their metadata (poses, CTF, names)",
                         "open the run with them: Run.open(run_dir, particles), or cryonb share --particles FILE")
    z = np.asarray(run.z, dtype=np.float32)
    if len(particles) != len(z):
        raise InputError(run.run_dir, f"the run has {len(z)} latents but {len(particles)} particles",
                         "open the run with the particle set it was trained on")
    return z, particles


def _from_explorer(run, explorer, coords, clusters, selections, traversals):
    """Defaults taken from a LatentExplorer (or a view holding one as ``.explorer``)."""
    if explorer is None:
        return coords, clusters, selections, traversals
    explorer = getattr(explorer, "explorer", explorer)
    if explorer.run is not run and len(explorer.run.z) != len(run.z):
        raise InputError(None, "the explorer shows another run", "pass the explorer of this run")
    if coords is None:
        coords = explorer.coords
    if clusters is None and explorer.clusters is not None:
        clusters = explorer.clusters.labels
    if selections is None and len(explorer.positions):
        selections = {"selection": explorer.positions}
    if traversals is None and len(explorer.path):
        traversals = {"path": np.asarray(run.z)[explorer.path]}
    return coords, clusters, selections, traversals


def _check_name(name, kind: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in (".", ".."):
        raise InputError(None, f"{kind} name {name!r} cannot be a file name",
                         "use letters, digits, '_', '-' or '.', starting with a letter or digit (at most 64)")
    return name


def _check_coords(coords, n: int):
    if coords is None:
        return None
    coords = np.asarray(coords, dtype=np.float32)
    if coords.shape != (n, 2) or not np.isfinite(coords).all():
        raise InputError(None, f"coords have shape {coords.shape}, expected finite values of shape ({n}, 2)",
                         "pass the explorer's coords (one (x, y) row per particle)")
    return coords


def _check_labels(clusters, n: int):
    if clusters is None:
        return None
    labels = np.asarray(getattr(clusters, "labels", clusters))
    if labels.shape != (n,) or labels.dtype.kind not in "iu":
        raise InputError(None, f"cluster labels have shape {labels.shape} and dtype {labels.dtype}, expected ({n},) integers",
                         "pass one integer label per particle, or a k-means result")
    small = next(t for t in (np.int8, np.int16, np.int32, np.int64)  # the smallest that holds them: bytes count at 1M
                 if not labels.size or np.iinfo(t).min <= labels.min() and labels.max() <= np.iinfo(t).max)
    return labels.astype(small)


def _check_selection(name, rows, n: int) -> np.ndarray:
    _check_name(name, "selection")
    rows = np.asarray(rows)
    if rows.dtype == bool:
        if rows.shape != (n,):
            raise InputError(None, f"selection {name!r} is a mask of {rows.shape}, expected ({n},)", "pass one flag per particle")
        rows = np.flatnonzero(rows)
    if rows.ndim != 1 or rows.dtype.kind not in "iu" or (rows.size and (rows.min() < 0 or rows.max() >= n)):
        raise InputError(None, f"selection {name!r} is not a list of rows of run.z (0 to {n - 1})", "pass explorer.positions")
    return rows.astype(np.int32 if n < 2**31 else np.int64)


def _check_traversal(run, name, zs) -> np.ndarray:
    _check_name(name, "traversal")
    zs = run.check_latents(getattr(zs, "z", zs))
    return zs


def _check_target(out: Path, overwrite: bool) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise InputError(out, "exists and is not a folder", "choose a new folder for the bundle")
    if (out / MANIFEST).exists():
        if not overwrite:
            raise InputError(out, "already holds a bundle", "pass overwrite=True (cryonb share --force) to replace it, or choose a new folder")
        return
    visible = [p.name for p in out.iterdir() if not p.name.startswith(".")]
    if visible:
        raise InputError(out, f"is a folder that holds other files ({', '.join(sorted(visible)[:3])}…)",
                         "choose a new or empty folder (a fresh clone of an empty repository is fine)")


def _move_into_place(work: Path, out: Path) -> None:
    """Put the finished bundle at ``out``: a rename if new; else replace the old bundle's own files,
    keeping everything else there (a repository's ``.git``, the user's files)."""
    if not out.exists():
        os.replace(work, out)
        return
    for name in _OWNED:
        old = out / name
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old)
        elif old.exists() or old.is_symlink():
            old.unlink()
    for item in work.iterdir():
        if item.name != MANIFEST:
            os.replace(item, out / item.name)
    os.replace(work / MANIFEST, out / MANIFEST)  # last: the folder is a complete bundle once it is there


def _save_array(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        np.save(f, np.ascontiguousarray(array), allow_pickle=False)


def _write_run(run, z: np.ndarray, folder: Path, latents: str) -> dict:
    """config.json (as a run folder's, without paths of the sharer's machine), decoder.pt and z.npy."""
    from ..checkpoints import CHECKPOINT_VERSION

    folder.mkdir(parents=True)
    config = dataclasses.asdict(run.config)
    config.update(particles=None, cache_dir=None, device="auto")
    meta = {"cryonb_checkpoint_version": CHECKPOINT_VERSION, "config": config, "box": int(run.box_size),
            "apix": float(run.apix), "n_particles": len(z)}
    with atomic_write(folder / "config.json", "w") as f:
        json.dump(meta, f, indent=2)
    decoder = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in run.model.decoder.state_dict().items()}
    with atomic_write(folder / "decoder.pt") as f:
        torch.save(decoder, f)
    precision = latent_precision(run, z)
    dtype = latents if latents != "auto" else ("float16" if lossless_in_float16(precision) else "float32")
    if dtype == "float16" and not precision["fits"]:
        raise InputError(None, "latents beyond float16's range (±65504)", "use latents='float32'")
    _save_array(folder / "z.npy", z.astype(dtype))
    return {"dtype": dtype, **{k: v for k, v in precision.items() if k != "fits"}}


def lossless_in_float16(precision: dict) -> bool:
    """Whether float16 latents lose nothing visible: every latent moves by under 1 % of the latents'
    spread (the plot and the selections stay the same) and the decoder's output by under 0.1 %."""
    moved = precision["max_error"] / precision["spread"] if precision["spread"] > 0 else float(precision["max_error"] > 0)
    return precision["fits"] and moved < SPREAD_LIMIT and precision["map_change"] < MAP_CHANGE_LIMIT


@torch.no_grad()
def latent_precision(run, z: np.ndarray, n_latents: int = 16, n_points: int = 2048, seed: int = 0) -> dict:
    """How much storing ``z`` as float16 changes: the largest rounding of a latent, the latents'
    spread (smallest per-dimension standard deviation) and the relative change of the decoder's
    output at ``n_latents`` particles' latents and ``n_points`` random frequencies inside Nyquist."""
    with np.errstate(over="ignore"):
        z16 = z.astype(np.float16)
    fits = bool(np.isfinite(z16).all())
    error = float(np.abs(z16.astype(np.float32) - z).max()) if fits else float("inf")
    spread = float(z.std(0).min()) if len(z) > 1 else 0.0
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(z), min(n_latents, len(z)), replace=False)
    decoder = run.model.decoder
    device = next(decoder.parameters()).device
    D = run.box_size
    direction = rng.standard_normal((len(rows), n_points, 3))
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    radius = (D // 2) * rng.random((len(rows), n_points, 1)) ** (1 / 3)
    coords = torch.as_tensor(direction * radius, dtype=torch.float32, device=device)
    exact = decoder(coords, torch.as_tensor(z[rows], device=device))
    rounded = decoder(coords, torch.as_tensor(z16[rows].astype(np.float32), device=device)) if fits else None
    change = float("inf") if rounded is None else float((rounded - exact).abs().norm() / exact.abs().norm().clamp_min(1e-30))
    return {"max_error": error, "spread": spread, "map_change": change, "fits": fits}


def pick_thumbnails(n: int, count: int, labels: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """``count`` rows of ``n`` (sorted), drawn at random, in equal numbers from each cluster when
    ``labels`` are given (a small cluster gives all it has)."""
    rng = np.random.default_rng(seed)
    if count >= n:
        return np.arange(n)
    if labels is None:
        return np.sort(rng.choice(n, count, replace=False))
    groups = [rng.permutation(np.flatnonzero(labels == label)) for label in np.unique(labels)]
    rank = np.empty(n, np.int64)
    for group in groups:
        rank[group] = np.arange(len(group))
    order = np.lexsort((rng.random(n), rank))  # first of each cluster, then second of each...
    return np.sort(order[:count])


def _write_thumbnails(particles, labels, count: int, box: int, folder: Path) -> dict | None:
    if not count or particles.images is None:
        return None
    from ..fourier import fourier_crop

    positions = pick_thumbnails(len(particles), int(count), labels)
    images = torch.from_numpy(particles.images[positions])
    if images.shape[-1] > box:
        images = fourier_crop(images, box - box % 2)
    images = images.numpy()
    images = (images - images.mean()) / (images.std() or 1.0)  # one scale for all: the average stays meaningful
    _save_array(folder / "images.npy", images.astype(np.float16))
    _save_array(folder / "positions.npy", positions.astype(np.int64))
    return {"images": "images.npy", "positions": "positions.npy", "count": len(positions), "box": int(images.shape[-1])}


__all__ = ["BUNDLE_VERSION", "MANIFEST", "Bundle", "ShareReport", "Thumbnails", "latent_precision", "lossless_in_float16",
           "pick_thumbnails", "share"]
