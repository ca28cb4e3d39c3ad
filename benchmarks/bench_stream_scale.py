"""Streamed against in-memory training at scale: one epoch of each from the same stack on disk.

    python benchmarks/bench_stream_scale.py --particles 1000000 --box 128 --folder /big --device cuda
    python benchmarks/bench_stream_scale.py --particles 2000 --box 32 --width 64 --device cpu   # smoke

Writes ``--particles`` random images as a float16 .mrcs (MRC mode 12, chunks drawn on the device), then
trains one epoch from it streamed (the disk cache built first: that is the preprocessing) and one
epoch in memory (``ImageData``: every transform in host memory, then on the GPU), same model, batch
and seed. Peak anonymous host RSS (RSS less shared pages, so not the page cache) is sampled in a
thread during each phase. ``--drop-caches`` asks the kernel to drop the page cache before each phase
(needs root; whether it worked is recorded). Prints one JSON line per phase.
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import mrcfile
import numpy as np
import psutil
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryonb.core.io.sources import MrcStackSource  # noqa: E402
from cryonb.core.particles import ParticleSet  # noqa: E402
from cryonb.core.rotations import random_rotations  # noqa: E402
from cryonb.core.training import Trainer, TrainConfig  # noqa: E402


class PeakRSS(threading.Thread):
    """Samples this process's anonymous resident memory until stopped; ``peak`` in bytes."""

    def __init__(self, every: float = 0.2):
        super().__init__(daemon=True)
        self.every, self.peak, self._done = every, 0, threading.Event()
        self.start()

    def run(self):
        process = psutil.Process()
        while not self._done.is_set():
            info = process.memory_info()
            self.peak = max(self.peak, info.rss - info.shared)
            self._done.wait(self.every)

    def stop(self) -> float:
        self._done.set()
        self.join()
        return round(self.peak / 2**30, 2)


def drop_page_cache() -> bool:
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("1\n")
        return True
    except OSError:
        return False


def write_random_stack(path: Path, n: int, box: int, device, chunk: int = 8192) -> float:
    """Gaussian-noise images as a float16 MRC stack; returns the seconds taken."""
    start = time.perf_counter()
    g = torch.Generator(device=device).manual_seed(0)
    with mrcfile.new_mmap(path, shape=(n, box, box), mrc_mode=12, overwrite=True) as mrc:
        mrc.set_image_stack()
        for a in range(0, n, chunk):
            b = min(a + chunk, n)
            mrc.data[a:b] = torch.randn((b - a, box, box), generator=g, device=device).half().cpu().numpy()
        mrc.voxel_size = 256 / box
    return time.perf_counter() - start


def metadata(n: int, box: int) -> dict:
    rng = np.random.default_rng(0)
    ctf = np.tile(np.array([15000, 15000, 0, 300, 2.7, 0.1, 0, 0], np.float32), (n, 1))
    ctf[:, :2] = rng.uniform(10000, 25000, (n, 1))
    return {"rotations": random_rotations(n, torch.Generator().manual_seed(0)).numpy(),
            "shifts": rng.normal(0, 2, (n, 2)).astype(np.float32), "ctf": ctf, "apix": 256 / box}


def one_epoch(particles, config: TrainConfig, drop: bool) -> dict:
    """Prepare the data (in memory, or the disk cache) and train one epoch; times and peak memory."""
    gc.collect()
    dropped = drop and drop_page_cache()
    monitor = PeakRSS()
    t0 = time.perf_counter()
    trainer = Trainer(particles, config)
    prepare = time.perf_counter() - t0
    trainer.fit(1, progress=False)
    row = trainer.history[-1]
    result = {"data": "streamed" if config.stream else "in-memory", "page_cache_dropped": dropped,
              "prepare_s": round(prepare, 1), "prepare_images_per_s": round(len(particles) / prepare),
              "epoch_s": round(row["seconds"], 1), "train_images_per_s": round(row["images_per_s"]),
              "loss": round(row["loss"], 5), "peak_anon_rss_gib": monitor.stop(),
              "gpu_peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1) if torch.cuda.is_available() else None}
    if config.stream:
        trainer.data.close()
    del trainer
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    return result


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--particles", type=int, default=1_000_000)
    ap.add_argument("--box", type=int, default=128)
    ap.add_argument("--width", type=int, default=256, help="encoder and decoder width (3 layers each)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--cache-dtype", default="bfloat16")
    ap.add_argument("--folder", type=Path, required=True, help="where the stack and cache are written (removed after)")
    ap.add_argument("--order", default="streamed,in-memory", help="phases, comma-separated")
    ap.add_argument("--drop-caches", action="store_true")
    ap.add_argument("--jsonl", type=Path, help="also append the JSON lines here")
    args = ap.parse_args(argv)
    args.folder.mkdir(parents=True, exist_ok=True)
    stack = args.folder / "stack.mrcs"
    base = {"particles": args.particles, "box": args.box, "width": args.width, "batch": args.batch,
            "cache_dtype": args.cache_dtype, "device": torch.cuda.get_device_name() if "cuda" in args.device else "cpu",
            "host_cores": psutil.cpu_count(), "host_gib": round(psutil.virtual_memory().total / 2**30)}

    def emit(row):
        line = json.dumps({**base, **row})
        print(line, flush=True)
        if args.jsonl:
            with open(args.jsonl, "a") as f:
                f.write(line + "\n")

    seconds = write_random_stack(stack, args.particles, args.box, args.device)
    size = stack.stat().st_size
    emit({"data": "write stack (float16 .mrcs)", "seconds": round(seconds, 1), "gib": round(size / 2**30, 1),
          "gib_per_s": round(size / 2**30 / seconds, 2)})
    particles = ParticleSet(images=MrcStackSource(stack), **metadata(args.particles, args.box))
    config = TrainConfig(zdim=8, enc_width=args.width, dec_width=args.width, batch_size=args.batch,
                         device=args.device, cache_dir=str(args.folder / "cache"), cache_dtype=args.cache_dtype, epochs=1)
    for phase in args.order.split(","):
        streamed = phase == "streamed"
        row = one_epoch(particles, replace(config, stream=streamed), args.drop_caches)
        if streamed:
            row["cache_gib"] = round(sum(p.stat().st_size for p in (args.folder / "cache").rglob("*") if p.is_file()) / 2**30, 1)
        emit(row)
    shutil.rmtree(args.folder, ignore_errors=True)


if __name__ == "__main__":
    main()
