"""The numba backend's runtime: generated modules on disk, loaded once, run as a list of steps.

`NativeProgram(graph)` fuses the graph, generates its module (`compiler.codegen`), writes the source to
a content-hashed ``.py`` file in the cache directory and imports it, so numba's own cache (``cache=True``)
keeps the machine code across processes: a second process compiling the same step loads it instead of
compiling. The hash covers the source (which holds the graph, its dtypes, its flags and its sizes, those that
follow the batch as symbols: `compiler.dynamic`) and the versions of tracegrad, numba and numpy; numba's cache
index adds the CPU. A variant traced at another batch size generates the same module text
(`ModuleSource.module_source`), so it finds the module loaded already and its dispatchers compiled: numba
types arrays by dtype, rank and layout, not shape. Each segment reads its symbols from the shapes of the
arrays it receives, so a call passes nothing but the arrays. Files are written atomically
(a temporary file, then a rename), so two processes compiling at once both succeed; a file whose content
doesn't match its name (corrupted, truncated) is rewritten.

The cache directory is ``$TRACEGRAD_CACHE_DIR``, else ``$XDG_CACHE_HOME/tracegrad``, else
``~/.cache/tracegrad``; it is bounded (``$TRACEGRAD_CACHE_MB``, 512 by default): writing a new module deletes
the least recently used ones beyond the bound. ``TRACEGRAD_SHOW_KERNELS=1`` prints each generated module.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import sys
import tempfile
import traceback
import warnings
from importlib.metadata import version

import numpy as np

from .._warnings import warn_user
from ..compiler.codegen import KernelCheckError, ModuleSource, native_graph, numpy_blas
from ..threads import limit_numba_threads, numba_threads_limited
from .interpreter import GuardError, Plan, _with_node, forward_of

_LOADED: dict = {}


def _quiet_numba() -> None:
    """numba's hints about array layouts (np.dot on a transposed view) concern code we generate, not the user's.

    (Here rather than at import: importing this module must not import numba, which takes half a second.)"""
    from numba.core.errors import NumbaPerformanceWarning
    warnings.filterwarnings("ignore", category=NumbaPerformanceWarning)


_FALLBACK: dict = {}  # a configured directory that can't be used -> the private temporary one used instead


def cache_dir() -> str:
    """The kernel cache directory: ``$TRACEGRAD_CACHE_DIR``, else ``$XDG_CACHE_HOME/tracegrad``, else
    ``~/.cache/tracegrad``; created private to the user (mode 0700).

    numba's cache files are pickles (loading one runs code), so a directory other users can write is not used;
    neither is one this process can't write. Either way a private temporary directory takes its place, with
    one warning. A path that names a file is an error naming the variable.
    """
    configured = os.environ.get("TRACEGRAD_CACHE_DIR")
    if configured:
        path, source = configured, "TRACEGRAD_CACHE_DIR"
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        path, source = os.path.join(base, "tracegrad"), "the default kernel cache directory"
    if path in _FALLBACK:
        return _FALLBACK[path]
    if os.path.exists(path) and not os.path.isdir(path):
        raise NotADirectoryError(f"{source}={path!r} is a file, not a directory: set TRACEGRAD_CACHE_DIR to a "
                                 f"directory for tracegrad's compiled kernels (it is created if missing)")
    problem = None
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.stat(path)
        if st.st_mode & 0o022:
            problem = f"other users can write to it (mode {st.st_mode & 0o777:o}; loading their files runs their code)"
        elif not os.access(path, os.W_OK | os.X_OK):
            problem = "it is not writable"
    except OSError as e:
        problem = f"it can't be created ({e.strerror or e})"
    if problem is None:
        return path
    fallback = _FALLBACK[path] = tempfile.mkdtemp(prefix="tracegrad-kernels-")
    warn_user(f"tracegrad: not using the kernel cache {path!r} ({source}): {problem}. Compiled kernels go to "
              f"{fallback} for this process (they are not kept). Fix: point TRACEGRAD_CACHE_DIR at a directory only "
              f"you can write.")
    return fallback


def _cache_files(path: str) -> list:
    """The generated modules, numba's files for them, and what background compiles left (`runtime/tiered.py`)."""
    out = []
    for root, _, files in os.walk(path):
        job = os.path.basename(root).startswith("job-")
        out += [os.path.join(root, f) for f in files if job or f.startswith("tracegrad_kernels_")]
    return out


def cache_limit() -> int:
    """The kernel cache's size bound in bytes: ``$TRACEGRAD_CACHE_MB`` megabytes, 512 by default."""
    raw = os.environ.get("TRACEGRAD_CACHE_MB", "512")
    try:
        mb = float(raw)
    except ValueError:
        raise ValueError(f"TRACEGRAD_CACHE_MB={raw!r}: expected a number of megabytes (the kernel cache's size "
                         f"bound)") from None
    return int(mb * 1e6)


