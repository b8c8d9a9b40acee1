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
``~/.cache/tracegrad``. ``TRACEGRAD_SHOW_KERNELS=1`` prints each generated module.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
import warnings

import numpy as np
from numba.core.errors import NumbaPerformanceWarning

from ..compiler.codegen import ModuleSource, native_graph
from .interpreter import GuardError, Plan, _with_node, forward_of

_LOADED: dict = {}
# numba's hints about array layouts (np.dot on a transposed view) concern code we generate, not the user's
warnings.filterwarnings("ignore", category=NumbaPerformanceWarning)


def cache_dir() -> str:
    path = os.environ.get("TRACEGRAD_CACHE_DIR")
    if not path:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        path = os.path.join(base, "tracegrad")
    os.makedirs(path, exist_ok=True)
    return path


def _versions() -> str:
    import numba

    from .. import __version__
    from ..compiler import vecmath
    with open(vecmath.__file__, "rb") as f:  # generated modules call vecmath: its changes must miss the cache
        vm = hashlib.sha256(f.read()).hexdigest()[:12]
    return f"tracegrad {__version__}, numba {numba.__version__}, numpy {np.__version__}, vecmath {vm}"


def load_module(source: str):
    """Import generated `source` from the disk cache (writing it there first if needed)."""
    header = f"# {_versions()}\n"
    text = header + source
    digest = hashlib.sha256(text.encode()).hexdigest()[:24]
    if digest in _LOADED:
        return _LOADED[digest]
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
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    _LOADED[digest] = module
    return module


class NativeProgram(Plan):
    """A graph compiled by the numba backend; the same interface as the interpreter's `Program`."""

    def __init__(self, graph, fastmath: bool = False):
        self.graph = native_graph(graph)
        self.code = ModuleSource(self.graph, fastmath=fastmath)
        if os.environ.get("TRACEGRAD_SHOW_KERNELS") == "1":
            print(f"# ---- tracegrad kernels for {graph.name}\n{self.code.source}")
        module = load_module(self.code.module_source)
        slot = self._plan(self.graph)
        self.steps = []
        for step in self.code.steps:
            if step[0] == "native":
                _, fname, reads, outs = step
                self.steps.append((getattr(module, fname), [slot[v] for v in reads], [slot[v] for v in outs],
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

    def run(self, inputs: list) -> list:
        env = self._start(inputs)
        for fn, ins, out, guards, node in self.steps:
            if node is None:  # a native segment: one call, several results
                res = fn(*[env[i] for i in ins])
                for s, r in zip(out, res):
                    env[s] = r
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
