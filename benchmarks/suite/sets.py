"""Named benchmark datasets from real structures, deterministic given a seed.

Each set function writes ``particles.mrcs``, ``particles.star`` (RELION 3.1) and ``truth.npz``
to ``outdir`` and returns a dict of paths, the truth and the noise statistics:

- :func:`adk`: adenylate kinase, closed → open (98 MD frames, interpolated); ``coordinate``
  in [0, 1] (0 closed, 1 open) from an uneven two-Beta mixture (65% near closed).
- :func:`ribosome_motion`: the 70S map's pseudo-atoms, where the quarter of the mass beyond
  a plane rotates rigidly about a hinge axis at its edge by ``8° × coordinate``; bimodal.
- :func:`assembly`: compositional: 70S, 70S less one region (15% of the mass), less two (30%),
  β-galactosidase, a rare 3% state (less a further 5%), and 10% junk (random blobs, 70S
  fragments, empty images). ``truth["class"]`` indexes ``truth["class_names"]``.

``truth.npz`` also holds the atoms needed to rebuild every particle's map
(:func:`true_volume`, :func:`true_volumes`, :func:`class_volumes`; a junk particle's atoms come
from the generator seeded (seed, 3, i)), the poses (``euler``: rot, tilt, psi), shifts (pixels),
CTFs (defocus U, V, angle), apix, box, snr, seed and the measured SNR. Random streams: states
from (seed, 0), poses/shifts/CTFs from (seed, 1), noise from (seed, 2, block). The pixel size makes the largest state span 70%
of the box. Shifts are normal with σ = box / 32 pixels per axis.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import atoms as atomic
from . import imaging

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real"
RIBOSOME = ("aspire/clean70SRibosome_vol_65p.mrc", 2500.0, 5.0)  # path, mass (kDa), apix
BGAL = ("relion/ref_model.mrc", 465.0, None)
FILL = 0.7
ATOM_SIGMA = 1.5  # Å, B-factor-like blur of real atoms
ASSEMBLY_CLASSES = ("70S", "70S-A", "70S-AB", "beta-gal", "70S-ABC", "junk")
ASSEMBLY_PROPORTIONS = (0.40, 0.25, 0.15, 0.07, 0.03, 0.10)
JUNK_KINDS = ("blobs", "fragment", "empty")
JUNK_BLOBS = 64


def _real(path: str, data_dir) -> Path:
    full = Path(data_dir or DATA) / path
    if not full.is_file():
        raise FileNotFoundError(f"{full} not found: the real maps live in ../shared/data/real (pass data_dir=)")
    return full.resolve()


def _bimodal(rng: np.random.Generator, n: int, first: float, a: float = 2.0, b: float = 8.0) -> np.ndarray:
    """Uneven bimodal coordinates in [0, 1]: Beta(a, b) with probability ``first``, else Beta(b, a)."""
    low = rng.random(n) < first
    return np.where(low, rng.beta(a, b, n), rng.beta(b, a, n))


def allocate(n: int, proportions) -> np.ndarray:
    """Counts summing to ``n`` closest to ``n * proportions`` (largest remainders)."""
    exact = n * np.asarray(proportions, dtype=np.float64) / np.sum(proportions)
    counts = np.floor(exact).astype(np.int64)
    counts[np.argsort(counts - exact, kind="stable")[: n - counts.sum()]] += 1
    return counts


# -- models: (truth, indices) -> (coords, weights, sigma) of those particles -----------------


def _adk_atoms(t, idx):
    frames = t["frames"]
    f = np.asarray(t["coordinate"])[idx] * (len(frames) - 1)
    lo = np.clip(np.floor(f).astype(int), 0, len(frames) - 2)
    frac = (f - lo)[:, None, None]
    return (1 - frac) * frames[lo] + frac * frames[lo + 1], t["weights"], t["atom_sigma"]


def _rotate_about(coords, moving, point, axis, angles_deg):
    """Coords (M, 3) with ``moving`` atoms turned by each angle (B,) about ``axis`` through ``point``."""
    a = np.radians(np.asarray(angles_deg, dtype=np.float64))[:, None, None]
    r = coords[moving] - point
    cross = np.cross(axis, r)
    turned = r * np.cos(a) + cross * np.sin(a) + axis * (r @ axis)[:, None] * (1 - np.cos(a)) + point
    out = np.broadcast_to(coords, (len(a), *coords.shape)).copy()
    out[:, moving] = turned
    return out


def _motion_atoms(t, idx):
    angles = t["max_angle"] * np.asarray(t["coordinate"])[idx]
    return _rotate_about(t["coords"].astype(np.float64), t["moving"], t["hinge_point"], t["hinge_axis"], angles), t["weights"], t["atom_sigma"]


def _junk_atoms(t, i):
    """(coords, weights, sigma) of junk particle ``i``: JUNK_BLOBS blob slots + one per 70S atom."""
    rng = np.random.default_rng([int(t["seed"]), 3, int(i)])
    coords, weights = t["coords"], t["weights"]
    kind = JUNK_KINDS[int(t["junk_kind"][i])]
    blob_xyz = np.zeros((JUNK_BLOBS, 3))
    blob_w, blob_s, frag_w = np.zeros(JUNK_BLOBS), np.full(JUNK_BLOBS, 10.0), np.zeros(len(coords))  # σ of unused slots: the largest, so every junk particle has the same window
    frag_xyz = coords.astype(np.float64)
    if kind == "blobs":
        k = rng.integers(8, JUNK_BLOBS + 1)
        r = 0.6 * atomic.radius(coords)
        v = rng.normal(size=(k, 3))
        blob_xyz[:k] = v / np.linalg.norm(v, axis=1, keepdims=True) * r * rng.random((k, 1)) ** (1 / 3)
        blob_w[:k] = rng.dirichlet(np.ones(k)) * weights.sum() * rng.uniform(0.2, 1.0)
        blob_s[:k] = rng.uniform(4.0, 10.0, k)
    elif kind == "fragment":
        order = np.argsort(((coords - coords[rng.integers(len(coords))]) ** 2).sum(1), kind="stable")
        take = order[: np.searchsorted(np.cumsum(weights[order]), rng.uniform(0.1, 0.3) * weights.sum()) + 1]
        frag_w[take] = weights[take]
        frag_xyz -= (frag_w[:, None] * frag_xyz).sum(0) / frag_w.sum()
    sigma = np.concatenate([blob_s, np.full(len(coords), float(t["atom_sigma"]))])
    return np.concatenate([blob_xyz, frag_xyz]), np.concatenate([blob_w, frag_w]), sigma


def _assembly_atoms(t, idx):
    """Atoms of particles ``idx``, all of one class (per particle (B, M, 3) for junk)."""
    idx = np.atleast_1d(idx)
    k = int(t["class"][idx[0]])
    if ASSEMBLY_CLASSES[k] == "junk":
        return tuple(np.stack(p) for p in zip(*(_junk_atoms(t, i) for i in idx)))
    return class_atoms(t, k)


def class_atoms(t, k):
    """Atoms of assembly class ``k`` (not junk)."""
    name = ASSEMBLY_CLASSES[k]
    if name == "beta-gal":
        return t["bgal_coords"], t["bgal_weights"], t["bgal_sigma"]
    keep = ~t["region"][: {"70S": 0, "70S-A": 1, "70S-AB": 2, "70S-ABC": 3}[name]].any(0)
    return t["coords"][keep], t["weights"][keep], t["atom_sigma"]


MODELS = {"adk": _adk_atoms, "ribosome_motion": _motion_atoms, "assembly": _assembly_atoms}


# -- writing --------------------------------------------------------------------------------


def _write_star(path: Path, stack: str, euler, shifts, ctf, apix: float, box: int) -> None:
    from cryonb.core.io.star import write_blocks

    n = len(euler)
    optics = pd.DataFrame(
        {
            "rlnOpticsGroup": [1],
            "rlnOpticsGroupName": ["opticsGroup1"],
            "rlnVoltage": [imaging.VOLTAGE],
            "rlnSphericalAberration": [imaging.CS],
            "rlnAmplitudeContrast": [imaging.AMPLITUDE_CONTRAST],
            "rlnImagePixelSize": [apix],
            "rlnImageSize": [box],
            "rlnImageDimensionality": [2],
        }
    )
    particles = pd.DataFrame(
        {
            "rlnImageName": [f"{i + 1:06d}@{stack}" for i in range(n)],
            "rlnAngleRot": euler[:, 0],
            "rlnAngleTilt": euler[:, 1],
            "rlnAnglePsi": euler[:, 2],
            "rlnOriginXAngst": shifts[:, 0] * apix,
            "rlnOriginYAngst": shifts[:, 1] * apix,
            "rlnDefocusU": ctf[:, 0],
            "rlnDefocusV": ctf[:, 1],
            "rlnDefocusAngle": ctf[:, 2],
            "rlnPhaseShift": np.zeros(n),
            "rlnOpticsGroup": np.ones(n, dtype=np.int64),
        }
    )
    write_blocks({"optics": optics, "particles": particles}, path)
    text = path.read_text()  # starfile stamps the time on line 1: RELION 3.1's version line instead
    path.write_text("# version 30001\n" + text.split("\n", 1)[1] if text.startswith("# Created") else text)


def _generate(name, truth, groups_of, outdir, n, box, radius, snr, seed, device, progress) -> dict:
    """Poses, shifts and CTFs from (seed, 1); render; write the three files."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    apix = 2 * radius / (FILL * box)
    rng = np.random.default_rng([seed, 1])
    euler = imaging.random_euler(rng, n)
    shifts = rng.normal(0.0, box / 32, (n, 2))
    ctf = imaging.random_ctf(rng, n)
    truth.update(set=np.array(name), n=n, box=box, apix=apix, snr=np.nan if snr is None else float(snr), seed=seed, euler=euler, shifts=shifts, ctf=ctf)
    model = MODELS[name]
    groups = [(idx, lambda b, t=truth: model(t, b)) for idx in groups_of(truth)]
    paths = {"stack": outdir / "particles.mrcs", "star": outdir / "particles.star", "truth": outdir / "truth.npz"}
    rotations = imaging.euler_to_matrix(*euler.T)
    stats = imaging.render_stack(paths["stack"], n, box, apix, rotations, shifts, ctf, groups, snr=snr, seed=seed, device=device, progress=progress)
    _write_star(paths["star"], paths["stack"].name, euler, shifts, ctf, apix, box)
    truth.update(signal_variance=stats["signal_variance"], noise_sigma=stats["noise_sigma"], measured_snr=stats["measured_snr"], image_signal_variance=stats["image_variance"])
    np.savez(paths["truth"], **truth)
    return {**paths, "truth_arrays": truth, **stats}


