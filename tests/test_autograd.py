"""PyTorch's autograd semantics: the classic walkthrough, accumulation, graphs, hooks, grad modes, in-place."""
import numpy as np
import pytest

import tracegrad as tg


def test_walkthrough_mean_of_squares_gives_4_5():
    x = tg.ones(2, 2, requires_grad=True)
    y = x + 2
    assert y.grad_fn.name() == "AddBackward0" and x.grad_fn is None and x.is_leaf and not y.is_leaf
    z = y * y * 3
    out = z.mean()
    assert repr(out) == "tensor(27., grad_fn=<MeanBackward0>)"
    out.backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 2), 4.5, np.float32))


def test_walkthrough_a2_plus_2b3():
    a = tg.tensor(2.0, requires_grad=True)
    b = tg.tensor(4.0, requires_grad=True)
    (a ** 2 + 2 * b ** 3).backward()
    assert a.grad.item() == 4.0 and b.grad.item() == 96.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_walkthrough_doubling_loop_vector_jacobian_product(seed):
    tg.manual_seed(seed)
    x = tg.randn(3, requires_grad=True)
    y = x * 2
    doublings = 1
    while y.data.norm() < 1000:
        y = y * 2
        doublings += 1
    v = tg.tensor([0.1, 1.0, 0.0001])
    y.backward(v)
    np.testing.assert_allclose(x.grad.numpy(), v.numpy() * 2.0 ** doublings, rtol=1e-6)
    np.testing.assert_allclose(y.detach().numpy(), x.detach().numpy() * 2.0 ** doublings, rtol=1e-6)


def test_requires_grad_propagates_and_defaults_to_false():
    a, b = tg.ones(2), tg.ones(2, requires_grad=True)
    assert not a.requires_grad and not (a * 2).requires_grad
    assert (a * b).requires_grad
    a.requires_grad_()
    assert a.requires_grad and a.is_leaf


def test_grad_fn_chain_and_next_functions():
    x = tg.ones(2, requires_grad=True)
    w = tg.ones(2)
    y = (x * w).sum()
    mul = y.grad_fn.next_functions[0][0]
    assert y.grad_fn.name() == "SumBackward0" and mul.name() == "MulBackward0"
    acc, none = mul.next_functions
    assert acc[0].name() == "AccumulateGrad" and acc[0].variable is x and none == (None, 0)
    assert repr(mul).startswith("<MulBackward0 object at 0x")


def test_gradients_accumulate_until_zeroed():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    for _ in range(3):
        (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [6.0, 12.0])
    x.grad.zero_()
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0])
    x.grad = None
    (3 * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])


def test_leaf_grad_does_not_alias_the_incoming_gradient():
    x = tg.zeros(2, requires_grad=True)
    v = tg.tensor([1.0, 2.0])
    x.backward(v)
    x.backward(v)
    np.testing.assert_array_equal(v.numpy(), [1.0, 2.0])
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0])


def test_retain_graph_allows_a_second_backward():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 8.0])


def test_graph_without_saved_tensors_can_be_walked_twice_as_in_pytorch():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = (x + 1).sum()
    y.backward()
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0])


def test_create_graph_gives_second_and_third_derivatives():
    x = tg.tensor(3.0, requires_grad=True)
    (d1,) = tg.autograd.grad(x ** 3, x, create_graph=True)
    (d2,) = tg.autograd.grad(d1, x, create_graph=True)
    (d3,) = tg.autograd.grad(d2, x)
    assert (d1.item(), d2.item(), d3.item()) == (27.0, 18.0, 6.0)


def test_backward_with_create_graph_leaves_a_differentiable_grad():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    (x ** 3).sum().backward(create_graph=True)
    assert x.grad.requires_grad
    g = x.grad
    x.grad = None
    g.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [6.0, 12.0])


def test_autograd_grad_does_not_touch_dot_grad_and_accepts_generators():
    w1, w2 = tg.tensor([1.0, 2.0], requires_grad=True), tg.tensor(3.0, requires_grad=True)
    loss = (w1 * w2).sum()
    g1, g2 = tg.autograd.grad(loss, (p for p in [w1, w2]))
    np.testing.assert_array_equal(g1.numpy(), [3.0, 3.0])
    assert g2.item() == 3.0 and w1.grad is None and w2.grad is None


