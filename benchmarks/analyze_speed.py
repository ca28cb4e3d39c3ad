"""`cryonb analyze` against cryoDRGN 4.3.1's `analyze` (and, optionally, `analyze_landscape`) on the same run.

    # cryonb alone, on a cryonb run folder:
    python benchmarks/analyze_speed.py runs/hinge --device cuda
    # both, on a cryoDRGN run folder that cryonb opens too (epoch 20 = z.20.pkl, weights.20.pkl), with
    # cryoDRGN importable from /tmp/site (see shared/notes/peers.md for carrying its wheels):
    python benchmarks/analyze_speed.py drgn_run --cryodrgn-epoch 20 --cryodrgn-path /tmp/site --device cuda
    # a cryonb run and the cryoDRGN run trained on the same particles:
    python benchmarks/analyze_speed.py runs/hinge --cryodrgn-run drgn_run --cryodrgn-epoch 20 --cryodrgn-path /tmp/site
    # add the landscape: cryonb's --landscape (10,000 maps by default here) against analyze_landscape:
    python benchmarks/analyze_speed.py drgn_run --cryodrgn-epoch 20 --cryodrgn-path /tmp/site --landscape

Both programs get the same settings: k-means clusters (--k, cryoDRGN's --ksample), 2 principal axes
of 10 maps each, UMAP unless --no-umap. cryoDRGN runs in a subprocess through its command modules
(``cryodrgn.commands.<name>``); cryonb runs in-process (``open_run`` + ``analyze_run``, as ``cryonb analyze``). Wall-clock
seconds are measured around each; cryonb's per-step times come from its summary. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LAUNCHER = ("import sys, argparse, importlib; m = importlib.import_module('cryodrgn.commands.' + sys.argv[1]); "
            "p = argparse.ArgumentParser(); m.add_args(p); m.main(p.parse_args(sys.argv[2:]))")


def cryodrgn(command: str, *args, python: str, path: str | None, device: str) -> dict:
    """Run one cryoDRGN command; its wall time, exit status and the end of its output."""
    env = dict(os.environ)
    if path:
        env["PYTHONPATH"] = path + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    argv = [python, "-c", LAUNCHER, command, *map(str, args)]
    if device.startswith("cuda"):
        argv += ["--device", device.partition(":")[2] or "0"]
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    return {"command": "cryodrgn " + shlex.join(argv[3:]), "wall_s": round(time.perf_counter() - start, 2),
            "returncode": proc.returncode, "output_tail": (proc.stdout + proc.stderr)[-1500:] if proc.returncode else ""}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="the run cryonb analyses (cryonb run folder, or a cryoDRGN one Run.open reads)")
    ap.add_argument("--cryodrgn-run", type=Path, help="cryoDRGN run folder (default: RUN, when --cryodrgn-epoch is given)")
    ap.add_argument("--cryodrgn-epoch", type=int, help="epoch for cryoDRGN (z.E.pkl, weights.E.pkl); without it cryoDRGN is not run")
    ap.add_argument("--cryodrgn-python", default=sys.executable, help="Python that imports cryodrgn (default: this one)")
    ap.add_argument("--cryodrgn-path", help="folder to put on cryoDRGN's PYTHONPATH (e.g. /tmp/site)")
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--no-umap", action="store_true")
    ap.add_argument("--landscape", action="store_true", help="also time the landscape analyses")
    ap.add_argument("--landscape-maps", type=int, default=10_000, help="cryonb's maps (default: 10,000, analyze_landscape_full's N)")
    ap.add_argument("--landscape-box", type=int, help="cryonb's sketch box (default: the run's box)")
    ap.add_argument("--sketch-size", type=int, default=1000, help="cryoDRGN analyze_landscape's maps (default: 1000)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--outdir", type=Path, help="where both write (default: a temporary folder)")
    args = ap.parse_args(argv)

    import torch

    from cryonb.cli.analyze import open_run
    from cryonb.core.analysis.run_analysis import analyze_run
    from cryonb.core.training import resolve_device

    device = str(resolve_device(args.device))
    tmp = tempfile.TemporaryDirectory()
    outdir = args.outdir or Path(tmp.name)
    record = {"bench": "analyze", "run": str(args.run), "k": args.k, "umap": not args.no_umap, "device": device}

    start = time.perf_counter()
    run, _ = open_run(args.run, device=device)  # with its particles, as `cryonb analyze` opens it
    opened = time.perf_counter() - start
    landscape_kw = {"n_maps": args.landscape_maps, "box": args.landscape_box} if args.landscape else None
    outputs = analyze_run(run, outdir / "cryonb", k=args.k, pcs=2, pc_steps=10, umap=not args.no_umap,
                          landscape_kw=landscape_kw, progress=False)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    record["cryonb"] = {"wall_s": round(time.perf_counter() - start, 2), "open_s": round(opened, 2),
                        "particles": int(len(run.z)), "zdim": int(run.zdim), "box": int(run.box_size),
                        "steps_s": {key: round(v, 2) for key, v in outputs.timings.items()}}

    if args.cryodrgn_epoch is not None:
        drgn = args.cryodrgn_run or args.run
        common = dict(python=args.cryodrgn_python, path=args.cryodrgn_path, device=device)
        analyze = ["--ksample", args.k, "--pc", 2, "--n-per-pc", 10, "-o", outdir / "cryodrgn_analyze"]
        record["cryodrgn_analyze"] = cryodrgn("analyze", drgn, args.cryodrgn_epoch, *analyze,
                                              *(["--skip-umap"] if args.no_umap else []), **common)
        if args.landscape:
            sketch = min(128, int(run.box_size))  # its default --downsample 128 fails on smaller runs
            landscape = cryodrgn("analyze_landscape", drgn, args.cryodrgn_epoch, "--sketch-size", args.sketch_size,
                                 "--downsample", sketch, "-o", outdir / "cryodrgn_landscape", **common)
            record["cryodrgn_analyze_landscape"] = landscape
            record["cryodrgn_landscape_s_per_map"] = (round(landscape["wall_s"] / args.sketch_size, 4)
                                                      if landscape["returncode"] == 0 else None)  # a failed run times nothing

    record.update({
        "gpu": torch.cuda.get_device_name() if device.startswith("cuda") else None,
        "cpu": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}",
        "torch": torch.__version__, "command": "python " + shlex.join(sys.argv),
    })
    print(json.dumps(record), flush=True)
    tmp.cleanup()


if __name__ == "__main__":
    main()
