"""A map as a sum of isotropic 3D Gaussians: real-space rendering and its analytic Fourier transform.

Conventions are cryonb's (:mod:`cryonb.core.fourier`, :mod:`cryonb.core.projection`): positions are
(x, y, z) in pixels from the box centre (index ``D // 2``), frequencies (kx, ky, kz) in pixels of
frequency of a ``D`` box, and the transform is the centred DFT ``F(k) = Σ_x V(x) exp(-2πi k·x / D)``.
A Gaussian of peak ``a`` and width ``σ`` (pixels) at ``p`` has, up to aliasing, the transform
``a (2πσ²)^{3/2} exp(-2π²σ²|k|²/D²) exp(-2πi k·p/D)``, so the central slice of the mixture at any
rotation (the frequencies ``[kx, ky, 0] @ R``) is exact, with no interpolation.

:func:`mixture_transform` evaluates ``B × P`` frequencies against ``N`` Gaussians in chunks with an
analytic backward pass, so memory stays bounded by one chunk of ``(B, P, N)`` phases; phases are
always computed in float32 (bfloat16 would lose them: they reach ``πD/2`` radians).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

#: Elements of the ``(B, P, N)`` phase array computed at once (about 64 MB per float32 temporary).
CHUNK_ELEMENTS = 2**24


def _chunk_rows(B: int, P: int, N: int, chunk_elements: int) -> int:
    return max(1, min(P, chunk_elements // max(1, B * N)))


def _terms(coords, positions, amplitudes, widths, D: int):
    """Phases ``u = 2π k·p/D`` and envelopes ``e = A exp(-2π²σ²|k|²/D²)`` (B, p, N) of one chunk."""
    u = torch.bmm(coords, positions.transpose(1, 2)) * (2 * math.pi / D)
    k2 = coords.pow(2).sum(-1, keepdim=True)  # (B, p, 1)
    c = 2 * math.pi**2 / D**2
    mass = amplitudes * (2 * math.pi * widths.pow(2)) ** 1.5  # (B, N)
    damp = torch.exp(-c * k2 * widths.pow(2)[:, None, :])
    return u, damp, mass


class _MixtureTransform(torch.autograd.Function):
    """``F(k) = Σ_n e_n(k) exp(-i u_n(k))``, forward and backward in chunks of frequencies."""

    @staticmethod
    def forward(ctx, coords, positions, amplitudes, widths, D, chunk_elements):
        B, P, _ = coords.shape
        N = positions.shape[1]
        rows = _chunk_rows(B, P, N, chunk_elements)
        real = coords.new_empty(B, P)
        imag = coords.new_empty(B, P)
        for s in range(0, P, rows):
            u, damp, mass = _terms(coords[:, s : s + rows], positions, amplitudes, widths, D)
            e = damp * mass[:, None, :]
            real[:, s : s + rows] = (e * torch.cos(u)).sum(-1)
            imag[:, s : s + rows] = -(e * torch.sin(u)).sum(-1)
        ctx.save_for_backward(coords, positions, amplitudes, widths)
        ctx.D, ctx.rows = D, rows
        return torch.complex(real, imag)

    @staticmethod
    def backward(ctx, grad):
        coords, positions, amplitudes, widths = ctx.saved_tensors
        D, rows = ctx.D, ctx.rows
        need = ctx.needs_input_grad
        gr, gi = grad.real.float(), grad.imag.float()
        g_pos = torch.zeros_like(positions) if need[1] else None
        g_de = torch.zeros_like(amplitudes)  # Σ_k dL/de · damp  (B, N)
        g_sig = torch.zeros_like(widths)  # Σ_k dL/de · damp · |k|²
        g_k = torch.zeros_like(coords) if need[0] else None
        c = 2 * math.pi**2 / D**2
        for s in range(0, coords.shape[1], rows):
            k = coords[:, s : s + rows]
            u, damp, mass = _terms(k, positions, amplitudes, widths, D)
            cos, sin = torch.cos(u), torch.sin(u)
            a, b = gr[:, s : s + rows, None], gi[:, s : s + rows, None]
            de = (a * cos - b * sin) * damp  # dL/de / mass  (B, p, N)
            du = -(a * sin + b * cos) * damp * mass[:, None, :]  # dL/du
            k2 = k.pow(2).sum(-1)  # (B, p)
            g_de += de.sum(1)
            g_sig += torch.bmm(k2[:, None, :], de)[:, 0]
            if g_pos is not None:
                g_pos += torch.bmm(du.transpose(1, 2), k) * (2 * math.pi / D)
            if g_k is not None:
                g_k[:, s : s + rows] = torch.bmm(du, positions) * (2 * math.pi / D) - 2 * c * k * torch.bmm(
                    de * mass[:, None, :], widths.pow(2)[:, :, None])
        # e = a (2πσ²)^{3/2} exp(-cσ²k²): de/da = e/a, de/dσ = e (3/σ - 2cσk²)
        norm = (2 * math.pi * widths.pow(2)) ** 1.5
        g_amp = g_de * norm if need[2] else None
        g_wid = mass * (3 / widths * g_de - 2 * c * widths * g_sig) if need[3] else None
        return g_k, g_pos, g_amp, g_wid, None, None


def mixture_transform(coords: torch.Tensor, positions: torch.Tensor, amplitudes: torch.Tensor, widths: torch.Tensor,
                      D: int, chunk_elements: int = CHUNK_ELEMENTS) -> torch.Tensor:
    """Complex transform (B, P) at frequencies ``coords`` (B, P, 3) of mixtures (B, N, ·).

    ``positions`` (B, N, 3), ``amplitudes`` (B, N) and ``widths`` (B, N) may require gradients
    (so may ``coords``, for pose refinement). Runs in float32 whatever the autocast state.
    """
    with torch.autocast(coords.device.type, enabled=False):
        return _MixtureTransform.apply(coords.float(), positions.float(), amplitudes.float(), widths.float(), D,
                                       chunk_elements)


def render(positions: torch.Tensor, amplitudes: torch.Tensor, widths: torch.Tensor, D: int) -> torch.Tensor:
    """Real-space maps (B, D, D, D) of mixtures (B, N, ·): ``Σ_n a_n exp(-|x - p_n|²/2σ_n²)``.

    Separable: each Gaussian is the product of three 1D profiles, so a map is one (D, N) × (N, D²)
    matrix product (N·D³ multiply-adds, batched over B).
    """
    x = torch.arange(D, device=positions.device, dtype=torch.float32) - D // 2
    prof = torch.exp(-(x[None, None, :, None] - positions.float()[..., None, :]).pow(2)
                     / (2 * widths.float()[:, :, None, None] ** 2))  # (B, N, D, 3): profiles along x, y, z
    gx, gy, gz = prof[..., 0], prof[..., 1], prof[..., 2]
    plane = (amplitudes.float()[:, :, None, None] * gy[:, :, :, None] * gx[:, :, None, :]).flatten(2)  # (B, N, D²)
    return torch.bmm(gz.transpose(1, 2), plane).reshape(-1, D, D, D)


@dataclass
class GaussianMixture:
    """``N`` isotropic Gaussians: ``positions`` (N, 3) pixels from the box centre (x, y, z),
    ``amplitudes`` (N,) peak densities, ``widths`` (N,) standard deviations in pixels, for a ``D`` box
    of pixel size ``apix`` Å."""

    positions: torch.Tensor
    amplitudes: torch.Tensor
    widths: torch.Tensor
    D: int
    apix: float = 1.0

    def __post_init__(self):
        self.positions = torch.as_tensor(self.positions, dtype=torch.float32).reshape(-1, 3)
        n = len(self.positions)
        self.amplitudes = torch.as_tensor(self.amplitudes, dtype=torch.float32).reshape(n)
        self.widths = torch.as_tensor(self.widths, dtype=torch.float32).reshape(n)
        self.D, self.apix = int(self.D), float(self.apix)

    def __len__(self) -> int:
        return len(self.positions)

    def to(self, device) -> GaussianMixture:
        return GaussianMixture(self.positions.to(device), self.amplitudes.to(device), self.widths.to(device), self.D, self.apix)

    @property
    def batched(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(positions (1, N, 3), amplitudes (1, N), widths (1, N)), the shapes the functions above take."""
        return self.positions[None], self.amplitudes[None], self.widths[None]

    def render(self) -> torch.Tensor:
        """The real-space map (D, D, D)."""
        return render(*self.batched, self.D)[0]

    def transform(self, coords: torch.Tensor) -> torch.Tensor:
        """The analytic transform at frequencies ``coords`` (..., 3) in pixels of frequency."""
        flat = coords.reshape(1, -1, 3).to(self.positions.device)
        return mixture_transform(flat, *self.batched, self.D)[0].reshape(coords.shape[:-1])

    def slices(self, rotations: torch.Tensor) -> torch.Tensor:
        """Centred transforms (B, D, D) of the projections at rotations (B, 3, 3), analytically."""
        from ..projection import plane_coordinates

        plane = plane_coordinates(self.D, device=self.positions.device).reshape(1, -1, 3)
        coords = plane @ rotations.to(self.positions.device, torch.float32)
        p, a, w = (t.expand(len(coords), *t.shape[1:]) for t in self.batched)
        return mixture_transform(coords, p, a, w, self.D).reshape(-1, self.D, self.D)

    def select(self, keep) -> GaussianMixture:
        keep = torch.as_tensor(keep, device=self.positions.device)
        return GaussianMixture(self.positions[keep], self.amplitudes[keep], self.widths[keep], self.D, self.apix)

    def save(self, path: str | os.PathLike) -> Path:
        """Write an ``.npz`` (positions, amplitudes, widths, box, apix), atomically."""
        from ..io.atomic import atomic_write

        path = Path(path)
        with atomic_write(path) as f:
            np.savez(f, positions=self.positions.cpu().numpy(), amplitudes=self.amplitudes.cpu().numpy(),
                     widths=self.widths.cpu().numpy(), box=np.int64(self.D), apix=np.float64(self.apix))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> GaussianMixture:
        """Read a file written by :meth:`save` (no pickles)."""
        from ..errors import InputError

        path = Path(path)
        fix = "pass a file written by GaussianMixture.save or cryonb gmm-fit"
        try:
            with np.load(path, allow_pickle=False) as f:
                fields = {key: f[key] for key in ("positions", "amplitudes", "widths", "box", "apix")}
        except FileNotFoundError:
            raise InputError(path, "file not found", fix) from None
        except (OSError, ValueError, KeyError) as err:
            raise InputError(path, f"not a Gaussian mixture file ({type(err).__name__})", fix) from None
        pos = np.asarray(fields["positions"], dtype=np.float32)
        n = pos.shape[0] if pos.ndim == 2 else -1
        if pos.ndim != 2 or pos.shape[1] != 3 or fields["amplitudes"].shape != (n,) or fields["widths"].shape != (n,):
            raise InputError(path, f"inconsistent shapes (positions {pos.shape}, amplitudes {fields['amplitudes'].shape}, "
                             f"widths {fields['widths'].shape})", fix)
        arrays = [pos, fields["amplitudes"], fields["widths"]]
        if not all(np.isfinite(a).all() for a in arrays) or not (fields["widths"] > 0).all():
            raise InputError(path, "holds non-finite values or non-positive widths", fix)
        return cls(*(torch.from_numpy(np.asarray(a, dtype=np.float32)) for a in arrays), int(fields["box"]), float(fields["apix"]))
