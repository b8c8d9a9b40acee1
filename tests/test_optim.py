"""tracegrad.optim: SGD, Adam, AdamW and the lr schedulers.

Each optimizer option is checked against its update rule written out by hand in numpy (float64), and,
when torch is installed, against torch.optim step by step in float32.
"""
import copy
import math
import pickle
import re
import warnings

import numpy as np
import pytest

import tracegrad as tg
import tracegrad.optim  # noqa: F401 - registers tg.optim even before tracegrad/__init__ imports it
from tracegrad.optim import SGD, Adam, AdamW, Optimizer
from tracegrad.optim.lr_scheduler import CosineAnnealingLR, LambdaLR, LRScheduler, StepLR

STEPS = 6

# ------------------------------------------------------------------------------------------ a small problem
# loss(p) = sum_i 0.5 * a_i * p_i**2 + b_i * p_i, so dloss/dp_i = a_i * p_i + b_i
_rng = np.random.default_rng(1234)
P0 = [_rng.standard_normal((2, 3)), _rng.standard_normal(3)]
A = [_rng.uniform(0.5, 2.0, (2, 3)), _rng.uniform(0.5, 2.0, 3)]
B = [_rng.standard_normal((2, 3)), _rng.standard_normal(3)]


def make_params(dtype=np.float64):
    return [tg.tensor(p.astype(dtype), requires_grad=True) for p in P0]


def loss_fn(lib, params, dtype=np.float64):
    """The quadratic loss in tracegrad or torch (`lib`), with constants of `dtype`."""
    total = 0
    for p, a, b in zip(params, A, B):
        a_t, b_t = lib.tensor(a.astype(dtype)), lib.tensor(b.astype(dtype))
        total = total + (0.5 * (a_t * p * p)).sum() + (b_t * p).sum()
    return total


def grad_np(ps):
    return [a * p + b for p, a, b in zip(ps, A, B)]


def run(opt, params, steps=STEPS):
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(tg, params).backward()
        opt.step()


def arr(t):
    return t.detach().numpy()


# ------------------------------------------------------------------------------------------ hand-written rules
def sgd_reference(steps, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False):
    ps = [p.copy() for p in P0]
    bufs = [None] * len(ps)
    for _ in range(steps):
        for i, g in enumerate(grad_np(ps)):
            if maximize:
                g = -g
            if weight_decay:
                g = g + weight_decay * ps[i]
            if momentum:
                bufs[i] = g.copy() if bufs[i] is None else momentum * bufs[i] + (1 - dampening) * g
                g = g + momentum * bufs[i] if nesterov else bufs[i]
            ps[i] = ps[i] - lr * g
    return ps, bufs


def adam_reference(steps, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False,
                   decoupled=False):
    b1, b2 = betas
    ps = [p.copy() for p in P0]
    m = [np.zeros_like(p) for p in ps]
    v = [np.zeros_like(p) for p in ps]
    vmax = [np.zeros_like(p) for p in ps]
    for t in range(1, steps + 1):
        for i, g in enumerate(grad_np(ps)):
            if maximize:
                g = -g
            if weight_decay:
                if decoupled:
                    ps[i] = ps[i] * (1 - lr * weight_decay)
                else:
                    g = g + weight_decay * ps[i]
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            vmax[i] = np.maximum(vmax[i], v[i])
            v_hat = (vmax[i] if amsgrad else v[i]) / (1 - b2 ** t)
            m_hat = m[i] / (1 - b1 ** t)
            ps[i] = ps[i] - lr * m_hat / (np.sqrt(v_hat) + eps)
    return ps, m, v, vmax


def assert_close(actual, expected, rtol=1e-10, atol=1e-12):
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


SGD_CASES = [
    dict(),
    dict(momentum=0.9),
    dict(momentum=0.9, dampening=0.5),
    dict(momentum=0.9, nesterov=True),
    dict(weight_decay=0.1),
    dict(maximize=True),
    dict(momentum=0.8, dampening=0.3, weight_decay=0.05, maximize=True),
    dict(momentum=0.5, nesterov=True, weight_decay=0.2, maximize=True),
]

ADAM_CASES = [
    dict(),
    dict(weight_decay=0.1),
    dict(amsgrad=True, betas=(0.9, 0.5)),
    dict(maximize=True),
    dict(betas=(0.3, 0.8), eps=1e-3),  # beta1 < 0.5: lerp's weight 1 - beta1 > 0.5 takes its other branch
    dict(weight_decay=0.1, amsgrad=True, maximize=True, betas=(0.8, 0.6)),
]

