"""`python -m tracegrad demo`: one MLP trained on scikit-learn's handwritten digits, eagerly and compiled.

The same model, data order and initial weights are trained three ways: eager mode (the graph is built anew
at every step), `compile(backend="interpret")` (the step traced once into a graph, run by the interpreter)
and the default `compile` (the graph fused into numba kernels, one native call per step; until they are
compiled, in the background, the interpreter runs the step). It prints the test accuracy, the median time
per step and the speed-up of each mode, what compiling cost, when native code took over, and writes the
step's IR and its generated kernels to files.

>>> from tracegrad.demo import digits
>>> x_train, y_train, x_test, y_test = digits()
>>> x_train.shape, y_train.dtype, x_test.shape
(tracegrad.Size([1438, 64]), tracegrad.int64, tracegrad.Size([359, 64]))

`walkthrough()` is the classic autograd tutorial, printed step by step (`python -m tracegrad walkthrough`).
"""
from __future__ import annotations

import os
import statistics
import time

import numpy as np

import tracegrad as torch

MODES = {"eager": None, "compiled, interpreter": "interpret", "compiled, numba": "numba"}


def digits(test_fraction: float = 0.2, seed: int = 0):
    """The 1797 8x8 digits shipped with scikit-learn (no download), pixels scaled to [0, 1], split at random.

    Returns ``x_train, y_train, x_test, y_test`` (float32 inputs of 64 features, int64 labels 0-9).
    """
    from sklearn.datasets import load_digits

    data = load_digits()
    order = np.random.default_rng(seed).permutation(len(data.target))
    x, y = (data.data[order] / 16.0).astype(np.float32), data.target[order].astype(np.int64)
    n_test = int(round(len(y) * test_fraction))
    return (torch.from_numpy(x[n_test:]), torch.from_numpy(y[n_test:]),
            torch.from_numpy(x[:n_test]), torch.from_numpy(y[:n_test]))


def mlp(seed: int = 0, hidden: int = 128):
    """64 -> hidden -> 10 with ReLU; the same weights for the same seed."""
    torch.manual_seed(seed)
    nn = torch.nn
    return nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))


def training_step(model, opt):
    """The step every mode runs: forward, cross-entropy, backward, optimizer update; returns the loss."""
    def step(x, y):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return step


def accuracy(model, x, y) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def train(mode: str, data, epochs: int, batch: int = 64, lr: float = 0.05, seed: int = 0, progress=True,
          until_native: float = 0.0):
    """Train the digits MLP in `mode` (a key of MODES); returns a dict of results.

    Keys: ``losses`` (one per step), ``step_times`` (seconds, one per step), ``starts`` (when each step began,
    seconds after the first), ``tiers`` (what ran each compiled
    step: ``"interpreter"`` or ``"native"``), ``accuracy`` (test set, after `epochs`), ``model`` and ``step`` (the
    function that was called: a `CompiledFunction` in the compiled modes). The numba mode is the default
    `compile` (tiered): with ``until_native`` seconds, training goes on past `epochs` (up to that long) until
    native code took over and ran two epochs, so that both tiers are timed.
    """
    from tqdm import tqdm

    x_train, y_train, x_test, y_test = data
    model = mlp(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    step = training_step(model, opt)
    if MODES[mode] == "numba":
        step = torch.compile(step)  # the default: numba kernels, the interpreter until they are ready
    elif MODES[mode] is not None:
        step = torch.compile(step, backend=MODES[mode])
    torch.manual_seed(seed)  # the same shuffling in every mode
    # NOTE: drop_last keeps every batch the same shape, so a compiled step traces once, not once more at the end
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x_train, y_train), batch_size=batch,
                                         shuffle=True, drop_last=True)
    losses, times, tiers, starts, result = [], [], [], [], {}
    start = time.perf_counter()
    with tqdm(total=epochs * len(loader), desc=f"{mode:>21}", unit="step", disable=not progress,
              leave=True, mininterval=0.25) as bar:
        epoch = 0
        while epoch < epochs or (until_native and time.perf_counter() - start < until_native and
                                 tiers.count("native") < 2 * len(loader)):
            if epoch == epochs:
                result["accuracy"] = accuracy(model, x_test, y_test)
                bar.set_description(f"{mode:>21} (on until native)")
            for x, y in loader:
                t0 = time.perf_counter()
                loss = step(x, y)
                times.append(time.perf_counter() - t0)
                starts.append(t0 - start)
                losses.append(loss.item())
                variant = getattr(step, "last_variant", None)
                tiers.append(variant.tier if variant is not None else None)
                bar.update()
            epoch += 1
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    result.setdefault("accuracy", accuracy(model, x_test, y_test))
    return {"losses": losses, "step_times": times, "tiers": tiers, "starts": starts, "model": model, "step": step,
            "steps": epochs * len(loader), **result}


