"""The everyday-API ops beyond the op table's rows: sort order of ties and nan, cumprod at zeros (also its double
backward), dtype rules, error types and messages, numpy-style `axis=`/`keepdims=`, `out=`, and interpolate's
index arithmetic across sizes and scales. Compared with PyTorch where it is installed, else with numpy/by hand.
"""
import re
import warnings

import numpy as np
import pytest

import tracegrad as tg
import tracegrad.nn.functional as F


def _torch():
    return pytest.importorskip("torch")


# ---------------------------------------------------------------- sort, argsort, topk
TIES = np.array([1.0, 1.0, 0.0, 1.0, 0.0, np.nan, 1.0, -0.0, np.nan])


@pytest.mark.parametrize("descending", [False, True])
def test_sort_is_stable_with_nan_largest_as_pytorch(descending):
    values, indices = tg.sort(tg.tensor(TIES), descending=descending)
    order = np.argsort(TIES, kind="stable")  # ascending: ties in order, nan last
    if descending:  # nan first, ties still in their original order
        rev = np.argsort(TIES[::-1], kind="stable")[::-1]
        order = len(TIES) - 1 - rev
    assert indices.tolist() == order.tolist()
    np.testing.assert_array_equal(values.numpy(), TIES[order])
    torch = pytest.importorskip("torch")
    theirs = torch.sort(torch.tensor(TIES), descending=descending, stable=True)
    assert indices.tolist() == theirs.indices.tolist()
    assert tg.argsort(tg.tensor(TIES), descending=descending).tolist() == theirs.indices.tolist()


def test_sort_ties_of_int_tensors_match_pytorch():
    x = np.arange(10) % 3
    ours = tg.tensor(x).sort(descending=True)
    assert ours.indices.tolist() == [2, 5, 8, 1, 4, 7, 0, 3, 6, 9] and ours.values.dtype is tg.int64


def test_sort_and_topk_return_named_tuples():
    x = tg.tensor([[3.0, 1.0, 2.0]], requires_grad=True)
    s = x.sort(-1)
    assert s.values.tolist() == [[1.0, 2.0, 3.0]] and s.indices.tolist() == [[1, 2, 0]]
    assert repr(s).startswith("tracegrad.return_types.sort(\nvalues=tensor(")
    values, indices = x.topk(2, largest=False)
    assert values.tolist() == [[1.0, 2.0]] and indices.tolist() == [[1, 2]]
    assert type(x.topk(1)).__name__ == "topk"
    values.sum().backward()
    assert x.grad.tolist() == [[0.0, 1.0, 1.0]]
    zero_d = tg.tensor(2.0).sort()
    assert zero_d.values.shape == () and zero_d.indices.item() == 0


def test_topk_k_out_of_range_is_pytorchs_error():
    with pytest.raises(RuntimeError, match="selected index k out of range"):
        tg.ones(2, 3).topk(4)


# ---------------------------------------------------------------- cumsum, cumprod, prod
def test_cumprod_gradient_at_zeros_is_exact_as_in_pytorch():
    x = tg.tensor([2.0, 0.0, 3.0, 0.0, 4.0], dtype=tg.float64, requires_grad=True)
    x.cumprod(0).backward(tg.tensor([1.0, 2.0, 3.0, 4.0, 5.0], dtype=tg.float64))
    assert x.grad.tolist() == [1.0, 22.0, 0.0, 0.0, 0.0]  # PyTorch: tensor([ 1., 22.,  0.,  0.,  0.])


def test_cumprod_and_prod_double_backward_at_zeros():
    x = tg.tensor([[2.0, 0.0, 3.0, 0.5], [0.0, 1.5, 0.0, -1.0]], dtype=tg.float64, requires_grad=True)
    assert tg.autograd.gradgradcheck(lambda t: t.cumprod(1), (x,))
    assert tg.autograd.gradgradcheck(lambda t: t.prod(0), (x,))
    assert tg.autograd.gradgradcheck(lambda t: t.prod(), (x,))


def test_scan_and_product_dtypes_follow_pytorch():
    i, b = tg.tensor([[1, 2], [3, 4]]), tg.tensor([True, False, True])
    assert i.cumsum(1).dtype is tg.int64 and b.cumsum(0).tolist() == [1, 1, 2] and b.prod().dtype is tg.int64
    assert i.prod(1).tolist() == [2, 12] and tg.cumprod(i, 0).tolist() == [[1, 2], [3, 8]]
    assert tg.cumsum(i, 1, dtype=tg.float64).dtype is tg.float64
    assert tg.prod(tg.zeros(0, 3), 0).tolist() == [1.0, 1.0, 1.0] and tg.zeros(0).prod().item() == 1.0
    assert tg.ops.functions.trace(tg.arange(6).reshape(2, 3)).dtype is tg.int64
    assert tg.outer(tg.tensor([1, 2]), tg.tensor([0.5])).dtype is tg.float32
    with pytest.raises(TypeError, match="missing 1 required positional arguments"):
        tg.ones(3).cumsum()


