"""Static against dynamic: one training step in eager mode and as a compiled graph, and what compiling costs.

Workloads: SGD-momentum training steps (forward, MSE loss, backward, optimizer step) of the MLPs
64-128-10 at batch 64, 10-5-2 at batch 16 (where per-op overhead is everything) and 784-256-256-10 at
batch 128 (BLAS-bound). Modes: tracegrad eager, `compile(backend="interpret")`, `compile(backend="numba")`,
numpy written by hand, and PyTorch eager when it is installed. Each (mode, workload) runs in its own
process with one BLAS/OpenMP thread. The compiled modes also give the first-call latency in a fresh
process: the first call traces, the second traces again (the first step created the momentum buffers)
and, for numba, generates and compiles the kernels (empty disk cache: a fresh TRACEGRAD_CACHE_DIR; warm:
a second process on the same directory).

Run from the repository root:  python benchmarks/bench_compile.py [--quick]
"""
import argparse
import importlib
import importlib.util
import tempfile
import time

import numpy as np
from timing import bench, in_worker, report, worker_args
from workloads import mlp_data, numpy_mlp_step

WORKLOADS = {"mlp": ((64, 128, 10), 64), "tiny": ((10, 5, 2), 16), "medium": ((784, 256, 256, 10), 128)}
LR, MOM = 0.01, 0.9


def framework_step(lib, dims, batch, backend):
    X, Y = mlp_data(dims, batch)
    lib.manual_seed(0)
    layers = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers += [lib.nn.Linear(a, b)] + ([lib.nn.ReLU()] if i < len(dims) - 2 else [])
    model = lib.nn.Sequential(*layers)
    opt = lib.optim.SGD(model.parameters(), lr=LR, momentum=MOM)
    x, y = lib.from_numpy(X), lib.from_numpy(Y)

    def step(x, y):
        opt.zero_grad()
        loss = lib.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        return loss

    fn = lib.compile(step, backend=backend) if backend else step
    return lambda: fn(x, y)


GELU_N = 1 << 22


def gelu(lib, x):
    """GELU with the tanh approximation, as an elementwise chain."""
    return 0.5 * x * (1.0 + lib.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))


def measure_gelu(n):
    import tracegrad as tg
    x = np.random.default_rng(0).standard_normal(GELU_N, dtype=np.float32)
    y = np.empty_like(x)
    gb = 2 * x.nbytes / 1e9
    f = tg.compile(lambda t: gelu(tg, t), backend="numba")
    t = tg.from_numpy(x)
    f(t)
    return {"memcpy": gb / (bench(lambda: np.copyto(y, x), n, 2) / 1e6),
            "numpy": gb / (bench(lambda: gelu(np, x), n, 1) / 1e6),
            "numba": gb / (bench(lambda: f(t), n, 2) / 1e6)}


def measure(mode, workload, n):
    if mode == "gelu":
        return measure_gelu(n)
    dims, batch = WORKLOADS[workload]
    result = {}
    if mode == "numpy-by-hand":
        f = numpy_mlp_step(dims, batch, LR, MOM)
    else:
        lib = importlib.import_module("torch" if mode == "torch eager" else "tracegrad")
        backend = {"tg interpret": "interpret", "tg numba": "numba"}.get(mode)
        f = framework_step(lib, dims, batch, backend)
        if backend:  # call 1 traces, call 2 traces again (new momentum buffers), call 3 compiles and runs
            t0 = time.perf_counter()
            for _ in range(3):
                f()
            result["first"] = (time.perf_counter() - t0) * 1e6
    result["step"] = bench(f, n, 20)
    return result


def run_worker(mode, workload, n, cache=None):
    env = dict(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if cache:
        env["TRACEGRAD_CACHE_DIR"] = cache
    return in_worker(__file__, mode, workload, n, env=env)


def main():
    if (args := worker_args()) is not None:
        return report(measure(args[0], args[1], int(args[2])))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (a few seconds)")
    n = 20 if ap.parse_args().quick else 300
    modes = ["tg eager", "tg interpret", "tg numba", "numpy-by-hand"] + \
        (["torch eager"] if importlib.util.find_spec("torch") else [])
    labels = {"mlp": "MLP 64-128-10 b64 SGD step", "tiny": "MLP 10-5-2 b16 SGD step",
              "medium": "MLP 784-256-256-10 b128 step"}
    res, cold = {}, {}
    with tempfile.TemporaryDirectory() as cache:
        for w in WORKLOADS:
            res[w] = {m: run_worker(m, w, n, cache) for m in modes}  # numba: empty cache, compiles
            cold[w] = res[w]["tg numba"]
            res[w]["tg numba"] = run_worker("tg numba", w, n, cache)  # a fresh process on the warm cache
    print(f"median us per step over {n} steps, 1 BLAS thread, each mode in its own process")
    print(f"{'workload':<31}" + "".join(f"{m:>14}" for m in modes) + f"{'numba/numpy':>13}"
          + (f"{'torch/numba':>13}" if "torch eager" in modes else ""))
    for w, label in labels.items():
        r = res[w]
        row = "".join(f"{r[m]['step']:14.1f}" for m in modes)
        row += f"{r['numpy-by-hand']['step'] / r['tg numba']['step']:13.2f}"
        if "torch eager" in modes:
            row += f"{r['torch eager']['step'] / r['tg numba']['step']:13.2f}"
        print(f"{label:<31}{row}")
    print("latency of the first three calls of a compiled step in a fresh process, seconds (call 1 traces; call 2 "
          "traces again, since call 1 created the momentum buffers; call 3 compiles and runs the graph):")
    for w, label in labels.items():
        i, c, warm = (r["first"] for r in (res[w]["tg interpret"], cold[w], res[w]["tg numba"]))
        print(f"  {label:<29} interpret: {i / 1e6:6.2f}   numba, empty cache: {c / 1e6:6.2f}   numba, warm cache: "
              f"{warm / 1e6:6.2f}")
    gelu = run_worker("gelu", "gelu", max(3, n // 30))
    print(f"GELU-tanh chain over {GELU_N} float32, GB/s (read x, write y): memcpy {gelu['memcpy']:.1f}, numpy "
          f"{gelu['numpy']:.1f}, tracegrad numba {gelu['numba']:.1f} ({gelu['numba'] / gelu['memcpy']:.0%} of memcpy)")


if __name__ == "__main__":
    main()
