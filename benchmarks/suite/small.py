"""Quick CPU trials on small versions of the suite's sets: latent metrics of TrainConfig variants.

    python -m benchmarks.suite.small adk --epochs 15 --seeds 0 1 [--set KEY=VALUE ...] [--jsonl out.jsonl]

1,000 images at D = 24, SNR 1 (the sets of ``tests/benchmarks/test_suite_accuracy.py``), trained
on the CPU with that test's small model (128 wide, zdim 4, batch 32, learning rate 10⁻³) and each
``--set`` override; one record per training seed. A first look before a variant is measured on a
GPU against cryoDRGN: what holds here need not hold at D = 128 and SNR 0.1.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks.records import emit
from benchmarks.suite import metrics, sets
from benchmarks.suite.train import parse_override
from cryonb import TrainConfig, Trainer, load_particles

SMALL = dict(zdim=4, enc_width=128, dec_width=128, batch_size=32, lr=1e-3, device="cpu")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("set", choices=sorted(sets.SETS))
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--set", dest="overrides", action="append", default=[], type=parse_override, metavar="KEY=VALUE")
    ap.add_argument("--data-dir", help="the real maps (ribosome_motion, assembly): ../shared/data/real")
    ap.add_argument("--jsonl")
    args = ap.parse_args(argv)
    options = {} if args.set == "adk" else {"data_dir": args.data_dir}
    with tempfile.TemporaryDirectory() as folder:
        sets.SETS[args.set](Path(folder), n=1000, box=24, snr=1.0, seed=0, **options)
        particles, truth = load_particles(Path(folder) / "particles.star"), metrics.load_truth(Path(folder) / "truth.npz")
        for seed in args.seeds:
            start = time.perf_counter()
            config = TrainConfig(**{**SMALL, "seed": seed, "epochs": args.epochs, **dict(args.overrides)})
            trainer = Trainer(particles, config).fit(args.epochs, progress=False)
            scores = metrics.latent_metrics(trainer.embed(), truth)
            emit({"set": args.set, "epochs": args.epochs, "seed": seed, "overrides": dict(args.overrides),
                  "train_s": round(time.perf_counter() - start, 1), **{k: round(v, 4) for k, v in scores.items()}},
                 args.jsonl)


if __name__ == "__main__":
    main()
