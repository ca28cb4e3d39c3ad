"""Projection matching: the rotation and shift of each image that best match a model's slices.

The pose of an image minimises the squared error between the image, translated by its shift,
and the model's CTF-modulated central slice, over rotations and shifts. The search is the
hierarchical one of cryoDRGN-AI (Levy et al., 2024): every rotation of a coarse
:mod:`~cryonb.core.so3grid` grid (resolution 2: 4,608 rotations, about 15° apart) with a grid of
shifts, then a few rounds in which the ``keep`` best poses of each image are subdivided (8
children at half the angular step, the shift grid halved around each pose's best shift).
Frequency marching: round ``i`` compares only the pixels with ``|k| ≤ L_i``, ``L`` growing
linearly over the rounds (12 to 32 pixels by default), so early rounds are cheap and see only the
robust low frequencies.

Shifts cost no decoder calls: the error of every shift of the grid comes from one matrix
product of the slices with the images' phase-ramped transforms. Where all images share one map,
rotations cost few decoder calls too: the decoder draws the map once per call on a grid twice as
fine as the pixels (:class:`DrawnMap`), every candidate's slice is interpolated from it, and only
the last round's best few candidates are scored through the decoder itself. Where each image has
a map of its own (a latent per image), each image's map is drawn within the first round's radius
for that round, which covers the whole base grid. Shifts follow the particle metadata's
convention: translating an image by ``+shift`` (multiplying its transform by
``exp(-2πi k·shift/D)``) centres its particle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from functools import lru_cache

import torch
from torch import nn

from . import so3grid
from .projection import sample_volume

# cryoDRGN-AI's defaults (cryodrgn abinit): base grid, poses kept, rounds, radii, shift grid
BASE_RESOLUTION = 2
KEEP = 8
ITERATIONS = 4
RADIUS = (12, 32)
SHIFT_POINTS = 14  # per axis: cryoDRGN-AI's 7 at its base resolution 1, doubled at resolution 2
SHIFT_EXTENT_128 = 20.0  # pixels at a box of 128, scaled to the searched box
MAP_GRID = 2  # samples per pixel of the grid a shared map is drawn on
RESCORE = 8  # the last round's best candidates scored again through the decoder (a drawn map only)


@dataclass
class PoseSearchResult:
    """The best pose of each image of a batch."""

    rotations: torch.Tensor  # (B, 3, 3), cryonb's convention (slice coordinates = [kx, ky, 0] @ R)
    shifts: torch.Tensor  # (B, 2) pixels of the searched box: translating the image by +shift centres it
    error: torch.Tensor  # (B,) squared error over the half-plane pixels within the last radius
    index: torch.Tensor  # (B,) grid index of the rotation at the final resolution
    labels: torch.Tensor | None = None  # (B,) the best class (search_classes)

    def rows(self, where: slice | torch.Tensor) -> PoseSearchResult:
        """The result of the images at ``where``."""
        return PoseSearchResult(*(None if v is None else v[where] for v in (getattr(self, f.name) for f in fields(self))))


class MapDecoder(nn.Module):
    """A known map (D, D, D) as a decoder: ``decoder(coords, z)`` samples its 3D transform.

    Uses the simulator's projector (a 2× padded transform, trilinear interpolation with the
    kernel divided out), so that the slices are those :func:`cryonb.core.simulate.simulate`
    draws images from. ``z`` is ignored.
    """

    def __init__(self, volume: torch.Tensor):
        super().__init__()
        from .simulate import padded_transform

        volume = torch.as_tensor(volume, dtype=torch.float32)
        padded = padded_transform(volume)
        self.D = volume.shape[-1]
        self.pad = padded.shape[-1] // self.D
        self.register_buffer("transform", padded)

    def forward(self, coords: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        with torch.autocast(coords.device.type, enabled=False):  # a known map is sampled in float32
            return sample_volume(self.transform, coords.float() * self.pad)


class DrawnMap(nn.Module):
    """``decoder``'s map drawn once on a grid ``oversample`` times finer than the pixels, within
    ``radius`` pixels; ``drawn(coords)`` interpolates it trilinearly, as ``decoder(coords)``. With
    ``z`` (n, zdim), the map of each latent is drawn, and :meth:`slices` gives each map's slices.

    Drawing costs about 2π/3 · (``oversample`` · radius)³ decoder points a map (half the ball: the
    other half is the conjugate, as the decoders' maps are real), once; a search then needs no decoder
    call per candidate rotation. At twice the pixel rate the interpolation damps a particle's
    edge at a quarter of the box by about 5 %, alike for every candidate.
    """

    def __init__(self, decoder, radius: float, *, z: torch.Tensor | None = None, oversample: int = MAP_GRID,
                 chunk: int = 2**21, amp: torch.dtype | None = None, device=None):
        super().__init__()
        self.oversample = int(oversample)
        n = self.oversample * (math.ceil(radius) + 1)  # half-width in samples: interpolation needs a margin
        axis = torch.arange(-n, n + 1, device=device, dtype=torch.float32) / self.oversample
        kz, ky, kx = torch.meshgrid(axis, axis, axis, indexing="ij")
        points = torch.stack([kx, ky, kz], -1)
        needed = (kz >= 0) & (points.norm(dim=-1) <= radius + math.sqrt(3) / self.oversample)
        inside = points[needed]
        maps = 1 if z is None else len(z)
        step = max(1, chunk // max(1, maps))  # points of every map per decoder call
        values = torch.zeros((maps, *kz.shape), dtype=torch.complex64, device=device)
        with torch.autocast(axis.device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
            values[:, needed] = torch.cat([decoder(inside[None, i : i + step].expand(maps, -1, -1), z).to(torch.complex64)
                                           for i in range(0, len(inside), step)], dim=1)
        lower = kz < 0  # F(-k) = conj F(k): the grid is symmetric about its centre
        values = torch.where(lower, values.flip(1, 2, 3).conj(), values)
        self.register_buffer("values", values[0] if z is None else values)

    def forward(self, coords: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        with torch.autocast(coords.device.type, enabled=False):
            return sample_volume(self.values, coords.float() * self.oversample)

    def slices(self, coords: torch.Tensor) -> torch.Tensor:
        """Every map's values (n, ...) at ``coords`` (..., 3) (maps drawn with ``z``)."""
        n = len(self.values)
        with torch.autocast(coords.device.type, enabled=False):
            out = sample_volume(torch.cat([self.values.real, self.values.imag]), coords.float() * self.oversample)
        return torch.complex(out[:n], out[n:])


def marching_radii(iterations: int, radius: tuple[float, float], D: int) -> list[float]:
    """The frequency radius (pixels) of each of the ``iterations + 1`` rounds: from ``radius[0]`` to
    ``radius[1]`` in equal integer steps, both capped at Nyquist (``D // 2``)."""
    hi = min(radius[1], D // 2)
    lo = min(radius[0], hi)
    if iterations == 0:
        return [hi]
    return [lo + int(i / iterations * (hi - lo)) for i in range(iterations + 1)]


def shift_grid(points: int, extent: float, device=None) -> torch.Tensor:
    """``points``² shifts (x fastest) at the centres of equal cells covering ±``extent`` pixels."""
    if points < 1 or extent < 0:
        raise ValueError(f"a shift grid needs at least 1 point and extent >= 0 (got {points}, {extent})")
    step = 2 * extent / points
    axis = -extent + step / 2 + step * torch.arange(points, dtype=torch.float32, device=device)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([x.reshape(-1), y.reshape(-1)], -1)


def phase_ramps(k: torch.Tensor, shifts: torch.Tensor, D: int) -> torch.Tensor:
    """``exp(-2πi k·s / D)`` (..., P) for frequencies ``k`` (P, 2) pixels and shifts (..., 2) pixels."""
    phase = (shifts @ k.T) * (-2 * math.pi / D)
    return torch.polar(torch.ones_like(phase), phase)


@lru_cache(maxsize=4)
def _grid(resolution: int) -> torch.Tensor:
    return so3grid.rotations(resolution).float()


def _slices(decoder, coords: torch.Tensor, R: torch.Tensor, z: torch.Tensor | None, amp=None) -> torch.Tensor:
    """``decoder(coords @ R, z)`` (n, P) complex64 for rotations ``R`` (n, 3, 3); the decoder runs in
    ``amp``'s dtype (the caller's autocast, or None: float32), the rotations and errors in float32."""
    rotated = coords @ R
    with torch.autocast(coords.device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
        out = decoder(rotated, z)
    return out.to(torch.complex64)


def _real_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``Re(a @ bᴴ)`` with real matrix products (batched over leading axes)."""
    return a.real @ b.real.transpose(-1, -2) + a.imag @ b.imag.transpose(-1, -2)


def _candidate_errors(decoder, R, z, centre, offsets, x, c, k3, D, chunk, amp):
    """The least error (B, M) of each image's candidate rotations ``R`` (B, M, 3, 3) over the shifts
    ``offsets`` (T, 2) around the candidate's ``centre`` (B, M, 2), and which offset gave it (B, M);
    images ``x`` (B, P), CTF ``c`` on pixels ``k3`` (P, 3)."""
    B, M = R.shape[:2]
    rows = max(1, chunk // max(1, len(k3)))
    flat_R = R.reshape(-1, 3, 3)
    flat_z = None if z is None else z.repeat_interleave(M, dim=0)
    Y = torch.cat([_slices(decoder, k3, flat_R[r0 : r0 + rows], None if flat_z is None else flat_z[r0 : r0 + rows], amp)
                   for r0 in range(0, len(flat_R), rows)]).reshape(B, M, -1)
    y_norm = (Y.abs().pow(2) * c[:, None, :].pow(2)).sum(-1)  # (B, M)
    W = (c * x)[:, None, :] * phase_ramps(k3[:, :2], centre, D) * Y.conj()  # (B, M, P)
    E = phase_ramps(k3[:, :2], offsets, D)  # (T, P)
    dots = W.real @ E.real.T - W.imag @ E.imag.T  # Re(W @ Eᵀ): (B, M, T)
    return (x.abs().pow(2).sum(-1)[:, None, None] + y_norm[..., None] - 2 * dots).min(-1)


def _drop_repeats(cand: torch.Tensor, err: torch.Tensor) -> torch.Tensor:
    """``err`` with +inf for all but the best of candidates that share a grid index (children of
    neighbouring poses can coincide)."""
    order = err.argsort(1)
    by_err = cand.gather(1, order)
    by_index, perm = by_err.sort(dim=1, stable=True)  # equal indices: the lower error first
    repeat = torch.zeros_like(by_index, dtype=torch.bool)
    repeat[:, 1:] = by_index[:, 1:] == by_index[:, :-1]
    mark = torch.zeros_like(repeat)
    mark.scatter_(1, order.gather(1, perm), repeat)
    return err.masked_fill(mark, math.inf)


@torch.no_grad()
def search_poses(decoder, images: torch.Tensor, ctf, half, z: torch.Tensor | None = None, *,
                 base_resolution: int = BASE_RESOLUTION, keep: int = KEEP, iterations: int = ITERATIONS,
                 shifts: int = SHIFT_POINTS, shift_extent: float | None = None,
                 radius: tuple[float, float] = RADIUS, chunk: int = 2**21,
                 grid_rotation: torch.Tensor | None = None, map_grid: int = MAP_GRID,
                 rescore: int = RESCORE) -> PoseSearchResult:
    """The best rotation and shift of each image (B, P) against ``decoder``'s slices.

    ``decoder(coords (n, P, 3), z (n, zdim) or None)`` returns complex (n, P); ``images`` are
    half-plane transforms (B, P) on the pixels of ``half`` (a :class:`~cryonb.core.model.HalfPlane`)
    and ``ctf`` their CTF (B, P) or a scalar. ``z`` (B, zdim): each image is matched against the
    map of its latent; None: one map for all, whose slices are computed once per batch.

    ``shifts`` points per axis over ±``shift_extent`` pixels (default: 20 px at a box of 128,
    scaled to this box; 0 or ``shifts=1`` searches no shift), halved each round around each kept
    pose's best shift. ``grid_rotation`` (3, 3) turns the whole grid (each candidate ``R`` becomes
    ``R @ grid_rotation``): a fresh random turn per call, as an ab initio run uses, keeps the
    poses from clustering on the grid's points while the map is still vague. ``chunk`` bounds the
    points per decoder call, and so the memory (the decoder's activations, a few bytes per point
    and hidden unit, dominate).

    ``map_grid``: with ``z`` None, the decoder's map is drawn once on a grid of that many samples
    per pixel (:class:`DrawnMap`) and the slices are interpolated from it; 0 evaluates the decoder
    at every pixel of every candidate slice (exact, and far slower). The last round's ``rescore``
    best candidates are then scored again through the decoder itself, which the choice between
    neighbouring poses needs: the interpolated slices alone left poses about a degree worse (CPU
    benchmark, box 32). With ``z``, each image's map is drawn within the first round's radius and
    that round, every rotation of the base grid, is interpolated from it (where that costs fewer
    decoder points than the round's slices: a few percent of them with the default grid); the later
    rounds, a few candidates per image, run the decoder at their pixels. A :class:`MapDecoder` is
    sampled directly.
    """
    device, B, D = images.device, len(images), half.D
    amp = torch.get_autocast_dtype(device.type) if torch.is_autocast_enabled(device.type) else None
    coords = half.coords.to(device)
    radius_px = coords[:, :2].norm(dim=-1)
    ctf = torch.as_tensor(ctf, device=device).float().expand(B, coords.shape[0])
    extent = SHIFT_EXTENT_128 * D / 128 if shift_extent is None else float(shift_extent)
    offsets = shift_grid(shifts if extent > 0 else 1, extent, device)
    radii = marching_radii(iterations, radius, D)
    turn = torch.eye(3, device=device) if grid_rotation is None else grid_rotation.to(device, torch.float32)
    with torch.autocast(device.type, enabled=False):  # rotations in float32 under a caller's autocast too
        grid = _grid(base_resolution).to(device) @ turn
    keep = min(keep, len(grid))
    exact = None
    if z is None and map_grid and not isinstance(decoder, (MapDecoder, DrawnMap)):
        exact = decoder if rescore else None
        decoder = DrawnMap(decoder, radii[-1], oversample=map_grid, chunk=chunk, amp=amp, device=device)

    with torch.autocast(device.type, enabled=False):
        # Round 0: every grid rotation, every shift.
        inside = radius_px <= radii[0]
        x, c, k3 = images[:, inside].to(torch.complex64), ctf[:, inside], coords[inside]
        x_norm = x.abs().pow(2).sum(-1)
        ramped = (c * x)[:, None, :] * phase_ramps(k3[:, :2], offsets, D)  # (B, T, P)
        best_err = torch.empty(B, len(grid), device=device)
        best_t = torch.empty(B, len(grid), dtype=torch.long, device=device)
        rows = max(1, chunk // max(1, len(k3)))  # slices per decoder call
        drawn = None
        if z is not None and map_grid and not isinstance(decoder, MapDecoder):
            drawing = 2 * math.pi / 3 * (map_grid * (radii[0] + 1)) ** 3  # about the decoder points of a drawn map
            if drawing < len(grid) * len(k3):  # each image's map drawn for this round: fewer points than its slices
                drawn = DrawnMap(decoder, radii[0], z=z, oversample=map_grid, chunk=chunk, amp=amp, device=device)
                rows = max(1, 8 * chunk // (B * len(k3)))  # the (B, rows, P) slices stay bounded
        if z is None or drawn is not None:
            rows = max(1, min(rows, 8 * chunk // (B * len(offsets))))  # the (B, T, rows) errors stay bounded too
            for q0 in range(0, len(grid), rows):
                R = grid[q0 : q0 + rows]
                Y = _slices(decoder, k3, R, None, amp) if drawn is None else drawn.slices(k3 @ R)  # (q, P) or (B, q, P)
                y_norm = (c.pow(2)[:, None, :] @ Y.abs().pow(2).transpose(-1, -2))[:, 0]  # (B, q)
                err = x_norm[:, None, None] + y_norm[:, None, :] - 2 * _real_dot(ramped, Y)  # (B, T, q)
                best_err[:, q0 : q0 + rows], best_t[:, q0 : q0 + rows] = err.min(1)
        else:
            for b in range(B):
                for q0 in range(0, len(grid), rows):
                    R = grid[q0 : q0 + rows]
                    Y = _slices(decoder, k3, R, z[b : b + 1].expand(len(R), -1), amp)
                    y_norm = Y.abs().pow(2) @ c[b].pow(2)
                    err = x_norm[b] + y_norm[None, :] - 2 * _real_dot(ramped[b], Y)  # (T, q)
                    best_err[b, q0 : q0 + len(R)], best_t[b, q0 : q0 + len(R)] = err.min(0)
        err, pick = best_err.topk(keep if iterations else 1, dim=1, largest=False)
        index = pick
        centres = offsets[best_t.gather(1, pick)]  # (B, K, 2)

        # Rounds 1..: subdivide the kept poses, halve the shift grid around each.
        for i in range(1, iterations + 1):
            resolution = base_resolution + i
            cand = so3grid.children(resolution - 1, index).reshape(B, -1)  # (B, M), on the search's device
            R = so3grid.rotations(resolution, cand).float() @ turn  # (B, M, 3, 3)
            centre = centres.repeat_interleave(8, dim=1)  # (B, M, 2)
            inside = radius_px <= radii[i]
            images_i = images[:, inside].to(torch.complex64), ctf[:, inside], coords[inside]
            step = offsets / 2**i
            err_min, t = _candidate_errors(decoder, R, z, centre, step, *images_i, D, chunk, amp)
            err_min = _drop_repeats(cand, err_min)
            if i == iterations and exact is not None:  # the best candidates scored again through the decoder itself
                err_min, top = err_min.topk(min(rescore, cand.shape[1]), dim=1, largest=False)
                rows = torch.arange(B, device=device)[:, None]
                cand, R, centre = cand[rows, top], R[rows, top], centre[rows, top]
                err_min, t = _candidate_errors(exact, R, z, centre, step, *images_i, D, chunk, amp)
            err, pick = err_min.topk(min(keep, cand.shape[1]) if i < iterations else 1, dim=1, largest=False)
            index = cand.gather(1, pick)
            centres = centre.gather(1, pick[..., None].expand(-1, -1, 2)) + step[t.gather(1, pick)]
        final = base_resolution + iterations
        best = so3grid.rotations(final, index[:, 0]).float() @ turn
    return PoseSearchResult(best, centres[:, 0], err[:, 0], index[:, 0])


class _FixedCode(nn.Module):
    """``decoder`` with its latent held at ``code`` (zdim,): one map, searched like a homogeneous one."""

    def __init__(self, decoder, code: torch.Tensor):
        super().__init__()
        self.decoder, self.code = decoder, code

    def forward(self, coords: torch.Tensor, z=None) -> torch.Tensor:
        return self.decoder(coords, self.code.expand(coords.shape[0], -1))


def search_classes(decoder, images: torch.Tensor, ctf, half, codes: torch.Tensor, **options) -> PoseSearchResult:
    """The best class and pose of each image: :func:`search_poses` against each class's map
    (``decoder`` at each row of ``codes`` (K, zdim)), the class with the lowest error kept per image.
    Costs K homogeneous searches; ``labels`` holds the classes."""
    found = [search_poses(_FixedCode(decoder, code), images, ctf, half, None, **options) for code in codes]
    labels = torch.stack([r.error for r in found]).argmin(0)  # (B,)
    rows = torch.arange(len(labels), device=labels.device)

    def pick(name):
        return torch.stack([getattr(r, name) for r in found])[labels, rows]

    return PoseSearchResult(pick("rotations"), pick("shifts"), pick("error"), pick("index"), labels)
