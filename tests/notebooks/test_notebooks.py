"""Every notebook under notebooks/ runs top to bottom on CPU, and none is committed with outputs.

Notebooks are found by globbing, so new ones are tested without being listed here. Under
``CRYONB_DOCS_RUN_NOTEBOOKS=1`` (CI, whose docs build executes every notebook next) only the notebooks
with hidden solutions run here. Each runs in a
fresh ``python3`` kernel, in a temporary copy of its folder (files it writes stay out of the
repository). The code of every hidden exercise solution (```python blocks inside a
``<details>`` cell) runs right after that cell, so the solutions are checked too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(p for p in NOTEBOOKS_DIR.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
CELL_TIMEOUT_S = 600
# Set by .ci/run, whose docs build (myst-nb, raise on error) runs every notebook right after the tests:
# the notebooks without hidden solutions then run once, there, not twice.
DOCS_RUN_NOTEBOOKS = "CRYONB_DOCS_RUN_NOTEBOOKS"
SOLUTION = re.compile(r"<details>.*?</details>", re.S)
SOLUTION_CODE = re.compile(r"```python\n(.*?)```", re.S)


def notebook_id(path: Path) -> str:
    return path.relative_to(NOTEBOOKS_DIR).as_posix()


def solution_code(markdown: str) -> list[str]:
    """The Python code blocks inside the ``<details>`` elements of a markdown cell."""
    return [code for block in SOLUTION.findall(markdown) for code in SOLUTION_CODE.findall(block)]


def with_solutions(nb):
    """The notebook with each hidden solution's code as a code cell after its markdown cell."""
    import nbformat

    cells = []
    for cell in nb.cells:
        cells.append(cell)
        if cell.cell_type == "markdown":
            cells.extend(nbformat.v4.new_code_cell(code) for code in solution_code(cell.source))
    nb.cells = cells
    return nb


def test_notebooks_are_found_in_subfolders():
    assert NOTEBOOKS, f"no notebooks under {NOTEBOOKS_DIR}"
    assert any(p.parent.name == "teaching" for p in NOTEBOOKS), "the teaching course in notebooks/teaching was not found"


def test_solution_code_is_taken_only_from_details_blocks():
    markdown = (
        "```python\nnot_a_solution()\n```\n"
        "<details><summary>Solution</summary>\n\nText.\n```python\nx = 1\n```\nMore.\n```python\ny = 2\n```\n</details>"
    )
    assert solution_code(markdown) == ["x = 1\n", "y = 2\n"]


# The quickstart runs end to end (failing on any error) in tests/test_binder.py, under a memory watch.
@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.name != "01_quickstart.ipynb"], ids=notebook_id)
def test_notebook_runs_top_to_bottom(path, tmp_path):
    nbformat = pytest.importorskip("nbformat", reason="nbformat is needed to read notebooks: pip install nbformat")
    pytest.importorskip("nbclient", reason="nbclient is needed to execute notebooks: pip install nbclient")
    pytest.importorskip("ipykernel", reason="ipykernel provides the python3 kernel: pip install ipykernel")
    source = nbformat.read(path, as_version=4)
    solutions = any(solution_code(c.source) for c in source.cells if c.cell_type == "markdown")
    if os.environ.get(DOCS_RUN_NOTEBOOKS) == "1" and not solutions:
        pytest.skip(f"{DOCS_RUN_NOTEBOOKS}=1: the docs build that follows runs this notebook, failing on any error (.ci/run)")
    workdir = tmp_path / path.parent.name
    shutil.copytree(path.parent, workdir, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    nb = with_solutions(source)
    from notebook_client import NotebookClient  # nbclient's, waiting for replies in slices (a widget notebook's stall)

    client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(workdir)}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on the first error
    errors = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs if o.output_type == "error"]
    assert not errors, f"{notebook_id(path)}: {errors[0].ename}: {errors[0].evalue}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=notebook_id)
def test_notebook_is_committed_without_outputs(path):
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    dirty = [i for i, c in enumerate(cells) if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, (
        f"{notebook_id(path)}: code cells {dirty} carry outputs or execution counts; "
        f"clear them with `jupyter nbconvert --clear-output --inplace {path}`"
    )
