"""The benchmark scripts run and print their tables (a smoke test: no timing is asserted)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("script,rows", [
    ("bench_eager.py", ["per-op (100 ops fwd+bwd)", "mid-size (2 matmul + 10 ew)"]),
    ("bench_training.py", ["MLP 64-128-10 b64 SGD step", "ResNet-18 b8 3x64x64 fwd+bwd"]),
    ("bench_compile.py", ["MLP 64-128-10 b64 SGD step", "MLP 10-5-2 b16 SGD step", "latency of the first three calls"]),
])
def test_benchmark_script_runs_quick(script, rows):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--quick"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    for row in rows:
        assert row in out.stdout
