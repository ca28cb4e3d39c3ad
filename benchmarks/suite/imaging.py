"""Image formation for the benchmark suite, written apart from cryonb's simulator.

Geometry (RELION's): a particle with Euler angles (rot, tilt, psi) has the matrix
``A = Rz(psi) Ry(tilt) Rz(rot)``; an atom at ``p`` (Å, relative to the particle centre) lands
in the image at ``(A p)[:2]``, and the particle centre sits at ``-origin``, so that shifting
the image by ``+origin`` (rlnOriginX/YAngst) re-centres it. Image arrays are [y, x] with the
centre at pixel ``D // 2``; maps are [z, y, x].

Projections are computed in real space: each atom is a Gaussian of standard deviation
``sqrt(σ_atom² + (apix / 2)²)`` (the half pixel keeps it sampled), whose projection along z
is a 2D Gaussian, so an image is ``Gyᵀ diag(w) Gx`` with per-atom 1D Gaussian profiles Gx, Gy.

CTF (RELION's form): ``CTF = -(sqrt(1 - w²) sin χ + w cos χ)``,
``χ = π λ Δf(θ) s² - π/2 Cs λ³ s⁴`` with ``Δf(θ) = (U + V)/2 + (U - V)/2 cos 2(θ - θ_ast)``;
image = IFFT(CTF · FFT(projection)) on the box (circular). Noise: white Gaussian with
variance ``S / snr``, where S is the variance over the box of the noiseless CTF'd image,
averaged over all images of the dataset.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

VOLTAGE, CS, AMPLITUDE_CONTRAST = 300.0, 2.7, 0.1
NOISE_CHUNK = 1024  # noise is drawn per block of this many images, from (seed, 2, block)


def euler_to_matrix(rot, tilt, psi) -> np.ndarray:
    """RELION's matrices A = Rz(psi) Ry(tilt) Rz(rot) (N, 3, 3) for angles in degrees."""

    def rz(a):
        c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
        return np.stack([np.stack([c, s, z], -1), np.stack([-s, c, z], -1), np.stack([z, z, o], -1)], -2)

    def ry(a):
        c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
        return np.stack([np.stack([c, z, -s], -1), np.stack([z, o, z], -1), np.stack([s, z, c], -1)], -2)

    rot, tilt, psi = (np.radians(np.asarray(a, dtype=np.float64)) for a in (rot, tilt, psi))
    return rz(psi) @ ry(tilt) @ rz(rot)


