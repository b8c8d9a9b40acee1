"""Elementwise fusion: group elementwise nodes into kernels that make one pass over memory.

A group is a convex set of elementwise nodes computing values of one shape (the group's domain); inputs
from outside may broadcast into it. A reduction (sum, amax, amin) whose input the group computes joins it
as its epilogue: the kernel accumulates while it computes, and the reduced-over values need not be
stored. Convex means no path leaves the group and comes back, so the group can run as one loop nest.
The pass only labels nodes (``node.group``); the printout, `to_networkx` and `to_dot` show the labels and
the numba codegen turns each group into one kernel.

>>> import tracegrad as tg
>>> g = fuse_elementwise(tg.jit.trace(lambda x, b: ((x * 2.0 + b).tanh() * x).sum(1), tg.ones(4, 3), tg.ones(3)))
>>> print(g)
graph <lambda>(x:f32[4,3], b:f32[3]) {
  c0:f32[] = const 2.0
  %0:f32[4,3] = mul x, c0  [fused 0]
  %1:f32[4,3] = add %0, b  [fused 0]
  %2:f32[4,3] = tanh %1  [fused 0]
  %3:f32[4,3] = mul %2, x  [fused 0]
  %4:f32[4] = sum %3 axes=(1,) keepdim=False  [fused 0]
  return %4
}
"""
from __future__ import annotations

import numpy as np

from .. import dtypes
from ..ops.primitives import Slot
from ..ops.registry import Kind

EPILOGUES = ("sum", "amax", "amin")
# NOTE: numba has no float16 (its arrays and arithmetic raise NotImplementedError): a float16 value is never in a
# kernel or a native segment; its node runs its numpy forward between segments, as in eager mode
NATIVE_DTYPES = frozenset(d.name for d in dtypes.ALL if d is not dtypes.float16)
_INTEGER_DIVISIONS = ("floor_divide", "div_floor", "remainder", "fmod")


def basic_index(index, shape) -> list | None:
    """How a static basic index (ints, slices, None, one Ellipsis) reads an array of `shape`: for each of its
    dimensions ``(output axis, start, step)``, the output axis None for an integer (which drops the dimension);
    None for any other index (index arrays, bool masks).

    >>> basic_index((1, slice(2, None)), (4, 6))
    [(None, 1, 0), (0, 2, 1)]
    """
    if not isinstance(index, tuple) or any(isinstance(e, (bool, np.bool_, np.ndarray, Slot)) for e in index) or \
            sum(1 for e in index if e is Ellipsis) > 1:
        return None
    real = sum(1 for e in index if e is not None and e is not Ellipsis)
    if real > len(shape):
        return None
    k = next((n for n, e in enumerate(index) if e is Ellipsis), len(index))
    index = index[:k] + (slice(None),) * (len(shape) - real) + index[k + 1:]
    reads, axis, dim = [], 0, 0
    for e in index:
        if e is None:
            axis += 1
        elif isinstance(e, slice):
            start, _, step = e.indices(shape[dim])
            reads.append((axis, start, step))
            axis, dim = axis + 1, dim + 1
        elif isinstance(e, (int, np.integer)):
            reads.append((None, int(e) + shape[dim] if e < 0 else int(e), 0))
            dim += 1
        else:
            return None
    return reads


def fusible(node) -> bool:
    """An elementwise node the codegen can put in a kernel (registry scalar expression, supported dtypes)."""
    # an expand joins as a broadcast read of its input (the kernel never materializes it), a getitem with a
    # static basic index (``x[t]``, a `chunk`'s piece) as a read of its input at shifted indices, and a permute as a
    # read at permuted indices (`fuse_elementwise` keeps a permute that a matmul reads out: BLAS reads it as is)
    # NOTE: an integer division stays out of kernels: numpy's forward raises PyTorch's error on a division by zero,
    # where a kernel (numba's numpy error model) would give 0
    reads = node.op.kind is Kind.ELEMENTWISE or node.op.name in ("expand", "permute") or \
        (node.op.name == "getitem" and len(node.inputs) == 1 and
         basic_index(node.params["index"], node.inputs[0].shape) is not None)
    return reads and \
        node.out.dtype.name in NATIVE_DTYPES and all(v.dtype.name in NATIVE_DTYPES for v in node.inputs) and \
        not (node.op.name in _INTEGER_DIVISIONS and node.out.dtype.category == 1)


