"""Structure ops: flips, rolls, triangles, diagonals, repeats, stacks, moved dims and in-place reshapes.

Every op here is composed from the registry's primitives (getitem, reshape, permute, expand, cat, where, mul,
index_add_raw, ...) and carries PyTorch's grad_fn name, so `next_functions` shows the decomposition.
Copies and views follow PyTorch where a numpy view gives the same: `narrow`, `movedim`, `ravel` of a contiguous
tensor and `diagonal` of one whose two dims are its last (in order) share the input's storage; `flip`, `roll`,
`rot90`, `tril`, `repeat` copy. `unfold` and a `diagonal` over other dims are copies here (PyTorch's are views).

>>> import tracegrad as tg
>>> x = tg.arange(6).reshape(2, 3)
>>> x.flip(1)
tensor([[2, 1, 0],
        [5, 4, 3]])
>>> tg.tril(tg.ones(3, 3), diagonal=-1)
tensor([[0., 0., 0.],
        [1., 0., 0.],
        [1., 1., 0.]])
"""
from __future__ import annotations

import builtins
import math
import warnings

import numpy as np

from .. import _tracing, devices, dtypes
from .._tensor import Tensor
from ..autograd.grad_mode import STATE as _GRAD
from ..creation import zeros
from ..dtypes import result_type
from .arithmetic import abs as abs_
from .arithmetic import matmul, mul, ne, sub, where
from .arithmetic import pow as pow_
from .base import _named, _tensor, clone, to
from .indexing import getitem, getitem_raw, index_add_raw
from .inplace import _inplace
from .reductions import amax, norm
from .reductions import sum as sum_
from .shapes import broadcast_shapes, fmt, normalize_dim
from .shaping import _sizes, cat, expand, permute, reshape, squeeze, stack, t, transpose, unsqueeze


def _dim_list(dims) -> tuple:
    return (dims,) if isinstance(dims, (int, np.integer)) else tuple(dims)


def _distinct_dims(op: str, dims, ndim: int) -> tuple:
    out = tuple(normalize_dim(op, d, ndim) for d in _dim_list(dims))
    if len(set(out)) != len(out):
        raise RuntimeError(f"{op}: dim {out[0]} appears multiple times in the list of dims")
    return out


def _along(d: int, part) -> tuple:
    """An index selecting `part` along dim `d` (everything along the dims before it)."""
    return (slice(None),) * d + (part,)


# ------------------------------------------------------------------------------------------ flips and rolls
def _dims_args(args, dims) -> tuple:
    """`dims` given as one sequence, as separate ints (`x.flip(0, 1)`), or as the keyword."""
    if dims is not None:
        return _dim_list(dims)
    return tuple(args[0]) if len(args) == 1 and not isinstance(args[0], (int, np.integer)) else tuple(args)


def flip(x: Tensor, *args, dims=None) -> Tensor:
    """`x` with the order of its elements reversed along each of `dims` (a copy, as in PyTorch).

    >>> import tracegrad as tg
    >>> tg.flip(tg.tensor([[1, 2], [3, 4]]), [0, 1])
    tensor([[4, 3],
            [2, 1]])
    """
    x = _tensor(x)
    ds = _distinct_dims("flip", _dims_args(args, dims), x.ndim) if x.ndim else ()
    # NOTE: a negative-step slice is a numpy view; the clone makes flip a copy, as PyTorch's (a later write into x
    # must not show through it)
    flipped = getitem_raw(x, tuple(slice(None, None, -1) if d in ds else slice(None) for d in range(x.ndim)))
    return _named(clone(flipped), "FlipBackward0")


def fliplr(x: Tensor) -> Tensor:
    """`x` flipped left to right (along dim 1).

    >>> import tracegrad as tg
    >>> tg.tensor([[1, 2, 3]]).fliplr()
    tensor([[3, 2, 1]])
    """
    if x.ndim < 2:
        raise RuntimeError(f"fliplr: Input must be >= 2-d (got a {x.ndim}-d tensor)")
    return flip(x, 1)


def flipud(x: Tensor) -> Tensor:
    """`x` flipped upside down (along dim 0).

    >>> import tracegrad as tg
    >>> tg.tensor([1, 2, 3]).flipud()
    tensor([3, 2, 1])
    """
    if x.ndim < 1:
        raise RuntimeError("flipud: Input must be >= 1-d (got a 0-d tensor)")
    return flip(x, 0)


def roll(x: Tensor, shifts, dims=None) -> Tensor:
    """Elements shifted by `shifts` along `dims`, wrapping around; without `dims`, over the flattened tensor.

    >>> import tracegrad as tg
    >>> tg.roll(tg.tensor([[1, 2, 3], [4, 5, 6]]), 1, 1)
    tensor([[3, 1, 2],
            [6, 4, 5]])
    >>> tg.tensor([1, 2, 3, 4]).roll(-1)
    tensor([2, 3, 4, 1])
    """
    x = _tensor(x)
    shifts = _dim_list(shifts)
    if dims is None:
        if len(shifts) != 1:
            raise RuntimeError(f"roll: shifts and dimensions must align. shifts: {len(shifts)}, dims: 0")
        return _named(reshape(roll(reshape(x, -1), shifts, 0), x.shape), "RollBackward0")
    dims = _dim_list(dims)
    if len(shifts) != len(dims):
        raise RuntimeError(f"roll: shifts and dimensions must align. shifts: {len(shifts)}, dims: {len(dims)}")
    out = x
    for s, dim in zip(shifts, dims):
        d = normalize_dim("roll", dim, x.ndim)
        n = x.shape[d] if x.ndim else 1
        s = int(s) % n if n else 0
        if s:  # the last s elements first: one cat of two slices
            out = cat([getitem_raw(out, _along(d, slice(n - s, None))), getitem_raw(out, _along(d, slice(0, n - s)))],
                      d)
    return _named(clone(out) if out is x else out, "RollBackward0")


