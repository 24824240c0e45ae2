"""The server: a page for teachers and an HTTP API (its chat part OpenAI-compatible) over a tuned model.

    cefrtune serve [--model RUN_OR_MODEL] [--host 127.0.0.1] [--port 8000] [--api-key KEY]

`serve` loads the model (default: the newest finished run under runs/), then answers on
  GET  /                           the teacher page (src/cefrtune/page/, Turkish)
  POST /v1/sentences               {level, words, checked?} -> every sentence with its checks and reasons
  POST /v1/sentences/regenerate    {level, words, sentences, index} -> sentence `index` written again, checked
  POST /v1/feedback                a thumbs up/down (and a correction) for one sentence, kept in SQLite
  GET  /v1/feedback                every verdict as JSONL examples (cefrtune.feedback)
  GET  /v1/models, POST /v1/chat/completions   for OpenAI clients (messages rendered by the model's prompt style)
  GET  /health, GET /openapi.json (the schema)
Generation goes through cefrtune.generation (`generate_checked`, the same checks as `--checked`);
every request's decoding goes through one `DecodeScheduler`, which merges concurrent requests
into shared batches. It binds to 127.0.0.1 by default; any other address needs an API key
(`--api-key` or $CEFRTUNE_API_KEY), which every /v1 call must then send as `Authorization: Bearer KEY`.
Bad input is answered with a 4xx JSON error `{"error": {"message", "type", "param"}}` saying what to fix.
"""

from __future__ import annotations

import hmac
import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import torch
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from cefrtune.config import SERVE_API_KEY_ENV, SERVE_HOST, SERVE_PORT
from cefrtune.generation_settings import GENERATION
from cefrtune.prompts import PromptStyle

HOST, PORT, API_KEY_ENV = SERVE_HOST, SERVE_PORT, SERVE_API_KEY_ENV
MAX_BODY_BYTES = 64 * 1024
"""Request bodies larger than this are refused (413)."""
MAX_WORDS, MAX_WORD_CHARS, MAX_SENTENCE_CHARS = 10, 40, 300
MAX_CHAT_TOKENS, DEFAULT_CHAT_TOKENS, MAX_CHOICES, MAX_MESSAGE_CHARS = 512, 256, 8, 8000
TURKISH_LETTERS = "abcçdefgğhıijklmnoöprsştuüvyzâîûqwxABCÇDEFGĞHIİJKLMNOÖPRSŞTUÜVYZÂÎÛQWX"
WORD_PUNCTUATION = " -'’"
PAGE_DIR = Path(__file__).parent / "page"


