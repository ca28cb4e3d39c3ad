"""cryoDRGN 4.3.1 on a benchmark data set: time to accuracy, one JSON line per run.

    python3 -m benchmarks.suite.drgn DATASET --epochs 20 --jsonl results.jsonl --results out/

DATASET holds particles.mrcs, particles.star and truth.npz. Runs cryoDRGN's own
``parse_pose_star`` and ``parse_ctf_star``, then ``train_vae`` at its defaults (``--zdim 8 -n EPOCHS``,
plus ``--seed`` and ``--no-analysis``: the UMAP analysis after training is not timed), then scores
the ``z.EPOCH.pkl`` of every epoch (:mod:`benchmarks.suite.metrics`) and, for the final model, the
per-image FSC AUC of maps from ``eval_vol --zfile``. An epoch's ``wall_s`` is when its z pickle was
written, counted from the start of the conversion. ``--drgn`` is the command prefix that runs a
cryoDRGN command (default: this Python on ``drgn_cmd.py``, for cryoDRGN on ``PYTHONPATH``).
``--rescore --workdir W`` scores a run already trained in ``W`` (``--workdir`` kept it) without
training again, e.g. with probes added since (its record carries no wall time).
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.records import emit  # noqa: E402
from benchmarks.suite import metrics  # noqa: E402
from cryonb.core.io import load_pickle, read_header, read_map, read_star  # noqa: E402

DEFAULT_DRGN = f"{shlex.quote(sys.executable)} {shlex.quote(str(Path(__file__).with_name('drgn_cmd.py')))}"
EPOCH_LINE = re.compile(r"=====> Epoch: (\d+) .*Finished in (\d+):(\d+):([\d.]+)")


def run_drgn(drgn: str, args: list, log: Path, timeout: float | None = None) -> bool:
    """Run ``drgn COMMAND ARGS`` with stdout and stderr appended to ``log``; False if it timed out."""
    with open(log, "a") as f:
        f.write(f"$ {drgn} {shlex.join(map(str, args))}\n")
        f.flush()
        proc = subprocess.Popen(shlex.split(drgn) + [str(a) for a in args], stdout=f, stderr=subprocess.STDOUT)
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return False
    if rc:
        raise RuntimeError(f"cryoDRGN {args[0]} failed (exit {rc}); see {log}")
    return True


def dataset_geometry(folder: Path) -> tuple[int, float]:
    """Box (pixels) from the stack's header and pixel size (Å) from the .star file."""
    box = read_header(folder / "particles.mrcs").data_shape[-1]
    apix = float(read_star(folder / "particles.star").pixel_sizes[0])
    return int(box), apix


def read_z(path: Path) -> np.ndarray:
    """z_mu (N, zdim) from cryoDRGN's z pickle (z_mu then z_logvar), read without running code."""
    return np.asarray(load_pickle(path), dtype=np.float64)


def read_latents(path: Path) -> np.ndarray:
    """Latents a run kept: cryoDRGN's ``z.pkl`` (:func:`read_z`) or cryonb's ``z.npy``."""
    path = Path(path)
    return read_z(path) if path.suffix == ".pkl" else np.load(path)


def epoch_train_seconds(log_text: str) -> dict[int, float]:
    """Training time of each epoch from cryoDRGN's '=====> Epoch: E ... Finished in H:MM:SS' lines."""
    return {int(e): int(h) * 3600 + int(m) * 60 + float(s) for e, h, m, s in EPOCH_LINE.findall(log_text)}


def true_map_function(folder: Path, device=None):
    """``i -> true map`` of particle ``i``: the suite's sets (rebuilt from atoms on ``device``, a map that
    particles share built once) or cryonb's simulator (volumes/)."""
    with np.load(folder / "truth.npz", allow_pickle=False) as f:
        keys = set(f.files)
        if "set" not in keys and "state_names" in keys:
            state, names = f["state"], f["state_names"]
            return lambda i: read_map(folder / "volumes" / f"{names[state[i]]}.mrc")[0]
    if "set" in keys:
        from benchmarks.suite import sets

        truth = sets.load_truth(folder / "truth.npz")
        shared = {}

        def true_map(i):
            key = sets.shared_map(truth, i)
            if key is None:
                return sets.true_volume(truth, i, device=device)
            if key not in shared:
                shared[key] = sets.true_volume(truth, i, device=device)
            return shared[key]

        return true_map
    return None


def save_fsc_aucs(results, particles: np.ndarray, aucs: np.ndarray, curves: np.ndarray) -> None:
    """``results/fsc_auc.npz``: the scored particles, their per-image FSC AUCs and FSC curves (for analyses
    per class and per frequency)."""
    Path(results).mkdir(parents=True, exist_ok=True)
    np.savez(Path(results) / "fsc_auc.npz", particles=particles, auc=aucs, fsc=curves)


