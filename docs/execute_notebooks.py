"""Execute the documentation's notebooks side by side, into the cache that the Sphinx build reads.

    python docs/execute_notebooks.py

The build (``make docs``: myst-nb in "cache" mode) executes one after another the notebooks it finds
no cached result for. Run first, this fills that cache with one process per CPU core, so that the
build finds them done. A notebook that fails here is left to the build, which then fails on it and
shows its traceback.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

from jupyter_cache import get_cache
from jupyter_cache.executors import load_executor

DOCS = Path(__file__).resolve().parent
CACHE = DOCS / "_build" / ".jupyter_cache"  # myst-nb's, for a build into docs/_build/html


def main() -> int:
    timeout = runpy.run_path(str(DOCS / "conf.py"))["nb_execution_timeout"]  # per cell, as the build's
    cache = get_cache(CACHE)
    for path in sorted((DOCS / "notebooks").rglob("*.ipynb")):
        if ".ipynb_checkpoints" not in path.parts:
            cache.add_nb_to_project(str(path))
    result = load_executor("temp-parallel", cache=cache).run_and_cache(timeout=timeout)
    failed = result.excepted + result.errored
    print(f"executed {len(result.succeeded)} notebooks into {CACHE}" + (f"; left to the build: {failed}" if failed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
