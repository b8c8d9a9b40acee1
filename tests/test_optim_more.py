"""RMSprop, Adagrad, Adadelta; MultiStepLR, ConstantLR, LinearLR, ExponentialLR, OneCycleLR, SequentialLR,
ChainedScheduler, ReduceLROnPlateau; nn.utils' gradient clipping and parameters <-> vector.

Each optimizer is checked against its rule written out in numpy (float64), and, when torch is installed, against
torch.optim step by step (float32, every option combination below). Schedulers' learning rates (and OneCycleLR's
momentum) are compared with torch's epoch by epoch, and with closed forms. Clipping is compared with torch and
with numpy, eagerly and inside a compiled training step.
"""
import math
import re
import warnings

import numpy as np
import pytest

import tracegrad as tg
import tracegrad.nn as nn
import tracegrad.nn.functional as F
from tracegrad.optim import SGD, Adadelta, Adagrad, Adam, RMSprop
from tracegrad.optim import lr_scheduler as S

STEPS = 5

# ------------------------------------------------------------------------------------------ a small problem
# loss(p) = sum_i 0.5 * a_i * p_i**2 + b_i * p_i, so dloss/dp_i = a_i * p_i + b_i
_rng = np.random.default_rng(4321)
P0 = [_rng.standard_normal((2, 3)), _rng.standard_normal(4)]
A = [_rng.uniform(0.5, 2.0, (2, 3)), _rng.uniform(0.5, 2.0, 4)]
B = [_rng.standard_normal((2, 3)), _rng.standard_normal(4)]


def make_params(lib, dtype=np.float64):
    return [lib.tensor(p.astype(dtype), requires_grad=True) for p in P0]


def loss_fn(lib, params, dtype):
    total = 0
    for p, a, b in zip(params, A, B):
        total = total + (0.5 * (lib.tensor(a.astype(dtype)) * p * p)).sum() + (lib.tensor(b.astype(dtype)) * p).sum()
    return total


def grad_np(ps):
    return [a * p + b for p, a, b in zip(ps, A, B)]


def run(opt, params, lib=tg, dtype=np.float64, steps=STEPS):
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(lib, params, dtype).backward()
        opt.step()


def arr(t):
    return t.detach().numpy()


def _id(case):
    return "-".join(f"{k}={v}" for k, v in case.items()) or "defaults"


# ------------------------------------------------------------------------------------------ numpy rules
def rmsprop_reference(steps, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
                      maximize=False):
    ps = [p.copy() for p in P0]
    v, m, buf = ([np.zeros_like(p) for p in ps] for _ in range(3))
    for _ in range(steps):
        for i, g in enumerate(grad_np(ps)):
            g = -g if maximize else g
            g = g + weight_decay * ps[i]
            v[i] = alpha * v[i] + (1 - alpha) * g * g
            if centered:
                m[i] = alpha * m[i] + (1 - alpha) * g
                avg = np.sqrt(v[i] - m[i] * m[i]) + eps
            else:
                avg = np.sqrt(v[i]) + eps
            if momentum > 0:
                buf[i] = momentum * buf[i] + g / avg
                ps[i] = ps[i] - lr * buf[i]
            else:
                ps[i] = ps[i] - lr * g / avg
    return ps, {"square_avg": v, "grad_avg": m, "momentum_buffer": buf}


def adagrad_reference(steps, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10,
                      maximize=False):
    ps = [p.copy() for p in P0]
    s = [np.full_like(p, initial_accumulator_value) for p in ps]
    for t in range(1, steps + 1):
        for i, g in enumerate(grad_np(ps)):
            g = -g if maximize else g
            g = g + weight_decay * ps[i]
            s[i] = s[i] + g * g
            ps[i] = ps[i] - lr / (1 + (t - 1) * lr_decay) * g / (np.sqrt(s[i]) + eps)
    return ps, {"sum": s}


def adadelta_reference(steps, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, maximize=False):
    ps = [p.copy() for p in P0]
    v, u = [np.zeros_like(p) for p in ps], [np.zeros_like(p) for p in ps]
    for _ in range(steps):
        for i, g in enumerate(grad_np(ps)):
            g = -g if maximize else g
            g = g + weight_decay * ps[i]
            v[i] = rho * v[i] + (1 - rho) * g * g
            delta = np.sqrt(u[i] + eps) / np.sqrt(v[i] + eps) * g
            u[i] = rho * u[i] + (1 - rho) * delta * delta
            ps[i] = ps[i] - lr * delta
    return ps, {"square_avg": v, "acc_delta": u}


RMSPROP_CASES = [dict(), dict(momentum=0.9), dict(centered=True), dict(weight_decay=0.1, maximize=True),
                 dict(lr=0.05, alpha=0.5, eps=1e-3, momentum=0.5, centered=True, weight_decay=0.05)]
ADAGRAD_CASES = [dict(), dict(lr_decay=0.1), dict(initial_accumulator_value=0.5, eps=1e-3),
                 dict(lr=0.5, weight_decay=0.1, maximize=True, lr_decay=0.05)]
ADADELTA_CASES = [dict(), dict(lr=0.5, rho=0.5), dict(weight_decay=0.1, eps=1e-3), dict(maximize=True, rho=0.99)]
OPTIMIZERS = [(RMSprop, rmsprop_reference, RMSPROP_CASES), (Adagrad, adagrad_reference, ADAGRAD_CASES),
              (Adadelta, adadelta_reference, ADADELTA_CASES)]
ALL_CASES = [(cls, ref, case) for cls, ref, cases in OPTIMIZERS for case in cases]
CASE_IDS = [f"{cls.__name__}-{_id(case)}" for cls, _, case in ALL_CASES]


def state_keys(cls, case):
    if cls is RMSprop:
        return {"step", "square_avg"} | ({"momentum_buffer"} if case.get("momentum") else set()) \
            | ({"grad_avg"} if case.get("centered") else set())
    return {"step", "sum"} if cls is Adagrad else {"step", "square_avg", "acc_delta"}


