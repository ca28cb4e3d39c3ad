"""Write a trained run as a bundle that explores it without the particle stack (for Binder or a colleague).

The bundle folder holds the decoder weights, the latents (float16 when that changes no map), the
particle metadata without images, cluster labels, a 2D view of the latents, a few hundred thumbnail
images, a README, a notebook and binder/ configuration: push it to a public repository and open
it on Binder. --html adds index.html, a read-only page that needs no Jupyter.

examples:
  cryonb share runs/ribosome -o ribosome-bundle
  cryonb share runs/ribosome -o ribosome-bundle --coords pca --clusters 6 --html
"""

from __future__ import annotations

from pathlib import Path


def add_args(parser):
    parser.add_argument("run", type=Path, metavar="RUN", help="run folder (cryonb train --outdir), or a bundle to write again")
    parser.add_argument("-o", "--out", type=Path, required=True, metavar="BUNDLE", help="the bundle folder to write")
    parser.add_argument("--particles", type=Path, metavar="FILE",
                        help="the run's particle file (.star/.cs/.mrcs; default: the file recorded in the run)")
    parser.add_argument("--datadir", type=Path, help="folder of the particle stacks, for the thumbnails")
    parser.add_argument("--coords", choices=("umap", "pca", "none"), default="umap",
                        help="the 2D view of the latents saved with the bundle (default: umap)")
    parser.add_argument("--clusters", default="auto", metavar="K",
                        help="k-means clusters saved with the bundle: a number, auto (one per 10 particles, 2 to 8) or 0 for none")
    parser.add_argument("--thumbnails", type=int, default=300, metavar="N",
                        help="particle images (reduced to 64 px) for the gallery; 0 for none (default: 300)")
    parser.add_argument("--latents", choices=("auto", "float16", "float32"), default="auto",
                        help="precision of the stored latents; auto: float16 when maps change by under 0.1%% (default)")
    parser.add_argument("--columns", choices=("compact", "all"), default="compact",
                        help="columns of the particle file kept: names, poses, CTF, optics (compact) or all")
    parser.add_argument("--title", help="the bundle's title (default: the folder's name)")
    parser.add_argument("--requirement", metavar="SPEC",
                        help="pip line that installs cryonb on Binder (default: cryonb[widgets]==<this version>)")
    parser.add_argument("--html", action="store_true", help="also write index.html, a read-only page for a browser")
    parser.add_argument("--force", action="store_true", help="replace an earlier bundle in BUNDLE (a .git folder there stays)")


def main(args):
    from ..core.analysis import auto_clusters, kmeans
    from ..core.errors import InputError
    from ..core.run import Run
    from ..core.share import is_bundle, open_bundle
    from ..core.training import read_run_config

    if is_bundle(args.run):
        opened = open_bundle(args.run)
        run, defaults = opened.run, {"coords": opened.coords, "clusters": opened.clusters,
                                     "selections": opened.selections, "traversals": opened.traversals}
    else:
        particles = _particles(args, read_run_config(args.run)["config"].get("particles"))
        run, defaults = Run.open(args.run, particles, device="cpu"), {}
        run.particles = particles
    if args.out.resolve() == args.run.resolve():
        raise InputError(args.out, "is the folder being shared", "write the bundle to another folder")
    if run.z is None:
        raise InputError(args.run, "a homogeneous run (zdim=0) has no latent space to share", "share a run trained with zdim > 0")
    options = dict(defaults)
    if args.coords != "none" and options.get("coords") is None:
        options["coords"] = _coords(run.z, args.coords)
    if options.get("clusters") is None and args.clusters not in ("0", "none"):
        k = auto_clusters(len(run.z)) if args.clusters == "auto" else _count(args.clusters)
        options["clusters"] = kmeans(run.z, k).labels
    report = run.share(args.out, thumbnails=args.thumbnails, latents=args.latents, columns=args.columns, title=args.title,
                       requirement=args.requirement, overwrite=args.force, **options)
    print(report)
    if args.html:
        from ..widgets.share_page import write_page

        page = write_page(args.out)
        print(f"wrote {page} ({page.stat().st_size / 1e6:.1f} MB, works offline)")
    print(f"open it: cryonb.explore({str(args.out)!r}) in a notebook, or push {args.out} to a public repository and "
          f"open https://mybinder.org/v2/gh/OWNER/REPO/HEAD?labpath=explore.ipynb")


def _particles(args, recorded: str | None):
    """The run's particles, with images for the thumbnails when their stacks are found."""
    import warnings

    from ..core.errors import InputError
    from ..core.particles import load_particles

    path = args.particles or (recorded and Path(recorded))
    if not path:
        raise InputError(args.run, "the run does not record its particle file", "pass --particles FILE")
    try:
        return load_particles(path, datadir=args.datadir, images=args.thumbnails > 0)
    except InputError as err:
        if args.thumbnails <= 0:
            raise
        warnings.warn(f"no thumbnails: the images are not readable ({err.problem})", stacklevel=2)
        return load_particles(path, datadir=args.datadir, images=False)


def _coords(z, kind: str):
    from ..core.analysis import pca, umap_embedding

    if kind == "umap":
        return umap_embedding(z)
    if z.shape[1] < 2:
        import numpy as np

        return np.column_stack([z[:, 0], np.zeros(len(z))])
    return pca(z, 2).coords


def _count(text: str) -> int:
    from ..core.errors import InputError

    try:
        k = int(text)
    except ValueError:
        raise InputError(None, f"--clusters {text!r} is not a number", "pass a number of clusters, auto, or 0") from None
    if k < 0:
        raise InputError(None, f"--clusters {k} is negative", "pass a number of clusters, auto, or 0")
    return k
