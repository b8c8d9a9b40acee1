"""Every op of the op table, compiled (`tracegrad.compile(fn, backend="interpret")`), against eager mode.

For each row and input-shape variant, in float64 and float32, on two calls with different input values
of the same shapes (the first call traces, the second runs the cached graph: exactly one trace):

* the forward values, shapes and dtypes equal eager's bit for bit: the interpreter runs the registry's
  numpy forwards in the order eager runs them;
* the gradients w.r.t. the inputs equal eager's (within a few ulps: the autodiff pass derives and sums
  the backward over the IR, not in the eager engine's order), computed three ways: `out.backward(g)`
  inside the compiled function (both the returned and the inputs' `.grad`), `tracegrad.autograd.grad`
  inside it, and the compiled region's `grad_fn` run by an eager `.backward(g)` outside it.

Every row compiles; the rows whose output is not differentiable (NOT_DIFFERENTIABLE, checked against
eager below) get the forward checks only. The cotangents are drawn from a seeded numpy rng.
"""
import zlib

import numpy as np
import pytest
from op_table import DOMAINS, NOT_DIFFERENTIABLE, make_inputs, variants

import tracegrad as tg

PARAMS, IDS = variants()
DTYPES = [np.float64, np.float32]
RTOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-6}

GRAD = [(c, s) for c, s in PARAMS if c.name not in NOT_DIFFERENTIABLE]
GRAD_IDS = [i for (c, _), i in zip(PARAMS, IDS) if c.name not in NOT_DIFFERENTIABLE]


def _second_inputs(case, shapes, dtype):
    """Other values from the case's domain, same shapes: the call that must run the cached graph."""
    rng = np.random.default_rng(zlib.crc32(case.name.encode()) + 1)
    return [np.asarray(DOMAINS[case.domain](rng, shape), dtype) for shape in shapes]


def _input_sets(case, shapes, dtype):
    first, second = make_inputs(case, shapes, dtype), _second_inputs(case, shapes, dtype)
    assert any(not np.array_equal(a, b) for a, b in zip(first, second))
    return [first, second]


def _calls(case, shapes, dtype):
    """[(inputs, cotangent)] for the two calls; the cotangents are fixed (seeded by the case's name)."""
    inputs = _input_sets(case, shapes, dtype)
    shape = case.fn(tg, *[tg.tensor(a) for a in inputs[0]]).shape
    rng = np.random.default_rng(zlib.crc32(case.name.encode()) + 2)
    return [(arrays, rng.standard_normal(shape).astype(dtype)) for arrays in inputs]


def _eager_grads(case, arrays, cot):
    """Eager mode's output and gradients (None where an input gets none) for cotangent `cot`."""
    ts = [tg.tensor(a, requires_grad=True) for a in arrays]
    out = case.fn(tg, *ts)
    out.backward(tg.tensor(cot))
    return out.detach().numpy(), [None if t.grad is None else t.grad.numpy() for t in ts]


def _assert_exact(got, want, what):
    got = got.detach().numpy() if isinstance(got, tg.Tensor) else got
    assert got.shape == want.shape and got.dtype == want.dtype, \
        f"{what}: {got.dtype}{list(got.shape)}, eager gives {want.dtype}{list(want.shape)}"
    np.testing.assert_array_equal(got, want, err_msg=what)


def _assert_grads(got, want, what):
    """Gradients (tensors or None) against eager's (arrays or None), each within a few ulps."""
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        if w is None:
            assert g is None, f"{what}: input {i} got a gradient, eager gives None"
            continue
        assert g is not None, f"{what}: input {i} got no gradient, eager gives one"
        g = g.numpy()
        assert g.shape == w.shape and g.dtype == w.dtype, \
            f"{what}: input {i} gradient is {g.dtype}{list(g.shape)}, eager gives {w.dtype}{list(w.shape)}"
        rtol = RTOL[w.dtype]
        np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol * np.max(np.abs(w), initial=1.0),
                                   err_msg=f"{what}: input {i}")


