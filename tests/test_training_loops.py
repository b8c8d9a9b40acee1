"""Compiled steps survive real training loops (issue 11), always compared with the same loop run eagerly.

* every learning-rate scheduler, and a hand-written one writing ``group["lr"]``, over 1,000 steps: no retrace
  beyond the first call and the call after the optimizer made its state; losses bit-equal to eager's;
* hyperparameters of Adam/AdamW (betas, eps, weight decay) changed between calls: read at every call;
  a change of the update's *structure* (momentum 0 <-> non-zero, nesterov, amsgrad) retraces, saying so;
* ``return loss.item()`` (also in a dict or a tuple): one trace, the new number at every call; an ``.item()``
  number Python branches on still guards, on the branch's outcome;
* ``model.eval()`` + ``no_grad`` evaluation alternating with ``model.train()`` steps: each keeps its variant;
* a whole epoch loop with a DataLoader whose last batch is smaller, a per-batch CosineAnnealingLR and logging.
"""
import math

import numpy as np
import pytest

import tracegrad as tg
import tracegrad.nn as nn
import tracegrad.nn.functional as F
from tracegrad.optim import lr_scheduler

SCHEDULERS = {
    "StepLR": lambda opt: lr_scheduler.StepLR(opt, step_size=7, gamma=0.9),
    "CosineAnnealingLR": lambda opt: lr_scheduler.CosineAnnealingLR(opt, T_max=100, eta_min=1e-4),
    "LambdaLR": lambda opt: lr_scheduler.LambdaLR(opt, lambda epoch: 1.0 / (1.0 + 0.01 * epoch)),
}
# the other schedulers, over fewer steps (the suite's time budget): OneCycleLR also cycles SGD's momentum
MORE_SCHEDULERS = {
    "MultiStepLR": lambda opt: lr_scheduler.MultiStepLR(opt, milestones=[20, 50, 50, 100], gamma=0.7),
    "ConstantLR": lambda opt: lr_scheduler.ConstantLR(opt, factor=0.5, total_iters=60),
    "LinearLR": lambda opt: lr_scheduler.LinearLR(opt, start_factor=0.1, end_factor=0.6, total_iters=80),
    "ExponentialLR": lambda opt: lr_scheduler.ExponentialLR(opt, gamma=0.99),
    "OneCycleLR": lambda opt: lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=120, three_phase=True),
    "SequentialLR": lambda opt: lr_scheduler.SequentialLR(
        opt, [lr_scheduler.LinearLR(opt, start_factor=0.2, total_iters=30),
              lr_scheduler.CosineAnnealingLR(opt, T_max=90)], milestones=[30]),
    "ChainedScheduler": lambda opt: lr_scheduler.ChainedScheduler(
        [lr_scheduler.ConstantLR(opt, factor=0.5, total_iters=40), lr_scheduler.ExponentialLR(opt, gamma=0.995)]),
    "ReduceLROnPlateau": lambda opt: Plateau(opt),
}
MORE_SCHEDULERS.update({  # linalg-optim block: CyclicLR cycles SGD's momentum too
    "MultiplicativeLR": lambda opt: lr_scheduler.MultiplicativeLR(opt, lambda epoch: 0.99),
    "PolynomialLR": lambda opt: lr_scheduler.PolynomialLR(opt, total_iters=100, power=2.0),
    "CyclicLR": lambda opt: lr_scheduler.CyclicLR(opt, base_lr=0.01, max_lr=0.1, step_size_up=15, mode="triangular2"),
    "CosineAnnealingWarmRestarts": lambda opt: lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=20, T_mult=2),
})


class Plateau:
    """ReduceLROnPlateau stepped with a validation metric that improves, then stalls (the loop's `step()`)."""

    def __init__(self, opt):
        self.sched, self.t = lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=5, cooldown=3), 0

    def step(self):
        self.t += 1
        self.sched.step(max(1.0 - 0.01 * self.t, 0.6) + 0.001 * (self.t % 3))


class HandWritten:
    """A user's own schedule: warm-up then decay, written straight into the param groups."""

    def __init__(self, opt):
        self.opt, self.t = opt, 0

    def step(self):
        self.t += 1
        for group in self.opt.param_groups:
            group["lr"] = 0.05 * min(1.0, self.t / 10) * 0.999 ** self.t


