"""The structure, selection and order-statistics ops beyond the op table: PyTorch's values, indices (ties
included), dtypes, grad_fn names and gradients for the options the table's rows don't take; outputs whose size
depends on the data under `tracegrad.compile` (a guard on the size, or the tracer's error with strict=True);
in-place reshapes; which results are views; strides; errors."""
import warnings

import numpy as np
import pytest

import tracegrad as tg
from tracegrad.tracer import TraceError

RNG = np.random.default_rng(7)
X = RNG.standard_normal((3, 4))
X3 = RNG.standard_normal((2, 3, 4))
INTS = RNG.integers(0, 5, (3, 4))
TIES = RNG.integers(0, 3, (40, 24)).astype(np.float64)  # rows with many equal values: PyTorch's tie order
NAN = np.nan
W = RNG.standard_normal(12).astype(np.float32)

# (name, fn(m, *tensors), input arrays); float inputs require grad, so gradients and grad_fn names are compared
PARITY = [
    ("flip_dims", lambda m, x: m.flip(x, (0, 2)), [X3]),
    ("roll_dims", lambda m, x: x.roll((1, -2), (0, 2)), [X3]),
    ("rot90_neg", lambda m, x: x.rot90(-1, (2, 0)), [X3]),
    ("tril_int", lambda m, x: m.tril(x, -1), [INTS]),
    ("diag_embed_dims", lambda m, x: x.diag_embed(-1, 2, 0), [X]),
    ("diagonal_dims", lambda m, x: m.diagonal(x, 1, 2, 0), [X3]),
    ("diag_matrix", lambda m, x: x.diag(-1), [X]),
    ("repeat_interleave_counts", lambda m: m.repeat_interleave(m.tensor([2, 0, 3])), []),
    ("repeat_interleave_flat", lambda m, x: m.repeat_interleave(x, m.tensor([2])), [X]),
    ("meshgrid_ij", lambda m, a, b: m.meshgrid(a, b, indexing="ij")[0], [X[0], X[1, :2]]),
    ("kron_3d", lambda m, a, b: a.kron(b), [X3, X[0]]),
    ("cross_broadcast", lambda m, a, b: m.cross(a, b, dim=-1), [X3[..., :3], X[None, :, :3]]),
    ("cdist_batched", lambda m, a, b: m.cdist(a, b), [X3, RNG.standard_normal((2, 5, 4))]),
    ("cdist_inf", lambda m, a, b: m.cdist(a, b, p=float("inf")), [X, RNG.standard_normal((5, 4))]),
    ("tensordot_int", lambda m, a, b: m.tensordot(a, b, 2), [X3, RNG.standard_normal((3, 4, 2))]),
    ("block_diag_promotes", lambda m, a, b: m.block_diag(a, b), [INTS, X[:2]]),
    ("hstack_1d", lambda m, a, b: m.hstack([a, b]), [X[0], X[1]]),
    ("atleast_2d_scalar", lambda m, a: m.atleast_2d(a.sum()), [X]),
    ("movedim_lists", lambda m, x: m.movedim(x, (0, 1), (2, 0)), [X3]),
    ("nonzero_tuple", lambda m, x: m.nonzero(x > 0, as_tuple=True)[1], [X3]),
    ("nonzero_scalar", lambda m: m.nonzero(m.tensor(5)), []),
    ("masked_select_broadcast", lambda m, x, v: m.masked_select(v, x > 0), [X, X[0]]),
    ("index_select_scalar_index", lambda m, x: x.index_select(0, m.tensor(1)), [X]),
    ("take_along_dim_broadcast", lambda m, x: m.take_along_dim(x, m.tensor([[0, 3, 3]]).T, 1), [X]),
    ("scatter_value", lambda m, x: x.scatter(1, m.tensor([[3], [0], [1]]), -2.0), [X]),
    ("scatter_add_repeats", lambda m, x, s: m.scatter_add(x, 1, m.tensor([[0, 0], [3, 3], [1, 1]]), s),
     [X, RNG.standard_normal((3, 2))]),
    ("index_fill_tensor", lambda m, x, v: x.index_fill(1, m.tensor([0, 2]), v), [X, np.array(2.0)]),
    ("unique", lambda m, x: m.unique(x, return_inverse=True, return_counts=True)[1], [INTS]),
    ("unique_nan", lambda m: m.unique(m.tensor([1.0, NAN, 2.0, NAN, 1.0])), []),
    ("unique_dim", lambda m, x: m.unique(x, dim=1, return_inverse=True, return_counts=True)[0],
     [INTS[:, [0, 1, 0, 2]]]),
    ("unique_consecutive_dim", lambda m: m.unique_consecutive(
        m.tensor([[1, 1, 2], [1, 1, 3]]), return_inverse=True, return_counts=True, dim=1)[2], []),
    ("bincount_weights", lambda m, x: m.bincount(x.reshape(-1), m.tensor(W), minlength=8), [INTS]),
    ("bincount_int_weights", lambda m, x: m.bincount(x.reshape(-1), x.reshape(-1)), [INTS]),
    ("histc_data_range", lambda m, x: m.histc(x, 5), [X.astype(np.float32)]),
    ("histc_edges_nan", lambda m: m.histc(m.tensor([0.0, 1, 2, 3, 4, NAN, 5]), 4, 0, 4), []),
    ("searchsorted_rows_right", lambda m: m.searchsorted(m.tensor([[1, 3], [2, 4]]), m.tensor([[3], [3]]), right=True),
     []),
    ("searchsorted_scalar", lambda m: m.searchsorted(m.tensor([1.0, 3.0]), 2.0), []),
    ("searchsorted_sorter", lambda m: m.searchsorted(m.tensor([5, 1, 3]), m.tensor([2, 4]), side="right",
                                                     sorter=m.tensor([1, 2, 0])), []),
    ("cummax_nan_ties", lambda m: m.cummax(m.tensor([1.0, 3, 3, 2, NAN, 5, NAN]), 0).indices, []),
    ("cummin_ties", lambda m: m.cummin(m.tensor([1, 3, 1, 1, 0]), 0).indices, []),
    ("logcumsumexp_3d", lambda m, x: m.logcumsumexp(x, 0), [X3]),
    ("median_ties", lambda m, x: x.median(), [np.array([1.0, 2, 2, 3, 2, 0])]),
    ("median_dim_ties", lambda m, x: x.median(1).indices, [TIES]),
    ("median_dim_nan", lambda m: m.tensor([[1.0, NAN, 3, NAN], [2, 1, 2, 1]]).median(1).indices, []),
    ("nanmedian_dim", lambda m, x: x.nanmedian(1, keepdim=True).values,
     [np.array([[1.0, NAN, 3, 2, NAN], [4, 2, 2, NAN, 1]])]),
    ("kthvalue_ties", lambda m, x: x.kthvalue(9, 1).indices, [TIES]),
    ("kthvalue_ties_dim0", lambda m, x: m.kthvalue(x, 11, 0, keepdim=True).indices, [TIES]),
    ("mode_ties", lambda m, x: x.mode(1).indices, [TIES[:, :16]]),
    ("mode_grad", lambda m, x: x.mode(0).values, [np.array([[1.0, 2], [1, 3], [2, 3]])]),
    ("quantile_nearest", lambda m, x: x.quantile(m.tensor([0.125, 0.375, 0.625, 1.0], dtype=m.float64),
                                                 interpolation="nearest"), [RNG.standard_normal(5)]),
    ("quantile_lower_higher", lambda m, x: m.stack([x.quantile(0.3, 1, interpolation="lower"),
                                                   x.quantile(0.3, 1, interpolation="higher")]), [X3]),
    ("quantile_nan", lambda m: m.tensor([[1.0, NAN, 3], [1, 2, 3]]).quantile(0.5, dim=1), []),
    ("nanquantile_all_nan", lambda m: m.tensor([[1.0, NAN, 3, 4], [NAN] * 4]).nanquantile(
        m.tensor([0.2, 0.5]), dim=1), []),
]


