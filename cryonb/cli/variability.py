"""Divide particles along the one localised map difference they vary along most (poses known).

For a cluster that may hide a rare state lacking or adding a subunit: finds the focused
variability component of the particles (or of the rows an index file selects) and splits them in
two along it. Writes into OUTDIR:

  component.mrc, consensus.mrc   the difference map and the particles' consensus map
  coordinates.npy                each particle's coordinate along the component
  coordinates.png                their histogram, the two groups in two colours
  group_0.*, group_1.*           the two groups as selections (.star, or .cs for a .cs source,
                                 and .ind.npy / .ind.pkl index files); group 1 is the smaller

The component is iterated from random starts, or is a region of the consensus map (the density in
a ball) that the particles hold more or less of, whichever the particles fall along more clearly
into two groups, a reproducible one before any other. An iterated component whose two random halves disagree (agreement under 0.5) is
noise, and one along which the particles spread as one group rather than two (bimodality at or
below 0) is no second state; the command says which: there is then no reproducible difference to
divide by. Halves that agree are not proof of one: with many particles and few frequencies even
images of noise agree (see :mod:`cryonb.core.variability`); the bimodality is the test that tells.
A region is kept only where its coordinates, measured on two halves of each image's pixels,
correlate by five standard errors or more, a test noise does not pass. Each group's purity is the
mean probability, over its particles, that they belong to it as the two groups' mixture sees them
(1: no doubt), an estimate that can be optimistic.
"""

from __future__ import annotations

from pathlib import Path

from ._particles import add_input_args, load_input


def add_args(parser):
    parser.add_argument("particles", type=Path, help="particles with poses and CTF: .star, .cs, or .mrcs with --poses and --ctf-pkl")
    parser.add_argument("-o", "--outdir", type=Path, required=True, help="output folder (created)")
    parser.add_argument("--ind", type=Path, help="index file (.npy or cryoDRGN .pkl) of the rows to analyse, e.g. a cluster's selection")
    add_input_args(parser)
    parser.add_argument("--resolution", type=float, default=30.0, help="use frequencies up to this resolution, Å (default: 30)")
    parser.add_argument("--focus", type=float, default=0.1, help="fraction of the voxels the component may occupy (default: 0.1; 1: anywhere)")
    parser.add_argument("--iterations", type=int, default=50, help="most iterations (default: 50)")
    parser.add_argument("--starts", type=int, default=3, help="random starts; of them and the best region, the most bimodal reproducible one is kept (default: 3)")
    parser.add_argument("--regions", type=int, default=32, help="centres of candidate regions of the consensus, each a ball holding "
                        "3, 6 or 12 %% of its density, kept where significant (default: 32; 0: random starts only)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda (default: cpu)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random halves and start (default: 0)")


def main(args):
    import numpy as np

    from ..core.analysis.divisions import divides
    from ..core.io.atomic import atomic_write
    from ..core.io.mrc import write_map
    from ..core.io.pickles import read_index
    from ..core.particles import save_selection
    from ..core.variability import AGREEMENT, variability_component

    particles = load_input(args, "analyse the variability of")
    if args.ind is not None:
        particles = particles.subset(read_index(args.ind))
    component = variability_component(particles, resolution=args.resolution, focus=args.focus, iterations=args.iterations,
                                      starts=args.starts, regions=args.regions, device=args.device, seed=args.seed)
    out = args.outdir
    out.mkdir(parents=True, exist_ok=True)
    write_map(out / "component.mrc", component.component, particles.apix)
    write_map(out / "consensus.mrc", component.consensus, particles.apix)
    with atomic_write(out / "coordinates.npy") as f:
        np.save(f, component.coordinates)
    component.plot(out / "coordinates.png", title=f"{args.particles.name}: {component.reproducibility}")
    groups, purity = component.split(), component.purity()
    for g in (0, 1):
        written = save_selection(particles.subset(np.flatnonzero(groups == g)), out / f"group_{g}")
        print(f"group {g}: {int((groups == g).sum())} particles, purity {purity[g]:.2f}: " + ", ".join(str(p) for p in written.values()))
    print(f"{component}; wrote {out}/component.mrc, consensus.mrc, coordinates.npy, coordinates.png")
    if not component.reproducible():  # an iterated component: a region is a candidate only where significant
        print(f"note: the halves' components disagree (agreement {component.agreement:.2f} < {AGREEMENT}): "
              "no reproducible difference was found, so the two groups are not meaningful")
    elif not divides(component):
        print(f"note: the particles spread along the component as one group, not two (bimodality {component.bimodality:+.3f} ≤ 0): "
              "the difference is reproducible but no second state, so the two groups are not meaningful")