@pytest.mark.parametrize("cls, reference, case", ALL_CASES, ids=CASE_IDS)
def test_matches_hand_written_rule(cls, reference, case):
    params = make_params(tg)
    opt = cls(params, **case)
    run(opt, params)
    expected, state = reference(STEPS, **case)
    for i, (p, e) in enumerate(zip(params, expected)):
        np.testing.assert_allclose(arr(p), e, rtol=1e-10, atol=1e-12)
        assert set(opt.state[p]) == state_keys(cls, case)
        assert opt.state[p]["step"].item() == STEPS and opt.state[p]["step"].dtype is tg.float32
        for key, value in opt.state[p].items():
            if key != "step":
                np.testing.assert_allclose(arr(value), state[key][i], rtol=1e-10, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("cls, reference, case", ALL_CASES, ids=CASE_IDS)
def test_parity_with_torch(cls, reference, case):
    torch = pytest.importorskip("torch")
    ours, theirs = make_params(tg, np.float32), make_params(torch, np.float32)
    opt, t_opt = cls(ours, **case), getattr(torch.optim, cls.__name__)(theirs, **case)
    for step in range(STEPS):
        run(opt, ours, tg, np.float32, 1)
        run(t_opt, theirs, torch, np.float32, 1)
        for p, q in zip(ours, theirs):
            np.testing.assert_allclose(arr(p), q.detach().numpy(), rtol=2e-6, atol=1e-7, err_msg=f"step {step}")
            assert set(opt.state[p]) == set(t_opt.state[q])
            for key, value in opt.state[p].items():
                np.testing.assert_allclose(arr(value), t_opt.state[q][key].numpy(), rtol=2e-6, atol=1e-7,
                                           err_msg=f"{key} at step {step}")
                assert value.dtype.name == str(t_opt.state[q][key].dtype).removeprefix("torch.")
    # the hyper-parameters torch stores, apart from its implementation switches
    switches = {"foreach", "capturable", "differentiable", "fused"}
    assert {k: v for k, v in t_opt.param_groups[0].items() if k not in switches | {"params"}} == \
        {k: v for k, v in opt.param_groups[0].items() if k != "params"}


def test_defaults_are_pytorchs():
    w = [tg.zeros(1, requires_grad=True)]
    assert RMSprop(w).defaults == dict(lr=1e-2, momentum=0, alpha=0.99, eps=1e-8, centered=False, weight_decay=0,
                                       maximize=False)
    assert Adagrad(w).defaults == dict(lr=1e-2, lr_decay=0, eps=1e-10, weight_decay=0, initial_accumulator_value=0,
                                       maximize=False)
    assert Adadelta(w).defaults == dict(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, maximize=False)


def test_adagrad_state_is_made_with_the_optimizer():
    a, b = tg.zeros(2, requires_grad=True), tg.zeros(3, requires_grad=True)
    opt = Adagrad([a, b], initial_accumulator_value=0.25)
    assert set(opt.state[b]) == {"step", "sum"} and arr(opt.state[b]["sum"]).tolist() == [0.25] * 3
    a.grad = tg.ones(2)
    opt.step()
    assert opt.state[a]["step"].item() == 1 and opt.state[b]["step"].item() == 0  # b had no gradient
    c = tg.zeros(1, requires_grad=True)
    opt.add_param_group({"params": [c], "initial_accumulator_value": 9.0})
    c.grad = tg.ones(1)
    opt.step()  # a group added later gets its state at its first step, from the default accumulator value
    assert arr(opt.state[c]["sum"]).tolist() == [1.25]


@pytest.mark.parametrize("make", [lambda ps: RMSprop(ps, lr=0.05, momentum=0.9, centered=True),
                                  lambda ps: Adagrad(ps, lr=0.1, lr_decay=0.01),
                                  lambda ps: Adadelta(ps, rho=0.8)], ids=["rmsprop", "adagrad", "adadelta"])
def test_state_dict_round_trip_continues_identically(make):
    pa = make_params(tg)
    opt_a = make(pa)
    run(opt_a, pa, steps=3)
    sd = opt_a.state_dict()
    pb = [tg.tensor(arr(p).copy(), requires_grad=True) for p in pa]
    opt_b = make(pb)
    opt_b.load_state_dict(sd)
    for p, q in zip(pa, pb):
        assert set(opt_b.state[q]) == set(opt_a.state[p])
        assert all(opt_b.state[q][k] is not v for k, v in opt_a.state[p].items())
    run(opt_a, pa, steps=3)
    run(opt_b, pb, steps=3)
    for p, q in zip(pa, pb):
        np.testing.assert_array_equal(arr(q), arr(p))


@pytest.mark.parametrize("cls", [RMSprop, Adagrad, Adadelta])
def test_loaded_python_number_steps_become_tensors(cls):
    w = tg.zeros(2, requires_grad=True)
    opt = cls([w])
    w.grad = tg.ones(2)
    opt.step()
    sd = opt.state_dict()
    sd["state"][0] = dict(sd["state"][0], step=4)
    opt2 = cls([tg.zeros(2, requires_grad=True)])
    opt2.load_state_dict(sd)
    (state,) = opt2.state.values()
    assert isinstance(state["step"], tg.Tensor) and state["step"].dtype is tg.float32 and state["step"].item() == 4


def _w():
    return [tg.zeros(2, requires_grad=True)]


@pytest.mark.parametrize("make, message", [
    (lambda: RMSprop(_w(), lr=-1), "Invalid learning rate: -1"),
    (lambda: RMSprop(_w(), eps=-1), "Invalid epsilon value: -1"),
    (lambda: RMSprop(_w(), momentum=-0.5), "Invalid momentum value: -0.5"),
    (lambda: RMSprop(_w(), weight_decay=-1), "Invalid weight_decay value: -1"),
    (lambda: RMSprop(_w(), alpha=-0.1), "Invalid alpha value: -0.1"),
    (lambda: Adagrad(_w(), lr=-1), "Invalid learning rate: -1"),
    (lambda: Adagrad(_w(), lr_decay=-1), "Invalid lr_decay value: -1"),
    (lambda: Adagrad(_w(), weight_decay=-1), "Invalid weight_decay value: -1"),
    (lambda: Adagrad(_w(), initial_accumulator_value=-1), "Invalid initial_accumulator_value value: -1"),
    (lambda: Adagrad(_w(), eps=-1), "Invalid epsilon value: -1"),
    (lambda: Adadelta(_w(), lr=-1), "Invalid learning rate: -1"),
    (lambda: Adadelta(_w(), rho=1.5), "Invalid rho value: 1.5"),
    (lambda: Adadelta(_w(), eps=-1), "Invalid epsilon value: -1"),
    (lambda: Adadelta(_w(), weight_decay=-1), "Invalid weight_decay value: -1"),
    (lambda: RMSprop(_w(), lr=tg.ones(2)), "Tensor lr must be 1-element"),
])
def test_hyper_parameter_validation(make, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make()


# ------------------------------------------------------------------------------------------ lr schedulers
def _opt(name="SGD", lr=0.1, groups=2, lib=tg, **kw):
    ps = [lib.zeros(1, requires_grad=True) for _ in range(groups)]
    return getattr(lib.optim, name)([{"params": [p], "lr": lr * (i + 1)} for i, p in enumerate(ps)], lr=lr, **kw)


def lr_sequence(opt, sched, n=12, metrics=None, key=None):
    """Per epoch: the lr of every group (and `key`'s value, e.g. 'momentum'), the PyTorch loop's order."""
    out = []
    for i in range(n):
        out.append((sched.get_last_lr(), [g[key] for g in opt.param_groups] if key else None))
        opt.step()
        sched.step() if metrics is None else sched.step(metrics[i])
    return out


PLATEAU_METRICS = [5.0, 4.0, 4.0, 3.9999, 4.5, 3.0, 3.0, 3.5, 2.0, 2.5, 2.5, 2.5, 2.5, 1.0, 1.0, 1.0]
SCHEDULER_CASES = {
    "multistep": lambda m, o: m.MultiStepLR(o, milestones=[2, 5, 5, 9], gamma=0.5),
    "constant": lambda m, o: m.ConstantLR(o, factor=0.25, total_iters=4),
    "linear": lambda m, o: m.LinearLR(o, start_factor=0.1, end_factor=0.7, total_iters=6),
    "linear-defaults": lambda m, o: m.LinearLR(o),
    "exponential": lambda m, o: m.ExponentialLR(o, gamma=0.8),
    "sequential": lambda m, o: m.SequentialLR(o, [m.LinearLR(o, start_factor=0.5, total_iters=3),
                                                  m.ExponentialLR(o, gamma=0.7), m.StepLR(o, step_size=2)],
                                              milestones=[3, 7]),
    "chained": lambda m, o: m.ChainedScheduler([m.ConstantLR(o, factor=0.5, total_iters=3),
                                                m.ExponentialLR(o, gamma=0.9), m.MultiStepLR(o, [4, 8])]),
    "onecycle-cos": lambda m, o: m.OneCycleLR(o, max_lr=[1.0, 2.0], total_steps=12),
    "onecycle-linear-3phase": lambda m, o: m.OneCycleLR(o, max_lr=1.0, epochs=3, steps_per_epoch=4, pct_start=0.4,
                                                        anneal_strategy="linear", three_phase=True, div_factor=10.0,
                                                        final_div_factor=100.0),
    "plateau-min-rel": lambda m, o: m.ReduceLROnPlateau(o, patience=1, factor=0.5),
    "plateau-min-abs-cooldown": lambda m, o: m.ReduceLROnPlateau(o, patience=0, threshold=0.6, threshold_mode="abs",
                                                                 cooldown=2, min_lr=[0.03, 0.01]),
    "plateau-max": lambda m, o: m.ReduceLROnPlateau(o, mode="max", patience=1, factor=0.2, min_lr=0.005),
    # linalg-optim block
    "multiplicative": lambda m, o: m.MultiplicativeLR(o, [lambda e: 0.9, lambda e: 1.0 - 0.05 * e]),
    "polynomial": lambda m, o: m.PolynomialLR(o, total_iters=6, power=1.7),
    "cyclic-triangular": lambda m, o: m.CyclicLR(o, base_lr=[0.01, 0.02], max_lr=0.1, step_size_up=3,
                                                 step_size_down=2),
    "cyclic-triangular2": lambda m, o: m.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=2, mode="triangular2",
                                                  base_momentum=0.7, max_momentum=[0.95, 0.9]),
    "cyclic-exp_range": lambda m, o: m.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=2, mode="exp_range",
                                                gamma=0.9, cycle_momentum=False),
    "cyclic-custom-iterations": lambda m, o: m.CyclicLR(o, 0.01, 0.1, step_size_up=3, scale_fn=lambda x: 0.95 ** x,
                                                        scale_mode="iterations"),
    "warm-restarts": lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2, eta_min=0.001),
}


