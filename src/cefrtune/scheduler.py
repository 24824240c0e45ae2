"""The server's decoding scheduler: concurrent requests share decoding batches.

    scheduler = DecodeScheduler(model, tokenizer, batch_size=32)
    complete = model_completer(model, tokenizer, style, decode=scheduler.decode_texts)  # any thread
    tokens = scheduler.decode_tokens(model, tokenizer, prompts, 128, stop_ids, sample=True)

One worker thread owns the model. A request thread hands its prompts in and waits; whenever the
worker is free it takes every job that is waiting, merges the jobs that decode alike (greedy, or
sampling at the same temperature and top-p, with the same stop tokens) into one
`cefrtune.decode.decode_tokens` call, and hands each job its rows back. Each prompt keeps its own
token budget and line limit, so a request's text does not depend on what it was batched with,
except that a merged sampled batch is seeded by its first job: sampled text is reproducible only
for a request that decoded alone. While the worker decodes, new requests queue up and form the
next call, so throughput rises with the number of clients (`benchmarks/serve_load.py`).
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field

from cefrtune.decode import decode_tokens
from cefrtune.generation_settings import GENERATION

NO_LINE_LIMIT = 1 << 30
"""The line limit of a prompt merged from a job without one (never reached)."""


@dataclass
class _Job:
    prompts: list[list[int]]
    budget: int
    stop_ids: tuple[int, ...]
    lines: list[int] | None
    sample: bool
    temperature: float
    top_p: float
    seed: int
    wants_scores: bool = False
    done: Future = field(default_factory=Future)

    @property
    def key(self) -> tuple:
        return (self.stop_ids, self.sample) + ((self.temperature, self.top_p) if self.sample else ())


class DecodeScheduler:
    """Gathers the decoding jobs of concurrent requests into shared `decode_tokens` calls."""

    def __init__(self, model, tokenizer, batch_size: int = GENERATION.batch_size, decode=decode_tokens):
        self.model, self.tokenizer, self.batch_size, self._decode = model, tokenizer, batch_size, decode
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self.stats = {"calls": 0, "jobs": 0, "prompts": 0, "most_jobs_in_a_call": 0}
        self._worker = threading.Thread(target=self._run, name="cefrtune-decode", daemon=True)
        self._worker.start()

    def decode_tokens(
        self,
        model,
        tokenizer,
        prompts,
        max_new_tokens: int,
        stop_ids,
        batch_size: int = GENERATION.batch_size,
        lines=None,
        sample: bool = False,
        temperature: float = GENERATION.temperature,
        top_p: float = GENERATION.top_p,
        seed: int = GENERATION.seed,
        progress: bool = False,
        desc: str = "generate",
        scores: list[float] | None = None,
    ) -> list[list[int]]:
        """`cefrtune.decode.decode_tokens`'s signature (model, tokenizer and batch size are the
        scheduler's own); blocks until this job's rows are decoded."""
        if not prompts:
            return []
        job = _Job(
            [list(p) for p in prompts],
            max_new_tokens,
            tuple(sorted(stop_ids)),
            list(lines) if lines else None,
            sample,
            temperature,
            top_p,
            seed,
            scores is not None,
        )
        self._queue.put(job)
        rows, fluency = job.done.result()
        if scores is not None:
            scores[:] = fluency
        return rows

    def decode_texts(self, model, tokenizer, *args, **kwargs) -> list[str]:
        """`cefrtune.decode.decode_texts`, through the scheduler (same arguments as `decode_tokens`)."""
        rows = self.decode_tokens(model, tokenizer, *args, **kwargs)
        return [self.tokenizer.decode(row, skip_special_tokens=True) for row in rows]

    def close(self) -> None:
        self._queue.put(None)
        self._worker.join(timeout=30)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs = [first]
            while True:  # everything that queued up while the last call decoded
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    self._queue.put(None)
                    break
                jobs.append(job)
            groups: dict[tuple, list[_Job]] = {}
            for job in jobs:
                groups.setdefault(job.key, []).append(job)
            for group in groups.values():
                self._decode_group(group)

    def _decode_group(self, jobs: list[_Job]) -> None:
        prompts = [p for job in jobs for p in job.prompts]
        budgets = [job.budget for job in jobs for _ in job.prompts]
        limited = any(job.lines for job in jobs)
        lines = [n for job in jobs for n in (job.lines or [NO_LINE_LIMIT] * len(job.prompts))] if limited else None
        head = jobs[0]
        fluency: list[float] = []
        wanted = {"scores": fluency} if any(job.wants_scores for job in jobs) else {}  # the most fluent candidate
        try:
            rows = self._decode(
                self.model,
                self.tokenizer,
                prompts,
                budgets,
                list(head.stop_ids),
                self.batch_size,
                lines,
                head.sample,
                head.temperature,
                head.top_p,
                head.seed,
                **wanted,
            )
        except Exception as err:  # noqa: BLE001 - every waiting request gets the error, the worker lives on
            for job in jobs:
                job.done.set_exception(err)
            return
        self.stats["calls"] += 1
        self.stats["jobs"] += len(jobs)
        self.stats["prompts"] += len(prompts)
        self.stats["most_jobs_in_a_call"] = max(self.stats["most_jobs_in_a_call"], len(jobs))
        start = 0
        for job in jobs:
            end = start + len(job.prompts)
            job.done.set_result((rows[start:end], fluency[start:end]))
            start = end
