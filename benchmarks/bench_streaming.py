"""Streamed versus in-memory training data: preprocessing, loading and training throughput, host memory.

    python benchmarks/bench_streaming.py --particles 4000 --box 64 --device cpu

Writes random particles to an .mrcs in a temporary folder (so the images come from disk, as in
practice), then for in-memory data and for streamed caches (complex64, bfloat16): the time to
prepare the data (ImageData, or building the cache), the images/s of reading every batch of an epoch
to the device with nothing else (``load``), and of the last of --epochs training epochs
(``train``), with the growth of anonymous host RSS (not counting the page cache). One JSON line per
variant.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import psutil
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import synthetic_particles  # noqa: E402

from cryonb.core.io.mrc import write_stack  # noqa: E402
from cryonb.core.io.sources import MrcStackSource  # noqa: E402
from cryonb.core.streaming import StreamedImageData  # noqa: E402
from cryonb.core.training import ImageData, Trainer, TrainConfig  # noqa: E402


def anonymous_rss() -> int:
    info = psutil.Process().memory_info()
    return info.rss - info.shared


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--particles", type=int, default=4000)
    ap.add_argument("--box", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--epochs", type=int, default=1, help="training epochs timed (the last one is reported)")
    ap.add_argument("--folder", help="where to write the stack and caches (default: a temporary folder)")
    args = ap.parse_args(argv)
    folder = Path(args.folder or tempfile.mkdtemp(prefix="cryonb-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    p = synthetic_particles(args.particles, args.box)
    write_stack(folder / "stack.mrcs", p.images, p.apix)
    particles = replace(p, images=MrcStackSource(folder / "stack.mrcs"))
    del p
    device = torch.device(args.device)
    config = TrainConfig(zdim=8, enc_width=args.width, dec_width=args.width, batch_size=args.batch, device=args.device,
                         cache_dir=str(folder / "cache"))
    for name, stream, dtype in (("in-memory", False, "complex64"), ("streamed", True, "complex64"), ("streamed", True, "bfloat16")):
        gc.collect()
        rss0 = anonymous_rss()
        t0 = time.perf_counter()
        if stream:
            data = StreamedImageData(particles, None, device, folder / "cache", dtype, progress=False)
        else:
            data = ImageData(particles, None, device)
        prep_s = time.perf_counter() - t0
        order = np.random.default_rng(0).permutation(len(data))
        nb = len(data) // args.batch
        data.set_order(order, args.batch, nb)
        t0 = time.perf_counter()
        for position in range(nb):
            idx = torch.as_tensor(order[position * args.batch : (position + 1) * args.batch], device=device)
            data.stage(idx, position)
            data.batch(idx)[0].sum().item()
        load = nb * args.batch / (time.perf_counter() - t0)
        if stream:
            data.close()
        del data
        trainer = Trainer(particles, replace(config, stream=stream, cache_dtype=dtype))
        trainer.fit(args.epochs, progress=False)
        row = {"data": name, "dtype": dtype, "particles": args.particles, "box": args.box, "batch": args.batch,
               "width": args.width, "device": str(device), "prepare_s": round(prep_s, 3),
               "prepare_images_per_s": round(args.particles / prep_s), "load_images_per_s": round(load),
               "train_images_per_s": round(trainer.history[-1]["images_per_s"]),
               "rss_growth_mb": round((anonymous_rss() - rss0) / 1e6, 1),
               "transforms_mb": round(len(trainer.data.half) * 8 * args.particles / 1e6, 1),
               "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads()}
        print(json.dumps(row), flush=True)
        del trainer


if __name__ == "__main__":
    main()