def rot90(x: Tensor, k: int = 1, dims=(0, 1)) -> Tensor:
    """`x` rotated by 90 degrees `k` times, from the first of `dims` towards the second.

    >>> import tracegrad as tg
    >>> tg.tensor([[1, 2], [3, 4]]).rot90()
    tensor([[2, 4],
            [1, 3]])
    """
    dims = tuple(dims)
    if len(dims) != 2:
        raise RuntimeError(f"rot90: expected total rotation dims == 2, but got dims = {len(dims)}")
    if x.ndim < 2:
        raise RuntimeError(f"rot90: expected total dims >= 2, but got total dims = {x.ndim}")
    d0, d1 = normalize_dim("rot90", dims[0], x.ndim), normalize_dim("rot90", dims[1], x.ndim)
    if d0 == d1:
        raise RuntimeError(f"rot90: expected rotation dims to be different, but got dim0 = {d0} and dim1 = {d1}")
    k %= 4
    if k == 1:
        out = transpose(flip(x, d1), d0, d1)
    elif k == 2:
        out = flip(x, (d0, d1))
    elif k == 3:
        out = transpose(flip(x, d0), d0, d1)
    else:
        out = clone(x)
    return _named(out, "Rot90Backward0")


# ------------------------------------------------------------------------------------------ triangles
def _zero_of(x: Tensor):
    return False if x.dtype is dtypes.bool_ else 0


def _triangle(x: Tensor, diagonal: int, lower: bool, name: str) -> Tensor:
    x = _tensor(x)
    if x.ndim < 2:
        raise RuntimeError(f"{name}: input tensor must have at least 2 dimensions (got shape {fmt(x.shape)})")
    n, m = x.shape[-2:]
    keep = np.tri(n, m, diagonal, dtype=bool) if lower else ~np.tri(n, m, diagonal - 1, dtype=bool)
    return _named(where(Tensor._make(keep), x, _zero_of(x)), f"{name.capitalize()}Backward0")


def tril(x: Tensor, diagonal: int = 0) -> Tensor:
    """The lower triangle of the last two dims (on and below the `diagonal`-th diagonal); the rest is zero.

    >>> import tracegrad as tg
    >>> tg.tensor([[1, 2], [3, 4]]).tril()
    tensor([[1, 0],
            [3, 4]])
    """
    return _triangle(x, diagonal, True, "tril")


def triu(x: Tensor, diagonal: int = 0) -> Tensor:
    """The upper triangle of the last two dims (on and above the `diagonal`-th diagonal); the rest is zero.

    >>> import tracegrad as tg
    >>> tg.tensor([[1, 2], [3, 4]]).triu(1)
    tensor([[0, 2],
            [0, 0]])
    """
    return _triangle(x, diagonal, False, "triu")


def tril_(x: Tensor, diagonal: int = 0) -> Tensor:
    """`tril` in place.

    >>> import tracegrad as tg
    >>> tg.ones(2, 2).tril_()
    tensor([[1., 0.],
            [1., 1.]])
    """
    return _inplace(x, "tril_", lambda t: tril(t, diagonal))


def triu_(x: Tensor, diagonal: int = 0) -> Tensor:
    """`triu` in place.

    >>> import tracegrad as tg
    >>> tg.ones(2, 2).triu_(1)
    tensor([[0., 1.],
            [0., 0.]])
    """
    return _inplace(x, "triu_", lambda t: triu(t, diagonal))


def _indices(fn, name, row, col, offset, dtype, device):
    devices.check(device, name)
    r, c = fn(row, offset, col)
    return Tensor._make(np.stack([r, c]).astype(dtypes.as_dtype(dtype).np).reshape(2, -1))


def tril_indices(row: int, col: int, offset: int = 0, *, dtype=dtypes.int64, device=None, layout=None) -> Tensor:
    """The (row, column) indices of the lower triangle of a `row` x `col` matrix, row by row, as a 2 x N tensor.

    >>> import tracegrad as tg
    >>> tg.tril_indices(3, 3)
    tensor([[0, 1, 1, 2, 2, 2],
            [0, 0, 1, 0, 1, 2]])
    """
    return _indices(np.tril_indices, "tril_indices", row, col, offset, dtype, device)


def triu_indices(row: int, col: int, offset: int = 0, *, dtype=dtypes.int64, device=None, layout=None) -> Tensor:
    """The (row, column) indices of the upper triangle of a `row` x `col` matrix, row by row, as a 2 x N tensor.

    >>> import tracegrad as tg
    >>> tg.triu_indices(2, 3, 1)
    tensor([[0, 0, 1],
            [1, 2, 2]])
    """
    return _indices(np.triu_indices, "triu_indices", row, col, offset, dtype, device)


# ------------------------------------------------------------------------------------------ diagonals
def _diagonal_slice(n: int, m: int, offset: int):
    """The diagonal `offset` of an n x m matrix flattened row by row: a strided slice, and its length."""
    k = builtins.max(0, builtins.min(n + builtins.min(offset, 0), m - builtins.max(offset, 0)))
    start = offset if offset >= 0 else -offset * m
    return (slice(start, start + (k - 1) * (m + 1) + 1, m + 1) if k else slice(0, 0)), k


