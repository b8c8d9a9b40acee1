"""Simplification passes: small named functions Graph -> Graph, run as a pipeline.

Each pass returns a new graph and leaves its input untouched, so the graph can be shown before and
after each step. `run_pipeline` prints the graph after every pass when asked (or when the environment
variable ``TRACEGRAD_PRINT_PASSES=1``) and verifies it after every pass when ``TRACEGRAD_VERIFY=1``
(the test suite sets it).

>>> import tracegrad as tg
>>> g = tg.jit.trace(lambda x: (x * 1.0 - 0.0).reshape(2, 3).reshape(6).exp(), tg.ones(6))
>>> print(run_pipeline(g))
graph <lambda>(x:f32[6]) {
  %4:f32[6] = exp x
  return %4
}
"""
from __future__ import annotations

import os

import numpy as np

from ..ir import verify
from ..ops import primitives as P
from ..ops.registry import AbstractValue as AV


def dead_code_elimination(graph):
    """Drop nodes whose value reaches no output, write-back, or guard.

    ``%1 = exp x; %2 = neg x; return %1``  ->  ``%1 = exp x; return %1``
    """
    g = graph.copy()
    live = set(g.roots())
    kept = []
    for node in reversed(g.nodes):
        if node.out in live or node.op.effects:
            kept.append(node)
            live.update(node.inputs)
    kept.reverse()
    g.nodes = kept
    g.consts = {v: a for v, a in g.consts.items() if v in live}
    return g


def _hashable(params):
    try:
        key = tuple(sorted(params.items()))
        hash(key)
        return key
    except TypeError:
        return None  # params holding arrays (advanced indices): never merged


def common_subexpression_elimination(graph):
    """Merge nodes applying the same op with the same params to the same inputs.

    ``%1 = exp x; %2 = exp x; %3 = add %1, %2``  ->  ``%1 = exp x; %3 = add %1, %1``
    Equal constants are merged first.
    """
    g = graph.copy()
    mapping = {}
    seen_consts = {}
    for v, a in g.consts.items():
        key = (a.dtype.str, a.shape, a.tobytes())
        if key in seen_consts:
            mapping[v] = seen_consts[key]
        else:
            seen_consts[key] = v
    g.consts = {v: a for v, a in g.consts.items() if v not in mapping}
    g.replace_all_uses(mapping)
    seen, kept = {}, []
    mapping = {}
    for node in g.nodes:
        node.inputs = [mapping.get(v, v) for v in node.inputs]
        params = _hashable(node.params)
        if params is None or node.op.effects:
            kept.append(node)
            continue
        key = (node.op.name, tuple(node.inputs), params, node.out.requires_grad)
        if key in seen:
            mapping[node.out] = seen[key]
            continue
        seen[key] = node.out
        kept.append(node)
    g.nodes = kept
    g.replace_all_uses(mapping)
    return g


# NOTE: folding never makes a constant larger than its inputs: a folded broadcast (expand) would turn a free
# view into a stored array that every call reads.
_FOLD_LIMIT = 4096


def constant_folding(graph):
    """Evaluate nodes whose inputs are all constants, at compile time.

    ``c0 = const 2.0; c1 = const 3.0; %0 = mul c0, c1; %1 = mul x, %0``  ->  ``c2 = const 6.0; %1 = mul x, c2``
    """
    g = graph.copy()
    mapping, kept = {}, []
    for node in g.nodes:
        node.inputs = [mapping.get(v, v) for v in node.inputs]
        size = int(np.prod(node.out.shape))
        if not node.op.effects and node.inputs and all(v in g.consts for v in node.inputs) \
                and size <= _FOLD_LIMIT and size <= max(int(np.prod(v.shape)) for v in node.inputs):
            value = node.op.forward(*[g.consts[v] for v in node.inputs], **node.params)
            c = g.add_const(np.array(value, dtype=node.out.dtype.np, copy=True).reshape(node.out.shape),
                            node.out.dtype)
            mapping[node.out] = c
            continue
        kept.append(node)
    g.nodes = kept
    g.replace_all_uses(mapping)
    return dead_code_elimination(g)


def algebraic_simplification(graph):
    """Rewrite identities: ``x*1``, ``1*x``, ``x+0``, ``0+x``, ``x-0``, ``x/1``, ``x**1``, a cast to the same
    dtype, an expand to the same shape, a ``where`` whose condition is a constant, a reshape to the same shape,
    reshape of reshape, permute of permute (double transpose), and a sum over the axes an expand broadcast
    (``sum(expand(x))`` -> ``x * n``, integers only: see `_sum_of_expand`).

    A rewrite applies only where the result has the node's exact shape and dtype.
    """
    return _rewrite(graph, _simplify)


