"""Compiled training equals eager training: `tracegrad.compile` on whole steps, modules, `grad` and mutations.

Specified here, always against the same code run eagerly on an identical copy (built from the same seed):

* whole training steps (forward, loss, backward, optimizer step) over several calls: SGD (momentum,
  nesterov, weight decay), Adam/AdamW (amsgrad), and a conv net with BatchNorm in train mode. After each
  step the loss, parameters, `.grad`s, optimizer state and BatchNorm buffers are equal (bit-exact), the
  tensors the model and optimizer hold stay the same objects, and the cached graph is reused;
* dropout inside a compiled step draws the same random numbers as eager, a fresh mask each call;
* `train()`/`eval()` and a changed lr between calls retrace with a readable reason and stay equal to eager;
* a compiled module differentiated by an eager `backward()` (first call and cached graph, several outputs,
  inputs requiring grad, the backward-twice error, create_graph's error);
* pytrees in and out, static arguments (a new value retraces), the same tensor passed twice;
* `grad` / `value_and_grad` eagerly, under compile and nested, with argnums tuples and their errors;
* mutations inside compiled functions: manual SGD, `zero_grad(set_to_none=False)`, setitem on a buffer,
  in-place ops on views, gradient accumulation, arguments mutated in place.
"""
import numpy as np
import pytest
from training_steps import train_step

import tracegrad as tg
import tracegrad.nn as nn
import tracegrad.nn.functional as F

STEPS = 6


# ----------------------------------------------------------------------------------------------- helpers
def _randn(seed, *shape):
    """A float32 tensor from its own numpy stream (leaves tracegrad's generator alone)."""
    return tg.tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def _labels(seed, n, classes):
    return tg.tensor(np.random.default_rng(seed).integers(0, classes, n))


def _arr(t):
    return np.array(t.detach()._data, copy=True)


def _assert_equal(eager, compiled, what, exact=True):
    """Tensors (or None) with equal shape, dtype and values: bit-exact, or within float32 round-off."""
    if eager is None or compiled is None:
        assert eager is None and compiled is None, f"{what}: eager {eager!r}, compiled {compiled!r}"
        return
    a, b = _arr(eager), _arr(compiled)
    assert (a.shape, a.dtype) == (b.shape, b.dtype), f"{what}: {a.shape} {a.dtype} vs {b.shape} {b.dtype}"
    if exact:
        np.testing.assert_array_equal(b, a, err_msg=what)
    else:
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7, err_msg=what)


def _assert_tree_equal(eager, compiled, what="output", requires_grad=True):
    """Pytrees of the same structure whose tensor leaves are equal (and agree on requires_grad, unless
    `requires_grad=False`) and whose other leaves compare equal."""
    assert type(eager) is type(compiled), f"{what}: {type(eager).__name__} vs {type(compiled).__name__}"
    if isinstance(eager, dict):
        assert list(eager) == list(compiled), what
        for k in eager:
            _assert_tree_equal(eager[k], compiled[k], f"{what}[{k!r}]", requires_grad)
    elif isinstance(eager, (tuple, list)):
        assert len(eager) == len(compiled), what
        for i, (a, b) in enumerate(zip(eager, compiled)):
            _assert_tree_equal(a, b, f"{what}[{i}]", requires_grad)
    elif isinstance(eager, tg.Tensor):
        _assert_equal(eager, compiled, what)
        if requires_grad:
            assert eager.requires_grad == compiled.requires_grad, f"{what}: requires_grad"
    else:
        assert eager == compiled, what


def _held(model, opt=None) -> dict:
    """Every tensor a model and its optimizer hold, by name: parameters, buffers, optimizer state."""
    out = dict(model.named_parameters())
    out.update(model.named_buffers())
    if opt is not None:
        params = [p for group in opt.param_groups for p in group["params"]]
        for i, p in enumerate(params):
            for key, value in opt.state.get(p, {}).items():
                if isinstance(value, tg.Tensor):
                    out[f"opt.state[{i}].{key}"] = value
    return out


def _assert_same_state(eager, compiled, what, exact=True):
    """Parameters, their `.grad`, buffers and optimizer state of two (model, optimizer) setups are equal."""
    e, c = _held(*eager), _held(*compiled)
    assert list(e) == list(c), f"{what}: held tensors {list(e)} vs {list(c)}"
    for name in e:
        _assert_equal(e[name], c[name], f"{what}: {name}", exact)
        if isinstance(e[name], nn.Parameter):
            _assert_equal(e[name].grad, c[name].grad, f"{what}: {name}.grad", exact)


def _assert_same_objects(before: dict, after: dict, what):
    for name, t in before.items():
        assert after[name] is t, f"{what}: {name} was replaced by another tensor"


def _mlp(dropout=0.0):
    layers = [nn.Linear(5, 8), nn.Tanh()] + ([nn.Dropout(dropout)] if dropout else []) + [nn.Linear(8, 3)]
    return nn.Sequential(*layers)


def _convnet():
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(4 * 4 * 4, 3))


def _setup(make_model, make_opt, seed=0):
    tg.manual_seed(seed)
    model = make_model()
    return model, make_opt(model.parameters())


def _train_step(model, opt, loss_fn=F.mse_loss):
    return train_step(model, opt, loss_fn)


