"""The package's layout: stages sit side by side and never import each other; every module says what it is.

    pytest -q tests/test_layout.py

A piece two stages need (tokenising examples, atomic file writes, loading a model for generation,
the checked-generation rounds) lives in a module of its own below both (docs/architecture.md).
Only the orchestrators, `run` (the pipeline) and `cli` (the command line), call stages.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "cefrtune"
STAGES = {"data", "train", "evaluate", "generate", "merge", "report", "serve", "export", "rate"}
ORCHESTRATORS = {"run", "cli"}
MODULES = sorted(PACKAGE.glob("*.py"))


def imported_modules(tree: ast.Module) -> set[str]:
    """The cefrtune modules a module imports anywhere (top level or inside a function)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:  # from . import x / from .x import y
            names = [f"cefrtune.{node.module or alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "cefrtune" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_every_stage_is_a_module():
    assert STAGES | ORCHESTRATORS <= {p.stem for p in MODULES}


@pytest.mark.parametrize("path", [p for p in MODULES if p.stem in STAGES], ids=lambda p: p.stem)
def test_a_stage_imports_no_other_stage(path):
    imported = imported_modules(ast.parse(path.read_text(encoding="utf-8")))
    others = sorted((imported & (STAGES | ORCHESTRATORS)) - {path.stem})
    assert not others, (
        f"{path.name} imports the stage(s) {', '.join(others)}: move what both need into a module of its own "
        "(as features.py, files.py, generation.py) and import that"
    )


@pytest.mark.parametrize("path", [p for p in MODULES if p.stem not in STAGES | ORCHESTRATORS | {"__main__"}],
                         ids=lambda p: p.stem)
def test_a_shared_module_imports_no_stage(path):
    imported = imported_modules(ast.parse(path.read_text(encoding="utf-8")))
    stages = sorted(imported & (STAGES | ORCHESTRATORS))
    assert not stages, f"{path.name} sits below the stages but imports {', '.join(stages)}"


def test_the_check_sees_imports_inside_functions():
    tree = ast.parse("def f():\n    from cefrtune.train import train\n    import cefrtune.merge\n"
                     "from cefrtune import report as r\nfrom cefrtune.files import json_line\n")
    assert imported_modules(tree) == {"train", "merge", "report", "files"}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_every_module_starts_with_a_docstring(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstring = ast.get_docstring(tree)
    assert docstring and len(docstring.split()) >= 5, f"{path.name}: start it with a docstring saying what it does"


def test_readme_module_map_matches_the_package():
    """README's module map names every module, in the row its imports put it in."""
    readme = (PACKAGE.parents[1] / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Layout", 1)[1].split("```", 2)[1]
    rows: dict[str, set[str]] = {}
    current = None
    for line in block.splitlines():
        words = line.split()
        if not words:
            continue
        if not line.startswith(" "):
            current, words = words[0], words[1:]
        rows.setdefault(current, set()).update(words)
    assert rows["stages"] == STAGES
    assert rows["orchestrators"] == ORCHESTRATORS
    named = rows["stages"] | rows["orchestrators"] | rows["shared"]
    assert named == {p.stem for p in MODULES} - {"__init__", "__main__"}
