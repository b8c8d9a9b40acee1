"""The four dtypes tracegrad supports and PyTorch's type-promotion rules.

>>> import tracegrad as tg
>>> (tg.tensor([1, 2]) + 0.5).dtype
tracegrad.float32
"""
from __future__ import annotations

import numpy as np

from ._tracing import SymbolicScalar


class DType:
    """A tensor element type; compares by identity, prints like ``tracegrad.float32``."""

    __slots__ = ("name", "np", "is_floating_point", "itemsize", "category", "tensor_type")

    def __init__(self, name: str, np_dtype, category: int, tensor_type: str):
        self.name = name
        self.tensor_type = tensor_type  # PyTorch's legacy type name, used in messages: 'FloatTensor'
        self.np = np.dtype(np_dtype)
        self.category = category  # 0 bool, 1 integer, 2 floating
        self.is_floating_point = category == 2
        self.itemsize = self.np.itemsize

    def __repr__(self):
        return f"tracegrad.{self.name}"

    def __reduce__(self):
        return (from_numpy_dtype, (self.np.str,))


bool_ = DType("bool", np.bool_, 0, "BoolTensor")
int64 = DType("int64", np.int64, 1, "LongTensor")
float32 = DType("float32", np.float32, 2, "FloatTensor")
float64 = DType("float64", np.float64, 2, "DoubleTensor")

ALL = (bool_, int64, float32, float64)
# NOTE: for these four dtypes PyTorch's promote_types is "the later one in this order";
# numpy differs (int64 + float32 -> float64 in numpy, float32 in PyTorch), so we never ask numpy.
_RANK = {bool_: 0, int64: 1, float32: 2, float64: 3}
_BY_NP = {d.np: d for d in ALL}
_BY_NAME = {"bool": bool_, "int64": int64, "long": int64, "float32": float32, "float": float32,
            "float64": float64, "double": float64}

_default_float = float32


def get_default_dtype() -> DType:
    return _default_float


def set_default_dtype(d: DType) -> None:
    """Set the dtype of Python floats and float lists (float32 or float64), as ``torch.set_default_dtype``."""
    global _default_float
    d = as_dtype(d)
    if not d.is_floating_point:
        raise TypeError(f"only floating-point types are supported as the default type, got {d}")
    _default_float = d


def from_numpy_dtype(np_dtype) -> DType:
    d = _BY_NP.get(np.dtype(np_dtype))
    if d is None:
        raise TypeError(f"numpy dtype {np.dtype(np_dtype)} is not supported by tracegrad; "
                        f"supported: bool, int64, float32, float64")
    return d


def as_dtype(d) -> DType:
    """Accept a DType, a numpy dtype, a Python type or a name."""
    if isinstance(d, DType):
        return d
    if d is float:
        return _default_float
    if d is int:
        return int64
    if d is bool:
        return bool_
    if isinstance(d, str) and d in _BY_NAME:
        return _BY_NAME[d]
    try:
        return from_numpy_dtype(d)
    except TypeError:
        raise TypeError(f"unknown dtype {d!r}; supported: bool, int64, float32, float64") from None


def promote_types(a: DType, b: DType) -> DType:
    return a if _RANK[a] >= _RANK[b] else b


def _combine_categories(higher, lower):
    # NOTE: PyTorch's rule (c10 result_type): a lower-priority operand (0-dim tensor, Python scalar)
    # only changes the result when it is of a higher category (bool < integer < floating).
    if higher is None:
        return lower
    if lower is None or higher.is_floating_point:
        return higher
    if higher is bool_ or lower.is_floating_point:
        return promote_types(higher, lower)
    return higher


def result_type(*operands) -> DType:
    """PyTorch's type promotion over tensors and Python scalars.

    Dimensioned tensors take priority over 0-dim tensors, which take priority over Python scalars;
    a lower tier only matters when its category (bool < int < float) is higher.
    """
    dim = zero = wrapped = None
    for o in operands:
        data = getattr(o, "_data", None)  # a Tensor's array (numpy scalars count as Python numbers)
        if data is not None:
            d = _BY_NP[data.dtype]
            if data.ndim:
                dim = d if dim is None else promote_types(dim, d)
            else:
                zero = d if zero is None else promote_types(zero, d)
        else:
            d = scalar_dtype(o)
            wrapped = d if wrapped is None else promote_types(wrapped, d)
    return _combine_categories(dim, _combine_categories(zero, wrapped))


def scalar_dtype(value) -> DType:
    """The dtype a Python scalar takes as an operand: bool, int64, or the default float."""
    if isinstance(value, SymbolicScalar):  # a number computed while tracing: the Python type it stands for
        value = value.python_type()
    if isinstance(value, (bool, np.bool_)):
        return bool_
    if isinstance(value, (int, np.integer)):
        return int64
    if isinstance(value, (float, np.floating)):
        return _default_float
    raise TypeError(f"unsupported operand type {type(value).__name__}; expected a Tensor or a Python number")