ADAMW_CASES = [
    dict(),  # weight_decay defaults to 1e-2
    dict(weight_decay=0.3),
    dict(weight_decay=0.2, amsgrad=True, betas=(0.9, 0.5)),
    dict(weight_decay=0.1, maximize=True),
    dict(weight_decay=0.0),
]


def _id(case):
    return ",".join(f"{k}={v}" for k, v in case.items()) or "defaults"


# ------------------------------------------------------------------------------------------ SGD
@pytest.mark.parametrize("case", SGD_CASES, ids=_id)
def test_sgd_matches_hand_written_rule(case):
    params = make_params()
    opt = SGD(params, lr=0.05, **case)
    run(opt, params)
    expected, bufs = sgd_reference(STEPS, 0.05, **case)
    for p, e in zip(params, expected):
        assert_close(arr(p), e)
    for p, b in zip(params, bufs):
        if case.get("momentum", 0):
            assert_close(arr(opt.state[p]["momentum_buffer"]), b)
        else:
            assert "momentum_buffer" not in opt.state[p]


def test_sgd_first_momentum_buffer_is_a_copy_of_the_gradient():
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    opt = SGD([w], lr=0.1, momentum=0.9)
    (w * w).sum().backward()
    opt.step()
    buf = opt.state[w]["momentum_buffer"]
    assert buf is not w.grad
    assert buf.tolist() == [2.0, 4.0] and not buf.requires_grad
    w.grad.zero_()
    assert buf.tolist() == [2.0, 4.0]


def test_sgd_defaults():
    w = tg.zeros(2, requires_grad=True)
    opt = SGD([w])
    assert opt.defaults == dict(lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, maximize=False)
    assert opt.param_groups[0]["lr"] == 1e-3


# ------------------------------------------------------------------------------------------ Adam, AdamW
@pytest.mark.parametrize("case", ADAM_CASES, ids=_id)
def test_adam_matches_hand_written_rule(case):
    params = make_params()
    opt = Adam(params, lr=0.05, **case)
    run(opt, params)
    expected, m, v, vmax = adam_reference(STEPS, 0.05, **case)
    for i, p in enumerate(params):
        assert_close(arr(p), expected[i])
        st = opt.state[p]
        assert_close(arr(st["exp_avg"]), m[i])
        assert_close(arr(st["exp_avg_sq"]), v[i])
        assert st["step"].dtype is tg.float32 and st["step"].shape == () and st["step"].item() == STEPS
        if case.get("amsgrad"):
            assert_close(arr(st["max_exp_avg_sq"]), vmax[i])
            if not case.get("maximize"):  # (maximizing, |grad| grows and the maximum is v itself)
                assert not np.allclose(vmax[i], v[i])  # the case does exercise the running maximum
        else:
            assert "max_exp_avg_sq" not in st


@pytest.mark.parametrize("case", ADAMW_CASES, ids=_id)
def test_adamw_matches_hand_written_rule(case):
    params = make_params()
    opt = AdamW(params, lr=0.05, **case)
    run(opt, params)
    kwargs = dict(case)
    kwargs.setdefault("weight_decay", 1e-2)
    expected, m, v, vmax = adam_reference(STEPS, 0.05, decoupled=True, **kwargs)
    for i, p in enumerate(params):
        assert_close(arr(p), expected[i])
        assert_close(arr(opt.state[p]["exp_avg"]), m[i])
        assert_close(arr(opt.state[p]["exp_avg_sq"]), v[i])
    assert opt.param_groups[0]["decoupled_weight_decay"] is True


def test_adamw_decay_differs_from_adam_l2():
    pa, pw = make_params(), make_params()
    run(Adam(pa, lr=0.05, weight_decay=0.3), pa)
    run(AdamW(pw, lr=0.05, weight_decay=0.3), pw)
    assert not np.allclose(arr(pa[0]), arr(pw[0]))


def test_adam_defaults_and_state_dtypes():
    w = tg.tensor([1.0, 2.0], dtype=tg.float64, requires_grad=True)
    opt = Adam([w])
    assert opt.defaults == dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False,
                                maximize=False, decoupled_weight_decay=False)
    assert AdamW([tg.zeros(1, requires_grad=True)]).defaults["weight_decay"] == 1e-2
    (w * w).sum().backward()
    opt.step()
    st = opt.state[w]
    assert st["exp_avg"].dtype is tg.float64 and st["exp_avg_sq"].dtype is tg.float64
    assert st["step"].dtype is tg.float32
    assert not any(t.requires_grad for t in st.values())


