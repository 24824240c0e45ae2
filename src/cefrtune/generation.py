"""Numbered Turkish sentences for word lists, raw or checked: what the generate stage and the server share.

    results = generate_lists(model, tokenizer, style, [Request("A1", words)])
    results, summary = generate_checked(model, tokenizer, style, requests, attempts=6)

`generate_lists` is batched and greedy by default (reproducible); sampling is an option. The
answer is parsed leniently (extra text, missing numbers, merged lines are reported, not raised).
`generate_checked` then checks every sentence (target word by lemma, real Turkish words, level
grammar and vocabulary, no duplicate, no copy of training data) and regenerates only the
failing sentences: the model continues its own list right at the failing number (`7. `), with
sampling, batched over every failing sentence, up to a budget of rounds; after `free_attempts`
unsteered rounds the target word's stem is written for it, which steers the sentence to the
word, and each steered round samples several candidates for every failing sentence. Every
sentence comes back with its checks; failures are flagged with their reasons, never hidden.
`benchmarks/checked_generation.py` measures the schedules against each other.

The token loop itself (KV cache, stop rules, the top-k/top-p sampler) is cefrtune.decode.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

from cefrtune.decode import decode_texts, sentence_logprobs
from cefrtune.errors import UserError
from cefrtune.features import prompt_ids
from cefrtune.generation_settings import GENERATION
from cefrtune.levels import word_level, wordlist
from cefrtune.metrics import check_sentence, sentence_key
from cefrtune.prompts import WORD_SEPARATOR, PromptStyle, parse_numbered
from cefrtune.turkish import LEVELS, analyse_word, capitalize, fold, tokenize


class RequestError(UserError, ValueError):
    """A word list that cannot be generated for; the message says which and why."""


@dataclass
class Request:
    level: str
    words: list[str]


def check_request(level: str, words: list[str], n: int | None = 10, where: str = "request") -> Request:
    problems = []
    if not isinstance(words, list):
        raise RequestError(f"{where}: words must be a list of words, got {type(words).__name__}")
    if not isinstance(level, str) or level not in LEVELS:
        problems.append(f"unknown level '{level}' (use one of {', '.join(LEVELS)})")
    if n is not None and len(words) != n:
        problems.append(f"{len(words)} words, expected {n}")
    for i, word in enumerate(words, start=1):
        if not isinstance(word, str) or not word.strip():
            problems.append(f"word {i} is empty")
        elif " ".join(tokenize(word)) != " ".join(word.split()):
            problems.append(f"word {i} '{word}' is not a Turkish word (letters only)")
    if problems:
        raise RequestError(f"{where}: " + "; ".join(problems))
    return Request(level, [w.strip() for w in words])


def generate_lists(model, tokenizer, style: PromptStyle, requests: list[Request],
                   batch_size: int = GENERATION.batch_size, max_new_tokens: int = GENERATION.max_new_tokens,
                   sample: bool = False, temperature: float = GENERATION.temperature, top_p: float = GENERATION.top_p,
                   seed: int = GENERATION.seed, progress: bool = False, complete=None) -> list[dict]:
    """One raw answer per request: {level, words, text, sentences, format_valid, issues}.
    `complete(prompts, max_new_tokens, sample, seed, lines, scores=None)` replaces the model (tests drive
    the loop with a scripted one); `lines` is how many lines each answer may have; a `scores` list receives
    each answer's fluency (mean log-probability per token)."""
    complete = complete or model_completer(model, tokenizer, style, batch_size, temperature, top_p, progress)
    prompts = [prompt_ids(style.prompt(r.level, r.words, tokenizer), tokenizer) for r in requests]
    texts = complete(prompts, max_new_tokens, sample, seed, [len(r.words) for r in requests])
    results = []
    for request, text in zip(requests, texts):
        parsed = parse_numbered(text, len(request.words), style, request.words)
        results.append({"level": request.level, "words": request.words, "text": text, "sentences": parsed.sentences,
                        "format_valid": parsed.format_valid, "issues": parsed.issues})
    return results