def diagonal(x: Tensor, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
    """The diagonal `offset` of the matrices spanned by `dim1` and `dim2`, as a last dim (PyTorch's layout).

    >>> import tracegrad as tg
    >>> x = tg.arange(9).reshape(3, 3)
    >>> x.diagonal(), x.diagonal(1), tg.diagonal(x, -1)
    (tensor([0, 4, 8]), tensor([1, 5]), tensor([3, 7]))
    """
    x = _tensor(x)
    d1, d2 = normalize_dim("diagonal", dim1, x.ndim), normalize_dim("diagonal", dim2, x.ndim)
    if d1 == d2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    rest = [d for d in range(x.ndim) if d not in (d1, d2)]
    perm = tuple(rest + [d1, d2])
    t = x if perm == tuple(range(x.ndim)) else permute(x, perm)
    n, m = x.shape[d1], x.shape[d2]
    part, _ = _diagonal_slice(n, m, offset)
    # NOTE: the diagonal of the flattened matrices is every (m+1)-th element: a strided slice, no index arrays
    # (and a view of x when the reshape is one)
    flat = reshape(t, t.shape[:-2] + (n * m,))
    return _named(getitem_raw(flat, _along(len(rest), part)), "DiagonalBackward0")


def diag_embed(x: Tensor, offset: int = 0, dim1: int = -2, dim2: int = -1) -> Tensor:
    """Matrices (in dims `dim1`, `dim2` of the result) with the last dim of `x` on their diagonal `offset`.

    >>> import tracegrad as tg
    >>> tg.diag_embed(tg.tensor([[1, 2], [3, 4]]))
    tensor([[[1, 0],
             [0, 2]],
    <BLANKLINE>
            [[3, 0],
             [0, 4]]])
    """
    x = _tensor(x)
    nd = x.ndim + 1
    if x.ndim == 0:
        raise RuntimeError("diag_embed: expected a tensor with at least 1 dimension, got a 0-d tensor")
    d1, d2 = normalize_dim("diag_embed", dim1, nd), normalize_dim("diag_embed", dim2, nd)
    if d1 == d2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    n = x.shape[-1]
    size = n + builtins.abs(offset)
    batch = x.shape[:-1]
    part, _ = _diagonal_slice(size, size, offset)
    # zeros with x added along the diagonal of the flattened matrices (getitem's VJP primitive), then laid out
    flat = index_add_raw(x, batch + (size * size,), _along(len(batch), part))
    out = reshape(flat, batch + (size, size))
    rows, cols, others = len(batch), len(batch) + 1, iter(range(len(batch)))
    perm = tuple(rows if j == d1 else cols if j == d2 else next(others) for j in range(nd))
    if perm != tuple(range(nd)):
        out = permute(out, perm)
    return _named(out, "DiagEmbedBackward0")


_diagonal = diagonal


def diag(x: Tensor, diagonal: int = 0) -> Tensor:
    """A 1-D tensor's square matrix with it on diagonal `diagonal`, or a 2-D tensor's diagonal (a copy).

    >>> import tracegrad as tg
    >>> tg.diag(tg.tensor([1, 2]))
    tensor([[1, 0],
            [0, 2]])
    >>> tg.diag(tg.tensor([[1, 2], [3, 4]]), 1)
    tensor([2])
    """
    x = _tensor(x)
    if x.ndim == 1:
        return diag_embed(x, diagonal, 0, 1)
    if x.ndim == 2:
        return _named(clone(_diagonal(x, diagonal)), "DiagonalBackward0_copy")
    raise RuntimeError(f"diag(): Supports 1D or 2D tensors. Got {x.ndim}D")


def diagflat(x: Tensor, offset: int = 0) -> Tensor:
    """The square matrix with the flattened `x` on its diagonal `offset`.

    >>> import tracegrad as tg
    >>> tg.diagflat(tg.tensor([[1, 2]]))
    tensor([[1, 0],
            [0, 2]])
    """
    return diag_embed(reshape(_tensor(x), -1), offset, 0, 1)


# ------------------------------------------------------------------------------------------ repeats
def repeat(x: Tensor, *sizes) -> Tensor:
    """`x` tiled `sizes[i]` times along each dim (leading sizes add dims), as ``Tensor.repeat``.

    >>> import tracegrad as tg
    >>> tg.tensor([1, 2]).repeat(2, 2)
    tensor([[1, 2, 1, 2],
            [1, 2, 1, 2]])
    """
    sizes = _sizes(sizes)
    if len(sizes) < x.ndim:
        raise RuntimeError(f"repeat: Number of dimensions of repeat dims ({len(sizes)}) can not be smaller than "
                           f"number of dimensions of tensor ({x.ndim})")
    if builtins.any(s < 0 for s in sizes):
        raise RuntimeError(f"repeat: Trying to create tensor with negative dimension: {list(sizes)}")
    shape = (1,) * (len(sizes) - x.ndim) + tuple(x.shape)
    # each dim n becomes (1, n), expanded to (r, n) and merged: the copies of the whole tensor, in order
    paired = reshape(x, [v for n in shape for v in (1, n)])
    tiled = expand(paired, [v for r, n in zip(sizes, shape) for v in (r, n)])
    return _named(reshape(tiled, [r * n for r, n in zip(sizes, shape)]), "RepeatBackward0")


def tile(x: Tensor, *args, dims=None) -> Tensor:
    """`x` repeated `dims[i]` times along each dim; fewer `dims` than dims of `x` repeat its last dims.

    >>> import tracegrad as tg
    >>> tg.tile(tg.tensor([[1, 2]]), (2,))
    tensor([[1, 2, 1, 2]])
    """
    dims = tuple(int(d) for d in _dims_args(args, dims))
    return repeat(x, (1,) * (x.ndim - len(dims)) + dims)


def _value_from(t: Tensor, what: str, *sources: Tensor):
    """The value of a 0-dim tensor computed from `sources` as a Python number: the size of an output that depends
    on data.

    NOTE: under `tracegrad.compile` the graph is specialized on this number behind a guard (another value traces
    again) unless every source is the same at every call; with strict=True the guard raises the tracer's error
    naming `what`. Everything else stays in the graph.
    """
    tracer = _tracing.TRACER
    if tracer is not None and not (sources and builtins.all(tracer.is_constant(s) for s in sources)):
        tracer.concretize(t, what)
    return t._data.reshape(()).item()


def _size_from(t: Tensor, what: str, *sources: Tensor) -> int:
    """`_value_from` for a size."""
    return int(_value_from(t, what, *sources))


def repeat_interleave(x: Tensor, repeats=None, dim=None, *, output_size=None) -> Tensor:
    """Each element (or slice along `dim`) repeated `repeats` times, the copies side by side; `repeats` is an int
    or a tensor of one count per element. ``repeat_interleave(counts)`` repeats ``arange(len(counts))``.

    With a tensor of counts the output's size depends on their sum: under `tracegrad.compile` that is a guard
    unless `output_size` gives it.

    >>> import tracegrad as tg
    >>> tg.tensor([1, 2]).repeat_interleave(2)
    tensor([1, 1, 2, 2])
    >>> tg.repeat_interleave(tg.tensor([[1, 2], [3, 4]]), tg.tensor([1, 2]), dim=0)
    tensor([[1, 2],
            [3, 4],
            [3, 4]])
    """
    from .functions import cumsum, index_select, searchsorted  # NOTE: selection and statistics import this module
    x = _tensor(x)
    if repeats is None:  # repeat_interleave(counts): the indices 0, 1, ... each repeated
        repeats, x, dim = x, Tensor._make(np.arange(x.shape[0] if x.ndim else 1, dtype=np.int64)), 0
    if dim is None:
        x, d = reshape(x, -1), 0
    else:
        d = normalize_dim("repeat_interleave", dim, x.ndim)
    if x.ndim == 0:
        x = reshape(x, 1)
    if not isinstance(repeats, Tensor):
        r = int(repeats)
        if r < 0:
            raise RuntimeError("repeat_interleave: repeats can not be negative")
        # each slice along d becomes r copies of it: a new dim after d, expanded and merged
        wide = expand(unsqueeze(x, d + 1), x.shape[:d + 1] + (r,) + x.shape[d + 1:])
        return reshape(wide, x.shape[:d] + (x.shape[d] * r,) + x.shape[d + 1:])
    counts = reshape(repeats, -1)
    if counts.shape[0] == 1 and x.shape[d] != 1:  # one count for every slice
        counts = expand(counts, (x.shape[d],))
    if counts.dtype not in (dtypes.int64, dtypes.int32):
        raise RuntimeError(f"repeat_interleave: repeats has to be Long or Int tensor (got {counts.dtype})")
    if counts.shape[0] != x.shape[d]:
        raise RuntimeError(f"repeat_interleave: repeats must have the same size as input along dim, but got "
                           f"repeats.size(0) = {counts.shape[0]} and input.size({d}) = {x.shape[d]}")
    if counts.numel() and (counts._data < 0).any():
        raise RuntimeError("repeat_interleave: repeats can not be negative")
    ends = cumsum(to(counts, dtypes.int64), 0)
    total = int(output_size) if output_size is not None else \
        (_size_from(getitem(ends, -1), "repeat_interleave", repeats) if counts.shape[0] else 0)
    # output position p copies the slice whose cumulative count first exceeds p
    source = searchsorted(ends, Tensor._make(np.arange(total, dtype=np.int64)), right=True)
    return index_select(x, d, source)


# ------------------------------------------------------------------------------------------ grids and products
def _tensor_list(tensors) -> list:
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tensors[0]
    return [_tensor(t) for t in tensors]


def meshgrid(*tensors, indexing: str | None = None):
    """Coordinate grids from 1-D tensors: output i varies along dim i (``indexing='ij'``), or with the first two
    dims swapped (``'xy'``, Cartesian). Each grid is an expanded view of its input.

    >>> import tracegrad as tg
    >>> gx, gy = tg.meshgrid(tg.tensor([1, 2]), tg.tensor([3, 4, 5]), indexing="ij")
    >>> gx
    tensor([[1, 1, 1],
            [2, 2, 2]])
    >>> tg.meshgrid(tg.tensor([1, 2]), tg.tensor([3, 4, 5]), indexing="xy")[0].shape
    tracegrad.Size([3, 2])
    """
    ts = _tensor_list(tensors)
    if indexing is None:
        warnings.warn("torch.meshgrid: in an upcoming release, it will be required to pass the indexing argument.",
                      UserWarning, stacklevel=2)
        indexing = "ij"
    if indexing not in ("ij", "xy"):
        raise RuntimeError(f'torch.meshgrid: indexing must be one of "xy" or "ij", but received: {indexing}')
    for i, t_ in enumerate(ts):
        if t_.ndim > 1:
            raise RuntimeError(f"torch.meshgrid: Expected 0D or 1D tensor in the tensor list but got: {t_.ndim}-d "
                               f"tensor at position {i}")
        if t_.dtype is not ts[0].dtype:
            raise RuntimeError(f"meshgrid expects all tensors to have the same dtype (got {ts[0].dtype} and "
                               f"{t_.dtype})")
    swap = indexing == "xy" and len(ts) >= 2
    if swap:  # as PyTorch: the 'ij' grids of the first two inputs swapped, returned swapped back
        ts[0], ts[1] = ts[1], ts[0]
    shape = tuple(t_.numel() for t_ in ts)
    k = len(ts)
    grids = [expand(reshape(t_, (1,) * i + (-1,) + (1,) * (k - i - 1)), shape) for i, t_ in enumerate(ts)]
    if swap:
        grids[0], grids[1] = grids[1], grids[0]
    return tuple(grids)


def cartesian_prod(*tensors) -> Tensor:
    """Every combination of one element of each 1-D tensor, one per row (as itertools.product).

    >>> import tracegrad as tg
    >>> tg.cartesian_prod(tg.tensor([1, 2]), tg.tensor([3, 4]))
    tensor([[1, 3],
            [1, 4],
            [2, 3],
            [2, 4]])
    """
    ts = _tensor_list(tensors)
    for t_ in ts:
        if t_.ndim != 1:
            raise RuntimeError(f"cartesian_prod: Expect a 1D vector, but got shape {fmt(t_.shape)}")
    if len(ts) == 1:
        return ts[0]
    return stack([reshape(g, -1) for g in meshgrid(*ts, indexing="ij")], 1)


def kron(a: Tensor, b: Tensor) -> Tensor:
    """The Kronecker product: `a`'s elements each scaling a block `b` (dims aligned from the right).

    >>> import tracegrad as tg
    >>> tg.kron(tg.tensor([[1, 2]]), tg.tensor([[1], [10]]))
    tensor([[ 1,  2],
            [10, 20]])
    """
    a, b = _tensor(a), _tensor(b)
    nd = builtins.max(a.ndim, b.ndim)
    sa, sb = (1,) * (nd - a.ndim) + tuple(a.shape), (1,) * (nd - b.ndim) + tuple(b.shape)
    blocks = mul(reshape(a, [v for n in sa for v in (n, 1)]), reshape(b, [v for n in sb for v in (1, n)]))
    return _named(reshape(blocks, [p * q for p, q in zip(sa, sb)]), "UnsafeViewBackward0")


def cross(a: Tensor, b: Tensor, dim=None) -> Tensor:
    """The cross product of 3-vectors along `dim` (broadcasting the other dims); without `dim`, along the first
    dim of size 3 (deprecated in PyTorch, which warns).

    >>> import tracegrad as tg
    >>> tg.cross(tg.tensor([1.0, 0.0, 0.0]), tg.tensor([0.0, 1.0, 0.0]), dim=0)
    tensor([0., 0., 1.])
    """
    a, b = _tensor(a), _tensor(b)
    if a.ndim != b.ndim:
        raise RuntimeError(f"linalg.cross: inputs must have the same number of dimensions (got shapes {fmt(a.shape)} "
                           f"and {fmt(b.shape)})")
    shape = broadcast_shapes("cross", a.shape, b.shape)
    if dim is None:
        warnings.warn("Using torch.cross without specifying the dim arg is deprecated.\nPlease either pass the dim "
                      "explicitly or simply use torch.linalg.cross.\nThe default value of dim will change to agree "
                      "with that of linalg.cross in a future release.", UserWarning, stacklevel=2)
        dim = next((i for i, n in enumerate(shape) if n == 3), None)
        if dim is None:
            raise RuntimeError(f"cross: no dimension of size 3 in input (shape {fmt(shape)})")
    d = normalize_dim("cross", dim, len(shape))
    na, nb = a.shape[d - len(shape) + a.ndim], b.shape[d - len(shape) + b.ndim]
    if na != 3 or nb != 3:
        raise RuntimeError(f"linalg.cross: inputs dimension {dim} must have length 3. Got {na} and {nb}")
    a, b = (expand(t_, shape) if t_.shape != shape else t_ for t_ in (a, b))
    nxt, prv = np.array([1, 2, 0]), np.array([2, 0, 1])
    # NOTE: component i is a[i+1] b[i+2] - a[i+2] b[i+1], the products in PyTorch's order
    out = sub(mul(getitem_raw(a, _along(d, nxt)), getitem_raw(b, _along(d, prv))),
              mul(getitem_raw(a, _along(d, prv)), getitem_raw(b, _along(d, nxt))))
    return _named(out, "LinalgCrossBackward0")


def cdist(x1: Tensor, x2: Tensor, p: float = 2.0, compute_mode=None) -> Tensor:
    """The p-norm distance between each row of `x1` and each row of `x2` (batched over leading dims).

    >>> import tracegrad as tg
    >>> tg.cdist(tg.tensor([[0.0, 0.0], [1.0, 1.0]]), tg.tensor([[3.0, 4.0]]))
    tensor([[5.0000],
            [3.6056]])
    """
    x1, x2 = _tensor(x1), _tensor(x2)
    for name, t_ in (("X1", x1), ("X2", x2)):
        if t_.ndim < 2:
            raise RuntimeError(f"cdist only supports at least 2D tensors, {name} got: {t_.ndim}D")
        if not t_.is_floating_point():
            raise RuntimeError(f"cdist only supports floating-point dtypes, {name} got: {t_.dtype}")
    if x1.shape[-1] != x2.shape[-1]:
        raise RuntimeError(f"X1 and X2 must have the same number of columns. X1: {x1.shape[-1]} X2: {x2.shape[-1]}")
    if p < 0:
        raise RuntimeError("cdist only supports non-negative p values")
    diff = sub(unsqueeze(x1, -2), unsqueeze(x2, -3))
    if p == 2:
        out = norm(diff, dim=-1)  # the 2-norm primitive: a zero gradient at zero distance, as PyTorch's
    elif p == 1:
        out = sum_(abs_(diff), -1)
    elif p == math.inf:
        out = amax(abs_(diff), -1)
    elif p == 0:
        out = to(sum_(ne(diff, 0), -1), diff.dtype)
    else:
        out = pow_(sum_(pow_(abs_(diff), p), -1), 1.0 / p)
    return _named(out, "CdistBackward0")


def tensordot(a: Tensor, b: Tensor, dims=2, out=None) -> Tensor:
    """Contract the last `dims` dims of `a` with the first `dims` of `b`, or the dims listed in `dims = (dims_a,
    dims_b)`: the other dims of `a`, then those of `b`, make the result.

    >>> import tracegrad as tg
    >>> tg.tensordot(tg.ones(2, 3, 4), tg.ones(3, 4, 5)).shape
    tracegrad.Size([2, 5])
    >>> tg.tensordot(tg.ones(2, 3), tg.ones(4, 3), dims=([1], [1])).shape
    tracegrad.Size([2, 4])
    """
    a, b = _tensor(a), _tensor(b)
    if out is not None:
        raise TypeError("tensordot: out= is not supported by tracegrad")
    if isinstance(dims, Tensor):
        dims = dims.tolist()
    if isinstance(dims, (int, np.integer)):
        if dims < 0:
            raise RuntimeError(f"tensordot expects dims >= 0, but got dims={dims}")
        da, db = list(range(a.ndim - dims, a.ndim)), list(range(dims))
    else:
        da, db = (_dim_list(d) for d in dims)
    da = [normalize_dim("tensordot", d, a.ndim) for d in da]
    db = [normalize_dim("tensordot", d, b.ndim) for d in db]
    if len(da) != len(db):
        raise RuntimeError(f"tensordot: both dimension lists should have same length (got {len(da)} and {len(db)})")
    for i, j in zip(da, db):
        if a.shape[i] != b.shape[j]:
            raise RuntimeError(f"tensordot: contracted dimensions need to match, but first has size {a.shape[i]} in "
                               f"dim {i} and second has size {b.shape[j]} in dim {j}")
    free_a = [d for d in range(a.ndim) if d not in da]
    free_b = [d for d in range(b.ndim) if d not in db]
    k = math.prod(a.shape[d] for d in da)
    left = reshape(permute(a, free_a + da), (math.prod(a.shape[d] for d in free_a), k))
    right = reshape(permute(b, db + free_b), (k, math.prod(b.shape[d] for d in free_b)))
    return reshape(matmul(left, right), [a.shape[d] for d in free_a] + [b.shape[d] for d in free_b])


def block_diag(*tensors) -> Tensor:
    """The block-diagonal matrix of the given matrices (0-d and 1-D tensors count as one row), zeros elsewhere.

    >>> import tracegrad as tg
    >>> tg.block_diag(tg.tensor([[1, 2]]), tg.tensor(3))
    tensor([[1, 2, 0],
            [0, 0, 3]])
    """
    ts = [_tensor(t_) for t_ in tensors]
    for i, t_ in enumerate(ts):
        if t_.ndim > 2:
            raise RuntimeError(f"torch.block_diag: Input tensors must have 2 or fewer dimensions. Input {i} has "
                               f"{t_.ndim} dimensions")
    if not ts:
        return zeros(1, 0)
    dt = result_type(*ts)
    mats = [to(reshape(t_, (1, -1)) if t_.ndim < 2 else t_, dt) for t_ in ts]
    width = builtins.sum(m.shape[1] for m in mats)
    rows, left = [], 0
    for m in mats:
        r, c = m.shape
        parts = ([zeros(r, left, dtype=dt)] if left else []) + [m] + \
            ([zeros(r, width - left - c, dtype=dt)] if width - left - c else [])
        rows.append(cat(parts, 1) if len(parts) > 1 else m)
        left += c
    return _named(cat(rows, 0), "BlockDiagBackward0")


# ------------------------------------------------------------------------------------------ dims and stacks
def narrow(x: Tensor, dim: int, start, length: int) -> Tensor:
    """`length` elements of `x` from `start` along `dim` (a view).

    >>> import tracegrad as tg
    >>> tg.arange(5).narrow(0, 1, 3)
    tensor([1, 2, 3])
    """
    d = normalize_dim("narrow", dim, x.ndim)
    n = x.shape[d]
    start = int(start)
    if not -n <= start <= n:
        raise IndexError(f"narrow(): start out of range (expected to be in range of [{-n}, {n}], but got {start})")
    if start < 0:
        start += n
    if length < 0:
        raise RuntimeError("narrow(): length must be non-negative.")
    if start + length > n:
        raise RuntimeError(f"narrow(): start ({start}) + length ({length}) exceeds dimension size ({n}).")
    return getitem(x, _along(d, slice(start, start + length)))


def movedim(x: Tensor, source, destination) -> Tensor:
    """`x` with the dims `source` moved to positions `destination`, the others in their order (a view).

    >>> import tracegrad as tg
    >>> tg.zeros(2, 3, 4).movedim(0, -1).shape
    tracegrad.Size([3, 4, 2])
    """
    src, dst = _dim_list(source), _dim_list(destination)
    if len(src) != len(dst):
        raise RuntimeError(f"movedim: Invalid source or destination dims: source ({list(src)} dims) should contain "
                           f"the same number of dims as destination ({list(dst)} dims)")
    src = [normalize_dim("movedim", d, x.ndim) for d in src]
    dst = [normalize_dim("movedim", d, x.ndim) for d in dst]
    for what, ds in (("source", src), ("destination", dst)):
        if len(set(ds)) != len(ds):
            raise RuntimeError(f"movedim: repeated dim in `{what}` ({list(ds)})")
    order = [None] * x.ndim
    for s, d in zip(src, dst):
        order[d] = s
    rest = iter(d for d in range(x.ndim) if d not in src)
    return permute(x, [next(rest) if o is None else o for o in order])


moveaxis = movedim


def _atleast(x, nd: int) -> Tensor:
    x = _tensor(x)
    if x.ndim >= nd:
        return x
    if x.ndim == 0:
        return reshape(x, (1,) * nd)
    if nd == 2 or x.ndim == 2:  # (n,) -> (1, n) for 2-D; (a, b) -> (a, b, 1) for 3-D
        return unsqueeze(x, 0 if nd == 2 else -1)
    return unsqueeze(unsqueeze(x, 0), -1)  # (n,) -> (1, n, 1)


def _atleast_all(tensors, nd: int):
    if len(tensors) == 1 and isinstance(tensors[0], Tensor):
        return _atleast(tensors[0], nd)
    ts = tensors[0] if len(tensors) == 1 else tensors
    return tuple(_atleast(t_, nd) for t_ in ts)


def atleast_1d(*tensors):
    """Each tensor with at least one dim (a 0-d one becomes shape (1,)); one tensor in, one out, else a tuple.

    >>> import tracegrad as tg
    >>> tg.atleast_1d(tg.tensor(1.5))
    tensor([1.5000])
    """
    return _atleast_all(tensors, 1)


def atleast_2d(*tensors):
    """Each tensor with at least two dims: (n,) becomes (1, n).

    >>> import tracegrad as tg
    >>> tg.atleast_2d(tg.tensor([1, 2])).shape
    tracegrad.Size([1, 2])
    """
    return _atleast_all(tensors, 2)


def atleast_3d(*tensors):
    """Each tensor with at least three dims: (n,) becomes (1, n, 1), (a, b) becomes (a, b, 1).

    >>> import tracegrad as tg
    >>> [t.shape for t in tg.atleast_3d(tg.ones(2), tg.ones(2, 3))]
    [tracegrad.Size([1, 2, 1]), tracegrad.Size([2, 3, 1])]
    """
    return _atleast_all(tensors, 3)


def hstack(tensors) -> Tensor:
    """Tensors concatenated column-wise (along dim 1; along dim 0 when all are 1-D).

    >>> import tracegrad as tg
    >>> tg.hstack([tg.tensor([1, 2]), tg.tensor([3])])
    tensor([1, 2, 3])
    """
    ts = [_atleast(t_, 1) for t_ in tensors]
    return cat(ts, 0 if builtins.all(t_.ndim == 1 for t_ in ts) else 1)


def vstack(tensors) -> Tensor:
    """Tensors concatenated row-wise (1-D ones as rows).

    >>> import tracegrad as tg
    >>> tg.vstack([tg.tensor([1, 2]), tg.tensor([3, 4])])
    tensor([[1, 2],
            [3, 4]])
    """
    return cat([_atleast(t_, 2) for t_ in tensors], 0)


row_stack = vstack


def dstack(tensors) -> Tensor:
    """Tensors concatenated depth-wise (along dim 2, after `atleast_3d`).

    >>> import tracegrad as tg
    >>> tg.dstack([tg.ones(2, 3), tg.ones(2, 3)]).shape
    tracegrad.Size([2, 3, 2])
    """
    return cat([_atleast(t_, 3) for t_ in tensors], 2)


def column_stack(tensors) -> Tensor:
    """Tensors as columns side by side (0-d and 1-D ones become columns), along dim 1.

    >>> import tracegrad as tg
    >>> tg.column_stack([tg.tensor([1, 2]), tg.tensor([3, 4])])
    tensor([[1, 3],
            [2, 4]])
    """
    return cat([reshape(t_, (t_.numel(), 1)) if _tensor(t_).ndim <= 1 else t_ for t_ in tensors], 1)


def ravel(x: Tensor) -> Tensor:
    """The elements of `x` as a 1-D tensor (a view when `x` is contiguous).

    >>> import tracegrad as tg
    >>> tg.ravel(tg.tensor([[1, 2], [3, 4]]))
    tensor([1, 2, 3, 4])
    """
    return reshape(x, -1)


def unfold(x: Tensor, dimension: int, size: int, step: int) -> Tensor:
    """The windows of `size` elements, `step` apart, along `dimension`, as a new last dim (``Tensor.unfold``).

    >>> import tracegrad as tg
    >>> tg.arange(5).unfold(0, 2, 2)
    tensor([[0, 1],
            [2, 3]])
    """
    if x.ndim == 0:
        return reshape(unfold(reshape(x, 1), dimension, size, step), (size,))
    d = normalize_dim("unfold", dimension, x.ndim)
    n = x.shape[d]
    if size > n:
        raise RuntimeError(f"unfold: maximum size for tensor at dimension {d} is {n} but size is {size}")
    if step <= 0:
        raise RuntimeError(f"unfold: step is {step} but must be > 0")
    count = (n - size) // step + 1
    windows = np.arange(count)[:, None] * step + np.arange(size)[None, :]
    picked = getitem_raw(x, _along(d, windows))  # (..., count, size, ...): the window's dim after d
    order = [j for j in range(x.ndim + 1) if j != d + 1] + [d + 1]
    return _named(permute(picked, order), "UnfoldBackward0")


# ------------------------------------------------------------------------------------------ in-place reshapes
def _reshape_in_place(x: Tensor, res: Tensor, name: str, node_name: str) -> Tensor:
    """`x` takes the shape of `res`, a movement op's result on `x` (its storage), as ``x.unsqueeze_(0)`` does."""
    if _GRAD.enabled and x._rg and x.grad_fn is None:
        raise RuntimeError(f"{name}: a leaf Variable that requires grad is being used in an in-place operation.")
    if _tracing.TRACER is not None:
        _tracing.TRACER.reshape_in_place(x, res, name)
    x._data = res._data
    x._version_box()[0] += 1  # as PyTorch: a saved tensor whose shape changed fails at backward time
    if res.grad_fn is not None:
        x.grad_fn = _named(res, node_name).grad_fn
    return x


def _metadata_op(x: Tensor, fn, name: str, node_name: str) -> Tensor:
    """An in-place reshape: `fn` is the view op (numpy inserts, drops and swaps dims without copying)."""
    return _reshape_in_place(x, fn(x), name, node_name)


def squeeze_(x: Tensor, dim=None) -> Tensor:
    """`squeeze` in place: `x` itself loses its size-1 dims (or `dim`, if size 1).

    >>> import tracegrad as tg
    >>> x = tg.zeros(1, 2, 1)
    >>> x.squeeze_().shape
    tracegrad.Size([2])
    """
    return _metadata_op(x, lambda t_: squeeze(t_, dim), "squeeze_",
                        "SqueezeBackward3" if dim is None else "SqueezeBackward4")


def unsqueeze_(x: Tensor, dim: int) -> Tensor:
    """`unsqueeze` in place: `x` itself gains a size-1 dim at `dim`.

    >>> import tracegrad as tg
    >>> x = tg.zeros(2)
    >>> x.unsqueeze_(0).shape, x.shape
    (tracegrad.Size([1, 2]), tracegrad.Size([1, 2]))
    """
    return _metadata_op(x, lambda t_: unsqueeze(t_, dim), "unsqueeze_", "UnsqueezeBackward1")


def t_(x: Tensor) -> Tensor:
    """`t` in place: a matrix `x` itself is transposed.

    >>> import tracegrad as tg
    >>> tg.zeros(2, 3).t_().shape
    tracegrad.Size([3, 2])
    """
    return _metadata_op(x, t, "t_", "TBackward1")


def transpose_(x: Tensor, dim0: int, dim1: int) -> Tensor:
    """`transpose` in place: `x` itself has `dim0` and `dim1` swapped.

    >>> import tracegrad as tg
    >>> tg.zeros(2, 3, 4).transpose_(0, 2).shape
    tracegrad.Size([4, 3, 2])
    """
    return _metadata_op(x, lambda t_: transpose(t_, dim0, dim1), "transpose_", "TransposeBackward1")


# ------------------------------------------------------------------------------------------ memory layout
def is_contiguous(x: Tensor, memory_format=None) -> bool:
    """Whether `x`'s elements lie in row-major order without gaps (numpy's C-contiguous flag).

    >>> import tracegrad as tg
    >>> x = tg.zeros(2, 3)
    >>> x.is_contiguous(), x.t().is_contiguous()
    (True, False)
    """
    return bool(x._data.flags.c_contiguous)


def stride(x: Tensor, dim=None):
    """The step in elements between neighbours along each dim (or along `dim`), as PyTorch's strides.

    >>> import tracegrad as tg
    >>> tg.zeros(2, 3).stride(), tg.zeros(2, 3).t().stride(1)
    ((3, 1), 3)
    """
    steps = tuple(s // x._data.itemsize for s in x._data.strides)
    return steps if dim is None else steps[normalize_dim("stride", dim, x.ndim)]


def data_ptr(x: Tensor) -> int:
    """The address of `x`'s first element (views of one storage give addresses within it).

    >>> import tracegrad as tg
    >>> x = tg.zeros(4)
    >>> x[1:].data_ptr() - x.data_ptr()
    4
    """
    return int(x._data.__array_interface__["data"][0])


def H(x: Tensor) -> Tensor:  # noqa: N802 - PyTorch's name
    """The conjugate transpose of a matrix (``x.H``): its transpose, as tracegrad has no complex dtypes.

    >>> import tracegrad as tg
    >>> tg.tensor([[1, 2]]).H
    tensor([[1],
            [2]])
    """
    if x.ndim not in (0, 2):
        raise RuntimeError(f"tensor.H is only supported on matrices (2-D tensors). Got {x.ndim}-D tensor." +
                           (" For batches of matrices, consider using tensor.mH" if x.ndim > 2 else ""))
    return transpose(x, 0, 1) if x.ndim == 2 else x
