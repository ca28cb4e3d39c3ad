"""Which of the half-plane's pixels a training step fits the decoder to."""

from __future__ import annotations

import torch


class FittedPixels:
    """The pixels within a radius of frequency (frequency marching, ab initio's schedule) and, with
    ``fraction`` below 1, a random share of them drawn afresh at every step.

    A share is an unbiased sample of the pixels within the radius: its mean error estimates theirs,
    for ``fraction`` of the decoder's arithmetic (the encoder still reads whole images). The draws
    depend on ``seed`` and the step only, so a resumed run and every process of a multi-GPU one draw
    the same. For a captured CUDA graph, :meth:`at` returns the same tensor for the same
    (radius, size) every time, refilled in place.
    """

    def __init__(self, coords: torch.Tensor, D: int, fraction: float = 1.0, seed: int = 0, device="cpu"):
        self.radius_of = torch.as_tensor(coords[:, :2]).norm(dim=-1).to(device)
        self.nyquist, self.fraction, self.seed = D // 2, fraction, seed
        self._within: dict[float, torch.Tensor] = {}  # radius → the pixels inside it
        self._drawn: dict[tuple, torch.Tensor] = {}  # (radius, size) → the buffer a step's draw is written to
        self._generator = torch.Generator(device=device)

    def at(self, step: int, radius: float | None = None) -> tuple[torch.Tensor | None, float]:
        """The pixels to fit at ``step`` (None: all of them) and the radius restriction's weight on the
        error (the half-plane's pixels over those within the radius; 1 without one)."""
        if radius is not None and radius >= self.nyquist:
            radius = None
        if radius is not None and radius not in self._within:  # found once: nonzero waits for the GPU
            self._within[radius] = torch.nonzero(self.radius_of <= radius).squeeze(1)
        within = None if radius is None else self._within[radius]
        n = len(self.radius_of) if within is None else len(within)
        weight = len(self.radius_of) / n
        if self.fraction >= 1:
            return within, weight
        size = max(1, round(self.fraction * n))
        if (radius, size) not in self._drawn:
            self._drawn[radius, size] = torch.empty(size, dtype=torch.long, device=self.radius_of.device)
        drawn = self._drawn[radius, size]
        self._generator.manual_seed(self.seed * 104_729 + step)
        pick = torch.randperm(n, generator=self._generator, device=drawn.device)[:size].sort().values  # in memory order
        drawn.copy_(pick if within is None else within[pick])
        return drawn, weight
