"""compile's options: backend="eager" runs the function as a dynamic graph; print_passes (or the environment
variable TRACEGRAD_PRINT_PASSES=1) prints the graph after each simplification pass."""
import numpy as np

import tracegrad as tg


def test_backend_eager_runs_the_function_as_a_dynamic_graph():
    calls = []

    def f(x):
        calls.append(1)  # a Python side effect: with backend="eager" it happens at every call
        return (x * 2.0).sum()

    cf = tg.compile(f, backend="eager")
    x = tg.ones(3, requires_grad=True)
    out = cf(x)
    assert out.grad_fn.name() == "SumBackward0"  # eager autograd's own nodes, not a compiled region
    out.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0, 2.0])
    cf(x)
    assert calls == [1, 1] and cf.retraces == [] and cf.graphs() == []


def test_print_passes_prints_the_graph_after_each_pass(capsys):
    cf = tg.compile(lambda x: (x * 1.0).exp(), print_passes=True)
    cf(tg.ones(2))
    out = capsys.readouterr().out
    headers = [line for line in out.splitlines() if line.startswith("--- ")]
    assert headers == ["--- traced (2 nodes)", "--- after constant_folding (2 nodes)",
                       "--- after algebraic_simplification (1 nodes)",
                       "--- after merge_slice_gradients (1 nodes)",
                       "--- after common_subexpression_elimination (1 nodes)",
                       "--- after dead_code_elimination (1 nodes)"]
    assert "  %1:f32[2] = exp x" in out


def test_the_environment_variable_prints_the_passes_too(monkeypatch, capsys):
    monkeypatch.setenv("TRACEGRAD_PRINT_PASSES", "1")
    tg.compile(lambda x: x.exp())(tg.ones(2))
    assert "--- after dead_code_elimination (1 nodes)" in capsys.readouterr().out
    monkeypatch.delenv("TRACEGRAD_PRINT_PASSES")
    tg.compile(lambda x: x.exp())(tg.ones(2))
    assert capsys.readouterr().out == ""


def test_fastmath_is_off_unless_asked_for():
    x = tg.rand(2, 3)
    for fastmath in (False, True):
        f = tg.compile(lambda t: (t * 2.0 + 1.0).sum(1), backend="numba", fastmath=fastmath)
        f(x)
        np.testing.assert_allclose(f(x).numpy(), (x * 2.0 + 1.0).sum(1).numpy(), rtol=1e-6)
        (variant,) = next(iter(f._cache.values()))
        assert f"fastmath={fastmath}" in variant.program.code.source
        assert f"fastmath={not fastmath}" not in variant.program.code.source
