"""Ab initio classes on a two-conformation stack: do the classes find the minority state and its poses? (CPU)

    python benchmarks/abinit_classes.py                          # 2 classes, 9 search cycles, seed 0
    python benchmarks/abinit_classes.py --classes 1 --search-epochs 6   # one map, for comparison
    python benchmarks/abinit_classes.py --seed 1 --map-epochs 1

Notebook 05's stack: 2,000 images of the hinge phantom at box 32, SNR 10, with CTF and no poses,
three quarters closed and a quarter swung by 0.75 rad. Prints one JSON line per epoch (median pose
error of each conformation after one global alignment, adjusted Rand index of the classes against
the conformations, class sizes), then the confusion matrix and, for each class, the median pose
error after aligning that class's own poses (each class's map has its own frame).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryonb.core.abinit import Abinit, AbinitConfig, align_poses  # noqa: E402
from cryonb.core.phantoms import hinge  # noqa: E402
from cryonb.core.simulate import simulate  # noqa: E402


def by_state(errors, state) -> dict:
    return {name: round(float(np.median(errors[state == s])), 1) for s, name in enumerate(("closed", "swung")) if (state == s).any()}


def main(argv=None):
    from sklearn.metrics import adjusted_rand_score

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--classes", type=int, default=2)
    p.add_argument("--search-epochs", type=int, default=9)
    p.add_argument("--map-epochs", type=int, default=2)
    p.add_argument("--starts", type=int, default=1)
    p.add_argument("--seed", type=int, default=0, help="the run's seed (the simulation's is 0)")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    sim = simulate([hinge(32, 0.0), hinge(32, 0.75)], 2000, apix=3.0, snr=10.0, proportions=[0.75, 0.25], seed=0, progress=False)
    state, truth = sim.state, sim.particles.rotations
    settings = AbinitConfig(pretrain_images=2000, search_epochs=a.search_epochs, map_epochs=a.map_epochs, base_resolution=1,
                            iterations=3, keep=4, shift_extent=0, starts=a.starts, classes=a.classes)
    epochs = 1 + (1 + a.map_epochs) * a.search_epochs + 3
    ab = Abinit(replace(sim.particles, rotations=None, shifts=None), zdim=0, settings=settings, dec_width=64, dec_depth=2,
                batch_size=32, lr=2e-3, epochs=epochs, device="cpu", seed=a.seed)
    start, cpu = time.perf_counter(), time.process_time()
    labels = np.zeros(len(state), dtype=np.int64)
    for _ in range(epochs):
        ab.fit(1, progress=False)
        labels = ab.classes() if a.classes > 1 else labels
        row = {"epoch": ab.history[-1]["epoch"], "phase": ab.history[-1]["phase"],
               "median_error": by_state(ab.align(truth).errors, state), "ari": round(adjusted_rand_score(state, labels), 3),
               "sizes": np.bincount(labels, minlength=a.classes).tolist(),
               "seconds": round(time.perf_counter() - start), "cpu_seconds": round(time.process_time() - cpu)}
        print(json.dumps(row), flush=True)
    rotations = ab.poses()[0]
    per_class = []
    for k in range(a.classes):
        mine = labels == k
        per_class.append({"class": k, "images": int(mine.sum()),
                          "median_error_own_frame": by_state(align_poses(rotations[mine], truth[mine]).errors, state[mine])})
    print(json.dumps({"confusion (rows: closed, swung)": [np.bincount(labels[state == s], minlength=a.classes).tolist() for s in (0, 1)],
                      "classes": per_class, "settings": vars(a)}))


if __name__ == "__main__":
    main()
