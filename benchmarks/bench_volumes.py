"""Maps along a trajectory: generate N maps from a decoder, then render them as a GIF.

    python benchmarks/bench_volumes.py --n 100 --box 128 --width 1024 --device cuda
    python benchmarks/bench_volumes.py --n 8 --box 32 --width 128 --device cpu

The decoder is randomly initialised (its speed does not depend on its weights). Generation is
timed on the device (best of ``--repeats``), then the copy of the maps to host memory, then
``cryonb.core.movies.write_gif`` of all the maps. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import torch

from cryonb.core.model import FourierDecoder
from cryonb.core.movies import write_gif
from cryonb.core.training import resolve_device


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100, help="maps to generate")
    ap.add_argument("--box", type=int, default=128)
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--zdim", type=int, default=8)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--gif-size", type=int, default=256, help="frame size of the GIF, pixels")
    args = ap.parse_args(argv)

    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    decoder = FourierDecoder(args.box, args.zdim, args.width, args.depth).to(device).eval()
    z = torch.randn(args.n, args.zdim, generator=torch.Generator().manual_seed(0))

    def sync():
        if cuda:
            torch.cuda.synchronize()

    decoder.volumes(z[:1])  # warm-up: kernels, cuFFT plans
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(args.repeats):
        sync()
        start = time.perf_counter()
        maps = decoder.volumes(z)
        sync()
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    maps = maps.cpu().numpy()
    to_host = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        gif = write_gif(maps, Path(tmp) / "trajectory.gif", size=args.gif_size)
        gif_s, gif_bytes = time.perf_counter() - start, gif.stat().st_size

    best = min(times)
    print(json.dumps({
        "bench": "volumes", "n": args.n, "box": args.box, "width": args.width, "depth": args.depth, "zdim": args.zdim,
        "generate_s": round(best, 4), "maps_per_s": round(args.n / best, 2),
        "all_generate_s": [round(t, 4) for t in times],
        "to_host_s": round(to_host, 4), "gif_s": round(gif_s, 3), "gif_MB": round(gif_bytes / 2**20, 2),
        "peak_gpu_GiB": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
        "device": torch.cuda.get_device_name() if cuda else
        f"CPU ({torch.get_num_threads()} threads, {platform.processor() or platform.machine()})",
        "torch": torch.__version__, "command": "python " + shlex.join(sys.argv),
    }), flush=True)


if __name__ == "__main__":
    main()
