"""Ab initio reconstruction: poses found by search, then refined with the model (cryoDRGN-AI style).

:class:`Abinit` is a :class:`~cryonb.core.training.Trainer` whose poses are a per-particle table
(``TrainConfig(poses="table")``) filled in phases, by step:

1. *pretrain*: the first ``pretrain_images`` images are fitted at uniformly random rotations, which
   makes the map a rotationally averaged blob: a neutral start for the search;
2. *search*: ``search_epochs`` times, an epoch in which every batch's poses are found by
   :func:`~cryonb.core.posesearch.search_poses` against the current map (each particle's own map
   for a latent table) before the step trains the model on them, then ``map_epochs`` epochs that
   fit the map at the poses held (*map*). The search's frequency limit marches up from one search
   epoch to the next, and the model's loss is low-passed to it through this phase, so that the
   map is not fitted beyond what the poses can support;
3. *refine*: the table's poses are refined by gradient descent with the model, at all frequencies.

A start can still lock into a wrong solution, so ``AbinitConfig.starts`` independent starts (4 by
default) run through pretraining and the first ``start_cycles`` search cycles side by side; the one
whose map best explains a subset of the images (a fresh search's error, no reference) is kept.

Heterogeneity comes from an autodecoder (a latent table, cryoDRGN-AI's default) or the encoder
(``latents="encoder"``); ``zdim=0`` reconstructs one map. Fitting, pausing, checkpoints and
resuming are the Trainer's: a notebook calls ``fit`` a few epochs at a time and looks in between.

Poses and maps found ab initio are defined up to a global rotation and, from projections alone,
a mirror (the hand): :func:`~cryonb.core.alignment.align_poses` finds both against reference poses,
and :func:`~cryonb.core.alignment.align_map` applies them to a map.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch

from .abinit_starts import SeveralStarts, random_grid_rotation, reproduced, start_seed  # noqa: F401 (start_seed: part of this module's interface)
from .alignment import MIRROR, PoseAlignment, align_map, align_poses  # noqa: F401 (part of this module's interface)
from .errors import InputError
from .so3grid import angle_between

RADIUS_128 = (12.0, 32.0)  # cryoDRGN-AI's search radii (pixels) at a box of 128
# The last search epoch's median turn above which the poses are said not to have settled. Measured at
# box 32 (2,000 images, the finest grid step 3.75°): 7° where the poses converged (4.9° from the truth),
# 29° on images of noise and where one map failed on the benchmark suite's ribosome and assembly (125-130°).
# At D 64 on a GPU a failed run (one map on assembly, 98°) settled to 5.4°: the starts' agreement told it.
UNSETTLED_DEGREES = 20.0


def pose_checks(history: list[dict], classes: bool) -> dict:
    """What tells wrong poses without a reference, from a run's history (empty before the first search
    epoch ends): ``poses_moved``, each search epoch's median turn (°), and ``settled``, the last one under
    ``UNSETTLED_DEGREES`` (None with one search epoch: it turns the pretraining's random poses); once
    several starts were compared, ``kept_start``, ``start_agreement`` and ``reproduced`` (see
    :func:`~cryonb.core.abinit_starts.reproduced`; None with classes)."""
    found = {}
    moved = [row["poses_moved"] for row in history if "poses_moved" in row]
    if moved:
        found.update(poses_moved=moved, settled=None if len(moved) < 2 else moved[-1] <= UNSETTLED_DEGREES)
    chosen = next((row for row in history if "start_agreement" in row), None)
    if chosen is not None:
        found.update(kept_start=chosen["start"], start_agreement=chosen["start_agreement"], reproduced=reproduced(chosen, classes))
    return found


@dataclass
class AbinitConfig:
    """The ab initio schedule and pose search; saved as ``abinit.json`` in the run folder.

    Search settings are those of :func:`~cryonb.core.posesearch.search_poses`. ``radius`` (pixels
    of the training box; None: cryoDRGN-AI's 12 to 32 pixels at a box of 128, scaled) is the
    frequency limit of the first and of the last search epoch: in search epoch ``e`` of ``S`` the
    rounds march from ``radius[0]`` to ``L_e``, which grows linearly from ``radius[0]`` to
    ``radius[1]`` over the epochs, and the model's loss is restricted to ``|k| <= L_e``.
    ``map_epochs`` epochs fit the map at the poses found after each search epoch (a search costs
    far more than an epoch of fitting, and the next search needs a map that has caught up).
    ``shift_extent`` is in pixels of the training box (None: 20 px at a box of 128, scaled).
    ``map_grid``: one map (``zdim=0``, or each class's) is drawn once per batch on a grid that many
    times finer than the pixels and the candidates' slices are interpolated from it
    (:class:`~cryonb.core.posesearch.DrawnMap`); 0 runs the decoder at every candidate's pixels.
    ``rescore``: the last round's that many best candidates are then scored through the decoder.
    With a latent per particle (``zdim > 0``), each image's map is drawn on that grid for the search's
    first round (the whole base grid); its later rounds run the decoder.
    ``search_images``: the search runs on that many images at once (the batch and the next batches of
    the epoch, against the map as it is at the first of them), because a search of a few images is
    bound by kernel launches on a GPU; a batch is searched alone where it is larger, or the images
    are streamed (the next batches are not on the device yet).

    ``starts`` independent starts (their own seeds: initial model, pretraining poses, search grids)
    run through pretraining and the first ``start_cycles`` search cycles (a search epoch and its map
    epochs) side by side; then each searches the same ``start_images`` particles against its map at
    the next search epoch's radius, and the start whose best poses fit them best (the lowest mean
    squared error per pixel, no reference needed) is kept and continued; the others are dropped.
    A start that locks into a wrong solution shows it by then: its poses explain the images worse.

    ``classes`` > 1: that many maps (one decoder, a one-hot class per particle, labels random at
    first); each search matches every image against every class's map and keeps the best class
    and pose (a minority state gets a map of its own instead of wrong poses on the majority's).
    """

    pretrain_images: int = 10_000
    search_epochs: int = 6
    map_epochs: int = 2
    base_resolution: int = 2
    keep: int = 8
    iterations: int = 4
    shifts: int = 14
    shift_extent: float | None = None
    radius: tuple[float, float] | None = None
    chunk: int = 2**21  # decoder points per call during the search (bounds its memory)
    map_grid: int = 2  # a shared map's slices interpolated from a grid this many times finer than the pixels; 0: exact
    rescore: int = 8  # with map_grid: the last round's best candidates scored again through the decoder
    search_images: int = 128  # images searched at once: this batch and the next ones of the epoch
    starts: int = 4
    start_cycles: int = 3
    start_images: int = 512
    classes: int = 1

    def radii(self, D: int) -> tuple[float, float]:
        """The first and last search epochs' frequency limits (pixels) at box ``D``."""
        return tuple(self.radius) if self.radius is not None else tuple(r * D / 128 for r in RADIUS_128)

    def validate(self) -> AbinitConfig:
        problems = []
        for name in ("pretrain_images", "search_epochs", "map_epochs", "base_resolution", "iterations", "map_grid", "rescore"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be 0 or more (got {getattr(self, name)})")
        for name in ("keep", "shifts", "chunk", "starts", "start_cycles", "start_images", "classes", "search_images"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1 (got {getattr(self, name)})")
        if self.base_resolution + self.iterations > 8:
            problems.append("base_resolution + iterations must be at most 8 (a finer grid than 0.12° is not searched)")
        if self.shift_extent is not None and self.shift_extent < 0:
            problems.append(f"shift_extent must be 0 or more pixels (got {self.shift_extent})")
        if self.radius is not None and (len(self.radius) != 2 or not 0 < self.radius[0] <= self.radius[1]):
            problems.append(f"radius must be two frequencies 0 < start <= end (got {self.radius})")
        if problems:
            raise InputError(None, "invalid ab initio configuration: " + "; ".join(problems),
                             "correct these values in AbinitConfig (or the command-line options)")
        if self.radius is not None:
            self.radius = tuple(self.radius)
        return self

    def search_options(self) -> dict:
        """:func:`~cryonb.core.posesearch.search_poses`'s options but the radius (see :meth:`Abinit.search_radius`)."""
        return dict(base_resolution=self.base_resolution, keep=self.keep, iterations=self.iterations,
                    shifts=self.shifts, shift_extent=self.shift_extent, chunk=self.chunk, map_grid=self.map_grid,
                    rescore=self.rescore)

    @classmethod
    def read(cls, run_dir) -> AbinitConfig:
        path = Path(run_dir) / "abinit.json"
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise InputError(run_dir, "not an ab initio run (abinit.json is missing)", "continue it with Trainer.from_run") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise InputError(path, f"is not valid JSON ({err})", "restore it, or start a new run folder") from None
        known = {f.name for f in fields(cls)}
        if not isinstance(d, dict) or set(d) - known:
            raise InputError(path, f"holds unknown settings {sorted(set(d) - known) if isinstance(d, dict) else d!r}",
                             "restore it, or start a new run folder")
        d.setdefault("starts", 1)  # a run written before several starts existed had one
        try:
            return cls(**d).validate()
        except TypeError as err:
            raise InputError(path, f"has a value of the wrong type ({err})", "restore it, or start a new run folder") from None


PHASES = ("pretrain", "search", "map", "refine")


class Abinit(SeveralStarts):
    """Ab initio reconstruction a notebook drives like a :class:`~cryonb.core.training.Trainer`.

    >>> ab = Abinit(particles, zdim=0, run_dir="runs/abinit", epochs=30)
    >>> ab.fit(4)                  # pretraining and the search epochs
    >>> ab.volume()                # look at the map, then
    >>> ab.fit(26)                 # refine poses and map
    >>> ab.write_poses("runs/abinit/poses.star", "runs/abinit/poses.pkl")

    ``config``/``overrides`` are :class:`~cryonb.core.train_config.TrainConfig` fields (``poses`` is
    always "table"; ``latents`` defaults to "table", an autodecoder, when ``zdim > 0``);
    ``settings`` the :class:`AbinitConfig`. The particles need images and CTF parameters (or none),
    not poses; shifts they carry are applied first and the search adds to them. ``data``: their
    prepared images, shared with another run (several starts share one copy).
    """

    def __init__(self, particles, config=None, run_dir=None, settings: AbinitConfig | None = None, *, data=None, **overrides):
        from .training import TrainConfig, Trainer

        self.settings = (settings or AbinitConfig()).validate()
        base = asdict(config) if config is not None else {}
        zdim = overrides.get("zdim", base.get("zdim", TrainConfig.zdim))
        latents = overrides.get("latents", base.get("latents") if config is not None else ("table" if zdim else "encoder"))
        K = self.settings.classes
        if K > 1:  # K maps in one decoder, a one-hot class per particle
            asked = (overrides.get("zdim"), overrides.get("latents", base.get("latents")))
            if asked[0] not in (None, 0, K) or asked[1] not in (None, "class"):
                raise InputError(None, f"{K} classes are one-hot latents of length {K}, not zdim={asked[0]} with latents={asked[1]!r}",
                                 "leave zdim and latents unset with classes > 1 (or classes=1 for a continuous latent)")
            zdim, latents = K, "class"
        overrides = {**overrides, "zdim": zdim, "poses": "table", "latents": latents or "encoder"}
        self._attach(Trainer(particles, config, run_dir=run_dir, data=data, **overrides))
        if self.trainer.run_dir is not None and self.trainer.dist.main:
            self._write_settings()
        if self.choice_pending:
            self._starts = [self._other_start(k) for k in range(1, self.settings.starts)]

    def _attach(self, trainer):
        self.trainer = trainer
        self.search_errors: list[tuple[int, float]] = []  # (step, the batch's best poses' squared error per pixel)
        self.search_moves: list[tuple[int, float]] = []  # (step, the batch's median turn (°) from its poses before the search)
        self._restricted = False  # whether the trainer's loss is low-passed by this run
        self._held = None  # whether the pose table's rate is 0 (None: not set yet by this run)
        self._ahead = None  # (first step, last step, result): the search of this batch and the next ones
        self._starts: list[Abinit] = []  # the other starts, until the best is chosen
        self._discard: tuple[Path, int] | None = None  # their folders, removed once a checkpoint at this step or later holds the choice
        trainer.before_step.append(self._before_step)
        trainer.listeners.append(self._on_event)
        trainer.interrupt_hint = "call fit() to continue"

    @classmethod
    def from_run(cls, run_dir, particles=None, *, data=None, **overrides) -> Abinit:
        """Continue an ab initio run from its latest checkpoint (see :meth:`Trainer.from_run
        <cryonb.core.training.Trainer.from_run>`)."""
        from .training import Trainer

        settings = AbinitConfig.read(run_dir)
        self = cls.__new__(cls)
        self.settings = settings
        self._attach(Trainer.from_run(run_dir, particles, data=data, **overrides))
        self._resume_starts(Path(run_dir) / "starts", overrides)
        return self

    def _write_settings(self):
        from .io.atomic import atomic_write

        self.trainer.run_dir.mkdir(parents=True, exist_ok=True)
        with atomic_write(self.trainer.run_dir / "abinit.json", "w") as f:
            json.dump(asdict(self.settings), f, indent=2)

    # ------------------------------------------------------------------ phases
    @property
    def pretrain_steps(self) -> int:
        n = min(self.settings.pretrain_images, len(self.trainer.data))
        return math.ceil(n / self.trainer.config.batch_size)

    @property
    def search_end(self) -> int:
        """The step at which the search (and map) epochs end and descent refines the poses."""
        cycle = 1 + self.settings.map_epochs
        return self.pretrain_steps + self.settings.search_epochs * cycle * self.trainer.batches_per_epoch

    def _epochs_searched(self, step: int) -> int:
        """Epochs of the search phase (search and map epochs) before ``step``'s (they start after pretraining)."""
        return max(0, step - self.pretrain_steps) // self.trainer.batches_per_epoch

    def _cycle(self, step: int) -> tuple[int, int]:
        """(search epoch, epoch within its cycle: 0 searches, 1… fit the map) of a step after pretraining."""
        return divmod(self._epochs_searched(step), 1 + self.settings.map_epochs)

    def phase_at(self, step: int) -> str:
        if step < self.pretrain_steps:
            return "pretrain"
        if step >= self.search_end:
            return "refine"
        return "search" if self._cycle(step)[1] == 0 else "map"

    @property
    def phase(self) -> str:
        """The phase of the next step: "pretrain", "search", "map" or "refine"."""
        return self.phase_at(self.trainer.step_count)

    def search_radius(self, step: int | None = None) -> tuple[float, float]:
        """The frequency limits (pixels) of the first and last search rounds at ``step`` (default:
        the next): the last grows linearly over the search epochs, from ``radius[0]`` to ``radius[1]``."""
        step = self.trainer.step_count if step is None else step
        lo, hi = self.settings.radii(self.trainer.data.D)
        last = self.settings.search_epochs - 1
        progress = 1.0 if last <= 0 else min(self._cycle(step)[0], last) / last
        return lo, lo + (hi - lo) * progress

    def loss_radius(self, step: int | None = None) -> float | None:
        """The frequency limit (pixels) of the model's loss at ``step``: the search's during the
        search and map epochs, None (all frequencies) before and after."""
        step = self.trainer.step_count if step is None else step
        return self.search_radius(step)[1] if self.phase_at(step) in ("search", "map") else None

    def _autocast(self):
        import contextlib

        t = self.trainer
        if t.config.amp and t.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _before_step(self, trainer, idx):
        phase = self.phase_at(trainer.step_count)
        poses = trainer.model.poses
        self._restrict_loss(trainer, self.loss_radius(trainer.step_count))
        self._hold_poses(trainer, phase != "refine")
        if phase == "pretrain":
            from .rotations import random_rotations

            g = torch.Generator().manual_seed(trainer.config.seed * 1_000_003 + trainer.step_count)
            poses.assign(idx, random_rotations(len(idx), g).to(trainer.device),
                         torch.zeros(len(idx), 2, device=trainer.device))
        elif phase == "search":
            result = self._search_ahead(trainer, idx)
            before = poses.base[idx]
            poses.assign(idx, result.rotations, result.shifts)
            turned = angle_between(before, poses.base[idx]).median()
            if result.labels is not None:
                trainer.model.latents.assign(idx, result.labels)
            self._forget_momentum(idx)
            error, turned = torch.stack([result.error.mean().float(), turned.float()]).tolist()  # one wait for the device
            self.search_errors.append((trainer.step_count, error / self._searched_pixels()))
            self.search_moves.append((trainer.step_count, turned))

    def _search_ahead(self, trainer, idx):
        """This batch's search result, from a search of it and the next batches of the epoch
        together (``search_images`` images at once; see :class:`AbinitConfig`).

        The groups start every ``search_images // batch_size`` steps from the search epoch's
        first step (or the trainer epoch's), so a run continued from a checkpoint in the middle of
        a group searches the rest of that group alone, and the next groups as before.
        """
        from .imagedata import ImageData

        step, bs, bpe = trainer.step_count, trainer.config.batch_size, trainer.batches_per_epoch
        if self._ahead is None or not self._ahead[0] <= step < self._ahead[1]:
            together = max(1, self.settings.search_images // bs) if isinstance(trainer.data, ImageData) else 1
            search_epoch = self.pretrain_steps + self._epochs_searched(step) * bpe  # its first step
            trainer_epoch = step - trainer.position
            anchor = max(search_epoch, trainer_epoch)
            end = min(anchor + together * ((step - anchor) // together + 1), search_epoch + bpe, trainer_epoch + bpe)
            group = trainer._order(trainer.epoch)[trainer.position * bs : (trainer.position + end - step) * bs]
            self._ahead = (step, end, self.search(group))
        first, _, result = self._ahead
        return result.rows(slice((step - first) * bs, (step - first) * bs + len(idx)))

    def _restrict_loss(self, trainer, radius: float | None):
        """Fit the model inside ``radius`` pixels at this step (the Trainer's own frequency marching
        selects its pixels the same way); None gives the pixels back to the Trainer's schedule."""
        if radius is not None and radius < trainer.data.D // 2:
            trainer.fit_within(radius)
            self._restricted = True
        elif self._restricted:  # hand every pixel back once, then leave the Trainer's own schedule alone
            trainer.fit_within(None)
            self._restricted = False

    def _hold_poses(self, trainer, hold: bool):
        """Descent moves the pose table only in the refine phase (before it, the search sets the poses)."""
        opt = trainer.table_optimizer
        if opt is None or hold == self._held:
            return
        self._held = hold
        pose_params = {id(p) for p in trainer.model.poses.parameters()}
        for group in opt.param_groups:
            if any(id(p) in pose_params for p in group["params"]):
                opt.set_lr(group, 0.0 if hold else trainer.config.pose_lr)

    def _forget_momentum(self, idx):
        """Clear the table optimiser's moments of the rows just assigned, so that descent does not
        push new poses with the momentum of the old ones."""
        opt = self.trainer.table_optimizer  # RowAdam: every table's moments exist from the start
        for param in self.trainer.model.poses.parameters():
            for key in ("exp_avg", "exp_avg_sq"):
                opt.state[param][key][idx] = 0

    def _searched_pixels(self) -> int:
        """Half-plane pixels compared in the last search round (to report its error per pixel, as the
        Trainer reports its own)."""
        from .posesearch import marching_radii

        half = self.trainer.model.half
        last = marching_radii(self.settings.iterations, self.search_radius(), half.D)[-1]
        return max(1, int((half.coords[:, :2].norm(dim=-1) <= last).sum()))

    @torch.no_grad()
    def search(self, idx, grid_rotation=None):
        """The best poses of the particles at ``idx`` (a device tensor) against the current model
        (:class:`~cryonb.core.posesearch.PoseSearchResult`, shifts in pixels of the training box), on
        the grid turned by ``grid_rotation`` (default: a random rotation drawn from the seed and
        step), within the step's :meth:`search_radius`."""
        from .posesearch import search_classes, search_poses

        t = self.trainer
        model = t.model
        images, _, ctf = t.data.batch(idx)
        classes = t.config.latents == "class"
        z = None
        if model.latents is not None and not classes:
            z = model.latents(idx, images, None, ctf=ctf).z.float()
        was_training = model.training
        model.eval()
        if grid_rotation is None:
            grid_rotation = random_grid_rotation(torch.Generator().manual_seed(t.config.seed * 7_919 + 1 + t.step_count))
        options = dict(grid_rotation=grid_rotation, radius=self.search_radius(), **self.settings.search_options())
        try:
            with self._autocast():
                if classes:  # each image against every class's map; the best class and pose kept
                    codes = model.latents.codes(torch.arange(model.latents.classes, device=t.device))
                    return search_classes(model.decoder, images, ctf, model.half, codes, **options)
                return search_poses(model.decoder, images, ctf, model.half, z, **options)
        finally:
            model.train(was_training)

    def _on_event(self, event, trainer):
        if event == "epoch" and trainer.history:
            row = trainer.history[-1]
            row["phase"] = self.phase_at(trainer.step_count - 1)
            first = trainer.step_count - trainer.batches_per_epoch
            recent = [e for s, e in self.search_errors if s >= first]
            if recent:
                row["search_error"] = float(np.mean(recent))
            moved = self._search_epoch_moved(first, trainer.step_count)
            if moved is not None:
                row["poses_moved"] = moved
            written = trainer._last_checkpoint
            if self._discard is not None and written and int(written[5:-3]) >= self._discard[1]:
                import shutil  # a checkpoint holds the choice: the other starts can go

                shutil.rmtree(self._discard[0], ignore_errors=True)
                self._discard = None
            if self._starts:
                self._advance_starts()

    def _search_epoch_moved(self, first: int, now: int) -> float | None:
        """The median turn (°) of the poses over the search epoch that ended between steps ``first`` and
        ``now``, or None. Large while the poses settle, a few steps of the search's finest grid once
        they have; still large in the last search epoch, they have not (``cryonb abinit`` warns)."""
        steps = [s for s, _ in self.search_moves if first <= s < now]
        if not steps:
            return None
        cycle = self._cycle(max(steps))[0]
        if self.phase_at(now) == "search" and self._cycle(now)[0] == cycle:
            return None  # its search goes on in the next epoch
        return float(np.median([m for s, m in self.search_moves if self._cycle(s)[0] == cycle]))

    # ------------------------------------------------------------------ driving (the Trainer's)
    def fit(self, epochs: int = 1, background: bool = False, progress: bool = True) -> Abinit:
        """Train ``epochs`` more epochs, whatever phase they fall in (see :meth:`Trainer.fit
        <cryonb.core.training.Trainer.fit>`). Until the best of several starts is chosen, the others
        train an epoch each time this one ends one (in the same thread)."""
        if self._starts and self.trainer.epoch >= self.choice_epoch:  # a choice interrupted before it was made
            self.trainer.interrupted = False
            if not self._advance_starts():
                return self
        self.trainer.fit(epochs, background=background, progress=progress)
        return self

    def pause(self):
        self.trainer.pause()

    def resume(self):
        self.trainer.resume()

    def stop(self, wait: bool = True):
        for start in self._starts:  # one may be training its epoch (it stops with a checkpoint and catches up later)
            start.trainer.stop(wait=False)
        self.trainer.stop(wait)

    def wait(self):
        self.trainer.wait()

    @property
    def history(self) -> list[dict]:
        return self.trainer.history

    def volume(self, z=None) -> np.ndarray:
        return self.trainer.volume(z)

    def volumes(self, z=None) -> np.ndarray:
        return self.trainer.volumes(z)

    def embed(self) -> np.ndarray:
        return self.trainer.embed()

    # ------------------------------------------------------------------ results
    def poses(self) -> tuple[np.ndarray, np.ndarray]:
        """Rotations (N, 3, 3) and shifts (N, 2) in pixels of the particles' own box, in their order:
        the particles' shifts plus those found (RELION's convention: translating an image by
        ``+shift`` centres it)."""
        t = self.trainer
        rotations, shifts = t.model.poses.poses()
        particles = t.particles
        D0 = particles.box_size or t.data.D
        found = shifts.float().cpu().numpy() * (D0 / t.data.D)
        given = np.zeros_like(found) if particles.shifts is None else np.asarray(particles.shifts, dtype=np.float32)
        return rotations.float().cpu().numpy(), given + found

    def classes(self) -> np.ndarray:
        """Each particle's class (N,) (``AbinitConfig(classes=K)``), in the particles' order."""
        if self.trainer.config.latents != "class":
            raise InputError(None, "this run has no classes", "start it with AbinitConfig(classes=K), K > 1")
        return self.trainer.model.latents.labels.cpu().numpy().copy()

    def particles_with_poses(self):
        """The particle set with the poses found (a copy; images and CTF unchanged)."""
        rotations, shifts = self.poses()
        return replace(self.trainer.particles, rotations=rotations, shifts=shifts)

    def write_poses(self, star: str | os.PathLike | None = None, pickle: str | os.PathLike | None = None) -> dict[str, Path]:
        """Write the poses as a RELION .star (Euler angles, origins in Å, with the particles' images
        and CTF) and/or a cryoDRGN pose pickle (``(rot, trans)``, trans in fractions of the box)."""
        from .io.pickles import write_cryodrgn_poses
        from .particles import write_star

        out = {}
        particles = self.particles_with_poses()
        if star is not None:
            out["star"] = write_star(particles, star)
        if pickle is not None:
            write_cryodrgn_poses(pickle, particles.rotations, particles.shifts, particles.box_size or self.trainer.data.D)
            out["pickle"] = Path(pickle)
        return out

    def checks(self) -> dict:
        """:func:`pose_checks` of this run: whether its poses settled and another start found them."""
        return pose_checks(self.trainer.history, self.trainer.config.latents == "class")

    def align(self, reference) -> PoseAlignment:
        """Align the poses found to reference rotations (N, 3, 3) (e.g. a consensus refinement's, or a
        simulation's truth): the global rotation, the hand and the median errors both ways."""
        return align_poses(self.poses()[0], reference)

    def __repr__(self) -> str:
        t = self.trainer
        return (f"Abinit({len(t.data)} particles, box {t.data.D}, zdim {t.config.zdim}; epoch {t.epoch}, "
                f"step {t.step_count}, next: {self.phase})")
