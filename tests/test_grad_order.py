"""Gradient accumulation order: eager autograd and the compiler's autodiff pass sum alike (issue 12).

Floating-point addition is not associative, so a value that receives three or more gradient
contributions gets a different last bit depending on the order they are added in. The order is defined
once, in `tracegrad/autograd/order.py`, and both the eager engine and the autodiff pass use it:

* nodes run in decreasing creation order (the op recorded last runs first);
* a value's gradient is the left-to-right sum of its contributions in the order they arrive: the seeds
  first (in the order of the outputs), then one per (consumer, input position) as the consumers run.

Specified here: eager `x.grad` equals the compiled function's bit for bit (first calls and replays) on
programs where the old depth-first engine order differed; the eager sum follows the documented order;
second-order gradients and several roots agree too; the shared scheduler itself.
"""
import numpy as np
import pytest

import tracegrad as tg
from tracegrad.autograd.order import ReverseSweep


def _fresh(seed, dtype=tg.float64, shape=(5, 4)):
    tg.manual_seed(seed)
    return tg.randn(*shape, dtype=dtype, requires_grad=True)


def _eager_grad(f, x):
    f(x).backward()
    return x.grad.numpy().copy()


def _assert_compiled_grad_equal(f, seed, dtype=tg.float64, calls=3):
    expected = _eager_grad(f, _fresh(seed, dtype))
    step = tg.compile(lambda x: (f(x).backward(), x.grad)[1])
    for call in range(calls):  # calls 1-2 trace, call 3 replays the graph
        got = step(_fresh(seed, dtype)).numpy()
        assert np.array_equal(got, expected), f"call {call}: max diff {np.abs(got - expected).max()}"


def _early_use(x):
    # `d` is created first but reached last by a depth-first walk from the output: the old eager order
    # summed x's three contributions as (cos + sin) + exp, the autodiff pass as (sin + exp) + cos.
    d = x.cos()
    a, b = x.exp(), x.sin()
    return (a * b + d).sum()


def _issue_example(x):
    return x.sum() + tg.minimum(x, x).mean()


def _many_uses(x):
    y = x * 3.0
    z = (x.tanh() + y.sigmoid()) * x
    return (z + y.exp() * x.cos() + x).mean() + x.sum()


@pytest.mark.parametrize("f", [_early_use, _issue_example, _many_uses])
@pytest.mark.parametrize("dtype", [tg.float64, tg.float32])
def test_compiled_grad_equals_eager_bit_for_bit(f, dtype):
    for seed in range(4):
        _assert_compiled_grad_equal(f, seed, dtype)


def test_eager_sum_follows_the_documented_order():
    x = _fresh(0)
    d = x.cos()
    a, b = x.exp(), x.sin()
    (a * b + d).sum().backward()
    xn, an, bn = x.detach().numpy(), a.detach().numpy(), b.detach().numpy()
    from_sin = an * np.cos(xn)          # mul (created 4th) hands b's gradient to sin (3rd)
    from_exp = bn * an                  # ... and a's to exp (2nd)
    from_cos = -np.ones_like(xn) * np.sin(xn)  # cos was created 1st, so it contributes last
    assert np.array_equal(x.grad.numpy(), (from_sin + from_exp) + from_cos)


def test_second_order_grad_equal():
    def f(x):
        (g,) = tg.autograd.grad(_early_use(x), x, create_graph=True)
        return (g * g.sin()).sum() + _many_uses(g)

    _assert_compiled_grad_equal(f, 1)


def test_grad_transform_equals_the_engine():
    # tracegrad.grad runs the autodiff pass even eagerly; autograd.grad runs the eager engine
    def f(x):
        return _many_uses(x) + _early_use(x)

    x = _fresh(2)
    (expected,) = tg.autograd.grad(f(x), x)
    df = tg.grad(f)
    for got in [df(_fresh(2))] + [tg.compile(df)(_fresh(2)) for _ in range(3)]:
        assert np.array_equal(got.detach().numpy(), expected.numpy())