def _assert_cached(compiled):
    """The second call, same signature, ran the cached graph: one trace in all."""
    assert len(compiled.retraces) == 1, \
        f"2 calls with the same signature traced {len(compiled.retraces)} times: {compiled.retraces}"


def test_not_differentiable_rows_are_exactly_those_without_grad_fn():
    """The exclusion list is no silent skip: each listed row's eager output lacks a grad_fn, every other has one."""
    assert set(NOT_DIFFERENTIABLE) <= {c.name for c, _ in PARAMS}
    for case, shapes in PARAMS:
        out = case.fn(tg, *[tg.tensor(a, requires_grad=True) for a in make_inputs(case, shapes)])
        assert out.requires_grad is (case.name not in NOT_DIFFERENTIABLE), case.name


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("case,shapes", PARAMS, ids=IDS)
def test_forward_matches_eager(case, shapes, dtype):
    compiled = tg.compile(lambda *xs: case.fn(tg, *xs), backend="interpret")
    for k, arrays in enumerate(_input_sets(case, shapes, dtype)):
        want = case.fn(tg, *[tg.tensor(a) for a in arrays]).numpy()
        got = compiled(*[tg.tensor(a) for a in arrays])
        _assert_exact(got, want, f"call {k + 1} forward")
    _assert_cached(compiled)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("case,shapes", GRAD, ids=GRAD_IDS)
def test_backward_inside_compiled_function(case, shapes, dtype):
    def step(*args):
        *xs, g = args
        out = case.fn(tg, *xs)
        out.backward(g)
        return out, tuple(x.grad for x in xs)

    compiled = tg.compile(step, backend="interpret")
    for k, (arrays, cot) in enumerate(_calls(case, shapes, dtype)):
        want_out, want_grads = _eager_grads(case, arrays, cot)
        xs = [tg.tensor(a, requires_grad=True) for a in arrays]
        out, grads = compiled(*xs, tg.tensor(cot))
        _assert_exact(out, want_out, f"call {k + 1} forward")
        _assert_grads(grads, want_grads, f"call {k + 1} returned x.grad")
        _assert_grads([x.grad for x in xs], want_grads, f"call {k + 1} .grad of the inputs after the call")
    _assert_cached(compiled)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("case,shapes", GRAD, ids=GRAD_IDS)
def test_autograd_grad_inside_compiled_function(case, shapes, dtype):
    def step(*args):
        *xs, g = args
        out = case.fn(tg, *xs)
        return out, tg.autograd.grad(out, xs, g, allow_unused=True)

    compiled = tg.compile(step, backend="interpret")
    for k, (arrays, cot) in enumerate(_calls(case, shapes, dtype)):
        want_out, want_grads = _eager_grads(case, arrays, cot)
        xs = [tg.tensor(a, requires_grad=True) for a in arrays]
        out, grads = compiled(*xs, tg.tensor(cot))
        _assert_exact(out, want_out, f"call {k + 1} forward")
        _assert_grads(grads, want_grads, f"call {k + 1} autograd.grad")
        assert all(x.grad is None for x in xs), "autograd.grad must not touch .grad"
    _assert_cached(compiled)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("case,shapes", GRAD, ids=GRAD_IDS)
def test_backward_through_compiled_region(case, shapes, dtype):
    compiled = tg.compile(lambda *xs: case.fn(tg, *xs), backend="interpret")
    for k, (arrays, cot) in enumerate(_calls(case, shapes, dtype)):
        want_out, want_grads = _eager_grads(case, arrays, cot)
        xs = [tg.tensor(a, requires_grad=True) for a in arrays]
        out = compiled(*xs)
        _assert_exact(out, want_out, f"call {k + 1} forward")
        assert out.requires_grad and out.grad_fn is not None, "a compiled region's output needs a grad_fn"
        out.backward(tg.tensor(cot))
        _assert_grads([x.grad for x in xs], want_grads, f"call {k + 1} .grad after backward outside")
    _assert_cached(compiled)