def test_autograd_grad_with_grad_outputs_and_multiple_outputs():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    (g,) = tg.autograd.grad([x * 2, x * x], [x], grad_outputs=[tg.ones(2), tg.tensor([1.0, 10.0])])
    np.testing.assert_array_equal(g.numpy(), [2 + 2, 2 + 40])


def test_autograd_grad_allow_unused():
    x, y = tg.ones(2, requires_grad=True), tg.ones(2, requires_grad=True)
    gx, gy = tg.autograd.grad((x * 2).sum(), [x, y], allow_unused=True)
    assert gy is None and gx is not None


def test_autograd_grad_for_a_non_leaf_input():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    (gh,) = tg.autograd.grad((h * h).sum(), h)
    np.testing.assert_array_equal(gh.numpy(), [6.0, 12.0])


def test_autograd_backward_with_inputs_accumulates_only_there():
    x, y = tg.ones(2, requires_grad=True), tg.ones(2, requires_grad=True)
    tg.autograd.backward((x * y).sum(), inputs=[x])
    assert y.grad is None and x.grad is not None
    (x * y * 2).sum().backward(inputs=[y])
    np.testing.assert_array_equal(y.grad.numpy(), [2.0, 2.0])


def test_no_grad_enable_grad_set_grad_enabled():
    x = tg.ones(2, requires_grad=True)
    with tg.no_grad():
        assert not (x * 2).requires_grad
        with tg.enable_grad():
            assert (x * 2).requires_grad
    with tg.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert tg.is_grad_enabled()
    tg.set_grad_enabled(False)
    assert not tg.is_grad_enabled()
    tg.set_grad_enabled(True)

    @tg.no_grad()
    def doubled(t):
        return t * 2

    @tg.set_grad_enabled(False)
    def tripled(t):
        return t * 3

    assert tg.is_grad_enabled()
    assert not doubled(x).requires_grad and not tripled(x).requires_grad and (x * 2).requires_grad


def test_detach_shares_storage_and_leaves_the_graph():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    d = y.detach()
    assert not d.requires_grad and d.grad_fn is None
    d[0] = 100.0
    assert y[0].item() == 100.0  # same storage
    y.detach_()
    assert y.grad_fn is None and not y.requires_grad


def test_data_is_untracked_shared_and_assignable():
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    loss = (w * w).sum()
    loss.backward()
    w.data = w.data - 0.5 * w.grad  # the manual update of PyTorch tutorials
    assert w.requires_grad and w.is_leaf
    np.testing.assert_array_equal(w.detach().numpy(), [0.0, 0.0])
    w.data.add_(1.0)
    np.testing.assert_array_equal(w.detach().numpy(), [1.0, 1.0])


def test_retain_grad_on_a_non_leaf():
    x = tg.ones(3, requires_grad=True)
    y = x * 2
    y.retain_grad()
    (y * y).sum().backward()
    assert y.retains_grad
    np.testing.assert_array_equal(y.grad.numpy(), [4.0, 4.0, 4.0])


def test_non_leaf_grad_is_none_with_a_warning():
    x = tg.ones(3, requires_grad=True)
    y = x * 2
    y.sum().backward()
    with pytest.warns(UserWarning, match="not a leaf Tensor"):
        assert y.grad is None


def test_hooks_see_and_may_replace_the_gradient():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    h = x.register_hook(lambda g: seen.append(g.numpy().copy()))
    y = x * 3
    y.register_hook(lambda g: g * 10)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [30.0, 30.0])
    np.testing.assert_array_equal(seen[0], [30.0, 30.0])
    h.remove()
    (x * 1).sum().backward()
    assert len(seen) == 1


def test_gradient_of_a_value_used_several_times_is_summed():
    x = tg.tensor(2.0, requires_grad=True)
    y = x * x + x * 3 + x
    y.backward()
    assert x.grad.item() == 2 * 2 + 3 + 1