def _regression_batches(n=3):
    return [(_randn(10 + i, 7, 5), _randn(20 + i, 7, 3)) for i in range(n)]


def _image_batches(n=3):
    return [(_randn(30 + i, 6, 2, 8, 8), _labels(40 + i, 6, 3)) for i in range(n)]


def _compare_training(make_model, make_opt, batches, loss_fn=F.mse_loss, steps=STEPS, between=None, start=None):
    """Train eager and compiled copies side by side; check everything after every step.

    `start(eager_setup, compiled_setup)` runs before the first step and `between(i, eager_setup, compiled_setup)`
    after step i (eagerly, on both). Returns the compiled step and the compiled (model, optimizer).
    """
    eager, compiled = _setup(make_model, make_opt), _setup(make_model, make_opt)
    if start is not None:
        start(eager, compiled)
    _assert_same_state(eager, compiled, "initial")
    step_e = _train_step(*eager, loss_fn)
    step_c = tg.compile(_train_step(*compiled, loss_fn))
    held = _held(*compiled)
    for i in range(steps):
        x, y = batches[i % len(batches)]
        tg.manual_seed(100 + i)  # the same random numbers (dropout) for both
        loss_e = step_e(x, y)
        tg.manual_seed(100 + i)
        loss_c = step_c(x, y)
        _assert_equal(loss_e, loss_c, f"step {i}: loss")
        _assert_same_state(eager, compiled, f"step {i}")
        _assert_same_objects(held, _held(*compiled), f"step {i}")
        held = _held(*compiled)  # the optimizer state made on the first step is held from then on
        if between is not None:
            between(i, eager, compiled)
    return step_c, compiled


# ------------------------------------------------------------------------------- 1. whole training steps
OPTIMIZERS = {
    "sgd-momentum": lambda ps: tg.optim.SGD(ps, lr=0.1, momentum=0.9),
    "sgd-nesterov-wd": lambda ps: tg.optim.SGD(ps, lr=0.05, momentum=0.8, nesterov=True, weight_decay=1e-2),
    "sgd-dampening": lambda ps: tg.optim.SGD(ps, lr=0.05, momentum=0.5, dampening=0.3, weight_decay=1e-3),
    "adam": lambda ps: tg.optim.Adam(ps, lr=1e-2),
    "adam-amsgrad-wd": lambda ps: tg.optim.Adam(ps, lr=1e-2, weight_decay=1e-2, amsgrad=True),
    "adamw": lambda ps: tg.optim.AdamW(ps, lr=1e-2, weight_decay=0.1),
    "adamw-amsgrad": lambda ps: tg.optim.AdamW(ps, lr=1e-2, betas=(0.8, 0.95), amsgrad=True),
    "rmsprop": lambda ps: tg.optim.RMSprop(ps, lr=1e-2),
    "rmsprop-centered-momentum-wd": lambda ps: tg.optim.RMSprop(ps, lr=1e-2, momentum=0.9, centered=True,
                                                                weight_decay=1e-2, maximize=False),
    "adagrad-decay-wd": lambda ps: tg.optim.Adagrad(ps, lr=0.1, lr_decay=0.01, weight_decay=1e-2,
                                                    initial_accumulator_value=0.1),
    "adadelta-wd": lambda ps: tg.optim.Adadelta(ps, lr=1.0, rho=0.8, weight_decay=1e-2),
}
STATE_KEYS = {"sgd": {"momentum_buffer"}, "adam": {"step", "exp_avg", "exp_avg_sq"},
              "rmsprop": {"step", "square_avg"}, "adagrad": {"step", "sum"},
              "adadelta": {"step", "square_avg", "acc_delta"}}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_mlp_training_steps_equal_eager(name):
    step, (model, opt) = _compare_training(_mlp, OPTIMIZERS[name], _regression_batches())
    # the first call makes the optimizer state (so its graph is not reused); from the second on one graph runs
    assert len(step.retraces) == 2, step.retraces
    # (Adagrad makes its state with the optimizer: the second trace is for the gradients the first call left)
    reason = "grad: None -> a tensor" if name.startswith("adagrad") else "optimizer state"
    assert reason in step.retraces[1], step.retraces
    expected = set(STATE_KEYS[name.split("-")[0].removesuffix("w")])
    expected |= {"max_exp_avg_sq"} if "amsgrad" in name else set()
    expected |= {"momentum_buffer", "grad_avg"} if name.startswith("rmsprop-centered-momentum") else set()
    assert [set(opt.state[p]) for p in model.parameters()] == [expected] * 4
    if not name.startswith("sgd"):
        assert all(s["step"].item() == STEPS for s in opt.state.values())


@pytest.mark.parametrize("n_batches", [3, 1], ids=["new-batch-each-step", "one-batch"])
def test_conv_net_with_batchnorm_training_steps_equal_eager(n_batches):
    step, (model, _) = _compare_training(_convnet, OPTIMIZERS["sgd-momentum"], _image_batches(n_batches),
                                         loss_fn=F.cross_entropy)
    assert len(step.retraces) == 2, step.retraces
    bn = model[1]
    assert bn.training and bn.num_batches_tracked.item() == STEPS
    assert not np.array_equal(_arr(bn.running_mean), np.zeros(4, np.float32))


