"""Symbolic sizes: which dimensions of a graph follow the batch size, so one generated module serves every batch.

The numba codegen bakes sizes into its source (loop bounds, allocations, reshape targets), so a graph traced at
batch 16 would generate other text than the same graph traced at batch 64: another cache file and another
multi-second numba compile. `symbolic_sizes(graph)` names the dimensions that follow the batch, and the codegen
prints those as names (``range(n0)``, ``np.empty((n0, 128), ...)``) that each native segment reads from the
shape of an array it receives (``n0 = v3.shape[0]``). Two graphs that differ only in their batch size then
generate the same text: `runtime.native.load_module` finds the module loaded already, and numba, which types
arrays by dtype, rank and layout (not by shape), compiles nothing.

**Policy.** Dimension 0 of every tensor argument of the graph (`graph.args`) is a seed, unless its size is 0
or 1 (size 1 changes broadcasting, so it stays a literal). Captured state (parameters, optimizer buffers,
0-d hyperparameters) is never a seed. Dimensions are then joined into classes, and only dimensions in a class
holding a seed are printed as a name (the class's symbol, ``n0``, ``n1``, ...; a class holding two seeds,
``x dim 0`` and ``y dim 0`` of ``x - y``, has one symbol). Two dimensions are joined when the op makes them equal:

- whatever the registry's shape rule passes through: `op.infer` runs on shapes of int objects tagged with
  their dimension, and an output dimension that *is* one of those objects joins it (matmul's rows and
  columns, reductions' kept dimensions, permute, conv and pooling's batch and channels, ...);
- elementwise ops (and `where`): each input's dimension that is not 1 joins the output's, after right
  alignment (broadcasting: so ``expand(c, (64, 10)) * d`` names the expand's 64 after ``d``'s);
- expand: the input's dimensions that are not 1 join the output's;
- reshape: dimensions regrouped one to one (equal products of the sizes before them): ``x.view(x.size(0),
  -1)`` keeps the batch. Dimensions merged into one (``(B, T, C) -> (B*T, C)``) make a product, which gets a
  symbol of its own when one of its factors has one (``n1``, described as ``n0 * 5``): a segment reads it from
  an array that has it, or computes it from its factors (``n1 = n0 * 5``). A dimension split into several
  stays literal unless another op joins it;
- matmul: the contracted dimensions join each other;
- indexing: a sliced dimension joins the input's when its size is kept, and the dimensions that index arrays
  (numpy's advanced indexing: an embedding's ``weight[idx]``) give the result join the index values' own.

Dimensions are joined only when their sizes are equal, so every dimension of a class has the class's size.

Sizes also reach graphs as values: a mean divides by its count (``B*10``), BatchNorm's running variance
multiplies by ``momentum * n/(n-1)``, and the tracer records these Python numbers as 0-d constants. One graph
can't tell which constants came from a size (a LayerNorm over 32 features divides by 32.0 too), so when the
graph has symbols, every 0-d float constant that multiplies or divides is read by the kernels as a 0-d array
rather than printed as a literal (`size_consts`): their values stay out of the text, whatever they are. Other
constants (``x > 0.0``, ``y != -100``, an exponent) stay literals.

**Why a shared source is correct.** Each source text is generated from its own graph, and a symbol is printed
only at a place where that graph's static size equals the symbol's size: its seed's (the classes hold equal
sizes), or for a product the product of its factors' sizes. At run time a segment reads the symbol from an
array whose static size at that axis is that size too, or computes it exactly from symbols that hold theirs
(``n2 = n0 * 5``, ``n0 = n2 // (5)``), and a variant runs only with inputs of its traced shapes, so every
array has its static shape: each symbol takes the value the graph would have printed, and the text computes
exactly what the graph's own static text would (a constant read as an array holds the graph's own value,
passed by its own program). So a text is correct for every graph that generates it, whichever graph
generated it first. Graphs that differ in structure or in any literal (a size-1 batch, a dimension no rule
joins to a seed, a parallel loop from `PARALLEL_THRESHOLD` elements on) generate different texts and simply
don't share: that costs a compile, never correctness. The rules above only decide how much is shared; none
of them is needed for correctness.

>>> import tracegrad as tg
>>> sizes = symbolic_sizes(tg.jit.trace(lambda x, w: (x @ w).relu().sum(0), tg.ones(64, 8), tg.ones(8, 4)))
>>> sizes.symbols
{'n0': 'x dim 0', 'n1': 'w dim 0'}
>>> [sizes.shape(n.out) for n in sizes.graph.nodes]
[(n0, 4), (n0, 4), (4,)]
"""
from __future__ import annotations

import numpy as np

from .. import dtypes
from ..ops.primitives import Slot
from ..ops.registry import AbstractValue, Kind


class Size(int):
    """A dimension printed as a symbol: an int (its size in this graph) that also carries the symbol's name."""

    def __new__(cls, value: int, name: str):
        self = int.__new__(cls, value)
        self.name = name
        return self

    def __repr__(self):
        return self.name

    __str__ = __repr__


