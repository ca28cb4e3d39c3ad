"""Every benchmark command the docs, the README and the scripts' own usage lines give can find its imports.

Run by path (``python benchmarks/x.py``), a script sees its own folder, not the repository's root:
it cannot import the ``benchmarks`` package unless it puts the root on its path. Run as a module
(``python -m benchmarks.x``, from the root), it sees the root but not its own folder's siblings.
Five scripts had been documented by path while importing the package (2026-12-06).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LOCAL_PACKAGES = {"benchmarks", "tests"}


def documented_commands() -> set[tuple[str, str]]:
    """Each ``("path", "benchmarks/x.py")`` or ``("module", "benchmarks.x")`` the project's prose names."""
    sources = [REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "benchmarks").rglob("*.py")]
    found = set()
    for source in sources:
        text = source.read_text()
        found |= {("path", m) for m in re.findall(r"python3? (benchmarks/[\w/]+\.py)", text)}
        found |= {("module", m) for m in re.findall(r"python3? -m (benchmarks(?:\.\w+)+)", text)}
    return found


def absolute_imports(source: str) -> set[str]:
    """The top-level names of a script's absolute imports, anywhere in its ``source``."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


COMMANDS = sorted(documented_commands())


def test_the_docs_name_benchmark_commands():
    assert len(COMMANDS) > 20 and {kind for kind, _ in COMMANDS} == {"path", "module"}


@pytest.mark.parametrize("kind, target", COMMANDS, ids=[target for _, target in COMMANDS])
def test_each_documented_command_finds_its_imports(kind, target):
    if kind == "path":
        script = REPO / target
    else:  # a module, or a package run through its __main__
        module = REPO / target.replace(".", "/")
        script = module / "__main__.py" if module.is_dir() else module.with_suffix(".py")
    assert script.is_file(), f"{target} is documented but {script.relative_to(REPO)} does not exist"
    source = script.read_text()
    imports = absolute_imports(source)
    if kind == "path":
        roots_itself = "sys.path.insert" in source
        assert roots_itself or not imports & LOCAL_PACKAGES, (
            f"`python {target}` cannot import {sorted(imports & LOCAL_PACKAGES)}: document it as "
            f"`python -m {target[:-3].replace('/', '.')}`")
    else:
        siblings = {p.stem for p in script.parent.glob("*.py")} - {"__init__"}
        assert not imports & siblings, (
            f"`python -m {target}` cannot import its siblings {sorted(imports & siblings)} by their bare names: "
            f"import them from the package")
