"""Small maps from a decoder: the low frequencies only, for pictures and a page that must stay light."""

from __future__ import annotations

import numpy as np
import torch

from ..fourier import ifft3_center


@torch.no_grad()
def preview_volumes(run, z, box: int = 64, maps_per_chunk: int = 4) -> tuple[np.ndarray, float]:
    """Maps (B, d, d, d) of ``run`` at latents ``z`` (B, zdim), d = min(``box``, the run's box), and their pixel size.

    The decoder is evaluated at the frequencies of a d-box only: the full map Fourier-cropped to d
    (``fourier_crop``) up to the d-box's Nyquist plane, at (D/d)³ times less cost.
    """
    D = run.box_size
    d = min(int(box) - int(box) % 2, D)
    if d >= D:
        return run.volumes(z), run.apix
    zb = torch.from_numpy(run.check_latents(z))
    decoder = run.model.decoder
    device = next(decoder.parameters()).device
    k = torch.arange(d, dtype=torch.float32, device=device) - d // 2
    grid = torch.stack(torch.meshgrid(k, k, k, indexing="ij")[::-1], dim=-1).reshape(-1, 3)
    inside = torch.nonzero(grid.norm(dim=-1) <= D // 2).squeeze(1)  # the decoder's sphere, as in volumes()
    out = np.empty((len(zb), d, d, d), np.float32)
    for start in range(0, len(zb), maps_per_chunk):
        zc = zb[start : start + maps_per_chunk].to(device)
        F = torch.zeros(len(zc), d**3, dtype=torch.complex64, device=device)
        F[:, inside] = decoder(grid[inside][None].expand(len(zc), -1, -1), zc)
        maps = ifft3_center(F.reshape(-1, d, d, d)).real * (d / D) ** 3 * run.scale
        out[start : start + len(zc)] = maps.cpu().numpy()
    return out, run.apix * D / d