# ------------------------------------------------------------------------------------------ parity with torch
def _torch_params(torch):
    return [torch.tensor(p.astype(np.float32), requires_grad=True) for p in P0]


def _parity(torch, tg_opt, t_opt, tg_params, t_params, keys):
    for step in range(5):
        for opt, lib, params in ((tg_opt, tg, tg_params), (t_opt, torch, t_params)):
            opt.zero_grad()
            loss_fn(lib, params, np.float32).backward()
            opt.step()
        for p, q in zip(tg_params, t_params):
            np.testing.assert_allclose(arr(p), q.detach().numpy(), rtol=1e-5, atol=1e-7, err_msg=f"step {step}")
            for key in keys:
                ours, theirs = tg_opt.state[p][key], t_opt.state[q][key]
                np.testing.assert_allclose(arr(ours), theirs.detach().numpy(), rtol=1e-5, atol=1e-7,
                                           err_msg=f"{key} at step {step}")
                assert ours.dtype.name == str(theirs.dtype).removeprefix("torch.")


@pytest.mark.parametrize("case", SGD_CASES, ids=_id)
def test_sgd_parity_with_torch(case):
    torch = pytest.importorskip("torch")
    tg_params, t_params = make_params(np.float32), _torch_params(torch)
    keys = ["momentum_buffer"] if case.get("momentum") else []
    _parity(torch, SGD(tg_params, lr=0.05, **case), torch.optim.SGD(t_params, lr=0.05, **case),
            tg_params, t_params, keys)


