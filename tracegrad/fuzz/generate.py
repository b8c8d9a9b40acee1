"""Random programs, built by running them: each proposed statement is executed on the first call's inputs.

`generate(seed, ...)` grows a `Program` one statement at a time. A template proposes a statement over
the variables defined so far (chosen by their shapes and dtypes), the builder runs it eagerly in a
namespace holding the values of call 0, and keeps it only if it runs and its result is finite; so shape
and dtype rules never have to be restated here, and a template may propose freely.

Where the ops come from, so that new ones are fuzzed without touching this file:

* the registry: every elementwise primitive of arity 1 or 2 reachable as ``tg.<name>`` (and Python's
  operators for the arithmetic and comparison ones);
* `tests/op_table.py` (when the source tree is there): every row whose ``fn`` is a self-contained lambda
  runs as ``(lambda m, x: ...)(tg, v1)`` on inputs fitted to one of the row's shapes and domain;
* templates for what neither can express with free shapes: reductions with dim/keepdim, movement and
  views, matmul, indexing with ints, slices and index tensors, in-place ops and views (also under
  ``no_grad``), data-dependent branches and loops behind guards, random draws, casts, an optimizer step.
"""
from __future__ import annotations

import ast
import importlib.util
import math
import sys
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import tracegrad as tg
from tracegrad.ops.registry import REGISTRY, Kind

from .program import Arg, Program, Stmt

FLOATS = ("float32", "float64")

# Python's operators for the binary primitives that have one; the others are called as tg.<name>(a, b)
_SYMBOLS = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**", "remainder": "%", "floor_divide": "//",
            "eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "bitwise_and": "&",
            "bitwise_or": "|", "bitwise_xor": "^"}
# operands kept away from the values where an op is undefined (the rest of the domain is free)
_AWAY = "tg.where({0} >= 0, {0} + 0.5, {0} - 0.5)"
_POSITIVE = "({0}.abs() + 0.5)"
_DOMAINS = {"real": "{0}", "positive": _POSITIVE, "away": _AWAY, "unit": "({0}.sigmoid() * 0.8 + 0.1)",
            "prob": "({0}.sigmoid() * 0.9 + 0.05)", "big": "({0} * 50.0)"}


def _registry_ops(arity: int) -> list:
    """Elementwise primitives of `arity` that user code reaches by name (new ones are picked up here)."""
    out = []
    for name, op in REGISTRY.items():
        if op.kind is Kind.ELEMENTWISE and op.arity == arity and name != "cast":
            api = name.rstrip("_")
            if name in _SYMBOLS or hasattr(tg, api):
                out.append(name)
    return out


UNARY = _registry_ops(1)
BINARY = _registry_ops(2)


@dataclass(frozen=True)
class Row:
    """An op_table row usable as a statement: its lambda's source and the shapes/domain it wants."""

    name: str
    source: str
    shapes: tuple
    domain: str


def load_rows(path=None) -> list:
    """The rows of tests/op_table.py whose ``fn`` is a lambda that names nothing but ``m``, ``np``, ``math``."""
    path = Path(path) if path else Path(__file__).resolve().parents[2] / "tests" / "op_table.py"
    if not path.exists():
        return []
    name = "_tracegrad_fuzz_op_table"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    text = path.read_text()
    sources = {}
    for node in ast.walk(ast.parse(text)):
        if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Case" and len(node.args) >= 2
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[1], ast.Lambda)):
            lam = node.args[1]
            params = {a.arg for a in lam.args.args}
            free = {n.id for n in ast.walk(lam.body) if isinstance(n, ast.Name)} - params - {"np", "math"}
            if not free:
                sources[node.args[0].value] = " ".join(ast.get_source_segment(text, lam).split())
    return [Row(c.name, sources[c.name], tuple(tuple(map(tuple, v)) for v in c.shapes), c.domain)
            for c in module.CASES if c.name in sources]


