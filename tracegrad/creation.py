"""Tensor creation: `tensor`, `zeros`, `ones`, `full`, `arange`, `rand`, `randn`, ... and `*_like`.

>>> import tracegrad as tg
>>> tg.zeros(2, 3).shape
tracegrad.Size([2, 3])
>>> tg.tensor([1, 2]).dtype, tg.tensor([1.0, 2]).dtype
(tracegrad.int64, tracegrad.float32)
>>> tg.randn(size=(2, 3)).shape, tg.full(size=(2,), fill_value=7)
(tracegrad.Size([2, 3]), tensor([7, 7]))
"""
from __future__ import annotations

import numpy as np

from . import devices, dtypes
from ._tensor import Tensor, apply
from .autograd.grad_mode import STATE as _GRAD
from .ops import primitives as P
from .random import default_generator


def _to_array(data, dtype=None) -> np.ndarray:
    """Copy `data` into a new array with PyTorch's dtype inference (Python floats -> default float)."""
    if isinstance(data, Tensor):
        arr = data._data.copy()
    elif isinstance(data, (np.ndarray, np.generic)):
        arr = np.array(data, copy=True)
        if dtype is None:
            arr = _supported(arr)
    else:
        try:
            arr = np.array(data)
        except ValueError as e:
            raise ValueError(f"tensor: expected a rectangular nested sequence of numbers ({e})") from None
        if arr.dtype == object or arr.dtype.kind not in "biuf":
            raise TypeError(f"tensor: could not convert {type(data).__name__} to a tensor; expected numbers, "
                            f"nested lists of numbers, a numpy array or a Tensor")
        # NOTE: Python numbers give float64, int64 or bool arrays; any other dtype comes from numpy scalars, which
        # keep their dtype as in PyTorch (np.float64 ones too: a float64 array holding one keeps float64)
        if dtype is None:
            if arr.dtype == np.float64 and not _has_numpy_float64(data):  # Python floats: the default dtype
                arr = arr.astype(dtypes.get_default_dtype().np)
            else:
                arr = _supported(arr)
    if dtype is not None:
        arr = arr.astype(dtypes.as_dtype(dtype).np)
    dtypes.from_numpy_dtype(arr.dtype)  # raises for unsupported dtypes
    return arr


def _supported(arr: np.ndarray) -> np.ndarray:
    """`arr`, or for a dtype tracegrad lacks (uint16, uint32, uint64, float128) a copy as int64 or the default
    float dtype."""
    if arr.dtype in dtypes._BY_NP:
        return arr
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    return arr.astype(dtypes.get_default_dtype().np) if arr.dtype.kind == "f" else arr


def _has_numpy_float64(data) -> bool:
    """Whether nested lists hold a numpy float64 scalar, which (as a 0-d array would) keeps float64."""
    if isinstance(data, np.float64):
        return True
    if isinstance(data, (list, tuple)):
        return any(_has_numpy_float64(d) for d in data)
    return False


def _new(arr: np.ndarray, requires_grad: bool) -> Tensor:
    t = Tensor._make(arr)
    t._inf = _GRAD.inference
    if requires_grad:
        t.requires_grad_(True)
    return t


def tensor(data, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A new leaf tensor holding a copy of `data` (numbers, nested lists, numpy arrays)."""
    devices.check(device, "tensor")
    return _new(_to_array(data, dtype), requires_grad)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    devices.check(device, "as_tensor")
    if isinstance(data, Tensor) and (dtype is None or dtypes.as_dtype(dtype) is data.dtype):
        return data
    if isinstance(data, np.ndarray) and dtype is None and data.dtype in dtypes._BY_NP:
        return from_numpy(data)
    return tensor(data, dtype)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing memory with `array`, of the same dtype (bool, uint8, int8, int16, int32, int64, float16,
    float32 or float64).

    >>> import numpy as np, tracegrad as tg
    >>> tg.from_numpy(np.array([1, 2], np.int16))
    tensor([1, 2], dtype=tracegrad.int16)
    """
    if not isinstance(array, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(array).__name__})")
    dtypes.from_numpy_dtype(array.dtype)
    return _new(array, False)


def _size(size) -> tuple:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = size[0]
    for s in size:
        if not isinstance(s, (int, np.integer)) or isinstance(s, bool):
            raise TypeError(f"size must be a tuple of ints, but got an element of type {type(s).__name__}")
        if s < 0:
            raise RuntimeError(f"Trying to create tensor with negative dimension {s}: {list(size)}")
    return tuple(int(s) for s in size)


def _shape(args: tuple, size, where: str) -> tuple:
    """The shape of ``where(*args)`` or ``where(size=...)`` (PyTorch accepts both, not together)."""
    if size is not None:
        if args:
            raise TypeError(f"{where}() got multiple values for argument 'size'")
        args = (size,)
    return _size(args)


def _dt(dtype, default=None):
    return dtypes.as_dtype(dtype) if dtype is not None else (default or dtypes.get_default_dtype())


