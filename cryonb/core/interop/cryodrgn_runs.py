"""Open a cryoDRGN run folder in cryonb: its latents, a decoder for its maps, and its particles.

A ``train_vae`` (or ``train_nn``) folder holds ``config.yaml`` (``config.pkl`` before cryoDRGN
1.0), ``weights.N.pkl`` and ``z.N.pkl`` for each saved epoch N (plus ``weights.pkl``/``z.pkl``
for the last one, in cryoDRGN 3 and 4) and ``analyze.N/`` folders; an ``abinit`` folder
(cryoDRGN 4) the same names with its hypervolume in the weights. Weights are read with
``torch.load(weights_only=True)``, pickles of arrays with cryonb's restricted unpickler.

>>> run = open_cryodrgn_run("003_train_vae", epoch=25)   # or Run.open / cryonb.explore
>>> run.write_volumes(run.z[:3], "maps")
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from ..io.pickles import load_pickle, read_cryodrgn_ctf, read_cryodrgn_poses, read_index
from .cryodrgn_config import FIX, find_config, read_config, require
from .cryodrgn_decoder import ACTIVATIONS, DOMAINS, ENCODINGS, AbinitHyperVolume, CryodrgnDecoder

_EPOCH_FILE = re.compile(r"weights\.(\d+)\.pkl")
_ANALYZE = re.compile(r"analyze\.(\d+)")
_FIX_WEIGHTS = "pass the weights.N.pkl that cryoDRGN wrote (copy it again if it was cut short), or another epoch (epoch=N)"


@dataclass(frozen=True)
class CryodrgnRunConfig:
    """What cryonb keeps of a cryoDRGN run's configuration (``Run.config`` of an opened run).

    ``particles``: the particle file the run recorded, if it exists here (else None);
    ``command``: ``train_vae``, ``train_nn`` or ``abinit``; ``raw``: the whole configuration.
    """

    path: Path
    command: str
    zdim: int
    box: int
    norm: tuple[float, float]
    particles: str | None
    version: str | None
    raw: dict = field(repr=False, compare=False)


def cryodrgn_run_folder(path: str | os.PathLike) -> tuple[Path, int | None] | None:
    """(run folder, epoch) if ``path`` is a cryoDRGN run folder (epoch None) or one of its
    ``analyze.N`` folders (epoch N); None otherwise (e.g. a cryonb run with its config.json)."""
    path = Path(path)
    if not path.is_dir() or (path / "config.json").exists():
        return None
    if find_config(path) is not None:
        return path, None
    match = _ANALYZE.fullmatch(path.name)
    if match and find_config(path.parent) is not None and not (path.parent / "config.json").exists():
        return path.parent, int(match.group(1))
    return None


def is_cryodrgn_run(path: str | os.PathLike) -> bool:
    """True for a cryoDRGN output folder (or an ``analyze.N`` folder in one)."""
    return cryodrgn_run_folder(path) is not None


def saved_epochs(run_dir: str | os.PathLike) -> list[int]:
    """The epochs N with a ``weights.N.pkl`` in the folder, in order."""
    found = (_EPOCH_FILE.fullmatch(p.name) for p in Path(run_dir).iterdir())
    return sorted(int(m.group(1)) for m in found if m)


def run_config(run_dir: str | os.PathLike) -> CryodrgnRunConfig:
    """The run's configuration, checked: command, latent size, box, normalisation, particles."""
    run_dir = Path(run_dir)
    path = find_config(run_dir)
    if path is None:
        raise InputError(run_dir, "has no config.yaml or config.pkl: not a cryoDRGN run folder", FIX)
    raw = read_config(path)
    model = raw["model_args"]
    if "hypervolume_params" in raw or "data_norm_mean" in raw:
        command = "abinit"
        norm = (raw.get("data_norm_mean"), raw.get("data_norm_std"))
    else:
        command = "train_vae" if "players" in model else "train_nn"
        norm = tuple((raw.get("dataset_args") or {}).get("norm") or (None, None))
    if len(norm) != 2 or not all(isinstance(v, (int, float, np.integer, np.floating)) and np.isfinite(v) for v in norm):
        raise InputError(path, f"the data normalisation (mean, std) is {norm!r}, not two numbers", FIX)
    lattice = require(raw, "lattice_args", "D", path) if "lattice_args" in raw else None
    zdim = model.get("zdim", 0) or 0
    if not isinstance(zdim, (int, np.integer)) or zdim < 0:
        raise InputError(path, f"model_args.zdim is {zdim!r}", FIX)
    dataset = raw.get("dataset_args") or {}
    return CryodrgnRunConfig(path, command, int(zdim), int(lattice or 0) - 1, (float(norm[0]), float(norm[1])),
                             _existing(dataset.get("particles"), run_dir), raw.get("version"), raw)


