"""The I/O modules import each other without cycles (mrc <-> sources was one)."""

import ast
from pathlib import Path

import cryonb.core.io as io

IO = Path(io.__file__).parent


def _imports(module: str) -> set[str]:
    """Sibling modules that ``module`` imports, at any level (top or inside functions)."""
    tree = ast.parse((IO / f"{module}.py").read_text())
    return {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module}


def test_no_import_cycle_between_the_io_modules():
    graph = {path.stem: _imports(path.stem) & {p.stem for p in IO.glob("*.py")} for path in IO.glob("*.py") if path.stem != "__init__"}
    assert "sources" not in graph["mrc"] and "mrc" not in graph["images"] and "sources" not in graph["images"]

    def reaches(start, target, seen=()):
        return any(n == target or (n not in seen and reaches(n, target, (*seen, n))) for n in graph.get(start, ()))

    assert [m for m in graph if reaches(m, m)] == []


def test_sources_reexport_the_interface():
    from cryonb.core.io import images, sources

    assert sources.ImageSource is images.ImageSource and sources.ArraySource is images.ArraySource
