"""Selection: nonzero, masked_select, index_select, take, take_along_dim, and the scatter/index writes.

The reads are `getitem` and `gather`, the writes `index_put` (scatter, index_copy, index_fill, masked_scatter) and
`index_add_raw`/`scatter_add_raw` (index_add, scatter_add), so every op works eagerly, under autograd and compiled.

Outputs whose size depends on the data (`nonzero`, `masked_select`, `masked_scatter`'s count) read that one size
as a Python int; the positions themselves are graph ops (a stable `argsort` of the mask puts the selected
positions first, in order). Under `tracegrad.compile` the graph is specialized on the size behind a guard (a
call with another count traces again), and `compile(strict=True)` raises the tracer's error instead.

>>> import tracegrad as tg
>>> x = tg.tensor([[1.0, -2.0], [-3.0, 4.0]])
>>> tg.nonzero(x > 0)
tensor([[0, 0],
        [1, 1]])
>>> x.masked_select(x < 0)
tensor([-2., -3.])
"""
from __future__ import annotations

import builtins

import numpy as np

from .. import dtypes
from .._tensor import Tensor
from .arithmetic import add, floor_divide, logical_not, mul, ne, remainder
from .base import _is_one, _named, _tensor, to
from .indexing import getitem, getitem_raw, index_add_raw, index_put, normalize_index
from .inplace import _inplace
from .reductions import sum as sum_
from .shapes import broadcast_shapes, fmt, normalize_dim
from .shaping import expand, reshape, stack
from .sorting import argsort, gather, gather_raw, scatter_add_raw
from .structure import _along, _size_from


def _selected_positions(mask: Tensor, what: str, source: Tensor) -> Tensor:
    """The flat positions where a bool tensor (computed from `source`) holds, in order: their count is a guard
    under compile."""
    flat = reshape(mask, -1)
    count = _size_from(sum_(flat), what, source)
    return getitem(argsort(logical_not(flat), stable=True), slice(0, count))  # True (as False: 0) sorts first


# ------------------------------------------------------------------------------------------ reads
def nonzero(x: Tensor, *, as_tuple: bool = False):
    """The indices of the nonzero elements: an N x ndim tensor, row by row, or (``as_tuple=True``) one index
    tensor per dim, as ``x[x.nonzero(as_tuple=True)]`` wants.

    >>> import tracegrad as tg
    >>> tg.tensor([0, 3, 0, 5]).nonzero(as_tuple=True)
    (tensor([1, 3]),)
    """
    x = _tensor(x)
    flat = _selected_positions(x if x.dtype is dtypes.bool_ else ne(x, 0), "nonzero", x)
    coords, step = [], 1
    for n in reversed(x.shape):  # unravel the flat positions, last dim first
        coords.append(remainder(floor_divide(flat, step), n) if step > 1 else remainder(flat, n))
        step *= n
    coords.reverse()
    if as_tuple:
        return tuple(coords) if coords else (getitem(flat, slice(None)),)
    if not coords:  # a 0-d input: one row per nonzero, of no coordinates
        return getitem_raw(reshape(flat, (-1, 1)), (slice(None), slice(0, 0)))
    return stack(coords, 1)


def argwhere(x: Tensor) -> Tensor:
    """``nonzero(x)``: the indices of the nonzero elements, one row each.

    >>> import tracegrad as tg
    >>> tg.argwhere(tg.tensor([[0, 1], [1, 0]]))
    tensor([[0, 1],
            [1, 0]])
    """
    return nonzero(x)


def masked_select(x: Tensor, mask: Tensor) -> Tensor:
    """The elements of `x` where the bool `mask` holds (broadcast together), as a 1-D tensor.

    >>> import tracegrad as tg
    >>> tg.masked_select(tg.tensor([[1, 2], [3, 4]]), tg.tensor([True, False]))
    tensor([1, 3])
    """
    x, mask = _tensor(x), _tensor(mask)
    if mask.dtype is not dtypes.bool_:
        raise RuntimeError(f"masked_select: expected BoolTensor for mask (got {mask.dtype})")
    shape = broadcast_shapes("masked_select", x.shape, mask.shape)
    x, wide = (expand(t, shape) if t.shape != shape else t for t in (x, mask))
    return _named(getitem(reshape(x, -1), _selected_positions(wide, "masked_select", mask)), "MaskedSelectBackward0")


def _index_vector(op: str, index: Tensor) -> Tensor:
    index = _tensor(index)
    if index.dtype not in (dtypes.int64, dtypes.int32):
        raise RuntimeError(f"{op}(): Expected dtype int32/int64 for index (got {index.dtype})")
    if index.ndim > 1:
        raise IndexError(f"{op}(): Index is supposed to be a vector (got shape {fmt(index.shape)})")
    return reshape(index, 1) if index.ndim == 0 else index