def test_cross_entropy_reads_the_labels_of_each_call():
    f = lambda x, y: F.cross_entropy(x, y)
    cf = tg.compile(f)
    x = _randn(0, 4, 3)
    for i in range(3):
        y = _labels(i, 4, 3)
        _assert_equal(f(x, y), cf(x, y), f"call {i}")


# -------------------------------------------------------------------------------------------- 2. dropout
def test_dropout_in_a_compiled_training_step_draws_what_eager_draws():
    make_opt = OPTIMIZERS["sgd-momentum"]
    x, y = _regression_batches(1)[0]

    def run(compiled):
        model, opt = _setup(lambda: _mlp(dropout=0.5), make_opt)
        step = _train_step(model, opt)
        step = tg.compile(step) if compiled else step
        tg.manual_seed(7)
        losses = [step(x, y) for _ in range(STEPS)]
        return losses, (model, opt), tg.rand(4), step

    losses_e, eager, after_e, _ = run(False)
    losses_c, compiled, after_c, step = run(True)
    assert len(step.retraces) == 2, step.retraces
    for i, (a, b) in enumerate(zip(losses_e, losses_c)):
        _assert_equal(a, b, f"step {i}: loss")
    _assert_same_state(eager, compiled, "after training")
    _assert_equal(after_e, after_c, "the generator's next numbers")


def test_compiled_dropout_draws_a_new_mask_each_call():
    f = lambda x: F.dropout(x, 0.5, training=True)
    cf = tg.compile(f)
    x = tg.ones(64)
    tg.manual_seed(3)
    eager = [f(x) for _ in range(4)]
    tg.manual_seed(3)
    compiled = [cf(x) for _ in range(4)]
    assert cf.retraces == ["first call"]
    for i, (a, b) in enumerate(zip(eager, compiled)):
        _assert_equal(a, b, f"call {i}")
    masks = {tuple(_arr(t) > 0) for t in compiled}
    assert len(masks) == 4
    assert set(np.unique(np.concatenate([_arr(t) for t in compiled]))) == {0.0, 2.0}


# ------------------------------------------------------------------------------------------- 3. retraces
def test_train_eval_switch_retraces_and_equals_eager():
    def make_model():
        return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.3),
                             nn.Flatten(), nn.Linear(4 * 8 * 8, 3))

    modes = [True, True, False, False, True, False, True]

    def set_mode(i, eager, compiled):
        if i + 1 < len(modes):
            eager[0].train(modes[i + 1])
            compiled[0].train(modes[i + 1])

    batch = (_randn(50, 5, 2, 8, 8), _randn(51, 5, 3))
    step, _ = _compare_training(make_model, OPTIMIZERS["sgd-momentum"], [batch],
                                steps=len(modes), between=set_mode)
    # train (makes state), train (traced), eval (retraced), eval, train (cached), eval (cached), train (cached)
    assert len(step.retraces) == 3, step.retraces
    assert "training: True -> False" in step.retraces[2], step.retraces[2]


def test_switching_eval_then_train_in_a_forward_only_function():
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 6), nn.BatchNorm1d(6), nn.Dropout(0.5))
    tg.manual_seed(0)
    twin = nn.Sequential(nn.Linear(5, 6), nn.BatchNorm1d(6), nn.Dropout(0.5))
    cm = tg.compile(model)
    x = _randn(1, 4, 5)
    for i, training in enumerate([True, False, True, False]):
        model.train(training)
        twin.train(training)
        tg.manual_seed(i)
        out_c = cm(x)
        tg.manual_seed(i)
        out_e = twin(x)
        _assert_equal(out_e, out_c, f"call {i} (training={training})")
        _assert_same_state((twin, None), (model, None), f"call {i}")
    assert len(cm.retraces) == 2, cm.retraces
    assert "training: True -> False" in cm.retraces[1], cm.retraces


def test_lr_scheduler_between_compiled_steps_never_retraces_and_equals_eager():
    schedulers = []

    def start(eager, compiled):
        schedulers.extend(tg.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5) for _, opt in (eager, compiled))

    def schedule(i, eager, compiled):
        for scheduler in schedulers:
            scheduler.step()
        assert eager[1].param_groups[0]["lr"] == compiled[1].param_groups[0]["lr"]

    step, (_, opt) = _compare_training(_mlp, OPTIMIZERS["adam"], _regression_batches(), between=schedule,
                                       start=start)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-2 * 0.5 ** 3)
    # first call, then the state's second trace; the learning rate is read at every call (issue 11)
    assert len(step.retraces) == 2, step.retraces


def test_changing_lr_by_hand_never_retraces_and_equals_eager():
    lrs = [0.1, 0.1, 0.02, 0.02, 0.1]  # for steps 1 to 5 (step 0 uses the initial 0.05)

    def set_lr(i, eager, compiled):
        for _, opt in (eager, compiled):
            opt.param_groups[0]["lr"] = lrs[min(i, len(lrs) - 1)]

    step, _ = _compare_training(_mlp, OPTIMIZERS["sgd-nesterov-wd"], _regression_batches(), between=set_lr)
    # first call (makes momentum buffers), the state's second trace; no lr retraces
    assert len(step.retraces) == 2, step.retraces


