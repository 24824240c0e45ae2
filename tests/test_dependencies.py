"""Every third-party module cefrtune imports is declared in pyproject.toml: the core dependencies for
what the package always may import, an extra for an optional feature (llama.cpp export, Unsloth)."""

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OPTIONAL = {"llama_cpp": ("gguf", "llama-cpp-python"), "unsloth": ("unsloth", "unsloth")}
"""Modules only an optional feature imports: the extra that must declare them, and their distribution."""


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", requirement).group(0)).lower()


def _imported_modules() -> set[str]:
    found = set()
    for path in (ROOT / "src" / "cefrtune").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"cefrtune", "__future__"}


def test_every_third_party_import_is_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    core = {_name(r) for r in project["dependencies"]}
    extras = {extra: {_name(r) for r in reqs} for extra, reqs in project["optional-dependencies"].items()}
    installed = packages_distributions()
    missing = []
    for module in sorted(_imported_modules()):
        if module in OPTIONAL:
            extra, distribution = OPTIONAL[module]
            if _name(distribution) not in extras.get(extra, set()):
                missing.append(f"{module}: {distribution} in the [{extra}] extra")
            continue
        distributions = {_name(d) for d in installed.get(module, [])}
        assert distributions, f"{module} is imported by src/cefrtune but not installed here"
        if not distributions & core:
            missing.append(f"{module}: {' or '.join(sorted(distributions))} in [project] dependencies")
    assert not missing, "imported but not declared in pyproject.toml: " + "; ".join(missing)


def test_scipy_is_not_needed():
    assert "scipy" not in _imported_modules()