def _numel(shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


class Builder:
    """The program being generated, and the values of call 0 its statements computed."""

    def __init__(self, seed: int, rng: np.random.Generator, dtype: str, rows: list):
        self.seed, self.rng, self.dtype, self.rows = seed, rng, dtype, rows
        self.args: list = []
        self.stmts: list = []
        self.meta: dict = {}   # variable -> (shape, dtype name, requires_grad)
        self.env: dict = {"tg": tg, "np": np, "math": math, "r": lambda k: np.random.default_rng([seed, 0, k])}
        self.n = 0
        self.guards = True  # statements whose path or shape depends on values (branches, mask indexing)
        self.slices = True  # fit() may slice a bigger variable (getitem: numba runs it outside its kernels)

    # ------------------------------------------------------------------ variables
    def new_arg(self, shape, dtype=None, requires_grad=True, kind="float", high=1) -> str:
        key = self.args[-1].key + 1 if self.args else 0
        dtype = "int64" if kind == "index" else (dtype or self.dtype)
        arg = Arg(f"a{key}", key, tuple(int(d) for d in shape), dtype, requires_grad and kind == "float", kind, high)
        exec(arg.source(), self.env)  # noqa: S102 - generated code
        self.args.append(arg)
        self._note(arg.name)
        return arg.name

    def _note(self, name):
        t = self.env[name]
        self.meta[name] = (tuple(t.shape), t.dtype.name if hasattr(t.dtype, "name") else str(t.dtype), t.requires_grad)

    def names(self, floats=False, grad=False, ints=False, ndim_min=0, ndim_max=9) -> list:
        out = []
        for name, (shape, dt, rg) in self.meta.items():
            if floats and dt not in FLOATS or ints and dt not in ("int64", "bool") or grad and not rg:
                continue
            if ndim_min <= len(shape) <= ndim_max:
                out.append(name)
        return out

    def pick(self, **kw) -> str | None:
        """A variable, preferring the recent ones (so programs are chains more than fans)."""
        names = self.names(**kw)
        if not names:
            return None
        w = np.arange(1, len(names) + 1, dtype=float) ** 2
        return names[int(self.rng.choice(len(names), p=w / w.sum()))]

    def shape(self, name) -> tuple:
        return self.meta[name][0]

    def dt(self, name) -> str:
        return self.meta[name][1]

    def fresh(self) -> str:
        return f"v{self.n}"

    def rand_shape(self, ndim=None) -> tuple:
        if ndim is None:
            ndim = int(self.rng.choice(4, p=[0.1, 0.3, 0.4, 0.2]))
        return tuple(int(d) for d in self.rng.integers(1, 5, ndim))

    def fit(self, shape, dtype=None, domain="{0}") -> str:
        """An expression of `shape` built from a variable (sliced and reshaped), or a new argument."""
        dtype = dtype or self.dtype
        n = _numel(shape)
        cands = [v for v in self.names(floats=True)
                 if _numel(self.shape(v)) == n or self.slices and _numel(self.shape(v)) > n]
        if cands and self.rng.random() < 0.75:
            v = cands[int(self.rng.integers(len(cands)))]
            s = self.shape(v)
            if s == tuple(shape):
                expr = v
            elif _numel(s) == n:
                expr = f"{v}.reshape({tuple(shape)!r})"
            else:
                expr = f"{v}.reshape(-1)[:{n}].reshape({tuple(shape)!r})"
            if self.dt(v) != dtype:
                expr = f"{expr}.to(tg.{dtype})"
        else:
            expr = self.new_arg(shape, dtype, requires_grad=self.rng.random() < 0.8)
        return domain.format(expr)

    def broadcast_partner(self, shape) -> tuple:
        """A shape that broadcasts with `shape`: itself, a suffix, some dims set to 1, or one more dim."""
        k = self.rng.integers(5)
        if k == 0:
            return tuple(shape)
        if k == 1:
            return tuple(shape[int(self.rng.integers(len(shape) + 1)):])
        if k == 2:
            return tuple(1 if self.rng.random() < 0.5 else d for d in shape)
        if k == 3:
            return (int(self.rng.integers(1, 4)),) + tuple(shape)
        return ()

    def inplace_partner(self, shape) -> tuple:
        """A shape that broadcasts to `shape` (what an in-place op's other operand may have)."""
        k = self.rng.integers(4)
        if k == 0:
            return tuple(shape)
        if k == 1:
            return tuple(shape[int(self.rng.integers(len(shape) + 1)):])
        if k == 2:
            return tuple(1 if self.rng.random() < 0.5 else d for d in shape)
        return ()

    # ------------------------------------------------------------------ statements
    def try_stmt(self, lines, defines, labels, finite=True) -> bool:
        """Run a proposed statement on call 0's values; keep it if it runs (and its result is finite)."""
        code = "\n".join(lines)
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                exec(code, self.env)  # noqa: S102 - generated code
        except Exception:  # noqa: BLE001 - any failure rejects the proposal
            self.env.pop(defines, None)
            return False
        if defines:
            t = self.env.get(defines)
            if not isinstance(t, tg.Tensor) or t.numel() == 0:  # (empty tensors would trip the templates)
                return False
            if finite and t.is_floating_point() and not np.isfinite(t.detach().numpy()).all():
                return False
            self._note(defines)
            self.n += 1
        reads = {n.id for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Name) and n.id in self.meta}
        self.stmts.append(Stmt(tuple(lines), defines, tuple(sorted(reads - {defines})), tuple(labels)))
        return True