@pytest.mark.parametrize("name", list(SCHEDULER_CASES))
def test_scheduler_parity_with_torch(name):
    torch = pytest.importorskip("torch")
    make, n = SCHEDULER_CASES[name], 16 if "onecycle" not in name else 12
    metrics = [-m if "max" in name else m for m in PLATEAU_METRICS] if "plateau" in name else None
    key = "momentum" if "onecycle" in name or "cyclic" in name else None
    out = []
    for m, lib in ((S, tg), (torch.optim.lr_scheduler, torch)):
        opt = _opt(lib=lib, momentum=0.9)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no warning about the order of steps, no get_lr warning
            out.append(lr_sequence(opt, make(m, opt), n, metrics, key))
    assert out[0] == out[1]


@pytest.mark.parametrize("three_phase", [False, True])
def test_onecycle_cycles_adams_beta1_as_torch_does(three_phase):
    torch = pytest.importorskip("torch")
    out = []
    for m, lib in ((S, tg), (torch.optim.lr_scheduler, torch)):
        opt = _opt("Adam", lib=lib, betas=(0.9, 0.99))
        sched = m.OneCycleLR(opt, max_lr=0.5, total_steps=10, base_momentum=[0.8, 0.7], max_momentum=0.9,
                             three_phase=three_phase)
        out.append(lr_sequence(opt, sched, 10, key="betas"))
    assert out[0] == out[1]
    assert {betas[1] for _, all_betas in out[0] for betas in all_betas} == {0.99}