def _existing(recorded, run_dir: Path) -> str | None:
    """The recorded file if it exists, else a file of that name beside or above the run (a moved run), else None."""
    if not isinstance(recorded, str) or not recorded:
        return None
    path = Path(recorded)
    for candidate in (path, run_dir / path.name, run_dir.parent / path.name):
        if candidate.is_file():
            return str(candidate)
    return None


def _epoch_files(run_dir: Path, epoch: int | None) -> tuple[Path, Path, int | None]:
    """(weights, z, epoch) of the asked epoch, or of the latest saved one."""
    epochs = saved_epochs(run_dir)
    if epoch is None:
        if epochs:
            epoch = epochs[-1]
        elif (run_dir / "weights.pkl").is_file():
            return run_dir / "weights.pkl", run_dir / "z.pkl", None
        else:
            raise InputError(run_dir, "has no weights.N.pkl (nor weights.pkl): the run saved no epoch yet",
                             "wait for cryoDRGN to finish an epoch, or pass the folder that holds the weights")
    elif epoch not in epochs:
        have = ", ".join(map(str, epochs)) or "none"
        raise InputError(run_dir / f"weights.{epoch}.pkl", f"epoch {epoch} was not saved (saved epochs: {have})",
                         "pass one of the saved epochs, or epoch=None for the latest")
    return run_dir / f"weights.{epoch}.pkl", run_dir / f"z.{epoch}.pkl", epoch