def serve(
    model: str | None = None,
    host: str = HOST,
    port: int = PORT,
    api_key: str | None = None,
    feedback_db: str | None = None,
    attempts: int = GENERATION.attempts,
) -> None:
    """Load the model and answer HTTP requests until interrupted."""
    import uvicorn

    api_key = api_key or os.environ.get(API_KEY_ENV) or None
    if host not in ("127.0.0.1", "localhost", "::1") and not api_key:
        raise ServeError(
            f"--host {host} opens the server to other machines: give an API key "
            f"(--api-key KEY or ${API_KEY_ENV}) or bind to 127.0.0.1"
        )
    model = model or newest_run()
    app = create_app(model, api_key=api_key, feedback_db=feedback_db, generator=load(model, attempts=attempts))
    print(f"cefrtune serve: {app.state.generator.name} on http://{host}:{port}/ (schema: /openapi.json)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="info")


def start_in_thread(app, host: str = HOST, port: int = 0, timeout: float = 60.0):
    """Run `app` under uvicorn in a background thread (tests, benchmarks); returns (server, base URL).
    Port 0 picks a free port. Stop it with `server.should_exit = True`."""
    import threading

    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_keep_alive=30))
    thread = threading.Thread(target=server.run, name="cefrtune-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise ServeError(f"uvicorn did not start on {host}:{port}")
        time.sleep(0.05)
    bound = server.servers[0].sockets[0].getsockname()[1]
    return server, f"http://{host}:{bound}"


class ServeError(RuntimeError):
    """The server cannot start as asked; the message says why and what to do."""


def newest_run(root: str | Path = "runs") -> str:
    """The merged model of the newest run under `root` that finished (has merged/ and metrics.json)."""
    runs = [p for p in Path(root).glob("*") if (p / "merged").is_dir() and (p / "metrics.json").exists()]
    if not runs:
        raise ServeError(
            f"no finished run under {Path(root).resolve()} (run `cefrtune run` first, or pass --model DIR)"
        )
    return str(max(runs, key=lambda p: (p / "metrics.json").stat().st_mtime) / "merged")


@dataclass
class Generator:
    """The loaded model, its prompt style and the scheduler all requests decode through."""

    name: str
    model: object
    tokenizer: object
    style: PromptStyle
    scheduler: object
    context: int
    attempts: int
    """Regeneration rounds of checked generation (GENERATION.attempts by default)."""
    max_new_tokens: int = GENERATION.max_new_tokens
    complete: object = None
    """A scripted `complete(prompts, max_new_tokens, sample, seed, lines)` for the sentence calls
    (tests that need known sentences, as the generation tests do); None: the model."""

    def completer(self, temperature: float, top_p: float):
        from cefrtune.generation import model_completer

        if self.complete is not None:
            return self.complete
        return model_completer(
            self.model,
            self.tokenizer,
            self.style,
            self.scheduler.batch_size,
            temperature,
            top_p,
            decode=self.scheduler.decode_texts,
        )


def load(
    model_dir: str,
    batch_size: int = GENERATION.batch_size,
    dtype: torch.dtype | None = None,
    decode=None,
    attempts: int = GENERATION.attempts,
    max_new_tokens: int = GENERATION.max_new_tokens,
) -> Generator:
    """The model of `model_dir` ready to serve, the morphological analyser loaded (`decode`
    replaces cefrtune.decode.decode_tokens in tests; None for a setting: GENERATION's)."""
    from cefrtune.models import load_generator
    from cefrtune.scheduler import DecodeScheduler
    from cefrtune.turkish import analyse_sentence

    if not Path(model_dir).exists():
        raise ServeError(f"--model {model_dir}: no such folder (give a run's merged/ or adapter/ folder)")
    if dtype is None:
        dtype = torch.bfloat16 if GENERATION.dtype == "bf16" else torch.float32
    model, tokenizer, style = load_generator(model_dir, dtype=dtype)
    scheduler = DecodeScheduler(
        model, tokenizer, batch_size or GENERATION.batch_size, **({"decode": decode} if decode else {})
    )
    path = Path(model_dir).resolve()
    name = f"{path.parent.name}/{path.name}" if path.name in ("merged", "adapter") else path.name
    context = int(getattr(model.config, "max_position_embeddings", 0) or 32768)
    analyse_sentence("Evde kimse yok.")  # loads the analyser now, not in the first request
    attempts = GENERATION.attempts if attempts is None else attempts
    return Generator(name, model, tokenizer, style, scheduler, context, attempts, max_new_tokens)


def run_dir(model_dir: str | Path) -> Path:
    """The run folder a model belongs to (its parent for runs/x/merged), else the model folder."""
    path = Path(model_dir).resolve()
    return path.parent if path.name in ("merged", "adapter") and (path.parent / "config.yaml").exists() else path


# ---- the application ------------------------------------------------------------------------


def create_app(
    model_dir: str | None = None,
    api_key: str | None = None,
    feedback_db: str | Path | None = None,
    generator: Generator | None = None,
):
    """The FastAPI application over `model_dir` (or an already loaded `generator`)."""
    from cefrtune.feedback import FILENAME, FeedbackStore

    generator = generator or load(model_dir)
    feedback = FeedbackStore(feedback_db or run_dir(model_dir or ".") / FILENAME, generator.name)
    app = FastAPI(
        title="cefrtune",
        version="0.1.0",
        description="CEFR word list -> level-appropriate Turkish sentences; OpenAI-compatible chat.",
        docs_url=None,  # the interactive docs load scripts from a CDN: the CSP (and no network) forbid it
        redoc_url=None,
        responses={
            400: {"model": ErrorBody},
            401: {"model": ErrorBody},
            413: {"model": ErrorBody},
            422: {"model": ErrorBody},
        },
    )
    app.state.generator, app.state.feedback = generator, feedback
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
            "base-uri 'none'; frame-ancestors 'none'"
        )
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError):
        problems = [_problem(e) for e in err.errors()]
        return error_response(422, "; ".join(p for p, _ in problems), problems[0][1] if problems else None)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException):
        return error_response(err.status_code, str(err.detail), None, headers=getattr(err, "headers", None))

    @app.exception_handler(ApiError)
    async def api_error(request: Request, err: ApiError):
        return error_response(err.status, err.message, err.param)

    def authorised(request: Request) -> None:
        if not api_key:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
            raise ApiError(
                401, "missing or wrong API key: send the header 'Authorization: Bearer KEY'", "authorization"
            )

    guarded = [Depends(authorised)]

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    def page():
        return FileResponse(PAGE_DIR / "index.html", media_type="text/html; charset=utf-8")

    app.mount("/page", StaticFiles(directory=PAGE_DIR), name="page")

    @app.get("/health", response_model=Health)
    def health():
        return Health(status="ok", model=generator.name, scheduler=dict(generator.scheduler.stats))

    @app.post("/v1/sentences", response_model=SentencesResponse, dependencies=guarded)
    def sentences(body: SentencesRequest):
        return generate_sentences(generator, body)

    @app.post("/v1/sentences/regenerate", response_model=SentenceResult, dependencies=guarded)
    def regenerate(body: RegenerateRequest):
        return regenerate_sentence(generator, body)

    @app.post("/v1/feedback", response_model=FeedbackSaved, dependencies=guarded)
    def add_feedback(body: FeedbackRequest):
        saved = feedback.add(body.level, body.word, body.index, body.sentence, body.rating, body.correction, body.words)
        return FeedbackSaved(id=saved)

    @app.get(
        "/v1/feedback",
        dependencies=guarded,
        response_class=StreamingResponse,
        responses={200: {"content": {"application/x-ndjson": {}}, "description": "one JSON example per line"}},
    )
    def export_feedback():
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in feedback.records())
        return StreamingResponse(
            iter([lines]),
            media_type="application/x-ndjson",
            headers={"Content-Disposition": 'attachment; filename="feedback.jsonl"'},
        )

    @app.get("/v1/models", response_model=ModelList, dependencies=guarded)
    def models():
        return ModelList(data=[ModelCard(id=generator.name, created=int(time.time()))])

    @app.post(
        "/v1/chat/completions",
        dependencies=guarded,
        responses={
            200: {"model": ChatCompletion, "content": {"text/event-stream": {}}},
            404: {"model": ErrorBody, "description": "a model this server does not serve"},
        },
    )
    async def chat(body: ChatRequest):
        if body.model != generator.name:
            raise ApiError(
                404, f"model '{body.model}' is not served here; GET /v1/models lists '{generator.name}'", "model"
            )
        prompt, budget, n = chat_inputs(generator, body)
        rows = await run_in_threadpool(chat_decode, generator, body, prompt, budget, n)
        completion = chat_completion(generator, body, prompt, rows)
        if not body.stream:
            return JSONResponse(completion)
        return StreamingResponse(
            chat_events(completion), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    return app


# ---- request and response bodies --------------------------------------------------------------

Level = Literal["A1", "A2", "B1", "B2", "C1"]
WORD_PATTERN = r"^[A-Za-zÇĞİÖŞÜÂÎÛçğıöşüâîû '’-]+$"
Word = Annotated[str, Field(min_length=1, max_length=MAX_WORD_CHARS, pattern=WORD_PATTERN)]
Text = Annotated[str, Field(min_length=1, max_length=MAX_SENTENCE_CHARS, pattern=r"^[^<>\x00-\x1f]+$")]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class SentencesRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    level: Level = Field(description="CEFR level, A1 to C1")
    words: list[Word] = Field(
        min_length=1,
        max_length=MAX_WORDS,
        description=f"1 to {MAX_WORDS} Turkish words: letters, space, hyphen and apostrophe, "
        f"at most {MAX_WORD_CHARS} characters each",
    )
    checked: bool = Field(True, description="regenerate failing sentences (false: check only)")

    @field_validator("words", mode="before")
    @classmethod
    def _words(cls, words):
        return _checked(words, _word)


class RegenerateRequest(SentencesRequest):
    checked: bool = True
    sentences: list[Text | None] = Field(
        min_length=1, max_length=MAX_WORDS, description="the list as it stands (edited or not), one entry per word"
    )
    index: int = Field(ge=1, le=MAX_WORDS, description="the number of the sentence to write again (1-based)")

    @field_validator("sentences", mode="before")
    @classmethod
    def _sentences(cls, sentences):
        return _checked(sentences, lambda s, i: _sentence(s, f"sentence {i}"))


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    level: Level
    word: Word
    index: int = Field(ge=1, le=MAX_WORDS, description="the sentence's number in its list")
    sentence: Text
    rating: Literal["up", "down"]
    correction: Text | None = Field(None, description="the sentence as the teacher would write it")
    words: list[Word] | None = Field(None, min_length=1, max_length=MAX_WORDS, description="the whole word list")

    @field_validator("word", mode="before")
    @classmethod
    def _one_word(cls, word):
        return _word(word, 1) if isinstance(word, str) else word

    @field_validator("words", mode="before")
    @classmethod
    def _words(cls, words):
        return _checked(words, _word)

    @field_validator("sentence", "correction", mode="before")
    @classmethod
    def _text(cls, text, info):
        return _sentence(text, info.field_name) if isinstance(text, str) else text


class SentenceResult(BaseModel):
    index: int
    word: str
    sentence: str | None
    passed: bool
    reasons: list[str]
    highlight: list[int] | None = Field(None, description="[start, end) of the word's form in the sentence")
    attempts: int = 1
    samples: int = 1


class SentencesResponse(BaseModel):
    level: str
    words: list[str]
    sentences: list[SentenceResult]
    format_issues: list[str]
    summary: dict
    seconds: float


class FeedbackSaved(BaseModel):
    id: int


class Health(BaseModel):
    status: str
    model: str
    scheduler: dict


class ModelCard(BaseModel):
    id: str
    object: str = "model"
    created: int
    owned_by: str = "cefrtune"


class ModelList(BaseModel):
    object: str = "list"
    data: list[ModelCard]


class ChatMessage(BaseModel):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[dict] = Field(description="text, or a list of {type: text, text} parts")


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str
    messages: list[ChatMessage] = Field(min_length=1, max_length=64)
    max_tokens: int | None = Field(None, ge=1, le=MAX_CHAT_TOKENS)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_CHAT_TOKENS)
    temperature: float = Field(1.0, ge=0.0, le=2.0, description="0 decodes greedily")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=MAX_CHOICES)
    stop: str | list[str] | None = Field(None, description="up to 4 strings; the text ends before the first")
    stream: bool = False
    seed: int | None = Field(None, ge=0, le=2**31 - 1)

    @field_validator("stop")
    @classmethod
    def _stop(cls, stop):
        stops = [stop] if isinstance(stop, str) else stop or []
        if len(stops) > 4 or any(not s or len(s) > 64 for s in stops):
            raise ValueError("give at most 4 stop strings of 1 to 64 characters")
        return stops

    @field_validator("messages")
    @classmethod
    def _messages(cls, messages):
        if sum(len(_text_of(m.content)) for m in messages) > MAX_MESSAGE_CHARS:
            raise ValueError(f"the messages hold more than {MAX_MESSAGE_CHARS} characters: shorten them")
        return messages


