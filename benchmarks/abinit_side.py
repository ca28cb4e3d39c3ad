"""Ab initio side by side: cryonb's Abinit and cryoDRGN 4.3.1's ``cryodrgn abinit`` on the same images.

    # one H200 (cryoDRGN, healpy and astropy installed into /tmp/site), at most about 8 minutes in all:
    PYTHONPATH=/tmp/site:$PWD python3 benchmarks/abinit_side.py --outdir /tmp/side --n 20000 --box 64 --snr 0.1 \\
        --device cuda --drgn-python python3 --timeout 220 --jsonl side.jsonl
    # a smoke run on a CPU (2 minutes; cryoDRGN from unpacked wheels in DIRS, a Python with torch):
    python benchmarks/abinit_side.py --outdir /tmp/side --n 200 --box 32 --device cpu --drgn-python PYTHON \\
        --drgn-path DIRS --drgn-epochs 2 --drgn-search-epochs 1 --search-epochs 1 --map-epochs 1 --refine-epochs 1

    # heterogeneous (zdim 8) on a set of the benchmark suite (python -m benchmarks.suite.generate adk --outdir SET ...):
    PYTHONPATH=/tmp/site:$PWD python3 benchmarks/abinit_side.py --outdir /tmp/side --set SET --zdim 8 --device cuda \\
        --drgn-python python3 --timeout 260

Simulates the hinge phantom (one state, CTF, noise, no shifts unless ``--shift-sigma``) and writes it
as cryoDRGN reads it (particles.mrcs, particles.star, truth.npz, poses_true.pkl, volumes/; ctf.pkl by
cryoDRGN's own ``parse_ctf_star``). cryoDRGN runs in a subprocess (``--drgn-python``, never imported
here) and is stopped after ``--timeout`` s; the last epoch it wrote (pose.E.pkl, reconstruct.E.mrc) is
scored. cryonb runs in this process, an epoch at a time, and starts no epoch after ``--timeout`` s.
By default both reconstruct one map (zdim 0). Scores, the same for both: poses aligned to the truth (global
rotation and hand, :func:`cryonb.core.abinit.align_poses`), median angular error and fraction within
10°, and the FSC (0.5, Å) of the map, brought into the truth's frame by :func:`align_map`, against
the true map. With ``--set``, a suite set's images instead (its .star's poses are the truth, its shifts
are searched, no true map); with ``--zdim``, both systems learn a latent per particle (autodecoders:
cryoDRGN-AI's default and :class:`Abinit`'s), scored as the suite scores latents
(:func:`benchmarks.suite.metrics.latent_metrics`). One JSON line per system (appended to ``--jsonl`` if given).

cryoDRGN-AI's defaults changed, and why:

- ``-n 10`` (default 30): 1 pretraining epoch (10,000 images), its default 3 pose-search epochs,
  then 7 epochs of pose/map descent (SGD) instead of 27, to fit about 4 minutes on one H200. The
  search dominates: an epoch of it at 20,000 images, box 64, is 1,250 batches of 16 and about
  2.5e9 decoder points in float32 (8 kept poses x 8 children x 4 rounds per image), an estimated
  40-80 s on an H200; an SGD epoch a few seconds. Stopped by ``--timeout``, it is scored at its
  last epoch (``complete: false``).
- ``--l-start/--l-end`` 12/32 px scaled by box/128 (6/16 at box 64): its defaults are pixels at its
  intended box of 128 (at box 64, 32 px is Nyquist, and costs 4x the decoder points); cryonb scales
  the same radii the same way (``AbinitConfig.radius``).
- ``--t-extent 0`` when the images have no shifts (the default; cryonb: ``shift_extent=0``), else
  20 px scaled by box/128 as cryonb does.
- ``--uninvert-data``: the simulated images are CTF x projection of a positive map, cryoDRGN's own
  image model, so they must not be inverted (inverted, its map would have the opposite sign).
- ``--checkpoint 1`` (poses and map every epoch, so that a stopped run is scored at its last epoch),
  ``--no-analysis`` (its UMAP/PCA analysis is no part of the reconstruction), ``--seed``.

cryonb: :class:`AbinitConfig` defaults (cryoDRGN-AI's grid: 4,608 base rotations, 8 kept, 4
rounds; radii 12 -> 32 px at box 128, scaled; pretraining on 10,000 images) but one start
(``--starts``; AbinitConfig's 4 run side by side through the first 3 search cycles, about twice the
time; cryoDRGN-AI has one); ``--search-epochs`` 6 x (1 + ``--map-epochs`` 2), then
``--refine-epochs`` 3; a decoder the size of cryoDRGN-AI's hypervolume (3 layers of 256, gaussian
encoding of 64 frequencies); other training settings cryonb's defaults for the device. Estimated on
an H200 at 20,000 images, box 64: a search epoch 15-30 s (about 1.4e9 decoder points in bfloat16),
a map or refine epoch a few seconds: 2.5-4 minutes in all.

Conventions checked on a CPU: cryoDRGN's ``backproject_voxel`` of these files at the true poses
(poses_true.pkl, ``--uninvert-data``) gives the true map, and its ``abinit`` started from them
(``--load-poses``, no search) keeps them (0.5° after :func:`align_poses`).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.suite import metrics  # noqa: E402
from benchmarks.suite.drgn import read_z, run_drgn  # noqa: E402
from cryonb.core.abinit import Abinit, AbinitConfig, align_map, align_poses  # noqa: E402
from cryonb.core.fsc import fsc  # noqa: E402
from cryonb.core.io import read_cryodrgn_poses, read_map  # noqa: E402
from cryonb.core.io.pickles import write_cryodrgn_poses  # noqa: E402
from cryonb.core.particles import load_particles  # noqa: E402
from cryonb.core.phantoms import hinge  # noqa: E402
from cryonb.core.simulate import simulate  # noqa: E402

DRGN_CMD = Path(__file__).resolve().parent / "suite" / "drgn_cmd.py"
SHIFT_EXTENT_128 = 20.0  # both programs' shift search extent (px) at box 128


class Truth:
    """Images with their true poses, and what else is known: the one true map (the hinge phantom) or,
    for a benchmark suite set, the states (:class:`benchmarks.suite.metrics.Truth`)."""

    def __init__(self, particles, true_map=None, states=None):
        self.particles, self.true_map, self.states = particles, true_map, states

    @classmethod
    def hinge(cls, box: int, n: int, snr: float, shift_sigma: float = 0.0, device="cpu"):
        """The one-state hinge phantom, n images with CTF and noise (simulation seed 0)."""
        sim = simulate(hinge(box)[None], n=n, snr=snr, shift_sigma=shift_sigma, seed=0, device=device, progress=False)
        return cls(sim.particles, true_map=sim.volumes[0]), sim

    @classmethod
    def suite_set(cls, folder: Path):
        """A set of the benchmark suite (``python -m benchmarks.suite.generate``): its .star's poses are the truth."""
        return cls(load_particles(folder / "particles.star"), states=metrics.load_truth(folder / "truth.npz"))