def test_closed_forms_by_hand():
    opt = _opt(groups=1, lr=1.0)
    seq = [lr[0] for lr, _ in lr_sequence(opt, S.MultiStepLR(opt, [3, 6, 6]), 9)]
    assert seq == pytest.approx([1.0] * 3 + [0.1] * 3 + [0.001] * 3, rel=1e-12)
    opt = _opt(groups=1, lr=1.0)
    seq = [lr[0] for lr, _ in lr_sequence(opt, S.LinearLR(opt, start_factor=0.2, end_factor=0.8, total_iters=6), 9)]
    assert seq == pytest.approx([0.2 + 0.6 * min(e, 6) / 6 for e in range(9)], rel=1e-12)
    opt = _opt(groups=1, lr=1.0)
    seq = [lr[0] for lr, _ in lr_sequence(opt, S.ExponentialLR(opt, gamma=0.9), 9)]
    assert seq == pytest.approx([0.9 ** e for e in range(9)], rel=1e-12)
    opt = _opt(groups=1, lr=1.0)
    seq = [lr[0] for lr, _ in lr_sequence(opt, S.ConstantLR(opt, factor=0.5, total_iters=3), 5)]
    assert seq == [0.5, 0.5, 0.5, 1.0, 1.0]


def test_onecycle_by_hand():
    opt = _opt(groups=1, lr=0.1, momentum=0.9)
    total, max_lr, pct = 20, 1.0, 0.3
    seq = lr_sequence(opt, S.OneCycleLR(opt, max_lr=max_lr, total_steps=total), total, key="momentum")
    initial, end_rise = max_lr / 25, pct * total - 1
    minimum = initial / 1e4

    def cos(start, end, f):
        return end + (start - end) / 2 * (math.cos(math.pi * f) + 1)

    for t, (lr, momentum) in enumerate(seq):
        f = t / end_rise if t <= end_rise else (t - end_rise) / (total - 1 - end_rise)
        lr_ends, m_ends = ((initial, max_lr), (0.95, 0.85)) if t <= end_rise else ((max_lr, minimum), (0.85, 0.95))
        assert lr[0] == pytest.approx(cos(*lr_ends, f), rel=1e-12)
        assert momentum[0] == pytest.approx(cos(*m_ends, f), rel=1e-12)
    assert seq[0][0][0] == pytest.approx(initial) and seq[-1][0][0] == pytest.approx(minimum)
    assert max(lr[0] for lr, _ in seq) == pytest.approx(max_lr, rel=1e-3)


def test_reduce_lr_on_plateau_by_hand():
    opt = _opt(groups=1, lr=1.0)
    sched = S.ReduceLROnPlateau(opt, factor=0.5, patience=2, cooldown=1, min_lr=0.2)
    lrs = [lr[0] for lr, _ in lr_sequence(opt, sched, 12, [1, 1, 1, 1, 1, 1, 1, 1, 0.5, 1, 1, 1])]
    # the first metric sets `best`; 3 bad epochs (> patience) reduce; the next epoch is a cooldown epoch, whose
    # bad metric does not count; 3 more reduce; the improvement to 0.5 falls in a cooldown epoch
    assert lrs == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25]
    assert sched.get_last_lr() == [0.2]  # 0.125 is below min_lr
    assert sched.best == 0.5 and sched.num_bad_epochs == 0 and sched.in_cooldown
    opt.step()
    sched.step(tg.tensor(2.0))  # a one-element tensor metric
    assert sched.get_last_lr() == [0.2] and not sched.in_cooldown and sched.last_epoch == 13


def test_sequential_and_plateau_state_dict_round_trip():
    def make(o):
        return S.SequentialLR(o, [S.ConstantLR(o, factor=0.5, total_iters=2), S.ExponentialLR(o, gamma=0.5)], [3])

    opt = _opt()
    sched = make(opt)
    lr_sequence(opt, sched, 4)
    sd = sched.state_dict()
    assert [type(s) for s in sd["_schedulers"]] == [dict, dict] and "optimizer" not in sd
    opt2 = _opt()
    sched2 = make(opt2)
    opt2.load_state_dict(opt.state_dict())
    sched2.load_state_dict(sd)
    assert lr_sequence(opt2, sched2, 5) == lr_sequence(opt, sched, 5)

    opt = _opt()
    sched = S.ReduceLROnPlateau(opt, mode="max", patience=0)
    lr_sequence(opt, sched, 3, [1.0, 0.5, 0.5])
    sched2 = S.ReduceLROnPlateau(_opt())
    sched2.load_state_dict(sched.state_dict())
    assert (sched2.mode, sched2.mode_worse, sched2.best, sched2.num_bad_epochs) == ("max", -math.inf, 1.0, 0)


