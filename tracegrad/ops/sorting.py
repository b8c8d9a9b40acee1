"""Sorting and gathering: sort, argsort, topk, gather.

The order is the `argsort` primitive's (stable; nan sorts as the largest value, as in PyTorch); the values
are `gather(x, indices)`, whose VJP adds the gradient back at the indices (`scatter_add`).

>>> import tracegrad as tg
>>> tg.tensor([3.0, 1.0, 2.0]).sort()
tracegrad.return_types.sort(
values=tensor([1., 2., 3.]),
indices=tensor([1, 2, 0]))
"""
from __future__ import annotations

from collections import namedtuple

from .._tensor import Tensor, apply
from . import primitives as P
from .base import _named, _tensor
from .indexing import getitem
from .shapes import normalize_dim
from .shaping import reshape


def _return_type(name):
    cls = namedtuple(name, ["values", "indices"])
    cls.__repr__ = lambda self: f"tracegrad.return_types.{name}(\nvalues={self.values!r},\nindices={self.indices!r})"
    return cls


sort_result, topk_result = _return_type("sort"), _return_type("topk")


def gather_raw(x: Tensor, idx: Tensor, axis: int) -> Tensor:
    """The gather primitive on a normalized axis (scatter_add's VJP)."""
    return apply(P.gather, x, idx, axis=axis)


def scatter_add_raw(g: Tensor, idx: Tensor, axis: int, shape) -> Tensor:
    """Zeros of `shape` with g added at idx along `axis` (gather's VJP)."""
    return apply(P.scatter_add, g, idx, axis=axis, shape=tuple(shape))


def gather(x: Tensor, dim: int, index: Tensor, *, sparse_grad: bool = False) -> Tensor:
    """out[i][j] = x[i][index[i][j]] for dim=1 (and likewise for other dims), as `torch.gather`.

    >>> import tracegrad as tg
    >>> tg.gather(tg.tensor([[1.0, 2.0], [3.0, 4.0]]), 1, tg.tensor([[1, 1], [0, 1]]))
    tensor([[2., 2.],
            [3., 4.]])
    """
    index = _tensor(index)
    d = normalize_dim("gather", dim, x.ndim)
    if x.ndim == 0:
        return _named(reshape(gather_raw(reshape(x, 1), reshape(index, 1), 0), ()), "GatherBackward0")
    return gather_raw(x, index, d)


def _argsort(x: Tensor, d: int, descending: bool) -> Tensor:
    return apply(P.argsort, x, axis=d, descending=bool(descending))


def argsort(x: Tensor, dim: int = -1, descending: bool = False, stable: bool = False, *, axis=None) -> Tensor:
    """The indices that sort `x` along `dim` (ties keep their order: every sort here is stable).

    >>> import tracegrad as tg
    >>> tg.argsort(tg.tensor([2, 0, 2, 1]), descending=True)
    tensor([0, 2, 3, 1])
    """
    if axis is not None:
        dim = axis
    if x.ndim == 0:
        return reshape(_argsort(reshape(x, 1), 0, descending), ())
    return _argsort(x, normalize_dim("argsort", dim, x.ndim), descending)


def sort(x: Tensor, dim: int = -1, descending: bool = False, stable: bool = False, *, axis=None):
    """(values, indices) of `x` sorted along `dim`, as `torch.sort`; the values' gradient goes back to where
    each value came from. CPU PyTorch sorts stably whatever `stable` says, and so does this.

    >>> import tracegrad as tg
    >>> tg.tensor([[2.0, 1.0, 2.0]]).sort(descending=True).indices
    tensor([[0, 2, 1]])
    """
    if axis is not None:
        dim = axis
    if x.ndim == 0:
        values, idx = sort(reshape(x, 1), 0, descending)
        return sort_result(_named(reshape(values, ()), "SortBackward0"), reshape(idx, ()))
    d = normalize_dim("sort", dim, x.ndim)
    idx = _argsort(x, d, descending)
    return sort_result(_named(gather_raw(x, idx, d), "SortBackward0"), idx)


def topk(x: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):  # noqa: A002
    """The k largest (or smallest) values along `dim` and their indices, as `torch.topk` (always sorted).

    Ties are ordered by position; PyTorch's topk leaves the order of equal values unspecified.

    >>> import tracegrad as tg
    >>> tg.topk(tg.tensor([1.0, 5.0, 3.0, 4.0]), 2)
    tracegrad.return_types.topk(
    values=tensor([5., 4.]),
    indices=tensor([1, 3]))
    """
    d = normalize_dim("topk", dim, x.ndim) if x.ndim else 0
    n = x.shape[d] if x.ndim else 1
    if not 0 <= k <= n:
        raise RuntimeError(f"topk(): selected index k out of range (k = {k}, dimension {d} has size {n})")
    if x.ndim == 0:
        values, idx = topk(reshape(x, 1), k, 0, largest)
        return topk_result(_named(reshape(values, ()), "TopkBackward0"), reshape(idx, ()))
    idx = getitem(_argsort(x, d, largest), (slice(None),) * d + (slice(0, k),))
    return topk_result(_named(gather_raw(x, idx, d), "TopkBackward0"), idx)
