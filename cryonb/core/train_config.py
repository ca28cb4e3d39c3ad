"""What defines a training run: :class:`TrainConfig`, saved as ``config.json`` in the run folder,
and the device-dependent defaults it resolves to."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import torch

from .errors import InputError
from .image_cache import CACHE_DTYPES
from .model import ENCODINGS, FourierDecoder, HalfPlane, HeterogeneousModel


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
    # The decoder's first layer, one linear map of [encoding(k), z] kept in two parts: "joint" draws their
    # initial weights as one layer's, "split" each part as a layer of its own (z's then several times
    # larger). None: "joint" on a GPU with an encoder and known poses at a box of LARGE_BOX or more
    # (better maps on the suite's three sets at D = 128, the clusters as good), "split" otherwise (at D = 64
    # the joint draw cost the suite's clusters; the CPU's small, short runs at zdim 1-2 need z's larger start;
    # docs/benchmarks.md, "The defaults since 2026-12-02: the decoder's first layer drawn as one")
    decoder_init: str | None = None
    pe_sigma: float = 0.5  # spread of the gaussian encoding's frequencies, in units of D/2 radians
    n_freqs: int | None = None
    enc_radius: float = 1.0  # encoder low-pass, as a fraction of Nyquist
    phase_flip: bool = False  # the encoder reads each image times the sign of its CTF (cryoDRGN does)
    # The encoder also reads each image's correlations with this many learned 3D filters at its pose, within
    # slice_radius pixels of frequency (cryonb.core.latents.SliceFilters; 0: none). None: 32 on a GPU with an
    # encoder and known poses (the suite's latents were better on every set at D = 64 and, reaching 32 pixels,
    # at D = 128, where the maps rose too; docs/benchmarks.md, "The encoder reads the map at each pose: slice
    # filters" and "Slice filters at D = 128"), 0 otherwise
    slice_filters: int | None = None
    # Pixels of frequency the slice filters reach (at most the box's Nyquist). None: 32 from a box of LARGE_BOX
    # up (at D = 128, 16 cost assembly's clusters and 32 did not), 16 below
    slice_radius: int | None = None
    # The encoder also reads each particle's density in regions of the consensus map around this many points
    # (cryonb.core.region_features; 0: none), computed once before training, and with region_weight > 0 z predicts
    # them too (a linear head, its squared error per particle weighted as the KL term is). None: 0. On the suite, read
    # alone they did not reach z; predicted at weight 10 (D = 64) z held the rare state but the other clusters and
    # the maps fell (docs/benchmarks.md, "The encoder reads regions of the consensus"), and at weights 0.3-3, read
    # or only predicted (region_input False), the true k's mixture still gave it no cluster ("Smaller weights",
    # and at D = 128 weight 1 was no better than the defaults on two more seeds: "Weight 1 on two more seeds"):
    # not yet a default
    regions: int | None = None
    region_weight: float = 0.0
    region_input: bool = True  # the encoder reads the features; False: z only predicts them (region_weight > 0)
    box: int | None = None  # Fourier-crop the images to this box first
    batch_size: int | None = None  # None: 32 on a GPU, 64 on a CPU
    lr: float | None = None  # None: 3e-4 on a GPU (2e-4 with a pose table), 1e-4 on a CPU
    lr_schedule: str | None = None  # "constant" or "cosine"; None: cosine on a GPU, constant on a CPU
    lr_final: float = 0.1  # cosine: warm-up, then down to lr_final × lr at epoch `epochs`, and there after
    epochs: int | None = None  # the planned length of the run, for the schedule; None: 16 on a GPU, 20 on a CPU
    weight_decay: float = 0.0
    decoder_lr_scale: float = 1.0  # the decoder's learning rate as a multiple of lr (1: one rate for all)
    # embed() reads a moving average of the encoder's weights (cryonb.core.averaging) whose memory is this share of
    # the planned steps (0: the encoder as trained). None: 0.2 on a GPU with an encoder and known poses at a box of
    # LARGE_BOX or more (at D = 128 the suite's mixtures found the classes more often, the other scores within
    # ±0.002; at D = 64 it cost the clusters, as the joint draw did; docs/benchmarks.md, "The encoder's weights
    # averaged"), 0 otherwise
    encoder_average: float | None = None
    # Frequency marching: over the first `march_epochs` epochs the decoder is fitted inside a disc whose
    # radius grows linearly from `march_start` (a fraction of Nyquist) to Nyquist, in steps of 2 pixels
    # (cheaper early steps; 0: off)
    march_epochs: float = 0.0
    march_start: float = 0.5
    # The share of the pixels fitted (all, or the marching disc's) that each step fits the decoder to, a fresh
    # random draw per step (cryonb.core.pixels; 1: all): less arithmetic per image, an unbiased estimate of the error
    pixel_fraction: float = 1.0
    # With pixel_fraction below 1, every pixel within this fraction of Nyquist is fitted at every step and the share
    # is drawn from those beyond it, each weighted by its chance of being drawn (cryonb.core.pixels; 0: a uniform draw)
    pixel_core: float = 0.0
    # The share of the planned epochs over which pixel_fraction applies; every pixel is fitted after it (1: throughout)
    pixel_until: float = 1.0
    table_lr: float = 1e-2  # per-particle latents (latents="table"): their Adam's rate (cryonb.core.row_adam)
    pose_lr: float = 1e-3  # per-particle poses (poses="table"): their Adam's rate
    # Weight of the KL term. None: 0 on a GPU with an encoder and known poses at a box of LARGE_BOX or more (at
    # D = 128 every latent score of the suite's six rows rose or held and the mixtures stopped being a lottery;
    # the maps within 0.004; docs/benchmarks.md, "No KL term at D = 128"), 1 / zdim otherwise (on the CPU's model
    # adk lost without it; D = 64 not measured). Runs saved before this default have null: 1 / zdim
    beta: float | None = None
    amp: bool = True  # bfloat16 autocast on CUDA
    compile: bool = False  # torch.compile the model (CUDA; worth it for long runs)
    cuda_graphs: bool = True  # replay each step as a CUDA graph (one GPU)
    fused_optimizer: bool = True  # on a GPU, the optimiser's update in one kernel (False: torch's multi-tensor passes)
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
    # The model's parts (cryonb.core.model.HeterogeneousModel): "encoder" (a VAE encoder), "table" (an
    # autodecoder's per-particle latents) or "class" (zdim discrete classes, one-hot); "known" poses (the metadata's) or a "table" refined with the
    # model, starting from the metadata's poses (ab initio: cryonb.core.abinit fills it by pose search); an "mlp" decoder or a Gaussian
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
        if self.slice_filters is not None and self.slice_filters < 0:
            problems.append(f"slice_filters must be 0 (none) or more (got {self.slice_filters})")
        elif self.slice_filters and self.latent_source != "encoder":
            problems.append(f"slice_filters are read by an encoder (latents 'encoder', got {self.latent_source!r}); leave it 0")
        elif self.slice_filters and self.poses != "known":
            problems.append("slice_filters read each image at its known pose, and ab initio's pose search has none: "
                            f"leave it 0 with poses {self.poses!r}")
        if self.regions is not None and self.regions < 0:
            problems.append(f"regions must be 0 (none) or more (got {self.regions})")
        elif self.regions and (self.latent_source != "encoder" or self.poses != "known"):
            problems.append("regions are read by an encoder at each particle's known pose (latents 'encoder', poses 'known'); leave it 0")
        if self.region_weight < 0 or (self.region_weight and not self.regions):
            problems.append(f"region_weight must be 0, or more with regions (got {self.region_weight} with regions {self.regions})")
        if not self.region_input and not self.region_weight:
            problems.append("with region_input False the regions are only predicted from z: give region_weight > 0")
        if self.slice_radius is not None and self.slice_radius < 1:
            problems.append(f"slice_radius must be at least 1 pixel of frequency (got {self.slice_radius})")
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
        for name in ("table_lr", "pose_lr", "decoder_lr_scale"):
            if not (getattr(self, name) > 0 and math.isfinite(getattr(self, name))):
                problems.append(f"{name} must be a positive number (got {getattr(self, name)})")
        if self.march_epochs < 0 or not 0 < self.march_start <= 1:
            problems.append(f"march_epochs must be >= 0 and march_start in (0, 1] (got {self.march_epochs}, {self.march_start})")
        if not 0 < self.pixel_fraction <= 1:
            problems.append(f"pixel_fraction must be in (0, 1] (got {self.pixel_fraction})")
        if not 0 <= self.pixel_core <= 1:
            problems.append(f"pixel_core must be in [0, 1] (got {self.pixel_core})")
        if not 0 <= self.pixel_until <= 1:
            problems.append(f"pixel_until must be in [0, 1] (got {self.pixel_until})")
        if not 0 < self.enc_radius <= 1:
            problems.append(f"enc_radius must be in (0, 1] (got {self.enc_radius})")
        if self.encoder_average is not None and not 0 <= self.encoder_average < 1:
            problems.append(f"encoder_average must be in [0, 1) (got {self.encoder_average})")
        elif self.encoder_average and self.latent_source != "encoder":
            problems.append(f"encoder_average needs latents 'encoder' (got {self.latent_source!r}); leave it unset")
        if not 0 < self.lr_final <= 1:
            problems.append(f"lr_final must be in (0, 1] (got {self.lr_final})")
        if self.beta is not None and self.beta < 0:
            problems.append(f"beta must be non-negative (got {self.beta})")
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                named = ", ".join(choice for choice in allowed if choice is not None)
                problems.append(f"{name} must be one of {named} (got {getattr(self, name)!r})")
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
        config = cls(**{**LEGACY_DEFAULTS, **d})
        return config if config.beta is not None else replace(config, beta=config.kl_weight)  # saved unresolved: 1 / zdim

    def for_device(self, device: torch.device, box: int | None = None) -> TrainConfig:
        """This configuration with the choices left open filled in for ``device`` and images of ``box`` pixels.

        A GPU gets the model that the benchmark suite chose (docs/benchmarks.md); a CPU, a smaller
        one that trains in minutes (the demo, the notebooks and the tests). ``box`` (None: unknown)
        chooses how the decoder's first layer is drawn, whether the encoder is averaged, the KL term's
        weight and how far the slice filters reach.
        """
        gpu = device.type == "cuda"
        width = 1024 if gpu else 256
        gpu_lr = 2e-4 if self.poses == "table" else 3e-4  # pose tables (ab initio, refinement) were measured at 2e-4
        measured = gpu and self.latent_source == "encoder" and self.poses == "known"  # as the suite measured its choices
        # the joint draw, the average and beta 0 helped at D = 128, not at 64 (beta 0 there: no consistent change)
        large = measured and (box or 0) >= LARGE_BOX
        return replace(self, enc_width=self.enc_width or width, dec_width=self.dec_width or width,
                       batch_size=self.batch_size or (32 if gpu else 64), lr=self.lr or (gpu_lr if gpu else 1e-4),
                       lr_schedule=self.lr_schedule or ("cosine" if gpu else "constant"), epochs=self.epochs or (16 if gpu else 20),
                       residual=gpu if self.residual is None else self.residual, latents=self.latent_source,
                       encoding=self.encoding or ("gaussian" if gpu else "geometric"),
                       decoder_init=self.decoder_init or ("joint" if large else "split"),
                       encoder_average=(0.2 if large else 0.0) if self.encoder_average is None else self.encoder_average,
                       beta=(0.0 if large else self.kl_weight) if self.beta is None else self.beta,
                       slice_filters=(32 if measured and box else 0) if self.slice_filters is None else self.slice_filters,
                       slice_radius=self.slice_radius or default_slice_radius(box),
                       regions=0 if self.regions is None else self.regions)

    def build_model(self, D: int, n_particles: int) -> HeterogeneousModel:
        """The model this configuration describes, for ``n_particles`` images of box ``D``."""
        from .latents import ClassTable, Encoder, LatentTable, SliceFilters
        from .poses import KnownPoses, PoseTable

        source = self.latent_source if self.zdim else None
        latents = decoder = None  # the latents first: runs keep the initial weights a seed gave them before
        if source == "table":
            latents = LatentTable(n_particles, self.zdim, seed=self.seed)
        elif source == "class":  # zdim classes, one-hot (ab initio's classes: cryonb.core.abinit)
            latents = ClassTable(n_particles, self.zdim, seed=self.seed)
        elif source == "encoder":
            coords = HalfPlane.build(D).coords
            pixels = torch.nonzero(coords[:, :2].norm(dim=-1) <= self.enc_radius * (D // 2)).squeeze(1)
            radius = min(self.slice_radius or default_slice_radius(D), D // 2)
            slices = SliceFilters(coords, self.slice_filters, radius) if self.slice_filters else None
            from .region_features import feature_count

            latents = Encoder(pixels, self.zdim, self.enc_width, self.enc_depth, self.residual, self.phase_flip, slices,
                              feature_count(self.regions) if self.regions else 0, n_particles, self.region_input,
                              self.region_weight > 0)
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
                              self.seed, self.residual, self.pe_sigma, self.decoder_init == "joint")


# From this box up, the GPU defaults draw the decoder's first layer as one, average the encoder, train without the
# KL term and reach further with the slice filters
LARGE_BOX = 128


def default_slice_radius(box: int | None) -> int:
    """The slice filters' reach in pixels of frequency when none is given: 32 from LARGE_BOX up, else 16."""
    return 32 if (box or 0) >= LARGE_BOX else 16


SCHEDULES = ("constant", "cosine")
LATENT_SOURCES = ("encoder", "table", "gradient", "class")
POSE_SOURCES = ("known", "table")
DECODERS = ("mlp", "gmm")
# The settings that name one of a few choices (None: the device's default), checked by validate().
CHOICES = {"lr_schedule": (None, *SCHEDULES), "cache_dtype": CACHE_DTYPES, "decoder_init": (None, "split", "joint"),
           "shuffle": ("full", "chunked"), "latents": (None, *LATENT_SOURCES), "poses": POSE_SOURCES, "decoder": DECODERS}
# Keys added after the first release, with the value that runs written before them used.
LEGACY_DEFAULTS = {"residual": False, "pe_sigma": math.pi / 2, "lr_schedule": "constant", "decoder_init": "split",
                   "encoder_average": 0.0, "slice_filters": 0, "slice_radius": 16, "fused_optimizer": False,
                   "regions": 0}
