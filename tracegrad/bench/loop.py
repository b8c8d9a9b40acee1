"""A tutorial training loop: digits, a DataLoader with a smaller last batch, CosineAnnealingLR per batch,
`return loss.item()` for logging and an `eval()` pass per epoch, eager against `compile` (and PyTorch eager).

Each mode runs in a fresh process (numba with an empty kernel cache). Per model and mode: traces of the
training step and of the prediction, calls that fell back to eager, final test accuracy, the median time of a
training step after the first epoch, and the wall time of the whole run, compiling included.

    python -m tracegrad.bench.loop [--quick | --epochs N]   (TRACEGRAD_LOOP_MODELS=mlp: the MLP only)
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time

import numpy as np

from .timing import in_worker, send, worker_args

KINDS = tuple(os.environ.get("TRACEGRAD_LOOP_MODELS", "mlp,cnn").split(","))
MODES = ("eager", "interpret", "default", "torch")  # default: compile(fn), numba kernels, tiered


def _digits():
    from sklearn.datasets import load_digits
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    n = int(0.8 * len(x))
    return x[:n], y[:n], x[n:], y[n:]


def run(model_kind: str, mode: str, epochs: int) -> dict:
    from threadpoolctl import threadpool_limits
    threadpool_limits(1)
    if mode == "torch":
        import torch as tg
        from torch import nn
        tg.set_num_threads(1)
    else:
        import tracegrad as tg
        from tracegrad import nn
    F = nn.functional  # noqa: N806 - PyTorch's name
    xtr, ytr, xte, yte = _digits()
    tg.manual_seed(0)
    shape = (-1, 64) if model_kind == "mlp" else (-1, 1, 8, 8)
    train = tg.utils.data.TensorDataset(tg.tensor(xtr).reshape(shape), tg.tensor(ytr))
    loader = tg.utils.data.DataLoader(train, batch_size=64, shuffle=True)
    if model_kind == "mlp":
        model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    else:
        model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Flatten(), nn.Linear(8 * 4 * 4, 10))
    opt = tg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = tg.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * len(loader))

    def train_step(xb, yb):
        opt.zero_grad()
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        return loss.item()

    def predict(xb):
        return model(xb).argmax(1)
    if mode == "interpret":
        train_step, predict = tg.compile(train_step, backend=mode), tg.compile(predict, backend=mode)
    elif mode == "default":
        train_step, predict = tg.compile(train_step), tg.compile(predict)
    xte_t, yte_t = tg.tensor(xte).reshape(shape), tg.tensor(yte)
    times, per_epoch = [], []
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        epoch_times = []
        for xb, yb in loader:
            t0 = time.perf_counter()
            train_step(xb, yb)
            epoch_times.append(time.perf_counter() - t0)
            sched.step()
        times.append(epoch_times)
        model.eval()
        with tg.no_grad():
            accuracy = (predict(xte_t) == yte_t).float().mean().item()
        per_epoch.append(time.perf_counter() - start)
    steady = [t for epoch in times[1:] for t in epoch] or times[0]
    out = {"accuracy": accuracy, "step_us": statistics.median(steady) * 1e6, "total_s": per_epoch[-1],
           "last_epoch_us": statistics.median(times[-1]) * 1e6,
           "first_epoch_s": per_epoch[0], "steps_per_epoch": len(times[0])}
    if mode in ("interpret", "default"):
        out.update(traces=len(train_step.retraces) + len(predict.retraces),
                   eager_calls=getattr(train_step, "eager_calls", "?"),
                   reasons=train_step.retraces + predict.retraces)
        variants = [v for vs in getattr(train_step, "_cache", {}).values() for v in vs]
        out["tiers"] = [f"{tuple(v.graph.args[0].shape)}: {v.tier} after {v.native_after} calls"
                        if getattr(v, "native_after", None) is not None else
                        f"{tuple(v.graph.args[0].shape)}: {getattr(v, 'tier', None)}" for v in variants]
    return out


def main(argv=None) -> None:
    args = worker_args()
    if args is not None:
        send(run(args[0], args[1], int(args[2])))
        return
    argv = sys.argv[1:] if argv is None else argv
    epochs = 2 if "--quick" in argv else int(argv[argv.index("--epochs") + 1]) if "--epochs" in argv else 8
    try:
        import torch  # noqa: F401
        modes = MODES
    except ImportError:
        modes = MODES[:-1]
    print(f"| model | mode | traces | eager calls | accuracy | us per step | last epoch, us per step | first epoch s "
          f"| {epochs} epochs s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for kind in KINDS:
        for mode in modes:
            with tempfile.TemporaryDirectory() as cache:
                # NOTE: an empty kernel cache per run, unless TRACEGRAD_LOOP_CACHE names one to keep (a warm run)
                cache = os.environ.get("TRACEGRAD_LOOP_CACHE") or cache
                r = in_worker("tracegrad.bench.loop", kind, mode, epochs,
                              env={"TRACEGRAD_CACHE_DIR": cache, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})
            print(f"| {kind} | {mode} | {r.get('traces', '-')} | {r.get('eager_calls', '-')} | "
                  f"{100 * r['accuracy']:.1f}% | {r['step_us']:.0f} | {r['last_epoch_us']:.0f} | "
                  f"{r['first_epoch_s']:.2f} | {r['total_s']:.2f} |",
                  flush=True)
            if os.environ.get("TRACEGRAD_BENCH_VERBOSE") and "reasons" in r:
                print("    retraces:", "; ".join(r["reasons"]))
                print("    training-step variants:", "; ".join(r["tiers"]))


if __name__ == "__main__":
    main()
