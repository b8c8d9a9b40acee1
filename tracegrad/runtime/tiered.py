"""Tiered execution: a new variant runs in the interpreter at once while its native code is compiled elsewhere.

Compiling a step's kernels with numba takes seconds; nobody should wait for it. When a variant of the numba
backend first runs, `submit` hands its graph and a copy of that call's inputs to a *background process*, the
compile worker (``python -m tracegrad.runtime.tiered --worker``), which builds the same `NativeProgram`, runs
it once on the copies (so numba compiles every segment for exactly the argument types the real calls will
pass) and leaves the machine code in the kernel cache on disk. It uses the other core and never holds this
process's GIL. The worker is started at the first call of a tiered compiled function (`start_worker`), so
that starting Python and importing tracegrad and numba (1-1.5 s) overlap the trace, and it serves every later
compile of this process. Meanwhile the variant runs in the interpreter (bit-equal to eager). When the job has
finished, a thread of this process loads the native program from the cache (`LoadJob`: importing numba and
loading take 0.3-1 s, during which the calls go on), and the variant runs native from the next call on; if
the job failed, it stays in the interpreter and says why once.

One job runs at a time (the machine has few cores; the jobs queue); a job for a module that is already being
compiled or is loaded in this process is not repeated. `wait` blocks until a job is done (benchmarks and
bit-reproducible runs use `compile(..., tiered=False)` or `compiled.wait_native()`).

>>> import tracegrad as tg
>>> f = tg.compile(lambda x: (x * 2.0).exp().sum(), backend="numba", tiered=True)
>>> [round(f(tg.ones(3)).item(), 3) for _ in range(3)]   # the interpreter, while numba compiles elsewhere
[22.167, 22.167, 22.167]
>>> f.wait_native()                                        # blocks until native code is there, then switches
>>> round(f(tg.ones(3)).item(), 3), f.last_variant.tier
(22.167, 'native')
"""
from __future__ import annotations

import contextlib
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

_QUEUE: list = []       # jobs not started yet, oldest first
_RUNNING: list = []     # the job the worker compiles now (at most one)
_BY_KEY: dict = {}      # module digest -> its job (so one module is compiled once)
_WORKER: list = []      # the compile worker of this process, once started


class Worker:
    """The background compile process, fed one job at a time through its stdin; a reader thread collects each
    job's outcome from its stdout (``ok DIR`` or ``error DIR MESSAGE``)."""

    def __init__(self):
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
                   NUMBA_NUM_THREADS="1")
        self.process = subprocess.Popen([sys.executable, "-m", "tracegrad.runtime.tiered", "--worker"], env=env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                        text=True, bufsize=1)
        self.outcomes: dict = {}  # job directory -> None (compiled) or the error message
        self.reader = threading.Thread(target=self._read, daemon=True, name="tracegrad-compile-worker")
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            kind, path, *message = line.rstrip("\n").split("\t")
            self.outcomes[path] = message[0] if kind == "error" else None

    def send(self, job) -> bool:
        """Hand `job` to the worker; False if it has ended."""
        try:
            self.process.stdin.write(f"{job.dir}\t{job.cache}\n")
            self.process.stdin.flush()
            return True
        except (BrokenPipeError, OSError, ValueError):
            return False

    def ended(self) -> int | None:
        """The worker's exit code once it has ended (and its last outcomes have been read), else None."""
        rc = self.process.poll()
        if rc is not None:
            self.reader.join(timeout=1.0)
        return rc


def start_worker() -> Worker:
    """The compile worker, started if it isn't running (at the first call of a tiered compiled function)."""
    if _WORKER and _WORKER[0].process.poll() is None:
        return _WORKER[0]
    _WORKER[:] = [Worker()]
    return _WORKER[0]


class NativeJob:
    """One background compile: the graph and a copy of one call's inputs in a directory the worker reads."""

    def __init__(self, graph, fastmath: bool, inputs: list, key: str, cache: str):
        self.key, self.cache = key, cache
        self.dir = tempfile.mkdtemp(prefix="job-", dir=cache)
        with open(os.path.join(self.dir, "graph.pkl"), "wb") as f:
            pickle.dump((graph, fastmath), f, protocol=pickle.HIGHEST_PROTOCOL)
        # NOTE: np.save keeps C or Fortran order, so numba compiles for the layouts the real calls pass
        for i, a in enumerate(inputs):
            np.save(os.path.join(self.dir, f"in{i}.npy"), np.asarray(a), allow_pickle=False)
        self.worker = None
        self.error = None
        self.finished = None
        self.program = None  # built by a `LoadJob` in this process once the machine code is on disk

    def start(self) -> None:
        self.worker = start_worker()
        if not self.worker.send(self):
            self._end(f"exit code {self.worker.ended()}")

    def done(self) -> bool:
        """Whether the job has ended (starting queued jobs as the worker frees up)."""
        poll()
        return self.finished is not None

    def outcome(self):
        """``(ended, error)``: whether the worker has finished this job, and the error if it failed."""
        if self.dir in self.worker.outcomes:
            return True, self.worker.outcomes[self.dir]
        rc = self.worker.ended()
        if rc is None:
            return False, None
        if self.dir in self.worker.outcomes:
            return True, self.worker.outcomes[self.dir]
        return True, f"exit code {rc}"

    def _end(self, error) -> None:
        self.finished = time.perf_counter()
        self.error = error
        shutil.rmtree(self.dir, ignore_errors=True)


