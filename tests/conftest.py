import os

import pytest

import tracegrad
import tracegrad._tensor

# PyTorch scripts, run by test_pytorch_scripts.py in their own processes: never imported (by --doctest-modules)
collect_ignore = ["pytorch_scripts", "distributed_scripts"]  # the latter: run by test_distributed.py under mpirun

# Every compiler pass run by any test is followed by `verify` (SSA, order, shape rules).
os.environ["TRACEGRAD_VERIFY"] = "1"


@pytest.fixture(autouse=True)
def _check_shape_rules_and_seed():
    """Every op run by any test also checks its registry shape/dtype rule against its numpy forward."""
    tracegrad._tensor.CHECK_RULES = True
    tracegrad.manual_seed(0)
    tracegrad.set_default_dtype(tracegrad.float32)
    yield
    tracegrad._tensor.CHECK_RULES = False