def _twins(make_opt, seed=0):
    out = []
    for _ in range(2):
        tg.manual_seed(seed)
        model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
        out.append((model, make_opt(model.parameters())))
    return out


def _step(model, opt):
    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()
    return step


def _data(n=32, seed=1):
    rng = np.random.default_rng(seed)
    return tg.tensor(rng.standard_normal((n, 5)).astype(np.float32)), tg.tensor(rng.integers(0, 3, n))


def test_every_scheduler_in_lr_scheduler_is_covered_here():
    names = {n for n in lr_scheduler.__all__ if n != "LRScheduler"}
    covered = set(SCHEDULERS) | set(MORE_SCHEDULERS)
    assert names <= covered, f"add the new schedulers to SCHEDULERS: {names - covered}"


@pytest.mark.parametrize("name", [*SCHEDULERS, "hand-written", *MORE_SCHEDULERS])
def test_1000_scheduler_steps_never_retrace_and_equal_eager(name):
    make = SCHEDULERS.get(name) or MORE_SCHEDULERS.get(name) or HandWritten
    (m1, o1), (m2, o2) = _twins(lambda p: tg.optim.SGD(p, lr=0.05, momentum=0.9))
    s1, s2 = make(o1), make(o2)
    eager, compiled = _step(m1, o1), tg.compile(_step(m2, o2))
    x, y = _data()
    seen = set()
    for i in range(120 if name in MORE_SCHEDULERS else 1000):
        a, b = eager(x, y), compiled(x, y)
        assert type(b) is float and a == b, (i, a, b)
        s1.step()
        s2.step()
        assert o1.param_groups[0]["lr"] == o2.param_groups[0]["lr"]
        assert o1.param_groups[0]["momentum"] == o2.param_groups[0]["momentum"]
        seen.add((o2.param_groups[0]["lr"], o2.param_groups[0]["momentum"]))
    assert len(seen) > 1, seen  # the schedule changed the learning rate (or momentum)
    # the first call, then the call after the optimizer created its momentum buffers; no scheduler retrace
    assert len(compiled.retraces) == 2, compiled.retraces
    assert "created tensors that outlive it" in compiled.retraces[1]
    for p, q in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())


@pytest.mark.parametrize("opt_name", ["Adam", "AdamW"])
def test_adam_hyperparameters_changed_between_calls_are_read_at_every_call(opt_name):
    (m1, o1), (m2, o2) = _twins(lambda p: getattr(tg.optim, opt_name)(p, lr=1e-2, weight_decay=0.01))
    eager, compiled = _step(m1, o1), tg.compile(_step(m2, o2))
    x, y = _data()
    settings = [{"lr": 1e-2}, {"betas": (0.8, 0.99)}, {"eps": 1e-6}, {"weight_decay": 0.1},
                {"lr": 3e-3, "betas": (0.85, 0.995)}, {"weight_decay": 0.0}]
    for i in range(12):
        for opt in (o1, o2):
            opt.param_groups[0].update(settings[i % len(settings)])
        a, b = eager(x, y), compiled(x, y)
        assert a == b, (i, a, b)
        for p, q in zip(m1.parameters(), m2.parameters()):
            np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())
    # weight_decay 0.01 -> 0.0 changes the update's structure (the decay term disappears): the one retrace
    assert len(compiled.retraces) == 3, compiled.retraces
    assert compiled.retraces[2].startswith(f"optimizer hyperparameters: {opt_name}.param_groups[0]['weight_decay'] "
                                           f"!= 0 was True when traced, now False"), compiled.retraces


@pytest.mark.parametrize("change, says", [
    ({"momentum": 0.0}, "SGD.param_groups[0]['momentum'] != 0 was True when traced, now False"),
    ({"nesterov": True}, "optimizer SGD: hyperparameters nesterov False -> True"),
])
def test_a_change_of_the_update_structure_retraces_saying_so(change, says):
    (m1, o1), (m2, o2) = _twins(lambda p: tg.optim.SGD(p, lr=0.05, momentum=0.9))
    eager, compiled = _step(m1, o1), tg.compile(_step(m2, o2))
    x, y = _data()
    for i in range(6):
        if i == 3:
            for opt in (o1, o2):
                opt.param_groups[0].update(change)
        assert eager(x, y) == compiled(x, y)
    assert len(compiled.retraces) == 3 and says in compiled.retraces[2], compiled.retraces