# ------------------------------------------------------------------ 4. compiled modules, eager backward
def _twins(make_model=_mlp):
    tg.manual_seed(0)
    eager = make_model()
    tg.manual_seed(0)
    return eager, make_model()


def _assert_same_grads(eager_model, compiled_model, what):
    for (name, p), q in zip(eager_model.named_parameters(), compiled_model.parameters()):
        _assert_equal(p.grad, q.grad, f"{what}: {name}.grad")


def _inputs(seed, requires_grad):
    x = _randn(seed, 4, 5)
    return x.requires_grad_(requires_grad), x.detach().clone().requires_grad_(requires_grad)


@pytest.mark.parametrize("zero_grad", [True, False], ids=["zero-grad", "accumulate"])
@pytest.mark.parametrize("x_requires_grad", [False, True])
def test_compiled_module_backward_from_eager_code_equals_eager(zero_grad, x_requires_grad):
    model, twin = _twins()
    cm = tg.compile(twin)
    for i in range(3):  # the first call traces, the next ones run the cached graph
        x_e, x_c = _inputs(i, x_requires_grad)
        if zero_grad:
            model.zero_grad()
            twin.zero_grad()
        out_e, out_c = model(x_e), cm(x_c)
        _assert_equal(out_e, out_c, f"call {i}: output")
        assert out_c.requires_grad and out_c.grad_fn is not None and not out_c.is_leaf
        (out_e.tanh() ** 2).mean().backward()
        (out_c.tanh() ** 2).mean().backward()
        _assert_same_grads(model, twin, f"call {i}")
        _assert_equal(x_e.grad, x_c.grad, f"call {i}: x.grad")
    assert cm.retraces == ["first call"]


def test_compiled_module_under_no_grad_retraces_and_gives_plain_outputs():
    model, twin = _twins()
    cm = tg.compile(twin)
    x = _randn(0, 4, 5)
    cm(x)
    with tg.no_grad():
        out = cm(x)
        _assert_equal(model(x), out, "output")
    assert not out.requires_grad and out.grad_fn is None
    assert cm.retraces[1] == "grad mode: enabled -> disabled"


def test_several_outputs_only_some_used_in_the_loss():
    model, twin = _twins()

    def heads(m):
        def f(x):
            h = m(x)
            return h.sum(1), {"double": h * 2.0, "mean": h.mean(), "name": "heads"}, [h.detach(), None]
        return f

    f_e, f_c = heads(model), tg.compile(heads(twin))
    for i in range(3):
        x_e, x_c = _inputs(i, True)
        model.zero_grad()
        twin.zero_grad()
        out_e, out_c = f_e(x_e), f_c(x_c)
        _assert_tree_equal(out_e, out_c, f"call {i}")
        (out_e[0].sum() * 0.5 + out_e[1]["mean"]).backward()
        (out_c[0].sum() * 0.5 + out_c[1]["mean"]).backward()
        _assert_same_grads(model, twin, f"call {i}")
        _assert_equal(x_e.grad, x_c.grad, f"call {i}: x.grad")
    assert f_c.retraces == ["first call"]


def test_unused_output_can_be_differentiated_later():
    model, twin = _twins()
    f_e = lambda x: (model(x).sum(), model(x) * 3.0)
    f_c = tg.compile(lambda x: (twin(x).sum(), twin(x) * 3.0))
    x = _randn(0, 4, 5)
    for i in range(2):
        model.zero_grad()
        twin.zero_grad()
        (_, b_e), (_, b_c) = f_e(x), f_c(x)
        b_e.pow(2).sum().backward()
        b_c.pow(2).sum().backward()
        _assert_same_grads(model, twin, f"call {i}")


def test_backward_twice_through_a_compiled_region():
    model, twin = _twins()
    cm = tg.compile(twin)
    x = _randn(0, 4, 5)
    for i in range(2):
        model.zero_grad()
        twin.zero_grad()
        y_e, y_c = model(x), cm(x)
        y_e.sum().backward(retain_graph=True)
        y_c.sum().backward(retain_graph=True)
        y_e.square().sum().backward()
        y_c.square().sum().backward()  # a new loss over the same outputs: the region's backward runs again
        _assert_same_grads(model, twin, f"call {i}: retain_graph=True")
        with pytest.raises(RuntimeError, match="a second time"):
            y_c.sum().backward()
        with pytest.raises(RuntimeError, match="a second time"):
            y_e.sum().backward()


def test_create_graph_through_a_compiled_region_raises():
    _, twin = _twins()
    cm = tg.compile(twin)
    x = _randn(0, 4, 5).requires_grad_()
    for _ in range(2):
        with pytest.raises(RuntimeError, match="create_graph=True through a compiled region is not supported"):
            tg.autograd.grad(cm(x).sum(), x, create_graph=True)
        with pytest.raises(RuntimeError, match="create_graph=True through a compiled region"):
            cm(x).sum().backward(create_graph=True)