def fuse_elementwise(graph):
    """Label maximal convex groups of elementwise nodes, each with an optional reduction epilogue.

    Nodes are placed in order. A fusible node joins the group of one of its inputs (same domain, no
    epilogue yet), and groups of other inputs merge into it, unless that would make the groups' graph
    cyclic: the units (groups, and nodes outside groups) form a DAG, kept in networkx, and a join or merge
    is refused when a path between the units runs through a third one.
    """
    import networkx as nx  # NOTE: here, not at the top: it was a quarter of `import tracegrad`'s time

    g = graph.copy()
    unit: dict = {}    # value -> the unit (group id, or a node's own id) that computes it
    members: dict = {}  # group id -> its values
    domain: dict = {}   # group id -> its shape
    closed: set = set()  # groups ending in a reduction
    dag = nx.DiGraph()
    next_id = 0

    def sources(node):
        return {unit[v] for v in node.inputs if v in unit}

    def reaches_through_third(a, b):
        """A path a -> ... -> b other than the direct edge."""
        return any(x != b and nx.has_path(dag, x, b) for x in dag.successors(a))

    users: dict = {}
    for node in g.nodes:
        for v in node.inputs:
            users.setdefault(v, []).append(node)
    roots = set(g.roots())

    def joins(node) -> bool:
        if node.op.name != "permute":
            return fusible(node)
        # NOTE: only a permute that kernels alone read: a transposed matmul operand costs BLAS nothing as a view
        return fusible(node) and node.out not in roots and all(
            fusible(u) or u.op.name in EPILOGUES for u in users.get(node.out, ()))

    for node in g.nodes:
        is_epilogue = node.op.name in EPILOGUES and node.inputs[0].dtype.name in NATIVE_DTYPES
        chosen = None
        if joins(node) or is_epilogue:
            shape = node.inputs[0].shape if is_epilogue else node.out.shape
            candidates = []
            # NOTE: a getitem or permute reads its input at other indices: it never joins the group computing it
            for v in (node.inputs[:1] if is_epilogue else () if node.op.name in ("getitem", "permute") else
                      node.inputs):
                gid = unit.get(v)
                if gid in domain and gid not in closed and domain[gid] == shape and gid not in candidates:
                    candidates.append(gid)
            for gid in candidates:
                # joining adds edges from the node's other sources into gid: a path gid -> source closes a cycle
                if all(src == gid or not nx.has_path(dag, gid, src) for src in sources(node)):
                    chosen = gid
                    break
            if chosen is not None:
                for other in candidates:  # merge the other input groups in, where that keeps the DAG acyclic
                    if other == chosen or other not in dag or not all(
                            src in (chosen, other) or not nx.has_path(dag, other, src) for src in sources(node)):
                        continue
                    if reaches_through_third(chosen, other) or reaches_through_third(other, chosen):
                        continue
                    for v in members.pop(other):
                        unit[v] = chosen
                        members[chosen].append(v)
                    nx.contracted_nodes(dag, chosen, other, self_loops=False, copy=False)
                    del domain[other]
                    closed.discard(other)
            if chosen is None:
                chosen, next_id = ("g", next_id), next_id + 1
                domain[chosen], members[chosen] = shape, []
                dag.add_node(chosen)
            if is_epilogue:
                closed.add(chosen)
            members[chosen].append(node.out)
        else:
            chosen = ("n", id(node))
            dag.add_node(chosen)
        unit[node.out] = chosen
        for src in sources(node):
            if src != chosen:
                dag.add_edge(src, chosen)
    # number the groups in order of their first node
    ids = {}
    for node in g.nodes:
        u = unit[node.out]
        if u[0] == "g":
            node.group = ids.setdefault(u, len(ids))
    return g


def kernel_order(graph) -> list:
    """Nodes and groups in an order that runs each group as one unit: a list of lists of nodes.

    A group runs where all of its outside inputs exist; nodes reading a group's values run after it.
    (The topological sort of the graph with each group contracted to one vertex, ties broken by position.)
    """
    import networkx as nx  # see fuse_elementwise

    units, unit_of = [], {}
    for node in graph.nodes:
        key = ("g", node.group) if node.group is not None else ("n", id(node))
        if key not in unit_of:
            unit_of[key] = len(units)
            units.append([])
        units[unit_of[key]].append(node)
    producer_unit = {n.out: i for i, unit in enumerate(units) for n in unit}
    dag = nx.DiGraph()
    dag.add_nodes_from(range(len(units)))
    for i, unit in enumerate(units):
        for n in unit:
            for v in n.inputs:
                j = producer_unit.get(v)
                if j is not None and j != i:
                    dag.add_edge(j, i)
    return [units[i] for i in nx.lexicographical_topological_sort(dag)]
