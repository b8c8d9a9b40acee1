"""`compile`, `trace`, `grad` and `value_and_grad`: the user's doors into static graphs.

>>> import tracegrad as tg
>>> w = tg.tensor([1.0, 2.0], requires_grad=True)
>>> @tg.compile
... def step(x):
...     loss = ((w * x).sum() - 1.0) ** 2
...     loss.backward()
...     with tg.no_grad():
...         w.sub_(0.1 * w.grad)
...     w.grad = None
...     return loss
>>> [round(step(tg.ones(2)).item(), 4) for _ in range(3)]
[4.0, 1.44, 0.5184]
>>> w
tensor([0.2160, 1.2160], requires_grad=True)
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import os
import warnings
from collections import Counter

import numpy as np

from .. import _tracing
from .._tensor import Tensor
from ..autograd.grad_mode import STATE as _GRAD
from ..autograd.grad_mode import enable_grad
from ..compiler.autodiff import backward_pass
from ..compiler.codegen import ModuleSource, native_graph
from ..compiler.passes import DEFAULT_PASSES
from ..ir import Graph, Value
from ..runtime.interpreter import GuardError
from ..runtime.region import Region
from .context import TraceError, Tracer, short_location
from .pytree import flatten
from .scalars import ItemNumber
from .variant import Variant

BACKENDS = ("interpret", "eager", "numba")


def default_backend() -> str:
    """``$TRACEGRAD_BACKEND`` if set (``interpret`` to debug or teach), else ``numba``."""
    backend = os.environ.get("TRACEGRAD_BACKEND") or "numba"
    if backend not in BACKENDS:
        raise ValueError(f"TRACEGRAD_BACKEND={backend!r}: choose one of {', '.join(BACKENDS)}")
    return backend


def _describe(leaf):
    if isinstance(leaf, Tensor):
        return ("tensor", tuple(leaf._data.shape), leaf.dtype.name, leaf._rg)
    try:
        hash(leaf)
        return ("static", type(leaf).__name__, leaf)
    except TypeError:
        return ("static", type(leaf).__name__, repr(leaf))


def _unique(tensors: list) -> list:
    """The tensor arguments with repeats dropped (the same tensor passed twice is one graph input)."""
    if len(tensors) < 2:
        return tensors
    seen, out = set(), []
    for t in tensors:
        if id(t) not in seen:
            seen.add(id(t))
            out.append(t)
    return out


def _aliasing(leaves) -> tuple:
    """Which tensor arguments are the same object (part of the signature: it changes the graph's inputs)."""
    ids = [id(x) for _, x in leaves if isinstance(x, Tensor)]
    if len(set(ids)) == len(ids):
        return ()
    return tuple(ids.index(i) for i in ids)


def _diff(old_key, new_key) -> str:
    (old_tree, old_desc, old_grad, old_alias), (new_tree, new_desc, new_grad, new_alias) = old_key, new_key
    if old_alias != new_alias:
        return "the same tensor is passed for different arguments than before"
    if old_grad != new_grad:
        return f"grad mode: {'enabled' if old_grad else 'disabled'} -> {'enabled' if new_grad else 'disabled'}"
    if old_tree != new_tree or [p for p, _ in old_desc] != [p for p, _ in new_desc]:
        return "the arguments' structure changed"
    parts = []
    for (path, a), (_, b) in zip(old_desc, new_desc):
        if a == b:
            continue
        if a[0] != b[0]:
            parts.append(f"input {path}: {a[0]} -> {b[0]}")
        elif a[0] == "tensor":
            for i, what in ((1, "shape"), (2, "dtype"), (3, "requires_grad")):
                if a[i] != b[i]:
                    parts.append(f"input {path}: {what} {a[i]} -> {b[i]}")
        else:
            parts.append(f"input {path}: static value {a[2]!r} -> {b[2]!r}")
    return "; ".join(parts) or "signature changed"


class CompiledFunction:
    """A function traced into graphs, one per signature and guard outcome, run by a backend.

    Call it like the function. `explain(*args)` describes what was compiled; `graphs()` lists the
    cached graphs; `retraces` holds the reason of every trace.
    """

    def __init__(self, fn, backend: str | None = None, strict: bool = False, max_variants: int = 8,
                 passes=DEFAULT_PASSES, print_passes: bool | None = None, check: bool = False,
                 fastmath: bool = False, tiered: bool | None = None):
        backend = default_backend() if backend is None else backend
        tiered = os.environ.get("TRACEGRAD_TIERED", "1") != "0" if tiered is None else tiered
        if backend not in BACKENDS:
            raise ValueError(f"compile: unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        functools.update_wrapper(self, fn, updated=())
        self.fn = fn
        self.backend = backend
        self.strict = strict
        self.max_variants = max_variants
        self.passes = tuple(passes)
        self.print_passes = print_passes
        self.check = check
        self.fastmath = fastmath
        self.tiered = tiered
        if tiered and self.backend == "numba":
            # NOTE: imported now, not at the first replay (10 ms; neither imports numba)
            from ..runtime import native as _native  # noqa: F401
            from ..runtime import tiered as _tiered  # noqa: F401
        self.retraces: list[str] = []
        self._cache: dict = {}
        self._keys: list = []
        self._n_variants = 0
        self._pending_state_reason = None
        self._fast_keys: dict = {}
        self._name = getattr(fn, "__name__", type(fn).__name__)
        try:
            self._signature = inspect.signature(fn.forward if hasattr(fn, "forward") and
                                                not inspect.isfunction(fn) else fn)
        except (TypeError, ValueError):
            self._signature = None

    def __getattr__(self, name):
        # a compiled module still answers .parameters(), .train(), ... (PyTorch's OptimizedModule does too)
        if name.startswith("__") or name in ("fn",):
            raise AttributeError(name)
        return getattr(self.__dict__["fn"], name)

    def __repr__(self):
        return f"<compiled {self._name} ({self.backend})>"

    # ------------------------------------------------------------------ calling
    def _flatten_args(self, args, kwargs):
        if self._signature is not None:
            try:
                bound = self._signature.bind(*args, **kwargs)
                named = dict(bound.arguments)
                leaves = []
                for name, value in named.items():
                    sub, _ = flatten(value, name)
                    leaves.extend(sub)
                _, tree = flatten((args, kwargs))
                return leaves, tree
            except TypeError:
                pass
        leaves, tree = flatten((args, kwargs), "args")
        return leaves, tree

    def __call__(self, *args, **kwargs):
        if _tracing.TRACER is not None or self.backend == "eager":
            return self.fn(*args, **kwargs)  # inside another trace the function is inlined
        # NOTE: the common call (distinct tensors as positional arguments) finds its signature without
        # flattening and binding, which cost more than a small compiled step itself
        fast = None
        if not kwargs and all(type(a) is Tensor for a in args) and len({id(a) for a in args}) == len(args):
            fast = (tuple((a._data.shape, a._data.dtype, a._rg) for a in args), _GRAD.enabled)
            key = self._fast_keys.get(fast)
            if key is not None:
                for variant in self._cache.get(key, ()):
                    if variant.check_state(args) is None:
                        try:
                            return variant.run(args)
                        except GuardError:
                            break
        leaves, tree = self._flatten_args(args, kwargs)
        key = (tree, tuple((p, _describe(x)) for p, x in leaves), _GRAD.enabled, _aliasing(leaves))
        if fast is not None:
            self._fast_keys[fast] = key
        tensors = _unique([x for _, x in leaves if isinstance(x, Tensor)])
        reason = None
        for variant in self._cache.get(key, ()):
            reason = variant.check_state(tensors)
            if reason is None:
                try:
                    return variant.run(tensors)
                except GuardError as e:
                    reason = (f"guard {_guard_text(e.guard)}: traced with {_short(e.guard.expected)}, "
                              f"got {_short(e.got)}")
        # NOTE: one line against the nearest variant: the newest one of this signature (the reasons of the older
        # ones were given when they were traced), else the signature that differs least
        if self._pending_state_reason is not None and key == self._keys[-1]:
            reason = self._pending_state_reason
        self._pending_state_reason = None
        if reason is None:
            reason = _diff(_nearest(self._keys, key), key) if self._keys else "first call"
        if self._n_variants >= self.max_variants:
            return self._run_eagerly(reason, args, kwargs)
        return self._trace_and_run(key, leaves, args, kwargs, reason)

    def _run_eagerly(self, reason, args, kwargs):
        """Past `max_variants`: this new signature runs eagerly; the compiled ones keep running compiled."""
        if self.strict or not self._warned:
            causes = [_kind_of(r) for r in self.retraces[1:] + [reason]]
            cause, count = Counter(causes).most_common(1)[0]
            msg = (f"{self._name}: {self.max_variants} variants traced (max_variants) and this call needs another "
                   f"({reason}). Calls that match a traced variant keep running compiled; new ones run eagerly. "
                   f"Most retraces were caused by: {cause} ({count} of {len(causes)}); fix: "
                   f"{_FIXES.get(cause.split(' ')[0], _FIXES['other'])}. `{self._name}.retraces` lists every reason.")
            if self.strict:
                raise TraceError(msg)
            warnings.warn(msg, RuntimeWarning, stacklevel=3)
            self._warned = True
        self.eager_calls += 1
        return self.fn(*args, **kwargs)

    _warned = False
    eager_calls = 0

    def _trace_and_run(self, key, leaves, args, kwargs, reason):
        tracer = Tracer(self._name, strict=self.strict)
        try:
            out_tree, out_leaves, region = _run_traced(tracer, self.fn, leaves, args, kwargs, region_ok=True)
        except (AttributeError, TypeError) as e:  # state is restored and no variant is left behind
            bad = self._bad_argument(args, kwargs, e)
            if bad is None:
                raise
            raise TypeError(f"{self._name}(): {bad} (tracing failed with {type(e).__name__}: {e})") from e
        escaped = tracer.escaped([x for x in out_leaves if isinstance(x, Tensor)])
        variant = Variant.build(tracer, out_tree, out_leaves, region, self.passes, self.print_passes, self.backend,
                                self.check, self.fastmath, self.tiered)
        outputs = variant.outputs_from_trace(tracer, out_leaves)
        self.retraces.append(reason)  # only a trace that succeeded counts
        if key not in self._keys:
            self._keys.append(key)
        if escaped:
            # the call created tensors that outlive it (optimizer state made on the first step, tensors stored
            # in Python objects): the next call's Python takes another path, so this graph is not reused
            names = ", ".join(sorted({f"{list(t.shape)}" for t in escaped[:3]}))
            self._pending_state_reason = (f"the previous call created tensors that outlive it ({len(escaped)}, "
                                          f"e.g. {names}: optimizer state or tensors stored in Python objects)")
        else:
            self._cache.setdefault(key, []).append(variant)
            self._n_variants += 1
        self.last_variant = variant
        return outputs

    def _bad_argument(self, args, kwargs, error):
        """What is wrong with an argument that is not a tensor where one was expected, or None."""
        traced = {}
        for key in self._keys:
            for path, desc in key[1]:
                if desc[0] == "tensor":
                    traced.setdefault(path, desc)
        try:
            named = self._signature.bind(*args, **kwargs).arguments
        except (AttributeError, TypeError):
            named = {f"args[{i}]": a for i, a in enumerate(args)} | kwargs
        for path, x in named.items():
            if isinstance(x, Tensor):
                continue
            desc = traced.get(path)
            if desc is not None:
                return (f"argument {path} must be a Tensor like the {desc[2]}{list(desc[1])} it was traced with, "
                        f"got {type(x).__name__}")
            if isinstance(x, np.ndarray) or (isinstance(x, (list, tuple)) and not any(isinstance(e, Tensor)
                                                                                       for e in x)):
                return (f"argument {path} is a {type(x).__name__}, not a Tensor: pass tracegrad.tensor(...) for "
                        f"data (Python values are static arguments: the graph is specialized on them)")
            if x is None and "'NoneType'" in str(error):
                return f"argument {path} is None, and the function uses it as a Tensor"
        return None

    def wait_native(self) -> None:
        """Block until every variant compiled so far runs native code (numba backend; a no-op otherwise).

        With tiering (the default), a new variant runs in the interpreter while its kernels compile in the
        background; benchmarks and bit-reproducible runs call this (or compile with ``tiered=False``) first.
        """
        for variants in self._cache.values():
            for variant in variants:
                variant.wait_native()

    # ------------------------------------------------------------------ inspection
    def graphs(self) -> list[Graph]:
        """The graphs cached so far (after the passes), one per variant."""
        return [v.graph for vs in self._cache.values() for v in vs]

    def explain(self, *args, **kwargs) -> Explanation:
        """What compiling for these arguments gives: IR, backward, guards, saved tensors, retraces, counts.

        Traces without running the step (captured state is restored afterwards).
        """
        leaves, _ = self._flatten_args(args, kwargs)
        tracer = Tracer(self._name, strict=self.strict)
        try:
            out_tree, out_leaves, region = _run_traced(tracer, self.fn, leaves, args, kwargs, region_ok=True)
            variant = Variant.build(tracer, out_tree, out_leaves, region, self.passes, False, self.backend)
        finally:
            tracer.undo()
        return Explanation(tracer.graph, variant, list(self.retraces), self.fastmath, self.backend)


def _guard_text(guard) -> str:
    what = f"{guard.what}()" if guard.what.isidentifier() else guard.what
    return f"{what} at {short_location(guard.loc)}"


def _nearest(keys: list, key):
    """The traced signature that differs from `key` in the fewest arguments (the newest among equals)."""
    def distance(old):
        if old[0] != key[0] or len(old[1]) != len(key[1]):
            return len(key[1]) + 2
        return sum(a != b for a, b in zip(old[1], key[1])) + (old[2] != key[2]) + (old[3] != key[3])
    return min(reversed(keys), key=distance)


def _kind_of(reason: str) -> str:
    """A retrace reason without its values: what the variant-limit warning counts."""
    if reason.startswith("guard "):
        return reason.split(": traced with")[0]
    if reason.startswith("input "):
        return reason.split(":")[0] + ": " + reason.split(": ")[1].split(" ")[0]
    return reason.split(":")[0]


_FIXES = {
    "guard": "Python decides on a tensor's value there; express the choice with tensor ops (tracegrad.where), pass "
             "the value as a static argument, or keep the value out of Python (.item() is only a guard when Python "
             "branches on it, formats it or converts it with float()/int())",
    "input": "the argument's shape, dtype or static value keeps changing; keep it fixed (pad batches), pass "
             "changing numbers as tensors, or raise max_variants",
    "other": "raise max_variants if these variants are all needed",
}


def _short(x):
    if isinstance(x, (list, np.ndarray)):
        return f"<array of {np.asarray(x).size}>"
    return repr(x)


def _run_traced(tracer, fn, leaves, args, kwargs, region_ok):
    """Run `fn` under `tracer`; returns the outputs' structure, their leaves, and the region (or None)."""
    with tracer.active():
        try:
            for path, leaf in leaves:
                if isinstance(leaf, Tensor) and id(leaf) not in tracer.val:
                    tracer.add_arg(leaf, path)
            out = fn(*args, **kwargs)
            out_leaves_p, out_tree = flatten(out)
            out_leaves = [x for _, x in out_leaves_p]
            # a returned `.item()` number is an output of the graph (its 0-dim value), recomputed at every call
            out_tensors = [x if isinstance(x, Tensor) else x.tensor for x in out_leaves
                           if isinstance(x, Tensor) or (isinstance(x, ItemNumber) and x.live)]
            region = None
            # NOTE: a step that ran backward and updated state (a training step) gets no region: its loss can't
            # be differentiated again in eager mode either (the parameters it saved were modified in place).
            if region_ok and _GRAD.enabled and any(t._rg for t in out_tensors) and \
                    any(v.requires_grad for v in tracer.graph.args + tracer.graph.state) and \
                    not (tracer.did_backward and tracer.mutated_state()):
                region = _derive_region(tracer, out_tensors)
            tracer.finish(out_tensors)
        except BaseException:
            tracer.undo()
            raise
    return out_tree, out_leaves, region


def _derive_region(tracer, out_tensors):
    """The backward of a compiled region differentiated from outside: cotangent inputs -> leaf gradients."""
    graph = tracer.graph
    for t in out_tensors:  # NOTE: first: a view whose base was written is refreshed by a forward node, not here
        tracer.value_of(t)
    start = len(graph.nodes)
    diff = [i for i, t in enumerate(out_tensors) if t._rg and t.is_floating_point()]
    region = _derive(tracer, out_tensors, diff, start)
    if region.error is None:
        return region
    # NOTE: as in eager mode, a VJP that raises (floor division's) raises only when a gradient reaches it: derive
    # the backward of the outputs whose derivation doesn't raise, and raise the others' error if they get a gradient
    raising = {}
    for i in diff:
        trial = _derive(tracer, out_tensors, [i], start)
        del tracer.graph.nodes[start:]
        if trial.error is not None:
            raising[i] = trial.error
    region = _derive(tracer, out_tensors, diff, start, rooted=[i for i in diff if i not in raising])
    region.raising = raising
    return region


def _derive(tracer, out_tensors, diff, start, rooted=None):
    """The region whose backward takes the cotangents of outputs `diff` (its `error`: what deriving it raised);
    only those of `rooted` (default: all) flow into the backward graph."""
    graph = tracer.graph
    cots = []
    roots = []
    for i in diff:
        t = out_tensors[i]
        c = Tensor._make(np.ones_like(t._data))
        cv = Value(t._data.shape, t.dtype, f"ct{i}")
        tracer.val[id(c)] = (c, cv)
        tracer.arrays[cv] = c._data
        cots.append(cv)
        if rooted is None or i in rooted:
            roots.append((tracer.value_of(t), c))
    leaves = [v for v in graph.args + graph.state if v.requires_grad]
    error = None
    try:
        with tracer.in_phase("backward"):
            grads, _ = backward_pass(tracer, roots, leaves, create_graph=False)
        grad_values = [None if g is None else tracer.value_of(g) for g in grads]
    except TraceError:
        raise
    except Exception as e:  # noqa: BLE001 - e.g. floor division's VJP: eager raises it at backward time, so do we
        del graph.nodes[start:]
        error, grad_values = e, [None] * len(leaves)
    tracer.phase = "forward"
    region = Region(start, diff, cots, leaves, grad_values)
    region.error = error
    return region


class Explanation:
    """The report of `CompiledFunction.explain` (print it); its parts are attributes."""

    def __init__(self, traced: Graph, variant: Variant, retraces: list, fastmath: bool = False,
                 backend: str = "interpret"):
        self.traced = traced
        self._fastmath = fastmath
        self.backend = backend
        self.graph = variant.graph
        self.backward = variant.region.backward if variant.region is not None else None
        self.guards = list(variant.graph.guards)
        self.state_guards = variant.describe_state_guards()
        self.read_every_call = variant.describe_feeds()
        self.saved = variant.region.saved_report() if variant.region is not None else []
        self.retraces = retraces
        self.counts = variant.graph.counts_by_kind()

    @functools.cached_property
    def fused(self) -> Graph:
        """The graph as ``backend="numba"`` compiles it, with its fusion groups (``node.group``)."""
        return native_graph(self.graph)

    @functools.cached_property
    def _module(self) -> ModuleSource:
        return ModuleSource(self.fused, fastmath=self._fastmath)

    @functools.cached_property
    def kernel_source(self) -> str:
        """The Python source ``backend="numba"`` generates for this graph (numba compiles it at the first call)."""
        return self._module.source

    @property
    def native_calls(self) -> int:
        """How many native calls (segments) ``backend="numba"`` runs this graph as; numpy runs the nodes between."""
        return sum(1 for step in self._module.steps if step[0] == "native")

    @property
    def dynamic_sizes(self) -> dict:
        """The sizes the numba kernels read at run time (``{'n0': 'x dim 0, y dim 0'}``): a call that differs
        only in them traces once more and reuses the compiled kernels."""
        return dict(self._module.symbols)

    def __str__(self):
        g = self.graph
        recorded = len(self.traced.nodes) - (len(self.backward.nodes) if self.backward is not None else 0)
        lines = [f"=== graph ({len(g.nodes)} nodes after passes; {recorded} recorded)", g.format()]
        if self.backward is not None:
            lines += [f"=== backward of the compiled region ({len(self.backward.nodes)} nodes)", str(self.backward)]
        elif any(n.phase == "backward" for n in g.nodes):
            lines.append("=== backward: derived inside the graph (the function calls backward)")
        lines.append(f"=== node counts by kind: {self.counts}")
        if self.backend == "numba":
            sizes = ", ".join(f"{k} = {v}" for k, v in self.dynamic_sizes.items()) or "none"
            lines.append(f"=== sizes the kernels read at run time (a call with new values traces once and reuses the "
                         f"compiled kernels): {sizes}")
        lines.append(f"=== guards ({len(self.guards)} on values, {len(self.state_guards)} on state)")
        lines += [f"  {x.what + '()' if x.what.isidentifier() else x.what} == {_short(x.expected)} at {x.loc}"
                  for x in self.guards]
        lines += [f"  {s}" for s in self.state_guards]
        if self.read_every_call:
            lines.append(f"=== read from Python at every call (no guard): {', '.join(self.read_every_call)}")
        if self.saved:
            total = sum(b for _, b in self.saved)
            lines.append(f"=== saved for backward: {len(self.saved)} tensors, {total} bytes")
            lines += [f"  {name}: {b} bytes" for name, b in self.saved]
        lines.append(f"=== traces so far: {len(self.retraces)}")
        lines += [f"  {i + 1}. {r}" for i, r in enumerate(self.retraces)]
        lines.append("=== note: Python side effects (print, appending to lists, counters) happen while tracing "
                     "only; the graph repeats tensor computations and state updates, nothing else.")
        return "\n".join(lines)

    __repr__ = __str__


# ---------------------------------------------------------------------------------------- public functions
def compile(fn=None, *, backend: str | None = None, strict: bool = False, max_variants: int = 8,  # noqa: A001
            passes=DEFAULT_PASSES, print_passes: bool | None = None, check: bool = False, fastmath: bool = False,
            tiered: bool | None = None):
    """Trace `fn` (a function, a training step, or a Module) into a graph on first call and run the graph.

    Use as ``@tracegrad.compile`` or ``tracegrad.compile(fn, backend=...)``. The default backend is
    ``"numba"`` (fused native kernels; ``$TRACEGRAD_BACKEND`` changes the default), ``"interpret"`` replays the
    graph with numpy, bit-equal to eager (for teaching and debugging). With `tiered` (the default) nobody waits
    for numba: a new variant runs in the interpreter while its kernels compile in a background process, and
    switches to native code at a call boundary once they are ready (`wait_native()` blocks until then;
    ``$TRACEGRAD_TIERED=0`` changes the default).

    Each new signature (shapes, dtypes, requires_grad, static arguments, grad mode) or failed guard traces
    again; past `max_variants` variants new signatures run eagerly (with `strict=True` it raises, and
    data-dependent Python control flow raises at once). Results, parameters, optimizer state and `.grad`s
    equal what eager mode gives (bit for bit in the interpreter, within float32 round-off in native code). With
    `check=True` (numba backend) each call also runs the graph in the interpreter and warns about the first
    node whose value differs beyond tolerance; `fastmath=True` (numba backend) lets LLVM reassociate and
    contract floating-point arithmetic (results change in the last bits; off by default).

    >>> import tracegrad as tg
    >>> f = tg.compile(lambda x: (x.exp() * 2).sum())
    >>> f(tg.zeros(3))
    tensor(6.)
    """
    if fn is None:
        return lambda f: compile(f, backend=backend, strict=strict, max_variants=max_variants, passes=passes,
                                 print_passes=print_passes, check=check, fastmath=fastmath, tiered=tiered)
    return CompiledFunction(fn, backend, strict, max_variants, passes, print_passes, check, fastmath, tiered)


def trace(fn, *args, **kwargs) -> Graph:
    """The graph of `fn` on these example arguments, as recorded (before the simplification passes).

    Where `fn` calls backward the graph holds the derived backward nodes too. Captured state that the
    function changes (parameters, optimizer state, `.grad`) is restored afterwards.

    >>> import tracegrad as tg
    >>> print(tg.jit.trace(lambda a, b: a * b + 1.0, tg.ones(2), tg.ones(2)))
    graph <lambda>(a:f32[2], b:f32[2]) {
      c0:f32[] = const 1.0
      %0:f32[2] = mul a, b
      %1:f32[2] = add %0, c0
      return %1
    }
    """
    cf = CompiledFunction(fn)
    leaves, _ = cf._flatten_args(args, kwargs)
    tracer = Tracer(getattr(fn, "__name__", type(fn).__name__))
    try:
        _run_traced(tracer, fn, leaves, args, kwargs, region_ok=False)
    finally:
        tracer.undo()
    return tracer.graph


def _argnums(argnums, n):
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for i in nums:
        if not -n <= i < n:
            raise ValueError(f"argnums {argnums} out of range for a function called with {n} positional arguments")
    return tuple(i % n for i in nums), isinstance(argnums, int)


_NESTED_TRANSFORMS: list = []  # the value_and_grad calls running (inner ones keep their results differentiable)


def value_and_grad(fn, argnums=0):
    """A function returning ``(fn(*args), gradient of fn w.r.t. args[argnums])``, as in JAX.

    `fn` must return a scalar. Built on the autodiff pass, it works eagerly, inside `compile`, and
    nested (``grad(grad(f))``). It never touches any `.grad`.

    >>> import tracegrad as tg
    >>> tg.value_and_grad(lambda x: (x ** 3).sum())(tg.tensor([1.0, 2.0]))
    (tensor(9.), tensor([ 3., 12.]))
    """
    def wrapped(*args, **kwargs):
        nums, single = _argnums(argnums, len(args))
        outer = _tracing.TRACER
        tracer = outer if outer is not None else Tracer(getattr(fn, "__name__", "f"))
        args = list(args)
        outermost = not _NESTED_TRANSFORMS
        _NESTED_TRANSFORMS.append(fn)
        try:
            with (tracer.active() if outer is None else contextlib.nullcontext()), enable_grad():
                for i, a in enumerate(args):
                    if not isinstance(a, Tensor):
                        if i in nums:
                            raise TypeError(f"grad: argument {i} must be a Tensor to differentiate with respect to "
                                            f"it, got {type(a).__name__}")
                        continue
                    if i in nums:
                        if not a.is_floating_point():
                            raise TypeError(f"grad: argument {i} has dtype {a.dtype}; only floating point inputs can "
                                            f"be differentiated")
                        args[i] = _differentiable(tracer, a, outer is None, f"arg{i}")
                    elif outer is None and id(a) not in tracer.val:
                        tracer.add_arg(a, f"arg{i}")
                out = fn(*args, **kwargs)
                if not isinstance(out, Tensor) or out.numel() != 1 or not out.is_floating_point():
                    what = f"a {type(out).__name__}" if not isinstance(out, Tensor) else \
                        f"a tensor of shape {list(out.shape)} and dtype {out.dtype}"
                    raise TypeError(f"grad requires a function returning a scalar floating point tensor, {fn.__name__} "
                                    f"returned {what}")
                wrt = [tracer.value_of(args[i]) for i in nums]
                seed = Tensor._make(np.ones(out._data.shape, out._data.dtype))
                if out._rg:
                    with tracer.in_phase("backward"):
                        grads, _ = backward_pass(tracer, [(tracer.value_of(out), seed)], wrt, create_graph=True)
                else:
                    grads = [None] * len(nums)
                from ..creation import zeros_like
                grads = [zeros_like(args[i]) if g is None else g for i, g in zip(nums, grads)]
        finally:
            _NESTED_TRANSFORMS.pop()
        if outer is None:  # computed eagerly: hand back plain tensors
            out = Tensor._make(out._data)
            grads = [Tensor._make(g._data) for g in grads]
        elif outermost:  # inside compile but no other transform: plain tensors too, as eager mode gives
            out, grads = out.detach(), [g.detach() for g in grads]
        return out, (grads[0] if single else tuple(grads))
    functools.update_wrapper(wrapped, fn)
    return wrapped


def grad(fn, argnums=0):
    """The gradient of scalar-valued `fn` with respect to `args[argnums]`, as a function (JAX's `grad`).

    >>> import tracegrad as tg
    >>> d2 = tg.grad(tg.grad(lambda x: (x ** 3).sum()))
    >>> d2(tg.tensor(2.0))
    tensor(12.)
    """
    vg = value_and_grad(fn, argnums)

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        return vg(*args, **kwargs)[1]
    return wrapped


def _differentiable(tracer, a: Tensor, top_level: bool, name: str) -> Tensor:
    """`a` as a value the autodiff pass differentiates with respect to."""
    if top_level:
        x = Tensor._make(a._data)
        x._rg = True
        tracer.add_arg(x, name)
        return x
    if a._rg:
        return a
    from ..ops import primitives as P
    x = Tensor._make(a._data)
    x._rg = True
    v = tracer._emit(P.cast, [tracer.value_of(a)], {"dtype": a.dtype}, a._data)
    v.requires_grad = True
    tracer.val[id(x)] = (x, v)
    tracer.tensor_of[v] = x
    return x