def index_select(x: Tensor, dim: int, index: Tensor) -> Tensor:
    """The slices of `x` along `dim` at the positions in the 1-D `index` (repeats allowed).

    >>> import tracegrad as tg
    >>> tg.tensor([[1, 2, 3], [4, 5, 6]]).index_select(1, tg.tensor([2, 0]))
    tensor([[3, 1],
            [6, 4]])
    """
    x = _tensor(x)
    idx = _index_vector("index_select", index)
    if x.ndim == 0:
        return _named(reshape(getitem(reshape(x, 1), idx), ()), "IndexSelectBackward0")
    d = normalize_dim("index_select", dim, x.ndim)
    return _named(getitem(x, _along(d, idx)), "IndexSelectBackward0")


def take(x: Tensor, index: Tensor) -> Tensor:
    """The elements of the flattened `x` at `index` (any shape: the result has it).

    >>> import tracegrad as tg
    >>> tg.take(tg.tensor([[1, 2], [3, 4]]), tg.tensor([[3, 0]]))
    tensor([[4, 1]])
    """
    index = _tensor(index)
    if index.dtype is not dtypes.int64:
        raise RuntimeError(f"take(): Expected a long tensor for index, but got {index.dtype}")
    return _named(getitem(reshape(_tensor(x), -1), index), "TakeBackward0")


def take_along_dim(x: Tensor, indices: Tensor, dim=None) -> Tensor:
    """`x`'s values at `indices` along `dim` (the other dims broadcast), as the indices from argsort or argmax
    pick them; without `dim`, from the flattened `x`.

    >>> import tracegrad as tg
    >>> x = tg.tensor([[10, 30, 20]])
    >>> tg.take_along_dim(x, x.argsort(1), 1)
    tensor([[10, 20, 30]])
    """
    x, indices = _tensor(x), _tensor(indices)
    if indices.dtype is not dtypes.int64:
        raise RuntimeError(f"torch.take_along_dim(): dtype of indices should be Long but got {indices.dtype}")
    if dim is None:
        return gather(reshape(x, -1), 0, reshape(indices, -1))
    d = normalize_dim("take_along_dim", dim, x.ndim)
    if x.ndim != indices.ndim:
        raise RuntimeError(f"torch.take_along_dim(): input and indices should have the same number of dimensions, "
                           f"but got {x.ndim} dimensions for input, and {indices.ndim} dimensions for indices")
    shape = broadcast_shapes("take_along_dim", x.shape[:d] + (1,) + x.shape[d + 1:],
                             indices.shape[:d] + (1,) + indices.shape[d + 1:])
    xs, ids = shape[:d] + (x.shape[d],) + shape[d + 1:], shape[:d] + (indices.shape[d],) + shape[d + 1:]
    x, indices = (expand(t, s) if t.shape != s else t for t, s in ((x, xs), (indices, ids)))
    return gather_raw(x, indices, d)


# ------------------------------------------------------------------------------------------ scatter
def _scatter_checks(op: str, x: Tensor, d: int, index: Tensor, src) -> None:
    if index.dtype is not dtypes.int64:
        raise RuntimeError(f"{op}(): Expected dtype int64 for index (got {index.dtype})")
    if index.ndim != x.ndim:
        raise RuntimeError(f"{op}(): Index tensor must have the same number of dimensions as self tensor (index "
                           f"{fmt(index.shape)}, self {fmt(x.shape)})")
    too_big = builtins.any(i > n for k, (i, n) in enumerate(zip(index.shape, x.shape)) if k != d)
    if isinstance(src, Tensor):
        if src.dtype is not x.dtype:
            raise RuntimeError(f"{op}(): Expected self.dtype to be equal to src.dtype (got {x.dtype} and "
                               f"{src.dtype})")
        too_big = too_big or src.ndim != index.ndim or builtins.any(i > n for i, n in zip(index.shape, src.shape))
    if too_big:
        raise RuntimeError(f"{op}(): Expected index {fmt(index.shape)} to be smaller than self {fmt(x.shape)} apart "
                           f"from dimension {d}" + (f" and to be smaller size than src {fmt(src.shape)}"
                                                    if isinstance(src, Tensor) else ""))


def _scatter_index(index: Tensor, d: int) -> tuple:
    """The numpy index writing element i of `index`'s grid at index[i] along d (its own position elsewhere)."""
    grid = list(np.indices(index.shape, sparse=True))
    grid[d] = index
    return normalize_index(tuple(grid))


def _src_region(src: Tensor, index: Tensor) -> Tensor:
    """The part of `src` that `index` covers (PyTorch reads src[i] for each position i of index)."""
    if src.shape == index.shape:
        return src
    return getitem_raw(src, tuple(slice(0, n) for n in index.shape))