def test_returning_an_argument_or_a_parameter_keeps_it_a_leaf():
    def make():
        w = tg.ones(3, requires_grad=True)
        return w, lambda x: ((w * x).sum(), w, x)

    (w_e, f_e), (w_c, f_c) = make(), make()
    f_c = tg.compile(f_c)
    for i in range(3):
        x_e, x_c = _randn(i, 3).requires_grad_(), _randn(i, 3).requires_grad_()
        (loss_e, *_), (loss_c, w_out, x_out) = f_e(x_e), f_c(x_c)
        assert w_out is w_c and x_out is x_c  # as eager returns them
        loss_e.backward()
        loss_c.backward()
        _assert_equal(w_e.grad, w_c.grad, f"call {i}: w.grad")
        _assert_equal(x_e.grad, x_c.grad, f"call {i}: x.grad")
        assert w_c.is_leaf and w_c.grad_fn is None, f"call {i}: the parameter became {w_c.grad_fn}"
        assert x_c.is_leaf and x_c.grad_fn is None, f"call {i}: the argument became {x_c.grad_fn}"


# ------------------------------------------------------------------------ 5. pytrees and static arguments
def _check_calls(fn, make_args, calls=3, compiled=None):
    """`fn` eagerly and compiled on fresh equal arguments; outputs equal, and the arguments equal after."""
    compiled = tg.compile(fn) if compiled is None else compiled
    for i in range(calls):
        args_e, args_c = make_args(i), make_args(i)
        _assert_tree_equal(fn(*args_e), compiled(*args_c), f"call {i}")
        _assert_tree_equal(args_e, args_c, f"call {i}: arguments after the call")
    return compiled


def test_pytree_inputs_and_outputs():
    def f(batch, options):
        x, (y, rest) = batch["x"], batch["pair"]
        scale = options["scale"] if options["mode"] == "scaled" else 1.0
        z = x * scale + y.sum()
        if options["extra"] is not None:
            z = z - options["extra"]
        return {"z": z, "parts": (z.exp(), [rest[0] * 2.0, options["mode"]]), "none": None, "count": len(rest)}

    def make_args(i):
        batch = {"x": _randn(i, 3, 2), "pair": (_randn(i + 10, 4), [_randn(i + 20, 2), None, "tag"])}
        return batch, {"scale": 0.5, "mode": "scaled", "extra": 1.5}

    compiled = _check_calls(f, make_args)
    assert compiled.retraces == ["first call"]
    out = compiled(*make_args(0))
    assert isinstance(out["parts"], tuple) and isinstance(out["parts"][1], list) and out["parts"][1][1] == "scaled"


def test_namedtuple_output():
    from collections import namedtuple
    pair = namedtuple("Pair", "low high")
    _check_calls(lambda x: pair(x.min(), x.max()), lambda i: (_randn(i, 5),))


def test_returning_a_view_of_a_result_reuses_the_graph():
    for f in (lambda x: (x * 2.0)[0], lambda x: (x * 2.0).t(), lambda x: (x + 1.0).reshape(-1)):
        compiled = _check_calls(f, lambda i: (_randn(i, 2, 3),), calls=4)
        assert compiled.retraces == ["first call"], compiled.retraces


def test_tensor_indices_are_read_at_each_call():
    """An index tensor is data: a new index at the next call selects other elements, as eagerly."""
    def gather(x, i):
        return x[i] * 2.0, x[tg.arange(2), i[:2]]

    compiled = _check_calls(gather, lambda i: (_randn(0, 4, 3), _labels(i, 4, 3)))
    assert compiled.retraces == ["first call"]


@pytest.mark.parametrize("first, second, shown", [
    (2, 3, "input s: static value 2 -> 3"),
    (0.5, 0.25, "input s: static value 0.5 -> 0.25"),
    ("sum", "mean", "input s: static value 'sum' -> 'mean'"),
    (None, 1.0, "input s: static value None -> 1.0"),
])
def test_a_new_static_value_retraces_and_says_so(first, second, shown):
    def f(x, s):
        if s is None:
            return x * 1.0
        if isinstance(s, str):
            return x.sum() if s == "sum" else x.mean()
        return x * s + s

    compiled = tg.compile(f)
    for i, s in enumerate([first, first, second, second, first]):
        x = _randn(i, 4)
        _assert_equal(f(x, s), compiled(x, s), f"call {i} with {s!r}")
    assert compiled.retraces == ["first call", shown]  # back to the first value: its graph is cached


def test_static_value_inside_a_pytree_retraces_and_says_where():
    f = lambda d: d["x"] * d["k"]
    compiled = _check_calls(f, lambda i: ({"x": _randn(i, 2), "k": [2, 2, 3, 3][i]},), calls=4)
    assert compiled.retraces == ["first call", "input d['k']: static value 2 -> 3"]


def test_static_keyword_argument_retraces():
    def f(x, *, power=2):
        return (x ** power).sum()

    compiled = tg.compile(f)
    x = _randn(0, 3)
    for p in (2, 2, 3, 2):
        _assert_equal(f(x, power=p), compiled(x, power=p), f"power={p}")
    assert compiled.retraces == ["first call", "input power: static value 2 -> 3"]


def test_the_same_tensor_passed_twice():
    f = lambda a, b: (a * b + a).sum() - b.mean()
    x, y = _randn(0, 3), _randn(1, 3)
    compiled = tg.compile(f)
    for i in range(3):
        _assert_equal(f(x, x), compiled(x, x), f"call {i}: f(x, x)")
    _assert_equal(f(x, y), compiled(x, y), "then f(x, y)")
    _assert_equal(f(y, y), compiled(y, y), "then f(y, y)")


