"""The MPI process group: nonblocking collectives on numpy arrays, each checked across ranks and bounded in time.

This is the only module that imports mpi4py (when a group is created, never at import). The ranks are MPI's
``COMM_WORLD``; the group works on two duplicates of it, one for the data, one for the checks:

- **Fingerprints.** Every collective gets a sequence number. Before its data moves, each rank contributes a
  fingerprint (sequence number, kind, reduce op, root, dtype, shape) to a small all-gather on the check
  communicator, and the data collective starts only if every rank's fingerprint is the same. Ranks whose programs
  disagree (other shapes, another collective, one more or one fewer) get `DistError` naming what each rank runs,
  instead of MPI's undefined behaviour (a hang or garbage). The check and the data use separate communicators, and
  data collectives start in sequence order, so every rank starts them in the same order (MPI's rule).
- **Deadlines.** The fingerprint exchange is the rendezvous: every rank must reach it within the group's timeout
  (`init_process_group(timeout=...)`); waiting polls the requests and raises `DistBackendError` past the deadline,
  so a rank that hangs or stopped makes the others fail with a message instead of hanging. Once every rank is
  in the collective, a collective waited for at once (``async_op=False``, and every one in a compiled graph) moves
  its data with MPI's blocking call, the fastest; a nonblocking one (``async_op=True``) stays polled against the
  deadline. (A rank that dies inside a data transfer makes mpirun stop the job.)
- **Progress.** `Work.wait()` and `progress()` drive MPI (Open MPI moves nonblocking collectives forward only
  inside MPI calls); DistributedDataParallel calls `progress()` from its gradient hooks, so a bucket's average
  moves while backward computes the next bucket's gradients.
"""
from __future__ import annotations

import collections
import time
import zlib

import numpy as np

from .. import dtypes

# what a fingerprint holds, in order: 7 fields, then up to 9 sizes (a longer shape ends with a hash of the rest)
_FP_LEN = 16
_KINDS = ("all_reduce", "broadcast", "all_gather", "reduce_scatter", "barrier", "all_gather_object",
          "broadcast_object", "tier switch", "end of the program (destroy_process_group or exit)")
END = _KINDS[-1]
_DTYPES = [d.name for d in dtypes.ALL]
_OPS = ("SUM", "AVG", "PRODUCT", "MIN", "MAX", "BAND", "BOR", "BXOR")  # PyTorch's ReduceOp values 0..7
# NOTE: how a rank waits. MPI moves a nonblocking collective only while every rank involved calls into MPI: a rank
# that sleeps between polls delays the others by up to its sleep; one that spins takes a core its peer may need, and
# burns it through long waits (the other ranks evaluating, checkpointing). So a rank spins for the first
# milliseconds (where peers usually arrive), then sleeps between polls, longer as the wait goes on (up to 1 ms).
# (Measured on the shared 2-core machine, 2 ranks: spinning, yielding and sleeping were within its noise.)
_SPIN_FOR = 0.002  # seconds of spinning before sleeping between polls


class DistError(RuntimeError):
    """An error of the distributed package (PyTorch's ``torch.distributed.DistError``)."""

    __module__ = "tracegrad.distributed"
    user_facing = True  # raised through an op's forward as it is (not rewritten as a shape error of the op)


class DistBackendError(DistError):
    """The backend failed: a collective timed out, or the group is unusable after such a failure."""

    __module__ = "tracegrad.distributed"


class Work:
    """A collective under way, as PyTorch's ``Work``: `async_op=True` returns it; `wait()` blocks until it is done.

    It goes through stages: its fingerprint is being compared, then its data moves (one MPI request per stage;
    gathering objects takes two), then `finish` runs (averaging, copying into the tensors it writes).
    """

    def __init__(self, group, seq: int, kind: str, what: str, stages: list, finish):
        self.group, self.seq, self.kind, self.what = group, seq, kind, what
        self._stages = collections.deque(stages)
        self._finish = finish
        self._request = None
        self._checked = False
        self._done = False
        self._error = None  # the mismatch its check found (raised by whoever noticed it first, and by `wait`)
        self.deadline = time.monotonic() + group.timeout

    def describe(self) -> str:
        return f"{self.kind} #{self.seq}" + (f" ({self.what})" if self.what else "")

    def is_completed(self) -> bool:
        """Whether the collective has finished (drives MPI's progress once)."""
        if not self._done:
            self.group.progress()
        return self._done

    def is_success(self) -> bool:
        return self.is_completed()

    def wait(self, timeout=None) -> bool:
        """Block until the collective has finished; past the deadline (the group's timeout from when it started, or
        `timeout`, a timedelta or seconds, from now) raise `DistBackendError`."""
        if timeout is not None:
            seconds = timeout.total_seconds() if hasattr(timeout, "total_seconds") else float(timeout)
            self.deadline = time.monotonic() + seconds
        self.group.wait_for(self)
        return True

    def _advance(self) -> bool:
        """Start the next stage or finish; True once done."""
        if self._stages:
            self._request = self._stages.popleft()()
            return False
        self._request = None
        if self._finish is not None:
            self._finish()
        self._done = True
        return True


