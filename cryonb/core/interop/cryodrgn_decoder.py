"""cryoDRGN's volume decoders, rebuilt in cryonb: maps of a cryoDRGN run at any latent.

cryoDRGN represents a map by an MLP over positionally encoded 3D frequencies (cryoDRGN's
``lattice``: ``L = D + 1`` points from -0.5 to 0.5 along each axis, the box's Nyquist at ±0.5),
with the latent appended to the encoding. Two output domains exist:

* ``fourier``: the network returns (real, imaginary) of the transform on one half-space
  (``kz <= 0``); the other half is the complex conjugate. Only frequencies inside the sphere of
  radius 0.5 are evaluated, the rest are zero.
* ``hartley``: the network returns the Hartley value ``Re F - Im F`` at every lattice point.

Either way the map is the inverse Hartley transform of the first ``D`` lattice points along each
axis, after undoing the data normalisation (``value * norm[1] + norm[0]``): the layout cryoDRGN's
``eval_vol`` writes to its .mrc (arrays indexed [z, y, x]).

:class:`CryodrgnDecoder` covers ``train_vae`` / ``train_nn`` runs, :class:`AbinitHyperVolume`
the hypervolume of ``cryodrgn abinit`` (cryoDRGN 4). Both expose ``D``, ``zdim`` and
``volumes(z)`` like :class:`~cryonb.core.model.FourierDecoder`, so a :class:`~cryonb.core.run.Run`
uses them unchanged.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..fourier import iht3_center

ENCODINGS = ("gaussian", "geom_ft", "geom_full", "geom_lowf", "geom_nohighf", "linear_lowf", "none")
DOMAINS = ("fourier", "hartley")
ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU}


class Skip(nn.Module):
    """``x + linear(x)``: cryoDRGN's layer between two layers of the same width."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) + x


def _layer(n_in: int, n_out: int, residual: bool) -> nn.Module:
    # A layer is a skip layer when residual and its input and output widths agree.
    return Skip(n_in, n_out) if residual and n_in == n_out else nn.Linear(n_in, n_out)


class DecoderMLP(nn.Module):
    """Input layer, ``n_hidden`` hidden layers and an output layer, activations between.

    ``residual``: hidden layers (and input/output layers whose widths agree) add their input
    to their output, as cryoDRGN's decoders do; otherwise a plain MLP. The layers sit at
    ``main.0``, ``main.2`` … as in cryoDRGN's checkpoints.
    """

    def __init__(self, n_in: int, n_hidden: int, width: int, n_out: int, activation: str = "relu", residual: bool = True):
        super().__init__()
        act = ACTIVATIONS[activation]
        layers: list[nn.Module] = [_layer(n_in, width, residual), act()]
        for _ in range(n_hidden):
            layers += [_layer(width, width, residual), act()]
        layers.append(_layer(width, n_out, residual))
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


def geometric_frequencies(kind: str, n: int, lattice_D: int) -> torch.Tensor:
    """The ``n`` angular frequencies of cryoDRGN's ``geom_*`` encodings for a lattice of ``lattice_D`` points.

    With ``h = lattice_D // 2`` and ``DD = 2h``: ``geom_ft`` from π·DD down to 2π, ``geom_full``
    from π·DD down to 1, ``geom_lowf`` from h down to 1, ``geom_nohighf`` from h down to 2π;
    geometrically spaced. Computed in float32 exactly as cryoDRGN does.
    """
    h = lattice_D // 2
    dd = 2 * h
    steps = torch.arange(n, dtype=torch.float32) / (n - 1)
    if kind == "geom_ft":
        return dd * np.pi * (2.0 / dd) ** steps
    if kind == "geom_full":
        return dd * np.pi * (1.0 / dd / np.pi) ** steps
    if kind == "geom_lowf":
        return h * (1.0 / h) ** steps
    if kind == "geom_nohighf":
        return h * (2.0 * np.pi / h) ** steps
    raise ValueError(f"not a geometric encoding: {kind!r}")