def test_step_with_an_epoch_uses_the_closed_forms():
    for make, epoch, expected in [(lambda o: S.MultiStepLR(o, [2, 4]), 5, 0.01),
                                  (lambda o: S.ExponentialLR(o, gamma=0.5), 3, 0.125),
                                  (lambda o: S.LinearLR(o, start_factor=0.5, total_iters=4), 2, 0.75),
                                  (lambda o: S.ConstantLR(o, factor=0.5, total_iters=4), 4, 1.0)]:
        opt = _opt(groups=1, lr=1.0)
        sched = make(opt)
        opt.step()
        with pytest.warns(UserWarning, match="epoch parameter"):
            sched.step(epoch)
        assert sched.get_last_lr() == [pytest.approx(expected, rel=1e-12)]


@pytest.mark.parametrize("make, error, message", [
    (lambda o: S.ConstantLR(o, factor=1.5), ValueError,
     "Constant multiplicative factor expected to be between 0 and 1."),
    (lambda o: S.LinearLR(o, start_factor=0), ValueError,
     "Starting multiplicative factor expected to be greater than 0"),
    (lambda o: S.LinearLR(o, end_factor=2), ValueError, "Ending multiplicative factor expected to be between 0 and 1."),
    (lambda o: S.OneCycleLR(o, max_lr=1.0), ValueError,
     "You must define either total_steps OR (epochs AND steps_per_epoch)"),
    (lambda o: S.OneCycleLR(o, max_lr=1.0, total_steps=0), ValueError,
     "Expected positive integer total_steps, but got 0"),
    (lambda o: S.OneCycleLR(o, max_lr=1.0, epochs=2, steps_per_epoch=-1), ValueError,
     "Expected positive integer steps_per_epoch, but got -1"),
    (lambda o: S.OneCycleLR(o, max_lr=1.0, total_steps=5, pct_start=1), ValueError,
     "Expected float between 0 and 1 pct_start, but got 1"),
    (lambda o: S.OneCycleLR(o, max_lr=1.0, total_steps=5, anneal_strategy="exp"), ValueError,
     "anneal_strategy must be one of 'cos' or 'linear', instead got exp"),
    (lambda o: S.OneCycleLR(o, max_lr=[1.0], total_steps=5), ValueError,
     "max_lr must have the same length as optimizer.param_groups. max_lr has 1 values, param_groups has 2."),
    (lambda o: S.OneCycleLR(Adagrad(o.param_groups[0]["params"]), max_lr=1.0, total_steps=5), ValueError,
     "optimizer must support momentum or beta1 with `cycle_momentum` option enabled"),
    (lambda o: S.ReduceLROnPlateau(o, factor=1.0), ValueError, "Factor should be < 1.0."),
    (lambda o: S.ReduceLROnPlateau(o, mode="mean"), ValueError, "mode mean is unknown!"),
    (lambda o: S.ReduceLROnPlateau(o, threshold_mode="x"), ValueError, "threshold mode x is unknown!"),
    (lambda o: S.ReduceLROnPlateau(o, min_lr=[0.1]), ValueError, "expected 2 min_lrs, got 1"),
    (lambda o: S.ReduceLROnPlateau(object()), TypeError, "object is not an Optimizer"),
    (lambda o: S.SequentialLR(o, [S.ExponentialLR(o, 0.9)], milestones=[2]), ValueError,
     "Sequential Schedulers expects number of schedulers provided to be one more than the number of milestone points"),
    (lambda o: S.SequentialLR(o, [], milestones=[]), ValueError, "SequentialLR expects at least one scheduler"),
    (lambda o: S.SequentialLR(o, [S.ReduceLROnPlateau(o), S.ExponentialLR(o, 0.9)], [1]), ValueError,
     "SequentialLR does not support `ReduceLROnPlateau` scheduler"),
    (lambda o: S.ChainedScheduler([S.ExponentialLR(o, 0.9), S.ExponentialLR(_opt(), 0.9)]), ValueError,
     "ChainedScheduler expects all schedulers to belong to the same optimizer"),
    (lambda o: S.ChainedScheduler([object()], optimizer=o), TypeError,
     "ChainedScheduler at index 0 should have `optimizer` as its attribute."),
])
def test_scheduler_errors(make, error, message):
    with pytest.raises(error, match=re.escape(message)):
        make(_opt())


def test_onecycle_past_its_total_steps_raises():
    opt = _opt()
    sched = S.OneCycleLR(opt, max_lr=1.0, total_steps=2)
    opt.step()
    sched.step()
    sched.step()
    with pytest.raises(ValueError, match=re.escape("Tried to step 3 times. The specified number of total steps is 2")):
        sched.step()


def _twins(make_opt):
    out = []
    for _ in range(2):
        tg.manual_seed(0)
        model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
        out.append((model, make_opt(model.parameters())))
    return out


def _data(n=16, seed=1):
    rng = np.random.default_rng(seed)
    return tg.tensor(rng.standard_normal((n, 5)).astype(np.float32)), tg.tensor(rng.integers(0, 3, n))


def test_onecycle_cycling_adams_betas_between_compiled_steps_never_retraces():
    (m1, o1), (m2, o2) = _twins(lambda p: Adam(p, lr=1e-3))
    s1, s2 = (S.OneCycleLR(o, max_lr=0.05, total_steps=12, three_phase=True) for o in (o1, o2))

    def step_of(model, opt):
        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss.item()
        return step

    eager, compiled = step_of(m1, o1), tg.compile(step_of(m2, o2))
    x, y = _data()
    for i in range(12):
        assert eager(x, y) == compiled(x, y), i
        s1.step()
        s2.step()
        assert o1.param_groups[0]["betas"] == o2.param_groups[0]["betas"]
    assert len(compiled.retraces) == 2, compiled.retraces  # first call, then with the optimizer's state
    for p, q in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_array_equal(arr(q), arr(p))