# ---------------------------------------------------------------------- templates
def t_unary(b: Builder) -> bool:
    op = UNARY[int(b.rng.integers(len(UNARY)))]
    v = b.pick(floats=op not in ("logical_not", "isnan"))
    if v is None:
        return False
    out, api = b.fresh(), op.rstrip("_")
    for arg in (v, _POSITIVE.format(v)):
        if b.try_stmt([f"{out} = tg.{api}({arg})"], out, [f"unary:{op}"]):
            return True
    return False


def t_binary(b: Builder) -> bool:
    op = BINARY[int(b.rng.integers(len(BINARY)))]
    bitwise, logical = op.startswith("bitwise"), op.startswith("logical")
    a = b.pick(ints=bitwise, floats=not (bitwise or logical))
    if a is None:
        return False
    k = b.rng.integers(6)  # 0: a Python number (promotion, reflected operators), 1: a 0-d tensor, else a tensor
    number = k == 0 or bitwise and k == 1
    if bitwise:
        other = str(int(b.rng.integers(1, 4))) if number else (b.pick(ints=True) or "1")
    elif k == 0:
        other = repr(float(b.rng.choice([2.0, 0.5, -1.5, 3.0])))
    elif k == 1:
        dt = b.dt(a) if b.dt(a) in FLOATS else "float32"
        other = f"tg.tensor({float(b.rng.choice([1.5, -0.25]))!r}, dtype=tg.{dt})"
    else:
        other = b.fit(b.broadcast_partner(b.shape(a)), b.dt(a) if b.dt(a) in FLOATS else None)
    swap = b.rng.random() < 0.2
    x, y = (other, a) if swap else (a, other)
    if op in ("div", "remainder", "floor_divide") and not (number and not swap):
        y = _AWAY.format(y)
    if op == "pow" and not (number and swap):
        x = _POSITIVE.format(x)
    if op == "binary_cross_entropy":
        x, y = _DOMAINS["unit"].format(x), _DOMAINS["unit"].format(y)
    if op not in _SYMBOLS and number and swap:
        x, y = y, x  # tg.<op>(tensor, number)
    out = b.fresh()
    expr = f"{x} {_SYMBOLS[op]} {y}" if op in _SYMBOLS else f"tg.{op}({x}, {y})"
    return b.try_stmt([f"{out} = {expr}"], out, [f"binary:{op}"])


def t_where(b: Builder) -> bool:
    c, a = b.pick(floats=True), b.pick(floats=True)
    if c is None:
        return False
    other = repr(float(b.rng.choice([0.0, -0.5]))) if b.rng.random() < 0.3 else b.fit(b.broadcast_partner(b.shape(a)))
    out = b.fresh()
    return b.try_stmt([f"{out} = tg.where({c} > 0, {a}, {other})"], out, ["where"])


def _dims(b: Builder, ndim: int):
    """A dim argument: an int (maybe negative) or a tuple of distinct dims."""
    if ndim == 0:
        return None
    if b.rng.random() < 0.6:
        d = int(b.rng.integers(ndim))
        return d - ndim if b.rng.random() < 0.3 else d
    k = int(b.rng.integers(1, ndim + 1))
    return tuple(sorted(int(d) for d in b.rng.choice(ndim, k, replace=False)))


