"""The fuzzing loop, its profiles and its summary (see the package docstring for how to read the output)."""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field

from tracegrad.ops.registry import REGISTRY

from . import check, known
from .generate import TEMPLATE_ERRORS, generate, load_rows

# interpret: programs compared bit for bit; numba: programs compared within round-off, `batch` per compiled
# function (each numba compile costs seconds, so many programs share one)
PROFILES = {
    "quick": {"interpret": 300, "numba": 30, "batch": 10},
    "long": {"interpret": 10000, "numba": 1000, "batch": 10},
}


@dataclass
class Report:
    seed: int
    programs: Counter = field(default_factory=Counter)      # mode -> programs checked
    invalid: int = 0                                         # generated programs that failed eagerly (replaced)
    batches: int = 0
    native: int = 0                                          # numba batches whose graph ran as native code
    labels: Counter = field(default_factory=Counter)        # what the statements exercised
    ops: set = field(default_factory=set)                   # registry ops seen in compiled graphs
    gradcheck: int = 0
    mismatches: list = field(default_factory=list)
    tolerated: Counter = field(default_factory=Counter)
    seconds: Counter = field(default_factory=Counter)

    def summary(self, rows: list) -> str:
        lines = [f"tracegrad fuzz, seed {self.seed}"]
        for mode in ("interpret", "numba"):
            if self.programs[mode]:
                extra = f" in {self.batches} compiled batches ({self.native} ran native code)" \
                    if mode == "numba" else ""
                lines.append(f"  eager vs {mode}: {self.programs[mode]} programs{extra}, {check.CALLS} calls each "
                             f"({self.seconds[mode]:.1f} s)")
        if self.gradcheck:
            lines.append(f"  eager vs central differences (float64): {self.gradcheck} programs "
                         f"({self.seconds['gradcheck']:.1f} s)")
        lines.append(f"  generated programs that failed eagerly (replaced, not test cases): {self.invalid}")
        if TEMPLATE_ERRORS:
            lines.append("  generator templates that raised (a fuzzer bug): " +
                         ", ".join(f"{k} {n}" for k, n in TEMPLATE_ERRORS.most_common()))
        kinds = Counter(lab.split(":")[0] for lab in self.labels.elements())
        lines.append("  statements by kind: " + ", ".join(f"{k} {n}" for k, n in kinds.most_common()))
        prims = sorted(REGISTRY)
        missing = [p for p in prims if p not in self.ops]
        lines.append(f"  registry ops covered: {len(prims) - len(missing)} of {len(prims)}"
                     + (f"; not reached: {', '.join(missing)}" if missing else ""))
        if rows:
            seen = {lab[4:] for lab in self.labels if lab.startswith("row:")}
            lines.append(f"  op_table rows covered: {len(seen)} of {len(rows)}")
        by_kind = Counter(m.kind for m in self.mismatches)
        lines.append(f"  mismatches: {len(self.mismatches)}" +
                     (" (" + ", ".join(f"{k} {n}" for k, n in by_kind.most_common()) + ")" if by_kind else ""))
        if self.tolerated:
            lines.append("  tolerated, known bugs (issue 12; fuzz/known.py): " +
                         ", ".join(f"{k}: {n}" for k, n in self.tolerated.most_common()))
        return "\n".join(lines)


def _program_seed(seed: int, mode: str, k: int, attempt: int) -> int:
    return seed * 10**8 + (5 * 10**7 if mode == "numba" else 0) + k * 100 + attempt


def _valid_program(seed, mode, k, rows, report, backward=None):
    """The k-th program of `mode` that runs eagerly (generated ones that fail are replaced)."""
    for attempt in range(100):
        # NOTE: numba programs are smaller and never branch on values: each new graph of a batch (a variant)
        # would compile all its kernels again; guards and retraces are the interpreter's part of the fuzzing
        numba = mode == "numba"
        prog = generate(_program_seed(seed, mode, k, attempt), rows, n_stmts=(2, 6) if numba else (3, 9),
                        backward=backward, numba=numba)
        try:
            check.run_unit([prog], None, calls=check.CALLS)
            return prog
        except check.Invalid:
            report.invalid += 1
    raise RuntimeError("no valid program in 100 attempts: the generator is broken")


def _note_ops(report, fn):
    if fn is None:
        return
    graphs = list(fn.graphs())
    if getattr(fn, "last_variant", None) is not None:
        graphs.append(fn.last_variant.graph)
    for g in graphs:
        report.ops.update(n.op.name for n in g.nodes)


def _record(report, prog, kind, key, detail, backend, shrink_budget, out, note="", strict=False):
    fails = check.failing(kind, key, backend, strict)
    shrunk = check.shrink(prog, fails, shrink_budget) if shrink_budget > 0 else None
    m = check.Mismatch(kind, key, detail, prog, backend, shrunk, note)
    report.mismatches.append(m)
    out(f"\nMISMATCH {kind} (program seed {prog.seed}): {detail}{' ' + note if note else ''}")
    out(f"reproducer ({'shrunk' if shrunk is not None else 'not shrunk'}), runnable Python:")
    out((shrunk or prog).repro(backend if backend != "eager" else "interpret", gradcheck=kind == "eager:gradcheck"))


