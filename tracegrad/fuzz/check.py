"""Running programs eagerly and compiled, comparing what they give, checking gradients, shrinking failures.

A *unit* is one or more programs run together: each call seeds tracegrad's generator, builds every
program's inputs, runs all their ``f``s (one compiled function for the whole unit when compiled, so the
numba backend compiles one module for many programs), then does the backward of the programs whose loss
is differentiated outside ``f`` (through the compiled region), and reads each program's outputs, argument
gradients and state. The same sequence runs eagerly, which is the reference.
"""
from __future__ import annotations

import time
import warnings
from collections import Counter
from dataclasses import dataclass, replace

import numpy as np

import tracegrad as tg

from . import known
from .program import Program

CALLS = 4  # calls 1-2 trace, 3-4 replay (more calls trace again where a guard fails)


@dataclass
class Mismatch:
    kind: str                   # "<mode>:<what>", what in value, grad, state, error, alias, gradcheck
    key: str                    # which result and how (the shrinker keeps a candidate only if it fails alike)
    detail: str
    program: Program
    backend: str                # what the reproducer compiles with ("interpret", "numba"; "eager" for gradcheck)
    shrunk: Program | None = None
    note: str = ""


class Invalid(Exception):  # noqa: N818 - not an error of the fuzzer: the program is no test case
    """The program fails eagerly: it is not a test case (the generator is told to try another)."""


def namespace(prog: Program) -> dict:
    ns: dict = {}
    exec(compile(prog.source(), f"<fuzz program {prog.seed}>", "exec"), ns)  # noqa: S102 - generated code
    return ns


def _array(t):
    if t is None:
        return None
    return np.array(t.detach().numpy(), copy=True)


def _names(prog: Program) -> list:
    grads = [f"{a.name}.grad" for a in prog.args if a.requires_grad]
    names = [f"out {o}" for o in prog.outputs]
    if prog.backward != "none":
        names += ["loss"] + grads
    return names


def run_unit(progs: list, backend: str | None, calls: int = CALLS):
    """Results per call per program: [(name, array or None)]; the compiled function (None if eager); and per
    call per program, the names of the results that are the program's own input tensors (objects, not values).

    Raises `Invalid` if running eagerly fails, and whatever the compiled function raises otherwise.
    """
    nss = [namespace(p) for p in progs]
    built = [ns["build"]() for ns in nss]
    fs = [f for f, _ in built]

    def unit(*xs):
        out, k = [], 0
        for p, f in zip(progs, fs):
            out.append(f(*xs[k:k + len(p.args)]))
            k += len(p.args)
        return out

    # NOTE: numba without tiering: compiled at the first replay, in this process (tiered, the first calls would
    # run in the interpreter until a background compile is done, and the comparison would not be with numba)
    fn = unit if backend is None else tg.compile(unit, backend=backend, **({"tiered": False} if backend == "numba"
                                                                           else {}))
    results, aliases = [], []
    for call in range(calls):
        try:
            tg.manual_seed(call)
            xss = [ns["inputs"](call) for ns in nss]
            outs = fn(*[x for xs in xss for x in xs])
            losses = [o[-1] for p, o in zip(progs, outs) if p.backward == "outside"]
            if losses:
                total = losses[0]
                for loss in losses[1:]:
                    total = total + loss
                total.backward()
        except Exception as e:
            if backend is None:
                raise Invalid(f"{type(e).__name__}: {e}") from e
            raise
        per_prog, alias = [], []
        for p, (_, state), xs, out in zip(progs, built, xss, outs):
            vals = list(out)
            if p.backward == "outside":
                vals += [x.grad for x in xs if x.requires_grad]
            names = _names(p)
            st = state()
            names += [f"state {i}" for i in range(len(st))]
            alias.append([n for n, t in zip(names, vals) if t is not None and any(t is x for x in xs)])
            per_prog.append(list(zip(names, [_array(t) for t in vals + st])))
        results.append(per_prog)
        aliases.append(alias)
    return results, fn if backend is not None else None, aliases


# ---------------------------------------------------------------------- comparing
def same(a, b) -> bool:
    """Bit for bit: shape, dtype, values (NaN equal to NaN) and the sign of zeros."""
    if a is None or b is None:
        return a is None and b is None
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind != "f":
        return np.array_equal(a, b)
    keep = ~np.isnan(a)
    return np.array_equal(a, b, equal_nan=True) and np.array_equal(np.signbit(a[keep]), np.signbit(b[keep]))


