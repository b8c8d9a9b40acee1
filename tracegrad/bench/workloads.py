"""Workloads shared by the benchmark scripts: MLP data and the MLP SGD-momentum step written by hand in numpy."""
import numpy as np


def mlp_data(dims, batch):
    """Fixed float32 inputs and targets for an MLP with layer sizes `dims`."""
    rng = np.random.default_rng(0)
    return (rng.standard_normal((batch, dims[0]), dtype=np.float32),
            rng.standard_normal((batch, dims[-1]), dtype=np.float32))


def numpy_mlp_step(dims, batch, lr, momentum):
    """One SGD-momentum step of a ReLU MLP with MSE loss, forward and backward by hand (the speed floor)."""
    X, Y = mlp_data(dims, batch)
    rng = np.random.default_rng(1)
    W = [(rng.standard_normal((i, o)) / np.sqrt(i)).astype(np.float32) for i, o in zip(dims[:-1], dims[1:])]
    b = [np.zeros(o, np.float32) for o in dims[1:]]
    vW, vb = [np.zeros_like(w) for w in W], [np.zeros_like(v) for v in b]
    last = len(W) - 1

    def step():
        acts, pre, h = [X], [], X
        for i in range(len(W)):
            z = h @ W[i] + b[i]
            pre.append(z)
            h = np.maximum(z, 0) if i < last else z
            acts.append(h)
        d = 2.0 * (h - Y) / h.size
        for i in reversed(range(len(W))):
            if i < last:
                d = d * (pre[i] > 0)
            gW, gb = acts[i].T @ d, d.sum(0)
            if i:
                d = d @ W[i].T
            vW[i] = momentum * vW[i] + gW
            vb[i] = momentum * vb[i] + gb
            W[i] -= lr * vW[i]
            b[i] -= lr * vb[i]
    return step