def test_maximize_switch_retraces_saying_so():
    (m1, o1), (m2, o2) = _twins(lambda p: tg.optim.Adam(p, lr=1e-2))
    eager, compiled = _step(m1, o1), tg.compile(_step(m2, o2))
    x, y = _data()
    for i in range(5):
        if i == 3:
            for opt in (o1, o2):
                opt.param_groups[0]["maximize"] = True
        assert eager(x, y) == compiled(x, y)
    assert "optimizer Adam: hyperparameters maximize False -> True" in compiled.retraces[2], compiled.retraces


# ---------------------------------------------------------------------------------------------- .item() out
@pytest.mark.parametrize("pack", ["bare", "dict", "tuple", "nested"])
def test_returned_item_numbers_are_outputs_at_any_depth(pack):
    (m1, o1), (m2, o2) = _twins(lambda p: tg.optim.SGD(p, lr=0.1))

    def make(model, opt):
        def step(x, y):
            opt.zero_grad()
            out = model(x)
            loss = F.cross_entropy(out, y)
            loss.backward()
            opt.step()
            correct = (out.argmax(1) == y).sum().item()
            return {"bare": loss.item(), "dict": {"loss": loss.item(), "correct": correct},
                    "tuple": (loss.item(), correct, "tag"), "nested": [{"l": (loss.item() * 2.0,)}, correct]}[pack]
        return step
    eager, compiled = make(m1, o1), tg.compile(make(m2, o2))
    x, y = _data()
    results = []
    for _ in range(5):
        a, b = eager(x, y), compiled(x, y)
        assert a == b and type(a) is type(b)
        results.append(b)
    assert len({repr(r) for r in results}) == 5  # a new number each call
    assert len(compiled.retraces) == 2, compiled.retraces  # first call, .grad None -> tensor
    # (cross_entropy checks its labels' range: that guard is the only one)
    assert all(".item()" not in gd.what for g in compiled.graphs() for gd in g.guards)


def test_item_arithmetic_in_python_is_recorded_with_pythons_precision():
    def f(x):
        s = x.sum().item()
        n = x.numel()
        return s / n, s * 0.1 + 1, -s, abs(s), s // 2, s % 3, 2 ** s, (x.argmax().item() + 1) / 2
    cf = tg.compile(f)
    for data in ([1.5, 2.0, 0.25], [-3.0, 7.0, 0.1], [1e-8, 3.0, 2.0]):
        x = tg.tensor(data)
        assert cf(x) == f(x)
    assert cf.retraces == ["first call"]


def test_a_decision_on_an_item_number_guards_on_its_outcome():
    def f(x):
        loss = (x * x).sum()
        if loss.item() > 10.0:  # DIVERGED
            return loss * 0.0
        return loss
    cf = tg.compile(f)
    for v, expected in [(1.0, 3.0), (1.5, 6.75), (3.0, 0.0), (2.5, 0.0), (1.0, 3.0)]:
        assert cf(tg.full((3,), v)).item() == expected
    # the comparison's outcome is guarded, not the value: 1.0 -> 1.5 reuses, 1.5 -> 3.0 retraces once
    assert len(cf.retraces) == 2
    assert cf.retraces[1].startswith("guard sum(...).item() > 10.0 at test_training_loops.py:")
    assert cf.retraces[1].endswith("traced with False, got True")


def test_formatting_an_item_number_is_a_decision():
    logs = []

    def f(x):
        loss = (x * x).sum()
        logs.append(f"{loss.item():.2f}")  # kept by the function: the text depends on the value
        return loss
    cf = tg.compile(f)
    cf(tg.ones(2))
    cf(tg.ones(2))
    cf(tg.full((2,), 2.0))
    assert logs == ["2.00", "8.00"]  # formatting runs while tracing only
    assert cf.retraces[1].startswith("guard format(sum(...).item()) at")


