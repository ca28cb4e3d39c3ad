"""Where a training run's start goes, up to its steady steps, in a fresh process.

    python -m benchmarks.setup_time DATASET [--device cuda] [--steps 64] [--jsonl setup.jsonl]

DATASET holds particles.star (a benchmark suite set, say). Times, one after another: importing
torch and cryonb, CUDA's start, reading the metadata, preparing the images on the device
(:class:`~cryonb.core.imagedata.ImageData`), the rest of ``Trainer(particles, TrainConfig(zdim=8))``,
its first step (on a GPU: three warm-up steps, the CUDA graph's capture and the first compilation of
the Triton kernels, unless Triton's cache holds them), the mean of the next ``--steps`` steps, and
one pass of the encoder over every image (``embed``). One JSON line, in seconds; ``dynamo_imported``
says whether anything imported ``torch._dynamo`` (``torch.optim``'s optimisers do, at a cost of
seconds: docs/benchmarks.md) and ``start_overhead_s`` is the first step's time less a steady one.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

T0 = time.perf_counter()

import torch  # noqa: E402

from benchmarks.records import emit  # noqa: E402
from cryonb.core.imagedata import ImageData  # noqa: E402
from cryonb.core.particles import load_particles  # noqa: E402
from cryonb.core.training import Trainer, TrainConfig  # noqa: E402


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=64, help="steady steps timed after the first")
    ap.add_argument("--jsonl")
    args = ap.parse_args(argv)
    cuda = args.device.startswith("cuda")

    times = {"imports_s": time.perf_counter() - T0}
    last = time.perf_counter()

    def lap(name):
        """Record the time since the last lap as ``name`` (once the GPU's work is done)."""
        nonlocal last
        if cuda:
            torch.cuda.synchronize()
        now = time.perf_counter()
        times[name], last = now - last, now

    if cuda:
        torch.zeros(1, device=args.device)
    lap("cuda_start_s")
    particles = load_particles(args.dataset / "particles.star")
    lap("metadata_s")
    data = ImageData(particles, None, args.device)
    lap("images_s")
    trainer = Trainer(particles, TrainConfig(zdim=8, device=args.device), data=data)
    lap("trainer_s")
    trainer.step()
    lap("first_step_s")
    for _ in range(args.steps):
        trainer.step()
    lap("steady_s")
    steady = times.pop("steady_s") / max(args.steps, 1)
    trainer.embed()
    lap("embed_s")
    times["start_overhead_s"] = times["first_step_s"] - steady
    record = {"benchmark": "setup_time", "set": args.dataset.name, "n": len(particles), "box": data.D,
              "device": torch.cuda.get_device_name() if cuda else "cpu", **{k: round(v, 2) for k, v in times.items()},
              "steady_step_ms": round(steady * 1e3, 2), "dynamo_imported": "torch._dynamo" in sys.modules}
    emit(record, args.jsonl)
    return record


if __name__ == "__main__":
    main()
