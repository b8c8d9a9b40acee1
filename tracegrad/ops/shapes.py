"""Shape rules shared by the registry's `infer` functions; each raises the user-facing error."""
from __future__ import annotations

import numpy as np


def fmt(shape) -> str:
    return "[" + ", ".join(str(int(s)) for s in shape) + "]"


def broadcast_shapes(op: str, *shapes) -> tuple:
    """PyTorch/numpy broadcasting, with PyTorch's message naming the op and both shapes."""
    ndim = max(len(s) for s in shapes)
    out = [1] * ndim
    for k, s in enumerate(shapes):
        for i, n in enumerate(s, ndim - len(s)):
            if n == out[i] or n == 1:
                continue
            if out[i] == 1:
                out[i] = n
                continue
            j = next(j for j in range(k) if len(shapes[j]) > i - (ndim - len(shapes[j])) >= 0
                     and shapes[j][i - (ndim - len(shapes[j]))] == out[i])
            raise RuntimeError(
                f"{op}: shapes {fmt(shapes[j])} and {fmt(s)} are not broadcastable: the size of tensor a "
                f"({out[i]}) must match the size of tensor b ({n}) at non-singleton dimension {i}")
    return tuple(out)


def broadcastable_to(shape, target) -> bool:
    """Whether `shape` broadcasts to exactly `target` (as expand and index_put need)."""
    return len(shape) <= len(target) and all(n in (1, t) for n, t in zip(reversed(shape), reversed(target)))


def normalize_dim(op: str, dim: int, ndim: int) -> int:
    lo, hi = (-ndim, ndim - 1) if ndim else (-1, 0)
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
        raise TypeError(f"{op}: dim must be an int, got {type(dim).__name__}")
    if not lo <= dim <= hi:
        raise IndexError(f"{op}: Dimension out of range (expected to be in range of [{lo}, {hi}], but got {dim})")
    return int(dim) % max(ndim, 1)


def normalize_dims(op: str, dim, ndim: int) -> tuple:
    """None -> all dims; int or sequence -> sorted tuple of non-negative dims (no repeats)."""
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
    out = tuple(sorted(normalize_dim(op, d, ndim) for d in dims))
    if len(set(out)) != len(out):
        raise RuntimeError(f"{op}: dim {tuple(dims)} appears multiple times in the list of dims")
    return out


def reduced_shape(shape, axes, keepdim) -> tuple:
    if keepdim:
        return tuple(1 if i in axes else n for i, n in enumerate(shape))
    return tuple(n for i, n in enumerate(shape) if i not in axes)


def index_shape(shape, index) -> tuple:
    """Shape of x[index] without touching data (a zero-stride stand-in of the right shape)."""
    return np.broadcast_to(np.empty((), np.bool_), shape)[index].shape
