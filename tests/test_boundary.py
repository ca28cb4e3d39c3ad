"""The model/view split: nothing under cryonb.core may import a widget or plotting-backend library."""

import ast
import pathlib
import subprocess
import sys

import cryonb

VIEW_LIBRARIES = {"ipywidgets", "nglview", "holoviews", "bokeh", "datashader", "panel", "IPython", "traitlets", "jupyter_bokeh"}
PACKAGE = pathlib.Path(cryonb.__file__).parent


def imported_roots(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in {"import_module", "__import__"}:
            if node.args and isinstance(node.args[0], ast.Constant):
                roots.add(str(node.args[0].value).split(".")[0])
    return roots


def test_core_sources_never_import_view_libraries():
    offenders = {
        str(p.relative_to(PACKAGE)): sorted(imported_roots(p) & VIEW_LIBRARIES)
        for p in (PACKAGE / "core").rglob("*.py")
    }
    offenders = {k: v for k, v in offenders.items() if v}
    assert not offenders, f"cryonb.core must not import view libraries: {offenders}"


def test_core_and_cli_import_without_loading_view_libraries():
    code = (
        "import sys, pkgutil, importlib, cryonb.core, cryonb.cli\n"
        "for m in pkgutil.walk_packages(cryonb.core.__path__, 'cryonb.core.'): importlib.import_module(m.name)\n"
        f"bad = sorted(set(m.split('.')[0] for m in sys.modules) & {set(VIEW_LIBRARIES)!r})\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"importing cryonb.core loaded {out.stdout.strip()}"


def test_boundary_check_detects_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import numpy\nfrom ipywidgets import Button\nimport holoviews as hv\n")
    assert imported_roots(bad) & VIEW_LIBRARIES == {"ipywidgets", "holoviews"}
