"""`repr` of tensors in PyTorch's format: ``tensor([1.5000, 1.5000], requires_grad=True)``, and PyTorch's print
options (`set_printoptions`, `get_printoptions`, the `printoptions` context manager).

Follows PyTorch's `_tensor_str`: one width for every element (set by the non-zero finite values of floating
tensors), fixed or scientific notation, summaries past `threshold` elements with `edgeitems` at each end of every
dim, lines of `linewidth` columns (the dtype and grad_fn suffixes wrap too).

>>> import tracegrad as tg
>>> with tg.printoptions(precision=2, threshold=5):
...     print(tg.tensor([1.12345, 2.0]), tg.arange(10))
tensor([1.12, 2.00]) tensor([0, 1, 2,  ..., 7, 8, 9])
>>> tg.tensor([1.12345])
tensor([1.1235])
"""
from __future__ import annotations

import contextlib
import dataclasses
import math

import numpy as np

from . import dtypes


@dataclasses.dataclass
class _PrintOptions:
    precision: int = 4
    threshold: float = 1000
    edgeitems: int = 3
    linewidth: int = 80
    sci_mode: bool | None = None


PRINT_OPTS = _PrintOptions()
_PROFILES = {"default": (4, 1000, 3, 80), "short": (2, 1000, 2, 80), "full": (4, math.inf, 3, 80)}


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None, profile=None, sci_mode=None):
    """Set how tensors print, as ``torch.set_printoptions``: `precision` digits after the point (4), summarize past
    `threshold` elements (1000) showing `edgeitems` (3) at each end, `linewidth` columns (80); `profile` is
    'default', 'short' or 'full' (the others override it); `sci_mode` True/False forces scientific notation on or
    off, None (the default, also when not passed) chooses it per tensor.

    >>> import tracegrad as tg
    >>> tg.set_printoptions(sci_mode=True)
    >>> tg.tensor([1.5, 250.0])
    tensor([1.5000e+00, 2.5000e+02])
    >>> tg.set_printoptions(profile="default")
    """
    if profile is not None:
        if profile not in _PROFILES:
            raise ValueError(f"set_printoptions: profile must be one of {sorted(_PROFILES)}, got {profile!r}")
        (PRINT_OPTS.precision, PRINT_OPTS.threshold, PRINT_OPTS.edgeitems,
         PRINT_OPTS.linewidth) = _PROFILES[profile]
    if precision is not None:
        PRINT_OPTS.precision = precision
    if threshold is not None:
        PRINT_OPTS.threshold = threshold
    if edgeitems is not None:
        PRINT_OPTS.edgeitems = edgeitems
    if linewidth is not None:
        PRINT_OPTS.linewidth = linewidth
    PRINT_OPTS.sci_mode = sci_mode  # NOTE: as PyTorch: a call without sci_mode sets it back to automatic


def get_printoptions() -> dict:
    """The current print options, as keyword arguments for `set_printoptions`."""
    return dataclasses.asdict(PRINT_OPTS)


@contextlib.contextmanager
def printoptions(**kwargs):
    """`set_printoptions(**kwargs)` for the duration of a `with` block."""
    old = get_printoptions()
    set_printoptions(**kwargs)
    try:
        yield
    finally:
        set_printoptions(**old)


def _summarized(data: np.ndarray) -> np.ndarray:
    """The elements a summarized printout shows (PyTorch's `get_summarized_data`, quirks included: with
    edgeitems=0 a vector keeps every element, a matrix none)."""
    e = PRINT_OPTS.edgeitems
    if data.ndim == 0:
        return data
    if data.ndim == 1:
        return np.concatenate([data[:e], data[-e:]]) if data.shape[0] > 2 * e else data
    if not e:
        return np.empty((0,) * data.ndim, data.dtype)
    rows = range(data.shape[0]) if data.shape[0] <= 2 * e else [*range(e), *range(data.shape[0] - e, data.shape[0])]
    return np.stack([_summarized(data[i]) for i in rows])


