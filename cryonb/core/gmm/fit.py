"""Fitting a neutral Gaussian mixture to a map, progressively (as in e2gmm, Chen & Ludtke 2021).

Start with few wide Gaussians at low resolution (256 at 50 Å), then double their number and the
target resolution stage by stage; each stage optimises (Adam with warm restarts, on the map's device) the mixture's
analytic transform against the map's inside the stage's resolution sphere, each Fourier shell
weighted by the inverse of its power so that every shell counts alike, and stops once the FSC
between the mixture's rendering and the map is at least ``threshold`` (0.95) at every shell below
the stage's resolution. New Gaussians are seeded next to existing ones (each one splits in two);
Gaussians whose centre leaves the mask, or whose amplitude fades to nothing, are dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..adam import AdamW
from ..errors import InputError
from ..fourier import fft3_center
from ..fsc import fsc
from .mixture import GaussianMixture, mixture_transform

MIN_WIDTH = 0.5  # pixels: narrower Gaussians alias in a D box


@dataclass
class FitStage:
    """One stage: its Gaussians, resolution (Å), steps taken and the lowest FSC below that resolution."""

    n_gaussians: int
    resolution: float
    steps: int
    loss: float
    min_fsc: float
    reached: bool


@dataclass
class FitResult:
    """The fitted mixture, the stages that made it and the final FSC against the map (per shell)."""

    mixture: GaussianMixture
    stages: list[FitStage] = field(default_factory=list)
    fsc: np.ndarray | None = None
    frequencies: np.ndarray | None = None  # 1/Å of each FSC shell

    def resolution(self, threshold: float = 0.95) -> float:
        """The resolution (Å) up to which the mixture's FSC against the map stays at or above ``threshold``."""
        below = np.flatnonzero(self.fsc < threshold)
        last = (below[0] if below.size else len(self.fsc)) - 1
        return float("inf") if last <= 0 else float(1 / self.frequencies[last])


def auto_mask(volume: torch.Tensor, level: float = 0.05, dilate: int = 2) -> torch.Tensor:
    """Voxels where the map exceeds ``level`` × its maximum, grown by ``dilate`` pixels (bool, D³)."""
    inside = volume > level * volume.max()
    if dilate:
        inside = F.max_pool3d(inside[None, None].float(), 2 * dilate + 1, stride=1, padding=dilate)[0, 0] > 0
    return inside