class ChatCompletion(BaseModel):
    id: str
    object: str = "chat.completion"
    created: int
    model: str
    choices: list[dict]
    usage: dict


# ---- sentences ------------------------------------------------------------------------------


def generate_sentences(generator: Generator, body: SentencesRequest) -> dict:
    """A checked list for one request: generate_checked (no regeneration when `checked` is false)."""
    from cefrtune.generation import RequestError, check_request, generate_checked

    try:
        request = check_request(body.level, body.words, None, "words")
    except RequestError as err:
        raise ApiError(400, str(err), "words") from err
    started = time.perf_counter()
    results, summary = generate_checked(
        generator.model,
        generator.tokenizer,
        generator.style,
        [request],
        attempts=generator.attempts if body.checked else 0,
        candidates=GENERATION.candidates,
        max_new_tokens=_budget(generator, request),
        complete=generator.completer(GENERATION.temperature, GENERATION.top_p),
    )
    result = results[0]
    return {
        "level": request.level,
        "words": request.words,
        "sentences": [_sentence_result(c) for c in result["checks"]],
        "format_issues": result["issues"],
        "summary": summary,
        "seconds": round(time.perf_counter() - started, 3),
    }


def regenerate_sentence(generator: Generator, body: RegenerateRequest) -> dict:
    """Sentence `index` of the list written again and checked, the others kept as the teacher left them.
    generate_checked does the work: its first answer is the list as it stands with sentence `index`
    left out, so its regeneration rounds write that sentence (and any other failing one, discarded)."""
    from cefrtune.generation import RequestError, check_request, generate_checked

    if len(body.sentences) != len(body.words):
        raise ApiError(
            422, f"{len(body.sentences)} sentences for {len(body.words)} words: send one entry per word", "sentences"
        )
    if body.index > len(body.words):
        raise ApiError(422, f"index {body.index} is past the last word ({len(body.words)})", "index")
    try:
        request = check_request(body.level, body.words, None, "words")
    except RequestError as err:
        raise ApiError(400, str(err), "words") from err
    j = body.index - 1
    standing = [s if i != j else None for i, s in enumerate(body.sentences)]
    answer = generator.style.response_body([s or "" for s in standing], request.words)
    lines = [line for line in answer.split("\n") if not line.startswith(f"{body.index}. ")]
    model_complete = generator.completer(GENERATION.temperature, GENERATION.top_p)
    first = [True]

    def complete(prompts, max_new_tokens, sample, seed, limits, scores=None):
        if first[0]:
            first[0] = False
            return ["\n".join(lines)]
        return model_complete(prompts, max_new_tokens, sample, seed, limits, scores=scores)

    results, _ = generate_checked(
        generator.model,
        generator.tokenizer,
        generator.style,
        [request],
        attempts=max(generator.attempts, 1),
        candidates=GENERATION.candidates,
        max_new_tokens=_budget(generator, request),
        seed=time.time_ns() % 2**31,
        complete=complete,
    )
    return _sentence_result(results[0]["checks"][j])