def test_an_item_number_kept_in_a_list_is_a_plain_number_afterwards():
    history = []

    def f(x):
        loss = (x * x).sum()
        history.append(loss.item())
        return loss
    cf = tg.compile(f)
    for _ in range(3):
        cf(tg.ones(2))
    assert cf.retraces == ["first call"]  # keeping the number is no new state: the variant is cached
    (h,) = history
    assert h == 2.0 and h + 1 == 3.0 and float(h) == 2.0 and f"{h:.1f}" == "2.0" and h > 1


# ---------------------------------------------------------------------------------------------- train / eval
def test_train_and_eval_alternate_without_retracing():
    (m1, o1), (m2, o2) = _twins(lambda p: tg.optim.SGD(p, lr=0.1, momentum=0.9))
    eager, step = _step(m1, o1), tg.compile(_step(m2, o2))

    def predict(model):
        def run(x):
            return model(x).argmax(1)
        return run
    evaluate = tg.compile(predict(m2))
    x, y = _data()
    for epoch in range(4):
        for _ in range(3):
            m1.train()
            m2.train()
            assert eager(x, y) == step(x, y)
        m1.eval()
        m2.eval()
        with tg.no_grad():
            assert predict(m1)(x).tolist() == evaluate(x).tolist()
    assert len(step.retraces) == 2 and evaluate.retraces == ["first call"]


# ---------------------------------------------------------------------------------------------- a whole loop
def _loop(compiled, backend="interpret", epochs=3):
    tg.manual_seed(0)
    rng = np.random.default_rng(0)
    x = tg.tensor(rng.standard_normal((150, 5)).astype(np.float32))
    y = tg.tensor((rng.standard_normal(150) > 0).astype(np.int64))
    loader = tg.utils.data.DataLoader(tg.utils.data.TensorDataset(x, y), batch_size=32, shuffle=True)
    model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 2))
    opt = tg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * len(loader))

    def train_step(xb, yb):
        opt.zero_grad()
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        return loss.item()

    def predict(xb):
        return model(xb).argmax(1)
    if compiled:
        train_step, predict = tg.compile(train_step, backend=backend), tg.compile(predict, backend=backend)
    losses, accuracies = [], []
    for _ in range(epochs):
        model.train()
        for xb, yb in loader:
            losses.append(train_step(xb, yb))
            sched.step()
        model.eval()
        with tg.no_grad():
            accuracies.append((predict(x) == y).float().mean().item())
    return losses, accuracies, (train_step, predict)


def test_a_tutorial_training_loop_compiles_once_per_kind_of_call_and_equals_eager():
    eager_losses, eager_acc, _ = _loop(False)
    losses, acc, (step, predict) = _loop(True)
    assert losses == eager_losses and acc == eager_acc
    # full batches: first call + optimizer state; the smaller last batch: one trace; prediction: one trace
    assert len(step.retraces) == 3, step.retraces
    assert step.retraces[2] == "input xb: shape (32, 5) -> (22, 5); input yb: shape (32,) -> (22,)", step.retraces
    assert predict.retraces == ["first call"]
    assert step.eager_calls == 0 and not math.isnan(losses[-1])


def test_a_scheduler_under_numba_changes_the_native_steps_lr_without_recompiling():
    (m1, o1), (m2, o2) = _twins(lambda p: tg.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-3))
    s1, s2 = SCHEDULERS["CosineAnnealingLR"](o1), SCHEDULERS["CosineAnnealingLR"](o2)
    eager, compiled = _step(m1, o1), tg.compile(_step(m2, o2), backend="numba")
    x, y = _data()
    for i in range(60):
        a, b = eager(x, y), compiled(x, y)
        assert b == pytest.approx(a, rel=1e-4, abs=1e-6), i
        s1.step()
        s2.step()
    assert len(compiled.retraces) == 2
    (variant,) = [v for vs in compiled._cache.values() for v in vs]
    assert variant.tier == "native" and variant.feeds  # the learning rate is an input of the native program
    report = compiled.explain(x, y)
    assert report.dynamic_sizes == {"n0": "x dim 0", "n1": "y dim 0"}
    assert "=== sizes the kernels read at run time (a call with new values traces once and reuses the compiled " \
        "kernels): n0 = x dim 0, n1 = y dim 0" in str(report)
    for p, q in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_allclose(q.detach().numpy(), p.detach().numpy(), rtol=1e-4, atol=1e-5)
