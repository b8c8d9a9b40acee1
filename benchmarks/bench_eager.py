"""Eager-mode overhead of tracegrad, side by side with PyTorch eager and hand-written numpy, in one run.

Workloads (each timed as one forward + backward call, median over many calls):

1. per-op: the anchor from anchors_dispatch.py -- a 16-element float32 leaf, 50 x (``y * 1.01``, ``y + 0.01``),
   ``.sum().backward()``. Also reported per op per direction (time / 200 = 100 ops x 2 directions).
2. mid-size: x (256, 512) @ W1 (512, 512), ~10 elementwise ops (tanh, sigmoid, mul, add, relu, ...), @ W2 (512, 10),
   ``.mean()`` and backward into W1 and W2.

numpy-by-hand runs the same forward plus a hand-written backward: the floor with zero framework overhead.
Gradients are checked against numpy-by-hand once before timing. Thread settings are left at their defaults.
Nothing here asserts speed; it only prints a table.

Run from the repository root:  python benchmarks/bench_eager.py [--quick]
"""
import argparse
import statistics
import sys
import time

import numpy as np

import tracegrad as tg

try:
    import torch
except ImportError:
    torch = None

K = 100  # elementwise ops in the per-op chain


def bench(f, n, warm):
    for _ in range(warm):
        f()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e6  # microseconds


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
    g_a = g_h1 * (s + t * s * (1 - s) + np.float32(0.5)) + g_h1 * 0  # unused term kept out of math below
    g_a = g_h1 * s * (1 - t * t) + g_h1 * t * s * (1 - s) + g_h1 * np.float32(0.5)
    return x.T @ g_a, g_w2
