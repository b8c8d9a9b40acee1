"""Data-dependent Python control flow under `tracegrad.compile`: guards, retraces, variants and their limits.

Specified here:

* branches (``if x.sum() > 0``) and data-dependent while loops (the doubling loop) compiled equal eager
  for inputs taking different paths, gradients included (backward inside the compiled function, and a
  compiled region differentiated by an eager backward);
* each trace's reason is readable (the guard's kind, file and line; signature changes as
  ``input x: shape (64, 10) -> (32, 10)``), and cached variants are reused when an earlier path repeats;
* past `max_variants` a RuntimeWarning lists the reasons and the function runs eagerly, still correct;
* ``strict=True`` raises `TraceError` naming the user's file:line, what was asked and a fix;
* nothing is applied twice: a step whose guard fails after an in-place update of captured state leaves
  the state as one eager step would;
* ``float()``, ``int()``, ``item()``, ``tolist()``, ``numpy()`` specialize behind guards;
* `explain()` reports the IR, guards, retraces, node counts and the side-effect note, without running the step;
* Python side effects (print, list appends) happen while tracing only.
"""
import functools
import os
import warnings

import numpy as np
import pytest
from source_lines import marker_line

import tracegrad as tg
from tracegrad import nn, optim

THIS_FILE = os.path.basename(__file__)
_line = functools.partial(marker_line, __file__)



def branch(x):
    if x.sum() > 0:  # BRANCH
        return x * 2.0
    return x.exp()


def doubling(x):
    y = x * 2
    while y.norm() < 1000:  # LOOP
        y = y * 2
    return y


def _iterations(v: float) -> int:
    """How many times the doubling loop's body runs for tg.full((3,), v)."""
    y, n = np.full(3, 2 * v, np.float32), 0
    while np.linalg.norm(y) < 1000:
        y, n = y * 2, n + 1
    return n


def _same(a, b):
    np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())


# ---------------------------------------------------------------------------------------------- compiled == eager
def test_branch_equals_eager_on_both_paths_and_reuses_them():
    cf = tg.compile(branch)
    inputs = [tg.tensor([1.0, 2.0]), tg.tensor([-1.0, -2.0]), tg.tensor([3.0, -1.0]), tg.tensor([-3.0, 1.0])]
    for x in inputs:
        _same(cf(x), branch(x))
    assert len(cf.retraces) == 2
    assert len(cf.graphs()) == 2
    for x in inputs:
        _same(cf(x), branch(x))
    assert len(cf.retraces) == 2


def test_doubling_loop_equals_eager_for_different_numbers_of_iterations():
    values = [1.0, 100.0, 0.01, 600.0]
    assert [_iterations(v) for v in values] == [9, 2, 15, 0]
    cf = tg.compile(doubling)
    for v in values:
        x = tg.full((3,), v)
        _same(cf(x), doubling(x))
    assert len(cf.retraces) == 4
    # each variant unrolled its own number of iterations: one guard per loop test
    assert sorted(len(g.guards) for g in cf.graphs()) == sorted(n + 1 for n in [9, 2, 15, 0])
    # an earlier path repeats (also with other values that take the same path): no new trace
    for v in [1.0, 100.0, 0.01, 600.0, 1.1, 120.0, 1e6]:
        x = tg.full((3,), v)
        _same(cf(x), doubling(x))
    assert len(cf.retraces) == 4


def test_doubling_loop_gradients_through_a_compiled_region_and_an_eager_backward():
    w = tg.tensor([1.0, -2.0, 0.5], requires_grad=True)

    def scaled(x):
        y = w * x * 2
        while y.norm() < 1000:
            y = y * 2
        return y
    cf = tg.compile(scaled)
    weights = tg.tensor([0.5, 1.0, -1.0])
    for v in [1.0, 100.0, 1.0, 0.01, 100.0]:
        results = []
        for fn in (scaled, cf):
            x = tg.full((3,), v, requires_grad=True)
            w.grad = None
            y = fn(x)
            (y * y * weights).sum().backward()
            results.append((y.detach(), x.grad, w.grad))
        eager, compiled = results
        for a, b in zip(eager, compiled):
            np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-6)
    assert y.grad_fn.name() == "CompiledFunctionBackward"
    assert len(cf.retraces) == 3


