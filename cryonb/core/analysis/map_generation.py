"""Many maps of a run, chunk by chunk on its device, at its box or a smaller one (a sketch).

A map at a smaller box ``d`` is the run's map low-passed to the sketch's Nyquist sphere and sampled
on a ``d`` grid: the decoder is asked only for frequencies with ``|k| <= d // 2``, so a sketch at
half the box costs an eighth of a full map. For cryonb's :class:`~cryonb.core.model.FourierDecoder`
the z-independent part of the first layer is computed once per chunk of frequencies and only the
half-space ``kz >= 0`` is evaluated (the rest follows from Hermitian symmetry). A sketch of any
other decoder with ``forward(coords, z)`` (cryoDRGN's, rebuilt in cryonb) evaluates its half-space
through ``forward``, once checked against ``run.volumes`` on the first latent; anything else goes
through ``run.volumes`` and a Fourier crop.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError
from ..fourier import fft3_center, ifft3_center

_FAST_PARTS = ("D", "zdim", "encoding", "coords_in", "latent_in", "net")


def _fast_decoder(run):
    """The run's decoder if maps can be generated from its parts directly, else None."""
    decoder = getattr(getattr(run, "model", None), "decoder", None)
    if decoder is None or not hasattr(run, "scale") or not all(hasattr(decoder, name) for name in _FAST_PARTS):
        return None
    if getattr(decoder, "latent_in", None) is None or not isinstance(decoder, torch.nn.Module):
        return None
    return decoder


def _forward_decoder(run):
    """The run's decoder if it gives the map's transform as ``forward(coords, z)`` (no parts to split), else None."""
    decoder = getattr(getattr(run, "model", None), "decoder", None)
    if isinstance(decoder, torch.nn.Module) and hasattr(decoder, "D") and hasattr(run, "scale") and getattr(run, "zdim", 0):
        return decoder
    return None


def _model_device(run) -> torch.device:
    """The device of the run's model's parameters, or the CPU."""
    try:
        return next(run.model.parameters()).device
    except (AttributeError, StopIteration, TypeError):
        return torch.device("cpu")


