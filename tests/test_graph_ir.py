"""The static-graph IR: what `tracegrad.jit.trace` records, what the simplification passes do to it, and its views.

Specified here:

* golden printouts (verbatim) of the IR of small functions -- an elementwise chain, reductions, implicit
  broadcasting, a backward section derived by the autodiff pass, a captured parameter written back in
  place -- before and after `run_pipeline`;
* each pass on a small graph: dead code elimination, common subexpression elimination (nodes and equal
  constants), constant folding (never growing a constant), algebraic simplification (each identity it
  rewrites, and ``x + 0.0`` which it must not rewrite because of -0.0), with the values unchanged;
* passes return a new graph and leave their input untouched;
* `verify()` rejects broken graphs with a `GraphError` showing the bad node's neighbourhood (``>>``);
* `to_networkx()` / `to_dot()` views, and `format(locations=True)` naming the user's file and line.
"""
import functools
import os
import re

import networkx as nx
import numpy as np
import pytest
from source_lines import marker_line

import tracegrad as tg
from tracegrad.compiler import (
    algebraic_simplification,
    common_subexpression_elimination,
    constant_folding,
    dead_code_elimination,
    run_pipeline,
)
from tracegrad.compiler.passes import lower_composites
from tracegrad.ir import GraphError
from tracegrad.ops import primitives as P
from tracegrad.runtime.interpreter import Program

THIS_FILE = os.path.basename(__file__)
_line = functools.partial(marker_line, __file__)



def _run(graph, *arrays):
    """Execute `graph` with the interpreter on argument arrays (then captured-state arrays)."""
    return Program(graph).outputs([np.asarray(a, dtype=np.float32) for a in arrays])


def _ops(graph) -> list:
    return [n.op.name for n in graph.nodes]


def _snapshot(graph):
    """Everything a pass could change in place about a graph (its printout and its structure)."""
    return (str(graph), list(graph.nodes), [list(n.inputs) for n in graph.nodes],
            [dict(n.params) for n in graph.nodes], [n.out for n in graph.nodes], dict(graph.consts),
            list(graph.outputs), list(graph.writes), [(g.value, g.expected) for g in graph.guards])


# ---------------------------------------------------------------------------------------------- golden printouts
def chain(x):
    return ((x * 1.0 - 0.0).exp() * 2.0 + x.exp() * 2).relu()


CHAIN_TRACED = """\
graph chain(x:f32[3]) {
  c0:f32[] = const 1.0
  c1:f32[] = const 0.0
  c2:f32[] = const 2.0
  c3:f32[] = const 2.0
  %0:f32[3] = mul x, c0
  %1:f32[3] = sub %0, c1
  %2:f32[3] = exp %1
  %3:f32[3] = mul %2, c2
  %4:f32[3] = exp x
  %5:f32[3] = mul %4, c3
  %6:f32[3] = add %3, %5
  %7:f32[3] = relu %6
  return %7
}"""

# x*1 and x-0 are gone, the two exps and the two equal constants 2.0 / 2 merged
CHAIN_OPTIMIZED = """\
graph chain(x:f32[3]) {
  c2:f32[] = const 2.0
  %2:f32[3] = exp x
  %3:f32[3] = mul %2, c2
  %6:f32[3] = add %3, %3
  %7:f32[3] = relu %6
  return %7
}"""


def reduction(x):
    return (x.expand(4, 2, 3).sum(0) * x).sum(1).mean()


REDUCTION_TRACED = """\
graph reduction(x:f32[2,3]) {
  c0:f32[] = const 2.0
  %0:f32[4,2,3] = expand x shape=(4, 2, 3)
  %1:f32[2,3] = sum %0 axes=(0,) keepdim=False
  %2:f32[2,3] = mul %1, x
  %3:f32[2] = sum %2 axes=(1,) keepdim=False
  %4:f32[] = sum %3 axes=(0,) keepdim=False
  %5:f32[] = div %4, c0
  return %5
}"""

# the sum over the broadcast axis became a multiplication by the count (4)
REDUCTION_OPTIMIZED = """\
graph reduction(x:f32[2,3]) {
  c0:f32[] = const 2.0
  %0:f32[4,2,3] = expand x shape=(4, 2, 3)
  %1:f32[2,3] = sum %0 axes=(0,) keepdim=False
  %2:f32[2,3] = mul %1, x
  %3:f32[2] = sum %2 axes=(1,) keepdim=False
  %4:f32[] = sum %3 axes=(0,) keepdim=False
  %5:f32[] = div %4, c0
  return %5
}"""


def broadcast(x, b, s):
    return (x * b + s).sum(0)


# broadcasting is implicit in the elementwise ops: only the result types show it
BROADCAST_TRACED = """\
graph broadcast(x:f32[2,3], b:f32[3], s:f32[2,1]) {
  %0:f32[2,3] = mul x, b
  %1:f32[2,3] = add %0, s
  %2:f32[3] = sum %1 axes=(0,) keepdim=False
  return %2
}"""


