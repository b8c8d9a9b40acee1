"""The elementwise math ops and activations against PyTorch: values, dtypes, node names and gradients, also at nan,
+-inf, zeros and the .5 ties; integer inputs; in-place forms; the activation modules' reprs; errors.

Forward values and gradients on ordinary inputs, in every mode, are rows of tests/op_table.py and
tests/test_nn_functional.py; this file is what those tables can't say: PyTorch's names and its conventions at
the special values.
"""
import numpy as np
import pytest

import tracegrad as tg

torch = pytest.importorskip("torch")

_rng = np.random.default_rng(0)
X = np.concatenate([_rng.standard_normal(6) * 2, [0.5, -0.5, 2.5, -2.5, 0.0, 1.0]]).astype(np.float32)
Y = np.concatenate([_rng.standard_normal(6) * 2, [1.5, -2.0, 0.0, 3.0, 0.0, -1.0]]).astype(np.float32)
UNIT = _rng.uniform(-0.9, 0.9, 12).astype(np.float32)  # asin, acos, atanh
ABOVE_1 = _rng.uniform(1.1, 3.0, 12).astype(np.float32)  # acosh
SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 2.5], np.float32)


def _unary(name, data=X, **kw):
    return name, (lambda m, x: getattr(m, name)(x, **kw)), [data]


def _method_(name, *extra):
    """`y.name_(*extra)` on a non-leaf copy y of the input."""
    return name, (lambda m, x, *o: getattr(x * 1, name)(*o)), [X, *extra]


CASES = [
    *[_unary(n) for n in "floor ceil round trunc fix frac log2 log10 exp2 expm1 log1p tan atan sinh cosh asinh arctan "
                         "arcsinh reciprocal nan_to_num".split()],
    *[_unary(n, UNIT) for n in "asin acos atanh arcsin arccos arctanh".split()],
    *[_unary(n, ABOVE_1) for n in "acosh arccosh".split()],
    ("round_decimals", lambda m, x: m.round(x, decimals=2), [X * 10]),
    ("round_negative_decimals", lambda m, x: m.round(x, decimals=-1), [X * 100]),
    *[(n, lambda m, a, b, n=n: getattr(m, n)(a, b), [X, Y])
      for n in "fmod atan2 arctan2 hypot logaddexp clamp_min clamp_max".split()],
    ("fmod_scalar", lambda m, a: m.fmod(a, 1.5), [X]),
    ("xlogy", lambda m, a, b: m.xlogy(a, b), [X, np.abs(Y)]),
    ("xlogy_scalar_other", lambda m, a: m.xlogy(a, 2.0), [X]),
    ("xlogy_scalar_self", lambda m, b: m.xlogy(2.0, b), [np.abs(Y)]),
    ("clamp_min_scalar", lambda m, a: a.clamp_min(0.1), [X]),
    ("nan_to_num_values", lambda m, a: m.nan_to_num(a, nan=1.0, posinf=2.0, neginf=-3.0), [X]),
    ("std_mean", lambda m, a: m.std_mean(a.reshape(3, 4), 1)[0], [X]),
    ("std_mean_keepdim", lambda m, a: m.std_mean(a.reshape(3, 4), dim=0, keepdim=True)[1], [X]),
    ("var_mean", lambda m, a: m.var_mean(a.reshape(3, 4), 1, correction=0)[0], [X]),
    ("var_mean_all", lambda m, a: m.var_mean(a)[1], [X]),
    *[_method_(n) for n in "floor_ ceil_ round_ trunc_ fix_ frac_ log2_ exp2_ expm1_ tan_ atan_ sinh_ cosh_ "
                           "reciprocal_ nan_to_num_ abs_ square_ sign_ sin_ cos_ log1p_ erf_ negative_".split()],
    *[_method_(n, Y) for n in "fmod_ remainder_ atan2_ hypot_ clamp_min_ clamp_max_".split()],
    ("xlogy_", lambda m, x, y: (x * 1).xlogy_(y), [X, np.abs(Y)]),
    ("log_", lambda m, x: (x * 1).log_(), [np.abs(X) + 0.1]),
    ("round_decimals_", lambda m, x: (x * 1).round_(decimals=1), [X]),
]
# each also with +-inf, nan and signed zeros, except std_mean and var_mean: PyTorch's mean there is Welford's, whose
# mean of [a, inf, 1] is nan (inf - inf in its update), where the sum's is inf


def _result(fn, m, arrays):
    ins = [m.tensor(a, requires_grad=True) for a in arrays]
    out = fn(m, *ins)
    return ins, out