@pytest.mark.parametrize("case", ADAM_CASES, ids=_id)
def test_adam_parity_with_torch(case):
    torch = pytest.importorskip("torch")
    tg_params, t_params = make_params(np.float32), _torch_params(torch)
    keys = ["step", "exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if case.get("amsgrad") else [])
    _parity(torch, Adam(tg_params, lr=0.05, **case), torch.optim.Adam(t_params, lr=0.05, **case),
            tg_params, t_params, keys)


@pytest.mark.parametrize("case", ADAMW_CASES, ids=_id)
def test_adamw_parity_with_torch(case):
    torch = pytest.importorskip("torch")
    tg_params, t_params = make_params(np.float32), _torch_params(torch)
    keys = ["step", "exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if case.get("amsgrad") else [])
    _parity(torch, AdamW(tg_params, lr=0.05, **case), torch.optim.AdamW(t_params, lr=0.05, **case),
            tg_params, t_params, keys)


def test_adam_parity_with_torch_over_many_steps():
    """Small lr and many steps: the bias corrections (1 - beta2**t is tiny early on) must match closely."""
    torch = pytest.importorskip("torch")
    tg_params, t_params = make_params(np.float32), _torch_params(torch)
    tg_opt, t_opt = Adam(tg_params, lr=1e-3, amsgrad=True), torch.optim.Adam(t_params, lr=1e-3, amsgrad=True)
    for _ in range(50):
        for opt, lib, params in ((tg_opt, tg, tg_params), (t_opt, torch, t_params)):
            opt.zero_grad()
            loss_fn(lib, params, np.float32).backward()
            opt.step()
    for p, q in zip(tg_params, t_params):
        np.testing.assert_allclose(arr(p), q.detach().numpy(), rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------------------------------------ the step itself
@pytest.mark.parametrize("make", [lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1),
                                  lambda ps: Adam(ps, lr=0.1, amsgrad=True, weight_decay=0.1),
                                  lambda ps: AdamW(ps, lr=0.1, maximize=True)], ids=["sgd", "adam", "adamw"])
def test_step_updates_in_place_outside_the_graph(make):
    params = make_params(np.float32)
    opt = make(params)
    before = [p._version for p in params]
    with tg.enable_grad():
        loss_fn(tg, params, np.float32).backward()
        opt.step()
    for p, v in zip(params, before):
        assert p.is_leaf and p.requires_grad and p.grad_fn is None
        assert p._version > v  # written in place
    for st in opt.state.values():
        for t in st.values():
            assert not t.requires_grad and t.grad_fn is None
    assert tg.is_grad_enabled()


@pytest.mark.parametrize("make", [lambda ps: SGD(ps, lr=0.1, momentum=0.9), lambda ps: Adam(ps, lr=0.1)],
                         ids=["sgd", "adam"])
def test_params_without_grad_are_skipped(make):
    used, unused = tg.tensor([1.0, 2.0], requires_grad=True), tg.tensor([3.0, 4.0], requires_grad=True)
    opt = make([used, unused])
    for _ in range(3):
        opt.zero_grad()
        (used * used).sum().backward()
        opt.step()
    assert unused.tolist() == [3.0, 4.0] and unused.grad is None
    assert unused not in opt.state
    assert used in opt.state and used.tolist() != [1.0, 2.0]


def test_zero_grad_set_to_none():
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    opt = SGD([w], lr=0.1)
    (w * w).sum().backward()
    opt.zero_grad()
    assert w.grad is None
    opt.zero_grad()  # no grad at all: nothing to do
    assert w.grad is None


def test_zero_grad_in_place():
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    opt = SGD([w], lr=0.1)
    (w * w).sum().backward()
    g = w.grad
    opt.zero_grad(set_to_none=False)
    assert w.grad is g and g.tolist() == [0.0, 0.0] and not g.requires_grad
    (w * w).sum().backward()
    assert w.grad.tolist() == [2.0, 4.0]


def test_zero_grad_in_place_detaches_a_grad_with_history():
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    opt = SGD([w], lr=0.1)
    (w * w * w).sum().backward(create_graph=True)
    assert w.grad.grad_fn is not None
    opt.zero_grad(set_to_none=False)
    assert w.grad.grad_fn is None and not w.grad.requires_grad and w.grad.tolist() == [0.0, 0.0]


def test_param_groups_with_different_lr():
    a, b = tg.tensor([1.0], requires_grad=True), tg.tensor([1.0], requires_grad=True)
    opt = SGD([{"params": [a]}, {"params": b, "lr": 0.5, "momentum": 0.9}], lr=0.1)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    assert [g["momentum"] for g in opt.param_groups] == [0, 0.9]
    assert opt.param_groups[1]["params"][0] is b  # a bare tensor in a group is wrapped in a list
    for _ in range(2):
        opt.zero_grad()
        (a * 2 + b * 2).sum().backward()
        opt.step()
    assert a.item() == pytest.approx(1 - 2 * 0.1 * 2)
    assert b.item() == pytest.approx(1 - 0.5 * 2 - 0.5 * (0.9 * 2 + 2))


def test_add_param_group():
    a, b = tg.tensor([1.0], requires_grad=True), tg.tensor([1.0], requires_grad=True)
    opt = Adam([a], lr=0.1, betas=(0.5, 0.9))
    (a * 3).sum().backward()
    opt.step()
    opt.add_param_group({"params": [b], "lr": 0.2})
    group = opt.param_groups[1]
    assert group["lr"] == 0.2 and group["betas"] == (0.5, 0.9) and group["eps"] == 1e-8
    assert set(group) == set(opt.defaults) | {"params"}
    opt.zero_grad()
    (a * 3 + b * 3).sum().backward()
    opt.step()
    assert opt.state[b]["step"].item() == 1 and opt.state[a]["step"].item() == 2
    assert b.item() == pytest.approx(1 - 0.2, rel=1e-6)
    with pytest.raises(ValueError, match=re.escape("some parameters appear in more than one parameter group")):
        opt.add_param_group({"params": [a]})
    with pytest.raises(TypeError, match="param_group must be a dict"):
        opt.add_param_group([b])
    assert len(opt.param_groups) == 2


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW])
def test_closure(cls):
    w = tg.tensor([1.0, -1.0], requires_grad=True)
    opt = cls([w], lr=0.1)
    calls = []

    def closure():
        calls.append(tg.is_grad_enabled())
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    with tg.no_grad():
        loss = opt.step(closure)
    assert calls == [True]  # the closure runs with gradients on, even inside no_grad
    assert loss.item() == 2.0
    assert w.tolist() != [1.0, -1.0]
    assert opt.step() is None


def test_closure_with_sgd_matches_explicit_loop():
    p1, p2 = make_params(), make_params()
    opt1, opt2 = SGD(p1, lr=0.05, momentum=0.9), SGD(p2, lr=0.05, momentum=0.9)
    run(opt1, p1)

    def closure():
        opt2.zero_grad()
        loss = loss_fn(tg, p2)
        loss.backward()
        return loss

    losses = [opt2.step(closure).item() for _ in range(STEPS)]
    for a, b in zip(p1, p2):
        assert_close(arr(a), arr(b), rtol=0, atol=0)
    assert losses[-1] < losses[0]


