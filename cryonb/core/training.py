"""Training the heterogeneous model, cell by cell: a :class:`Trainer` a notebook can drive.

``fit(epochs)`` continues where the last call stopped; ``fit(..., background=True)`` trains in a
thread with ``pause()``/``resume()``/``stop()``. Checkpoints are written atomically and hold only
tensors and plain numbers (loaded with ``weights_only=True``); ``Trainer.from_run(run_dir)``
continues exactly, because batch order and sampling noise derive from the seed and step count.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import threading
import time
import warnings
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch

from .ctf import compute_ctf
from .errors import CryonbError, InputError
from .model import ENCODINGS, FourierDecoder, HalfPlane, HeterogeneousModel
from .poses import metadata_rotations

CHECKPOINT_VERSION = 1


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved as ``config.json`` in the run folder."""

    zdim: int = 8
    enc_width: int | None = None  # None: 1024 on a GPU, 256 on a CPU
    enc_depth: int = 3
    dec_width: int | None = None  # None: 1024 on a GPU, 256 on a CPU
    dec_depth: int = 3
    residual: bool | None = None  # skip connections (depth layers after the input layer); None: on a GPU
    encoding: str | None = None  # positional encoding; None: "gaussian" on a GPU, "geometric" on a CPU
    pe_sigma: float = 0.5  # spread of the gaussian encoding's frequencies, in units of D/2 radians
    n_freqs: int | None = None
    enc_radius: float = 1.0  # encoder low-pass, as a fraction of Nyquist
    box: int | None = None  # Fourier-crop the images to this box first
    batch_size: int | None = None  # None: 32 on a GPU, 64 on a CPU
    lr: float | None = None  # None: 2e-4 on a GPU, 1e-4 on a CPU
    lr_schedule: str | None = None  # "constant" or "cosine"; None: cosine on a GPU, constant on a CPU
    lr_final: float = 0.1  # cosine: warm-up, then down to lr_final × lr at epoch `epochs`, and there after
    epochs: int | None = None  # the planned length of the run, for the schedule; None: 20
    weight_decay: float = 0.0
    # Frequency marching: over the first `march_epochs` epochs the decoder is fitted inside a disc whose
    # radius grows linearly from `march_start` (a fraction of Nyquist) to Nyquist, in steps of 2 pixels
    # (cheaper early steps; 0: off)
    march_epochs: float = 0.0
    march_start: float = 0.5
    table_lr: float = 1e-2  # per-particle latents (latents="table"): their sparse Adam's rate
    pose_lr: float = 1e-3  # per-particle poses (poses="table"): their sparse Adam's rate
    beta: float | None = None  # weight of the KL term; None means 1 / zdim
    amp: bool = True  # bfloat16 autocast on CUDA
    compile: bool = False  # torch.compile the model (CUDA; worth it for long runs)
    cuda_graphs: bool = True  # replay each step as a CUDA graph (one GPU)
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 1  # epochs
    particles: str | None = None  # where the particle set came from, for resuming
    # Images in memory or streamed from a disk cache (cryonb.core.streaming). None: streamed when their
    # transforms (N × P × 8 bytes, P ≈ 0.39 box²) would take over half the available host memory or,
    # on a GPU, over half its free memory; True/False force it.
    stream: bool | None = None
    cache_dir: str | None = None  # the streamed cache's folder; None: <run_dir>/cache, or a temporary folder
    cache_dtype: str = "complex64"  # the cache's numbers: complex64, or "float16"/"bfloat16" pairs (half the bytes)
    # "full": every epoch a uniform permutation; "chunked": blocks of 4,096 consecutive particles in a random
    # order, shuffled within groups of 8 blocks, so that streamed data is read from a few regions at a time
    shuffle: str = "full"
    # The model's parts (cryonb.core.model.HeterogeneousModel): "encoder" (a VAE encoder) or "table" (an
    # autodecoder's per-particle latents); "known" poses (the metadata's) or a "table" refined with the
    # model (ab initio: cryonb.core.abinit fills it by pose search); an "mlp" decoder or a Gaussian
    # mixture ("gmm", fitted to ``neutral_map`` first: cryonb.core.gmm).
    latents: str | None = None  # None: "gradient" (cryonb.core.gmm.GradientEncoder) for a gmm decoder, else "encoder"
    poses: str = "known"
    decoder: str = "mlp"
    neutral_map: str | None = None
    # The Gaussian-mixture decoder's options (None: the defaults of cryonb.core.gmm.config.GMM_DEFAULTS):
    # what moves ("both", "position", "amplitude"), a mask map of the Gaussians that may move, the neutral
    # fit's resolution (pixels) and size, the latent noise, the encoder's feature loss, the spread penalty
    gmm_mode: str | None = None
    gmm_mask: str | None = None
    gmm_resolution: float | None = None
    gmm_max_gaussians: int | None = None
    gmm_noise: float | None = None
    gmm_feature_loss: str | None = None
    gmm_penalty: float | None = None

    def validate(self) -> TrainConfig:
        problems = []
        for name in ("enc_width", "enc_depth", "dec_width", "batch_size", "checkpoint_every", "epochs"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1 (got {getattr(self, name)})")
        if self.zdim < 0:
            problems.append(f"zdim must be 0 (homogeneous) or more (got {self.zdim})")
        if self.dec_depth < 1:
            problems.append(f"dec_depth must be at least 1 (got {self.dec_depth})")
        if self.encoding is not None and self.encoding not in ENCODINGS:
            problems.append(f"encoding must be one of {', '.join(ENCODINGS)} (got {self.encoding!r})")
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            problems.append(f"lr must be a positive number (got {self.lr})")
        if self.box is not None and (self.box < 8 or self.box % 2):
            problems.append(f"box must be an even size of at least 8 (got {self.box})")
        for name in ("table_lr", "pose_lr"):
            if not (getattr(self, name) > 0 and math.isfinite(getattr(self, name))):
                problems.append(f"{name} must be a positive number (got {getattr(self, name)})")
        if self.march_epochs < 0 or not 0 < self.march_start <= 1:
            problems.append(f"march_epochs must be >= 0 and march_start in (0, 1] (got {self.march_epochs}, {self.march_start})")
        if not 0 < self.enc_radius <= 1:
            problems.append(f"enc_radius must be in (0, 1] (got {self.enc_radius})")
        if self.lr_schedule is not None and self.lr_schedule not in SCHEDULES:
            problems.append(f"lr_schedule must be one of {', '.join(SCHEDULES)} (got {self.lr_schedule!r})")
        if not 0 < self.lr_final <= 1:
            problems.append(f"lr_final must be in (0, 1] (got {self.lr_final})")
        if self.beta is not None and self.beta < 0:
            problems.append(f"beta must be non-negative (got {self.beta})")
        if self.cache_dtype not in ("complex64", "float16", "bfloat16"):
            problems.append(f"cache_dtype must be complex64, float16 or bfloat16 (got {self.cache_dtype!r})")
        if self.shuffle not in ("full", "chunked"):
            problems.append(f"shuffle must be 'full' or 'chunked' (got {self.shuffle!r})")
        for name, allowed in (("latents", (None, *LATENT_SOURCES)), ("poses", POSE_SOURCES), ("decoder", DECODERS)):
            if getattr(self, name) not in allowed:
                problems.append(f"{name} must be one of {', '.join(allowed[-3:])} (got {getattr(self, name)!r})")
        if self.latent_source == "gradient" and self.decoder != "gmm":
            problems.append("latents 'gradient' (loss gradients at a neutral Gaussian mixture) needs decoder 'gmm'")
        if self.decoder == "gmm" and not self.neutral_map:
            problems.append("decoder 'gmm' needs neutral_map, the consensus map its Gaussians are fitted to")
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            problems.append(f"device must be 'auto', 'cpu' or 'cuda[:N]' (got {self.device!r})")
        if problems:
            raise InputError(None, "invalid training configuration: " + "; ".join(problems),
                             "correct these values in TrainConfig (or the command-line options)")
        return self

    @property
    def latent_source(self) -> str:
        """``latents``, with None resolved for the decoder."""
        return self.latents or ("gradient" if self.decoder == "gmm" else "encoder")

    @property
    def kl_weight(self) -> float:
        return (1.0 / self.zdim if self.zdim else 0.0) if self.beta is None else self.beta

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """The configuration a run folder recorded (runs from before a key existed get its old default)."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise InputError(None, f"unknown configuration keys {sorted(unknown)}", f"use only {sorted(known)}")
        return cls(**{**LEGACY_DEFAULTS, **d})

    def for_device(self, device: torch.device) -> TrainConfig:
        """This configuration with the choices left open filled in for ``device``.

        A GPU gets the model that the benchmark suite chose (docs/benchmarks.md); a CPU, a smaller
        one that trains in minutes (the demo, the notebooks and the tests).
        """
        gpu = device.type == "cuda"
        width = 1024 if gpu else 256
        return replace(self, enc_width=self.enc_width or width, dec_width=self.dec_width or width,
                       batch_size=self.batch_size or (32 if gpu else 64), lr=self.lr or (2e-4 if gpu else 1e-4),
                       lr_schedule=self.lr_schedule or ("cosine" if gpu else "constant"), epochs=self.epochs or 20,
                       residual=gpu if self.residual is None else self.residual, latents=self.latent_source,
                       encoding=self.encoding or ("gaussian" if gpu else "geometric"))

    def build_model(self, D: int, n_particles: int) -> HeterogeneousModel:
        """The model this configuration describes, for ``n_particles`` images of box ``D``."""
        from .latents import Encoder, LatentTable
        from .poses import KnownPoses, PoseTable

        source = self.latent_source if self.zdim else None
        latents = decoder = None  # the latents first: runs keep the initial weights a seed gave them before
        if source == "table":
            latents = LatentTable(n_particles, self.zdim, seed=self.seed)
        elif source == "encoder":
            radius = HalfPlane.build(D).coords[:, :2].norm(dim=-1)
            pixels = torch.nonzero(radius <= self.enc_radius * (D // 2)).squeeze(1)
            latents = Encoder(pixels, self.zdim, self.enc_width, self.enc_depth, self.residual)
        elif source == "gradient":  # reads the decoder's neutral model
            from .gmm import latents_from_config

            decoder = self.build_decoder(D)
            latents = latents_from_config(self, decoder)
        poses = PoseTable(n_particles) if self.poses == "table" else KnownPoses()
        return HeterogeneousModel(decoder or self.build_decoder(D), latents, poses)

    def build_decoder(self, D: int) -> torch.nn.Module:
        """The decoder alone (random weights), e.g. to load a shared run's decoder weights into."""
        if self.decoder == "gmm":
            from .gmm import decoder_from_config

            return decoder_from_config(self, D)
        return FourierDecoder(D, self.zdim, self.dec_width, self.dec_depth, self.encoding, self.n_freqs,
                              self.seed, self.residual, self.pe_sigma)


SCHEDULES = ("constant", "cosine")
LATENT_SOURCES = ("encoder", "table", "gradient")
POSE_SOURCES = ("known", "table")
DECODERS = ("mlp", "gmm")
# Keys added after the first release, with the value that runs written before them used.
LEGACY_DEFAULTS = {"residual": False, "pe_sigma": math.pi / 2, "lr_schedule": "constant"}


@dataclass(frozen=True)
class Distributed:
    """This process's place in a torchrun job (rank 0 of 1 when run alone)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_environment(cls) -> Distributed:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:
            return cls()
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        return cls(dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def main(self) -> bool:
        return self.rank == 0

    def close(self):
        """Wait for every process, then leave the job (a process that exits while others still use
        the group can abort at shutdown)."""
        if self.world > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.barrier()
                dist.destroy_process_group()

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            import torch.distributed as dist

            dist.all_reduce(values)
        return values


def _distributed(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` in DistributedDataParallel; its buffers are constants, so they are not re-sent each step."""
    import inspect

    from torch.nn.parallel import DistributedDataParallel as DDP

    newer = "forward_sync_buffers" in inspect.signature(DDP).parameters  # torch >= 2.13 renamed the option
    return DDP(model, device_ids=[device.index] if device.type == "cuda" else None, gradient_as_bucket_view=True,
               **{"forward_sync_buffers" if newer else "broadcast_buffers": False})


def resolve_device(name: str, dist: Distributed = Distributed()) -> torch.device:
    if dist.world > 1 and torch.cuda.is_available():
        torch.cuda.set_device(dist.local_rank)  # this process's GPU is the default one for streams, events and copies
        return torch.device("cuda", dist.local_rank)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(None, f"device {name!r} was requested but no CUDA GPU is available", "use device='cpu'")
    return torch.device(name)


class ImageData:
    """Particle images prepared once for training: windowed, transformed, re-centred, on the device.

    Holds the half-plane of each image's centred transform (N, P) scaled to unit variance, with the
    rotations and CTF parameters, so that a training step does no CPU work. Data larger than memory:
    :class:`~cryonb.core.streaming.StreamedImageData` (same interface, a disk cache read per batch).
    """

    def __init__(self, particles, box: int | None = None, device="cpu", chunk: int = 1024, poses: bool = True):
        from .streaming import Preprocess, check_fits, estimate_scale

        prep = Preprocess(particles, box, poses)
        self.D, self.apix, self.half = prep.D, prep.apix, prep.half
        self.device = torch.device(device)
        check_fits(len(particles), self.D, self.device, getattr(particles.source, "path", None))
        out = torch.empty(len(particles), len(self.half), dtype=torch.complex64)
        for start in range(0, len(particles), chunk):
            out[start : start + chunk] = prep(start, min(start + chunk, len(particles)))
        self.scale = estimate_scale(lambda a, b: out[a:b], len(out), getattr(particles.source, "path", None))
        out /= self.scale
        self.images = out.to(self.device)
        self.rotations = metadata_rotations(particles, self.device)
        if particles.ctf is None:
            self.ctf = None
        else:
            self.ctf = torch.as_tensor(np.asarray(particles.ctf, dtype=np.float32)).to(self.device)
        self.freqs = (self.half.coords[:, :2] / (self.D * self.apix)).to(self.device)

    def __len__(self) -> int:
        return len(self.images)

    def set_order(self, order, batch_size: int, n_batches: int, rank: int = 0, world: int = 1):
        """(Streamed data reads an epoch's batches ahead; everything here is on the device already.)"""

    def stage(self, idx: torch.Tensor, position: int):
        """(Streamed data moves the next batch to the device here.)"""

    def batch(self, idx: torch.Tensor):
        """Images, rotations and CTF (B, P) of the particles at ``idx`` (a device tensor)."""
        if self.ctf is None:
            ctf = torch.ones((), device=self.device)
        else:
            p = self.ctf[idx][:, :, None]
            ctf = compute_ctf(self.freqs, *p.unbind(1))
        return self.images[idx], self.rotations[idx], ctf


def image_data(particles, config: TrainConfig, device, run_dir=None):
    """The training data for ``config``: :class:`ImageData` in memory, or streamed from a disk cache
    (``config.stream``; None decides by :func:`~cryonb.core.streaming.should_stream`)."""
    from .particles import require_images
    from .streaming import StreamedImageData, should_stream

    require_images(particles, "train on")
    stream = config.stream
    if stream is None and particles.images is not None:
        stream = should_stream(len(particles), config.box or particles.box_size, device)
    poses = config.poses == "known"  # whether the particles must have poses
    if not stream:
        return ImageData(particles, config.box, device, poses=poses)
    cache_dir = config.cache_dir or (None if run_dir is None else Path(run_dir) / "cache")
    return StreamedImageData(particles, config.box, device, cache_dir, config.cache_dtype, poses=poses)


class Trainer:
    """Train a :class:`HeterogeneousModel` on a particle set, a few epochs at a time.

    >>> trainer = Trainer(particles, TrainConfig(zdim=8), run_dir="runs/hinge")
    >>> trainer.fit(5)          # look at trainer.history, then
    >>> trainer.fit(5)          # five more
    >>> z = trainer.embed()     # (N, zdim) latent means
    """

    def __init__(self, particles, config: TrainConfig | None = None, run_dir: str | os.PathLike | None = None, **overrides):
        config = TrainConfig(**{**asdict(config or TrainConfig()), **overrides}).validate()
        self.dist = Distributed.from_environment()
        self.device = resolve_device(config.device, self.dist)
        self.config = config = config.for_device(self.device)
        self.particles = particles
        self.run_dir = None if run_dir is None else Path(run_dir)
        torch.manual_seed(config.seed)
        self.data = image_data(particles, config, self.device, self.run_dir)
        self.model = config.build_model(self.data.D, len(self.data)).to(self.device)
        tables = self.model.has_tables
        if tables and self.dist.world > 1:
            raise CryonbError("per-particle tables (latents='table' or poses='table') train on one process; "
                              "run without --gpus/torchrun")
        # Per-particle tables have sparse gradients: their own optimiser, and no CUDA graph
        # (and the Gaussian-mixture model's step is not capturable yet: its capture failed on an H200)
        self._graphs = (config.cuda_graphs and self.device.type == "cuda" and self.dist.world == 1 and not tables
                        and config.decoder != "gmm")
        self._captured = {}  # the CUDA graphs of a full-batch step, one per marching radius, made at first use
        self._radius = torch.as_tensor(self.data.half.coords[:, :2]).norm(dim=-1).to(self.device)
        self._pixels = None  # the half-plane pixels fitted at this step (None: all)
        self._pixels_radius = None
        dense = [p for name, p in self.model.named_parameters() if not _in_table(self.model, name)]
        self.optimizer = torch.optim.AdamW(
            dense, weight_decay=config.weight_decay,
            # a graph reads the learning rate from a tensor, so it can change without a new capture
            **({"lr": torch.tensor(config.lr, device=self.device), "capturable": True} if self._graphs else {"lr": config.lr}),
        )
        if config.zdim and config.latent_source == "gradient":  # the features' scale, from the first particles
            from .gmm.setup import prepare

            prepare(self.model.latents, self.data)
        groups = [{"params": [p for name, p in self.model.named_parameters() if _in_table(self.model, name, part)], "lr": lr}
                  for part, lr in (("latents", config.table_lr), ("poses", config.pose_lr))]
        groups = [g for g in groups if g["params"]]
        self.table_optimizer = torch.optim.SparseAdam(groups) if groups else None
        self.before_step: list = []  # callables (trainer, idx) run before each step, e.g. a pose search
        forward = self.model
        if self.dist.world > 1:
            forward = _distributed(forward, self.device)
        if config.compile:  # after DDP, so that compiled graphs break at its gradient buckets
            forward = torch.compile(forward)
        self._forward = forward
        self.epoch = 0  # completed epochs
        self.position = 0  # batches done in the current epoch
        self.step_count = 0
        self.history: list[dict] = []  # one row per completed epoch
        self.steps: list[tuple[int, float, float]] = []  # (step, loss, kl) for live curves
        self.listeners: list = []
        self._epoch_sums = np.zeros(3)
        self._epoch_time = 0.0
        self._target_epochs = 0
        self._run = threading.Event()
        self._run.set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._noise = torch.Generator(device=self.device)
        self._epoch_order = (-1, None)
        self._pending: list[torch.Tensor] = []  # per-step losses not yet brought to the host
        self._pending_since = 0.0
        self._sync_every = 16 if self.device.type == "cuda" else 1  # steps between host syncs
        self._last_checkpoint: str | None = None  # kept when the next checkpoint is written
        self.interrupted = False  # set by Ctrl-C (SIGINT) during fit
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
            return torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False)
        return contextlib.nullcontext()

    def loss(self, idx: torch.Tensor, noise: torch.Tensor | None = None):
        """Loss, reconstruction error and mean KL for the particles at ``idx``.

        ``noise`` (len(idx), zdim) draws z from the encoder's Gaussian; without it z is its mean.
        """
        images, rotations, ctf = self.data.batch(idx)
        pixels = self._pixels
        with self._autocast():
            out = self._forward(idx, images, rotations, ctf, noise, pixels)
        error = torch.view_as_real(out.prediction - out.target).pow(2).sum(-1).mean()
        if pixels is not None:  # per fitted pixel, in the units of the whole half-plane
            error = error * (len(self.data.half) / len(pixels))
        kl = out.prior.mean() if out.prior is not None else torch.zeros((), device=self.device)
        return error + self.config.kl_weight * kl / len(self.data.half), error, kl

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
        bs = self.config.batch_size
        batch = self._order(self.epoch)[self.position * bs : (self.position + 1) * bs]
        share = slice(self.dist.rank, None, self.dist.world)
        noise = None
        if self.config.zdim:
            self._noise.manual_seed(self.config.seed * 7_919 + self.step_count)
            noise = torch.randn(len(batch), self.config.zdim, generator=self._noise, device=self.device)[share]
        if not self._pending:
            self._pending_since = time.perf_counter()
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
        self.step_count += 1
        self.position += 1
        if self.position >= self.batches_per_epoch or len(self._pending) >= self._sync_every:
            self._record()

    def _update(self, idx, noise, scale: float = 1.0):
        """Forward, backward and optimiser step (gradients must be zero or None before)."""
        loss, error, kl = self.loss(idx, noise)
        (loss * scale).backward()
        self.optimizer.step()
        if self.table_optimizer is not None:
            self.table_optimizer.step()
        return loss.detach(), error.detach(), kl.detach()

    def _graphed_step(self, idx, noise):
        from .graphs import CapturedStep

        inputs = (idx,) if noise is None else (idx, noise)
        key = None if self._pixels is None else len(self._pixels)
        if key not in self._captured:
            self._captured[key] = CapturedStep(self._update, self.model, self.optimizer, inputs)
        return self._captured[key](*inputs)

    def _apply_schedule(self):
        """Set this step's learning rate and frequency-marching radius."""
        c = self.config
        if c.march_epochs:
            progress = self.step_count / (c.march_epochs * self.batches_per_epoch)
            nyquist = self.data.D // 2
            radius = 2 * math.ceil(nyquist * min(1.0, c.march_start + (1 - c.march_start) * progress) / 2)
            if radius >= nyquist:
                self._pixels = None
            elif self._pixels is None or self._pixels_radius != radius:
                self._pixels = torch.nonzero(self._radius <= radius).squeeze(1)
                self._pixels_radius = radius
        if c.lr_schedule == "cosine":
            self._set_lr(c.lr * cosine_factor(self.step_count, c.epochs * self.batches_per_epoch, c.lr_final))

    def _set_lr(self, lr: float):
        for group in self.optimizer.param_groups:
            if torch.is_tensor(group["lr"]):
                group["lr"].fill_(lr)  # in place: a captured step reads it from this tensor
            else:
                group["lr"] = lr

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

    def fit(self, epochs: int = 1, background: bool = False, progress: bool = True):
        """Train ``epochs`` more epochs (continuing a part-done epoch first).

        With ``background=True`` training runs in a thread and this returns at once; use
        ``pause()``, ``resume()``, ``stop()`` and ``wait()``.
        """
        if self.running:
            raise CryonbError("this trainer is already training in the background; call stop() or wait() first")
        self._target_epochs = self.epoch + int(epochs)
        self.interrupted = False  # set by Ctrl-C (SIGINT) during this fit
        if self.run_dir is not None and self.dist.main:
            (self.run_dir / INTERRUPTED).unlink(missing_ok=True)  # resuming clears an interrupted run's mark
        self._stop.clear()
        self._run.set()
        if background:
            self._thread = threading.Thread(target=self._loop, args=(False,), daemon=True, name="cryonb-train")
            self._thread.start()
            return self
        with _stop_on_sigint(self):
            self._loop(progress)
        return self

    def _loop(self, progress: bool):
        bar = None
        if progress and self.dist.main:
            from tqdm.auto import tqdm

            total = (self._target_epochs - self.epoch) * self.batches_per_epoch - self.position
            bar = tqdm(total=total, unit="batch", desc=f"epoch {self.epoch + 1}", mininterval=0.5)
        try:
            while self.epoch < self._target_epochs and not self._stop.is_set():
                if self.paused:
                    self._record()  # the pause must not count as training time
                    self._run.wait()
                if self._stop.is_set():
                    break
                self._advance()
                if bar is not None:
                    bar.update(1)
                    bar.set_description(f"epoch {self.epoch + (self.position > 0)}")
                    if self.steps:
                        bar.set_postfix(loss=f"{self.steps[-1][1]:.4g}", refresh=False)
        finally:
            self._record()
            if bar is not None:
                bar.close()
            if self._stop.is_set() and self.run_dir is not None:
                self.save_checkpoint()
            self._notify("stopped")

    def set_learning_rate(self, lr: float):
        """Change the learning rate from the next step on (e.g. to anneal between ``fit`` calls)."""
        if not (lr > 0 and math.isfinite(lr)):
            raise InputError(None, f"learning rate must be a positive number (got {lr})", "pass e.g. 1e-4")
        self.config.lr = lr
        self._set_lr(lr)

    @property
    def target_epoch(self) -> int:
        """The epoch at which the current (or last) ``fit`` ends."""
        return max(self._target_epochs, self.epoch)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def paused(self) -> bool:
        return not self._run.is_set()

    def pause(self):
        self._run.clear()
        self._notify("paused")

    def resume(self):
        self._run.set()
        self._notify("resumed")

    def stop(self, wait: bool = True):
        """Stop after the current step (writing a checkpoint if there is a run folder)."""
        self._stop.set()
        self._run.set()
        if wait:
            self.wait()

    def wait(self):
        if self._thread is not None:
            self._thread.join()

    def _notify(self, event: str):
        for listener in list(self.listeners):
            listener(event, self)

    # ------------------------------------------------------------------ results
    @torch.no_grad()
    def embed(self, batch_size: int = 1024) -> np.ndarray:
        """Latent means (N, zdim) for every particle, in the particle set's order."""
        if not self.config.zdim:
            raise CryonbError("a homogeneous model (zdim=0) has no latent space to embed")
        self.model.eval()
        out = []
        for start in range(0, len(self.data), batch_size):
            idx = torch.arange(start, min(start + batch_size, len(self.data)), device=self.device)
            images = self.data.images[start : start + batch_size]
            _, rotations, ctf = self.data.batch(idx) if self.config.latent_source == "gradient" else (None, self.data.rotations[idx], None)
            with self._autocast():
                mu = self.model.embed(idx, images, rotations, ctf)
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

    # ------------------------------------------------------------------ checkpoints
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
        }

    def load_state_dict(self, state: dict):
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.table_optimizer is not None:
            self.table_optimizer.load_state_dict(state["table_optimizer"])
        for group in self.optimizer.param_groups:  # the checkpoint may come from a GPU run, or a CPU one
            lr = float(group["lr"])
            group["lr"] = torch.tensor(lr, device=self.device) if self._graphs else lr
            group["capturable"] = self._graphs
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
            if old.name not in keep and _CHECKPOINT_NAME.fullmatch(old.name):
                old.unlink(missing_ok=True)
        self._last_checkpoint = path.name
        return path

    @classmethod
    def from_run(cls, run_dir, particles=None, **overrides) -> Trainer:
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
        trainer = cls(particles, config, run_dir=None)
        trainer.run_dir = run_dir
        found = find_checkpoint(run_dir)
        if found is not None:
            path, state = found
            try:
                trainer.load_state_dict(state)
            except (RuntimeError, KeyError, ValueError, TypeError, AttributeError) as err:
                raise InputError(path, f"checkpoint does not fit the run's config.json ({_first_line(err)})",
                                 "resume with the config.json the checkpoint was written with, or start a new --outdir") from None
            trainer._last_checkpoint = path.name
        return trainer


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
        raise InputError(path, f"config.json's config has a value of the wrong type ({_first_line(err)})", fix) from None
    return meta


