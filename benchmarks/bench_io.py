"""I/O benchmark: STAR parsing at realistic size, and lazy iteration over a large stack.

    python benchmarks/bench_io.py                  # 100000 x 128² images
    python benchmarks/bench_io.py --n 20000 --box 128 --batch 1024

(b) writes a temporary float32 stack of N*D*D*4 bytes (6.6 GB at the default size) in
--tmpdir, iterates it in batches through MrcStackSource and reports the peak private
memory (bounded by the batch) and the peak RSS (which also counts the memory-mapped
file pages touched so far: page cache the kernel can reclaim, not allocations).
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
import tempfile
import time
from pathlib import Path

import mrcfile
import numpy as np

from cryonb.core.io import MrcStackSource, read_star

REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _anon_rss_mb() -> float:
    """Private (non-file-backed) resident memory, Linux; mapped stack pages are not in it."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("RssAnon")) / 1024


def bench_star(command: str) -> None:
    path = REAL / "relion" / "ap_s_c2d.star"
    times = []
    for _ in range(5):
        start = time.perf_counter()
        star = read_star(path)
        times.append(time.perf_counter() - start)
    print(f"| parse ap_s_c2d.star ({len(star)} rows) | best of 5: {min(times) * 1e3:.0f} ms | `{command}` |")


def _write_stack(path: Path, n: int, box: int, batch: int) -> None:
    with mrcfile.new_mmap(path, shape=(n, box, box), mrc_mode=2) as mrc:
        mrc.set_image_stack()
        block = np.random.default_rng(0).normal(size=(batch, box, box)).astype(np.float32)
        for start in range(0, n, batch):
            mrc.data[start : start + batch] = block[: min(batch, n - start)]


def bench_stack(n: int, box: int, batch: int, tmpdir: str | None, command: str) -> None:
    with tempfile.TemporaryDirectory(dir=tmpdir) as folder:
        path = Path(folder) / "stack.mrcs"
        # Written by a child process so that its mapped pages do not count in our peak RSS.
        writer = multiprocessing.get_context("spawn").Process(target=_write_stack, args=(path, n, box, batch))
        writer.start()
        writer.join()
        rss_before, anon_before = _peak_rss_mb(), _anon_rss_mb()
        source = MrcStackSource(path)
        start = time.perf_counter()
        anon = _anon_rss_mb()
        for chunk in source.chunks(batch):
            anon = max(anon, _anon_rss_mb())
        elapsed = time.perf_counter() - start
        gb = n * box * box * 4 / 1e9
        print(
            f"| iterate {n} x {box}² float32 ({gb:.1f} GB), batch {batch} | {elapsed:.1f} s, {n / elapsed:,.0f} images/s, "
            f"{gb / elapsed:.2f} GB/s; peak private memory {anon:.0f} MB (before: {anon_before:.0f} MB; one batch: "
            f"{batch * box * box * 4 / 1e6:.0f} MB); peak RSS {_peak_rss_mb():.0f} MB (before: {rss_before:.0f} MB; "
            f"includes page-cache pages of the memory map, which the kernel reclaims) | `{command}` |"
        )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="images in the temporary stack")
    parser.add_argument("--box", type=int, default=128, help="image size D")
    parser.add_argument("--batch", type=int, default=1024, help="images per batch")
    parser.add_argument("--tmpdir", default=None, help="where to write the temporary stack")
    args = parser.parse_args(argv)
    command = "python " + " ".join(sys.argv)
    print("| measurement | result | command |\n|---|---|---|")
    bench_star(command)
    bench_stack(args.n, args.box, args.batch, args.tmpdir, command)


if __name__ == "__main__":
    main()
