"""Ab initio from scratch on a small simulated set: median pose error and FSC per epoch (CPU).

    python benchmarks/abinit_scratch.py                       # box 32, 2,000 images, SNR 10, seed 0
    python benchmarks/abinit_scratch.py --seed 2 --search-epochs 10 --map-epochs 1
    python benchmarks/abinit_scratch.py --seed 2 --starts 1        # one start (no choice)
    python benchmarks/abinit_scratch.py --map-grid 0               # the decoder at every candidate's pixels
    python benchmarks/abinit_scratch.py --map-grid 3 --rescore 0   # a finer drawn map, none rescored
    python benchmarks/abinit_scratch.py --search-images 32         # each batch searched alone

Simulates the hinge phantom (one state, CTF, noise), hands :class:`cryonb.core.abinit.Abinit` the
images and CTF without poses, and after every epoch prints one JSON line: the phase, the model's
loss radius, the median angular error of the poses after alignment to the truth (both hands), the
fraction within 10°, the FSC of the aligned map against the true map (0.5 threshold, Å), and the
wall and CPU seconds so far (one thread: CPU seconds are the cost, whatever else shares the machine).
With several starts, the epoch that chose one also prints which and every start's score.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.abinit_side import score, simulate_hinge  # noqa: E402
from cryonb.core.abinit import Abinit, AbinitConfig  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--box", type=int, default=32)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--snr", type=float, default=10.0)
    p.add_argument("--search-epochs", type=int, default=6)
    p.add_argument("--map-epochs", type=int, default=2)
    p.add_argument("--refine-epochs", type=int, default=3)
    p.add_argument("--seed", type=int, default=0, help="the run's seed (the simulation's is 0)")
    p.add_argument("--starts", type=int, default=AbinitConfig.starts, help="independent starts, the best kept (default: AbinitConfig's)")
    p.add_argument("--start-cycles", type=int, default=AbinitConfig.start_cycles, help="search cycles before the choice")
    p.add_argument("--map-grid", type=int, default=AbinitConfig.map_grid,
                   help="samples per pixel of the grid a shared map is drawn on for the search; 0: the decoder at every pixel")
    p.add_argument("--rescore", type=int, default=AbinitConfig.rescore,
                   help="with a drawn map: the last round's best candidates scored through the decoder; 0: none")
    p.add_argument("--search-images", type=int, default=AbinitConfig.search_images,
                   help="images searched at once (the batch and the next ones); 32, the batch: each batch alone")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    sim = simulate_hinge(a.box, a.n, a.snr)
    truth = sim.particles
    blind = type(truth)(truth.images, None, None, truth.ctf, truth.apix)
    settings = AbinitConfig(pretrain_images=a.n, search_epochs=a.search_epochs, map_epochs=a.map_epochs,
                            base_resolution=1, iterations=3, keep=4, shift_extent=0,
                            starts=a.starts, start_cycles=a.start_cycles, map_grid=a.map_grid,
                            rescore=a.rescore, search_images=a.search_images)
    epochs = 1 + a.search_epochs * (1 + a.map_epochs) + a.refine_epochs
    ab = Abinit(blind, zdim=0, settings=settings, device="cpu", dec_width=64, dec_depth=2, batch_size=32, lr=2e-3,
                epochs=epochs, seed=a.seed)
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(epochs):
        ab.fit(1, progress=False)
        row = ab.history[-1]
        print(json.dumps({"epoch": row["epoch"], "phase": row["phase"], "loss_radius": ab.loss_radius(ab.trainer.step_count - 1),
                          "loss": float(f"{row['loss']:.4g}"),
                          **({"search_error": float(f"{row['search_error']:.4g}")} if "search_error" in row else {}),
                          **score(ab.poses()[0], ab.volume(), sim), "seconds": round(time.perf_counter() - start, 1),
                          "cpu_seconds": round(time.process_time() - cpu, 1),
                          **{k: row[k] for k in ("start", "start_scores") if k in row}}),
              flush=True)


if __name__ == "__main__":
    main()
