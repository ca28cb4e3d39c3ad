"""How much density each particle has in regions of the consensus map: fixed inputs for an encoder.

A subunit that a few percent of the particles lack is one region of the map, but an encoder that
reads pixels must learn to see it anew in every view, and learns it only once the decoder already
draws the difference (:class:`~cryonb.core.latents.SliceFilters` start random, so the two wait on
each other). These features need no training: the consensus map of all particles, soft balls of its
density around points spread over the molecule (``cryonb.core.variability._regions``: 32
points, each ball holding 3, 6 or 12 % of the density), and for each particle and ball the
least-squares amount of the ball's CTF-modulated slice at the particle's pose in what its image holds
beyond the consensus's slice, up to ``RESOLUTION``, in units of that amount's noise σ.

On the benchmark suite's assembly set a linear probe on these 96 numbers tells the rare state (3 %)
from its nearest class at a balanced accuracy of 0.98 (D = 128) and 0.91 (D = 64), where the trained
latents held 0.73 and 0.64. Read by the encoder, they do not reach z (the decoder does not draw the
state, so the loss does not ask for it); with z made to predict them too (``region_weight``), z holds
the state (0.92 at D = 64), so far at a cost to the other classes' clusters (docs/benchmarks.md, "The
encoder reads regions of the consensus" and "Smaller weights, and the features only predicted").

    >>> features = region_features(particles, device="cuda")   # (N, 96), each column standardised
"""

from __future__ import annotations

import numpy as np
import torch

from .fourier import soft_spherical_mask
from .reconstruct import FourierAccumulator, image_batches
from .variability import REGION_MASS, RESOLUTION, _noise_weights, _regions, _resample, _Slices, _solve, working_box

CENTRES = 32  # points the regions are drawn around; each gives len(REGION_MASS) features
NOISE_PARTICLES = 4096  # the residuals' power per shell (the pixels' weights) is measured on the first this many


def feature_count(centres: int) -> int:
    """How many features :func:`region_features` returns for ``centres`` points."""
    return centres * len(REGION_MASS)


def region_features(particles, *, centres: int = CENTRES, resolution: float = RESOLUTION, batch_size: int = 512,
                    device: str | torch.device = "cpu", progress: bool | None = None) -> np.ndarray:
    """Each particle's amount of each region of the consensus map (N, ``feature_count(centres)``),
    float32, each column standardised over the particles. Reads the images three times (the consensus;
    the noise, from the first ``NOISE_PARTICLES``; the features), so a stack larger than memory streams."""
    D, apix = particles.box_size, particles.apix
    radius = int(min(max(D * apix / resolution, 2), D // 2 - 1))
    box = working_box(D, radius)
    slices, mask = _Slices(D, box, radius, device), soft_spherical_mask(box, device=device)
    accumulator = FourierAccumulator(D, 1, device=device, ordered=True)
    with_ctf = particles.ctf is not None
    for _, images_ft, ctf, rotations in image_batches(particles, batch_size, device, with_ctf, "consensus for the regions", progress):
        accumulator.insert(images_ft, torch.ones_like(images_ft.real) if ctf is None else ctf, rotations, torch.zeros(len(rotations), dtype=torch.long, device=device))
    consensus = _resample(accumulator.volume([0], 1e-3).to(device) * soft_spherical_mask(D, device=device), box)
    components = []
    for region in _regions(consensus, mask, centres):
        component = slices.filter(region) * mask
        components.append(component / component.norm().clamp(min=1e-30))

    def batches(desc, limit=None):
        sub = particles if limit is None or limit >= len(particles) else particles.subset(np.arange(limit))
        for rows, images_ft, ctf, rotations in image_batches(sub, batch_size, device, with_ctf, desc, progress):
            ctf = torch.ones_like(images_ft.real) if ctf is None else ctf
            ctf = ctf.flatten(1)[:, slices.taken]
            predicted = slices(consensus, rotations, batch_size) * ctf
            yield rows, images_ft.flatten(1)[:, slices.taken] - predicted, predicted, ctf, rotations

    residuals = [residual for _, residual, *_ in batches("noise for the regions", NOISE_PARTICLES)]
    weights = _noise_weights(torch.cat(residuals), slices.shells, radius)
    features = np.empty((len(particles), len(components)), dtype=np.float32)
    for rows, residual, predicted, ctf, rotations in batches("region features"):
        for j, component in enumerate(components):
            _, amount, variance = _solve(predicted, slices(component, rotations, batch_size) * ctf, residual, weights, prior=0.0)
            features[rows, j] = (amount / variance.sqrt().float()).cpu().numpy()
    features -= features.mean(0)
    features /= np.maximum(features.std(0), 1e-12)
    return features
