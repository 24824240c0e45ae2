"""cefrtune installs as a wheel and works from it: build the wheel, install it into a new virtual
environment outside the repository, and run `cefrtune data validate` and the smoke run from another
folder. The new environment reuses this one's packages (torch is not installed again) through a
`.pth` file, but never sees the repository's `src/`: package data missing from the wheel fails here.

    python -m pytest -q -m slow tests/test_install.py    # minutes (the smoke run of the embedded model)
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILD_FILES = ("pyproject.toml", "README.md", "LICENSE", "src")  # what the wheel is built from


def _clean_env() -> dict:
    # PYTHONPATH=src (how the tests are often run) would put the checkout back on the path.
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CEFRTUNE_DATA", "PYTHONHOME")}


def _run(args: list, cwd: Path, timeout: int) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=_clean_env(), capture_output=True, text=True,
                            timeout=timeout)
    command = " ".join(map(str, args))
    assert result.returncode == 0, f"{command} -> {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def _build_wheel(tmp: Path) -> Path:
    # A copy of the sources, so that no stale build/ folder of the checkout can supply a file.
    source = tmp / "source"
    source.mkdir()
    for name in BUILD_FILES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        elif (ROOT / name).exists():
            shutil.copy2(ROOT / name, source / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp / "dist", source],
         tmp, 600)
    wheels = list((tmp / "dist").glob("cefrtune-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def _venv_with_current_packages(folder: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, env=_clean_env())
    python = folder / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True, env=_clean_env()).stdout.strip()
    # Only the folders are added: .pth files in them (an editable cefrtune's) are not run from here.
    shared = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    Path(site, "current-environment.pth").write_text("".join(f"{path}\n" for path in shared))
    return python


@pytest.mark.slow
def test_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    wheel = _build_wheel(tmp_path)
    python = _venv_with_current_packages(tmp_path / "venv")
    _run([python, "-m", "pip", "install", "-q", "--no-deps", wheel], tmp_path, 300)
    work = tmp_path / "elsewhere"
    work.mkdir()

    where = _run([python, "-c", "import cefrtune, sys; print(cefrtune.__file__); print(sys.path)"], work, 60).stdout
    assert str(tmp_path / "venv") in where.splitlines()[0], where
    assert str(ROOT / "src") not in where, "the checkout's src/ is on the new environment's path"

    cefrtune = tmp_path / "venv" / "bin" / "cefrtune"
    validated = _run([cefrtune, "data", "validate"], work, 3600).stdout  # timeouts only catch a hang
    shipped = sum(1 for path in (ROOT / "src" / "cefrtune" / "datasets").glob("*.jsonl")
                  for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    assert f"{shipped} examples" in validated and " 0 errors" in validated, validated
    listed = _run([cefrtune, "config"], work, 120).stdout
    assert f"in {tmp_path / 'venv'}" in listed and "\n  smoke " in listed and "\n  lora_r: int = 128" in listed

    _run([cefrtune, "run", "--config", "smoke", "--output", work / "smoke"], work, 5400)  # a loaded CPU: slow
    metrics = json.loads((work / "smoke" / "metrics.json").read_text())
    assert metrics["train_examples"] == 4 and metrics["tuned"]["response_loss"] > 0
    assert (work / "smoke" / "report.md").exists() and (work / "smoke" / "merged" / "config.json").exists()