def test_broadcast_gradients_are_summed_to_the_input_shape():
    a = tg.ones(3, 1, requires_grad=True)
    b = tg.ones(4, requires_grad=True)
    (a * b).sum().backward()
    assert a.grad.shape == (3, 1) and b.grad.shape == (4,)
    np.testing.assert_array_equal(b.grad.numpy(), [3.0] * 4)


def test_promoted_operand_gets_a_gradient_of_its_own_dtype():
    a = tg.ones(2, requires_grad=True)  # float32
    b = tg.ones(2, dtype=tg.float64, requires_grad=True)
    out = a * b
    assert out.dtype is tg.float64
    out.sum().backward()
    assert a.grad.dtype is tg.float32 and b.grad.dtype is tg.float64


def test_norm_gradient_at_the_origin_is_zero_as_in_pytorch():
    x = tg.zeros(3, requires_grad=True)
    x.norm().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 0.0])


def test_relu_gradient_at_zero_is_zero_and_maximum_splits_ties():
    x = tg.tensor([0.0, 1.0], requires_grad=True)
    x.relu().sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 1.0])
    a, b = tg.tensor(1.0, requires_grad=True), tg.tensor(1.0, requires_grad=True)
    tg.maximum(a, b).backward()
    assert a.grad.item() == 0.5 and b.grad.item() == 0.5


def test_max_with_dim_sends_the_gradient_to_one_index_max_spreads_over_ties():
    x = tg.tensor([[1.0, 3.0, 3.0]], requires_grad=True)
    x.max(dim=1).values.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0.0, 1.0, 0.0]])
    x.grad = None
    x.max().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0.0, 0.5, 0.5]])


def test_in_place_on_a_non_leaf_is_recorded():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    b = x * 1
    b.mul_(3)
    b += 1
    assert b.grad_fn.name() == "AddBackward0" and b._version == 2
    b.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])


def test_in_place_with_an_operand_that_requires_grad():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    w = tg.tensor([5.0, 7.0], requires_grad=True)
    b = x * 2
    b.mul_(w)  # d/dw needs b's value before the write
    b.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [2.0, 4.0])
    np.testing.assert_array_equal(x.grad.numpy(), [10.0, 14.0])


def test_setitem_on_a_non_leaf_records_copy_slices():
    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = x * 2
    b[0] = 10.0
    assert b.grad_fn.name() == "CopySlices"
    b.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 2.0, 2.0])


def test_setitem_of_a_value_that_requires_grad_into_a_plain_tensor():
    buf = tg.zeros(3)
    v = tg.tensor(2.0, requires_grad=True)
    buf[1] = v
    assert buf.requires_grad and not buf.is_leaf
    (buf * buf).sum().backward()
    assert v.grad.item() == 4.0


def test_in_place_under_no_grad_on_a_leaf_is_allowed_and_bumps_the_version():
    w = tg.ones(2, requires_grad=True)
    with tg.no_grad():
        w.sub_(0.5)
        w *= 2
    assert w._version == 2 and w.is_leaf and w.requires_grad
    np.testing.assert_array_equal(w.detach().numpy(), [1.0, 1.0])


def test_in_place_ops_values():
    x = tg.tensor([1.0, -2.0, 3.0])
    x.add_(1).mul_(2).sub_(1, alpha=2).div_(2)
    np.testing.assert_array_equal(x.numpy(), [1.0, -2.0, 3.0])
    x.clamp_(-1, 1)
    np.testing.assert_array_equal(x.numpy(), [1.0, -1.0, 1.0])
    x.fill_(7)
    np.testing.assert_array_equal(x.numpy(), [7.0] * 3)
    x.copy_(tg.tensor([1, 2, 3]))
    np.testing.assert_array_equal(x.numpy(), [1.0, 2.0, 3.0])
    x /= 2
    np.testing.assert_array_equal(x.numpy(), [0.5, 1.0, 1.5])
    x.zero_()
    np.testing.assert_array_equal(x.numpy(), [0.0] * 3)
    y = tg.zeros(2, 3)
    y.copy_(tg.tensor([1.0, 2.0, 3.0]))  # broadcast source
    np.testing.assert_array_equal(y.numpy(), [[1, 2, 3], [1, 2, 3]])


