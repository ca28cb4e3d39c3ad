"""Image rows, radial profiles and ring correlations for the teaching notebooks (matplotlib only)."""

from __future__ import annotations

import numpy as np
import torch

from cryonb.core.fourier import fft2_center, shell_index


def show_images(images, titles=None, *, cmap="gray", symmetric=False, shared=False, size=2.6):
    """Draw 2D arrays side by side, one panel each; returns the axes for annotation.

    ``symmetric`` (one flag, or one per panel) centres a panel's colour scale on zero, for
    differences and signed values; ``shared`` gives all panels one colour scale.
    """
    import matplotlib.pyplot as plt

    images = [np.asarray(torch.as_tensor(im).detach().cpu(), dtype=np.float64) for im in images]
    titles = list(titles) if titles is not None else [""] * len(images)
    symmetric = [symmetric] * len(images) if isinstance(symmetric, bool) else list(symmetric)
    low, high = min(im.min() for im in images), max(im.max() for im in images)
    fig, axes = plt.subplots(1, len(images), figsize=(size * len(images), size), squeeze=False)
    for ax, image, title, signed in zip(axes[0], images, titles, symmetric):
        vmin, vmax = (low, high) if shared else (image.min(), image.max())
        if signed:
            vmax = max(abs(vmin), abs(vmax))
            vmin = -vmax
        ax.imshow(image, cmap=cmap, origin="lower", vmin=vmin, vmax=vmax)
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    fig.tight_layout()
    return axes[0]


def radial_profile(x, ndim: int = 2) -> np.ndarray:
    """Mean of centred arrays (..., D, D) (ndim 2) or (..., D, D, D) (ndim 3) over frequency shells 0..D//2."""
    x = torch.as_tensor(x, dtype=torch.float64)
    D = x.shape[-1]
    shells = shell_index(D, ndim).flatten()
    keep = shells <= D // 2
    values = x.reshape(*x.shape[: x.ndim - ndim], -1)[..., keep]
    sums = torch.zeros(*values.shape[:-1], D // 2 + 1, dtype=torch.float64).index_add_(-1, shells[keep], values)
    return (sums / torch.bincount(shells[keep], minlength=D // 2 + 1)).numpy()


def ring_correlation(a, b) -> np.ndarray:
    """Fourier ring correlation (D//2 + 1,) of two images (D, D): the 2D analogue of the FSC."""
    Fa, Fb = fft2_center(torch.as_tensor(a, dtype=torch.float64)), fft2_center(torch.as_tensor(b, dtype=torch.float64))
    cross = radial_profile((Fa * Fb.conj()).real)
    return cross / np.sqrt(radial_profile(Fa.abs() ** 2) * radial_profile(Fb.abs() ** 2))