def test_branch_gradients_through_a_compiled_region_and_an_eager_backward():
    cf = tg.compile(branch)
    for data in ([1.0, 2.0], [-1.0, -2.0], [0.5, 0.25], [-0.5, 0.25]):
        grads = []
        for fn in (branch, cf):
            x = tg.tensor(data, requires_grad=True)
            (fn(x) ** 2).sum().backward()
            grads.append(x.grad)
        np.testing.assert_allclose(grads[1].numpy(), grads[0].numpy(), rtol=1e-6)
    assert len(cf.retraces) == 2


def test_doubling_loop_with_backward_inside_the_compiled_function():
    def make():
        w = tg.tensor([1.0, -2.0, 0.5], requires_grad=True)

        def step(x):
            y = w * x * 2
            while y.norm() < 1000:  # GRAD-LOOP
                y = y * 2
            loss = (y * y).sum() / 1000.0
            loss.backward()  # .grad accumulates over the calls, as in eager mode
            return loss
        return step, w
    eager, w_eager = make()
    step, w = make()
    cf = tg.compile(step)
    for v in [1.0, 100.0, 1.0, 0.01, 100.0, 1.0]:
        x = tg.full((3,), v)
        np.testing.assert_allclose(cf(x).detach().numpy(), eager(x).detach().numpy(), rtol=1e-6)
        np.testing.assert_allclose(w.grad.numpy(), w_eager.grad.numpy(), rtol=1e-6)
    assert w.tolist() == w_eager.tolist()
    # w.grad is None only on the first call; then each new path traces once, and repeated paths are reused
    grad_changed = "captured [3].grad: None -> a tensor"
    loop_guard = f"guard bool() at {THIS_FILE}:{_line('GRAD-LOOP')}: traced with False, got True"
    assert cf.retraces == ["first call", grad_changed, loop_guard, loop_guard]


def test_backward_inside_the_compiled_function_sets_the_grad_of_this_calls_argument():
    # the .grad write-back (and the guard on .grad being None) follows the argument's position, not the tensor
    # that was passed when the function was traced
    def f(x):
        loss = (x * x).sum()
        loss.backward()
        return loss
    cf = tg.compile(f)
    x1 = tg.tensor([1.0, 2.0], requires_grad=True)
    cf(x1)
    assert x1.grad.tolist() == [2.0, 4.0]
    x1.grad = None
    x2 = tg.tensor([3.0, 4.0], requires_grad=True)
    cf(x2)
    assert x1.grad is None
    assert x2.grad is not None and x2.grad.tolist() == [6.0, 8.0]


# ---------------------------------------------------------------------------------------------- retrace reasons
def test_a_failed_guard_reason_names_the_guard_kind_file_and_line():
    cf = tg.compile(branch)
    cf(tg.ones(3))
    cf(-tg.ones(3))
    assert cf.retraces == ["first call", f"guard bool() at {THIS_FILE}:{_line('BRANCH')}: traced with True, got False"]


def test_a_failed_loop_guard_reason_names_the_newest_variant_tried():
    cf = tg.compile(doubling)
    cf(tg.full((3,), 100.0))  # 2 iterations
    cf(tg.full((3,), 600.0))  # 0 iterations: the first loop test fails
    cf(tg.full((3,), 200.0))  # 1 iteration: fails both variants
    where = f"at {THIS_FILE}:{_line('LOOP')}"
    assert cf.retraces[1] == f"guard bool() {where}: traced with True, got False"
    assert cf.retraces[2] == f"guard bool() {where}: traced with False, got True"


