"""tracegrad.distributed, nn.parallel.DistributedDataParallel and utils.data.DistributedSampler (issue 17).

In-process (no MPI): DistributedSampler's shards against PyTorch's, the collective ops in the pass pipeline and the
native segments, warm-up runs without effects, post-accumulate-grad hooks and queued callbacks, the launcher's
command, the errors before a process group exists.

With MPI (skipped, with the reason, when mpi4py or mpirun is missing; CI installs the `mpi` extra): scripts under
tests/distributed_scripts/ run on 2 ranks on loopback, each checking many things per launch (a launch costs 2-3 s of
start-up): every collective's values, DDP training (eager, interpreter, numba) against single-process training on the
full batch with identical weights on every rank after every step, and the faults (a rank that raises, hangs or runs
fewer collectives stops the job with a clear error within a bounded time).
"""
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import tracegrad as tg
import tracegrad.distributed as dist
from tracegrad.compiler.codegen import ModuleSource, native_graph
from tracegrad.compiler.passes import run_pipeline
from tracegrad.distributed import ops as collective_ops
from tracegrad.distributed.run import main as run_main
from tracegrad.distributed.run import mpirun_command
from tracegrad.ir import Graph
from tracegrad.ir.graph import Value
from tracegrad.ops import primitives as P
from tracegrad.ops.registry import REGISTRY, AbstractValue
from tracegrad.utils.data import DistributedSampler

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "tests" / "distributed_scripts"


# ------------------------------------------------------------------------------------------- DistributedSampler
@pytest.mark.parametrize("n", [1, 7, 10, 16])
def test_distributed_sampler_shards_equal_pytorchs(n):
    torch = pytest.importorskip("torch")
    from torch.utils.data.distributed import DistributedSampler as TorchSampler
    for replicas in (1, 2, 3, 4):
        for shuffle in (False, True):
            for drop_last in (False, True):
                for seed, epoch in ((0, 0), (7, 3)):
                    for rank in range(replicas):
                        ours = DistributedSampler(range(n), replicas, rank, shuffle=shuffle, seed=seed,
                                                  drop_last=drop_last)
                        theirs = TorchSampler(range(n), replicas, rank, shuffle=shuffle, seed=seed,
                                              drop_last=drop_last)
                        ours.set_epoch(epoch)
                        theirs.set_epoch(epoch)
                        case = (n, replicas, rank, shuffle, drop_last, seed, epoch)
                        assert list(ours) == list(theirs), case
                        assert len(ours) == len(theirs) and ours.total_size == theirs.total_size, case
    assert torch.utils.data.DistributedSampler is TorchSampler


def test_distributed_sampler_import_paths_and_errors():
    assert tg.utils.data.DistributedSampler is DistributedSampler
    assert tg.utils.data.distributed.DistributedSampler is DistributedSampler
    # the shards of all ranks cover the dataset, padded by repeating the first indices
    shards = [list(DistributedSampler(range(5), 2, r, shuffle=False)) for r in range(2)]
    assert shards == [[0, 2, 4], [1, 3, 0]]
    with pytest.raises(ValueError, match=r"Invalid rank 2, rank should be in the interval \[0, 1\]"):
        DistributedSampler(range(5), num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="Default process group has not been initialized"):
        DistributedSampler(range(5))  # its rank comes from the process group
    loader = tg.utils.data.DataLoader(tg.utils.data.TensorDataset(tg.arange(6)), batch_size=2,
                                      sampler=DistributedSampler(range(6), 2, 1, shuffle=False))
    assert [b[0].tolist() for b in loader] == [[1, 3], [5]]


# ------------------------------------------------------------------------------------------- without a process group
def test_importing_tracegrad_never_imports_mpi4py():
    code = "import sys, tracegrad, tracegrad.distributed, tracegrad.nn.parallel; print('mpi4py' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.stdout.strip() == "False", out.stderr


def test_without_mpi4py_init_says_how_to_install_it(monkeypatch):
    from tracegrad.distributed import collectives
    monkeypatch.setattr(collectives, "is_mpi_available", lambda: False)
    with pytest.raises(RuntimeError, match=r"pip install 'tracegrad\[mpi\]'"):
        dist.init_process_group("mpi")