# ------------------------------------------------------------------------------------------ nn.utils
def _grads(lib, with_none=True):
    rng = np.random.default_rng(7)
    ps = [lib.zeros(*shape, requires_grad=True) for shape in [(3, 4), (5,), (2, 2), (1,)]]
    for p, scale in zip(ps, [1.0, 3.0, 0.5, 2.0]):
        p.grad = lib.tensor((scale * rng.standard_normal(tuple(p.shape))).astype(np.float32))
    if with_none:
        ps[3].grad = None
    return ps


def _norm_np(grads, p):
    flat = np.concatenate([g.ravel().astype(np.float64) for g in grads])
    if p == math.inf:
        return np.abs(flat).max()
    return (np.abs(flat) ** p).sum() ** (1 / p)


@pytest.mark.parametrize("norm_type", [2.0, 1, math.inf, "inf", 3.0, 0.5])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_against_numpy(norm_type, max_norm):
    ps = _grads(tg)
    before = [arr(p.grad).copy() for p in ps[:3]]
    total = tg.nn.utils.clip_grad_norm_(ps, max_norm, norm_type=norm_type)
    expected = _norm_np(before, float(norm_type))
    assert total.dtype is tg.float32 and total.shape == () and not total.requires_grad
    np.testing.assert_allclose(total.item(), expected, rtol=1e-5)
    coef = min(max_norm / (expected + 1e-6), 1.0)
    for p, g in zip(ps, before):
        np.testing.assert_allclose(arr(p.grad), g * coef, rtol=1e-5)
    assert ps[3].grad is None


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, 3.0])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_parity_with_torch(norm_type, max_norm):
    torch = pytest.importorskip("torch")
    ours, theirs = _grads(tg), _grads(torch)
    a = tg.nn.utils.clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    b = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type)
    np.testing.assert_allclose(a.item(), b.item(), rtol=1e-6)
    for p, q in zip(ours, theirs):
        if q.grad is None:
            assert p.grad is None
        else:
            np.testing.assert_allclose(arr(p.grad), q.grad.numpy(), rtol=1e-6, atol=1e-8)
    c = tg.nn.utils.get_total_norm([p.grad for p in ours if p.grad is not None], norm_type)
    d = torch.nn.utils.get_total_norm([q.grad for q in theirs if q.grad is not None], norm_type)
    np.testing.assert_allclose(c.item(), d.item(), rtol=1e-6)


def test_clip_grad_value_and_total_norm_helpers_parity_with_torch():
    torch = pytest.importorskip("torch")
    ours, theirs = _grads(tg), _grads(torch)
    tg.nn.utils.clip_grad_value_(ours, 0.7)
    torch.nn.utils.clip_grad_value_(theirs, 0.7)
    for p, q in zip(ours[:3], theirs):
        np.testing.assert_array_equal(arr(p.grad), q.grad.numpy())
    tg.nn.utils.clip_grads_with_norm_(ours, 0.3, tg.tensor(2.0))
    torch.nn.utils.clip_grads_with_norm_(theirs, 0.3, torch.tensor(2.0))
    for p, q in zip(ours[:3], theirs):
        np.testing.assert_array_equal(arr(p.grad), q.grad.numpy())
    assert tg.nn.utils.get_total_norm([]).item() == torch.nn.utils.get_total_norm([]).item() == 0.0


def test_clip_grad_value_by_hand_and_a_single_tensor():
    w = tg.zeros(4, requires_grad=True)
    w.grad = tg.tensor([-3.0, -0.25, 0.5, 9.0])
    assert tg.nn.utils.clip_grad_value_(w, 1) is None
    assert arr(w.grad).tolist() == [-1.0, -0.25, 0.5, 1.0]
    norm = tg.nn.utils.clip_grad_norm_(w, 0.5, norm_type=math.inf)
    assert norm.item() == 1.0
    np.testing.assert_allclose(arr(w.grad), [-0.5, -0.125, 0.25, 0.5], rtol=1e-6)


def test_clip_grad_norm_nonfinite_and_empty_and_deprecated():
    w = tg.zeros(2, requires_grad=True)
    w.grad = tg.tensor([1.0, math.inf])
    with pytest.raises(RuntimeError, match=re.escape("The total norm of order 2.0 for gradients from `parameters` is "
                                                     "non-finite, so it cannot be clipped")):
        tg.nn.utils.clip_grad_norm_([w], 1.0, error_if_nonfinite=True)
    assert arr(w.grad).tolist() == [1.0, math.inf]  # untouched
    w.grad = tg.tensor([1.0, math.nan])
    with pytest.raises(RuntimeError, match="non-finite"):
        tg.nn.utils.clip_grad_norm_([w], 1.0, norm_type="inf", error_if_nonfinite=True)
    assert math.isnan(tg.nn.utils.clip_grad_norm_([w], 1.0).item())  # without the check: scaled by nan, as PyTorch
    with pytest.warns(UserWarning, match=re.escape("`parameters` is an empty generator, no gradient clipping will "
                                                   "occur.")):
        assert tg.nn.utils.clip_grad_norm_((p for p in []), 1.0).item() == 0.0
    w.grad = tg.tensor([3.0, 4.0])
    with pytest.warns(FutureWarning, match="clip_grad_norm_"):
        assert tg.nn.utils.clip_grad_norm(w, 1.0).item() == 5.0


def test_parameters_to_vector_and_back():
    net = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    vec = tg.nn.utils.parameters_to_vector(net.parameters())
    expected = np.concatenate([arr(p).ravel() for p in net.parameters()])
    np.testing.assert_array_equal(arr(vec), expected)
    assert vec.requires_grad  # differentiable: gradients flow back to each parameter
    (vec * tg.arange(vec.numel(), dtype=tg.float32)).sum().backward()
    np.testing.assert_array_equal(np.concatenate([arr(p.grad).ravel() for p in net.parameters()]),
                                  np.arange(vec.numel(), dtype=np.float32))
    new = tg.arange(11, dtype=tg.float32)
    tg.nn.utils.vector_to_parameters(new, net.parameters())
    np.testing.assert_array_equal(arr(net[0].weight), [[0, 1, 2], [3, 4, 5]])
    np.testing.assert_array_equal(arr(net[1].bias), [10])
    assert isinstance(net[0].weight, nn.Parameter) and net[0].weight.requires_grad
    with pytest.raises(TypeError, match=re.escape("expected tracegrad.Tensor, but got: list")):
        tg.nn.utils.vector_to_parameters([1.0], net.parameters())


