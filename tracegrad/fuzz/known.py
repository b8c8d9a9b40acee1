"""Known bugs the fuzzer tolerates or avoids until they are fixed (issue 12), each by name.

Remove an entry when its fix lands: the fuzzer then reports those mismatches again (``--strict`` does so
for the `OPEN` ones now). Each is recognized narrowly: by the kind of mismatch and what the program does.
"""
from __future__ import annotations

import re

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
    "no_grad in-place": "after an in-place change under no_grad to a tensor that requires grad (a non-leaf, a view "
                        "of one, or an argument), compiled mode loses that tensor's gradient; eager keeps the "
                        "graph recorded before the change, as PyTorch does (tracer)",
    "region zero cotangents": "differentiating a compiled function's outputs outside it (a compiled region) runs its "
                              "backward with zero cotangents for the outputs the loss does not use: an input only "
                              "they reach gets zeros instead of None as .grad, and the zero contributions turn "
                              "-0.0 into 0.0 (runtime/region.py)",
    "index_put shape rule": "index_put's shape rule rejects a value with extra leading 1s (`y[:, -1] = v`, v of "
                            "shape (1, 2)) that numpy's forward and so eager mode accept: compile raises "
                            "(ops/primitives.py)",
    "random draws before a failed guard": "a call whose guard fails after the graph drew random numbers traces "
                                          "again from a generator that has moved on: its random numbers differ "
                                          "from eager's (runtime/variant.py)",
    "matmul operand layout": "the interpreter's functionalized in-place writes (index_put copies in C order) can "
                             "give a matmul operand another memory layout than eager's, and BLAS then rounds "
                             "differently: a few ulps (ops/primitives.py, runtime)",
    "region split after a no_grad write": "a compiled function returning a view of a tensor written in place "
                                          "under no_grad, with no backward inside (a compiled region), puts that "
                                          "output's node in the backward graph: KeyError at the first replay "
                                          "(runtime/region.py)",
    "returned copy of updated state": "a compiled step that returns `p.clone()` (or `p * 1.0`) and then updates "
                                      "`p` (opt.step()) returns, on replays, `p`'s value after the update: the copy "
                                      "is simplified away and the output reads the written-back state (runtime)",
    "int cast keeps requires_grad": "eager `x.long()` / `x.to(tg.int64)` of a tensor that requires grad gives an "
                                    "int64 tensor that requires grad, and gradients flow through it (PyTorch: an "
                                    "integer result never requires grad) (ops/functions.py)",
}


def open_issue(prog, kind: str, key: str, detail: str) -> str | None:
    """The name of the `OPEN` bug a mismatch is an instance of, or None."""
    what = kind.split(":")[1]
    labels = set(prog.labels())
    if what in ("grad", "state", "value") and labels & {"inplace:no_grad", "inplace:arg"}:
        return "no_grad in-place"
    if what == "grad" and prog.backward == "outside" and key.endswith(("eager None", "zero signs")):
        return "region zero cotangents"
    if (what == "error" and detail.startswith("KeyError") and "inplace:no_grad" in labels
            and prog.backward != "inside"):
        return "region split after a no_grad write"
    if what == "error" and "index_put: shape mismatch" in detail:
        return "index_put shape rule"
    if (what in ("grad", "state", "value") and ("random" in labels or "index:random" in labels)
            and any(lab.startswith("branch") or lab == "index:mask" for lab in labels)):
        return "random draws before a failed guard"
    uses_matmul = any("matmul" in lab or "mm" in lab for lab in labels)
    writes = labels & {"setitem", "inplace:view"}  # functionalized as index_put, whose copy is in C order
    if what in ("grad", "state", "value") and key.endswith("ulps") and uses_matmul and writes:
        return "matmul operand layout"
    if what == "gradcheck" and "cast:int" in labels:
        return "int cast keeps requires_grad"
    if what == "value" and prog.optimizer and key.startswith("out "):
        name = key.split()[1]
        first = next((s.lines[0] for s in prog.stmts if s.defines == name), "")
        if re.fullmatch(rf"{name} = p(\.clone\(\)| \* 1\.0)", first):
            return "returned copy of updated state"
    return None
