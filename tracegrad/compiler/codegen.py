"""Numba codegen: a fused graph becomes the source of one Python module of numba functions.

The nodes run in `kernel_order`. Runs of consecutive units the codegen handles (fusion groups, reshape,
permute, expand, 2-D matmul) become one *segment*: an ``@njit`` entry function holding the group kernels
(as inlined loop nests: one function compiles much faster than many) and BLAS calls (`compiler.blas`), so
the segment crosses from Python to native code once. The other nodes (convolution, indexing, random
draws, ...) run their numpy forward between segments; for a graph with none of them (an MLP training step)
the whole graph is one native call.

Each fusion group becomes a kernel: a loop nest over the group's domain, innermost dimension last (the
arrays are contiguous there, so LLVM can vectorize it), broadcast inputs indexed with 0 on their size-1
dimensions, one statement per node with the node as a comment, the registry's scalar expression rounded
to the node's dtype (as numpy rounds after every op), and the reduction epilogue accumulating in place.
The outer loop is a ``prange`` from `PARALLEL_THRESHOLD` elements on (never over a summed axis). The same
source, with the decorators made no-ops, is the plain-Python reference of the kernels (`python_reference`).

Sizes that follow the batch (`compiler.dynamic`) are printed as symbols (``range(n0)``, ``np.empty((n0, 128),
...)``, ``.reshape((n0, 10))``) that each segment reads from the shape of an array it receives
(``n0 = v3.shape[0]``), so graphs traced at different batch sizes generate the same module text
(`module_source`, the text the runtime hashes and imports) and share its machine code. The comments of
`module_source` name the symbols too; `source`, the text people read (``TRACEGRAD_SHOW_KERNELS=1``,
``explain().kernel_source``), is the same code with this trace's sizes in the comments.
"""
from __future__ import annotations

import ctypes
import functools
import math
import re

import numpy as np

from .. import dtypes
from ..ops.primitives import Slot
from ..ops.registry import Kind
from .dynamic import Size, symbolic_sizes
from .fusion import EPILOGUES, NATIVE_DTYPES, basic_index, fuse_elementwise, kernel_order
from .passes import lower_composites, merge_summed_matmuls, transpose_of_matmul

PARALLEL_THRESHOLD = 1 << 18
_ONE_BUFFER_FROM = 4  # a kernel storing this many arrays of one dtype stores them in one buffer (see `_group`)
SEGMENT_LIMIT = 40  # native units in one segment at most (see ModuleSource._plan_segments)
_NATIVE_SINGLES = ("reshape", "permute", "expand")
_NATIVE_POOLS = ("max_pool2d_select", "max_pool2d_scatter", "avg_pool2d", "avg_pool2d_backward")
_NATIVE_CONVS = ("conv2d", "conv2d_weight_grad", "conv2d_input_grad")
_FLOAT_LITERAL = re.compile(r"(?<![\w.])(\d+\.\d*(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+)(?![\w.])")
_VECMATH = {"math.exp(": "exp_f32(", "math.log(": "log_f32(", "math.tanh(": "tanh_f32("}
_CAST = {d.name: "np.bool_" if d is dtypes.bool_ else f"np.{d.name}" for d in dtypes.ALL}
# in comments, a symbol is written between these marks: `module_source` shows its name, `source` this trace's size
_SYM = ("\ue000", "\ue001")
# text between these marks is in `source` only (the symbols' sizes in this trace)
_TRACE_ONLY = ("\ue002", "\ue003")
# an offset of a read (``x[t]``): a literal, or an argument of a function that segments share
_OFFSET = ("\ue004", "\ue005")


@functools.lru_cache(maxsize=1)
def numpy_blas() -> tuple | None:
    """The addresses of numpy's own ``cblas_sgemm``/``cblas_dgemm`` (the pip wheels bundle scipy-openblas64:
    cblas with 64-bit integers), or None if this numpy was built otherwise. Generated kernels call them when
    present, so a compiled matmul runs the same BLAS as numpy's ``@`` (scipy's, which numba's ``np.dot`` calls,
    is another build, measured 5-10% slower on this machine)."""
    try:
        try:
            from numpy._core import _multiarray_umath as umath
        except ImportError:  # numpy 1.x
            from numpy.core import _multiarray_umath as umath
        lib = ctypes.CDLL(umath.__file__)
        return tuple(ctypes.cast(getattr(lib, f"scipy_cblas_{k}gemm64_"), ctypes.c_void_p).value for k in "sd")
    except (ImportError, OSError, AttributeError):
        return None


def _literal(array: np.ndarray) -> str:
    x = array.reshape(()).item()
    if isinstance(x, float):
        text = "np.nan" if math.isnan(x) else ("np.inf" if x == math.inf else "-np.inf" if x == -math.inf
                                               else repr(x))
    else:
        text = repr(x)
    return f"{_CAST[array.dtype.name]}({text})"


def native_graph(graph):
    """The graph as the numba backend compiles it: composite ops lowered to the primitives they are made of, weight
    gradients as ``g.T @ x`` (summed over an RNN's time steps as one product), elementwise chains fused."""
    return fuse_elementwise(merge_summed_matmuls(transpose_of_matmul(lower_composites(graph))))


class KernelCheckError(Exception):
    """Raised by native code when a check fails: ``(check number, value, ...)``; `ModuleSource.checks` says what
    the number checks (a guard, or an index in bounds), and the runtime raises the error the interpreter would."""


def gather_index(node) -> list | None:
    """How a getitem (or its gradient, an index_add) whose index is one 1-D index array per dimension reads its
    array, as in cross-entropy's ``logp[arange(n), target]``: for each dimension ``"arange"`` (a constant 0, 1,
    ..., m-1: the position itself) or the input holding the indices; None for any other index."""
    index = node.params.get("index")
    source = node.params["shape"] if node.op.name == "index_add" else node.inputs[0].shape
    if not isinstance(index, tuple) or len(index) != len(source) or len(node.inputs) < 2:
        return None
    length = node.inputs[0].shape if node.op.name == "index_add" else node.out.shape
    if len(length) != 1:
        return None
    spec = []
    for e in index:
        if isinstance(e, Slot):
            v = node.inputs[1 + e.k]
            if v.shape != length or v.dtype.category != 1:
                return None
            spec.append(v)
        elif isinstance(e, np.ndarray) and e.shape == length and e.dtype.kind in "iu" and \
                np.array_equal(e, np.arange(length[0])):
            spec.append("arange")
        else:
            return None
    return spec


def native_guard(guard) -> bool:
    """Whether native code checks this guard where its value is computed (a scalar compared with a number); any
    other guard is checked when its segment returns."""
    return guard.value.shape == () and type(guard.expected) in (bool, int, float)