def score(rotations, volume, z, truth: Truth) -> dict:
    """Poses (N, 3, 3) against the true ones after alignment (both hands); the map (D, D, D) against the
    true map where there is one; latents (N, zdim) against the true states where there are some."""
    alignment = align_poses(rotations, truth.particles.rotations)
    out = {"median_error": round(alignment.median_error, 2),
           "median_error_other_hand": round(alignment.median_error_other_hand, 2),
           "within_10": round(float(np.mean(alignment.errors < 10)), 3)}
    if truth.true_map is not None:
        curve = fsc(align_map(volume, alignment), truth.true_map, apix=truth.particles.apix)
        out["fsc_0.5_A"] = round(curve.resolution(0.5), 1)
    if z is not None and truth.states is not None:
        out.update({k: round(v, 4) for k, v in metrics.latent_metrics(z, truth.states).items()})
    return out


def write_dataset(sim, outdir: Path, drgn: str, log: Path) -> dict[str, Path]:
    """particles.mrcs/.star, truth.npz, volumes/, poses_true.pkl and (cryoDRGN's parse_ctf_star) ctf.pkl."""
    paths = sim.save(outdir)
    p = sim.particles
    write_cryodrgn_poses(outdir / "poses_true.pkl", p.rotations, p.shifts, p.box_size)
    paths["ctf"] = outdir / "ctf.pkl"
    run_drgn(drgn, ["parse_ctf_star", paths["star"], "-o", paths["ctf"], "-D", p.box_size, "--Apix", p.apix], log)
    return paths


def suite_set_paths(folder: Path, particles, outdir: Path, drgn: str, log: Path) -> dict[str, Path]:
    """A suite set's stack and .star, and its CTF as cryoDRGN's ``parse_ctf_star`` writes it (into ``outdir``)."""
    paths = {"stack": folder / "particles.mrcs", "star": folder / "particles.star", "ctf": outdir / "ctf.pkl"}
    run_drgn(drgn, ["parse_ctf_star", paths["star"], "-o", paths["ctf"], "-D", particles.box_size, "--Apix", particles.apix], log)
    return paths


