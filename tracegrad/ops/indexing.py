"""Indexing: getitem with PyTorch's index semantics, index_put, masked_fill."""
from __future__ import annotations

import builtins

import numpy as np

from .. import _tracing
from .._tensor import Tensor, apply
from . import primitives as P
from .arithmetic import where
from .base import _named, _operand
from .shapes import normalize_dim


# ------------------------------------------------------------------------------------------ indexing
def _index_part(i):
    if isinstance(i, Tensor):
        if _tracing.TRACER is not None:
            _tracing.TRACER.index_tensor(i)  # so the graph reads this tensor's value at each call
        return i._data if i._data.dtype in (np.int64, np.int32, np.bool_) else _bad_index(i)
    if isinstance(i, (list, np.ndarray, range)):  # x[range(3)] is x[[0, 1, 2]], as in PyTorch
        arr = np.asarray(i)
        return arr if arr.dtype.kind in "bi" or arr.size == 0 else _bad_index(arr)
    if isinstance(i, slice) and i.step is not None and i.step <= 0:
        raise ValueError("index: step must be greater than zero")
    if i is None or i is Ellipsis or isinstance(i, (int, np.integer, slice)):
        return i
    raise IndexError(f"index: only integers, slices (`:`), ellipsis (`...`), None and long or bool tensors are "
                     f"valid indices (got {type(i).__name__})")


def _bad_index(i):
    raise IndexError(f"index: tensors used as indices must be long, int or bool tensors (got {i.dtype})")


def normalize_index(index) -> tuple:
    """A user's index as the tuple of ints, slices, None, Ellipsis and numpy arrays the primitive takes."""
    if not isinstance(index, tuple):
        index = (index,)
    return tuple(_index_part(i) for i in index)


def pytorch_index_steps(index: tuple, ndim: int):
    """Split an index mixing ints and index arrays into (basic part, advanced part), or None.

    NOTE: numpy counts ints as advanced indices, so in x[1, :2, idx] it moves idx's dims first;
    PyTorch selects with the int first and then indexes. Two steps give PyTorch's layout.
    """
    has_int = builtins.any(isinstance(i, (int, np.integer)) for i in index)
    if not (has_int and builtins.any(isinstance(i, np.ndarray) for i in index)):
        return None
    used = builtins.sum(i.ndim if isinstance(i, np.ndarray) and i.dtype == np.bool_ else 1
                        for i in index if i is not None and i is not Ellipsis)
    full = []
    for i in index:
        full.extend([slice(None)] * (ndim - used) if i is Ellipsis else [i])
    basic, advanced = [], []
    for i in full:
        if isinstance(i, np.ndarray):
            basic.extend([slice(None)] * (i.ndim if i.dtype == np.bool_ else 1))
            advanced.append(i)
        elif isinstance(i, (int, np.integer)):
            basic.append(i)
        else:
            basic.append(i)
            advanced.append(slice(None))
    return tuple(basic), tuple(advanced)


def getitem(x: Tensor, index) -> Tensor:
    index = normalize_index(index)
    steps = pytorch_index_steps(index, x.ndim)
    if steps is not None:
        return apply(P.getitem, apply(P.getitem, x, index=steps[0]), index=steps[1])
    out = apply(P.getitem, x, index=index)
    if builtins.any(isinstance(i, np.ndarray) for i in index):
        return out
    return _named(out, "SliceBackward0" if builtins.any(isinstance(i, slice) for i in index) else "SelectBackward0")


def index_add_raw(g: Tensor, shape, index, *idx) -> Tensor:
    """Zeros of `shape` with `g` added at `index` (repeats accumulate); getitem's VJP.

    `idx` are index tensors filling the `Slot`s of `index` (see `primitives.getitem`)."""
    return apply(P.index_add, g, *idx, shape=tuple(shape), index=index)


def getitem_raw(x: Tensor, index, idx=()) -> Tensor:
    """The getitem primitive on a normalized index (with `idx` filling its Slots)."""
    return apply(P.getitem, x, *idx, index=index)


def index_put(x: Tensor, value, index, idx=()) -> Tensor:
    """A copy of `x` with `x[index] = value` (functional setitem)."""
    return apply(P.index_put, x, _operand(value, x.dtype), *idx, index=index)


def masked_fill(x: Tensor, mask: Tensor, value) -> Tensor:
    return _named(where(mask, value, x), "MaskedFillBackward0")


def select(x: Tensor, dim: int, index: int) -> Tensor:
    d = normalize_dim("select", dim, x.ndim)
    return getitem(x, (slice(None),) * d + (index,))


def unbind(x: Tensor, dim=0):
    d = normalize_dim("unbind", dim, x.ndim)
    return tuple(select(x, d, i) for i in range(x.shape[d]))