def native_unit(unit) -> bool:
    """Whether the codegen handles this unit (a fusion group or a single node) inside a segment."""
    node = unit[0]
    if node.group is not None:
        return True
    if not all(v.dtype.name in NATIVE_DTYPES for v in (node.out, *node.inputs)):  # float16: see fusion
        return False
    if node.op.name in _NATIVE_SINGLES:
        return True
    if node.op.name == "cat":
        return all(v.dtype is node.out.dtype for v in node.inputs)
    if node.op.name in ("getitem", "index_add") and gather_index(node) is not None:  # index arrays: checked reads
        return True
    if node.op.name == "index_add":  # a getitem's gradient: static basic indices
        return len(node.inputs) == 1 and basic_index(node.params["index"], node.out.shape) is not None
    if node.op.name in _NATIVE_CONVS:  # im2col and one BLAS product; grouped convolutions run in numpy
        return node.params["groups"] == 1 and node.out.dtype.name in ("float32", "float64") and \
            all(v.dtype is node.out.dtype for v in node.inputs)
    if node.op.name in ("avg_pool2d", "avg_pool2d_backward"):  # (N, C, H, W) only; unbatched ones run in numpy
        return len(node.inputs[0].shape) == len(node.out.shape) == 4 and node.out.dtype.category == 2
    if node.op.name in _NATIVE_POOLS:
        return len(node.inputs[1].shape) == 4 and node.inputs[0].dtype is node.inputs[1].dtype and \
            node.inputs[1].dtype.category != 0
    if node.op.name == "matmul":
        a, b = node.inputs
        return len(a.shape) == 2 and len(b.shape) == 2 and a.dtype.name in ("float32", "float64")
    return False


