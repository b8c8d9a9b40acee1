"""Eager-mode overhead of tracegrad, side by side with PyTorch eager and hand-written numpy, in one run.

Workloads (each timed as one forward + backward call, median over many calls):

1. per-op: the anchor from anchors_dispatch.py -- a 16-element float32 leaf, 50 x (``y * 1.01``, ``y + 0.01``),
   ``.sum().backward()``. Also reported per op per direction (time / 200 = 100 ops x 2 directions).
2. mid-size: x (256, 512) @ W1 (512, 512), ~10 elementwise ops (tanh, sigmoid, mul, add, relu, ...), @ W2 (512, 10),
   ``.mean()`` and backward into W1 and W2.

numpy-by-hand runs the same forward plus a hand-written backward: the floor with zero framework overhead.
Gradients are checked against numpy-by-hand once before timing. Thread settings are left at their defaults.
Nothing here asserts speed; it only prints a table.

Run:  python -m tracegrad bench --suite eager [--quick]   (or python benchmarks/bench_eager.py)
"""
import argparse
import importlib.util
import sys

import numpy as np

import tracegrad as tg

from .timing import bench, in_worker, send, worker_args

# NOTE: PyTorch is timed in a child process: in one process its OpenMP threads and numpy's OpenBLAS
# threads fight over the 2 cores and stretch matmul-heavy steps by 10x, whichever runs second.
HAVE_TORCH = importlib.util.find_spec("torch") is not None

K = 100  # elementwise ops in the per-op chain


