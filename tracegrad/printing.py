"""`repr` of tensors in PyTorch's format: ``tensor([1.5000, 1.5000], requires_grad=True)``.

Follows PyTorch's `_tensor_str`: one width for every element (set by the non-zero finite values of
floating tensors), fixed or scientific notation, summaries past 1000 elements, lines of 80 columns.
"""
from __future__ import annotations

import math

import numpy as np

from . import dtypes

THRESHOLD, EDGEITEMS, LINEWIDTH = 1000, 3, 80


def _summarized(data: np.ndarray) -> np.ndarray:
    """The elements a summarized printout shows (edge items of every dim)."""
    for axis in range(data.ndim):
        if data.shape[axis] > 2 * EDGEITEMS:
            n = data.shape[axis]
            data = np.concatenate([np.take(data, range(EDGEITEMS), axis),
                                   np.take(data, range(n - EDGEITEMS, n), axis)], axis)
    return data


class _Formatter:
    def __init__(self, shown: np.ndarray):
        self.floating = shown.dtype.kind == "f"
        self.int_mode, self.sci = True, False
        self.width = 1
        if not self.floating:
            self.width = max((len(self._plain(v)) for v in shown.ravel()), default=1)
            return
        values = shown[np.isfinite(shown) & (shown != 0)].astype(np.float64)
        if values.size == 0:
            return
        self.int_mode = bool(np.all(values == np.ceil(values)))
        big, small = np.abs(values).max(), np.abs(values).min()
        self.sci = big / small > 1000.0 or big > 1.0e8 or (not self.int_mode and small < 1.0e-4)
        self.width = max(len(self._float(v)) for v in values)

    @staticmethod
    def _plain(v):
        return ("True" if v else "False") if isinstance(v, (bool, np.bool_)) else str(v)

    def _float(self, v: float) -> str:
        if not math.isfinite(v):
            return str(v)
        if self.sci:
            return f"{v:.4e}"
        return f"{v:.0f}." if self.int_mode else f"{v:.4f}"

    def __call__(self, v) -> str:
        s = self._float(float(v)) if self.floating else self._plain(v.item() if hasattr(v, "item") else v)
        return s.rjust(self.width)


def _vector(data, indent, summarize, fmt) -> str:
    per_line = max(1, (LINEWIDTH - indent) // (fmt.width + 2))
    if summarize and data.shape[0] > 2 * EDGEITEMS:
        cells = [fmt(v) for v in data[:EDGEITEMS]] + [" ..."] + [fmt(v) for v in data[-EDGEITEMS:]]
    else:
        cells = [fmt(v) for v in data]
    lines = [", ".join(cells[i:i + per_line]) for i in range(0, len(cells), per_line)]
    return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"


def _nested(data, indent, summarize, fmt) -> str:
    if data.ndim == 0:
        return fmt(data[()])
    if data.ndim == 1:
        return _vector(data, indent, summarize, fmt)
    n = data.shape[0]
    rows = range(n) if not (summarize and n > 2 * EDGEITEMS) else \
        [*range(EDGEITEMS), None, *range(n - EDGEITEMS, n)]
    parts = ["..." if i is None else _nested(data[i], indent + 1, summarize, fmt) for i in rows]
    return "[" + ("," + "\n" * (data.ndim - 1) + " " * (indent + 1)).join(parts) + "]"


def format_data(data: np.ndarray, indent: int) -> str:
    summarize = data.size > THRESHOLD
    fmt = _Formatter(_summarized(data) if summarize else data)
    if data.ndim == 0:
        return fmt._float(float(data)) if fmt.floating else fmt._plain(data.item())
    return _nested(data, indent, summarize, fmt)


def tensor_repr(t) -> str:
    data = t._data
    extras = []
    if data.size == 0 and data.ndim != 1:
        body = f"[], size={tuple(data.shape)}"
    else:
        body = format_data(data, len("tensor("))
    implicit = (dtypes.get_default_dtype(),) if data.size == 0 else (dtypes.get_default_dtype(), dtypes.int64,
                                                                      dtypes.bool_)
    if t.dtype not in implicit:
        extras.append(f"dtype={t.dtype}")
    if t.grad_fn is not None:
        extras.append(f"grad_fn=<{t.grad_fn.name()}>")
    elif t.requires_grad:
        extras.append("requires_grad=True")
    return "tensor(" + ", ".join([body] + extras) + ")"
