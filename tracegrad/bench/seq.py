"""Sequence models: an LSTM language-model step and a 2-layer transformer step, eager, compiled and PyTorch eager.

Workloads (the models of `tracegrad/seq_demo.py`; Adam(lr=1e-3), cross-entropy over every position, batch 32,
sequence 32, a vocabulary of 96 characters, fixed random data):
- lstm: Embedding(96, 128) -> LSTM(128, 128) -> Linear(128, 96);
- transformer: Embedding(96, 64) + learned positions -> TransformerEncoder (2 layers, d_model 64, 4 heads,
  feedforward 128, dropout 0, causal mask) -> Linear(64, 96).
Modes: tracegrad eager, `compile(backend="interpret")`, `compile(backend="numba", tiered=False)` (its third call
compiles the kernels, from an empty kernel cache; the timed calls run native code) and PyTorch eager when it is
installed. Each (mode, workload) runs in its own process with one thread (`set_num_threads(1)` in both
frameworks). Every mode starts from the same weights (tracegrad's seeded initialization is PyTorch's) on the same
data: the first step's loss is printed for each, as a check that they compute the same step.

The time per step is the median over all timed steps; the range is that of the medians of five consecutive blocks
of steps (how much the median moved while the shared machine's load changed).

--quick: 10 timed steps, and no numba row for the transformer (its cold compile took 38-112 s on the shared 2-core
machine; the LSTM's, which --quick keeps, 16-25 s, about the same for sequences of 8, 16 and 32).

Run:  python -m tracegrad bench --suite seq [--quick]
"""
import argparse
import importlib
import importlib.util
import statistics
import tempfile
import time

import numpy as np

from .timing import in_worker, ms_cell, send, times, worker_args

VOCAB, BATCH, SEQ, LR = 96, 32, 32, 1e-3
LABELS = {"lstm": "LSTM LM step (H128)", "transformer": "transformer 2x(d64 h4 ff128) step"}
MODES = ("tg eager", "tg interpret", "tg numba", "torch eager")


def framework_step(lib, workload: str, seq: int):
    """A zero-argument training step of `workload` in `lib` (tracegrad or torch), and its input tensors."""
    from ..seq_demo import char_lstm, char_transformer, training_step

    lib.manual_seed(0)
    model = char_lstm(VOCAB, lib=lib) if workload == "lstm" else char_transformer(VOCAB, block=seq, lib=lib)
    opt = lib.optim.Adam(model.parameters(), lr=LR)
    rng = np.random.default_rng(0)
    x, y = (lib.from_numpy(rng.integers(0, VOCAB, (BATCH, seq))) for _ in range(2))
    return training_step(model, opt, lib=lib), x, y


def measure(mode: str, workload: str, seq: int, n: int) -> dict:
    lib = importlib.import_module("torch" if mode == "torch eager" else "tracegrad")
    lib.set_num_threads(1)
    step, x, y = framework_step(lib, workload, seq)
    backend = {"tg interpret": "interpret", "tg numba": "numba"}.get(mode)
    if backend:
        step = lib.compile(step, backend=backend, tiered=False)
    t0 = time.perf_counter()
    losses = [step(x, y) for _ in range(3)]  # calls 1-2 trace (Adam's first step creates its state); 3 compiles
    first = time.perf_counter() - t0
    ts = times(lambda: step(x, y), n, 2)
    return {"loss0": losses[0], "first": first, "times": ts}


def run(quick: bool = False) -> dict:
    """Measure every (mode, workload) in its own process; returns what `report` prints."""
    n = 10 if quick else 100
    have_torch = importlib.util.find_spec("torch") is not None
    seqs = {"lstm": SEQ, "transformer": SEQ}
    results = {}
    with tempfile.TemporaryDirectory() as cache:  # numba compiles from an empty kernel cache
        env = dict(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", NUMBA_NUM_THREADS="1",
                   TRACEGRAD_CACHE_DIR=cache)
        for w, seq in seqs.items():
            results[w] = {}
            for m in MODES:
                if (m == "torch eager" and not have_torch) or (quick and w == "transformer" and m == "tg numba"):
                    continue
                results[w][m] = in_worker(__spec__.name, m, w, seq, n, env=env)
    return {"n": n, "seqs": seqs, "results": results}


def report(r: dict) -> None:
    res, n = r["results"], r["n"]
    print(f"ms per step: median of {n} steps (in brackets: the range of the medians of 5 blocks of steps); batch 32, "
          "Adam, each mode in its own process, 1 thread")
    print(f"{'workload':<40}" + "".join(f"{m:>22}" for m in MODES) + f"{'eager/numba':>13}{'torch/numba':>13}")
    for w, label in LABELS.items():
        s = res[w]
        row = "".join(ms_cell(s.get(m)) for m in MODES)
        med = {m: statistics.median(s[m]["times"]) for m in s}
        for num in ("tg eager", "torch eager"):
            row += f"{med[num] / med['tg numba']:13.2f}" if num in med and "tg numba" in med else f"{'-':>13}"
        name = f"{label}, seq {r['seqs'][w]}"
        print(f"{name:<40}{row}")
    print("first three calls (trace, trace again, then the first replay: numba compiles there, empty kernel cache), s: "
          + "; ".join(f"{w} " + ", ".join(f"{m.removeprefix('tg ')} {s[m]['first']:.2f}" for m in s if m != "tg eager"
                                          and m != "torch eager") for w, s in res.items()))
    print("loss of the first step (same weights and data in every mode): "
          + "; ".join(f"{w} " + ", ".join(f"{m} {s[m]['loss0']:.5f}" for m in s) for w, s in res.items()))
    if "tg numba" not in res["transformer"]:
        print("(--quick: no numba row for the transformer, whose cold compile takes about a minute)")


def main(argv=None) -> None:
    if (args := worker_args()) is not None:
        return send(measure(args[0], args[1], int(args[2]), int(args[3])))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps, no numba row for the transformer")
    report(run(ap.parse_args(argv).quick))


if __name__ == "__main__":
    main()
