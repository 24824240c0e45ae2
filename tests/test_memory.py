"""The memory helpers: resident-memory figures and the heap trim."""

import torch

from cefrtune import memory


def test_rss_figures_are_consistent():
    now, peak = memory.rss_mb(), memory.peak_rss_mb()
    assert 0 < now <= peak + 1


def test_release_gives_freed_heap_back():
    # A freed 64 MB block lifts glibc's dynamic mmap threshold, so the 256 kB tensors below come
    # from the heap; freeing them leaves ~1 GB of free pages mapped until the trim.
    torch.empty(64 * 1024 * 1024, dtype=torch.uint8).fill_(1)
    memory.release()  # start from a trimmed heap: free pages left by earlier tests would absorb the tensors below
    base = memory.rss_mb()
    keep = [torch.ones(64 * 1024) for _ in range(4000)]  # ~1 GB of 256 kB tensors
    assert memory.rss_mb() - base > 800
    del keep
    memory.release()
    assert memory.rss_mb() - base < 200


def test_trim_only_above_the_line(monkeypatch):
    calls = []
    monkeypatch.setattr(memory, "release", lambda collect=True: calls.append(collect))
    memory.trim_if_above(limit_mb=10**9)
    assert calls == []
    memory.trim_if_above(limit_mb=0)
    assert calls == [False]  # a trim without garbage collection