class ProcessGroupMPI:
    """The ranks of ``MPI.COMM_WORLD`` (what ``init_process_group(backend="mpi")`` creates)."""

    def __init__(self, timeout_seconds: float):
        from mpi4py import MPI  # initializes MPI (MPI_Init_thread) at the first import

        self.MPI = MPI
        self.comm = MPI.COMM_WORLD.Dup()   # the data collectives
        self.check = MPI.COMM_WORLD.Dup()  # the fingerprints
        self._rank, self._size = self.comm.Get_rank(), self.comm.Get_size()
        self.timeout = float(timeout_seconds)
        self.seq = 0
        self._queue: collections.deque = collections.deque()  # works in sequence order whose data hasn't started
        self._running: list = []  # works whose data is moving
        self.broken = None  # why the group can't be used any more (a timeout left requests in flight)
        self._ops = {"SUM": MPI.SUM, "AVG": MPI.SUM, "PRODUCT": MPI.PROD, "MIN": MPI.MIN, "MAX": MPI.MAX,
                     "BAND": MPI.BAND, "BOR": MPI.BOR, "BXOR": MPI.BXOR}
        # NOTE: MPI allows only logical reductions on C_BOOL: PyTorch's bool results are those of the logical op
        self._bool_ops = {"SUM": MPI.LOR, "MAX": MPI.LOR, "BOR": MPI.LOR, "PRODUCT": MPI.LAND, "MIN": MPI.LAND,
                          "BAND": MPI.LAND, "BXOR": MPI.LXOR}

    def rank(self) -> int:
        return self._rank

    def size(self) -> int:
        return self._size

    def abort(self, code: int = 1) -> None:
        """Stop every rank of the job (MPI_Abort: the launcher kills them all)."""
        self.MPI.COMM_WORLD.Abort(code)

    def free(self) -> None:
        for comm in (self.comm, self.check):
            try:
                comm.Free()
            except Exception:  # noqa: BLE001 - MPI may be finalized already at exit
                pass

    # ------------------------------------------------------------------ submitting, progress, waiting
    def submit(self, kind: str, what: str, stages: list, finish=None, *, op: str = "", root: int = -1,
               array=None) -> Work:
        """Start a collective: its fingerprint now, its `stages` (functions starting one MPI request each) once
        every rank's fingerprint matched and the collectives before it have started."""
        if self.broken is not None:
            raise DistBackendError(f"[rank {self._rank}] the process group can't be used any more: {self.broken}")
        self.seq += 1
        work = Work(self, self.seq, kind, what, stages, finish)
        fingerprint = np.zeros(_FP_LEN, np.int64)
        fingerprint[:5] = (self.seq, _KINDS.index(kind), _OPS.index(op) if op else -1, root,
                           _DTYPES.index(dtypes.from_numpy_dtype(array.dtype).name) if array is not None else -1)
        if array is not None:
            shape = array.shape
            fingerprint[5], fingerprint[6] = len(shape), array.size
            fingerprint[7:7 + min(len(shape), 9)] = shape[:9]
            if len(shape) > 9:
                fingerprint[-1] = zlib.crc32(repr(shape[8:]).encode())
        work.fingerprint = fingerprint
        work.fingerprints = np.empty((self._size, _FP_LEN), np.int64)
        work._request = self.check.Iallgather(fingerprint, work.fingerprints)
        self._queue.append(work)
        self.progress()
        return work

    def progress(self) -> None:
        """Move every collective under way forward (never blocks): compare fingerprints that arrived, start data
        collectives in order, finish those whose data arrived. Raises `DistError` when ranks disagree."""
        for work in list(self._running):
            while work._request.Test():  # its stage is done: start the next one, or finish
                if work._advance():
                    self._running.remove(work)
                    break
        while self._queue and not self._stages_pending():
            work = self._queue[0]
            if not work._request.Test():
                break
            self._queue.popleft()
            try:
                self._verify(work)
            except DistError as e:
                work._error, work._done = e, True
                raise
            work._request = None
            work._advance()
            if work._done:
                continue
            self._running.append(work)

    def _stages_pending(self) -> bool:
        """Whether a work that is moving has stages still to start (then no later work may start its data)."""
        return any(w._stages for w in self._running)

    def wait_for(self, work: Work) -> None:
        start = time.monotonic()
        while not work._done:
            self.progress()
            if work._done:
                break
            now = time.monotonic()
            if now > work.deadline:
                stage = "waiting for the other ranks to reach it" if not work._checked else "moving its data"
                self.broken = f"{work.describe()} timed out"
                raise DistBackendError(
                    f"[rank {self._rank}] {work.describe()} timed out after {self.timeout:g} s while {stage}: another "
                    f"rank stopped, hangs, or runs fewer collectives than this one. (The timeout is "
                    f"init_process_group(timeout=...); the process group can't be used after this error.)")
            waited = now - start
            if waited > _SPIN_FOR:
                time.sleep(min(1e-3, waited / 100))
        if work._error is not None:
            raise work._error

    def _verify(self, work: Work) -> None:
        work._checked = True
        rows = work.fingerprints
        if (rows == rows[0]).all():
            return
        mine = rows[self._rank]
        other = next(r for r in range(self._size) if not (rows[r] == mine).all())
        raise DistError(
            f"Detected mismatch between collectives on ranks. Rank {self._rank} is running collective: "
            f"{_describe(mine)}, but Rank {other} is running collective: {_describe(rows[other])}. The ranks' "
            f"programs differ (other shapes, another collective, or a different number of collectives: every rank "
            f"must run the same collectives in the same order). All ranks: "
            + "; ".join(f"rank {r}: {_describe(rows[r])}" for r in range(self._size)))

    # ------------------------------------------------------------------ the collectives, on numpy arrays
    def _stage(self, blocking: bool, call, start):
        """A data stage: the nonblocking `start()` (its request), or, for a collective waited for at once, the
        blocking `call()` (MPI's fastest algorithms; the fingerprint exchange before it is the rendezvous with a
        deadline: once it matched, every rank is in this collective)."""
        if not blocking:
            return start
        return lambda: (call(), self.MPI.REQUEST_NULL)[1]

    def all_reduce(self, array: np.ndarray, op: str, finish=None, kind: str = "all_reduce",
                   blocking: bool = False) -> Work:
        """Reduce `array` (C-contiguous, written in place) over the ranks."""
        MPI = self.MPI  # noqa: N806
        if array.dtype == np.bool_:
            if op not in self._bool_ops:
                raise ValueError(f"all_reduce: ReduceOp.{op} is not supported for bool tensors")
            mpi_op, buf = self._bool_ops[op], array
        else:
            mpi_op = self._ops[op]
            if op in ("BAND", "BOR", "BXOR") and array.dtype.kind == "f":
                raise ValueError(f"all_reduce: ReduceOp.{op} needs an integer or bool tensor, got {array.dtype}")
            # NOTE: MPI has no float16: the reduction runs in float32 (so it rounds once, at the end)
            buf = array.astype(np.float32) if array.dtype == np.float16 else array

        def finish_():
            if op == "AVG" and self._size > 1:
                if buf.dtype.kind == "f":
                    np.divide(buf, self._size, out=buf)
                else:
                    np.floor_divide(buf, self._size, out=buf)
            if buf is not array:
                array[...] = buf
            if finish is not None:
                finish()
        return self.submit(kind, _what(array, op=op),
                           [self._stage(blocking, lambda: self.comm.Allreduce(MPI.IN_PLACE, buf, mpi_op),
                                        lambda: self.comm.Iallreduce(MPI.IN_PLACE, buf, mpi_op))],
                           finish_, op=op, array=array)

    def broadcast(self, array: np.ndarray, src: int, finish=None, blocking: bool = False) -> Work:
        """Rank `src`'s `array` into every rank's (C-contiguous, written in place)."""
        buf = array.view(np.uint16) if array.dtype == np.float16 else array
        stage = self._stage(blocking, lambda: self.comm.Bcast(buf, root=src), lambda: self.comm.Ibcast(buf, root=src))
        return self.submit("broadcast", _what(array, src=src), [stage], finish, root=src, array=array)

    def all_gather(self, out: np.ndarray, array: np.ndarray, finish=None, blocking: bool = False) -> Work:
        """Every rank's `array` into `out` (shape ``(world size, *array.shape)``, C-contiguous)."""
        send, recv = (array.view(np.uint16), out.view(np.uint16)) if array.dtype == np.float16 else (array, out)
        stage = self._stage(blocking, lambda: self.comm.Allgather(send, recv), lambda: self.comm.Iallgather(send, recv))
        return self.submit("all_gather", _what(array), [stage], finish, array=array)

    def reduce_scatter(self, out: np.ndarray, array: np.ndarray, op: str, finish=None,
                       blocking: bool = False) -> Work:
        """Reduce `array` (shape ``(world size, *out.shape)``) over the ranks; rank r gets row r in `out`."""
        if array.dtype == np.bool_ or array.dtype == np.float16:
            raise ValueError(f"reduce_scatter: {array.dtype} tensors are not supported")
        mpi_op = self._ops[op]

        def finish_():
            if op == "AVG":
                if out.dtype.kind == "f":
                    np.divide(out, self._size, out=out)
                else:
                    np.floor_divide(out, self._size, out=out)
            if finish is not None:
                finish()
        return self.submit("reduce_scatter", _what(array, op=op),
                           [self._stage(blocking, lambda: self.comm.Reduce_scatter_block(array, out, mpi_op),
                                        lambda: self.comm.Ireduce_scatter_block(array, out, mpi_op))],
                           finish_, op=op, array=array)

    def barrier(self) -> Work:
        """Every rank reached it once the fingerprint exchange (an all-gather: it completes when all contributed)
        has: no data stage."""
        return self.submit("barrier", "", [])

    def all_gather_bytes(self, data: bytes, kind: str = "all_gather_object") -> tuple:
        """Every rank's `data` (of any length); returns ``(work, result)``: `result` holds the list once done."""
        send = np.frombuffer(data, np.uint8)
        sizes = np.zeros(self._size, np.int64)
        mine = np.array([send.size], np.int64)
        result: list = []
        state = {}

        def gather_sizes():
            return self.comm.Iallgather(mine, sizes)

        def gather_data():
            state["recv"] = recv = np.empty(int(sizes.sum()), np.uint8)
            return self.comm.Iallgatherv(send, [recv, sizes.astype(np.int32)])

        def finish():
            ends = np.cumsum(sizes)
            result.extend(state["recv"][e - n:e].tobytes() for e, n in zip(ends, sizes))
        return self.submit(kind, "", [gather_sizes, gather_data], finish), result

    def end(self) -> None:
        """The last exchange of the group: every rank must be at its end too. A rank still running collectives
        meets this one's end instead: both get `DistError` naming the collective that has no partner."""
        self.submit(END, "", []).wait()

    def tier_switch(self, done: bool) -> bool:
        """Whether every rank is ready to switch a compiled variant to native code (see `runtime/tiered.py`)."""
        flag = np.array([1 if done else 0], np.int32)
        self.all_reduce(flag, "MIN", kind="tier switch", blocking=True).wait()
        return bool(flag[0])


def _what(array, op: str = "", src: int | None = None) -> str:
    text = f"{dtypes.from_numpy_dtype(array.dtype).name}{list(array.shape)}"
    if op:
        text += f", op={op}"
    if src is not None:
        text += f", src={src}"
    return text


def _describe(row) -> str:
    seq, kind, op, root, dtype = (int(x) for x in row[:5])
    if _KINDS[kind] == END:
        return f"the end of the program (destroy_process_group or exit) after {seq - 1} collectives"
    text = f"{_KINDS[kind]} #{seq}"
    details = []
    if dtype >= 0:
        ndim = int(row[5])
        shape = [int(s) for s in row[7:7 + min(ndim, 9)]] + (["..."] if ndim > 9 else [])
        details.append(f"{_DTYPES[dtype]}{shape}")
    if op >= 0:
        details.append(f"op={_OPS[op]}")
    if root >= 0:
        details.append(f"src={root}")
    return text + (f" ({', '.join(details)})" if details else "")
