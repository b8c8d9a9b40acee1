"""User-facing errors of the static-graph layer: each names what went wrong, and where the user's code did it."""
import functools
import os

import numpy as np
import pytest
from source_lines import marker_line

import tracegrad as tg
from tracegrad import nn

THIS_FILE = os.path.basename(__file__)
_line = functools.partial(marker_line, __file__)


def test_unknown_backend():
    with pytest.raises(ValueError, match="compile: unknown backend 'jit'; choose one of interpret, eager, numba"):
        tg.compile(lambda x: x, backend="jit")


def test_a_failing_node_in_a_cached_graph_names_the_node_and_the_users_line():
    f = tg.compile(lambda x, i: x[i] * 2.0)  # LINE-INDEX
    x = tg.arange(4.0)
    assert f(x, tg.tensor([1, 3])).tolist() == [2.0, 6.0]  # traced
    line = _line("LINE-INDEX")
    with pytest.raises(IndexError, match=rf"while executing %\d+:f32\[2\] = getitem x, i .*traced at .*"
                                         rf"{THIS_FILE}:{line}\): index 7 is out of bounds"):
        f(x, tg.tensor([1, 7]))  # the cached graph runs with an index out of range


def test_a_failed_call_changes_nothing():
    w = tg.zeros(3)

    def step(x, i):
        w.add_(1.0)  # updated before the failing op
        return x[i]
    f = tg.compile(step)
    f(tg.ones(3), tg.tensor([0]))
    assert w.tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(IndexError):
        f(tg.ones(3), tg.tensor([5]))
    assert w.tolist() == [1.0, 1.0, 1.0]  # the write-back happens only after the whole graph ran


def test_assigning_data_of_another_shape_while_tracing():
    w = tg.zeros(3)

    def f(x):
        w.data = x  # LINE-DATA
        return x
    with pytest.raises(tg.TraceError, match=rf"{THIS_FILE}:{_line('LINE-DATA')}: assigning .data of shape \[2\] "
                                            r"tracegrad.float32 to a tensor of shape \[3\] tracegrad.float32"):
        tg.compile(f)(tg.ones(2))
    assert w.shape == (3,)


def test_writing_into_an_expanded_view_while_tracing():
    buf = tg.zeros(1, 3)

    def f(x):
        v = buf.expand(2, 3)
        with tg.no_grad():
            v.add_(x)
        return v
    with pytest.raises(RuntimeError, match="add_: unsupported operation: more than one element of the written-to "
                                           "tensor refers to a single memory location"):
        tg.compile(f)(tg.ones(2, 3))
    assert buf.tolist() == [[0.0, 0.0, 0.0]]


def test_retain_grad_inside_a_compiled_function():
    def f(x):
        h = x * 2
        h.retain_grad()
        (h * h).sum().backward()
        return h.grad
    with pytest.raises(tg.TraceError, match="retain_grad\\(\\) on a tensor inside a traced function is not "
                                            "supported"):
        tg.compile(f)(tg.ones(2, requires_grad=True))


def test_setitem_mixing_ints_and_index_tensors_while_tracing():
    def f(x, i):
        y = x.clone()
        y[0, i] = 1.0
        return y
    with pytest.raises(RuntimeError, match="setitem: an index mixing integers and index tensors is not supported "
                                           "while recording gradients or tracing"):
        tg.compile(f)(tg.zeros(2, 3), tg.tensor([1]))


def test_errors_of_the_eager_ops_are_raised_while_tracing_too():
    lin = nn.Linear(3, 2)
    with pytest.raises(RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied \(4x5 and 3x2\)"):
        tg.compile(lin)(tg.ones(4, 5))


def test_trace_restores_state_when_the_function_raises():
    w = tg.zeros(2)

    def f(x):
        w.add_(x)
        raise ValueError("boom")
    with pytest.raises(ValueError, match="boom"):
        tg.compile(f)(tg.ones(2))
    assert w.tolist() == [0.0, 0.0]  # nothing half-applied



def test_interpreted_errors_keep_the_exception_class():
    f = tg.compile(lambda x, i: x[i])
    f(tg.ones(3), tg.tensor([0]))
    with pytest.raises(IndexError):
        f(tg.ones(3), tg.tensor([np.int64(9)]))


def test_check_compares_every_node_with_the_interpreter_and_names_the_first_divergence():
    import warnings

    from tracegrad.tracer import variant
    f = tg.compile(lambda x: x.sum(0) * 2.0, backend="numba", check=True)  # LINE-CHECK
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # within tolerance: no warning
        for _ in range(3):
            x = tg.randn(3, 4)
            np.testing.assert_allclose(f(x).numpy(), (x.sum(0) * 2.0).numpy(), rtol=1e-6)
    # float32 sums of 1e8 + 1 - 1e8: numpy's float32 partial sums give 0, the kernel's float64 accumulator 1; the
    # sum is inside the native segment, so the first value seen to differ is the product it returns
    x = np.repeat(np.array([[1e8], [1.0], [-1e8]], np.float32), 4, axis=1)
    (v,) = f._cache[next(iter(f._cache))]
    ref, env = v.reference.run([x]), v.program.run([x])
    with pytest.warns(RuntimeWarning, match=rf"compile\(check=True\): %1:f32\[4\] = mul %0, c0 "
                                            rf"\(traced at .*{THIS_FILE}:{_line('LINE-CHECK')}\) differs from eager: "
                                            rf"max abs difference 2 "):
        variant._check(v.graph, v.reference, ref, v.program, env)
