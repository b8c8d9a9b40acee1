"""The README's commands: `python -m tracegrad demo --quick` and `python -m tracegrad bench --quick` run and report.

Nothing here asserts speed; the demo's accuracy and the equality of its three modes' losses are checked.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args, timeout=600, defaults=False):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if defaults:
        env.pop("TRACEGRAD_BACKEND", None)
        env.pop("TRACEGRAD_TIERED", None)
    out = subprocess.run([sys.executable, "-m", "tracegrad", *args], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_demo_quick_trains_in_three_modes_and_writes_the_ir_and_kernels(tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("tqdm")
    # the library's defaults (numba, tiered), not the suite's (conftest.py)
    out = run_cli("demo", "--quick", "--no-progress", "--out", str(tmp_path), defaults=True)
    rows = {}
    for mode in ("eager", "compiled, interpreter", "compiled, numba"):
        line = next(x for x in out.splitlines() if x.startswith(mode + " "))
        acc, us, speedup, compile_s, diff = re.findall(r"[-+\d.e]+%?x?", line[len(mode):])
        rows[mode] = float(acc.rstrip("%")), float(diff)
    assert all(acc > 80 for acc, _ in rows.values()), out  # two epochs of the digits MLP
    assert rows["compiled, interpreter"][1] == 0.0, "the interpreted graph must equal eager mode bit for bit"
    assert rows["compiled, numba"][1] < 1e-4
    ir, kernels = (tmp_path / "step_ir.txt").read_text(), (tmp_path / "step_kernels.py").read_text()
    assert "=== guards" in ir and "[fused" in ir
    assert "@njit" in kernels and "def segment_0(" in kernels
    assert str(tmp_path / "step_kernels.py") in out
    assert "The default compile (numba, tiered)" in out and "in the interpreter (" in out


def test_bench_quick_prints_every_table_and_saves_the_plot(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "bench.png"
    out = run_cli("bench", "--quick", "--plot", str(png))
    for row in ["per-op (100 ops fwd+bwd)", "mid-size (2 matmul + 10 ew)", "ResNet-18 b8 3x64x64 fwd+bwd",
                "MLP 64-128-10 b64 SGD step", "MLP 10-5-2 b16 SGD step", "MLP 784-256-256-10 b128 step",
                "latency of the first three calls", "GELU-tanh chain", "digits CNN step, b64",
                "ResNet-18 step, b8 3x64x64", "LSTM LM step (H128), seq 32",
                "transformer 2x(d64 h4 ff128) step, seq 32", "loss of the first step"]:
        assert row in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the sequence suite's modes (and PyTorch, when installed) start from the same weights: the same first loss
    first_losses = next(x for x in out.splitlines() if x.startswith("loss of the first step")).split(": ", 1)[1]
    for workload in first_losses.split("; "):
        losses = [float(v) for v in re.findall(r" (\d+\.\d+)", workload)]
        assert len(losses) >= 2 and max(losses) - min(losses) < 1e-4, workload


def test_benchmark_scripts_are_the_same_suites():
    for script in ("bench_eager.py", "bench_training.py", "bench_compile.py", "bench_conv.py", "bench_seq.py"):
        text = (ROOT / "benchmarks" / script).read_text()
        assert re.search(r"from tracegrad\.bench\.\w+ import main", text)


def test_walkthrough_and_unknown_commands():
    assert "== 6. PyTorch's errors" in run_cli("walkthrough")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    bad = subprocess.run([sys.executable, "-m", "tracegrad", "train"], cwd=ROOT, env=env, capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "invalid choice: 'train'" in bad.stderr
