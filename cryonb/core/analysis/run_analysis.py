"""Headless analysis of a run: what to look at before opening a notebook, written to a folder.

:func:`analyze_run` works on anything with a run's interface (``z``, ``volumes(z)``,
``particles``, ``apix``, ``box_size``, ``zdim``) and uses the same functions as the notebook views:
PCA and UMAP of z, k-means with on-data centres, the maps at those centres, along PC traversals and
along a graph path between the two most distant centres (MRC files), a gallery of particle images
per cluster, ‖z‖ and defocus colourings, optionally each cluster's division along its focused
variability (:mod:`~cryonb.core.analysis.divisions`) and the map landscape
(:func:`~cryonb.core.analysis.landscape.analyze_landscape`), and ``report.html`` linking it all.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..errors import InputError
from ..io.atomic import atomic_write
from . import figures
from ._inputs import as_count, as_latents
from .clustering import kmeans
from .embedding import latent_norm, pca, umap_embedding
from .graph import GraphGapWarning, graph_path
from .report import HtmlReport, html_link
from .trajectories import pc_traversal

GALLERY_IMAGES = 8  # particle images shown per cluster
MAPS_PER_FIGURE = 10


@dataclass
class AnalysisOutputs:
    """Where :func:`analyze_run` wrote what; ``files`` are relative to ``outdir``."""

    outdir: Path
    report: Path
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    timings: dict = field(default_factory=dict)


def _save_npy(path: Path, array) -> Path:
    with atomic_write(path) as f:
        np.save(f, np.asarray(array))
    return path


def _write_maps(maps, apix: float, folder: Path, prefix: str = "vol") -> list[Path]:
    from ..io.mrc import write_map

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, volume in enumerate(maps):
        paths.append(folder / f"{prefix}_{i:03d}.mrc")
        write_map(paths[-1], np.asarray(volume, dtype=np.float32), apix)
    return paths


def _maps_figures(report: HtmlReport, maps, titles, caption: str, stem: Path) -> None:
    """Snapshots of the maps, at most ``MAPS_PER_FIGURE`` per figure."""
    for start in range(0, len(maps), MAPS_PER_FIGURE):
        part = slice(start, start + MAPS_PER_FIGURE)
        suffix = f"_{start // MAPS_PER_FIGURE}" if len(maps) > MAPS_PER_FIGURE else ""
        report.figure(figures.maps_figure(maps[part], titles[part]), caption,
                      save_as=stem.with_name(f"{stem.name}{suffix}.png"))


def _defocus(particles, n: int) -> tuple[np.ndarray | None, str]:
    """Mean defocus (Å) per particle, or None and why not."""
    ctf = getattr(particles, "ctf", None) if particles is not None else None
    if ctf is None:
        return None, "no CTF parameters (the run's particles were not available or carry no CTF)"
    ctf = np.asarray(ctf)
    if len(ctf) != n:
        return None, f"the particles' CTF has {len(ctf)} rows but the run has {n} latents"
    return ctf[:, :2].mean(1), ""


def _images(particles, n: int):
    """The particles' image source, or None and why not."""
    images = getattr(particles, "images", None) if particles is not None else None
    if particles is None:
        return None, "the run's particles are not available here (pass them with --particles to see images per cluster)"
    if images is None:
        return None, "the run's particle file names no images, so no gallery per cluster"
    if len(images) != n:
        return None, f"the particle set has {len(images)} images but the run has {n} latents"
    return images, ""