def test_parameters_vector_parity_with_torch():
    torch = pytest.importorskip("torch")
    ours, theirs = make_params(tg, np.float32), make_params(torch, np.float32)
    np.testing.assert_array_equal(arr(tg.nn.utils.parameters_to_vector(ours)),
                                  torch.nn.utils.parameters_to_vector(theirs).detach().numpy())
    vec = np.linspace(-1, 1, 10, dtype=np.float32)
    tg.nn.utils.vector_to_parameters(tg.tensor(vec), ours)
    torch.nn.utils.vector_to_parameters(torch.tensor(vec), theirs)
    for p, q in zip(ours, theirs):
        np.testing.assert_array_equal(arr(p), q.detach().numpy())


@pytest.mark.parametrize("norm_type", [2.0, math.inf])
def test_clipping_inside_a_compiled_training_step_equals_eager(norm_type):
    (m1, o1), (m2, o2) = _twins(lambda p: SGD(p, lr=0.1, momentum=0.9))

    def step_of(model, opt):
        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            norm = tg.nn.utils.clip_grad_norm_(model.parameters(), 0.05, norm_type=norm_type, error_if_nonfinite=True)
            tg.nn.utils.clip_grad_value_(model.parameters(), 0.03)
            opt.step()
            return loss, norm
        return step

    eager, compiled = step_of(m1, o1), tg.compile(step_of(m2, o2))
    x, y = _data()
    # NOTE: not bit-exact: inside the compiled step a Linear weight's gradient is a column-major array until it
    # is accumulated into .grad, and numpy sums it in memory order, so the norm can differ from eager's by an ulp
    for i in range(6):
        (loss_e, norm_e), (loss_c, norm_c) = eager(x, y), compiled(x, y)
        np.testing.assert_allclose([loss_c.item(), norm_c.item()], [loss_e.item(), norm_e.item()], rtol=1e-6)
        for p, q in zip(m1.parameters(), m2.parameters()):
            np.testing.assert_allclose(arr(q), arr(p), rtol=1e-6, atol=1e-8, err_msg=f"step {i}")
            np.testing.assert_allclose(arr(q.grad), arr(p.grad), rtol=1e-6, atol=1e-9, err_msg=f"step {i}")
            assert np.abs(arr(q.grad)).max() <= 0.03  # clip_grad_value_ ran
    assert norm_c.item() > 0.05  # the clipping took effect
    assert len(compiled.retraces) == 2, compiled.retraces  # first call, then with the optimizer's state


# ------------------------------------------------------------------------------------------ linalg-optim block
from tracegrad.optim import ASGD, LBFGS, Adamax, NAdam, RAdam  # noqa: E402

NEW_CASES = [
    (NAdam, dict()), (NAdam, dict(lr=0.05, weight_decay=0.1, momentum_decay=0.01, betas=(0.8, 0.9))),
    (NAdam, dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    (RAdam, dict(lr=0.05)), (RAdam, dict(lr=0.05, weight_decay=0.1, betas=(0.5, 0.6))),
    (RAdam, dict(lr=0.05, weight_decay=0.1, decoupled_weight_decay=True, maximize=True, eps=1e-3)),
    (Adamax, dict()), (Adamax, dict(lr=0.05, weight_decay=0.1, maximize=True, betas=(0.8, 0.9))),
    (ASGD, dict()), (ASGD, dict(lr=0.05, t0=2, lambd=0.1, alpha=0.5, weight_decay=0.1, maximize=True)),
    (LBFGS, dict(lr=0.5, max_iter=3, history_size=2)), (LBFGS, dict(line_search_fn="strong_wolfe", max_iter=4)),
]


def _closure_run(opt, params, lib, dtype, steps):
    def closure():
        opt.zero_grad()
        loss = loss_fn(lib, params, dtype)
        loss.backward()
        return loss
    for _ in range(steps):
        opt.step(closure)


@pytest.mark.parametrize("cls, case", NEW_CASES, ids=[f"{c.__name__}-{_id(k)}" for c, k in NEW_CASES])
def test_new_optimizers_parity_with_torch(cls, case):
    torch = pytest.importorskip("torch")
    # NOTE: LBFGS in float64: in float32 its line search branches on dot products that numpy's BLAS and PyTorch's
    # round differently, so the two take different paths (each valid) after a few steps
    dtype = np.float64 if cls is LBFGS else np.float32
    ours, theirs = make_params(tg, dtype), make_params(torch, dtype)
    opt, t_opt = cls(ours, **case), getattr(torch.optim, cls.__name__)(theirs, **case)
    # NOTE: not bit-exact: PyTorch's kernels fuse some products and sums (add with alpha), numpy rounds each
    for step in range(STEPS):
        _closure_run(opt, ours, tg, dtype, 1)
        _closure_run(t_opt, theirs, torch, dtype, 1)
        for p, q in zip(ours, theirs):
            np.testing.assert_allclose(arr(p), q.detach().numpy(), rtol=1e-5, atol=1e-6, err_msg=f"step {step}")
            assert set(opt.state[p]) == set(t_opt.state[q])
            for key, value in opt.state[p].items():
                if isinstance(value, tg.Tensor):
                    np.testing.assert_allclose(arr(value), t_opt.state[q][key].numpy(), rtol=1e-5, atol=1e-6,
                                               err_msg=f"{key} at step {step}")
                    assert value.dtype.name == str(t_opt.state[q][key].dtype).removeprefix("torch.")
                elif not isinstance(value, list):
                    assert value == pytest.approx(float(t_opt.state[q][key]), rel=1e-5), key
    switches = {"foreach", "capturable", "differentiable", "fused"}
    assert {k: v for k, v in t_opt.param_groups[0].items() if k not in switches | {"params"}} == \
        {k: v for k, v in opt.param_groups[0].items() if k != "params"}


def test_new_optimizers_defaults_and_validation():
    w = [tg.zeros(1, requires_grad=True)]
    assert NAdam(w).defaults == dict(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, momentum_decay=4e-3,
                                     decoupled_weight_decay=False, maximize=False)
    assert RAdam(w).defaults == dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                                     decoupled_weight_decay=False, maximize=False)
    assert Adamax(w).defaults == dict(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, maximize=False)
    assert ASGD(w).defaults == dict(lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0, maximize=False)
    assert LBFGS(w).defaults == dict(lr=1, max_iter=20, max_eval=25, tolerance_grad=1e-7, tolerance_change=1e-9,
                                     history_size=100, line_search_fn=None)
    for make, message in [(lambda: NAdam(_w(), momentum_decay=-1), "Invalid momentum_decay value: -1"),
                          (lambda: RAdam(_w(), betas=(1.0, 0.9)), "Invalid beta parameter at index 0: 1.0"),
                          (lambda: Adamax(_w(), eps=-1), "Invalid epsilon value: -1"),
                          (lambda: ASGD(_w(), weight_decay=-1), "Invalid weight_decay value: -1"),
                          (lambda: LBFGS(_w(), lr=-1), "Invalid learning rate: -1")]:
        with pytest.raises(ValueError, match=re.escape(message)):
            make()
    with pytest.raises(ValueError, match="LBFGS doesn't support per-parameter options"):
        LBFGS([{"params": _w()}, {"params": _w()}])