def test_lr_change_in_param_group_takes_effect():
    w = tg.tensor([1.0], requires_grad=True)
    opt = SGD([w], lr=0.1)
    w.grad = tg.tensor([1.0])
    opt.step()
    opt.param_groups[0]["lr"] = 0.5
    opt.step()
    assert w.item() == pytest.approx(1 - 0.1 - 0.5)


# ------------------------------------------------------------------------------------------ state dict
@pytest.mark.parametrize("make", [lambda ps: SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
                                  lambda ps: Adam(ps, lr=0.05, amsgrad=True),
                                  lambda ps: AdamW(ps, lr=0.05, weight_decay=0.1)],
                         ids=["sgd", "adam", "adamw"])
def test_state_dict_round_trip_continues_identically(make):
    pa = make_params()
    opt_a = make(pa)
    run(opt_a, pa, 3)
    sd = opt_a.state_dict()
    pb = [tg.tensor(arr(p).copy(), requires_grad=True) for p in pa]
    opt_b = make(pb)
    opt_b.load_state_dict(sd)
    assert opt_b.param_groups[0]["params"][0] is pb[0]
    for i, p in enumerate(pb):
        assert set(opt_b.state[p]) == set(opt_a.state[pa[i]])
        for key, value in opt_b.state[p].items():
            assert value is not opt_a.state[pa[i]][key]  # a copy: the two optimizers stay independent
    run(opt_a, pa, 3)
    run(opt_b, pb, 3)
    for a, b in zip(pa, pb):
        assert_close(arr(a), arr(b), rtol=0, atol=0)
    for a, b in zip(pa, pb):
        for key, value in opt_a.state[a].items():
            assert_close(arr(opt_b.state[b][key]), arr(value), rtol=0, atol=0)


def test_state_dict_format():
    a, b, c = (tg.tensor([float(i)], requires_grad=True) for i in range(3))
    opt = Adam([{"params": [a, b]}, {"params": [c], "lr": 0.5}], lr=0.1)
    for p in (a, c):
        p.grad = tg.tensor([1.0])
    opt.step()
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups"}
    assert sorted(sd["state"]) == [0, 2]  # b had no gradient, so no state
    assert set(sd["state"][0]) == {"step", "exp_avg", "exp_avg_sq"}
    assert sd["state"][0]["exp_avg"] is opt.state[a]["exp_avg"]  # referenced, as in PyTorch
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2]]
    assert sd["param_groups"][1]["lr"] == 0.5 and sd["param_groups"][0]["betas"] == (0.9, 0.999)
    assert opt.param_groups[0]["params"][0] is a  # packing did not touch the optimizer's groups
    sd["param_groups"][0]["lr"] = 99.0
    assert opt.param_groups[0]["lr"] == 0.1


def test_load_state_dict_restores_hyper_parameters():
    w = tg.zeros(2, requires_grad=True)
    src = SGD([w], lr=0.3, momentum=0.5)
    v = tg.zeros(2, requires_grad=True)
    dst = SGD([v], lr=0.1)
    dst.load_state_dict(src.state_dict())
    assert dst.param_groups[0]["lr"] == 0.3 and dst.param_groups[0]["momentum"] == 0.5
    assert dst.param_groups[0]["params"][0] is v


def test_load_state_dict_casts_state_to_param_dtype_and_converts_float_steps():
    w = tg.tensor([1.0, 2.0], dtype=tg.float64, requires_grad=True)
    sd = {"state": {0: {"step": 4.0, "exp_avg": tg.tensor([0.1, 0.2]), "exp_avg_sq": tg.tensor([0.3, 0.4])}},
          "param_groups": [dict(Adam([tg.zeros(1, requires_grad=True)]).param_groups[0], params=[0])]}
    opt = Adam([w])
    opt.load_state_dict(sd)
    st = opt.state[w]
    assert st["exp_avg"].dtype is tg.float64 and st["exp_avg_sq"].dtype is tg.float64
    assert isinstance(st["step"], tg.Tensor) and st["step"].item() == 4.0 and st["step"].dtype is tg.float32
    w.grad = tg.ones(2, dtype=tg.float64)
    opt.step()
    assert st["step"].item() == 5.0