def test_distinct_tensors_then_the_same_tensor_twice():
    f = lambda a, b: (a * b + a).sum() - b.mean()
    x, y = _randn(0, 3), _randn(1, 3)
    compiled = tg.compile(f)
    for i in range(2):
        _assert_equal(f(x, y), compiled(x, y), f"call {i}: f(x, y)")
    _assert_equal(f(x, x), compiled(x, x), "then f(x, x)")
    _assert_equal(f(y, x), compiled(y, x), "then f(y, x)")


def test_the_same_tensor_twice_mutated_in_place():
    def f(a, b):
        a.mul_(2.0)
        return a + b

    compiled = tg.compile(f)
    for i in range(3):
        x_e, x_c = _randn(i, 3), _randn(i, 3)
        _assert_equal(f(x_e, x_e), compiled(x_c, x_c), f"call {i}")
        _assert_equal(x_e, x_c, f"call {i}: the argument")


# --------------------------------------------------------------------------------- 6. grad, value_and_grad
def _loss(w, x, b):
    return ((x @ w + b).tanh() ** 2).mean() + 0.1 * (w * w).sum()


def _w_x_b(seed):
    return _randn(seed, 5, 3), _randn(seed + 1, 4, 5), _randn(seed + 2, 3)


def _autograd_grads(fn, args, argnums):
    """The reference: eager autograd on leaves that require grad."""
    leaves = [a.detach().clone().requires_grad_(i in argnums) for i, a in enumerate(args)]
    out = fn(*leaves)
    return out, tg.autograd.grad(out, [leaves[i] for i in argnums])


@pytest.mark.parametrize("argnums", [0, 2, (0, 1), (2, 0), -1])
def test_grad_and_value_and_grad_eagerly_equal_autograd(argnums):
    nums = (argnums % 3,) if isinstance(argnums, int) else argnums
    for seed in range(2):
        args = _w_x_b(seed)
        value, grads = tg.value_and_grad(_loss, argnums)(*args)
        ref_value, ref_grads = _autograd_grads(_loss, args, nums)
        _assert_equal(ref_value, value, "value")
        got = (grads,) if isinstance(argnums, int) else grads
        assert isinstance(got, tuple) and len(got) == len(nums)
        for i, (g, r) in enumerate(zip(got, ref_grads)):
            _assert_equal(r, g, f"gradient {i}")
            assert not g.requires_grad and g.grad_fn is None
        only = tg.grad(_loss, argnums)(*args)
        _assert_tree_equal(grads, only, "grad vs value_and_grad")
        assert all(not a.requires_grad and a.grad is None for a in args)  # no .grad touched


@pytest.mark.parametrize("argnums", [0, (0, 2)])
def test_grad_under_compile_equals_eager_grad(argnums):
    eager = tg.value_and_grad(_loss, argnums)
    compiled = tg.compile(eager)
    for seed in range(3):
        args = _w_x_b(seed)
        _assert_tree_equal(eager(*args), compiled(*args), f"seed {seed}", requires_grad=False)
    assert compiled.retraces == ["first call"]


def test_grad_under_compile_returns_tensors_that_do_not_require_grad():
    """As eagerly: the value and the gradients are plain tensors (inputs that don't require grad)."""
    compiled = tg.compile(tg.value_and_grad(_loss, (0, 1)))
    for seed in range(2):
        value, (gw, gx) = compiled(*_w_x_b(seed))
        for name, t in (("value", value), ("grad w", gw), ("grad x", gx)):
            assert not t.requires_grad and t.grad_fn is None, f"call {seed}: {name} has grad_fn {t.grad_fn}"


def test_grad_inside_a_compiled_training_step():
    """A functional training step: gradients from `grad`, the update written into captured parameters."""
    w0, _, b0 = _w_x_b(0)

    def make():
        w, b = w0.clone(), b0.clone()

        def step(x):
            gw, gb = tg.grad(_loss, (0, 2))(w, x, b)
            with tg.no_grad():
                w.sub_(0.5 * gw)
                b.sub_(0.5 * gb)
            return _loss(w, x, b)
        return step, w, b

    (step_e, w_e, b_e), (step_c, w_c, b_c) = make(), make()
    step_c = tg.compile(step_c)
    for i in range(4):
        x = _w_x_b(10 + i)[1]
        _assert_equal(step_e(x), step_c(x), f"step {i}")
        _assert_equal(w_e, w_c, f"step {i}: w")
        _assert_equal(b_e, b_c, f"step {i}: b")
    assert step_c.retraces == ["first call"]


def _cubic(x):
    return (x.sin() * x ** 3).sum()


def test_second_derivative_by_nested_grad():
    d2 = tg.grad(tg.grad(_cubic))
    compiled = tg.compile(d2)
    for v in (0.7, -1.3, 2.0):
        x = tg.tensor(v)
        leaf = tg.tensor(v, requires_grad=True)
        (d1,) = tg.autograd.grad(_cubic(leaf), leaf, create_graph=True)
        (ref,) = tg.autograd.grad(d1, leaf)
        expected = -v ** 3 * np.sin(v) + 6 * v ** 2 * np.cos(v) + 6 * v * np.sin(v)
        _assert_equal(ref, d2(x), f"x={v}", exact=False)  # another order of the same ops: round-off
        _assert_equal(d2(x), compiled(x), f"x={v}: compiled")
        assert d2(x).item() == pytest.approx(expected, rel=1e-5)
    assert compiled.retraces == ["first call"]


