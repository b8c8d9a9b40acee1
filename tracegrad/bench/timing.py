"""Timing shared by the benchmark suites: the median of individually timed calls, after a warm-up, and the
worker protocol that times each framework or mode in a fresh process of its own."""
import json
import os
import statistics
import subprocess
import sys
import time


def times(f, n: int, warm: int) -> list:
    """Seconds per call of f() over n calls, after `warm` untimed calls."""
    for _ in range(warm):
        f()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        f()
        out.append(time.perf_counter() - t0)
    return out


def bench(f, n: int, warm: int) -> float:
    """Median microseconds per call of f() over n calls, after `warm` untimed calls."""
    return statistics.median(times(f, n, warm)) * 1e6


def ms_cell(r: dict | None, width: int = 22) -> str:
    """A table cell: the median of ``r["times"]`` (seconds) in ms, and in brackets the range of the medians of 5
    blocks of consecutive calls (how much the median moved while the machine's load changed); "-" for None."""
    if r is None:
        return f"{'-':>{width}}"
    ts = r["times"]
    k = max(1, len(ts) // 5)
    blocks = [statistics.median(ts[i:i + k]) for i in range(0, len(ts) - k + 1, k)]
    cell = f"{statistics.median(ts) * 1e3:.2f} ({min(blocks) * 1e3:.1f}-{max(blocks) * 1e3:.1f})"
    return f"{cell:>{width}}"


def in_worker(module: str, *args, env: dict | None = None):
    """Run ``python -m module --worker *args`` in a fresh process; return what it printed as JSON on its last line."""
    out = subprocess.run([sys.executable, "-m", module, "--worker", *map(str, args)],
                         env=dict(os.environ, **(env or {})), capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def worker_args() -> list | None:
    """The arguments after ``--worker`` when this process is a worker, else None."""
    return sys.argv[2:] if sys.argv[1:2] == ["--worker"] else None


def send(result) -> None:
    """A worker's answer to `in_worker`."""
    print(json.dumps(result))
