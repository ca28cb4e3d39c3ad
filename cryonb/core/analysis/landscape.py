"""Landscape analysis: maps sampled over the latent distribution, PCA of the maps, states, and a
map-PC position for every particle.

Latent space distances say little about how different two maps are; the maps themselves do.
:func:`analyze_landscape` generates maps for a sample of latents (streamed through the device in chunks),
masks them with a mask made from their mean, finds their principal components with a streamed PCA,
clusters the maps in map-PC space into states, and fits a small network from z to map PCs that
places every particle of the run in the same space (and so in a state). Memory stays bounded by a
chunk of maps, the mask's first maps and the kept components, whatever the number of maps.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import InputError
from ..io.atomic import atomic_write
from ._inputs import as_count, as_latents
from .clustering import kmeans
from .latent_regression import LatentRegression, fit_latent_regression
from .map_generation import MapGenerator
from .streamed_pca import StreamedPCA

SAMPLINGS = ("particles", "kmeans")
SKETCH_BOX = 128  # the largest box analyze_landscape generates maps at unless asked for more
# Landscape field -> file name (.npy) in a saved landscape's folder.
_ARRAYS = {"z": "z_sampled", "particle_index": "sample_index", "mask": "mask", "mean_map": "mean_map",
           "components": "components", "explained_variance_ratio": "explained_variance_ratio", "coords": "map_pcs",
           "labels": "map_states", "centers": "state_centers", "representative": "state_representatives",
           "particle_coords": "particle_map_pcs", "particle_states": "particle_states"}
_OPTIONAL = ("particle_coords", "particle_states")


@dataclass
class Landscape:
    """What :func:`analyze_landscape` found. Maps are (d, d, d) of pixel size ``apix`` (the sketch box ``box``)."""

    z: np.ndarray  # (M, zdim) latents of the sampled maps
    particle_index: np.ndarray  # (M,) the particle whose latent each map is
    sampling: str  # "particles" (a random sample of particles) or "kmeans" (on-data k-means centres)
    box: int
    apix: float
    mask: np.ndarray  # (d, d, d) bool
    threshold: float  # density level of the mask before dilation
    mean_map: np.ndarray  # (d, d, d) mean of the sampled maps
    components: np.ndarray  # (n_components, V) principal axes over the mask's V voxels
    explained_variance_ratio: np.ndarray  # (n_components,)
    coords: np.ndarray  # (M, n_components) map PCs of the sampled maps
    labels: np.ndarray  # (M,) state of each sampled map, ordered by the state's mean PC1
    centers: np.ndarray  # (k, n_components) state centres in map-PC space
    representative: np.ndarray  # (k,) the sampled map nearest each state's centre
    regression: LatentRegression | None = None  # z -> map PCs, fitted on the sampled maps
    particle_coords: np.ndarray | None = None  # (N, n_components) map PCs of every particle
    particle_states: np.ndarray | None = None  # (N,) the state whose centre is nearest in map-PC space
    heldout_r2: float | None = None  # the regression's R² on held-out sampled maps, all PCs together
    timings: dict = field(default_factory=dict)  # seconds per stage

    def save(self, folder: str | os.PathLike) -> list[Path]:
        """Write the arrays (``.npy``) and a ``landscape.json`` into ``folder``; :meth:`load` reads them back.

        The regression network itself is not saved: its predictions for every particle are.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, stem in _ARRAYS.items():
            value = getattr(self, name)
            if value is not None:
                paths.append(folder / f"{stem}.npy")
                with atomic_write(paths[-1]) as f:
                    np.save(f, np.asarray(value))
        meta = {"format": "cryonb landscape 1", "sampling": self.sampling, "box": self.box, "apix": self.apix,
                "threshold": None if not np.isfinite(self.threshold) else self.threshold,
                "heldout_r2": self.heldout_r2,
                "heldout_r2_per_pc": None if self.regression is None else [float(v) for v in self.regression.r2],
                "timings_s": self.timings}
        paths.append(folder / "landscape.json")
        with atomic_write(paths[-1], "w") as f:
            json.dump(meta, f, indent=1)
        return paths

    @classmethod
    def load(cls, folder: str | os.PathLike) -> Landscape:
        """A landscape written by :meth:`save` (``cryonb analyze --landscape`` writes one in ``analysis/landscape``)."""
        folder = Path(folder)
        path = folder / "landscape.json"
        fix = "point to the folder that analyze_landscape(...).save() or cryonb analyze --landscape wrote"
        try:
            meta = json.loads(path.read_text())
            arrays = {name: np.load(folder / f"{stem}.npy", allow_pickle=False) for name, stem in _ARRAYS.items()
                      if (folder / f"{stem}.npy").exists() or name not in _OPTIONAL}
            threshold = meta.get("threshold")
            return cls(sampling=meta["sampling"], box=int(meta["box"]), apix=float(meta["apix"]),
                       threshold=float("nan") if threshold is None else float(threshold),
                       heldout_r2=meta.get("heldout_r2"), timings=meta.get("timings_s", {}),
                       mask=arrays.pop("mask").astype(bool), **arrays)
        except FileNotFoundError as err:
            raise InputError(err.filename, "is missing from the landscape's folder", fix) from None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise InputError(folder, f"is not a readable landscape ({err.__class__.__name__}: {err})", fix) from None

    def unmask(self, values) -> np.ndarray:
        """Values over the mask's voxels (..., V) as maps (..., d, d, d), zero outside the mask."""
        values = np.asarray(values, dtype=np.float32)
        out = np.zeros(values.shape[:-1] + self.mask.shape, np.float32)
        out[..., self.mask] = values
        return out

    def component_map(self, pc: int) -> np.ndarray:
        """Principal axis ``pc`` (0-based) as a map (d, d, d)."""
        return self.unmask(self.components[pc])

    def pc_maps(self, pc: int, n: int = 10, lo: float = 5, hi: float = 95) -> np.ndarray:
        """n maps (n, d, d, d): the mean map moved along axis ``pc`` from the ``lo``-th to the ``hi``-th
        percentile of the sampled maps' coordinates (the linear model of the maps, not new decodes)."""
        pc = as_count(pc, "pc", 0, len(self.components) - 1)
        steps = np.linspace(*np.percentile(self.coords[:, pc], [lo, hi]), as_count(n, "n", 1))
        return self.mean_map + steps[:, None, None, None] * self.component_map(pc)[None]

    def state_counts(self) -> np.ndarray:
        """Particles per state (from ``particle_states``), or sampled maps per state without them."""
        labels = self.particle_states if self.particle_states is not None else self.labels
        return np.bincount(labels, minlength=len(self.centers))


