"""tracegrad's dtypes (PyTorch's bool, uint8, int8, int16, int32, int64, float16, float32, float64) and
PyTorch's type-promotion rules.

>>> import tracegrad as tg
>>> (tg.tensor([1, 2]) + 0.5).dtype
tracegrad.float32
>>> tg.promote_types(tg.uint8, tg.int8), (tg.tensor([1, 2], dtype=tg.int8) + 1000).dtype
(tracegrad.int16, tracegrad.int8)
"""
from __future__ import annotations

import builtins

import numpy as np

from ._tracing import SymbolicScalar


class DType:
    """A tensor element type; compares by identity, prints like ``tracegrad.float32``."""

    __slots__ = ("name", "np", "is_floating_point", "is_signed", "is_complex", "itemsize", "category",
                 "tensor_type")

    def __init__(self, name: str, np_dtype, category: int, tensor_type: str):
        self.name = name
        self.tensor_type = tensor_type  # PyTorch's legacy type name, used in messages: 'FloatTensor'
        self.np = np.dtype(np_dtype)
        self.category = category  # 0 bool, 1 integer, 2 floating
        self.is_floating_point = category == 2
        self.is_signed = category != 0 and self.np.kind != "u"  # as PyTorch: bool and uint8 are unsigned
        self.is_complex = False
        self.itemsize = self.np.itemsize

    def __repr__(self):
        return f"tracegrad.{self.name}"

    def __reduce__(self):
        return (from_numpy_dtype, (self.np.str,))


bool_ = DType("bool", np.bool_, 0, "BoolTensor")
uint8 = DType("uint8", np.uint8, 1, "ByteTensor")
int8 = DType("int8", np.int8, 1, "CharTensor")
int16 = DType("int16", np.int16, 1, "ShortTensor")
int32 = DType("int32", np.int32, 1, "IntTensor")
int64 = DType("int64", np.int64, 1, "LongTensor")
float16 = DType("float16", np.float16, 2, "HalfTensor")
float32 = DType("float32", np.float32, 2, "FloatTensor")
float64 = DType("float64", np.float64, 2, "DoubleTensor")

ALL = (bool_, uint8, int8, int16, int32, int64, float16, float32, float64)
_BY_NP = {d.np: d for d in ALL}
_BY_NAME = {"bool": bool_, "uint8": uint8, "int8": int8, "int16": int16, "short": int16, "int32": int32,
            "int": int32, "int64": int64, "long": int64, "float16": float16, "half": float16, "float32": float32,
            "float": float32, "float64": float64, "double": float64}
_SUPPORTED = ", ".join(d.name for d in ALL)


def _promote_rule(a: DType, b: DType) -> DType:
    """PyTorch's promote_types: the higher category wins (bool < integer < floating); within a category the
    wider type, and an unsigned with a signed integer gives the smallest signed one that holds both ranges."""
    # NOTE: numpy's rules differ (int64 + float32 -> float64, int8 + float16 -> float16 only for scalars...),
    # so the table is derived from PyTorch's rule and numpy is never asked.
    if a is b:
        return a
    if a.category != b.category:
        return a if a.category > b.category else b
    if a.is_signed == b.is_signed:  # two floats, or two signed integers (bool is alone in its category)
        return a if a.itemsize >= b.itemsize else b
    u, s = (b, a) if a.is_signed else (a, b)
    return next(d for d in (int16, int32, int64) if d.itemsize > u.itemsize and d.itemsize >= s.itemsize)


_PROMOTE = {(a, b): _promote_rule(a, b) for a in ALL for b in ALL}

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
        raise TypeError(f"numpy dtype {np.dtype(np_dtype)} is not supported by tracegrad; supported: {_SUPPORTED}")
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
        raise TypeError(f"unknown dtype {d!r}; supported: {_SUPPORTED}") from None


def promote_types(type1, type2) -> DType:
    """The dtype an operation on tensors of `type1` and `type2` computes in, as ``torch.promote_types``."""
    try:
        return _PROMOTE[type1, type2]
    except KeyError:
        return _PROMOTE[as_dtype(type1), as_dtype(type2)]


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


def _number(v) -> str:
    return f"{v:g}"  # as PyTorch prints them (C++'s default stream format)


class iinfo:  # noqa: N801 - PyTorch's name
    """The range of an integer dtype, as ``torch.iinfo``: ``bits``, ``min``, ``max`` and ``dtype`` (its name).

    >>> import tracegrad as tg
    >>> tg.iinfo(tg.int8)
    iinfo(min=-128, max=127, dtype=int8)
    >>> tg.iinfo(tg.uint8).max
    255
    """

    def __init__(self, type):  # noqa: A002 - PyTorch's argument name
        if not isinstance(type, DType):
            raise TypeError(f"iinfo(): argument 'type' (position 1) must be tracegrad.dtype, not "
                            f"{builtins.type(type).__name__}")
        if type.category != 1:
            if type is bool_:
                raise TypeError(f"{type} is not supported by tracegrad.iinfo")
            raise TypeError("tracegrad.iinfo() requires an integer input type. Use tracegrad.finfo to handle "
                            "'tracegrad.iinfo'")
        info = np.iinfo(type.np)
        self.bits, self.min, self.max, self.dtype = info.bits, int(info.min), int(info.max), type.name

    def __eq__(self, other):
        return isinstance(other, iinfo) and other.dtype == self.dtype

    def __hash__(self):
        return hash(("iinfo", self.dtype))

    def __repr__(self):
        return f"iinfo(min={_number(self.min)}, max={_number(self.max)}, dtype={self.dtype})"


class finfo:  # noqa: N801 - PyTorch's name
    """The numerical properties of a floating dtype (the default dtype if none), as ``torch.finfo``: ``bits``,
    ``eps``, ``max``, ``min``, ``tiny`` (= ``smallest_normal``), ``resolution`` (10**-decimal digits), ``dtype``.

    >>> import tracegrad as tg
    >>> f = tg.finfo(tg.float16)
    >>> f.max, f.eps, f.tiny, f.resolution
    (65504.0, 0.0009765625, 6.103515625e-05, 0.001)
    """

    def __init__(self, type=None):  # noqa: A002 - PyTorch's argument name
        dt = _default_float if type is None else type
        if not isinstance(dt, DType):
            raise TypeError(f"finfo(): argument 'type' (position 1) must be tracegrad.dtype, not "
                            f"{builtins.type(dt).__name__}")
        if not dt.is_floating_point:
            raise TypeError("tracegrad.finfo() requires a floating point input type. Use tracegrad.iinfo to handle "
                            "'tracegrad.finfo'")
        info = np.finfo(dt.np)
        self.bits = info.bits
        self.eps, self.max, self.min = float(info.eps), float(info.max), float(info.min)
        self.tiny = self.smallest_normal = float(info.smallest_normal)
        self.resolution = 10.0 ** -info.precision
        self.dtype = dt.name

    def __eq__(self, other):
        return isinstance(other, finfo) and other.dtype == self.dtype

    def __hash__(self):
        return hash(("finfo", self.dtype))

    def __repr__(self):
        return (f"finfo(resolution={_number(self.resolution)}, min={_number(self.min)}, max={_number(self.max)}, "
                f"eps={_number(self.eps)}, smallest_normal={_number(self.smallest_normal)}, "
                f"tiny={_number(self.tiny)}, dtype={self.dtype})")