def zeros(*args, size=None, dtype=None, requires_grad=False, device=None) -> Tensor:
    devices.check(device, "zeros")
    return _new(np.zeros(_shape(args, size, "zeros"), _dt(dtype).np), requires_grad)


def ones(*args, size=None, dtype=None, requires_grad=False, device=None) -> Tensor:
    devices.check(device, "ones")
    return _new(np.ones(_shape(args, size, "ones"), _dt(dtype).np), requires_grad)


def empty(*args, size=None, dtype=None, requires_grad=False, device=None) -> Tensor:
    devices.check(device, "empty")
    return _new(np.empty(_shape(args, size, "empty"), _dt(dtype).np), requires_grad)


def full(size, fill_value, dtype=None, requires_grad=False, device=None) -> Tensor:
    """`size` filled with `fill_value`; the dtype follows the value (bool, int64 or default float)."""
    devices.check(device, "full")
    dt = _dt(dtype, dtypes.scalar_dtype(fill_value))
    return _new(np.full(_size((size,)), fill_value, dt.np), requires_grad)


def arange(start, end=None, step=1, dtype=None, requires_grad=False, device=None) -> Tensor:
    devices.check(device, "arange")
    if end is None:
        start, end = 0, start
    if step == 0:
        raise RuntimeError("arange: step must be nonzero")
    if (end - start) * step < 0:
        raise RuntimeError(f"arange: upper bound and larger bound inconsistent with step sign "
                           f"(start={start}, end={end}, step={step})")
    floating = any(isinstance(v, float) for v in (start, end, step))
    dt = _dt(dtype, dtypes.get_default_dtype() if floating else dtypes.int64)
    return _new(np.arange(start, end, step).astype(dt.np), requires_grad)


def linspace(start, end, steps: int, dtype=None, requires_grad=False, device=None) -> Tensor:
    devices.check(device, "linspace")
    return _new(np.linspace(start, end, steps).astype(_dt(dtype).np), requires_grad)


def eye(n: int, m=None, dtype=None, requires_grad=False, device=None) -> Tensor:
    devices.check(device, "eye")
    return _new(np.eye(n, m, dtype=_dt(dtype).np), requires_grad)


def _float_dt(dtype, name):
    dt = _dt(dtype)
    if not dt.is_floating_point:
        raise RuntimeError(f"{name}: expected a floating point dtype, got {dt}")
    return dt


def rand(*args, size=None, dtype=None, generator=None, requires_grad=False, device=None) -> Tensor:
    """Uniform samples in [0, 1) from the module-level generator (or `generator`)."""
    devices.check(device, "rand")
    return _draw(P.uniform, _shape(args, size, "rand"), _float_dt(dtype, "rand"), generator, requires_grad)


def randn(*args, size=None, dtype=None, generator=None, requires_grad=False, device=None) -> Tensor:
    """Standard normal samples from the module-level generator (or `generator`)."""
    devices.check(device, "randn")
    return _draw(P.normal, _shape(args, size, "randn"), _float_dt(dtype, "randn"), generator, requires_grad)


def randint(low, high=None, size=(), dtype=None, generator=None, requires_grad=False, device=None) -> Tensor:
    """Integers in [low, high) (`randint(high, size)` or `randint(low, high, size)`)."""
    devices.check(device, "randint")
    if high is None or isinstance(high, (tuple, list)):
        low, high, size = 0, low, high if high is not None else size
    if high <= low:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={low} >= to={high}")
    return _draw(P.randint, _size((size,)), _dt(dtype, dtypes.int64), generator, requires_grad, low=int(low),
                 high=int(high))


def randperm(n: int, dtype=None, generator=None) -> Tensor:
    return _draw(P.randperm, (int(n),), _dt(dtype, dtypes.int64), generator, False)


def _draw(op, shape, dtype, generator, requires_grad, **params) -> Tensor:
    """Random draws are registry ops (a traced graph draws again at every call)."""
    t = apply(op, shape=shape, dtype=dtype, generator=generator or default_generator, **params)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _like(fn):
    def like(x, dtype=None, requires_grad=False, **kw):
        return fn(*x.shape, dtype=dtype or x.dtype, requires_grad=requires_grad, **kw)
    like.__name__ = fn.__name__ + "_like"
    like.__doc__ = f"`{fn.__name__}` with the shape (and by default the dtype) of `x`."
    return like


zeros_like, ones_like, empty_like, rand_like, randn_like = map(_like, (zeros, ones, empty, rand, randn))


def full_like(x, fill_value, dtype=None, requires_grad=False, device=None) -> Tensor:
    devices.check(device, "full_like")
    return full(tuple(x.shape), fill_value, dtype=dtype or x.dtype, requires_grad=requires_grad)


def randint_like(x, low, high=None, dtype=None, generator=None) -> Tensor:
    return randint(low, high, tuple(x.shape), dtype=dtype or x.dtype, generator=generator)