def _rewrite(graph, rule):
    """Apply `rule(g, node, producers)` to each node in order: it returns None (keep the node), an existing
    value of the node's type (use it instead), or new nodes (the last one computes the node's value)."""
    g = graph.copy()
    mapping, kept = {}, []
    producers = {}
    for node in g.nodes:
        node.inputs = [mapping.get(v, v) for v in node.inputs]
        rep = rule(g, node, producers)
        if isinstance(rep, list):
            kept.extend(rep)
            mapping[node.out] = rep[-1].out
            producers.update((n.out, n) for n in rep)
            continue
        if rep is not None and (rep.shape, rep.dtype) == (node.out.shape, node.out.dtype):
            mapping[node.out] = rep
            continue
        kept.append(node)
        producers[node.out] = node
    g.nodes = kept
    g.replace_all_uses(mapping)
    return dead_code_elimination(g)


def _simplify(g, node, producers):
    name, ins = node.op.name, node.inputs
    if name == "mul":
        if _is_one(g, ins[1]):
            return ins[0]
        if _is_one(g, ins[0]):
            return ins[1]
    elif name == "add":
        if _is_zero(g, ins[1], name):
            return ins[0]
        if _is_zero(g, ins[0], name):
            return ins[1]
    elif name == "sub" and _is_zero(g, ins[1], name):
        return ins[0]
    elif name in ("div", "pow") and _is_one(g, ins[1]):
        return ins[0]
    elif name == "cast" and ins[0].dtype is node.out.dtype:
        return ins[0]
    elif name == "expand" and ins[0].shape == node.out.shape:  # `copy_` of a same-shaped value
        return ins[0]
    elif name == "where" and ins[0] in g.consts and g.consts[ins[0]].size == 1:
        return ins[1] if g.consts[ins[0]].reshape(()).item() else ins[2]  # a decided condition: its branch
    elif name == "reshape":
        if ins[0].shape == node.out.shape:
            return ins[0]
        src = producers.get(ins[0])
        if src is not None and src.op.name == "reshape":
            node.inputs = [src.inputs[0]]  # reshape(reshape(x)) -> reshape(x)
            if src.inputs[0].shape == node.out.shape:
                return src.inputs[0]
    elif name == "permute":
        if tuple(node.params["perm"]) == tuple(range(len(node.out.shape))):
            return ins[0]
        src = producers.get(ins[0])
        if src is not None and src.op.name == "permute":
            inner, outer = src.params["perm"], node.params["perm"]
            perm = tuple(inner[p] for p in outer)
            if perm == tuple(range(len(perm))):
                return src.inputs[0]
            node.inputs, node.params = [src.inputs[0]], {"perm": perm}
    elif name == "sum":
        src = producers.get(ins[0])
        if src is not None and src.op.name == "expand":
            return _sum_of_expand(g, node, src)
    return None


def _is_one(g, v) -> bool:
    a = g.consts.get(v)
    return a is not None and a.size == 1 and a.reshape(()).item() == 1


def _is_zero(g, v, node_name) -> bool:
    # NOTE: x + 0.0 is not x when x is -0.0 (the sum is +0.0), but x + (-0.0) is x for every x; and
    # x - 0.0 is x for every x. Integer zeros qualify for both.
    a = g.consts.get(v)
    if a is None or a.size != 1 or a.reshape(()).item() != 0:
        return False
    if a.dtype.kind != "f":
        return True
    return bool(np.signbit(a).all()) == (node_name == "add")


def _new_node(g, op, inputs, params, like, aval=None):
    """A node of `op` standing in for (a part of) node `like`: its location and phase, and its output's type unless
    `aval` gives another."""
    from ..ir.graph import Node, Value
    shape, dtype = (like.out.shape, like.out.dtype) if aval is None else (aval.shape, aval.dtype)
    out = Value(shape, dtype, g._new_name(), requires_grad=like.out.requires_grad)
    out.producer = Node(op, inputs, params, out, like.loc, like.phase)
    return out.producer


