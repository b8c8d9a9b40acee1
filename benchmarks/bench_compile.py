"""Static against dynamic: one training step in eager mode and as a compiled graph, and what tracing costs.

Workloads: SGD-momentum training steps (forward, MSE loss, backward, optimizer step) of
1. the MLP 64-128-10 at batch 64, and 2. the MLP 10-5-2 at batch 16 (where per-op overhead is everything).
Modes: tracegrad eager, tracegrad `compile(backend="interpret")`, numpy written by hand, and PyTorch eager
when it is installed. Each (mode, workload) runs in its own process with one BLAS/OpenMP thread. The
compile rows also give the first-call latency in a fresh process: the first call traces, the second traces
again (the first step created the momentum buffers), later calls run the cached graph.

Run from the repository root:  python benchmarks/bench_compile.py [--quick]
"""
import argparse
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import time

from timing import bench
from workloads import mlp_data, numpy_mlp_step

WORKLOADS = {"mlp": ((64, 128, 10), 64), "tiny": ((10, 5, 2), 16)}
LR, MOM = 0.01, 0.9


def framework_step(lib, dims, batch, compiled):
    X, Y = mlp_data(dims, batch)
    lib.manual_seed(0)
    model = lib.nn.Sequential(lib.nn.Linear(dims[0], dims[1]), lib.nn.ReLU(), lib.nn.Linear(dims[1], dims[2]))
    opt = lib.optim.SGD(model.parameters(), lr=LR, momentum=MOM)
    x, y = lib.from_numpy(X), lib.from_numpy(Y)

    def step(x, y):
        opt.zero_grad()
        loss = lib.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        return loss

    fn = lib.compile(step, backend="interpret") if compiled else step
    return lambda: fn(x, y)


def measure(mode, workload, n):
    dims, batch = WORKLOADS[workload]
    result = {}
    if mode == "numpy-by-hand":
        f = numpy_mlp_step(dims, batch, LR, MOM)
    else:
        lib = importlib.import_module("torch" if mode == "torch eager" else "tracegrad")
        compiled = mode == "tg compiled"
        t0 = time.perf_counter()
        f = framework_step(lib, dims, batch, compiled)
        if compiled:
            t0 = time.perf_counter()
            f()
            result["first"] = (time.perf_counter() - t0) * 1e6
            t0 = time.perf_counter()
            f()
            result["second"] = (time.perf_counter() - t0) * 1e6
    result["step"] = bench(f, n, 20)
    return result


def run_worker(mode, workload, n):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = subprocess.run([sys.executable, __file__, "--worker", mode, workload, str(n)], env=env,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        print(json.dumps(measure(sys.argv[2], sys.argv[3], int(sys.argv[4]))))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (a few seconds)")
    n = 20 if ap.parse_args().quick else 500
    modes = ["tg eager", "tg compiled", "numpy-by-hand"] + (["torch eager"] if importlib.util.find_spec("torch")
                                                            else [])
    labels = {"mlp": "MLP 64-128-10 b64 SGD step", "tiny": "MLP 10-5-2 b16 SGD step"}
    res = {w: {m: run_worker(m, w, n) for m in modes} for w in WORKLOADS}
    print(f"median us per step over {n} steps, 1 BLAS thread, each mode in its own process")
    print(f"{'workload':<30}" + "".join(f"{m:>15}" for m in modes) + f"{'eager/compiled':>16}"
          + (f"{'torch/compiled':>16}" if "torch eager" in modes else ""))
    for w, label in labels.items():
        r = res[w]
        row = "".join(f"{r[m]['step']:15.1f}" for m in modes)
        row += f"{r['tg eager']['step'] / r['tg compiled']['step']:16.2f}"
        if "torch eager" in modes:
            row += f"{r['torch eager']['step'] / r['tg compiled']['step']:16.2f}"
        print(f"{label:<30}{row}")
    print("first-call latency of the compiled step, fresh process (ms): ")
    for w, label in labels.items():
        c = res[w]["tg compiled"]
        print(f"  {label:<28} trace on call 1: {c['first'] / 1e3:7.1f}   retrace on call 2 (momentum buffers "
              f"now exist): {c['second'] / 1e3:7.1f}   cached step: {c['step'] / 1e3:7.3f}")


if __name__ == "__main__":
    main()
