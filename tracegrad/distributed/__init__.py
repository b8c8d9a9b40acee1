"""Data parallelism across processes and machines, on MPI, with ``torch.distributed``'s names.

Launch the ranks with ``python -m tracegrad.distributed.run -n 2 script.py`` (a thin wrapper over the venv's
``mpirun``); in the script, `init_process_group` joins them, and `tracegrad.nn.parallel.DistributedDataParallel`
averages the gradients. The MPI backend needs the optional extra (``pip install 'tracegrad[mpi]'``: mpi4py and
Open MPI); importing this package never imports mpi4py.

- `process_group.py`: the MPI process group (nonblocking collectives on arrays, fingerprints, deadlines)
- `collectives.py`: `init_process_group`, `get_rank`, `all_reduce`, ... on tensors, eager and traced
- `ops.py`: the collectives as registry ops (effectful: a compiled step's all-reduce is a node of its graph)
- `run.py`: the launcher

>>> import tracegrad.distributed as dist
>>> dist.is_available(), dist.is_initialized()
(True, False)
>>> dist.ReduceOp.AVG
<ReduceOp.AVG: 1>
>>> dist.get_rank()
Traceback (most recent call last):
    ...
ValueError: Default process group has not been initialized, please make sure to call init_process_group.
"""
from . import ops
from .collectives import (
    GroupMember,
    ReduceOp,
    all_gather,
    all_gather_into_tensor,
    all_gather_object,
    all_reduce,
    barrier,
    broadcast,
    broadcast_object_list,
    default_pg_timeout,
    destroy_process_group,
    get_backend,
    get_rank,
    get_world_size,
    group,
    init_process_group,
    is_available,
    is_initialized,
    is_mpi_available,
    reduce_scatter,
    reduce_scatter_tensor,
)
from .process_group import DistBackendError, DistError, Work

__all__ = ["DistBackendError", "DistError", "GroupMember", "ReduceOp", "Work", "all_gather", "all_gather_into_tensor",
           "all_gather_object", "all_reduce", "barrier", "broadcast", "broadcast_object_list", "default_pg_timeout",
           "destroy_process_group", "get_backend", "get_rank", "get_world_size", "group", "init_process_group",
           "is_available", "is_initialized", "is_mpi_available", "ops", "reduce_scatter", "reduce_scatter_tensor"]