class _Dim(int):
    """A dimension as `op.infer` sees it here: its size, tagged with the slot (value, axis) it belongs to."""

    def __new__(cls, value: int, slot):
        self = int.__new__(cls, value)
        self.slot = slot
        return self


class SymbolicSizes:
    """The result of `symbolic_sizes`: `shape(v)` gives a value's shape with `Size`s where a symbol is printed;
    `symbols` maps each symbol to what it is (``{'n0': 'x dim 0', 'n1': 'n0 * 5'}``), `products` the factors of
    each product symbol (``{'n1': ['n0', 5]}``); `size_consts` holds the 0-d constants the kernels read as arrays
    (their values may follow the batch size)."""

    def __init__(self, graph, root, named: dict, size_consts: set, products: dict):
        self.graph = graph
        self.products = products  # symbol -> its factors (other symbols' names and ints), for product symbols
        self._root = root
        self._named = named  # class root -> (Size, what it is)
        self.symbols = {s.name: what for s, what in named.values()} if named else {}
        self.values = {s.name: int(s) for s, _ in named.values()}  # each symbol's size in this graph
        self._sizes = {r: s for r, (s, _) in named.items()}
        self.size_consts = size_consts
        self._cache: dict = {}

    def shape(self, v) -> tuple:
        out = self._cache.get(v)
        if out is None:
            out = self._cache[v] = tuple(self._sizes.get(self._root((v, k)), n) for k, n in enumerate(v.shape))
        return out

    def __bool__(self):
        return bool(self.symbols)


def symbolic_sizes(graph) -> SymbolicSizes:
    """Name the dimensions of `graph`'s values that follow dimension 0 of its arguments (see the module doc)."""
    parent: dict = {}

    def find(slot):
        root = slot
        while parent.get(root, root) != root:
            root = parent[root]
        while slot != root:  # path compression
            parent[slot], slot = root, parent.get(slot, root)
        return root

    def size(slot) -> int:
        v, k = slot
        return v.shape[k]

    def join(a, b) -> None:
        if size(a) != size(b):  # never: the rules join equal sizes only; kept as the invariant's guard
            return
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[rb] = ra

    products = []  # (output slot, input slots it is the product of), from reshapes that merge dimensions
    splits = []  # (input slot, output slots it is split into), from reshapes that split a dimension
    for node in graph.nodes:
        out = node.out
        nd = len(out.shape)
        name = node.op.name
        if node.op.kind is Kind.ELEMENTWISE or name == "expand":
            for v in node.inputs[:1] if name == "expand" else node.inputs:
                lead = nd - len(v.shape)
                for j, n in enumerate(v.shape):
                    if n != 1 and lead + j >= 0 and out.shape[lead + j] == n:
                        join((out, lead + j), (v, j))
        elif name == "reshape":
            x = node.inputs[0]
            for gi, go in _reshape_groups(x.shape, out.shape):
                if len(gi) == 1 and len(go) == 1:
                    join((out, go[0]), (x, gi[0]))
                elif len(go) == 1:  # dimensions merged into one: a product
                    products.append(((out, go[0]), [(x, i) for i in gi]))
                elif len(gi) == 1:  # one dimension split into several: a product's factors, maybe
                    splits.append(((x, gi[0]), [(out, o) for o in go]))
        elif name == "matmul":
            a, b = node.inputs
            if len(a.shape) >= 2 and len(b.shape) >= 2:
                join((a, len(a.shape) - 1), (b, len(b.shape) - 2))
        elif name == "getitem":
            for slot, o in _index_pairs(node):
                join((out, o), slot)
        # whatever the shape rule passes through (for every op, including those above)
        avals = [AbstractValue(tuple(_Dim(n, (v, k)) for k, n in enumerate(v.shape)), v.dtype) for v in node.inputs]
        try:
            res = node.op.infer(*avals, **node.params)
        except Exception:  # noqa: BLE001 - a rule that rejects tagged ints: nothing passes through
            res = None
        if res is not None and tuple(int(n) for n in res.shape) == tuple(out.shape):
            for k, n in enumerate(res.shape):
                if isinstance(n, _Dim):
                    join((out, k), n.slot)

    # symbols: the classes holding a seed (dimension 0 of an argument, size 2 or more), in order of the arguments
    named: dict = {}
    for v in graph.args:
        if len(v.shape) == 0 or v.shape[0] in (0, 1):
            continue
        r = find((v, 0))
        if r in named:
            s, what = named[r]
            named[r] = (s, f"{what}, {v.name} dim 0")
        else:
            named[r] = (Size(v.shape[0], f"n{len(named)}"), f"{v.name} dim 0")
    # then the products of a symbol and other sizes (``(B, 10) -> (B*10,)``), in the order of the graph, and the
    # splits of a product back into its factors (``(B*10, C) -> (B, 10, C)``: B joins the factor's class)
    factors: dict = {}
    changed = True
    while changed:
        changed = False
        for slot, parts in products:
            r = find(slot)
            if r not in named and any(find(p) in named for p in parts):
                factors_ = [named[find(p)][0].name if find(p) in named else size(p) for p in parts]
                named[r] = (Size(size(slot), f"n{len(named)}"), " * ".join(map(str, factors_)))
                factors[named[r][0].name] = (factors_, [find(p) for p in parts])
        for slot, parts in splits:
            r = find(slot)
            if r not in named or named[r][0].name not in factors:
                continue
            factors_, roots = factors[named[r][0].name]
            if [size(p) for p in parts] != [size(p) for p in roots]:
                continue
            for p, fr in zip(parts, roots):
                if fr in named and find(p) not in named:
                    join(fr, p)  # the named class stays the root
                    changed = True
    factors = {name: f for name, (f, _) in factors.items()}

    # 0-d float constants that multiply or divide (a mean's count may be one): read as arrays
    scaling = {v for n in graph.nodes if n.op.name in ("mul", "div") for v in n.inputs}
    size_consts = {v for v, array in graph.consts.items() if array.ndim == 0 and array.dtype.kind == "f" and
                   v in scaling} if named else set()
    return SymbolicSizes(graph, find, named, size_consts, factors)