def close(a, b, rtol=1e-4, atol=1e-5) -> bool:
    """Within float32 round-off of a fused, vectorized evaluation: rtol, and atol times the largest magnitude."""
    if a is None or b is None:
        return a is None and b is None
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind != "f":
        return np.array_equal(a, b)
    finite = a[np.isfinite(a)]
    scale = max(1.0, float(np.abs(finite).max())) if finite.size else 1.0
    return bool(np.allclose(b, a, rtol=rtol, atol=atol * scale, equal_nan=True))


def _what(name: str) -> str:
    if name.startswith("state"):
        return "state"
    if name.endswith(".grad"):
        return "grad"
    return "value"


def compare(progs, eager, compiled, e_aliases, c_aliases, mode: str, tolerated: Counter) -> list:
    """[(program index, kind, key, detail)] for the differences (the first per program and kind)."""
    equal = same if mode == "interpret" else close
    found: dict = {}
    for call, (e_call, c_call) in enumerate(zip(eager, compiled)):
        for i, (e_prog, c_prog) in enumerate(zip(e_call, c_call)):
            state0 = dict(e_prog).get("state 0")  # the parameter after this call's update, eagerly
            for (name, a), (_, b) in zip(e_prog, c_prog):
                if not equal(a, b):
                    how = _how(a, b)
                    if name.startswith("out") and same(b, state0) and not same(a, state0):
                        how = "updated state"  # compiled returned what the parameter became, eager what it was
                    found.setdefault((i, f"{mode}:{_what(name)}"), (f"{name} {how}", f"call {call}, {name}: "
                                                                    f"{_describe(a, b)}"))
            for name in sorted(set(e_aliases[call][i]) ^ set(c_aliases[call][i])):
                who = "compiled" if name in c_aliases[call][i] else "eager"
                found.setdefault((i, f"{mode}:alias"), (f"{name} {who}", f"call {call}: {name} is an input tensor "
                                                                          f"in {who} mode only"))
    return [(i, kind, key, detail) for (i, kind), (key, detail) in found.items()]


def _how(a, b) -> str:
    """How two results differ, in a word (part of the key the shrinker keeps)."""
    if (a is None) != (b is None):
        return "eager None" if a is None else "compiled None"
    if a.shape != b.shape or a.dtype != b.dtype:
        return "shape"
    if a.dtype.kind == "f" and np.array_equal(a, b, equal_nan=True):
        return "zero signs"
    if a.dtype.kind == "f":
        both = ~(np.isnan(a) | np.isnan(b))
        if np.array_equal(a[both], b[both]):
            return "NaNs"  # equal except where one of them is NaN
    if a.dtype.kind == "f" and np.allclose(a, b, rtol=8 * np.finfo(a.dtype).eps, atol=0, equal_nan=True):
        return "ulps"
    return "values"


def _describe(a, b) -> str:
    if a is None or b is None:
        return f"eager {'None' if a is None else 'a tensor'}, compiled {'None' if b is None else 'a tensor'}"
    if a.shape != b.shape or a.dtype != b.dtype:
        return f"eager {a.dtype}{list(a.shape)}, compiled {b.dtype}{list(b.shape)}"
    if a.dtype.kind == "f":
        with np.errstate(all="ignore"):
            d = np.abs(a.astype(np.float64) - b.astype(np.float64))
        d = d[np.isfinite(d)]
        nan = int((np.isnan(a) != np.isnan(b)).sum())
        return (f"max |diff| {d.max() if d.size else 0:.3g}" + (f", {nan} NaN(s) differ" if nan else "") +
                (" (signs of zeros)" if d.size and d.max() == 0 and not nan else ""))
    return f"{int((a != b).sum())} of {a.size} element(s) differ"


# ---------------------------------------------------------------------- one program, one mode
def check_compiled(progs, backend: str, calls: int = CALLS, tolerated: Counter | None = None, strict=False):
    """Mismatches [(program index, kind, key, detail)] of the unit compiled with `backend` against eager.

    Raises `Invalid` if eager fails. Also returns the compiled function (for coverage). Mismatches that are
    open issues (`known.open_issue`) are counted in `tolerated` instead, unless `strict`.
    """
    tolerated = Counter() if tolerated is None else tolerated
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        eager, _, e_aliases = run_unit(progs, None, calls)
        try:
            compiled, fn, c_aliases = run_unit(progs, backend, calls)
        except Exception as e:  # noqa: BLE001 - any exception the eager run did not raise is a finding
            msg = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            found, fn = [(i, f"{backend}:error", type(e).__name__, msg) for i in range(len(progs))], None
        else:
            found = compare(progs, eager, compiled, e_aliases, c_aliases, backend, tolerated)
    out = []
    for i, kind, key, detail in found:
        issue = None if strict else known.open_issue(progs[i], kind, key, detail)
        if issue:
            tolerated[issue] += 1
        else:
            out.append((i, kind, key, detail))
    return out, fn