def load_weights(path: str | os.PathLike) -> dict:
    """A cryoDRGN checkpoint as a dictionary, read with ``torch.load(weights_only=True)``."""
    path = Path(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(path, "file not found", _FIX_WEIGHTS) from None
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0]
        raise InputError(path, f"holds objects that are not plain tensors and numbers, refused ({first})", _FIX_WEIGHTS) from None
    except (RuntimeError, EOFError, ValueError, OSError, AttributeError, KeyError, IndexError, TypeError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise InputError(path, f"is not a readable PyTorch checkpoint: truncated or corrupt ({first})", _FIX_WEIGHTS) from None
    if not isinstance(checkpoint, dict):
        raise InputError(path, f"holds a {type(checkpoint).__name__}, not cryoDRGN's checkpoint dictionary", _FIX_WEIGHTS)
    return checkpoint


def build_decoder(config: CryodrgnRunConfig, checkpoint: dict, weights_path) -> nn.Module:
    """A cryonb decoder for the run's architecture, with the checkpoint's weights loaded."""
    path = config.path
    if config.command == "abinit":
        params = checkpoint.get("hypervolume_params")
        state = checkpoint.get("hypervolume_state_dict")
        if not isinstance(params, dict) or not isinstance(state, dict):
            raise InputError(weights_path, "has no hypervolume_params/hypervolume_state_dict: not an abinit checkpoint", _FIX_WEIGHTS)
        if params.get("pe_type") != "gaussian" or params.get("domain") != "hartley":
            raise InputError(path, f"abinit hypervolume with pe_type={params.get('pe_type')!r}, domain={params.get('domain')!r}: "
                                   "cryonb knows the gaussian/hartley hypervolume only", "open runs of the standard abinit model")
        radius = checkpoint.get("output_mask_radius")
        if radius is None:
            raise InputError(weights_path, "has no output_mask_radius", _FIX_WEIGHTS)
        try:
            decoder = AbinitHyperVolume(int(params["resolution"]), int(params["z_dim"]), int(params["n_layers"]), int(params["hidden_dim"]),
                                        int(params["pe_dim"]), float(radius), config.norm, params.get("pe_type_conf"))
        except (KeyError, TypeError, ValueError) as err:
            raise InputError(weights_path, f"hypervolume_params are incomplete or invalid ({type(err).__name__}: {err})", _FIX_WEIGHTS) from None
        return _load_state(decoder, _rename(state), weights_path)
    model = config.raw["model_args"]
    depth_key = "players" if config.command == "train_vae" else "layers"
    width_key = "pdim" if config.command == "train_vae" else "dim"
    n_hidden = require(config.raw, "model_args", depth_key, path)
    width = require(config.raw, "model_args", width_key, path)
    encoding = model.get("pe_type", "geom_lowf")  # cryoDRGN < 0.3 had only geom_lowf
    domain = model.get("domain", "fourier")
    activation = model.get("activation", "relu")
    for name, value, known in (("pe_type", encoding, ENCODINGS), ("domain", domain, DOMAINS), ("activation", activation, tuple(ACTIVATIONS))):
        if value not in known:
            raise InputError(path, f"model_args.{name} is {value!r}, an architecture cryonb does not know (it knows {', '.join(known)})",
                             "open runs of cryoDRGN's standard decoders, or ask for this one to be added")
    if model.get("encode_mode") == "tilt" or (config.raw.get("dataset_args") or {}).get("tilt"):
        warnings.warn(f"{path}: a tilt-series run; its maps are read like those of single particles", stacklevel=3)
    try:
        decoder = CryodrgnDecoder(config.box + 1, config.zdim, n_hidden, width, domain, encoding, model.get("pe_dim"),
                                  activation, config.norm, model.get("feat_sigma"))
    except ValueError as err:
        raise InputError(path, str(err), FIX) from None
    state = checkpoint.get("model_state_dict")
    if not isinstance(state, dict):
        raise InputError(weights_path, "has no model_state_dict", _FIX_WEIGHTS)
    if config.command == "train_vae":
        state = {k[len("decoder."):]: v for k, v in _unwrapped(state).items() if k.startswith("decoder.")}
    return _load_state(decoder, _rename(state), weights_path)


def _unwrapped(state: dict) -> dict:
    """Keys without the ``module.``/``dp.module.`` of models trained on several GPUs."""
    return {k.replace("dp.module.", "").removeprefix("module."): v for k, v in state.items()}


def _rename(state: dict) -> dict:
    """cryoDRGN's decoder keys as cryonb's: the MLP's layers under ``mlp.main``, frequencies under ``encoding``."""
    out = {}
    for key, value in _unwrapped(state).items():
        if key == "rand_freqs":
            key = "encoding.rand_freqs"
        elif re.match(r"(decoder\.|mlp\.)?main\.", key):
            key = "mlp." + key[key.index("main.") :]
        out[key] = value
    return out


def _load_state(decoder: nn.Module, state: dict, weights_path) -> nn.Module:
    try:
        decoder.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])
        raise InputError(weights_path, f"the weights do not fit the architecture in config.yaml ({detail})",
                         "pass the config.yaml and weights of the same run") from None
    return decoder.eval()


class CryodrgnModel(nn.Module):
    """A cryoDRGN run's decoder in the shape :class:`~cryonb.core.run.Run` expects (``decoder``, ``zdim``).

    There is no image encoder: the latents are those cryoDRGN saved.
    """

    def __init__(self, decoder: nn.Module):
        super().__init__()
        self.decoder = decoder
        self.zdim = decoder.zdim
        self.encoder = None


def read_latents(path: str | os.PathLike, zdim: int) -> np.ndarray:
    """``z.N.pkl``: the latent means (N, zdim), through the restricted unpickler."""
    fix = "pass the run's z.N.pkl as cryoDRGN wrote it"
    z = load_pickle(path)
    if isinstance(z, (tuple, list)) and len(z) == 2:  # (mu, logvar) in some versions
        z = z[0]
    z = np.asarray(z)
    if z.ndim != 2 or z.shape[1] != zdim or z.dtype.kind not in "fiu":
        raise InputError(path, f"holds {z.dtype} latents of shape {z.shape}, expected (N, {zdim})", fix)
    if not np.isfinite(z).all():
        raise InputError(path, "latents contain NaN or infinite values", fix)
    return z.astype(np.float32)


