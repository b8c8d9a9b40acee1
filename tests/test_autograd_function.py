"""Custom autograd functions (`tracegrad.autograd.Function`): PyTorch's semantics, eagerly and under compile."""
import math

import numpy as np
import pytest

import tracegrad as tg
from tracegrad.autograd.function import BackwardCFunction, FunctionCtx, once_differentiable


# ------------------------------------------------------------------ the functions, for tracegrad or torch (`m`)
def my_relu(m):
    class MyReLU(m.autograd.Function):  # PyTorch's tutorial "Defining new autograd Functions"
        @staticmethod
        def forward(ctx, input):  # noqa: A002
            ctx.save_for_backward(input)
            return input.clamp(min=0)

        @staticmethod
        def backward(ctx, grad_output):
            (input,) = ctx.saved_tensors  # noqa: A001
            grad_input = grad_output.clone()
            grad_input[input < 0] = 0
            return grad_input
    return MyReLU


def legendre3(m):
    class LegendrePolynomial3(m.autograd.Function):  # the same tutorial
        @staticmethod
        def forward(ctx, input):  # noqa: A002
            ctx.save_for_backward(input)
            return 0.5 * (5 * input ** 3 - 3 * input)

        @staticmethod
        def backward(ctx, grad_output):
            (input,) = ctx.saved_tensors  # noqa: A001
            return grad_output * 1.5 * (5 * input ** 2 - 1)
    return LegendrePolynomial3


def my_exp(m, once=False):
    def backward(ctx, grad_output):
        (result,) = ctx.saved_tensors
        return grad_output * result

    class MyExp(m.autograd.Function):  # saves its output: double backward goes through the saved output
        @staticmethod
        def forward(ctx, i):
            result = i.exp()
            ctx.save_for_backward(result)
            return result

    MyExp.backward = staticmethod(m.autograd.function.once_differentiable(backward) if once else backward)
    return MyExp


def round_ste(m):
    class RoundSTE(m.autograd.Function):
        """Rounding to a grid of 1/4 with a straight-through gradient: backward passes the gradient unchanged where
        the true derivative is 0 (a compiled result that differentiated the forward would differ)."""

        @staticmethod
        def forward(ctx, x):
            return (x * 4.0 + 0.5) // 1.0 / 4.0

        @staticmethod
        def backward(ctx, grad_output):
            return grad_output
    return RoundSTE


def scale_and_shift(m):
    class ScaleShift(m.autograd.Function):  # newer style: forward without ctx, setup_context; a non-tensor input
        @staticmethod
        def forward(x, scale, shift):
            return x * scale + shift, (x * scale).sum()

        @staticmethod
        def setup_context(ctx, inputs, output):
            _, scale, _ = inputs
            ctx.scale = scale

        @staticmethod
        def backward(ctx, grad_out, grad_sum):
            g = (grad_out + grad_sum) * ctx.scale
            return g, None, grad_out
    return ScaleShift


def _np(t):
    return t.detach().numpy()


# ------------------------------------------------------------------ PyTorch parity
def test_my_relu_tutorial_matches_pytorch():
    torch = pytest.importorskip("torch")
    data = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    results = []
    for m, make in ((tg, tg.tensor), (torch, torch.tensor)):
        x = make(data, requires_grad=True)
        y = my_relu(m).apply(x * 2.0)
        (y * y).sum().backward()
        results.append((_np(y), x.grad.numpy(), y.grad_fn.name(), y.requires_grad,
                        [f.name() for f, _ in y.grad_fn.next_functions]))
    (y, g, name, rg, nexts), (ty, tgrad, tname, trg, tnexts) = results
    np.testing.assert_array_equal(y, ty)
    np.testing.assert_array_equal(g, tgrad)
    assert name == tname == "MyReLUBackward" and rg and trg and nexts == tnexts == ["MulBackward0"]
    # without torch: the gradient is 2 * 2 * (2x) where 2x > 0, else 0
    np.testing.assert_allclose(g, np.where(data > 0, 8 * data, 0), rtol=1e-6)


