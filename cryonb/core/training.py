"""Training the heterogeneous model, cell by cell: a :class:`Trainer` a notebook can drive.

``fit(epochs)`` continues where the last call stopped; ``fit(..., background=True)`` trains in a
thread with ``pause()``/``resume()``/``stop()``. Checkpoints are written atomically and hold only
tensors and plain numbers (loaded with ``weights_only=True``); ``Trainer.from_run(run_dir)``
continues exactly, because batch order and sampling noise derive from the seed and step count.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from .adam import AdamW
from .averaging import WeightAverage
from .checkpoints import Checkpointed, clean_partial_writes
from .checkpoints import INTERRUPTED, has_checkpoint, load_checkpoint, read_run_config  # noqa: F401  (callers import them from here)
from .ctf import particle_ctf
from .distributed import Distributed, distributed_model, resolve_device
from .driving import Driven
from .errors import CryonbError, InputError
from .imagedata import ImageData, image_data  # noqa: F401  (ImageData: callers import it from here)
from .pixels import FittedPixels
from .row_adam import RowAdam
from .train_config import TrainConfig

AMP_DTYPE = torch.bfloat16  # a GPU step's autocast (amp=True); its Triton kernels are compiled for it


class Trainer(Driven, Checkpointed):
    """Train a :class:`HeterogeneousModel` on a particle set, a few epochs at a time.

    >>> trainer = Trainer(particles, TrainConfig(zdim=8), run_dir="runs/hinge")
    >>> trainer.fit(5)          # look at trainer.history, then
    >>> trainer.fit(5)          # five more
    >>> z = trainer.embed()     # (N, zdim) latent means

    ``fit`` (in the background too), ``pause``, ``resume``, ``stop``, ``wait`` and ``listeners``
    come from :class:`~cryonb.core.driving.Driven`; ``save_checkpoint``, ``state_dict`` and
    ``Trainer.from_run`` from :class:`~cryonb.core.checkpoints.Checkpointed`.
    """

    def __init__(self, particles, config: TrainConfig | None = None, run_dir: str | os.PathLike | None = None, *,
                 data=None, region_features=None, **overrides):
        config = TrainConfig(**{**asdict(config or TrainConfig()), **overrides}).validate()
        self.dist = Distributed.from_environment()
        self.device = resolve_device(config.device, self.dist)
        self.particles = particles
        self.run_dir = None if run_dir is None else Path(run_dir)
        torch.manual_seed(config.seed)
        # ``data``: these particles' prepared images at this box and device, shared (another trainer's);
        # ``region_features``: the encoder's fixed inputs when already known (a checkpoint's), else computed here
        self.data = data if data is not None else image_data(particles, config, self.device, self.run_dir)
        self.config = config = config.for_device(self.device, self.data.D)  # the open choices, for this device and box
        self.model = config.build_model(self.data.D, len(self.data)).to(self.device)
        if self.model.poses.has_table and particles.rotations is not None:  # refined from the metadata's poses
            self.model.poses.assign(torch.arange(len(self.data), device=self.device), self.data.rotations)
        if self.model.has_tables and self.dist.world > 1:
            raise CryonbError("per-particle tables (latents='table' or poses='table') train on one process; "
                              "run without --gpus/torchrun")
        # Steps replayed as CUDA graphs on one GPU; the Gaussian-mixture model's is not capturable
        # yet (its capture failed on an H200)
        self._graphs = config.cuda_graphs and self.device.type == "cuda" and self.dist.world == 1 and config.decoder != "gmm"
        self._captured = {}  # the CUDA graph of a full-batch step at the current fitted radius, made at first use
        self._kernels_compiled = self._compile_kernels()  # waited for by the first step
        share_steps = round(config.pixel_until * config.epochs * self.batches_per_epoch) if config.pixel_until < 1 else None
        self._fitted = FittedPixels(self.data.half.coords, self.data.D, config.pixel_fraction, config.seed, self.device,
                                    config.pixel_core, share_steps)
        self._pixels, self._pixel_weight, self._fit_radius = None, 1.0, None  # this step's (None: all), their weight
        self.optimizer = AdamW(self._dense_groups(), weight_decay=config.weight_decay, capturable=self._graphs,
                               fused=self._fused_optimizer)  # no torch._dynamo
        if config.zdim and config.regions:  # fixed inputs of the encoder, from the images once (or a checkpoint's)
            if region_features is None:
                from .region_features import region_features as compute

                region_features = compute(particles, centres=config.regions, device=self.device)
            self.model.latents.features.copy_(torch.as_tensor(region_features))
        if config.zdim and config.latent_source == "gradient":  # the features' scale, from the first particles
            from .gmm.setup import prepare

            prepare(self.model.latents, self.data)
            self.model.latents.cache_features(self.data)  # computed once, at the first step, when they fit
        groups = [{"params": [p for name, p in self.model.named_parameters() if _in_table(self.model, name, part)], "lr": lr}
                  for part, lr in (("latents", config.table_lr), ("poses", config.pose_lr))]
        groups = [g for g in groups if g["params"]]
        self.table_optimizer = RowAdam(groups) if groups else None  # moves the batch's rows only
        self.before_step: list = []  # callables (trainer, idx) run before each step, e.g. a pose search
        forward = self.model
        if self.dist.world > 1:
            forward = distributed_model(forward, self.device)
        if config.compile:  # after DDP, so that compiled graphs break at its gradient buckets
            forward = torch.compile(forward)
        self._forward = forward
        self.encoder_average = self._encoder_average()  # what embed() reads (None: the encoder as trained)
        self.epoch = 0  # completed epochs
        self.position = 0  # batches done in the current epoch
        self.step_count = 0
        self.history: list[dict] = []  # one row per completed epoch
        self.steps: list[tuple[int, float, float]] = []  # (step, loss, kl) for live curves
        self._epoch_sums = np.zeros(3)
        self._epoch_time = 0.0
        self._init_driving()
        self._noise = torch.Generator(device=self.device)
        self._epoch_order = (-1, None)
        self._pending: list[torch.Tensor] = []  # per-step losses not yet brought to the host
        self._pending_since = 0.0
        self._sync_every = 16 if self.device.type == "cuda" else 1  # steps between host syncs
        self._last_checkpoint: str | None = None  # kept when the next checkpoint is written
        if self.run_dir is not None and self.dist.main:
            clean_partial_writes(self.run_dir)
            self._write_config()

    # ------------------------------------------------------------------ training
    @property
    def batches_per_epoch(self) -> int:
        full, tail = divmod(len(self.data), self.config.batch_size)
        return full + (tail >= self.dist.world)  # a last batch too small to share between processes is skipped

    @property
    def particles_per_epoch(self) -> int:
        return min(len(self.data), self.batches_per_epoch * self.config.batch_size)

    def _order(self, epoch: int) -> torch.Tensor:
        """This epoch's particle order (same on every process), drawn once per epoch."""
        if self._epoch_order[0] != epoch:
            g = torch.Generator().manual_seed(self.config.seed * 1_000_003 + epoch)
            if self.config.shuffle == "chunked":
                from .streaming import chunked_permutation

                order = chunked_permutation(len(self.data), g)
            else:
                order = torch.randperm(len(self.data), generator=g)
            self.data.set_order(order.numpy(), self.config.batch_size, self.batches_per_epoch, self.dist.rank, self.dist.world)
            self._epoch_order = (epoch, order.to(self.device))
        return self._epoch_order[1]

    def _autocast(self):
        if self.config.amp and self.device.type == "cuda":  # no cast cache: CUDA graphs cannot hold one
            return torch.autocast("cuda", dtype=AMP_DTYPE, cache_enabled=False)
        return contextlib.nullcontext()

    def loss(self, idx: torch.Tensor, noise: torch.Tensor | None = None):
        """Loss, reconstruction error and mean KL for the particles at ``idx``.

        ``noise`` (len(idx), zdim) draws z from the encoder's Gaussian; without it z is its mean.
        """
        images, rotations, ctf = self.data.batch(idx)
        pixels = self._pixels
        with self._autocast():
            out = self._forward(idx, images, rotations, ctf, noise, pixels)
        error = torch.view_as_real(out.prediction - out.target).pow(2).sum(-1)
        weight = 1.0 if pixels is None else self._pixel_weight  # per fitted pixel, in the units of the whole half-plane
        error = (error * weight).mean() if torch.is_tensor(weight) else error.mean() * weight
        kl = out.prior.mean() if out.prior is not None else torch.zeros((), device=self.device)
        loss = error + self.config.kl_weight * kl / len(self.data.half)
        if out.features_error is not None:  # per particle, as the KL term is
            loss = loss + self.config.region_weight * out.features_error.float().mean() / len(self.data.half)
        return loss, error, kl

    def step(self) -> float:
        """One optimisation step on the next batch; returns the loss."""
        self._advance()
        self._record()
        return self.steps[-1][1]

    def _advance(self):
        """One optimisation step, leaving its loss on the device until :meth:`_record`.

        Each process takes every ``world``-th particle of the global batch and the matching rows
        of the batch's noise, so any number of GPUs computes the same step as one.
        """
        if not self._pending:
            self._pending_since = time.perf_counter()
        if self._kernels_compiled is not None:  # the first epoch's time includes the wait
            self._kernels_compiled()
            self._kernels_compiled = None
        bs = self.config.batch_size
        batch = self._order(self.epoch)[self.position * bs : (self.position + 1) * bs]
        share = slice(self.dist.rank, None, self.dist.world)
        noise = None
        if self.config.zdim:
            self._noise.manual_seed(self.config.seed * 7_919 + self.step_count)
            noise = torch.randn(len(batch), self.config.zdim, generator=self._noise, device=self.device)[share]
        idx = batch[share]
        self.data.stage(idx, self.position)  # streamed data: this batch's images to the device
        weight = len(idx) / len(batch)  # this process's share of the batch mean
        self.model.train()
        self._apply_schedule()
        for hook in self.before_step:
            hook(self, idx)
        try:
            if self._graphs and len(batch) == bs:
                loss, error, kl = self._graphed_step(idx, noise)
            else:
                self.optimizer.zero_grad(set_to_none=True)
                if self.table_optimizer is not None:
                    self.table_optimizer.zero_grad(set_to_none=True)
                loss, error, kl = self._update(idx, noise, weight * self.dist.world)  # DDP averages over processes
        except torch.OutOfMemoryError as err:
            raise CryonbError(
                f"the GPU ran out of memory at batch size {bs}. Fix: try batch_size={max(bs // 2, 1)} "
                f"(or a smaller box / decoder width)"
            ) from err
        self._pending.append(torch.stack([loss.detach(), error.detach(), kl.detach()]).float() * weight)
        if self.encoder_average is not None:
            self.encoder_average.update()
        self.step_count += 1
        self.position += 1
        if self.position >= self.batches_per_epoch or len(self._pending) >= self._sync_every:
            self._record()

    def _update(self, idx, noise=None, scale: float = 1.0):
        """Forward, backward and optimiser step (gradients must be zero or None before)."""
        loss, error, kl = self.loss(idx, noise)
        (loss * scale).backward()
        self.optimizer.step()
        if self.table_optimizer is not None:
            self.table_optimizer.step(idx)
        return loss.detach(), error.detach(), kl.detach()

    def _graphed_step(self, idx, noise):
        from .graphs import CapturedStep

        inputs = (idx,) if noise is None else (idx, noise)
        key = (self._fit_radius, None if self._pixels is None else len(self._pixels))
        if key not in self._captured:
            # Only the current radius's graph is kept: radii only grow (frequency marching, ab initio's
            # search), and each graph holds its own memory (4 starts x 7 radii would hold 28 of them)
            self._captured.clear()
            optimizers = [o for o in (self.optimizer, self.table_optimizer) if o is not None]
            self._captured[key] = CapturedStep(self._update, self.model, optimizers, inputs)
        return self._captured[key](*inputs)

    @property
    def _fused_optimizer(self) -> bool:
        return self.config.fused_optimizer and self.device.type == "cuda"

    def _compile_kernels(self):
        """Start compiling the decoder's Triton kernels for this run's steps (a GPU's, under autocast) in
        threads, while the rest is set up; returns the function that waits for them (None: nothing to do)."""
        compile_kernels = getattr(self.model.decoder, "compile_kernels", None)
        if compile_kernels is None or self.device.type != "cuda" or not self.config.amp or self.config.compile:
            return None
        batch = len(range(self.dist.rank, self.config.batch_size, self.dist.world))  # this process's share of a batch
        return compile_kernels(batch, len(self.data.half), AMP_DTYPE)

    def fit_within(self, radius: float | None):
        """Fit the model to the half-plane pixels within ``radius`` pixels of frequency from the next
        step on (None, or Nyquist and beyond: all of them; ``pixel_fraction`` < 1: a random share of
        them at each step). Frequency marching and the ab initio schedule set it; each radius's step
        is captured as its own CUDA graph."""
        self._fit_radius = None if radius is None or radius >= self.data.D // 2 else radius
        self._pixels, self._pixel_weight = self._fitted.at(self.step_count, self._fit_radius)

    def _apply_schedule(self):
        """Set this step's learning rate and frequency-marching radius."""
        c = self.config
        if c.march_epochs:
            progress = self.step_count / (c.march_epochs * self.batches_per_epoch)
            nyquist = self.data.D // 2
            self.fit_within(2 * math.ceil(nyquist * min(1.0, c.march_start + (1 - c.march_start) * progress) / 2))
        elif c.pixel_fraction < 1:  # this step's draw
            self.fit_within(self._fit_radius)
        if c.lr_schedule == "cosine":
            self._set_lr(c.lr * cosine_factor(self.step_count, c.epochs * self.batches_per_epoch, c.lr_final))

    def _encoder_average(self) -> WeightAverage | None:
        """The moving average of the encoder's weights, its memory ``encoder_average`` of the planned steps."""
        share = self.config.encoder_average if self.config.zdim else 0.0
        if not share:
            return None
        memory = max(2.0, share * self.config.epochs * self.batches_per_epoch)
        return WeightAverage(self.model.latents, 1 - 1 / memory)

    def _dense_groups(self) -> list[dict]:
        """The optimiser's groups of the parameters outside per-particle tables: one, or the decoder's
        apart when it has a learning rate of its own (``decoder_lr_scale``)."""
        c = self.config
        dense = [(name, p) for name, p in self.model.named_parameters() if not _in_table(self.model, name)]
        split = c.decoder_lr_scale != 1
        groups = [{"params": [p for name, p in dense if not (split and name.startswith("decoder."))]}]
        if split:
            groups.append({"params": [p for name, p in dense if name.startswith("decoder.")], "lr_scale": c.decoder_lr_scale})
        for group in groups:  # a graph reads the learning rate from a tensor, so it can change without a new capture
            lr = c.lr * group.get("lr_scale", 1.0)
            group["lr"] = torch.tensor(lr, device=self.device) if self._graphs else lr
        return [g for g in groups if g["params"]]

    def _set_lr(self, lr: float):
        for group in self.optimizer.param_groups:
            value = lr * group.get("lr_scale", 1.0)
            if torch.is_tensor(group["lr"]):
                group["lr"].fill_(value)  # in place: a captured step reads it from this tensor
            else:
                group["lr"] = value

    def _record(self):
        """Bring the pending steps' losses to the host (one wait, one all-reduce) and log them."""
        if not self._pending:
            return
        values = self.dist.sum(torch.stack(self._pending)).cpu().numpy()
        self._epoch_time += time.perf_counter() - self._pending_since
        first = self.step_count - len(values)
        starts = np.arange(self.position - len(values), self.position) * self.config.batch_size
        sizes = np.minimum(self.config.batch_size, len(self.data) - starts)  # pending steps share one epoch
        self._epoch_sums += (values * sizes[:, None]).sum(0)
        self.steps.extend((first + i + 1, float(loss), float(kl)) for i, (loss, _, kl) in enumerate(values))
        self._pending.clear()
        self._notify("step")
        if self.position >= self.batches_per_epoch:
            self._finish_epoch()

    def _finish_epoch(self):
        n = self.particles_per_epoch
        loss, error, kl = self._epoch_sums / n
        self.epoch += 1
        self.history.append({
            "epoch": self.epoch, "loss": float(loss), "error": float(error), "kl": float(kl),
            "seconds": self._epoch_time, "images_per_s": n / max(self._epoch_time, 1e-9), "processes": self.dist.world,
        })
        self.position = 0
        self._epoch_sums[:] = 0
        self._epoch_time = 0.0
        self._notify("epoch")
        if self.run_dir is not None and self.epoch % self.config.checkpoint_every == 0:
            self.save_checkpoint()

    def set_learning_rate(self, lr: float):
        """Change the learning rate from the next step on (e.g. to anneal between ``fit`` calls)."""
        if not (lr > 0 and math.isfinite(lr)):
            raise InputError(None, f"learning rate must be a positive number (got {lr})", "pass e.g. 1e-4")
        self.config.lr = lr
        self._set_lr(lr)

    def close(self):
        """Leave a torchrun job once training is done, on every process (not after an error: the
        others may be waiting in a collective). The DDP wrapper, which holds the process group, is
        dropped first; embed() and volumes() still work, training on does not."""
        if self.dist.world > 1:
            self._forward = self.model
            self.dist.close()

    # ------------------------------------------------------------------ results
    @torch.no_grad()
    def embed(self, batch_size: int = 1024) -> np.ndarray:
        """Latent means (N, zdim) for every particle, in the particle set's order."""
        if not self.config.zdim:
            raise CryonbError("a homogeneous model (zdim=0) has no latent space to embed")
        self.model.eval()
        encoder = None if self.encoder_average is None else self.encoder_average.module.eval()
        out = []
        for start in range(0, len(self.data), batch_size):
            idx = torch.arange(start, min(start + batch_size, len(self.data)), device=self.device)
            images = self.data.images[start : start + batch_size]
            rotations, ctf = self.data.rotations[idx], particle_ctf(self.data.ctf, self.data.freqs, idx)
            with self._autocast():
                mu = self.model.embed(idx, images, rotations, ctf, latents=encoder)
            out.append(mu.float().cpu())
        return torch.cat(out).numpy()

    @torch.no_grad()
    def volumes(self, z=None) -> np.ndarray:
        """Maps (B, D, D, D) for latents ``z`` (B, zdim), or (1, D, D, D) for a homogeneous model."""
        self.model.eval()
        zt = None if z is None else torch.as_tensor(np.asarray(z, dtype=np.float32))
        return (self.model.decoder.volumes(zt) * self.data.scale).cpu().numpy()

    def volume(self, z=None) -> np.ndarray:
        """The map (D, D, D) for one latent ``z`` (or the homogeneous map)."""
        return self.volumes(None if z is None else np.reshape(z, (1, -1)))[0]


def _in_table(model: torch.nn.Module, name: str, part: str | None = None) -> bool:
    """Whether parameter ``name`` belongs to a per-particle table (of ``part``, "latents" or "poses", if given)."""
    owner = name.split(".")[0]
    return (part is None or owner == part) and getattr(getattr(model, owner, None), "has_table", False)


def cosine_factor(step: int, total: int, final: float) -> float:
    """The learning rate's multiplier at ``step`` of ``total``: a linear warm-up over the first 2 %
    (at most 1,000 steps), a cosine down to ``final`` at ``total``, then ``final``."""
    warm = min(1000, max(1, total // 50))
    if step < warm:
        return (step + 1) / warm
    progress = min(1.0, (step - warm) / max(1, total - warm))
    return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * progress))