def open_cryodrgn_run(path: str | os.PathLike, epoch: int | None = None, particles=None, *, apix: float | None = None,
                      device: str = "auto", datadir: str | os.PathLike | None = None):
    """A :class:`~cryonb.core.run.Run` of a cryoDRGN run folder (or its ``analyze.N`` folder) at ``epoch``.

    ``epoch``: a saved epoch (default: the latest, or the ``analyze.N`` folder's N). ``particles``:
    a :class:`~cryonb.core.particles.ParticleSet` or a particle file; by default those the run
    recorded (with its poses, CTF and index file) when found, else none (latents and maps
    still work). ``apix``: the maps' pixel size; by default the particles' or the CTF pickle's,
    else 1 Å like ``cryodrgn eval_vol``. The run's ``epoch`` attribute is the epoch opened (None
    for the unnumbered ``weights.pkl``), its ``config`` a :class:`CryodrgnRunConfig`.
    """
    from ..run import Run
    from ..training import resolve_device

    found = cryodrgn_run_folder(path)
    if found is None:
        raise InputError(path, "is not a cryoDRGN run folder (no config.yaml or config.pkl)", FIX)
    run_dir, analyze_epoch = found
    epoch = analyze_epoch if epoch is None else epoch
    config = run_config(run_dir)
    weights_path, z_path, epoch = _epoch_files(run_dir, epoch)
    checkpoint = load_weights(weights_path)
    decoder = build_decoder(config, checkpoint, weights_path)
    model = CryodrgnModel(decoder).to(resolve_device(device)).eval()
    z = None
    if config.zdim:
        if not z_path.is_file():
            raise InputError(z_path, "file not found: the run saved weights but no latents for this epoch",
                             "pass an epoch whose z.N.pkl exists (epoch=N)")
        z = read_latents(z_path, config.zdim)
    particle_set = None
    n = None if z is None else len(z)
    if particles is not None:
        particle_set = particles_from_cryodrgn_run(run_dir, particles, datadir=datadir, n=n, epoch=epoch)
    elif config.particles is not None:
        try:  # the recorded particles are a convenience: latents and maps do not need them
            particle_set = particles_from_cryodrgn_run(run_dir, datadir=datadir, n=n, epoch=epoch)
        except InputError as err:
            warnings.warn(f"{err} The run is opened without particles; pass particles= to have them.", stacklevel=2)
    apix = _pixel_size(config, particle_set, apix)
    run = Run(model, 1.0, apix, z, particle_set, config, run_dir)
    run.epoch = epoch
    return run


def _pixel_size(config: CryodrgnRunConfig, particles, apix) -> float:
    if apix is not None:
        return float(apix)
    if particles is not None and particles.apix:
        return float(particles.apix)
    ctf = _existing((config.raw.get("dataset_args") or {}).get("ctf"), config.path.parent)
    if ctf is not None:
        _, ctf_box, ctf_apix = read_cryodrgn_ctf(ctf)
        return ctf_apix * ctf_box / config.box if config.box > 0 else ctf_apix
    warnings.warn(f"{config.path.parent}: the pixel size is unknown (no particles or CTF pickle found); maps get 1 Å "
                  "like cryodrgn eval_vol's; pass apix=", stacklevel=3)
    return 1.0