def test_signature_change_reasons():
    cf = tg.compile(lambda x, n=1: x * n)
    cf(tg.ones(64, 10), 1)
    cf(tg.ones(32, 10), 1)
    cf(tg.ones(32, 10, dtype=tg.float64), 1)
    cf(tg.ones(32, 10, dtype=tg.float64, requires_grad=True), 1)
    cf(tg.ones(32, 10, dtype=tg.float64, requires_grad=True), 3)
    with tg.no_grad():
        cf(tg.ones(32, 10, dtype=tg.float64, requires_grad=True), 3)
    assert cf.retraces == [
        "first call",
        "input x: shape (64, 10) -> (32, 10)",
        "input x: dtype float32 -> float64",
        "input x: requires_grad False -> True",
        "input n: static value 1 -> 3",
        "grad mode: enabled -> disabled",
    ]
    cf(tg.ones(64, 10), 1)  # the first signature again: cached
    assert len(cf.retraces) == 6
    with tg.no_grad():
        cf(tg.ones(32, 10, dtype=tg.float64, requires_grad=True))  # the default left unbound: another structure
    assert cf.retraces[-1] == "the arguments' structure changed"


def test_guard_lines_in_the_graph_name_the_line():
    cf = tg.compile(branch)
    cf(tg.ones(3))
    (g,) = cf.graphs()
    (guard_line,) = [ln for ln in g.format(locations=True).splitlines() if "guard" in ln]
    assert guard_line.startswith("  guard bool(%1) == True  # ")
    assert guard_line.endswith(f"{THIS_FILE}:{_line('BRANCH')}")


# ---------------------------------------------------------------------------------------------- variant limit
def test_past_the_variant_limit_new_values_run_eagerly_and_traced_ones_stay_compiled():
    calls = []

    def scale(x):
        calls.append(1)
        return x * float(x.sum())  # FLOAT
    cf = tg.compile(scale, max_variants=2)
    cf(tg.full((2,), 1.0))
    cf(tg.full((2,), 2.0))
    assert len(calls) == 2
    where = f"guard item() at {THIS_FILE}:{_line('FLOAT')}"
    with pytest.warns(RuntimeWarning) as record:
        out = cf(tg.full((2,), 3.0))
    assert out.tolist() == [18.0, 18.0]
    (w,) = record
    msg = str(w.message)
    assert msg.startswith(f"scale: 2 variants traced (max_variants) and this call needs another ({where}: traced "
                          f"with 4.0, got 6.0). Calls that match a traced variant keep running compiled; new ones "
                          f"run eagerly. Most retraces were caused by: {where} (2 of 2); fix: Python decides on a "
                          f"tensor's value there"), msg
    assert w.filename == __file__  # the warning points at the caller
    # a new value: eager (the body runs), correct, no more traces or warnings; a traced value: compiled (no body)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for v in [4.0, 5.0]:
            assert cf(tg.full((2,), v)).tolist() == [2 * v * v] * 2
        assert len(calls) == 5 and cf.eager_calls == 3
        for v in [1.0, 2.0, 1.0]:
            assert cf(tg.full((2,), v)).tolist() == [2 * v * v] * 2
    assert len(calls) == 5
    assert len(cf.retraces) == 2


def test_the_variant_limit_with_strict_raises():
    cf = tg.compile(lambda x: x + 1.0, strict=True, max_variants=1)
    cf(tg.ones(2))
    with pytest.raises(tg.TraceError, match=r"(?s)1 variants traced \(max_variants\).*input x: shape \(2,\) -> "
                                            r"\(3,\).*raise max_variants"):
        cf(tg.ones(3))


def test_a_retrace_reason_is_one_line_against_the_nearest_variant():
    cf = tg.compile(lambda x: x * float(x.sum()))
    for v in range(1, 7):
        cf(tg.full((2,), float(v)))
    assert all(";" not in r for r in cf.retraces)
    assert cf.retraces[-1].endswith("traced with 10.0, got 12.0")  # against the newest variant only
    cf(tg.full((3,), 1.0))  # a new signature: the difference from the signature that differs least
    assert cf.retraces[-1] == "input x: shape (2,) -> (3,)"


# ---------------------------------------------------------------------------------------------- strict
def _asks(what):
    def f(x):
        s = x.sum()
        if what == "bool":
            k = 2.0 if s > 0 else 3.0  # STRICT-bool
        elif what == "float":
            k = float(s)  # STRICT-float
        elif what == "int":
            k = int(s)  # STRICT-int
        elif what == "item":
            k = s.item()  # STRICT-item
        elif what == "tolist":
            k = x.tolist()[0]  # STRICT-tolist
        else:
            k = float(x.numpy()[0])  # STRICT-numpy
        return x * k
    return f


