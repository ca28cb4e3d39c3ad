"""Accuracy of the heterogeneous model on simulated data with known ground truth.

    python benchmarks/bench_accuracy.py hinge --particles 50000 --box 128 --snr 0.1 --zdim 1 --epochs 20
    python benchmarks/bench_accuracy.py mixture --particles 50000 --box 128 --snr 0.1 --zdim 8 --epochs 20

hinge: |Spearman| between the 1D latent (or the first PC of z) and the hinge angle.
mixture: adjusted Rand index between k-means(z, 3) and the true assembly.
--fsc-auc K: CryoBench's per-image metric on K random particles: the area under |FSC| (cycles per
pixel, up to Nyquist) between the map generated at each particle's z and its ground-truth map.
--anneal E LR: from epoch E on, train with learning rate LR.
Prints one JSON line per evaluated epoch.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from scipy.stats import spearmanr
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from cryonb.core.simulate import simulate
from cryonb.core.training import Distributed, Trainer, TrainConfig, resolve_device


def score(model: str, z: np.ndarray, truth) -> float:
    if model == "hinge":
        axis = z[:, 0] if z.shape[1] == 1 else np.linalg.svd(z - z.mean(0), full_matrices=False)[0][:, 0]
        return abs(spearmanr(axis, truth.reaction_coordinate)[0])
    labels = KMeans(3, n_init=10, random_state=0).fit_predict(z)
    return adjusted_rand_score(truth.state, labels)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", choices=("hinge", "mixture"))
    ap.add_argument("--particles", type=int, default=2000)
    ap.add_argument("--box", type=int, default=32)
    ap.add_argument("--apix", type=float, default=None, help="default: 192 Å box")
    ap.add_argument("--snr", type=float, default=0.1)
    ap.add_argument("--zdim", type=int, default=1)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--enc-width", type=int, help="encoder width (default: --width)")
    ap.add_argument("--enc-radius", type=float, default=1.0, help="encoder low-pass, fraction of Nyquist")
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--every", type=int, default=1, help="evaluate every N epochs")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fsc-auc", type=int, default=0, metavar="K", help="per-image FSC AUC on K particles at the end")
    ap.add_argument("--anneal", nargs=2, type=float, metavar=("EPOCH", "LR"), help="lower the learning rate at EPOCH")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    device = resolve_device(args.device, Distributed.from_environment())  # each process on its own GPU
    sim = simulate(args.model, args.particles, D=args.box, apix=args.apix or 192.0 / args.box, snr=args.snr,
                   seed=args.seed, device=device, progress=False)
    t_sim = time.perf_counter() - t0
    trainer = Trainer(sim.particles, TrainConfig(zdim=args.zdim, enc_width=args.enc_width or args.width, enc_depth=args.depth,
                                                 dec_width=args.width, dec_depth=args.depth, batch_size=args.batch,
                                                 lr=args.lr, enc_radius=args.enc_radius, device=args.device, compile=args.compile, seed=args.seed))
    for epoch in range(args.every, args.epochs + 1, args.every):
        if args.anneal and epoch > args.anneal[0]:
            trainer.set_learning_rate(args.anneal[1])
        trainer.fit(args.every, progress=False)
        h = trainer.history[-1]
        if not trainer.dist.main:
            continue
        print(json.dumps({"model": args.model, "n": args.particles, "box": args.box, "snr": args.snr, "zdim": args.zdim,
                          "decoder": f"{args.width}x{args.depth}", "encoder": f"{args.enc_width or args.width}x{args.depth}", "enc_radius": args.enc_radius, "batch": args.batch, "lr": args.lr, "epoch": epoch,
                          "loss": round(h["loss"], 5), "images_per_s": round(h["images_per_s"]),
                          "score": round(score(args.model, trainer.embed(), sim), 4),
                          "simulate_s": round(t_sim, 1)}), flush=True)
    if trainer.dist.main:
        print(json.dumps({"processes": trainer.dist.world, "epoch_loss": [round(h["loss"], 6) for h in trainer.history]}), flush=True)
    if args.fsc_auc and trainer.dist.main:
        print(json.dumps(per_image_fsc_auc(trainer, sim, args.fsc_auc, args.seed)), flush=True)


def per_image_fsc_auc(trainer, sim, k: int, seed: int) -> dict:
    """Mean and median per-image FSC AUC over ``k`` random particles (maps generated in batches)."""
    from cryonb.core.fsc import fsc

    picks = np.random.default_rng(seed).choice(len(sim.state), size=min(k, len(sim.state)), replace=False)
    z = trainer.embed()[picks]
    aucs = []
    for start in range(0, len(picks), 16):
        maps = trainer.volumes(z[start : start + 16])
        for m, i in zip(maps, picks[start : start + 16]):
            aucs.append(fsc(m, sim.volumes[sim.state[i]], apix=sim.particles.apix).auc())
    return {"fsc_auc_mean": round(float(np.mean(aucs)), 4), "fsc_auc_median": round(float(np.median(aucs)), 4),
            "particles": len(aucs)}


if __name__ == "__main__":
    main()