def grad_of(x):
    y = (x * x).sum()
    (g,) = tg.autograd.grad(y, [x])
    return y, g


GRAD_TRACED = """\
graph grad_of(x:f32[3]) {
  c0:f32[] = const 1.0
  %0:f32[3] = mul x, x
  %1:f32[] = sum %0 axes=(0,) keepdim=False
  # backward (derived by the autodiff pass)
  %2:f32[1] = reshape c0 shape=(1,)
  %3:f32[3] = expand %2 shape=(3,)
  %4:f32[3] = mul %3, x
  %5:f32[3] = mul %3, x
  %6:f32[3] = add %4, %5
  return %1, %6
}"""

# reshape of a constant folded (same size, so allowed); the expand of it is not (it would grow); CSE merged the muls
GRAD_OPTIMIZED = """\
graph grad_of(x:f32[3]) {
  c1:f32[1] = const 1.0
  %0:f32[3] = mul x, x
  %1:f32[] = sum %0 axes=(0,) keepdim=False
  # backward (derived by the autodiff pass)
  %3:f32[3] = expand c1 shape=(3,)
  %4:f32[3] = mul %3, x
  %6:f32[3] = add %4, %4
  return %1, %6
}"""


def _sgd_step_fn():
    w = tg.ones(3, requires_grad=True)

    def sgd_step(x):
        loss = ((w * x).sum() - 1.0) ** 2
        loss.backward()  # LOC-BACKWARD
        with tg.no_grad():
            w.sub_(0.5 * w.grad)
        w.grad = None
        return loss
    return sgd_step, w


SGD_TRACED = """\
graph sgd_step(x:f32[3]) {
  state s0:f32[3]  # captured [3]
  c0:f32[] = const 1.0
  c1:f32[] = const 2.0
  c2:f32[] = const 0.0
  c3:f32[] = const 1.0
  c4:f32[] = const 1.0
  c5:f32[] = const 0.0
  c6:f32[] = const 0.5
  %0:f32[3] = mul s0, x
  %1:f32[] = sum %0 axes=(0,) keepdim=False
  %2:f32[] = sub %1, c0
  %3:f32[] = pow %2, c1
  # backward (derived by the autodiff pass)
  %4:bool[] = eq c1, c2
  %5:f32[] = mul c3, c1
  %6:f32[] = sub c1, c4
  %7:f32[] = pow %2, %6
  %8:f32[] = mul %5, %7
  %9:f32[] = where %4, c5, %8
  %10:f32[1] = reshape %9 shape=(1,)
  %11:f32[3] = expand %10 shape=(3,)
  %12:f32[3] = mul %11, x
  # after backward
  %13:f32[3] = mul c6, %12
  %14:f32[3] = sub s0, %13
  write s0 <- %14  # captured [3]
  return %3
}"""

# 1*2 and 2-1 folded, pow(%2, 1) -> %2, and the folded 2.0 merged with c1
SGD_OPTIMIZED = """\
graph sgd_step(x:f32[3]) {
  state s0:f32[3]  # captured [3]
  c0:f32[] = const 1.0
  c1:f32[] = const 2.0
  c6:f32[] = const 0.5
  %0:f32[3] = mul s0, x
  %1:f32[] = sum %0 axes=(0,) keepdim=False
  %2:f32[] = sub %1, c0
  %3:f32[] = pow %2, c1
  # backward (derived by the autodiff pass)
  %8:f32[] = mul c1, %2
  %10:f32[1] = reshape %8 shape=(1,)
  %11:f32[3] = expand %10 shape=(3,)
  %12:f32[3] = mul %11, x
  # after backward
  %13:f32[3] = mul c6, %12
  %14:f32[3] = sub s0, %13
  write s0 <- %14  # captured [3]
  return %3
}"""


def _golden_cases():
    sgd_step, _ = _sgd_step_fn()
    return {
        "chain": (chain, (tg.ones(3),), CHAIN_TRACED, CHAIN_OPTIMIZED),
        "reduction": (reduction, (tg.ones(2, 3),), REDUCTION_TRACED, REDUCTION_OPTIMIZED),
        "broadcast": (broadcast, (tg.ones(2, 3), tg.ones(3), tg.ones(2, 1)), BROADCAST_TRACED, BROADCAST_TRACED),
        "backward": (grad_of, (tg.ones(3, requires_grad=True),), GRAD_TRACED, GRAD_OPTIMIZED),
        "write-back": (sgd_step, (tg.ones(3),), SGD_TRACED, SGD_OPTIMIZED),
    }


@pytest.mark.parametrize("case", ["chain", "reduction", "broadcast", "backward", "write-back"])
def test_golden_printout_before_and_after_the_pipeline(case):
    fn, args, traced, optimized = _golden_cases()[case]
    g = tg.jit.trace(fn, *args)
    assert str(g) == traced
    assert g.format() == traced
    opt = run_pipeline(g, print_each=False)
    assert str(opt) == optimized
    opt.verify()


