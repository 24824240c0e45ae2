"""The generate stage: word lists from the command line or a file in, numbered sentences out.

    cefrtune generate --model runs/a1-.../merged --level A1 --words "ev,su,okul,..."
    cefrtune generate --model DIR --input lists.json --output out.jsonl [--checked]

`read_requests` reads the word lists, `check_options` and `check_output` refuse what cannot
work before any model loads, and `generate_into` generates them (raw or checked, through
cefrtune.generation, which holds the checks and the regeneration rounds) and appends each chunk
of results to `--output` as soon as it is done, so a stopped run continues where it stopped.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from cefrtune.generation import Request, RequestError, check_request, generate_checked, generate_lists
from cefrtune.generation_settings import GENERATION
from cefrtune.prompts import PromptStyle

RESULTS_CHUNK = 32
"""Word lists generated between two writes of `generate --output` (a stop loses at most these)."""


def generate_into(model, tokenizer, style: PromptStyle, requests: list[Request], output: str | Path | None = None,
                  done: int = 0, checked: bool = False, attempts: int = GENERATION.attempts,
                  candidates: int = GENERATION.candidates, free_attempts: int | None = GENERATION.free_attempts,
                  sample: bool = False, temperature: float = GENERATION.temperature, top_p: float = GENERATION.top_p,
                  seed: int = GENERATION.seed, batch_size: int = GENERATION.batch_size,
                  max_new_tokens: int = GENERATION.max_new_tokens, polish: int = GENERATION.polish,
                  on_summary=None) -> list[dict]:
    """Results for `requests[done:]`, raw or checked (what `cefrtune generate` runs). With `output`
    (checked first with `check_output`, which gives `done`), each chunk of RESULTS_CHUNK word lists
    is appended as soon as it is done, so a stop loses at most one chunk. `on_summary` gets each
    checked chunk's summary. `temperature` and `top_p` are the sampler's: of `sample`, and of the
    regeneration rounds when `checked`."""
    chunk = max(batch_size, RESULTS_CHUNK) if output else max(len(requests), 1)
    results = []
    for start in range(done, len(requests), chunk):
        part = requests[start : start + chunk]
        if checked:
            produced, summary = generate_checked(model, tokenizer, style, part, attempts, None, batch_size,
                                                 max_new_tokens, seed=seed + start, progress=True,
                                                 candidates=candidates, free_attempts=free_attempts,
                                                 temperature=temperature, top_p=top_p, polish=polish)
            if on_summary:
                on_summary(summary)
        else:
            produced = generate_lists(model, tokenizer, style, part, batch_size, max_new_tokens, sample=sample,
                                      temperature=temperature, top_p=top_p, seed=seed + start, progress=True)
        if output:
            append_results(output, produced)
        results += produced
    return results


def read_requests(path: str | Path, n: int | None = 10, level: str | None = None) -> list[Request]:
    """Word lists from a JSON list of lists (needs `level`), of examples, or a JSONL of examples."""
    from cefrtune.examples import read_records

    path = Path(path)
    records, problems = read_records(path)
    if problems:
        raise RequestError("; ".join(str(p) for p in problems))
    requests = []
    for origin, record in records:
        if isinstance(record, list):
            if level is None:
                raise RequestError(f"{origin}: a bare word list needs --level")
            requests.append(check_request(level, record, n, origin))
        elif isinstance(record, dict) and "words" in record:
            requests.append(check_request(record.get("level", level), record["words"], n, origin))
        else:
            raise RequestError(f"{origin}: expected a list of words or an object with 'words' (and 'level')")
    return requests


def check_options(max_new_tokens: int = GENERATION.max_new_tokens, batch_size: int = GENERATION.batch_size,
                  temperature: float = GENERATION.temperature, top_p: float = GENERATION.top_p,
                  attempts: int = GENERATION.attempts, candidates: int = GENERATION.candidates,
                  free_attempts: int | None = GENERATION.free_attempts, seed: int = GENERATION.seed,
                  polish: int = GENERATION.polish) -> None:
    """Refuse generation settings that cannot work, all at once, before any model loads."""
    problems = []

    def whole(name: str, value, low: int, high: int | None = None) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
            upper = f" to {high}" if high else " up"
            problems.append(f"{name} must be a whole number from {low}{upper} (got {value!r})")

    whole("--max-new-tokens", max_new_tokens, 1)
    whole("--batch-size", batch_size, 1)
    whole("--attempts", attempts, 0)
    whole("--candidates", candidates, 1)
    whole("--polish", polish, 0)
    whole("--seed", seed, 0, 2**32 - 1)
    if free_attempts is not None:
        whole("--free-attempts", free_attempts, -1)
    if not _number(temperature) or temperature <= 0:
        problems.append(f"--temperature must be a number above 0 (got {temperature!r}); "
                        "for greedy decoding leave out --sample")
    if not _number(top_p) or not 0 < top_p <= 1:
        problems.append(f"--top-p must be above 0 and at most 1 (got {top_p!r})")
    if problems:
        raise RequestError("; ".join(problems))


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_output(output: str | Path, requests: list[Request], input: str | Path | None = None) -> int:
    """Before any model loads: refuse an --output that is the input, a folder, or cannot be
    written, and one holding results for other word lists. Returns how many of `requests` it
    already holds (a run that was stopped continues after them); a torn last line is dropped."""
    output = Path(output)
    if input is not None and (output.resolve() == Path(input).resolve()
                              or (output.exists() and os.path.samefile(output, input))):
        raise RequestError(f"--output {output} is the --input file; choose another --output "
                           "(the input is never overwritten)")
    if output.is_dir():
        raise RequestError(f"--output {output} is a folder; give a file name (results are JSON lines)")
    if not output.parent.is_dir():
        raise RequestError(f"--output {output}: folder {output.parent} does not exist; create it first")
    existed = output.exists()
    try:
        with open(output, "a", encoding="utf-8"):
            pass
    except OSError as err:
        raise RequestError(f"--output {output}: cannot be written ({err.strerror}); choose another path") from None
    if not existed:
        output.unlink()
        return 0
    text = output.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    elif lines:  # a kill in the middle of a line: that result is generated again
        lines.pop()
        from cefrtune.files import write_text_atomic

        write_text_atomic(output, "".join(line + "\n" for line in lines))
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if number > len(requests) or not isinstance(record, dict) or \
                (record.get("level"), record.get("words")) != (requests[number - 1].level, requests[number - 1].words):
            raise RequestError(f"--output {output}:{number}: holds something other than the results of these word "
                               "lists; choose another --output (or delete that file to start over)")
    return len(lines)


def append_results(path: str | Path, results: list[dict]) -> None:
    """Add results to a JSON-lines file and make them durable before returning (a later crash
    loses none of them). Line separators inside strings are escaped, so one result is one line."""
    from cefrtune.files import json_line

    text = "".join(json_line(r) for r in results)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def write_results(path: str | Path, results: list[dict]) -> None:
    from cefrtune.files import write_text_atomic

    write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results))
