"""`verify(graph)`: SSA form, topological order and every node's shape/dtype against its op's rule.

On failure it raises `GraphError` showing the bad node with the nodes around it.
"""
from __future__ import annotations

from .printer import format_node


class GraphError(Exception):
    """A graph that breaks the IR's invariants (a compiler bug, never a user error)."""


def _neighbourhood(graph, index: int, radius: int = 3) -> str:
    lo, hi = max(0, index - radius), min(len(graph.nodes), index + radius + 1)
    lines = []
    for i in range(lo, hi):
        mark = ">>" if i == index else "  "
        lines.append(f"{mark} {i:4d}  {format_node(graph.nodes[i], locations=True)}")
    return "\n".join(lines)


def verify(graph) -> None:
    defined = set()
    for v in graph.inputs:
        if v in defined:
            raise GraphError(f"input {v.name} is listed twice")
        defined.add(v)
    for i, node in enumerate(graph.nodes):
        def fail(msg, i=i):
            raise GraphError(f"{msg}\n{_neighbourhood(graph, i)}")
        for v in node.inputs:
            if v not in defined:
                fail(f"node {node.out.name} ({node.op.name}) reads {v.name} before it is defined")
        if node.out in defined:
            fail(f"value {node.out.name} is defined twice (not SSA)")
        if node.out.producer is None or node.out.producer.op is not node.op:
            fail(f"value {node.out.name} does not point back at a node of its op")
        if node.op.arity is not None and len(node.inputs) != node.op.arity:
            fail(f"{node.op.name} takes {node.op.arity} inputs, node has {len(node.inputs)}")
        try:
            aval = node.op.infer(*[v.aval for v in node.inputs], **node.params)
        except Exception as e:  # noqa: BLE001 - reported with the node's neighbourhood
            fail(f"shape rule of {node.op.name} rejects the node's inputs: {e}")
        if (tuple(aval.shape), aval.dtype) != (node.out.shape, node.out.dtype):
            fail(f"node {node.out.name} ({node.op.name}) is typed {node.out.type_str()} but its shape rule gives "
                 f"{list(aval.shape)} {aval.dtype.name}")
        defined.add(node.out)
    for where, values in (("output", graph.outputs), ("write", [v for _, v in graph.writes]),
                          ("guard", [g.value for g in graph.guards]),
                          ("grad write", [v for _, v in graph.grad_writes if v is not None])):
        for v in values:
            if v not in defined:
                raise GraphError(f"{where} {v.name} is not defined by the graph")
    for target, new in graph.writes:
        if target not in graph.state and target not in graph.args:
            raise GraphError(f"write target {target.name} is not an input")
        if (target.shape, target.dtype) != (new.shape, new.dtype):
            raise GraphError(f"write {target.name} <- {new.name} changes type {target.type_str()} -> "
                             f"{new.type_str()}")
