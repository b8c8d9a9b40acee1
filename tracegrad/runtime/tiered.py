"""Tiered execution: a new variant runs in the interpreter at once while its native code is compiled elsewhere.

Compiling a step's kernels with numba takes seconds; nobody should wait for it. At the first replay of a
variant of the numba backend, a `NativeJob` copies that call's inputs and hands the rest to a thread of this
process, so the call itself costs what an interpreted one costs. The thread generates the module; unless this
process or the kernel cache has its machine code, it gives the graph and the copies to
the *compile worker* (``python -m tracegrad.runtime.tiered --worker``, one process per session, started at
the first compile and reused), which builds the same `NativeProgram`, runs it once on the copies (so numba
compiles every segment for exactly the argument types the real calls pass) and leaves the machine code in
the kernel cache. The worker uses the other core and never holds this process's GIL. At the next call after
that, the variant loads the machine code on the caller's thread (importing numba and loading take 0.5-0.9 s,
once) and runs native code from then on; if anything failed, it stays in the interpreter (bit-equal to eager)
and says why once.

The worker compiles one module at a time, in order; a module that is being compiled or is loaded is not
compiled again. `compiled.wait_native()` blocks until the job is done (benchmarks and bit-reproducible runs
use it, or `compile(..., tiered=False)`).

>>> import tracegrad as tg
>>> f = tg.compile(lambda x: (x * 2.0).exp().sum(), backend="numba", tiered=True)
>>> [round(f(tg.ones(3)).item(), 3) for _ in range(3)]   # the interpreter, while numba compiles elsewhere
[22.167, 22.167, 22.167]
>>> f.wait_native()                                        # blocks until native code is there, then switches
>>> round(f(tg.ones(3)).item(), 3), f.last_variant.tier
(22.167, 'native')
"""
from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import numpy as np

_GRACE = 0.05             # seconds a `NativeJob` thread lets the call that started it finish
_LOCK = threading.Lock()  # guards the two tables below and the worker's stdin
_BY_KEY: dict = {}        # module digest -> the compile of it (so one module is compiled once)
_WORKER: list = []        # the compile worker of this process, once started


class Worker:
    """The background compile process, fed jobs through its stdin (it compiles them in order); a reader thread
    collects each job's outcome from its stdout (``ok DIR`` or ``error DIR MESSAGE``)."""

    def __init__(self):
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
                   NUMBA_NUM_THREADS="1")
        self.process = subprocess.Popen([sys.executable, "-m", "tracegrad.runtime.tiered", "--worker"], env=env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                        text=True, bufsize=1)
        self.outcomes: dict = {}  # job directory -> None (compiled) or the error message
        self.ended = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True, name="tracegrad-compile-worker")
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            kind, path, *message = line.rstrip("\n").split("\t")
            self.outcomes[path] = message[0] if kind == "error" else None
        self.ended.set()

    def compile(self, job_dir: str, cache: str) -> str | None:
        """Have the worker compile the job in `job_dir`; blocks (a background thread) until it did. Returns
        None, or why it failed."""
        try:
            with _LOCK:
                self.process.stdin.write(f"{job_dir}\t{cache}\n")
                self.process.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass  # it has ended: said below
        while job_dir not in self.outcomes:
            if self.ended.wait(0.005) and job_dir not in self.outcomes:
                return f"exit code {self.process.wait()}"
        return self.outcomes[job_dir]


def start_worker() -> Worker:
    """The compile worker, started if it isn't running."""
    with _LOCK:
        if not (_WORKER and _WORKER[0].process.poll() is None):
            _WORKER[:] = [Worker()]
        return _WORKER[0]


class NativeJob:
    """Getting a variant's native program without blocking its calls: a thread of this process generates the
    module and, unless this process or the kernel cache has its machine code, has the compile worker compile it
    (one compile per module). The calls run in the interpreter meanwhile. When `done()`, `finish()` (called by
    the variant at a call boundary) loads the machine code on the caller's thread and sets `program` (or
    `error`); `native_from` says which path it took.

    # NOTE: loading runs on the caller's thread, once: importing numba and loading its machine code take
    # 0.5-0.9 s of CPU, and in a thread beside the interpreted calls (which hold the GIL) it took 1.9 s for the
    # demo's step, during which each call ran 5 times slower than in the interpreter alone
    """

    def __init__(self, graph, fastmath: bool, inputs: list):
        self.error = None
        self.program = None
        self.native_from = None
        self._to_load = None  # (graph, fastmath, input copies, module) once the machine code is ready to load
        copies = [np.array(a, copy=True, order="K") for a in inputs]  # order K: the layouts the calls pass
        self.thread = threading.Thread(target=self._build, args=(graph, fastmath, copies), daemon=True,
                                       name="tracegrad-native")
        self.thread.start()

    def _build(self, graph, fastmath: bool, copies: list) -> None:
        # NOTE: the work waits for the call that started it to return (a first replay takes a few ms): started
        # at once, it took the GIL from that call, which then cost 15-35 ms instead of 1 (the demo's step)
        time.sleep(_GRACE)
        from ..compiler.codegen import ModuleSource, native_graph
        from . import native
        try:
            code = ModuleSource(native_graph(graph), fastmath=fastmath)
            source = code.module_source
            if native.is_loaded(source):
                self.native_from = "loaded in this process already"
            elif native.cached_on_disk(source):
                self.native_from = "loaded from the kernel cache"
            else:
                self.native_from = "compiled by a background process"
                error = _compile_once(graph, fastmath, copies, native.module_digest(source)[1], native.cache_dir())
                if error is not None:
                    self.error = error
                    return
            self._to_load = (graph, fastmath, copies, code)
        except Exception as e:  # noqa: BLE001 - reported once by the variant, which stays in the interpreter
            self.error = f"{type(e).__name__}: {e}"

    def done(self) -> bool:
        return not self.thread.is_alive()

    def wait(self) -> None:
        self.thread.join()

    def finish(self) -> None:
        """After `done()`: load the machine code on this thread (sets `program`, or `error`)."""
        if self._to_load is None or self.error is not None:
            return
        graph, fastmath, copies, code = self._to_load
        self._to_load = None
        try:
            self.program = _load(graph, fastmath, copies, code)
        except Exception as e:  # noqa: BLE001 - reported once by the variant, which stays in the interpreter
            self.error = f"{type(e).__name__}: {e}"


