"""Data parallelism: training throughput of the MLP 784-256-256-10 step on 1 and 2 ranks (MPI, one machine).

The step of the compiled suite (SGD with momentum, MSE loss, batch 128 per rank: the global batch grows with the
ranks), eager and compiled with numba (``tiered=False``, timed once native code runs), in one process without DDP
and under `DistributedDataParallel` on 1 and on 2 ranks, each launch by ``python -m tracegrad.distributed.run``
with one BLAS thread per rank. Samples per second = ranks x 128 / the median step time on rank 0 (every DDP step
ends with the gradients averaged over the ranks, so the ranks' steps are in lockstep); and the time of the
all-reduce of the step's gradients alone. Skipped, with the reason, when mpi4py or mpirun is missing
(``pip install 'tracegrad[mpi]'``).

Run:  python -m tracegrad bench --suite distributed [--quick]   (or python benchmarks/bench_distributed.py)
"""
import argparse
import importlib.util
import json
import os
import subprocess
import sys

from .timing import bench, send, worker_args
from .workloads import mlp_data

DIMS, BATCH, LR, MOM = (784, 256, 256, 10), 128, 0.01, 0.9
LABEL = "MLP 784-256-256-10 b128/rank step"


def measure(n: int) -> dict:
    """In each rank of an mpirun job: the median step time of each mode, in microseconds."""
    import tracegrad as tg
    import tracegrad.distributed as dist

    tg.set_num_threads(1)
    dist.init_process_group("mpi")
    world = dist.get_world_size()
    X, Y = mlp_data(DIMS, BATCH)
    x, y = tg.from_numpy(X), tg.from_numpy(Y)
    result = {}
    modes = [("eager", False), ("numba", False)] if world == 1 else []
    for mode, ddp in modes + [("eager", True), ("numba", True)]:
        tg.manual_seed(0)
        layers = []
        for i, (a, b) in enumerate(zip(DIMS[:-1], DIMS[1:])):
            layers += [tg.nn.Linear(a, b)] + ([tg.nn.ReLU()] if i < len(DIMS) - 2 else [])
        model = tg.nn.Sequential(*layers)
        if ddp:
            model = tg.nn.parallel.DistributedDataParallel(model)
        opt = tg.optim.SGD(model.parameters(), lr=LR, momentum=MOM)

        def step(x, y, model=model, opt=opt):
            opt.zero_grad()
            loss = tg.nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            return loss

        fn = tg.compile(step, backend="numba", tiered=False) if mode == "numba" else step
        for _ in range(3):  # numba: trace, trace again (new momentum buffers), compile
            fn(x, y)
        dist.barrier()
        result[f"{mode}, {'DDP' if ddp else 'no DDP'}"] = bench(lambda fn=fn: fn(x, y), n, min(10, n // 4 + 1))
    grads = tg.zeros(sum(a * b + b for a, b in zip(DIMS[:-1], DIMS[1:])))  # the step's one bucket
    result["all_reduce"] = bench(lambda: dist.all_reduce(grads, op=dist.ReduceOp.AVG), n, min(10, n // 4 + 1))
    dist.barrier()
    return {"world": world, "steps": result, "numel": grads.numel()}


def run(quick: bool = False) -> dict:
    """Launch the 1-rank and the 2-rank jobs; returns their step times, or why the suite was skipped."""
    from ..distributed.run import find_mpirun, mpirun_command
    if importlib.util.find_spec("mpi4py") is None or find_mpirun() is None:
        return {"skipped": "needs mpi4py and mpirun: pip install 'tracegrad[mpi]'"}
    n = 8 if quick else 300
    out = {}
    for ranks in (1, 2):
        cmd = mpirun_command(ranks, ["-m", __spec__.name, "--worker", str(n)])
        proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
        if proc.returncode != 0:
            raise RuntimeError(f"the {ranks}-rank benchmark failed:\n{proc.stdout}\n{proc.stderr}")
        lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        row = next(r for r in lines if r["rank"] == 0)
        out[ranks] = row["steps"]
    return {"n": n, "results": out, "numel": row["numel"]}


def report(r: dict) -> None:
    if "skipped" in r:
        print(f"{LABEL}: skipped ({r['skipped']})")
        return
    one, two = r["results"][1], r["results"][2]
    print(f"samples/s (ranks x {BATCH} / median step time on rank 0, over {r['n']} steps), 1 BLAS thread per rank, "
          f"one machine")
    print(f"{'workload':<36}{'mode':<8}{'1 process':>12}{'1 rank DDP':>12}{'2 ranks DDP':>13}{'2 ranks / 1':>13}")
    for mode in ("eager", "numba"):
        base, ddp1, ddp2 = (BATCH * 1e6 / one[f"{mode}, no DDP"], BATCH * 1e6 / one[f"{mode}, DDP"],
                            2 * BATCH * 1e6 / two[f"{mode}, DDP"])
        print(f"{LABEL:<36}{mode:<8}{base:12.0f}{ddp1:12.0f}{ddp2:13.0f}{ddp2 / base:12.2f}x")
    print(f"all_reduce (AVG) of the step's {r['numel']} float32 gradients ({r['numel'] * 4 / 1e6:.2f} MB), median: "
          f"{one['all_reduce']:.0f} us on 1 rank, {two['all_reduce']:.0f} us on 2 ranks")


def main(argv=None) -> None:
    if (args := worker_args()) is not None:
        result = measure(int(args[0]))
        import tracegrad.distributed as dist
        return send(dict(result, rank=dist.get_rank()))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (a few seconds)")
    report(run(ap.parse_args(argv).quick))


if __name__ == "__main__":
    main()
    sys.stdout.flush()
