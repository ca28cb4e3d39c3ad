"""The contrast transfer function of the microscope.

Parameters follow RELION/CTFFIND: defocus in Å (positive is underfocus), astigmatism angle and
phase shift in degrees, voltage in kV, spherical aberration in mm, amplitude contrast as a
fraction, B-factor in Å². Per-particle parameters are stored as ``(N, 8)`` arrays in the order
:data:`CTF_COLUMNS`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .fourier import frequency_grid

#: Column order of per-particle CTF parameter arrays (N, 8).
CTF_COLUMNS = (
    "defocus_u",
    "defocus_v",
    "defocus_angle",
    "voltage",
    "cs",
    "amplitude_contrast",
    "phase_shift",
    "bfactor",
)


def electron_wavelength(voltage_kv):
    """Relativistic electron wavelength in Å for an accelerating voltage in kV."""
    v = voltage_kv * 1e3
    sqrt = torch.sqrt if isinstance(v, torch.Tensor) else np.sqrt
    return 12.2643247 / sqrt(v * (1 + v * 0.978466e-6))


def compute_ctf(
    freqs: torch.Tensor,
    defocus_u,
    defocus_v,
    defocus_angle,
    voltage,
    cs,
    amplitude_contrast,
    phase_shift=0.0,
    bfactor=0.0,
) -> torch.Tensor:
    """CTF at spatial frequencies ``freqs`` (..., 2) in 1/Å, ordered (x, y).

    Parameters broadcast against ``freqs[..., 0]`` (use shape (B, 1, 1) for a batch of images).
    ``CTF = sqrt(1 - w²) sin(γ) - w cos(γ)`` with ``γ = 2π(-½ Δf(θ) λ s² + ¼ Cs λ³ s⁴) - φ``
    (so that ``CTF(0) = -w`` for φ = 0) and a B-factor envelope ``exp(-B s² / 4)``.
    """
    lam = electron_wavelength(torch.as_tensor(voltage, dtype=torch.float64)).to(freqs.dtype)
    cs_a = torch.as_tensor(cs, dtype=freqs.dtype) * 1e7
    x, y = freqs[..., 0], freqs[..., 1]
    s2 = x * x + y * y
    angle = torch.atan2(y, x)
    dfu = torch.as_tensor(defocus_u, dtype=freqs.dtype)
    dfv = torch.as_tensor(defocus_v, dtype=freqs.dtype)
    ast = torch.as_tensor(defocus_angle, dtype=freqs.dtype) * (math.pi / 180)
    defocus = 0.5 * (dfu + dfv + (dfu - dfv) * torch.cos(2 * (angle - ast)))
    phase = torch.as_tensor(phase_shift, dtype=freqs.dtype) * (math.pi / 180)
    gamma = 2 * math.pi * (-0.5 * defocus * lam * s2 + 0.25 * cs_a * lam**3 * s2 * s2) - phase
    w = torch.as_tensor(amplitude_contrast, dtype=freqs.dtype)
    ctf = torch.sqrt(1 - w * w) * torch.sin(gamma) - w * torch.cos(gamma)
    b = torch.as_tensor(bfactor, dtype=freqs.dtype)
    return ctf * torch.exp(-b / 4 * s2)


def particle_ctf(params: torch.Tensor | None, freqs: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """The CTF (B, P) at ``freqs`` (P, 2) of the particles at ``idx``, from their parameters (N, 8)
    on the device; a scalar 1 when the set has no CTF."""
    if params is None:
        return torch.ones((), device=freqs.device)
    return compute_ctf(freqs, *params[idx][:, :, None].unbind(1))


def ctf_images(params, D: int, apix: float, device=None) -> torch.Tensor:
    """CTF images (B, D, D) in the centred layout for per-particle parameters (B, 8)."""
    p = torch.as_tensor(np.asarray(params) if not isinstance(params, torch.Tensor) else params, dtype=torch.float32, device=device)
    p = p.reshape(-1, len(CTF_COLUMNS))[:, :, None, None]
    freqs = frequency_grid(D, 2, apix, device=p.device)
    return compute_ctf(freqs, *p.unbind(1))


def first_zero(defocus: float, voltage: float, cs: float, amplitude_contrast: float, phase_shift: float = 0.0) -> float:
    """Spatial frequency (1/Å) of the first CTF zero beyond s = 0, for an isotropic defocus (closed form).

    The CTF vanishes where ``γ(s) = atan(w / sqrt(1 - w²)) + mπ`` for an integer m; with u = s²,
    γ is a quadratic in u, so each m gives at most two roots. The smallest positive one wins
    (near focus, where the Cs term turns γ upwards first, it can come from m ≥ 0).
    """
    lam = float(electron_wavelength(voltage))
    a, b = 0.25 * cs * 1e7 * lam**3, -0.5 * defocus * lam  # γ / 2π + φ / 2π = a u² + b u
    w = amplitude_contrast
    offset = math.atan2(w, math.sqrt(1 - w * w)) + math.radians(phase_shift)
    roots = []
    for m in range(-64, 65):
        target = (offset + m * math.pi) / (2 * math.pi)
        if a == 0:
            roots.append(target / b if b else -1.0)
            continue
        disc = b * b + 4 * a * target
        if disc >= 0:
            roots += [(-b - math.sqrt(disc)) / (2 * a), (-b + math.sqrt(disc)) / (2 * a)]
    positive = [u for u in roots if u > 1e-12]
    if not positive:
        raise ValueError("no CTF zero found")
    return math.sqrt(min(positive))
