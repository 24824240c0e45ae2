"""Process memory: the peak RSS figures of the report, and giving freed heap back to the system.

PyTorch's CPU tensors come from glibc malloc. Tensors of many different sizes (micro-batches and
eval batches of varying length, the 262k-wide loss chunks) leave the heap fragmented, and freed
memory stays mapped: on the embedded model the process held about 2 GB more after each epoch than
its live data (near 2.5 GB). `release()` after each optimizer step and each stage hands the free
pages back; `trim_if_above()` after each micro-batch and generation batch does so once the process
is large. `benchmarks/train_memory.py` measures both against no trimming: 4.41 against 4.80 GB
peak, at no measurable cost in speed. Measured and not used: one malloc arena
(MALLOC_ARENA_MAX=1: holds as much as no trimming) and forcing every large tensor through mmap
(MALLOC_MMAP_THRESHOLD_: saves as much memory, costs 30 % of training speed in page faults).

Not heap, and not given back by a trim: bf16 matmuls on CPU keep about 0.9 MB of kernel state per
distinct shape for the life of the process (fp32 ones do not; `ONEDNN_PRIMITIVE_CACHE_CAPACITY=0`
halves it but does not stop it). Free batch lengths make every micro-batch a new set of shapes,
so training pads lengths to a multiple of `pad_to_multiple_of` (16) to bound them.
"""

from __future__ import annotations

import ctypes
import gc
import resource
import sys

_libc = None


def release(collect: bool = True) -> None:
    """Collect garbage (unless `collect` is false), then return the heap's free pages to the
    system (glibc only)."""
    global _libc
    if collect:
        gc.collect()
    if not sys.platform.startswith("linux"):
        return
    if _libc is None:
        try:
            _libc = ctypes.CDLL("libc.so.6")
            _libc.malloc_trim  # noqa: B018 - not glibc (e.g. musl): no trim
        except (OSError, AttributeError):
            _libc = False
    if _libc:
        _libc.malloc_trim(0)


TRIM_ABOVE_MB = 4096
"""`trim_if_above` gives the heap back only when the process holds more than this (a trim costs
the page faults of refilling the heap; training sets its own line, `heap_trim_above_gb`)."""


def trim_if_above(limit_mb: float = TRIM_ABOVE_MB) -> None:
    """Return free heap pages (no garbage collection) when resident memory exceeds `limit_mb`."""
    if rss_mb() > limit_mb:
        release(collect=False)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def rss_mb() -> float:
    """Resident memory of this process now, in MB (Linux; the peak elsewhere)."""
    try:
        with open("/proc/self/status") as status:
            return round(next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024, 1)
    except (OSError, StopIteration):
        return peak_rss_mb()