def adk(outdir, n=20_000, box=64, snr=0.1, seed=0, *, device="cpu", progress=None) -> dict:
    """Adenylate kinase closed → open; needs ``pip install mdanalysistests``."""
    frames, z = atomic.adk_trajectory()
    rng = np.random.default_rng([seed, 0])
    truth = {"frames": frames, "weights": z, "atom_sigma": ATOM_SIGMA, "coordinate": _bimodal(rng, n, 0.65)}
    radius = max(atomic.radius(f) for f in frames)
    return _generate("adk", truth, lambda t: [np.arange(n)], outdir, n, box, radius, snr, seed, device, progress)


def _ribosome(data_dir):
    path, mass, apix = RIBOSOME
    return atomic.map_pseudo_atoms(_real(path, data_dir), mass, apix=apix)


def _principal_axes(coords, weights) -> np.ndarray:
    """Rows: principal axes, largest spread first, signs fixed (largest component positive)."""
    _, vecs = np.linalg.eigh(np.cov(coords.T, aweights=weights))
    axes = vecs[:, ::-1].T
    return axes * np.sign(axes[np.arange(3), np.abs(axes).argmax(1)])[:, None]


def ribosome_motion(outdir, n=20_000, box=64, snr=0.1, seed=0, *, max_angle=8.0, moving_fraction=0.25, data_dir=None, device="cpu", progress=None) -> dict:
    """70S with a region (``moving_fraction`` of the mass) turning by up to ``max_angle`` degrees."""
    coords, weights, sigma = _ribosome(data_dir)
    c64 = coords.astype(np.float64)
    u, _, e = _principal_axes(c64, weights)
    h = c64 @ u
    order = np.argsort(h, kind="stable")[::-1]
    cut = h[order[np.searchsorted(np.cumsum(weights[order]), moving_fraction * weights.sum())]]
    moving = h > cut
    point = cut * u + (c64[moving] @ e).min() * e  # on the plane, at the region's edge
    axis = np.cross(e, u)  # positive angles swing the far edge away from the body (+u)
    rng = np.random.default_rng([seed, 0])
    truth = {"coords": coords, "weights": weights, "atom_sigma": sigma, "moving": moving, "hinge_point": point, "hinge_axis": axis, "max_angle": float(max_angle), "coordinate": _bimodal(rng, n, 0.6)}
    truth["angle"] = max_angle * truth["coordinate"]  # degrees, for reference (the model reads the coordinate)
    extremes = _rotate_about(c64, moving, point, axis, [0.0, max_angle])
    radius = max(atomic.radius(x - (weights[:, None] * c64).sum(0) / weights.sum()) for x in extremes)
    return _generate("ribosome_motion", truth, lambda t: [np.arange(n)], outdir, n, box, radius, snr, seed, device, progress)