def test_beta_zero_ignores_the_added_input_as_pytorch():
    x = tg.tensor([float("nan"), 1.0], requires_grad=True)
    out = tg.addmv(x, tg.eye(2), tg.ones(2), beta=0, alpha=3)
    assert out.tolist() == [3.0, 3.0] and out.grad_fn.name() == "AddmvBackward0"
    out.sum().backward()
    assert x.grad.tolist() == [0.0, 0.0]


def test_trace_is_the_matrix_trace_at_the_top_level_and_as_a_method():
    from tracegrad.ops.functions import trace
    x = tg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    out = trace(x)
    assert out.item() == 5.0 and out.grad_fn.name() == "TraceBackward0" and x.trace().item() == 5.0
    out.backward()
    assert x.grad.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert tg.trace is trace and tg.jit.trace is not trace  # the graph tracer lives in tracegrad.jit


# ---------------------------------------------------------------- errors: same class as PyTorch, op and shapes named
def _ones(m, *shape, dtype=None):
    return m.ones(*shape) if dtype is None else m.ones(*shape, dtype=getattr(m, dtype))


ERRORS = [
    ("dot_2d", lambda m: m.dot(_ones(m, 2, 2), _ones(m, 2, 2)), RuntimeError, "1D tensors expected, but got 2D and 2D"),
    ("dot_sizes", lambda m: m.dot(_ones(m, 3), _ones(m, 4)), RuntimeError, "inconsistent tensor size"),
    ("dot_dtypes", lambda m: m.dot(_ones(m, 3), _ones(m, 3, dtype="float64")), RuntimeError,
     "expected both vectors to have same dtype, but found Float and Double"),
    ("mv_dims", lambda m: m.mv(_ones(m, 2, 3), _ones(m, 3, 1)), RuntimeError,
     "vector \\+ matrix @ vector expected, got 1, 2, 2"),
    ("mv_sizes", lambda m: m.mv(_ones(m, 2, 3), _ones(m, 4)), RuntimeError,
     re.escape("size mismatch, got input (2), mat (2x3), vec (4)")),
    ("bmm_dims", lambda m: m.bmm(_ones(m, 2, 3), _ones(m, 3, 2)), RuntimeError, "batch1 must be a 3D tensor"),
    ("bmm_sizes", lambda m: m.bmm(_ones(m, 2, 3, 4), _ones(m, 2, 3, 4)), RuntimeError,
     re.escape("Expected size for first two dimensions of batch2 tensor to be: [2, 4] but got: [2, 3].")),
    ("baddbmm_input", lambda m: m.baddbmm(_ones(m, 2, 3, 2), _ones(m, 2, 3, 4), _ones(m, 2, 4, 5)), RuntimeError,
     "The expanded size of the tensor"),
    ("addmv_sizes", lambda m: m.addmv(_ones(m, 2), _ones(m, 3, 4), _ones(m, 4)), RuntimeError, "size mismatch"),
    ("outer_dims", lambda m: m.outer(_ones(m, 3), _ones(m, 2, 2)), RuntimeError,
     "outer: Expected 1-D argument vec2, but got 2-D"),
    ("trace_dims", lambda m: m.trace(_ones(m, 2, 2, 2)) if m is not tg else tg.ones(2, 2, 2).trace(), RuntimeError,
     "trace: expected a matrix, but got tensor with dim 3"),
    ("einsum_sizes", lambda m: m.einsum("ij,jk->ik", _ones(m, 3, 4), _ones(m, 3, 4)), RuntimeError,
     "einsum\\(\\): subscript j has size 3 for operand 1 which does not broadcast with previously seen size 4"),
    ("einsum_output_subscript", lambda m: m.einsum("ij->ik", _ones(m, 3, 4)), RuntimeError,
     "output subscript k does not appear in the equation for any input operand"),
    ("einsum_repeated_output", lambda m: m.einsum("ij->ii", _ones(m, 3, 4)), RuntimeError,
     "output subscript i appears more than once in the output"),
    ("einsum_operand_count", lambda m: m.einsum("ij,jk->ik", _ones(m, 3, 4)), RuntimeError,
     "fewer operands were provided than specified in the equation"),
    ("einsum_dims", lambda m: m.einsum("ijk->i", _ones(m, 3, 4)), RuntimeError,
     "the number of subscripts in the equation \\(3\\) does not match the number of dimensions \\(2\\)"),
    ("einsum_dot", lambda m: m.einsum("ij..,jk", _ones(m, 3, 4), _ones(m, 4, 2)), RuntimeError,
     "found '.' for operand 0 that is not part of any ellipsis"),
    ("gather_bounds", lambda m: m.gather(_ones(m, 2, 3), 1, m.tensor([[0, 3]])), RuntimeError,
     "index 3 is out of bounds for dimension 1 with size 3"),
    ("cumsum_dim", lambda m: m.cumsum(_ones(m, 2, 3), 2), IndexError, "Dimension out of range"),
]


