"""Analyse a trained run headless: latent PCA/UMAP, k-means maps, PC traversals, galleries, report.html.

Writes to --outdir (default RUN/analysis): PNG figures, MRC maps at the on-data k-means centres
(kmeansK/), along the principal axes of z (pc1/, pc2/) and along a graph path between the two most
distant centres (graph_path/), particle galleries per cluster, arrays
(.npy) and report.html, a self-contained page that links them. --landscape adds the landscape of
the maps (PCA of many generated maps, states, map PCs of every particle) in landscape/.
"""

from __future__ import annotations

from pathlib import Path


def add_args(parser):
    parser.add_argument("run", type=Path, help="run folder (cryonb train --outdir)")
    parser.add_argument("--outdir", "-o", type=Path, help="output folder (default: RUN/analysis)")
    parser.add_argument("-k", "--clusters", type=int, default=20, help="k-means clusters of z, one map each (default: 20)")
    parser.add_argument("--pcs", type=int, default=2, help="principal axes of z to traverse (default: 2)")
    parser.add_argument("--pc-steps", type=int, default=10, help="maps along each principal axis (default: 10)")
    parser.add_argument("--no-umap", action="store_true", help="skip UMAP (the figures use PCA instead)")
    parser.add_argument("--particles", help="particle file for the galleries and defocus (default: the run's own)")
    parser.add_argument("--datadir", help="folder of the image stacks named by --particles")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (default: auto)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--divide", action="store_true", help="also ask each k-means cluster of 100 particles or more whether it hides "
                        "two states, with the poses, then groups of several clusters that vary by one difference, pooled "
                        "(kmeansK/divisions/: cryonb variability per cluster and pool)")
    land = parser.add_argument_group("landscape of the maps")
    land.add_argument("--landscape", action="store_true", help="also run the landscape analysis (landscape/)")
    land.add_argument("--landscape-maps", type=int, default=1000, help="maps to generate (default: 1000)")
    land.add_argument("--landscape-box", type=int,
                      help="generate them at this box, low-passed if smaller than the run's (default: the run's box, at most 128)")
    land.add_argument("--landscape-sampling", choices=("particles", "kmeans"), default="particles",
                      help="latents of the maps: a random sample of particles, or the particles nearest k-means "
                           "centres (default: particles)")
    land.add_argument("--landscape-pcs", type=int, default=20, help="principal components of the maps (default: 20)")
    land.add_argument("--landscape-states", type=int, default=10, help="states: k-means clusters of the maps (default: 10)")
    land.add_argument("--compile", action="store_true",
                      help="torch.compile the map generation (a minute to compile; pays off for thousands of maps on a GPU)")
    land.add_argument("--landscape-epochs", type=int, default=300,
                      help="most epochs of the z -> map PC network (it stops earlier when held-out maps stop improving; default: 300)")
    land.add_argument("--mask-threshold", type=float, help="density level of the mask (default: half the 99.99th percentile of the mean map)")
    land.add_argument("--mask-dilate", type=float, default=5.0, help="dilate the mask by this many pixels (default: 5)")


def open_run(path, particles=None, datadir=None, device: str = "auto"):
    """(run, note): the run with its particles (``particles``, else the file its config records), and
    None, or a note saying why its particles could not be read (the analysis goes on without them)."""
    from ..core.particles import load_particles
    from ..core.run import Run

    if particles is not None:
        particles = load_particles(particles, datadir=datadir)
    run = Run.open(path, particles, device=device)
    note = None
    if run.particles is None:
        recorded = getattr(getattr(run, "config", None), "particles", None)
        if recorded:
            try:
                run.particles = load_particles(recorded, datadir=datadir)
            except (OSError, ValueError) as err:  # InputError is a ValueError
                note = f"the run's particles ({recorded}) could not be read: {err}"
    return run, note


def main(args):
    from ..core.analysis.run_analysis import analyze_run

    run, note = open_run(args.run, args.particles, args.datadir, args.device)
    if note:
        print(f"cryonb analyze: {note}; no galleries or defocus colouring")
    landscape_kw = None
    if args.landscape:
        landscape_kw = {"n_maps": args.landscape_maps, "box": args.landscape_box, "sampling": args.landscape_sampling,
                        "n_components": args.landscape_pcs, "k": args.landscape_states,
                        "threshold": args.mask_threshold, "dilate": args.mask_dilate,
                        "regression_kw": {"epochs": args.landscape_epochs}, "compile": args.compile}
    outdir = args.outdir or args.run / "analysis"
    outputs = analyze_run(run, outdir, k=args.clusters, pcs=args.pcs, pc_steps=args.pc_steps, umap=not args.no_umap,
                          landscape_kw=landscape_kw, divide_kw={"device": _device(args.device)} if args.divide else None,
                          seed=args.seed, title=f"cryonb analysis of {args.run}")
    for line in outputs.notes:
        print(f"cryonb analyze: {line}")
    print(f"wrote {outputs.report} ({len(set(outputs.files))} linked files) in {outputs.timings['total']:.1f} s")
    return 0


def _device(name: str) -> str:
    from ..core.distributed import resolve_device

    return str(resolve_device(name))
