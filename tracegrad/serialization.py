"""`save` and `load` in PyTorch's file format: what `tracegrad.save` writes `torch.load` reads, and a state dict
that `torch.save` wrote loads here.

The format (PyTorch's `torch/serialization.py`): a zip archive of uncompressed records under ``archive/``:
``data.pkl``, a pickle (protocol 2) of the object in which every tensor is ``torch._utils._rebuild_tensor_v2``
applied to a storage, its offset, size and stride (in elements) and its requires_grad, and every storage is a
persistent id ``('storage', torch.FloatStorage, key, 'cpu', numel)``; ``data/<key>``, each storage's raw bytes;
``byteorder``; ``version``. Tensors that are views of one array share one storage, so they load as views of
one array again (as in PyTorch). Parameters are ``torch._utils._rebuild_parameter``, dtypes, devices and sizes
``torch.float32``, ``torch.device``, ``torch.Size``: PyTorch's names, which tracegrad never imports.

`load` defaults to ``weights_only=True``, as PyTorch 2.6+: its unpickler admits tensors, parameters, dtypes,
devices, sizes and containers of numbers and strings, and refuses any other global with
`pickle.UnpicklingError`. A whole module needs ``weights_only=False``: only for files you trust, since
unpickling then runs whatever code the file names.

>>> import io, tracegrad as torch
>>> buf = io.BytesIO()
>>> torch.save({"w": torch.arange(6.0).reshape(2, 3).t(), "step": 3}, buf)
>>> _ = buf.seek(0)
>>> torch.load(buf)
{'w': tensor([[0., 3.],
        [1., 4.],
        [2., 5.]]), 'step': 3}
"""
from __future__ import annotations

import _compat_pickle
import codecs
import contextlib
import io
import os
import pickle
import re
import sys
import zipfile
from collections import Counter, OrderedDict

import numpy as np

from . import devices, dtypes
from ._tensor import Size, Tensor
from .nn.parameter import Parameter

_STORAGE_NAMES = {d: d.tensor_type.replace("Tensor", "Storage") for d in dtypes.ALL}  # FloatStorage, HalfStorage, ...
_HAS = ", ".join(d.name for d in dtypes.ALL)
_RECORD_DATE = (1980, 1, 1, 0, 0, 0)  # NOTE: a fixed date: saving the same object twice gives the same bytes
_UNSAFE = ("Re-running `load` with `weights_only=False` will likely succeed, but it can result in arbitrary code "
           "execution. Do it only if you got the file from a trusted source.")
# PyTorch's dtypes that tracegrad lacks (a file naming one can't be loaded)
_TORCH_DTYPE = re.compile(r"(u?int\d+|b?float\d+\w*|half|complex\d+|cfloat|cdouble|bits\w+|q\w+)")


# ------------------------------------------------------------------------------------------ save
class _Global:
    """A global of the pickle that tracegrad doesn't import (one of PyTorch's names): written by name."""

    __slots__ = ("module", "name")

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle's reductions must name a callable; this one is only ever written
        raise TypeError(f"{self.module}.{self.name} is a name in a file, not a function of tracegrad")


_REBUILD_TENSOR = _Global("torch._utils", "_rebuild_tensor_v2")
_REBUILD_PARAMETER = _Global("torch._utils", "_rebuild_parameter")
_TORCH_DEVICE, _TORCH_SIZE = _Global("torch", "device"), _Global("torch", "Size")
_STORAGE_TYPES = {d: _Global("torch", name) for d, name in _STORAGE_NAMES.items()}


class _StorageRef:
    """Stands for a storage in the pickle: the pickler writes its persistent id."""

    __slots__ = ("pid",)

    def __init__(self, pid: tuple):
        self.pid = pid


def _contiguous_strides(shape) -> tuple:
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= max(n, 1)
    return tuple(reversed(strides))


