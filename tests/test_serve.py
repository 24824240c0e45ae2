"""`cefrtune serve` over a real uvicorn server on 127.0.0.1: the official openai client (models,
chat, streaming), the sentence API (checks, regenerate, feedback in SQLite), bad input answered
with 4xx JSON, XSS attempts refused or shown escaped, a bounded schemathesis run (no 5xx), the
teacher page driven in Chromium by Playwright, and one slow test on a smoke-run model.

The tiny model writes gibberish (the checks flag it, which is fine for the API); the page test
scripts the sentences (as the generation tests do) so it can check the highlighted words.
"""

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import tiny
from cefrtune import serve

WORDS = ["ev", "su", "okul", "kitap", "elma", "kedi", "araba", "anne", "güzel", "gitmek"]
SENTENCES = [
    "Evde kimse yok.",
    "Bir bardak su içtim.",
    "Yarın okula gidiyorum.",
    "Kitabı masada bıraktım.",
    "Elma kırmızı.",
    "Kedi uyuyor.",
    "Otobüs yeni.",
    "Annem evde.",
    "Bugün hava güzel.",
    "Okula gitmek istiyorum.",
]
NEW_THIRD = "Okul çok büyük."
XSS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>']
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    tok = tiny.tokenizer()
    return tiny.save(tiny.llama(len(tok)), tok, tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    """The tiny model served: one regeneration round, short lists (the model never stops by itself)."""
    generator = serve.load(model_dir, attempts=1, max_new_tokens=48)
    app = serve.create_app(
        model_dir, generator=generator, feedback_db=tmp_path_factory.mktemp("fb") / "feedback.sqlite"
    )
    uvicorn_server, url = serve.start_in_thread(app)
    yield url, app
    uvicorn_server.should_exit = True


def scripted(prompts, max_new_tokens, sample, seed, lines, scores=None):
    """The list (sentence 7 misses its word) for a whole-list prompt, NEW_THIRD for a single sentence."""
    if lines and lines[0] > 1:
        return ["\n".join(f"{i}. {s}" for i, s in enumerate(SENTENCES, start=1))] * len(prompts)
    return [NEW_THIRD + "\n"] * len(prompts)


@pytest.fixture(scope="module")
def page_server(model_dir, tmp_path_factory):
    generator = serve.load(model_dir, attempts=1)
    generator.complete = scripted
    app = serve.create_app(
        model_dir, generator=generator, feedback_db=tmp_path_factory.mktemp("fb") / "feedback.sqlite"
    )
    uvicorn_server, url = serve.start_in_thread(app)
    yield url
    uvicorn_server.should_exit = True


def test_chat_prompt_renders_turns_in_the_models_prompt_style(tok, chat_tok):
    from cefrtune.prompts import PromptStyle

    messages = [{"role": "system", "content": "Kısa yaz."}, {"role": "user", "content": "Merhaba"},
                {"role": "assistant", "content": "Merhaba!"}, {"role": "user", "content": "Bir cümle yaz."}]
    gemma = PromptStyle.for_tokenizer(tok)
    assert gemma.chat_prompt(messages) == (
        "<start_of_turn>user\nKısa yaz.\n\nMerhaba<end_of_turn>\n<start_of_turn>model\nMerhaba!<end_of_turn>\n"
        "<start_of_turn>user\nBir cümle yaz.<end_of_turn>\n<start_of_turn>model\n")
    templated = PromptStyle.for_tokenizer(chat_tok).chat_prompt(messages[1:], chat_tok)
    assert (
        templated
        == "<|user|>\nMerhaba<|end|>\n<|assistant|>\nMerhaba!<|end|>\n<|user|>\nBir cümle yaz.<|end|>\n<|assistant|>\n"
    )


def test_openai_client_lists_the_model_and_chats_plain_and_streaming(server):
    from openai import OpenAI

    url, app = server
    client = OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=120)
    models = client.models.list().data
    assert [m.id for m in models] == [app.state.generator.name]
    messages = [{"role": "system", "content": "Kısa yaz."}, {"role": "user", "content": "Bir cümle yaz: ev"}]
    plain = client.chat.completions.create(model=models[0].id, messages=messages, max_tokens=12, temperature=0)
    choice = plain.choices[0]
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    assert 0 < plain.usage.completion_tokens <= 12 and plain.usage.prompt_tokens > 10
    several = client.chat.completions.create(
        model=models[0].id, messages=messages, max_tokens=8, n=3, temperature=1.2, seed=3
    )
    assert [c.index for c in several.choices] == [0, 1, 2]
    stream = client.chat.completions.create(
        model=models[0].id, messages=messages, max_tokens=12, temperature=0, stream=True
    )
    chunks = list(stream)
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == choice.message.content  # greedy: the same text, delivered as events
    assert chunks[-1].choices[0].finish_reason == choice.finish_reason
    first = choice.message.content.split()[0] if choice.message.content.split() else None
    if first:
        cut = client.chat.completions.create(
            model=models[0].id, messages=messages, max_tokens=12, temperature=0, stop=[first]
        )
        assert first not in cut.choices[0].message.content and cut.choices[0].finish_reason == "stop"


