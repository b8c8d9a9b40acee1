"""Pictures of both kinds of graph: eager autograd's `grad_fn` chains and the compiled IR (networkx + matplotlib).

>>> import tracegrad as tg
>>> from tracegrad import viz
>>> x = tg.ones(2, requires_grad=True)
>>> g = viz.autograd_graph((x * 2).sum())
>>> sorted(d["label"] for _, d in g.nodes(data=True))
['MulBackward0', 'SumBackward0', 'leaf\\nf32[2]', 'output\\nf32[]']

`draw(t_or_graph)` lays the graph out in layers (inputs at the top, results at the bottom) and colours the
nodes by kind. matplotlib is imported only when drawing.
"""
from __future__ import annotations

import networkx as nx

from ._tensor import Tensor
from .autograd.node import AccumulateGrad
from .ir.export import KIND_COLOURS, to_networkx
from .ir.graph import Graph, Value

_AUTOGRAD_COLOURS = {"leaf": KIND_COLOURS["input"], "grad_fn": KIND_COLOURS["opaque"], "output": "#80b1d3"}


def _type(t) -> str:
    return Value(tuple(t.shape), t.dtype, "").type_str()


def autograd_graph(t: Tensor) -> nx.DiGraph:
    """The autograd graph behind `t` as eager mode recorded it: leaves -> grad_fn nodes -> `t`.

    Edges run in the forward direction (from an op's inputs to the op); backward walks them in reverse.
    Node attributes: ``label`` and ``kind`` ('leaf', 'grad_fn' or 'output').
    """
    g = nx.DiGraph()
    out = ("output", id(t))
    g.add_node(out, label=f"output\n{_type(t)}", kind="output")
    if t.grad_fn is None:
        return g
    stack, seen = [t.grad_fn], set()
    g.add_edge(id(t.grad_fn), out)
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, AccumulateGrad):
            g.add_node(id(node), label=f"leaf\n{_type(node.variable)}", kind="leaf")
            continue
        g.add_node(id(node), label=node.name(), kind="grad_fn")
        for nxt, _ in node.next_functions:
            if nxt is not None:
                g.add_edge(id(nxt), id(node))
                stack.append(nxt)
    return g


def ir_graph(graph: Graph) -> nx.DiGraph:
    """`graph.to_networkx()` with a ``label`` per node (``name = op``, or the state's name)."""
    g = to_networkx(graph)
    for name, d in g.nodes(data=True):
        d["label"] = d.get("label") or (name if d["op"] in ("input", "const") else f"{name} = {d['op']}")
    return g


def _layered_layout(g: nx.DiGraph):
    """Positions in layers: a node sits one layer below its deepest input, an input just above its first user;
    within a layer nodes are ordered by the mean position of their neighbours (fewer crossings)."""
    layer = {}
    for n in nx.topological_sort(g):
        layer[n] = max((layer[p] + 1 for p in g.predecessors(n)), default=0)
    for n in g:  # NOTE: inputs (parameters, constants) are drawn next to the op that reads them first
        if g.in_degree(n) == 0 and g.out_degree(n):
            layer[n] = min(layer[s] for s in g.successors(n)) - 1
    rows: dict = {}
    for n in g:
        rows.setdefault(layer[n], []).append(n)
    x = {n: float(i) for row in rows.values() for i, n in enumerate(row)}
    for sweep in range(4):  # barycentre ordering, downwards then upwards
        for k in sorted(rows, reverse=bool(sweep % 2)):
            near = g.predecessors if sweep % 2 == 0 else g.successors
            key = {}
            for n in rows[k]:
                ms = list(near(n))
                key[n] = sum(x[m] for m in ms) / len(ms) if ms else x[n]
            rows[k].sort(key=key.get)
            for i, n in enumerate(rows[k]):
                x[n] = i - (len(rows[k]) - 1) / 2
    return {n: (x[n], -layer[n]) for n in g}, layer


def draw(what, ax=None, title: str | None = None, color_by: str = "kind", font_size: int = 7):
    """Draw a tensor's autograd graph, an IR `Graph` or a networkx DiGraph with ``label``/``kind`` attributes.

    ``color_by="group"`` colours the nodes of an IR graph by fusion group instead of by kind. Returns the
    matplotlib Axes.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    if isinstance(what, Tensor):
        g = autograd_graph(what)
    elif isinstance(what, Graph):
        g = ir_graph(what)
    else:
        g = what
    pos, layer = _layered_layout(g)
    width = max((sum(1 for v in layer.values() if v == k) for k in set(layer.values())), default=1)
    depth = max(layer.values(), default=0) - min(layer.values(), default=0) + 1
    if ax is None:
        _, ax = plt.subplots(figsize=(min(2 + 1.5 * width, 18), min(1 + 0.55 * depth, 24)))
    colours = {**KIND_COLOURS, **_AUTOGRAD_COLOURS}
    if color_by == "group":
        groups = sorted({d.get("group") for _, d in g.nodes(data=True) if d.get("group") is not None})
        cmap = plt.get_cmap("tab20")
        colours = {gid: cmap(i % 20) for i, gid in enumerate(groups)}
        key = lambda d: d.get("group")
        legend = {f"fused group {gid}": c for gid, c in colours.items()}
    else:
        key = lambda d: d.get("kind")
        legend = {k: colours[k] for k in dict.fromkeys(d.get("kind") for _, d in g.nodes(data=True))}
    node_colours = [colours.get(key(d), "#eeeeee") for _, d in g.nodes(data=True)]
    nx.draw_networkx_edges(g, pos, ax=ax, arrows=True, arrowsize=8, edge_color="#888888", node_size=900)
    for (n, d), c in zip(g.nodes(data=True), node_colours):
        x, y = pos[n]
        ax.text(x, y, d.get("label", str(n)), ha="center", va="center", fontsize=font_size, family="monospace",
                bbox=dict(boxstyle="round,pad=0.3", fc=c, ec="#555555", lw=0.6))
    ax.legend(handles=[Patch(facecolor=c, edgecolor="#555555", label=k) for k, c in legend.items()],
              loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    ax.margins(0.08)
    return ax


__all__ = ["autograd_graph", "draw", "ir_graph"]
