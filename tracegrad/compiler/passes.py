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


DEFAULT_PASSES = (constant_folding, algebraic_simplification, common_subexpression_elimination,
                  dead_code_elimination)


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
           "dead_code_elimination", "lower_composites", "run_pipeline", "transpose_of_matmul"]


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
