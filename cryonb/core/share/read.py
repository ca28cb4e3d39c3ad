"""Open a shared bundle without trusting it: versions, paths, sizes and checksums checked, no pickles."""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from ..errors import InputError
from . import metadata
from .bundle import BUNDLE_VERSION, MANIFEST, Bundle, Thumbnails

_FIX = "copy the bundle again from where it was shared"


class SharedModel(torch.nn.Module):
    """The decoder of a shared run, without its encoder: maps for any latent, no new latents."""

    def __init__(self, decoder: torch.nn.Module, zdim: int):
        super().__init__()
        self.decoder = decoder
        self._zdim = zdim

    @property
    def zdim(self) -> int:
        return self._zdim


def is_bundle(path) -> bool:
    """Whether ``path`` is a folder holding a bundle manifest."""
    return isinstance(path, (str, os.PathLike)) and (Path(path) / MANIFEST).is_file()


def read_manifest(path: str | os.PathLike) -> dict:
    """The bundle's manifest, its version checked: a newer format is an :class:`InputError`."""
    path = Path(path)
    file = path / MANIFEST
    if not file.is_file():
        raise InputError(path, f"not a cryonb bundle ({MANIFEST} is missing)", "pass the folder written by cryonb share")
    try:
        manifest = json.loads(file.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(file, f"is not valid JSON ({err})", _FIX) from None
    if not isinstance(manifest, dict):
        raise InputError(file, "does not hold a bundle manifest", _FIX)
    version = manifest.get("cryonb_bundle_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InputError(file, f"has no valid cryonb_bundle_version (got {version!r})", _FIX)
    if version > BUNDLE_VERSION:
        raise InputError(file, f"bundle written by a newer cryonb ({manifest.get('written_by', 'unknown')}, bundle format "
                               f"{version}; this cryonb reads format {BUNDLE_VERSION} at most)",
                         "upgrade cryonb (pip install -U cryonb), or open the bundle with the version in its binder/requirements.txt")
    for key, kinds in (("n_particles", int), ("zdim", int), ("box", int), ("apix", (int, float)), ("scale", (int, float)),
                       ("files", dict), ("latents", dict), ("particles", dict)):
        value = manifest.get(key)
        if not isinstance(value, kinds) or isinstance(value, bool) or (not isinstance(value, dict) and not value > 0):
            raise InputError(file, f"has {key} = {value!r}", _FIX)
    return manifest


def _file(bundle: Path, manifest: dict, relative: str) -> Path:
    """A file the manifest lists, inside the bundle, of the listed size (checksum checked by ``verify``)."""
    if not isinstance(relative, str) or relative not in manifest["files"]:
        raise InputError(bundle / MANIFEST, f"names a file it does not list ({relative!r})", _FIX)
    parts = PurePosixPath(relative).parts
    if PurePosixPath(relative).is_absolute() or ".." in parts or not parts:
        raise InputError(bundle / MANIFEST, f"names a file outside the bundle ({relative!r})", _FIX)
    path = bundle.joinpath(*parts)
    if not path.is_file() or path.is_symlink():
        raise InputError(path, "is missing from the bundle", _FIX)
    expected = manifest["files"][relative].get("bytes")
    size = path.stat().st_size
    if size != expected:
        pointer = size < 1024 and path.read_bytes().startswith(b"version https://git-lfs")
        problem = ("is a Git LFS pointer, not the file" if pointer else f"has {size:,} bytes, the manifest says {expected:,}")
        fix = "run `git lfs pull` in the bundle's repository" if pointer else _FIX
        raise InputError(path, problem, fix)
    return path


def verify(path: str | os.PathLike) -> dict:
    """Check every file of a bundle against its manifest (size and SHA-256); returns the manifest."""
    bundle = Path(path)
    manifest = read_manifest(bundle)
    for relative, entry in manifest["files"].items():
        file = _file(bundle, manifest, relative)
        if metadata.file_digest(file) != entry.get("sha256"):
            raise InputError(file, "does not match the checksum in the manifest (changed or damaged)", _FIX)
    return manifest


def _array(bundle: Path, manifest: dict, relative: str, kinds: str, shape=None) -> np.ndarray:
    path = _file(bundle, manifest, relative)
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise InputError(path, f"is not a numeric .npy array ({str(err).splitlines()[0][:120]})", _FIX) from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in kinds:
        raise InputError(path, f"holds {getattr(array, 'dtype', type(array).__name__)} values", _FIX)
    if shape is not None and (array.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, array.shape))):
        raise InputError(path, f"has shape {array.shape}, expected {tuple('any' if s is None else s for s in shape)}", _FIX)
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise InputError(path, "holds NaN or infinite values", _FIX)
    return array


def build_decoder(config, box: int) -> torch.nn.Module:
    """The decoder a training configuration describes at box ``box`` (random weights)."""
    return config.build_decoder(box)


