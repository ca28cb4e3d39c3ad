"""The Gaussian-mixture decoder: a latent ``z`` moves and re-weights the Gaussians of a neutral model.

An MLP maps ``z`` to per-Gaussian offsets from the neutral :class:`GaussianMixture`: positions (pixels),
relative amplitudes (``a = a₀ (1 + δa)``) and log widths (``σ = σ₀ exp(δσ)``). Modes choose what
may vary: ``"amplitude"`` (compositional: amplitudes and widths), ``"position"`` (conformational:
positions only) or ``"both"``; ``movable`` (N,) bool restricts them to some Gaussians (focused
analysis). The interface is :class:`~cryonb.core.model.FourierDecoder`'s: ``forward(coords, z)``
gives the transform at (B, P, 3) frequencies, ``volumes(z)`` real maps, and ``D``, ``zdim``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..nets import mlp
from .mixture import CHUNK_ELEMENTS, GaussianMixture, mixture_transform, render

MODES = ("amplitude", "position", "both")
#: ``gain`` is stored divided by this, so that Adam's steps (about the learning rate) move its log fast enough.
GAIN_RATE = 100.0
_PER_GAUSSIAN = {"amplitude": 2, "position": 3, "both": 5}


class GaussianDecoder(nn.Module):
    """``F(k, z)`` of the neutral mixture displaced by ``offsets(z)`` (see the module docstring).

    ``gain`` (a learnt scalar, log scale, see :data:`GAIN_RATE`) matches the mixture's units to the images'; the neutral
    Gaussians are fixed buffers unless ``refine_neutral``. The checkpoint holds the neutral model, so
    a decoder built with any mixture loads a state dict of another size (``Run.open`` needs this).
    """

    def __init__(self, neutral: GaussianMixture, zdim: int, width: int = 256, depth: int = 3, mode: str = "both",
                 movable=None, refine_neutral: bool = False, chunk_elements: int = CHUNK_ELEMENTS):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self.D, self.zdim, self.mode, self.width, self.depth = neutral.D, zdim, mode, width, depth
        self.apix, self.refine_neutral, self.chunk_elements = neutral.apix, refine_neutral, chunk_elements
        self.gain = nn.Parameter(torch.zeros(()))
        self._build(neutral.positions, neutral.amplitudes, neutral.widths,
                    torch.ones(len(neutral), dtype=torch.bool) if movable is None else torch.as_tensor(movable, dtype=torch.bool))

    def _build(self, positions, amplitudes, widths, movable):
        if movable.shape != (len(positions),):
            raise ValueError(f"movable must be {len(positions)} booleans, got shape {tuple(movable.shape)}")
        for name, value in (("positions", positions), ("amplitudes", amplitudes), ("widths", widths)):
            value = value.detach().float().clone()
            if name in self._parameters or name in self._buffers:
                delattr(self, name)
            if self.refine_neutral:
                setattr(self, name, nn.Parameter(value))
            else:
                self.register_buffer(name, value)
        if "movable" in self._buffers:
            del self._buffers["movable"]
        self.register_buffer("movable", movable.clone())
        self._buffers.pop("movable_index", None)
        self.register_buffer("movable_index", torch.nonzero(movable).squeeze(1), persistent=False)  # no sync per step
        n_out = _PER_GAUSSIAN[self.mode] * int(movable.sum())
        self.net = mlp(self.zdim, self.width, self.depth, n_out) if self.zdim and n_out else None
        if self.net is not None:  # start at the neutral model
            with torch.no_grad():
                self.net[-1].weight.mul_(1e-2)
                self.net[-1].bias.zero_()

    @property
    def neutral(self) -> GaussianMixture:
        return GaussianMixture(self.positions.detach().cpu(), self.amplitudes.detach().cpu(), self.widths.detach().cpu(),
                               self.D, self.apix)

    def __len__(self) -> int:
        return len(self.positions)

    @property
    def scale(self) -> torch.Tensor:
        """The factor from the neutral model's units to the images' (``exp(GAIN_RATE * gain)``)."""
        return torch.exp(GAIN_RATE * self.gain)

    def offsets(self, z: torch.Tensor):
        """(δp (B, N, 3) pixels, δa (B, N) relative, δσ (B, N) log) for latents (B, zdim); zeros where fixed."""
        B, N = len(z), len(self)
        dp = self.positions.new_zeros(B, N, 3)
        da = self.positions.new_zeros(B, N)
        dw = self.positions.new_zeros(B, N)
        if self.net is None:
            return dp, da, dw
        out = self.net(z.to(self.positions.dtype)).float()
        idx = self.movable_index
        m = len(idx)
        if self.mode in ("position", "both"):
            dp = dp.index_copy(1, idx, out[:, : 3 * m].reshape(B, m, 3))
            out = out[:, 3 * m :]
        if self.mode in ("amplitude", "both"):
            da = da.index_copy(1, idx, out[:, :m])
            dw = dw.index_copy(1, idx, out[:, m : 2 * m])
        return dp, da, dw

    def gaussians(self, z: torch.Tensor | None = None):
        """(positions (B, N, 3), amplitudes (B, N), widths (B, N)) for latents (B, zdim), in map units;
        the neutral model (B = 1) if ``z`` is None."""
        if z is None or self.net is None:
            B = 1 if z is None else len(z)
            return (self.positions.expand(B, -1, -1), self.amplitudes.expand(B, -1) * self.scale,
                    self.widths.expand(B, -1))
        dp, da, dw = self.offsets(z)
        return (self.positions + dp, self.amplitudes * (1 + da) * self.scale, self.widths * dw.exp())

    def forward(self, coords: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """Complex values (B, P) at frequencies ``coords`` (B, P, 3); ``z`` (B, zdim) or None."""
        p, a, w = self.gaussians(z)
        if len(p) != len(coords):
            p, a, w = p.expand(len(coords), -1, -1), a.expand(len(coords), -1), w.expand(len(coords), -1)
        return mixture_transform(coords, p, a, w, self.D, self.chunk_elements)

    @torch.no_grad()
    def volumes(self, z: torch.Tensor | None = None, maps_per_chunk: int = 8) -> torch.Tensor:
        """Real-space maps (B, D, D, D) for latents (B, zdim) (one map if ``z`` is None), rendered directly."""
        device = self.positions.device
        if z is None:
            return render(*self.gaussians(None), self.D)
        z = z.reshape(-1, self.zdim).to(device, torch.float32)
        return torch.cat([render(*self.gaussians(zc), self.D) for zc in z.split(maps_per_chunk)])

    def penalty(self, z: torch.Tensor, l2: float = 1.0, spread: float = 1.0) -> torch.Tensor:
        """Regularisation of a batch: ``l2`` × the mean square of the offsets, plus ``spread`` × the
        variance over the batch of the amplitude and width offsets (amplitudes that change from
        particle to particle only where the data ask for it)."""
        if self.net is None:
            return self.gain.new_zeros(())
        dp, da, dw = self.offsets(z)
        m = self.movable
        out = l2 * (dp[:, m].pow(2).sum(-1).mean() + da[:, m].pow(2).mean() + dw[:, m].pow(2).mean())
        if len(z) > 1 and self.mode != "position":
            out = out + spread * (da[:, m].var(0).mean() + dw[:, m].var(0).mean())
        return out

    @torch.no_grad()
    def calibrate(self, images: torch.Tensor, coords: torch.Tensor, ctf) -> float:
        """Set ``gain`` so that the neutral model fits ``images`` (B, P) at ``coords`` (B, P, 3) times
        ``ctf`` best in least squares (closed form); returns the gain."""
        self.gain.zero_()
        pred = self(coords, None) * ctf
        scale = float((pred.conj() * images).real.sum() / pred.abs().pow(2).sum().clamp(min=1e-30))
        if scale <= 0:
            scale = float(images.abs().pow(2).sum().sqrt() / pred.abs().pow(2).sum().clamp(min=1e-30).sqrt())
        self.gain.fill_(math.log(scale) / GAIN_RATE)
        return scale

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        key = prefix + "positions"
        if key in state_dict and state_dict[key].shape != self.positions.shape:
            movable = state_dict.get(prefix + "movable", torch.ones(len(state_dict[key]), dtype=torch.bool))
            self._build(state_dict[key], state_dict[prefix + "amplitudes"], state_dict[prefix + "widths"], movable.bool().cpu())
            self.to(self.gain.device)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)