def _fit_legendre(m, steps, compile_backend=None):
    """The tutorial's fit of sin(x) by a + b * P3(c + d * x), in float64, for a few steps."""
    x = m.linspace(-math.pi, math.pi, 200, dtype=m.float64)
    y = m.sin(x)
    a, b, c, d = (m.full((), v, dtype=m.float64, requires_grad=True) for v in (0.0, -1.0, 0.0, 0.3))
    p3 = legendre3(m).apply

    def step(x, y):
        y_pred = a + b * p3(c + d * x)
        loss = (y_pred - y).pow(2).sum()
        loss.backward()
        with m.no_grad():
            for p in (a, b, c, d):
                p -= 5e-4 * p.grad
                p.grad = None
        return loss

    if compile_backend is not None:
        step = tg.compile(step, backend=compile_backend, **({"tiered": False} if compile_backend == "numba" else {}))
    losses = [step(x, y).item() for _ in range(steps)]
    return losses, [p.item() for p in (a, b, c, d)]


def test_legendre_tutorial_fit_matches_pytorch():
    torch = pytest.importorskip("torch")
    ours, theirs = _fit_legendre(tg, 5), _fit_legendre(torch, 5)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-12)
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-12, atol=1e-15)


def test_legendre_fit_decreases_the_loss_without_torch():
    losses, _ = _fit_legendre(tg, 5)
    assert losses[-1] < losses[0]


def test_exp_saving_its_output_double_backward_matches_pytorch():
    torch = pytest.importorskip("torch")
    data = np.array([-1.0, 0.0, 0.5, 2.0])
    results = []
    for m in (tg, torch):
        x = m.tensor(data, requires_grad=True)
        y = my_exp(m).apply(x)
        (g,) = m.autograd.grad((y * x).sum(), x, create_graph=True)
        (gg,) = m.autograd.grad(g.sum(), x)
        results.append((g.detach().numpy(), gg.numpy(), g.grad_fn is not None))
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    e = np.exp(data)  # d/dx x e^x = (1 + x) e^x; its derivative (2 + x) e^x
    np.testing.assert_allclose(results[0][0], (1 + data) * e, rtol=1e-12)
    np.testing.assert_allclose(results[0][1], (2 + data) * e, rtol=1e-12)


def test_straight_through_estimator_matches_pytorch():
    torch = pytest.importorskip("torch")
    data = np.array([-1.3, -0.2, 0.1, 0.38, 0.9], np.float32)
    results = []
    for m in (tg, torch):
        x = m.tensor(data, requires_grad=True)
        q = round_ste(m).apply(x)
        (q * q).sum().backward()
        results.append((_np(q), x.grad.numpy()))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    np.testing.assert_array_equal(results[0][0], np.floor(data * 4 + 0.5) / 4)
    np.testing.assert_array_equal(results[0][1], 2 * results[0][0])  # the STE's gradient, not 0


def test_setup_context_style_several_outputs_and_a_non_tensor_input_match_pytorch():
    torch = pytest.importorskip("torch")
    results = []
    for m in (tg, torch):
        x = m.tensor([1.0, -2.0, 3.0], requires_grad=True)
        shift = m.tensor([0.5, 0.5, 0.5], requires_grad=True)
        out, total = scale_and_shift(m).apply(x, 3.0, shift)
        assert out.grad_fn is total.grad_fn and out.grad_fn.name() == "ScaleShiftBackward"
        assert [nr for _, nr in (out * total).grad_fn.next_functions] == [0, 1]
        (out * total).sum().backward()
        results.append((_np(out), _np(total), x.grad.numpy(), shift.grad.numpy(),
                        len(out.grad_fn.next_functions)))
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    assert results[0][4] == 2  # one edge per tensor input, none for the number


def test_ctx_flags_and_attributes_match_pytorch():
    torch = pytest.importorskip("torch")
    seen = {}

    def make(m):
        class Split(m.autograd.Function):
            @staticmethod
            def forward(ctx, x, y, k=2):
                seen[m.__name__, "needs"] = ctx.needs_input_grad
                seen[m.__name__, "grad_enabled"] = m.is_grad_enabled()
                ctx.k = k
                mask = (x > 0).long()
                ctx.mark_non_differentiable(mask)
                ctx.set_materialize_grads(False)
                return x * k, mask, y * 1.0

            @staticmethod
            def backward(ctx, g, g_mask, g_y):
                seen[m.__name__, "grads"] = (g is None, g_mask is None, g_y is None)
                return g * ctx.k, None, None
        return Split

    for m in (tg, torch):
        x, y = m.tensor([1.0, -1.0], requires_grad=True), m.tensor([2.0, 3.0])
        a, mask, b = make(m).apply(x, y, k=3)
        assert (a.requires_grad, mask.requires_grad, b.requires_grad) == (True, False, True)
        assert a.grad_fn.k == 3 and isinstance(a.grad_fn, m.autograd.function.BackwardCFunction)
        a.sum().backward()
        assert x.grad.tolist() == [3.0, 3.0]
    for key in ("needs", "grad_enabled", "grads"):
        assert seen["tracegrad", key] == seen["torch", key]
    assert seen["tracegrad", "needs"] == (True, False, False)
    assert seen["tracegrad", "grads"] == (False, True, True)  # not materialized: None for outputs without one