def test_errors_without_a_process_group():
    assert dist.is_available() and not dist.is_initialized() and dist.group.WORLD is None
    for fn in (dist.get_rank, dist.get_world_size, dist.barrier, lambda: dist.all_reduce(tg.ones(2)),
               lambda: tg.nn.parallel.DistributedDataParallel(tg.nn.Linear(2, 2))):
        with pytest.raises(ValueError, match="Default process group has not been initialized, please make sure to "
                                             "call init_process_group."):
            fn()
    with pytest.raises(ValueError, match="runs on MPI: backend must be 'mpi'"):
        dist.init_process_group("nccl")
    with pytest.raises(ValueError, match="with MPI the ranks find each other through mpirun"):
        dist.init_process_group("mpi", init_method="tcp://10.0.0.1:23456")
    with pytest.raises(TypeError, match="Expected timeout argument to be of type datetime.timedelta"):
        dist.init_process_group("mpi", timeout=30)
    assert not dist.is_initialized()


# ------------------------------------------------------------------------------------------- the collective ops
def _graph_with_collectives():
    """x -> exp -> all_reduce (twice, identical: CSE must keep both) -> mul; an all_reduce of a constant (folding must
    keep it) and one whose result nobody reads (dead-code elimination must keep it)."""
    g = Graph("step")
    x = Value((4,), tg.float32, "x")
    g.args.append(x)
    aval = AbstractValue((4,), tg.float32)
    e = g.add_node(P.exp, [x], {}, aval)
    a = g.add_node(collective_ops.ALL_REDUCE, [e], {"reduce_op": "SUM"}, aval)
    b = g.add_node(collective_ops.ALL_REDUCE, [e], {"reduce_op": "SUM"}, aval)
    c = g.add_const(np.ones(4, np.float32), tg.float32)
    folded = g.add_node(collective_ops.ALL_REDUCE, [c], {"reduce_op": "MAX"}, aval)
    g.add_node(collective_ops.BROADCAST, [e], {"src": 0}, aval)  # unused
    s = g.add_node(P.add, [a, b], {}, aval)
    out = g.add_node(P.mul, [s, folded], {}, aval)
    g.outputs = [g.add_node(P.tanh, [out], {}, aval)]
    return g


def test_passes_never_fold_merge_or_drop_a_collective():
    g = run_pipeline(_graph_with_collectives(), verify_each=True)
    names = [n.op.name for n in g.nodes]
    assert names.count("all_reduce") == 3 and names.count("broadcast") == 1, g
    text = str(g)
    assert "= all_reduce %0 reduce_op='SUM'" in text and "reduce_op='MAX'" in text and "= broadcast %0 src=0" in text
    assert all(REGISTRY[op].effects for op in collective_ops.COLLECTIVES)
    assert g.to_dot().count("all_reduce") == 3  # the drawings show them too


def test_a_collective_splits_native_segments():
    """The numba backend never fuses a collective into a kernel: it runs between native segments."""
    g = native_graph(run_pipeline(_graph_with_collectives()))
    assert all(n.group is None for n in g.nodes if n.op.name in collective_ops.COLLECTIVES)
    steps = ModuleSource(g).steps
    kinds = [s[0] if s[0] == "native" else s[1].op.name for s in steps]
    assert kinds[0] == "native" and kinds[-1] == "native" and "all_reduce" in kinds, kinds
    first, last = kinds.index("all_reduce"), len(kinds) - 1 - kinds[::-1].index("all_reduce")
    assert "native" in kinds[:first] and "native" in kinds[last:], kinds


def test_a_warm_up_run_skips_effects():
    """`runtime/tiered.py` runs a native program once to make numba compile it: there a collective must not run
    (it would wait for ranks that never come), and a random draw must not move the generator."""
    from tracegrad.runtime.native import NativeProgram
    g = run_pipeline(_graph_with_collectives())
    program = NativeProgram(g)
    x = np.linspace(0, 1, 4, dtype=np.float32)
    env = program.run([x], effects=False)
    assert np.array_equal(env[program.output_slots[0]], np.zeros(4, np.float32))  # tanh((0 + 0) * 0)
    with pytest.raises(ValueError, match="Default process group has not been initialized"):
        program.run([x])
    tg.manual_seed(3)
    before = tg.random.default_generator.get_state()
    h = tg.jit.trace(lambda t: (t + tg.rand(4)).exp(), tg.ones(4))
    NativeProgram(h).run([np.ones(4, np.float32)], effects=False)
    assert np.array_equal(np.asarray(tg.random.default_generator.get_state()[0]), np.asarray(before[0]))


