"""Run the site's notebooks side by side into the cache the docs build reads, before the build.

myst-nb runs notebooks one after another while it reads the pages; most of the time of a fresh
build went there (760 s of about 1,000 on a 2-core machine). Here they run a core's worth of
threads each, one per core at a time, and each result goes into myst-nb's cache
(``docs/_build/.jupyter_cache``, keyed by the code cells' source), where the build finds it. A
notebook already in the cache is not run again; one that fails stops this with its traceback.

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


def run(path: Path, timeout: int, first_timeout: int = FIRST_TIMEOUT):
    """Execute one notebook in a temporary folder (as conf.py's nb_execution_in_temp), ``timeout`` seconds a
    cell at most: the executed notebook, its seconds, the traceback of a failure (None when it ran to the end)
    and why it was run twice (None when it was not).

    A kernel that stops answering was seen once on a 2-core machine (its client waiting for a reply, the
    kernel idle, no cell running; 600 s lost). A cell that takes over ``first_timeout`` seconds, or a
    kernel that fails otherwise (dies, or gives no first reply), gets the notebook run once more in a
    fresh kernel, ``timeout`` seconds a cell; an error raised by a cell is not retried."""
    import traceback

    import nbformat
    from jupyter_cache.executors import utils
    from nbclient.exceptions import CellTimeoutError

    retried = None
    for limit in (min(first_timeout, timeout), timeout):
        nb = nbformat.read(path, as_version=4)
        with tempfile.TemporaryDirectory() as cwd:
            try:
                result = utils.single_nb_execution(nb, cwd=cwd, timeout=limit, allow_errors=False)
            except Exception as err:  # noqa: BLE001 (the kernel's failure, not a cell's: told, then run again)
                if limit == timeout:
                    return nb, 0.0, "".join(traceback.format_exception(err)), retried
                retried = f"its kernel failed ({type(err).__name__}: {err})"
                continue
        if isinstance(result.err, CellTimeoutError) and limit < timeout:
            retried = f"a cell gave no answer within {limit} s"
            continue
        return result.nb, result.time, result.exc_string, retried


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="notebooks at a time (default: one per core)")
    args = parser.parse_args(argv)

    import nbformat
    from conf import nb_execution_timeout  # the build's own setting
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    cache = get_cache(CACHE)
    notebooks = sorted(p for p in (DOCS / "notebooks").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
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
            nb, seconds, failure, retried = future.result()
            if retried is not None:
                print(f"{name}: run again, {retried}", flush=True)
            if failure is not None:
                print(f"{name} failed after {seconds:.0f} s:\n{failure}", file=sys.stderr, flush=True)
                pool.shutdown(cancel_futures=True)  # those not started; a running one finishes first
                return 1
            cache.cache_notebook_bundle(CacheBundleIn(nb, str(path), data={"execution_seconds": seconds}),
                                        check_validity=False, overwrite=True)
            print(f"{name}: {seconds:.0f} s (at {time.perf_counter() - start:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