def _storage_of(arr: np.ndarray):
    """The C-contiguous array whose memory `arr` views, and `arr`'s offset and strides in its elements.

    A view of another array saves that array (so views share a storage in the file, as in PyTorch); an array
    that can't be described that way (negative strides, a view with another dtype) is saved as a copy."""
    root = arr
    while isinstance(root.base, np.ndarray):
        root = root.base
    item = arr.itemsize
    if root is not arr and root.dtype == arr.dtype and root.flags.c_contiguous:
        start = arr.__array_interface__["data"][0] - root.__array_interface__["data"][0]
        if start % item == 0 and all(s >= 0 and s % item == 0 for s in arr.strides):
            return root, start // item, tuple(s // item for s in arr.strides)
    if not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr)
    return arr, 0, _contiguous_strides(arr.shape)


class _Pickler(pickle._Pickler):
    """Python's pickler (its Python version: only it can write a global without importing it), with tensors
    written as PyTorch writes them."""

    dispatch = dict(pickle._Pickler.dispatch)

    def __init__(self, file, protocol: int):
        super().__init__(file, protocol)
        self.storages: dict[int, tuple] = {}  # id(array) -> (its _StorageRef, the array, which stays alive)

    def persistent_id(self, obj):
        return obj.pid if type(obj) is _StorageRef else None

    def reducer_override(self, obj):
        if isinstance(obj, Tensor):
            if isinstance(obj, Parameter):
                return _REBUILD_PARAMETER, (Tensor._make(obj._data), obj._rg, OrderedDict())
            root, offset, stride = _storage_of(obj._data)
            ref = self.storages.get(id(root))
            if ref is None:
                key = str(len(self.storages))
                ref = _StorageRef(("storage", _STORAGE_TYPES[obj.dtype], key, "cpu", root.size))
                self.storages[id(root)] = ref, root
            else:
                ref = ref[0]
            return _REBUILD_TENSOR, (ref, offset, tuple(obj._data.shape), stride, obj._rg, OrderedDict())
        if isinstance(obj, devices.device):
            return _TORCH_DEVICE, (obj.type,) if obj.index is None else (obj.type, obj.index)
        if isinstance(obj, Size):
            return _TORCH_SIZE, (tuple(obj),)
        return NotImplemented

    def _write_global(self, module: str, name: str, obj) -> None:
        self.write(pickle.GLOBAL + f"{module}\n{name}\n".encode())
        self.memoize(obj)


_Pickler.dispatch[_Global] = lambda self, g: self._write_global(g.module, g.name, g)
_Pickler.dispatch[dtypes.DType] = lambda self, d: self._write_global("torch", d.name, d)


def _opened(f, mode: str):
    """A context giving a binary file: `f` opened if it is a path, else `f` itself (left open)."""
    if isinstance(f, (str, os.PathLike)):
        return open(f, mode)
    need = "write" if "w" in mode else "read"
    if not hasattr(f, need):
        raise AttributeError(f"expected 'f' to be string, path, or a file-like object with a '{need}' attribute")
    return contextlib.nullcontext(f)


def save(obj, f, pickle_protocol: int = 2) -> None:
    """Save `obj` (tensors, state dicts, optimizer state dicts, containers, whole modules) to `f`, a path or a
    binary file, in PyTorch's format (``torch.load`` reads it; see this module's doc).

    >>> import io, tracegrad as torch
    >>> net = torch.nn.Linear(3, 2)
    >>> buf = io.BytesIO()
    >>> torch.save(net.state_dict(), buf)
    >>> _ = buf.seek(0)
    >>> sd = torch.load(buf)
    >>> list(sd), torch.equal(sd["weight"], net.weight)
    (['weight', 'bias'], True)
    """
    data = io.BytesIO()
    pickler = _Pickler(data, pickle_protocol)
    pickler.dump(obj)
    with _opened(f, "wb") as out, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        def record(name, payload):
            zf.writestr(zipfile.ZipInfo("archive/" + name, _RECORD_DATE), payload)

        record("data.pkl", data.getvalue())
        record("byteorder", sys.byteorder)
        for ref, root in pickler.storages.values():
            raw = memoryview(root.reshape(-1).view(np.uint8))  # the array's bytes, not copied
            info = zipfile.ZipInfo("archive/data/" + ref.pid[2], _RECORD_DATE)
            with zf.open(info, "w", force_zip64=raw.nbytes >= 1 << 31) as dst:
                dst.write(raw)
        record("version", "3\n")