def eval_maps(drgn: str, train_dir: Path, z: np.ndarray, apix: float, log: Path) -> np.ndarray:
    """Maps (B, D, D, D) of the final model at latents ``z`` by ``eval_vol --zfile``."""
    out = train_dir / "eval_vol"
    shutil.rmtree(out, ignore_errors=True)
    np.savetxt(train_dir / "zfile.txt", z)
    run_drgn(drgn, ["eval_vol", train_dir / "weights.pkl", "-c", train_dir / "config.yaml", "--zfile", train_dir / "zfile.txt", "-o", out, "--Apix", apix], log)
    files = sorted(out.glob("vol_*.mrc"), key=lambda p: int(p.stem.split("_")[-1]))
    return np.stack([read_map(p)[0] for p in files])


def run(folder, *, jsonl=None, results=None, drgn: str = DEFAULT_DRGN, zdim: int = 8, epochs: int = 20, seed: int = 0,
        fsc_particles: int = metrics.FSC_PARTICLES, timeout: float | None = None, workdir=None, system: str = "cryodrgn-4.3.1",
        score_every: int = 1, score_seed: int = 0, ideal_z: bool = False, smooth_k: int | None = None,
        rescore: bool = False) -> dict:
    """Train cryoDRGN on ``folder``, score every epoch and return (and append to ``jsonl``) the record.

    ``seed`` is the training's; ``score_seed`` draws the metrics' particles and initialisations, the
    same for every training seed so that seeds compare the training alone. ``ideal_z`` (continuous
    sets), ``smooth_k``: score the final maps at the particles' ideal or smoothed latents too
    (:func:`metrics.probe_latent_fsc`). ``rescore``: score the run trained before in ``workdir``."""
    folder = Path(folder).resolve()
    truth = metrics.load_truth(folder / "truth.npz")
    box, apix = dataset_geometry(folder)
    if rescore and workdir is None:
        raise ValueError("rescoring needs the workdir of the trained run")
    work = Path(workdir or tempfile.mkdtemp(prefix="drgn-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    train_dir, log = work / "train", work / "commands.log"
    train_args = ["train_vae", folder / "particles.mrcs", "--poses", work / "pose.pkl", "--ctf", work / "ctf.pkl",
                  "--zdim", zdim, "-n", epochs, "-o", train_dir, "--seed", seed, "--no-analysis"]
    t0 = time.time()
    if rescore:
        complete, t1, t2 = (train_dir / "z.pkl").exists(), t0, t0
    else:
        log.write_text("")
        run_drgn(drgn, ["parse_pose_star", folder / "particles.star", "-o", work / "pose.pkl", "-D", box, "--Apix", apix], log)
        run_drgn(drgn, ["parse_ctf_star", folder / "particles.star", "-o", work / "ctf.pkl", "-D", box, "--Apix", apix], log)
        t1 = time.time()
        complete = run_drgn(drgn, train_args, log, timeout)
        t2 = time.time()

    run_log = (train_dir / "run.log").read_text() if (train_dir / "run.log").exists() else ""
    train_s = epoch_train_seconds(run_log)
    per_epoch, z = [], None
    for e in range(1, epochs + 1):
        path = train_dir / f"z.{e}.pkl"
        if not path.exists():
            break
        if e % score_every and e != epochs and (train_dir / f"z.{e + 1}.pkl").exists():
            continue  # scored every score_every epochs, and the last one written
        z = read_z(path)
        per_epoch.append({"epoch": e, "wall_s": round(path.stat().st_mtime - t0, 2), "train_epoch_s": train_s.get(e),
                          "metrics": rounded(metrics.latent_metrics(z, truth, score_seed))})

    record = {"system": system, "set": set_name(folder), "params": {**set_conditions(folder), "zdim": zdim, "epochs": epochs, "seed": seed, "score_seed": score_seed, "n": truth.n, "box": box, "apix": apix,
              "train_vae": shlex.join(a.name if isinstance(a, Path) else str(a) for a in train_args)},
              "complete": complete, "wall_s": round(t2 - t0, 2), "convert_s": round(t1 - t0, 2), "train_s": round(t2 - t1, 2),
              "device": _device(run_log), "epochs": per_epoch, "final": dict(per_epoch[-1]["metrics"]) if per_epoch else {}}
    if rescore:  # trained before: no wall times
        record.update(rescored=True, wall_s=None, convert_s=None, train_s=None)
        for epoch in per_epoch:
            epoch["wall_s"] = None
    final_z = train_dir / "z.pkl" if complete else (train_dir / f"z.{len(per_epoch)}.pkl" if per_epoch else None)
    true_map = true_map_function(folder, "cuda" if torch.cuda.is_available() else None)
    if complete and fsc_particles and true_map is not None:
        t3 = time.time()
        z = read_z(final_z)

        def maps_at(zb):
            return eval_maps(drgn, train_dir, zb, apix, log)

        fsc = metrics.per_image_fsc_aucs(z, maps_at, true_map, k=fsc_particles, seed=score_seed, batch=fsc_particles,
                                         candidates=truth.keep())
        record["final"].update(rounded(metrics.fsc_summary(fsc[1])))
        if ideal_z or smooth_k:
            probes = metrics.probe_latent_fsc(z, maps_at, true_map, truth, ideal_z, smooth_k, k=fsc_particles,
                                              seed=score_seed, batch=fsc_particles)
            record["final"].update(rounded(probes))
        record["eval_vol_s"] = round(time.time() - t3, 2)
        if results is not None:
            save_fsc_aucs(results, *fsc)

    if results is not None:
        out = Path(results)
        out.mkdir(parents=True, exist_ok=True)
        for src in (final_z, train_dir / "run.log", train_dir / "config.yaml", log):
            if src is not None and src.exists():
                shutil.copy(src, out / ("z.pkl" if src == final_z else src.name))
    emit(record, jsonl, echo=False)
    if workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return record


def _set_facts(folder: Path) -> dict:
    """The scalars ``truth.npz`` records about its set (name, SNR asked of the generator, seed), those it has."""
    with np.load(folder / "truth.npz", allow_pickle=False) as f:
        return {key: f[key].item() for key in ("set", "snr", "seed") if key in f.files}


def set_name(folder: Path) -> str:
    return str(_set_facts(folder).get("set", folder.name))


def set_conditions(folder: Path) -> dict:
    """The SNR asked of the generator and the set's seed (None where ``truth.npz`` lacks them), for a
    record that must tell one set's runs from another's without its file name."""
    facts = _set_facts(folder)
    snr = facts.get("snr")
    return {"snr": float(snr) if snr is not None and np.isfinite(snr) else None,
            "data_seed": int(facts["seed"]) if "seed" in facts else None}


def _device(run_log: str) -> str:
    m = re.search(r"Use cuda (\w+)", run_log)
    return "cuda" if m and m.group(1) == "True" else "cpu"


def rounded(d: dict) -> dict:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in d.items()}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", help="folder with particles.mrcs, particles.star, truth.npz")
    ap.add_argument("--epochs", "-n", type=int, default=20)
    ap.add_argument("--zdim", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0, help="the training's seed (the scores draw with seed 0 whatever it is)")
    ap.add_argument("--fsc-particles", type=int, default=metrics.FSC_PARTICLES, help="per-image FSC AUC on K particles (0: skip)")
    ap.add_argument("--jsonl", default="drgn.jsonl", help="append the record here")
    ap.add_argument("--results", help="copy z.pkl (last epoch), run.log, config.yaml, commands.log here; write fsc_auc.npz (per-image FSC AUCs)")
    ap.add_argument("--drgn", default=DEFAULT_DRGN, help="command prefix that runs a cryoDRGN command (default: %(default)s)")
    ap.add_argument("--timeout", type=float, help="stop train_vae after this many seconds and score the epochs written")
    ap.add_argument("--workdir", help="keep cryoDRGN's outputs here (default: a temporary folder, removed)")
    ap.add_argument("--system", default="cryodrgn-4.3.1")
    ap.add_argument("--score-every", type=int, default=1, help="score the latents of every Nth epoch (and the last)")
    ap.add_argument("--ideal-z", action="store_true", help="also score the maps at latents averaged over true neighbours (continuous sets)")
    ap.add_argument("--smooth-z", type=int, metavar="K", help="also score the maps at latents averaged over their K nearest neighbours in z")
    ap.add_argument("--rescore", action="store_true", help="score the run already trained in --workdir, without training")
    args = ap.parse_args(argv)
    record = run(args.dataset, jsonl=args.jsonl, results=args.results, drgn=args.drgn, zdim=args.zdim, epochs=args.epochs, seed=args.seed, score_every=args.score_every,
                 fsc_particles=args.fsc_particles, timeout=args.timeout, workdir=args.workdir, system=args.system,
                 ideal_z=args.ideal_z, smooth_k=args.smooth_z, rescore=args.rescore)
    print(json.dumps({k: record[k] for k in ("system", "set", "wall_s", "complete", "final")}))


if __name__ == "__main__":
    main()
