"""Find particle poses ab initio and reconstruct (cryoDRGN-AI style), headless (the same engine a notebook drives).

Pretrains on random poses, searches every particle's pose against the current map for
--search-epochs epochs (each followed by --map-epochs epochs fitting the map at the poses found,
the frequency limit of search and fit growing from one search epoch to the next), then refines the
poses with the map by gradient descent until --epochs. --starts independent starts run the first
three search cycles side by side; the one whose map explains a subset of the images best is kept.
Writes RUN/config.json, RUN/abinit.json, RUN/checkpoints/ and, at the end, RUN/poses.star (RELION
angles and origins, with the particles' images and CTF), RUN/poses.pkl (cryoDRGN poses),
RUN/map.mrc (zdim 0), RUN/z.npy (latents) or, with --classes K, RUN/classes.npy and
RUN/map_class0.mrc … (one per class), and with --reference RUN/alignment.json (global
rotation, hand, median angular errors both ways). Prints how far each search epoch turned the
poses and how far the other starts' poses lay from the kept one's, and warns when the last search
still turned them far or no other start found them (RUN/checks.json holds both findings). Running
again with the same --outdir continues from the last checkpoint (a new --epochs or --device is
applied; the other settings are the run's).
Ctrl-C stops with a checkpoint and exits 130.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def add_args(parser):
    parser.add_argument("particles", help=".star, .cs or .mrcs (with --ctf) particle file; poses are not needed")
    parser.add_argument("--outdir", "-o", type=Path, required=True, help="run folder (created, or continued)")
    parser.add_argument("--epochs", type=int, help="epochs in total, search included (default: 30)")
    parser.add_argument("--zdim", type=int, default=0, help="latent dimension; 0 reconstructs one map (default: 0)")
    parser.add_argument("--latents", choices=("table", "encoder"), default="table",
                        help="heterogeneity from a latent per particle (autodecoder) or an image encoder (default: table)")
    parser.add_argument("--datadir", help="folder of the image stacks (default: next to the particle file)")
    parser.add_argument("--apix", type=float, help="pixel size in Å, overriding the files'")
    parser.add_argument("--ctf", help="cryoDRGN CTF .pkl (for a bare stack)")
    parser.add_argument("--box", type=int, help="Fourier-crop the images to this box first (cryoDRGN-AI works at 128)")
    parser.add_argument("--width", type=int, help="decoder (and encoder) width (default: 1024 on a GPU, 256 on a CPU)")
    parser.add_argument("--depth", type=int, default=3, help="decoder (and encoder) hidden layers (default: 3)")
    parser.add_argument("--batch-size", type=int, help="images per step (default: 32 on a GPU, 64 on a CPU)")
    parser.add_argument("--lr", type=float, help="the map's learning rate (default: 2e-4 on a GPU, 1e-4 on a CPU)")
    parser.add_argument("--table-lr", type=float, help="learning rate of the pose and latent tables (default: the trainer's)")
    parser.add_argument("--search-epochs", type=int, default=6, help="epochs of pose search before descent (default: 6)")
    parser.add_argument("--map-epochs", type=int, default=2, help="epochs fitting the map at the poses held after each search epoch (default: 2)")
    parser.add_argument("--starts", type=int,
                        help="independent starts run through the first three search cycles, the best kept (default: 4)")
    parser.add_argument("--classes", type=int, default=1,
                        help="maps searched side by side, each image given the best class and pose; writes classes.npy "
                             "and a map per class (default: 1)")
    parser.add_argument("--pretrain-images", type=int, default=10_000, help="images fitted at random poses first (default: 10000)")
    parser.add_argument("--base-resolution", type=int, default=2, help="coarsest SO(3) grid: 2 is 4,608 rotations, ~15° (default: 2)")
    parser.add_argument("--keep", type=int, default=8, help="poses kept per image between search rounds (default: 8)")
    parser.add_argument("--iterations", type=int, default=4, help="search rounds after the base grid, each halving the step (default: 4)")
    parser.add_argument("--shifts", type=int, default=14, help="shift grid points per axis (default: 14)")
    parser.add_argument("--shift-extent", type=float, help="shifts searched, ± pixels of the training box (default: 20 at box 128, scaled)")
    parser.add_argument("--map-grid", type=int, default=2,
                        help="a shared map is drawn once per batch on a grid this many times finer than the pixels and the "
                             "candidates' slices interpolated from it (with --zdim, each image's map, for the search's first "
                             "round); 0 runs the decoder at every pixel of every candidate (exact, many times slower) (default: 2)")
    parser.add_argument("--search-images", type=int, default=128,
                        help="images searched at once: the batch and the next batches of the epoch, against the map of "
                             "the first (a search of a few images is launch-bound on a GPU) (default: 128)")
    parser.add_argument("--radius", type=float, nargs=2, metavar=("START", "END"),
                        help="frequency limit (pixels) of the first and the last search epoch; the model is fitted within it "
                             "until descent (default: 12 32 at a box of 128, scaled)")
    parser.add_argument("--reference", help="reference poses (.star, .cs or cryoDRGN .pkl) to align the result to and report errors")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--device", help="auto, cpu or cuda[:N] (default: auto)")
    parser.add_argument("--no-amp", action="store_true", help="float32 instead of bfloat16 autocast on a GPU")


def _settings(args):
    from ..core.abinit import AbinitConfig

    return AbinitConfig(pretrain_images=args.pretrain_images, search_epochs=args.search_epochs, map_epochs=args.map_epochs,
                        base_resolution=args.base_resolution, keep=args.keep, iterations=args.iterations,
                        shifts=args.shifts, shift_extent=args.shift_extent, radius=None if args.radius is None else tuple(args.radius),
                        classes=args.classes, map_grid=args.map_grid, search_images=args.search_images, **({"starts": args.starts} if args.starts is not None else {}))


def _reference_rotations(path, box):
    from ..core.errors import InputError
    from ..core.io.pickles import read_cryodrgn_poses
    from ..core.particles import load_particles

    if str(path).lower().endswith(".pkl"):
        return read_cryodrgn_poses(path, box)[0]
    ref = load_particles(path, images=False)
    if ref.rotations is None:
        raise InputError(path, "has no poses to compare with", "pass a .star/.cs with angles or a cryoDRGN pose .pkl")
    return ref.rotations


def main(args):
    import numpy as np

    from ..core.abinit import Abinit
    from ..core.io.atomic import atomic_write
    from ..core.io.mrc import write_map
    from ..core.particles import load_particles, require_images
    from ..core.training import TrainConfig, has_checkpoint

    particles = load_particles(args.particles, datadir=args.datadir, apix=args.apix, ctf=args.ctf)
    require_images(particles, "reconstruct from")
    reference = None
    if args.reference:
        reference = _reference_rotations(args.reference, particles.box_size)
        if len(reference) != len(particles):
            from ..core.errors import InputError

            raise InputError(args.reference, f"has {len(reference)} poses for {len(particles)} particles",
                             "pass the reference poses of the same particles")
    changes = {k: v for k, v in (("epochs", args.epochs), ("device", args.device)) if v is not None}
    if has_checkpoint(args.outdir):
        ab = Abinit.from_run(args.outdir, particles, **changes)
        print(f"continuing {args.outdir} from epoch {ab.trainer.epoch} ({ab.phase} next)")
        if changes:
            ab.trainer._write_config()
    else:
        if args.classes > 1 and args.zdim:
            from ..core.errors import InputError

            raise InputError(None, f"--classes {args.classes} and --zdim {args.zdim} both ask for heterogeneity",
                             "use one: --classes K for K discrete maps, or --zdim N for a continuous latent")
        config = TrainConfig(
            zdim=args.zdim, latents=None if args.classes > 1 else args.latents, enc_width=args.width, dec_width=args.width, enc_depth=args.depth,
            dec_depth=args.depth, box=args.box, batch_size=args.batch_size, lr=args.lr, epochs=30 if args.epochs is None else args.epochs,
            seed=args.seed, device=args.device or "auto", amp=not args.no_amp, particles=str(Path(args.particles).resolve()),
            **({"table_lr": args.table_lr} if args.table_lr is not None else {}),
        )
        ab = Abinit(particles, config, run_dir=args.outdir, settings=_settings(args))
    trainer = ab.trainer
    trainer.interrupt_hint = "run the same command again to continue"
    ab.fit(max(trainer.config.epochs - trainer.epoch, 0))
    if trainer.interrupted:
        print(f"cryonb abinit: interrupted at epoch {trainer.epoch} ({ab.phase} next); checkpoint written. "
              f"Continue with the same command.", file=sys.stderr)
        return 130
    out = args.outdir
    written = ab.write_poses(out / "poses.star", out / "poses.pkl")
    if trainer.config.latents == "class":
        with atomic_write(out / "classes.npy") as f:
            np.save(f, ab.classes())
        written["classes"] = out / "classes.npy"
        for k, volume in enumerate(ab.volumes(np.eye(trainer.config.zdim, dtype=np.float32))):  # one map per class
            write_map(out / f"map_class{k}.mrc", volume, trainer.data.apix)
            written[f"map of class {k}"] = out / f"map_class{k}.mrc"
    elif trainer.config.zdim:
        with atomic_write(out / "z.npy") as f:
            np.save(f, ab.embed())
        written["latents"] = out / "z.npy"
    else:
        write_map(out / "map.mrc", ab.volume(), trainer.data.apix)
        written["map"] = out / "map.mrc"
    for h in trainer.history[-3:]:
        print(f"epoch {h['epoch']} ({h.get('phase', '?')}): loss {h['loss']:.5f}  {h['images_per_s']:.0f} images/s")
    checks = ab.checks()
    _report(checks, trainer.config.latents == "class")
    if checks:  # for scripts: the same findings, machine-readable
        with atomic_write(out / "checks.json", "w") as f:
            json.dump(checks, f, indent=2)
        written["checks"] = out / "checks.json"
    if reference is not None:
        alignment = ab.align(reference)
        report = {"median_error_degrees": alignment.median_error, "median_error_other_hand_degrees": alignment.median_error_other_hand,
                  "mirrored": alignment.mirrored, "rotation": alignment.rotation.tolist()}
        with atomic_write(out / "alignment.json", "w") as f:
            json.dump(report, f, indent=2)
        written["alignment"] = out / "alignment.json"
        print(f"poses against {args.reference}: median error {alignment.median_error:.2f}° "
              f"({'mirrored hand' if alignment.mirrored else 'same hand'}; {alignment.median_error_other_hand:.2f}° in the other)")
    for kind, path in written.items():
        print(f"{kind}: {path}")
    return 0


def _report(checks: dict, classes: bool) -> None:
    """Print :meth:`Abinit.checks <cryonb.core.abinit.Abinit.checks>`: how far each search epoch turned the
    poses and how far the other starts' lay from the kept one's; warn where they tell wrong poses."""
    from ..core.abinit_starts import SAME_POSES_DEGREES, other_starts

    if "poses_moved" in checks:
        moved = checks["poses_moved"]
        print("poses turned by each search epoch (median): " + ", ".join(f"{m:.1f}°" for m in moved))
        if checks["settled"] is False:
            _warn_wrong_poses(f"the poses had not settled: the last search epoch still turned them by {moved[-1]:.0f}° (median)",
                              classes, "or more --search-epochs")
    if "start_agreement" in checks:
        kept, verdict = checks["kept_start"], checks["reproduced"]
        others = other_starts(checks["start_agreement"], kept)
        same = sum(a <= SAME_POSES_DEGREES for a in others)
        print(f"start {kept} of {len(others) + 1} kept; the others' poses from its (median, after one global rotation): "
              + ", ".join(f"{a:.1f}°" for a in others) + ("; not judged with classes (each class's map has a frame of its own)"
                                                       if verdict is None else f"; {same} found the same poses (within {SAME_POSES_DEGREES:.0f}°)"))
        if verdict is False:
            _warn_wrong_poses(f"no other start found the poses of the one kept (the nearest {min(others):.0f}° away, median)",
                              classes, "or more --starts")


def _warn_wrong_poses(reason: str, classes: bool, more: str) -> None:
    fix = "try another --classes or --seed" if classes else "try --classes K (one map per complex or state)"
    print(f"cryonb abinit: warning: {reason}, so they are likely wrong. Images of different complexes, or junk, "
          f"defeat a search with one map: {fix}; {more}.", file=sys.stderr)