@pytest.mark.parametrize("what, asked", [("bool", "bool"), ("float", "item"), ("int", "item"), ("numpy", "numpy")])
def test_strict_raises_naming_the_line_what_was_asked_and_a_fix(what, asked):
    cf = tg.compile(_asks(what), strict=True)
    with pytest.raises(tg.TraceError) as e:
        cf(tg.tensor([1.0, 2.0]))
    msg = str(e.value)
    path, line = msg.split(": ")[0].rsplit(":", 1)
    assert (os.path.basename(path), int(line)) == (THIS_FILE, _line(f"STRICT-{what}"))
    assert f"{asked}() of a traced value" in msg
    assert "strict=True forbids" in msg
    assert "Fix: express the choice with tensor ops (tracegrad.where(cond, a, b))" in msg
    assert cf.retraces == [] and cf.graphs() == []  # a failed trace leaves no variant behind


@pytest.mark.parametrize("what", ["item", "tolist"])
def test_strict_allows_item_and_tolist_numbers_that_python_decides_nothing_with(what):
    cf = tg.compile(_asks(what), strict=True)
    for data in ([1.0, 2.0], [2.0, 5.0]):
        x = tg.tensor(data)
        _same(cf(x), _asks(what)(x))
    assert cf.retraces == ["first call"]


def test_strict_raises_when_python_decides_with_an_item_number():
    def f(x):
        if x.sum().item() > 0:  # STRICT-DECIDE
            return x
        return -x
    with pytest.raises(tg.TraceError, match=rf"{THIS_FILE}:{_line('STRICT-DECIDE')}: sum\(\.\.\.\)\.item\(\) > 0 "
                                            r"decides on a traced value .*strict=True forbids"):
        tg.compile(f, strict=True)(tg.ones(2))


def test_strict_allows_the_same_function_without_data_dependence():
    cf = tg.compile(lambda x: tg.where(x.sum() > 0, x * 2.0, x * 3.0), strict=True)
    assert cf(tg.ones(2)).tolist() == [2.0, 2.0]
    assert cf(-tg.ones(2)).tolist() == [-3.0, -3.0]
    assert cf.retraces == ["first call"]


# ---------------------------------------------------------------------------------------------- applied once
def test_a_failed_guard_after_an_in_place_update_of_captured_state_applies_it_once():
    def make():
        w = tg.zeros(3)

        def step(x):
            w.add_(x)
            if w.sum() > 0:
                return w * 2.0
            return w * 3.0
        return step, w
    eager, w_eager = make()
    step, w = make()
    cf = tg.compile(step)
    for v in [1.0, -2.0, 0.5, 3.0, -4.0, 0.25]:  # w: 1, -1, -0.5, 2.5, -1.5, -1.25
        x = tg.full((3,), v)
        _same(cf(x), eager(x))
        _same(w, w_eager)
    # each path traced once; calls 3, 5 and 6 failed the first variant's guard (after computing the update) and
    # ran the second variant: the update was applied once
    assert len(cf.retraces) == 2


def test_a_failed_guard_after_an_in_place_update_of_an_argument_applies_it_once():
    def step(x):
        x.mul_(2.0)
        if x.sum() > 10:
            x.sub_(1.0)
        return x.sum()
    cf = tg.compile(step)
    for data in ([1.0, 1.0], [5.0, 6.0], [1.0, 2.0], [10.0, 1.0]):
        a, b = tg.tensor(data), tg.tensor(data)
        _same(cf(a), step(b))
        _same(a, b)
    assert len(cf.retraces) == 2


