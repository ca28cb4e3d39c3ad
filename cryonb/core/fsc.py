"""Fourier shell correlation between two maps, resolution estimates and FSC plots."""

from __future__ import annotations

import functools
import io
import os
from dataclasses import dataclass

import numpy as np
import torch

from .fourier import fft3_center, shell_index, soft_spherical_mask


def _float64(x, device=None) -> torch.Tensor:
    return x.to(device, torch.float64) if isinstance(x, torch.Tensor) else torch.tensor(np.asarray(x), dtype=torch.float64, device=device)


@dataclass(frozen=True)
class FSCCurve:
    """FSC per Fourier shell, from the DC term (shell 0) up to Nyquist (shell ``D // 2``)."""

    frequencies: np.ndarray  # 1/Å at each shell radius
    values: np.ndarray
    n_voxels: np.ndarray  # Fourier voxels in each shell (for noise levels: ~1/sqrt(n))
    apix: float

    def auc(self) -> float:
        """Area under ``|FSC|`` against frequency in cycles per pixel, DC to Nyquist (at most 0.5).

        The per-image metric of CryoBench (Jeon et al., 2024) when each curve compares the map
        generated at an image's latent with its ground-truth map.
        """
        return float(np.trapezoid(np.abs(self.values), self.frequencies * self.apix))

    def resolution(self, threshold: float = 0.143) -> float:
        """Resolution (Å) where the FSC first falls below ``threshold``, linearly interpolated.

        Returns the Nyquist resolution ``2 * apix`` if the curve never falls below the
        threshold and ``inf`` if it is already below it at the DC term.
        """
        below = np.flatnonzero(self.values < threshold)
        if below.size == 0:
            return 2.0 * self.apix
        i = below[0]
        if i == 0:
            return float("inf")
        f0, f1 = self.frequencies[i - 1], self.frequencies[i]
        v0, v1 = self.values[i - 1], self.values[i]
        return float(1.0 / (f0 + (v0 - threshold) / (v0 - v1) * (f1 - f0)))


def fsc(a, b, *, apix: float = 1.0, mask=None) -> FSCCurve:
    """FSC between two maps (D, D, D) (numpy or torch) with pixel size ``apix`` Å.

    ``mask`` multiplies both maps first: a (D, D, D) array, or ``"soft"`` for a soft sphere that
    fills the box (:func:`cryonb.core.fourier.soft_spherical_mask`), which removes the box-edge
    discontinuity of maps whose density reaches the edge.
    """
    a = _float64(a)
    b = _float64(b, a.device)
    if a.shape != b.shape or a.ndim != 3 or len(set(a.shape)) != 1:
        raise ValueError(f"fsc needs two cubic maps of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    D = a.shape[-1]
    if mask is not None:
        m = _float64(soft_spherical_mask(D) if isinstance(mask, str) and mask == "soft" else mask, a.device)
        a, b = a * m, b * m
    Fa, Fb = fft3_center(a), fft3_center(b)
    shells = shell_index(D, 3, device=a.device).flatten()
    keep = shells <= D // 2
    shells = shells[keep]

    def shell_sum(x: torch.Tensor) -> np.ndarray:
        return torch.bincount(shells, weights=x.flatten()[keep], minlength=D // 2 + 1).cpu().numpy()

    cross = shell_sum((Fa * Fb.conj()).real)
    power = shell_sum(Fa.abs() ** 2) * shell_sum(Fb.abs() ** 2)
    values = np.divide(cross, np.sqrt(power), out=np.zeros_like(cross), where=power > 0)
    n_voxels = torch.bincount(shells, minlength=D // 2 + 1).cpu().numpy()
    frequencies = np.arange(D // 2 + 1) / (D * apix)
    return FSCCurve(frequencies, values, n_voxels, float(apix))


def plot_fsc(*curves: FSCCurve, labels=None, path: str | os.PathLike | None = None, title: str | None = None):
    """Plot FSC curves with the 0.143 and 0.5 thresholds; save a PNG to ``path`` if given.

    Returns the matplotlib Figure (drawn without pyplot, so it works headless); as the last
    expression of a notebook cell it shows itself, as a PNG, with or without pyplot.
    """
    Figure = notebook_figure()
    labels = labels or (["FSC"] if len(curves) == 1 else [f"map pair {i + 1}" for i in range(len(curves))])
    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.add_subplot()
    for curve, label in zip(curves, labels):
        ax.plot(curve.frequencies, curve.values, label=f"{label} ({curve.resolution(0.143):.1f} Å at 0.143)")
    for threshold, style in ((0.143, "--"), (0.5, ":")):
        ax.axhline(threshold, color="grey", linestyle=style, linewidth=1)
        ax.annotate(f"{threshold}", (0, threshold), textcoords="offset points", xytext=(2, 2), color="grey", fontsize=8)
    ax.set_xlabel("spatial frequency (1/Å)")
    ax.set_ylabel("Fourier shell correlation")
    ax.set_ylim(-0.1, 1.05)
    ax.set_xlim(0, max(c.frequencies[-1] for c in curves))
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    if path is not None:
        save_png(fig, path)
    return fig


@functools.cache
def notebook_figure():
    """A matplotlib Figure class that a notebook displays as a PNG (a Figure made without pyplot has no display)."""
    from matplotlib.figure import Figure

    class NotebookFigure(Figure):
        def _repr_png_(self) -> bytes:
            buffer = io.BytesIO()
            self.savefig(buffer, format="png")
            return buffer.getvalue()

    return NotebookFigure


def save_png(fig, path) -> None:
    from .io.atomic import atomic_write

    with atomic_write(path) as f:
        fig.savefig(f, format="png")
