"""Streamed training on one GPU and on several: images/s per epoch, losses, peak host memory per process.

    python benchmarks/bench_stream_gpus.py PARTICLES.star --outdir runs --gpus 1 2 --epochs 3 --batch-size 256

Runs ``cryonb train PARTICLES --stream`` once per GPU count (same global batch, same seed, one disk
cache shared by all runs: the first run builds it), sampling the anonymous resident memory (RSS less
shared pages: not the page cache) of every process of the run twice a second. Prints one JSON line per
run: the per-epoch images/s and losses from the run's checkpoint, the peak per process, the wall time.
Extra arguments after ``--`` go to ``cryonb train``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import psutil
import torch


def anonymous_rss(process: psutil.Process) -> int:
    info = process.memory_info()
    return info.rss - info.shared


def run_monitored(command: list[str], every: float = 0.5) -> tuple[int, dict[int, int], float]:
    """Run ``command``; return its exit code, the peak anonymous RSS of each process of its tree, the wall time."""
    start = time.perf_counter()
    proc = subprocess.Popen(command)
    root = psutil.Process(proc.pid)
    peaks: dict[int, int] = {}
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        for p in tree:
            try:
                peaks[p.pid] = max(peaks.get(p.pid, 0), anonymous_rss(p))
            except psutil.NoSuchProcess:
                pass
        time.sleep(every)
    return proc.wait(), peaks, time.perf_counter() - start


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("particles")
    ap.add_argument("--outdir", type=Path, required=True)
    ap.add_argument("--gpus", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=256, help="global batch")
    ap.add_argument("--cache-dtype", default="bfloat16")
    args, extra = ap.parse_known_args(argv)
    extra = [a for a in extra if a != "--"]
    cache = args.outdir / "cache"
    for gpus in args.gpus:
        run = args.outdir / f"gpus{gpus}"
        command = [sys.executable, "-m", "cryonb", "train", args.particles, "-o", str(run), "--stream",
                   "--cache-dir", str(cache), "--cache-dtype", args.cache_dtype, "--gpus", str(gpus),
                   "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), *extra]
        code, peaks, wall = run_monitored(command)
        record = {"gpus": gpus, "exit": code, "wall_s": round(wall, 1), "batch": args.batch_size,
                  "peak_anonymous_rss_gb": sorted(round(v / 2**30, 2) for v in peaks.values() if v > 2**27)}
        latest = run / "checkpoints" / "latest"
        if latest.exists():
            state = torch.load(latest.parent / latest.read_text().strip(), map_location="cpu", weights_only=True)
            record["epochs"] = [{k: h[k] for k in ("epoch", "loss", "images_per_s", "seconds")} for h in state["history"]]
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
