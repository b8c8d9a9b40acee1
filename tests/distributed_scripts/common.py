"""What the 2-rank scripts share: start the process group, record checks, report them to the test as JSON."""
import datetime
import json
import os
import sys

import tracegrad
import tracegrad._tensor
import tracegrad.distributed as dist

CHECKS = []


def start(timeout_s: float = 60.0):
    """Init the process group (a short timeout: a test must never hang), one BLAS thread, shape rules checked."""
    tracegrad.set_num_threads(1)
    tracegrad._tensor.CHECK_RULES = True  # every op (the collectives' registry ops too) checks its shape rule
    dist.init_process_group("mpi", timeout=datetime.timedelta(seconds=timeout_s))
    return dist.get_rank(), dist.get_world_size()


def check(name: str, ok, detail="") -> None:
    """A failed check stops the script (the excepthook then stops every rank): the test sees which, and why."""
    if not ok:
        raise AssertionError(f"[rank {dist.get_rank()}] {name}: {detail}")
    CHECKS.append(name)


def expect_error(name: str, fn, error, words) -> str:
    """`fn()` raises `error` with each of `words` in its message; returns the message."""
    try:
        fn()
    except error as e:
        msg = str(e)
        check(name, all(w in msg for w in words), f"message {msg!r} lacks one of {words}")
        return msg
    raise AssertionError(f"[rank {dist.get_rank()}] {name}: no {error.__name__} raised")


def report(**extra) -> None:
    """Each rank prints one line the test parses: RESULT {rank, checks, ...}."""
    line = json.dumps(dict(rank=dist.get_rank(), checks=CHECKS, **extra))
    sys.stdout.write(f"RESULT {line}\n")
    sys.stdout.flush()


def argv(k: int, default=None):
    return sys.argv[k] if len(sys.argv) > k else default


os.environ.setdefault("TRACEGRAD_VERIFY", "1")  # every compiler pass is verified, as in the suite