def test_golden_printouts_are_stable_across_traces():
    sgd_step, _ = _sgd_step_fn()
    assert str(tg.jit.trace(sgd_step, tg.ones(3))) == str(tg.jit.trace(sgd_step, tg.zeros(3))) == SGD_TRACED


def test_trace_does_not_run_the_write_back():
    sgd_step, w = _sgd_step_fn()
    tg.jit.trace(sgd_step, tg.full((3,), 2.0))
    assert w.tolist() == [1.0, 1.0, 1.0]
    assert w.grad is None


@pytest.mark.parametrize("case", ["chain", "reduction", "broadcast", "backward", "write-back"])
def test_the_pipeline_keeps_the_values(case):
    fn, args, _, _ = _golden_cases()[case]
    g = tg.jit.trace(fn, *args)
    opt = run_pipeline(g, print_each=False)
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(v.shape).astype(np.float32) for v in g.args + g.state]
    for a, b in zip(_run(g, *arrays), _run(opt, *arrays)):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_run_pipeline_prints_each_pass_when_asked(capsys):
    run_pipeline(tg.jit.trace(chain, tg.ones(3)), print_each=True)
    out = capsys.readouterr().out
    assert out.startswith("--- traced (8 nodes)\n" + CHAIN_TRACED)
    for name in ("constant_folding", "algebraic_simplification", "common_subexpression_elimination",
                 "dead_code_elimination"):
        assert f"--- after {name} (" in out
    assert out.rstrip().endswith(CHAIN_OPTIMIZED)


# ---------------------------------------------------------------------------------------------- one test per pass
def test_dead_code_elimination_removes_an_unused_node():
    def f(x):
        x.exp()  # computed, never used
        return x.neg()
    g = tg.jit.trace(f, tg.ones(3))
    assert _ops(g) == ["exp", "neg"]
    out = dead_code_elimination(g)
    assert str(out) == "graph f(x:f32[3]) {\n  %1:f32[3] = neg x\n  return %1\n}"


def test_dead_code_elimination_keeps_guarded_values_and_random_draws():
    def f(x):
        tg.rand(3)  # unused, but a draw advances the generator as in eager mode
        if x.sum() > 0:  # the comparison is guarded: it must still be computed
            return x * 2.0
        return x
    g = tg.jit.trace(f, tg.ones(3))
    out = dead_code_elimination(g)
    assert _ops(out) == _ops(g) == ["uniform", "sum", "gt", "mul"]
    assert "guard bool(%2) == True" in str(out)


def test_cse_merges_duplicate_nodes_and_equal_constants():
    def f(x):
        return x.exp() * 2.0 + x.exp() * 2
    g = tg.jit.trace(f, tg.ones(3))
    assert [g.consts[c].item() for c in g.consts] == [2.0, 2.0]
    out = common_subexpression_elimination(g)
    assert str(out) == """\
graph f(x:f32[3]) {
  c0:f32[] = const 2.0
  %0:f32[3] = exp x
  %1:f32[3] = mul %0, c0
  %4:f32[3] = add %1, %1
  return %4
}"""
    x = np.array([0.5, -1.0, 2.0], np.float32)
    np.testing.assert_array_equal(_run(out, x)[0], _run(g, x)[0])


def test_cse_keeps_constants_that_differ_only_in_sign_and_never_merges_random_draws():
    g = tg.jit.trace(lambda x: (x * 0.0, x * -0.0), tg.ones(2))
    out = common_subexpression_elimination(g)
    assert len(out.consts) == 2 and _ops(out) == ["mul", "mul"]
    a, b = _run(out, np.array([1.0, -1.0]))
    assert list(np.signbit(a)) == [False, True] and list(np.signbit(b)) == [True, False]

    g = tg.jit.trace(lambda x: tg.rand(3) + tg.rand(3) + x, tg.ones(3))
    assert _ops(common_subexpression_elimination(g)) == ["uniform", "uniform", "add", "add"]


def test_constant_folding_folds_constant_only_nodes():
    def f(x):
        return x * (tg.tensor(2.0) * tg.tensor(3.0)).exp().log()
    g = tg.jit.trace(f, tg.ones(3))
    assert _ops(g) == ["mul", "exp", "log", "mul"]
    out = constant_folding(g)
    assert _ops(out) == ["mul"]
    (c,) = out.consts
    assert out.nodes[0].inputs == [out.args[0], c]
    np.testing.assert_allclose(out.consts[c], 6.0, rtol=1e-6)
    assert out.consts[c].dtype == np.float32 and out.consts[c].shape == ()
    x = np.array([1.0, 2.0, 3.0], np.float32)
    np.testing.assert_array_equal(_run(out, x)[0], _run(g, x)[0])