def _sum_of_expand(g, node, expand_node):
    """sum(expand(x, shape), axes) where the axes are exactly the broadcast ones -> x (reshaped) * count, for
    integer x."""
    x = expand_node.inputs[0]
    shape = expand_node.params["shape"]
    lead = len(shape) - len(x.shape)
    broadcast = {i for i in range(len(shape)) if i < lead or (x.shape[i - lead] == 1 and shape[i] != 1)}
    # NOTE: only for integers. In floating point, n * x is not what summing n copies of x gives: numpy's
    # pairwise summation rounds differently for n >= 7, and sums -0.0s to +0.0. Compiled results must equal
    # eager's bit for bit, so a float sum over a broadcast stays a sum (the fused backend makes it cheap).
    if set(node.params["axes"]) != broadcast or not broadcast or x.dtype.category != 1 \
            or x.dtype is not node.out.dtype:
        return None
    count = int(np.prod([shape[i] for i in broadcast]))
    new = []
    src = x
    if x.shape != node.out.shape:
        new.append(_new_node(g, P.reshape, [x], {"shape": tuple(node.out.shape)}, node))
        src = new[-1].out
    c = g.add_const(np.array(count, dtype=x.dtype.np), x.dtype)
    new.append(_new_node(g, P.mul, [src, c], {}, node))
    return new


def merge_slice_gradients(graph):
    """Replace a sum of gradients scattered into disjoint slices of one axis by one concatenation.

    The VJP of ``x[t]`` (or of a `chunk`/`split` piece) is zeros of x's shape with the gradient added at the slice
    (``index_add``); a value read slice by slice (an RNN's input projection read once per time step, the gates of an
    LSTM cut with `chunk`) gets one such full-size array per read, summed: quadratic work in the number of slices.
    When every term of the sum is such a scatter, along the same axis, into disjoint slices, the sum is the pieces
    laid side by side (with zeros in the gaps):

    ``%5 = index_add %1 index=(0,); %6 = index_add %2 index=(1,); %7 = add %5, %6``
    ->  ``%8 = reshape %1 shape=(1, 4); %9 = reshape %2 shape=(1, 4); %7 = cat %8, %9 axis=0``

    # NOTE: exact. At each element one term is the gradient and the others are +0.0, and ``g + 0.0`` is ``g``
    # (only a -0.0 gradient becomes +0.0 in the sum; the pieces keep its sign, and -0.0 == 0.0).
    """
    return _rewrite_sums(graph, _merged_scatters)


def merge_summed_matmuls(graph):
    """Replace a sum of matrix products by one product of concatenations: ``A1 @ B1 + A2 @ B2 + ...`` ->
    ``cat(A1, A2, ...; axis=1) @ cat(B1, B2, ...; axis=0)``.

    An RNN's weight gradient is such a sum, one small product per time step (``g_t.T @ h_t``); one large product
    runs BLAS near its peak and needs no adds. Used by the numba backend only: BLAS rounds one long dot product
    differently from a sum of short ones, and the interpreter matches eager exactly. Transposed operands
    (``permute(u_k)``) are concatenated before the transpose, so the copies read contiguous rows.
    """
    return _rewrite_sums(graph, _merged_matmuls)


def _rewrite_sums(graph, merge):
    """Replace each sum (a tree of adds, each inner add read only by the sum, all of one shape and dtype) by what
    ``merge(g, node, leaves, producers, uses)`` returns: new nodes (the last one computes the sum), or None."""
    g = graph.copy()
    uses: dict = {}
    for node in g.nodes:
        for v in node.inputs:
            uses[v] = uses.get(v, 0) + 1
    for v in g.roots():
        uses[v] = uses.get(v, 0) + 2
    producers = {node.out: node for node in g.nodes}

    def summand(v, out):  # an add node whose value only this sum reads, at the sum's shape and dtype
        node = producers.get(v)
        return node is not None and node.op.name == "add" and uses.get(v) == 1 and \
            (v.shape, v.dtype) == (out.shape, out.dtype) and all(u.shape == out.shape for u in node.inputs)

    inner = {v for n in g.nodes if n.op.name == "add" for v in n.inputs if summand(v, n.out)}
    mapping, kept = {}, []
    for node in g.nodes:
        node.inputs = [mapping.get(v, v) for v in node.inputs]
        rep = None
        if node.op.name == "add" and node.out not in inner:
            leaves, stack = [], list(node.inputs)
            while stack:
                v = stack.pop()
                if summand(v, node.out):
                    stack.extend(producers[v].inputs)
                else:
                    leaves.append(v)
            rep = merge(g, node, leaves[::-1], producers, uses)
        if rep is None:
            kept.append(node)
            continue
        kept.extend(rep)
        mapping[node.out] = rep[-1].out
    g.nodes = kept
    g.replace_all_uses(mapping)
    return dead_code_elimination(g) if mapping else g