def analyze_run(run, outdir: str | os.PathLike, *, k: int = 20, pcs: int = 2, pc_steps: int = 10, umap: bool = True,
                landscape_kw: dict | None = None, divide_kw: dict | None = None, seed: int = 0, progress: bool | None = None,
                title: str | None = None) -> AnalysisOutputs:
    """Analyse ``run`` into ``outdir`` (created) and write ``outdir/report.html``.

    ``k``: k-means clusters of z (maps at their on-data centres); ``pcs`` principal axes of z
    traversed in ``pc_steps`` maps each; ``umap=False`` skips UMAP; ``landscape_kw`` (a dict, may be
    empty) runs the landscape analysis with those arguments into ``outdir/landscape``; ``divide_kw``
    (likewise) asks each cluster whether it hides two states
    (:func:`~cryonb.core.analysis.divisions.divide_clusters`), into ``outdir/kmeansK/divisions``.
    """
    t_start = time.perf_counter()
    outdir = Path(outdir)
    if not getattr(run, "zdim", 0) or getattr(run, "z", None) is None:
        raise InputError(getattr(run, "run_dir", None), "the run has no latent space (a homogeneous run)",
                         "analyse a run trained with zdim >= 1")
    z = as_latents(run.z, min_rows=3)
    n, zdim = z.shape
    k = as_count(k, "k", 1, n)
    pc_steps = as_count(pc_steps, "pc_steps", 1)
    pcs = min(as_count(pcs, "pcs", 0), zdim)
    apix = float(run.apix)
    outdir.mkdir(parents=True, exist_ok=True)
    name = title or f"cryonb analysis of {getattr(run, 'run_dir', None) or 'a run'}"
    report = HtmlReport(name, outdir)
    notes: list[str] = []
    timings: dict[str, float] = {}
    steps = ["PCA", "k-means", "maps at centres", "PC traversals", "graph path", "figures", "galleries"]
    steps[1:1] = ["UMAP"] if umap else []
    steps += ["divisions"] if divide_kw is not None else []
    steps += ["landscape"] if landscape_kw is not None else []
    bar = tqdm(total=len(steps), desc="analysis", unit="step", disable=progress is False)

    def step(label):
        bar.set_postfix_str(label)
        timings[label] = time.perf_counter()

    def done(label):
        timings[label] = time.perf_counter() - timings[label]
        bar.update(1)

    report.text(f"{n:,} particles, latent dimension {zdim}, maps of box {run.box_size} at {apix:.3g} Å/px.")

    step("PCA")
    axes = pca(z)
    pc_xy = axes.coords[:, :2] if zdim >= 2 else np.column_stack([axes.coords[:, 0], np.zeros(n)])
    _save_npy(outdir / "z_pca.npy", axes.coords.astype(np.float32))
    done("PCA")
    embeddings = {"PCA": (pc_xy, ("PC1", "PC2"))}
    if umap:
        step("UMAP")
        xy = umap_embedding(z, seed=seed)
        _save_npy(outdir / "z_umap.npy", xy)
        embeddings["UMAP"] = (xy, ("UMAP1", "UMAP2"))
        done("UMAP")

    step("k-means")
    clusters = kmeans(z, k, seed=seed)
    kdir = outdir / f"kmeans{k}"
    kdir.mkdir(exist_ok=True)
    _save_npy(kdir / "labels.npy", clusters.labels)
    _save_npy(kdir / "centers.npy", clusters.on_data)
    _save_npy(kdir / "centers_z.npy", z[clusters.on_data])
    done("k-means")

    step("maps at centres")
    centre_maps = np.asarray(run.volumes(z[clusters.on_data]), dtype=np.float32)
    centre_paths = _write_maps(centre_maps, apix, kdir)
    done("maps at centres")

    step("PC traversals")
    traversals = []
    for pc in range(pcs):
        zs = pc_traversal(z, pc, pc_steps)
        maps = np.asarray(run.volumes(zs), dtype=np.float32)
        folder = outdir / f"pc{pc + 1}"
        folder.mkdir(exist_ok=True)
        _save_npy(folder / "z_values.npy", zs)
        traversals.append((pc, maps, _write_maps(maps, apix, folder)))
    done("PC traversals")

    step("graph path")
    graph = _graph_traversal(run, z, clusters.on_data, pc_steps, outdir / "graph_path", apix, notes)
    done("graph path")

    step("figures")
    report.heading("Latent space")
    report.text("PCA explained variance of z: " + ", ".join(f"PC{i + 1} {r:.1%}" for i, r in enumerate(axes.explained_variance_ratio[:6])) + ".")
    for label, (xy, names) in embeddings.items():
        stem = label.lower()
        report.figure(figures.scatter_figure(xy, clusters.labels, title=f"{label} of z, {k} k-means clusters", axes_labels=names,
                                             categorical=True, highlight=xy[clusters.on_data]),
                      f"{label} of z coloured by k-means cluster; circles: the on-data centre of each cluster.",
                      save_as=outdir / f"{stem}_kmeans.png")
    main_label = "UMAP" if umap else "PCA"
    xy, names = embeddings[main_label]
    report.figure(figures.scatter_figure(xy, latent_norm(z), title=f"{main_label} of z, ‖z‖", axes_labels=names, colorbar="‖z‖"),
                  "Latent norm ‖z‖: particles far from the origin are those the model found unusual.",
                  save_as=outdir / f"{main_label.lower()}_norm.png")
    defocus, why = _defocus(getattr(run, "particles", None), n)
    if defocus is None:
        report.text(f"No defocus colouring: {why}.", note=True)
        notes.append(f"no defocus colouring: {why}")
    else:
        report.figure(figures.scatter_figure(xy, defocus, title=f"{main_label} of z, defocus", axes_labels=names, colorbar="defocus (Å)"),
                      "Mean defocus per particle: a latent space that follows defocus has learnt the imaging, not the structure.",
                      save_as=outdir / f"{main_label.lower()}_defocus.png")

    report.heading(f"k-means clusters (k = {k})")
    counts = np.bincount(clusters.labels, minlength=k)
    report.table(["cluster", "particles", "share", "on-data particle", "map"],
                 [[i, f"{counts[i]:,}", f"{counts[i] / n:.1%}", int(clusters.on_data[i]), html_link(report, centre_paths[i], centre_paths[i].name)]
                  for i in range(k)])
    report.links([kdir / "labels.npy", kdir / "centers.npy", kdir / "centers_z.npy"],
                 "Cluster of every particle, the on-data centre particles and their latents:")
    _maps_figures(report, centre_maps, [f"cluster {i}" for i in range(k)],
                  "Maps at the on-data k-means centres: projection along z and central sections (one grey scale per row).",
                  kdir / "maps")
    done("figures")

    step("galleries")
    images, why = _images(getattr(run, "particles", None), n)
    report.heading("Particles per cluster")
    if images is None:
        report.text(f"No particle images: {why}.", note=True)
        notes.append(f"no particle galleries: {why}")
    else:
        rng = np.random.default_rng(seed)
        for i in range(k):
            members = np.flatnonzero(clusters.labels == i)
            shown = np.sort(rng.choice(members, min(GALLERY_IMAGES, len(members)), replace=False))
            report.figure(figures.gallery_figure(images[shown], [f"#{p}" for p in shown], title=f"cluster {i}"),
                          f"Cluster {i}: {len(shown)} of its {len(members):,} particles, at random.",
                          save_as=kdir / f"gallery_{i:03d}.png")
    done("galleries")

    divisions = None
    if divide_kw is not None:
        step("divisions")
        divisions = _divisions_section(run, report, kdir / "divisions", clusters.labels, divide_kw, seed, progress, notes)
        done("divisions")

    if traversals:
        report.heading("Traversals along the principal axes of z")
        for pc, maps, paths in traversals:
            report.text(f"PC{pc + 1}: {pc_steps} maps from the 5th to the 95th percentile of the particles' PC{pc + 1} coordinate.")
            _maps_figures(report, maps, [f"{i}" for i in range(len(maps))], f"Maps along PC{pc + 1} of z.",
                          outdir / f"pc{pc + 1}" / "maps")
            report.links(paths, f"PC{pc + 1} maps:")

    landscape_summary = None
    if graph is not None:
        report.heading("Graph path between the two most distant cluster centres")
        ends, maps, paths = graph
        report.text(f"The shortest path through a 10-nearest-neighbour graph of the particles' latents from the centre of "
                    f"cluster {ends[0]} to that of cluster {ends[1]}: {len(maps)} maps at evenly spaced distances along it, "
                    "each the map of a particle on the path.")
        _maps_figures(report, maps, [str(i) for i in range(len(maps))], "Maps along the graph path.",
                      outdir / "graph_path" / "maps")
        report.links([*paths, outdir / "graph_path" / "particles.npy"], "Graph path maps and their particles:")

    if landscape_kw is not None:
        step("landscape")
        landscape_summary = _landscape_section(run, report, outdir / "landscape", embeddings[main_label], landscape_kw,
                                               seed, progress, timings)
        done("landscape")
    bar.close()

    timings["total"] = time.perf_counter() - t_start
    report.heading("Timings")
    report.table(["step", "seconds"], [[label, f"{seconds:.1f}"] for label, seconds in timings.items()])
    summary = {"n_particles": n, "zdim": zdim, "k": k, "pcs": pcs, "pc_steps": pc_steps, "umap": umap,
               "notes": notes, "timings_s": {key: round(v, 3) for key, v in timings.items()}}
    if landscape_summary is not None:
        summary["landscape"] = landscape_summary
    if divisions is not None:
        summary["divisions"] = divisions
    with atomic_write(outdir / "summary.json", "w") as f:
        json.dump(summary, f, indent=1)
    report.links([outdir / "summary.json"], "Summary in JSON:")
    path = report.write(outdir / "report.html")
    return AnalysisOutputs(outdir, path, report.files, notes, timings)