def _regions(coords, weights, fractions_and_directions) -> np.ndarray:
    """Masks (R, M) of contiguous chunks: the atoms nearest the outermost atom along a direction,
    taken until they hold the given fraction of the mass, each chunk from the atoms left."""
    free = np.ones(len(coords), dtype=bool)
    masks = []
    for fraction, direction in fractions_and_directions:
        candidates = np.flatnonzero(free)
        seed_atom = candidates[np.argmax(coords[candidates] @ direction)]
        order = candidates[np.argsort(((coords[candidates] - coords[seed_atom]) ** 2).sum(1), kind="stable")]
        take = order[: np.searchsorted(np.cumsum(weights[order]), fraction * weights.sum()) + 1]
        mask = np.zeros(len(coords), dtype=bool)
        mask[take] = True
        masks.append(mask)
        free &= ~mask
    return np.array(masks)


def assembly_labels(n: int, rng: np.random.Generator | int = 0) -> np.ndarray:
    """The assembly set's class of each of ``n`` particles (indices into ``ASSEMBLY_CLASSES``), in
    ``ASSEMBLY_PROPORTIONS``, shuffled by ``rng`` (a generator, or the set's seed)."""
    rng = np.random.default_rng([rng, 0]) if isinstance(rng, int) else rng
    counts = allocate(n, ASSEMBLY_PROPORTIONS)
    return np.repeat(np.arange(len(counts)), counts)[rng.permutation(n)]