class CoordinateEncoding(nn.Module):
    """sin/cos features of lattice coordinates (P, 3) in [-0.5, 0.5], as cryoDRGN's decoders compute them.

    ``gaussian``: ``3·n`` random frequency vectors (``rand_freqs`` from the checkpoint) scaled by
    ``lattice_D // 2``, features [sin(k·f), cos(k·f)]; ``geom_*``: per axis, ``n`` frequencies
    (:func:`geometric_frequencies`), features [sin, cos] per axis, axes in x, y, z order;
    ``linear_lowf``: per axis, the integers 1 … ``lattice_D // 2``; ``none``: the coordinates.
    """

    def __init__(self, kind: str, n: int, lattice_D: int):
        super().__init__()
        self.kind = kind
        self.h = lattice_D // 2
        if kind == "gaussian":
            self.register_buffer("rand_freqs", torch.zeros(3 * n, 3))  # from the checkpoint
        elif kind == "linear_lowf":
            self.register_buffer("freqs", torch.arange(1, self.h + 1, dtype=torch.float32), persistent=False)
        elif kind != "none":
            self.register_buffer("freqs", geometric_frequencies(kind, n, lattice_D), persistent=False)
        self.out_dim = 3 if kind == "none" else 6 * (self.h if kind == "linear_lowf" else n)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        if self.kind == "none":
            return coords
        if self.kind == "gaussian":
            k = (coords[..., None, :] * (self.rand_freqs * self.h)).sum(-1)
            return torch.cat([torch.sin(k), torch.cos(k)], -1)
        k = coords[..., None] * self.freqs  # (..., 3, n)
        return torch.cat([torch.sin(k), torch.cos(k)], -1).flatten(-2)


def inverse_hartley(values: torch.Tensor) -> torch.Tensor:
    """Real maps (B, D, D, D) from centred Hartley values (B, D, D, D) (D even): cryonb's
    :func:`~cryonb.core.fourier.iht3_center`, which is cryoDRGN's inverse transform for an even box."""
    return iht3_center(values)


def lattice_plane(L: int, extent: float = 0.5) -> torch.Tensor:
    """The (L*L, 3) points (x, y, 0) of one plane of cryoDRGN's lattice, x varying fastest."""
    axis = np.linspace(-extent, extent, L, endpoint=True)
    x, y = np.meshgrid(axis, axis)
    return torch.from_numpy(np.stack([x.ravel(), y.ravel(), np.zeros(L * L)], 1).astype(np.float32))


def lattice_heights(L: int, extent: float = 0.5) -> np.ndarray:
    """The kz of the lattice's L planes (float32, as cryoDRGN's evaluation steps through them)."""
    return np.linspace(-extent, extent, L, endpoint=True, dtype=np.float32)