def _native_arrival(r: dict) -> str:
    """When the default compile's native code took over, and the time per step before and after."""
    tiers, times = r["tiers"], r["step_times"]
    first = next((k for k, t in enumerate(tiers) if t == "native"), None)
    interpreted = [t for t, tier in zip(times, tiers) if tier == "interpreter"]
    before = f"{statistics.median(interpreted) * 1e6:.0f} us per step" if interpreted else "no step"
    variant = r["step"].last_variant
    if first is None:
        return (f"The default compile (numba, tiered) ran all {len(times)} steps in the interpreter ({before}): its "
                f"native code was not ready yet. `step.wait_native()` waits for it.")
    switch = r["step_times"][first]
    after = statistics.median(times[first + 1:] or times[first:]) * 1e6
    return (f"The default compile (numba, tiered): calls 1-2 traced the step, calls 3-{first} ran in the interpreter "
            f"({before}) while the native code was {variant.native_from}; call {first + 1} loaded it "
            f"({switch:.2f} s) and ran it, ending {r['starts'][first] + switch:.2f} s after the first call; native "
            f"code ran {after:.0f} us per step from then on"
            + (f" (training went on past the {r['steps']} steps of the table to time both)."
               if len(times) > r["steps"] else "."))


def run(quick: bool = False, out_dir: str = os.path.join("build", "tracegrad-demo"), out=print,
        progress: bool = True) -> dict:
    """The main job: train in every mode, print the comparison, write the IR and kernels to `out_dir`."""
    data = digits()
    epochs = 2 if quick else 15
    out(f"tracegrad demo: an MLP 64-128-10 on scikit-learn's digits ({len(data[1])} train, {len(data[3])} test), "
        f"SGD with momentum, batch 64, {epochs} epochs, in three modes (1 BLAS thread)")
    import scipy.linalg  # noqa: F401 - loads the BLAS numba's kernels call, so that the limit below covers it
    from threadpoolctl import threadpool_limits

    # NOTE: one BLAS thread: these matrices are too small to gain from a second one, and idle BLAS threads
    # spinning on a shared 2-core machine made per-step medians swing by 2-20x between runs
    with threadpool_limits(limits=1):
        results = {mode: train(mode, data, epochs, progress=progress, until_native=60.0 if mode == "compiled, numba"
                               and not quick else 0.0) for mode in MODES}

    eager = results["eager"]
    out(f"\n{'mode':<22}{'test accuracy':>14}{'us per step':>13}{'speed-up':>10}{'compile, s':>12}"
        f"{'max |loss - eager|':>20}")
    for mode, r in results.items():
        timed = [t for t, tier in zip(r["step_times"], r["tiers"]) if tier == "native"] or r["step_times"][3:]
        r["median_us"] = statistics.median(timed or r["step_times"]) * 1e6
        r["speedup"] = statistics.median(eager["step_times"][3:] or eager["step_times"]) * 1e6 / r["median_us"]
        # what the first three calls cost beyond three ordinary steps: tracing twice, then compiling
        r["compile_s"] = max(0.0, sum(r["step_times"][:3]) - 3 * r["median_us"] / 1e6)
        diff = max(abs(a - b) for a, b in zip(r["losses"], eager["losses"]))
        out(f"{mode:<22}{r['accuracy']:>14.1%}{r['median_us']:>13.0f}{r['speedup']:>9.1f}x{r['compile_s']:>12.2f}"
            f"{diff:>20.2g}")
    out("\nus per step: the median over all steps but the first three (for numba, over the steps native code ran). "
        "compile: what the first three steps cost beyond three ordinary ones. A compiled step traces at its first "
        "call and again at its second (the first optimizer step created the momentum buffers, new captured state); "
        "from the third call on it replays the graph. Eager mode builds the autograd graph anew at every step.\n")
    out(_native_arrival(results["compiled, numba"]))

    from .runtime.native import cache_dir
    compiled = results["compiled, numba"]["step"]
    x, y = data[0][:64], data[1][:64]
    explanation = compiled.explain(x, y)
    os.makedirs(out_dir, exist_ok=True)
    ir_path, kernels_path = os.path.join(out_dir, "step_ir.txt"), os.path.join(out_dir, "step_kernels.py")
    with open(ir_path, "w", encoding="utf-8") as f:
        f.write(str(explanation) + "\n\n=== the graph the numba backend compiles (fusion groups marked)\n"
                + explanation.fused.format() + "\n")
    with open(kernels_path, "w", encoding="utf-8") as f:
        f.write(explanation.kernel_source)
    graph = explanation.graph
    groups = {n.group for n in explanation.fused.nodes if n.group is not None}
    out(f"\nThe compiled step is a graph of {len(graph.nodes)} nodes ({graph.counts_by_kind()}); the numba backend "
        f"fuses its elementwise ops into {len(groups)} loop nests and runs the whole step as "
        f"{explanation.native_calls} native call(s), updating the weights and momentum buffers in place.")
    out(f"  IR, guards and node counts:   {ir_path}")
    out(f"  generated numba kernels:      {kernels_path}")
    out(f"  numba's disk cache:           {cache_dir()}")
    out("  or, in your own code: print(step.explain(x, y)); TRACEGRAD_SHOW_KERNELS=1 prints kernels as they are "
        "compiled; TRACEGRAD_PRINT_PASSES=1 prints the graph after each pass.")
    return results