@pytest.mark.parametrize("fn,arrays", [c[1:] for c in PARITY], ids=[c[0] for c in PARITY])
def test_same_values_indices_grad_fn_names_and_gradients_as_pytorch(fn, arrays):
    torch = pytest.importorskip("torch")
    results = []
    for m in (tg, torch):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ins = [m.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
            results.append((ins, fn(m, *ins)))
    (ours_in, ours), (theirs_in, theirs) = results
    assert tuple(ours.shape) == tuple(theirs.shape)
    assert str(ours.dtype).split(".")[-1] == str(theirs.dtype).split(".")[-1]
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-6, atol=1e-9)
    assert ours.requires_grad == theirs.requires_grad
    if not theirs.requires_grad:
        return
    assert ours.grad_fn.name() == theirs.grad_fn.name().replace("torch::autograd::", "")
    seed = RNG.standard_normal(tuple(ours.shape))
    ours.backward(tg.tensor(seed).to(ours.dtype))
    theirs.backward(torch.tensor(seed).to(theirs.dtype))
    for a, b in zip(ours_in, theirs_in):
        if b.grad is not None:
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-6, atol=1e-9)


def test_tril_and_triu_indices_follow_pytorch():
    torch = pytest.importorskip("torch")
    for args in [(3, 3, 0), (3, 4, 1), (4, 3, -1), (2, 5, -3), (0, 3, 0)]:
        assert tg.tril_indices(*args).tolist() == torch.tril_indices(*args).tolist()
        assert tg.triu_indices(*args).tolist() == torch.triu_indices(*args).tolist()
    assert tg.tril_indices(3, 3, dtype=tg.int32).dtype is tg.int32