@pytest.mark.parametrize("name,fn,exc,pattern", ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_match_pytorch(name, fn, exc, pattern):
    with pytest.raises(exc, match=pattern):
        fn(tg)
    torch = pytest.importorskip("torch")
    with pytest.raises(exc, match=pattern):
        fn(torch)


def test_einsum_errors_name_the_equation_and_the_operand_shapes():
    with pytest.raises(RuntimeError, match=re.escape("(equation 'ij,jk->ik', operand shapes [3, 4], [3, 4])")):
        tg.einsum("ij,jk->ik", tg.ones(3, 4), tg.ones(3, 4))


def test_einsum_more_forms_match_numpy():
    rng = np.random.default_rng(3)
    a, b, c = rng.standard_normal((2, 3, 3)), rng.standard_normal((3, 4)), rng.standard_normal((2, 4))
    for eq, ops in [("bii->bi", (a,)), ("bij,jk->bik", (a, b)), ("bij , jk , bk -> bi", (a, b, c)),
                    ("...ii->...", (a,)), ("jk,bk", (b, c)), ("ij->", (b,)), ("bij,bij->", (a, a))]:
        np.testing.assert_allclose(tg.einsum(eq, *[tg.tensor(o) for o in ops]).numpy(),
                                   np.einsum(eq.replace(" ", ""), *ops), rtol=1e-12, err_msg=eq)


# ---------------------------------------------------------------- numpy-style keywords, range indices
@pytest.mark.parametrize("name", ["sum", "mean", "std", "var", "amax", "amin", "prod", "any", "all", "argmax"])
def test_axis_and_keepdims_are_aliases_of_dim_and_keepdim(name):
    x = tg.tensor(np.random.default_rng(0).standard_normal((2, 3)))
    want = getattr(x, name)(dim=1, keepdim=True)
    for got in (getattr(x, name)(axis=1, keepdims=True), getattr(tg, name)(x, axis=1, keepdims=True)):
        assert got.shape == want.shape and np.array_equal(got.numpy(), want.numpy())
    with pytest.raises(TypeError, match="multiple values for argument 'dim'"):
        getattr(x, name)(1, axis=1)


def test_max_min_take_axis_and_keepdims():
    x = tg.tensor([[1.0, 5.0], [4.0, 2.0]])
    assert x.max(axis=1, keepdims=True).values.tolist() == [[5.0], [4.0]]
    assert tg.min(x, axis=0).indices.tolist() == [0, 1]
    assert x.sum(axis=(0, 1)).item() == 12.0


def test_indexing_with_a_range():
    x = tg.arange(12).reshape(3, 4)
    assert x[range(2)].tolist() == x[[0, 1]].tolist()
    assert x[range(1, 3), range(2)].tolist() == [4, 9]
    x[range(2)] = 0
    assert x[:2].sum().item() == 0


# ---------------------------------------------------------------- out=
def test_out_writes_into_out_and_returns_it():
    a, b = tg.tensor([1.0, 2.0]), tg.tensor([3.0, 4.0])
    out = tg.empty(2)
    for fn, args, want in [(tg.add, (a, b), [4.0, 6.0]), (tg.mul, (a, b), [3.0, 8.0]), (tg.sub, (a, b), [-2.0, -2.0]),
                           (tg.exp, (tg.zeros(2),), [1.0, 1.0]), (tg.clamp, (b, None, 3.5), [3.0, 3.5]),
                           (tg.where, (a > 1, a, b), [3.0, 2.0]), (tg.cumsum, (a, 0), [1.0, 3.0])]:
        assert fn(*args, out=out) is out and out.tolist() == want
    assert tg.sum(a, out=tg.empty(())).item() == 3.0
    o = tg.empty(4, 2)
    with pytest.warns(UserWarning, match="was resized"):
        assert tg.cat([a[None], b[None]], out=o) is o and o.shape == (2, 2)


def test_out_resize_warns_like_pytorch_and_casts_to_outs_dtype():
    out = tg.zeros(5)
    with pytest.warns(UserWarning, match=re.escape("An output with one or more elements was resized since it had "
                                                   "shape [5], which does not match the required output shape [2]")):
        tg.add(tg.ones(2), 1, out=out)
    assert out.tolist() == [2.0, 2.0]
    empty = tg.empty(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tg.matmul(tg.ones(2, 3), tg.ones(3), out=empty)  # resizing an empty out is silent
    assert empty.tolist() == [3.0, 3.0]
    wide = tg.zeros(2, dtype=tg.float64)
    tg.add(tg.tensor([1, 2]), 1, out=wide)
    assert wide.dtype is tg.float64 and wide.tolist() == [2.0, 3.0]
    with pytest.raises(RuntimeError, match="add\\(\\): result type Float can't be cast to the desired output type "
                                           "Long"):
        tg.add(tg.ones(2), 1, out=tg.zeros(2, dtype=tg.int64))


def test_out_with_an_input_that_requires_grad_is_pytorchs_error():
    x = tg.ones(2, requires_grad=True)
    msg = re.escape("mul(): functions with out=... arguments don't support automatic differentiation, but one of the "
                    "arguments requires grad.")
    with pytest.raises(RuntimeError, match=msg):
        tg.mul(x, 2, out=tg.zeros(2))
    with tg.no_grad():
        assert tg.mul(x, 2, out=tg.zeros(2)).tolist() == [2.0, 2.0]
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError, match=msg):
        torch.mul(torch.ones(2, requires_grad=True), 2, out=torch.zeros(2))


def test_out_inside_a_compiled_function():
    def f(a, o):
        tg.mul(a, 2, out=o)
        return o + 1

    compiled = tg.compile(f, backend="interpret")
    for k in range(2):
        o = tg.zeros(3)
        res = compiled(tg.full((3,), float(k)), o)
        assert o.tolist() == [2.0 * k] * 3 and res.tolist() == [2.0 * k + 1] * 3


# ---------------------------------------------------------------- interpolate against PyTorch
INTERPOLATE = [
    ((1, 2, 5), dict(size=3)), ((1, 2, 5), dict(scale_factor=1.7)), ((1, 1, 4), dict(scale_factor=0.6, mode="linear")),
    ((2, 1, 3), dict(size=8, mode="linear", align_corners=True)), ((1, 1, 1), dict(size=4, mode="linear")),
    ((1, 1, 7), dict(size=1, mode="linear", align_corners=True)), ((1, 1, 5), dict(size=7, mode="nearest-exact")),
    ((1, 2, 3, 5), dict(scale_factor=(1.5, 0.5))), ((1, 1, 4, 3), dict(size=(3, 7), mode="bilinear")),
    ((1, 1, 3, 4), dict(scale_factor=2.3, mode="bilinear", recompute_scale_factor=True)),
    ((1, 1, 3, 4), dict(scale_factor=2.3, mode="bilinear")),
    ((2, 1, 5, 4), dict(size=(2, 9), mode="bilinear", align_corners=True)),
    ((1, 1, 6, 5), dict(size=(4, 11), mode="nearest-exact")), ((1, 1, 3, 3), dict(scale_factor=3)),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_interpolate_matches_pytorch(dtype):
    torch = _torch()
    rng = np.random.default_rng(4)
    for shape, kw in INTERPOLATE:
        x = rng.standard_normal(shape).astype(dtype)
        ours_x, theirs_x = tg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        ours, theirs = F.interpolate(ours_x, **kw), torch.nn.functional.interpolate(theirs_x, **kw)
        assert tuple(ours.shape) == tuple(theirs.shape), (shape, kw)
        np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-6, atol=1e-6,
                                   err_msg=str((shape, kw)))
        assert ours.grad_fn.name() == theirs.grad_fn.name()
        seed = rng.standard_normal(tuple(ours.shape)).astype(dtype)
        ours.backward(tg.tensor(seed))
        theirs.backward(torch.tensor(seed))
        np.testing.assert_allclose(ours_x.grad.numpy(), theirs_x.grad.numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=str((shape, kw)))


def test_upsample_module():
    up = tg.nn.Upsample(scale_factor=2, mode="bilinear")
    assert repr(up) == "Upsample(scale_factor=2.0, mode='bilinear')"
    assert repr(tg.nn.Upsample(size=3)) == "Upsample(size=3, mode='nearest')"
    x = tg.tensor(np.arange(4.0).reshape(1, 1, 2, 2))
    np.testing.assert_array_equal(up(x).numpy(), F.interpolate(x, scale_factor=2.0, mode="bilinear").numpy())