def test_load_state_dict_errors():
    a, b = tg.zeros(1, requires_grad=True), tg.zeros(1, requires_grad=True)
    one_group = SGD([a, b], lr=0.1).state_dict()
    two_groups = SGD([{"params": [a]}, {"params": [b]}], lr=0.1).state_dict()
    with pytest.raises(ValueError, match=re.escape("loaded state dict has a different number of parameter groups")):
        SGD([a, b], lr=0.1).load_state_dict(two_groups)
    with pytest.raises(ValueError, match=re.escape("loaded state dict contains a parameter group that doesn't "
                                                   "match the size of optimizer's group")):
        SGD([a], lr=0.1).load_state_dict(one_group)


def test_optimizer_deepcopy_and_pickle_keep_params_and_state_together():
    params = make_params()
    opt = Adam(params, lr=0.05)
    run(opt, params, 2)
    for clone in (copy.deepcopy(opt), pickle.loads(pickle.dumps(opt))):
        new_params = clone.param_groups[0]["params"]
        assert all(p in clone.state for p in new_params)
        assert all(q is not p for p, q in zip(params, new_params))
        assert_close(arr(clone.state[new_params[0]]["exp_avg"]), arr(opt.state[params[0]]["exp_avg"]), 0, 0)


def test_repr():
    opt = SGD([tg.zeros(1, requires_grad=True)], lr=0.1)
    assert repr(opt) == ("SGD (\nParameter Group 0\n    dampening: 0\n    lr: 0.1\n    maximize: False\n"
                         "    momentum: 0\n    nesterov: False\n    weight_decay: 0\n)")


# ------------------------------------------------------------------------------------------ validation
def _w():
    return [tg.zeros(2, requires_grad=True)]


@pytest.mark.parametrize("make, error, message", [
    (lambda: SGD(_w(), lr=-0.1), ValueError, "Invalid learning rate: -0.1"),
    (lambda: SGD(_w(), lr=0.1, momentum=-0.1), ValueError, "Invalid momentum value: -0.1"),
    (lambda: SGD(_w(), lr=0.1, weight_decay=-1), ValueError, "Invalid weight_decay value: -1"),
    (lambda: SGD(_w(), lr=0.1, nesterov=True), ValueError, "Nesterov momentum requires a momentum and zero dampening"),
    (lambda: SGD(_w(), lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), ValueError,
     "Nesterov momentum requires a momentum and zero dampening"),
    (lambda: Adam(_w(), lr=-0.1), ValueError, "Invalid learning rate: -0.1"),
    (lambda: Adam(_w(), eps=-1e-8), ValueError, "Invalid epsilon value: -1e-08"),
    (lambda: Adam(_w(), betas=(1.0, 0.999)), ValueError, "Invalid beta parameter at index 0: 1.0"),
    (lambda: Adam(_w(), betas=(-0.1, 0.999)), ValueError, "Invalid beta parameter at index 0: -0.1"),
    (lambda: Adam(_w(), betas=(0.9, 1.5)), ValueError, "Invalid beta parameter at index 1: 1.5"),
    (lambda: Adam(_w(), weight_decay=-1), ValueError, "Invalid weight_decay value: -1"),
    (lambda: AdamW(_w(), lr=-0.1), ValueError, "Invalid learning rate: -0.1"),
    (lambda: AdamW(_w(), weight_decay=-1), ValueError, "Invalid weight_decay value: -1"),
    (lambda: AdamW(_w(), betas=(0.9, 1.0)), ValueError, "Invalid beta parameter at index 1: 1.0"),
])
def test_hyper_parameter_validation(make, error, message):
    with pytest.raises(error, match=re.escape(message)):
        make()


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW])
def test_param_validation(cls):
    w = tg.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match=re.escape("can't optimize a non-leaf Tensor")):
        cls([w * 2], lr=0.1)
    with pytest.raises(TypeError, match=re.escape("params argument given to the optimizer should be an iterable of "
                                                  "Tensors or dicts, but got tracegrad.FloatTensor")):
        cls(w, lr=0.1)
    with pytest.raises(TypeError, match=re.escape("but got tracegrad.DoubleTensor")):
        cls(tg.zeros(2, dtype=tg.float64, requires_grad=True), lr=0.1)
    with pytest.raises(ValueError, match=re.escape("some parameters appear in more than one parameter group")):
        cls([{"params": [w]}, {"params": [w]}], lr=0.1)
    with pytest.raises(ValueError, match=re.escape("optimizer contains a parameter group with duplicate parameters")):
        cls([w, w], lr=0.1)
    with pytest.raises(ValueError, match=re.escape("optimizer got an empty parameter list")):
        cls([], lr=0.1)
    with pytest.raises(TypeError, match=re.escape("optimizer can only optimize Tensors, but one of the params is "
                                                  "numpy.ndarray")):
        cls([np.zeros(2)], lr=0.1)
    with pytest.raises(TypeError, match="ordered collections"):
        cls({w}, lr=0.1)