# ------------------------------------------------------------------------------------------- autograd hooks
def test_post_accumulate_grad_hooks_and_queued_callbacks():
    torch = pytest.importorskip("torch")
    seen = {}
    for lib in (tg, torch):
        w = lib.ones(3, requires_grad=True)
        log = []
        w.register_post_accumulate_grad_hook(lambda p: log.append(p.grad.tolist()))
        (w * lib.tensor([1.0, 2.0, 3.0])).sum().backward()
        (w * 2).sum().backward()
        seen[lib.__name__] = log
    assert seen["tracegrad"] == seen["torch"] == [[1.0, 2.0, 3.0], [3.0, 4.0, 5.0]]
    w = tg.ones(2, requires_grad=True)
    order = []
    handle = w.register_post_accumulate_grad_hook(
        lambda p: (order.append("hook"), tg.autograd.engine.queue_callback(lambda: order.append("end"))))
    (w * 2).sum().backward()
    assert order == ["hook", "end"]
    handle.remove()
    (w * 2).sum().backward()
    assert order == ["hook", "end"]
    with pytest.raises(RuntimeError, match="cannot register a hook on a tensor that doesn't require gradient"):
        tg.ones(2).register_post_accumulate_grad_hook(print)
    with pytest.raises(RuntimeError, match="post accumulate grad hooks cannot be registered on non-leaf tensors"):
        (w * 2).register_post_accumulate_grad_hook(print)
    with pytest.raises(RuntimeError, match="Final callbacks can only be installed during backward pass."):
        tg.autograd.engine.queue_callback(print)


def test_post_accumulate_grad_hooks_run_inside_a_compiled_step():
    """The hook's ops are recorded after the gradient they read, and the queued callback's too."""
    w = tg.ones(3, requires_grad=True)
    w.register_post_accumulate_grad_hook(
        lambda p: tg.autograd.engine.queue_callback(lambda: p.grad.mul_(10.0)))

    @tg.compile(backend="interpret")
    def step(x):
        w.grad = None
        (w * x).sum().backward()
        return w.grad.clone()

    for k in range(3):
        x = tg.tensor([1.0, 2.0, 3.0]) + k
        assert step(x).tolist() == (x * 10).tolist()
    assert "mul" in str(step.last_variant.graph)


# ------------------------------------------------------------------------------------------- the launcher
def test_launcher_command(capsys):
    cmd = mpirun_command(2, ["train.py", "--lr", "0.1"], mpirun="/opt/mpirun", env={"PYTHONPATH": "x",
                                                                                   "TRACEGRAD_BACKEND": "numba"})
    assert cmd[:3] == ["/opt/mpirun", "-n", "2"] and cmd[-4:] == [sys.executable, "train.py", "--lr", "0.1"]
    assert "--oversubscribe" in cmd and cmd[cmd.index("--bind-to") + 1] == "none"
    assert "OPENBLAS_NUM_THREADS=1" in cmd and "PYTHONPATH" in cmd and "TRACEGRAD_BACKEND" in cmd
    assert ("--allow-run-as-root" in cmd) == (os.geteuid() == 0)
    hosts = mpirun_command(4, ["t.py"], hostfile="hosts", threads=2, mpirun="mpirun", env={})
    assert "--oversubscribe" not in hosts and hosts[hosts.index("--hostfile") + 1] == "hosts"
    assert "OMP_NUM_THREADS=2" in hosts
    assert run_main(["-n", "3", "--mpirun", "/opt/mpirun", "--dry-run", "-m", "pkg.train", "--epochs", "2",
                     "--mpi", "--mca", "btl", "self,tcp"]) == 0
    out = capsys.readouterr().out
    assert "/opt/mpirun -n 3 " in out and "--mca btl self,tcp" in out and out.strip().endswith(
        "-m pkg.train --epochs 2")
    with pytest.raises(SystemExit):
        run_main(["-n", "2"])
    assert "the script to run is missing" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- 2 ranks under mpirun
MPIRUN = __import__("tracegrad.distributed.run", fromlist=["find_mpirun"]).find_mpirun()
needs_mpi = pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None or MPIRUN is None,
                               reason="needs mpi4py and mpirun: pip install 'tracegrad[mpi]' (CI installs it)")
DURATIONS: dict = {}


def _env():
    return dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")


def _launch(cmd, timeout=240):
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env(), cwd=SCRIPTS)
    return out, time.perf_counter() - t0


