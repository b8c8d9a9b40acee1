"""The process group API with PyTorch's names: `init_process_group`, ranks, and collectives on tensors, in place.

Outside a traced function a collective runs on the tensor's own array (nonblocking with ``async_op=True``: the
returned `Work` says when it is done). Inside one (``@tracegrad.compile``) it is recorded as a graph node (the
registry ops of `tracegrad.distributed.ops`) whose result is written back into the tensor, so the compiled graph
communicates at every call.

Faults: `init_process_group` installs an excepthook that stops every rank (MPI_Abort) when one raises an
exception nobody catches, and an exit handler that checks every rank ran the same number of collectives; every
collective checks that all ranks run the same one (`process_group.py`) and has a deadline (``timeout=``).
"""
from __future__ import annotations

import atexit
import datetime
import enum
import importlib.util
import pickle
import sys

import numpy as np

from .. import _tracing
from .._tensor import Tensor, apply
from ..autograd.grad_mode import no_grad
from . import ops
from .process_group import DistBackendError, DistError

# PyTorch's default for its CPU backends (torch.distributed.constants.default_pg_timeout)
default_pg_timeout = datetime.timedelta(minutes=30)


class ReduceOp(enum.Enum):
    """How `all_reduce` and `reduce_scatter` combine the ranks' values (PyTorch's ``ReduceOp`` and its numbers).

    AVG is SUM divided by the world size (floor division for integers); BAND, BOR and BXOR are for integer and
    bool tensors.
    """

    SUM = 0
    AVG = 1
    PRODUCT = 2
    MIN = 3
    MAX = 4
    BAND = 5
    BOR = 6
    BXOR = 7


class _State:
    group = None            # the default process group (a ProcessGroupMPI) once initialized
    previous_hook = None    # sys.excepthook before ours
    exit_registered = False


_STATE = _State()


class _GroupNamespace:
    """``dist.group.WORLD``: the default group (None before `init_process_group`), as in PyTorch."""

    @property
    def WORLD(self):
        return _STATE.group


group = _GroupNamespace()
GroupMember = group


# ---------------------------------------------------------------------------------------------- the default group
def is_available() -> bool:
    """Whether the distributed package is there (always; the MPI backend itself: `is_mpi_available`)."""
    return True


def is_mpi_available() -> bool:
    """Whether mpi4py (and so an MPI library) is installed: ``pip install 'tracegrad[mpi]'``."""
    return importlib.util.find_spec("mpi4py") is not None


def is_initialized() -> bool:
    """Whether the default process group has been initialized."""
    return _STATE.group is not None


def _default_group():
    if _STATE.group is None:
        raise ValueError("Default process group has not been initialized, please make sure to call "
                         "init_process_group.")
    return _STATE.group


def _group(g):
    pg = _default_group()
    if g is not None and g is not pg:
        raise ValueError("tracegrad.distributed has one process group, the default one (every rank of the job): "
                         "pass group=None")
    return pg


def init_process_group(backend=None, init_method=None, timeout=None, world_size: int = -1, rank: int = -1,
                       store=None, group_name: str = "", pg_options=None, device_id=None) -> None:
    """Join the job's ranks: those of ``mpirun`` (``python -m tracegrad.distributed.run -n 2 script.py``), or a
    world of one when the script runs on its own.

    The backend is MPI (``"mpi"``); ``"gloo"``, PyTorch's CPU backend, is accepted so that PyTorch scripts run
    unchanged, and runs on MPI too. `world_size` and `rank` may be given (they must be MPI's); `init_method` and
    `store` are not needed (mpirun starts the ranks and tells each its rank). `timeout` (a timedelta, 30 minutes
    by default) bounds every collective: past it, the collective raises `DistBackendError`.
    """
    if _STATE.group is not None:
        raise ValueError("trying to initialize the default process group twice!")
    if backend is not None and str(backend).lower() not in ("mpi", "gloo"):
        raise ValueError(f"tracegrad.distributed runs on MPI: backend must be 'mpi' (or 'gloo', which runs on MPI "
                         f"too), got {backend!r}")
    if init_method is not None and not str(init_method).startswith("env://"):
        raise ValueError(f"init_method={init_method!r}: with MPI the ranks find each other through mpirun; leave "
                         f"init_method unset")
    if timeout is not None and not isinstance(timeout, datetime.timedelta):
        raise TypeError(f"Expected timeout argument to be of type datetime.timedelta, got {type(timeout).__name__}")
    if not is_mpi_available():
        raise RuntimeError("Distributed package doesn't have MPI built in: the mpi backend needs mpi4py and an MPI "
                           "library, pip install 'tracegrad[mpi]' (mpi4py and Open MPI)")
    seconds = (timeout if timeout is not None else default_pg_timeout).total_seconds()
    if seconds <= 0:
        raise ValueError(f"timeout must be positive, got {timeout!r}")
    from .process_group import ProcessGroupMPI
    pg = ProcessGroupMPI(seconds)
    for name, given, actual in (("world_size", world_size, pg.size()), ("rank", rank, pg.rank())):
        if given not in (-1, None) and given != actual:
            pg.free()
            raise ValueError(f"init_process_group: {name}={given}, but MPI says {actual} (mpirun decides the ranks: "
                             f"leave {name} unset)")
    _STATE.group = pg
    if sys.excepthook is not _excepthook:
        _STATE.previous_hook = sys.excepthook
        sys.excepthook = _excepthook
    if not _STATE.exit_registered:  # NOTE: after mpi4py's own handler, so it runs before MPI is finalized
        atexit.register(_at_exit)
        _STATE.exit_registered = True
    from ..runtime import tiered
    tiered.SWITCH_TOGETHER = _switch_together


