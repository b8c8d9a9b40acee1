"""`repr` of tensors in PyTorch's format: ``tensor([1.5000, 1.5000], requires_grad=True)``."""
from __future__ import annotations

import numpy as np

from . import dtypes

THRESHOLD, EDGEITEMS, LINEWIDTH = 1000, 3, 80


def _float_formatter(data: np.ndarray):
    finite = data[np.isfinite(data)]
    if finite.size == 0:
        return str
    nonzero = np.abs(finite[finite != 0])
    wide = nonzero.size and (nonzero.max() / nonzero.min() > 1000.0 or nonzero.max() > 1e8)
    if np.all(finite == np.round(finite)):  # PyTorch's "int mode": 1., 2.
        return (lambda v: f"{v:.4e}") if wide else (lambda v: f"{v:.0f}.")
    if wide or (nonzero.size and nonzero.min() < 1e-4):
        return lambda v: f"{v:.4e}"
    return lambda v: f"{v:.4f}"


def _shown(data: np.ndarray) -> np.ndarray:
    """The elements a summarized printout shows (edge items only, past the threshold)."""
    if data.size <= THRESHOLD:
        return data.ravel()
    for axis in range(data.ndim):
        if data.shape[axis] > 2 * EDGEITEMS:
            data = np.concatenate([np.take(data, range(EDGEITEMS), axis),
                                   np.take(data, range(data.shape[axis] - EDGEITEMS, data.shape[axis]), axis)], axis)
    return data.ravel()


def format_data(data: np.ndarray, indent: int) -> str:
    shown = _shown(data)
    if data.dtype.kind == "f":
        f = _float_formatter(shown)
        cell = lambda v: f(float(v)) if np.isfinite(v) else str(float(v))
        key = "float_kind"
    elif data.dtype.kind == "b":
        cell, key = (lambda v: "True" if v else "False"), "bool"
    else:
        cell, key = str, "int"
    width = max((len(cell(v)) for v in shown), default=0)  # PyTorch right-aligns every element
    return np.array2string(data, separator=", ", formatter={key: lambda v: cell(v).rjust(width)},
                           threshold=THRESHOLD, edgeitems=EDGEITEMS, max_line_width=LINEWIDTH, prefix=" " * indent)


def tensor_repr(t) -> str:
    data = t._data
    extras = []
    if data.size == 0 and data.ndim != 1:
        body = f"[], size={tuple(data.shape)}"
    else:
        body = format_data(data, len("tensor("))
    if t.dtype is not dtypes.get_default_dtype() and t.dtype not in (dtypes.int64, dtypes.bool_) or \
            (data.size == 0 and t.dtype is not dtypes.get_default_dtype()):
        extras.append(f"dtype={t.dtype}")
    if t.grad_fn is not None:
        extras.append(f"grad_fn=<{t.grad_fn.name()}>")
    elif t.requires_grad:
        extras.append("requires_grad=True")
    return "tensor(" + ", ".join([body] + extras) + ")"