def test_constant_folding_never_creates_a_constant_larger_than_its_inputs():
    def f(x):
        big = tg.tensor(5.0).expand(4, 3)          # 1 value -> 12: a free view, stays a node
        same = tg.tensor([1.0, 2.0, 3.0]) * 2.0   # 3 values from 3 and 1: folded
        return x * same + big
    g = tg.jit.trace(f, tg.ones(4, 3))
    out = constant_folding(g)
    assert _ops(out) == ["expand", "mul", "add"]
    assert sorted(a.size for a in out.consts.values()) == [1, 3]
    assert max(a.size for a in out.consts.values()) <= max(a.size for a in g.consts.values())
    folded = [a for a in out.consts.values() if a.size == 3]
    assert folded[0].tolist() == [2.0, 4.0, 6.0]
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.testing.assert_array_equal(_run(out, x)[0], _run(g, x)[0])


SPECIAL = (-0.0, 0.0, 1.5, -2.0, np.inf, np.nan)


def _simplified(fn, shape, special=SPECIAL):
    """Trace, simplify, and check the values agree (bit for bit) on data with signed zeros, infinities and NaN."""
    x = tg.ones(*shape)
    g = tg.jit.trace(fn, x)
    out = algebraic_simplification(g)
    out.verify()
    data = np.array(special, np.float32)
    data = np.resize(data, int(np.prod(shape))).reshape(shape)
    for a, b in zip(_run(g, data), _run(out, data)):
        np.testing.assert_array_equal(a, b)
        assert np.array_equal(np.signbit(a), np.signbit(b))
    return g, out


@pytest.mark.parametrize("name, fn, shape, before", [
    ("x*1", lambda x: (x * 1.0).neg(), (2, 3), ["mul", "neg"]),
    ("1*x", lambda x: (1.0 * x).neg(), (2, 3), ["mul", "neg"]),
    ("x-0.0", lambda x: (x - 0.0).neg(), (2, 3), ["sub", "neg"]),
    ("x/1", lambda x: (x / 1.0).neg(), (2, 3), ["div", "neg"]),
    ("x**1", lambda x: (x ** 1).neg(), (2, 3), ["pow", "neg"]),
    ("x+(-0.0)", lambda x: (x + (-0.0)).neg(), (2, 3), ["add", "neg"]),
    ("reshape to the same shape", lambda x: x.reshape(2, 3).neg(), (2, 3), ["reshape", "neg"]),
    ("reshape of reshape back", lambda x: x.reshape(6).reshape(2, 3).neg(), (2, 3), ["reshape", "reshape", "neg"]),
    ("permute of permute back", lambda x: x.permute(1, 0).permute(1, 0).neg(), (2, 3),
     ["permute", "permute", "neg"]),
    ("permute of permute back (3d)", lambda x: x.permute(1, 2, 0).permute(2, 0, 1).neg(), (2, 3, 1),
     ["permute", "permute", "neg"]),
])
def test_algebraic_simplification_removes_identities(name, fn, shape, before):
    g, out = _simplified(fn, shape)
    assert _ops(g) == before, name
    assert _ops(out) == ["neg"], name
    assert out.nodes[0].inputs == out.args, name


def test_algebraic_simplification_reshape_of_reshape_becomes_one_reshape():
    g, out = _simplified(lambda x: x.reshape(3, 2).reshape(6).neg(), (2, 3))
    assert str(out) == """\
graph <lambda>(x:f32[2,3]) {
  %1:f32[6] = reshape x shape=(6,)
  %2:f32[6] = neg %1
  return %2
}"""


def test_algebraic_simplification_permute_of_permute_composes():
    g, out = _simplified(lambda x: x.permute(1, 2, 0).permute(1, 2, 0).neg(), (2, 3, 1))
    assert [(n.op.name, n.params) for n in out.nodes] == [("permute", {"perm": (2, 0, 1)}), ("neg", {})]
    assert out.nodes[0].inputs == out.args


def test_algebraic_simplification_cast_to_the_same_dtype():
    # the cast `tracegrad.grad` inserts to make a non-differentiable input differentiable is an identity, and so
    # are those of the `detach()` of its results (a value outside the graph)
    g = tg.jit.trace(lambda x: tg.grad(lambda y: (y * y).sum())(x), tg.ones(3))
    casts = [n for n in g.nodes if n.op.name == "cast"]
    assert all(c.params == {"dtype": tg.float32} for c in casts) and casts[0].inputs == g.args
    out = algebraic_simplification(g)
    assert "cast" not in _ops(out)
    assert not {c.out for c in casts} & {v for n in out.nodes for v in n.inputs}
    x = np.array([1.0, -2.0, 0.5], np.float32)
    np.testing.assert_array_equal(_run(out, x)[0], 2 * x)
    np.testing.assert_array_equal(_run(out, x)[0], _run(g, x)[0])


