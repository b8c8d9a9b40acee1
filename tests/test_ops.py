"""Every op of the op table, in eager mode: forward against numpy, gradients against central differences."""
import numpy as np
import pytest
from op_table import make_inputs, variants

import tracegrad as tg
import tracegrad._tensor
from tracegrad.ops.registry import REGISTRY, Kind, eval_scalar

PARAMS, IDS = variants()


def _run(case, arrays, requires_grad=False):
    ts = [tg.tensor(a, requires_grad=requires_grad) for a in arrays]
    return ts, case.fn(tg, *ts)


@pytest.mark.parametrize("case,shapes", PARAMS, ids=IDS)
def test_forward_float64(case, shapes):
    arrays = make_inputs(case, shapes)
    _, out = _run(case, arrays)
    expected = np.asarray(case.ref(*arrays))
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-12)
    if expected.dtype.kind == "f":
        assert out.dtype is tg.float64


@pytest.mark.parametrize("case,shapes", PARAMS, ids=IDS)
def test_forward_float32_keeps_dtype(case, shapes):
    arrays = make_inputs(case, shapes, np.float32)
    _, out = _run(case, arrays)
    expected = np.asarray(case.ref(*[a.astype(np.float64) for a in arrays]))
    if expected.dtype.kind == "f":
        assert out.dtype is tg.float32
    np.testing.assert_allclose(out.numpy(), expected, rtol=2e-5, atol=2e-6)


GRAD = [(c, s) for c, s in PARAMS if c.grad]
GRAD_IDS = [i for (c, _), i in zip(PARAMS, IDS) if c.grad]


@pytest.mark.parametrize("case,shapes", GRAD, ids=GRAD_IDS)
def test_gradient_matches_central_differences(case, shapes):
    ts, out = _run(case, make_inputs(case, shapes), requires_grad=True)
    assert out.requires_grad and out.grad_fn is not None
    assert tg.autograd.gradcheck(lambda *xs: case.fn(tg, *xs), ts)
    # gradients have their input's shape and dtype, whatever broadcasting happened
    grads = tg.autograd.grad(out, ts, tg.ones_like(out), allow_unused=True)
    for t, g in zip(ts, grads):
        assert g is None or (g.shape == t.shape and g.dtype is t.dtype)


GRAD2 = [(c, s) for c, s in GRAD if c.grad2]
GRAD2_IDS = [i for (c, _), i in zip(GRAD, GRAD_IDS) if c.grad2]


@pytest.mark.parametrize("case,shapes", GRAD2, ids=GRAD2_IDS)
def test_second_order_gradient(case, shapes):
    ts, _ = _run(case, make_inputs(case, shapes), requires_grad=True)
    assert tg.autograd.gradgradcheck(lambda *xs: case.fn(tg, *xs), ts)


def test_every_primitive_is_exercised_by_the_table():
    tracegrad._tensor.OPS_SEEN.clear()
    for case, shapes in PARAMS:
        ts, out = _run(case, make_inputs(case, shapes), requires_grad=case.grad)
        if case.grad:
            out.backward(tg.ones_like(out))
    # primitives without gradients, on bool and integer tensors
    i, b = tg.tensor([5, -3, 8]), tg.tensor([True, False, True])
    for r in (i // 2, i % 3, i & 6, i | 1, i ^ 3, ~i, b & b, b | ~b, b ^ b, i != 2, i <= 1, i >= 1, i.isnan()):
        assert r.shape == (3,)
    for r in (tg.rand(3), tg.randn(3), tg.randint(0, 5, (3,)), tg.randperm(3),  # random draws
              tg.multinomial(tg.ones(3), 3)):
        assert r.shape == (3,)
    # the collectives (tracegrad.distributed.ops) need several ranks: tests/test_distributed.py runs them under mpirun
    untested = set(REGISTRY) - tracegrad._tensor.OPS_SEEN - tracegrad.distributed.ops.COLLECTIVES
    assert not untested, f"primitives without an op-table row: {sorted(untested)}"


ELEMENTWISE = sorted(name for name, op in REGISTRY.items() if op.kind is Kind.ELEMENTWISE)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_scalar_expression_matches_forward(name):
    """The codegen's scalar expression of each elementwise primitive computes what its numpy forward does."""
    op = REGISTRY[name]
    rng = np.random.default_rng(1)
    arity = op.arity
    if name in ("logical_and", "logical_or", "logical_xor", "logical_not", "where"):
        vals = [rng.random(8) > 0.5] + [rng.uniform(0.5, 2.0, 8) for _ in range(arity - 1)]
    elif name.startswith("bitwise") or name == "floor_divide" or name == "remainder":
        vals = [rng.integers(1, 9, 8) for _ in range(arity)]
    elif name == "binary_cross_entropy":  # probabilities and targets in (0, 1)
        vals = [rng.uniform(0.05, 0.95, 8) for _ in range(arity)]
    elif name in ("asin", "acos", "atanh"):  # math-more: their domain is (-1, 1), acosh's [1, inf)
        vals = [rng.uniform(-0.9, 0.9, 8)]
    elif name == "acosh":
        vals = [rng.uniform(1.1, 3.0, 8)]
    else:
        vals = [rng.uniform(0.5, 2.0, 8) for _ in range(arity)]
    params = {"dtype": tg.float32} if name == "cast" else {}
    expected = op.forward(*vals, **params)
    got = [eval_scalar(op, *[v[i].item() for v in vals], **params) for i in range(8)]
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), expected.astype(np.float64), rtol=1e-6)


@pytest.mark.parametrize("backend", [None, "interpret", "numba"])
def test_sign_of_nan_is_zero_as_in_pytorch_in_every_mode(backend):
    def f(x):
        return x.sign(), x.sqrt().sign()

    fn = f if backend is None else tg.compile(f, backend=backend, **({"tiered": False} if backend == "numba" else {}))
    x = tg.tensor([float("nan"), -0.0, 2.0, -3.0])
    for _ in range(2):
        s, t = fn(x)
        assert s.tolist() == [0.0, 0.0, 1.0, -1.0] and t.tolist() == [0.0, 0.0, 1.0, 0.0]
    x = tg.tensor([float("nan"), -2.0], requires_grad=True)
    x.abs().sum().backward()
    assert x.grad.tolist() == [0.0, -1.0]  # PyTorch: sign(nan) * 1 = 0


@pytest.mark.parametrize("backend", [None, "interpret", "numba"])
def test_reductions_over_no_elements_follow_pytorch(backend):
    def f(x):
        return (x.all(), x.any(), x.bool().all(1), x.softmax(0), x.logsumexp(0), x.max(1)[0], x.sum(0))

    fn = f if backend is None else tg.compile(f, backend=backend, **({"tiered": False} if backend == "numba" else {}))
    for _ in range(2):
        every, some, rows, soft, lse, top, total = fn(tg.zeros(0, 3))
        assert every.item() is True and some.item() is False and rows.shape == (0,)
        assert soft.shape == (0, 3) and lse.tolist() == [-np.inf] * 3 and top.shape == (0,)
        assert total.tolist() == [0.0] * 3


def test_max_over_an_empty_dim_names_it():
    with pytest.raises(RuntimeError, match=r"max\(\): Expected reduction dim 0 to have non-zero size\."):
        tg.zeros(0, 3).max(0)
    with pytest.raises(RuntimeError, match=r"min\(\): Expected reduction dim to be specified for input\.numel"):
        tg.zeros(0, 3).min()