def test_sentences_come_with_every_check_and_regenerate_redoes_one(server):
    url, _ = server
    with httpx.Client(base_url=url, timeout=300) as client:
        answer = client.post("/v1/sentences", json={"level": "A1", "words": WORDS}).json()
        assert answer["words"] == WORDS and len(answer["sentences"]) == 10
        for i, item in enumerate(answer["sentences"], start=1):
            assert item["index"] == i and item["word"] == WORDS[i - 1]
            assert item["passed"] == (not item["reasons"])  # gibberish: reasons say why
        assert answer["summary"]["sentences"] == 10 and answer["seconds"] > 0
        standing = [s["sentence"] for s in answer["sentences"]]
        again = client.post(
            "/v1/sentences/regenerate", json={"level": "A1", "words": WORDS, "sentences": standing, "index": 4}
        ).json()
        assert again["index"] == 4 and again["word"] == "kitap" and isinstance(again["reasons"], list)


def test_regenerate_keeps_the_other_sentences_and_highlights_the_word(page_server):
    with httpx.Client(base_url=page_server, timeout=120) as client:
        answer = client.post("/v1/sentences", json={"level": "A1", "words": WORDS}).json()
        spans = [(s["sentence"], s["highlight"]) for s in answer["sentences"]]
        assert [sentence[a:b] for sentence, (a, b) in spans[:4]] == ["Evde", "su", "okula", "Kitabı"]
        again = client.post(
            "/v1/sentences/regenerate", json={"level": "A1", "words": WORDS, "sentences": SENTENCES, "index": 3}
        ).json()
        assert again["sentence"] == NEW_THIRD and again["highlight"] == [0, 4] and again["passed"]


@pytest.mark.parametrize(
    "body, status, says",
    [
        ({"level": "Z9", "words": WORDS}, 422, "unknown level: use one of A1, A2, B1, B2, C1"),
        ({"level": "A1", "words": WORDS + ["masa"]}, 422, "at most 10"),
        ({"level": "A1", "words": []}, 422, "at least 1"),
        ({"level": "A1", "words": ["ev2"]}, 422, "word 1 holds '2': use Turkish letters"),
        ({"level": "A1", "words": ["a" * 41]}, 422, "longer than 40"),
        ({"level": "A1", "words": ["ev-bark"]}, 400, "not a Turkish word"),
        ({"level": "A1", "words": WORDS, "colour": 1}, 422, "colour: Extra inputs"),
        ({"level": "A1", "words": XSS}, 422, "'<', '>': use Turkish letters"),
    ],
)
def test_bad_input_is_a_4xx_json_error_that_says_what_to_fix(server, body, status, says):
    url, _ = server
    response = httpx.post(url + "/v1/sentences", json=body, timeout=60)
    assert response.status_code == status, response.text
    assert says in response.json()["error"]["message"]