def test_nested_grad_with_an_argnums_tuple():
    f = lambda a, b: (a * a * b).sum()
    a, b = tg.tensor([1.0, 2.0]), tg.tensor([3.0, -1.0])
    # d/db of sum(df/da) = d/db sum(2ab) = 2a
    g = tg.grad(lambda a, b: tg.grad(f, 0)(a, b).sum(), argnums=(0, 1))
    da, db = g(a, b)
    _assert_equal(tg.tensor([6.0, -2.0]), da, "d/da")
    _assert_equal(tg.tensor([2.0, 4.0]), db, "d/db")
    _assert_tree_equal((da, db), tg.compile(g)(a, b), "compiled", requires_grad=False)


@pytest.mark.parametrize("fn, message", [
    (lambda x: x * 2.0, r"scalar floating point tensor.*shape \[3\]"),
    (lambda x: (x > 0).sum(), "scalar floating point tensor"),
    (lambda x: 3.0, "returned a float"),
])
def test_grad_of_a_non_scalar_function_raises_type_error(fn, message):
    for wrap in (lambda f: f, tg.compile):
        with pytest.raises(TypeError, match=message):
            wrap(tg.grad(fn))(tg.ones(3))


def test_grad_argument_errors():
    with pytest.raises(TypeError, match="argument 1 must be a Tensor"):
        tg.grad(lambda x, n: x.sum() * n, argnums=1)(tg.ones(2), 3)
    with pytest.raises(TypeError, match="only floating point inputs"):
        tg.grad(lambda x: x.sum().double())(tg.tensor([1, 2]))
    with pytest.raises(ValueError, match="out of range"):
        tg.grad(lambda x: x.sum(), argnums=1)(tg.ones(2))


# ------------------------------------------------------------------------------------ 7. mutation patterns
class _Counter(nn.Module):
    """An MLP with buffers a step writes into: a history, a running sum of the inputs."""

    def __init__(self):
        super().__init__()
        self.net = _mlp()
        self.register_buffer("history", tg.zeros(4))
        self.register_buffer("acc", tg.zeros(3, 5))

    def forward(self, x):
        return self.net(x)


def _check_mutations(make_step, calls=4, args=lambda i: _regression_batches(4)[i % 4], retraces=None):
    """`make_step(model)` -> a step function; run eagerly and compiled on twin models, compare all state."""
    eager, twin = _twins(_Counter)
    step_e, step_c = make_step(eager), tg.compile(make_step(twin))
    held = _held(twin)
    for i in range(calls):
        args_e, args_c = args(i), args(i)
        # a loss returned after backward() inside a compiled step is a plain tensor (its graph is spent)
        _assert_tree_equal(step_e(*args_e), step_c(*args_c), f"call {i}: output", requires_grad=False)
        _assert_tree_equal(args_e, args_c, f"call {i}: arguments after the call")
        _assert_same_state((eager, None), (twin, None), f"call {i}")
        _assert_same_objects(held, _held(twin), f"call {i}")
    if retraces is not None:
        assert len(step_c.retraces) == retraces, step_c.retraces
    return step_c


@pytest.mark.parametrize("style", ["data-isub", "no-grad-isub", "data-assign", "sub_", "grad-zero_"])
def test_manual_sgd_update(style):
    lr = 0.1

    def make_step(model):
        def step(x, y):
            for p in model.parameters():
                if style != "grad-zero_":
                    p.grad = None
                elif p.grad is not None:
                    p.grad.zero_()
            loss = F.mse_loss(model(x), y)
            loss.backward()
            for p in model.parameters():
                if style == "data-isub":
                    p.data -= lr * p.grad
                elif style == "data-assign":
                    p.data = p.data - lr * p.grad
                elif style == "no-grad-isub":
                    with tg.no_grad():
                        p -= lr * p.grad
                else:
                    p.data.sub_(p.grad, alpha=lr)
            return loss
        return step

    _check_mutations(make_step, retraces=2)  # first call: .grad was None; then a tensor each call


def test_zero_grad_in_place_keeps_the_grad_tensors():
    def make_step(model):
        opt = tg.optim.SGD(model.parameters(), lr=0.1)

        def step(x, y):
            opt.zero_grad(set_to_none=False)
            loss = F.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            return loss
        return step

    step = _check_mutations(make_step, calls=5)
    assert "None -> a tensor" in step.retraces[1], step.retraces