def particles_from_cryodrgn_run(path: str | os.PathLike, particles=None, *, datadir: str | os.PathLike | None = None,
                                images: bool = True, n: int | None = None, epoch: int | None = None):
    """The particles a cryoDRGN run was trained on, as a :class:`~cryonb.core.particles.ParticleSet`.

    Read from the particle file, pose and CTF pickles and index file (``--ind``) recorded in its
    configuration (a file no longer at its recorded path is also looked for by name in the run
    folder and the folder above it); ``particles`` (a ParticleSet or a file) replaces the
    recorded particle file, ``datadir`` the recorded ``--datadir``. The set is ready for
    :class:`~cryonb.core.training.Trainer`. ``n``: the number of particles expected (the
    latents'), checked. For an ``abinit`` run the poses are those it found, ``pose.N.pkl`` of
    ``epoch`` (default: the latest saved).
    """
    from ..particles import ParticleSet, load_particles

    found = cryodrgn_run_folder(path)
    if found is None:
        raise InputError(path, "is not a cryoDRGN run folder (no config.yaml or config.pkl)", FIX)
    run_dir = found[0]
    epoch = found[1] if epoch is None else epoch
    config = run_config(run_dir)
    dataset = config.raw.get("dataset_args") or {}
    recorded = dataset.get("particles")
    if particles is None and config.particles is None:
        where = f"{recorded} (recorded in {config.path.name})" if recorded else f"no particle file in {config.path.name}"
        raise InputError(run_dir, f"the run's particles are not here: {where}",
                         "pass particles= (the .mrcs/.star/.cs the run was trained on), or copy them beside the run")
    if isinstance(particles, ParticleSet):
        chosen = particles
    else:
        source = Path(particles if particles is not None else config.particles)
        if source.suffix.lower() == ".txt":
            raise InputError(source, "a .txt list of stacks is not read by cryonb", "pass a .star, .cs or .mrcs of the same particles")
        poses = _existing(dataset.get("poses"), run_dir) if config.command != "abinit" else _abinit_poses(run_dir, epoch)
        ctf = _existing(dataset.get("ctf"), run_dir)
        for name, value in (("poses", poses), ("ctf", ctf)):
            if value is None and dataset.get(name):
                warnings.warn(f"{run_dir}: the run's {name} pickle {dataset[name]} is not here; the particles are read without it", stacklevel=2)
        folder = datadir if datadir is not None else _existing_dir(dataset.get("datadir"))
        chosen = load_particles(source, datadir=folder, images=images, poses=poses if images else None, ctf=ctf)
        if poses is not None and not images:  # shifts are fractions of the box: the run's box
            rotations, shifts = read_cryodrgn_poses(poses, config.box)
            chosen = dataclasses.replace(chosen, rotations=rotations, shifts=shifts) if len(rotations) == len(chosen) else chosen
    index_file = _existing(dataset.get("ind"), run_dir)
    if dataset.get("ind") and index_file is None and (n is None or len(chosen) != n):
        raise InputError(run_dir, f"the run's index file {dataset['ind']} is not here, so which particles it used is unknown",
                         "copy the index file beside the run, or pass particles= holding exactly the run's particles")
    if index_file is not None and (n is None or len(chosen) != n):
        chosen = chosen.subset(read_index(index_file))
    if n is not None and len(chosen) != n:
        raise InputError(getattr(chosen.source, "path", run_dir), f"has {len(chosen)} particles but the run has latents for {n}",
                         "pass the particles the run was trained on (after its --ind selection)")
    return chosen


def _abinit_poses(run_dir: Path, epoch: int | None) -> str | None:
    """The poses an abinit run found at ``epoch`` (``pose.N.pkl``; default the latest), None if not saved."""
    if epoch is None:
        found = [int(m.group(1)) for p in run_dir.iterdir() if (m := re.fullmatch(r"pose\.(\d+)\.pkl", p.name))]
        epoch = max(found) if found else None
    path = run_dir / f"pose.{epoch}.pkl"
    return str(path) if epoch is not None and path.is_file() else None


def _existing_dir(recorded) -> str | None:
    return recorded if isinstance(recorded, str) and Path(recorded).is_dir() else None


def read_analysis(path: str | os.PathLike, epoch: int | None = None) -> dict:
    """What ``cryodrgn analyze`` left in ``analyze.N``: ``umap`` (N, 2) and ``kmeans_labels``/``kmeans_centres`` if present.

    ``epoch``: N (default: the latest ``analyze.N`` folder). An empty dictionary if none is there.
    """
    found = cryodrgn_run_folder(path)
    if found is None:
        raise InputError(path, "is not a cryoDRGN run folder (no config.yaml or config.pkl)", FIX)
    run_dir, analyze_epoch = found
    epoch = analyze_epoch if epoch is None else epoch
    folders = {int(m.group(1)): p for p in run_dir.iterdir() if p.is_dir() and (m := _ANALYZE.fullmatch(p.name))}
    if not folders or (epoch is not None and epoch not in folders):
        return {}
    folder = folders[max(folders) if epoch is None else epoch]
    out: dict = {"epoch": int(_ANALYZE.fullmatch(folder.name).group(1)), "folder": folder}
    if (folder / "umap.pkl").is_file():
        out["umap"] = np.asarray(load_pickle(folder / "umap.pkl"), dtype=np.float32)
    kmeans = sorted(folder.glob("kmeans*/labels.pkl"))
    if kmeans:
        out["kmeans_labels"] = np.asarray(load_pickle(kmeans[-1])).astype(np.int64)
        centres = kmeans[-1].parent / "centers_ind.txt"
        if centres.is_file():
            out["kmeans_centres"] = np.loadtxt(centres, dtype=np.int64, ndmin=1)
    return out