def run(programs: dict, seed: int = 0, batch: int = 8, gradcheck: bool = True, shrink_budget: float = 60.0,
        out=print, progress: bool = False, strict: bool = False) -> Report:
    """Fuzz `programs[mode]` programs per mode ("interpret", "numba"); print mismatches; return the report."""
    rows = load_rows()
    report = Report(seed)
    n_int = programs.get("interpret", 0)
    t0 = time.monotonic()
    for k in range(n_int):
        prog = _valid_program(seed, "interpret", k, rows, report)
        report.labels.update(prog.labels())
        t = time.monotonic()
        found, fn = check.check_compiled([prog], "interpret", tolerated=report.tolerated, strict=strict)
        report.seconds["interpret"] += time.monotonic() - t
        report.programs["interpret"] += 1
        _note_ops(report, fn)
        for _, kind, key, detail in found:
            _record(report, prog, kind, key, detail, "interpret", shrink_budget, out, strict=strict)
        if gradcheck and prog.dtype == "float64" and prog.backward != "none":
            t = time.monotonic()
            bad = check.gradcheck(prog)
            report.seconds["gradcheck"] += time.monotonic() - t
            report.gradcheck += 1
            issue = known.open_issue(prog, "eager:gradcheck", "", bad) if bad and not strict else None
            if issue:
                report.tolerated[issue] += 1
            elif bad:
                _record(report, prog, "eager:gradcheck", "", bad, "eager", shrink_budget, out)
        if progress and (k + 1) % 500 == 0:
            out(f"  ... {k + 1} interpret programs, {len(report.mismatches)} mismatches, "
                f"{time.monotonic() - t0:.0f} s")
    n_nb = programs.get("numba", 0)
    if n_nb:
        _run_numba(n_nb, seed, batch, rows, report, shrink_budget, out, progress, strict)
    return report


def _run_numba(n, seed, batch, rows, report, shrink_budget, out, progress, strict):
    cache = None
    if not os.environ.get("TRACEGRAD_FUZZ_KEEP_CACHE"):
        # generated kernels go to a temporary cache: thousands of one-off modules must not fill the user's
        cache = tempfile.mkdtemp(prefix="tracegrad-fuzz-")
        old = os.environ.get("TRACEGRAD_CACHE_DIR")
        os.environ["TRACEGRAD_CACHE_DIR"] = cache
    t0 = time.monotonic()
    try:
        for start in range(0, n, batch):
            # NOTE: a compiled function that calls backward itself returns outputs without a graph, so programs
            # differentiated outside (through the compiled region) get batches of their own: one in five
            backward = "outside" if start // batch % 5 == 1 else "inside"
            progs = [_valid_program(seed, "numba", k, rows, report, backward)
                     for k in range(start, min(n, start + batch))]
            for p in progs:
                report.labels.update(p.labels())
            t = time.monotonic()
            found, fn = check.check_compiled(progs, "numba", tolerated=report.tolerated, strict=strict)
            report.seconds["numba"] += time.monotonic() - t
            report.programs["numba"] += len(progs)
            report.batches += 1
            report.native += any(v.tier == "native" for vs in getattr(fn, "_cache", {}).values() for v in vs)
            _note_ops(report, fn)
            for i in sorted({i for i, _, _, _ in found}):
                # confirm on the program alone (one more compile) before shrinking it
                alone, _ = check.check_compiled([progs[i]], "numba", strict=strict)
                if alone:
                    for _, kind, key, detail in alone:
                        _record(report, progs[i], kind, key, detail, "numba", shrink_budget, out, strict=strict)
                else:
                    kind, key, detail = next((k, y, d) for j, k, y, d in found if j == i)
                    _record(report, progs[i], kind, key, detail, "numba", 0, out, strict=strict,
                            note="(only when compiled with the other programs of its batch)")
            if progress and (start // batch + 1) % 10 == 0:
                out(f"  ... {report.programs['numba']} numba programs, {len(report.mismatches)} mismatches, "
                    f"{time.monotonic() - t0:.0f} s")
    finally:
        if cache is not None:
            if old is None:
                os.environ.pop("TRACEGRAD_CACHE_DIR", None)
            else:
                os.environ["TRACEGRAD_CACHE_DIR"] = old
            shutil.rmtree(cache, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tracegrad.fuzz", description=__doc__)
    parser.add_argument("--profile", choices=sorted(PROFILES), help="program counts for both backends")
    parser.add_argument("--backend", choices=["interpret", "numba"], help="fuzz one backend only")
    parser.add_argument("--programs", type=int, help="programs per backend (overrides the profile)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, help="numba: programs compiled together")
    parser.add_argument("--no-gradcheck", action="store_true", help="skip eager vs central differences")
    parser.add_argument("--shrink-seconds", type=float, default=60.0, help="time budget per shrink (0: no shrink)")
    parser.add_argument("--strict", action="store_true", help="report the known open bugs (known.OPEN) too")
    args = parser.parse_args(argv)
    profile = PROFILES[args.profile or "quick"]
    modes = [args.backend] if args.backend else ["interpret", "numba"]
    programs = {m: args.programs if args.programs is not None else profile[m] for m in modes}
    t = time.monotonic()
    report = run(programs, seed=args.seed, batch=args.batch or profile["batch"], gradcheck=not args.no_gradcheck,
                 shrink_budget=args.shrink_seconds, progress=True, strict=args.strict)
    print()
    print(report.summary(load_rows()))
    print(f"  time: {time.monotonic() - t:.1f} s")
    sys.stdout.flush()
    return 1 if report.mismatches else 0