def t_reduce(b: Builder) -> bool:
    v = b.pick(floats=True)
    if v is None:
        return False
    nd, out = len(b.shape(v)), b.fresh()
    keep = bool(b.rng.random() < 0.4)
    d = _dims(b, nd)
    one = d if isinstance(d, int) else (d[0] if d else None)
    kind = str(b.rng.choice(["sum", "mean", "amax", "amin", "max", "min", "max_dim", "min_dim", "var", "std", "norm",
                             "logsumexp", "softmax", "log_softmax", "argmax", "argmin", "all", "any"]))
    if d is None or b.rng.random() < 0.2:  # the whole tensor
        full = {"max_dim": "max", "min_dim": "min", "softmax": "sum", "log_softmax": "sum", "logsumexp": "sum",
                "all": "all", "any": "any"}.get(kind, kind)
        expr = f"({v} > 0).{full}()" if full in ("all", "any") else f"{v}.{full}()"
        kind = full
    elif kind in ("sum", "mean", "amax", "amin", "var", "std", "norm"):
        expr = f"{v}.{kind}({'dim=' if kind == 'norm' else ''}{d!r}, keepdim={keep})"
    elif kind in ("max_dim", "min_dim"):
        expr = f"{v}.{kind[:3]}(dim={one}, keepdim={keep}).{'values' if b.rng.random() < 0.8 else 'indices'}"
    elif kind == "logsumexp":
        expr = f"{v}.logsumexp({one}, keepdim={keep})"
    elif kind in ("softmax", "log_softmax"):
        expr = f"{v}.{kind}({one})"
    elif kind in ("argmax", "argmin"):
        expr = f"{v}.{kind}(dim={one}, keepdim={keep})"
    else:
        expr = f"({v} > 0).{kind}({one})"
    return b.try_stmt([f"{out} = {expr}"], out, [f"reduce:{kind}"])


def _slice_index(b: Builder, shape, extras=True) -> str:
    """An index of ints, slices (negative bounds, steps > 1) and, with `extras`, None and Ellipsis."""
    parts = []
    for n in shape:
        k = b.rng.integers(5)
        if n == 0:
            parts.append(":")
        elif k == 0:
            parts.append(str(int(b.rng.integers(-n, n))))
        elif k == 1 or k == 2 and n == 1:
            parts.append(":")
        elif k == 2:
            parts.append(f"{int(b.rng.integers(0, n))}:")
        elif k == 3:
            parts.append(f":{int(b.rng.integers(-n, n)) or n}")
        else:
            parts.append(f"::{int(b.rng.integers(1, 3))}")
    if extras and parts and parts[0] == ":" and b.rng.random() < 0.5:
        parts[0] = "..."
    if extras and b.rng.random() < 0.2:
        parts.insert(int(b.rng.integers(len(parts) + 1)), "None")
    return ", ".join(parts) if parts else "..."


