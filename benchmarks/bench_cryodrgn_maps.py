"""Maps of a cryoDRGN-sized decoder rebuilt by cryonb (cryonb.core.interop): time and peak memory.

    python benchmarks/bench_cryodrgn_maps.py --n 20 --box 128 --device cuda
    python benchmarks/bench_cryodrgn_maps.py --n 2 --box 64 --width 256 --device cpu

The decoder has cryoDRGN 4's default shape (3 residual hidden layers of 1024, gaussian encoding of
box/2 frequencies, fourier domain, zdim 8) with random weights: its speed does not depend on
them. Maps are evaluated in float32 on cryoDRGN's lattice (box + 1 points a side), as
``cryodrgn eval_vol`` does. Prints one JSON line: seconds per map (best of ``--repeats``), the
``points_per_chunk`` used and the peak device memory.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import torch

from cryonb.core.interop import CryodrgnDecoder
from cryonb.core.training import resolve_device


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20, help="maps to generate")
    ap.add_argument("--box", type=int, default=128)
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--zdim", type=int, default=8)
    ap.add_argument("--domain", default="fourier", choices=("fourier", "hartley"))
    ap.add_argument("--points-per-chunk", type=int, default=2**16)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args(argv)

    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    torch.manual_seed(0)
    decoder = CryodrgnDecoder(args.box + 1, args.zdim, args.layers, args.width, args.domain, "gaussian").to(device).eval()
    decoder.encoding.rand_freqs.normal_(0, 0.5)
    z = torch.randn(args.n, args.zdim, generator=torch.Generator().manual_seed(0))

    def sync():
        if cuda:
            torch.cuda.synchronize()

    decoder.volumes(z[:1], points_per_chunk=args.points_per_chunk)  # warm-up
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(args.repeats):
        sync()
        start = time.perf_counter()
        decoder.volumes(z, points_per_chunk=args.points_per_chunk)
        sync()
        times.append(time.perf_counter() - start)
    record = {
        "benchmark": "cryodrgn_maps", "device": torch.cuda.get_device_name(device) if cuda else platform.processor() or "cpu",
        "box": args.box, "width": args.width, "layers": args.layers, "zdim": args.zdim, "domain": args.domain, "n": args.n,
        "points_per_chunk": args.points_per_chunk, "seconds_per_map": round(min(times) / args.n, 4),
        "peak_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if cuda else None,
        "torch": torch.__version__, "python": sys.version.split()[0],
    }
    print(json.dumps(record))


if __name__ == "__main__":
    main()
