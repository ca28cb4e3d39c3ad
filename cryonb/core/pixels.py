"""Which of the half-plane's pixels a training step fits the decoder to."""

from __future__ import annotations

import torch


class FittedPixels:
    """The pixels within a radius of frequency (frequency marching, ab initio's schedule) and, with
    ``fraction`` below 1, a random share of them drawn afresh at every step.

    ``core`` (a fraction of Nyquist) keeps every pixel within it in each step's share and draws the
    share from the pixels beyond it: the low frequencies, where the images' signal is, are fitted
    exactly, and the noisier high ones by a sample. Either way the weighted mean error over the
    drawn pixels is an unbiased estimate of the mean over all those within the radius, for a share
    of the decoder's arithmetic (the encoder still reads whole images). The draws depend on ``seed``
    and the step only, so a resumed run and every process of a multi-GPU one draw the same. For a
    captured CUDA graph, :meth:`at` returns the same tensors for the same (radius, size) every time,
    refilled in place. From step ``until`` on (None: never) every pixel within the radius is fitted.
    """

    def __init__(self, coords: torch.Tensor, D: int, fraction: float = 1.0, seed: int = 0, device="cpu",
                 core: float = 0.0, until: int | None = None):
        self.radius_of = torch.as_tensor(coords[:, :2]).norm(dim=-1).to(device)
        self.nyquist, self.fraction, self.seed, self.core, self.until = D // 2, fraction, seed, core * (D // 2), until
        self._within: dict[float, tuple] = {}  # radius → the pixels inside it, split at the core, and all: (kept, drawn from, all)
        self._drawn: dict[float, tuple] = {}  # radius → the buffer a step's draw is written to, and its weights
        self._generator = torch.Generator(device=device)

    def at(self, step: int, radius: float | None = None) -> tuple[torch.Tensor | None, float | torch.Tensor]:
        """The pixels to fit at ``step`` (None: all of them) and the weight of each one's error (a
        number for all alike, else one per pixel): the half-plane's pixels over those within the
        radius (1 without one), over each pixel's chance of being drawn, relative to the share's."""
        if radius is not None and radius >= self.nyquist:
            radius = None
        if radius not in self._within:  # found once: nonzero waits for the GPU
            inside = torch.ones_like(self.radius_of, dtype=torch.bool) if radius is None else self.radius_of <= radius
            core = inside & (self.radius_of <= self.core) if self.fraction < 1 and self.core else torch.zeros_like(inside)
            kept, pool = torch.nonzero(core).squeeze(1), torch.nonzero(inside & ~core).squeeze(1)
            everything = None if radius is None else pool if not len(kept) else torch.nonzero(inside).squeeze(1)
            self._within[radius] = (kept, pool, everything)
        kept, pool, everything = self._within[radius]
        n = len(kept) + len(pool)
        weight = len(self.radius_of) / n
        if self.fraction >= 1 or (self.until is not None and step >= self.until):
            return everything, weight
        if radius not in self._drawn:
            size = max(1, round(self.fraction * len(pool)))
            drawn = torch.cat([kept, pool[:size]])
            chance = torch.cat([torch.ones(len(kept)), torch.full((size,), size / len(pool))]).to(drawn.device)
            relative = weight * len(drawn) / n / chance  # weight × (the share's chance) / (this pixel's)
            # without a core every relative weight is ``weight``: one number, the arithmetic of a uniform draw
            self._drawn[radius] = (drawn, weight if not len(kept) else relative)
        drawn, weights = self._drawn[radius]
        self._generator.manual_seed(self.seed * 104_729 + step)
        size = len(drawn) - len(kept)
        pick = torch.randperm(len(pool), generator=self._generator, device=drawn.device)[:size].sort().values  # memory order
        drawn[len(kept):].copy_(pool[pick])
        return drawn, weights
