"""Where cefrtune's shipped files are: the presets and the datasets, word lists and held-out lists.

They are package data (`src/cefrtune/configs/`, `src/cefrtune/datasets/`), found through
importlib.resources, so a git checkout, an editable install and an installed wheel find them the
same way. A missing one is an error that names it, never an empty result.

    python -m cefrtune config                 # the presets, with the folder they are in
    python -c "from cefrtune.resources import data_path; print(data_path('a1.jsonl'))"
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

from cefrtune.errors import UserError

PRESETS = "configs"
DATASETS = "datasets"
DATA_ENV = "CEFRTUNE_DATA"
"""Environment variable naming a folder to use instead of the shipped datasets (same layout)."""
_REINSTALL = "reinstall cefrtune (`pip install --force-reinstall cefrtune`, or `pip install -e .` in a checkout)"


class MissingResource(UserError, FileNotFoundError):
    """A preset, dataset or word list cefrtune should ship is not there."""


def _package_folder(name: str) -> Path:
    # files() gives a real folder for every install pip makes (wheel, editable, checkout on the path);
    # only a zipped package would not be one, and cefrtune is never shipped zipped.
    folder = Path(str(files("cefrtune") / name))
    if not folder.is_dir():
        raise MissingResource(f"{folder}: cefrtune's {name} folder is missing from the installed package; {_REINSTALL}")
    return folder


def preset_dir() -> Path:
    """The folder of the shipped YAML presets (and accelerate configs under `accelerate/`)."""
    return _package_folder(PRESETS)


def presets() -> dict[str, Path]:
    """Shipped preset name -> its YAML file, sorted by name."""
    return {path.stem: path for path in sorted(preset_dir().glob("*.yaml"))}


def preset_path(name: str) -> Path:
    """The shipped preset `name` (a1, smoke, ...); a missing one names the presets there are."""
    shipped = presets()
    if name in shipped:
        return shipped[name]
    raise MissingResource(f"no preset '{name}': not a YAML file and not a shipped preset ({', '.join(shipped)}); "
                          "`cefrtune config` lists them, or give the path of a .yaml file")


def data_dir() -> Path:
    """The folder with the datasets, word lists and held-out lists (`CEFRTUNE_DATA` overrides)."""
    override = os.environ.get(DATA_ENV)
    if override:
        if not Path(override).is_dir():
            raise MissingResource(f"{DATA_ENV}={override}: not a folder; unset it to use the shipped data")
        return Path(override)
    return _package_folder(DATASETS)


def data_path(relative: str) -> Path:
    """A shipped data file (`a1.jsonl`, `wordlists/a1.tsv`, `heldout/a1-lists.jsonl`); it must exist."""
    path = data_dir() / relative
    if not path.is_file():
        where = f"the folder {DATA_ENV} names" if os.environ.get(DATA_ENV) else "the installed cefrtune package"
        raise MissingResource(f"{path}: {relative} is missing from {where}; "
                              + (f"put it there or unset {DATA_ENV}" if os.environ.get(DATA_ENV) else _REINSTALL))
    return path


def datasets() -> list[Path]:
    """The shipped list-format datasets (`<level>.jsonl`), sorted by name."""
    return sorted(data_dir().glob("*.jsonl"))