def _selection(index, shape):
    """``(axis, start, stop, keeps_axis)`` if a static basic index selects one run of one axis, else None."""
    if any(i is Ellipsis for i in index):
        k = index.index(Ellipsis)
        index = index[:k] + (slice(None),) * (len(shape) - len(index) + 1) + index[k + 1:]
    if len(index) > len(shape):
        return None
    found = None
    for axis, (i, n) in enumerate(zip(index, shape)):
        if isinstance(i, slice):
            start, stop, step = i.indices(n)
            if (start, stop, step) == (0, n, 1):
                continue
            if step != 1 or stop <= start:
                return None
            sel = (axis, start, stop, True)
        elif isinstance(i, (int, np.integer)) and not isinstance(i, bool):
            k = int(i) + n if i < 0 else int(i)
            sel = (axis, k, k + 1, False)
        else:  # None, an index array or a Slot
            return None
        if found is not None:
            return None
        found = sel
    return found


def _merged_matmuls(g, node, leaves, producers, uses):
    out = node.out
    if len(leaves) < 3:
        return None
    products = [producers.get(v) for v in leaves]
    if any(p is None or p.op.name != "matmul" or uses.get(p.out) != 1 or len(p.inputs[0].shape) != 2 or
           len(p.inputs[1].shape) != 2 or (p.out.shape, p.out.dtype) != (out.shape, out.dtype) for p in products):
        return None
    new = []

    def cat(values, axis):
        shape = list(values[0].shape)
        shape[axis] = sum(v.shape[axis] for v in values)
        new.append(_new_node(g, P.cat, list(values), {"axis": axis}, node, AV(tuple(shape), out.dtype)))
        return new[-1].out

    lefts = [p.inputs[0] for p in products]
    transposed = [producers.get(a) for a in lefts]
    if all(t is not None and t.op.name == "permute" and tuple(t.params["perm"]) == (1, 0) for t in transposed):
        rows = cat([t.inputs[0] for t in transposed], 0)  # (sum of K, M): the transposes' inputs, stacked
        new.append(_new_node(g, P.permute, [rows], {"perm": (1, 0)}, node, AV(rows.shape[::-1], out.dtype)))
        left = new[-1].out
    else:
        left = cat(lefts, 1)
    right = cat([p.inputs[1] for p in products], 0)
    new.append(_new_node(g, P.matmul, [left, right], {}, node))
    return new


def _merged_scatters(g, node, leaves, producers, uses):
    out = node.out
    pieces = []
    for v in leaves:
        src = producers.get(v)
        if src is None or src.op.name != "index_add" or len(src.inputs) != 1 or \
                (v.shape, v.dtype) != (out.shape, out.dtype):
            return None
        sel = _selection(src.params["index"], out.shape)
        if sel is None:
            return None
        pieces.append((sel, src.inputs[0]))
    axes = {sel[0] for sel, _ in pieces}
    if len(axes) != 1:
        return None
    (axis,) = axes
    pieces.sort(key=lambda p: p[0][1])
    if any(a[0][2] > b[0][1] for a, b in zip(pieces, pieces[1:])):
        return None  # overlapping slices add up: not a concatenation
    new, parts, at = [], [], 0
    n = out.shape[axis]

    def zeros(start, stop):
        shape = out.shape[:axis] + (stop - start,) + out.shape[axis + 1:]
        zero = g.add_const(np.zeros((), out.dtype.np), out.dtype)
        new.append(_new_node(g, P.expand, [zero], {"shape": shape}, node, AV(shape, out.dtype)))
        return new[-1].out

    for (_, start, stop, keeps), v in pieces:
        if start > at:
            parts.append(zeros(at, start))
        if not keeps:  # an integer index dropped the axis
            shape = out.shape[:axis] + (1,) + out.shape[axis + 1:]
            new.append(_new_node(g, P.reshape, [v], {"shape": shape}, node, AV(shape, out.dtype)))
            v = new[-1].out
        parts.append(v)
        at = stop
    if at < n:
        parts.append(zeros(at, n))
    new.append(_new_node(g, P.cat, parts, {"axis": axis}, node) if len(parts) > 1 else
               _new_node(g, P.reshape, parts, {"shape": out.shape}, node))
    return new


DEFAULT_PASSES = (constant_folding, algebraic_simplification, merge_slice_gradients,
                  common_subexpression_elimination, dead_code_elimination)