def _divisions_section(run, report: HtmlReport, folder: Path, labels, divide_kw: dict, seed: int, progress, notes: list) -> list | None:
    """Each cluster's focused variability; each divided cluster's component, histogram and two groups
    (selections) into ``folder/cluster_NNN``; the report's table. A summary per cluster, or None."""
    from ..io.mrc import write_map
    from ..particles import save_selection
    from ..variability import FEW, SIGNIFICANCE
    from .divisions import MIN_PARTICLES, divide_clusters

    particles = getattr(run, "particles", None)
    report.heading("Clusters that hide two states")
    if particles is None or particles.images is None:
        why = "the run's particle images are not available"
    elif particles.rotations is None or particles.ctf is None:
        why = "the run's particles carry no poses or no CTF parameters"
    else:
        why = None if len(particles) == len(labels) else f"the particle set has {len(particles)} particles but the run has {len(labels)} latents"
    if why:
        report.text(f"No divisions: {why}.", note=True)
        notes.append(f"no divisions: {why}")
        return None
    divisions = divide_clusters(particles, labels, seed=seed, progress=progress, **divide_kw)
    report.text(f"Each cluster of {divide_kw.get('min_particles', MIN_PARTICLES)} particles or more, asked with the poses which localised "
                "change of the map its particles vary along (cryonb variability): a component iterated from random starts, or a region "
                "of the consensus map the particles hold more or less of; divided in two where it is reproducible (the components "
                "of two random halves of the cluster agree, a first filter that images of noise also pass with many particles; "
                f"a region's coordinates, from two halves of each image's pixels, correlate by {SIGNIFICANCE:g} standard errors or more) and the "
                "particles fall along it into two groups rather than one spread (bimodality above 0), and each group so made asked again. "
                "Groups of different clusters that vary by one and the same difference (their components alike) are pooled and "
                "asked again as one: a rare state spread over several clusters, too few in each, may be found there (a pool's smaller "
                "group is set apart, the rest left in their groups). "
                "Group 01 is group 1 of the division of group 0. Outliers: particles whose residual is far above the others' "
                "(junk, contaminants), counted less. Left out: particles the two groups were fitted without, a group of fewer than "
                f"{FEW} far out along the component, which is no state. Purity: over each group's particles, the mean probability "
                "that they belong to it, as the two groups' mixture sees them (1: no doubt).")
    rows, figures_to_show = [], []
    for d in divisions:
        row = [d.where, d.path or "all", f"{len(d.members):,}", d.component.reproducibility, f"{d.component.bimodality:+.3f}",
               len(d.component.outliers), len(d.component.left_out), "", ""]
        if d.divided:
            sub = folder / d.folder
            sub.mkdir(parents=True, exist_ok=True)
            write_map(sub / "component.mrc", d.component.component, run.apix)
            written = [sub / "component.mrc"]
            for g in (0, 1):
                written += list(save_selection(particles.subset(d.group(g)), sub / f"group_{g}").values())
            row[7] = f"{int((d.groups == 0).sum()):,} / {int(d.groups.sum()):,} (purity {d.purity[0]:.2f} / {d.purity[1]:.2f})"
            row[8] = html_link(report, sub / "component.mrc", "component.mrc")
            figures_to_show.append((d, sub, written))
        rows.append(row)
    report.table(["cluster", "group", "particles", "reproducibility", "bimodality", "outliers", "left out", "divided into", "component"], rows)
    for d, sub, written in figures_to_show:
        report.figure(d.component.plot(title=f"{d.name}: {d.component.reproducibility}"),
                      f"{d.name.capitalize()}: each particle's coordinate along its component; group 1, the smaller, may be a rare state.",
                      save_as=sub / "coordinates.png")
        report.links(written, f"{d.name.capitalize()}: its component and its two groups as selections:")
    return [{"cluster": d.cluster, "pooled": list(d.pooled), "group": d.path, "particles": len(d.members), **d.component.reproducibility_record,
             "bimodality": round(d.component.bimodality, 4), "divided": d.divided,
             "groups": [int((d.groups == g).sum()) for g in (0, 1)], "purity": [round(p, 3) for p in d.purity],
             "outliers": len(d.component.outliers),
             "left_out": len(d.component.left_out)} for d in divisions]