def _results(out) -> dict:
    rows = [json.loads(line[7:]) for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    return {row["rank"]: row for row in rows}


def _launcher(*args):
    return [sys.executable, "-m", "tracegrad.distributed.run", "-n", "2", *args]


@needs_mpi
def test_collectives_on_two_ranks_with_the_environments_mpirun():
    """The environment's mpirun, called directly (as a user would): every collective, eager and compiled."""
    cmd = [MPIRUN, "-n", "2"] + (["--allow-run-as-root"] if os.geteuid() == 0 else []) + \
        ["--oversubscribe", sys.executable, "collectives.py"]
    out, seconds = _launch(cmd)
    assert out.returncode == 0, out.stdout + out.stderr
    res = _results(out)
    assert set(res) == {0, 1}
    for row in res.values():
        for name in ("all_reduce AVG float32", "all_reduce BXOR int64", "reduce_scatter_tensor MAX", "compiled call 2",
                     "printout shows '= barrier'", "tier switch together", "mismatch: compiled graphs",
                     "usable after mismatches"):
            assert name in row["checks"], name
        assert len(row["checks"]) >= 60
    DURATIONS["collectives"] = seconds


@needs_mpi
def test_ddp_eager_and_compiled_equal_single_process_training():
    out, seconds = _launch(_launcher("ddp.py", "eager", "interpret"))
    assert out.returncode == 0, out.stdout + out.stderr
    res = _results(out)
    for row in res.values():
        assert {f"{m}: step 3 identical on every rank" for m in ("eager", "interpret")} <= set(row["checks"])
        assert {"no_sync accumulates locally, then averages everything", "interpret: no_sync retraces",
                "interpret: one all_reduce node per bucket", "unused parameters", "different models"} <= \
            set(row["checks"])
        assert max(row["worst"].values()) < 1e-5
    DURATIONS["ddp eager+interpret"] = seconds


@needs_mpi
def test_ddp_numba_runs_native_segments_around_the_all_reduce():
    out, seconds = _launch(_launcher("ddp.py", "numba"))
    assert out.returncode == 0, out.stdout + out.stderr
    for row in _results(out).values():
        assert {"numba: step 3 identical on every rank", "numba: the step ran native code",
                "numba: native segments on either side of the all_reduce"} <= set(row["checks"])
    DURATIONS["ddp numba"] = seconds


@needs_mpi
def test_the_readme_ddp_example_trains_on_two_ranks(tmp_path):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    source = re.search(r"^```py\n(# train_ddp.py\n.*?)^```", readme, flags=re.S | re.M).group(1)
    (tmp_path / "train_ddp.py").write_text(source)
    out, seconds = _launch(_launcher(str(tmp_path / "train_ddp.py")))  # the suite's backend: the interpreter
    assert out.returncode == 0, out.stdout + out.stderr
    losses = [float(x) for x in re.findall(r"^epoch \d: loss ([\d.]+)$", out.stdout, flags=re.M)]
    assert len(losses) == 3 and losses[-1] < losses[0], out.stdout  # printed by rank 0 only
    DURATIONS["readme example"] = seconds


@needs_mpi
@pytest.mark.parametrize("case, words", [
    ("raise", ["ValueError: boom on rank 1", "rank 1 of 2 raised ValueError: stopping every rank (MPI_Abort)"]),
    ("hang", ["DistBackendError: [rank 0] all_reduce #2 (float32[4], op=SUM) timed out after 3 s",
              "rank 0 of 2 raised DistBackendError"]),
    ("exit", ["Detected mismatch between collectives on ranks",
              "the end of the program (destroy_process_group or exit) after 1 collectives",
              "all_reduce #2 (float32[4], op=SUM)"]),
])
def test_a_failing_rank_stops_every_rank_with_a_clear_error(case, words):
    out, seconds = _launch(_launcher("faults.py", case), timeout=120)
    text = out.stdout + out.stderr
    assert out.returncode != 0, text
    for w in words:
        assert w in text, text
    assert "rank 0 finished" not in text, text  # rank 0 never got past the collective it waited in
    # bounded: the abort is immediate (the group's timeout is 120 s but for "hang": 3 s); rank 1 of "hang" sleeps 60 s
    assert seconds < 40, seconds
    DURATIONS[f"fault {case}"] = seconds


def teardown_module():
    if DURATIONS:
        print("\n2-rank launches (s): " + ", ".join(f"{k} {v:.1f}" for k, v in DURATIONS.items()))
