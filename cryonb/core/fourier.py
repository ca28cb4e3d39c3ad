"""Centred Fourier and Hartley transforms, frequency grids, Fourier cropping and soft masks.

"Centred" means the zero frequency (and the real-space centre) sits at index ``D // 2`` of each
axis, for even and odd ``D``. All functions are batched over leading dimensions and run on any
torch device.
"""

from __future__ import annotations

from functools import partial

import torch


def _dims(ndim: int) -> tuple[int, ...]:
    return tuple(range(-ndim, 0))


def fft_center(x: torch.Tensor, ndim: int) -> torch.Tensor:
    """Centred discrete Fourier transform over the last ``ndim`` axes."""
    d = _dims(ndim)
    return torch.fft.fftshift(torch.fft.fftn(torch.fft.ifftshift(x, dim=d), dim=d), dim=d)


def ifft_center(X: torch.Tensor, ndim: int) -> torch.Tensor:
    """Inverse of :func:`fft_center` (complex result; take ``.real`` for real signals)."""
    d = _dims(ndim)
    return torch.fft.fftshift(torch.fft.ifftn(torch.fft.ifftshift(X, dim=d), dim=d), dim=d)


def ht_center(x: torch.Tensor, ndim: int) -> torch.Tensor:
    """Centred discrete Hartley transform, ``Re(F) - Im(F)``: real in, real out."""
    F = fft_center(x, ndim)
    return F.real - F.imag


def iht_center(H: torch.Tensor, ndim: int) -> torch.Tensor:
    """Inverse centred Hartley transform (the Hartley transform is its own inverse up to 1/N)."""
    n = 1
    for s in H.shape[-ndim:]:
        n *= s
    return ht_center(H, ndim) / n


# The 2D (images) and 3D (maps) forms of the transforms above.
fft2_center, ifft2_center = partial(fft_center, ndim=2), partial(ifft_center, ndim=2)
fft3_center, ifft3_center = partial(fft_center, ndim=3), partial(ifft_center, ndim=3)
ht2_center, iht2_center = partial(ht_center, ndim=2), partial(iht_center, ndim=2)
ht3_center, iht3_center = partial(ht_center, ndim=3), partial(iht_center, ndim=3)


def hartley_to_fourier(H: torch.Tensor, ndim: int) -> torch.Tensor:
    """Fourier transform from a centred Hartley transform: ``F(k) = (H(k) + H(-k))/2 - i (H(k) - H(-k))/2``."""
    Hm = flip_frequencies(H, ndim)
    return torch.complex((H + Hm) / 2, (Hm - H) / 2)


def flip_frequencies(X: torch.Tensor, ndim: int) -> torch.Tensor:
    """``X(-k)`` for a centred transform (index ``i`` -> ``(2 * (D//2) - i) mod D``)."""
    out = X
    for axis in _dims(ndim):
        D = X.shape[axis]
        idx = (2 * (D // 2) - torch.arange(D, device=X.device)) % D
        out = out.index_select(axis, idx)
    return out


def frequency_grid(D: int, ndim: int = 2, apix: float = 1.0, device=None, dtype=torch.float32) -> torch.Tensor:
    """Spatial frequencies (1/Å) of a centred ``D``-box, shape ``(D,)*ndim + (ndim,)``, ordered (x, y[, z]).

    The last axis of the array is x, so ``grid[..., 0]`` varies fastest along the last index.
    """
    k = (torch.arange(D, device=device, dtype=dtype) - D // 2) / (D * apix)
    axes = torch.meshgrid(*([k] * ndim), indexing="ij")  # (z, y, x) order
    return torch.stack(axes[::-1], dim=-1)


def shell_index(D: int, ndim: int = 2, device=None) -> torch.Tensor:
    """Integer Fourier shell (radius in pixels of frequency, rounded) of each pixel or voxel."""
    r = frequency_grid(D, ndim, apix=1.0 / D, device=device, dtype=torch.float64).norm(dim=-1)
    return torch.round(r).long()


def fourier_crop(x: torch.Tensor, new_D: int, ndim: int = 2) -> torch.Tensor:
    """Downsample real-space images or volumes to ``new_D`` by cropping their centred transform.

    Keeps the mean density per pixel (the sum scales by ``(new_D/D)**ndim``), as a
    resampling at a coarser pixel size should.
    """
    D = x.shape[-1]
    if new_D == D:
        return x
    if new_D > D:
        raise ValueError(f"fourier_crop: new box {new_D} is larger than the box {D}; use fourier_pad to upsample")
    start = D // 2 - new_D // 2
    F = fft_center(x, ndim)
    for axis in _dims(ndim):
        F = F.narrow(axis, start, new_D)
    return ifft_center(F, ndim).real * (new_D / D) ** ndim


def fourier_pad(x: torch.Tensor, new_D: int, ndim: int = 2) -> torch.Tensor:
    """Upsample real-space images or volumes to ``new_D`` by zero-padding their centred transform:
    the inverse of :func:`fourier_crop` (the mean density per pixel kept; exact for data without
    content at the Nyquist frequency, of which a crop keeps one half)."""
    D = x.shape[-1]
    if new_D == D:
        return x
    if new_D < D:
        raise ValueError(f"fourier_pad: new box {new_D} is smaller than the box {D}; use fourier_crop to downsample")
    start = new_D // 2 - D // 2
    F = fft_center(x, ndim)
    padded = torch.zeros(*x.shape[:-ndim], *(new_D,) * ndim, dtype=F.dtype, device=F.device)
    padded[(...,) + (slice(start, start + D),) * ndim] = F
    return ifft_center(padded, ndim).real * (new_D / D) ** ndim


def _soft_edge(r: torch.Tensor, radius: float, width: float) -> torch.Tensor:
    """1 inside ``radius``, a raised-cosine fall to 0 over ``width``, 0 beyond."""
    t = ((r - radius) / max(width, 1e-6)).clamp(0, 1)
    return 0.5 * (1 + torch.cos(torch.pi * t))


def soft_mask(D: int, ndim: int, radius: float | None = None, width: float | None = None, device=None) -> torch.Tensor:
    """Real-space soft circle (ndim=2) or sphere (ndim=3) centred at ``D//2``; radius in pixels."""
    width = max(D / 20, 1.0) if width is None else width
    radius = D / 2 - width if radius is None else radius
    r = frequency_grid(D, ndim, apix=1.0 / D, device=device).norm(dim=-1)
    return _soft_edge(r, radius, width)


def soft_circular_mask(D: int, radius: float | None = None, width: float | None = None, device=None) -> torch.Tensor:
    return soft_mask(D, 2, radius, width, device)


def soft_spherical_mask(D: int, radius: float | None = None, width: float | None = None, device=None) -> torch.Tensor:
    return soft_mask(D, 3, radius, width, device)