def _graph_traversal(run, z, centres, steps: int, folder: Path, apix: float, notes: list):
    """Maps along the graph path between the two on-data centres farthest apart: ((a, b), maps, paths), or None."""
    if len(centres) < 2:
        return None
    distance = np.linalg.norm(z[centres][:, None] - z[centres][None], axis=-1)
    a, b = np.unravel_index(distance.argmax(), distance.shape)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", GraphGapWarning)
            path = graph_path(z, [int(centres[a]), int(centres[b])])
    except InputError as err:
        notes.append(f"no graph path: {err.problem}")
        return None
    for caught_warning in caught:  # a path jumping between separate parts of the graph: told in the report
        if issubclass(caught_warning.category, GraphGapWarning):
            notes.append(f"graph path: {caught_warning.message}")
        else:
            warnings.warn_explicit(caught_warning.message, caught_warning.category, caught_warning.filename, caught_warning.lineno)
    along = np.searchsorted(path.distances, np.linspace(0, path.distances[-1], steps)).clip(0, len(path.indices) - 1)
    particles = path.indices[along]
    folder.mkdir(exist_ok=True)
    _save_npy(folder / "particles.npy", particles)
    _save_npy(folder / "z_values.npy", z[particles])
    maps = np.asarray(run.volumes(z[particles]), dtype=np.float32)
    return (int(a), int(b)), maps, _write_maps(maps, apix, folder)


