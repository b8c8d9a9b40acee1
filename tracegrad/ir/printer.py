"""The graph printout: one line per node, in the spirit of a jaxpr; stable, so tests compare it verbatim.

Values print as ``name:type`` where they are defined (``%3:f32[64,128] = matmul x, s0``) and by name
where they are read. Static params follow the inputs as ``key=value``. Backward nodes (derived by the
autodiff pass) and update nodes (after the backward, e.g. the optimizer step) get a section header.
"""
from __future__ import annotations

import os

import numpy as np

_PHASE_HEADERS = {"backward": "# backward (derived by the autodiff pass)", "update": "# after backward"}


def _param(v) -> str:
    if isinstance(v, np.ndarray):
        return f"<array {list(v.shape)}>"
    if isinstance(v, tuple):
        inner = ", ".join(_param(x) for x in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    if isinstance(v, slice):
        return f"{'' if v.start is None else v.start}:{'' if v.stop is None else v.stop}" + \
            ("" if v.step is None else f":{v.step}")
    if v is Ellipsis:
        return "..."
    if hasattr(v, "name") and type(v).__name__ == "DType":
        return v.name
    if type(v).__name__ == "Generator":
        return "<generator>"
    return repr(v)


def _const_text(array: np.ndarray) -> str:
    if array.size == 1:
        return repr(array.reshape(()).item())
    if array.size <= 4:
        return np.array2string(array, separator=", ")
    return f"<{array.size} values>"


def format_node(node, locations: bool = False) -> str:
    params = " ".join(f"{k}={_param(v)}" for k, v in node.params.items())
    ins = ", ".join(v.name for v in node.inputs)
    line = f"{node.out!r} = {node.op.name}" + (f" {ins}" if ins else "") + (f" {params}" if params else "")
    if node.group is not None:
        line += f"  [fused {node.group}]"
    if locations and node.loc:
        line += f"  # {_short(node.loc)}"
    return line


def format_graph(graph, locations: bool = False) -> str:
    args = ", ".join(repr(v) for v in graph.args)
    lines = [f"graph {graph.name}({args}) {{"]
    for v, name in zip(graph.state, graph.state_names):
        lines.append(f"  state {v!r}  # {name}")
    for v, array in graph.consts.items():
        lines.append(f"  {v!r} = const {_const_text(array)}")
    guards = {}
    for g in graph.guards:
        guards.setdefault(g.value, []).append(g)
    phase = "forward"
    for node in graph.nodes:
        if node.phase != phase:
            phase = node.phase
            lines.append(f"  {_PHASE_HEADERS.get(phase, '# ' + phase)}")
        lines.append("  " + format_node(node, locations))
        for g in guards.pop(node.out, ()):
            lines.append(f"  {_guard_text(g, locations)}")
    for gs in guards.values():  # guards on inputs
        lines.extend(f"  {_guard_text(g, locations)}" for g in gs)
    state_of = {v: name for v, name in zip(graph.state, graph.state_names)}
    for target, new in graph.writes:
        lines.append(f"  write {target.name} <- {new.name}" + (f"  # {state_of[target]}" if target in state_of else ""))
    for i, new in graph.grad_writes:
        lines.append(f"  write {graph.grad_targets[i]}.grad <- {'None' if new is None else new.name}")
    outs = ", ".join(v.name for v in graph.outputs)
    lines.append(f"  return {outs if len(graph.outputs) != 1 else graph.outputs[0].name}")
    lines.append("}")
    return "\n".join(lines)


def _guard_text(g, locations) -> str:
    exp = "<array>" if isinstance(g.expected, np.ndarray) else repr(g.expected)
    text = f"guard {g.what}({g.value.name}) == {exp}"
    return text + (f"  # {_short(g.loc)}" if locations and g.loc else "")


def _short(loc: str) -> str:
    """``file.py:12`` from a full ``/path/to/file.py:12`` (printouts stay the same on every machine)."""
    return os.path.basename(loc)
