"""Binder: its configuration installs what the notebooks need, and the quickstart fits in its memory.

mybinder.org gives a session at most 2 GB of memory, counted over the whole container: the
Jupyter server and the kernel. The quickstart runs here in a kernel started by nbclient from a
driver process (standing in for the server); the memory of both is measured two ways:

- the kernel's own peak resident set (``ru_maxrss``, kept by the OS, so no spike is missed) plus the
  driver's sampled peak: an upper bound of the two processes' peak together;
- the resident memory of the driver's whole process tree, sampled every 0.1 s, which also counts any
  process the kernel starts.

In CI (``CRYONB_DOCS_RUN_NOTEBOOKS=1``) the docs build runs the quickstart instead and checks its kernel's
peak plus its runner's against the same limit (``docs/run_notebooks.py``), rather than running it twice.

A cap such as ``RLIMIT_AS`` would not do: torch and the BLAS libraries reserve far more address
space than they ever touch, so the cap would fail on memory that is never used.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BINDER = REPO / "binder"
QUICKSTART = REPO / "notebooks" / "01_quickstart.ipynb"

def _docs_runner():
    """docs/run_notebooks.py, whose Binder limit and peak cell this test shares."""
    spec = spec_from_file_location("run_notebooks", REPO / "docs" / "run_notebooks.py")
    module = module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RUNNER = _docs_runner()
BINDER_MEMORY = RUNNER.BINDER_MEMORY  # bytes: mybinder.org's limit per session
SAMPLE_S = 0.1  # between samples of the process tree: each lists every process on the machine (about a tenth of a core at 50 per second)

# Runs the quickstart, then asks its kernel for its own peak memory; prints both peaks in bytes.
DRIVER = f"""\
import sys
import nbformat
from notebook_client import NotebookClient  # tests/notebook_client.py: nbclient's, without a widget notebook's stall

notebook, workdir = sys.argv[1:]
nb = nbformat.read(notebook, as_version=4)
nb.cells.append(nbformat.v4.new_code_cell({RUNNER.PEAK_CELL!r}))
NotebookClient(nb, timeout=1200, kernel_name="python3", resources={{"metadata": {{"path": workdir}}}}).execute()
print(nb.cells[-1].outputs[0]["text"].strip())
"""


def test_binder_installs_the_cpu_build_of_torch_and_the_widgets():
    lines = [line.split("#")[0].strip() for line in (BINDER / "requirements.txt").read_text().splitlines()]
    lines = [line for line in lines if line]
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines  # not several GB of CUDA
    assert "-e .[widgets]" in lines  # cryonb from the checkout, with its views
    assert any(re.fullmatch(r"jupyterlab(>=4.*)?", line) for line in lines)
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "widgets" in extras


def test_binder_python_is_one_cryonb_supports():
    runtime = (BINDER / "runtime.txt").read_text().strip()
    version = re.fullmatch(r"python-3\.(\d+)", runtime)
    assert version, f"binder/runtime.txt holds {runtime!r}, not python-3.X"
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert int(version.group(1)) >= int(re.fullmatch(r">=3\.(\d+)", requires).group(1))


@dataclass
class Measured:
    returncode: int
    out: str
    err: str
    kernel: int  # the kernel's own peak RSS, reported by the driver
    sampled: int  # the largest sum over the driver's process tree, sampled every 0.1 s
    sampled_driver: int
    peak: int  # what the notebook needed at most: max(sampled, kernel + driver)


def run_notebook_measured(notebook: Path, workdir: Path) -> Measured:
    """Run ``notebook`` top to bottom in a fresh kernel (``DRIVER``) and measure its memory.

    The driver's own ru_maxrss is not used: Linux carries a parent's peak across fork and exec,
    so it would report the test runner's memory. The driver is sampled instead.
    """
    import psutil

    env = {**os.environ, "PYTHONPATH": os.pathsep.join((str(REPO), str(REPO / "tests"))), "MPLBACKEND": "agg"}
    driver = psutil.Popen([sys.executable, "-c", DRIVER, str(notebook), str(workdir)], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampled = sampled_driver = 0
    while driver.poll() is None:
        sampled = max(sampled, tree_rss(driver))
        try:
            sampled_driver = max(sampled_driver, driver.memory_info().rss)
        except psutil.NoSuchProcess:
            pass
        time.sleep(SAMPLE_S)
    out, err = driver.communicate()
    found = re.search(r"^KERNEL PEAK (\d+)$", out, re.M)
    kernel = int(found.group(1)) if found else 0
    return Measured(driver.returncode, out, err, kernel, sampled, sampled_driver, max(sampled, kernel + sampled_driver))


def tree_rss(process) -> int:
    """Resident bytes of ``process`` and all its descendants (those that exit meanwhile count 0)."""
    import psutil

    total = 0
    try:
        members = [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for member in members:
        try:
            total += member.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


@pytest.mark.slow
def test_quickstart_runs_within_binders_memory(tmp_path):
    if os.environ.get("CRYONB_DOCS_RUN_NOTEBOOKS") == "1":
        pytest.skip("CRYONB_DOCS_RUN_NOTEBOOKS=1: the docs build that follows runs the quickstart and checks its "
                    "memory the same way (docs/run_notebooks.py)")
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("psutil")

    m = run_notebook_measured(QUICKSTART, tmp_path)
    assert m.returncode == 0, f"the quickstart failed:\n{m.err[-4000:]}"
    kernel, sampled, sampled_driver, peak = m.kernel, m.sampled, m.sampled_driver, m.peak
    assert kernel > 200e6  # torch and a trained model really were in the kernel
    assert sampled >= kernel * 0.5  # the sampling saw the kernel, not just the driver
    assert peak < BINDER_MEMORY, (
        f"the quickstart peaks at {peak / 1e9:.2f} GB (kernel {kernel / 1e9:.2f} GB, driver "
        f"{sampled_driver / 1e9:.2f} GB, sampled tree {sampled / 1e9:.2f} GB): over Binder's 2 GB")