def test_zero_on_a_non_leaf_keeps_it_in_the_graph_with_zero_gradient():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y.zero_()
    assert y.requires_grad
    (y + x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0])


def test_views_share_the_version_counter_of_their_base():
    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 1
    v = y[1:]
    with tg.no_grad():
        y.add_(1)
    assert v._version == y._version == 1




def test_python_classic_net_update_styles_agree():
    """Manual `.data` update, autograd.grad, and hand-written SGD on the same tiny linear model agree."""
    tg.manual_seed(0)
    x, y = tg.randn(8, 3), tg.randn(8, 1)
    w0 = tg.randn(3, 1)
    results = []
    for style in ("data", "grad"):
        w = w0.clone().requires_grad_()
        for _ in range(3):
            loss = ((x @ w - y) ** 2).mean()
            if style == "data":
                w.grad = None
                loss.backward()
                w.data = w.data - 0.1 * w.grad
            else:
                (g,) = tg.autograd.grad(loss, [w])
                with tg.no_grad():
                    w -= 0.1 * g
        results.append(w.detach().numpy())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-6)


def test_gradcheck_catches_a_wrong_gradient():
    x = tg.randn(3, dtype=tg.float64, requires_grad=True)
    with pytest.raises(AssertionError, match="Jacobian mismatch"):
        tg.autograd.gradcheck(lambda t: t.detach() * t, (x,))  # autograd misses d/dt through detach


def test_python_zero_constants_keep_their_sign():
    x = tg.tensor([1.0, 2.0])
    assert not np.signbit((x * 0.0).numpy()).any()
    assert np.signbit((x * -0.0).numpy()).all()  # the cached 0.0 must not be reused for -0.0
    assert not np.signbit((x * 0.0).numpy()).any()


def test_min_max_of_int64_extremes():
    lo, hi = np.iinfo(np.int64).min, np.iinfo(np.int64).max
    x = tg.tensor([[lo, 0, hi], [3, lo, 5]])
    assert x.min().item() == lo and x.max().item() == hi
    assert x.amin(1).tolist() == [lo, lo] and x.argmin(1).tolist() == [0, 1]
    values, indices = x.min(dim=0)
    assert values.tolist() == [lo, lo, 5] and indices.tolist() == [0, 1, 1]
    assert x.argmin().item() == 0 and x.argmax().item() == 2


@pytest.mark.parametrize("op,grad", [(lambda b: b * 2.0, 2.0), (lambda b: b * tg.tensor(2.0), 2.0),
                                     (lambda b: b @ tg.ones(2, 3), 3.0)])
def test_an_operand_saved_only_for_a_gradient_nobody_needs_may_change_in_place(op, grad):
    # PyTorch saves `b` for mul/matmul only if the other operand needs a gradient, so this backward works there
    a = tg.tensor([[1.0, 2.0]], requires_grad=True)
    b = a * 1
    c = op(b)
    b.add_(1)
    c.sum().backward()
    assert a.grad.tolist() == [[grad, grad]]


def test_an_operand_saved_for_the_other_operands_gradient_still_raises_when_changed():
    a = tg.tensor([1.0, 2.0], requires_grad=True)
    w = tg.tensor([3.0, 4.0], requires_grad=True)
    b = a * 1
    c = b * w  # w's gradient reads b
    b.add_(1)
    with pytest.raises(RuntimeError, match=r"modified by an inplace operation.*saved by MulBackward0"):
        c.sum().backward()


def test_a_new_grad_is_laid_out_like_its_parameter():
    """PyTorch's gradient layout contract: the weight gradient of ``x @ w.T`` is computed as a transposed view,
    but ``.grad`` (and so optimizer state cloned from it) has the parameter's row-major layout."""
    lin = tg.nn.Linear(5, 3)
    opt = tg.optim.SGD(lin.parameters(), lr=0.1, momentum=0.9)
    lin(tg.ones(4, 5)).sum().backward()
    opt.step()
    w = lin.weight
    assert w.grad.numpy().flags.c_contiguous and opt.state[w]["momentum_buffer"].numpy().flags.c_contiguous
    f = tg.ones(3, 2).numpy().T  # a column-major parameter keeps a column-major gradient
    p = tg.from_numpy(np.array(f, order="F")).requires_grad_()
    (p * 2).sum().backward()
    assert p.grad.numpy().flags.f_contiguous and p.grad.tolist() == [[2.0] * 3] * 2


