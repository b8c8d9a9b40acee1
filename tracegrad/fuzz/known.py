"""Known bugs the fuzzer tolerates or avoids until they are fixed (issue 12), each by name.

Remove an entry when its fix lands: the fuzzer then reports those mismatches again (``--strict`` does so
for the `OPEN` ones now). Each is recognized narrowly: by the kind of mismatch and what the program does.

Found by the fuzzer and fixed since (entries removed): a returned copy of state the step then updates
(56c30f9), random draws before a failed guard (7177fce), an in-place write under no_grad to a plain tensor
that requires grad (e029640), index_put's shape rule and a value with extra leading 1s (607ddb7), integer
casts that kept requires_grad (65415fd), index_put's copy in C order changing a matmul operand's layout
(f4f3aa1); and in autograd, a gradient of such a value that sum_to could not reshape (765342e).
"""
from __future__ import annotations

# Issue 12's three known bugs are fixed (e368add): a returned gradient is never an input tensor, backward twice
# without retain_graph raises as in eager, a failed trace leaves no variant. The generator still calls backward at
# most once per graph and gives every program a fresh compiled function, which keeps programs independent.
KNOWN_BUGS: dict = {}

# Bugs the fuzzer found outside autograd and the autodiff pass that are still open: none. Fixed since: no_grad
# writes through views and aliases (tracer gradient routes, e029640 and f9deb9c), a compiled region's zero cotangents
# (its backward is specialized to the outputs that got a gradient), the region split after an in-place write.
OPEN: dict = {}


def open_issue(prog, kind: str, key: str, detail: str) -> str | None:
    """The name of the `OPEN` bug a mismatch is an instance of, or None (there are none open now)."""
    return None