# ------------------------------------------------------------------------------------------ load
class _StorageType:
    """What a storage type of the file (``torch.FloatStorage``) stands for: its dtype (None: one tracegrad lacks)."""

    __slots__ = ("name", "dtype")

    def __init__(self, name: str, dtype):
        self.name, self.dtype = name, dtype


class _Storage:
    """A storage read from the file: a flat array that the tensors of the file view (`map_location` callables
    receive it, with its location: return it, or None, to keep it)."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray):
        self.array = array

    def __repr__(self):
        return f"<storage of {self.array.size} {dtypes.from_numpy_dtype(self.array.dtype)}>"


def _view(storage, offset, size, stride) -> np.ndarray:
    """The array a tensor of the file is: `size` elements of `storage` from `offset`, `stride` apart."""
    if type(storage) is not _Storage:
        raise pickle.UnpicklingError(f"load: a tensor of the file is rebuilt from {type(storage).__name__}, "
                                     f"not a storage")
    ints = (offset, *size, *stride)
    if not all(type(v) is int and v >= 0 for v in ints) or len(size) != len(stride):
        raise pickle.UnpicklingError(f"load: a tensor of the file has an invalid layout: offset {offset}, size "
                                     f"{size}, stride {stride}")
    arr = storage.array
    item = arr.itemsize
    try:  # numpy checks that the view stays inside the storage
        return np.ndarray(tuple(size), arr.dtype, buffer=arr, offset=offset * item,
                          strides=tuple(s * item for s in stride))
    except (TypeError, ValueError) as e:
        raise pickle.UnpicklingError(f"load: a tensor of the file (offset {offset}, size {size}, stride {stride}) "
                                     f"lies outside its storage of {arr.size} elements ({e})") from None


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
    t = Tensor._make(_view(storage, storage_offset, size, stride))
    if requires_grad:
        t.requires_grad_(True)
    return t


def _rebuild_tensor(storage, storage_offset, size, stride):
    return Tensor._make(_view(storage, storage_offset, size, stride))


def _rebuild_parameter(data, requires_grad, backward_hooks):
    return Parameter(data, bool(requires_grad))


def _load_globals() -> dict:
    table = {"collections.OrderedDict": OrderedDict, "collections.Counter": Counter, "_codecs.encode": codecs.encode,
             "builtins.set": set, "builtins.complex": complex, "builtins.bytearray": bytearray,
             "torch._utils._rebuild_tensor_v2": _rebuild_tensor_v2, "torch._utils._rebuild_tensor": _rebuild_tensor,
             "torch._utils._rebuild_parameter": _rebuild_parameter, "torch.Size": Size,
             "torch.device": devices.device}
    table.update({f"torch.{d.name}": d for d in dtypes.ALL})
    table.update({f"torch.{name}": _StorageType(name, d) for d, name in _STORAGE_NAMES.items()})
    return table


_LOAD_GLOBALS = _load_globals()
_SAFE_GLOBALS: dict[str, object] = {}  # admitted by the user (`add_safe_globals`)


def _full_name(obj) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


def add_safe_globals(safe_globals: list) -> None:
    """Admit these classes or functions in ``load(weights_only=True)``, as ``torch.serialization.add_safe_globals``
    (entries: objects, or ``(object, "module.name")`` pairs). Only for globals you trust.

    >>> import tracegrad as tg
    >>> tg.serialization.add_safe_globals([tg.nn.Linear])
    >>> tg.nn.Linear in tg.serialization.get_safe_globals()
    True
    >>> tg.serialization.clear_safe_globals()
    """
    for entry in safe_globals:
        obj, name = entry if isinstance(entry, tuple) else (entry, _full_name(entry))
        _SAFE_GLOBALS[name] = obj


def get_safe_globals() -> list:
    """The globals `add_safe_globals` admitted."""
    return list(_SAFE_GLOBALS.values())


def clear_safe_globals() -> None:
    """Forget every global `add_safe_globals` admitted."""
    _SAFE_GLOBALS.clear()


@contextlib.contextmanager
def safe_globals(globals_list: list):
    """`add_safe_globals` inside a ``with`` block only.

    >>> import io, tracegrad as tg
    >>> buf = io.BytesIO()
    >>> tg.save(tg.nn.Flatten(), buf)
    >>> _ = buf.seek(0)
    >>> with tg.serialization.safe_globals([tg.nn.Flatten]):
    ...     tg.load(buf)
    Flatten(start_dim=1, end_dim=-1)
    """
    before = dict(_SAFE_GLOBALS)
    add_safe_globals(globals_list)
    try:
        yield
    finally:
        _SAFE_GLOBALS.clear()
        _SAFE_GLOBALS.update(before)


def _map_storage(storage: _Storage, location: str, map_location) -> _Storage:
    """Where a storage saved on `location` goes (PyTorch's `map_location` rules): it must end on the CPU."""
    target = location
    if isinstance(map_location, dict):
        target = map_location.get(location, location)
    elif isinstance(map_location, (str, devices.device)):
        target = map_location
    elif map_location is not None:
        moved = map_location(storage, location)
        if moved is not None:
            if type(moved) is not _Storage:
                raise TypeError(f"load: map_location returned {type(moved).__name__}; it must return the storage "
                                f"it was given (tracegrad computes on the CPU) or None")
            return moved
    if devices.device(str(target)).type != "cpu":
        raise RuntimeError(f"load: the file has a tensor saved on device '{location}', which tracegrad maps to "
                           f"'{target}', but tracegrad computes on the CPU only (tracegrad.cuda.is_available() is "
                           f"False): pass map_location='cpu' (or map_location=tracegrad.device('cpu')) to load the "
                           f"tensors onto the CPU")
    return storage


class _Unpickler(pickle.Unpickler):
    """Python's unpickler with PyTorch's names mapped to tracegrad's objects, storages read from the archive and,
    with weights_only, every other global refused."""

    def __init__(self, file, archive: zipfile.ZipFile, prefix: str, map_location, weights_only: bool):
        super().__init__(file, encoding="utf-8")
        self.archive, self.prefix = archive, prefix
        self.map_location, self.weights_only = map_location, weights_only
        self.swap = archive.read(prefix + "byteorder").decode() != sys.byteorder \
            if prefix + "byteorder" in archive.NameToInfo else False
        self.loaded: dict[str, _Storage] = {}

    def find_class(self, module, name):
        # NOTE: a protocol-2 pickle names Python 2's modules (__builtin__.set): read them as Python 3's
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        full = f"{module}.{name}"
        found = _LOAD_GLOBALS.get(full, _SAFE_GLOBALS.get(full))
        if found is not None:
            return found
        if module == "torch" and (name.endswith("Storage") and name != "UntypedStorage"):
            return _StorageType(name, None)
        if module == "torch" and _TORCH_DTYPE.fullmatch(name):
            raise TypeError(f"load: the file holds the dtype torch.{name}, which tracegrad lacks (it has "
                            f"{_HAS}): convert it in PyTorch before saving")
        if self.weights_only:
            raise pickle.UnpicklingError(
                f"Weights only load failed. Unsupported global: GLOBAL {full} was not an allowed global by default: "
                f"load(weights_only=True) admits only tensors, parameters, dtypes, devices, sizes and dicts, lists, "
                f"tuples and sets of numbers and strings. {_UNSAFE} Alternatively, if you trust {full}, admit it "
                f"with tracegrad.serialization.add_safe_globals([{full}]).")
        if module == "torch" or module.startswith("torch."):
            raise pickle.UnpicklingError(
                f"load: the file holds {full}, a PyTorch object that tracegrad can't rebuild (it loads PyTorch's "
                f"tensors, parameters, dtypes, devices, sizes and containers): save model.state_dict() in PyTorch "
                f"and load that into the tracegrad model with load_state_dict")
        return super().find_class(module, name)

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"load: unsupported persistent id {pid!r} (expected a storage)")
        _, kind, key, location, numel = pid
        if type(kind) is not _StorageType or type(key) is not str or type(numel) is not int or numel < 0:
            raise pickle.UnpicklingError(f"load: invalid storage {pid!r}")
        if kind.dtype is None:
            raise TypeError(f"load: the file holds a torch.{kind.name} tensor, of a dtype tracegrad lacks (it has "
                            f"{_HAS}): convert it in PyTorch (e.g. with .float()) before "
                            f"saving")
        storage = self.loaded.get(key)
        if storage is None:
            storage = self.loaded[key] = _map_storage(self._read(key, kind.dtype, numel), str(location),
                                                      self.map_location)
        return storage

    def _read(self, key: str, dtype, numel: int) -> _Storage:
        name = f"{self.prefix}data/{key}"
        if name not in self.archive.NameToInfo:
            raise pickle.UnpicklingError(f"load: the archive has no record {name} for a storage of the pickle")
        arr = np.empty(numel, dtype.np)
        view = memoryview(arr.view(np.uint8))
        with self.archive.open(name) as src:
            got = src.readinto(view)
            if got != view.nbytes or src.read(1):
                raise pickle.UnpicklingError(f"load: the record {name} does not hold {numel} elements of {dtype}")
        if self.swap:
            arr.byteswap(inplace=True)
        return _Storage(arr)