class LatticeDecoder(nn.Module):
    """What cryoDRGN's decoders share: maps from Hartley values on the lattice (box + 1 points a
    side), computed plane by plane for several latents at once.

    ``D`` is the box, ``zdim`` the latent size, ``norm`` the data normalisation (mean, std).
    Subclasses give ``_plane(points, dz, z) -> (B, P)``: the Hartley values of the points of the
    plane at height ``dz`` (before un-normalising) for latents ``z`` (B, zdim) or None.
    """

    D: int
    zdim: int
    norm: tuple[float, float]

    @property
    def lattice_size(self) -> int:
        return self.D + 1

    def _latents(self, z) -> torch.Tensor | None:
        device = self._device()
        if not self.zdim:
            return None
        if z is None:
            raise ValueError(f"this decoder needs latents of shape (B, {self.zdim})")
        return torch.as_tensor(z, dtype=torch.float32, device=device).reshape(-1, self.zdim)

    def _device(self) -> torch.device:
        for tensor in (*self.parameters(), *self.buffers()):
            return tensor.device
        return torch.device("cpu")

    def _with_latent(self, features: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        """(B, P, F + zdim): the features of P points repeated for each latent, the latent appended."""
        if z is None:
            return features[None]
        return torch.cat([features[None].expand(len(z), -1, -1), z[:, None, :].expand(-1, len(features), -1)], -1)

    def _un_normalised(self, re: torch.Tensor, im: torch.Tensor) -> torch.Tensor:
        """``re + i im`` of normalised data as the map's transform: ``norm[1]`` times, plus ``norm[0]`` at every frequency."""
        return torch.complex(re * self.norm[1] + self.norm[0], im * self.norm[1])

    def _batched_latents(self, coords: torch.Tensor, z) -> torch.Tensor | None:
        if not self.zdim:
            return None
        return torch.as_tensor(z, dtype=torch.float32, device=coords.device).reshape(len(coords), self.zdim)

    @torch.no_grad()
    def hartley_values(self, z=None) -> torch.Tensor:
        """Un-normalised Hartley values (B, L, L, L) on the whole lattice (L = D + 1), indexed [kz, ky, kx]."""
        zt = self._latents(z)
        L = self.lattice_size
        plane = lattice_plane(L).to(self._device())
        out = torch.zeros(1 if zt is None else len(zt), L, L, L, device=plane.device)
        for i, dz in enumerate(lattice_heights(L)):
            out[:, i] = self._plane(plane, dz, zt).reshape(-1, L, L)
        return out * self.norm[1] + self.norm[0]

    @torch.no_grad()
    def volumes(self, z=None, points_per_chunk: int = 2**16) -> torch.Tensor:
        """Real-space maps (B, D, D, D), [z, y, x], as ``cryodrgn eval_vol`` writes them (no flip, no invert).

        Latents are evaluated together, about ``points_per_chunk`` lattice points at a time.
        """
        zt = self._latents(z)
        if zt is None:
            return inverse_hartley(self._finish(self.hartley_values(None))[..., :-1, :-1, :-1])
        per_chunk = max(1, points_per_chunk // self.lattice_size**2)
        starts = range(0, len(zt), per_chunk)
        out = torch.empty(len(zt), self.D, self.D, self.D, device=zt.device)
        for start in tqdm(starts, desc="maps", unit="chunk", disable=len(starts) < 4, leave=False):
            values = self._finish(self.hartley_values(zt[start : start + per_chunk]))
            out[start : start + per_chunk] = inverse_hartley(values[..., :-1, :-1, :-1])
        return out

    def _finish(self, values: torch.Tensor) -> torch.Tensor:
        return values


class CryodrgnDecoder(LatticeDecoder):
    """The decoder of a cryoDRGN ``train_vae`` (or ``train_nn``) run.

    ``lattice_D``: cryoDRGN's lattice size (box + 1); ``n_hidden``/``width``: its ``players``/``pdim``
    (``layers``/``dim``); ``encoding``: ``pe_type``; ``n_freqs``: ``pe_dim`` (None: box // 2);
    ``feat_sigma`` is kept only for the record (the frequencies come from the checkpoint); ``norm``:
    the data normalisation (mean, std) of the run's ``dataset_args``.
    """

    def __init__(self, lattice_D: int, zdim: int, n_hidden: int, width: int, domain: str = "fourier",
                 encoding: str = "gaussian", n_freqs: int | None = None, activation: str = "relu",
                 norm: tuple[float, float] = (0.0, 1.0), feat_sigma: float | None = None):
        super().__init__()
        if domain not in DOMAINS:
            raise ValueError(f"unknown domain {domain!r}; cryoDRGN's are {DOMAINS}")
        if encoding not in ENCODINGS:
            raise ValueError(f"unknown positional encoding {encoding!r}; cryoDRGN's are {ENCODINGS}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; cryoDRGN's are {tuple(ACTIVATIONS)}")
        if lattice_D % 2 != 1 or lattice_D < 3:
            raise ValueError(f"cryoDRGN's lattice size is the box + 1 (odd), not {lattice_D}")
        self.D, self.zdim, self.domain, self.encoding_kind = lattice_D - 1, zdim, domain, encoding
        self.norm = (float(norm[0]), float(norm[1]))
        self.feat_sigma = feat_sigma
        n = lattice_D // 2 if n_freqs is None else int(n_freqs)
        if encoding == "linear_lowf" and n != lattice_D // 2:
            raise ValueError(f"linear_lowf encodes {lattice_D // 2} frequencies; pe_dim={n} does not fit it")
        if encoding.startswith("geom") and n < 2:
            raise ValueError(f"{encoding} needs at least 2 frequencies, not pe_dim={n}")
        self.encoding = CoordinateEncoding(encoding, n, lattice_D)
        self.mlp = DecoderMLP(self.encoding.out_dim + zdim, n_hidden, width, 2 if domain == "fourier" else 1, activation)

    def network(self, points: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        """The MLP's output (B, P, 1 or 2) at lattice points (P, 3) for latents (B, zdim)."""
        return self.mlp(self._with_latent(self.encoding(points), z))

    def forward(self, coords: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """The map's transform (B, P) complex at frequencies ``coords`` (B, P, 3) in pixels, for latents
        ``z`` (B, zdim): what ``volumes()`` inverts, like :class:`~cryonb.core.model.FourierDecoder`'s
        ``forward`` (no sphere mask here: frequencies beyond Nyquist are evaluated too)."""
        points = coords.float() / self.D  # lattice units: Nyquist at ±0.5
        zt = self._batched_latents(points, z)

        def net(p):
            features = self.encoding(p)
            if zt is not None:
                features = torch.cat([features, zt[:, None, :].expand(-1, p.shape[1], -1)], -1)
            return self.mlp(features)

        if self.domain == "fourier" and self.encoding_kind != "none":
            # the half-space the network answers for, as in the maps: kz < 0, and in the plane kz = 0
            # the points before the centre in lattice order (ky < 0, or ky = 0 and kx <= 0)
            x, y, zc = points.unbind(-1)
            upper = ((zc > 0) | ((zc == 0) & ((y > 0) | ((y == 0) & (x > 0)))))[..., None]
            out = net(torch.where(upper, -points, points))
            re, im = out[..., 0], torch.where(upper[..., 0], -out[..., 1], out[..., 1])
            origin = (points == 0).all(-1)  # its own mirror image: the maps take its Hartley value, real
            return self._un_normalised(torch.where(origin, re - im, re), torch.where(origin, 0.0, im))

        def hartley(p):  # the Hartley value the maps take at p
            if self.domain == "hartley":
                return net(p)[..., 0]
            upper = p[..., 2:3] > 0  # without an encoding, cryoDRGN conjugates kz > 0 only
            out = net(torch.where(upper, -p, p))
            return out[..., 0] - torch.where(upper[..., 0], -out[..., 1], out[..., 1])

        h, h_minus = hartley(points), hartley(-points)
        return self._un_normalised((h + h_minus) / 2, (h_minus - h) / 2)

    def _plane(self, plane: torch.Tensor, dz, z) -> torch.Tensor:
        points = plane + torch.tensor([0.0, 0.0, dz], device=plane.device)
        B = 1 if z is None else len(z)
        if self.domain == "hartley":
            return self.network(points, z)[..., 0]
        if self.encoding_kind == "none":
            return self._hartley_half_space(points, z)  # every point; outside the sphere zeroed later
        keep = torch.nonzero(points.pow(2).sum(dim=1) <= 0.5**2).squeeze(1)
        values = torch.zeros(B, len(points), device=plane.device)
        inside = points[keep]
        if dz == 0.0:
            # The central plane: the first half of its points (in lattice order) are evaluated, the
            # others are their mirror images k -> -k, whose Hartley value is Re F + Im F.
            n = len(inside)
            first = n // 2 + n % 2
            out = self.network(inside[:first], z)
            mirrored = (out[..., 0] + out[..., 1]).flip(-1)[..., n % 2 :]
            values[:, keep] = torch.cat([out[..., 0] - out[..., 1], mirrored], -1)
        else:
            values[:, keep] = self._hartley_half_space(inside, z)
        return values

    def _hartley_half_space(self, points: torch.Tensor, z) -> torch.Tensor:
        """Hartley values where the network is evaluated on kz <= 0 and conjugated for kz > 0."""
        upper = points[:, 2] > 0.0
        out = self.network(torch.where(upper[:, None], -points, points), z)
        imag = torch.where(upper, -out[..., 1], out[..., 1])
        return out[..., 0] - imag

    def _finish(self, values: torch.Tensor) -> torch.Tensor:
        if self.domain == "fourier" and self.encoding_kind == "none":
            values = values.masked_fill(_outside_sphere(self.lattice_size).to(values.device), 0.0)
        return values


class AbinitHyperVolume(LatticeDecoder):
    """The hypervolume of a ``cryodrgn abinit`` run (cryoDRGN 4): Hartley domain, gaussian encoding.

    ``resolution``: the lattice size (box + 1); ``mask_radius``: the output mask's radius in
    lattice pixels (frequencies beyond it, and the kx = ky = 0 line, are zero, as cryoDRGN
    evaluates them); ``conf_encoding``: None (the latent as is) or ``"geom"`` (4 sin/cos
    frequencies per latent dimension).
    """

    def __init__(self, resolution: int, zdim: int, n_hidden: int, width: int, n_freqs: int,
                 mask_radius: float, norm: tuple[float, float], conf_encoding: str | None = None):
        super().__init__()
        if resolution % 2 != 1 or resolution < 3:
            raise ValueError(f"cryoDRGN's lattice size is the box + 1 (odd), not {resolution}")
        if conf_encoding not in (None, "geom"):
            raise ValueError(f"unknown latent encoding {conf_encoding!r}")
        self.D, self.zdim = resolution - 1, zdim
        self.mask_radius = float(mask_radius)
        self.norm = (float(norm[0]), float(norm[1]))
        self.conf_encoding = conf_encoding
        self.encoding = CoordinateEncoding("gaussian", n_freqs, resolution)
        if conf_encoding == "geom":
            self.register_buffer("geom_freqs_conf", 2.0 ** torch.arange(-4, 0, dtype=torch.float32) * np.pi)
        z_features = zdim * 8 if conf_encoding == "geom" else zdim
        self.mlp = DecoderMLP(self.encoding.out_dim + z_features, n_hidden, width, 1)

    def _conf_features(self, z: torch.Tensor | None) -> torch.Tensor | None:
        if z is None or self.conf_encoding != "geom":
            return z
        angles = z[..., None] * self.geom_freqs_conf
        return torch.cat([torch.sin(angles), torch.cos(angles)], -1).flatten(-2)

    def forward(self, coords: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """The map's transform (B, P) complex at frequencies ``coords`` (B, P, 3) in pixels, for latents
        ``z`` (B, zdim); zero beyond the output mask's radius."""
        points = coords.float() / self.D
        zt = self._conf_features(self._batched_latents(points, z))

        def hartley(p):
            features = self.encoding(p)
            if zt is not None:
                features = torch.cat([features, zt[:, None, :].expand(-1, p.shape[1], -1)], -1)
            return self.mlp(features)[..., 0]

        h, h_minus = hartley(points), hartley(-points)
        inside = (coords.float().norm(dim=-1) <= self.mask_radius).float()
        return self._un_normalised((h + h_minus) / 2 * inside, (h_minus - h) / 2 * inside)

    def _plane(self, plane: torch.Tensor, dz, z) -> torch.Tensor:
        points = plane + torch.tensor([0.0, 0.0, dz], device=plane.device)
        z = self._conf_features(z)
        values = self.mlp(self._with_latent(self.encoding(points), z))[..., 0]
        L = self.lattice_size
        radius_normalized = 2 * 0.5 * self.mask_radius / L
        dz = np.float32(dz)  # the plane's radius is computed in float32, as cryoDRGN does
        radius = int(np.sqrt(max(radius_normalized**2 - dz**2, 0.0)) * L)
        return values * _circular_mask(plane, L, radius).to(values.dtype)


def _circular_mask(plane: torch.Tensor, L: int, radius: int) -> torch.Tensor:
    """cryoDRGN's circular lattice mask of ``radius`` pixels: the plane's points within it, less the centre."""
    if 2 * radius + 1 > L:
        raise ValueError(f"mask radius {radius} is too large for a lattice of {L}")
    limit = radius / (L // 2) * 0.5
    mask = plane.pow(2).sum(-1) <= limit**2
    mask[L * L // 2] = False
    return mask


def _outside_sphere(L: int) -> torch.Tensor:
    """(L, L, L) True beyond radius 1 of a grid from -1 to 1 (the corners cryoDRGN zeroes)."""
    axis = np.linspace(-1, 1, L, endpoint=True)
    z, y, x = np.meshgrid(axis, axis, axis)
    r = np.sum(np.stack((x, y, z), -1) ** 2, axis=-1) ** 0.5
    return torch.from_numpy(r > 1)