def _decoder(bundle: Path, manifest: dict, config, box: int) -> torch.nn.Module:
    """The run's decoder, built from its configuration, with the bundle's weights (``weights_only``)."""
    path = _file(bundle, manifest, "run/decoder.pt")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated, foreign or unsafe file: torch refuses anything but tensors
        raise InputError(path, f"is not a readable weights file ({type(err).__name__})", _FIX) from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise InputError(path, "does not hold a table of named weights", _FIX)
    decoder = build_decoder(config, box)
    try:
        decoder.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError) as err:
        raise InputError(path, f"weights do not fit the run's configuration ({str(err).splitlines()[0][:200]})", _FIX) from None
    if not all(bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point()):
        raise InputError(path, "weights hold NaN or infinite values", _FIX)
    return decoder.eval()


def open_bundle(path: str | os.PathLike, *, check: bool = True) -> Bundle:
    """Open a bundle written by :func:`~cryonb.core.share.share` (``check``: verify every checksum)."""
    from ..run import Run
    from ..training import TrainConfig, read_run_config

    bundle = Path(path)
    manifest = verify(bundle) if check else read_manifest(bundle)
    _file(bundle, manifest, "run/config.json")
    meta = read_run_config(bundle / "run")  # the checks a run folder's config.json gets
    config = TrainConfig.from_dict(meta["config"])
    n, zdim, box = manifest["n_particles"], manifest["zdim"], manifest["box"]
    if (meta["n_particles"], config.zdim, meta["box"]) != (n, zdim, box):
        raise InputError(bundle / "run" / "config.json", "does not agree with the manifest (particles, zdim or box)", _FIX)
    z = _array(bundle, manifest, "run/z.npy", "f", (n, zdim)).astype(np.float32)
    decoder = _decoder(bundle, manifest, config, box)

    entry = manifest["particles"]
    if entry.get("format") not in ("star", "cs") or not isinstance(entry.get("file"), str) or not entry["file"].endswith(".gz"):
        raise InputError(bundle / MANIFEST, f"names particle metadata of an unknown kind ({entry.get('file')!r})", _FIX)
    _file(bundle, manifest, f"particles/{entry['file']}")
    rows = None if entry.get("rows") is None else _array(bundle, manifest, f"particles/{entry['rows']}", "iu", (n,)).astype(np.int64)
    unpacked = metadata.unpacked(bundle, entry, manifest["files"][f"particles/{entry['file']}"]["sha256"])
    block = entry.get("particle_block")
    particles = metadata.load_metadata(unpacked, rows, block if isinstance(block, str) else None)
    if len(particles) != n:
        raise InputError(unpacked, f"holds {len(particles)} particles, the run {n}", _FIX)

    run = Run(SharedModel(decoder, zdim), float(manifest["scale"]), float(manifest["apix"]), z, particles, config, bundle)
    opened = Bundle(bundle, run, manifest)
    if manifest.get("coords"):
        opened.coords = _array(bundle, manifest, "run/coords.npy", "f", (n, 2)).astype(np.float32)
    if manifest.get("clusters"):
        opened.clusters = _array(bundle, manifest, "run/clusters.npy", "iu", (n,)).astype(np.int64)
    for name in manifest.get("traversals") or []:
        opened.traversals[name] = _array(bundle, manifest, f"run/traversals/{name}.npy", "f", (None, zdim)).astype(np.float32)
    for name in manifest.get("selections") or []:
        rows_of = _array(bundle, manifest, f"selections/{name}.npy", "iu", (None,)).astype(np.int64)
        if rows_of.size and (rows_of.min() < 0 or rows_of.max() >= n):
            raise InputError(bundle / "selections" / f"{name}.npy", f"holds rows outside 0..{n - 1}", _FIX)
        opened.selections[name] = rows_of
    opened.thumbnails = _thumbnails(bundle, manifest, n)
    return opened


def _thumbnails(bundle: Path, manifest: dict, n: int) -> Thumbnails | None:
    entry = manifest.get("thumbnails")
    if not entry:
        return None
    images = _array(bundle, manifest, f"thumbnails/{entry['images']}", "f", (None, None, None)).astype(np.float32)
    positions = _array(bundle, manifest, f"thumbnails/{entry['positions']}", "iu", (len(images),)).astype(np.int64)
    if positions.size and (positions.min() < 0 or positions.max() >= n):
        raise InputError(bundle / "thumbnails", f"thumbnail rows lie outside 0..{n - 1}", _FIX)
    return Thumbnails(images, positions)


def thumbnails_of(run) -> Thumbnails | None:
    """The thumbnails of a run opened from a bundle (its ``run_dir`` is the bundle), else None."""
    folder = getattr(run, "run_dir", None)
    if folder is None or not is_bundle(folder):
        return None
    manifest = read_manifest(folder)
    return _thumbnails(Path(folder), manifest, manifest["n_particles"])

__all__ = ["SharedModel", "build_decoder", "is_bundle", "open_bundle", "read_manifest", "thumbnails_of", "verify"]