def test_grad_tensors_are_zeroed_in_place_not_replaced():
    eager, twin = _twins()
    opt = tg.optim.SGD(twin.parameters(), lr=0.1)
    opt_e = tg.optim.SGD(eager.parameters(), lr=0.1)

    def make_step(model, opt):
        def step(x, y):
            model.zero_grad(set_to_none=False)
            F.mse_loss(model(x), y).backward()
            opt.step()
        return step

    step_e, step_c = make_step(eager, opt_e), tg.compile(make_step(twin, opt))
    batches = _regression_batches()
    step_e(*batches[0])
    step_c(*batches[0])
    grads = [p.grad for p in twin.parameters()]
    for i in range(1, 4):
        step_e(*batches[i % 3])
        step_c(*batches[i % 3])
        _assert_same_state((eager, opt_e), (twin, opt), f"call {i}")
        # eagerly, zero_() and the accumulation write into the same .grad tensors; PyTorch users hold them
        assert all(p.grad is g for p, g in zip(twin.parameters(), grads)), f"call {i}: a .grad was replaced"


def test_setitem_with_an_index_tensor_on_a_captured_buffer():
    def make_step(model):
        def step(x, where):
            with tg.no_grad():
                model.history[where] = x.sum()
                model.acc[where[:2]] += 1.0
            return model.history * 1.0
        return step

    _check_mutations(make_step, args=lambda i: (_randn(i, 3, 5), _labels(i, 2, 3)), retraces=1)


def test_setitem_on_a_captured_buffer():
    def make_step(model):
        def step(x, y):
            loss = F.mse_loss(model(x), y)
            with tg.no_grad():
                model.history[0] = loss
                model.history[1] = model.history[1] + 1.0
                model.history[2:] = model.history[:2] * 2.0
                model.acc[:, :] = model.acc + x[:3]
            return loss * 1.0
        return step

    _check_mutations(make_step, retraces=1)


def test_in_place_op_on_a_view_of_a_captured_tensor():
    def make_step(model):
        def step(x, y):
            with tg.no_grad():
                model.history[1:].mul_(2.0)
                model.history[0].add_(1.0)
                model.acc[0].copy_(x[0])
                model.acc.t()[1:3].add_(0.5)
                model.acc.reshape(-1)[::4].sub_(0.25)
                row = model.acc[2]
                row.mul_(-1.0)
            return model.history.sum() + model.acc.sum()
        return step

    _check_mutations(make_step, retraces=1)


def test_in_place_op_on_a_view_of_a_parameter_under_no_grad():
    def make_step(model):
        def step(x, y):
            w = model.net[0].weight
            with tg.no_grad():
                w[0].mul_(0.5)
                w[:, 1:3].clamp_(-0.2, 0.2)
            return F.mse_loss(model(x), y)
        return step

    _check_mutations(make_step, retraces=1)


def test_gradient_accumulation_over_two_backward_calls():
    def make_step(model):
        opt = tg.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

        def step(x, y):
            for half in (slice(0, 3), slice(3, 7)):
                loss = F.mse_loss(model(x[half]), y[half]) * 0.5
                loss.backward()
            opt.step()
            return loss
        return step

    _check_mutations(make_step, calls=5)  # no zero_grad at all: the .grads keep growing, as eagerly


def test_gradient_accumulation_then_zero_grad():
    def make_step(model):
        opt = tg.optim.Adam(model.parameters(), lr=0.01)

        def step(x, y):
            loss_a = F.mse_loss(model(x[:4]), y[:4])
            loss_a.backward()
            loss_b = F.mse_loss(model(x[4:]), y[4:])
            loss_b.backward()
            opt.step()
            opt.zero_grad()
            return loss_a, loss_b
        return step

    _check_mutations(make_step)


def test_mutating_an_argument_in_place():
    def make_step(model):
        def step(x, scale):
            x.mul_(scale)
            x[0] = 1.0
            x.clamp_(-1.0, 1.0)
            scale.add_(1.0)
            return model(x).sum()
        return step

    _check_mutations(make_step, args=lambda i: (_randn(i, 3, 5), _randn(i + 10, 5)), retraces=1)


def test_mutated_argument_returned_is_the_argument():
    def f(x):
        x.add_(1.0)
        return x

    compiled = _check_calls(f, lambda i: (_randn(i, 3),))
    x = _randn(0, 3)
    assert f(x) is x
    assert compiled(x) is x, "eagerly the in-place op returns its argument"


def test_mutating_an_argument_that_requires_no_grad_inside_a_training_step():
    def make_step(model):
        opt = tg.optim.SGD(model.parameters(), lr=0.1)

        def step(x, y):
            x.sub_(x.mean(0))  # normalize the caller's batch in place
            opt.zero_grad()
            loss = F.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            model.history.add_(loss.detach())
            return loss
        return step

    _check_mutations(make_step, calls=4)


@pytest.mark.parametrize("backend", ["interpret", "numba"])
def test_compiled_grads_and_optimizer_state_are_laid_out_like_the_parameters(backend):
    tg.manual_seed(0)
    model = tg.nn.Sequential(tg.nn.Linear(6, 4), tg.nn.ReLU(), tg.nn.Linear(4, 2))
    opt = tg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    step = train_step(model, opt, tg.nn.functional.mse_loss)
    f = tg.compile(step, backend=backend, **({"tiered": False} if backend == "numba" else {}))
    x, y = tg.ones(3, 6), tg.zeros(3, 2)
    for _ in range(4):
        f(x, y)
    for p in model.parameters():
        assert p.grad.numpy().flags.c_contiguous and opt.state[p]["momentum_buffer"].numpy().flags.c_contiguous