def _budget(generator: Generator, request) -> int:
    from cefrtune.features import prompt_ids

    prompt = prompt_ids(generator.style.prompt(request.level, request.words, generator.tokenizer), generator.tokenizer)
    room = generator.context - len(prompt) - 1
    if room < 16:
        raise ApiError(
            400, f"the prompt takes {len(prompt)} of the model's {generator.context} tokens: send fewer words", "words"
        )
    return min(generator.max_new_tokens, room)


def _sentence_result(check: dict) -> dict:
    return {
        "index": check["index"],
        "word": check["word"],
        "sentence": check["sentence"],
        "passed": check["passed"],
        "reasons": check["reasons"],
        "highlight": word_span(check["sentence"], check["word"]),
        "attempts": check.get("attempts", 1),
        "samples": check.get("samples", 1),
    }


def word_span(sentence: str | None, word: str) -> list[int] | None:
    """[start, end) of the token of `sentence` that realises `word` (by lemma), or None."""
    from cefrtune.turkish import analyse_sentence, find_word, tokenize

    if not sentence:
        return None
    found = find_word(analyse_sentence(sentence), word)
    if found is None:
        return None
    start = 0
    for k, token in enumerate(tokenize(sentence)):
        start = sentence.index(token, start)
        if k == found:
            end = start + len(token)
            if len(word.split()) > 1:  # a phrase: up to the end of its last token
                for extra in tokenize(sentence[end:])[: len(word.split()) - 1]:
                    end = sentence.index(extra, end) + len(extra)
            return [start, end]
        start += len(token)
    return None