def destroy_process_group(group=None) -> None:
    """Leave the job: checks that every rank got here after the same collectives (a rank still running one
    gets `DistError`, and so does this one), then frees the group. `init_process_group` may be called again."""
    pg = _group(group)
    try:
        pg.end()
    finally:
        pg.free()
        _STATE.group = None
        from ..runtime import tiered
        tiered.SWITCH_TOGETHER = None


def get_rank(group=None) -> int:
    """This process's rank, 0 to world size - 1."""
    return _group(group).rank()


def get_world_size(group=None) -> int:
    """How many ranks the job has."""
    return _group(group).size()


def get_backend(group=None) -> str:
    _group(group)
    return "mpi"


def _excepthook(kind, value, tb) -> None:
    """An exception nobody caught: print it as usual, then stop every rank, so that none waits forever in a
    collective for this one."""
    (_STATE.previous_hook or sys.__excepthook__)(kind, value, tb)
    pg = _STATE.group
    if pg is not None and pg.size() > 1:
        sys.stderr.write(f"tracegrad.distributed: rank {pg.rank()} of {pg.size()} raised {kind.__name__}: stopping "
                         f"every rank (MPI_Abort)\n")
        sys.stderr.flush()
        sys.stdout.flush()
        pg.abort(1)


def _at_exit() -> None:
    pg = _STATE.group
    if pg is None:
        return
    try:
        pg.end()
    except DistError as e:
        sys.stdout.flush()
        sys.stderr.write(f"tracegrad.distributed: rank {pg.rank()} at exit: {e}\n")
        sys.stderr.flush()
        pg.abort(1)
    _STATE.group = None


def _switch_together(done: bool, graph) -> bool:
    """`runtime.tiered.SWITCH_TOGETHER`: ranks switch a graph with collectives to native code at the same call."""
    pg = _STATE.group
    if pg is None or pg.size() == 1 or not ops.has_collectives(graph):
        return done
    return pg.tier_switch(done)


# ---------------------------------------------------------------------------------------------- helpers
class _Done:
    """The `Work` of a collective recorded in a traced function: it ran while tracing (and runs in the graph)."""

    def wait(self, timeout=None) -> bool:
        return True

    def is_completed(self) -> bool:
        return True

    is_success = is_completed


def _check_tensor(t, name: str) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"Invalid function argument. Expected parameter `{name}` of type Tensor but got {type(t)} "
                        f"instead.")


def _check_list(ts, name: str) -> None:
    if not isinstance(ts, (list, tuple)) or not all(isinstance(t, Tensor) for t in ts):
        raise TypeError(f"Invalid function argument. Expected parameter `{name}` of type List[Tensor] but got "
                        f"{type(ts)} instead.")


def _reduce_op(op) -> ReduceOp:
    if not isinstance(op, ReduceOp):
        raise ValueError(f"Invalid reduce op {op!r}: use tracegrad.distributed.ReduceOp (SUM, AVG, PRODUCT, MIN, "
                         f"MAX, BAND, BOR, BXOR)")
    return op


def _bump(t: Tensor) -> None:
    t._version_box()[0] += 1


def _writable(t: Tensor, what: str) -> None:
    if not t._data.flags.writeable:
        raise RuntimeError(f"{what}: the tensor is read-only (an expanded tensor, several elements of which share "
                           f"one memory location): clone() it first")


def _inplace_buffer(t: Tensor, what: str):
    """A C-contiguous array the collective writes, and the function that finishes the write into `t`."""
    _writable(t, what)
    a = t._data
    if a.flags.c_contiguous:
        return a, lambda: _bump(t)
    buf = np.ascontiguousarray(a)

    def finish():
        t._data[...] = buf
        _bump(t)
    return buf, finish


