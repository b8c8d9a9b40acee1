"""A rank that fails must stop the others within a bounded time: ``python faults.py CASE``.

- raise: rank 1 raises while rank 0 waits in an all_reduce (the group's timeout is long: the excepthook's
  MPI_Abort stops rank 0, not the timeout)
- hang: rank 1 sleeps while rank 0 waits in an all_reduce with a 3 s timeout
- exit: rank 1 returns after one collective, rank 0 runs two (the exit check names both)
"""
import sys
import time

from common import start

import tracegrad as tg
import tracegrad.distributed as dist


def main():
    case = sys.argv[1]
    r, _ = start(timeout_s=3.0 if case == "hang" else 120.0)
    dist.all_reduce(tg.ones(4))
    if case == "raise":
        if r == 1:
            time.sleep(0.5)  # rank 0 is waiting in its all_reduce by now
            raise ValueError("boom on rank 1")
        dist.all_reduce(tg.ones(4))
    elif case == "hang":
        if r == 1:
            time.sleep(60)
        dist.all_reduce(tg.ones(4))
    elif case == "exit":
        if r == 0:
            dist.all_reduce(tg.ones(4))
    print(f"rank {r} finished", flush=True)


if __name__ == "__main__":
    main()
