"""The collectives as registry ops, so that a compiled function's communication is part of its graph.

Each is an opaque op with ``effects=True``: the compiler's passes never fold, merge (CSE) or drop it, the fusion
pass never puts it in a kernel, so the numba backend runs native segments on either side of it and the op's numpy
forward between them. Its forward runs the collective on the current default process group (blocking, with the
group's fingerprint check and deadline); it has no gradient, as PyTorch's ``torch.distributed`` collectives.

The eager layer never imports this package: `tracegrad.distributed` registers these ops when it is imported
(``import tracegrad`` does), and a graph names them like any other op.

>>> from tracegrad.ops.registry import REGISTRY
>>> REGISTRY["all_reduce"].effects, REGISTRY["all_reduce"].kind
(True, <Kind.OPAQUE: 'opaque'>)
"""
from __future__ import annotations

import numpy as np

from .. import dtypes
from ..ops.registry import AbstractValue, Kind, Op, register


def _group():
    from .collectives import _default_group  # NOTE: late: collectives.py applies these ops
    return _default_group()


def _contiguous_copy(x: np.ndarray) -> np.ndarray:
    return np.array(x, copy=True, order="C")


def _all_reduce(x, reduce_op):
    out = _contiguous_copy(x)
    _group().all_reduce(out, reduce_op, blocking=True).wait()
    return out


def _broadcast(x, src):
    out = _contiguous_copy(x)
    _group().broadcast(out, src, blocking=True).wait()
    return out


def _all_gather(x, world_size):
    x = np.ascontiguousarray(x)
    out = np.empty((world_size,) + x.shape, x.dtype)
    _group().all_gather(out, x, blocking=True).wait()
    return out


def _reduce_scatter(x, reduce_op, world_size):
    x = np.ascontiguousarray(x)
    out = np.empty(x.shape[1:], x.dtype)
    _group().reduce_scatter(out, x, reduce_op, blocking=True).wait()
    return out


def _barrier():
    _group().barrier().wait()
    return np.zeros((), np.bool_)


def _same(a, **params):
    return AbstractValue(a.shape, a.dtype)


def _gathered(a, world_size):
    return AbstractValue((world_size,) + a.shape, a.dtype)


def _scattered(a, reduce_op, world_size):
    if not a.shape or a.shape[0] != world_size:
        raise ValueError(f"reduce_scatter: expected the input's first dimension to be the world size {world_size}, "
                         f"got shape {list(a.shape)}")
    return AbstractValue(a.shape[1:], a.dtype)


ALL_REDUCE = register(Op("all_reduce", Kind.OPAQUE, _all_reduce, _same, arity=1, effects=True))
BROADCAST = register(Op("broadcast", Kind.OPAQUE, _broadcast, _same, arity=1, effects=True))
ALL_GATHER = register(Op("all_gather", Kind.OPAQUE, _all_gather, _gathered, arity=1, effects=True))
REDUCE_SCATTER = register(Op("reduce_scatter", Kind.OPAQUE, _reduce_scatter, _scattered, arity=1, effects=True))
BARRIER = register(Op("barrier", Kind.OPAQUE, _barrier, lambda: AbstractValue((), dtypes.bool_), arity=0,
                      effects=True))

COLLECTIVES = frozenset(op.name for op in (ALL_REDUCE, BROADCAST, ALL_GATHER, REDUCE_SCATTER, BARRIER))


def has_collectives(graph) -> bool:
    """Whether a graph runs any collective (every rank must then run it at the same calls)."""
    return any(node.op.name in COLLECTIVES for node in graph.nodes)