def generate_checked(model, tokenizer, style: PromptStyle, requests: list[Request],
                     attempts: int = GENERATION.attempts, train_sentences: list[str] | None = None,
                     batch_size: int = GENERATION.batch_size, max_new_tokens: int = GENERATION.max_new_tokens,
                     seed: int = GENERATION.seed, progress: bool = False, complete=None,
                     free_attempts: int | None = GENERATION.free_attempts, candidates: int = GENERATION.candidates,
                     free_candidates: int | None = GENERATION.free_candidates,
                     temperature: float = GENERATION.temperature,
                     top_p: float = GENERATION.top_p, polish: int = GENERATION.polish,
                     rank=None) -> tuple[list[dict], dict]:
    """Generate, check every sentence, regenerate only the failing ones (up to `attempts` rounds).
    The first `free_attempts` rounds sample freely, later rounds are steered (the word's stem
    starts the sentence); None never steers. Each steered round samples `candidates` sentences for
    every failing one, each free round `free_candidates` (None: as many), batched, and keeps the
    passing one ranked highest; the rounds sample at `temperature` and `top_p`. A last round samples
    `polish` candidates for every passing sentence and keeps the best ranked of them and the sentence
    itself. `rank(sentences) -> scores` ranks; by default the model's `sentence_logprobs` (each sentence on
    its own), or, with no model, the mean log-probability the sampler reported. Returns the
    results (each sentence with its checks) and a summary: pass rates before and after, mean rounds
    and samples per sentence, sentences per second."""
    free_candidates = candidates if free_candidates is None else free_candidates
    if attempts < 0 or candidates < 1 or free_candidates < 1 or polish < 0:
        raise ValueError(f"attempts and polish must be >= 0 and candidates >= 1 (got {attempts}, {polish}, "
                         f"{candidates} and {free_candidates})")
    if rank is None and model is not None:
        rank = functools.partial(sentence_logprobs, model, tokenizer, batch_size=batch_size)
    started = time.perf_counter()
    complete = complete or model_completer(model, tokenizer, style, batch_size, temperature, top_p, progress)
    results = generate_lists(
        model, tokenizer, style, requests, batch_size, max_new_tokens, seed=seed, complete=complete
    )
    train_keys = frozenset(sentence_key(s) for s in train_sentences or [])
    tries = [[1] * len(r["words"]) for r in results]  # rounds that wrote this sentence
    samples = [[1] * len(r["words"]) for r in results]  # sentences sampled for it
    # One sentence gets twice its share of the list's budget (a list of n sentences: 2/n of it).
    sentence_budget = max(24, min(96, 2 * max_new_tokens // max(len(requests[0].words), 1))) if requests else 48
    checks = [_check_all(r, train_keys) for r in results]
    polished = 0
    before = sum(c.passed for cs in checks for c in cs)
    for attempt in range(1, attempts + 2):
        polishing = attempt == attempts + 1
        if polishing and (not polish or rank is None):
            break
        wanted = [(i, j) for i, cs in enumerate(checks) for j, c in enumerate(cs) if c.passed == polishing]
        if not wanted:
            if polishing:
                break
            continue
        steering = not polishing and free_attempts is not None and attempt > free_attempts
        prefixes = [_continuation_prompt(style, tokenizer, results[i], j, steering) for i, j in wanted]
        k = polish if polishing else candidates if steering else free_candidates
        fluency: list[float] = []
        rows = [p for p in prefixes for _ in range(k)]
        texts = complete(rows, sentence_budget, True, seed + attempt, [1] * len(rows), scores=fluency)
        options = []  # per wanted sentence: [score, -candidate, sentence, (result, checks)]; itself when polishing
        for n, (i, j) in enumerate(wanted):
            tries[i][j] += not polishing
            samples[i][j] += k  # all were generated, whichever is kept
            passing = [[0.0, 1, results[i]["sentences"][j], None]] if polishing else []
            for c, text in enumerate(texts[n * k : (n + 1) * k]):
                line = text.lstrip("\n").split("\n", 1)[0]
                candidate = ((_steer_head(results[i]["words"][j]) if steering else "") + line).strip()
                sentence = style.strip_word(candidate, results[i]["words"][j]) if candidate else None
                if kept := _with(results[i], j, sentence, checks[i], train_keys):
                    passing.append([fluency[n * k + c] if len(fluency) == len(texts) else 0.0, -c, sentence, kept])
            options.append(passing)
        if rank is not None:  # one call for every sentence with a choice to make
            choices = [p for passing in options if len(passing) > 1 for p in passing]
            for p, score in zip(choices, rank([p[2] for p in choices])):
                p[0] = score
        changed = set()  # lists with a sentence replaced in this round: their other candidates are checked again
        for (i, j), passing in zip(wanted, options):
            # the best ranked passing candidate (the earlier one on a tie) that still passes beside the
            # sentences chosen before it in this round
            for _, c, sentence, kept in sorted(passing, key=lambda p: p[:2], reverse=True):
                if c == 1:
                    break
                if i in changed:
                    kept = _with(results[i], j, sentence, checks[i], train_keys)
                if kept:
                    results[i], checks[i] = kept
                    changed.add(i)
                    polished += polishing
                    break
    seconds = time.perf_counter() - started
    total = sum(len(r["words"]) for r in results)
    after = sum(c.passed for cs in checks for c in cs)
    for result, cs, rounds, sampled in zip(results, checks, tries, samples):
        result["checks"] = [dict(c.to_json(), attempts=a, samples=s) for c, a, s in zip(cs, rounds, sampled)]
        result["flagged"] = [c.to_json() for c in cs if not c.passed]
    summary = {
        "sentences": total,
        "pass_rate_before": round(before / total, 4) if total else 0.0,
        "pass_rate": round(after / total, 4) if total else 0.0,
        "flagged": total - after,
        "mean_attempts": round(sum(map(sum, tries)) / total, 3) if total else 0.0,
        "mean_samples": round(sum(map(sum, samples)) / total, 3) if total else 0.0,
        "seconds": round(seconds, 2),
        "sentences_per_s": round(total / seconds, 3) if seconds else 0.0,
        "attempt_budget": attempts,
        "free_attempts": free_attempts,
        "candidates": candidates,
        "free_candidates": free_candidates,
        "polish": polish if rank is not None else 0,
        "polished": polished,
    }
    return results, summary


def default_max_new_tokens(examples, tokenizer, style: PromptStyle) -> int:
    """1.5 x the longest reference answer in tokens: room to spare, but a model that never stops
    does not decode for minutes."""
    longest = max(
        len(tokenizer(style.response(e.sentences, e.words, tokenizer), add_special_tokens=False)["input_ids"])
        for e in examples
    )
    return int(longest * 1.5) + 8


def _check_all(result: dict, train_keys) -> list:
    seen: set[str] = set()
    checks = []
    for j, word in enumerate(result["words"]):
        sentence = result["sentences"][j] if j < len(result["sentences"]) else None
        check = check_sentence(sentence, word, result["level"], j, train_keys, seen, result["words"])
        if sentence:
            seen.add(sentence_key(sentence))
        checks.append(check)
    return checks


def _with(result: dict, j: int, sentence: str | None, checks: list, train_keys) -> tuple[dict, list] | None:
    """`result` with sentence j replaced and its checks, if sentence j passes and no sentence that passed
    fails now (a duplicate of a later sentence); else None."""
    trial = dict(result, sentences=list(result["sentences"]))
    trial["sentences"][j] = sentence
    new = _check_all(trial, train_keys)
    if new[j].passed and all(n.passed or not old.passed for n, old in zip(new, checks)):
        return trial, new
    return None


def _continuation_prompt(style: PromptStyle, tokenizer, result: dict, j: int, steer: bool) -> list[int]:
    """Prompt + the list so far + `j+1. `: the model writes sentence j+1 only."""
    done = [s if s else "…" for s in result["sentences"][:j]]
    head = style.response_body(done, result["words"][:j]) if done else ""
    line = f"{j + 1}. "
    if style.name_words:
        line += f"{result['words'][j]}{WORD_SEPARATOR}"
    if steer:
        line += _steer_head(result["words"][j])
    text = style.prompt(result["level"], result["words"], tokenizer) + (head + "\n" if head else "") + line
    return prompt_ids(text, tokenizer)


def _steer_head(word: str) -> str:
    """The start a steered sentence is given: the word's stem (verbs lose -mak/-mek), capitalised. A word of
    cefrtune's word lists is a verb when its list says so (`ekmek` is bread there, though the analyser also
    reads "ek-mek", to sow); any other word when the analyser reads it as one."""
    level = word_level(word)
    verb = wordlist(level)[fold(word)] == "verb" if level else any(a.pos == "Verb" for a in analyse_word(word))
    return capitalize(word[:-3] if verb and fold(word).endswith(("mak", "mek")) else word)


def end_token_ids(tokenizer, style: PromptStyle) -> list[int]:
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    for stop in style.stop_strings:
        token = tokenizer.convert_tokens_to_ids(stop) if stop else None
        if token is not None and token != tokenizer.unk_token_id:
            ids.add(token)
    return sorted(ids)


def model_completer(model, tokenizer, style, batch_size: int = GENERATION.batch_size,
                    temperature: float = GENERATION.temperature, top_p: float = GENERATION.top_p,
                    progress: bool = False, decode=decode_texts):
    """A `complete` function over a Hugging Face model (cefrtune.decode: batched, left-padded,
    shortest first); a row stops at the end-of-turn marker, at EOS, or after its lines. `decode`
    replaces `decode_texts` (the server's scheduler, which batches concurrent requests together)."""
    stop_ids = end_token_ids(tokenizer, style)

    def complete(prompts, max_new_tokens, sample, seed, lines, scores=None):
        desc = "regenerate" if max(lines, default=0) == 1 else "generate"
        return decode(model, tokenizer, prompts, max_new_tokens, stop_ids, batch_size, lines, sample,
                      temperature, top_p, seed, progress, desc, scores=scores)

    return complete
