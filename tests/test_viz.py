"""tracegrad.viz draws both kinds of graph, and explain() shows what the numba backend would compile."""
import pytest

import tracegrad as tg
from tracegrad import nn, viz

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")


def _step():
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = tg.optim.SGD(model.parameters(), lr=0.1)

    def step(x, y):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return step, tg.randn(3, 4), tg.randn(3, 2)


def test_autograd_graph_runs_from_leaves_to_the_output():
    x = tg.ones(2, requires_grad=True)
    w = tg.ones(2, requires_grad=True)
    g = viz.autograd_graph(((x * w).exp()).sum())
    kinds = sorted(d["kind"] for _, d in g.nodes(data=True))
    assert kinds == ["grad_fn", "grad_fn", "grad_fn", "leaf", "leaf", "output"]
    out = next(n for n, d in g.nodes(data=True) if d["kind"] == "output")
    assert g.out_degree(out) == 0 and all(g.in_degree(n) == 0 for n, d in g.nodes(data=True) if d["kind"] == "leaf")


def test_a_tensor_without_history_is_one_output_node():
    g = viz.autograd_graph(tg.ones(3))
    assert [d["label"] for _, d in g.nodes(data=True)] == ["output\nf32[3]"]


def test_draw_labels_every_node_and_puts_every_edge_downwards():
    step, x, y = _step()
    graph = tg.jit.trace(step, x, y)
    ax = viz.draw(graph, title="step")
    labels = {t.get_text() for t in ax.texts}
    assert {f"{n.out.name} = {n.op.name}" for n in graph.nodes} <= labels
    assert "Sequential.0.weight" in labels and ax.get_title() == "step"
    pos, _ = viz._layered_layout(viz.ir_graph(graph))
    assert all(pos[a][1] > pos[b][1] for a, b in viz.ir_graph(graph).edges)
    matplotlib.pyplot.close("all")


def test_draw_by_fusion_group_and_explain_shows_the_numba_view():
    step, x, y = _step()
    ex = tg.compile(step, backend="numba").explain(x, y)
    groups = {n.group for n in ex.fused.nodes if n.group is not None}
    assert groups and all(n.group is None for n in ex.graph.nodes)  # fusion labels a copy
    assert "def segment_0(" in ex.kernel_source and "@njit" in ex.kernel_source
    ax = viz.draw(ex.fused, color_by="group")
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [f"fused group {g}" for g in sorted(groups)]
    matplotlib.pyplot.close("all")