def test_several_roots_equal():
    def f(x):
        y = x.exp()
        z = (y * x.cos()).sum()
        w = (y.sin() + x).sum()
        tg.autograd.backward([z, w, y.sum()])
        return x.grad

    x = _fresh(3)
    expected = f(x).numpy().copy()
    step = tg.compile(f)
    for _ in range(3):
        assert np.array_equal(step(_fresh(3)).numpy(), expected)


def test_eager_nodes_run_in_decreasing_creation_order():
    x = _fresh(4)
    seen = []
    d = x.cos()
    d.register_hook(lambda g: seen.append("d"))
    a = x.exp()
    a.register_hook(lambda g: seen.append("a"))
    b = x.sin()
    b.register_hook(lambda g: seen.append("b"))
    (a * b + d).sum().backward()
    assert seen == ["b", "a", "d"]


def test_sweep_sums_contributions_in_arrival_order():
    # a diamond over strings: "+" concatenates, so the result spells the order of the additions
    edges = {"out": ["p", "q"], "q": ["p", "leaf"], "p": ["leaf"], "leaf": []}
    rank = {"out": 3, "q": 2, "p": 1, "leaf": None}
    sweep = ReverseSweep(["out"], lambda n: edges[n], rank.get)
    sweep.add("out", "s")
    order = []
    for node, g in sweep:
        order.append((node, g))
        for k, nxt in enumerate(edges[node]):
            sweep.add(nxt, f"({g}>{node}{k})")
    assert [n for n, _ in order] == ["out", "q", "p", "leaf"]
    assert dict(order)["p"] == "(s>out0)((s>out1)>q0)"
    assert dict(order)["leaf"] == "((s>out1)>q1)((s>out0)((s>out1)>q0)>p0)"


def test_sweep_order_on_random_graphs():
    # ranked nodes run in decreasing rank, every node after all the nodes that send it gradients, and
    # unranked nodes (sinks) run as soon as the last of those has run
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 12))
        sinks = list(range(n, n + int(rng.integers(0, 3))))
        edges = {i: [int(j) for j in rng.integers(0, i, int(rng.integers(0, 3)))] if i else [] for i in range(n)}
        for i in range(n):
            edges[i] += [s for s in sinks if rng.random() < 0.3]
        for s in sinks:
            edges[s] = []
        roots = sorted({int(r) for r in rng.integers(0, n, int(rng.integers(1, 3)))})
        sweep = ReverseSweep(roots, edges.get, lambda v: None if v >= n else v)
        for r in roots:
            sweep.add(r, 1)
        ran = []
        for node, g in sweep:
            ran.append(node)
            for nxt in edges[node]:
                sweep.add(nxt, 1)
        ranked = [v for v in ran if v < n]
        assert ranked == sorted(ranked, reverse=True)
        for k, v in enumerate(ran):
            assert all(v not in edges[u] for u in ran[k + 1:])
            if v >= n:  # a sink runs right after the last node that feeds it (or after other sinks)
                last = max(ran.index(u) for u in ran if v in edges[u])
                assert all(w >= n for w in ran[last + 1:k])


def test_autograd_grad_of_a_hooked_tensor_is_captured_after_its_hook():
    # eager's engine runs a tensor's hooks and then captures its gradient; the autodiff pass captured first
    def f(x):
        y = x * 2.0
        y.register_hook(lambda g: g * 3.0)
        (gy,) = tg.autograd.grad((y * y).sum(), [y])
        return gy

    def inputs():
        return tg.tensor([1.0, 2.0], requires_grad=True)

    assert np.array_equal(f(inputs()).numpy(), [12.0, 24.0])
    step = tg.compile(f, backend="interpret")
    for _ in range(3):
        assert np.array_equal(step(inputs()).numpy(), [12.0, 24.0])