# PyTorch 2.13's gradients at x = [nan, 0, 2, -2] (and of max over [1, nan, 3]), measured with torch
NAN_CONVENTIONS = [
    ("relu", lambda x: x.relu(), [1.0, 0.0, 1.0, 0.0]),  # threshold_backward: masked where x <= 0 only
    ("abs", lambda x: x.abs(), [0.0, 0.0, 1.0, -1.0]),  # sign(nan) = 0
    ("maximum", lambda x: tg.maximum(x, tg.tensor(0.0)), [1.0, 0.5, 1.0, 0.0]),  # nan: both sides get g
    ("sign", lambda x: x.sign(), [0.0, 0.0, 0.0, 0.0]),  # differentiable, zero derivative
    ("pow0", lambda x: x ** 0, [0.0, 0.0, 0.0, 0.0]),  # d/dx x**0 = 0, even at 0 and nan
    # clamp: the gradient passes where min <= x <= max, which nan is not
    ("clamp", lambda x: x.clamp(-1.0, 1.0), [0.0, 1.0, 0.0, 0.0]),
    ("clamp_min", lambda x: x.clamp(min=0.0), [0.0, 1.0, 1.0, 0.0]),
    ("clamp_max", lambda x: x.clamp(max=0.0), [0.0, 1.0, 0.0, 1.0]),
    ("clamp_tensors", lambda x: x.clamp(tg.tensor(-1.0), tg.tensor(1.0)), [0.0, 1.0, 0.0, 0.0]),
    ("minimum", lambda x: tg.minimum(x, tg.tensor(0.0)), [1.0, 0.5, 0.0, 1.0]),  # 0.0 where masked, never -0.0
]


@pytest.mark.parametrize("name,fn,expected", NAN_CONVENTIONS, ids=[c[0] for c in NAN_CONVENTIONS])
def test_gradients_at_nan_and_zero_follow_pytorch(name, fn, expected):
    x = tg.tensor([float("nan"), 0.0, 2.0, -2.0], requires_grad=True)
    y = fn(x)
    assert y.requires_grad
    y.sum().backward()
    assert x.grad.tolist() == expected


def test_the_gradient_of_a_nan_maximum_goes_to_the_nan():
    x = tg.tensor([1.0, float("nan"), 3.0], requires_grad=True)
    x.max().backward()
    assert x.grad.tolist() == [0.0, 1.0, 0.0]


@pytest.mark.parametrize("fn", [lambda x: x.relu(), lambda x: x.abs()], ids=["relu", "abs"])
def test_second_derivatives_of_relu_and_abs_are_zeros_not_an_error(fn):
    """As in PyTorch (a gradient penalty through a ReLU network needs it): the first gradient, taken with
    create_graph=True, requires grad, and its own gradient is zeros."""
    x = tg.tensor([1.0, -1.0, 3.0], requires_grad=True)
    (g,) = tg.autograd.grad(fn(x).sum(), x, create_graph=True)
    assert g.requires_grad
    (g2,) = tg.autograd.grad(g.sum(), x)
    assert g2.tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("name,fn,expected", NAN_CONVENTIONS, ids=[c[0] for c in NAN_CONVENTIONS])
def test_gradients_at_nan_and_zero_equal_pytorchs(name, fn, expected):
    torch = pytest.importorskip("torch")
    data = [float("nan"), 0.0, 2.0, -2.0]
    ours, theirs = tg.tensor(data, requires_grad=True), torch.tensor(data, requires_grad=True)
    fn(ours).sum().backward()
    fn_torch = {"clamp_tensors": lambda x: x.clamp(torch.tensor(-1.0), torch.tensor(1.0)),
                "maximum": lambda x: torch.maximum(x, torch.tensor(0.0)),
                "minimum": lambda x: torch.minimum(x, torch.tensor(0.0))}.get(name, fn)
    fn_torch(theirs).sum().backward()
    assert ours.grad.tolist() == theirs.grad.tolist() == expected
    assert np.signbit(ours.grad.numpy()).tolist() == np.signbit(theirs.grad.numpy()).tolist()


