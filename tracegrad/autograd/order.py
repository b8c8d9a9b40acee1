"""The order of reverse mode, defined once: eager autograd and the compiler's autodiff pass both sweep with it.

Floating-point addition is not associative: a value that receives three gradient contributions gets
``(a + b) + c`` or ``(c + b) + a``, which can differ in the last bit. Eager mode (`engine.run_backward`,
over `grad_fn` nodes) and compiled mode (`compiler.autodiff.backward_pass`, over IR nodes) both run their
backward through `ReverseSweep`, so they add in the same order and their gradients are equal bit for bit
by construction. The rule (PyTorch's):

1. A node runs once every node that sends it a gradient has run. Among the nodes ready to run, the one
   created last runs first (its `rank`: eager `Node`s are numbered as they are created, IR nodes by their
   position in the graph, and both modes create them in the order the program applies its ops). A node
   without a rank (a leaf's `AccumulateGrad`, a compiled region's node) runs as soon as it is ready.
   Since a node is always created after the nodes of its inputs, this is decreasing creation order.
2. A node's gradient is the left-to-right sum of its contributions in the order they arrived,
   ``((g0 + g1) + g2) + ...``: the seeds first, in the order of the outputs, then one contribution per
   (consumer, input position), consumers in the order they ran and each consumer's inputs in order.

>>> edges = {"y": ["x", "x"], "x": []}
>>> sweep = ReverseSweep(["y"], edges.get, {"y": 1}.get)
>>> sweep.add("y", "1")
>>> for node, g in sweep:
...     for k, nxt in enumerate(edges[node]):
...         sweep.add(nxt, f"({g}>{k})")
...     print(node, g)
y 1
x (1>0)(1>1)
"""
from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable, Iterable, Iterator


class ReverseSweep:
    """Pending gradients and the order nodes run in, for one backward sweep from `roots`.

    `edges(node)` lists the nodes `node` sends gradients to, one entry per input (repeats kept, no None);
    `rank(node)` is its creation number, or None to run as soon as ready. Iterating yields
    ``(node, gradient)`` for each reached node that received a gradient, in the order above; while
    handling a node, the caller hands its contributions on with `add(next_node, g)`.
    """

    __slots__ = ("_succ", "_deps", "_rank", "_ready", "_pending", "_tick")

    def __init__(self, roots: Iterable[Hashable], edges: Callable, rank: Callable):
        succ: dict = {}
        deps: dict = {}  # node -> number of edges into it from reached nodes not yet run
        for r in roots:
            deps.setdefault(r, 0)
        stack = list(deps)
        while stack:
            node = stack.pop()
            nexts = succ[node] = edges(node)
            for nxt in nexts:
                if nxt in deps:
                    deps[nxt] += 1
                else:
                    deps[nxt] = 1
                    stack.append(nxt)
        self._succ, self._deps, self._rank = succ, deps, rank
        self._ready: list = []
        self._pending: dict = {}
        self._tick = 0
        for node, d in deps.items():
            if d == 0:
                self._push(node)

    def _push(self, node):
        r = self._rank(node)
        self._tick += 1
        # NOTE: unranked nodes (sinks such as AccumulateGrad) first, then the latest created; the tick only
        # breaks ties between unranked nodes (first ready, first run) and keeps nodes from being compared.
        heapq.heappush(self._ready, ((-1, 0) if r is None else (0, -r), self._tick, node))

    def add(self, node, g) -> None:
        """Add contribution `g` to `node`'s gradient: the one place where gradients are summed."""
        pending = self._pending
        if node in pending:
            pending[node] = pending[node] + g
        elif node in self._deps:
            pending[node] = g
        else:
            raise RuntimeError(f"internal error: a gradient reached a node outside the sweep ({node!r})")

    def __iter__(self) -> Iterator:
        ready, succ, deps, pending = self._ready, self._succ, self._deps, self._pending
        node = heapq.heappop(ready)[2] if ready else None
        while node is not None:
            # NOTE: the next node is chosen before the caller adds this node's contributions (readiness
            # depends on the graph only); it runs after, as the generator resumes after the caller's loop body.
            # A single newly ready node with nothing else waiting (a chain) skips the heap.
            single = None
            for nxt in succ[node]:
                d = deps[nxt] = deps[nxt] - 1
                if d == 0:
                    if single is None and not ready:
                        single = nxt
                    else:
                        if single is not None:
                            self._push(single)
                            single = None
                        self._push(nxt)
            g = pending.pop(node, None)
            if g is not None:
                yield node, g
            if single is not None:
                node = single
            else:
                node = heapq.heappop(ready)[2] if ready else None

    def leading_to(self, targets) -> set:
        """The reached nodes from which some node of `targets` can be reached (not counting itself)."""
        preds: dict = {}
        for node, nexts in self._succ.items():
            for nxt in nexts:
                preds.setdefault(nxt, []).append(node)
        found: set = set()
        stack = [t for t in targets if t in preds]
        while stack:
            for p in preds.get(stack.pop(), ()):
                if p not in found:
                    found.add(p)
                    stack.append(p)
        return found