@pytest.mark.parametrize("make", [lambda p: NAdam(p, lr=0.01, weight_decay=0.1), lambda p: RAdam(p, lr=0.01),
                                  lambda p: Adamax(p, lr=0.01), lambda p: ASGD(p, lr=0.05, t0=3)],
                         ids=["nadam", "radam", "adamax", "asgd"])
def test_new_optimizers_compiled_step_equals_eager(make):
    (m1, o1), (m2, o2) = _twins(make)

    def step_of(model, opt):
        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss.item()
        return step

    eager, compiled = step_of(m1, o1), tg.compile(step_of(m2, o2), backend="interpret")
    x, y = _data()
    for i in range(8):  # RAdam's rectification starts at step 6
        assert eager(x, y) == compiled(x, y), i
    for p, q in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_array_equal(arr(q), arr(p))
        for key, value in o1.state[p].items():
            np.testing.assert_array_equal(arr(o2.state[q][key]), arr(value), err_msg=key)
    assert len(compiled.retraces) == 2, compiled.retraces


def test_new_optimizers_state_dict_round_trip():
    for make in (lambda p: NAdam(p, lr=0.05), lambda p: ASGD(p, lr=0.05, t0=1), lambda p: LBFGS(p, history_size=3)):
        # NOTE: float32 parameters: loading casts floating state (ASGD's eta, NAdam's mu_product) to the
        # parameter's dtype, as PyTorch does, which changes float64 runs
        pa = make_params(tg, np.float32)
        opt_a = make(pa)
        _closure_run(opt_a, pa, tg, np.float32, 2)
        pb = [tg.tensor(arr(p).copy(), requires_grad=True) for p in pa]
        opt_b = make(pb)
        opt_b.load_state_dict(opt_a.state_dict())
        _closure_run(opt_a, pa, tg, np.float32, 2)
        _closure_run(opt_b, pb, tg, np.float32, 2)
        for p, q in zip(pa, pb):
            np.testing.assert_array_equal(arr(q), arr(p))


def test_lbfgs_converges_and_refuses_to_compile():
    w = tg.tensor([1.0, -2.0, 0.5], dtype=tg.float64, requires_grad=True)
    target = tg.tensor([3.0, 0.5, -1.0], dtype=tg.float64)
    opt = LBFGS([w], line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = ((w - target) ** 4).sum() + ((w - target) ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    np.testing.assert_allclose(arr(w), arr(target), atol=1e-4)
    with pytest.raises(RuntimeError, match="LBFGS.step cannot be compiled"):
        tg.compile(lambda: opt.step(closure), backend="interpret")()


def test_cyclic_momentum_and_warm_restarts_with_fractional_epochs_as_torch():
    torch = pytest.importorskip("torch")
    out = []
    for m, lib in ((S, tg), (torch.optim.lr_scheduler, torch)):
        opt = _opt("Adam", lib=lib, betas=(0.9, 0.99))
        sched = m.CyclicLR(opt, base_lr=0.001, max_lr=0.01, step_size_up=3, mode="exp_range", gamma=0.95,
                           base_momentum=0.8, max_momentum=0.95)
        seq = lr_sequence(opt, sched, 10, key="betas")
        opt = _opt(lib=lib)
        sched = m.CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=3, eta_min=0.01)
        for epoch in range(4):
            for i in range(3):
                opt.step()
                sched.step(epoch + i / 3)
                seq.append(sched.get_last_lr())
        sched.step(13.5)
        out.append(seq + [sched.get_last_lr(), sched.T_i, sched.T_cur, sched.last_epoch])
    assert out[0] == out[1]
    with pytest.raises(ValueError, match="Expected positive integer T_0, but got 0"):
        S.CosineAnnealingWarmRestarts(_opt(), T_0=0)
    with pytest.raises(ValueError, match="optimizer must support momentum or beta1"):
        S.CyclicLR(_opt("Adagrad"), 0.01, 0.1)