def test_algebraic_simplification_cast_node_built_by_hand():
    g = tg.jit.trace(lambda x: x.neg(), tg.ones(3))
    x = g.args[0]
    cast = g.add_node(P.cast, [x], {"dtype": tg.float32}, x.aval)
    g.nodes.insert(0, g.nodes.pop())
    g.nodes[1].inputs = [cast]
    g.verify()
    assert _ops(g) == ["cast", "neg"]
    out = algebraic_simplification(g)
    assert _ops(out) == ["neg"] and out.nodes[0].inputs == [x]


@pytest.mark.parametrize("fn, shape, count, ops", [
    (lambda x: x.expand(4, 3).sum(0), (3,), 4, ["mul"]),
    (lambda x: x.expand(4, 2, 3).sum(0), (2, 3), 4, ["mul"]),
    (lambda x: x.expand(4, 3).sum(0, keepdim=True), (1, 3), 4, ["mul"]),
    (lambda x: x.expand(2, 4, 3).sum((0, 1)), (1, 3), 8, ["reshape", "mul"]),
])
def test_algebraic_simplification_integer_sum_over_expanded_axes_is_a_multiplication(fn, shape, count, ops):
    x = tg.arange(int(np.prod(shape))).reshape(shape) - 2
    g = tg.jit.trace(fn, x)
    out = algebraic_simplification(g)
    out.verify()
    assert _ops(g) == ["expand", "sum"]
    assert _ops(out) == ops
    (c,) = out.consts
    assert out.consts[c].item() == count and out.nodes[-1].inputs[1] is c
    np.testing.assert_array_equal(Program(out).outputs([x.numpy()])[0], fn(x).numpy())


@pytest.mark.parametrize("n", [4, 7, 9])
def test_algebraic_simplification_keeps_float_sums_over_expanded_axes(n):
    # n * x is not the sum of n copies of x in floating point (rounding from n >= 7; -0.0s sum to +0.0): compiled
    # results must equal eager's bit for bit, so the float sum stays
    def fn(x):
        return x.expand(n, 3).sum(0)
    g, out = _simplified(fn, (3,))
    assert _ops(out) == ["expand", "sum"]
    assert np.signbit(fn(tg.tensor([-0.0, 1.0, 2.0])).numpy()).tolist() == [False, False, False]  # eager


def test_algebraic_simplification_keeps_sums_over_axes_that_were_not_expanded():
    g, out = _simplified(lambda x: x.expand(4, 3).sum(1), (3,))
    assert _ops(out) == ["expand", "sum"]


@pytest.mark.parametrize("fn", [lambda x: (x + 0.0).neg(), lambda x: (0.0 + x).neg()], ids=["x+0.0", "0.0+x"])
def test_algebraic_simplification_does_not_drop_adding_positive_zero(fn):
    # -0.0 + 0.0 is +0.0: x + 0.0 is not x
    g, out = _simplified(fn, (6,))
    assert _ops(out) == ["add", "neg"]
    assert str(out) == str(g)
    x = np.array([-0.0, 0.0], np.float32)
    got = _run(out, x)[0]
    assert list(np.signbit(got)) == [True, True]  # -(+0.0), -(+0.0)
    assert list(np.signbit(-x)) == [False, True]  # what dropping the add would give


def test_integer_zero_is_simplified_for_integer_tensors():
    g = tg.jit.trace(lambda x: (x + 0).neg(), tg.ones(3, dtype=tg.int64))
    out = algebraic_simplification(g)
    assert _ops(out) == ["neg"]


# ---------------------------------------------------------------------------------------------- passes are pure
PASSES = [dead_code_elimination, common_subexpression_elimination, constant_folding, algebraic_simplification,
          run_pipeline]


def _busy_graph():
    """A graph on which every pass has something to do (and a guard, a write-back, a backward)."""
    w = tg.ones(3, requires_grad=True)

    def busy(x):
        x.exp()
        y = (x * 1.0).reshape(3, 1).reshape(3) + x.expand(2, 3).sum(0) * (tg.tensor(2.0) * 3.0)
        if y.sum() > 0:
            y = y * 2.0
        loss = (w * y).sum() + (w * y).sum()
        loss.backward()
        with tg.no_grad():
            w.sub_(w.grad)
        w.grad = None
        return loss
    return tg.jit.trace(busy, tg.ones(3))


@pytest.mark.parametrize("p", PASSES, ids=lambda p: p.__name__)
def test_passes_return_a_new_graph_and_leave_their_input_unchanged(p):
    g = _busy_graph()
    before = _snapshot(g)
    out = p(g)
    assert out is not g
    after = _snapshot(g)
    for a, b in zip(before, after):
        assert a == b
    assert len(out.nodes) < len(g.nodes)