PARAMS = [pytest.param(*case, special, id=f"{case[0]}-{'special' if special else 'ordinary'}")
          for case in CASES for special in (False, True) if not (special and "mean" in case[0])]


@pytest.mark.parametrize("name,fn,arrays,special", PARAMS)
def test_values_names_and_gradients_as_pytorch(name, fn, arrays, special):
    if special:
        arrays = [np.concatenate([a[:4], SPECIAL]) for a in arrays]
    theirs_in, theirs = _result(fn, torch, arrays)
    ours_in, ours = _result(fn, tg, arrays)
    assert str(ours.dtype).split(".")[-1] == str(theirs.dtype).split(".")[-1]
    assert ours.grad_fn.name() == theirs.grad_fn.name()
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-5, atol=1e-6)
    seed = np.random.default_rng(1).standard_normal(tuple(theirs.shape)).astype(np.float32)
    want = torch.autograd.grad(theirs, theirs_in, torch.tensor(seed))
    got = tg.autograd.grad(ours, ours_in, tg.tensor(seed))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-4, atol=1e-5)


INTS = np.array([3, -2, 5, 0])


def _outcome(fn):
    try:
        out = fn()
    except Exception as e:  # noqa: BLE001 - the class is what is compared
        return type(e).__name__
    return str(out.dtype).split(".")[-1], out.numpy().tolist()


@pytest.mark.parametrize("name", "floor ceil round trunc fix frac log2 exp2 expm1 log1p tan atan sinh reciprocal "
                                 "isinf isfinite isposinf isneginf nan_to_num count_nonzero fmod atan2 hypot logaddexp "
                                 "xlogy round_decimals".split())
def test_integer_inputs_as_pytorch(name):
    """Float-valued ops promote integers to the default float; floor/ceil/round/trunc return a copy; PyTorch's
    kernels for frac, hypot, logaddexp and round(decimals=) refuse them (NotImplementedError)."""
    def run(m):
        x = m.tensor(INTS)
        if name == "round_decimals":
            return m.round(x, decimals=1)
        if name in ("fmod", "atan2", "hypot", "logaddexp", "xlogy"):
            return getattr(m, name)(x, m.tensor([2, 3, 4, 1]))
        return getattr(m, name)(x)
    want = _outcome(lambda: run(torch))
    got = _outcome(lambda: run(tg))
    if isinstance(want, tuple):
        assert got[0] == want[0]
        np.testing.assert_allclose(got[1], want[1], rtol=1e-6)
    else:
        assert got == want
    if name in ("floor", "round"):
        x = tg.tensor(INTS)
        assert getattr(tg, name)(x) is not x  # a copy, as PyTorch's


def test_nonfinite_predicates_and_counts_as_pytorch():
    b = np.array([[0.0, 1.0, np.nan], [np.inf, -np.inf, 2.0]], np.float32)
    for name in "isinf isfinite isposinf isneginf count_nonzero".split():
        want, got = getattr(torch, name)(torch.tensor(b)), getattr(tg, name)(tg.tensor(b))
        assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1]
        np.testing.assert_array_equal(got.numpy(), want.numpy())
        assert not got.requires_grad
    assert tg.count_nonzero(tg.tensor(b), dim=(0, 1)).item() == 5
    np.testing.assert_array_equal(tg.tensor(b).count_nonzero(1).numpy(), [2, 3])  # nan counts


def test_floor_divide_remainder_and_fmod_of_integers_by_zero_raise_as_pytorch():
    for name in ("fmod", "remainder", "floor_divide"):
        with pytest.raises(RuntimeError, match="ZeroDivisionError"):
            getattr(tg, name)(tg.tensor([5, -5]), tg.tensor([0, 1]))
    np.testing.assert_array_equal(tg.fmod(tg.tensor([5, -5]), 3).numpy(), [2, -2])


F = [("silu", lambda F, x: F.silu(x)), ("elu", lambda F, x: F.elu(x, 0.7)), ("selu", lambda F, x: F.selu(x)),
     ("celu", lambda F, x: F.celu(x, 1.5)), ("softplus", lambda F, x: F.softplus(x, 2.0, 10.0)),
     ("softsign", lambda F, x: F.softsign(x)), ("hardtanh", lambda F, x: F.hardtanh(x, -1.0, 1.0)),
     ("relu6", lambda F, x: F.relu6(x)), ("hardsigmoid", lambda F, x: F.hardsigmoid(x)),
     ("hardswish", lambda F, x: F.hardswish(x)), ("mish", lambda F, x: F.mish(x)),
     ("threshold", lambda F, x: F.threshold(x, 1.0, 20.0)), ("glu", lambda F, x: F.glu(x, 0)),
     ("softmin", lambda F, x: F.softmin(x, 0)), ("logsigmoid", lambda F, x: F.logsigmoid(x)),
     ("elu_inplace", lambda F, x: F.elu(x * 1, inplace=True)), ("selu_inplace", lambda F, x: F.selu(x * 1, True)),
     ("celu_inplace", lambda F, x: F.celu(x * 1, inplace=True)),
     ("threshold_inplace", lambda F, x: F.threshold(x * 1, 1.0, 20.0, True)),
     ("hardtanh_", lambda F, x: F.hardtanh_(x * 1)), ("silu_inplace", lambda F, x: F.silu(x * 1, inplace=True))]
