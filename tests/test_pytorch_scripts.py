"""PyTorch scripts in the style of the official tutorials run unchanged on tracegrad and print what PyTorch prints.

Each script in `tests/pytorch_scripts/` imports `torch`; the test runs it with `python -m tracegrad.as_torch` and
compares its output with PyTorch's, recorded beside it (`NAME.torch.txt`, from `python
tests/test_pytorch_scripts.py --record` with PyTorch installed). Text must be equal; numbers equal within float32
round-off accumulated over training (relative 1e-3, one unit of the last printed digit, or 1e-6). With PyTorch
installed the record itself is checked against a live run, so a stale record fails too.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent / "pytorch_scripts"
SCRIPTS = sorted(p.name for p in HERE.glob("*.py"))
NUMBER = re.compile(r"-?\d+\.?\d*(?:e[-+]?\d+)?")


def run(script: str, runner: list[str]) -> str:
    env = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}
    args = [sys.executable, *runner] + ([str(HERE / script)] if script else [])
    done = subprocess.run(args, capture_output=True, text=True, env=env, cwd=HERE, timeout=300)
    assert done.returncode == 0, f"{script} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    # NOTE: only the package name may differ: tracegrad prints tracegrad.Size and tracegrad.float16 where PyTorch prints
    # torch.Size and torch.float16
    return re.sub(r"0x[0-9a-f]+", "0x?", done.stdout).replace("tracegrad.", "torch.")


def assert_same_output(ours: str, theirs: str, script: str) -> None:
    assert NUMBER.sub("#", ours) == NUMBER.sub("#", theirs), f"{script}: the text differs from PyTorch's"
    for a, b in zip(NUMBER.findall(ours), NUMBER.findall(theirs)):
        decimals = len(b.split("e")[0].partition(".")[2])
        tolerance = max(1e-3 * abs(float(b)), 1.5 * 10.0 ** -decimals, 1e-6)  # 1e-6: round-off around 0
        assert abs(float(a) - float(b)) <= tolerance, f"{script}: {a} where PyTorch prints {b}"


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_prints_what_pytorch_prints(script):
    recorded = (HERE / script.replace(".py", ".torch.txt")).read_text()
    assert_same_output(run(script, ["-m", "tracegrad.as_torch"]), recorded, script)


def test_the_records_are_what_pytorch_prints_today():
    pytest.importorskip("torch")
    # NOTE: one PyTorch process runs every script (importing torch takes seconds); each runs in a fresh namespace
    live = run("", ["-c", "import runpy, sys\nfor s in sys.argv[1:]:\n"
                          "    print('=== ' + s)\n    runpy.run_path(s, run_name='__main__')", *SCRIPTS])
    outputs = dict(re.findall(r"=== (\S+)\n(.*?)(?==== |\Z)", live, re.S))
    for script in SCRIPTS:
        assert_same_output(outputs[script], (HERE / script.replace(".py", ".torch.txt")).read_text(), script)


if __name__ == "__main__" and sys.argv[1:] == ["--record"]:
    for name in SCRIPTS:
        (HERE / name.replace(".py", ".torch.txt")).write_text(run(name, []))
        print("recorded", name)
