"""cryonb on a benchmark data set: time to accuracy, one JSON line per run (the counterpart of drgn.py).

    python3 -m benchmarks.suite.train DATASET --jsonl results.jsonl [--epochs E] [--set KEY=VALUE ...]

DATASET holds particles.mrcs, particles.star and truth.npz. Trains ``Trainer(particles)`` with its
defaults (``--zdim 8``, and any ``--set`` overrides of TrainConfig, e.g. ``--set batch_size=64``),
keeps the latents every ``--score-every`` epochs, and scores them after training
(:mod:`benchmarks.suite.metrics`), so the scoring is not timed. An epoch's ``wall_s`` counts from
the start of reading the particles to the end of that epoch's embedding, as drgn.py counts
cryoDRGN's. The final model is scored by per-image FSC AUC too.

The Gaussian-mixture decoder needs a consensus map: ``--set decoder="'gmm'" --consensus`` back-projects
the particles first (timed, as a user would have to) and fits its neutral mixture to that map.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.records import emit
from benchmarks.suite import metrics
from benchmarks.suite.drgn import rounded, save_fsc_aucs, set_conditions, set_name, true_map_function
from cryonb.core.averaging import WeightAverage
from cryonb.core.particles import load_particles
from cryonb.core.training import Trainer, TrainConfig


def synchronize(trainer):
    """Wait for the trainer's GPU work, so that a wall-clock reading includes it."""
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()


def run(folder, *, jsonl=None, zdim: int = 8, epochs: int | None = None, seed: int = 0, overrides: dict | None = None,
        fsc_particles: int = metrics.FSC_PARTICLES, system: str = "cryonb", device: str = "auto",
        score_every: int = 5, refine: bool = False, results=None, score_seed: int = 0, consensus: bool = False,
        ideal_z: bool = False, smooth_k: int | None = None, averages: tuple[str, ...] = (), as_trained: bool = False) -> dict:
    """Train cryonb on ``folder``, score every epoch and return (and append to ``jsonl``) the record.

    ``epochs`` (default: the configuration's schedule, cryonb's default length or an ``epochs``
    override) are trained; ``seed`` is the training's; ``score_seed`` draws the metrics' particles
    and initialisations, the same for every training seed so that seeds compare the training alone.
    ``consensus``: back-project the particles and train with that map as ``neutral_map``. ``ideal_z``
    (continuous sets), ``smooth_k``: score the maps at the particles' ideal or smoothed latents too
    (:func:`metrics.probe_latent_fsc`). ``averages``: moving averages of the weights kept through
    training (:class:`cryonb.core.averaging.WeightAverage`), each ``DECAY`` (the whole model) or
    ``DECAY:PART`` (one part, e.g. ``0.999:latents``, the encoder); each averaged model is scored as a
    record of its own (the same training: a paired comparison). ``as_trained``: where the configuration
    reads the latents with its encoder's average (``encoder_average``), also score the encoder as
    trained, as the record of ``average=none``."""
    folder = Path(folder).resolve()
    truth = metrics.load_truth(folder / "truth.npz")
    overrides = dict(overrides or {})
    t0 = time.perf_counter()
    particles = load_particles(folder / "particles.star")
    if consensus:
        overrides["neutral_map"] = _consensus_map(particles, device)
    trainer = Trainer(particles, TrainConfig(zdim=zdim, seed=seed, device=device, **overrides))
    synchronize(trainer)
    setup = time.perf_counter() - t0  # reading and preparing the images, building the model
    weight_averages = {str(spec): _weight_average(trainer.model, str(spec)) for spec in averages}
    if weight_averages:  # folds in each step's weights before the next step (and the last after training)
        trainer.before_step.append(lambda *_: [a.update() for a in weight_averages.values()])
    epochs = epochs or trainer.config.epochs
    latents = []
    while trainer.epoch < epochs:
        trainer.fit(min(score_every, epochs - trainer.epoch), progress=False)
        z = trainer.embed()
        synchronize(trainer)
        latents.append((trainer.epoch, time.perf_counter() - t0, z))
    for average in weight_averages.values():
        average.update()
    wall = time.perf_counter() - t0
    per_epoch = [{"epoch": e, "wall_s": round(w, 2), "metrics": rounded(metrics.latent_metrics(z, truth, score_seed))}
                 for e, w, z in latents]
    c = trainer.config
    record = {"system": system, "set": set_name(folder),
              "params": {**set_conditions(folder), "zdim": zdim, "epochs": epochs, "seed": seed, "score_seed": score_seed, "n": truth.n, "box": trainer.data.D,
                         "overrides": overrides, "model": f"{c.dec_width}x{c.dec_depth}{' residual' if c.residual else ''}",
                         "encoding": c.encoding, "decoder_init": c.decoder_init, "encoder_average": c.encoder_average, "beta": c.kl_weight, "batch_size": c.batch_size, "lr": c.lr, "lr_schedule": c.lr_schedule,
                         "cuda_graphs": trainer._graphs},
              "wall_s": round(wall, 2), "setup_s": round(setup, 2), "device": torch.cuda.get_device_name() if trainer.device.type == "cuda" else "cpu",
              "images_per_s": round(np.median([h["images_per_s"] for h in trainer.history])),
              "epoch_seconds": [round(h["seconds"], 2) for h in trainer.history],
              "epochs": per_epoch, "final": dict(per_epoch[-1]["metrics"])}
    if refine:  # an experiment: latents refined against the frozen decoder, timed separately
        from cryonb.core.refine import refine_latents

        t1 = time.perf_counter()
        refined = refine_latents(trainer)
        record["refine_s"] = round(time.perf_counter() - t1, 2)
        record["refined"] = rounded(metrics.latent_metrics(refined, truth, score_seed))
    true_map = true_map_function(folder, trainer.device)
    if results is not None:  # the last latents, for analyses after the run
        Path(results).mkdir(parents=True, exist_ok=True)
        np.save(Path(results) / "z.npy", latents[-1][2])
        if refine:
            np.save(Path(results) / "z_refined.npy", refined)
    if fsc_particles and true_map is not None:
        fsc = metrics.per_image_fsc_aucs(latents[-1][2], trainer.volumes, true_map, k=fsc_particles, seed=score_seed,
                                         candidates=truth.keep())
        record["final"].update(rounded(metrics.fsc_summary(fsc[1])))
        if ideal_z or smooth_k:
            probes = metrics.probe_latent_fsc(latents[-1][2], trainer.volumes, true_map, truth, ideal_z, smooth_k,
                                              k=fsc_particles, seed=score_seed)
            record["final"].update(rounded(probes))
        if results is not None:
            save_fsc_aucs(results, *fsc)
    emit(record, jsonl, echo=False)
    variants = {name: average.applied for name, average in weight_averages.items()}
    if as_trained and trainer.encoder_average is not None:
        variants["none"] = contextlib.nullcontext
    own, trainer.encoder_average = trainer.encoder_average, None  # embed() reads the weights applied below
    for name, applied in variants.items():
        with applied():
            _score_averaged(record, name, trainer, truth, true_map, fsc_particles, score_seed, results, jsonl)
    trainer.encoder_average = own
    return record