def sample_latents(z, n: int, sampling: str = "particles", seed: int = 0, device=None) -> np.ndarray:
    """Indices of ``n`` particles whose latents sample the distribution of z (N, zdim), sorted.

    ``"particles"``: a uniform random sample without replacement (all particles if n >= N), so
    dense regions get more maps. ``"kmeans"``: the particle nearest each of n k-means centres
    (Lloyd's iterations on ``device``, fitted on at most 200,000 particles), so sparse regions are
    covered as well as dense ones; a centre that ends with no particle gives no map.
    """
    z = as_latents(z)
    n = as_count(n, "n_maps", 2)
    rng = np.random.default_rng(seed)
    if sampling == "particles":
        return np.arange(len(z)) if n >= len(z) else np.sort(rng.choice(len(z), n, replace=False))
    if sampling == "kmeans":
        subset = np.arange(len(z)) if len(z) <= 200_000 else np.sort(rng.choice(len(z), 200_000, replace=False))
        return np.sort(subset[kmeans_on_data(z[subset], min(n, len(subset)), seed=seed, device=device)])
    raise InputError(None, f"sampling={sampling!r} is not a sampling", f"use one of {', '.join(SAMPLINGS)}")


@torch.no_grad()
def kmeans_on_data(z, k: int, iterations: int = 25, seed: int = 0, device=None, batch_size: int = 16384) -> np.ndarray:
    """The member nearest each centre (≤ k indices) of a k-means of z (N, zdim) by Lloyd's iterations in torch.

    Made for many centres (thousands, for sampling maps), where scikit-learn's restarts are too slow:
    one k-means++ start, ``iterations`` rounds, distances in chunks on ``device``.
    """
    z = torch.as_tensor(np.asarray(z, dtype=np.float32), device=device)
    generator = torch.Generator(device=z.device).manual_seed(seed)
    chosen = torch.empty(k, dtype=torch.long, device=z.device)
    chosen[0] = torch.randint(len(z), (1,), generator=generator, device=z.device)
    nearest = (z - z[chosen[0]]).pow(2).sum(1)
    for i in range(1, k):  # k-means++: each next centre drawn with probability ∝ squared distance
        chosen[i] = torch.multinomial(nearest + 1e-30, 1, generator=generator)
        nearest = torch.minimum(nearest, (z - z[chosen[i]]).pow(2).sum(1))
    centres = z[chosen].clone()

    def assign():
        labels = torch.empty(len(z), dtype=torch.long, device=z.device)
        distance = torch.empty(len(z), device=z.device)
        for start in range(0, len(z), batch_size):
            d = torch.cdist(z[start : start + batch_size], centres)
            distance[start : start + batch_size], labels[start : start + batch_size] = d.min(1)
        return labels, distance

    for _ in range(iterations):
        labels, _ = assign()
        counts = torch.bincount(labels, minlength=k)
        sums = torch.zeros_like(centres).index_add_(0, labels, z)
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None].to(z.dtype)
    labels, distance = assign()
    labels, distance = labels.cpu().numpy(), distance.cpu().numpy()
    order = np.lexsort((distance, labels))  # by centre, nearest first
    first = np.flatnonzero(np.r_[True, np.diff(labels[order]) != 0])
    return order[first]