class _Formatter:
    def __init__(self, shown: np.ndarray):
        self.floating = shown.dtype.kind == "f"
        self.int_mode, self.sci = True, False
        self.width = 1
        p = PRINT_OPTS.precision
        if not self.floating:
            self.width = max((len(self._plain(v)) for v in shown.ravel().tolist()), default=1)
            return
        values = shown[np.isfinite(shown) & (shown != 0)].astype(np.float64)
        if values.size == 0:
            return
        self.int_mode = bool(np.all(values == np.ceil(values)))
        big, small = np.abs(values).max(), np.abs(values).min()
        auto = big / small > 1000.0 or big > 1.0e8 or small < 1.0e-4
        self.sci = auto if PRINT_OPTS.sci_mode is None else PRINT_OPTS.sci_mode
        if self.sci:
            self.width = max(len(f"{v:.{p}e}") for v in values.tolist())
        elif self.int_mode:
            self.width = max(len(f"{v:.0f}") + 1 for v in values.tolist())
        else:
            self.width = max(len(f"{v:.{p}f}") for v in values.tolist())

    @staticmethod
    def _plain(v):
        return ("True" if v else "False") if isinstance(v, (bool, np.bool_)) else str(v)

    def __call__(self, v) -> str:
        if not self.floating:
            s = self._plain(v)
        else:
            v = float(v)
            p = PRINT_OPTS.precision
            if self.sci:
                s = f"{v:{self.width}.{p}e}"
            elif self.int_mode:
                s = f"{v:.0f}" + ("" if math.isinf(v) or math.isnan(v) else ".")
            else:
                s = f"{v:.{p}f}"
        return s.rjust(self.width)


def _vector(data, indent, summarize, fmt) -> str:
    e = PRINT_OPTS.edgeitems
    per_line = max(1, (PRINT_OPTS.linewidth - indent) // (fmt.width + 2))
    if summarize and not e:
        cells = ["..."]
    elif summarize and data.shape[0] > 2 * e:
        cells = [fmt(v) for v in data[:e].tolist()] + [" ..."] + [fmt(v) for v in data[-e:].tolist()]
    else:
        cells = [fmt(v) for v in data.tolist()]
    lines = [", ".join(cells[i:i + per_line]) for i in range(0, len(cells), per_line)]
    return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"


def _nested(data, indent, summarize, fmt) -> str:
    if data.ndim == 0:
        return fmt(data.item())
    if data.ndim == 1:
        return _vector(data, indent, summarize, fmt)
    n, e = data.shape[0], PRINT_OPTS.edgeitems
    rows = range(n) if not (summarize and n > 2 * e) else [*range(e), None, *range(n - e, n)]
    parts = ["..." if i is None else _nested(data[i], indent + 1, summarize, fmt) for i in rows]
    return "[" + ("," + "\n" * (data.ndim - 1) + " " * (indent + 1)).join(parts) + "]"


def format_data(data: np.ndarray, indent: int) -> str:
    """The bracketed elements of `data`, as PyTorch's `_tensor_str` prints them at column `indent`."""
    if data.size == 0:
        return "[]"
    summarize = data.size > PRINT_OPTS.threshold
    fmt = _Formatter(_summarized(data) if summarize else data)
    return _nested(data, indent, summarize, fmt)


def _add_suffixes(text: str, suffixes: list, indent: int) -> str:
    """`text` and its suffixes (``dtype=...``), each on the same line while it fits in the line width."""
    parts = [text]
    last_line_len = len(text) - text.rfind("\n") + 1
    for suffix in suffixes:
        if last_line_len + len(suffix) + 2 > PRINT_OPTS.linewidth:
            parts.append(",\n" + " " * indent + suffix)
            last_line_len = indent + len(suffix)
        else:
            parts.append(", " + suffix)
            last_line_len += len(suffix) + 2
    return "".join(parts) + ")"


def tensor_repr(t) -> str:
    data = t._data
    prefix = "tensor("
    suffixes = []
    if data.size == 0:
        if data.ndim != 1:
            suffixes.append(f"size={tuple(data.shape)}")
        if t.dtype is not dtypes.get_default_dtype():
            suffixes.append(f"dtype={t.dtype}")
    else:
        if not PRINT_OPTS.edgeitems:
            suffixes.append(f"size={tuple(data.shape)}")
        if t.dtype not in (dtypes.get_default_dtype(), dtypes.int64, dtypes.bool_):
            suffixes.append(f"dtype={t.dtype}")
    if t.grad_fn is not None:
        suffixes.append(f"grad_fn=<{t.grad_fn.name()}>")
    elif t.requires_grad:
        suffixes.append("requires_grad=True")
    return _add_suffixes(prefix + format_data(data, len(prefix)), suffixes, len(prefix))
