"""A trained model with its latents and particles: what analysis and the explorer work on.

A :class:`Run` comes from a run folder written by ``cryonb train`` or ``Trainer(run_dir=...)``
(``Run.open``), or from a trainer in memory (``Run.from_trainer``).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import InputError
from .model import HeterogeneousModel
from .checkpoints import INTERRUPTED, find_checkpoint, first_line, read_run_config
from .training import TrainConfig, Trainer, resolve_device


@dataclass
class Run:
    """Latents ``z`` (N, zdim) of ``particles`` and the model that generates a map for any z."""

    model: HeterogeneousModel
    scale: float
    apix: float
    z: np.ndarray | None
    particles: object | None = None
    config: TrainConfig | None = None
    run_dir: Path | None = None

    @classmethod
    def from_trainer(cls, trainer: Trainer) -> Run:
        z = trainer.embed() if trainer.config.zdim else None
        return cls(trainer.model, trainer.data.scale, trainer.data.apix, z, trainer.particles, trainer.config, trainer.run_dir)

    @classmethod
    def open(cls, run_dir: str | os.PathLike, particles=None, device: str = "auto", *, epoch: int | None = None) -> Run:
        """Load a run folder: config, the latest checkpoint's weights, and ``z.npy`` if present.

        Without ``z.npy`` the latents are computed from the particles (``particles``, or the file
        recorded in the run's config). A cryoDRGN run folder (or its ``analyze.N``) opens through
        :func:`~cryonb.core.interop.open_cryodrgn_run`, at ``epoch`` (default: the latest saved).
        """
        run_dir = Path(run_dir)
        from .interop.cryodrgn_runs import is_cryodrgn_run, open_cryodrgn_run
        from .share import is_bundle, open_bundle

        if is_cryodrgn_run(run_dir):
            return open_cryodrgn_run(run_dir, epoch, particles, device=device)
        if epoch is not None:
            raise InputError(run_dir, "epoch= chooses an epoch of a cryoDRGN run; this is a cryonb run",
                             "open it without epoch= (cryonb keeps the latest checkpoint)")
        if is_bundle(run_dir):  # a folder written by cryonb share: decoder, latents, metadata
            return open_bundle(run_dir).run
        meta = read_run_config(run_dir)
        config = TrainConfig.from_dict(meta["config"])
        found = find_checkpoint(run_dir)
        if found is None:
            raise InputError(run_dir, "the run has no checkpoint yet", "train it for at least one epoch first")
        path, state = found
        if (run_dir / INTERRUPTED).exists():
            warnings.warn(f"{run_dir}: {(run_dir / INTERRUPTED).read_text(errors='replace').strip()}", stacklevel=2)
        model = config.build_model(meta["box"], meta["n_particles"])
        try:
            model.load_state_dict(state["model"])
        except (RuntimeError, KeyError, ValueError, TypeError) as err:
            raise InputError(path, f"checkpoint does not fit the run's config.json ({first_line(err)})",
                             "open it with the config.json it was written with, or train the run again") from None
        model.to(resolve_device(device)).eval()
        z = None
        if config.zdim:
            z_path = run_dir / "z.npy"
            if z_path.exists():
                z = _load_latents(z_path)
            else:
                z = Trainer.from_run(run_dir, particles).embed()
            if z.shape != (meta["n_particles"], config.zdim):
                raise InputError(z_path, f"latents have shape {z.shape}, expected ({meta['n_particles']}, {config.zdim})",
                                 "delete z.npy so that it is computed again from the checkpoint")
        return cls(model, float(state["scale"]), float(meta["apix"]), z, particles, config, run_dir)

    @property
    def box_size(self) -> int:
        return self.model.decoder.D

    @property
    def zdim(self) -> int:
        return self.model.zdim

    def check_latents(self, z) -> np.ndarray:
        """``z`` as a float32 array (B, zdim), or a clear error naming the expected shape."""
        z = np.asarray(z, dtype=np.float32)
        if z.ndim == 1:
            z = z[None]
        if z.ndim != 2 or z.shape[1] != self.zdim:
            raise InputError(None, f"latents must have shape (B, {self.zdim}) for this run, got {z.shape}",
                             f"pass points of the run's {self.zdim}-dimensional latent space")
        if not np.isfinite(z).all():
            raise InputError(None, "latents contain NaN or infinite values", "pass finite latent coordinates")
        return z

    @torch.no_grad()
    def volumes(self, z=None) -> np.ndarray:
        """Maps (B, D, D, D) for latents (B, zdim); one map for a homogeneous run."""
        zt = None if not self.zdim else torch.from_numpy(self.check_latents(z))
        return (self.model.decoder.volumes(zt) * self.scale).cpu().numpy()

    def share(self, out: str | os.PathLike, **options):
        """Write this run as a bundle that explores it without the particle stack; see :func:`cryonb.core.share.share`."""
        from .interop.cryodrgn_runs import CryodrgnRunConfig
        from .share import share

        if isinstance(self.config, CryodrgnRunConfig):
            raise InputError(self.run_dir, "a cryoDRGN run cannot be shared as a bundle yet (a bundle rebuilds a cryonb decoder)",
                             "share its maps and selections (write_volumes, the explorer's Save), or train a cryonb run "
                             "on its particles: cryonb.core.interop.particles_from_cryodrgn_run")
        return share(self, out, **options)

    def write_volumes(self, z, outdir: str | os.PathLike, prefix: str = "vol") -> list[Path]:
        """Write one MRC per latent, ``<outdir>/<prefix>_000.mrc`` …, with the run's pixel size."""
        from .io.mrc import write_map

        outdir = Path(outdir)
        outdir.mkdir(parents=True, exist_ok=True)
        paths = []
        for i, volume in enumerate(self.volumes(z)):
            paths.append(outdir / f"{prefix}_{i:03d}.mrc")
            write_map(paths[-1], volume, self.apix)
        return paths


def _load_latents(path: Path) -> np.ndarray:
    """``z.npy`` as a float array, or an :class:`InputError` saying what is wrong with it."""
    fix = "delete z.npy so that it is computed again from the checkpoint"
    try:
        z = np.load(path, allow_pickle=False)
    except ValueError as err:
        problem = ("holds Python objects, not numbers" if "Object arrays" in str(err)
                   else f"is not a readable .npy array ({first_line(err)})")
        raise InputError(path, problem, fix) from None
    except (OSError, EOFError) as err:
        raise InputError(path, f"is not a readable .npy array ({first_line(err)})", fix) from None
    if not isinstance(z, np.ndarray) or not np.issubdtype(z.dtype, np.number) or np.issubdtype(z.dtype, np.complexfloating):
        raise InputError(path, f"holds {getattr(z, 'dtype', type(z).__name__)} values, not real numbers", fix)
    if z.ndim == 2 and not np.isfinite(z).all():
        raise InputError(path, "latents contain NaN or infinite values", fix)
    return z.astype(np.float32, copy=False)