def scatter(x: Tensor, dim: int, index: Tensor, src=None, *, value=None, reduce=None) -> Tensor:
    """A copy of `x` with ``out[index[i][j]][j] = src[i][j]`` for dim=0 (likewise for other dims); `src` may be
    a number (or ``value=``). Where `index` repeats a position, the last write wins.

    >>> import tracegrad as tg
    >>> tg.zeros(2, 3).scatter(0, tg.tensor([[1, 0, 1]]), tg.tensor([[1.0, 2.0, 3.0]]))
    tensor([[0., 2., 0.],
            [1., 0., 3.]])
    """
    if reduce is not None:
        raise RuntimeError("scatter(): reduce= is not supported by tracegrad; use scatter_add for sums")
    if src is None:
        src = value
    if src is None:
        raise TypeError("scatter() missing the src tensor (or value=)")
    x, index = _tensor(x), _tensor(index)
    d = normalize_dim("scatter", dim, x.ndim)
    _scatter_checks("scatter", x, d, index, src)
    name = "ScatterBackward0" if isinstance(src, Tensor) else "ScatterBackward1"
    value = _src_region(src, index) if isinstance(src, Tensor) else src
    return _named(index_put(x, value, _scatter_index(index, d)), name)


def scatter_(x: Tensor, dim: int, index: Tensor, src=None, *, value=None, reduce=None) -> Tensor:
    """`scatter` in place.

    >>> import tracegrad as tg
    >>> tg.zeros(3).scatter_(0, tg.tensor([2]), 1.0)
    tensor([0., 0., 1.])
    """
    if isinstance(src, Tensor):
        return _inplace(x, "scatter_", lambda t, s: scatter(t, dim, index, s, reduce=reduce), src)
    return _inplace(x, "scatter_", lambda t: scatter(t, dim, index, src, value=value, reduce=reduce))


def scatter_add(x: Tensor, dim: int, index: Tensor, src: Tensor) -> Tensor:
    """A copy of `x` with each ``src[i][j]`` added at ``[index[i][j]][j]`` for dim=0 (repeats accumulate).

    >>> import tracegrad as tg
    >>> tg.zeros(3).scatter_add(0, tg.tensor([0, 2, 0]), tg.tensor([1.0, 2.0, 3.0]))
    tensor([4., 0., 2.])
    """
    x, index, src = _tensor(x), _tensor(index), _tensor(src)
    d = normalize_dim("scatter_add", dim, x.ndim)
    _scatter_checks("scatter_add", x, d, index, src)
    return _named(add(x, scatter_add_raw(_src_region(src, index), index, d, x.shape)), "ScatterAddBackward0")


def scatter_add_(x: Tensor, dim: int, index: Tensor, src: Tensor) -> Tensor:
    """`scatter_add` in place.

    >>> import tracegrad as tg
    >>> tg.zeros(2).scatter_add_(0, tg.tensor([1, 1]), tg.tensor([1.0, 2.0]))
    tensor([0., 3.])
    """
    return _inplace(x, "scatter_add_", lambda t, s: scatter_add(t, dim, index, s), src)


# ------------------------------------------------------------------------------------------ index writes
def _index_write_checks(op: str, x: Tensor, dim: int, index: Tensor, source) -> tuple:
    idx = _index_vector(op, index)
    d = normalize_dim(op, dim, x.ndim)
    if isinstance(source, Tensor):
        if source.dtype is not x.dtype:
            raise RuntimeError(f"{op}(): self ({x.dtype}) and source ({source.dtype}) must have the same scalar type")
        want = x.shape[:d] + (idx.shape[0],) + x.shape[d + 1:]
        if source.shape != want and not (source.ndim == 0 and want == (1,)):
            raise RuntimeError(f"{op}(): Source/destination tensor must have same slice shapes: source "
                               f"{fmt(source.shape)}, expected {fmt(want)} (index of {idx.shape[0]} along dim {d} "
                               f"of self {fmt(x.shape)})")
    return d, normalize_index(_along(d, idx))


def index_add(x: Tensor, dim: int, index: Tensor, source: Tensor, *, alpha=1) -> Tensor:
    """A copy of `x` with ``alpha * source`` added at the positions `index` along `dim` (repeats accumulate).

    >>> import tracegrad as tg
    >>> tg.ones(3, 2).index_add(0, tg.tensor([0, 0]), tg.tensor([[1.0, 2.0], [3.0, 4.0]]))
    tensor([[5., 7.],
            [1., 1.],
            [1., 1.]])
    """
    x, source = _tensor(x), _tensor(source)
    d, where = _index_write_checks("index_add", x, dim, index, source)
    source = source if _is_one(alpha) else mul(source, alpha)
    if source.shape != x.shape[:d] + (where[d].shape[0],) + x.shape[d + 1:]:
        source = reshape(source, x.shape[:d] + (where[d].shape[0],) + x.shape[d + 1:])
    return _named(add(x, index_add_raw(source, x.shape, where)), "IndexAddBackward0")


