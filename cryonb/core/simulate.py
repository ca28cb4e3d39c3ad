"""Simulated particle images with known states, poses, shifts and CTFs.

The image of a particle is the projection of its map at a uniformly random rotation, multiplied
by a random CTF, translated by minus its shift (so that shifting by ``+shift`` re-centres it,
RELION's convention) and buried in Gaussian noise of variance ``signal variance / snr``, the
signal variance being that of all the clean images (as in the cryoDRGN paper's simulations).

Projections use the Fourier-slice theorem: a central slice of the map's transform, trilinearly
interpolated from a grid padded to 2D, costs O(D²) per image where a real-space projection
costs O(D³). Trilinear interpolation multiplies the map by the kernel's transform, sinc² per
axis on the padded grid, so the map is divided by it first; projections of Gaussian blobs then
match their analytic projections to about 1% of the peak.

Occupancies of ordered states (the hinge's 50 conformations, or any list of maps), as cryonb
defines them; ``t = k / (K - 1)`` is the position of state ``k`` of ``K`` along the motion:

- ``"uniform"``: every state equally populated.
- ``"cooperative"``: a bimodal distribution with the mass at both ends, as when the motion is
  a concerted two-state switch: ``p(t) ∝ exp(-t² / 2σ²) + exp(-(1 - t)² / 2σ²)``, σ = 0.1.
- ``"noncontiguous"``: a few non-adjacent states equally populated and the others empty:
  states 0, s, 2s, ... with ``s = max(2, K // 4)`` (0, 12, 24, 36, 48 of 50).

Particle counts per state are the exact allocation of ``n`` to the probabilities (largest
remainders), in random order, so the simulated populations are the requested ones.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .ctf import ctf_images
from .errors import InputError
from .fourier import fft3_center, ifft2_center
from .particles import ParticleSet
from .phantoms import assemblies, hinge_states
from .projection import plane_coordinates, sample_volume, shift_images_ft
from .rotations import random_rotations

MODELS = ("hinge", "mixture")
OCCUPANCIES = ("uniform", "cooperative", "noncontiguous")
_PAD = 2


@dataclass
class Simulation:
    """Simulated particles and their ground truth.

    ``state`` (N,) is each particle's map in ``volumes`` (K, D, D, D), named ``state_names``;
    ``reaction_coordinate`` (N,) its position along the heterogeneity (the hinge angle in
    radians; the state index for other maps). Poses, shifts and CTFs are in ``particles``.
    """

    particles: ParticleSet
    state: np.ndarray
    reaction_coordinate: np.ndarray
    volumes: torch.Tensor
    state_names: tuple[str, ...]
    snr: float | None

    def save(self, outdir: str | os.PathLike) -> dict[str, Path]:
        """Write particles.mrcs, particles.star (RELION 3.1), volumes/<state>.mrc and truth.npz."""
        from .io.atomic import atomic_write
        from .io.mrc import write_map, write_stack
        from .particles import write_star

        outdir = Path(outdir)
        (outdir / "volumes").mkdir(parents=True, exist_ok=True)
        p = self.particles
        paths = {"stack": outdir / "particles.mrcs", "star": outdir / "particles.star", "truth": outdir / "truth.npz"}
        write_stack(paths["stack"], p.images, p.apix)
        write_star(p, paths["star"], stack=paths["stack"])
        for name, volume in zip(self.state_names, self.volumes):
            write_map(outdir / "volumes" / f"{name}.mrc", volume, p.apix)
        with atomic_write(paths["truth"]) as f:
            np.savez(
                f,
                state=self.state,
                reaction_coordinate=self.reaction_coordinate,
                state_names=np.array(self.state_names),
                rotations=p.rotations,
                shifts=p.shifts,
                ctf=p.ctf,
                apix=p.apix,
                snr=np.nan if self.snr is None else self.snr,
            )
        paths["volumes"] = outdir / "volumes"
        return paths


def occupancy_probabilities(name: str, n_states: int) -> np.ndarray:
    """Probabilities (K,) of ``n_states`` ordered states for an occupancy name (see module doc)."""
    t = np.linspace(0.0, 1.0, n_states) if n_states > 1 else np.zeros(1)
    if name == "uniform":
        p = np.ones(n_states)
    elif name == "cooperative":
        p = np.exp(-(t**2) / (2 * 0.1**2)) + np.exp(-((1 - t) ** 2) / (2 * 0.1**2))
    elif name == "noncontiguous":
        p = np.zeros(n_states)
        p[:: max(2, n_states // 4)] = 1.0
    else:
        raise InputError(None, f"unknown occupancy {name!r}", f"use one of {', '.join(OCCUPANCIES)}")
    return p / p.sum()


def allocate(n: int, probabilities: np.ndarray) -> np.ndarray:
    """Counts (K,) summing to ``n`` closest to ``n * probabilities`` (largest remainders)."""
    exact = n * np.asarray(probabilities, dtype=np.float64)
    counts = np.floor(exact).astype(np.int64)
    counts[np.argsort(counts - exact, kind="stable")[: n - counts.sum()]] += 1
    return counts


def _float32(x) -> torch.Tensor:
    return x.float() if isinstance(x, torch.Tensor) else torch.tensor(np.asarray(x), dtype=torch.float32)


def _maps(model, D: int | None) -> tuple[torch.Tensor, tuple[str, ...], np.ndarray]:
    """(volumes (K, D, D, D), names, reaction coordinate of each state) for a model or maps."""
    if isinstance(model, str):
        D = D or 64
        if model == "hinge":
            volumes, angles = hinge_states(D)
            return volumes, tuple(f"state_{k:02d}" for k in range(len(volumes))), angles.numpy()
        if model == "mixture":
            maps = assemblies(D)
            return torch.stack(list(maps.values())), tuple(maps), np.arange(len(maps), dtype=np.float64)
        raise InputError(None, f"unknown model {model!r}", f"use one of {', '.join(MODELS)} or pass maps")
    if isinstance(model, Mapping):
        names, volumes = tuple(model), torch.stack([_float32(m) for m in model.values()])
    else:
        volumes = torch.stack([_float32(m) for m in model]) if isinstance(model, (list, tuple)) else _float32(model)
        volumes = volumes[None] if volumes.ndim == 3 else volumes
        names = tuple(f"state_{k:02d}" for k in range(len(volumes)))
    if volumes.ndim != 4 or len(set(volumes.shape[1:])) != 1 or (D is not None and volumes.shape[-1] != D):
        raise InputError(None, f"maps must be cubic, of box {D}, got shape {tuple(volumes.shape[1:])}", "pass maps (D, D, D) of one box size")
    return volumes, names, np.arange(len(volumes), dtype=np.float64)


def padded_transform(volume: torch.Tensor) -> torch.Tensor:
    """Transform of the map padded to 2D, pre-divided by the trilinear kernel's transform."""
    D = volume.shape[-1]
    size = _PAD * D
    kernel = torch.sinc((torch.arange(D, device=volume.device) - D // 2) / size) ** 2
    volume = volume / (kernel[:, None, None] * kernel[None, :, None] * kernel[None, None, :])
    before = size // 2 - D // 2
    return fft3_center(F.pad(volume, [before, size - D - before] * 3))


def project_fourier(volume_ft_padded: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """Centred transforms (B, D, D) of projections, sliced from ``padded_transform``'s output."""
    D = volume_ft_padded.shape[-1] // _PAD
    plane = plane_coordinates(D, device=rotations.device).reshape(-1, 3) * _PAD
    return sample_volume(volume_ft_padded, plane @ rotations).reshape(-1, D, D)


def simulate(
    model="hinge",
    n: int = 1000,
    *,
    D: int | None = None,
    apix: float = 3.0,
    snr: float | None = 0.1,
    occupancy: str = "uniform",
    proportions: Sequence[float] | None = None,
    defocus_range: tuple[float, float] = (10_000.0, 25_000.0),
    astigmatism: float = 300.0,
    voltage: float = 300.0,
    cs: float = 2.7,
    amplitude_contrast: float = 0.1,
    bfactor: float = 0.0,
    shift_sigma: float = 0.0,
    ctf: bool = True,
    seed: int = 0,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    progress: bool | None = None,
) -> Simulation:
    """Simulate ``n`` particle images of ``model``: "hinge", "mixture", or maps (K, D, D, D).

    ``D`` is the box of the phantoms (default 64); for maps it is their box (checked if given).

    ``"hinge"`` is the 50-state hinge motion over 1.5 rad, ``"mixture"`` the small subunit,
    large subunit and complex of :func:`cryonb.core.phantoms.assemblies`; maps may also be a
    list or a name -> map dict. States are populated by ``occupancy`` (see the module
    docstring) or by explicit ``proportions`` (K,). Defocus is uniform in ``defocus_range``
    (Å), with astigmatism (defocus U - V) uniform in [0, ``astigmatism``] Å at a uniform angle;
    shifts are Gaussian with ``shift_sigma`` pixels per axis. ``snr=None`` gives clean images,
    ``ctf=False`` images without CTF (the CTF table is still drawn and stored). The same
    ``seed`` gives the same bytes: every random number comes from one CPU generator.
    """
    volumes, names, coordinates = _maps(model, D)
    K, D = len(volumes), volumes.shape[-1]
    g = torch.Generator().manual_seed(seed)
    weights = occupancy_probabilities(occupancy, K) if proportions is None else np.asarray(proportions, dtype=np.float64)
    if weights.shape != (K,) or np.any(weights < 0) or weights.sum() <= 0:
        raise InputError(None, f"proportions must be {K} non-negative weights, got {list(np.ravel(weights))}", f"pass {K} proportions")
    counts = allocate(n, weights / weights.sum())
    state = np.repeat(np.arange(K), counts)[torch.randperm(n, generator=g).numpy()]
    rotations = random_rotations(n, g)
    shifts = torch.randn(n, 2, generator=g) * shift_sigma
    uniform = torch.rand(n, 3, generator=g, dtype=torch.float64)
    mean_defocus = defocus_range[0] + (defocus_range[1] - defocus_range[0]) * uniform[:, 0]
    delta = astigmatism * uniform[:, 1]
    ctf_params = torch.stack(
        [
            mean_defocus + delta / 2,
            mean_defocus - delta / 2,
            180.0 * uniform[:, 2],
            *(torch.full((n,), float(v), dtype=torch.float64) for v in (voltage, cs, amplitude_contrast, 0.0, bfactor)),
        ],
        dim=1,
    ).float()

    images = torch.empty(n, D, D)
    with tqdm(total=n, unit="img", desc="simulating", disable=None if progress is None else not progress) as bar:
        for k in range(K):
            members = torch.as_tensor(np.flatnonzero(state == k))
            if len(members) == 0:
                continue
            volume_ft = padded_transform(volumes[k].to(device))
            for batch in members.split(batch_size):
                images_ft = project_fourier(volume_ft, rotations[batch].to(device))
                if ctf:
                    images_ft = images_ft * ctf_images(ctf_params[batch], D, apix, device=device)
                images_ft = shift_images_ft(images_ft, -shifts[batch].to(device))
                images[batch] = ifft2_center(images_ft).real.cpu()
                bar.update(len(batch))
    if snr is not None:
        sigma = float(images.std()) / float(snr) ** 0.5
        for batch in torch.arange(n).split(batch_size):
            images[batch] += sigma * torch.randn(len(batch), D, D, generator=g)
    particles = ParticleSet(images.numpy(), rotations.numpy(), shifts.numpy(), ctf_params.numpy(), apix)
    return Simulation(particles, state, coordinates[state], volumes, names, snr)
