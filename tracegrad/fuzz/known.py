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

# NOTE: issue 12's three known bugs, fixed outside this package; the fuzzer tolerates or avoids exactly these.
KNOWN_BUGS = {
    1: "a gradient returned from a compiled function may be the same object as an input tensor for 0-d/1-element "
       "inputs: check.compare tolerates that aliasing for one-element tensors (their values are still compared)",
    2: "backward() twice without retain_graph inside compile silently accumulates: generated programs call "
       "backward at most once per graph",
    3: "a failed trace still counts as a variant: every program gets a fresh compiled function, and a compiled "
       "function that raises is reported as an `error` mismatch, never called again",
}

# Bugs the fuzzer found outside autograd and the autodiff pass, reported in issue 12 and open.
OPEN = {
    "no_grad in-place through a view": "after an in-place change under no_grad through a view of a tensor that "
                                       "requires grad, or into a tensor that has views (`v[:, :2].sub_(w)`; `a @ b` "
                                       "of two vectors, itself a view of a matmul's result), compiled mode loses "
                                       "that tensor's gradient; eager keeps the graph recorded before the change, "
                                       "as PyTorch does (tracer; a plain tensor's case was fixed in e029640)",
    "region zero cotangents": "differentiating a compiled function's outputs outside it (a compiled region) runs its "
                              "backward with zero cotangents for the outputs the loss does not use: an input only "
                              "they reach gets zeros instead of None as .grad, the zero contributions turn -0.0 "
                              "into 0.0, 0 * inf makes NaNs, and a cotangent made contiguous by `+ 0` takes "
                              "another BLAS path in a matmul than eager's broadcast one (ulps) (runtime/region.py)",
    "region split after an in-place write": "a compiled function with a differentiable output and no backward "
                                            "inside (a compiled region) that returns a view of a tensor written in "
                                            "place after the view was taken puts that output's node in the "
                                            "backward graph: KeyError at the first replay (runtime/region.py)",
}


def open_issue(prog, kind: str, key: str, detail: str) -> str | None:
    """The name of the `OPEN` bug a mismatch is an instance of, or None."""
    what = kind.split(":")[1]
    labels = set(prog.labels())
    if what in ("grad", "state", "value") and "inplace:no_grad" in labels:
        return "no_grad in-place through a view"
    uses_matmul = any("matmul" in lab or "mm" in lab for lab in labels)
    if what == "grad" and prog.backward == "outside" and (key.endswith(("eager None", "zero signs", "NaNs")) or
                                                          key.endswith("ulps") and uses_matmul):
        return "region zero cotangents"
    if (what == "error" and detail.startswith("KeyError") and prog.backward != "inside"
            and any(lab.startswith(("inplace", "setitem")) for lab in labels)):
        return "region split after an in-place write"
    return None
