"""The benchmark suites, each printing a table measured side by side in one run (nothing here asserts speed).

- `eager`: per-op overhead of eager autograd, and a mid-size program, beside PyTorch eager and numpy by hand.
- `training`: eager training speed (an MLP step, ResNet-18 forward+backward) beside PyTorch and numpy.
- `compiled`: one training step in eager, interpreted-graph and numba modes, numpy by hand and PyTorch;
  first-call latency with an empty and a warm kernel cache; a fused elementwise chain against memcpy.

- `distributed`: the MLP 784-256-256-10 step's throughput on 1 and 2 ranks with DistributedDataParallel (MPI).
- `conv`: the digits CNN (also in a real training loop) and ResNet-18 training steps, eager, compiled and PyTorch
  eager, with the peak memory of a step.
- `seq`: an LSTM language-model training step and a 2-layer transformer step, eager, compiled and PyTorch eager.

Run them with ``python -m tracegrad bench [--suite NAME] [--quick] [--plot FILE]``.
"""
SUITES = ("eager", "training", "compiled", "distributed", "conv", "seq")


def main(suites=SUITES, quick: bool = False, plot: str | None = None) -> None:
    """Run `suites` in order, printing each table; `plot` saves the compiled suite's figures as a PNG."""
    import importlib

    argv = ["--quick"] if quick else []
    for name in suites:
        suite = importlib.import_module(f".{name}", __name__)
        print(f"== {name}: {suite.__doc__.splitlines()[0]}", flush=True)
        suite.main(argv + (["--plot", plot] if plot and name == "compiled" else []))
        print(flush=True)