def assembly(outdir, n=20_000, box=64, snr=0.1, seed=0, *, data_dir=None, device="cpu", progress=None) -> dict:
    """Compositional heterogeneity with a rare state and junk (see the module docstring)."""
    coords, weights, sigma = _ribosome(data_dir)
    path, mass, apix = BGAL
    bgal = atomic.map_pseudo_atoms(_real(path, data_dir), mass, apix=apix)
    axes = _principal_axes(coords.astype(np.float64), weights)
    region = _regions(coords.astype(np.float64), weights, [(0.15, axes[0]), (0.15, -axes[0]), (0.05, axes[1])])
    rng = np.random.default_rng([seed, 0])
    label = assembly_labels(n, rng)
    junk = ASSEMBLY_CLASSES.index("junk")
    kind = np.where(label == junk, rng.choice(len(JUNK_KINDS), n, p=[0.5, 0.3, 0.2]), -1)
    truth = {
        "coords": coords, "weights": weights, "atom_sigma": sigma, "region": region,
        "bgal_coords": bgal[0], "bgal_weights": bgal[1], "bgal_sigma": bgal[2],
        "class": label, "class_names": np.array(ASSEMBLY_CLASSES), "proportions": np.array(ASSEMBLY_PROPORTIONS),
        "rare_class": ASSEMBLY_CLASSES.index("70S-ABC"), "junk_class": junk, "junk": label == junk, "junk_kind": kind, "junk_kinds": np.array(JUNK_KINDS),
        "region_names": np.array(["A", "B", "C"]),
    }  # fmt: skip
    radius = max(atomic.radius(coords), atomic.radius(bgal[0]))
    return _generate("assembly", truth, lambda t: [np.flatnonzero(t["class"] == k) for k in range(len(ASSEMBLY_CLASSES))], outdir, n, box, radius, snr, seed, device, progress)


SETS = {"adk": adk, "ribosome_motion": ribosome_motion, "assembly": assembly}


# -- truth ----------------------------------------------------------------------------------


def load_truth(path: str | os.PathLike) -> dict:
    """truth.npz as a dict (0-d arrays as Python scalars, names as str)."""
    with np.load(path) as f:
        return {k: (f[k].item() if f[k].ndim == 0 else f[k]) for k in f.files}


def true_volume(truth: dict, i: int, box: int | None = None, apix: float | None = None, device=None) -> torch.Tensor:
    """The true map (D, D, D) of particle ``i`` (at the dataset's box and apix unless given), on ``device``."""
    coords, weights, sigma = MODELS[str(truth["set"])](truth, np.array([i]))
    if np.ndim(coords) == 3:  # per-particle atoms
        coords, weights, sigma = (np.asarray(a)[0] if np.ndim(a) >= 2 else a for a in (coords, weights, sigma))
    return _volume(truth, coords, weights, sigma, box, apix, device)


def shared_map(truth: dict, i: int):
    """A key that particles with the same true map share (an assembly class but junk), or None."""
    if str(truth["set"]) == "assembly" and ASSEMBLY_CLASSES[int(truth["class"][i])] != "junk":
        return int(truth["class"][i])
    return None


def _volume(truth, coords, weights, sigma, box, apix, device=None) -> torch.Tensor:
    f32 = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float32))  # noqa: E731
    return imaging.splat_volume(f32(coords), f32(weights), f32(sigma), box or int(truth["box"]),
                                apix or float(truth["apix"]), device=device)


def true_volumes(truth: dict, indices, box: int | None = None, apix: float | None = None) -> torch.Tensor:
    """True maps (len(indices), D, D, D) of the given particles."""
    return torch.stack([true_volume(truth, int(i), box, apix) for i in indices])


def class_volumes(truth: dict, box: int | None = None, apix: float | None = None) -> dict[str, torch.Tensor]:
    """Assembly set: name -> map of each class but junk (whose maps differ per particle)."""
    names = [str(name) for name in truth["class_names"]]
    return {name: _volume(truth, *class_atoms(truth, k), box, apix) for k, name in enumerate(names) if name != "junk"}