def mask_from_mean(mean_map, threshold: float | None = None, dilate: float = 5.0) -> tuple[np.ndarray, float]:
    """(mask, threshold): voxels of the mean map at or above ``threshold``, dilated by ``dilate`` pixels.

    The default threshold is half the 99.99th percentile of the mean map (the level cryoDRGN's landscape
    analysis uses on each map). Dilation is by a ball: every voxel within ``dilate`` pixels of the
    thresholded region is kept.
    """
    from scipy.ndimage import distance_transform_edt

    mean_map = np.asarray(mean_map, dtype=np.float32)
    if threshold is None:
        threshold = float(np.percentile(mean_map, 99.99)) / 2
    core = mean_map >= threshold
    if not core.any():
        raise InputError(None, f"no voxel of the mean map reaches the mask threshold {threshold:.4g}",
                         f"choose a lower threshold (the mean map's maximum is {mean_map.max():.4g})")
    mask = distance_transform_edt(~core) <= dilate if dilate > 0 else core
    return mask, float(threshold)


def analyze_landscape(
    run,
    n_maps: int = 1000,
    *,
    sampling: str = "particles",
    box: int | None = None,
    n_components: int = 20,
    k: int = 10,
    threshold: float | None = None,
    dilate: float = 5.0,
    mask=None,
    clip_negative: bool = True,
    mask_maps: int = 256,
    regression: bool = True,
    regression_kw: dict | None = None,
    rank: int | None = None,
    seed: int = 0,
    device=None,
    maps_per_chunk: int | None = None,
    evaluations_per_chunk: int | None = None,
    compile: bool | str = False,
    progress: bool | None = None,
) -> Landscape:
    """Landscape of ``run`` from ``n_maps`` maps sampled over its latents (see :func:`sample_latents`).

    ``box``: generate the maps at this box, low-passed and resampled if smaller than the run's
    (default: the run's box, at most 128, the box cryoDRGN's landscape analysis downsamples to).
    The mask is the mean of the first ``mask_maps`` maps (at most 2 GiB of them) thresholded
    (``threshold``, default :func:`mask_from_mean`'s) and dilated by ``dilate`` pixels, or ``mask``
    (d, d, d) if given. Negative densities are set to 0 inside the mask (``clip_negative``). The
    maps' ``n_components`` principal components (at most n_maps - 1) come from a streamed PCA
    keeping ``rank`` triplets (default n_components + 20); the maps are clustered into ``k``
    states by k-means in that space. With ``regression``, a network from z to map PCs
    (:func:`~cryonb.core.analysis.latent_regression.fit_latent_regression`, given
    ``regression_kw``) gives every particle its map PCs and nearest state. ``device``: where the
    maps and the PCA live (default: the run's model's device). ``maps_per_chunk`` and
    ``evaluations_per_chunk`` bound the memory of a chunk and ``compile`` compiles the decoder's
    evaluation (:class:`~cryonb.core.analysis.map_generation.MapGenerator`).
    """
    t_start = time.perf_counter()
    z_all = as_latents(run.z, min_rows=2)
    n_maps = as_count(n_maps, "n_maps", 2)
    box = min(int(run.box_size), SKETCH_BOX) if box is None else box
    generator = MapGenerator(run, box, device=device, maps_per_chunk=maps_per_chunk,
                             evaluations_per_chunk=evaluations_per_chunk, compile=compile)
    d = generator.box
    index = sample_latents(z_all, n_maps, sampling, seed, device=generator.device)
    z = z_all[index]
    k = as_count(k, "k", 1, len(z))
    n_components = min(as_count(n_components, "n_components", 1), len(z) - 1)  # M maps have at most M - 1 PCs
    rank = n_components + 20 if rank is None else as_count(rank, "rank", n_components)
    timings = {"sample_s": time.perf_counter() - t_start}
    dev = generator.device
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    t0 = time.perf_counter()
    bar = tqdm(total=len(z), desc=f"maps (box {d})", unit="map", disable=progress is False)
    # The mask comes from the first maps, which are kept (bounded by mask_maps) and then analysed.
    # At most mask_maps of them, and no more than 2 GiB (32 maps at box 256).
    first, n_first = [], min(len(z), max(mask_maps, 1), max(16, 2**31 // (4 * d**3)))
    chunks = generator.chunks(z)
    for _start, maps in chunks:
        first.append(maps)
        bar.update(len(maps))
        if sum(len(m) for m in first) >= n_first:
            break
    first_maps = torch.cat(first)
    first_mean = first_maps.mean(0)
    if mask is None:
        mask_np, threshold = mask_from_mean(first_mean.cpu().numpy(), threshold, dilate)
    else:
        mask_np = np.asarray(mask).astype(bool)
        if mask_np.shape != (d, d, d) or not mask_np.any():
            raise InputError(None, f"the mask has shape {mask_np.shape} with {int(mask_np.sum())} voxels set",
                             f"pass a non-empty mask of the maps' box ({d}, {d}, {d})")
        threshold = float("nan")
    voxels = torch.from_numpy(np.flatnonzero(mask_np)).to(dev)

    def rows(maps):
        values = maps.reshape(len(maps), -1)[:, voxels]
        return values.clamp_min(0) if clip_negative else values

    pca = StreamedPCA(rows(first_maps).mean(0), rank)
    map_sum = first_maps.sum(0, dtype=torch.float64)
    pca_s = 0.0
    for block in first_maps.split(generator.maps_per_chunk):
        sync()
        t = time.perf_counter()
        pca.update(rows(block))
        sync()
        pca_s += time.perf_counter() - t
    del first, first_maps
    for _start, maps in chunks:
        map_sum += maps.sum(0, dtype=torch.float64)
        sync()
        t = time.perf_counter()
        pca.update(rows(maps))
        sync()
        pca_s += time.perf_counter() - t
        bar.update(len(maps))
    bar.close()
    result = pca.result(n_components)
    spread = float(result.explained_variance.sum())
    if not len(result.components) or spread <= 1e-10 * float(np.mean(result.mean.astype(np.float64) ** 2)) * len(voxels):
        raise InputError(None, f"the {len(z)} sampled maps do not vary inside the mask ({len(voxels)} voxels)",
                         "check that the run's maps differ with z; with maps of inverted contrast pass clip_negative=False "
                         "or a mask of your own")
    sync()
    timings["maps_and_pca_s"] = time.perf_counter() - t0
    timings["pca_updates_s"] = pca_s

    t0 = time.perf_counter()
    clusters = kmeans(result.coords, k, seed=seed)
    order = np.argsort(clusters.centers[:, 0], kind="stable")  # state 0: lowest PC1
    rank_of = np.empty(k, np.int64)
    rank_of[order] = np.arange(k)
    out = Landscape(
        z=z, particle_index=index, sampling=sampling, box=d, apix=generator.apix, mask=mask_np,
        threshold=threshold, mean_map=(map_sum / len(z)).float().cpu().numpy(), components=result.components,
        explained_variance_ratio=result.explained_variance_ratio, coords=result.coords.astype(np.float32),
        labels=rank_of[clusters.labels], centers=clusters.centers[order],
        representative=clusters.on_data[order], timings=timings,
    )
    timings["cluster_s"] = time.perf_counter() - t0
    if regression:
        t0 = time.perf_counter()
        kw = {"seed": seed, "device": dev, "progress": progress, **(regression_kw or {})}
        out.regression = fit_latent_regression(z, out.coords, **kw)
        out.particle_coords = out.regression.predict(z_all)
        out.particle_states = nearest_center(out.particle_coords, out.centers)
        out.heldout_r2 = out.regression.r2_total
        timings["regression_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - t_start
    return out


def nearest_center(coords, centers, batch_size: int = 65536) -> np.ndarray:
    """Index (N,) of the nearest of ``centers`` (k, C) for each row of ``coords`` (N, C)."""
    centers = np.asarray(centers, dtype=np.float32)
    out = np.empty(len(coords), np.int64)
    for start in range(0, len(coords), batch_size):
        chunk = np.asarray(coords[start : start + batch_size], dtype=np.float32)
        distance = (chunk**2).sum(1, keepdims=True) - 2 * chunk @ centers.T + (centers**2).sum(1)
        out[start : start + batch_size] = distance.argmin(1)
    return out
