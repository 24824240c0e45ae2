"""The shipped presets and data are found as package data; a missing one is a clear error, never empty."""

import pytest

from cefrtune import levels, resources
from cefrtune.config import ConfigError, load_config
from cefrtune.turkish import LEVELS


def test_shipped_presets_and_data_are_found():
    assert {"a1", "a1-seed", "smoke", "all-levels"} <= set(resources.presets())
    assert [p.name for p in resources.datasets()] == [f"{level.lower()}.jsonl" for level in LEVELS]
    for relative in ("wordlists/a1.tsv", "heldout/a1-lists.jsonl", "README.md"):
        assert resources.data_path(relative).is_file()
    assert load_config("a1").data_path() == resources.data_dir() / "a1.jsonl"


def test_unknown_preset_names_the_shipped_ones():
    with pytest.raises(ConfigError, match=r"no preset 'nosuch'.*a1-seed.*cefrtune config"):
        load_config("nosuch")


def test_missing_word_list_is_an_error_not_an_empty_list(tmp_path, monkeypatch):
    (tmp_path / "wordlists").mkdir()
    monkeypatch.setenv(resources.DATA_ENV, str(tmp_path))
    levels.wordlist.cache_clear()
    try:
        with pytest.raises(resources.MissingResource, match=r"wordlists/a1\.tsv is missing.*CEFRTUNE_DATA"):
            levels.wordlist("A1")
        with pytest.raises(resources.MissingResource, match=r"a2\.jsonl is missing"):
            load_config("a1", {"level": "A2"}).data_path()
    finally:
        levels.wordlist.cache_clear()


def test_data_override_must_be_a_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(resources.DATA_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(resources.MissingResource, match="not a folder"):
        resources.data_dir()