def random_euler(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 3) Euler angles (rot, tilt, psi) in degrees, uniform over SO(3) (cos tilt uniform)."""
    rot = rng.uniform(-180.0, 180.0, n)
    tilt = np.degrees(np.arccos(rng.uniform(-1.0, 1.0, n)))
    psi = rng.uniform(-180.0, 180.0, n)
    return np.stack([rot, tilt, psi], 1)


def random_ctf(rng: np.random.Generator, n: int, defocus=(10_000.0, 25_000.0), astigmatism: float = 400.0) -> np.ndarray:
    """(n, 3) defocus U, V (Å) and astigmatism angle (degrees): U - V uniform in
    [0, ``astigmatism``], their mean uniform so that both lie in ``defocus``, angle uniform in [0, 180)."""
    mean = rng.uniform(defocus[0] + astigmatism / 2, defocus[1] - astigmatism / 2, n)
    delta = rng.uniform(0.0, astigmatism, n)
    return np.stack([mean + delta / 2, mean - delta / 2, rng.uniform(0.0, 180.0, n)], 1)


def wavelength(voltage_kv: float) -> float:
    """Relativistic electron wavelength (Å) from physical constants."""
    h, m, e, c = 6.62607015e-34, 9.1093837015e-31, 1.602176634e-19, 299792458.0
    v = voltage_kv * 1e3
    return h / math.sqrt(2 * m * e * v * (1 + e * v / (2 * m * c * c))) * 1e10


def ctf_values(kx, ky, defocus_u, defocus_v, angle, voltage=VOLTAGE, cs=CS, w=AMPLITUDE_CONTRAST):
    """CTF at frequencies (kx, ky) in 1/Å; defocus (Å) and angle (deg) broadcast (B, 1, 1)."""
    lam = wavelength(voltage)
    s2 = kx * kx + ky * ky
    safe = torch.where(s2 > 0, s2, torch.ones_like(s2))
    cos2, sin2 = (kx * kx - ky * ky) / safe, 2 * kx * ky / safe  # cos 2θ, sin 2θ of the direction θ
    du, dv, a = (torch.as_tensor(v, dtype=kx.dtype, device=kx.device) for v in (defocus_u, defocus_v, angle))
    a = a * (math.pi / 90)  # 2 θ_ast in radians
    defocus = (du + dv) / 2 + (du - dv) / 2 * (cos2 * torch.cos(a) + sin2 * torch.sin(a))
    chi = math.pi * lam * defocus * s2 - math.pi / 2 * cs * 1e7 * lam**3 * s2 * s2
    return -(math.sqrt(1 - w * w) * torch.sin(chi) + w * torch.cos(chi))


def apply_ctf(images: torch.Tensor, ctf: torch.Tensor, apix: float) -> torch.Tensor:
    """Images (B, D, D) multiplied in Fourier space by the CTFs of ``ctf`` (B, 3): U, V, angle."""
    D = images.shape[-1]
    dtype, device = torch.float64, images.device
    ky = torch.fft.fftfreq(D, d=apix, dtype=dtype, device=device)[:, None]
    kx = torch.fft.rfftfreq(D, d=apix, dtype=dtype, device=device)[None, :]
    p = ctf.to(device=device, dtype=dtype)[:, :, None, None]
    h = ctf_values(kx, ky, p[:, 0], p[:, 1], p[:, 2]).to(images.dtype)
    return torch.fft.irfft2(torch.fft.rfft2(images) * h, s=(D, D))


def _profiles(centres: torch.Tensor, sigma_px: torch.Tensor, D: int) -> torch.Tensor:
    """Gaussian profiles exp(-(g - c)² / 2σ²) on the pixel grid g, shape (..., D), zero beyond ~11σ
    (tails would be denormal floats, which are very slow on CPUs)."""
    g = torch.arange(D, device=centres.device, dtype=centres.dtype) - D // 2
    q = 0.5 * ((g - centres[..., None]) / sigma_px[..., None]) ** 2
    return torch.exp(-q.clamp(max=60.0)) * (q < 60.0)


def pixel_sigma(sigma: torch.Tensor | float, apix: float) -> torch.Tensor:
    """Per-atom σ in pixels: sqrt(σ_atom² + (apix / 2)²) / apix."""
    sigma = torch.as_tensor(sigma, dtype=torch.float32)
    return torch.sqrt(sigma**2 + (apix / 2) ** 2) / apix


def splat_images(coords, weights, sigma, rotations, shifts, D: int, apix: float) -> torch.Tensor:
    """Projections (B, D, D) of Gaussian atoms, analytic in real space.

    ``coords`` (M, 3) or (B, M, 3) Å, ``weights`` (M,) or (B, M), ``sigma`` (Å, scalar or
    like weights), ``rotations`` (B, 3, 3) RELION's A, ``shifts`` (B, 2) origin in pixels.
    Each atom integrates to its weight (pixel units). The image is ``Gyᵀ diag(w) Gx`` (one
    batched matrix product); the profiles Gx, Gy (B, M, D) are evaluated on a window of ±4σ
    around each atom and are zero beyond (exact to ~1e-4 of the atom's mass).
    """
    R = rotations.to(coords.dtype)
    B = len(R)
    coords = coords.expand(B, *coords.shape[-2:]) if coords.ndim == 2 else coords
    M = coords.shape[1]
    xy = (coords @ R.transpose(1, 2))[..., :2] / apix - shifts.to(coords.dtype)[:, None, :]
    s = pixel_sigma(sigma, apix).to(coords.device, coords.dtype).expand(B, M)
    amp = torch.as_tensor(weights, dtype=coords.dtype, device=coords.device).expand(B, M) / (2 * math.pi * s * s)
    half = int(math.ceil(4 * float(s.max()))) if s.numel() else 0
    pixel = torch.round(xy).long()[..., None] + torch.arange(-half, half + 1, device=coords.device)  # (B, M, 2, K)
    window = torch.exp(-0.5 * ((pixel - xy[..., None]) / s[..., None, None]) ** 2)
    index = pixel + D // 2
    window = window * ((index >= 0) & (index < D))
    profiles = torch.zeros(B, M, 2, D, device=coords.device, dtype=coords.dtype)
    profiles.scatter_add_(3, index.clamp(0, D - 1), window)
    gx, gy = profiles[:, :, 0] * amp[..., None], profiles[:, :, 1]
    return torch.bmm(gy.transpose(1, 2), gx)


def splat_volume(coords, weights, sigma, D: int, apix: float, chunk: int = 512, device=None) -> torch.Tensor:
    """Map (D, D, D) [z, y, x] of Gaussian atoms ``coords`` (M, 3) Å, sampled at voxel centres (on ``device``)."""
    coords = torch.as_tensor(coords, dtype=torch.float32, device=device)
    s = pixel_sigma(sigma, apix).to(coords.device).expand(len(coords))
    amp = torch.as_tensor(weights, dtype=torch.float32, device=coords.device).expand(len(coords)) / (2 * math.pi * s * s) ** 1.5
    p = coords / apix
    out = torch.zeros(D * D, D, device=coords.device)
    for i in range(0, len(coords), chunk):
        sl = slice(i, i + chunk)
        gx, gy, gz = (_profiles(p[sl, k], s[sl], D) for k in range(3))
        out += (gz[:, :, None] * gy[:, None, :]).reshape(len(gx), D * D).T @ (gx * amp[sl, None])
    return out.reshape(D, D, D)


def render_stack(path, n: int, D: int, apix: float, rotations, shifts, ctf, groups, *, snr, seed: int, device="cpu", progress=None, threads: int | None = 1) -> dict:
    """Write ``n`` images to the MRC stack ``path`` (memory-mapped, so memory stays bounded).

    ``groups``: (indices, atoms) pairs, ``atoms(batch_indices)`` returning (coords, weights,
    sigma) for those particles (see :func:`splat_images`). Pass 1 writes the noiseless CTF'd
    images and their variances; pass 2 adds white noise of variance mean(variance) / ``snr``
    (``snr=None``: none), drawn per block of images from (``seed``, 2, block). Returns the signal
    variance, the noise σ and the measured SNR (signal variance / realised noise variance).
    On the CPU, batches are small (cache-sized) and torch runs ``threads`` threads meanwhile
    (1: fastest on a small, busy machine, and the bytes do not depend on the machine's cores).
    """
    previous = torch.get_num_threads()
    if threads and torch.device(device).type == "cpu":
        torch.set_num_threads(threads)
    try:
        return _render(path, n, D, apix, rotations, shifts, ctf, groups, snr, seed, device, progress)
    finally:
        torch.set_num_threads(previous)


def _render(path, n, D, apix, rotations, shifts, ctf, groups, snr, seed, device, progress) -> dict:
    import mrcfile

    from cryonb.core.io.atomic import atomic_path

    device = torch.device(device)
    rotations = torch.as_tensor(rotations, dtype=torch.float32)
    shifts, ctf = torch.as_tensor(shifts, dtype=torch.float32), torch.as_tensor(ctf, dtype=torch.float64)
    variance = np.zeros(n)
    budget = 2**26 if device.type == "cuda" else 2**20  # small CPU batches stay in cache
    with atomic_path(path) as tmp, mrcfile.new_mmap(tmp, shape=(n, D, D), mrc_mode=2, overwrite=True) as mrc:
        mrc.set_image_stack()
        with tqdm(total=n, unit="img", desc=f"rendering {Path(path).name}", disable=None if progress is None else not progress) as bar:
            for indices, atoms in groups:
                indices = np.sort(np.asarray(indices, dtype=np.int64))
                if len(indices) == 0:
                    continue
                for batch in _batches(indices, atoms, budget, D):
                    coords, weights, sigma = atoms(batch)
                    coords = torch.as_tensor(coords, dtype=torch.float32, device=device)
                    weights = torch.as_tensor(weights, dtype=torch.float32, device=device)
                    sigma = torch.as_tensor(sigma, dtype=torch.float32, device=device)
                    b = torch.as_tensor(batch)
                    clean = splat_images(coords, weights, sigma, rotations[b].to(device), shifts[b].to(device), D, apix)
                    clean = apply_ctf(clean, ctf[b], apix).cpu().numpy()
                    variance[batch] = clean.astype(np.float64).var(axis=(1, 2))
                    mrc.data[batch] = clean
                    bar.update(len(batch))
        signal = float(variance.mean())
        sigma_noise, realised = 0.0, 0.0
        if snr is not None:
            sigma_noise = math.sqrt(signal / snr)
            total = 0.0
            for start in range(0, n, NOISE_CHUNK):
                stop = min(n, start + NOISE_CHUNK)
                noise = np.random.default_rng([seed, 2, start // NOISE_CHUNK]).standard_normal((stop - start, D, D), dtype=np.float32)
                noise *= np.float32(sigma_noise)
                total += float((noise.astype(np.float64) ** 2).sum())
                mrc.data[start:stop] += noise
            realised = total / (n * D * D)
        mrc.voxel_size = apix
        mrc.header.label[0] = b"cryonb benchmark suite"  # not mrcfile's timestamp: same seed, same bytes
        mrc.header.nlabl = 1
        mrc.reset_header_stats()
    return {"signal_variance": signal, "noise_sigma": sigma_noise, "measured_snr": signal / realised if realised else math.inf, "image_variance": variance}


def _batches(indices: np.ndarray, atoms, budget: int, D: int):
    """Split ``indices`` into batches of at most ``budget`` atom-profile elements."""
    size = max(1, budget // (max(1, np.shape(atoms(indices[:1])[0])[-2]) * D))
    return [indices[i : i + size] for i in range(0, len(indices), size)]