# ---- OpenAI-compatible chat --------------------------------------------------------------------


def chat_inputs(generator: Generator, body: ChatRequest) -> tuple[list[int], int, int]:
    """The prompt's token ids (the conversation in the model's prompt style), the token budget and n."""
    from cefrtune.features import prompt_ids

    messages = [
        {"role": "system" if m.role == "developer" else m.role, "content": _text_of(m.content)} for m in body.messages
    ]
    if messages[-1]["role"] == "assistant":
        raise ApiError(422, "the last message is the assistant's: end with a user message", "messages")
    try:
        text = generator.style.chat_prompt(messages, generator.tokenizer)
    except Exception as err:  # a chat template refusing the conversation (e.g. no system role)
        raise ApiError(422, f"the model's chat template refuses these messages: {err}", "messages") from err
    prompt = prompt_ids(text, generator.tokenizer)
    room = generator.context - len(prompt) - 1
    asked = body.max_completion_tokens or body.max_tokens
    if room < 1 or (asked and asked > room):
        raise ApiError(
            400,
            f"the messages take {len(prompt)} tokens of the model's {generator.context}: "
            f"shorten them or lower max_tokens (at most {max(room, 0)} here)",
            "max_tokens",
        )
    return prompt, min(asked or DEFAULT_CHAT_TOKENS, room), body.n


def chat_decode(generator: Generator, body: ChatRequest, prompt: list[int], budget: int, n: int) -> list[list[int]]:
    from cefrtune.generation import end_token_ids  # the model's end-of-turn tokens, as generation stops on them

    sample = body.temperature > 0
    seed = body.seed if body.seed is not None else time.time_ns() % 2**31
    return generator.scheduler.decode_tokens(
        None,
        None,
        [prompt] * n,
        budget,
        end_token_ids(generator.tokenizer, generator.style),
        sample=sample,
        temperature=max(body.temperature, 1e-3),
        top_p=body.top_p,
        seed=seed,
    )