def _reshape_groups(ins, outs) -> list:
    """How a reshape regroups dimensions: (input axes, output axes) pairs of equal products, in order, size-1
    dimensions left out (``(B, 4, 4, 4) -> (B, 64)``: ``[([0], [0]), ([1, 2, 3], [1])]``)."""
    if 0 in ins or 0 in outs:
        return []
    a = [k for k, n in enumerate(ins) if n != 1]
    b = [k for k, n in enumerate(outs) if n != 1]
    groups, i, o = [], 0, 0
    while i < len(a) and o < len(b):
        gi, go, pi, po = [a[i]], [b[o]], ins[a[i]], outs[b[o]]
        i, o = i + 1, o + 1
        while pi != po:
            if pi < po and i < len(a):
                gi.append(a[i])
                pi, i = pi * ins[a[i]], i + 1
            elif po < pi and o < len(b):
                go.append(b[o])
                po, o = po * outs[b[o]], o + 1
            else:
                return groups
        groups.append((gi, go))
    return groups


def _index_pairs(node) -> list:
    """For a getitem, the (input slot, output axis) pairs that hold the same dimension: a slice keeps its input's
    dimension, and with index arrays (numpy's advanced indexing) the broadcast index dimensions are the index
    values' own. Bool masks (a data-dependent size) and anything unexpected give no pairs."""
    x, index = node.inputs[0], node.params.get("index")
    if not isinstance(index, tuple):
        return []
    arrays = [e for e in index if isinstance(e, (np.ndarray, Slot))]
    for e in index:
        if isinstance(e, bool) or not (e is None or e is Ellipsis or isinstance(e, (int, np.integer, slice, np.ndarray,
                                                                                   Slot))):
            return []
    index_values = {id(e): node.inputs[1 + e.k] for e in arrays if isinstance(e, Slot)}
    if any(getattr(index_values.get(id(e), e), "dtype", None) in (np.bool_, dtypes.bool_) for e in arrays):
        return []
    real = sum(1 for e in index if e is not None and e is not Ellipsis)
    if sum(1 for e in index if e is Ellipsis) > 1 or real > len(x.shape):
        return []
    k = next((n for n, e in enumerate(index) if e is Ellipsis), len(index))
    index = index[:k] + (slice(None),) * (len(x.shape) - real) + index[k + 1:]
    # with an index array, integers index as 0-d arrays (numpy): advanced entries are the arrays and the ints
    advanced = [n for n, e in enumerate(index) if arrays and not (e is None or isinstance(e, slice))]
    if arrays:
        try:
            bshape = np.broadcast_shapes(*[np.shape(index_values.get(id(e), e)) if not isinstance(e, (int, np.integer))
                                           else () for e in (index[n] for n in advanced)])
        except ValueError:
            return []
    pairs, before, after, axis = [], [], [], 0
    for n, e in enumerate(index):  # the basic dimensions, before and after the advanced ones
        if n in advanced:
            axis += 1
            continue
        part = before if not advanced or n < advanced[0] else after
        if e is None:
            part.append(None)
        elif isinstance(e, slice):
            part.append(axis)
            axis += 1
        else:  # an int without index arrays: drops its dimension
            axis += 1
    if advanced and advanced != list(range(advanced[0], advanced[-1] + 1)):  # not adjacent: the arrays' dims lead
        after, before = before + after, []
    nb = len(bshape) if arrays else 0
    if len(before) + nb + len(after) != len(node.out.shape):
        return []
    for o, i in enumerate(before):
        if i is not None:
            pairs.append(((x, i), o))
    for o, i in enumerate(after, len(before) + nb):
        if i is not None:
            pairs.append(((x, i), o))
    for e in (index[n] for n in advanced):  # each index value's dimensions, aligned right in the broadcast ones
        v = index_values.get(id(e))
        if v is not None:
            for j, size in enumerate(v.shape, nb - len(v.shape)):
                if size != 1:
                    pairs.append(((v, j - (nb - len(v.shape))), len(before) + j))
    return pairs


__all__ = ["Size", "SymbolicSizes", "symbolic_sizes"]