class ModuleSource:
    """The generated module: its source text, and for each step what it reads and defines.

    `steps` lists ``("native", function name, input values, output values)`` and ``("node", node)``.
    `module_source` is the text the runtime imports (sizes that follow the batch printed as symbols, in the
    code and in the comments); `source` is the same code with this trace's sizes in the comments, for people.
    `symbols` says what each symbol the code uses is (``{'n0': 'x dim 0', 'n2': 'n0 * 5'}``), `segment_symbols`
    which symbols each entry function uses and where it gets them: ``{'segment_0': {'n0': (value, axis),
    'n2': ('product', ['n0', 5])}}`` (the function sets ``n0 = <value's array>.shape[axis]`` and
    ``n2 = n0 * 5``, so a caller passes nothing more than the arrays). With ``dynamic=False`` every size is a
    literal.
    """

    def __init__(self, graph, fastmath: bool = False, dynamic: bool = True):
        self.graph = graph
        self.fastmath = fastmath
        self.sizes = symbolic_sizes(graph) if dynamic else None
        self.lines = ["# generated by tracegrad: one kernel per fusion group, one entry function per segment",
                      "import math", "", "import numpy as np", "from numba import njit, prange", "",
                      "from tracegrad.compiler.blas import gemm_into",
                      "from tracegrad.compiler.codegen import KernelCheckError",
                      "from tracegrad.compiler.vecmath import exp_f32, log_f32, tanh_f32", ""]
        self.steps: list = []
        self.checks: list = []  # what each KernelCheckError number checks: ("guard", guard), ("index", node, axis)
        self.segment_symbols: dict = {}
        self.n_kernels = 0
        self.n_shared = 0  # functions that several segments call (the same code up to names and offsets)
        self._segments: list = []  # (name, argument names, body lines, return line, parallel), rendered at the end
        self._names: dict = {}
        self._avail: dict = {}  # symbol -> how the current segment gets it (see `_symbols_of`), in order
        self._used: set = set()  # the symbols the current segment's code prints
        self._size_of: dict = {}  # symbol -> its Size (this trace's size), for `source`
        units = kernel_order(graph)
        self.native, alone, breaks = self._plan_segments(units)
        self.placed = self._placed_cats(units)
        last_use = self._last_uses(units)
        self.inplace = self._inplace_writes(units)
        run: list = []
        for k, unit in enumerate(units):
            if unit[0] in self.placed.values():  # its kernel wrote it
                continue
            if self.native[k] and not alone[k]:
                if k in breaks:
                    self._segment(run, last_use)
                    run = []
                run.append((k, unit))
                continue
            if run:
                self._segment(run, last_use)
                run = []
            if self.native[k]:
                self._segment([(k, unit)], last_use)
            else:
                self.steps.append(("node", unit[0]))
        if run:
            self._segment(run, last_use)
        self._render_segments()
        used = sorted({s for seg in self.segment_symbols.values() for s in seg}, key=lambda s: int(s[1:]))
        self.symbols = {s: self.sizes.symbols[s] for s in used}
        if used:
            self.lines.insert(1, "# sizes that follow the batch are symbols, each segment reads them from its arrays: "
                              + ", ".join(f"{s} = {self.symbols[s]}{_TRACE_ONLY[0]} (= {self.sizes.values[s]} in "
                                          f"this trace){_TRACE_ONLY[1]}" for s in used))
        text = "\n".join(self.lines) + "\n"
        self.module_source = _render(text, None)
        self.source = _render(text, {name: int(n) for name, n in self._size_of.items()})

    @staticmethod
    def _plan_segments(units) -> tuple[list, list, set]:
        """Which units run natively, which run as a segment of their own, and where else a segment ends (the
        units that start a new one).

        A run of up to three times `SEGMENT_LIMIT` native units (a conv net's step) is cut into segments of
        similar length. A longer run (an unrolled RNN: hundreds) would be one numba function,
        and numba's compile time grows faster than a function's length (minutes for an LSTM's step). There each
        kernel, convolution and pooling becomes a segment of its own and the other units (matmuls, reshapes,
        copies) run in numpy between them: a native call per kernel, and kernels repeated at every time step share
        one function (see `_render_segments`), compiled once."""
        native = [native_unit(u) for u in units]
        alone = [False] * len(units)
        breaks: set = set()
        k = 0
        while k < len(units):
            end = k
            while end < len(units) and native[end]:
                end += 1
            if SEGMENT_LIMIT < end - k <= 3 * SEGMENT_LIMIT:  # a few segments of similar length
                pieces = -(-(end - k) // SEGMENT_LIMIT)
                breaks.update(k + (end - k) * j // pieces for j in range(1, pieces))
            elif end - k > SEGMENT_LIMIT:
                for i in range(k, end):
                    native[i] = units[i][0].group is not None or units[i][0].op.name in _NATIVE_CONVS + _NATIVE_POOLS
                    alone[i] = native[i]
            k = max(end, k + 1)
        return native, alone, breaks

    def _inplace_writes(self, units) -> dict:
        """New state values a kernel can store straight into the state's own buffer: {new value: state input}.

        Only for a kernel after the last node run in numpy and after the last check native code makes (a guard,
        an index in bounds): a node run in numpy may raise, a check may fail, and nothing may stop the call
        half-way once a buffer is written. And only when the new value is computed by that kernel at the state's
        shape and dtype, and no unit after it reads the old value (the kernel itself reads it at the index it
        writes). So a cross-entropy step, whose label guard and indexing come before the update, updates its
        parameters in place.
        """
        g = self.graph
        last = max((k for k in range(len(units)) if not self.native[k]), default=-1)
        guarded = {gd.value: gd for gd in g.guards}
        barrier = last
        for k in range(last + 1, len(units)):
            for n in units[k]:
                if n.out in guarded and not native_guard(guarded[n.out]):
                    return {}  # checked when its segment returns, after every kernel in it ran
                if n.out in guarded or n.op.name in ("getitem", "index_add") and gather_index(n) is not None:
                    barrier = k
        in_numpy = {n.out for k, u in enumerate(units) if not self.native[k] for n in u}
        position = {n.out: k for k, u in enumerate(units) for n in u}
        in_group = {n.out for u in units if u[0].group is not None for n in u if n.op.name not in EPILOGUES}
        out = {}
        for target, new in g.writes:
            if new not in in_group or (new.shape, new.dtype) != (target.shape, target.dtype) or new in out:
                continue
            k = position[new]
            if k <= barrier:
                continue
            views = {target}  # the old value, and views of it (a movement op's result may share its buffer, and
            for n in g.nodes:  # so may what numpy computes from it: basic indexing gives a view)
                if (n.op.kind is Kind.MOVEMENT and n.inputs and n.inputs[0] in views) or \
                        (n.out in in_numpy and views & set(n.inputs)):
                    views.add(n.out)
            later = [v for u in units[k + 1:] for n in u for v in n.inputs]
            if views & set(later) or (views - {target}) & {v for n in units[k] for v in n.inputs} or \
                    views & set(g.outputs):
                continue
            out[new] = target
        return out

    # ------------------------------------------------------------------ names and sizes
    def name(self, v) -> str:
        n = self._names.get(v)
        if n is None:
            n = self._names[v] = f"v{len(self._names)}"
        return n

    def shape(self, v) -> tuple:
        """The value's shape, with a `Size` where the size follows the batch."""
        return self.sizes.shape(v) if self.sizes else v.shape

    _literal_sizes = False  # set while a kernel that must print its sizes as numbers is generated

    def dim(self, n) -> str:
        """One size in code: a symbol the current segment reads, or the number."""
        if isinstance(n, Size) and n.name in self._avail and not self._literal_sizes:
            self._size_of[n.name] = n
            self._used.add(n.name)
            return n.name
        return str(int(n))

    def dims(self, shape) -> str:
        """A shape as a tuple in code: ``(n0, 10)``, ``(10,)``, ``()``."""
        items = [self.dim(n) for n in shape]
        return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"

    def cdim(self, n) -> str:
        """One size in a comment: a symbol's name in `module_source`, its size in `source`."""
        if isinstance(n, Size):
            self._size_of[n.name] = n
            return f"{_SYM[0]}{n.name}{_SYM[1]}"
        return str(int(n))

    def describe(self, node) -> str:
        """The node as a comment (``%3 = reshape %2 shape=(n0, 10)``); a shape param is printed as the output's
        shape (equal to it for reshape, expand and a convolution's input gradient), with its symbols."""
        shape = None
        if (node.op.name in ("reshape", "expand") and "shape" in node.params) or \
                node.op.name in ("conv2d_input_grad", "avg_pool2d_backward"):
            items = [self.cdim(n) for n in self.shape(node.out)]
            shape = f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"
        return _describe(node, shape)

    def _literal_const(self, v) -> bool:
        """A 0-d constant printed as a literal in kernels (those whose value follows the batch are read as arrays)."""
        c = self.graph.consts.get(v)
        return c is not None and c.ndim == 0 and not (self.sizes and v in self.sizes.size_consts)

    def _placed_cats(self, units) -> dict:
        """The cats a kernel writes itself: {first node of the kernel's group: the cat}.

        A cat along the last dimension of values that one kernel computes and nothing else reads (an LSTM's gate
        gradients, laid side by side as the next step's matmul operand) is that kernel's output: it stores each
        value at its columns of the cat's array, and the cat costs nothing (it was a copy per time step)."""
        producer = {}
        for k, unit in enumerate(units):
            if unit[0].group is not None and self.native[k]:
                for n in unit:
                    producer[n.out] = unit[0]
        readers: dict = {}
        for unit in units:
            for n in unit:
                for v in n.inputs:
                    readers[v] = readers.get(v, 0) + 1
        roots = set(self.graph.roots())
        placed = {}
        for unit in units:
            cat = unit[0]
            if cat.op.name != "cat" or cat.group is not None or len(cat.inputs) < 2:
                continue
            ins, axis = cat.inputs, cat.params["axis"]
            group = producer.get(ins[0])
            if group is None or group in placed or axis != len(ins[0].shape) - 1 or len(set(ins)) != len(ins) or \
                    any(producer.get(v) is not group or v.shape != ins[0].shape or v.dtype is not cat.out.dtype or
                        readers.get(v) != 1 or v in roots or v.producer.op.name in EPILOGUES for v in ins):
                continue
            if isinstance(self.shape(ins[0])[-1], Size):  # the columns' offsets must be numbers
                continue
            placed[group] = cat
        return placed

    def _last_uses(self, units) -> dict:
        last = {}
        for k, unit in enumerate(units):
            for node in unit:
                if node in self.placed.values():  # its inputs are written into it by their kernel
                    continue
                for v in node.inputs:
                    last[v] = k
        roots = set(self.graph.roots())
        for v in roots:
            last[v] = len(units)
        return last

    # ------------------------------------------------------------------ segments
    def _segment(self, run, last_use) -> None:
        made, reads = set(), []
        for _, unit in run:
            for node in unit:
                for v in node.inputs:
                    # 0-d constants are literals inside kernels; other ops read them as arrays
                    literal = self._literal_const(v) and unit[0].group is not None
                    if v not in made and v not in reads and not literal:
                        reads.append(v)
                if node.out in self.inplace and self.inplace[node.out] not in reads:
                    reads.append(self.inplace[node.out])
                made.add(node.out)
            if unit[0] in self.placed:
                made.add(self.placed[unit[0]].out)
        end = run[-1][0]
        order = [v for _, u in run for v in [n.out for n in u] + ([self.placed[u[0]].out] if u[0] in self.placed
                                                                  else [])]
        # a state value updated in place by its kernel is not returned (the state's buffer holds it)
        written_in_place = {v for v in self.inplace if v not in self.graph.outputs and
                            not any(v is gv for _, gv in self.graph.grad_writes) and
                            not any(v is gd.value for gd in self.graph.guards)}
        outs = [v for v in made if last_use.get(v, -1) > end and v not in written_in_place]
        outs.sort(key=order.index)
        fname = f"segment_{len([s for s in self.steps if s[0] == 'native'])}"
        self._avail = self._symbols_of(reads)
        self._used = set()
        body = []
        self.parallel = False
        for _, unit in run:
            if unit[0].group is not None:
                body += self._group(unit, made_outside=lambda v, unit=unit: v not in {n.out for n in unit},
                                    needed=lambda v, end=end, unit=unit: last_use.get(v, -1) > end or
                                    any(v in n.inputs for _, u in run if u is not unit for n in u))
                self._literal_sizes = False
            else:
                body += self._single(unit[0]).split("\n")
            body += self._guard_checks(unit)
        # the symbols used and those they are computed from, in the order they can be computed
        for s in reversed(list(self._avail)):
            if s in self._used and self._avail[s][0] in ("product", "quotient"):
                self._used.update(f for f in self._avail[s][1:][-1] if isinstance(f, str))
                self._used.update(self._avail[s][1:2] if self._avail[s][0] == "quotient" else ())
        used = [s for s in self._avail if s in self._used]
        self.segment_symbols[fname] = {s: self._avail[s] for s in used}
        body[:0] = [self._symbol_line(s, self._avail[s]) for s in used]
        self._avail = {}
        rets = ", ".join(self.name(v) for v in outs)
        self._segments.append((fname, [self.name(v) for v in reads], body,
                               f"return ({rets}{',' if len(outs) == 1 else ''})", self.parallel))
        self.steps.append(("native", fname, reads, outs))

    def _guard_checks(self, unit) -> list:
        """Lines checking the guards on values this unit computed, where they are computed: a failed one raises
        `KernelCheckError` (the runtime raises `GuardError`) before any later kernel runs."""
        lines = []
        for gd in self.graph.guards:
            if native_guard(gd) and any(n.out is gd.value for n in unit):
                got = f"{self.name(gd.value)}[()]"
                want = gd.expected
                holds = f"{got} != {got}" if want != want else \
                    f"{got} == {'-' if want < 0 else ''}np.inf" if abs(want) == math.inf else f"{got} == {want!r}"
                lines += [f"if not ({holds}):  # {gd!r}", f"    raise KernelCheckError({len(self.checks)}, {got})"]
                self.checks.append(("guard", gd))
        return lines

    def _gather(self, node) -> list:
        """A getitem whose index is one 1-D index array per dimension (``x[arange(n), target]``), or its gradient
        (an index_add: zeros, then each value added at its index), as one loop with each index checked in bounds
        (negative ones count from the end, as numpy's)."""
        spec, out = gather_index(node), node.out
        scatter = node.op.name == "index_add"
        source = self.shape(out) if scatter else self.shape(node.inputs[0])
        length = self.shape(node.inputs[0] if scatter else out)[0]
        at = []
        body = []
        for axis, e in enumerate(spec):
            if e == "arange":
                at.append("i0")
                continue
            k, size = f"k{axis}", self.dim(source[axis])
            body += [f"{k} = {self.name(e)}[i0]", f"if {k} < 0:", f"    {k} += {size}",
                     f"if {k} < 0 or {k} >= {size}:",
                     f"    raise KernelCheckError({len(self.checks)}, {self.name(e)}[i0], {size})"]
            self.checks.append(("index", node, axis))
            at.append(k)
        o, dt = self.name(out), _CAST[out.dtype.name]
        # NOTE: the constant arange printed as such, and the shape with its symbols: the text must not change with
        # the batch
        described = ", ".join("arange" if isinstance(e, np.ndarray) else repr(e) for e in node.params["index"])
        index = f"{out.name} = {node.op.name} {', '.join(v.name for v in node.inputs)} index=({described})"
        if scatter:
            index += f" shape=({', '.join(self.cdim(n) for n in source)})"
            lines = [f"{o} = np.zeros({self.dims(source)}, {dt})  # {index}"]
            body.append(f"{o}[{', '.join(at)}] += {self.name(node.inputs[0])}[i0]")
        else:
            lines = [f"{o} = np.empty({self.dims(self.shape(out))}, {dt})  # {index}"]
            body.append(f"{o}[i0] = {self.name(node.inputs[0])}[{', '.join(at)}]")
        return lines + self._nest([length], ["i0"], body)

    def _render_segments(self) -> None:
        """The segments' code. Segments whose code is the same up to the names of their values and the offsets
        of their reads (``x[t]``), as an RNN's cell kernel at every time step, share one function: numba compiles
        it once. The offsets that differ between them (``t``) are its arguments; those they all share (the
        gates' columns) stay literals, as do all offsets of a segment met once.

        # NOTE: literals where possible: LLVM proves reads at constant offsets of one array don't overlap the
        # kernel's stores with fewer runtime checks, and too many checks stop it from vectorizing the loop."""
        canonical = [_canonical(args, body + [ret]) for _, args, body, ret, _ in self._segments]
        members: dict = {}
        for code, _, params in canonical:
            members.setdefault(code, []).append(params)
        varying = {code: [len({p[j][0] for p in ps}) > 1 for j in range(len(ps[0]))] if len(ps) > 1 else None
                   for code, ps in members.items()}
        shared: dict = {}
        step_of = {step[1]: k for k, step in enumerate(self.steps) if step[0] == "native"}
        for (fname, args, body, ret, parallel), (code, lines, params) in zip(self._segments, canonical):
            decorator = f"@njit(cache=True, error_model='numpy', fastmath={self.fastmath}, parallel={parallel})"
            varies = varying[code]
            if varies is None:
                self.lines += [decorator, f"def {fname}({', '.join(args)}):"]
                self.lines += ["    " + _unmark(line) for line in body]
                self.lines += [f"    {ret}", "", ""]
                continue
            k = step_of[fname]
            if code not in shared:
                shared[code] = fname
                names = [f"p{j}" for j, v in enumerate(varies) if v] + [f"a{i}" for i in range(len(args))]
                self.lines += [decorator, f"def {fname}({', '.join(names)}):"]
                self.lines += ["    " + _place_offsets(line, params, varies) for line in lines]
                self.lines += ["", ""]
            offsets = tuple(value for (value, _), v in zip(params, varies) if v)
            self.steps[k] = self.steps[k][:1] + (shared[code],) + self.steps[k][2:] + (offsets,)
        self.n_shared = len(shared)

    def _symbols_of(self, reads) -> dict:
        """The symbols a segment reading `reads` can print, in the order it can set them: read from the first array
        that has it (``(value, axis)``), or computed from its factors (``("product", factors)``), or from a product
        and its other factors (``("quotient", product, factors)``)."""
        avail: dict = {}
        for v in reads:
            for k, n in enumerate(self.shape(v)):
                if isinstance(n, Size) and n.name not in avail:
                    avail[n.name] = (v, k)
        products = self.sizes.products if self.sizes else {}
        changed = True
        while changed:
            changed = False
            for s, factors in products.items():
                missing = [f for f in factors if isinstance(f, str) and f not in avail]
                if s not in avail and not missing:
                    avail[s], changed = ("product", factors), True
                elif s in avail and len(missing) == 1:
                    avail[missing[0]], changed = ("quotient", s, factors), True
        return avail

    def _symbol_line(self, s, how) -> str:
        if how[0] == "product":
            return f"{s} = {' * '.join(map(str, how[1]))}"
        if how[0] == "quotient":  # exact: the product's size is the product of its factors' sizes
            others = [str(f) for f in how[2] if f != s]
            return f"{s} = {how[1]} // ({' * '.join(others)})  # {how[1]} = {self.sizes.symbols[how[1]]}"
        return f"{s} = {self.name(how[0])}.shape[{how[1]}]  # {self.sizes.symbols[s]}"

    def _operand(self, v) -> str:
        if self._literal_const(v):
            return _literal(self.graph.consts[v])
        return self.name(v)

    def _single(self, node) -> str:
        out, ins, p = self.name(node.out), [self.name(v) for v in node.inputs], node.params
        name = node.op.name
        if name == "reshape":  # the target shape is the output's (its symbols included)
            code = f"np.ascontiguousarray({ins[0]}).reshape({self.dims(self.shape(node.out))})"
        elif name == "permute":  # a 2-D transpose is .T: numba types it Fortran-ordered, which BLAS reads as is
            code = f"{ins[0]}.T" if tuple(p["perm"]) == (1, 0) else f"np.transpose({ins[0]}, {tuple(p['perm'])})"
        elif name == "expand":
            code = f"np.broadcast_to({ins[0]}, {self.dims(self.shape(node.out))})"
        elif name in ("getitem", "index_add") and gather_index(node) is not None:
            return "\n".join(self._gather(node))
        elif name in ("cat", "index_add"):
            return "\n".join(self._copy_into(node))
        elif name in ("avg_pool2d", "avg_pool2d_backward"):
            return "\n".join(self._avg_pool(node))
        elif name in _NATIVE_POOLS:
            return "\n".join(self._max_pool(node))
        elif name in _NATIVE_CONVS:
            return "\n".join(self._conv(node))
        else:  # matmul: one BLAS call into a new array (`compiler.blas`; contiguous copies if BLAS can't read one)
            a, b = ins
            return (f"{out} = np.empty({self.dims(self.shape(node.out))}, {_CAST[node.out.dtype.name]})  "
                    f"# {self.describe(node)}\n"
                    f"if not gemm_into({a}, {b}, {out}):\n"
                    f"    gemm_into(np.ascontiguousarray({a}), np.ascontiguousarray({b}), {out})")
        return f"{out} = {code}  # {self.describe(node)}"

    def _copy_into(self, node) -> list:
        """A cat (each input copied into its place along the axis) or an index_add of a basic index (zeros, then
        the gradient added where the index reads), as loop nests into a new array."""
        out, shape = node.out, self.shape(node.out)
        lines = [f"{self.name(out)} = np.empty({self.dims(shape)}, {_CAST[out.dtype.name]})  # {self.describe(node)}"]
        idx = [f"i{k}" for k in range(len(shape))]
        target = f"{self.name(out)}[{', '.join(idx) or '()'}]"
        if node.op.name == "index_add":
            zero = f"{_CAST[out.dtype.name]}(0)"
            lines += self._nest(shape, idx, [f"{target} = {zero}"])
            g = node.inputs[0]
            reads = basic_index(node.params["index"], out.shape)
            gi = [f"j{k}" for k in range(len(g.shape))]
            at = _getitem_index(reads, g.shape, g.shape, gi)
            return lines + self._nest(self.shape(g), gi, [f"{self.name(out)}[{at}] += {self.name(g)}"
                                                          f"[{', '.join(gi) or '()'}]"])
        axis, offset = node.params["axis"], []
        for v in node.inputs:
            at = [f"{' + '.join(offset)} + {i}" if k == axis and offset else i for k, i in enumerate(idx)]
            lines += self._nest(self.shape(v), idx, [f"{self.name(out)}[{', '.join(at)}] = "
                                                     f"{self.name(v)}[{', '.join(idx)}]"])
            offset.append(self.dim(self.shape(v)[axis]))
        return lines

    def _conv(self, node) -> list:
        """A convolution or one of its gradients as im2col, one BLAS product and a copy between layouts.

        The patches of the (N, C, H, W) input are a (C*KH*KW, N*OH*OW) matrix (zeros where a window reads
        padding); ``conv2d`` is weight (O, C*KH*KW) @ patches, the weight's gradient is g's rows (O, N*OH*OW) @
        patches.T, the input's gradient adds weight.T @ g's rows back into the windows (col2im)."""
        p, out, name = node.params, node.out, node.op.name
        (sh, sw), (ph, pw), (dh, dw) = p["stride"], p["padding"], p["dilation"]
        dt, o = _CAST[out.dtype.name], self.name(out)
        # NOTE: the temporaries are named after the output: numba types a name once per function, and two
        # convolutions of a segment may differ in dtype
        patches, grows, wm, prod, back = (f"{t}_{o}" for t in ("patches", "grows", "wm", "prod", "back"))
        if name == "conv2d":
            x, w = node.inputs
            g = None
        elif name == "conv2d_weight_grad":
            x, g = node.inputs
            w = None
        else:
            g, w = node.inputs
            x = None
        x_shape = self.shape(x) if x is not None else self.shape(out)
        w_shape = tuple(w.shape) if w is not None else tuple(out.shape)
        g_shape = self.shape(g) if g is not None else self.shape(out)
        n, c, h, wd = x_shape[0], *(int(d) for d in x_shape[1:])
        co, kh, kw = int(w_shape[0]), int(w_shape[2]), int(w_shape[3])
        oh, ow = int(g_shape[2]), int(g_shape[3])
        rows, cols = f"{c * kh * kw}", f"{self.dim(n)} * {oh * ow}"

        def window_loops(body, outside=None):
            """For each patch row (ch, a, b) and column (i0, i2, i3): `body` at the input position (r, q) of each
            column whose position is inside the input, `outside` (if given) at the others. The columns inside
            form one range of i3 per row (lo to hi), so the innermost loop runs without checks and vectorizes."""
            lines = [f"for ch in range({c}):", f"    for a in range({kh}):", f"        for b in range({kw}):",
                     f"            row = (ch * {kh} + a) * {kw} + b"]
            if pw:  # i3 inside: 0 <= i3 * sw + b * dw - pw < W
                lines += [f"            lo = min({ow}, max(0, -((b * {dw} - {pw}) // {sw})))",
                          f"            hi = max(lo, min({ow}, ({wd} - 1 + {pw} - b * {dw}) // {sw} + 1))"]
            lo, hi = ("lo", "hi") if pw else ("0", str(ow))
            lines += [f"            for i0 in range({self.dim(n)}):", f"                for i2 in range({oh}):",
                      f"                    r = i2 * {sh} + a * {dh} - {ph}",
                      f"                    base = (i0 * {oh} + i2) * {ow}"]
            inner = [f"for i3 in range({lo}, {hi}):", f"    q = i3 * {sw} + b * {dw} - {pw}", "    col = base + i3"] + \
                ["    " + line for line in body]
            if outside is not None and pw:
                inner += [f"for i3 in range({lo}):", "    col = base + i3"] + ["    " + line for line in outside]
                inner += [f"for i3 in range({hi}, {ow}):", "    col = base + i3"] + ["    " + line for line in outside]
            if ph:  # a row outside the input: every column outside
                lines += [f"                    if 0 <= r < {h}:"] + ["                        " + x for x in inner]
                if outside is not None:
                    lines += ["                    else:", f"                        for i3 in range({ow}):",
                              "                            col = base + i3"] + \
                        ["                            " + x for x in outside]
            else:
                lines += ["                    " + x for x in inner]
            return lines

        lines = [f"# {self.describe(node)}"]
        if x is not None:  # the input's patches, zeros where a window reads padding
            lines += [f"{patches} = np.empty(({rows}, {cols}), {dt})"] + \
                window_loops([f"{patches}[row, col] = {self.name(x)}[i0, ch, r, q]"],
                             [f"{patches}[row, col] = {dt}(0)"])
        # NOTE: the copies between the (N, O, OH, OW) and (O, N*OH*OW) layouts walk i3 innermost on both sides
        copy = [n, co, oh, ow], ["i0", "o", "i2", "i3"]
        column = f"(i0 * {oh} + i2) * {ow} + i3"
        if g is not None:  # the output's gradient as rows: (O, N*OH*OW)
            lines += [f"{grows} = np.empty(({co}, {cols}), {dt})"] + \
                self._nest(*copy, [f"{grows}[o, {column}] = {self.name(g)}[i0, o, i2, i3]"])
        if w is not None:
            lines.append(f"{wm} = np.ascontiguousarray({self.name(w)}).reshape(({co}, {rows}))")
        if name == "conv2d":
            lines += [f"{prod} = np.empty(({co}, {cols}), {dt})", f"gemm_into({wm}, {patches}, {prod})",
                      f"{o} = np.empty({self.dims(self.shape(out))}, {dt})"]
            lines += self._nest(*copy, [f"{o}[i0, o, i2, i3] = {prod}[o, {column}]"])
        elif name == "conv2d_weight_grad":
            lines += [f"{o} = np.empty({self.dims(self.shape(out))}, {dt})",
                      f"gemm_into({grows}, {patches}.T, {o}.reshape(({co}, {rows})))"]
        else:  # col2im: each patch element added back where it was read
            lines += [f"{back} = np.empty(({rows}, {cols}), {dt})", f"gemm_into({wm}.T, {grows}, {back})",
                      f"{o} = np.zeros({self.dims(self.shape(out))}, {dt})"]
            lines += window_loops([f"{o}[i0, ch, r, q] += {back}[row, col]"])
        return lines

    def _avg_pool(self, node) -> list:
        """avg_pool2d (each window's sum over its divisor: the kernel's size, or with ``count_include_pad=False``
        the window's positions inside the input) or its gradient (g over the divisor added at each of them), one
        loop nest over the windows; sums in float64."""
        p, out, (g_or_x,) = node.params, node.out, node.inputs
        (kh, kw), (sh, sw), (ph, pw) = p["kernel"], p["stride"], p["padding"]
        backward = node.op.name == "avg_pool2d_backward"
        x_shape = self.shape(out) if backward else self.shape(g_or_x)
        windows = self.shape(g_or_x) if backward else self.shape(out)
        h, w, oh, ow = int(x_shape[2]), int(x_shape[3]), int(windows[2]), int(windows[3])
        dt, o, src = _CAST[out.dtype.name], self.name(out), self.name(g_or_x)
        counted = (ph or pw) and not p["count_include_pad"]  # the divisor: the positions inside, or the kernel's size
        # NOTE: the temporaries are named after the output (typed once per function: pools of two dtypes)
        inside, total, share = (f"{t}_{o}" for t in ("inside", "total", "share"))
        count = inside if counted else f"{kh * kw}.0"
        lines = [f"{o} = {'np.zeros' if backward else 'np.empty'}({self.dims(self.shape(out))}, {dt})  "
                 f"# {self.describe(node)}"]

        def over_window(body):  # `body` at each position (r, q) of window (i2, i3) inside the input
            return [f"for a in range({kh}):", f"    r = i2 * {sh} + a - {ph}", f"    for b in range({kw}):",
                    f"        q = i3 * {sw} + b - {pw}", f"        if 0 <= r < {h} and 0 <= q < {w}:"] + \
                ["            " + line for line in body]
        body = [f"{inside} = 0"] + over_window([f"{inside} += 1"]) if counted else []
        if backward:  # g's share added at each position
            body.append(f"{share} = {dt}({src}[i0, i1, i2, i3] / {count})")
            body += over_window([f"{o}[i0, i1, r, q] += {share}"])
        else:
            body += [f"{total} = 0.0"] + over_window([f"{total} += {src}[i0, i1, r, q]"])
            body.append(f"{o}[i0, i1, i2, i3] = {dt}({total} / {count})")
        n, ch = x_shape[:2]
        return lines + self._nest([n, ch, oh, ow], ["i0", "i1", "i2", "i3"], body)

    def _max_pool(self, node) -> list:
        """max_pool2d's select (``out = v`` where ``x`` is largest in each window) or scatter (``g`` added where
        ``x`` is largest): one loop nest over the windows, which finds each window's first maximum (its first NaN,
        as numpy's argmax does over the padded window, whose padding reads as the lowest value)."""
        first, x = node.inputs
        p, out = node.params, node.out
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = p["kernel"], p["stride"], p["padding"], p["dilation"]
        h, w = int(x.shape[2]), int(x.shape[3])
        oh, ow = (int(n) for n in first.shape[2:]) if node.op.name == "max_pool2d_scatter" else out.shape[2:]
        dt, name = _CAST[x.dtype.name], self.name(out)
        low = f"{dt}(-np.inf)" if x.dtype.category == 2 else f"{dt}({np.iinfo(x.dtype.np).min})"
        select = node.op.name == "max_pool2d_select"
        fill = "np.empty" if select else "np.zeros"
        lines = [f"{name} = {fill}({self.dims(self.shape(out))}, {_CAST[out.dtype.name]})  # {self.describe(node)}"]
        xs, fs = self.name(x), self.name(first)
        padded = ph or pw
        def at(i, k, s, d, pad):  # the input row (column) that window position i, kernel offset k reads
            return " + ".join(t for t in (f"{i} * {s}" if s != 1 else i, f"{k} * {d}" if d != 1 else k,
                                          f"-{pad}" if pad else "") if t).replace("+ -", "- ")
        best, xv = f"best_{name}", f"xv_{name}"  # typed once per function: pools of two dtypes need two names
        body = [f"{best} = {low}", "at_h = -1", "at_w = -1", f"for a in range({kh}):",
                f"    r = {at('i2', 'a', sh, dh, ph)}", f"    for b in range({kw}):",
                f"        c = {at('i3', 'b', sw, dw, pw)}"]
        read = f"{xs}[i0, i1, r, c]"
        if padded:  # a position in the padding reads as the lowest value
            body.append(f"        {xv} = {read} if 0 <= r < {h} and 0 <= c < {w} else {low}")
        else:
            body.append(f"        {xv} = {read}")
        body += [f"        if at_h == -1 or ({best} == {best} and ({xv} > {best} or {xv} != {xv})):",
                 f"            {best} = {xv}", "            at_h = r", "            at_w = c"]
        zero = f"{_CAST[out.dtype.name]}(0)"
        inside = f"0 <= at_h < {h} and 0 <= at_w < {w}"
        if select:
            read = f"{fs}[i0, i1, at_h, at_w]"
            body.append(f"{name}[i0, i1, i2, i3] = {read} if {inside} else {zero}" if padded else
                        f"{name}[i0, i1, i2, i3] = {read}")
        else:
            add = f"{name}[i0, i1, at_h, at_w] += {fs}[i0, i1, i2, i3]"
            body += [f"if {inside}:", "    " + add] if padded else [add]
        n, ch = self.shape(x)[:2]
        return lines + self._nest([n, ch, oh, ow], ["i0", "i1", "i2", "i3"], body)

    # ------------------------------------------------------------------ kernels
    def _group(self, unit, made_outside, needed) -> list:
        """The lines of a fusion group's kernel: allocations, then one loop nest over the group's domain.

        A reduction epilogue over the innermost dimensions (a row sum, a full sum) accumulates in a local
        variable, initialised before the loops over the reduced dimensions and stored after them; over other
        dimensions (a column sum) in an array with the kept dimensions, stored by a loop after the nest. Either
        way the only array functions the kernel calls are ``np.empty`` (each other one is a numba overload
        compiled once per process, a good part of a cold compile)."""
        epilogue = unit[-1] if unit[-1].op.name in EPILOGUES else None
        members = unit[:-1] if epilogue is not None else unit
        domain = self.shape(epilogue.inputs[0] if epilogue is not None else members[0].out)
        d = len(domain)
        idx = [f"i{k}" for k in range(d)]
        loads = []
        for node in unit:
            if node.op.name in ("getitem", "permute"):  # read their input at their own indices (below)
                continue
            for v in node.inputs:
                if made_outside(v) and v not in loads:
                    loads.append(v)
        stored = [n.out for n in members if needed(n.out)]
        size = math.prod(int(n) for n in domain)
        axes = set(epilogue.params["axes"]) if epilogue is not None else set()
        parallel = size >= PARALLEL_THRESHOLD and d > 0 and 0 not in axes
        self.parallel = self.parallel or parallel
        # the loop depth where a local accumulator starts (the reduced dimensions are the innermost ones), or None
        local_acc = d - len(axes) if epilogue is not None and axes == set(range(d - len(axes), d)) else None
        lines = [f"# kernel {self.n_kernels}: {', '.join(n.out.name + ' ' + n.op.name for n in unit)} fused over "
                 f"[{', '.join(self.cdim(n) for n in domain)}]"]
        self.n_kernels += 1
        # NOTE: a kernel storing many arrays (an LSTM cell keeps 12 for its backward) allocates those of one dtype as
        # one buffer and stores into it: LLVM vectorizes a loop only if few runtime checks prove its arrays don't
        # overlap, and twelve separate arrays took too many (the cell ran 4x slower)
        # The buffer's sizes are literals: with a size that follows the batch as a symbol its stride was symbolic
        # too, and the loop ran 5x slower again (the kernel then serves this batch size only: another size
        # compiles a module of its own)
        into: dict = {}  # value -> (buffer, position)
        cat = self.placed.get(unit[0])
        columns: dict = {}  # value -> its first column in the cat's array
        if cat is not None:
            width = int(domain[-1])
            lines.append(f"{self.name(cat.out)} = np.empty({self.dims(self.shape(cat.out))}, "
                         f"{_CAST[cat.out.dtype.name]})  # {self.describe(cat)}: written by this kernel")
            columns = {v: j * width for j, v in enumerate(cat.inputs)}
            stored = [v for v in stored if v not in columns] + list(cat.inputs)
        fresh = [v for v in stored if v not in self.inplace and v not in columns]
        for dt in dict.fromkeys(v.dtype.name for v in fresh):
            same = [v for v in fresh if v.dtype.name == dt]
            if len(same) >= _ONE_BUFFER_FROM:
                self._literal_sizes = True
                buf = f"buf_{self.name(same[0])}"
                lines.append(f"{buf} = np.empty({self.dims((len(same),) + tuple(self.shape(same[0])))}, {_CAST[dt]})")
                into.update((v, (buf, k)) for k, v in enumerate(same))
        for v in stored:
            if v in self.inplace:  # the new value of captured state: stored into the state's own buffer
                lines.append(f"{self.name(v)} = {self.name(self.inplace[v])}  # updated in place")
            elif v in columns:
                continue
            elif v in into:
                lines.append(f"{self.name(v)} = {into[v][0]}[{into[v][1]}]")
            else:
                lines.append(f"{self.name(v)} = np.empty({self.dims(self.shape(v))}, {_CAST[v.dtype.name]})")
        if epilogue is not None:
            out = epilogue.out
            acc, (start, acc_dt) = f"acc_{self.name(out)}", self._accumulator(epilogue)
            lines.append(f"{self.name(out)} = np.empty({self.dims(self.shape(out))}, {_CAST[out.dtype.name]})")
            kept = [k for k in range(d) if k not in axes]
            if local_acc is None:  # an array of the kept dimensions, set to the start value
                lines += self._nest([domain[k] for k in kept], [idx[k] for k in kept],
                                    [f"{acc}[{', '.join(idx[k] for k in kept)}] = {start}"],
                                    before=[f"{acc} = np.empty({self.dims([domain[k] for k in kept])}, {acc_dt})"])
        local: dict = {}
        for v in loads:  # 0-d values are loaded once, before the loops
            operand = self._operand(v)
            if operand == self.name(v) and not v.shape:
                local[v] = f"x_{self.name(v)}"
                lines.append(f"{local[v]} = {operand}[()]  # load {v.name}")
        indent = ""
        for k in range(d):
            if k == local_acc:
                lines.append(f"{indent}{acc} = {start}")
            loop = "prange" if (k == 0 and parallel) else "range"
            lines.append(f"{indent}for {idx[k]} in {loop}({self.dim(domain[k])}):")
            indent += "    "
        if local_acc == d:  # a reduction over no dimension
            lines.append(f"{indent}{acc} = {start}")
        for v in loads:
            if v in local:
                continue
            operand = self._operand(v)
            if operand != self.name(v):
                local[v] = operand
                continue
            local[v] = f"x_{self.name(v)}"
            lines.append(f"{indent}{local[v]} = {operand}[{_index(v.shape, domain)}]  # load {v.name}")
        for node in members:
            local[node.out] = f"x_{self.name(node.out)}"
            if node.op.name == "expand":  # a broadcast read: the value of the expanded input at this index
                src = node.inputs[0]
                operand = self._operand(src)
                if src in local:  # loaded at the broadcast index already, or computed by this kernel (same shape)
                    read = local[src]
                else:
                    read = operand if operand != self.name(src) else f"{operand}[{_index(src.shape, domain)}]"
                lines.append(f"{indent}{local[node.out]} = {read}  # {self.describe(node)}")
                continue
            if node.op.name in ("getitem", "permute"):  # a read of the input at the index this element comes from
                src = node.inputs[0]
                reads = basic_index(node.params["index"], src.shape) if node.op.name == "getitem" else \
                    [(list(node.params["perm"]).index(a), 0, 1) for a in range(len(src.shape))]
                at = _getitem_index(reads, node.out.shape, domain, idx)
                lines.append(f"{indent}{local[node.out]} = {self.name(src)}[{at}]  # {self.describe(node)}")
                continue
            expr = node.op.scalar.format(*[local[v] for v in node.inputs], **node.params)
            if node.out.dtype.name == "float32" and all(v.dtype.name == "float32" for v in node.inputs):
                for libm, vectorizable in _VECMATH.items():  # see vecmath: libm calls stop vectorization
                    expr = expr.replace(libm, vectorizable)
                # NOTE: a Python float literal is a float64 in numba, which made float32 arithmetic run in float64
                # (half the vector width, slow divisions: a sigmoid kernel 26% slower); numpy's float32 ops, which
                # eager runs, round each step to float32 as these do
                expr = _FLOAT_LITERAL.sub(r"np.float32(\1)", expr)
            lines.append(f"{indent}{local[node.out]} = {_CAST[node.out.dtype.name]}({expr})  # {self.describe(node)}")
        for v in stored:
            at = ', '.join(idx) if d else '()'
            if v in columns:
                row = ", ".join(idx[:-1] + [f"{columns[v]} + {idx[-1]}"])
                lines.append(f"{indent}{self.name(cat.out)}[{row}] = {local[v]}")
            elif v in into:
                lines.append(f"{indent}{into[v][0]}[{into[v][1]}{', ' + at if d else ''}] = {local[v]}")
            else:
                lines.append(f"{indent}{self.name(v)}[{at}] = {local[v]}")
        if epilogue is None:
            return lines
        target = acc if local_acc is not None else f"{acc}[{', '.join(idx[k] for k in kept)}]"
        val = local[epilogue.inputs[0]]
        if epilogue.op.name == "sum":
            lines.append(f"{indent}{target} += {val}  # {self.describe(epilogue)}")
        else:
            better = ">" if epilogue.op.name == "amax" else "<"
            lines.append(f"{indent}if {val} {better} {target} or {val} != {val}:  # {self.describe(epilogue)}")
            lines.append(f"{indent}    {target} = {val}")
        keepdim = len(out.shape) == d
        at = ", ".join(("0" if k in axes else idx[k]) if keepdim else idx[k] for k in range(d)
                       if keepdim or k not in axes) or "()"
        cast = _CAST[out.dtype.name]
        if local_acc is not None:  # stored once the loops over the reduced dimensions are done
            lines.append(f"{'    ' * local_acc}{self.name(out)}[{at}] = {cast}({acc})")
        else:
            lines += self._nest([domain[k] for k in kept], [idx[k] for k in kept],
                                [f"{self.name(out)}[{at}] = {cast}({target})"])
        return lines

    def _nest(self, dims, names, body, before=()) -> list:
        """A plain loop nest over `dims` (loop variables `names`) around `body`, after the lines `before`."""
        lines, indent = list(before), ""
        for n, name in zip(dims, names):
            lines.append(f"{indent}for {name} in range({self.dim(n)}):")
            indent += "    "
        return lines + [indent + line for line in body]

    def _accumulator(self, node) -> tuple[str, str]:
        """A reduction's start value (as code) and its accumulator's dtype (float sums accumulate in float64)."""
        dt = node.out.dtype.name
        acc_dt = "np.float64" if dt in ("float32", "float64") and node.op.name == "sum" else _CAST[dt]
        if node.op.name == "sum":
            return f"{acc_dt}(0)", acc_dt
        if dt == "bool":
            start = "False" if node.op.name == "amax" else "True"
        elif node.out.dtype.category == 1:  # an integer: its extreme values
            start = str(np.iinfo(node.out.dtype.np).min if node.op.name == "amax" else np.iinfo(node.out.dtype.np).max)
        else:
            start = "-np.inf" if node.op.name == "amax" else "np.inf"
        return f"{acc_dt}({start})", acc_dt


def _index(shape, domain) -> str:
    """Index of an input of `shape` broadcast into `domain` (aligned right; size-1 dimensions read index 0)."""
    if not shape:
        return "()"
    lead = len(domain) - len(shape)
    return ", ".join(f"i{lead + j}" if n == domain[lead + j] and n != 1 else "0" for j, n in enumerate(shape))


def _canonical(args, lines) -> tuple:
    """A segment's code with canonical names (arguments ``a0, a1, ...``, other values ``t0, ...``, sizes ``s0,
    ...``) and a numbered slot for each marked offset: ``(code without comments, lines, [(offset, index)])``; the
    offset's index expression (`` + i1``) follows it in the list (see `_place_offsets`)."""
    names = {a: f"a{k}" for k, a in enumerate(args)}
    params: list = []

    def offset(m):
        params.append((int(m.group(1)), m.group(2)))
        return f"{_SLOT[0]}{len(params) - 1}{_SLOT[1]}"

    def rename(m):
        name = m.group(1) or m.group(2)
        new = names.setdefault(name, f"{'s' if name[0] == 'n' else 't'}{len(names)}")
        return m.group(0).replace(name, new)

    code, out = [], []
    for line in lines:
        text, sep, comment = line.partition("  # ")
        if text.lstrip().startswith("#"):
            out.append(line)
            continue
        text = _NAME.sub(rename, _MARKED.sub(offset, text))
        code.append(text)
        out.append(text + sep + comment)
    return "\n".join(code), out, params


_NAME = re.compile(r"(?<![\w\ue000])(?:x_|acc_|buf_)?(v\d+)\b|(?<![\w\ue000])(n\d+)\b")
_MARKED = re.compile(r"\ue004(\d+)\ue005((?: \+ (?:\d+ \* )?[ij]\d+)?)")


def _place_offsets(line: str, params: list, varies: list) -> str:
    """A shared function's line with each offset slot filled: an argument ``p<k>`` where the segments sharing the
    function read at different offsets, else the literal they share."""
    def fill(m):
        k = int(m.group(1))
        value, index = params[k]
        # NOTE: unsigned: numba wraps negative indices around, and a select per element on an offset it can't prove
        # non-negative stops LLVM from vectorizing the loop (an LSTM cell's kernel ran 6x slower)
        return f"np.uint64(p{k}{index})" if varies[k] else f"{value}{index}"

    return _SLOTTED.sub(fill, line)


_SLOT = ("\ue006", "\ue007")
_SLOTTED = re.compile("\ue006(\\d+)\ue007")


def _unmark(line: str) -> str:
    return line.replace(_OFFSET[0], "").replace(_OFFSET[1], "")


def _getitem_index(reads, out_shape, domain, idx) -> str:
    """The input's index of a getitem (`reads`: `fusion.basic_index`) at the domain's index `idx`: each output
    dimension is aligned right in the domain (a size-1 dimension broadcast in it reads position 0)."""
    lead = len(domain) - len(out_shape)
    parts = []
    for axis, start, step in reads:
        offset = f"{_OFFSET[0]}{start}{_OFFSET[1]}"
        if axis is None or (out_shape[axis] == 1 and domain[lead + axis] != 1):
            parts.append(offset)
            continue
        i = idx[lead + axis]
        parts.append(i if (start, step) == (0, 1) else f"{offset} + {i}" if step == 1 else
                     f"{offset} + {step} * {i}")
    return ", ".join(parts) or "()"


def _describe(node, shape: str | None = None) -> str:
    """The node as a comment; `shape`, if given, is printed for its ``shape`` (or ``x_shape``) param."""
    ins = ", ".join(v.name for v in node.inputs)
    params = " ".join(f"{k}={shape if k in ('shape', 'x_shape') and shape is not None else repr(v)}"
                      for k, v in node.params.items() if k != "dtype") + \
        (f" dtype={node.params['dtype'].name}" if "dtype" in node.params else "")
    return f"{node.out.name} = {node.op.name} {ins}" + (f" {params}" if params else "")


def _render(text: str, sizes: dict | None) -> str:
    """The module's text with its comments' symbols as names (`sizes` None: `module_source`) or as this trace's
    sizes (`source`)."""
    if sizes is None:
        text = re.sub(f"{_TRACE_ONLY[0]}.*?{_TRACE_ONLY[1]}", "", text)
        return text.replace(_SYM[0], "").replace(_SYM[1], "")
    text = re.sub(f"{_SYM[0]}(\\w+){_SYM[1]}", lambda m: str(sizes[m.group(1)]), text)
    return text.replace(_TRACE_ONLY[0], "").replace(_TRACE_ONLY[1], "")


def python_reference(source: str) -> dict:
    """The module's functions as plain Python (njit and prange made no-ops): the kernels' reference."""
    env: dict = {}
    code = source.replace("from numba import njit, prange", "prange = range\n\n\ndef njit(*a, **k):\n"
                                                            "    return lambda f: f")
    # the reference computes the vectorizable functions exactly (in float64, rounded once)
    code = code.replace("from tracegrad.compiler.vecmath import exp_f32, log_f32, tanh_f32",
                        "exp_f32, log_f32, tanh_f32 = (lambda x: np.float32(np.exp(np.float64(x))), "
                        "lambda x: np.float32(np.log(np.float64(x))), lambda x: np.float32(np.tanh(np.float64(x))))")
    code = code.replace("from tracegrad.compiler.blas import gemm_into",
                        "def gemm_into(a, b, out):\n    out[...] = np.dot(a, b)\n    return True")
    exec(compile(code, "<tracegrad kernels, plain Python>", "exec"), env)  # noqa: S102 - our generated code
    return env


__all__ = ["ModuleSource", "PARALLEL_THRESHOLD", "native_unit", "python_reference"]