def test_input_graph_still_verifies_after_a_pass():
    # BUG: Graph.copy() builds new Nodes on the shared Values, and Node.__init__ sets `out.producer = self`:
    # every pass re-points the input graph's values at the copy's nodes, so the input no longer verifies.
    broken = []
    for p in PASSES:
        g = _busy_graph()
        g.verify()
        p(g)
        if not all(n.out.producer is n for n in g.nodes):
            broken.append(p.__name__)
    assert broken == []
    g.verify()


# ---------------------------------------------------------------------------------------------- verify
def _five_nodes():
    return tg.jit.trace(lambda x: ((x.exp() + 1.0) * 2.0).neg().abs().sum(), tg.ones(3))


def _strip_locations(text):
    return re.sub(r"  # \S+:\d+$", "", text, flags=re.M)


def test_verify_accepts_traced_and_optimized_graphs():
    g = _five_nodes()
    assert g.verify() is g
    run_pipeline(g).verify()


def test_verify_rejects_a_node_reading_a_value_defined_later():
    g = _five_nodes()
    g.nodes[2], g.nodes[3] = g.nodes[3], g.nodes[2]
    with pytest.raises(GraphError) as e:
        g.verify()
    assert _strip_locations(str(e.value)) == """\
node %3 (neg) reads %2 before it is defined
      0  %0:f32[3] = exp x
      1  %1:f32[3] = add %0, c0
>>    2  %3:f32[3] = neg %2
      3  %2:f32[3] = mul %1, c1
      4  %4:f32[3] = abs %3
      5  %5:f32[] = sum %4 axes=(0,) keepdim=False"""
    assert f"{THIS_FILE}:" in str(e.value)  # the neighbourhood lists where each node was traced


def test_verify_rejects_a_node_whose_type_disagrees_with_its_shape_rule():
    g = _five_nodes()
    g.nodes[4].out.shape = (4,)
    with pytest.raises(GraphError) as e:
        g.verify()
    lines = _strip_locations(str(e.value)).splitlines()
    assert lines[0] == "node %4 (abs) is typed f32[4] but its shape rule gives [3] float32"
    assert lines[1:] == [
        "      1  %1:f32[3] = add %0, c0",
        "      2  %2:f32[3] = mul %1, c1",
        "      3  %3:f32[3] = neg %2",
        ">>    4  %4:f32[4] = abs %3",
        "      5  %5:f32[] = sum %4 axes=(0,) keepdim=False",
    ]


def test_verify_rejects_a_shape_rule_that_refuses_the_inputs():
    g = tg.jit.trace(lambda a, b: a * b, tg.ones(2, 3), tg.ones(3))
    g.args[1].shape = (4,)
    with pytest.raises(GraphError, match=r"shape rule of mul rejects the node's inputs(.|\n)*>>    0  %0"):
        g.verify()


def test_verify_rejects_undefined_outputs_and_type_changing_writes():
    g = _five_nodes()
    g.outputs = [g.nodes[2].out]
    g.nodes = g.nodes[:2]
    with pytest.raises(GraphError, match="output %2 is not defined by the graph"):
        g.verify()
    sgd_step, _ = _sgd_step_fn()
    g = tg.jit.trace(sgd_step, tg.ones(3))
    target, _ = g.writes[0]
    g.writes = [(target, g.nodes[1].out)]
    with pytest.raises(GraphError, match=r"write s0 <- %1 changes type f32\[3\] -> f32\[\]"):
        g.verify()


# ---------------------------------------------------------------------------------------------- networkx and dot
def test_to_networkx_has_a_node_per_value_with_attributes():
    sgd_step, _ = _sgd_step_fn()
    g = tg.jit.trace(sgd_step, tg.ones(3))
    nxg = g.to_networkx()
    assert isinstance(nxg, nx.DiGraph)
    values = g.args + g.state + list(g.consts) + [n.out for n in g.nodes]
    assert sorted(nxg.nodes) == sorted(v.name for v in values)
    assert nxg.nodes["x"] == {"op": "input", "kind": "input", "shape": (3,), "dtype": "float32", "phase": "input",
                              "group": None}
    assert nxg.nodes["s0"]["op"] == "state" and nxg.nodes["s0"]["label"] == "captured [3]"
    assert nxg.nodes["c4"]["kind"] == "const" and nxg.nodes["c4"]["shape"] == ()
    for node in g.nodes:
        attrs = nxg.nodes[node.out.name]
        assert (attrs["op"], attrs["kind"], attrs["shape"], attrs["dtype"], attrs["phase"]) == (
            node.op.name, node.op.kind.value, node.out.shape, node.out.dtype.name, node.phase)
    assert nxg.nodes["%1"]["kind"] == "reduction" and nxg.nodes["%11"]["kind"] == "movement"
    assert nxg.nodes["%4"]["phase"] == "backward" and nxg.nodes["%14"]["phase"] == "update"


