"""Timing shared by the benchmark scripts: the median of individually timed calls, after a warm-up."""
import statistics
import time


def bench(f, n: int, warm: int) -> float:
    """Median microseconds per call of f() over n calls, after `warm` untimed calls."""
    for _ in range(warm):
        f()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e6
