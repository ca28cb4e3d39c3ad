"""The heterogeneous model: an image encoder and a coordinate-based Fourier decoder (cryoDRGN-style).

The decoder is an MLP over positionally encoded 3D Fourier coordinates concatenated with a latent
``z``; it returns the complex value of the map's transform at those coordinates. Hermitian symmetry
(``F(-k) = conj F(k)``) is built in: points with ``kz < 0`` are evaluated at ``-k`` and conjugated,
so the network only ever learns one half-space.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from . import kernels
from .fourier import ifft3_center
from .nets import DecoderStack, DenseReLU, EncodedInputReLU, Residual, feature_columns, mlp
from .poses import KnownPoses, recentre
from .projection import plane_coordinates

ENCODINGS = ("geometric", "geometric_lowf", "gaussian", "none")


@dataclass(frozen=True)
class HalfPlane:
    """The pixels of a centred ``D``×``D`` transform that a model evaluates.

    One half of the Nyquist disc (``ky > 0``, or ``ky == 0`` and ``kx >= 0``): the other half is
    its complex conjugate for a real image.
    """

    D: int
    index: torch.Tensor  # (P,) flat positions in the D*D centred grid
    coords: torch.Tensor  # (P, 3) (kx, ky, 0) in pixels of frequency

    @classmethod
    def build(cls, D: int, radius: float | None = None, device=None) -> HalfPlane:
        plane = plane_coordinates(D, device=device).reshape(-1, 3)
        kx, ky = plane[:, 0], plane[:, 1]
        radius = D // 2 if radius is None else radius
        keep = (kx**2 + ky**2 <= radius**2) & ((ky > 0) | ((ky == 0) & (kx >= 0)))
        index = torch.nonzero(keep).squeeze(1)
        return cls(D, index, plane[index])

    def __len__(self) -> int:
        return len(self.index)


class PositionalEncoding(nn.Module):
    """sin/cos features of 3D coordinates in [-0.5, 0.5] (the box is one unit wide).

    ``geometric``: angular frequencies from 2π (one period over the box) to πD (the lattice's
    Nyquist), geometrically spaced; ``geometric_lowf``: from 1 to D/2, the low-frequency variant;
    ``gaussian``: random Fourier features with angular frequencies drawn from N(0, σ²),
    σ = ``sigma``·D/2 radians per box (0.5: cryoDRGN 4's default); ``none``: raw coordinates.
    """

    def __init__(self, D: int, kind: str = "geometric", n_freqs: int | None = None, seed: int = 0, sigma: float = 0.5):
        super().__init__()
        if kind not in ENCODINGS:
            raise ValueError(f"positional encoding must be one of {ENCODINGS}, not {kind!r}")
        self.kind = kind
        n = D // 2 if n_freqs is None else n_freqs
        if kind == "geometric":
            freqs = 2 * math.pi * (D / 2) ** (torch.arange(n) / max(n - 1, 1))
            B = torch.eye(3)[:, :, None] * freqs  # (3, 3, n): each axis on its own
            B = B.permute(0, 2, 1).reshape(3, 3 * n)
        elif kind == "geometric_lowf":
            freqs = (D / 2) ** (torch.arange(n) / max(n - 1, 1))
            B = (torch.eye(3)[:, :, None] * freqs).permute(0, 2, 1).reshape(3, 3 * n)
        elif kind == "gaussian":
            g = torch.Generator().manual_seed(seed)
            B = torch.randn(3, 3 * n, generator=g) * (sigma * D / 2)
        else:
            B = torch.zeros(3, 0)
        self.register_buffer("B", B, persistent=True)
        self.out_dim = 3 if kind == "none" else 2 * B.shape[1]

    def phase(self, coords: torch.Tensor) -> torch.Tensor:
        """The phases whose sines and cosines are the features (``none``: the coordinates)."""
        return coords if self.kind == "none" else coords @ self.B

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        phase = self.phase(coords)
        return phase if self.kind == "none" else torch.cat([torch.sin(phase), torch.cos(phase)], dim=-1)


class FourierDecoder(nn.Module):
    """``F(k, z)``: the complex transform of the map for latent ``z`` at frequency ``k`` (pixels)."""

    fused_backward = True  # on a GPU, train through nets.DecoderStack (kernels.relu_grad_matmul)
    fused_features = True  # and write its first layer's features from the coordinates (kernels.encoded_features)

    def __init__(self, D: int, zdim: int, width: int = 256, depth: int = 3, encoding: str = "geometric",
                 n_freqs: int | None = None, seed: int = 0, residual: bool = False, pe_sigma: float = 0.5,
                 joint_init: bool = False):
        super().__init__()
        self.D, self.zdim = D, zdim
        self.encoding = PositionalEncoding(D, encoding, n_freqs, seed, pe_sigma)
        # The first layer acts on [encoding(k), z], with its ReLU (nets.EncodedInputReLU); its
        # weights are kept in two parts, so that z's part can be computed once per image.
        self.coords_in = nn.Linear(self.encoding.out_dim, width)
        self.latent_in = nn.Linear(zdim, width, bias=False) if zdim else None
        if joint_init:  # drawn as one nn.Linear over [encoding(k), z] would be (z's weights then ~7× smaller)
            bound = (self.encoding.out_dim + zdim) ** -0.5
            drawn = [self.coords_in.weight, self.coords_in.bias] + ([self.latent_in.weight] if zdim else [])
            for weight in drawn:
                nn.init.uniform_(weight, -bound, bound)
        # net[0] held the first layer's ReLU; an Identity keeps the checkpoints' layer numbers
        if residual:  # depth residual layers after the input layer
            self.net = nn.Sequential(nn.Identity(), *(Residual(width) for _ in range(depth)), nn.Linear(width, 2))
        else:
            self.net = nn.Sequential(nn.Identity(), mlp(width, width, depth - 1, 2))

    def forward(self, coords: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """Complex values at ``coords`` (B, P, 3); ``z`` is (B, zdim) or None for a homogeneous model."""
        flip = coords[..., 2:3] < 0
        fused = self._fuse_backward(coords)
        weights = (self.coords_in.weight, None if self.latent_in is None else self.latent_in.weight, self.coords_in.bias)
        if fused and self.fused_features and self.encoding.kind != "none" and not coords.requires_grad:
            first = (coords, z, *weights, self.encoding.B / self.D)
        else:
            with torch.autocast(coords.device.type, enabled=False):  # phases need float32
                phase = self.encoding.phase(torch.where(flip, -coords, coords).float() / self.D)
            first = (phase, z, *weights, self.encoding.kind != "none")
        if fused:
            residual, params = self._hidden_layers()
            out = DecoderStack.apply(*first, residual, *params).float()
        else:
            out = self.net(EncodedInputReLU.apply(*first)).float()
        imag = torch.where(flip[..., 0], -out[..., 1], out[..., 1])
        return torch.complex(out[..., 0], imag)

    def compile_kernels(self, batch: int, pixels: int, dtype: torch.dtype = torch.bfloat16) -> Callable[[], None]:
        """Compile the Triton kernels of a fused training step of ``batch`` images of ``pixels`` frequencies
        each, side by side in threads (:func:`cryonb.core.kernels.compile_ahead`); returns a function that
        waits for them. Nothing to do (a no-op wait) where the kernels do not run."""
        device = self.coords_in.weight.device
        if not (device.type == "cuda" and self.fused_backward and kernels.available()):
            return lambda: None
        rows, width = batch * pixels, self.coords_in.out_features
        empty = functools.partial(torch.empty, device=device, dtype=dtype)
        below = empty(rows, width)
        launches = [lambda: kernels.relu_grad_matmul(empty(rows, 2), empty(2, width), below)]  # the output layer
        if self._hidden_layers()[0]:  # a hidden layer's
            launches.append(lambda: kernels.relu_grad_matmul(empty(rows, width), empty(width, width), below))
        if self.fused_features and self.encoding.kind != "none":
            freqs = (self.encoding.B / self.D).float()
            z = None if self.latent_in is None else torch.empty(batch, self.zdim, device=device)
            columns = feature_columns(self.encoding.out_dim, self.zdim)
            launches.append(lambda: kernels.encoded_features(torch.empty(batch, pixels, 3, device=device), freqs, z, columns, dtype))
        return kernels.compile_ahead(launches, device)

    def _fuse_backward(self, coords: torch.Tensor) -> bool:
        return (self.fused_backward and coords.is_cuda and torch.is_grad_enabled() and torch.is_autocast_enabled("cuda")
                and not torch.compiler.is_compiling() and kernels.available())

    def _hidden_layers(self) -> tuple[tuple[bool, ...], list[torch.Tensor]]:
        """Which hidden layers are residual, and their weights and biases, then the output layer's."""
        residual, params = [], []
        for m in self.net.modules():
            if isinstance(m, (Residual, DenseReLU)):
                linear = m.linear if isinstance(m, Residual) else m
                residual.append(isinstance(m, Residual))
                params += [linear.weight, linear.bias]
        output = list(self.net.modules())[-1]  # the last module in order is the output layer
        return tuple(residual), params + [output.weight, output.bias]

    @torch.no_grad()
    def volumes(self, z: torch.Tensor | None = None, points_per_chunk: int = 2**22,
                dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
        """Real-space maps (B, D, D, D) for latents (B, zdim) (one map if ``z`` is None).

        The decoder is evaluated inside the Nyquist sphere only, for all latents of a chunk at
        once (a chunk holds about ``points_per_chunk`` evaluations), on a GPU under autocast to
        ``dtype`` (``torch.float32``: none).
        """
        D = self.D
        device = next(self.parameters()).device
        k = torch.arange(D, device=device, dtype=torch.float32) - D // 2
        grid = torch.stack(torch.meshgrid(k, k, k, indexing="ij")[::-1], dim=-1).reshape(-1, 3)
        inside = torch.nonzero(grid.norm(dim=-1) <= D // 2).squeeze(1)
        zb = None if z is None else z.reshape(-1, self.zdim).to(device, torch.float32)
        n_maps = 1 if zb is None else len(zb)
        per_map = max(1, min(len(inside), points_per_chunk))
        maps_per_chunk = max(1, points_per_chunk // len(inside))
        cast = device.type == "cuda" and dtype != torch.float32
        autocast = torch.autocast("cuda", dtype) if cast else contextlib.nullcontext()
        out = torch.empty(n_maps, D, D, D, device=device)
        for m0 in range(0, n_maps, maps_per_chunk):
            zc = None if zb is None else zb[m0 : m0 + maps_per_chunk]
            F = torch.zeros(1 if zc is None else len(zc), D**3, dtype=torch.complex64, device=device)
            for start in range(0, len(inside), per_map):
                idx = inside[start : start + per_map]
                with autocast:
                    F[:, idx] = self(grid[idx][None].expand(len(F), -1, -1), zc)
            out[m0 : m0 + len(F)] = ifft3_center(F.reshape(-1, D, D, D)).real
        return out


@dataclass
class ModelOutput:
    prediction: torch.Tensor  # (B, P) complex, CTF applied
    target: torch.Tensor  # (B, P) the images, re-centred by the pose source's shifts
    mu: torch.Tensor | None  # (B, zdim) latent means
    prior: torch.Tensor | None  # (B,) the latent source's penalty
    features_error: torch.Tensor | None = None  # (B,) how far z's prediction of fixed per-particle features falls


class HeterogeneousModel(nn.Module):
    """A decoder, a latent source and a pose source on the half-plane of the decoder's box.

    ``decoder(coords, z)`` gives the map's transform at rotated frequencies (:class:`FourierDecoder`
    or any module with its interface); ``latents`` (:mod:`cryonb.core.latents`; None for a
    homogeneous model) gives each particle's z; ``poses`` (:mod:`cryonb.core.poses`; default the
    metadata's) gives its pose. :meth:`cryonb.core.train_config.TrainConfig.build_model` assembles one.
    """

    def __init__(self, decoder: nn.Module, latents: nn.Module | None = None, poses: nn.Module | None = None):
        super().__init__()
        self.decoder, self.latents, self.poses = decoder, latents, poses or KnownPoses()
        self.half = HalfPlane.build(decoder.D)
        self.register_buffer("coords", self.half.coords, persistent=False)

    def load_state_dict(self, state, *args, **kwargs):
        # checkpoints written before latent sources existed name the encoder "encoder"
        state = {("latents." + k[len("encoder."):] if k.startswith("encoder.") else k): v for k, v in state.items()}
        return super().load_state_dict(state, *args, **kwargs)

    @property
    def zdim(self) -> int:
        return 0 if self.latents is None else self.latents.zdim

    @property
    def has_tables(self) -> bool:
        """Whether some parameters are per-particle tables (sparse gradients, their own optimiser)."""
        return any(getattr(m, "has_table", False) for m in (self.latents, self.poses))

    def forward(self, idx, images, rotations, ctf, noise: torch.Tensor | None = None,
                pixels: torch.Tensor | None = None) -> ModelOutput:
        """Prediction for the particles at ``idx``: images (B, P) at their poses, times their CTF.

        ``pixels`` (optional) selects the half-plane pixels predicted; the latent source still sees
        whole images (and, for a gradient encoder, the poses and CTF).
        """
        rotations, shifts = self.poses(idx, rotations)
        if shifts is not None:
            images = recentre(images, self.coords, shifts, self.decoder.D)
        z = mu = prior = features_error = None
        if self.latents is not None:
            latents = self.latents(idx, images, noise, rotations=rotations, ctf=ctf)
            z, mu, prior, features_error = latents.z, latents.mu, latents.prior, latents.features_error
        coords = self.coords if pixels is None else self.coords[pixels]
        target = images if pixels is None else images[:, pixels]
        if pixels is not None and ctf.ndim:
            ctf = ctf[:, pixels]
        pred = self.decoder(coords.to(rotations.dtype) @ rotations, z) * ctf
        return ModelOutput(pred, target, mu, prior, features_error)

    def embed(self, idx, images, rotations, ctf=None, latents: nn.Module | None = None) -> torch.Tensor:
        """Latent means (B, zdim) of the particles at ``idx`` (read by ``latents``, default the model's own)."""
        rotations, shifts = self.poses(idx, rotations)
        if shifts is not None:
            images = recentre(images, self.coords, shifts, self.decoder.D)
        return (self.latents if latents is None else latents).means(idx, images, rotations=rotations, ctf=ctf)