def chat_completion(generator: Generator, body: ChatRequest, prompt: list[int], rows: list[list[int]]) -> dict:
    from cefrtune.generation import end_token_ids

    stops = set(end_token_ids(generator.tokenizer, generator.style))
    choices = []
    for i, row in enumerate(rows):
        text = generator.tokenizer.decode(row, skip_special_tokens=True)
        finish = "stop" if row and row[-1] in stops else "length"
        for stop in body.stop or []:
            if stop in text:
                text, finish = text.split(stop, 1)[0], "stop"
        choices.append(
            {"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": finish, "logprobs": None}
        )
    completion_tokens = sum(len(r) for r in rows)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": generator.name,
        "choices": choices,
        "usage": {
            "prompt_tokens": len(prompt),
            "completion_tokens": completion_tokens,
            "total_tokens": len(prompt) + completion_tokens,
        },
    }


def chat_events(completion: dict):
    """The completion as server-sent events in OpenAI's chunk format, word by word, then [DONE]."""
    import re

    head = {k: completion[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}

    def event(choices) -> str:
        return f"data: {json.dumps(head | {'choices': choices}, ensure_ascii=False)}\n\n"

    for choice in completion["choices"]:
        i = choice["index"]
        yield event([{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        for piece in re.findall(r"\s*\S+|\s+", choice["message"]["content"]):
            yield event([{"index": i, "delta": {"content": piece}, "finish_reason": None}])
        yield event([{"index": i, "delta": {}, "finish_reason": choice["finish_reason"]}])
    yield "data: [DONE]\n\n"


# ---- errors and limits ------------------------------------------------------------------------


class ApiError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param = status, message, param


def error_response(status: int, message: str, param: str | None, headers=None):
    kind = {401: "authentication_error", 404: "not_found_error", 413: "request_too_large"}.get(
        status, "invalid_request_error"
    )
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": param}}, status_code=status, headers=headers
    )


class BodyLimit:
    """Refuses request bodies over `limit` bytes with 413, by Content-Length or as they arrive."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"0")
        too_large = error_response(413, f"the request body is over {self.limit} bytes: send less", None)
        if not length.isdigit() or int(length) > self.limit:
            return await too_large(scope, receive, send)
        received = 0
        started = False

        async def limited_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise _TooLarge
            return message

        async def tracked_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except _TooLarge:
            if not started:
                await too_large(scope, receive, send)


class _TooLarge(Exception):
    pass


def _checked(values, check):
    """`check(value, number)` on each string of a list (before type validation, for its plain-words message)."""
    if not isinstance(values, list):
        return values
    return [check(v, i) if isinstance(v, str) else v for i, v in enumerate(values, start=1)]


def _word(word: str, i: int) -> str:
    word = word.strip()
    if not word:
        raise ValueError(f"word {i} is empty: type a word")
    if len(word) > MAX_WORD_CHARS:
        raise ValueError(f"word {i} is longer than {MAX_WORD_CHARS} characters: one word (or a short phrase) per field")
    bad = sorted({c for c in word if c not in TURKISH_LETTERS and c not in WORD_PUNCTUATION})
    if bad:
        raise ValueError(
            f"word {i} holds {', '.join(repr(c) for c in bad)}: use Turkish letters, space, hyphen or apostrophe only"
        )
    return word


def _sentence(text: str, name: str) -> str:
    text = text.strip()
    if not text or len(text) > MAX_SENTENCE_CHARS:
        raise ValueError(f"{name} must be 1 to {MAX_SENTENCE_CHARS} characters")
    if any(c in "<>" or (ord(c) < 32) for c in text):
        raise ValueError(f"{name} holds '<', '>' or a control character: write plain text")
    return text


def _text_of(content) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text")


def _problem(error: dict) -> tuple[str, str | None]:
    """A validation error as 'field: what to fix', and the field's name."""
    loc = [str(p) for p in error.get("loc", ()) if p != "body"]
    field = ".".join(loc) or None
    message = error.get("msg", "invalid").removeprefix("Value error, ")
    if error.get("type") == "literal_error" and loc and loc[0] == "level":
        message = "unknown level: use one of A1, A2, B1, B2, C1"
    elif error.get("type") == "json_invalid":
        message = "the body is not valid JSON: " + message
    return (f"{field}: {message}" if field else message), field
