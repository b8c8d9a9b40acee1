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
    numba = sys.modules.get("numba")
    if numba is not None:
        # NOTE: numba launches at most NUMBA_NUM_THREADS threads and only masks some of them out
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))


def get_num_threads() -> int:
    """The number of threads the BLAS libraries of this process use (the largest, should they differ)."""
    from threadpoolctl import threadpool_info

    counts = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    return max(counts) if counts else (os.cpu_count() or 1)