def test_to_networkx_edges_follow_the_node_inputs():
    g = tg.jit.trace(grad_of, tg.ones(3, requires_grad=True))
    nxg = g.to_networkx()
    assert set(nxg.edges) == {(v.name, n.out.name) for n in g.nodes for v in n.inputs}
    assert nx.is_directed_acyclic_graph(nxg)
    # DiGraph: an op reading the same value twice (mul x, x) has one edge from it
    assert nxg.in_degree("%0") == 1 and list(nxg.predecessors("%0")) == ["x"]
    assert nxg.in_degree("%6") == 2 and set(nxg.predecessors("%6")) == {"%4", "%5"}
    assert all(nxg.in_degree(v.name) == 0 for v in g.inputs)
    assert {n for n in nxg.nodes if nxg.out_degree(n) == 0} == {"%1", "%6"}
    assert nx.ancestors(nxg, "%6") == {"x", "c0", "%2", "%3", "%4", "%5"}
    # the graph's node order is a topological order of the networkx graph
    position = {n.out.name: i for i, n in enumerate(g.nodes)}
    for a, b in nxg.edges:
        assert a not in position or position[a] < position[b]
    topo = [n for n in nx.topological_sort(nxg) if n in position]
    assert sorted(topo, key=position.get) == [n.out.name for n in g.nodes]


def test_to_networkx_of_an_optimized_graph():
    g = run_pipeline(tg.jit.trace(chain, tg.ones(3)))
    nxg = g.to_networkx()
    assert sorted(nxg.nodes) == ["%2", "%3", "%6", "%7", "c2", "x"]
    assert sorted(nxg.edges) == [("%2", "%3"), ("%3", "%6"), ("%6", "%7"), ("c2", "%3"), ("x", "%2")]


def test_to_dot_is_graphviz_text_with_every_value():
    g = tg.jit.trace(grad_of, tg.ones(3, requires_grad=True))
    dot = g.to_dot()
    lines = dot.splitlines()
    assert lines[0] == 'digraph "grad_of" {' and lines[-1] == "}"
    assert dot.count("{") == dot.count("}")
    for v in g.inputs + [n.out for n in g.nodes]:
        assert re.search(rf'^  "{re.escape(v.name)}" \[label="{re.escape(v.name)} = \w+\\n\w+\[[\dx]*\w*\]", '
                         rf'fillcolor="#[0-9a-f]{{6}}"\];$', dot, flags=re.M), v.name
    assert '  "%4" [label="%4 = mul\\nfloat32[3]", fillcolor="#8dd3c7"];' in lines
    assert '  "%1" [label="%1 = sum\\nfloat32[scalar]", fillcolor="#fdb462"];' in lines
    edges = [ln for ln in lines if " -> " in ln]
    assert len(edges) == g.to_networkx().number_of_edges()
    for n in g.nodes:
        for v in n.inputs:
            assert f'  "{v.name}" -> "{n.out.name}";' in edges


def test_names_are_unique_so_the_views_keep_every_value():
    # BUG: Graph.add_const names a constant c{len(consts)}; after dead code elimination has dropped constants
    # that name can already be taken, and two different constants print as c3 (networkx then merges them).
    def f(x):
        k = -tg.tensor(2.0)
        return (x * 3.0 + 4.0) * k + x.expand(5, 3).sum(0)
    g = run_pipeline(tg.jit.trace(f, tg.ones(3)))
    names = [v.name for v in g.inputs + [n.out for n in g.nodes]]
    assert len(names) == len(set(names)), str(g)
    assert g.to_networkx().number_of_nodes() == len(names)


def test_argument_names_do_not_collide_with_constant_names():
    # BUG: an argument called c0 (or s0) prints like the constant c0: `mul c0, c0` is ambiguous, and
    # to_networkx merges the two values into one node.
    def f(c0):
        return c0 * 2.0
    g = tg.jit.trace(f, tg.ones(3))
    names = [v.name for v in g.inputs + [n.out for n in g.nodes]]
    assert len(names) == len(set(names)), str(g)


# ---------------------------------------------------------------------------------------------- source locations
def located(x):
    y = x.exp()  # LOC-EXP
    z = y * 2.0  # LOC-MUL
    if z.sum() > 0:  # LOC-GUARD
        z = z.neg()  # LOC-NEG
    return z


def test_format_with_locations_names_this_file_and_line():
    g = tg.jit.trace(located, tg.ones(3))
    text = g.format(locations=True)
    lines = text.splitlines()

    def loc_of(prefix):
        (line,) = [ln for ln in lines if ln.lstrip().startswith(prefix)]
        path, _, number = line.rpartition("  # ")[2].rpartition(":")
        return os.path.basename(path), int(number)
    assert loc_of("%0:f32[3] = exp x") == (THIS_FILE, _line("LOC-EXP"))
    assert loc_of("%1:f32[3] = mul %0, c0") == (THIS_FILE, _line("LOC-MUL"))
    assert loc_of("%2:f32[] = sum %1") == (THIS_FILE, _line("LOC-GUARD"))
    assert loc_of("guard bool(%3) == True") == (THIS_FILE, _line("LOC-GUARD"))
    assert loc_of("%4:f32[3] = neg %1") == (THIS_FILE, _line("LOC-NEG"))
    # without locations the same printout minus the comments
    assert _strip_locations(text) == g.format() == str(g)
    assert "#" not in str(g)


