"""Pose search speed: poses searched per second and peak GPU memory, for the ab initio engine.

    python benchmarks/abinit_speed.py                      # GPU defaults: box 128, width 1024, batches 16 and 64
    python benchmarks/abinit_speed.py --device cpu --box 32 --width 64 --batches 4 --repeats 1   # a smoke run

Searches random half-plane images with :func:`cryonb.core.posesearch.search_poses` (cryoDRGN-AI's
defaults: 4,608 base rotations, 8 kept poses, 4 rounds, radii 12 -> 32 px, 14 × 14 shifts)
against a :class:`~cryonb.core.model.FourierDecoder` of the GPU model's size (width 1024, 3
layers, gaussian encoding), under bfloat16 autocast on a GPU, for a homogeneous model (zdim 0: one
map, drawn once per call on a grid of ``--map-grids`` samples per pixel, or 0: the decoder at every
pixel of every candidate) and a heterogeneous one (zdim 8: a map per image, drawn for the first
round on the same grid, or 0), and for a
known map (``MapDecoder``: the search's own cost, the decoder nearly free). Each variant is warmed
up once, then timed over ``--repeats`` batches. One JSON line per variant (poses_per_s,
seconds_per_batch, decoder_points_per_s, peak_gpu_mib).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryonb.core.model import FourierDecoder, HalfPlane  # noqa: E402
from cryonb.core.phantoms import hinge  # noqa: E402
from cryonb.core.posesearch import MapDecoder, search_poses  # noqa: E402


class Counting(torch.nn.Module):
    """A decoder that counts the points it evaluates."""

    def __init__(self, decoder):
        super().__init__()
        self.decoder, self.points = decoder, 0

    def forward(self, coords, z=None):
        self.points += coords.shape[0] * coords.shape[1]
        return self.decoder(coords, z)


def run(kind: str, decoder, zdim: int, batch: int, args, device, map_grid: int) -> dict:
    half = HalfPlane.build(args.box, device=device)
    g = torch.Generator(device=device).manual_seed(0)
    images = torch.randn(batch, len(half), dtype=torch.complex64, device=device, generator=g)
    z = None if zdim == 0 else torch.randn(batch, zdim, device=device, generator=g)
    counting = Counting(decoder).to(device).eval()
    autocast = torch.autocast("cuda", torch.bfloat16) if device.type == "cuda" and args.amp else contextlib.nullcontext()
    kwargs = dict(chunk=args.chunk, keep=args.keep, iterations=args.iterations, map_grid=map_grid)

    def once():
        with autocast:
            return search_poses(counting, images, 1.0, half, z, **kwargs)

    once()  # warm-up (kernels, caches)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    counting.points = 0
    start = time.perf_counter()
    for _ in range(args.repeats):
        once()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = (time.perf_counter() - start) / args.repeats
    return {
        "benchmark": "abinit_speed", "decoder": kind, "zdim": zdim, "box": args.box, "batch": batch,
        "width": args.width if kind == "mlp" else None, "keep": args.keep, "iterations": args.iterations,
        "chunk": args.chunk, "map_grid": map_grid if kind == "mlp" else None, "amp": bool(args.amp and device.type == "cuda"),
        "poses_per_s": round(batch / seconds, 2), "seconds_per_batch": round(seconds, 4),
        "decoder_points_per_s": round(counting.points / args.repeats / seconds),
        "peak_gpu_mib": round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.type == "cuda" else None,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--box", type=int, default=128)
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--batches", type=int, nargs="+", default=[16, 64], help="images per search call")
    ap.add_argument("--zdims", type=int, nargs="+", default=[0, 8])
    ap.add_argument("--keep", type=int, default=8)
    ap.add_argument("--iterations", type=int, default=4)
    ap.add_argument("--chunk", type=int, default=2**21, help="decoder points per call")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--map-grids", type=int, nargs="+", default=[2, 0],
                    help="samples per pixel of the grid the map is drawn on (zdim 0: one map for every round; zdim > 0: each "
                         "image's, for the first round; 0: the decoder at every pixel)")
    ap.add_argument("--no-amp", dest="amp", action="store_false")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    variants = [("map", MapDecoder(hinge(args.box)), 0)]
    variants += [("mlp", FourierDecoder(args.box, zdim, args.width, 3, "gaussian", residual=True), zdim) for zdim in args.zdims]
    for kind, decoder, zdim in variants:
        grids = args.map_grids if kind == "mlp" else [0]
        for batch, map_grid in ((b, g) for b in args.batches for g in grids):
            try:
                print(json.dumps(run(kind, decoder, zdim, batch, args, device, map_grid)), flush=True)
            except torch.OutOfMemoryError:
                print(json.dumps({"benchmark": "abinit_speed", "decoder": kind, "zdim": zdim, "batch": batch,
                                  "error": "out of memory"}), flush=True)
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