# ------------------------------------------------------------------------------------ the autograd tutorial
def grad_fn_chain(t, depth=0, seen=None) -> list[str]:
    """The `grad_fn` graph below `t`, one node per line, indented by depth."""
    seen = set() if seen is None else seen
    node = t.grad_fn if depth == 0 else t
    if node is None:
        return ["  " * depth + "(leaf)"]
    lines = ["  " * depth + node.name() + (" (shown above)" if node in seen else "")]
    if node in seen:
        return lines
    seen.add(node)
    for nxt, _ in node.next_functions:
        if nxt is not None:
            lines += grad_fn_chain(nxt, depth + 1, seen)
    return lines


def walkthrough(out=print) -> None:
    """PyTorch's "Autograd: automatic differentiation" tutorial, run eagerly.

    >>> walkthrough(out=lambda *a: None)  # runs every step; prints nothing here
    """
    torch.manual_seed(0)
    out("== 1. Tensors that require grad record the operations applied to them ==")
    x = torch.ones(2, 2, requires_grad=True)
    out("x =", x)
    y = x + 2
    out("y = x + 2 =", y)
    out("y.grad_fn =", y.grad_fn, "  x.is_leaf =", x.is_leaf, "  y.is_leaf =", y.is_leaf)
    z = y * y * 3
    out_ = z.mean()
    out("z = y * y * 3 =", z)
    out("out = z.mean() =", out_)
    out("the graph behind out:\n  " + "\n  ".join(grad_fn_chain(out_)))

    out("\n== 2. backward() fills x.grad with d(out)/dx = 3/2 (x + 2) = 4.5 ==")
    out_.backward()
    out("x.grad =", x.grad)

    out("\n== 3. a**2 + 2*b**3 at a=2, b=4: gradients 2a = 4 and 6b**2 = 96 ==")
    a = torch.tensor(2.0, requires_grad=True)
    b = torch.tensor(4.0, requires_grad=True)
    q = a ** 2 + 2 * b ** 3
    q.backward()
    out("a.grad =", a.grad, "  b.grad =", b.grad)

    out("\n== 4. A dynamic graph: the number of recorded ops depends on the data ==")
    x = torch.randn(3, requires_grad=True)
    y = x * 2
    steps = 0
    while y.data.norm() < 1000:
        y = y * 2
        steps += 1
    out(f"y = x * 2**{steps + 1} =", y)
    v = torch.tensor([0.1, 1.0, 0.0001], dtype=torch.float32)
    y.backward(v)  # y is not a scalar: backward needs the vector of the vector-Jacobian product
    out(f"y.backward(v) gives x.grad = v * 2**{steps + 1} =", x.grad)

    out("\n== 5. no_grad, detach, and gradients of gradients ==")
    with torch.no_grad():
        out("(x ** 2).requires_grad under no_grad:", (x ** 2).requires_grad)
    out("x.detach().requires_grad:", x.detach().requires_grad)
    t = torch.tensor(3.0, requires_grad=True)
    (dt,) = torch.autograd.grad(t ** 3, t, create_graph=True)
    (d2t,) = torch.autograd.grad(dt, t)
    out("d/dt t**3 at 3 =", dt, "  d2/dt2 =", d2t)

    out("\n== 6. PyTorch's errors, with the op and shapes named ==")
    for label, fn in [("second backward", lambda: _twice()),
                      ("in-place on a leaf", lambda: torch.ones(2, requires_grad=True).add_(1)),
                      ("shape mismatch", lambda: torch.ones(2, 3) + torch.ones(4))]:
        try:
            fn()
        except RuntimeError as e:
            out(f"{label}: RuntimeError: {str(e)[:110]}...")


def _twice():
    x = torch.ones(2, requires_grad=True)
    y = (x * x).sum()
    y.backward()
    y.backward()