def _half_space(d: int, device, nyquist: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Frequencies (P, 3) (kx, ky, kz) with kz >= 0 inside the sphere of radius d // 2, and their
    flat positions in a half spectrum (d, d, d // 2 + 1) indexed [x, y, z] in FFT order.

    ``nyquist=False`` leaves out, for an even ``d``, the three frequencies on the axes at the
    sketch's Nyquist (d/2), whose Hermitian partners lie outside the sketch's grid."""
    r = d // 2
    k = torch.arange(d, device=device) - d // 2  # the centred range
    kz = torch.arange(r + 1, device=device)
    kx, ky, kz = torch.meshgrid(k, k, kz, indexing="ij")
    keep = kx**2 + ky**2 + kz**2 <= r * r
    if not nyquist and d % 2 == 0:
        keep &= (kx != -r) & (ky != -r) & (kz != r)
    kx, ky, kz = kx[keep], ky[keep], kz[keep]
    flat = ((kx % d) * d + (ky % d)) * (r + 1) + kz
    return torch.stack([kx, ky, kz], dim=-1).float(), flat


def _flip_xy(plane: torch.Tensor) -> torch.Tensor:
    """``plane(-kx, -ky)`` for a (B, d, d) plane in FFT order."""
    return torch.roll(torch.flip(plane, dims=(1, 2)), shifts=(1, 1), dims=(1, 2))


def crop_to_sphere(maps: torch.Tensor, d: int) -> torch.Tensor:
    """Maps (B, D, D, D) low-passed to the sphere ``|k| <= d // 2`` and resampled on a ``d`` grid.

    For an even ``d`` the frequencies at the sketch's Nyquist on the axes are left out too (their
    Hermitian partners are outside the sketch's grid), as :class:`MapGenerator` leaves them out.
    """
    D = maps.shape[-1]
    if d == D:
        return maps
    F = fft3_center(maps)
    start = D // 2 - d // 2
    F = F[:, start : start + d, start : start + d, start : start + d]
    k = torch.arange(d, device=maps.device) - d // 2
    inside = (k[:, None, None] ** 2 + k[None, :, None] ** 2 + k[None, None, :] ** 2) <= (d // 2) ** 2
    if d % 2 == 0:
        inside &= (k[:, None, None] != -(d // 2)) & (k[None, :, None] != -(d // 2)) & (k[None, None, :] != -(d // 2))
    return ifft3_center(F * inside).real * (d / D) ** 3


def _evaluate(decoder, coords: torch.Tensor, latent: torch.Tensor, bf16: bool) -> torch.Tensor:
    """The decoder's (real, imaginary) outputs (B, P, 2) at frequencies ``coords`` (P, 3) with kz >= 0
    for latents whose first-layer term is ``latent`` (B, 1, width): its forward pass, with the
    z-independent first layer computed once for all B latents."""
    with torch.autocast(coords.device.type, enabled=False):  # phases need float32
        features = decoder.encoding(coords / decoder.D)
    with torch.autocast(coords.device.type, torch.bfloat16, enabled=bf16):
        return decoder.net(torch.relu(decoder.coords_in(features)[None] + latent)).float().contiguous()


class MapGenerator:
    """Maps (B, d, d, d) for latents (B, zdim) of ``run``, as device tensors, ``maps_per_chunk`` at a time.

    ``box`` is the sketch box ``d`` (default: the run's box); ``apix`` is then the run's pixel size
    times D/d. ``evaluations_per_chunk`` bounds the decoder evaluations held at once (GPU memory).
    ``compile=True`` compiles the decoder's evaluation with ``torch.compile`` (fused elementwise
    work; worth it for thousands of maps on a GPU), padding chunks to one shape; a string is
    ``torch.compile``'s mode (e.g. ``"max-autotune-no-cudagraphs"``: matrix products with the
    bias, residual sum and ReLU fused into them).
    """

    def __init__(self, run, box: int | None = None, device=None, maps_per_chunk: int | None = None,
                 evaluations_per_chunk: int | None = None, compile: bool | str = False):
        D = int(run.box_size)
        d = D if box is None else int(box)
        if not 4 <= d <= D:
            raise InputError(None, f"a sketch box of {box} does not fit the run's box of {D}",
                             f"choose a box from 4 to {D}")
        self.run, self.D, self.box = run, D, d
        self.apix = float(run.apix) * D / d
        self.decoder = _fast_decoder(run)
        # A sketch of another decoder that gives its transform: its forward, once checked on a first latent.
        self.forward_decoder = _forward_decoder(run) if self.decoder is None and d < D else None
        self._checked = False
        if self.decoder is not None:
            self.device = next(self.decoder.parameters()).device
        else:
            self.device = torch.device(device) if device is not None else _model_device(run)
        cuda = self.device.type == "cuda"
        self.maps_per_chunk = maps_per_chunk or (32 if cuda else 8)
        self.evaluations_per_chunk = evaluations_per_chunk or (2**21 if cuda else 2**17)
        self.compiled = bool(compile) and self.decoder is not None
        mode = compile if isinstance(compile, str) else None
        self._evaluate = torch.compile(_evaluate, dynamic=False, mode=mode) if self.compiled else _evaluate
        if self.decoder is not None or self.forward_decoder is not None:
            self.coords, self.flat = _half_space(d, self.device, nyquist=d == D)

    @property
    def fast(self) -> bool:
        """True when maps come from the decoder's parts (half-space, sketch frequencies only)."""
        return self.decoder is not None

    @property
    def path(self) -> str:
        """How maps are made: ``"parts"`` (:attr:`fast`), ``"forward"`` (a sketch through the decoder's
        forward) or ``"volumes"`` (``run.volumes`` and a Fourier crop)."""
        return "parts" if self.decoder is not None else "forward" if self.forward_decoder is not None else "volumes"

    def _from_volumes(self, z: np.ndarray) -> torch.Tensor:
        maps = torch.from_numpy(np.asarray(self.run.volumes(z), dtype=np.float32)).to(self.device)
        return crop_to_sphere(maps, self.box)

    def __call__(self, z) -> torch.Tensor:
        z = np.asarray(z, dtype=np.float32).reshape(-1, int(self.run.zdim))
        if self.decoder is not None:
            return self._generate(torch.from_numpy(z).to(self.device))
        if self.forward_decoder is not None:
            maps = self._generate_forward(torch.from_numpy(z).to(self.device))
            if not self._checked:  # the decoder's forward must give the transform of its maps
                self._checked = True
                reference = self._from_volumes(z[:1])
                if (maps[:1] - reference).abs().max() > 1e-4 * reference.abs().max().clamp_min(1e-30):
                    self.forward_decoder = None
                    return self._from_volumes(z)
            return maps
        return self._from_volumes(z)

    @torch.no_grad()
    def _generate_forward(self, z: torch.Tensor) -> torch.Tensor:
        """Sketch maps through ``decoder(coords (B, P, 3), z)``, in float32, half-space only."""
        d, r, dec = self.box, self.box // 2, self.forward_decoder
        size = d * d * (r + 1)
        spectrum = torch.zeros(len(z), size, dtype=torch.complex64, device=self.device)
        points = max(1, self.evaluations_per_chunk // len(z))
        for start in range(0, len(self.coords), points):
            coords = self.coords[start : start + points]
            values = dec(coords[None].expand(len(z), -1, -1), z)
            spectrum[:, self.flat[start : start + points]] = values.to(torch.complex64)
        return self._to_maps(spectrum.reshape(len(z), d, d, r + 1))

    @torch.no_grad()
    def _generate(self, z: torch.Tensor) -> torch.Tensor:
        d, r, dec = self.box, self.box // 2, self.decoder
        n, size = len(z), d * d * (r + 1)
        coords, flat = self.coords, self.flat
        if self.compiled:  # one shape for every call: pad the latents and the frequencies, drop the extra
            z = torch.cat([z, z[:1].expand(self.maps_per_chunk - n, -1)]) if n < self.maps_per_chunk else z
        points = max(1, self.evaluations_per_chunk // len(z))
        if self.compiled and len(coords) % points:
            extra = points - len(coords) % points
            coords = torch.cat([coords, coords.new_zeros(extra, 3)])
            flat = torch.cat([flat, flat.new_full((extra,), size)])  # a sink column, dropped below
        bf16 = self.device.type == "cuda"
        spectrum = torch.zeros(len(z), size + 1, dtype=torch.complex64, device=self.device)
        with torch.autocast(self.device.type, torch.bfloat16, enabled=bf16):
            latent = dec.latent_in(z)[:, None, :]
        for start in range(0, len(coords), points):
            out = self._evaluate(dec, coords[start : start + points], latent, bf16)
            spectrum[:, flat[start : start + points]] = torch.view_as_complex(out)
        return self._to_maps(spectrum[:n, :size].reshape(n, d, d, r + 1))

    def _to_maps(self, spectrum: torch.Tensor) -> torch.Tensor:
        """Maps (B, d, d, d) [z, y, x] from half spectra (B, d, d, d // 2 + 1) [x, y, z] in FFT order."""
        d, r = self.box, self.box // 2
        # Only the Hermitian part of the spectrum makes the real map: make the kz = 0 plane (and, for
        # an even box, the Nyquist point) exactly Hermitian, as the real part of the full transform has it.
        plane = spectrum[..., 0]
        spectrum[..., 0] = (plane + _flip_xy(plane).conj()) / 2
        if d % 2 == 0:
            spectrum[:, 0, 0, r] = spectrum[:, 0, 0, r].real.to(spectrum.dtype)
        maps = torch.fft.irfftn(spectrum, s=(d, d, d), dim=(1, 2, 3))
        maps = torch.fft.fftshift(maps, dim=(1, 2, 3)).permute(0, 3, 2, 1)  # [x, y, z] -> [z, y, x]
        return maps * (float(self.run.scale) * (d / self.D) ** 3)

    def chunks(self, z):
        """(start, maps) for consecutive chunks of the latents ``z`` (N, zdim)."""
        for start in range(0, len(z), self.maps_per_chunk):
            yield start, self(z[start : start + self.maps_per_chunk])
