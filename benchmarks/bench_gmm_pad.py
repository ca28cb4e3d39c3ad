"""The live latent pad's drawing rate: Gaussians redrawn in NGL a second while the pointer moves or drags.

    python -m benchmarks.bench_gmm_pad                 # 2,000 Gaussians, 3 gestures of each kind
    python -m benchmarks.bench_gmm_pad --jsonl benchmarks/results/gmm_pad_rate.jsonl

Runs the notebook and the pointer gestures of ``tests/browser/test_gmm_pad_browser.py`` in JupyterLab
and headless Chromium on this machine (the test checks the behaviour; this measures the rate).
Target: at least 10 drawings a second. Prints one JSON line per gesture.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import tempfile
from pathlib import Path

from benchmarks.records import emit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "browser"))
from harness import JupyterLab, LabPage, element_pixels, launch_chromium, missing_requirements  # noqa: E402
from test_gmm_pad_browser import N_GAUSSIANS, PAD, drawings, gesture  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--jsonl")
    args = ap.parse_args(argv)
    if reason := missing_requirements():
        sys.exit(f"bench_gmm_pad: needs Chromium, JupyterLab and Playwright: {reason}")
    from playwright.sync_api import sync_playwright

    common = {"benchmark": "gmm_pad", "gaussians": N_GAUSSIANS, "cpus": os.cpu_count(), "load": os.getloadavg()[0],
              "machine": platform.processor() or platform.machine(), "command": "python -m " + shlex.join([__spec__.name, *sys.argv[1:]])}
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        root = Path(tmp, "root")
        root.mkdir()
        with JupyterLab(root, Path(tmp, "state")) as lab:
            context = launch_chromium(playwright, Path(tmp, "profile"))
            context.set_default_timeout(60_000)
            lab_page = LabPage(context.new_page(), lab)
            lab_page.run_notebook("gmm_pad.ipynb", PAD, "print('PAD SHOWN')", until="PAD SHOWN", timeout=180)
            lab_page.wait_until(lambda: element_pixels(lab_page.widget(".ui-resizable canvas")) > 500, timeout=120,
                                message="the Gaussians drawn in NGL")
            lab_page.wait_until(lambda: drawings(lab_page.page), message="the first drawing")
            for _ in range(args.repeats):
                for drag in (False, True):
                    seen = gesture(lab_page.page, drag, args.seconds)
                    emit({**common, "gesture": "drag" if drag else "move", **seen,
                          "per_s": round(seen["during"] / seen["seconds"], 1)}, args.jsonl)
            lab_page.shutdown_kernel()
            context.close()


if __name__ == "__main__":
    main()