def _modules_on_disk(path: str) -> dict:
    """Cached modules: {module name: (last use, bytes, files)}; last use is the generated file's mtime
    (`load_module` touches it)."""
    modules: dict = {}
    for f in _cache_files(path):
        base = os.path.basename(f)
        if not base.startswith("tracegrad_kernels_"):
            continue
        name = base.split(".")[0]
        try:
            st = os.stat(f)
        except OSError:
            continue
        used, size, files = modules.get(name, (0.0, 0, []))
        used = max(used, st.st_mtime) if base.endswith(".py") else used
        modules[name] = (used, size + st.st_size, files + [f])
    return modules


def prune_cache(limit: int | None = None, keep: str = "") -> int:
    """Delete the least recently used modules (the generated file and numba's files for it) until the cache
    fits in `limit` bytes (`cache_limit()`); modules this process has loaded, and `keep`, stay. Returns how
    many went."""
    limit = cache_limit() if limit is None else limit
    modules = _modules_on_disk(cache_dir())
    total = sum(size for _, size, _ in modules.values())
    loaded = {m.__name__ for m in _LOADED.values()} | {keep}
    removed = 0
    for name, (_, size, files) in sorted(modules.items(), key=lambda kv: kv[1][0]):
        if total <= limit:
            break
        if name in loaded:
            continue
        for f in files:
            try:
                os.remove(f)
            except OSError:
                pass
        total -= size
        removed += 1
    return removed


def cache_report() -> str:
    """Where the kernel cache is and what it holds (``python -m tracegrad cache``)."""
    path = cache_dir()
    files = _cache_files(path)
    size = sum(os.path.getsize(f) for f in files if os.path.exists(f))
    modules = sum(1 for f in files if f.endswith(".py"))
    return (f"kernel cache: {path}\n{modules} generated modules, {len(files)} files, {size / 1e6:.1f} MB "
            f"(bound: {cache_limit() / 1e6:.0f} MB, TRACEGRAD_CACHE_MB; least recently used modules go first)")


def clear_cache() -> int:
    """Delete the cached kernels (generated modules and numba's files); returns how many files went."""
    files = _cache_files(cache_dir())
    for f in files:
        try:
            os.remove(f)
        except OSError:
            pass
    _LOADED.clear()
    return len(files)


def _numba_files(module) -> list:
    """numba's cache files (index and data) of a generated module."""
    folder = os.path.join(os.path.dirname(module.__file__), "__pycache__")
    prefix = module.__name__ + "."
    try:
        return [os.path.join(folder, f) for f in os.listdir(folder) if f.startswith(prefix)]
    except OSError:
        return []


@functools.lru_cache(maxsize=1)
def _versions() -> str:
    from .. import __version__
    # NOTE: found, not imported (they import numba, which costs half a second); generated modules call them, so
    # their changes must miss the cache
    helpers = hashlib.sha256()
    for name in ("tracegrad.compiler.vecmath", "tracegrad.compiler.blas"):
        with open(importlib.util.find_spec(name).origin, "rb") as f:
            helpers.update(f.read())
    blas = "numpy's cblas64" if numpy_blas() else "scipy's"  # which BLAS the machine code calls
    return f"tracegrad {__version__}, numba {version('numba')}, numpy {np.__version__}, " \
           f"helpers {helpers.hexdigest()[:12]}, BLAS {blas}"


def module_digest(source: str) -> tuple[str, str]:
    """The text of a generated module as written to the cache (with the versions it depends on), and its hash."""
    text = f"# {_versions()}\n" + source
    return text, hashlib.sha256(text.encode()).hexdigest()[:24]


def any_loaded() -> bool:
    """Whether this process has imported any generated module yet."""
    return bool(_LOADED)


def is_loaded(source: str) -> bool:
    """Whether this process has imported (and so compiled or loaded) the module of `source` already."""
    return module_digest(source)[1] in _LOADED


def cached_on_disk(source: str) -> bool:
    """Whether the kernel cache holds machine code for every entry function of `source` (numba's index files
    next to its intact module): loading it takes a fraction of a second, compiling it seconds."""
    text, digest = module_digest(source)
    name = f"tracegrad_kernels_{digest}"
    path = os.path.join(cache_dir(), name + ".py")
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() != text:
                return False
        files = os.listdir(os.path.join(os.path.dirname(path), "__pycache__"))
    except OSError:
        return False
    functions = [line[4:line.index("(")] for line in source.splitlines() if line.startswith("def segment_")]
    return all(any(f.startswith(f"{name}.{fn}-") and f.endswith(".nbi") for f in files) for fn in functions)


def load_module(source: str):
    """Import generated `source` from the disk cache (writing it there first if needed)."""
    text, digest = module_digest(source)
    if digest in _LOADED:
        return _LOADED[digest]
    _quiet_numba()
    name = f"tracegrad_kernels_{digest}"
    path = os.path.join(cache_dir(), name + ".py")
    try:
        with open(path, encoding="utf-8") as f:
            intact = f.read() == text
    except OSError:
        intact = False
    if not intact:  # absent, or corrupted/truncated: (re)write atomically
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
        prune_cache(keep=name)  # a new module: the least recently used ones go if the cache outgrew its bound
    else:
        try:
            os.utime(path)  # its last use, for `prune_cache`
        except OSError:
            pass
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    _LOADED[digest] = module
    return module


