"""Views of a graph for drawing and graph algorithms: a networkx DiGraph and Graphviz dot text."""
from __future__ import annotations

import networkx as nx

KIND_COLOURS = {"elementwise": "#8dd3c7", "reduction": "#fdb462", "movement": "#bebada", "opaque": "#fb8072",
                 "input": "#ffffb3", "state": "#d9d9d9", "const": "#ffffff"}


def to_networkx(graph) -> nx.DiGraph:
    """One networkx node per IR value (keyed by its name), edges from each input to the node using it.

    Node attributes: ``op`` (op name, or 'input'/'state'/'const'), ``kind``, ``shape``, ``dtype``,
    ``phase`` and ``group`` (the fusion group, or None).
    """
    g = nx.DiGraph(name=graph.name)
    for v in graph.args:
        g.add_node(v.name, op="input", kind="input", shape=v.shape, dtype=v.dtype.name, phase="input", group=None)
    for v, name in zip(graph.state, graph.state_names):
        g.add_node(v.name, op="state", kind="state", shape=v.shape, dtype=v.dtype.name, phase="input", group=None,
                   label=name)
    for v in graph.consts:
        g.add_node(v.name, op="const", kind="const", shape=v.shape, dtype=v.dtype.name, phase="input", group=None)
    for node in graph.nodes:
        g.add_node(node.out.name, op=node.op.name, kind=node.op.kind.value, shape=node.out.shape,
                   dtype=node.out.dtype.name, phase=node.phase, group=node.group, loc=node.loc)
        for v in node.inputs:
            g.add_edge(v.name, node.out.name)
    return g


def to_dot(graph) -> str:
    """Graphviz text: nodes labelled ``name = op`` with their type, coloured by kind, clustered by fusion group."""
    nxg = to_networkx(graph)
    lines = [f'digraph "{graph.name}" {{', "  rankdir=TB;", '  node [shape=box, style="rounded,filled", '
             'fontname="monospace", fontsize=10];']
    groups: dict = {}
    for name, attrs in nxg.nodes(data=True):
        shape = "x".join(map(str, attrs["shape"])) or "scalar"
        label = f"{name} = {attrs['op']}\\n{attrs['dtype']}[{shape}]"
        line = f'  "{name}" [label="{label}", fillcolor="{KIND_COLOURS[attrs["kind"]]}"];'
        if attrs.get("group") is not None:
            groups.setdefault(attrs["group"], []).append(line)
        else:
            lines.append(line)
    for gid, members in groups.items():
        lines.append(f'  subgraph "cluster_{gid}" {{ label="fused {gid}"; style=dashed;')
        lines.extend("  " + m for m in members)
        lines.append("  }")
    for a, b in nxg.edges():
        lines.append(f'  "{a}" -> "{b}";')
    lines.append("}")
    return "\n".join(lines)