# the kinks (+-3, +-1, 0, 6), a huge input (exp overflows in float32) and nan
ACT = np.array([-3.0, 3.0, -1.0, 1.0, 0.0, 6.0, 100.0, -100.0, 0.5, -0.5, np.nan, 2.0], np.float32)


@pytest.mark.parametrize("name,fn", F, ids=[n for n, _ in F])
def test_activations_at_kinks_overflow_and_nan_as_pytorch(name, fn):
    t = torch.tensor(ACT, requires_grad=True)
    g = tg.tensor(ACT, requires_grad=True)
    want, got = fn(torch.nn.functional, t), fn(tg.nn.functional, g)
    assert got.grad_fn.name() == want.grad_fn.name()
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-5, atol=1e-6)
    seed = np.linspace(-1, 1, want.numel(), dtype=np.float32).reshape(tuple(want.shape))
    want.backward(torch.tensor(seed))
    got.backward(tg.tensor(seed))
    np.testing.assert_allclose(g.grad.numpy(), t.grad.numpy(), rtol=1e-5, atol=1e-6)


MODULES = ["SiLU()", "SiLU(inplace=True)", "ELU()", "ELU(alpha=2, inplace=True)", "SELU(True)", "CELU(0.5)",
           "Softplus()", "Softplus(2, 10)", "Softsign()", "Hardtanh(-2, 3)", "Hardtanh(inplace=True)", "ReLU6()",
           "ReLU6(inplace=True)", "Hardsigmoid(True)", "Hardswish()", "Mish(inplace=True)", "GLU()", "GLU(0)",
           "Softmin(1)", "PReLU()", "PReLU(3, 0.1)", "Threshold(0.1, 20.0)", "Threshold(0.1, 2, True)",
           "LogSigmoid()"]


def test_activation_modules_repr_forward_and_parameters_as_pytorch():
    x = np.random.default_rng(2).standard_normal((2, 3, 4)).astype(np.float32) * 3
    for spec in MODULES:
        theirs, ours = eval("torch.nn." + spec), eval("tg.nn." + spec)  # noqa: S307 - the specs above
        assert repr(ours) == repr(theirs)
        assert [(n, tuple(p.shape)) for n, p in ours.named_parameters()] == \
            [(n, tuple(p.shape)) for n, p in theirs.named_parameters()]
        want, got = theirs(torch.tensor(x) * 1), ours(tg.tensor(x) * 1)
        np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-5, atol=1e-6, err_msg=spec)
    layer = tg.nn.PReLU(3)
    layer(tg.tensor(-x)).sum().backward()
    np.testing.assert_allclose(layer.weight.grad.numpy(), (-x * (x > 0)).sum((0, 2)), rtol=1e-5)


ERRORS = [
    ("atan2_number", lambda m: m.atan2(m.ones(2), 2.0)),
    ("glu_odd", lambda m: m.nn.functional.glu(m.ones(2, 3))),
    ("glu_scalar", lambda m: m.nn.functional.glu(m.tensor(1.0))),
    ("prelu_channels", lambda m: m.nn.functional.prelu(m.ones(3), m.ones(3))),
    ("hardtanh_bounds", lambda m: m.nn.functional.hardtanh(m.ones(2), 2.0, 1.0)),
    ("elu_long", lambda m: m.nn.functional.elu(m.tensor([1, 2]))),
    ("inplace_leaf", lambda m: m.nn.functional.elu(m.ones(2, requires_grad=True), inplace=True)),
    ("floor_bool", lambda m: m.floor(m.tensor([True]))),
    ("log2_long_inplace", lambda m: m.tensor([1, 2]).log2_()),
]


@pytest.mark.parametrize("name,fn", ERRORS, ids=[n for n, _ in ERRORS])
def test_errors_have_pytorchs_classes(name, fn):
    with pytest.raises(Exception) as want:  # noqa: PT011 - the class is compared below
        fn(torch)
    with pytest.raises(want.type):
        fn(tg)
