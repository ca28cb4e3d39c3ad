"""Run the site's notebooks side by side into the cache the docs build reads, before the build.

myst-nb runs notebooks one after another while it reads the pages; most of the time of a fresh
build went there (760 s of about 1,000 on a 2-core machine). Here they run a core's worth of
threads each, one per core at a time, and each result goes into myst-nb's cache
(``docs/_build/.jupyter_cache``, keyed by the code cells' source), where the build finds it. A
notebook already in the cache is not run again; one that fails stops this with its traceback.

Each run's peak memory is printed: the kernel's own peak resident set (asked of the kernel by a cell
added after the last, removed before caching) plus this worker's, which stands in for the Jupyter
server. The notebooks Binder opens first (``WITHIN_BINDER``) must fit mybinder.org's 2 GB a session,
or this fails (outside CI, ``tests/test_binder.py`` measures the quickstart the same way).

    python docs/run_notebooks.py [--workers N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

DOCS = Path(__file__).resolve().parent
CACHE = DOCS / "_build" / ".jupyter_cache"  # myst-nb's default: next to the build's output folder


FIRST_TIMEOUT = 240  # seconds a cell may take before its notebook is run again in a fresh kernel
BINDER_MEMORY = 2_000_000_000  # bytes: mybinder.org's limit per session, server and kernel together
WITHIN_BINDER = {"notebooks/01_quickstart.ipynb"}
PEAK_CELL = "import resource; print('KERNEL PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)"
# Started first, longest first (seconds on a 2-core machine, one thread each: 250, 212, 180, 118, 101), so that
# the short ones fill in around them (by name they ended 210 s after the first worker fell idle); then by name.
LONGEST_FIRST = ("05_ab_initio", "06_gaussian_mixture", "01_quickstart", "03_curation", "04_trajectories")


def run(path: Path, timeout: int, first_timeout: int = FIRST_TIMEOUT):
    """Execute one notebook in a temporary folder (as conf.py's nb_execution_in_temp), ``timeout`` seconds a
    cell at most: the executed notebook, its seconds, the traceback of a failure (None when it ran to the end),
    why it was run twice (None when it was not) and the peak memory in bytes of its kernel and of this process
    (Linux's ``ru_maxrss``: no spike is missed; 0 for a kernel that did not reach the end).

    A kernel that stops answering was seen once on a 2-core machine (its client waiting for a reply, the
    kernel idle, no cell running; 600 s lost). A cell that takes over ``first_timeout`` seconds, or a
    kernel that fails otherwise (dies, or gives no first reply), gets the notebook run once more in a
    fresh kernel, ``timeout`` seconds a cell; an error raised by a cell is not retried."""
    import resource
    import re
    import traceback

    import nbformat
    from jupyter_cache.executors import utils
    from nbclient.exceptions import CellTimeoutError

    retried = None
    for limit in (min(first_timeout, timeout), timeout):
        nb = nbformat.read(path, as_version=4)
        nb.cells.append(nbformat.v4.new_code_cell(PEAK_CELL))
        with tempfile.TemporaryDirectory() as cwd:
            try:
                result = utils.single_nb_execution(nb, cwd=cwd, timeout=limit, allow_errors=False, record_timing=True)
            except Exception as err:  # noqa: BLE001 (the kernel's failure, not a cell's: told, then run again)
                if limit == timeout:
                    return nb, 0.0, "".join(traceback.format_exception(err)), retried, (0, 0)
                retried = f"its kernel failed ({type(err).__name__}: {err})"
                continue
        if isinstance(result.err, CellTimeoutError) and limit < timeout:
            retried = f"a cell gave no answer within {limit} s"
            continue
        outputs = result.nb.cells.pop().get("outputs", [])  # the peak cell: the notebook cached as it is
        found = re.search(r"KERNEL PEAK (\d+)", "".join(o.get("text", "") for o in outputs))
        memory = (int(found.group(1)) if found else 0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
        return result.nb, result.time, result.exc_string, retried, memory


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="notebooks at a time (default: one per core)")
    args = parser.parse_args(argv)

    import nbformat
    from conf import nb_execution_timeout  # the build's own setting
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    cache = get_cache(CACHE)
    notebooks = in_order(p for p in (DOCS / "notebooks").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    todo = []
    for path in notebooks:
        try:
            cache.match_cache_notebook(nbformat.read(path, as_version=4))
        except KeyError:
            todo.append(path)
    print(f"notebooks: {len(notebooks) - len(todo)} cached, {len(todo)} to run, {args.workers} at a time", flush=True)
    # The workers' kernels inherit a core's worth of torch threads each instead of all of them (oversubscribed
    # cores ran a notebook three times slower in the tests; tests/conftest.py).
    threads = str(max(1, (os.cpu_count() or 1) // args.workers))
    start = time.perf_counter()
    with ProcessPoolExecutor(args.workers, initializer=os.environ.__setitem__, initargs=("OMP_NUM_THREADS", threads)) as pool:
        futures = {pool.submit(run, path, nb_execution_timeout): path for path in todo}
        for future in as_completed(futures):
            path = futures[future]
            name = path.relative_to(DOCS).as_posix()
            nb, seconds, failure, retried, (kernel, driver) = future.result()
            if retried is not None:
                print(f"{name}: run again, {retried}", flush=True)
            if failure is None and name in WITHIN_BINDER:
                failure = over_binder(kernel, driver)
            if failure is not None:
                print(f"{name} failed after {seconds:.0f} s:\n{failure}", file=sys.stderr, flush=True)
                pool.shutdown(cancel_futures=True)  # those not started; a running one finishes first
                return 1
            outside = seconds - seconds_in_cells(nb)  # a kernel slow to start or stop (240 s once, cause unknown)
            for cell in nb.cells:
                cell.metadata.pop("execution", None)  # the timing: cell metadata is part of the cache's key
            cache.cache_notebook_bundle(CacheBundleIn(nb, str(path), data={"execution_seconds": seconds}),
                                        check_validity=False, overwrite=True)
            print(f"{name}: {seconds:.0f} s{f' ({outside:.0f} s outside its cells)' if outside > 30 else ''}, peak "
                  f"{(kernel + driver) / 1e9:.2f} GB (kernel {kernel / 1e9:.2f} GB; at {time.perf_counter() - start:.0f} s)", flush=True)
    return 0


def seconds_in_cells(nb) -> float:
    """The seconds the kernel spent running the code cells, from their timing (``record_timing``)."""
    from datetime import datetime

    def busy(cell) -> float:
        times = cell.get("metadata", {}).get("execution", {})
        if "iopub.status.busy" not in times or "iopub.status.idle" not in times:
            return 0.0
        idle, busy = (datetime.fromisoformat(times[k].replace("Z", "+00:00")) for k in ("iopub.status.idle", "iopub.status.busy"))
        return (idle - busy).total_seconds()  # ("Z": Python 3.10's fromisoformat does not read it)

    return sum(busy(cell) for cell in nb.cells if cell.cell_type == "code")


def in_order(paths) -> list[Path]:
    """The notebooks in the order they are started: ``LONGEST_FIRST``, then the rest by path."""
    return sorted(paths, key=lambda p: (LONGEST_FIRST.index(p.stem) if p.stem in LONGEST_FIRST else len(LONGEST_FIRST), p))


def over_binder(kernel: int, driver: int) -> str | None:
    """Why a notebook's run does not fit a Binder session (None when it does)."""
    if kernel < 200e6:  # torch and a trained model are in any notebook's kernel: the peak was not measured
        return f"its kernel's peak memory was not measured (got {kernel} bytes)"
    if kernel + driver >= BINDER_MEMORY:
        return (f"it peaks at {(kernel + driver) / 1e9:.2f} GB (kernel {kernel / 1e9:.2f} GB, runner "
                f"{driver / 1e9:.2f} GB): over Binder's {BINDER_MEMORY / 1e9:g} GB")
    return None


if __name__ == "__main__":
    sys.exit(main())