_SWITCH = {"loads": 0, "interval": None}
_SWITCH_LOCK = threading.Lock()


@contextlib.contextmanager
def _short_switch_interval():
    """While a thread loads native code, the GIL changes hands every 0.05 ms instead of 5 ms.

    Importing numba and loading machine code release the GIL at every file read; with the default interval
    the loader then waits up to 5 ms for each re-acquisition while the main thread runs interpreted calls:
    a small MLP step switched to native code 3.1 s after its first call with a warm cache (10,943 interpreted
    calls), 1.2-1.3 s with this interval (about 2,500 calls)."""
    with _SWITCH_LOCK:
        if _SWITCH["loads"] == 0:
            _SWITCH["interval"] = sys.getswitchinterval()
            sys.setswitchinterval(0.00005)
        _SWITCH["loads"] += 1
    try:
        yield
    finally:
        with _SWITCH_LOCK:
            _SWITCH["loads"] -= 1
            if _SWITCH["loads"] == 0:
                sys.setswitchinterval(_SWITCH["interval"])


class LoadJob:
    """Loading native code that is on disk already (a warm kernel cache, or a background compile that ended): a
    thread of this process builds the `NativeProgram` and runs it once on copies of one call's inputs, since
    numba imports and loads each segment at its first call (0.3-0.8 s, most of it importing numba). The calls
    meanwhile keep running in the interpreter; `program` is ready when `done()`."""

    def __init__(self, graph, fastmath: bool, inputs: list):
        self.error = None
        self.program = None
        self.finished = None
        copies = [np.array(a, copy=True, order="K") for a in inputs]  # order K: the layouts the calls pass
        self.thread = threading.Thread(target=self._load, args=(graph, fastmath, copies), daemon=True,
                                       name="tracegrad-native-load")
        self.thread.start()

    def _load(self, graph, fastmath: bool, copies: list) -> None:
        with _short_switch_interval():
            self._build(graph, fastmath, copies)

    def _build(self, graph, fastmath: bool, copies: list) -> None:
        from .interpreter import GuardError
        from .native import NativeProgram
        try:
            program = NativeProgram(graph, fastmath=fastmath)
            try:
                program.run(copies)
            except GuardError:
                pass  # the segments before the guard loaded; the calls check guards on their own values
            self.program = program
        except Exception as e:  # noqa: BLE001 - reported once by the variant, which stays in the interpreter
            self.error = f"{type(e).__name__}: {e}"
        self.finished = time.perf_counter()

    def done(self) -> bool:
        return not self.thread.is_alive()

    def wait(self) -> None:
        self.thread.join()


def poll() -> None:
    """Reap the running job if it ended and hand the next one to the worker."""
    while True:
        if _RUNNING:
            job = _RUNNING[0]
            ended, error = job.outcome()
            if not ended:
                return
            _RUNNING.clear()
            job._end(error)
        if not _QUEUE:
            return
        job = _QUEUE.pop(0)
        _RUNNING.append(job)
        job.start()
        if job.finished is not None:  # the worker could not take it
            _RUNNING.clear()


def submit(graph, fastmath: bool, inputs: list, key: str, cache: str) -> NativeJob:
    """A background compile of `graph` (one per module `key`), queued behind the running one."""
    job = _BY_KEY.get(key)
    if job is not None and job.error is None:
        return job
    job = _BY_KEY[key] = NativeJob(graph, fastmath, inputs, key, cache)
    _QUEUE.append(job)
    poll()
    return job


def native_or_job(graph, fastmath: bool, inputs: list):
    """``(program, None)`` if this process has the graph's native module loaded already (the same kernels for
    another batch size, or another function), else ``(None, job)``: a background compile of it."""
    from ..compiler.codegen import ModuleSource, native_graph
    from . import native
    source = ModuleSource(native_graph(graph), fastmath=fastmath).module_source
    if native.is_loaded(source):
        return native.NativeProgram(graph, fastmath=fastmath), None
    if native.cached_on_disk(source):  # a warm cache: loaded by a thread of this process, no compile
        return None, LoadJob(graph, fastmath, inputs)
    return None, submit(graph, fastmath, inputs, native.module_digest(source)[1], native.cache_dir())


def wait(job) -> None:
    """Block until `job` has ended (running the queue ahead of it)."""
    if isinstance(job, LoadJob):
        job.wait()
        return
    while not job.done():
        time.sleep(0.002)


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
        program.run(inputs)
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