def test_oversized_and_malformed_bodies_are_refused(server):
    url, _ = server
    big = httpx.post(
        url + "/v1/sentences",
        content=b"{" + b" " * serve.MAX_BODY_BYTES + b"}",
        headers={"content-type": "application/json"},
    )
    assert big.status_code == 413 and "over" in big.json()["error"]["message"]
    broken = httpx.post(
        url + "/v1/sentences", content=b'{"level": "A1", "words": [', headers={"content-type": "application/json"}
    )
    assert broken.status_code == 422 and "not valid JSON" in broken.json()["error"]["message"]
    chat = httpx.post(
        url + "/v1/chat/completions", json={"model": "gpt-4", "messages": [{"role": "user", "content": "x"}]}
    )
    assert chat.status_code == 404 and "GET /v1/models" in chat.json()["error"]["message"]
    long = httpx.post(
        url + "/v1/chat/completions",
        json={
            "model": server[1].state.generator.name,
            "max_tokens": 512,
            "messages": [{"role": "user", "content": "ev " * 200}],
        },
    )
    assert long.status_code == 400 and "lower max_tokens" in long.json()["error"]["message"]


def test_feedback_is_stored_in_sqlite_and_exported_as_examples(server):
    url, app = server
    for body in (
        {
            "level": "A1",
            "word": "ev",
            "index": 1,
            "sentence": "Ev gizel.",
            "rating": "down",
            "correction": "Ev güzel.",
            "words": WORDS,
        },
        {"level": "A1", "word": "su", "index": 2, "sentence": "Bir bardak su içtim.", "rating": "up"},
    ):
        assert httpx.post(url + "/v1/feedback", json=body).status_code == 200
    for bad in XSS:
        refused = httpx.post(
            url + "/v1/feedback",
            json={"level": "A1", "word": "ev", "index": 1, "sentence": "Ev.", "rating": "down", "correction": bad},
        )
        assert refused.status_code == 422 and "correction holds '<', '>'" in refused.json()["error"]["message"]
    exported = [json.loads(line) for line in httpx.get(url + "/v1/feedback").text.splitlines()]
    assert [(e["rating"], e["sentences"], e["original_sentence"]) for e in exported[-2:]] == [
        ("down", ["Ev güzel."], "Ev gizel."),
        ("up", ["Bir bardak su içtim."], "Bir bardak su içtim."),
    ]
    db = sqlite3.connect(app.state.feedback.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT count(*) FROM feedback").fetchone()[0] == len(exported)


def test_api_key_guards_the_api_and_other_hosts_need_one(model_dir, tmp_path):
    from fastapi.testclient import TestClient

    generator = serve.load(model_dir, attempts=0, max_new_tokens=8)
    client = TestClient(
        serve.create_app(model_dir, api_key="s3cret", generator=generator, feedback_db=tmp_path / "f.sqlite")
    )
    assert client.get("/v1/models").status_code == 401
    assert client.get("/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert client.get("/health").status_code == 200 and client.get("/").status_code == 200
    with pytest.raises(serve.ServeError, match="give an API key"):
        serve.serve(model_dir, host="0.0.0.0", port=1)


def test_openapi_schema_fuzzed_without_a_server_error(model_dir, tmp_path):
    """schemathesis, bounded (20 examples an operation). Checks without regeneration and a served
    window cut to 160 tokens keep every accepted request brief; longer ones are refused with 400."""
    generator = serve.load(model_dir, attempts=0, max_new_tokens=16)
    generator.context = 160
    app = serve.create_app(model_dir, generator=generator, feedback_db=tmp_path / "feedback.sqlite")
    uvicorn_server, url = serve.start_in_thread(app)
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        url + "/openapi.json",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        "20",
        "--seed",
        "1",
        "--request-timeout",
        "120",
        "--workers",
        "1",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    finally:
        uvicorn_server.should_exit = True
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "errored" not in result.stdout and "Server error" not in result.stdout


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (scripts/setup.sh --test installs it)")
def test_teacher_page_in_chromium(page_server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            headless=True,
            accept_downloads=True,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
            viewport={"width": 900, "height": 1100},
        )
        page = browser.new_page()
        dialogs = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(page_server + "/")
        expect(page.get_by_role("heading", name="Kelimelerden cümleler")).to_be_visible()
        # an XSS try as a word: refused before it is sent, the field marked
        page.get_by_label("Kelime 1", exact=True).fill(XSS[1])
        page.get_by_role("button", name="Cümleleri oluştur").click()
        expect(page.locator("#status")).to_contain_text("yalnızca Türkçe harf")
        assert page.get_by_label("Kelime 1", exact=True).get_attribute("aria-invalid") == "true"
        # ten words typed, A1 chosen (keyboard: the radio group), generate
        for i, word in enumerate(WORDS, start=1):
            page.get_by_label(f"Kelime {i}", exact=True).fill(word)
        page.get_by_label("A1").check()
        page.get_by_label("Kelime 10", exact=True).press("Enter")
        items = page.locator("#sentences > li")
        expect(items).to_have_count(10, timeout=60_000)
        marks = page.locator("#sentences mark")
        expect(marks).to_have_count(9)
        assert marks.all_text_contents()[:4] == ["Evde", "su", "okula", "Kitabı"]
        expect(items.nth(6).locator(".warning")).to_have_text("Uyarı: “araba” kelimesi cümlede geçmiyor.")
        page.screenshot(path=str(ARTIFACTS / "serve-page.png"), full_page=True)
        # regenerate the third sentence
        items.nth(2).get_by_role("button", name="Yeniden yaz").click()
        expect(items.nth(2).locator(".text")).to_have_text(NEW_THIRD, timeout=60_000)
        expect(items.nth(2).locator("mark")).to_have_text("Okul")
        # an XSS try as a correction: refused; markup typed into the page is never rendered as markup
        items.nth(0).get_by_role("button", name="Düzenle").click()
        items.nth(0).get_by_label("Cümleyi düzeltin").fill(XSS[1])
        items.nth(0).get_by_role("button", name="Kaydet").click()
        expect(page.locator("#status")).to_contain_text("< ya da > işareti olamaz")
        assert page.locator("#sentences img").count() == 0 and not dialogs
        # thumbs up is stored
        items.nth(1).get_by_role("button", name="İyi").click()
        expect(page.locator("#status")).to_contain_text("görüşünüz kaydedildi")
        # export CSV
        with page.expect_download() as download:
            page.get_by_role("button", name="CSV olarak indir").click()
        csv_path = tmp_path / "cumleler.csv"
        download.value.save_as(csv_path)
        rows = csv_path.read_text(encoding="utf-8-sig").splitlines()
        assert rows[0] == '"no","kelime","cümle","uyarı"' and len(rows) == 11
        assert rows[3].startswith(f'"3","okul","{NEW_THIRD}"')
        browser.close()


@pytest.mark.slow
def test_smoke_run_model_answers_through_the_server(tmp_path):
    """A real run's merged model (`cefrtune run --config smoke`, a few minutes) behind the server."""
    from openai import OpenAI

    from cefrtune.config import load_config
    from cefrtune.run import run

    run(load_config("smoke"), output=str(tmp_path / "run"))
    generator = serve.load(str(tmp_path / "run" / "merged"), attempts=1)
    app = serve.create_app(str(tmp_path / "run" / "merged"), generator=generator)
    uvicorn_server, url = serve.start_in_thread(app)
    try:
        answer = httpx.post(url + "/v1/sentences", json={"level": "A1", "words": WORDS}, timeout=900).json()
        assert len(answer["sentences"]) == 10 and all(isinstance(s["reasons"], list) for s in answer["sentences"])
        client = OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=600)
        reply = client.chat.completions.create(
            model=generator.name,
            max_tokens=32,
            temperature=0,
            messages=[{"role": "user", "content": "Merhaba! Nasılsın?"}],
        )
        assert reply.choices[0].message.content.strip()
        assert (tmp_path / "run" / "feedback.sqlite").exists()  # beside the run
    finally:
        uvicorn_server.should_exit = True
    shutil.rmtree(tmp_path / "run", ignore_errors=True)
