"""DistributedDataParallel on 2+ ranks against single-process training on the full batch.

``python ddp.py MODE...`` with MODE in eager, interpret, numba. Every rank also trains the single-process reference
on the whole batch; after every step the DDP weights must equal the reference's within float32 round-off, and every
rank must hold the same weights, bit for bit.
"""
import numpy as np
from common import check, expect_error, report, start

import tracegrad as tg
import tracegrad.distributed as dist
from tracegrad import nn
from tracegrad.nn.parallel import DistributedDataParallel as DDP

STEPS = 4
BATCH = 8  # per rank


def make_model(seed):
    tg.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))


def data(n):
    rng = np.random.default_rng(0)
    return (tg.tensor(rng.standard_normal((BATCH * n, 6), dtype=np.float32)),
            tg.tensor(rng.standard_normal((BATCH * n, 3), dtype=np.float32)))


def sgd_step(model, opt, x, y):
    opt.zero_grad()
    loss = nn.functional.mse_loss(model(x), y)
    loss.backward()
    opt.step()
    return loss


def flat(model):
    return np.concatenate([p.detach().numpy().ravel() for p in model.parameters()])


def same_on_every_rank(model) -> bool:
    mine = tg.tensor(flat(model))
    everyone = [tg.zeros_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(everyone, mine)
    return all(np.array_equal(e.numpy(), everyone[0].numpy()) for e in everyone)


def train_against_reference(mode, r, n, bucket_cap_mb=None):
    """STEPS steps of DDP (each rank on its slice) and of the reference (whole batch); returns the largest
    difference seen and the DDP step (compiled or not)."""
    X, Y = data(n)
    ref = make_model(0)
    ref_opt = tg.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    model = make_model(100 + r)  # another initialization on each rank: DDP broadcasts rank 0's
    ddp = DDP(model, bucket_cap_mb=bucket_cap_mb)
    check(f"{mode}: rank 0's weights after construction", same_on_every_rank(model))
    ddp_opt = tg.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
    with tg.no_grad():  # start from the reference's weights
        for p, q in zip(model.parameters(), ref.parameters()):
            p.copy_(q)
    step = sgd_step if mode == "eager" else tg.compile(sgd_step, backend=mode, tiered=False)
    x, y = X[r * BATCH:(r + 1) * BATCH], Y[r * BATCH:(r + 1) * BATCH]
    worst = 0.0
    for i in range(STEPS):
        ref_loss = sgd_step(ref, ref_opt, X, Y).item()
        loss = step(ddp, ddp_opt, x, y)
        losses = [None] * n
        dist.all_gather_object(losses, loss.item())
        check(f"{mode}: step {i} losses average to the full batch's", abs(np.mean(losses) - ref_loss) < 1e-5,
              f"{losses} vs {ref_loss}")
        diff = float(np.abs(flat(model) - flat(ref)).max())
        worst = max(worst, diff)
        check(f"{mode}: step {i} equals full-batch training", diff < 1e-5, f"max |diff| {diff}")
        check(f"{mode}: step {i} identical on every rank", same_on_every_rank(model))
    return worst, ddp, step, (ddp_opt, x, y)


def eager_checks(r, n):
    worst, ddp, _, (opt, x, y) = train_against_reference("eager", r, n, bucket_cap_mb=0.0002)
    check("eager: several buckets", len(ddp._buckets) >= 3, [len(b) for b in ddp._buckets])
    # communication starts during backward: when the first layer's weight (the last gradient backward computes)
    # is ready, every other bucket has been started already
    started = []
    first = next(ddp.module.parameters())
    first.register_post_accumulate_grad_hook(lambda p: started.append(ddp._pending.launched))
    sgd_step(ddp, opt, x, y)
    check("eager: buckets start before backward ends", len(started) == 1 and started[0] >= len(ddp._buckets) - 1
          and ddp._bucket_of[id(first)] == len(ddp._buckets) - 1, (started, len(ddp._buckets)))
    model = ddp.module
    check("module and state_dict keys", all(k.startswith("module.") for k in ddp.state_dict())
          and set(ddp.state_dict()) == {f"module.{k}" for k in model.state_dict()})

    # no_sync: two micro-batches per rank, the first without averaging, equal one step on the whole batch
    X, Y = data(n)
    ref, model = make_model(0), make_model(0)
    ddp = DDP(model)
    ref_opt = tg.optim.SGD(ref.parameters(), lr=0.1)
    opt = tg.optim.SGD(ddp.parameters(), lr=0.1)
    sgd_step(ref, ref_opt, X, Y)
    half = BATCH // 2
    x, y = X[r * BATCH:(r + 1) * BATCH], Y[r * BATCH:(r + 1) * BATCH]
    opt.zero_grad()
    with ddp.no_sync():
        (nn.functional.mse_loss(ddp(x[:half]), y[:half]) / 2).backward()
    local = flat_grads(model)
    (nn.functional.mse_loss(ddp(x[half:]), y[half:]) / 2).backward()
    opt.step()
    diff = float(np.abs(flat(model) - flat(ref)).max())
    check("no_sync accumulates locally, then averages everything", diff < 1e-6 and same_on_every_rank(model), diff)
    mine = tg.tensor(local)
    everyone = [tg.zeros_like(mine) for _ in range(n)]
    dist.all_gather(everyone, mine)
    check("no_sync: gradients differ between ranks before the averaging",
          not np.array_equal(everyone[0].numpy(), everyone[1].numpy()))

    # buffers are rank 0's after construction
    bn = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    with tg.no_grad():
        bn[1].running_mean.fill_(float(r))
    DDP(bn)
    check("buffers broadcast at construction", bn[1].running_mean.tolist() == [0.0] * 4)

    # unused parameters: an error by default (on every rank), zeros with find_unused_parameters=True
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 2), nn.Linear(3, 2)

        def forward(self, x):
            return self.a(x)

    unused = DDP(TwoHeads())
    expect_error("unused parameters", lambda: unused(tg.ones(2, 3)).sum().backward(), RuntimeError,
                 ["find_unused_parameters=True", "b.weight", "b.bias"])
    found = DDP(TwoHeads(), find_unused_parameters=True)
    found(tg.ones(2, 3) * (r + 1)).sum().backward()
    check("find_unused_parameters: averaged, zeros for the unused", same_on_every_rank_grads(found.module)
          and found.module.b.weight.grad.abs().sum().item() == 0.0)
    expect_error("device_ids", lambda: DDP(nn.Linear(2, 2), device_ids=[0]), ValueError, ["CPU"])
    expect_error("different models", lambda: DDP(nn.Linear(2, 2 + r)), RuntimeError,
                 ["DDP expects same model across all ranks"])
    return worst