def _write(target: Tensor, value: Tensor) -> None:
    """While tracing: `value` (a collective's result) becomes the target's contents (a write in the graph)."""
    with no_grad():
        target.copy_(value.reshape(target.shape))


def _run(work, async_op: bool):
    if async_op:
        return work
    work.wait()
    return None


def _traced(async_op: bool):
    return _Done() if async_op else None


def _check_src(pg, src, group_src, what: str) -> int:
    src = src if src is not None else group_src
    if src is None:
        raise ValueError(f"{what}: either src or group_src must be set")
    if not 0 <= src < pg.size():
        raise ValueError(f"{what}: src={src} is not a rank of this group (world size {pg.size()})")
    return src


# ---------------------------------------------------------------------------------------------- collectives
def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op: bool = False):
    """Combine `tensor` over every rank with `op`, in place: afterwards every rank holds the result.

    Returns None, or with ``async_op=True`` a `Work` (the tensor holds the result once ``wait()`` returned).
    """
    _check_tensor(tensor, "tensor")
    pg = _group(group)
    op = _reduce_op(op)
    if _tracing.TRACER is not None:
        _write(tensor, apply(ops.ALL_REDUCE, tensor, reduce_op=op.name))
        return _traced(async_op)
    buf, finish = _inplace_buffer(tensor, "all_reduce")
    return _run(pg.all_reduce(buf, op.name, finish, blocking=not async_op), async_op)


def broadcast(tensor, src=None, group=None, async_op: bool = False, group_src=None):
    """Rank `src`'s `tensor` into every rank's `tensor`, in place."""
    _check_tensor(tensor, "tensor")
    pg = _group(group)
    src = _check_src(pg, src, group_src, "broadcast")
    if _tracing.TRACER is not None:
        _write(tensor, apply(ops.BROADCAST, tensor, src=src))
        return _traced(async_op)
    buf, finish = _inplace_buffer(tensor, "broadcast")
    return _run(pg.broadcast(buf, src, finish, blocking=not async_op), async_op)


def _check_per_rank(fn: str, name: str, tensors, n: int, like, what: str) -> None:
    """One tensor per rank, each of `like`'s shape and dtype, or a ValueError naming the entry."""
    if len(tensors) != n:
        raise ValueError(f"{fn}: {name} has {len(tensors)} tensors; it needs one per rank ({n})")
    for i, t in enumerate(tensors):
        if t.shape != like.shape or t.dtype is not like.dtype:
            raise ValueError(f"{fn}: {name}[{i}] is {t.dtype} {list(t.shape)}, the {what} is {like.dtype} "
                             f"{list(like.shape)}: every entry must have the {what}'s shape and dtype")


def all_gather(tensor_list, tensor, group=None, async_op: bool = False):
    """Every rank's `tensor` into `tensor_list` (one tensor of the same shape and dtype per rank, in rank order)."""
    _check_list(tensor_list, "tensor_list")
    _check_tensor(tensor, "tensor")
    pg = _group(group)
    n = pg.size()
    _check_per_rank("all_gather", "tensor_list", tensor_list, n, tensor, "input")
    for t in tensor_list:
        _writable(t, "all_gather")
    if _tracing.TRACER is not None:
        res = apply(ops.ALL_GATHER, tensor, world_size=n)
        for i, t in enumerate(tensor_list):
            _write(t, res[i])
        return _traced(async_op)
    out = np.empty((n,) + tensor._data.shape, tensor._data.dtype)

    def finish():
        for t, row in zip(tensor_list, out):
            t._data[...] = row
            _bump(t)
    return _run(pg.all_gather(out, np.ascontiguousarray(tensor._data), finish, blocking=not async_op), async_op)


def all_gather_into_tensor(output_tensor, input_tensor, group=None, async_op: bool = False):
    """Every rank's `input_tensor`, in rank order, into `output_tensor` (world size times as many elements:
    concatenated along dim 0, or stacked)."""
    _check_tensor(output_tensor, "output_tensor")
    _check_tensor(input_tensor, "input_tensor")
    pg = _group(group)
    n = pg.size()
    if output_tensor.numel() != n * input_tensor.numel() or output_tensor.dtype is not input_tensor.dtype:
        raise ValueError(f"all_gather_into_tensor: output tensor size must be equal to world_size ({n}) times input "
                         f"tensor size, with its dtype: got {output_tensor.dtype} {list(output_tensor.shape)} for "
                         f"{input_tensor.dtype} {list(input_tensor.shape)}")
    _writable(output_tensor, "all_gather_into_tensor")
    if _tracing.TRACER is not None:
        _write(output_tensor, apply(ops.ALL_GATHER, input_tensor, world_size=n))
        return _traced(async_op)
    buf, finish = _inplace_buffer(output_tensor, "all_gather_into_tensor")
    out = buf.reshape((n,) + input_tensor._data.shape)
    return _run(pg.all_gather(out, np.ascontiguousarray(input_tensor._data), finish, blocking=not async_op),
                async_op)