def chain(x):  # per-op workload, shared by tracegrad and torch
    y = x
    for _ in range(K // 2):
        y = y * 1.01
        y = y + 0.01
    return y.sum()


def chain_np(x):
    y = x
    for _ in range(K // 2):
        y = y * np.float32(1.01)
        y = y + np.float32(0.01)
    _ = y.sum()
    g = np.ones_like(x)  # d sum / d y; add passes the gradient through, mul scales it by 1.01
    for _ in range(K // 2):
        g = g * np.float32(1.01)
    return g


def program(x, w1, w2):  # mid-size workload, shared by tracegrad and torch
    a = x @ w1
    t, s = a.tanh(), a.sigmoid()
    h = (t * s + a * 0.5).relu() - 0.1
    o = (h @ w2).tanh()
    return (o * o).mean()


def program_np(x, w1, w2):
    a = x @ w1
    t, s = np.tanh(a), 1 / (1 + np.exp(-a))
    h1 = t * s + a * np.float32(0.5)
    h = np.maximum(h1, 0) - np.float32(0.1)
    o = np.tanh(h @ w2)
    _ = (o * o).mean()
    g_o = np.float32(2 / o.size) * o  # d mean(o*o) / d o
    g_z = g_o * (1 - o * o)  # through tanh
    g_w2 = h.T @ g_z
    g_h1 = (g_z @ w2.T) * (h1 > 0)  # through matmul, the constant shift and relu
    g_a = g_h1 * (s * (1 - t * t) + t * s * (1 - s) + np.float32(0.5))  # d(t*s + a/2) / d a
    return x.T @ g_a, g_w2


def check(name, got, want):
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        g = np.asarray(g, dtype=np.float64)
        if not np.allclose(g, w, rtol=1e-4, atol=1e-6 * np.abs(w).max()):
            sys.exit(f"ABORT: {name} gradient {i} disagrees with numpy-by-hand "
                     f"(max abs diff {np.abs(g - w).max():.3g}, max |grad| {np.abs(w).max():.3g})")


def us(v, width=9, prec=1):
    return f"{v:{width}.{prec}f} us" if v is not None else f"{'-':>{width + 3}}"


def torch_worker(n_tiny, n_mid, warm):
    """Time the two workloads in PyTorch eager (run as a child process); print one JSON line."""
    import torch
    rng = np.random.default_rng(0)
    x0 = np.linspace(-1, 1, 16).astype(np.float32)
    x = rng.standard_normal((256, 512), dtype=np.float32)
    w1 = (rng.standard_normal((512, 512)) / np.sqrt(512)).astype(np.float32)
    w2 = (rng.standard_normal((512, 10)) / np.sqrt(512)).astype(np.float32)
    tx = torch.from_numpy(x0.copy()).requires_grad_(True)
    txm = torch.from_numpy(x.copy())
    tw1, tw2 = (torch.from_numpy(w.copy()).requires_grad_(True) for w in (w1, w2))

    def torch_tiny():
        tx.grad = None
        chain(tx).backward()

    def torch_mid():
        tw1.grad = tw2.grad = None
        program(txm, tw1, tw2).backward()

    torch_tiny()
    torch_mid()
    check("torch per-op", [tx.grad.numpy()], [chain_np(x0)])
    check("torch mid-size", [tw1.grad.numpy(), tw2.grad.numpy()], program_np(x, w1, w2))
    send({"tiny": bench(torch_tiny, n_tiny, warm), "mid": bench(torch_mid, n_mid, warm),
            "versions": f"torch {torch.__version__} (get_num_threads={torch.get_num_threads()})"})


def main(argv=None):
    if (args := worker_args()) is not None:
        return torch_worker(*map(int, args))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="~20/5 timed calls instead of 200/50")
    args = ap.parse_args(argv)
    n_tiny, n_mid, warm = (20, 5, 3) if args.quick else (200, 50, 10)
    rng = np.random.default_rng(0)

    # ---- workload 1: per-op overhead (the dispatch anchor)
    x0 = np.linspace(-1, 1, 16).astype(np.float32)
    gx = tg.from_numpy(x0.copy()).requires_grad_(True)

    def tg_tiny():
        gx.grad = None
        chain(gx).backward()

    tg_tiny()
    check("tracegrad per-op", [gx.grad.numpy()], [chain_np(x0)])
    rows = {"tiny": [bench(tg_tiny, n_tiny, warm), None, bench(lambda: chain_np(x0), n_tiny, warm)]}

    # ---- workload 2: mid-size program
    x = rng.standard_normal((256, 512), dtype=np.float32)
    w1 = (rng.standard_normal((512, 512)) / np.sqrt(512)).astype(np.float32)
    w2 = (rng.standard_normal((512, 10)) / np.sqrt(512)).astype(np.float32)
    gxm = tg.from_numpy(x.copy())
    gw1, gw2 = (tg.from_numpy(w.copy()).requires_grad_(True) for w in (w1, w2))

    def tg_mid():
        gw1.grad = gw2.grad = None
        program(gxm, gw1, gw2).backward()

    tg_mid()
    want = program_np(x, w1, w2)
    check("tracegrad mid-size", [gw1.grad.numpy(), gw2.grad.numpy()], want)
    rows["mid"] = [bench(tg_mid, n_mid, warm), None, bench(lambda: program_np(x, w1, w2), n_mid, warm)]

    if HAVE_TORCH:
        measured = in_worker(__spec__.name, n_tiny, n_mid, warm)
        rows["tiny"][1], rows["mid"][1] = measured["tiny"], measured["mid"]
        versions = measured["versions"]
    else:
        versions = "torch missing"

    # ---- report
    print(f"numpy {np.__version__}, {versions}, {n_tiny}/{n_mid} timed calls after {warm} warm-up, median "
          f"(torch timed in its own process)")
    print(f"{'workload':<30}{'tracegrad':>12}{'torch-eager':>15}{'numpy-by-hand':>16}{'tracegrad/torch':>18}")
    labels = {"tiny": f"per-op ({K} ops fwd+bwd)", "mid": "mid-size (2 matmul + 10 ew)"}
    for key, (t_tg, t_th, t_np) in rows.items():
        ratio = f"{t_tg / t_th:18.2f}" if t_th is not None else f"{'-':>18}"
        print(f"{labels[key]:<30}{us(t_tg)}{us(t_th, 12)}{us(t_np, 13)}{ratio}")
        if key == "tiny":
            per = [None if t is None else t / (2 * K) for t in (t_tg, t_th, t_np)]
            print(f"{'  per op per direction':<30}{us(per[0], 9, 2)}{us(per[1], 12, 2)}{us(per[2], 13, 2)}")


if __name__ == "__main__":
    main()