def run_pipeline(graph, passes=DEFAULT_PASSES, print_each: bool | None = None, verify_each: bool | None = None):
    """Run `passes` in order; optionally print (and verify) the graph after each one."""
    if print_each is None:
        print_each = os.environ.get("TRACEGRAD_PRINT_PASSES") == "1"
    if verify_each is None:
        verify_each = os.environ.get("TRACEGRAD_VERIFY") == "1"
    if print_each:
        print(f"--- traced ({len(graph.nodes)} nodes)\n{graph}")
    for p in passes:
        graph = p(graph)
        if print_each:
            print(f"--- after {p.__name__} ({len(graph.nodes)} nodes)\n{graph}")
        if verify_each:
            verify(graph)
    return graph


__all__ = ["DEFAULT_PASSES", "algebraic_simplification", "common_subexpression_elimination", "constant_folding",
           "dead_code_elimination", "lower_composites", "merge_slice_gradients", "merge_summed_matmuls", "run_pipeline",
           "transpose_of_matmul"]


def transpose_of_matmul(graph):
    """Rewrite ``permute(matmul(a, b), (1, 0))`` as ``matmul(b.T, a.T)`` (2-D), cancelling transposes of transposes.

    Autodiff writes a weight's gradient as the transpose of ``x.T @ g``; the rewrite makes it ``g.T @ x``, a
    contiguous array that the optimizer's update kernel reads in order. Used by the numba backend only: BLAS
    may round ``(AB)^T`` and ``B^T A^T`` differently in the last bit, and the interpreter matches eager exactly.
    """
    return _rewrite(graph, _transpose_of_matmul)


def _transposed(g, v, like, producers):
    """`v.T`: the input of a transpose, or a new permute node (then returned in the list)."""
    src = producers.get(v)
    if src is not None and src.op.name == "permute" and tuple(src.params["perm"]) == (1, 0):
        return src.inputs[0], []
    node = _new_node(g, P.permute, [v], {"perm": (1, 0)}, like)
    node.out.shape = (v.shape[1], v.shape[0])
    node.out.dtype = v.dtype
    return node.out, [node]


def _transpose_of_matmul(g, node, producers):
    src = producers.get(node.inputs[0]) if node.inputs else None
    if not (node.op.name == "permute" and tuple(node.params["perm"]) == (1, 0) and src is not None
            and src.op.name == "matmul" and len(src.inputs[0].shape) == 2 and len(src.inputs[1].shape) == 2):
        return None
    a, b = src.inputs
    bt, new_b = _transposed(g, b, node, producers)
    at, new_a = _transposed(g, a, node, producers)
    return new_b + new_a + [_new_node(g, P.matmul, [bt, at], {}, node)]


def lower_composites(graph):
    """Replace each node of an op with a `decompose` rule (addmm, mse_loss, nll_loss, log_softmax, conv2d_bias) by
    the primitives the rule applies, then merge what they share with the rest of the graph (CSE).

    Used by the numba backend only, before fusion: those ops are one node each for autograd and the printouts, and
    the interpreter runs their numpy forwards (the same rule run on arrays, so the values are the same); native code
    fuses their elementwise parts with their neighbours instead (the bias add of a linear layer with its
    activation).

    ``%2 = addmm s1, x, %1``  ->  ``%3 = matmul x, %1; %4 = add %3, s1``
    """
    g = _rewrite(graph, _lower)
    return common_subexpression_elimination(g) if len(g.nodes) != len(graph.nodes) else g


class _GraphEmit:
    """The `emit` of a decomposition run on graph values: each applied op becomes a node standing in for `like`."""

    def __init__(self, g, like):
        self.g, self.like, self.nodes = g, like, []

    def __call__(self, op, *inputs, **params):
        aval = op.infer(*[v.aval for v in inputs], **params)
        node = _new_node(self.g, op, list(inputs), params, self.like, aval)
        node.out.requires_grad = False  # NOTE: after autodiff it matters only to CSE, which then merges more
        self.nodes.append(node)
        return node.out

    def const(self, value, like):
        return self.g.add_const(np.array(value, like.dtype.np), like.dtype)

    @staticmethod
    def dtype(v):
        return v.dtype


def _lower(g, node, producers):
    if node.op.decompose is None:
        return None
    emit = _GraphEmit(g, node)
    out = node.op.decompose(emit, *node.inputs, **node.params)
    assert out is emit.nodes[-1].out, f"{node.op.name}: a decomposition ends with the node computing its value"
    out.requires_grad = node.out.requires_grad
    return emit.nodes