# ------------------------------------------------------------------------------------------ data-dependent sizes
def test_data_dependent_sizes_are_a_guard_under_compile():
    """masked_select's output size is its count: the graph is specialized on it behind a guard, so other values
    with the same count run the cached graph (with the gradient), and another count traces again."""
    def step(x):
        out = tg.masked_select(x, x > 0)
        (out * out).sum().backward()
        return out, x.grad

    f = tg.compile(step, backend="interpret")
    for values in ([1.0, -1.0, 2.0, -3.0], [5.0, -1.0, 7.0, -2.0], [1.0, 2.0, 3.0, -1.0]):
        x = tg.tensor(values, requires_grad=True)
        out, grad = f(x)
        assert out.tolist() == [v for v in values if v > 0]
        assert grad.tolist() == [2 * v if v > 0 else 0.0 for v in values]
    assert len(f.retraces) == 2  # the first call, then the third (its count is 3, not 2)
    assert "masked_select" in f.retraces[1]


def test_unique_and_nonzero_compile_behind_a_guard_and_raise_with_strict():
    f = tg.compile(lambda x: (tg.unique(x, return_counts=True), x.nonzero()), backend="interpret")
    for data in ([3, 1, 3, 0], [7, 2, 7, 2], [5, 5, 0, 4]):
        x = tg.tensor(data)
        (values, counts), nz = f(x)
        (want_values, want_counts), want_nz = tg.unique(x, return_counts=True), x.nonzero()
        assert values.tolist() == want_values.tolist() and counts.tolist() == want_counts.tolist()
        assert nz.tolist() == want_nz.tolist()
    strict = tg.compile(lambda x: tg.masked_select(x, x > 0), backend="interpret", strict=True)
    with pytest.raises(TraceError, match="masked_select"):
        strict(tg.tensor([1.0, -1.0]))


def test_a_constant_mask_needs_no_guard():
    mask = np.array([True, False, True])
    f = tg.compile(lambda x: x.masked_select(tg.from_numpy(mask)), backend="interpret", strict=True)
    assert f(tg.tensor([1.0, 2.0, 3.0])).tolist() == [1.0, 3.0]
    assert f(tg.tensor([4.0, 5.0, 6.0])).tolist() == [4.0, 6.0]


