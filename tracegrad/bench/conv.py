"""Conv nets: the digits CNN and ResNet-18 training steps, eager, compiled and PyTorch eager.

Workloads (SGD with momentum 0.9, cross-entropy, fixed random data, the same seeded weights in every framework):
- cnn: the digits CNN of `bench.loop` (Conv2d(1, 8, 3, padding=1), BatchNorm2d, ReLU, MaxPool2d(2), Linear(128,
  10)), batch 64 of 1x8x8 images, `loss.item()` returned; also its real training loop (`bench.loop`: a smaller
  last batch, CosineAnnealingLR per batch, an eval pass per epoch), whose step time is the median after epoch 1;
- resnet: ResNet-18 (10 classes), batch 8 of 3x64x64 images.
Modes: tracegrad eager, `compile(backend="numba", tiered=False)` (its third call compiles the kernels from an
empty kernel cache; the timed calls run native code) and PyTorch eager when installed; in the loop, the default
tiered `compile` with a warm kernel cache (a first, untiered run of the loop fills it: from an empty cache the
whole loop, a few seconds, runs in the interpreter while the kernels compile). Each run has a process of its own and
one thread.

--quick: fewer steps, no numba rows (their cold compiles take 15 s for the CNN, one to two minutes for
ResNet-18) and no loop.

Run:  python -m tracegrad bench --suite conv [--quick]
"""
import argparse
import importlib
import importlib.util
import statistics
import tempfile
import time

import numpy as np

from .timing import in_worker, ms_cell, send, worker_args

LABELS = {"cnn": "digits CNN step, b64", "resnet": "ResNet-18 step, b8 3x64x64"}
MODES = ("tg eager", "tg numba", "torch eager")


def framework_step(lib, workload: str):
    """A training step of `workload` in `lib` (tracegrad or torch) and its inputs."""
    nn = lib.nn
    lib.manual_seed(0)
    rng = np.random.default_rng(0)
    if workload == "cnn":
        model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Flatten(), nn.Linear(8 * 4 * 4, 10))
        x = lib.from_numpy(rng.random((64, 1, 8, 8), dtype=np.float32))
        y = lib.from_numpy(rng.integers(0, 10, 64))
    else:
        if lib.__name__ == "torch":
            from .training import torch_resnet18
            model = torch_resnet18()
            model.fc = nn.Linear(512, 10)
        else:
            model = lib.models.resnet18(num_classes=10)
        x = lib.from_numpy(rng.standard_normal((8, 3, 64, 64), dtype=np.float32))
        y = lib.from_numpy(rng.integers(0, 10, 8))
    opt = lib.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step(x, y):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()
    return step, x, y


def measure(mode: str, workload: str, n: int) -> dict:
    lib = importlib.import_module("torch" if mode == "torch eager" else "tracegrad")
    lib.set_num_threads(1)
    step, x, y = framework_step(lib, workload)
    if mode == "tg numba":
        step = lib.compile(step, backend="numba", tiered=False)
    t0 = time.perf_counter()
    for _ in range(3):  # calls 1-2 trace (the first optimizer step creates the momentum buffers); 3 compiles
        step(x, y)
    first = time.perf_counter() - t0
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        step(x, y)
        ts.append(time.perf_counter() - t0)
    return {"first": first, "times": ts}


def run(quick: bool = False) -> dict:
    have_torch = importlib.util.find_spec("torch") is not None
    n = {"cnn": 10 if quick else 300, "resnet": 1 if quick else 15}
    results: dict = {}
    with tempfile.TemporaryDirectory() as cache:  # numba compiles from an empty kernel cache
        env = dict(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", NUMBA_NUM_THREADS="1",
                   TRACEGRAD_CACHE_DIR=cache)
        for w in LABELS:
            results[w] = {}
            for m in MODES:
                if (m == "torch eager" and not have_torch) or (quick and m == "tg numba"):
                    continue
                results[w][m] = in_worker(__spec__.name, m, w, n[w], env=env)
    loop = {}
    runs = (("eager", "tg eager"), ("default", "tg compile"), ("torch", "torch eager"))
    for mode, label in () if quick else runs:
        if mode == "torch" and not have_torch:
            continue
        with tempfile.TemporaryDirectory() as cache:
            env = {"TRACEGRAD_CACHE_DIR": cache, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
            if mode == "default":  # a first run compiles the kernels at once (the timed one loads them)
                in_worker("tracegrad.bench.loop", "cnn", mode, 1, env=dict(env, TRACEGRAD_TIERED="0"))
            loop[label] = in_worker("tracegrad.bench.loop", "cnn", mode, 30, env=env)
    return {"n": n, "results": results, "loop": loop}


def report(r: dict) -> None:
    res = r["results"]
    print(f"ms per step: the median (in brackets: the range of the medians of 5 blocks of steps); {r['n']['cnn']} CNN "
          f"steps, {r['n']['resnet']} ResNet-18 steps; each mode in its own process, 1 thread")
    print(f"{'workload':<28}" + "".join(f"{m:>24}" for m in MODES) + f"{'torch/numba':>13}{'eager/numba':>13}")
    for w, label in LABELS.items():
        s = res[w]
        med = {m: statistics.median(s[m]["times"]) for m in s}
        row = "".join(ms_cell(s.get(m), 24) for m in MODES)
        for num in ("torch eager", "tg eager"):
            row += f"{med[num] / med['tg numba']:13.2f}" if num in med and "tg numba" in med else f"{'-':>13}"
        print(f"{label:<28}{row}")
    if "tg numba" not in res["cnn"]:
        print("(--quick: no numba rows: their cold compiles take 15 s for the CNN, one to two minutes for ResNet-18)")
        return
    print("first three calls (numba: trace, trace again, compile from an empty kernel cache), s: "
          + "; ".join(f"{w} {s['tg numba']['first']:.1f}" for w, s in res.items()))
    loop = r["loop"]
    if not loop:
        return
    print("digits CNN in a real training loop (python -m tracegrad.bench.loop: partial last batch, scheduler, "
          "loss.item(), eval per epoch; compile: default, tiered, warm kernel cache), us per step after epoch 1: "
          + ", ".join(f"{m} {v['step_us']:.0f}" for m, v in loop.items())
          + (f" (torch/compile {loop['torch eager']['step_us'] / loop['tg compile']['step_us']:.2f}x)"
             if "torch eager" in loop else ""))


def main(argv=None) -> None:
    if (args := worker_args()) is not None:
        return send(measure(args[0], args[1], int(args[2])))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps, no numba rows, no loop")
    report(run(ap.parse_args(argv).quick))


if __name__ == "__main__":
    main()
