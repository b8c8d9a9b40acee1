"""Elementwise fusion: group elementwise nodes into kernels that make one pass over memory.

A group is a convex set of elementwise nodes computing values of one shape (the group's domain); inputs
from outside may broadcast into it. A reduction (sum, amax, amin) whose input the group computes joins it
as its epilogue: the kernel accumulates while it computes, and the reduced-over values need not be
stored. Convex means no path leaves the group and comes back, so the group can run as one loop nest.
The pass only labels nodes (``node.group``); the printout, `to_networkx` and `to_dot` show the labels and
the numba codegen turns each group into one kernel.

>>> import tracegrad as tg
>>> g = fuse_elementwise(tg.trace(lambda x, b: ((x * 2.0 + b).tanh() * x).sum(1), tg.ones(4, 3), tg.ones(3)))
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

import networkx as nx

from ..ops.registry import Kind

EPILOGUES = ("sum", "amax", "amin")
_DTYPES = ("float32", "float64", "int64", "bool")


def fusible(node) -> bool:
    """An elementwise node the codegen can put in a kernel (registry scalar expression, supported dtypes)."""
    # an expand joins as a broadcast read of its input (the kernel never materializes it)
    return (node.op.kind is Kind.ELEMENTWISE or node.op.name == "expand") and node.out.dtype.name in _DTYPES and \
        all(v.dtype.name in _DTYPES for v in node.inputs)


def fuse_elementwise(graph):
    """Label maximal convex groups of elementwise nodes, each with an optional reduction epilogue."""
    g = graph.copy()
    group_of: dict = {}        # value -> group id of its producer
    domain: dict = {}          # group id -> its shape
    closed: set = set()        # groups ending in a reduction
    depends: dict = {}         # value -> group ids it depends on through other nodes
    next_id = 0
    for node in g.nodes:
        deps = set()
        for v in node.inputs:
            deps |= depends.get(v, set())
            if v in group_of:
                deps.add(group_of[v])
        chosen = None
        is_epilogue = node.op.name in EPILOGUES and node.inputs[0].dtype.name in _DTYPES
        if fusible(node) or is_epilogue:
            shape = node.inputs[0].shape if is_epilogue else node.out.shape
            for v in node.inputs:
                gid = group_of.get(v)
                if gid is None or gid in closed or domain[gid] != shape or (is_epilogue and v is not node.inputs[0]):
                    continue
                # convex: no other input reaches this group through a node outside it
                if all(group_of.get(u) == gid or gid not in depends.get(u, set()) for u in node.inputs):
                    chosen = gid
                    break
            if chosen is None and not is_epilogue:
                chosen, next_id = next_id, next_id + 1
                domain[chosen] = shape
            elif chosen is None and is_epilogue:  # a reduction of a value from outside: a kernel of its own
                chosen, next_id = next_id, next_id + 1
                domain[chosen] = shape
            if is_epilogue:
                closed.add(chosen)
        if chosen is not None:
            node.group = chosen
            group_of[node.out] = chosen
            deps.discard(chosen)
        depends[node.out] = deps
    return g


def kernel_order(graph) -> list:
    """Nodes and groups in an order that runs each group as one unit: a list of lists of nodes.

    A group runs where all of its outside inputs exist; nodes reading a group's values run after it.
    (The topological sort of the graph with each group contracted to one vertex, ties broken by position.)
    """
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