# ------------------------------------------------------------------------------------------ in-place reshapes, views
def test_in_place_reshapes_change_the_tensor_itself_and_its_version():
    a = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = a * 1
    z = y * y  # saves y
    assert y.unsqueeze_(0) is y and y.shape == (1, 3) and y.grad_fn.name() == "UnsqueezeBackward1"
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        z.sum().backward()
    with pytest.raises(RuntimeError, match="leaf Variable"):
        a.unsqueeze_(0)
    x = tg.zeros(2, 3)
    assert x.t_().shape == (3, 2) and x.transpose_(0, 1).shape == (2, 3) and x.squeeze_().shape == (2, 3)


def test_in_place_reshape_of_an_argument_under_compile_raises():
    f = tg.compile(lambda x: x.unsqueeze_(0), backend="interpret")
    with pytest.raises(TraceError, match="unsqueeze_"):
        f(tg.ones(2))


def test_views_and_copies_follow_pytorch():
    x = tg.zeros(4)
    x.narrow(0, 1, 2).fill_(1.0)  # narrow is a view
    assert x.tolist() == [0.0, 1.0, 1.0, 0.0]
    m = tg.zeros(3, 3)
    m.diagonal().fill_(2.0)  # the diagonal of a contiguous matrix is a view
    assert m.tolist() == (2 * np.eye(3)).tolist()
    flipped, rolled = x.flip(0), x.roll(1)  # copies: a later write into x doesn't show
    x.add_(10.0)
    assert flipped.tolist() == [0.0, 1.0, 1.0, 0.0] and rolled.tolist() == [0.0, 0.0, 1.0, 1.0]


def test_strides_contiguity_and_data_pointers_follow_pytorch():
    torch = pytest.importorskip("torch")
    ours, theirs = tg.arange(24).reshape(2, 3, 4), torch.arange(24).reshape(2, 3, 4)
    for f in (lambda t: t, lambda t: t.transpose(0, 2), lambda t: t.narrow(2, 1, 2), lambda t: t[:, ::2],
              lambda t: t.expand(5, 2, 3, 4), lambda t: t.movedim(0, 1)):
        a, b = f(ours), f(theirs)
        assert a.stride() == b.stride() and a.stride(-1) == b.stride(-1)
        assert a.is_contiguous() == b.is_contiguous()
        assert a.data_ptr() - ours.data_ptr() == b.data_ptr() - theirs.data_ptr()
    assert ours[0].H.tolist() == theirs[0].H.tolist() and ours.mH.stride() == theirs.mH.stride()


# ------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("call,error,match", [
    (lambda: tg.flip(tg.ones(2, 2), (0, 0)), RuntimeError, "appears multiple times"),
    (lambda: tg.ones(4).narrow(0, 3, 2), RuntimeError, r"start \(3\) \+ length \(2\) exceeds"),
    (lambda: tg.ones(2, 2).scatter(0, tg.tensor([[0]], dtype=tg.int32), 1.0), RuntimeError, "int64 for index"),
    (lambda: tg.ones(3).quantile(1.5), RuntimeError, r"range \[0, 1\]"),
    (lambda: tg.ones(3).kthvalue(4), RuntimeError, "k out of range"),
    (lambda: tg.ones(3).masked_select(tg.ones(3)), RuntimeError, "BoolTensor"),
    (lambda: tg.meshgrid(tg.ones(2), indexing="yx"), RuntimeError, "indexing must be one of"),
    (lambda: tg.bincount(tg.tensor([1, -1])), RuntimeError, "non-negative"),
    (lambda: tg.cdist(tg.ones(2, 3), tg.ones(2, 4)), RuntimeError, "same number of columns"),
    (lambda: tg.ones(2, 3, 4).H, RuntimeError, "mH"),
])
def test_errors_name_the_op_and_follow_pytorchs_types(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_meshgrid_without_indexing_warns_as_pytorch():
    with pytest.warns(UserWarning, match="indexing argument"):
        gx, gy = tg.meshgrid(tg.tensor([1, 2]), tg.tensor([3, 4, 5]))
    assert gx.shape == gy.shape == (2, 3)