def t_movement(b: Builder) -> bool:
    v = b.pick()
    if v is None:
        return False
    s, out = b.shape(v), b.fresh()
    nd, n = len(s), _numel(s)
    kind = str(b.rng.choice(["reshape", "view", "permute", "transpose", "T", "unsqueeze", "squeeze", "flatten",
                             "expand", "slice", "cat", "stack", "split", "chunk", "contiguous", "broadcast_to"]))
    if kind in ("reshape", "view"):
        dims, rest = [], n
        while rest > 1 and len(dims) < 3:
            f = [d for d in range(1, rest + 1) if rest % d == 0]
            d = int(b.rng.choice(f))
            dims.append(d)
            rest //= d
        dims.append(rest)
        b.rng.shuffle(dims)
        if b.rng.random() < 0.3:
            dims[int(b.rng.integers(len(dims)))] = -1
        base = f"{v}.transpose(0, -1)" if kind == "reshape" and nd > 1 and b.rng.random() < 0.3 else v
        expr = f"{base}.{kind}({', '.join(map(str, dims))})"
    elif kind == "permute" and nd > 1:
        expr = f"{v}.permute({', '.join(str(int(p)) for p in b.rng.permutation(nd))})"
    elif kind == "transpose" and nd > 1:
        i, j = b.rng.choice(nd, 2, replace=False)
        expr = f"{v}.transpose({int(i)}, {int(j) - nd})"
    elif kind == "T" and nd == 2:
        expr = f"{v}.T" if b.rng.random() < 0.5 else f"{v}.t()"
    elif kind == "unsqueeze":
        expr = f"{v}.unsqueeze({int(b.rng.integers(-nd - 1, nd + 1))})"
    elif kind == "squeeze":
        ones = [i for i, d in enumerate(s) if d == 1]
        expr = f"{v}.squeeze({ones[0]})" if ones and b.rng.random() < 0.5 else f"{v}.squeeze()"
    elif kind == "flatten":
        expr = f"{v}.flatten()" if nd < 2 or b.rng.random() < 0.5 else f"tg.flatten({v}, {int(b.rng.integers(nd - 1))})"
    elif kind in ("expand", "broadcast_to"):
        target = tuple(int(b.rng.integers(2, 4)) if d == 1 and b.rng.random() < 0.7 else d for d in s)
        if b.rng.random() < 0.5:
            target = (int(b.rng.integers(1, 4)),) + target
        if kind == "expand":
            lead = len(target) - nd
            sizes = [str(d) if i < lead or d != s[i - lead] or b.rng.random() < 0.7 else "-1"
                     for i, d in enumerate(target)]
            expr = f"{v}.expand({', '.join(sizes)})"
        else:
            expr = f"tg.broadcast_to({v}, {target!r})"
    elif kind == "slice" and nd > 0:
        expr = f"{v}[{_slice_index(b, s)}]"
    elif kind in ("cat", "stack") and nd > 0:
        d = int(b.rng.integers(nd))
        other_shape = list(s)
        if kind == "cat":
            other_shape[d] = int(b.rng.integers(1, 4))
        w = b.fit(tuple(other_shape), b.dt(v) if b.dt(v) in FLOATS else None)
        if b.dt(v) not in FLOATS:
            return False
        expr = f"tg.{kind}([{v}, {w}], {d})" if b.rng.random() < 0.7 else f"tg.{kind}(({w}, {v}, {w}), dim={d - nd})"
    elif kind in ("split", "chunk") and nd > 0:
        d = int(b.rng.integers(nd))
        k = int(b.rng.integers(1, 3))
        parts = -(-s[d] // k)
        expr = f"{v}.{kind}({k}, {d})[{int(b.rng.integers(parts))}]" if kind == "split" else \
            f"{v}.chunk({k}, dim={d})[-1]"
    elif kind == "contiguous":
        expr = f"{v}.contiguous()"
    else:
        return False
    return b.try_stmt([f"{out} = {expr}"], out, [f"move:{kind}"])


def t_matmul(b: Builder) -> bool:
    v = b.pick(floats=True, ndim_min=1, ndim_max=3)
    if v is None:
        return False
    s = b.shape(v)
    m = int(b.rng.integers(1, 5))
    k = b.rng.integers(4)
    if k == 0:
        w_shape = (s[-1],)
    elif k == 1 or len(s) == 1:
        w_shape = (s[-1], m)
    elif k == 2:
        w_shape = (int(b.rng.integers(1, 3)),) + (s[-1], m) if len(s) == 2 else (s[0], s[-1], m)
    else:
        w_shape = (1, s[-1], m)
    w = b.fit(w_shape, b.dt(v))
    out = b.fresh()
    expr = f"{v} @ {w}" if b.rng.random() < 0.7 else f"tg.matmul({v}, {w})"
    return b.try_stmt([f"{out} = {expr}"], out, ["matmul"])


def t_index(b: Builder) -> bool:
    v = b.pick(floats=True, ndim_min=1)
    if v is None:
        return False
    s, out = b.shape(v), b.fresh()
    d = int(b.rng.integers(len(s)))
    lead = ":, " * d
    kind = str(b.rng.choice(["const", "arg", "argmax", "mask", "pair", "mixed", "random"]))
    if kind == "mask" and not b.guards:
        kind = "const"
    if kind == "const":
        idx = [int(i) for i in b.rng.integers(-s[d], s[d], int(b.rng.integers(1, 5)))]
        expr = f"{v}[{lead}tg.tensor({idx})]"
    elif kind == "arg":  # an index tensor that is an input: read again at every call
        a = b.new_arg((int(b.rng.integers(1, 5)),), kind="index", high=s[d])
        expr = f"{v}[{lead}{a}]"
    elif kind == "argmax":  # an index computed from data
        w = b.pick(floats=True)
        expr = f"{v}[{lead}{w}.reshape(-1).argmax() % {s[d]}]"
    elif kind == "random":  # drawn at every call
        expr = f"{v}[{lead}tg.randint(0, {s[d]}, ({int(b.rng.integers(1, 4))},))]" if b.rng.random() < 0.5 else \
            f"{v}[{lead}tg.randperm({s[d]})]"
    elif kind == "mask":  # a data-dependent shape, reduced at once
        c = b.fit(s)
        expr = f"{v}[{c} > 0].sum()"
    elif kind == "pair" and len(s) > 1:
        k = int(b.rng.integers(1, 4))
        i0 = [int(i) for i in b.rng.integers(0, s[0], k)]
        i1 = [int(i) for i in b.rng.integers(0, s[1], k)]
        expr = f"{v}[tg.tensor({i0}), tg.tensor({i1})]"
    else:
        expr = f"{v}[{int(b.rng.integers(s[0]))}, ...]" if b.rng.random() < 0.5 else f"{v}[None, ..., -1]"
    return b.try_stmt([f"{out} = {expr}"], out, [f"index:{kind}"])


def t_setitem(b: Builder) -> bool:
    v = b.pick(floats=True, ndim_min=1)
    if v is None:
        return False
    s, out = b.shape(v), b.fresh()
    index = _slice_index(b, s, extras=False)
    if b.rng.random() < 0.3:  # distinct positions: which of two writes to one place wins is unspecified
        k = int(b.rng.integers(1, s[0] + 1))
        index = f"tg.tensor({[int(i) for i in b.rng.permutation(s[0])[:k]]})"
    try:
        sel = tuple(eval(f"{v}[{index}]", b.env).shape)  # noqa: S307 - generated code
    except Exception:  # noqa: BLE001
        return False
    value = repr(float(b.rng.choice([0.0, 2.5]))) if b.rng.random() < 0.3 else b.fit(b.broadcast_partner(sel))
    first = f"{out} = {v}.clone()" if b.rng.random() < 0.5 else f"{out} = {v} * 1.0"
    return b.try_stmt([first, f"{out}[{index}] = {value}"], out, ["setitem"])


_INPLACE = ["add_({w})", "sub_({w}, alpha=2.0)", "mul_({w})", "div_(2.0)", "mul_(-0.5)", "clamp_(-1.0, 1.0)",
            "relu_()", "tanh_()", "sigmoid_()", "neg_()", "addcmul_({w}, {w}, value=0.5)", "lerp_({w}, 0.3)",
            "copy_({w})", "fill_(1.5)", "zero_()", "masked_fill_({x} > 0, 0.25)", "add_(1.0)", "sqrt_()"]


def t_inplace(b: Builder) -> bool:
    """A fresh copy changed in place, maybe through a view of it, maybe under no_grad."""
    v = b.pick(floats=True)
    if v is None:
        return False
    s, out = b.shape(v), b.fresh()
    lines = [f"{out} = {v}.clone()" if b.rng.random() < 0.5 else f"{out} = {v} * 1.0"]
    target, view, labels = out, "", ["inplace"]
    if len(s) > 0 and b.rng.random() < 0.5:
        view = str(b.rng.choice([f"[{_slice_index(b, s, extras=False)}]", ".unsqueeze(0)", f".view({_numel(s)})",
                                 ".transpose(0, -1)", "[0]"]))
        target = f"{out}_view"
        lines.append(f"{target} = {out}{view}")
        labels.append("inplace:view")
    try:
        tshape = tuple(eval(f"{v}{view}", b.env).shape)  # noqa: S307 - generated code
    except Exception:  # noqa: BLE001
        return False
    body = []
    for _ in range(int(b.rng.integers(1, 3))):
        op = str(b.rng.choice(_INPLACE))
        if op == "sqrt_()":
            body.append(f"{target}.clamp_(0.1, 2.0)")
        w = b.fit(b.inplace_partner(tshape), b.dt(v)) if "{w}" in op else ""
        body.append(f"{target}.{op.format(w=w, x=target)}")
        labels.append("inplace:" + op.split("(")[0])
    if b.rng.random() < 0.25:
        lines.append("with tg.no_grad():")
        lines += [f"    {line}" for line in body]
        labels.append("inplace:no_grad")
    else:
        lines += body
    return b.try_stmt(lines, out, labels)


def t_inplace_existing(b: Builder) -> bool:
    """A variable that earlier statements used, changed in place (maybe through a view): later statements see
    the new value, earlier ones must not (eager refuses at backward if one of them saved it)."""
    args = {a.name for a in b.args}
    names = [n for n in b.names(floats=True) if n not in args and n != "p"]
    if not names:
        return False
    v = names[int(b.rng.integers(len(names)))]
    s = b.shape(v)
    target = v if not s or b.rng.random() < 0.6 else f"{v}[{_slice_index(b, s, extras=False)}]"
    try:
        tshape = tuple(eval(target, b.env).shape)  # noqa: S307 - generated code
    except Exception:  # noqa: BLE001
        return False
    op = str(b.rng.choice(["add_({w})", "mul_({w})", "mul_(-0.5)", "clamp_(-1.0, 1.0)", "tanh_()", "neg_()",
                           "sub_({w}, alpha=2.0)"]))
    w = b.fit(b.inplace_partner(tshape), b.dt(v)) if "{w}" in op else ""
    line = f"{target}.{op.format(w=w)}"
    labels = ["inplace:existing", "inplace:" + op.split("(")[0]] + (["inplace:view"] if target != v else [])
    if b.rng.random() < 0.2:
        labels.append("inplace:no_grad")
        return b.try_stmt(["with tg.no_grad():", f"    {line}"], "", labels)
    return b.try_stmt([line], "", labels)


def t_inplace_arg(b: Builder) -> bool:
    """An argument changed in place under no_grad before anything reads it (compile writes it back)."""
    read = {r for s in b.stmts for r in s.reads}
    free = [a.name for a in b.args if a.kind == "float" and a.name not in read]
    if not free:
        return False
    a = free[int(b.rng.integers(len(free)))]
    op = str(b.rng.choice(["mul_(0.5)", "add_(1.0)", "clamp_(-1.0, 1.0)", "sub_(0.25)"]))
    return b.try_stmt(["with tg.no_grad():", f"    {a}.{op}"], "", ["inplace:arg"])


_ALTERNATIVES = ["{v} * 2.0", "{v}.tanh()", "{v}.sin()", "-{v}", "{v} + 1.0", "{v} * {v}", "{v}.sigmoid()"]


def t_branch(b: Builder) -> bool:
    c, v = b.pick(floats=True), b.pick(floats=True)
    if c is None or not b.guards:
        return False
    out = b.fresh()
    cond = str(b.rng.choice([f"{c}.sum() > 0", f"{c}.mean().item() < 0.25", f"float({c}.amax()) > 0.5",
                             f"({c} > 0).any()", f"{c}.reshape(-1)[0] > 0", f"int({c}.argmax()) == 0"]))
    p, q = b.rng.choice(len(_ALTERNATIVES), 2, replace=False)
    if b.rng.random() < 0.7:
        lines = [f"if {cond}:", f"    {out} = {_ALTERNATIVES[p].format(v=v)}", "else:",
                 f"    {out} = {_ALTERNATIVES[q].format(v=v)}"]
        return b.try_stmt(lines, out, ["branch:if"])
    lines = [f"{out} = {v} * 1.0", "for _ in range(3):", f"    if {out}.abs().sum() > 4.0:", "        break",
             f"    {out} = {out} * 1.7 + 0.1"]
    return b.try_stmt(lines, out, ["branch:loop"])


def t_random(b: Builder) -> bool:
    v = b.pick(floats=True)
    if v is None:
        return False
    out, s, dt = b.fresh(), b.shape(v), b.dt(v)
    expr = str(b.rng.choice([f"{v} * tg.rand_like({v})", f"{v} + tg.randn({s!r}, dtype=tg.{dt})",
                             f"tg.nn.functional.dropout({v}, 0.3, training=True)"]))
    return b.try_stmt([f"{out} = {expr}"], out, ["random"])


def t_cast(b: Builder) -> bool:
    v = b.pick()
    if v is None:
        return False
    out, labels = b.fresh(), ["cast"]
    if b.dt(v) in FLOATS:
        other = "float64" if b.dt(v) == "float32" else "float32"
        expr = str(b.rng.choice([f"{v}.to(tg.{other})", f"({v} * 3).long()", f"({v} > 0).float()",
                                 f"{v}.to(tg.int64) * 2 + 1", f"{v}.double()"]))
        if "long" in expr or "int64" in expr:
            labels.append("cast:int")
    else:
        f = b.pick(floats=True)
        expr = str(b.rng.choice([f"{v}.float() * 0.5", f"{v} * {f}" if f else f"{v} + 1", f"{v} // 2 + {v} % 3",
                                 f"({v} + 1).to(tg.{b.dtype})"]))
    return b.try_stmt([f"{out} = {expr}"], out, labels)


def t_row(b: Builder) -> bool:
    if not b.rows:
        return False
    row = b.rows[int(b.rng.integers(len(b.rows)))]
    shapes = row.shapes[int(b.rng.integers(len(row.shapes)))]
    domain = _DOMAINS.get(row.domain, "{0}")
    ins = [b.fit(shape, domain=domain) for shape in shapes]
    out = b.fresh()
    return b.try_stmt([f"{out} = ({row.source})(tg, {', '.join(ins)})"], out, [f"row:{row.name}"])


TEMPLATE_ERRORS: Counter = Counter()  # templates that raised while proposing (a bug of this file; reported)
TEMPLATES = {t.__name__[2:]: t for t in [t_unary, t_binary, t_where, t_reduce, t_movement, t_matmul, t_index,
                                         t_setitem, t_inplace, t_inplace_existing, t_inplace_arg, t_branch, t_random,
                                         t_cast, t_row]}
WEIGHTS = {"unary": 3, "binary": 4, "where": 1, "reduce": 3, "movement": 4, "matmul": 2, "index": 2, "setitem": 1,
           "inplace": 2, "inplace_existing": 1, "inplace_arg": 0.3, "branch": 1, "random": 0.5, "cast": 1, "row": 4}
NUMBA_WEIGHTS = dict(WEIGHTS, index=0.5, setitem=0.3, random=0.2, branch=0, row=2)


def generate(seed: int, rows: list, n_stmts=(3, 9), backward: str | None = None, numba: bool = False) -> Program:
    """A random program from `seed` (deterministic).

    `backward` is "inside", "outside", "none" or None (drawn). For the numba backend (`numba`) no statement
    makes the path or a shape depend on values, so every call runs one graph and a batch compiles once, and
    statements that numba runs outside its kernels (indexing, random draws) are rarer: each one splits the
    native code into one more function to compile.
    """
    rng = np.random.default_rng([seed, 12])
    dtype = "float64" if rng.random() < 0.4 else "float32"
    b = Builder(seed, rng, dtype, rows)
    b.guards = b.slices = not numba
    optimizer, param = "", ()
    drawn = str(rng.choice(["inside", "outside", "none"], p=[0.7, 0.2, 0.1]))
    backward = backward or drawn
    first = b.new_arg(b.rand_shape(int(rng.integers(1, 4))))
    if backward == "inside" and rng.random() < 0.3:
        s = b.shape(first)
        param = (s[-1],) if rng.random() < 0.5 else (s[-1], int(rng.integers(1, 4)))
        optimizer = str(rng.choice([
            "tg.optim.SGD([p], lr=0.1)", "tg.optim.SGD([p], lr=0.05, momentum=0.9)",
            "tg.optim.SGD([p], lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)",
            "tg.optim.Adam([p], lr=0.01)", "tg.optim.Adam([p], lr=0.01, amsgrad=True)",
            "tg.optim.AdamW([p], lr=0.01, weight_decay=0.1)"]))
        b.env["p"] = tg.tensor(np.random.default_rng([seed, 1000]).standard_normal(param), dtype=getattr(tg, dtype),
                               requires_grad=True)
        b._note("p")
        if not b.try_stmt([f"v0 = {first} {'*' if len(param) == 1 else '@'} p"], "v0", []):
            raise AssertionError("the parameter's first use failed")
    names = list(TEMPLATES)
    w = np.array([(NUMBA_WEIGHTS if numba else WEIGHTS)[k] for k in names], float)
    target = int(rng.integers(*n_stmts))
    tries = 0
    while len(b.stmts) < target and tries < 10 * target:
        tries += 1
        name = names[int(rng.choice(len(names), p=w / w.sum()))]
        try:
            TEMPLATES[name](b)
        except Exception:  # noqa: BLE001 - a template's own bug must not stop a long run; it is counted
            TEMPLATE_ERRORS[name] += 1
    grads = b.names(floats=True, grad=True)
    defined = [s.defines for s in b.stmts if s.defines]
    terms: list = []
    if grads and backward != "none":
        last = [g for g in grads if g in defined][-1:] or grads[-1:]
        extra = [g for g in grads if g not in last]
        n_extra = 0 if numba else int(rng.integers(0, 3))  # (numba: each loss term costs kernels to compile)
        terms = last + [str(x) for x in rng.choice(extra, min(len(extra), n_extra), replace=False)]
    outputs = defined if rng.random() < 0.3 else sorted(set(defined[-1:] + [
        str(x) for x in rng.choice(defined, min(len(defined), int(rng.integers(0, 3))), replace=False)]),
        key=defined.index) if defined else []
    prog = Program(seed, tuple(b.args), tuple(b.stmts), tuple(outputs), tuple(terms),
                   backward if terms else "none", optimizer if terms else "", param if terms else (), dtype)
    return prog.pruned()