def reduce_scatter(output, input_list, op=ReduceOp.SUM, group=None, async_op: bool = False):
    """Combine the ranks' `input_list`s entry by entry with `op`; rank r gets entry r of the result in `output`."""
    _check_tensor(output, "output")
    _check_list(input_list, "input_list")
    pg = _group(group)
    n = pg.size()
    op = _reduce_op(op)
    _check_per_rank("reduce_scatter", "input_list", input_list, n, output, "output")
    if _tracing.TRACER is not None:
        from ..ops.functions import stack
        _write(output, apply(ops.REDUCE_SCATTER, stack(list(input_list)), reduce_op=op.name, world_size=n))
        return _traced(async_op)
    buf, finish = _inplace_buffer(output, "reduce_scatter")
    send = np.stack([t._data for t in input_list])
    return _run(pg.reduce_scatter(buf, send, op.name, finish, blocking=not async_op), async_op)


def reduce_scatter_tensor(output, input, op=ReduceOp.SUM, group=None, async_op: bool = False):  # noqa: A002
    """`reduce_scatter` with the inputs as one tensor of world size times `output`'s elements (rank r's share
    is the r-th block along dim 0)."""
    _check_tensor(output, "output")
    _check_tensor(input, "input")
    pg = _group(group)
    n = pg.size()
    op = _reduce_op(op)
    if input.numel() != n * output.numel() or output.dtype is not input.dtype:
        raise ValueError(f"reduce_scatter_tensor: input tensor size must be equal to world_size ({n}) times output "
                         f"tensor size, with its dtype: got {input.dtype} {list(input.shape)} for {output.dtype} "
                         f"{list(output.shape)}")
    if _tracing.TRACER is not None:
        _write(output, apply(ops.REDUCE_SCATTER, input.reshape((n,) + tuple(output.shape)), reduce_op=op.name,
                             world_size=n))
        return _traced(async_op)
    buf, finish = _inplace_buffer(output, "reduce_scatter_tensor")
    send = np.ascontiguousarray(input._data).reshape((n,) + buf.shape)
    return _run(pg.reduce_scatter(buf, send, op.name, finish, blocking=not async_op), async_op)


def barrier(group=None, async_op: bool = False, device_ids=None, timeout=None):
    """Wait until every rank has reached this barrier (`timeout`, a timedelta, overrides the group's)."""
    pg = _group(group)
    if _tracing.TRACER is not None:
        apply(ops.BARRIER)
        return _traced(async_op)
    work = pg.barrier()
    if async_op:
        return work
    work.wait(timeout)
    return None


def all_gather_object(object_list, obj, group=None) -> None:
    """Every rank's picklable `obj` into `object_list` (a list with one slot per rank). Like PyTorch's, it
    unpickles what the other ranks sent: use it inside one job only. In a compiled function it runs while
    tracing only (a Python side effect)."""
    pg = _group(group)
    if len(object_list) != pg.size():
        raise ValueError(f"all_gather_object: object_list has {len(object_list)} slots; it needs one per rank "
                         f"({pg.size()})")
    work, result = pg.all_gather_bytes(pickle.dumps(obj))
    work.wait()
    object_list[:] = [pickle.loads(b) for b in result]  # noqa: S301 - the job's own ranks, as PyTorch's


def broadcast_object_list(object_list, src=None, group=None, device=None, group_src=None) -> None:
    """Rank `src`'s list of picklable objects into every rank's `object_list` (same length everywhere)."""
    pg = _group(group)
    src = _check_src(pg, src, group_src, "broadcast_object_list")
    work, result = pg.all_gather_bytes(pickle.dumps(list(object_list) if pg.rank() == src else None),
                                       kind="broadcast_object")
    work.wait()
    objects = pickle.loads(result[src])  # noqa: S301 - the job's own ranks, as PyTorch's
    if len(objects) != len(object_list):
        raise ValueError(f"broadcast_object_list: rank {src} sent {len(objects)} objects, this rank's list has "
                         f"{len(object_list)} slots")
    object_list[:] = objects


__all__ = ["DistBackendError", "DistError", "ReduceOp", "all_gather", "all_gather_into_tensor", "all_gather_object",
           "all_reduce", "barrier", "broadcast", "broadcast_object_list", "default_pg_timeout",
           "destroy_process_group", "get_backend", "get_rank", "get_world_size", "group", "GroupMember",
           "init_process_group", "is_available", "is_initialized", "is_mpi_available", "reduce_scatter",
           "reduce_scatter_tensor"]