SIZE_BOUNDS = {"zdim": 4096, "enc_width": 65536, "dec_width": 65536, "enc_depth": 256, "dec_depth": 256, "n_freqs": 4096,
               "box": 8192, "batch_size": 2**20, "epochs": 2**31, "checkpoint_every": 2**31}
INTERRUPTED = "INTERRUPTED"  # in a run folder: training was stopped by Ctrl-C before its last epoch
CHECKPOINT_KEYS = ("model", "optimizer", "epoch", "position", "step", "epoch_sums", "epoch_time", "history", "steps", "scale")
_CHECKPOINT_NAME = re.compile(r"step_\d+\.pt")
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
    return (folder / "latest").exists() or any(_CHECKPOINT_NAME.fullmatch(p.name) for p in folder.glob("step_*.pt"))


def find_checkpoint(run_dir) -> tuple[Path, dict] | None:
    """The newest complete checkpoint of a run folder and its state, or None if it has none.

    ``checkpoints/latest`` names the newest; if that file is missing or unreadable, the newest other
    checkpoint that loads is used instead, with a warning naming both files.
    """
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return None
    others = sorted((p for p in folder.glob("step_*.pt") if _CHECKPOINT_NAME.fullmatch(p.name)), reverse=True)
    failures = []
    latest = folder / "latest"
    if latest.exists():
        name = latest.read_text(errors="replace").strip()
        if _CHECKPOINT_NAME.fullmatch(name):
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


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:300]}" if text else type(err).__name__


@contextlib.contextmanager
def _stop_on_sigint(trainer: Trainer):
    """Turn Ctrl-C / the notebook's interrupt into a clean stop at the next step boundary."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        trainer._stop.set()
        trainer.interrupted = True
        hint = getattr(trainer, "interrupt_hint", "call fit() to continue")
        print(f"\ncryonb: interrupted; stopping after step {trainer.step_count + 1} ({hint})")

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