def _inside(mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    D = mask.shape[-1]
    idx = (positions.round() + D // 2).long()
    ok = ((idx >= 0) & (idx < D)).all(-1)
    idx = idx.clamp(0, D - 1)
    return ok & mask[idx[:, 2], idx[:, 1], idx[:, 0]]


def _seed(volume: torch.Tensor, mask: torch.Tensor, n: int, width: float, g: torch.Generator) -> GaussianMixture:
    """``n`` Gaussians at voxels drawn with probability ∝ positive density inside the mask."""
    D = volume.shape[-1]
    weights = (volume.clamp(min=0) * mask).flatten().double().cpu()
    if weights.sum() <= 0:
        raise InputError(None, "the map has no positive density inside the mask", "check the map's sign and the mask")
    idx = torch.multinomial(weights, n, replacement=bool(weights.count_nonzero() < n), generator=g)
    zyx = torch.stack([idx // D**2, (idx // D) % D, idx % D], -1).float() - D // 2
    positions = zyx.flip(-1) + (torch.rand(n, 3, generator=g) - 0.5)
    mass = float(volume.clamp(min=0).sum()) / n
    amplitude = mass / (2 * math.pi * width**2) ** 1.5
    return GaussianMixture(positions, torch.full((n,), amplitude), torch.full((n,), width), D)


def _split(m: GaussianMixture, g: torch.Generator) -> GaussianMixture:
    """Each Gaussian becomes two at half its amplitude, the new one half a width away in a random direction."""
    jitter = torch.randn(len(m), 3, generator=g).to(m.positions.device) * m.widths[:, None] * 0.5
    return GaussianMixture(torch.cat([m.positions, m.positions + jitter]), torch.cat([m.amplitudes, m.amplitudes]) / 2,
                           torch.cat([m.widths, m.widths]), m.D, m.apix)


class _Target:
    """The map's transform on the half-space of frequencies, with per-shell weights."""

    def __init__(self, volume: torch.Tensor):
        D = volume.shape[-1]
        k = torch.arange(D, device=volume.device, dtype=torch.float32) - D // 2
        grid = torch.stack(torch.meshgrid(k, k, k, indexing="ij")[::-1], dim=-1).reshape(-1, 3)
        r = grid.norm(dim=-1)
        x, y, z = grid.unbind(-1)
        half = (r <= D // 2) & ((z > 0) | ((z == 0) & ((y > 0) | ((y == 0) & (x >= 0)))))
        self.coords = grid[half]
        self.values = fft3_center(volume).reshape(-1)[half]
        self.radius = r[half]
        shells = self.radius.round().long()
        power = torch.bincount(shells, weights=self.values.abs().pow(2), minlength=D // 2 + 1)
        self.weights = 1 / power.clamp(min=power.max() * 1e-12)[shells]

    def within(self, radius: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        keep = self.radius.round() <= radius
        w = self.weights[keep]
        return self.coords[keep], self.values[keep], w / (self.radius[keep].round().unique().numel())


def fit_mixture(volume, apix: float = 1.0, *, resolution: float | None = None, n_start: int = 256,
                start_resolution: float = 50.0, max_gaussians: int = 16384, threshold: float = 0.95,
                steps: int = 600, check_every: int = 50, lr: float = 0.05, points_per_step: int = 2**16,
                mask=None, device=None, seed: int = 0, progress: bool | None = None) -> FitResult:
    """Fit a Gaussian mixture to ``volume`` (D, D, D) of pixel size ``apix`` Å (see the module docstring).

    ``resolution``: the final target in Å (default: Nyquist, ``2 * apix``). Each stage runs at most
    ``steps`` Adam steps on at most ``points_per_step`` random frequencies of its sphere; after the
    last resolution is reached, Gaussians keep doubling (up to ``max_gaussians``) until the FSC
    criterion holds. ``mask`` (D, D, D) bool: where Gaussians may stay (default: :func:`auto_mask`).
    """
    from tqdm.auto import tqdm

    volume = torch.as_tensor(np.asarray(volume) if not isinstance(volume, torch.Tensor) else volume, dtype=torch.float32)
    if volume.ndim != 3 or len(set(volume.shape)) != 1:
        raise InputError(None, f"the map must be cubic (D, D, D), got shape {tuple(volume.shape)}", "pass a cubic map")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    volume = volume.to(device)
    D = volume.shape[-1]
    nyquist = 2 * apix
    resolution = max(resolution or nyquist, nyquist)
    mask = auto_mask(volume) if mask is None else torch.as_tensor(np.asarray(mask), dtype=torch.bool, device=device)
    g = torch.Generator().manual_seed(seed)
    target = _Target(volume)
    res = max(start_resolution, resolution)
    mixture = _seed(volume, mask, min(n_start, max_gaussians), max(MIN_WIDTH, 0.2 * res / apix), g).to(device)
    result = FitResult(mixture)
    bar = tqdm(unit="step", desc="fitting Gaussians", disable=None if progress is None else not progress)
    while True:
        # drop Gaussians outside the mask or faded away, then fit (not the other way: the fit must see the final set)
        keep = _inside(mask, mixture.positions) & (mixture.amplitudes.abs() > 1e-3 * mixture.amplitudes.abs().max())
        mixture, stage = _fit_stage(mixture.select(keep), target, volume, apix, res, threshold, steps, check_every, lr,
                                    points_per_step, g, bar)
        result.stages.append(stage)
        done_res = res <= resolution
        if done_res and (stage.reached or 2 * len(mixture) > max_gaussians):
            break
        res = max(res / 2, resolution)
        if 2 * len(mixture) <= max_gaussians:
            mixture = _split(mixture, g)
    bar.close()
    curve = fsc(mixture.render(), volume, apix=apix)
    result.mixture = GaussianMixture(mixture.positions.cpu(), mixture.amplitudes.cpu(), mixture.widths.cpu(), D, apix)
    result.fsc, result.frequencies = curve.values, curve.frequencies
    return result


def _min_fsc(mixture: GaussianMixture, volume, apix: float, radius: float) -> float:
    values = fsc(mixture.render(), volume, apix=apix).values
    return float(values[: int(math.floor(radius)) + 1].min())


def _fit_stage(mixture, target, volume, apix, res, threshold, steps, check_every, lr, points_per_step, g, bar):
    D = volume.shape[-1]
    radius = D * apix / res
    coords, values, weights = target.within(radius)
    scale = float(mixture.amplitudes.abs().max())
    pos = mixture.positions.clone().requires_grad_()
    amp = (mixture.amplitudes / scale).clone().requires_grad_()
    logw = mixture.widths.log().clone().requires_grad_()
    opt = AdamW([{"params": [pos], "lr": lr * 2.5}, {"params": [amp, logw], "lr": lr}], weight_decay=0.0)  # Adam
    n_points = min(len(coords), points_per_step)
    cycle = 2 * check_every
    loss_value, best, step = float("nan"), -1.0, 0

    def current():
        return GaussianMixture(pos.detach(), amp.detach() * scale, logw.detach().exp(), D, apix)

    for step in range(1, steps + 1):
        phase = (step - 1) % cycle
        if step > 1 and phase == 0:  # warm restart: fresh moments (a stuck fit gets moving again)
            opt.state.clear()
        for group, base in zip(opt.param_groups, (lr * 2.5, lr)):  # each cycle decays linearly to a tenth
            group["lr"] = base * (1 - 0.9 * phase / cycle)
        pick = torch.randperm(len(coords), generator=g)[:n_points].to(coords.device) if n_points < len(coords) else slice(None)
        pred = mixture_transform(coords[pick][None], pos[None], amp[None] * scale, logw.exp()[None], D)[0]
        loss = ((pred - values[pick]).abs().pow(2) * weights[pick]).sum() * (len(coords) / n_points)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            logw.clamp_(math.log(MIN_WIDTH), math.log(D / 4))
            pos.clamp_(-(D // 2), D - D // 2 - 1)
        loss_value = float(loss.detach())
        bar.update(1)
        if step % check_every == 0 or step == steps:
            best = _min_fsc(current(), volume, apix, radius)
            bar.set_postfix(gaussians=len(pos), resolution=f"{res:.1f} Å", fsc=f"{best:.3f}", refresh=False)
            if best >= threshold:
                break
    return current(), FitStage(len(pos), res, step, loss_value, best, best >= threshold)