def test_non_leaf_that_retains_grad_is_accepted():
    w = tg.zeros(2, requires_grad=True)
    y = w * 2
    y.retain_grad()
    SGD([y], lr=0.1)


def test_base_optimizer_step_is_abstract():
    opt = Optimizer([tg.zeros(1, requires_grad=True)], {"lr": 0.1})
    with pytest.raises(NotImplementedError):
        opt.step()


def test_required_hyper_parameter():
    from tracegrad.optim.optimizer import required
    with pytest.raises(ValueError, match="didn't specify a value of required optimization parameter lr"):
        Optimizer([tg.zeros(1, requires_grad=True)], {"lr": required})
    opt = Optimizer([{"params": [tg.zeros(1, requires_grad=True)], "lr": 0.5}], {"lr": required})
    assert opt.param_groups[0]["lr"] == 0.5


# ------------------------------------------------------------------------------------------ lr schedulers
def _sgd(lr=0.1, groups=1):
    return SGD([{"params": [tg.zeros(1, requires_grad=True)], "lr": lr * (i + 1)} for i in range(groups)], lr=lr)


def lr_sequence(opt, sched, n=10):
    """The lr of every group in epochs 0..n-1 (the PyTorch loop: optimizer.step, then scheduler.step)."""
    out = []
    for _ in range(n):
        out.append(sched.get_last_lr())
        assert out[-1] == [g["lr"] for g in opt.param_groups]
        opt.step()
        sched.step()
    return out


