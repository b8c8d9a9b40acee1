"""The test suite's defaults (this file applies to the tests and to the package's doctests).

Semantics are tested on the interpreter (bit-equal to eager) unless a test asks for the numba backend, and
native code is built synchronously unless a test asks for tiering: `tests/test_tiered.py` tests the defaults
themselves (numba, tiered) with these variables removed.
"""
import os

os.environ.setdefault("TRACEGRAD_BACKEND", "interpret")
os.environ.setdefault("TRACEGRAD_TIERED", "0")