# ---------------------------------------------------------------------- gradients against central differences
def gradcheck(prog: Program, directions: int = 2) -> str | None:
    """Eager argument gradients against central differences of the loss in float64, along random directions.

    Returns a description of the mismatch, or None (also when the check does not apply, or when two step
    sizes disagree with each other: a kink or a branch within reach of the step, not a wrong gradient).
    """
    if prog.dtype != "float64" or prog.backward == "none" or not any(a.requires_grad for a in prog.args):
        return None
    if any(lab in ("inplace:no_grad", "inplace:arg") for lab in prog.labels()):
        return None  # a change made under no_grad is meant to be invisible to autograd: no derivative to compare
    if any("float32" in line or ".float()" in line for s in prog.stmts for line in s.lines):
        return None  # part of it runs in float32: a central difference there has ~3 correct digits
    ns = namespace(prog)
    names = _names(prog)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        (results,), _, _ = run_unit([prog], None, calls=1)
        values = dict(results[0])
        base = [np.array(x.detach().numpy(), copy=True) for x in ns["inputs"](0)]
        diff = [i for i, a in enumerate(prog.args) if a.requires_grad]
        grads = [values[f"{prog.args[i].name}.grad"] for i in diff]
        loss0 = float(values["loss"])
        if not np.isfinite(loss0) or any(g is not None and not np.isfinite(g).all() for g in grads):
            return None

        def loss_at(shift):
            f, _ = ns["build"]()
            tg.manual_seed(0)
            xs = ns["inputs"](0)
            with tg.no_grad():
                for i, d in zip(diff, shift):
                    xs[i].copy_(tg.tensor(base[i] + d))
            out = f(*xs)
            return float(out[names.index("loss")])

        rng = np.random.default_rng([prog.seed, 77])
        for _ in range(directions):
            u = [rng.standard_normal(base[i].shape) for i in diff]
            ana = sum(float((g * d).sum()) for g, d in zip(grads, u) if g is not None)
            num = []
            for h in (1e-6, 1e-4):
                num.append((loss_at([h * d for d in u]) - loss_at([-h * d for d in u])) / (2 * h))
            tol = 1e-5 * (1 + abs(ana) + abs(loss0))
            if not np.isfinite(num).all() or abs(num[0] - num[1]) > tol:
                continue
            if abs(num[0] - ana) > tol:
                return f"directional derivative: autograd {ana:.10g}, central difference {num[0]:.10g}"
    return None


# ---------------------------------------------------------------------- shrinking
def shrink(prog: Program, fails, budget_s: float = 60.0) -> Program:
    """Delete statements (then outputs, loss terms, the optimizer) while `fails(program)` stays true."""
    deadline = time.monotonic() + budget_s

    def attempt(cand):
        if time.monotonic() > deadline:
            return False
        try:
            return fails(cand)
        except Invalid:
            return False

    changed = True
    while changed and time.monotonic() < deadline:
        changed = False
        for i in reversed(range(len(prog.stmts))):
            if i < len(prog.stmts):
                cand = prog.without_stmt(i).pruned()
                if attempt(cand):
                    prog, changed = cand, True
        for field_ in ("outputs", "loss_terms"):
            for name in getattr(prog, field_):
                cand = replace(prog, **{field_: tuple(n for n in getattr(prog, field_) if n != name)}).pruned()
                if attempt(cand):
                    prog, changed = cand, True
        if prog.optimizer:
            cand = replace(prog, optimizer="", param=())
            if attempt(cand):
                prog, changed = cand, True
    return prog


def failing(kind: str, key: str, backend: str, strict: bool = False):
    """The shrinker's test: the candidate, run on its own, still fails in the same way (kind and key)."""
    def fails(cand: Program) -> bool:
        if kind == "eager:gradcheck":
            return gradcheck(cand) is not None
        found, _ = check_compiled([cand], backend, strict=strict)
        return any((k, y) == (kind, key) for _, k, y, _ in found)
    return fails