def test_clamp_bounds_get_no_gradient_at_nan():
    x = tg.tensor([float("nan"), -3.0, 3.0, 0.5], requires_grad=True)
    lo, hi = tg.tensor(-1.0, requires_grad=True), tg.tensor(1.0, requires_grad=True)
    y = x.clamp(lo, hi)
    assert np.isnan(y[0].item()) and y.grad_fn.name() == "ClampBackward0"
    y.sum().backward()
    assert (x.grad.tolist(), lo.grad.item(), hi.grad.item()) == ([0.0, 0.0, 0.0, 1.0], 1.0, 1.0)


# ------------------------------------------------------------------ integer division by zero, floor division's graph
INT_DIVISIONS = [
    ("floor_divide", lambda a, b: a // b),
    ("remainder", lambda a, b: a % b),
    ("div_trunc", lambda a, b: tg.div(a, b, rounding_mode="trunc")),
    ("div_floor", lambda a, b: tg.div(a, b, rounding_mode="floor")),
]


@pytest.mark.parametrize("name,fn", INT_DIVISIONS, ids=[c[0] for c in INT_DIVISIONS])
@pytest.mark.parametrize("divisor", ["tensor", "number"])
def test_integer_division_by_zero_raises_as_pytorch(name, fn, divisor):
    a = tg.tensor([5, -7, 3])
    b = tg.tensor([1, 2, 0]) if divisor == "tensor" else 0
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):  # PyTorch: RuntimeError("ZeroDivisionError")
        fn(a, b)
    assert fn(tg.tensor([], dtype=tg.int64), 0).shape == (0,)  # nothing is divided: no error
    inf, nan = float("inf"), float("nan")  # floats divide by zero into inf and nan
    expected = [nan, nan, nan] if name == "remainder" else [inf, -inf, nan]
    assert np.array_equal(fn(tg.tensor([5.0, -7.0, 0.0]), 0.0).numpy(), expected, equal_nan=True)


@pytest.mark.parametrize("backend", ["interpret", "numba"])
def test_compiled_integer_division_by_zero_raises_too(backend):
    c = tg.compile(lambda a, b: (a // b + a % b + tg.fmod(a, b)) * 2, backend=backend,
                   **({"tiered": False} if backend == "numba" else {}))
    assert c(tg.tensor([5, -7]), tg.tensor([2, 3])).tolist() == [(2 + 1 + 1) * 2, (-3 + 2 - 1) * 2]
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        c(tg.tensor([5, -7]), tg.tensor([2, 0]))
    c = tg.compile(lambda a, b: tg.fmod(a, b) * 2, backend=backend, **({"tiered": False} if backend == "numba" else {}))
    assert c(tg.tensor([5, -7]), tg.tensor([2, 3])).tolist() == [2, -2]
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):  # fmod of integers stays out of the kernels
        c(tg.tensor([5, -7]), tg.tensor([2, 0]))


def test_integer_division_by_zero_matches_pytorch():
    torch = pytest.importorskip("torch")
    for name, fn in INT_DIVISIONS:
        fn_torch = {"div_trunc": lambda a, b: torch.div(a, b, rounding_mode="trunc"),
                    "div_floor": lambda a, b: torch.div(a, b, rounding_mode="floor")}.get(name, fn)
        with pytest.raises(RuntimeError, match="ZeroDivisionError"):
            fn_torch(torch.tensor([5, -7, 3]), torch.tensor([1, 2, 0]))
        for m, f in ((tg, fn), (torch, fn_torch)):
            with pytest.raises(NotImplementedError, match="not implemented for 'Bool'"):
                f(m.tensor([True]), m.tensor([True]))


