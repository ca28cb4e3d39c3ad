"""A run folder's files: ``config.json`` and the checkpoints, written atomically by a trainer
(:class:`Checkpointed`) and read back safely, each checked so that a damaged or foreign file gives one
:class:`~cryonb.core.errors.InputError` naming it."""

from __future__ import annotations

import json
import math
import re
import warnings
from dataclasses import asdict, fields, replace
from pathlib import Path

import torch

from .errors import CryonbError, InputError
from .train_config import TrainConfig

CHECKPOINT_VERSION = 1


def read_run_config(run_dir: Path) -> dict:
    """A run folder's config.json, checked: an :class:`InputError` naming the file if it is not usable."""
    path = Path(run_dir) / "config.json"
    if not path.exists():
        raise InputError(run_dir, "not a cryonb run folder (config.json is missing)", "point to the folder given as run_dir/--outdir")
    fix = "restore it from a backup, or start a new run folder"
    try:
        meta = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(path, f"config.json is not valid JSON ({err})", fix) from None
    if not isinstance(meta, dict):
        raise InputError(path, f"config.json holds a JSON {type(meta).__name__}, not a cryonb run configuration", fix)
    version = meta.get("cryonb_checkpoint_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise InputError(path, "config.json has no cryonb_checkpoint_version: not written by cryonb, or damaged", fix)
    if version > CHECKPOINT_VERSION:
        raise InputError(path, f"run written by a newer cryonb (format {version}, this cryonb reads {CHECKPOINT_VERSION})",
                         "upgrade cryonb")
    missing = [key for key in ("config", "box", "apix", "n_particles") if key not in meta]
    if missing:
        raise InputError(path, f"config.json is incomplete (no {', '.join(missing)})", fix)
    for key, kind in (("box", int), ("n_particles", int), ("apix", (int, float))):
        value = meta[key]
        if not isinstance(value, kind) or isinstance(value, bool) or not value > 0:
            raise InputError(path, f"config.json has {key} = {value!r}, not a positive number", fix)
    if not isinstance(meta["config"], dict):
        raise InputError(path, "config.json's config is not a table of training settings", fix)
    for f in fields(TrainConfig):
        value = meta["config"].get(f.name)
        kinds = {"int": int, "float": (int, float), "bool": bool, "str": str}
        allowed = [kinds[t] for t in str(f.type).replace(" ", "").split("|") if t in kinds]
        if value is None and "None" in str(f.type) or f.name not in meta["config"]:
            continue
        if not any(isinstance(value, k) and (k is bool or not isinstance(value, bool)) for k in allowed):
            raise InputError(path, f"config.json has {f.name} = {value!r}, expected {f.type}", fix)
    for key, most in SIZE_BOUNDS.items():  # a damaged file must not make us build a model of terabytes
        for value in (meta["config"].get(key), meta.get(key)):
            if isinstance(value, int) and value > most:
                raise InputError(path, f"config.json has {key} = {value}, more than any run uses (at most {most})", fix)
    try:
        TrainConfig.from_dict(meta["config"]).validate()
    except InputError as err:
        raise InputError(path, f"config.json's config is not usable: {err.problem}", fix) from None
    except (TypeError, ValueError) as err:
        raise InputError(path, f"config.json's config has a value of the wrong type ({first_line(err)})", fix) from None
    return meta


SIZE_BOUNDS = {"zdim": 4096, "enc_width": 65536, "dec_width": 65536, "enc_depth": 256, "dec_depth": 256, "n_freqs": 4096,
               "slice_filters": 4096, "slice_radius": 4096,
               "box": 8192, "batch_size": 2**20, "epochs": 2**31, "checkpoint_every": 2**31}
INTERRUPTED = "INTERRUPTED"  # in a run folder: training was stopped by Ctrl-C before its last epoch
CHECKPOINT_KEYS = ("model", "optimizer", "epoch", "position", "step", "epoch_sums", "epoch_time", "history", "steps", "scale")
CHECKPOINT_NAME = re.compile(r"step_\d+\.pt")
_PARTIAL_WRITE = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")  # atomic_path's temporary names


def load_checkpoint(path: Path) -> dict:
    """A checkpoint's state, or an :class:`InputError` naming the file if it is unreadable or incomplete."""
    path = Path(path)
    fix = "delete it to resume from the previous checkpoint, or start a new run folder"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(path, "checkpoint file is missing", "check the run folder's checkpoints/latest") from None
    except Exception as err:  # a truncated or foreign file
        raise InputError(path, f"not a readable cryonb checkpoint ({type(err).__name__})", fix) from None
    if not isinstance(state, dict):
        raise InputError(path, f"not a cryonb checkpoint (holds a {type(state).__name__}, not a dict)", fix)
    missing = [key for key in CHECKPOINT_KEYS if key not in state]
    if missing:
        raise InputError(path, f"incomplete cryonb checkpoint (no {', '.join(missing)})", fix)
    if not isinstance(state["model"], dict) or not isinstance(state["optimizer"], dict):
        raise InputError(path, "not a cryonb checkpoint (model or optimizer is not a state dict)", fix)
    for key in ("epoch", "position", "step"):
        if not isinstance(state[key], int) or isinstance(state[key], bool) or not 0 <= state[key] < 2**40:
            raise InputError(path, f"corrupt cryonb checkpoint ({key} is {state[key]!r}, not a count)", fix)
    if not isinstance(state["epoch_sums"], torch.Tensor) or state["epoch_sums"].shape != (3,):
        raise InputError(path, "corrupt cryonb checkpoint (epoch_sums is not 3 numbers)", fix)
    if not isinstance(state["epoch_time"], (int, float)) or isinstance(state["epoch_time"], bool) or not state["epoch_time"] >= 0:
        raise InputError(path, f"corrupt cryonb checkpoint (epoch_time is {state['epoch_time']!r}, not a duration)", fix)
    if not isinstance(state["history"], list) or not all(isinstance(h, dict) for h in state["history"]):
        raise InputError(path, "corrupt cryonb checkpoint (history is not a list of epoch records)", fix)
    if not isinstance(state["steps"], list) or not all(
            isinstance(s, (list, tuple)) and len(s) == 3 and all(isinstance(v, (int, float)) for v in s) for s in state["steps"]):
        raise InputError(path, "corrupt cryonb checkpoint (steps is not a list of (step, loss, kl) records)", fix)
    scale = state["scale"]
    if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not (math.isfinite(scale) and scale > 0):
        raise InputError(path, f"corrupt cryonb checkpoint (image scale is {scale!r}, not a positive number)", fix)
    bad = [name for name, value in state["model"].items() if isinstance(value, torch.Tensor) and value.is_floating_point()
           and not bool(torch.isfinite(value).all())]
    if bad:
        raise InputError(path, f"the model's weights hold NaN or infinite values ({', '.join(bad[:3])})",
                         "resume from an earlier checkpoint (delete this one) or lower the learning rate and train again")
    return state


def has_checkpoint(run_dir) -> bool:
    """Whether a run folder holds a checkpoint (readable or not) to continue from."""
    folder = Path(run_dir) / "checkpoints"
    return (folder / "latest").exists() or any(CHECKPOINT_NAME.fullmatch(p.name) for p in folder.glob("step_*.pt"))


def find_checkpoint(run_dir) -> tuple[Path, dict] | None:
    """The newest complete checkpoint of a run folder and its state, or None if it has none.

    ``checkpoints/latest`` names the newest; if that file is missing or unreadable, the newest other
    checkpoint that loads is used instead, with a warning naming both files.
    """
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return None
    others = sorted((p for p in folder.glob("step_*.pt") if CHECKPOINT_NAME.fullmatch(p.name)), reverse=True)
    failures = []
    latest = folder / "latest"
    if latest.exists():
        name = latest.read_text(errors="replace").strip()
        if CHECKPOINT_NAME.fullmatch(name):
            candidate = folder / name
            others = [candidate] + [p for p in others if p != candidate]
        else:
            failures.append(InputError(latest, f"does not name a checkpoint (holds {name[:40]!r})", "delete it"))
    elif others:
        failures.append(InputError(latest, "is missing", "it is written again at the next checkpoint"))
    for path in others:
        try:
            state = load_checkpoint(path)
        except InputError as err:
            failures.append(err)
            continue
        if failures:
            skipped = "; ".join(str(err) for err in failures)
            warnings.warn(f"{failures[0].path}: skipped ({skipped}); continuing from the previous complete checkpoint {path}",
                          stacklevel=2)
        return path, state
    if failures:
        if len(failures) > 1:
            raise InputError(folder, "no checkpoint is readable: " + "; ".join(str(err) for err in failures),
                             "restore the folder from a backup or start a new run folder")
        raise failures[0]
    return None


def clean_partial_writes(run_dir) -> list[Path]:
    """Remove the temporary files that a process killed while writing left in a run folder."""
    run_dir = Path(run_dir)
    removed = []
    for folder in (run_dir, run_dir / "checkpoints"):
        if folder.is_dir():
            for path in sorted(folder.glob(".*.tmp")):
                if _PARTIAL_WRITE.fullmatch(path.name) and path.is_file():
                    path.unlink(missing_ok=True)
                    removed.append(path)
    if removed:
        warnings.warn(f"{run_dir}: removed {len(removed)} partly written file(s) left by an interrupted write "
                      f"({', '.join(p.name for p in removed)})", stacklevel=2)
    return removed


def first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:300]}" if text else type(err).__name__