def test_materialized_gradients_are_zeros_for_unused_and_non_differentiable_outputs():
    got = {}

    class Two(tg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            i = (x > 0).long()
            ctx.mark_non_differentiable(i)
            return x * 2, i, x * 3

        @staticmethod
        def backward(ctx, g1, g_i, g3):
            got.update(g1=g1.tolist(), g_i=(g_i.tolist(), g_i.dtype), g3=g3.tolist())
            return g1 * 2 + g3 * 3

    x = tg.tensor([1.0, -1.0], requires_grad=True)
    a, _, _ = Two.apply(x)
    a.sum().backward()
    assert got == {"g1": [1.0, 1.0], "g_i": ([0, 0], tg.int64), "g3": [0.0, 0.0]}
    assert x.grad.tolist() == [2.0, 2.0]


def test_hooks_and_retain_grad_on_one_output_of_several():
    class Two(tg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2, x * 3

        @staticmethod
        def backward(ctx, g1, g2):
            return g1 * 2 + g2 * 3

    x = tg.tensor([1.0, 2.0], requires_grad=True)
    p, q = Two.apply(x)
    assert (p.output_nr, q.output_nr) == (0, 1)
    hooked = []
    q.register_hook(lambda g: hooked.append(g.tolist()) or g * 10)
    q.retain_grad()
    (p + 2 * q).sum().backward()
    assert hooked == [[2.0, 2.0]]
    assert q.grad.tolist() == [20.0, 20.0] and q.retains_grad and not p.retains_grad  # after the hook, as PyTorch
    assert x.grad.tolist() == [2 + 60.0, 2 + 60.0]


def test_input_returned_as_is_and_dirty_input_match_pytorch():
    torch = pytest.importorskip("torch")
    for m in (tg, torch):
        class Ident(m.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return x

            @staticmethod
            def backward(ctx, g):
                return 2 * g

        class Double_(m.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                x.mul_(2)
                ctx.mark_dirty(x)
                return x

            @staticmethod
            def backward(ctx, g):
                return 2 * g

        x = m.tensor([1.0, 2.0], requires_grad=True)
        y = Ident.apply(x)
        assert y is not x and y.grad_fn.name() == "IdentBackward"
        y.sum().backward()
        assert x.grad.tolist() == [2.0, 2.0]
        a = x * 1
        b = Double_.apply(a)
        assert b is a and a.grad_fn.name() == "Double_Backward" and a.tolist() == [2.0, 4.0]
        x.grad = None
        b.sum().backward()
        assert x.grad.tolist() == [2.0, 2.0]


def test_gradient_broadcast_to_the_input_is_summed_and_cast_to_its_dtype():
    class Total(tg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.sum()

        @staticmethod
        def backward(ctx, g):
            return g.expand(2, 3).to(tg.float32)  # broadcast over a leading dim, and float32 for a float64 input

    x = tg.ones(3, dtype=tg.float64, requires_grad=True)
    Total.apply(x).backward()
    assert x.grad.dtype is tg.float64 and x.grad.tolist() == [2.0, 2.0, 2.0]


def test_no_graph_under_no_grad_or_without_inputs_requiring_grad():
    relu = my_relu(tg)
    x = tg.tensor([1.0, -1.0], requires_grad=True)
    with tg.no_grad():
        assert relu.apply(x).grad_fn is None and not relu.apply(x).requires_grad
    assert relu.apply(x.detach()).grad_fn is None


# ------------------------------------------------------------------ errors, as PyTorch words them
def _fn(forward, backward):
    return type("Bad", (tg.autograd.Function,), {"forward": staticmethod(forward), "backward": staticmethod(backward)})


@pytest.mark.parametrize("forward,backward,args,message", [
    (lambda ctx, x, y: x * y, lambda ctx, g: g, 2,
     r"function BadBackward returned an incorrect number of gradients \(expected 2, got 1\)"),
    (lambda ctx, x: x.sum(), lambda ctx, g: g.reshape(1).expand(2), 1,
     r"Function BadBackward returned an invalid gradient at index 0 - got \[2\] but expected shape compatible with "
     r"\[3\]"),
    (lambda ctx, x, k: x * k, lambda ctx, g: (g, g), "number",
     "function BadBackward returned a gradient different than None at position 2, but the corresponding forward "
     "input was not a Variable"),
    (lambda ctx, x: x * 2, lambda ctx, g: 2.0, 1, r"expected Variable or None \(got float\)"),
])
def test_backward_returning_wrong_gradients_raises_pytorchs_error(forward, backward, args, message):
    x = tg.ones(3, requires_grad=True)
    args = (x, 2.0) if args == "number" else (x,) * args
    with pytest.raises(RuntimeError, match=message):
        _fn(forward, backward).apply(*args).sum().backward()


def test_extra_none_gradients_are_allowed():
    x = tg.ones(2, requires_grad=True)
    _fn(lambda ctx, x: x * 2, lambda ctx, g: (g * 2, None, None)).apply(x).sum().backward()
    assert x.grad.tolist() == [2.0, 2.0]


def test_errors_match_pytorchs():
    torch = pytest.importorskip("torch")
    for m in (tg, torch):
        x = m.tensor([0.5, 1.0], requires_grad=True)
        y = my_exp(m).apply(x)
        y.sum().backward()
        with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"):
            y.sum().backward()

        a = x * 1
        y = legendre3(m).apply(a)
        a.add_(1)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            y.sum().backward()

        class NoBackward(m.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return x * 2
        with pytest.raises(NotImplementedError, match="You must implement either the backward or vjp method"):
            NoBackward.apply(x).sum().backward()

        class SavesANumber(m.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                ctx.save_for_backward(3)
                return x * 2
        with pytest.raises(TypeError, match="save_for_backward can only save variables, but argument 0 is of type "
                                            "int"):
            SavesANumber.apply(x)


def test_once_differentiable_raises_on_double_backward_as_pytorch():
    torch = pytest.importorskip("torch")
    for m in (tg, torch):
        def make(m):
            class ExpOnce(m.autograd.Function):
                @staticmethod
                def forward(ctx, i):
                    r = i.exp()
                    ctx.save_for_backward(r)
                    return r

                @staticmethod
                @m.autograd.function.once_differentiable
                def backward(ctx, g):
                    (r,) = ctx.saved_tensors
                    return g * r
            return ExpOnce
        x = m.tensor([0.5, 1.0], requires_grad=True)
        y = make(m).apply(x)
        (g,) = m.autograd.grad((y * y).sum(), x, create_graph=True)  # the first derivative works
        np.testing.assert_allclose(g.detach().numpy(), 2 * np.exp([1.0, 2.0]), rtol=1e-6)
        assert g.requires_grad
        with pytest.raises(RuntimeError, match="trying to differentiate twice a function that was marked with "
                                               "@once_differentiable"):
            g.sum().backward()
        y = make(m).apply(x)
        (g,) = m.autograd.grad(y.sum(), x)  # without create_graph: a plain tensor
        assert not g.requires_grad


def test_module_path_and_names():
    assert tg.autograd.function.Function is tg.autograd.Function
    assert tg.autograd.function.once_differentiable is once_differentiable
    assert issubclass(my_relu(tg)._backward_cls, BackwardCFunction)
    assert issubclass(BackwardCFunction, FunctionCtx)
    with pytest.raises(RuntimeError, match="Legacy autograd function"):
        with pytest.warns(DeprecationWarning):
            f = my_relu(tg)()
        f(tg.ones(2))


# ------------------------------------------------------------------ finite differences
def test_gradcheck_in_float64():
    x = tg.randn(5, dtype=tg.float64, requires_grad=True)
    assert tg.autograd.gradcheck(legendre3(tg).apply, (x,))
    assert tg.autograd.gradcheck(my_exp(tg).apply, (x,))
    assert tg.autograd.gradgradcheck(my_exp(tg).apply, (x,))
    assert tg.autograd.gradgradcheck(legendre3(tg).apply, (x,))
    shift = tg.randn(5, dtype=tg.float64, requires_grad=True)
    ss = scale_and_shift(tg)
    assert tg.autograd.gradcheck(lambda x, s: ss.apply(x, 1.5, s), (x, shift))


# ------------------------------------------------------------------ under compile
BACKENDS = ["interpret", "numba"]


def _compile(fn, backend):
    return tg.compile(fn, backend=backend, **({"tiered": False} if backend == "numba" else {}))


def _ste_training(backend):
    """A linear model whose output goes through the straight-through rounding, trained with SGD for 3 steps."""
    tg.manual_seed(0)
    model = tg.nn.Linear(4, 3)
    opt = tg.optim.SGD(model.parameters(), lr=0.5)
    ste = round_ste(tg)
    p3 = legendre3(tg)

    def step(x, y):
        opt.zero_grad()
        q = ste.apply(p3.apply(model(x)))
        loss = ((q - y) ** 2).mean()
        loss.backward()
        opt.step()
        return loss

    if backend is not None:
        step = _compile(step, backend)
    x, y = tg.randn(8, 4) * 0.3, tg.randn(8, 3) * 0.3
    losses = [step(x, y).item() for _ in range(3)]
    return losses, [p.detach().numpy().copy() for p in model.parameters()], step


@pytest.mark.parametrize("backend", BACKENDS)
def test_compiled_training_step_uses_the_users_backward(backend):
    losses, params, step = _ste_training(None)
    c_losses, c_params, c_step = _ste_training(backend)
    assert np.all(np.isfinite(losses)) and len(set(losses)) == 3  # the rounded outputs change from step to step
    np.testing.assert_allclose(c_losses, losses, rtol=1e-6)
    for a, b in zip(c_params, params):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert not any("outlive" in reason for reason in c_step.retraces)  # the Function's node is not new state
    # the true derivative of the rounding is 0: had the pass differentiated the forward, nothing would move
    tg.manual_seed(0)
    assert not np.allclose(c_params[0], tg.nn.Linear(4, 3).weight.detach().numpy())
    graph = c_step.graphs()[0]
    assert "floor_divide" in {n.op.name for n in graph.nodes if n.phase == "forward"}


def test_compiled_graph_records_the_forward_and_the_traced_backward():
    ste = round_ste(tg)

    def f(x):
        (g,) = tg.autograd.grad((ste.apply(x) * 3.0).sum(), x)
        return g

    text = str(tg.jit.trace(f, tg.tensor([0.3, 0.6], requires_grad=True)))
    forward, backward = text.split("# backward")
    assert "floor_divide" in forward and "floor_divide" not in backward
    np.testing.assert_array_equal(_compile(f, "interpret")(tg.tensor([0.3, 0.6], requires_grad=True)).numpy(),
                                  [3.0, 3.0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_compiled_double_backward_through_a_saved_output(backend):
    exp = my_exp(tg)

    def f(x):
        y = exp.apply(x)
        (g,) = tg.autograd.grad((y * x).sum(), x, create_graph=True)
        (gg,) = tg.autograd.grad(g.sum(), x)
        return g.detach(), gg

    data = tg.tensor([-1.0, 0.0, 0.5], dtype=tg.float64)
    eager = f(data.clone().requires_grad_())
    compiled = _compile(f, backend)
    for _ in range(2):
        for a, b in zip(compiled(data.clone().requires_grad_()), eager):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_compiled_function_returning_a_custom_output_is_differentiated_from_outside(backend):
    ss = scale_and_shift(tg)

    def f(x, s):
        return ss.apply(x, 2.0, s)

    x, s = tg.tensor([1.0, -2.0], requires_grad=True), tg.tensor([0.5, 0.5], requires_grad=True)
    out, total = _compile(f, backend)(x, s)
    (out * total).sum().backward()
    gx, gs = x.grad.numpy().copy(), s.grad.numpy().copy()
    x.grad = s.grad = None
    out, total = f(x, s)
    (out * total).sum().backward()
    np.testing.assert_allclose(gx, x.grad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(gs, s.grad.numpy(), rtol=1e-6)


def test_compiled_once_differentiable_raises_on_double_backward():
    exp = my_exp(tg, once=True)

    def f(x):
        y = exp.apply(x)
        (g,) = tg.autograd.grad((y * y).sum(), x, create_graph=True)
        g.sum().backward()
        return g

    with pytest.raises(RuntimeError, match="trying to differentiate twice"):
        _compile(f, "interpret")(tg.tensor([0.5, 1.0], requires_grad=True))