def flat_grads(model):
    return np.concatenate([p.grad.numpy().ravel() for p in model.parameters()])


def same_on_every_rank_grads(model) -> bool:
    mine = tg.tensor(flat_grads(model))
    everyone = [tg.zeros_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(everyone, mine)
    return all(np.array_equal(e.numpy(), everyone[0].numpy()) for e in everyone)


def compiled_checks(mode, r, n):
    worst, ddp, step, (opt, x, y) = train_against_reference(mode, r, n, bucket_cap_mb=0.0002)
    if mode == "numba":
        check("numba: the step ran native code", step.last_variant.tier == "native", step.last_variant.tier)
    e = step.explain(ddp, opt, x, y)
    reduces = [node for node in e.graph.nodes if node.op.name == "all_reduce"]
    check(f"{mode}: one all_reduce node per bucket", len(reduces) == len(ddp._buckets) >= 3,
          f"{len(reduces)} nodes, {len(ddp._buckets)} buckets")
    check(f"{mode}: the printout shows them", str(e).count("= all_reduce %") == len(reduces)
          and "reduce_op='AVG'" in str(e))
    # no_sync() is a guard: inside it the step traces again, without the collectives
    traces = len(step.retraces)
    with ddp.no_sync():
        step(ddp, opt, x, y)
    check(f"{mode}: no_sync retraces", len(step.retraces) == traces + 1 and
          "require_backward_grad_sync" in step.retraces[-1], step.retraces[-1])
    check(f"{mode}: no collective without sync", not any(nd.op.name == "all_reduce"
                                                         for nd in step.last_variant.graph.nodes))
    if mode == "numba":
        kinds = [s[0] if s[0] == "native" else s[1].op.name for s in e._module.steps]
        first = kinds.index("all_reduce")
        check("numba: native segments on either side of the all_reduce", "native" in kinds[:first]
              and "native" in kinds[first:] and e.native_calls >= 2, kinds)
    return worst


def main():
    import sys
    r, n = start()
    worst = {}
    for mode in sys.argv[1:]:
        worst[mode] = eager_checks(r, n) if mode == "eager" else compiled_checks(mode, r, n)
    report(worst=worst)


if __name__ == "__main__":
    main()
