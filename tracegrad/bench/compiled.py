"""Static against dynamic: one training step in eager mode and as a compiled graph, and what compiling costs.

Workloads: SGD-momentum training steps (forward, MSE loss, backward, optimizer step) of the MLPs
64-128-10 at batch 64, 10-5-2 at batch 16 (where per-op overhead is everything) and 784-256-256-10 at
batch 128 (BLAS-bound). Modes: tracegrad eager, `compile(backend="interpret")`, `compile(backend="numba")`,
numpy written by hand, and PyTorch eager when it is installed. Each (mode, workload) runs in its own
process with one BLAS/OpenMP thread. The compiled modes also give the first-call latency in a fresh
process: the first call traces, the second traces again (the first step created the momentum buffers)
and, for numba, generates and compiles the kernels (empty disk cache: a fresh TRACEGRAD_CACHE_DIR; warm:
a second process on the same directory).

Run:  python -m tracegrad bench --suite compiled [--quick]   (or python benchmarks/bench_compile.py)
"""
import argparse
import importlib
import importlib.util
import tempfile
import time

import numpy as np

from .timing import bench, in_worker, send, worker_args
from .workloads import mlp_data, numpy_mlp_step

WORKLOADS = {"mlp": ((64, 128, 10), 64), "tiny": ((10, 5, 2), 16), "medium": ((784, 256, 256, 10), 128)}
LR, MOM = 0.01, 0.9
LABELS = {"mlp": "MLP 64-128-10 b64 SGD step", "tiny": "MLP 10-5-2 b16 SGD step",
          "medium": "MLP 784-256-256-10 b128 step"}


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

    # tracegrad's numba backend is timed once native code runs (not while it tiers through the interpreter)
    options = {"tiered": False} if lib.__name__ == "tracegrad" else {}
    fn = lib.compile(step, backend=backend, **options) if backend else step
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
    f = tg.compile(lambda t: gelu(tg, t), backend="numba", tiered=False)
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
    return in_worker(__spec__.name, mode, workload, n, env=env)


def run(quick: bool = False) -> dict:
    """Measure every (mode, workload) in its own process; returns the results `report` prints."""
    n = 20 if quick else 300
    modes = ["tg eager", "tg interpret", "tg numba", "numpy-by-hand"] + \
        (["torch eager"] if importlib.util.find_spec("torch") else [])
    steps, cold = {}, {}
    with tempfile.TemporaryDirectory() as cache:
        for w in WORKLOADS:
            steps[w] = {m: run_worker(m, w, n, cache) for m in modes}  # numba: empty cache, compiles
            cold[w] = steps[w]["tg numba"]
            steps[w]["tg numba"] = run_worker("tg numba", w, n, cache)  # a fresh process on the warm cache
    gelu = run_worker("gelu", "gelu", max(3, n // 30))
    return {"n": n, "modes": modes, "steps": steps, "cold": cold, "gelu": gelu}


def report(r: dict) -> None:
    modes, res, n = r["modes"], r["steps"], r["n"]
    print(f"median us per step over {n} steps, 1 BLAS thread, each mode in its own process")
    print(f"{'workload':<31}" + "".join(f"{m:>14}" for m in modes) + f"{'numba/numpy':>13}"
          + (f"{'torch/numba':>13}" if "torch eager" in modes else ""))
    for w, label in LABELS.items():
        s = res[w]
        row = "".join(f"{s[m]['step']:14.1f}" for m in modes)
        row += f"{s['numpy-by-hand']['step'] / s['tg numba']['step']:13.2f}"
        if "torch eager" in modes:
            row += f"{s['torch eager']['step'] / s['tg numba']['step']:13.2f}"
        print(f"{label:<31}{row}")
    print("latency of the first three calls of a compiled step in a fresh process, seconds (call 1 traces; call 2 "
          "traces again, since call 1 created the momentum buffers; call 3 compiles and runs the graph):")
    for w, label in LABELS.items():
        i, c, warm = (x["first"] for x in (res[w]["tg interpret"], r["cold"][w], res[w]["tg numba"]))
        print(f"  {label:<29} interpret: {i / 1e6:6.2f}   numba, empty cache: {c / 1e6:6.2f}   numba, warm cache: "
              f"{warm / 1e6:6.2f}")
    gelu = r["gelu"]
    print(f"GELU-tanh chain over {GELU_N} float32, GB/s (read x, write y): memcpy {gelu['memcpy']:.1f}, numpy "
          f"{gelu['numpy']:.1f}, tracegrad numba {gelu['numba']:.1f} ({gelu['numba'] / gelu['memcpy']:.0%} of memcpy)")


def plot(r: dict, path: str) -> None:
    """Save the step times (log scale, one group of bars per workload) and first-call latencies as a PNG."""
    import matplotlib
    matplotlib.use("Agg")  # NOTE: a file, never a window
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    modes, width = r["modes"], 0.8 / len(r["modes"])
    for k, m in enumerate(modes):
        ax.bar(np.arange(len(LABELS)) + k * width, [r["steps"][w][m]["step"] for w in LABELS], width, label=m)
    names = [LABELS[w].replace(" SGD step", "").replace(" step", "") for w in LABELS]
    ax.set_xticks(np.arange(len(LABELS)) + 0.4 - width / 2, names, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("us per training step (median, log scale)")
    ax.set_title("one SGD-momentum step: eager vs compiled", fontsize=10)
    ax.legend(fontsize=8)
    kinds = {"interpret": [r["steps"][w]["tg interpret"]["first"] / 1e6 for w in LABELS],
             "numba, empty cache": [r["cold"][w]["first"] / 1e6 for w in LABELS],
             "numba, warm cache": [r["steps"][w]["tg numba"]["first"] / 1e6 for w in LABELS]}
    for k, (name, vals) in enumerate(kinds.items()):
        ax2.bar(np.arange(len(LABELS)) + k * 0.27, vals, 0.27, label=name)
    ax2.set_xticks(np.arange(len(LABELS)) + 0.27, [n.split(" b")[0] for n in names], fontsize=8)
    ax2.set_ylabel("seconds")
    ax2.set_title("first three calls (trace, trace, compile)", fontsize=10)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> None:
    if (args := worker_args()) is not None:
        return send(measure(args[0], args[1], int(args[2])))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (a few seconds)")
    ap.add_argument("--plot", metavar="FILE", help="also save the figures as a PNG")
    args = ap.parse_args(argv)
    r = run(args.quick)
    report(r)
    if args.plot:
        plot(r, args.plot)


if __name__ == "__main__":
    main()
