"""Where a training run's setup time goes, before its first step, in a fresh process.

    python -m benchmarks.setup_time DATASET [--device cuda] [--jsonl setup.jsonl]

DATASET holds particles.star (a benchmark suite set, say). Times, one after another: importing
torch and cryonb, CUDA's start, reading the metadata, preparing the images on the device
(:class:`~cryonb.core.imagedata.ImageData`), importing ``torch._dynamo`` (which ``torch.optim``
imports at its first parameter group, so every optimiser pays it once per process) and the rest of
``Trainer(particles, TrainConfig(zdim=8))``. One JSON line, in seconds.
"""

from __future__ import annotations

import argparse
import importlib
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
    ap.add_argument("--jsonl")
    args = ap.parse_args(argv)
    cuda = args.device.startswith("cuda")

    def done():
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    times = {"imports_s": time.perf_counter() - T0}
    start = time.perf_counter()
    if cuda:
        torch.zeros(1, device=args.device)
    times["cuda_start_s"], start = (now := done()) - start, now
    particles = load_particles(args.dataset / "particles.star")
    times["metadata_s"], start = (now := done()) - start, now
    data = ImageData(particles, None, args.device)
    times["images_s"], start = (now := done()) - start, now
    importlib.import_module("torch._dynamo")  # what torch.optim imports first
    times["dynamo_import_s"], start = (now := done()) - start, now
    Trainer(particles, TrainConfig(zdim=8, device=args.device), data=data)
    times["trainer_s"] = done() - start
    record = {"benchmark": "setup_time", "set": args.dataset.name, "n": len(particles), "box": data.D,
              "device": torch.cuda.get_device_name() if cuda else "cpu", **{k: round(v, 2) for k, v in times.items()}}
    emit(record, args.jsonl)
    return record


if __name__ == "__main__":
    main()