def test_steplr_sequence():
    opt = _sgd(0.1, groups=2)
    seq = lr_sequence(opt, StepLR(opt, step_size=3, gamma=0.5))
    expected = [[0.1 * 0.5 ** (e // 3), 0.2 * 0.5 ** (e // 3)] for e in range(10)]
    for got, want in zip(seq, expected):
        assert got == pytest.approx(want, rel=1e-15)


def test_cosine_annealing_sequence():
    opt = _sgd(0.1)
    eta_min, t_max = 0.01, 4
    seq = [s[0] for s in lr_sequence(opt, CosineAnnealingLR(opt, T_max=t_max, eta_min=eta_min), 12)]
    # the closed form; past T_max the schedule goes back up (period 2 * T_max)
    expected = [eta_min + (0.1 - eta_min) * (1 + math.cos(math.pi * e / t_max)) / 2 for e in range(12)]
    assert seq == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert seq[4] == pytest.approx(eta_min) and seq[8] == pytest.approx(0.1)


def test_lambdalr_sequence_one_function_and_one_per_group():
    opt = _sgd(0.1, groups=2)
    seq = lr_sequence(opt, LambdaLR(opt, lambda e: 0.9 ** e))
    assert seq == [[0.1 * 0.9 ** e, 0.2 * 0.9 ** e] for e in range(10)]
    opt = _sgd(0.1, groups=2)
    seq = lr_sequence(opt, LambdaLR(opt, [lambda e: 1 / (e + 1), lambda e: e % 3]))
    assert seq == [[0.1 * (1 / (e + 1)), 0.2 * (e % 3)] for e in range(10)]
    with pytest.raises(ValueError, match=re.escape("Expected 2 lr_lambdas, but got 1")):
        LambdaLR(_sgd(0.1, groups=2), [lambda e: 1.0])


def test_scheduler_sets_initial_lr_and_counts_epochs():
    opt = _sgd(0.1)
    sched = StepLR(opt, step_size=2)
    assert opt.param_groups[0]["initial_lr"] == 0.1 and sched.base_lrs == [0.1]
    assert sched.last_epoch == 0 and sched.get_last_lr() == [0.1]
    for _ in range(3):
        opt.step()
        sched.step()
    assert sched.last_epoch == 3
    assert isinstance(sched, LRScheduler)


def test_scheduler_changes_the_update():
    w = tg.tensor([0.0], requires_grad=True)
    opt = SGD([w], lr=1.0)
    sched = StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(3):
        w.grad = tg.tensor([-1.0])
        opt.step()
        sched.step()
    assert w.item() == 1.0 + 0.5 + 0.25


@pytest.mark.parametrize("make", [lambda o: StepLR(o, step_size=3, gamma=0.5),
                                  lambda o: CosineAnnealingLR(o, T_max=5, eta_min=0.001),
                                  lambda o: LambdaLR(o, lambda e: 0.8 ** e)], ids=["step", "cosine", "lambda"])
def test_scheduler_state_dict_round_trip(make):
    opt = _sgd(0.1)
    sched = make(opt)
    lr_sequence(opt, sched, 4)
    sd = sched.state_dict()
    assert "optimizer" not in sd and sd["last_epoch"] == 4
    opt2 = _sgd(0.1)
    sched2 = make(opt2)  # PyTorch's order: the scheduler first (its first step sets the lr), then the states
    opt2.load_state_dict(opt.state_dict())
    sched2.load_state_dict(sd)
    assert sched2.get_last_lr() == sched.get_last_lr() and opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    assert lr_sequence(opt2, sched2, 6) == lr_sequence(opt, sched, 6)


def test_lambdalr_state_dict_keeps_functions_out():
    opt = _sgd(0.1)
    sched = LambdaLR(opt, lambda e: 0.5)
    assert sched.state_dict()["lr_lambdas"] == [None]


def test_scheduler_resume_with_last_epoch():
    opt = _sgd(0.1)
    with pytest.raises(KeyError, match="initial_lr"):
        StepLR(opt, step_size=2, last_epoch=3)
    opt.param_groups[0]["initial_lr"] = 1.0
    sched = CosineAnnealingLR(opt, T_max=4, last_epoch=1)  # resumes at epoch 2, keeping the current lr
    assert sched.last_epoch == 2 and sched.get_last_lr() == [0.1]  # (as PyTorch 2.x does)
    opt.step()
    sched.step()  # then the recursive form from the current lr
    assert sched.get_last_lr() == pytest.approx([(1 + math.cos(3 * math.pi / 4)) / (1 + math.cos(math.pi / 2)) * 0.1])


def test_scheduler_step_with_epoch_uses_closed_form():
    opt = _sgd(1.0)
    sched = StepLR(opt, step_size=2, gamma=0.5)
    opt.step()
    with pytest.warns(UserWarning, match="epoch parameter"):
        sched.step(5)
    assert sched.get_last_lr() == [0.25]


def test_scheduler_warnings():
    opt = _sgd(0.1)
    sched = StepLR(opt, step_size=2)
    with pytest.warns(UserWarning, match=re.escape("Detected call of `lr_scheduler.step()` before "
                                                   "`optimizer.step()`")):
        sched.step()
    with pytest.warns(UserWarning, match=re.escape("please use `get_last_lr()`")):
        sched.get_lr()
    opt = _sgd(0.1)
    sched = StepLR(opt, step_size=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.step()
        sched.step()
    with pytest.raises(TypeError, match="is not an Optimizer"):
        StepLR(object(), step_size=1)


def _torch_lr_sequence(torch, sched_fn, lr=0.1, groups=1, n=10):
    ps = [torch.zeros(1, requires_grad=True) for _ in range(groups)]
    opt = torch.optim.SGD([{"params": [p], "lr": lr * (i + 1)} for i, p in enumerate(ps)], lr=lr)
    sched = sched_fn(torch.optim.lr_scheduler, opt)
    out = []
    for _ in range(n):
        out.append(sched.get_last_lr())
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("sched_fn", [
    lambda m, o: m.StepLR(o, step_size=3, gamma=0.5),
    lambda m, o: m.StepLR(o, step_size=1),
    lambda m, o: m.CosineAnnealingLR(o, T_max=4, eta_min=0.01),
    lambda m, o: m.CosineAnnealingLR(o, T_max=7),
    lambda m, o: m.LambdaLR(o, lambda e: 0.9 ** e),
    lambda m, o: m.LambdaLR(o, [lambda e: 1 / (e + 1), lambda e: e % 3]),
], ids=["step", "step1", "cosine", "cosine7", "lambda", "lambda_list"])
def test_scheduler_parity_with_torch(sched_fn):
    torch = pytest.importorskip("torch")
    import tracegrad.optim.lr_scheduler as ours
    for groups in (1, 2):
        try:
            theirs = _torch_lr_sequence(torch, sched_fn, groups=groups, n=16)
        except ValueError:  # a list of lambdas for a different number of groups
            continue
        opt = _sgd(0.1, groups=groups)
        assert lr_sequence(opt, sched_fn(ours, opt), 16) == theirs
