"""How much each class's spread in z changes the decoder's map: assembly, one training, on the GPU.
    python benchmarks/results/suite/latent_map_change_2026-12-06g/flat.py SETDIR OUT.npy ['{"beta": 0.01}']"""
import json, sys, time
import numpy as np
import torch
from benchmarks.suite import metrics
from cryonb.core.particles import load_particles
from cryonb.core.training import Trainer, TrainConfig

folder, out = sys.argv[1], sys.argv[2]
overrides = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
truth = metrics.load_truth(folder + "/truth.npz")
start = time.time()
trainer = Trainer(load_particles(folder + "/particles.star"), TrainConfig(zdim=8, seed=0, **overrides))
trainer.fit(trainer.config.epochs, progress=False)
z = trainer.embed()
print("trained", overrides, f"{time.time() - start:.1f} s", flush=True)
np.save(out, z)
keep = truth.keep()
zk, labels = z[keep], truth.labels[keep]
names = ["70S", "70S-A", "70S-AB", "bgal", "rare"]
means = {}
for c, name in enumerate(names):
    zc = zk[labels == c]
    mean = zc.mean(0); means[c] = mean
    _, s, vt = np.linalg.svd(zc - mean, full_matrices=False)
    sd = s / np.sqrt(len(zc))
    v0 = trainer.volume(mean); n0 = np.linalg.norm(v0)
    parts = [f"{name:6s} n={len(zc):5d} |z|sd={np.sqrt((sd**2).sum()):.3f}"]
    for k in range(3):
        change = np.linalg.norm(trainer.volume(mean + sd[k] * vt[k]) - trainer.volume(mean - sd[k] * vt[k])) / n0
        parts.append(f"pc{k + 1} sd {sd[k]:.3f} map change over +-1 sd {change:.4f}")
    print("; ".join(parts), flush=True)
for a, b in ((2, 4), (0, 1), (1, 2), (0, 3)):
    va, vb = trainer.volume(means[a]), trainer.volume(means[b])
    print(f"{names[a]} -> {names[b]}: |dz| {np.linalg.norm(means[b] - means[a]):.3f}, map change {np.linalg.norm(vb - va) / np.linalg.norm(va):.4f}")
print({k: round(v, 4) for k, v in metrics.latent_metrics(z, truth).items() if not isinstance(v, (list, dict))})