def test_locations_of_backward_nodes_are_the_backward_call():
    sgd_step, _ = _sgd_step_fn()
    g = tg.jit.trace(sgd_step, tg.ones(3))
    assert {n.loc.rpartition(":")[2] for n in g.phase_nodes("backward")} == {str(_line("LOC-BACKWARD"))}
    assert {os.path.basename(n.loc.rpartition(":")[0]) for n in g.nodes} == {THIS_FILE}


def test_algebraic_simplification_picks_the_branch_of_a_constant_condition():
    def f(x):
        return tg.where(tg.tensor(False), x * 2.0, x + 1.0)
    g = algebraic_simplification(tg.jit.trace(f, tg.ones(3)))
    assert _ops(g) == ["add"]


# ---------------------------------------------------------------------------------------------- lowering composites
LINEAR_MSE_TRACED = """graph <lambda>(x:f32[4,3], y:f32[4,2]) {
  state s0:f32[2,3]  # Linear.weight
  state s1:f32[2]  # Linear.bias
  %0:f32[3,2] = permute s0 perm=(1, 0)
  %1:f32[4,2] = addmm s1, x, %0
  %2:f32[] = mse_loss %1, y reduction='mean'
  return %2
}"""
LINEAR_MSE_LOWERED = """graph <lambda>(x:f32[4,3], y:f32[4,2]) {
  state s0:f32[2,3]  # Linear.weight
  state s1:f32[2]  # Linear.bias
  c0:f32[] = const 8.0
  %0:f32[3,2] = permute s0 perm=(1, 0)
  %3:f32[4,2] = matmul x, %0
  %4:f32[4,2] = add %3, s1
  %5:f32[4,2] = sub %4, y
  %6:f32[4,2] = mul %5, %5
  %7:f32[] = sum %6 axes=(0, 1) keepdim=False
  %8:f32[] = div %7, c0
  return %8
}"""


def test_lower_composites_golden_printout():
    """A layer and a loss are one node each in the IR (and for autograd); the numba backend lowers them to the
    primitives they are made of before fusion."""
    tg.manual_seed(0)
    lin = tg.nn.Linear(3, 2)
    g = tg.jit.trace(lambda x, y: tg.nn.functional.mse_loss(lin(x), y), tg.ones(4, 3), tg.ones(4, 2))
    assert str(g) == LINEAR_MSE_TRACED
    before = _snapshot(g)
    lowered = lower_composites(g)
    assert str(lowered) == LINEAR_MSE_LOWERED
    assert _snapshot(g) == before
    lowered.verify()
    g.verify()


def _composites(x, y, t, cw, cb, lw, lb):
    F = tg.nn.functional
    h = F.linear(F.max_pool2d(F.conv2d(x, cw, cb).relu(), 2).flatten(1), lw, lb)
    w = tg.tensor([1.0, 0.5, 2.0, 1.0])
    return (F.cross_entropy(h, t) + F.nll_loss(F.log_softmax(h, 1), t, weight=w, reduction="sum")
            + F.mse_loss(h, y), F.nll_loss(F.log_softmax(h, 1), t, reduction="none"))


def test_lower_composites_keeps_the_values_exactly():
    """A decomposition is its op's numpy forward too: the lowered graph computes the same values bit for bit."""
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in ((2, 2, 6, 6), (2, 4))] + [np.array([3, 1])] + \
        [rng.standard_normal(s).astype(np.float32) for s in ((3, 2, 3, 3), (3,), (4, 12), (4,))]
    g = run_pipeline(tg.jit.trace(_composites, *[tg.tensor(a) for a in arrays]), print_each=False)
    lowered = lower_composites(g)
    composite = {"addmm", "conv2d_bias", "mse_loss", "nll_loss", "log_softmax"}
    assert composite <= set(_ops(g)) and not composite & set(_ops(lowered))
    lowered.verify()
    want = Program(g).outputs(arrays)
    got = Program(lowered).outputs(arrays)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_the_tracer_is_jit_trace_and_trace_is_the_matrix_trace():
    """As in PyTorch: `tracegrad.trace` is the sum of a matrix's diagonal; the graph tracer is `tracegrad.jit.trace`."""
    g = tg.jit.trace(lambda x: x.trace() * 2.0, tg.ones(3, 3))
    assert isinstance(g, tg.Graph) and "getitem" in _ops(g)
    assert tg.trace(tg.eye(3) * 2.0).item() == 6.0