class NativeProgram(Plan):
    """A graph compiled by the numba backend; the same interface as the interpreter's `Program`."""

    def __init__(self, graph, fastmath: bool = False, code: ModuleSource | None = None):
        """`code`: the graph's module generated already (by a `tiered.NativeJob`'s thread)."""
        self.code = code if code is not None else ModuleSource(native_graph(graph), fastmath=fastmath)
        self.graph = self.code.graph
        if os.environ.get("TRACEGRAD_SHOW_KERNELS") == "1":
            print(f"# ---- tracegrad kernels for {graph.name}\n{self.code.source}")
        module = self.module = load_module(self.code.module_source)
        slot = self._plan(self.graph)
        self.steps = []
        for step in self.code.steps:
            if step[0] == "native":
                _, fname, reads, outs, *offsets = step
                fn = getattr(module, fname)
                if offsets:  # a function several segments share: this one's offsets first
                    fn = functools.partial(fn, *offsets[0])
                self.steps.append((fn, [slot[v] for v in reads], [slot[v] for v in outs],
                                   [(slot[v], gd) for v in outs for gd in self.guards_at.get(v, ())], None))
            else:
                node = step[1]
                self.steps.append((forward_of(node), [slot[v] for v in node.inputs], slot[node.out],
                                   [(slot[node.out], gd) for gd in self.guards_at.get(node.out, ())], node))
        self.n_native = sum(1 for s in self.code.steps if s[0] == "native")
        # writes the kernels did in place have no slot: the write-back skips them
        returned = {v for step in self.code.steps if step[0] == "native" for v in step[3]}
        returned |= {step[1].out for step in self.code.steps if step[0] == "node"}
        self.write_slots = [slot[v] if (v in returned or v not in self.code.inplace) else None
                            for _, v in self.graph.writes]

    def run(self, inputs: list, effects: bool = True) -> list:
        """Execute; returns the environment. With ``effects=False`` (the warm-up runs that make numba load or
        compile the segments, `runtime/tiered.py`) nodes with effects (random draws, collectives) are not run:
        their values are zeros of their type, so a warm-up neither moves a random stream nor talks to other
        processes."""
        if not numba_threads_limited():
            limit_numba_threads()
        if not self._loaded:
            return self._first_run(inputs, effects)
        return self._run(inputs, effects)

    _loaded = False

    def _first_run(self, inputs: list, effects: bool) -> list:
        """The first call loads the kernels from numba's disk cache (or compiles them). A cache file that is
        corrupted, truncated or empty makes numba fail to unpickle it: delete the module's cache files and
        compile again. (Nothing ran yet: numba loads a segment before it runs it, and a program that updates
        state in place is a single segment.)"""
        try:
            env = self._run(inputs, effects)
        except GuardError:
            raise
        except Exception as e:  # noqa: BLE001 - retried once on a clean cache; raised if it fails again
            files = _numba_files(self.module)
            if not files or not any("caching" in f.filename for f in traceback.extract_tb(e.__traceback__)):
                raise
            for f in files:
                try:
                    os.remove(f)
                except OSError:
                    pass
            warn_user(f"tracegrad: the kernel cache of {self.module.__name__} was unreadable "
                      f"({type(e).__name__}: {e}); removed {len(files)} file(s) and compiled again")
            env = self._run(inputs, effects)
        self._loaded = True
        return env

    def _check_failed(self, number: int, value, size=None) -> Exception:
        """The error a failed native check stands for: the guard's `GuardError`, or numpy's IndexError with the
        node and the user's line (as the interpreter raises it)."""
        check = self.code.checks[number]
        if check[0] == "guard":
            return GuardError(check[1], value)
        _, node, axis = check
        return _with_node(IndexError(f"index {value} is out of bounds for axis {axis} with size {size}"), node)

    def _run(self, inputs: list, effects: bool = True) -> list:
        env = self._start(inputs)
        for fn, ins, out, guards, node in self.steps:
            if node is None:  # a native segment: one call, several results
                try:
                    res = fn(*[env[i] for i in ins])
                except KernelCheckError as e:
                    raise self._check_failed(*e.args) from None
                for s, r in zip(out, res):
                    env[s] = r
            elif not effects and node.op.effects:
                env[out] = np.zeros(node.out.shape, node.out.dtype.np)
            else:
                try:
                    r = fn(*[env[i] for i in ins])
                except Exception as e:  # noqa: BLE001 - re-raised with the node and the user's line
                    raise _with_node(e, node) from e
                env[out] = r if type(r) is np.ndarray else np.asarray(r)
            for s, gd in guards:
                if not gd.holds(env[s]):
                    raise GuardError(gd, np.asarray(env[s]).tolist())
        return env