def _weight_average(model, spec: str) -> WeightAverage:
    """``DECAY`` or ``DECAY:PART``: a moving average of the model's (or its part's) weights."""
    decay, _, part = spec.partition(":")
    return WeightAverage(getattr(model, part) if part else model, float(decay))


def _score_averaged(record, name, trainer, truth, true_map, fsc_particles, score_seed, results, jsonl):
    """The record of the model with averaged weights (its latents and maps; the same run's wall time)."""
    z = trainer.embed()
    final = rounded(metrics.latent_metrics(z, truth, score_seed))
    averaged = {**record, "system": f"{record['system']} [average={name}]", "final": final,
                "params": {**record["params"], "average": name},
                "epochs": [{**record["epochs"][-1], "metrics": final}]}
    folder = None if results is None else Path(results) / f"average-{name.replace(':', '-')}"
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "z.npy", z)
    if fsc_particles and true_map is not None:
        fsc = metrics.per_image_fsc_aucs(z, trainer.volumes, true_map, k=fsc_particles, seed=score_seed, candidates=truth.keep())
        final.update(rounded(metrics.fsc_summary(fsc[1])))
        if folder is not None:
            save_fsc_aucs(folder, *fsc)
    emit(averaged, jsonl, echo=False)


def _consensus_map(particles, device: str) -> str:
    """The particles' consensus back-projection (:func:`cryonb.core.gmm.setup.consensus_map`) in a temporary .mrc; its path."""
    import tempfile

    from cryonb.core.distributed import resolve_device
    from cryonb.core.gmm.setup import consensus_map
    from cryonb.core.io.mrc import write_map

    volume, apix = consensus_map(particles, particles.images.box_size, resolve_device(device), progress=False)
    path = Path(tempfile.mkdtemp(prefix="cryonb-consensus-")) / "consensus.mrc"
    write_map(path, volume, apix)
    return str(path)


def parse_override(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` as (key, value): a Python literal where it reads as one (``0.0``, ``False``, ``'gmm'``), else the text."""
    key, _, value = text.partition("=")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--epochs", type=int, help="epochs to train (default: the schedule's length: cryonb's default, or E of --set epochs=E)")
    ap.add_argument("--zdim", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0, help="the training's seed (the scores draw with seed 0 whatever it is)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a TrainConfig override")
    ap.add_argument("--fsc-particles", type=int, default=metrics.FSC_PARTICLES)
    ap.add_argument("--score-every", type=int, default=5, help="epochs between scored latents")
    ap.add_argument("--refine", action="store_true", help="also score latents refined against the decoder")
    ap.add_argument("--consensus", action="store_true", help="back-project the particles (timed) and train with that map as neutral_map "
                    "(the Gaussian-mixture decoder's consensus)")
    ap.add_argument("--ideal-z", action="store_true", help="also score the maps at latents averaged over true neighbours (continuous sets)")
    ap.add_argument("--smooth-z", type=int, metavar="K", help="also score the maps at latents averaged over their K nearest neighbours in z")
    ap.add_argument("--average", action="append", default=[], metavar="DECAY[:PART]",
                    help="also score the model with its weights (or PART's, e.g. latents) averaged at this decay (repeatable)")
    ap.add_argument("--as-trained", action="store_true",
                    help="also score the encoder as trained where the defaults read the latents with its average (average=none)")
    ap.add_argument("--jsonl", type=Path)
    ap.add_argument("--system", default="cryonb")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--results", type=Path, help="write the last latents (z.npy) and per-image FSC AUCs (fsc_auc.npz) here")
    args = ap.parse_args(argv)
    overrides = dict(map(parse_override, args.set))
    record = run(args.dataset, jsonl=args.jsonl, zdim=args.zdim, epochs=args.epochs, seed=args.seed,
                 overrides=overrides, fsc_particles=args.fsc_particles, system=args.system,
                 device=args.device, score_every=args.score_every, refine=args.refine, results=args.results,
                 consensus=args.consensus, ideal_z=args.ideal_z, smooth_k=args.smooth_z, averages=tuple(args.average),
                 as_trained=args.as_trained)
    print(json.dumps({k: record.get(k) for k in ("system", "set", "wall_s", "images_per_s", "final", "refined", "params")}), flush=True)


if __name__ == "__main__":
    main()
