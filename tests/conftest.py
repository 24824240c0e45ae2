import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import tiny  # noqa: E402


@pytest.fixture(scope="session")
def tok():
    return tiny.tokenizer()


@pytest.fixture(scope="session")
def chat_tok():
    return tiny.tokenizer(chat=True)


@pytest.fixture
def examples():
    from cefrtune.examples import Example

    words = ["ev", "su", "okul", "kitap", "elma", "kedi", "araba", "anne", "güzel", "gitmek"]
    base = ["Evde kimse yok.", "Bir bardak su içtim.", "Yarın okula gidiyorum.", "Kitabı masada bıraktım.",
            "Elma kırmızı.", "Kedi uyuyor.", "Araba yeni.", "Anne evde.", "Güzel bir gün.", "Okula gitmek."]
    return [Example("A1", words, [f"{s[:-1]} {i}." for s in base], id=f"e{i}") for i in range(8)]


@pytest.fixture(autouse=True)
def baseline_cache_folder(tmp_path_factory, monkeypatch):
    """Each test caches run baselines in a folder of its own, not in the user's cefrtune cache."""
    from cefrtune import baseline_cache

    folder = tmp_path_factory.mktemp("baselines")
    monkeypatch.setattr(baseline_cache, "folder", lambda: folder)
    return folder