def drgn_prefix(python: str, path: str | None, device: str, script: Path | None = DRGN_CMD) -> str:
    """Command prefix running one cryoDRGN command: ``env [PYTHONPATH] [GPU choice] PYTHON drgn_cmd.py``."""
    env = []
    if path:
        env.append("PYTHONPATH=" + os.pathsep.join(filter(None, [path, os.environ.get("PYTHONPATH")])))
    if device == "cpu":
        env.append("CUDA_VISIBLE_DEVICES=")  # cryoDRGN takes the first GPU whenever there is one
    elif device.startswith("cuda:"):
        env.append("CUDA_VISIBLE_DEVICES=" + device.partition(":")[2])
    return shlex.join(["env", *env, python, *([str(script)] if script else [])])


def drgn_version(args) -> str:
    """The version of the cryodrgn that ``--drgn-python`` imports ("?" if it imports none)."""
    argv = shlex.split(drgn_prefix(args.drgn_python, args.drgn_path, "cpu", None))
    proc = subprocess.run([*argv, "-c", "import cryodrgn; print(cryodrgn.__version__)"], capture_output=True, text=True)
    return proc.stdout.strip() or "?"


def drgn_options(box: int, epochs: int, search_epochs: int | None, shifts: bool, seed: int, zdim: int = 0,
                 uninvert: bool = True) -> list:
    """``cryodrgn abinit`` options (see the module docstring for the defaults changed)."""
    lo, hi = (round(r * box / 128) for r in (12, 32))
    extent = SHIFT_EXTENT_128 * box / 128 if shifts else 0.0
    search = [] if search_epochs is None else ["--epochs-pose-search", search_epochs]
    return ["--zdim", zdim, "-n", epochs, *search, "--l-start", lo, "--l-end", hi, "--t-extent", extent,
            *(["--uninvert-data"] if uninvert else []), "--checkpoint", 1, "--no-analysis", "--seed", seed]


def last_drgn_epoch(out: Path, box: int, zdim: int = 0):
    """(epoch, rotations, map, z or None) of the last epoch cryoDRGN wrote whole, or None."""
    epochs = sorted((int(p.stem.split(".")[1]) for p in out.glob("pose.*.pkl")), reverse=True)
    for e in epochs:
        try:
            rotations, _ = read_cryodrgn_poses(out / f"pose.{e}.pkl", box)
            volume, _ = read_map(out / f"reconstruct.{e}.mrc")
            z = read_z(out / f"z.{e}.pkl") if zdim else None
        except Exception:  # noqa: BLE001 - a file cut short when the run was stopped: take the epoch before
            continue
        return e, rotations, volume, z
    return None


def run_cryodrgn(truth: Truth, paths, args, drgn: str, log: Path) -> dict:
    out = args.outdir / "cryodrgn"
    # the hinge's images are cryoDRGN's own image model; a suite set's are dark particles, as real data
    options = drgn_options(truth.particles.box_size, args.drgn_epochs, args.drgn_search_epochs, args.shifts, args.seed,
                           args.zdim, uninvert=args.set is None)
    start = time.perf_counter()
    try:
        complete = run_drgn(drgn, ["abinit", paths["stack"], "--ctf", paths["ctf"], "-o", out, *options], log, args.timeout)
        error = None
    except RuntimeError as err:
        complete, error = False, str(err)
    record = {"wall_s": round(time.perf_counter() - start, 1), "complete": complete, "epochs_planned": args.drgn_epochs,
              "options": shlex.join(map(str, options))}
    last = last_drgn_epoch(out, truth.particles.box_size, args.zdim)
    if last is None:
        return {**record, "epochs": None, "error": error or "no epoch written"}
    epoch, rotations, volume, z = last
    return {**record, "epochs": epoch, **score(rotations, volume, z, truth), **({"error": error} if error else {})}