def _compile_once(graph, fastmath: bool, inputs: list, key: str, cache: str) -> str | None:
    """Have the worker compile the module `key` (or wait for the compile of it already under way); returns None,
    or why it failed."""
    with _LOCK:
        pending = _BY_KEY.get(key)
        if pending is None:
            pending = _BY_KEY[key] = {"done": threading.Event(), "error": None}
            mine = True
        else:
            mine = False
    if not mine:
        pending["done"].wait()
        return pending["error"]
    job_dir = tempfile.mkdtemp(prefix="job-", dir=cache)
    try:
        with open(os.path.join(job_dir, "graph.pkl"), "wb") as f:
            pickle.dump((graph, fastmath), f, protocol=pickle.HIGHEST_PROTOCOL)
        # NOTE: np.save keeps C or Fortran order, so numba compiles for the layouts the real calls pass
        for i, a in enumerate(inputs):
            np.save(os.path.join(job_dir, f"in{i}.npy"), a, allow_pickle=False)
        pending["error"] = start_worker().compile(job_dir, cache)
    finally:
        shutil.rmtree(job_dir, ignore_errors=True)
        if pending["error"] is not None:
            with _LOCK:
                _BY_KEY.pop(key, None)  # a later variant may try again
        pending["done"].set()
    return pending["error"]


def _load(graph, fastmath: bool, copies: list, code):
    """The native program of `graph` (its module `code` generated already), run once on copies of the inputs
    (numba loads each segment at its first call)."""
    from .interpreter import GuardError
    from .native import NativeProgram
    program = NativeProgram(graph, fastmath=fastmath, code=code)
    try:
        program.run(copies, effects=False)  # no random draws in this thread, no collectives with other ranks
    except GuardError:
        pass  # the segments before the guard loaded; the calls check guards on their own values
    return program


# NOTE: the ranks of a data-parallel job must run the same code at every call, or their weights drift apart in the
# last bits (a native update kernel may round otherwise than numpy). tracegrad.distributed sets this to
# `switch_together(done, graph)`: for a graph with collectives (which every rank runs at the same calls) a collective
# that answers whether every rank's job is done, so that all ranks switch that variant to native code at the same
# call; for any other graph (which may run on one rank only), `done`.
SWITCH_TOGETHER = None


def ready_to_switch(job, graph) -> bool:
    """Whether a variant (of `graph`) whose native code `job` gets may switch to it now."""
    done = job.done()
    return done if SWITCH_TOGETHER is None else SWITCH_TOGETHER(done, graph)


def native_or_job(graph, fastmath: bool, inputs: list):
    """``(program, None)`` if this process has the graph's native module loaded already (the same kernels for
    another batch size, or another function), else ``(None, job)``: a `NativeJob` getting it in the background.
    (With no module loaded yet, as on a cold start, nothing is generated on the caller's thread.)"""
    from . import native
    if native.any_loaded():
        from ..compiler.codegen import ModuleSource, native_graph
        if native.is_loaded(ModuleSource(native_graph(graph), fastmath=fastmath).module_source):
            return native.NativeProgram(graph, fastmath=fastmath), None
    return None, NativeJob(graph, fastmath, inputs)


def _compile_job(path: str) -> None:
    """The background process: build the native program and run it once on the saved inputs."""
    with open(os.path.join(path, "graph.pkl"), "rb") as f:
        graph, fastmath = pickle.load(f)
    inputs = []
    i = 0
    while os.path.exists(os.path.join(path, f"in{i}.npy")):
        inputs.append(np.load(os.path.join(path, f"in{i}.npy"), allow_pickle=False))
        os.remove(os.path.join(path, f"in{i}.npy"))  # read: gone from disk even if the main process has ended
        i += 1
    os.remove(os.path.join(path, "graph.pkl"))
    from .interpreter import GuardError
    from .native import NativeProgram
    program = NativeProgram(graph, fastmath=fastmath)
    try:
        program.run(inputs, effects=False)  # a collective here would wait for ranks that never come
    except GuardError:
        pass  # the kernels before the guard compiled; the main process checks guards on its own values


def _serve() -> None:
    """The worker's loop: set numba up at once, then compile each job named on stdin, reporting on stdout."""
    report = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything else printed (numba, TRACEGRAD_SHOW_KERNELS) must not reach the report channel
    sys.stdout = sys.stderr
    from numba import njit

    njit(lambda x: x + 1)(1)  # numba's compiler set-up (half a second), while the main process traces
    from . import native
    cache = None
    for line in sys.stdin:
        path, job_cache = line.rstrip("\n").split("\t")
        if job_cache != cache:  # modules loaded for another cache directory are compiled again into this one
            os.environ["TRACEGRAD_CACHE_DIR"] = cache = job_cache
            native._LOADED.clear()
        try:
            _compile_job(path)
            report.write(f"ok\t{path}\n")
        except BaseException:  # noqa: BLE001 - reported to the main process, which stays in the interpreter
            last = traceback.format_exc().strip().splitlines()[-1]
            report.write(f"error\t{path}\tnative compile failed: {last}\n")


if __name__ == "__main__":
    _serve()
