"""Per-particle latents refined against the decoder (closing the encoder's amortisation gap).

The encoder maps an image to z in one pass, the same network for every particle; the decoder knows
more: the latent that best explains a particle is the one whose CTF-modulated slice, at the
particle's pose, matches its image. :func:`refine_latents` starts from the encoder's z and
minimises each particle's training objective (squared error plus the prior's ½β‖z‖²) over z alone,
with the model frozen.
"""

from __future__ import annotations

import numpy as np
import torch

from .adam import AdamW


ROWS_PER_BATCH = 2**20  # decoder rows (images × pixels) per refined batch: a few GB of activations at width 1024


def refine_latents(trainer, iterations: int = 30, lr: float = 0.05, batch_size: int | None = None,
                   indices=None, progress: bool = False) -> np.ndarray:
    """Refined latents (N, zdim), in the particle set's order; the model is not changed.

    ``indices``: refine only these particles (the others keep the encoder's z); ``batch_size``
    (images at a time) defaults to ``ROWS_PER_BATCH`` (2²⁰) decoder rows.
    """
    if not trainer.config.zdim:
        raise ValueError("a homogeneous model (zdim=0) has no latents to refine")
    model, data = trainer.model, trainer.data
    model.eval()
    beta = trainer.config.kl_weight
    z_all = torch.as_tensor(trainer.embed(), device=trainer.device)
    frozen = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    chosen = torch.arange(len(data)) if indices is None else torch.as_tensor(np.asarray(indices), dtype=torch.long)
    batch_size = batch_size or max(1, ROWS_PER_BATCH // len(model.coords))
    starts = range(0, len(chosen), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, unit="batch", desc="refining latents")
    try:
        for start in starts:
            idx = chosen[start:start + batch_size].to(trainer.device)
            images, rotations, ctf = data.batch(idx)
            coords = model.coords.to(rotations.dtype) @ rotations
            z = z_all[idx].clone().requires_grad_(True)
            opt = AdamW([z], lr=lr, weight_decay=0.0)  # Adam
            for _ in range(iterations):
                with trainer._autocast():
                    pred = model.decoder(coords, z) * ctf
                sse = torch.view_as_real(pred - images).pow(2).sum((-1, -2))
                loss = (sse + 0.5 * beta * z.pow(2).sum(-1)).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            z_all[idx] = z.detach()
    finally:
        for p, flag in zip(model.parameters(), frozen):
            p.requires_grad_(flag)
    return z_all.cpu().numpy()
