"""Several ab initio starts side by side until the best is kept: a part of :class:`~cryonb.core.abinit.Abinit`.

A start can lock into a wrong solution. ``AbinitConfig.starts`` independent starts (their own seeds, and
folders ``starts/k`` under the run folder) run through pretraining and the first ``start_cycles``
search cycles, each catching up an epoch when the run ends one. At the choice epoch each searches the
same images against its own map, and the start whose best poses leave the smallest error per pixel
(no reference needed) is kept in the run's trainer; the others' folders go once a checkpoint holds
the choice.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from .alignment import align_poses
from .errors import InputError


def start_seed(seed: int, k: int) -> int:
    """The seed of start ``k`` of a run seeded ``seed`` (start 0 is the run's own)."""
    return seed + 1_000_003 * k


def random_grid_rotation(generator: torch.Generator) -> torch.Tensor:
    from .rotations import random_rotations

    return random_rotations(1, generator)[0]


# The median angle (after one global rotation and the hand) within which another start is said to have
# found the kept start's poses, at the choice. The nearest other start where the poses converged: 9.4° at
# box 32 (CPU, 2,000 images), 1.6-1.9° at D 64 (GPU, 10,000 images); where they were wrong (one map on the
# benchmark suite's ribosome or assembly, or noise): 58-110° at box 32, 96° at D 64.
SAME_POSES_DEGREES = 25.0


def other_starts(agreement: list[float], kept: int) -> list[float]:
    """The other starts' distances from the kept one (degrees), of :func:`starts_agreement`."""
    return [a for k, a in enumerate(agreement) if k != kept]


def reproduced(row: dict, classes: bool) -> bool | None:
    """Whether another start found the kept start's poses, from the history row of the choice; None (not
    judged) with classes: each class's map has a frame of its own, and the classes still change at the
    choice (on the benchmark suite's assembly, poses that came out 4.4° from the truth had every other
    start 79-122° away at the choice)."""
    return None if classes else min(other_starts(row["start_agreement"], row["start"])) <= SAME_POSES_DEGREES


def starts_agreement(rotations, best: int) -> list[float]:
    """How far each start's poses lie from start ``best``'s (degrees; 0 for itself): the median angle
    between a particle's two poses once one global rotation and the hand are fitted. Starts that found
    the same solution agree to a few degrees; a solution no other start reproduced is suspect."""
    chosen = rotations[best].double().cpu()
    return [0.0 if k == best else round(align_poses(R.double().cpu(), chosen).median_error, 2) for k, R in enumerate(rotations)]


class SeveralStarts:
    """The several-starts part of :class:`~cryonb.core.abinit.Abinit` (``self._starts``: the other
    starts, until the best is chosen; ``self._discard``: their folder, and the step whose checkpoint
    must hold the choice before it goes)."""

    def _resume_starts(self, folder: Path, overrides: dict):
        """The other starts of a run read from its folder: continued if the choice is pending, else
        their folder ``folder`` is removed once a checkpoint holds the choice."""
        settings = self.settings
        if self.choice_pending:
            for k in range(1, settings.starts):
                if not (folder / str(k) / "abinit.json").is_file():
                    raise InputError(folder / str(k), f"start {k} of {settings.starts} is missing (the best start is not chosen yet)",
                                     "restore the folder, or start a new run folder")
                self._starts.append(type(self).from_run(folder / str(k), self.trainer.particles, data=self._shared_data(), **overrides))
        elif folder.is_dir():
            self._discard = (folder, 0)  # the checkpoint read holds the choice

    def _other_start(self, k: int):
        """Start ``k`` (1, 2, …): this run's configuration with its own seed, one start, and its own
        folder ``starts/k`` under the run folder (if any) until the choice."""
        t = self.trainer
        run_dir = None if t.run_dir is None else t.run_dir / "starts" / str(k)
        cache_dir = t.config.cache_dir or (None if t.run_dir is None else str(t.run_dir / "cache"))  # streamed: one cache
        return type(self)(t.particles, replace(t.config, seed=start_seed(t.config.seed, k), cache_dir=cache_dir), run_dir=run_dir,
                      settings=replace(self.settings, starts=1), data=self._shared_data())

    def _shared_data(self):
        """The images the other starts share: this run's when held in memory (stateless); streamed
        data follows its own trainer's epochs, so each start streams its own (from the same cache)."""
        from .imagedata import ImageData

        return self.trainer.data if type(self.trainer.data) is ImageData else None

    @property
    def choice_epoch(self) -> int:
        """The epoch after which the best of several starts is kept: the end of the first
        ``start_cycles`` search cycles (of all of them if there are fewer)."""
        t = self.trainer
        cycles = min(self.settings.start_cycles, self.settings.search_epochs)
        step = self.pretrain_steps + cycles * (1 + self.settings.map_epochs) * t.batches_per_epoch
        return math.ceil(step / t.batches_per_epoch)

    @property
    def choice_pending(self) -> bool:
        """Whether several starts are still run side by side (the best not chosen yet). Without
        pretraining or search epochs there is nothing to choose on: one start."""
        return (self.settings.starts > 1 and self.choice_epoch > 0
                and not any("start" in row for row in self.trainer.history))

    def start_score(self, idx, grid_rotation=None) -> float:
        """How well this start's map explains the particles at ``idx``: their best poses' mean squared
        error per pixel, searched at the next search epoch's radius (lower is better)."""
        errors = [self.search(part, grid_rotation).error for part in idx.split(self.trainer.config.batch_size)]
        return float(torch.cat(errors).float().mean()) / self._searched_pixels()

    def _advance_starts(self) -> bool:
        """Bring the other starts to this one's epoch (no further than the choice) and, at the choice
        epoch, keep the best start's state in this run's trainer. False if stopped before (by
        :meth:`stop` or Ctrl-C): they catch up when the run goes on."""
        t = self.trainer
        target = min(t.epoch, self.choice_epoch)
        for start in self._starts:
            if t._stop.is_set():
                return False
            if start.trainer.epoch < target:
                start.trainer.fit(target - start.trainer.epoch, progress=False)
            if start.trainer.epoch < target:  # stopped during its epochs
                t.interrupted = t.interrupted or start.trainer.interrupted
                t.stop(wait=False)
                return False
        if t.epoch >= self.choice_epoch and t.position == 0:
            self._choose()
        return True

    def _choose(self):
        t = self.trainer
        g = torch.Generator().manual_seed(t.config.seed * 7_919 + 2)
        idx = torch.randperm(len(t.data), generator=g)[: self.settings.start_images].to(t.device)
        turn = random_grid_rotation(g)
        runs = [self, *self._starts]
        scores = [run.start_score(idx, turn) for run in runs]
        best = int(np.argmin(scores))
        agreement = starts_agreement([run.trainer.model.poses.poses()[0] for run in runs], best)
        if best:
            winner = runs[best]
            t.load_state_dict(winner.trainer.state_dict())
            self.search_errors = list(winner.search_errors)
            self.search_moves = list(winner.search_moves)
        t.history[-1].update(start=best, start_scores=[float(f"{s:.6g}") for s in scores], start_agreement=agreement)
        self._starts = []
        if t.run_dir is not None:
            self._discard = (t.run_dir / "starts", t.step_count)
