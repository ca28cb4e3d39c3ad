"""Training throughput (images/s) and peak GPU memory of cryonb's Trainer.

    python benchmarks/bench_train.py --box 128 --width 256 --depth 3 --batch 128 --device cuda --compile
    python benchmarks/bench_train.py --box 64 --zdim 8 --batch 32 --latents table --poses table   # per-particle tables

Images are random (throughput does not depend on content); poses and CTF are random too. Times
whole epochs after warm-up epochs, so compilation and autotuning are excluded.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

from cryonb.core.particles import ParticleSet
from cryonb.core.rotations import random_rotations
from cryonb.core.training import Trainer, TrainConfig


def synthetic_particles(n: int, box: int, seed: int = 0) -> ParticleSet:
    rng = np.random.default_rng(seed)
    ctf = np.tile(np.array([15000, 15000, 0, 300, 2.7, 0.1, 0, 0], np.float32), (n, 1))
    ctf[:, :2] = rng.uniform(10000, 25000, (n, 1))
    return ParticleSet(
        images=rng.standard_normal((n, box, box), dtype=np.float32),
        rotations=random_rotations(n, torch.Generator().manual_seed(seed)).numpy(),
        shifts=rng.normal(0, 2, (n, 2)).astype(np.float32),
        ctf=ctf,
        apix=1.0 * 256 / box,
    )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--particles", type=int, default=20000)
    ap.add_argument("--box", type=int, default=128)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--zdim", type=int, default=10)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs")
    ap.add_argument("--warmup", type=int, default=2, help="untimed epochs first (compilation, autotuning)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--no-amp", action="store_true")
    ap.add_argument("--no-graphs", action="store_true", help="launch each step's kernels from Python")
    ap.add_argument("--plain", action="store_true", help="plain hidden layers instead of residual ones")
    ap.add_argument("--pixel-fraction", type=float, default=1.0,
                    help="the share of each image's pixels the decoder is fitted to at a step (TrainConfig.pixel_fraction)")
    ap.add_argument("--slice-filters", type=int, help="the encoder's slice filters (TrainConfig.slice_filters; default: the device's)")
    ap.add_argument("--slice-radius", type=int, help="their reach in pixels of frequency (default: the box's)")
    ap.add_argument("--latents", choices=["encoder", "table"], default="encoder", help="TrainConfig.latents (table: an autodecoder)")
    ap.add_argument("--poses", choices=["known", "table"], default="known", help="TrainConfig.poses (table: refined per particle)")
    args = ap.parse_args(argv)

    particles = synthetic_particles(args.particles, args.box)
    config = TrainConfig(zdim=args.zdim, enc_width=args.width, enc_depth=args.depth, dec_width=args.width,
                         dec_depth=args.depth, batch_size=args.batch, device=args.device,
                         compile=args.compile, amp=not args.no_amp, cuda_graphs=not args.no_graphs,
                         residual=not args.plain, pixel_fraction=args.pixel_fraction,
                         slice_filters=args.slice_filters, slice_radius=args.slice_radius,
                         latents=args.latents if args.zdim else None, poses=args.poses)
    trainer = Trainer(particles, config)
    cuda = trainer.device.type == "cuda"
    trainer.fit(args.warmup, progress=False)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    trainer.fit(args.epochs, progress=False)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    result = {
        "box": args.box, "decoder": f"{args.width}x{args.depth}", "zdim": args.zdim, "batch": args.batch,
        "n": args.particles, "latents": args.latents if args.zdim else None, "poses": args.poses, "compile": args.compile, "amp": not args.no_amp and cuda,
        "graphs": trainer._graphs, "residual": not args.plain, "pixel_fraction": args.pixel_fraction,
        "slice_filters": trainer.config.slice_filters, "slice_radius": trainer.config.slice_radius,
        "encoder_average": trainer.config.encoder_average, "decoder_init": trainer.config.decoder_init,
        "images_per_s": round(args.particles * args.epochs / seconds, 1),
        "peak_gpu_GiB": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
        "processes": trainer.dist.world,
        "device": torch.cuda.get_device_name() if cuda else f"CPU ({torch.get_num_threads()} threads, {platform.processor() or platform.machine()})",
        "final_loss": round(trainer.history[-1]["loss"], 5),
        "epoch_images_per_s": [round(h["images_per_s"]) for h in trainer.history],  # warm-up epochs first
    }
    if trainer.dist.main:
        print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
