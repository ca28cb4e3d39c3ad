"""Train the suite's defaults with the decoder's Gaussian features drawn another way.

    python -m benchmarks.suite.feature_draws DRAW DATASET [benchmarks.suite.train's arguments]

DRAW is ``seedN`` (the plain Gaussian draw that training seed N would make) or ``strat`` (a
stratified draw seeded by the training seed: :func:`stratified`). Everything else is
``benchmarks.suite.train``'s run, whose record then names the draw in ``params.overrides.features``.
It asks whether the spread of the maps between training seeds comes from the features' draw.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import torch
from scipy.stats import chi

from cryonb.core import model


def stratified(m: int, seed: int) -> torch.Tensor:
    """(3, m) frequencies of unit spread per axis, as N(0, I) draws but without their gaps: radii at the
    midpoints of χ(3)'s m quantiles, directions a Fibonacci sphere under a random rotation, radii paired
    with directions at random."""
    rng = np.random.default_rng(seed)
    radii = chi.ppf((np.arange(m) + 0.5) / m, df=3)
    i = np.arange(m) + 0.5
    polar, azimuth = np.arccos(1 - 2 * i / m), math.pi * (1 + 5**0.5) * i
    directions = np.stack([np.cos(azimuth) * np.sin(polar), np.sin(azimuth) * np.sin(polar), np.cos(polar)])
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    directions = (q * np.sign(np.diag(r))) @ directions
    return torch.tensor(directions * radii[rng.permutation(m)], dtype=torch.float32)


def drawn(draw: str, m: int, seed: int) -> torch.Tensor:
    """The (3, m) unit-spread frequencies of ``draw`` for training seed ``seed``."""
    if draw.startswith("seed"):
        return torch.randn(3, m, generator=torch.Generator().manual_seed(int(draw[4:])))
    if draw == "strat":
        return stratified(m, seed)
    raise SystemExit(f"unknown draw {draw!r}: use seedN or strat")


def main(argv: list[str]) -> None:
    draw, argv = argv[0], argv[1:]
    drawn(draw, 3, 0)  # refuse an unknown draw before any work
    original, used = model.PositionalEncoding.__init__, []

    def encoding(self, D, kind="geometric", n_freqs=None, seed=0, sigma=0.5):
        original(self, D, kind, n_freqs, seed, sigma)
        if kind == "gaussian":
            B = drawn(draw, self.B.shape[1], seed)
            self.B.copy_(B * (sigma * D / 2))
            used.append(draw)
            print(f"features {draw}: largest radius {float(B.norm(dim=0).max()):.2f} σ", file=sys.stderr)

    model.PositionalEncoding.__init__ = encoding
    from benchmarks.suite import train

    original_emit = train.emit

    def emit(record, *args, **kwargs):  # name the draw in the record (none: the model had no Gaussian features)
        record.setdefault("params", {}).setdefault("overrides", {})["features"] = used[0] if used else None
        return original_emit(record, *args, **kwargs)

    train.emit = emit
    train.main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
