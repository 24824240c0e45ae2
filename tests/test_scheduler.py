"""The decoding scheduler: concurrent jobs are merged into shared decode calls, each job gets its
own rows back in order, jobs that sample differently are decoded apart, and errors reach the caller."""

import threading
import time

import pytest

from cefrtune.scheduler import NO_LINE_LIMIT, DecodeScheduler


class RecordingDecode:
    """A decode function that writes each prompt's first token `budget` times and records its calls."""

    def __init__(self, delay: float = 0.05):
        self.calls, self.delay = [], delay

    def __call__(
        self, model, tokenizer, prompts, budgets, stop_ids, batch_size, lines, sample, temperature, top_p, seed
    ):
        self.calls.append({"prompts": len(prompts), "budgets": list(budgets), "lines": lines, "sample": sample})
        time.sleep(self.delay)
        return [[p[0]] * b for p, b in zip(prompts, budgets)]


def test_concurrent_jobs_share_calls_and_get_their_own_rows():
    decode = RecordingDecode()
    scheduler = DecodeScheduler(None, None, batch_size=8, decode=decode)
    results = {}

    def client(k):
        results[k] = scheduler.decode_tokens(None, None, [[k], [k + 100]], 2 + k % 3, [0])

    threads = [threading.Thread(target=client, args=(k,)) for k in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    scheduler.close()
    assert all(results[k] == [[k] * (2 + k % 3), [k + 100] * (2 + k % 3)] for k in range(12))
    assert sum(c["prompts"] for c in decode.calls) == 24
    assert len(decode.calls) < 12  # merged: jobs that queued while a call ran went into one call
    assert scheduler.stats["most_jobs_in_a_call"] > 1


def test_jobs_that_sample_differently_are_decoded_apart_and_lines_kept():
    decode = RecordingDecode(delay=0.2)
    scheduler = DecodeScheduler(None, None, decode=decode)
    blocker = threading.Thread(target=scheduler.decode_tokens, args=(None, None, [[9]], 1, [0]))
    blocker.start()
    time.sleep(0.05)  # the worker is busy: the next three queue up together
    jobs = [dict(sample=False, lines=[2]), dict(sample=False), dict(sample=True, temperature=0.7)]
    threads = [
        threading.Thread(target=scheduler.decode_tokens, args=(None, None, [[k]], 1, [0]), kwargs=job)
        for k, job in enumerate(jobs)
    ]
    for t in threads:
        t.start()
    for t in threads + [blocker]:
        t.join()
    scheduler.close()
    greedy = [c for c in decode.calls[1:] if not c["sample"]]
    assert len(decode.calls) == 3 and len(greedy) == 1
    assert greedy[0]["lines"] == [2, NO_LINE_LIMIT]


def test_a_failing_decode_reaches_every_caller_and_the_worker_lives_on():
    def broken(*args):
        raise RuntimeError("out of memory")

    scheduler = DecodeScheduler(None, None, decode=broken)
    with pytest.raises(RuntimeError, match="out of memory"):
        scheduler.decode_tokens(None, None, [[1]], 2, [0])
    scheduler._decode = RecordingDecode(delay=0)
    assert scheduler.decode_tokens(None, None, [[4]], 2, [0]) == [[4, 4]]
    scheduler.close()