def index_add_(x: Tensor, dim: int, index: Tensor, source: Tensor, *, alpha=1) -> Tensor:
    """`index_add` in place.

    >>> import tracegrad as tg
    >>> tg.zeros(2).index_add_(0, tg.tensor([0]), tg.tensor([5.0]))
    tensor([5., 0.])
    """
    return _inplace(x, "index_add_", lambda t, s: index_add(t, dim, index, s, alpha=alpha), source)


def index_copy(x: Tensor, dim: int, index: Tensor, source: Tensor) -> Tensor:
    """A copy of `x` with the slices of `source` written at the positions `index` along `dim`.

    >>> import tracegrad as tg
    >>> tg.zeros(3).index_copy(0, tg.tensor([2, 0]), tg.tensor([5.0, 6.0]))
    tensor([6., 0., 5.])
    """
    x, source = _tensor(x), _tensor(source)
    _, where = _index_write_checks("index_copy", x, dim, index, source)
    return _named(index_put(x, source, where), "IndexCopyBackward0")


def index_copy_(x: Tensor, dim: int, index: Tensor, source: Tensor) -> Tensor:
    """`index_copy` in place.

    >>> import tracegrad as tg
    >>> tg.zeros(2).index_copy_(0, tg.tensor([1]), tg.tensor([5.0]))
    tensor([0., 5.])
    """
    return _inplace(x, "index_copy_", lambda t, s: index_copy(t, dim, index, s), source)


def index_fill(x: Tensor, dim: int, index: Tensor, value) -> Tensor:
    """A copy of `x` with `value` (a number or 0-d tensor) written at the positions `index` along `dim`.

    >>> import tracegrad as tg
    >>> tg.zeros(2, 3).index_fill(1, tg.tensor([0, 2]), -1.0)
    tensor([[-1.,  0., -1.],
            [-1.,  0., -1.]])
    """
    x = _tensor(x)
    _, where = _index_write_checks("index_fill", x, dim, index, None)
    if isinstance(value, Tensor):
        if value.ndim:
            raise RuntimeError(f"index_fill_ only supports a 0-dimensional value tensor, but got tensor with "
                               f"{value.ndim} dimension(s).")
        return _named(index_put(x, to(value, x.dtype), where), "IndexFillBackward1")
    return _named(index_put(x, value, where), "IndexFillBackward0")


def index_fill_(x: Tensor, dim: int, index: Tensor, value) -> Tensor:
    """`index_fill` in place.

    >>> import tracegrad as tg
    >>> tg.zeros(2).index_fill_(0, tg.tensor([1]), 3.0)
    tensor([0., 3.])
    """
    if isinstance(value, Tensor):
        return _inplace(x, "index_fill_", lambda t, v: index_fill(t, dim, index, v), value)
    return _inplace(x, "index_fill_", lambda t: index_fill(t, dim, index, value))


def masked_scatter(x: Tensor, mask: Tensor, source: Tensor) -> Tensor:
    """A copy of `x` with the elements of `source`, in order, written where the bool `mask` holds.

    >>> import tracegrad as tg
    >>> tg.zeros(4).masked_scatter(tg.tensor([False, True, False, True]), tg.tensor([1.0, 2.0, 3.0]))
    tensor([0., 1., 0., 2.])
    """
    x, mask, source = _tensor(x), _tensor(mask), _tensor(source)
    if mask.dtype is not dtypes.bool_:
        raise RuntimeError(f"masked_scatter_ only supports boolean masks, but got mask with dtype {mask.dtype}")
    if source.dtype is not x.dtype:
        raise RuntimeError(f"masked_scatter_: expected self and source to have same dtypes but got {x.dtype} and "
                           f"{source.dtype}")
    shape = broadcast_shapes("masked_scatter", x.shape, mask.shape)
    x, wide = (expand(t, shape) if t.shape != shape else t for t in (x, mask))
    positions = _selected_positions(wide, "masked_scatter", mask)
    n = positions.shape[0]
    if source.numel() < n:
        raise RuntimeError(f"masked_scatter: Number of elements of source < number of ones in mask ({source.numel()} "
                           f"< {n})")
    values = getitem(reshape(source, -1), slice(0, n))
    out = index_put(reshape(x, -1), values, normalize_index((positions,)))
    return _named(reshape(out, shape), "MaskedScatterBackward0")


def masked_scatter_(x: Tensor, mask: Tensor, source: Tensor) -> Tensor:
    """`masked_scatter` in place.

    >>> import tracegrad as tg
    >>> tg.zeros(2).masked_scatter_(tg.tensor([False, True]), tg.tensor([7.0]))
    tensor([0., 7.])
    """
    return _inplace(x, "masked_scatter_", lambda t, s: masked_scatter(t, mask, s), source)