class Checkpointed:
    """The run folder's part of :class:`~cryonb.core.training.Trainer`: ``config.json``, the
    checkpoints and continuing a run from them. The trainer supplies its model, optimisers, data,
    counters, ``run_dir``, ``dist`` and ``batches_per_epoch``."""

    def _write_config(self):
        from .io.atomic import atomic_write

        self.run_dir.mkdir(parents=True, exist_ok=True)
        meta = {"cryonb_checkpoint_version": CHECKPOINT_VERSION, "config": asdict(self.config),
                "box": self.data.D, "apix": self.data.apix, "n_particles": len(self.data)}
        with atomic_write(self.run_dir / "config.json", "w") as f:
            json.dump(meta, f, indent=2)

    def state_dict(self) -> dict:
        return {
            "version": CHECKPOINT_VERSION, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch, "position": self.position, "step": self.step_count,
            "epoch_sums": torch.as_tensor(self._epoch_sums), "epoch_time": self._epoch_time,
            "history": self.history, "steps": self.steps, "scale": self.data.scale,
            **({"table_optimizer": self.table_optimizer.state_dict()} if self.table_optimizer is not None else {}),
            **({"encoder_average": self.encoder_average.state_dict()} if self.encoder_average is not None else {}),
        }

    def load_state_dict(self, state: dict):
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.table_optimizer is not None:
            self.table_optimizer.load_state_dict(state["table_optimizer"])
        for group in self.optimizer.param_groups:  # the checkpoint may come from a GPU run, or a CPU one
            lr = float(group["lr"])
            group["lr"] = torch.tensor(lr, device=self.device) if self._graphs else lr
            group["capturable"], group["fused"] = self._graphs, self._fused_optimizer
        self._captured = {}  # the optimiser's state tensors are new: capture again
        for group in self.optimizer.param_groups:
            if not (float(group["lr"]) > 0 and math.isfinite(float(group["lr"]))):
                raise ValueError(f"optimizer learning rate {float(group['lr'])} is not a positive number")
            for param in group["params"]:
                for key, value in self.optimizer.state.get(param, {}).items():
                    if key != "step" and isinstance(value, torch.Tensor) and value.shape != param.shape:
                        raise ValueError(f"optimizer state {key} has shape {tuple(value.shape)}, its weight {tuple(param.shape)}")
        if state["position"] >= self.batches_per_epoch:
            raise ValueError(f"position {state['position']} is past the end of an epoch ({self.batches_per_epoch} batches)")
        self.epoch, self.position, self.step_count = state["epoch"], state["position"], state["step"]
        self._epoch_sums = state["epoch_sums"].numpy().copy()
        self._epoch_time = state["epoch_time"]
        self.history = list(state["history"])
        self.steps = [tuple(s) for s in state["steps"]]
        if self.encoder_average is not None:  # a checkpoint without one (another setting): the average starts here
            self.encoder_average = self._encoder_average()
            if "encoder_average" in state:
                self.encoder_average.load_state_dict(state["encoder_average"])

    def save_checkpoint(self) -> Path:
        """Write ``checkpoints/step_XXXXXXXX.pt`` and point ``checkpoints/latest`` at it, atomically.

        The previous complete checkpoint is kept too (a resume falls back to it if the newest one is
        unreadable); older ones are removed.
        """
        from .io.atomic import atomic_write

        if self.run_dir is None:
            raise CryonbError("this trainer has no run_dir; create it with Trainer(..., run_dir=...) to save checkpoints")
        if not self.dist.main:  # one writer; the others hold the same weights
            return self.run_dir / "checkpoints" / f"step_{self.step_count:08d}.pt"
        folder = self.run_dir / "checkpoints"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"step_{self.step_count:08d}.pt"
        with atomic_write(path, "wb") as f:
            torch.save(self.state_dict(), f)
        with atomic_write(folder / "latest", "w") as f:
            f.write(path.name)
        keep = {path.name, self._last_checkpoint}
        for old in folder.glob("step_*.pt"):
            if old.name not in keep and CHECKPOINT_NAME.fullmatch(old.name):
                old.unlink(missing_ok=True)
        self._last_checkpoint = path.name
        return path

    @classmethod
    def from_run(cls, run_dir, particles=None, *, data=None, **overrides):
        """Continue a run from its latest complete checkpoint (``particles`` default: the file in its config).

        An unreadable latest checkpoint is skipped for the previous one, with a warning; files left
        half-written by a killed process are removed.
        """
        run_dir = Path(run_dir)
        meta = read_run_config(run_dir)
        config = TrainConfig.from_dict({**meta["config"], **overrides})
        if particles is None:
            if not config.particles:
                raise InputError(run_dir, "the run does not record where its particles came from",
                                 "pass particles=... to Trainer.from_run")
            from .particles import load_particles

            particles = load_particles(config.particles)
        if len(particles) != meta["n_particles"]:
            raise InputError(run_dir, f"the run was trained on {meta['n_particles']} particles but {len(particles)} were given",
                             "pass the same particle set the run was started with")
        clean_partial_writes(run_dir)
        if config.cache_dir is None:  # a streamed run reuses the cache in its folder
            config = replace(config, cache_dir=str(run_dir / "cache"))
        found = find_checkpoint(run_dir)
        saved = found[1].get("model", {}).get("latents.features") if found is not None else None
        trainer = cls(particles, config, run_dir=None, data=data, region_features=saved)  # saved: not computed again
        trainer.run_dir = run_dir
        if found is not None:
            path, state = found
            try:
                trainer.load_state_dict(state)
            except (RuntimeError, KeyError, ValueError, TypeError, AttributeError) as err:
                raise InputError(path, f"checkpoint does not fit the run's config.json ({first_line(err)})",
                                 "resume with the config.json the checkpoint was written with, or start a new --outdir") from None
            trainer._last_checkpoint = path.name
        return trainer
