"""Padded and packed sequences for the recurrent layers, as `torch.nn.utils.rnn`.

A batch of sequences of different lengths is either *padded* (one tensor, shorter sequences filled up to the
longest) or *packed* (`PackedSequence`: the time steps of all sequences interleaved, longest first, with
`batch_sizes[t]` sequences still running at step t). `nn.RNN`, `nn.LSTM` and `nn.GRU` take either.

>>> import tracegrad as tg
>>> from tracegrad.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence, pad_sequence
>>> x = pad_sequence([tg.tensor([1.0, 2.0, 3.0]), tg.tensor([4.0])], batch_first=True)
>>> x
tensor([[1., 2., 3.],
        [4., 0., 0.]])
>>> packed = pack_padded_sequence(x, tg.tensor([3, 1]), batch_first=True)
>>> packed.data, packed.batch_sizes
(tensor([1., 4., 2., 3.]), tensor([2, 1, 1]))
>>> pad_packed_sequence(packed, batch_first=True, padding_value=-1.0)
(tensor([[ 1.,  2.,  3.],
        [ 4., -1., -1.]]), tensor([3, 1]))

How lengths are handled under ``tracegrad.compile``: a `PackedSequence` made by `pack_padded_sequence` keeps the
padded tensor (time-major, sorted by length) and the lengths as a tensor, and builds its PyTorch layout (`data`,
`batch_sizes`) only when it is read. The recurrent layers read the padded form (a masked unroll: the lengths
are tensor data of the graph) and return a PackedSequence of the same kind, and `pad_packed_sequence(...,
total_length=T)` reads it back without looking at the lengths' values: batches with other lengths but the same
padded size replay the same graph. What needs the lengths as Python numbers specializes the graph on their
values behind a guard (a call with other lengths traces again): reading `data` or `batch_sizes` (their shapes
depend on the lengths), `pad_packed_sequence` without `total_length` (the output is as long as the longest
sequence), `unpad_sequence`/`unpack_sequence`, and a PackedSequence built from `data` and `batch_sizes`.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

from ... import dtypes
from ..._tensor import Tensor
from ...creation import arange, as_tensor, empty_like, full, tensor, zeros
from ...ops import functions as T

__all__ = ["PackedSequence", "invert_permutation", "pack_padded_sequence", "pad_packed_sequence", "pad_sequence",
           "unpad_sequence", "pack_sequence", "unpack_sequence"]


class PackedSequence_(NamedTuple):  # noqa: N801 - PyTorch's name
    data: Tensor
    batch_sizes: Tensor
    sorted_indices: Tensor | None
    unsorted_indices: Tensor | None


class PackedSequence(PackedSequence_):
    """Sequences of different lengths packed time step by time step, as PyTorch's (a named tuple of `data`,
    `batch_sizes`, `sorted_indices`, `unsorted_indices`); made by `pack_padded_sequence` or `pack_sequence`.

    `data` holds step 0 of every sequence, then step 1 of those longer than 1, ... (longest first);
    `batch_sizes[t]` says how many sequences have a step t; `sorted_indices[i]` is the batch position of the
    i-th longest sequence and `unsorted_indices` the inverse permutation (None when the input was sorted).

    >>> import tracegrad as tg
    >>> p = tg.nn.utils.rnn.pack_sequence([tg.tensor([1, 2]), tg.tensor([3, 4, 5])], enforce_sorted=False)
    >>> p
    PackedSequence(data=tensor([3, 1, 4, 2, 5]), batch_sizes=tensor([2, 2, 1]), sorted_indices=tensor([1, 0]), \
unsorted_indices=tensor([1, 0]))
    """

    # NOTE: made by pack_padded_sequence, a PackedSequence holds the padded tensor and the lengths (a tensor) and
    # builds `data` and `batch_sizes` when they are read (their shapes depend on the lengths' values, so under
    # compile reading them specializes the graph); the tuple's own slots hold None for them until then. (The
    # attributes are not named `_data`: the compiler's pytrees take an object with `_data` for a tensor.)
    def __new__(cls, data: Tensor, batch_sizes: Tensor | None = None, sorted_indices: Tensor | None = None,
                unsorted_indices: Tensor | None = None):
        if unsorted_indices is None:
            unsorted_indices = invert_permutation(sorted_indices)
        if batch_sizes is None:  # PackedSequence((data, batch_sizes), sorted_indices=...), as PyTorch allows
            if not (isinstance(data, (list, tuple)) and len(data) == 2):
                raise AssertionError("Expected data to be a list or tuple of length 2")
            data, batch_sizes = data
        return super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)

    @classmethod
    def _from_padded(cls, padded: Tensor, lengths: Tensor, sorted_indices, unsorted_indices) -> PackedSequence:
        """A PackedSequence of `padded` (T, B, *), time-major, sorted by `lengths` (B,) descending."""
        self = tuple.__new__(cls, (None, None, sorted_indices, unsorted_indices))
        self._padded = (padded, lengths)
        return self

    # ------------------------------------------------------------------ the fields (built when read)
    @property
    def data(self) -> Tensor:
        if tuple.__getitem__(self, 0) is None and "_packed_data" not in self.__dict__:
            self._build_packed()
        return self.__dict__.get("_packed_data", tuple.__getitem__(self, 0))

    @property
    def batch_sizes(self) -> Tensor:
        if tuple.__getitem__(self, 1) is None and "_packed_batch_sizes" not in self.__dict__:
            self._build_packed()
        return self.__dict__.get("_packed_batch_sizes", tuple.__getitem__(self, 1))

    def _fields_now(self) -> tuple:
        return (self.data, self.batch_sizes, self.sorted_indices, self.unsorted_indices)

    def __iter__(self):
        return iter(self._fields_now())

    def __getitem__(self, i):
        return self._fields_now()[i]

    def __repr__(self):
        return ("PackedSequence(" + ", ".join(f"{k}={v!r}" for k, v in zip(self._fields, self._fields_now()))
                + ")")

    def _lengths_array(self) -> np.ndarray:
        """The lengths as numbers (sorted order). NOTE: under compile, a guard on their values."""
        if "_padded" in self.__dict__ and "_packed_data" not in self.__dict__:
            return np.asarray(self._padded[1].detach().numpy(), dtype=np.int64)
        sizes = np.asarray(self.batch_sizes.detach().numpy(), dtype=np.int64)
        return (sizes[:, None] > np.arange(int(sizes[0]))[None, :]).sum(0)

    def _build_packed(self) -> None:
        padded, _ = self._padded
        lens = self._lengths_array()
        steps, batch = int(lens.max()), padded.shape[1]
        sizes = (lens[None, :] > np.arange(steps)[:, None]).sum(1)
        index = np.concatenate([t * batch + np.arange(n) for t, n in enumerate(sizes)])
        flat = padded.reshape(padded.shape[0] * batch, *padded.shape[2:])
        self.__dict__["_packed_data"] = flat.index_select(0, tensor(index))
        self.__dict__["_packed_batch_sizes"] = tensor(sizes.astype(np.int64))

    def _padded_form(self) -> tuple[Tensor, Tensor]:
        """(padded (T, B, *) time-major in sorted order, zeros past each length; lengths (B,) int64). T is at
        least the longest length (more when packed from a longer padded tensor)."""
        # NOTE: once `data` exists (read, or given), the padded form is computed from it, and never kept: a
        # PackedSequence passed to a compiled function arrives as its fields (`data` is the graph's argument), and a
        # tensor kept on the object by one trace would be read by identity by the next (stale for other inputs)
        if "_padded" in self.__dict__ and "_packed_data" not in self.__dict__:
            return self._padded
        data, sizes = self.data, np.asarray(self.batch_sizes.detach().numpy(), dtype=np.int64)
        steps, batch = len(sizes), int(sizes[0])
        lens = (sizes[:, None] > np.arange(batch)[None, :]).sum(0)
        # each padded position's row of `data`, or the appended zero row
        index = np.full((steps, batch), data.shape[0], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        for t, (start, n) in enumerate(zip(starts, sizes)):
            index[t, :n] = start + np.arange(n)
        rows = T.cat([data, zeros(1, *data.shape[1:], dtype=data.dtype)])
        padded = rows.index_select(0, tensor(index.reshape(-1))).reshape(steps, batch, *data.shape[1:])
        return padded, tensor(lens)

    # ------------------------------------------------------------------ conversions
    def to(self, *args, **kwargs) -> PackedSequence:
        """The sequence with its data converted (`batch_sizes` and the indices stay int64)."""
        if "_padded" in self.__dict__ and "_packed_data" not in self.__dict__:
            padded, lengths = self._padded
            moved = padded.to(*args, **kwargs)
            if moved is padded:
                return self
            return type(self)._from_padded(moved, lengths, self.sorted_indices, self.unsorted_indices)
        data = self.data.to(*args, **kwargs)
        if data is self.data:
            return self
        return type(self)(data, self.batch_sizes, self.sorted_indices, self.unsorted_indices)

    def cpu(self) -> PackedSequence:
        return self

    def double(self) -> PackedSequence:
        return self.to(dtype=dtypes.float64)

    def float(self) -> PackedSequence:
        return self.to(dtype=dtypes.float32)

    def half(self) -> PackedSequence:
        return self.to(dtype=dtypes.float16)

    def long(self) -> PackedSequence:
        return self.to(dtype=dtypes.int64)

    def int(self) -> PackedSequence:
        return self.to(dtype=dtypes.int32)

    @property
    def is_cuda(self) -> bool:
        return False

    def is_pinned(self) -> bool:
        return False


def invert_permutation(permutation: Tensor | None) -> Tensor | None:
    """The inverse of a permutation (None stays None).

    >>> import tracegrad as tg
    >>> tg.nn.utils.rnn.invert_permutation(tg.tensor([2, 0, 1]))
    tensor([1, 2, 0])
    """
    if permutation is None:
        return None
    out = empty_like(permutation)
    return out.scatter_(0, permutation, arange(permutation.numel()))


def _lengths_tensor(lengths) -> Tensor:
    if isinstance(lengths, Tensor):
        return lengths.to(dtypes.int64)
    return as_tensor(lengths, dtype=dtypes.int64)


def pack_padded_sequence(input: Tensor, lengths, batch_first: bool = False,  # noqa: A002 - PyTorch's name
                         enforce_sorted: bool = True) -> PackedSequence:
    """Pack a padded batch (T, B, *) (or (B, T, *) with `batch_first`) of sequences of the given lengths.

    With `enforce_sorted` the lengths must be in decreasing order; otherwise they are sorted here and the
    result remembers the permutation (`sorted_indices`, `unsorted_indices`).

    >>> import tracegrad as tg
    >>> x = tg.tensor([[1, 2, 0], [3, 0, 0], [4, 5, 6]])
    >>> p = tg.nn.utils.rnn.pack_padded_sequence(x, [2, 1, 3], batch_first=True, enforce_sorted=False)
    >>> p.data, p.batch_sizes, p.sorted_indices
    (tensor([4, 1, 3, 5, 2, 6]), tensor([3, 2, 1]), tensor([2, 0, 1]))
    """
    # NOTE: the checks read the lengths' values through booleans: under compile each is a guard on its outcome
    # (true for every valid batch), never on the lengths themselves
    lengths = _lengths_tensor(lengths)
    batch_dim = 0 if batch_first else 1
    if input.numel() == 0:
        raise RuntimeError("Cannot pack empty tensors.")
    if lengths.ndim != 1 or lengths.shape[0] != input.shape[batch_dim]:
        raise RuntimeError(f"Expected `len(lengths)` to be equal to batch_size, but got {lengths.shape[0]} "
                           f"(batch_size={input.shape[batch_dim]})")
    if enforce_sorted:
        sorted_indices = None
        if lengths.shape[0] > 1 and not bool((lengths[:-1] >= lengths[1:]).all()):
            raise RuntimeError("`lengths` array must be sorted in decreasing order when `enforce_sorted` is True. "
                               "You can pass `enforce_sorted=False` to pack_padded_sequence and/or pack_sequence to "
                               "sidestep this requirement if you do not need ONNX exportability.")
    else:
        lengths, sorted_indices = T.sort(lengths, descending=True)
        input = input.index_select(batch_dim, sorted_indices)  # noqa: A001
    if not bool((lengths > 0).all()):
        raise RuntimeError("Length of all samples has to be greater than 0, but found an element in 'lengths' that "
                           "is <= 0")
    steps = input.shape[1 - batch_dim]
    if not bool((lengths <= steps).all()):  # PyTorch reads past the tensor here
        raise RuntimeError(f"pack_padded_sequence: a length ({int(lengths.max())}) is larger than the padded "
                           f"sequence length ({steps})")
    padded = input.transpose(0, 1) if batch_first else input
    return PackedSequence._from_padded(padded, lengths, sorted_indices, invert_permutation(sorted_indices))


def _step_mask(steps: int, lengths: Tensor, extra_dims: int) -> Tensor:
    """(steps, B, 1, ...) bool: step t of sequence b exists."""
    mask = arange(steps).reshape(steps, 1) < lengths.reshape(1, -1)
    return mask.reshape(*mask.shape, *([1] * extra_dims))


def pad_packed_sequence(sequence: PackedSequence, batch_first: bool = False, padding_value: float = 0.0,
                        total_length: int | None = None) -> tuple[Tensor, Tensor]:
    """The padded batch (T, B, *) (or (B, T, *)) and the lengths of a PackedSequence, in the original order.

    T is the longest length, or `total_length` (to pad to a fixed size, e.g. for `DataParallel`-style
    recombination or to keep a compiled graph's shapes fixed).

    >>> import tracegrad as tg
    >>> p = tg.nn.utils.rnn.pack_sequence([tg.tensor([1.0, 2.0]), tg.tensor([3.0])])
    >>> tg.nn.utils.rnn.pad_packed_sequence(p, total_length=3)
    (tensor([[1., 3.],
            [2., 0.],
            [0., 0.]]), tensor([2, 1]))
    """
    padded, lengths = sequence._padded_form()
    steps = padded.shape[0]
    if total_length is not None:
        # NOTE: a boolean guard on the outcome only: the graph doesn't depend on the longest length
        if total_length < steps and not bool((lengths <= total_length).all()):
            raise ValueError("Expected total_length to be at least the length of the longest sequence in input, but "
                             f"got total_length={total_length} and max sequence length being {int(lengths.max())}")
        length = total_length
    else:
        length = int(sequence._lengths_array().max())  # NOTE: the output's shape: specializes under compile
    if length < steps:
        padded = padded[:length]
    elif length > steps:
        padded = T.cat([padded, zeros(length - steps, *padded.shape[1:], dtype=padded.dtype)])
    out = T.where(_step_mask(length, lengths, padded.ndim - 2), padded,
                  tensor(padding_value, dtype=padded.dtype))
    if batch_first:
        out = out.transpose(0, 1)
    if sequence.unsorted_indices is not None:
        out = out.index_select(0 if batch_first else 1, sequence.unsorted_indices)
        lengths = lengths[sequence.unsorted_indices]
    return out, lengths


def pad_sequence(sequences, batch_first: bool = False, padding_value: float = 0.0,
                 padding_side: str = "right") -> Tensor:
    """Stack sequences of shapes (L_i, *) into one (L, B, *) tensor (or (B, L, *)), padded with `padding_value`
    on the right (or the left) up to the longest L.

    >>> import tracegrad as tg
    >>> tg.nn.utils.rnn.pad_sequence([tg.ones(2), tg.ones(1)], batch_first=True, padding_side="left")
    tensor([[1., 1.],
            [0., 1.]])
    """
    if not isinstance(sequences, Iterable):
        raise RuntimeError(f"pad_sequence: Expected iterable for input sequences, but got arg of type: "
                           f"{type(sequences)}")
    sequences = tuple(sequences)
    if not sequences:
        raise RuntimeError("received an empty list of sequences")
    if padding_side not in ("left", "right"):
        raise RuntimeError(f"Expected padding_side to be one of left or right, but got {padding_side}.")
    first = sequences[0]
    trailing = tuple(first.shape[1:])
    for seq in sequences[1:]:
        for d, (a, b) in enumerate(zip(trailing, seq.shape[1:]), 1):
            if a != b:
                raise RuntimeError(f"The size of tensor a ({a}) must match the size of tensor b ({b}) at "
                                   f"non-singleton dimension {d}")
        if seq.ndim != first.ndim:
            raise RuntimeError(f"pad_sequence: expected every sequence to have {first.ndim} dimensions, got "
                               f"{seq.ndim}")
    lens = [s.shape[0] for s in sequences]
    longest, batch = max(lens), len(sequences)
    # NOTE: one cat of every sequence and a padding row, then one gather into place: two nodes (and one
    # index_add backward) whatever the number of sequences
    rows = T.cat([*(s.to(first.dtype) for s in sequences), full((1, *trailing), padding_value, dtype=first.dtype)])
    index = np.full((batch, longest), rows.shape[0] - 1, dtype=np.int64)
    start = 0
    for b, n in enumerate(lens):
        offset = 0 if padding_side == "right" else longest - n
        index[b, offset:offset + n] = start + np.arange(n)
        start += n
    if not batch_first:
        index = index.T
    return rows.index_select(0, tensor(index.reshape(-1))).reshape(*index.shape, *trailing)


def unpad_sequence(padded_sequences: Tensor, lengths: Tensor, batch_first: bool = False) -> list[Tensor]:
    """The sequences of a padded batch, each cut to its length (the inverse of `pad_sequence`).

    >>> import tracegrad as tg
    >>> tg.nn.utils.rnn.unpad_sequence(tg.tensor([[1, 2], [3, 0]]), tg.tensor([2, 1]))
    [tensor([1, 3]), tensor([2])]
    """
    # NOTE: PyTorch transposes `padded_sequences` in place here (the caller's tensor changes); this doesn't.
    # The outputs' shapes are the lengths: under compile, a guard on their values.
    if not batch_first:
        padded_sequences = padded_sequences.transpose(0, 1)
    return [seq[:int(n)] for seq, n in zip(padded_sequences, _lengths_tensor(lengths).tolist())]


def pack_sequence(sequences, enforce_sorted: bool = True) -> PackedSequence:
    """Pack a list of sequences of shapes (L_i, *) (longest first, unless `enforce_sorted=False`).

    >>> import tracegrad as tg
    >>> tg.nn.utils.rnn.pack_sequence([tg.tensor([1, 2, 3]), tg.tensor([4])]).data
    tensor([1, 4, 2, 3])
    """
    lengths = as_tensor([v.shape[0] for v in sequences], dtype=dtypes.int64)
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpack_sequence(packed_sequences: PackedSequence) -> list[Tensor]:
    """The list of sequences a PackedSequence holds, in their original order (the inverse of `pack_sequence`).

    >>> import tracegrad as tg
    >>> p = tg.nn.utils.rnn.pack_sequence([tg.tensor([1, 2]), tg.tensor([3, 4, 5])], enforce_sorted=False)
    >>> tg.nn.utils.rnn.unpack_sequence(p)
    [tensor([1, 2]), tensor([3, 4, 5])]
    """
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)
