"""`set_num_threads` and `get_num_threads`: the threads tracegrad's computations use.

tracegrad runs on numpy, whose matrix products are BLAS calls, and on numba kernels, which call scipy's BLAS
and run their large elementwise loops on numba's threads. ``set_num_threads(n)`` pins all of them: every BLAS
library loaded in this process (through threadpoolctl, for every thread of the process) and, if numba is
imported, numba's thread count (numba keeps that one per thread: it holds for the calling thread).

>>> import tracegrad as torch
>>> before = torch.get_num_threads()
>>> torch.set_num_threads(1)
>>> torch.get_num_threads()
1
>>> torch.set_num_threads(before)
"""
from __future__ import annotations

import os
import sys
import threading


def set_num_threads(n: int) -> None:
    """Use `n` threads in this process's BLAS libraries and (if numba is imported) in numba's parallel kernels
    run by this thread, as ``torch.set_num_threads``."""
    if not isinstance(n, int) or isinstance(n, bool):
        raise RuntimeError(f"set_num_threads expects an int, but got {type(n).__name__}")
    if n <= 0:
        raise RuntimeError("set_num_threads expects a positive integer")
    import scipy.linalg  # noqa: F401 - loads scipy's BLAS (numba's kernels call it), so that the limit covers it
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=n, user_api="blas")
    global _requested
    _requested = n
    limit_numba_threads()


_requested: int | None = None  # the count last given to `set_num_threads`


def limit_numba_threads() -> None:
    """Apply `set_num_threads`'s count to numba's parallel kernels run by the calling thread, if numba is imported.

    # NOTE: called again by the native runtime before a program's first run: numba is often imported after
    # `set_num_threads` (by the first native compile), and numba keeps the count per thread. Without it, a kernel's
    # parallel loop ran on every core and its threads, spinning after the loop, slowed the BLAS calls that followed
    # (an LSTM step 25 -> 38 ms)."""
    numba = sys.modules.get("numba")
    if numba is not None and _requested is not None:
        # NOTE: numba launches at most NUMBA_NUM_THREADS threads and only masks some of them out
        numba.set_num_threads(min(_requested, numba.config.NUMBA_NUM_THREADS))
        _applied.count = _requested


_applied = threading.local()  # the count this thread last gave numba


def numba_threads_limited() -> bool:
    """Whether numba's count for the calling thread is `set_num_threads`'s (a cheap check for every native run)."""
    return getattr(_applied, "count", None) == _requested


def get_num_threads() -> int:
    """The number of threads the BLAS libraries of this process use (the largest, should they differ)."""
    from threadpoolctl import threadpool_info

    counts = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    return max(counts) if counts else (os.cpu_count() or 1)