def run_cryonb(truth: Truth, args) -> dict:
    chosen = dict(search_epochs=args.search_epochs, map_epochs=args.map_epochs, starts=args.starts,
                  shift_extent=None if args.shifts else 0, map_grid=args.map_grid, search_images=args.search_images)
    settings = AbinitConfig(**chosen)
    epochs = 1 + args.search_epochs * (1 + args.map_epochs) + args.refine_epochs
    p = truth.particles
    blind = type(p)(p.images, None, None, p.ctf, p.apix)
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    ab = Abinit(blind, zdim=args.zdim, settings=settings, device=args.device, dec_width=args.dec_width, dec_depth=3,
                encoding="gaussian", n_freqs=64, epochs=epochs, seed=args.seed)
    done, epoch_s = 0, []
    profile = cProfile.Profile() if args.profile else contextlib.nullcontext()
    with profile:
        while done < epochs and time.perf_counter() - start < args.timeout:
            began = time.perf_counter()
            ab.fit(1, progress=False)
            if cuda:
                torch.cuda.synchronize()
            epoch_s.append(round(time.perf_counter() - began, 2))
            done += 1
    if args.profile:
        profile.dump_stats(args.profile)
    record = {"wall_s": round(time.perf_counter() - start, 1), "complete": done == epochs, "epochs_planned": epochs,
              "options": " ".join(f"{k}={v}" for k, v in {**chosen, "zdim": args.zdim, "refine_epochs": args.refine_epochs,
                                                           "dec_width": args.dec_width}.items()),
              "epochs": done, "epoch_s": epoch_s}
    if cuda:
        record["peak_gpu_GiB"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    z = ab.embed() if args.zdim else None
    volume = None if truth.true_map is None else ab.volume()
    return {**record, **score(ab.poses()[0], volume, z, truth)}


def report(system: str, result: dict, args, truth: Truth) -> None:
    data = {"set": str(args.set)} if args.set else {"snr": args.snr}
    row = {"system": system, "n": len(truth.particles), "box": truth.particles.box_size, **data, "zdim": args.zdim,
           "device": args.device, **result}
    line = json.dumps(row)
    print(line, flush=True)
    if args.jsonl:
        with open(args.jsonl, "a") as f:
            f.write(line + "\n")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--outdir", type=Path, required=True, help="data set, cryoDRGN's run (cryodrgn/) and commands.log")
    p.add_argument("--set", type=Path, help="a benchmark suite set's folder (benchmarks.suite.generate) instead of the hinge; "
                                            "shifts searched, latents scored; --n, --box, --snr, --shift-sigma unused")
    p.add_argument("--zdim", type=int, default=0, help="both systems' latent dimension (default: 0, one map)")
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--box", type=int, default=64)
    p.add_argument("--snr", type=float, default=0.1)
    p.add_argument("--shift-sigma", type=float, default=0.0, help="simulated shifts (px per axis); >0 turns both shift searches on")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seed", type=int, default=0, help="both runs' seed (the simulation's is 0)")
    p.add_argument("--timeout", type=float, default=220.0, help="seconds per system (cryoDRGN is stopped, cryonb starts no new epoch)")
    p.add_argument("--jsonl", help="append the JSON lines here")
    p.add_argument("--drgn-python", default=sys.executable, help="Python that imports cryodrgn 4.3.1")
    p.add_argument("--drgn-path", help="folder to put first on cryoDRGN's PYTHONPATH")
    p.add_argument("--drgn-epochs", type=int, default=10, help="cryodrgn abinit -n (pretraining epoch 0 not counted)")
    p.add_argument("--drgn-search-epochs", type=int, help="cryodrgn abinit --epochs-pose-search (default: its own, 3)")
    p.add_argument("--search-epochs", type=int, default=6)
    p.add_argument("--map-epochs", type=int, default=2)
    p.add_argument("--refine-epochs", type=int, default=3)
    p.add_argument("--starts", type=int, default=1, help="cryonb's independent starts (default: 1, as cryoDRGN-AI; AbinitConfig's is 4)")
    p.add_argument("--dec-width", type=int, default=256, help="cryonb's decoder width (cryoDRGN-AI's --dim)")
    p.add_argument("--map-grid", type=int, default=AbinitConfig.map_grid,
                   help="cryonb's search: a shared map drawn on a grid this many times finer than the pixels; 0: the decoder at every pixel")
    p.add_argument("--search-images", type=int, default=AbinitConfig.search_images,
                   help="cryonb's images searched at once (the batch and the next ones; the batch size: each batch alone)")
    p.add_argument("--skip", choices=("cryodrgn", "cryonb"), help="run only the other system")
    p.add_argument("--profile", help="write a cProfile of cryonb's run here (pstats)")
    args = p.parse_args(argv)
    args.outdir = args.outdir.resolve()
    args.shifts = args.shift_sigma > 0 or args.set is not None  # both programs search shifts where there are some
    args.outdir.mkdir(parents=True, exist_ok=True)
    log = args.outdir / "commands.log"
    drgn = drgn_prefix(args.drgn_python, args.drgn_path, args.device)

    if args.set is None:
        truth, sim = Truth.hinge(args.box, args.n, args.snr, args.shift_sigma, device=args.device)
        write = lambda: write_dataset(sim, args.outdir, drgn, log)  # noqa: E731
    else:
        args.set = args.set.resolve()
        truth = Truth.suite_set(args.set)
        write = lambda: suite_set_paths(args.set, truth.particles, args.outdir, drgn, log)  # noqa: E731
    if args.skip != "cryodrgn":
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
        try:
            result = run_cryodrgn(truth, write(), args, drgn, log)
        except RuntimeError as err:  # cryoDRGN's CTF conversion failed (e.g. cryodrgn not importable)
            result = {"error": str(err)}
        if "error" in result:
            print(log.read_text()[-3000:], file=sys.stderr)
        report("cryodrgn-" + drgn_version(args), result, args, truth)
    if args.skip != "cryonb":
        report("cryonb", run_cryonb(truth, args), args, truth)


if __name__ == "__main__":
    main()
