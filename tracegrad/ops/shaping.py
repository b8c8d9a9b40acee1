"""Shape ops: reshape, view, permute, squeeze, expand, cat, stack, split."""
from __future__ import annotations

import builtins
import math

from .. import dtypes
from .._tensor import Tensor, apply
from ..dtypes import result_type
from . import primitives as P
from .base import _named, _operand, _tensor
from .shapes import fmt, normalize_dim, normalize_dims


# ------------------------------------------------------------------------------------------ shapes
def _sizes(args) -> tuple:
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = args[0]
    return tuple(int(a) for a in args)


def reshape(x: Tensor, *shape) -> Tensor:
    """Same elements in a new shape; one dim may be -1 (inferred)."""
    shape = _sizes(shape)
    if -1 in shape:
        known = math.prod(s for s in shape if s != -1)
        if shape.count(-1) > 1 or known == 0 or x.numel() % known:
            raise RuntimeError(f"reshape: shape '{fmt(shape)}' is invalid for input of size {x.numel()}")
        shape = tuple(x.numel() // known if s == -1 else s for s in shape)
    return apply(P.reshape, x, shape=shape)


def view(x: Tensor, *shape) -> Tensor:
    if len(shape) == 1 and isinstance(shape[0], dtypes.DType):
        raise RuntimeError("view(dtype) is not supported; use .to(dtype)")
    return reshape(x, *shape)


def view_as(x, other):
    return reshape(x, other.shape)


def reshape_as(x, other):
    return reshape(x, other.shape)


def permute(x: Tensor, *dims) -> Tensor:
    dims = _sizes(dims)
    if len(dims) != x.ndim:
        raise RuntimeError(f"permute: number of dimensions in the tensor input does not match the length of the "
                           f"desired ordering of dimensions i.e. input.dim() = {x.ndim} is not equal to "
                           f"len(dims) = {len(dims)}")
    perm = tuple(normalize_dim("permute", d, x.ndim) for d in dims)
    if len(set(perm)) != len(perm):
        raise RuntimeError(f"permute: repeated dim in {list(dims)}")
    return apply(P.permute, x, perm=perm)


def transpose(x: Tensor, dim0: int, dim1: int) -> Tensor:
    perm = list(range(x.ndim))
    if x.ndim == 0:
        return x
    d0, d1 = normalize_dim("transpose", dim0, x.ndim), normalize_dim("transpose", dim1, x.ndim)
    perm[d0], perm[d1] = perm[d1], perm[d0]
    return _named(apply(P.permute, x, perm=tuple(perm)), "TransposeBackward0")


swapaxes = transpose


def t(x: Tensor) -> Tensor:
    if x.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {x.ndim}D")
    return _named(apply(P.permute, x, perm=tuple(reversed(range(x.ndim)))), "TBackward0")


def squeeze(x: Tensor, dim=None) -> Tensor:
    dims = normalize_dims("squeeze", dim, x.ndim) if x.ndim else ()
    shape = tuple(n for i, n in enumerate(x.shape) if not (i in dims and n == 1))
    return _named(apply(P.reshape, x, shape=shape), "SqueezeBackward0" if dim is None else "SqueezeBackward1")


def unsqueeze(x: Tensor, dim: int) -> Tensor:
    d = normalize_dim("unsqueeze", dim, x.ndim + 1)
    shape = x.shape[:d] + (1,) + x.shape[d:]
    return _named(apply(P.reshape, x, shape=shape), "UnsqueezeBackward0")


def flatten(x: Tensor, start_dim=0, end_dim=-1) -> Tensor:
    if x.ndim == 0:
        return reshape(x, 1)
    s, e = normalize_dim("flatten", start_dim, x.ndim), normalize_dim("flatten", end_dim, x.ndim)
    if s > e:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    return reshape(x, x.shape[:s] + (math.prod(x.shape[s:e + 1]),) + x.shape[e + 1:])


def unflatten(x: Tensor, dim: int, sizes) -> Tensor:
    d = normalize_dim("unflatten", dim, x.ndim)
    return reshape(x, x.shape[:d] + tuple(sizes) + x.shape[d + 1:])


def expand(x: Tensor, *sizes) -> Tensor:
    sizes = _sizes(sizes)
    lead = len(sizes) - x.ndim
    if lead < 0:
        raise RuntimeError(f"expand: the number of sizes provided ({len(sizes)}) must be greater or equal to the "
                           f"number of dimensions in the tensor ({x.ndim})")
    shape = tuple(x.shape[i - lead] if s == -1 and i >= lead else s for i, s in enumerate(sizes))
    return apply(P.expand, x, shape=shape)


def expand_as(x, other):
    return expand(x, other.shape)


def broadcast_to(x, shape):
    return expand(x, shape)


def cat(tensors, dim=0) -> Tensor:
    """Concatenate along an existing dim; dtypes are promoted as in PyTorch."""
    tensors = [_tensor(t) for t in tensors]
    if not tensors:
        raise RuntimeError("cat: expected a non-empty list of Tensors")
    tensors = [t for t in tensors if not (t.ndim == 1 and t.shape[0] == 0)] or tensors[:1]  # legacy empty
    d = normalize_dim("cat", dim, tensors[0].ndim)
    dt = result_type(*[t for t in tensors])
    return apply(P.cat, *[_operand(t, dt) for t in tensors], axis=d)


concat = concatenate = cat


def stack(tensors, dim=0) -> Tensor:
    tensors = [_tensor(t) for t in tensors]
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    for i, t in enumerate(tensors[1:], 1):
        if t.shape != tensors[0].shape:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got {fmt(tensors[0].shape)} at "
                               f"entry 0 and {fmt(t.shape)} at entry {i}")
    d = normalize_dim("stack", dim, tensors[0].ndim + 1)
    return _named(cat([unsqueeze(t, d) for t in tensors], d), "StackBackward0")


def split(x: Tensor, split_size_or_sections, dim=0):
    d = normalize_dim("split", dim, x.ndim)
    n = x.shape[d]
    if isinstance(split_size_or_sections, int):
        step = split_size_or_sections
        sizes = [builtins.min(step, n - i) for i in range(0, n, step)] if step > 0 else []
    else:
        sizes = list(split_size_or_sections)
        if builtins.sum(sizes) != n:
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {n} (input tensor's size at "
                               f"dimension {d}), but got split_sizes={sizes}")
    out, start = [], 0
    for s in sizes:
        index = (slice(None),) * d + (slice(start, start + s),)
        out.append(_named(apply(P.getitem, x, index=index), "SplitBackward0"))
        start += s
    return tuple(out)


def chunk(x: Tensor, chunks: int, dim=0):
    d = normalize_dim("chunk", dim, x.ndim)
    return split(x, builtins.max(1, -(-x.shape[d] // chunks)), d)