def _landscape_section(run, report: HtmlReport, folder: Path, embedding, landscape_kw: dict, seed: int, progress,
                       timings) -> dict:
    """Run the landscape analysis, write its arrays and maps into ``folder``, report it; its summary."""
    from ..io.mrc import write_map
    from .landscape import analyze_landscape

    folder.mkdir(parents=True, exist_ok=True)
    kw = {"seed": seed, "progress": progress, **landscape_kw}
    result = analyze_landscape(run, **kw)
    timings.update({f"landscape {key}": value for key, value in result.timings.items()})
    write_map(folder / "mask.mrc", result.mask.astype(np.float32), result.apix)
    write_map(folder / "mean.mrc", result.mean_map, result.apix)
    saved = result.save(folder)
    k = len(result.centers)
    state_z = result.z[result.representative]
    state_maps = np.asarray(run.volumes(state_z), dtype=np.float32)
    state_paths = _write_maps(state_maps, float(run.apix), folder, prefix="state")
    traversal_paths = []
    for pc in range(min(2, len(result.components))):
        traversal_paths += _write_maps(result.pc_maps(pc), result.apix, folder / f"map_pc{pc + 1}")

    report.heading("Landscape of the maps")
    sampled = "a uniform random sample of the particles' latents" if result.sampling == "particles" else \
        "the on-data particles nearest k-means centres of z"
    report.text(f"{len(result.z):,} maps generated at box {result.box} ({result.apix:.3g} Å/px) for {sampled}; "
                f"mask: mean map ≥ {result.threshold:.4g}, dilated ({int(result.mask.sum()):,} voxels); "
                f"PCA of the masked maps, {len(result.components)} components "
                f"({result.explained_variance_ratio.sum():.1%} of the variance); {k} states by k-means in map-PC space.")
    report.figure(figures.maps_figure(np.stack([result.mean_map, result.mask.astype(np.float32)]), ["mean map", "mask"]),
                  "Mean of the sampled maps and the mask made from it: check that the mask holds the whole molecule.",
                  save_as=folder / "mask.png")
    report.figure(figures.bars_figure(result.explained_variance_ratio, title="map PCA", xlabel="map PC",
                                      ylabel="explained variance ratio", labels=[str(i + 1) for i in range(len(result.components))]),
                  "Variance of the masked maps explained by each principal component.", save_as=folder / "explained_variance.png")
    if result.coords.shape[1] >= 2:
        report.figure(figures.scatter_figure(result.coords[:, :2], result.labels, title="sampled maps in map-PC space",
                                             axes_labels=("map PC1", "map PC2"), categorical=True,
                                             highlight=result.coords[result.representative, :2]),
                      "Each sampled map by its first two map PCs, coloured by state; circles: each state's representative map.",
                      save_as=folder / "map_pcs.png")
    if result.particle_coords is not None:
        fit = result.regression
        report.text(f"z → map PC network: held-out R² {result.heldout_r2:.3f} over all PCs "
                    f"(PC1 {fit.r2[0]:.3f}" + (f", PC2 {fit.r2[1]:.3f}" if len(fit.r2) > 1 else "") +
                    f"; {len(fit.held_out):,} held-out maps).")
        xy, names = embedding
        report.figure(figures.scatter_figure(xy, result.particle_coords[:, 0], title="latent space, map PC1",
                                             axes_labels=names, colorbar="map PC1"),
                      "Every particle coloured by the map PC1 the network gives its z.", save_as=folder / "latent_map_pc1.png")
        report.figure(figures.scatter_figure(xy, result.particle_states, title="latent space, map states",
                                             axes_labels=names, categorical=True),
                      "Every particle coloured by the state nearest its map PCs.", save_as=folder / "latent_states.png")
    counts = result.state_counts()
    what = "particles" if result.particle_states is not None else "sampled maps"
    report.table(["state", what, "representative map"],
                 [[i, f"{counts[i]:,}", html_link(report, state_paths[i], state_paths[i].name)] for i in range(k)])
    _maps_figures(report, state_maps, [f"state {i}" for i in range(k)],
                  "Representative map of each state (the sampled map nearest its centre), at the run's box.", folder / "states")
    report.links([folder / "mask.mrc", folder / "mean.mrc", *saved],
                 "Landscape files (Landscape.load reads this folder back for LandscapeView):")
    for pc in range(min(2, len(result.components))):
        _maps_figures(report, result.pc_maps(pc), [str(i) for i in range(10)],
                      f"The mean map moved along map PC{pc + 1} (5th to 95th percentile of the sampled maps).",
                      folder / f"map_pc{pc + 1}" / "maps")
    report.links(traversal_paths, "Maps along map PC1 and PC2 (mean ± component):")
    fit = result.regression
    return {"maps": len(result.z), "box": result.box, "apix": result.apix, "sampling": result.sampling,
            "mask_voxels": int(result.mask.sum()), "mask_threshold": result.threshold,
            "explained_variance_ratio": [round(float(v), 5) for v in result.explained_variance_ratio],
            "states": k, "state_counts": [int(c) for c in counts],
            "r2_heldout": None if fit is None else round(fit.r2_total, 4),
            "r2_heldout_per_pc": None if fit is None else [round(float(v), 4) for v in fit.r2]}