def test_a_training_step_with_a_failing_guard_after_the_optimizer_step_equals_eager():
    def make():
        tg.manual_seed(0)
        model = nn.Linear(3, 1)
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

        def step(x, y):
            opt.zero_grad()
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()
            opt.step()
            if model.weight.sum() > 0:  # decided after the update
                return loss * 1.0
            return -loss
        return step, model, opt
    eager, m_eager, o_eager = make()
    step, model, opt = make()
    cf = tg.compile(step)
    x = tg.randn(4, 3)
    targets = [5.0, 5.0, -20.0, -20.0, 5.0, 5.0, 5.0, 30.0, 30.0]
    for t in targets:
        y = tg.full((4, 1), t)
        _same(cf(x, y), eager(x, y))
        for p, q in zip(model.parameters(), m_eager.parameters()):
            _same(p, q)
            _same(p.grad, q.grad)
        for p, q in zip(model.parameters(), m_eager.parameters()):
            _same(opt.state[p]["momentum_buffer"], o_eager.state[q]["momentum_buffer"])
    assert len(cf.retraces) == 3  # first call, the new momentum buffers, the guard turning False


# ---------------------------------------------------------------------------------------------- Python values
@pytest.mark.parametrize("what", ["float", "int", "numpy"])
def test_python_values_of_traced_tensors_specialize_behind_guards(what):
    f = _asks(what)
    cf = tg.compile(f)
    seen = [[1.0, 2.0], [1.0, 2.0], [2.0, 2.0], [1.0, 2.0], [2.0, 2.0]]
    for data in seen:
        x = tg.tensor(data)
        _same(cf(x), f(x))
    assert len(cf.retraces) == 2  # changed values retrace, repeated values reuse
    (g, _) = cf.graphs()
    asked = {"float": "item", "int": "item"}.get(what, what)
    assert [gd.what for gd in g.guards] == [asked]
    assert f"guard {asked}() at {THIS_FILE}:{_line('STRICT-' + what)}" in cf.retraces[1]


def test_scalar_conversions_reuse_a_variant_for_an_equal_value_from_other_inputs():
    f = _asks("float")
    cf = tg.compile(f)
    for data in ([1.0, 2.0], [1.5, 1.5], [0.0, 3.0]):  # all sum to 3.0
        x = tg.tensor(data)
        _same(cf(x), f(x))
    assert cf.retraces == ["first call"]


@pytest.mark.parametrize("what", ["item", "tolist"])
def test_item_and_tolist_numbers_that_only_flow_into_tensors_are_graph_values(what):
    f = _asks(what)
    cf = tg.compile(f)
    for data in ([1.0, 2.0], [1.0, 2.0], [2.0, 2.0], [-1.0, 7.5]):
        x = tg.tensor(data)
        _same(cf(x), f(x))
    assert cf.retraces == ["first call"]
    (g,) = cf.graphs()
    assert g.guards == []


def test_tolist_of_a_large_tensor_guards_on_its_values():
    def g(x):
        return x * x.tolist()[0]  # BIG-TOLIST
    cg = tg.compile(g)
    for data in (np.arange(100.0), np.arange(100.0) + 1):
        x = tg.tensor(data)
        _same(cg(x), g(x))
    assert cg.retraces[1] == (f"guard tolist() at {THIS_FILE}:{_line('BIG-TOLIST')}: traced with <array of 100>, "
                              f"got <array of 100>")


def test_int_guard_is_on_the_exact_value():
    f = _asks("int")
    cf = tg.compile(f)
    for data in ([1.0, 2.0], [1.0, 2.25], [1.0, 2.0]):  # int() of 3.0 and 3.25 is 3: still a retrace, still right
        x = tg.tensor(data)
        _same(cf(x), f(x))
    assert len(cf.retraces) == 2


# ---------------------------------------------------------------------------------------------- explain
def _training_setup():
    tg.manual_seed(0)
    model = nn.Linear(3, 1)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def train_step(x, y):
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        if loss > 1.0:  # EXPLAIN-GUARD
            return loss
        return loss * 0.0
    return train_step, model, opt