def load(f, map_location=None, *, weights_only: bool | None = True):
    """Load an object that `save` (or ``torch.save``) wrote to `f`, a path or a binary file.

    ``weights_only`` (default True, as PyTorch 2.6+): admit only tensors, parameters, dtypes, devices, sizes and
    containers of numbers and strings; pass False for whole modules, only if you trust the file.
    ``map_location``: where each storage goes, as in PyTorch: None (where it was saved), a device or its name,
    a dict from saved locations to devices, or a callable ``(storage, location) -> storage or None``; every
    storage must end on the CPU (a storage PyTorch saved on a GPU needs ``map_location='cpu'``).

    >>> import io, tracegrad as torch
    >>> buf = io.BytesIO()
    >>> torch.save([torch.ones(2), torch.float64], buf)
    >>> _ = buf.seek(0)
    >>> torch.load(buf, map_location="cpu")
    [tensor([1., 1.]), tracegrad.float64]
    """
    if isinstance(map_location, (str, devices.device)):
        devices.check(map_location, "load")
    elif not (map_location is None or isinstance(map_location, dict) or callable(map_location)):
        raise TypeError(f"load: map_location must be None, a device, a string, a dict or a callable, got "
                        f"{type(map_location).__name__}")
    with _opened(f, "rb") as src:
        if not (hasattr(src, "seekable") and src.seekable()):
            src = io.BytesIO(src.read())
        start = src.tell()
        magic = src.read(4)
        src.seek(start)
        if magic != b"PK\x03\x04":
            raise pickle.UnpicklingError("load: not a file written by tracegrad.save or torch.save (those are zip "
                                         "archives; PyTorch's legacy format, of torch.save before PyTorch 1.6 or "
                                         "with _use_new_zipfile_serialization=False, is not supported)")
        with zipfile.ZipFile(src) as archive:
            names = archive.namelist()
            prefix = names[0].split("/", 1)[0] + "/" if names else ""
            if prefix + "constants.pkl" in archive.NameToInfo:
                raise RuntimeError("load: this is a TorchScript archive (torch.jit.save), which tracegrad can't "
                                   "load: save the model's state_dict() with torch.save instead")
            if prefix + "data.pkl" not in archive.NameToInfo:
                raise pickle.UnpicklingError(f"load: the zip archive has no {prefix}data.pkl: not a file written by "
                                             f"tracegrad.save or torch.save")
            data = io.BytesIO(archive.read(prefix + "data.pkl"))
            return _Unpickler(data, archive, prefix, map_location, weights_only is not False).load()