def test_floor_division_has_a_graph_whose_backward_raises_as_pytorch():
    x = tg.tensor([2.5, -1.5], requires_grad=True)
    y = x // 1.0
    assert y.requires_grad and y.grad_fn.name() == "NotImplemented"
    with pytest.raises(RuntimeError, match="derivative for aten::floor_divide is not implemented"):
        y.sum().backward()
    for mode in ("floor", "trunc"):  # div with a rounding mode is differentiable: zeros, outside the graph
        y = tg.div(x, tg.tensor([2.0, 3.0]), rounding_mode=mode)
        (g,) = tg.autograd.grad(y.sum(), x, create_graph=True)
        assert y.grad_fn.name() == "DivBackward2" and g.tolist() == [0.0, 0.0] and not g.requires_grad
    w = tg.tensor([2.0, 3.0], requires_grad=True)
    (x % w).sum().backward()  # remainder is differentiable: 1 for a, -floor(a / b) for b
    assert x.grad.tolist() == [1.0, 1.0] and w.grad.tolist() == [-1.0, 1.0]


def test_floor_division_graph_matches_pytorch():
    torch = pytest.importorskip("torch")
    for m in (tg, torch):
        x = m.tensor([2.5, -1.5], requires_grad=True)
        assert (x // 1.0).requires_grad and (3.0 // x).requires_grad
        with pytest.raises(RuntimeError, match="derivative for aten::floor_divide is not implemented"):
            (x // 2.0).sum().backward()
        w = m.tensor([2.0, 3.0], requires_grad=True)
        (g,) = m.autograd.grad((x % w).sum(), w, create_graph=True)
        assert g.tolist() == [-1.0, 1.0] and g.requires_grad


# ------------------------------------------------------------------ .grad under create_graph, as PyTorch keeps it
def _accumulations(m):
    """x.grad through backward(create_graph=True) then plain backward, and the other way round."""
    x = m.tensor([1.0, 2.0], requires_grad=True)
    (x ** 3).sum().backward(create_graph=True)
    first, values = x.grad, [x.grad.tolist()]
    (x ** 2).sum().backward(create_graph=True)
    second = x.grad
    values.append(second.tolist())
    (x ** 2).sum().backward()  # without create_graph: into the same tensor, in place
    third = x.grad
    values.append(third.tolist())
    y = m.tensor([1.0, 2.0], requires_grad=True)
    (y ** 2).sum().backward()
    plain = y.grad
    values.append(plain.tolist())
    (y ** 3).sum().backward(create_graph=True)  # with create_graph: a new tensor, in the graph
    values.append(y.grad.tolist())
    return values, [first.requires_grad, second is first, third is second, third.requires_grad, y.grad is plain,
                    y.grad.requires_grad]


def test_backward_after_create_graph_accumulates_into_the_same_grad_tensor():
    values, identities = _accumulations(tg)
    assert values == [[3.0, 12.0], [5.0, 16.0], [7.0, 20.0], [2.0, 4.0], [5.0, 16.0]]
    assert identities == [True, False, True, True, False, True]


def test_grad_accumulation_under_create_graph_matches_pytorch():
    torch = pytest.importorskip("torch")
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTorch warns about the reference cycle of backward(create_graph=True)
        assert _accumulations(torch) == _accumulations(tg)


def test_first_grad_under_create_graph_shares_no_storage():
    x, w = tg.ones(2, requires_grad=True), tg.ones(2, requires_grad=True)
    (x + w).sum().backward(create_graph=True)
    assert x.grad is not w.grad and x.grad.grad_fn is None  # the seed needs no graph: a plain copy
    (x + w).sum().backward()
    assert x.grad.tolist() == w.grad.tolist() == [2.0, 2.0]


def test_second_derivative_of_x_to_the_zero_is_an_error_as_in_pytorch():
    torch = pytest.importorskip("torch")
    for m in (tg, torch):
        x = m.tensor([0.0, 2.0], requires_grad=True)
        y = x ** 0
        assert y.requires_grad and y.grad_fn.name() == "PowBackward0" and y.tolist() == [1.0, 1.0]
        (g,) = m.autograd.grad(y.sum(), x, create_graph=True)
        assert g.tolist() == [0.0, 0.0] and not g.requires_grad  # zeros outside the graph, not 0 * x ** -1
        with pytest.raises(RuntimeError, match="element 0 of tensors does not require grad"):
            m.autograd.grad(g.sum(), x)


def test_second_derivative_of_x_to_the_zero_without_torch():
    x = tg.tensor([0.0, float("nan"), float("inf")], requires_grad=True)
    y = x ** 0
    assert y.tolist() == [1.0, 1.0, 1.0]
    (g,) = tg.autograd.grad(y.sum(), x, create_graph=True)
    assert g.tolist() == [0.0, 0.0, 0.0] and not g.requires_grad


# ------------------------------------------------------------------ autograd.grad's keyword arguments
def test_autograd_grad_keywords_as_pytorch():
    x, w = tg.tensor([1.0, 2.0], requires_grad=True), tg.ones(2, requires_grad=True)
    y = (x * x).sum()
    assert tg.autograd.grad(y, x, only_inputs=True, retain_graph=True)[0].tolist() == [2.0, 4.0]
    with pytest.warns(FutureWarning, match="only_inputs argument is deprecated"):
        tg.autograd.grad(y, x, only_inputs=False, retain_graph=True)
    with pytest.raises(RuntimeError, match="The differentiated Tensor at index 1 appears to not have been used"):
        tg.autograd.grad(y, [x, w], retain_graph=True)
    assert tg.autograd.grad(y, [x, w], allow_unused=True, retain_graph=True)[1] is None
    gx, gw = tg.autograd.grad(y, [x, w], materialize_grads=True, retain_graph=True)
    assert gw.tolist() == [0.0, 0.0] and not gw.requires_grad
    gx, gw = tg.autograd.grad(y, [x, w], materialize_grads=True, create_graph=True, retain_graph=True)
    assert gw.requires_grad and gx.requires_grad
    with pytest.raises(ValueError, match="Expected allow_unused to be True or not passed when materialize_grads"):
        tg.autograd.grad(y, [x, w], materialize_grads=True, allow_unused=False, retain_graph=True)
    grads = tg.autograd.grad(y, {"x": x, "w": w}, allow_unused=True, retain_graph=True)
    assert list(grads) == ["x", "w"] and grads["x"].tolist() == [2.0, 4.0] and grads["w"] is None
    with pytest.raises(RuntimeError, match="`inputs` argument to `grad\\(\\)` cannot be empty"):
        tg.autograd.grad(y, [], retain_graph=True)
    batch = tg.autograd.grad(x * x, x, tg.eye(2), is_grads_batched=True)[0]  # the Jacobian, one row per vector
    assert batch.tolist() == [[2.0, 0.0], [0.0, 4.0]]


def test_autograd_grad_keywords_match_pytorch():
    torch = pytest.importorskip("torch")
    results = []
    for m in (tg, torch):
        x, w = m.tensor([1.0, 2.0], requires_grad=True), m.ones(2, requires_grad=True)
        y = (x * x).sum()
        gx, gw = m.autograd.grad(y, [x, w], materialize_grads=True, retain_graph=True)
        jac = m.autograd.grad(x * x, x, m.eye(2), is_grads_batched=True)[0]
        results.append((gx.tolist(), gw.tolist(), gw.requires_grad, jac.tolist()))
    assert results[0] == results[1]


def test_gradcheck_perturbs_non_contiguous_inputs_in_place():
    x = tg.tensor(np.arange(12.0).reshape(3, 4) / 10).t().requires_grad_()  # a transposed view
    assert tg.autograd.gradcheck(lambda a: (a * a).sin(), (x,))


def test_a_compiled_floor_division_raises_only_when_its_gradient_is_needed():
    # as eager: x // y requires grad, and backward raises only if a gradient reaches it
    def f(a):
        return a.sum() // 2.0, (a * a).sum()

    a = tg.tensor([1.5, -0.5], requires_grad=True)
    quotient, loss = tg.compile(f)(a)
    assert quotient.requires_grad
    loss.backward()
    assert a.grad.tolist() == [3.0, -1.0]
    quotient, loss = tg.compile(f)(a)
    with pytest.raises(RuntimeError, match="derivative for aten::floor_divide is not implemented"):
        (quotient + loss).backward()