def test_explain_reports_ir_guards_retraces_counts_and_the_side_effect_note():
    step, model, opt = _training_setup()
    cf = tg.compile(step)
    x, y = tg.randn(4, 3), tg.full((4, 1), 5.0)
    cf(x, y)
    cf(x, y)
    report = cf.explain(x, y)
    text = str(report)
    assert repr(report) == text
    lines = text.splitlines()
    assert lines[0].startswith("=== graph (") and "nodes after passes;" in lines[0]
    assert report.graph.format() in text
    assert "graph train_step(x:f32[4,3], y:f32[4,1]) {" in lines
    assert "  # backward (derived by the autodiff pass)" in lines and "  # after backward" in lines
    writes = [line for line in lines if line.startswith("  write ")]
    assert any(line.endswith("  # Linear.weight") for line in writes)
    assert any(line.endswith("  # SGD.state[0].momentum_buffer") for line in writes)
    assert "=== backward: derived inside the graph (the function calls backward)" in lines
    counts = report.graph.counts_by_kind()
    assert f"=== node counts by kind: {counts}" in lines
    assert sum(counts.values()) == len(report.graph.nodes)
    assert {"elementwise", "reduction", "movement", "opaque"} <= set(counts)
    assert "=== guards (1 on values, 10 on state)" in lines
    (guard_line,) = [ln for ln in lines if ln.startswith("  bool() == True at ")]
    assert guard_line.endswith(f"{THIS_FILE}:{_line('EXPLAIN-GUARD')}")
    assert "  Linear.weight: shape [1, 3], float32, requires_grad=True" in lines
    assert "  Linear.weight.grad is a tensor" in lines
    assert "  module Linear.training == True" in lines
    assert "  optimizer SGD: param groups and the entries read as Python values unchanged" in lines
    structure = "  optimizer structure: SGD.param_groups[0]['momentum'] != 0 is True (at "
    assert any(ln.startswith(structure) for ln in lines)
    assert "=== read from Python at every call (no guard): SGD.param_groups[0]['momentum'], " \
        "(1 - SGD.param_groups[0]['dampening']), -SGD.param_groups[0]['lr']" in lines
    assert "=== traces so far: 2" in lines
    assert "  1. first call" in lines
    assert any(ln.startswith("  2. the previous call created tensors that outlive it") for ln in lines)
    assert lines[-1].startswith("=== note: Python side effects (print, appending to lists, counters) happen while "
                                "tracing only")


def test_explain_of_a_compiled_region_lists_the_backward_graph_and_saved_tensors():
    text = str(tg.explain(branch, -tg.ones(3, requires_grad=True)))
    assert "guard bool(%1) == False" in text
    assert "=== backward of the compiled region (1 nodes)" in text
    assert "graph branch_backward(%2:f32[3], ct0:f32[3]) {" in text
    assert "  %3:f32[3] = mul ct0, %2" in text
    assert "=== saved for backward: 1 tensors, 12 bytes\n  %2:f32[3] (exp): 12 bytes" in text
    assert "=== traces so far: 0" in text


def test_explain_does_not_run_the_step():
    step, model, opt = _training_setup()
    eager_step, eager_model, _ = _training_setup()
    cf = tg.compile(step)
    x, y = tg.randn(4, 3), tg.full((4, 1), 5.0)
    before = [p.detach().numpy().copy() for p in model.parameters()]
    for _ in range(2):
        cf.explain(x, y)
        tg.explain(step, x, y)
    for p, b in zip(model.parameters(), before):
        np.testing.assert_array_equal(p.detach().numpy(), b)
        assert p.grad is None
    assert dict(opt.state) == {}
    assert cf.retraces == [] and cf.graphs() == []
    # and the step afterwards is one ordinary step
    _same(cf(x, y), eager_step(x, y))
    for p, q in zip(model.parameters(), eager_model.parameters()):
        _same(p, q)


# ---------------------------------------------------------------------------------------------- side effects
def test_python_side_effects_happen_only_while_tracing(capsys):
    log = []

    def f(x):
        log.append("called")
        print("tracing f")
        return x * 2.0
    cf = tg.compile(f)
    for _ in range(3):
        assert cf(tg.ones(2)).tolist() == [2.0, 2.0]
    assert log == ["called"]  # the first call traced (and ran) the Python; cached calls run the graph only
    assert capsys.readouterr().out == "tracing f\n"
    cf(tg.ones(3))  # a new signature traces again
    assert log == ["called", "called"]
    # uncompiled, every call runs the Python
    f(tg.ones(2))
    assert len(log) == 3
