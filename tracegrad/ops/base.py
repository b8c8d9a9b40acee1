"""Shared helpers of the user-facing ops (operands, constants, promotion) and dtype conversions."""
from __future__ import annotations

import numpy as np

from .. import _tracing, devices, dtypes
from .._tensor import Tensor, apply
from ..autograd.node import Node
from ..dtypes import result_type
from . import primitives as P


def _named(t: Tensor, name: str) -> Tensor:
    """Give a composite's output node the composite's backward name."""
    if type(t.grad_fn) is Node:
        t.grad_fn._name = name
    return t


_CONSTANTS: dict = {}


def _const(value, np_dtype) -> Tensor:
    """A Python number as a 0-dim tensor operand; cached, since `x * 0.5` in a loop repeats the same one.

    These tensors are internal (graph inputs that never require grad) and are never written to.
    """
    # NOTE: 0.0 == -0.0 with equal hashes: key zeros by their text, or x * -0.0 would lose its sign
    key = (type(value), value if value else repr(value), np_dtype)
    t = _CONSTANTS.get(key)
    if t is None:
        if len(_CONSTANTS) > 4096:
            _CONSTANTS.clear()
        t = _CONSTANTS[key] = Tensor._make(np.array(value).astype(np_dtype))  # ints wrap (int8 + 300), as in PyTorch
    return t


def _operand(x, dtype) -> Tensor:
    if isinstance(x, Tensor):
        return x if x._data.dtype == dtype.np else cast(x, dtype)
    if isinstance(x, _tracing.SymbolicScalar):  # a number that changes from call to call: a graph value
        return x.as_operand(dtype)
    return _const(x, dtype.np)


def _is_one(alpha) -> bool:
    """Whether a scale factor is the literal 1 (a traced number never is: it may change at the next call)."""
    return type(alpha) in (int, float) and alpha == 1


def _binary(op, a, b) -> Tensor:
    if isinstance(a, Tensor):
        if isinstance(b, Tensor):
            if a._data.dtype is b._data.dtype:
                return apply(op, a, b)
        elif (type(b) is float and a._data.dtype.kind == "f") or (type(b) is int and a._data.dtype.kind in "fi"):
            return apply(op, a, _const(b, a._data.dtype))  # fast path of PyTorch's rule: the tensor's dtype wins
    dt = result_type(a, b)
    return apply(op, _operand(a, dt), _operand(b, dt))


def _floating(x: Tensor) -> Tensor:
    """Integer and bool inputs of float-valued ops are promoted to the default float dtype."""
    return x if x._data.dtype.kind == "f" else cast(x, dtypes.get_default_dtype())


def _tensor(x) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"expected a Tensor, got {type(x).__name__}")
    return x


# ------------------------------------------------------------------------------------------ dtype
def cast(x: Tensor, dtype) -> Tensor:
    return apply(P.cast, x, dtype=dtypes.as_dtype(dtype))


def to(x: Tensor, *args, dtype=None, device=None, copy=False, non_blocking=False, memory_format=None):
    """`x.to(dtype)`, `x.to(device)`, `x.to(device, dtype)`, `x.to(other)`: a cast; the device must be the CPU."""
    dtype = devices.to_arguments(args, dtype, device, "Tensor.to")
    if dtype is None or dtypes.as_dtype(dtype) is x.dtype:
        return clone(x) if copy else x
    return cast(x, dtype)


def type_as(x, other):
    return to(x, other.dtype)


def float_(x):
    return to(x, dtypes.float32)


def double(x):
    return to(x, dtypes.float64)


def long(x):
    return to(x, dtypes.int64)


def bool__(x):
    return to(x, dtypes.bool_)


def clone(x: Tensor) -> Tensor:
    return _named(apply(P.cast, x, dtype=x.dtype), "CloneBackward0")


def contiguous(x: Tensor) -> Tensor:
    return x if x._data.flags.c_contiguous else clone(x)
