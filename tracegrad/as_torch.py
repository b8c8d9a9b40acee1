"""Run a PyTorch script unchanged on tracegrad: `python -m tracegrad.as_torch script.py [args]`.

The script's `import torch`, `import torch.nn as nn`, `from torch.utils.data import DataLoader`, ... import
tracegrad's modules of the same names; nothing else about the script changes. `install()` does the same inside
a running process (before the script's first `import torch`).

>>> import tracegrad.as_torch
>>> tracegrad.as_torch.install()
>>> import torch.nn.functional as F
>>> import tracegrad
>>> F is tracegrad.nn.functional
True
>>> tracegrad.as_torch.uninstall()
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import runpy
import sys


class _TorchAlias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds `torch` and `torch.<sub>` as tracegrad's `tracegrad` and `tracegrad.<sub>`."""

    def find_spec(self, name, path=None, target=None):
        if name != "torch" and not name.startswith("torch."):
            return None
        real = "tracegrad" + name[len("torch"):]
        if importlib.util.find_spec(real) is None:
            return None  # torch.<sub> tracegrad lacks: the usual ModuleNotFoundError, naming torch.<sub>
        return importlib.util.spec_from_loader(name, self)

    def create_module(self, spec):
        return importlib.import_module("tracegrad" + spec.name[len("torch"):])

    def exec_module(self, module):
        pass  # the tracegrad module is already executed


_FINDER = _TorchAlias()
_PUT_ASIDE: dict = {}  # PyTorch's own modules, if this process had imported them before install()


def _torch_names():
    return [n for n in sys.modules if n == "torch" or n.startswith("torch.")]


def install() -> None:
    """Make `import torch` (and its submodules) import tracegrad in this process."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
        _PUT_ASIDE.update({n: sys.modules.pop(n) for n in _torch_names()})


def uninstall() -> None:
    """Undo `install()`: later imports of `torch` find PyTorch again (if installed)."""
    if _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)
        for name in _torch_names():
            del sys.modules[name]
        sys.modules.update(_PUT_ASIDE)
        _PUT_ASIDE.clear()


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        raise SystemExit("usage: python -m tracegrad.as_torch script.py [args...]")
    install()
    sys.argv = list(argv)
    runpy.run_path(argv[0], run_name="__main__")


if __name__ == "__main__":
    main()
