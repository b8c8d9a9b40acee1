"""Recurrent layers with PyTorch's arguments, parameter names, initialization and outputs: `RNN`, `LSTM`, `GRU`
and their cells `RNNCell`, `LSTMCell`, `GRUCell`.

>>> import tracegrad as tg
>>> _ = tg.manual_seed(0)
>>> lstm = tg.nn.LSTM(8, 16, num_layers=2, batch_first=True)
>>> out, (h_n, c_n) = lstm(tg.randn(4, 5, 8))
>>> out.shape, h_n.shape, c_n.shape
(tracegrad.Size([4, 5, 16]), tracegrad.Size([2, 4, 16]), tracegrad.Size([2, 4, 16]))
>>> [name for name, _ in lstm.named_parameters()][:4]
['weight_ih_l0', 'weight_hh_l0', 'bias_ih_l0', 'bias_hh_l0']

A layer is composed of registry ops, so it traces under `tracegrad.compile` into one unrolled graph, built the
way fast implementations compute it: the input projection of all time steps is one matrix product per layer and
direction, split once into per-step pieces; each step then does one product ``h @ W_hh^T`` and the gate
arithmetic on (batch, hidden) column slices, which the numba backend fuses into one kernel per step (and one for
its backward). The steps are taken by `Unbind`, whose backward is one `stack` of the pieces' gradients (a
slice's own backward would add a full-size gradient per piece).

Sequence length under compile: the unrolled graph has one step per time step, so a new sequence length is a
new input shape and traces once more (one variant per length, each kept). Sequences of different lengths in
one batch are best given as a PackedSequence made by `nn.utils.rnn.pack_padded_sequence` from a padded tensor
and a lengths *tensor*: the layer runs a masked unroll over the padded steps (``h = where(t < length, h_new,
h)``, outputs zero past each length), so the lengths are data of the graph, and a batch with other lengths but
the same padded size replays the same graph when the output is read back with
``pad_packed_sequence(out, total_length=T)`` (see `nn.utils.rnn` for what specializes on the lengths' values).
The values and gradients are PyTorch's packed ones.
"""
from __future__ import annotations

import math
import numbers
import warnings

from .. import devices
from .._tensor import Tensor
from ..autograd.function import Function
from ..creation import arange, empty, zeros
from ..ops import functions as T
from . import functional as F
from . import init
from .module import Module
from .parameter import Parameter
from .utils.rnn import PackedSequence

__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]


class Unbind(Function):
    """The slices of a tensor along dim 0, whose backward is one `stack` of their gradients.

    >>> import tracegrad as tg
    >>> x = tg.ones(3, 2, requires_grad=True)
    >>> a, b, c = Unbind.apply(x)
    >>> (a * 2 + c).sum().backward()
    >>> x.grad
    tensor([[2., 2.],
            [0., 0.],
            [1., 1.]])
    """

    # NOTE: slicing a tensor T times costs T full-size zero-filled gradients in backward (each slice's VJP scatters
    # into its own copy of the whole shape, then they are summed): O(T^2) for a sequence. This is PyTorch's
    # UnbindBackward0: one stack of the T gradients.
    @staticmethod
    def forward(ctx, x):
        return tuple(x[i] for i in range(x.shape[0]))

    @staticmethod
    def backward(ctx, *grads):
        return T.stack(list(grads))


def _unbind(x: Tensor) -> tuple:
    out = Unbind.apply(x)
    return out if isinstance(out, tuple) else (out,)


def _gates(x: Tensor, n: int) -> tuple:
    """(B, n*H) -> n pieces (B, H): column slices.

    # NOTE: plain slices, whose gradients the compiler's `merge_slice_gradients` lays side by side as one (B, n*H)
    # concatenation, the operand of the next step's product; the kernels read the slices in place."""
    return x.chunk(n, 1) if n > 1 else (x,)


# ---------------------------------------------------------------------------------------- one time step
# Each takes the input projection's pieces `xs` (biases included), the recurrent product's pieces `hs`, and the
# state; all (B, H). Every op here is elementwise on (B, H): the numba backend fuses a step into one kernel.
def _rnn_step(xs, hs, relu: bool):
    pre = xs[0] + hs[0]
    return T.relu(pre) if relu else T.tanh(pre)


def _lstm_step(xs, hs, c):
    i = T.sigmoid(xs[0] + hs[0])
    f = T.sigmoid(xs[1] + hs[1])
    g = T.tanh(xs[2] + hs[2])
    o = T.sigmoid(xs[3] + hs[3])
    c = f * c + i * g
    return o * T.tanh(c), c


def _gru_step(xs, hs, h, b_hn):
    """PyTorch's GRU: n = tanh(x_n + r * (W_hn h + b_hn)), h' = (h - n) * z + n."""
    r = T.sigmoid(xs[0] + hs[0])
    z = T.sigmoid(xs[1] + hs[1])
    hn = hs[2] if b_hn is None else hs[2] + b_hn
    n = T.tanh(xs[2] + r * hn)
    return (h - n) * z + n


# ---------------------------------------------------------------------------------------- a whole layer
def _input_pieces(x: Tensor, w_ih: Tensor, bias: Tensor | None, gates: int, batch_first: bool) -> tuple:
    """The input projection of every step at once (one matrix product, the biases added), as one piece (B, gates*H)
    per step; the steps cut the gates out of their piece as columns."""
    a, b = x.shape[0], x.shape[1]
    proj = x.reshape(a * b, x.shape[2]) @ w_ih.t()
    if bias is not None:
        proj = proj + bias
    proj = proj.reshape(a, b, -1)
    return _unbind(proj.transpose(0, 1) if batch_first else proj)


def _direction(mode: str, pieces: tuple, gates: int, h: Tensor, c, w_hh: Tensor, b_hn, w_hr, masks, reverse: bool):
    """Run one direction of one layer over all steps: (outputs per step, final h, final c)."""
    steps = len(pieces)
    w_hh_t = w_hh.t()
    w_hr_t = w_hr.t() if w_hr is not None else None
    outs = [None] * steps
    for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
        xs = _gates(pieces[t], gates)
        hs = _gates(h @ w_hh_t, gates)
        c_new = None
        if mode == "LSTM":
            h_new, c_new = _lstm_step(xs, hs, c)
            if w_hr_t is not None:
                h_new = h_new @ w_hr_t
        elif mode == "GRU":
            h_new = _gru_step(xs, hs, h, b_hn)
        else:
            h_new = _rnn_step(xs, hs, mode == "RNN_RELU")
        if masks is None:
            outs[t], h, c = h_new, h_new, c_new
        else:  # a finished sequence keeps its state, and its outputs are zeros
            m = masks[t]
            outs[t] = T.where(m, h_new, 0.0)
            h = T.where(m, h_new, h)
            if c_new is not None:
                c = T.where(m, c_new, c)
    return outs, h, c


def _run_layers(module, x: Tensor, batch_first: bool, h0: Tensor, c0, lengths):
    """All layers and directions over x ((T, B, I), or (B, T, I) with `batch_first`): (output, h_n, c_n).

    `lengths` (B,) int64 masks the steps past each sequence's length (None: every step counts)."""
    mode, gates = module.mode, module._gates
    num_dirs = 2 if module.bidirectional else 1
    steps = x.shape[1] if batch_first else x.shape[0]
    if steps == 0:
        raise RuntimeError("Expected sequence length to be larger than 0 in RNN")
    masks = None
    if lengths is not None:
        mask = arange(steps).reshape(steps, 1) < lengths.reshape(1, -1)
        masks = [mask[t].reshape(-1, 1) for t in range(steps)]
    h0s = _unbind(h0)
    c0s = _unbind(c0) if c0 is not None else None
    layer_in, in_batch_first, hn, cn = x, batch_first, [], []
    for layer in range(module.num_layers):
        outs = []
        for d in range(num_dirs):
            k = layer * num_dirs + d
            ws = dict(zip(("w_ih", "w_hh", "b_ih", "b_hh", "w_hr") if module.bias else ("w_ih", "w_hh", "w_hr"),
                          module.all_weights[k]))
            b_hn = bias = None
            if module.bias:
                if mode == "GRU":  # b_hr, b_hz join the input projection; b_hn is inside r * (W_hn h + b_hn)
                    hidden = module.hidden_size
                    bias = ws["b_ih"] + T.cat([ws["b_hh"][:2 * hidden], zeros(hidden, dtype=ws["b_hh"].dtype)])
                    b_hn = ws["b_hh"][2 * hidden:]
                else:
                    bias = ws["b_ih"] + ws["b_hh"]
            pieces = _input_pieces(layer_in, ws["w_ih"], bias, gates, in_batch_first)
            o, h, c = _direction(mode, pieces, gates, h0s[k], c0s[k] if c0s is not None else None, ws["w_hh"],
                                 b_hn, ws.get("w_hr"), masks, reverse=d == 1)
            outs.append(o)
            hn.append(h)
            cn.append(c)
        last = layer == module.num_layers - 1
        out_batch_first = batch_first and last  # NOTE: between layers time-major, as PyTorch's dropout draws
        # NOTE: one stack of the steps' outputs (one cat; its backward is T views of the gradient). Writing each
        # step into a preallocated tensor instead is functionalized into T copies of the whole buffer: for T=32,
        # B=32, H=128 that took 65 ms eagerly (stack: 5 ms) and 24 ms compiled (stack: 1 ms), with backward.
        y = T.stack(outs[0], 1 if out_batch_first else 0)
        if num_dirs == 2:
            y = T.cat([y, T.stack(outs[1], 1 if out_batch_first else 0)], -1)
        if not last and module.dropout > 0 and module.training:
            # NOTE: PyTorch's draws for padded input; for packed input PyTorch draws over the packed data, this over
            # the padded steps (the same distribution, other numbers than PyTorch's for a seed)
            y = F.dropout(y, module.dropout, True)
        layer_in, in_batch_first = y, out_batch_first
    return layer_in, T.stack(hn), (T.stack(cn) if c0 is not None else None)


class RNNBase(Module):
    """The base of `RNN`, `LSTM` and `GRU` (PyTorch's, with `mode` one of 'RNN_TANH', 'RNN_RELU', 'LSTM',
    'GRU'): the parameters ``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}`` (and
    ``weight_hr_l{k}`` with `proj_size`), with ``_reverse`` for the backward direction, each uniform in
    +-1/sqrt(hidden_size), drawn in that order (a seed gives PyTorch's weights)."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None) -> None:
        super().__init__()
        devices.check(device, f"nn.{type(self).__name__}")
        self.mode, self.input_size, self.hidden_size, self.num_layers = mode, input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.bidirectional, self.proj_size = bias, batch_first, bidirectional, proj_size
        if not isinstance(dropout, numbers.Number) or not 0 <= dropout <= 1 or isinstance(dropout, bool):
            raise ValueError("dropout should be a number in range [0, 1] representing the probability of an element "
                             "being zeroed")
        self.dropout = float(dropout)
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                          f"expects num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}",
                          stacklevel=2)
        for name, value in (("bias", bias), ("batch_first", batch_first)):
            if not isinstance(value, bool):
                raise TypeError(f"{name} should be of type bool, got: {type(value).__name__}")
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(value, int):
                raise TypeError(f"{name} should be of type int, got: {type(value).__name__}")
            if value <= 0:
                raise ValueError(f"{name} must be greater than zero")
        if num_layers <= 0:
            raise ValueError("num_layers must be greater than zero")
        if proj_size < 0:
            raise ValueError("proj_size should be a positive integer or zero to disable projections")
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        gates = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}.get(mode)
        if gates is None:
            raise ValueError("Unrecognized RNN mode: " + mode)
        self._gates = gates
        num_dirs = 2 if bidirectional else 1
        real_hidden = proj_size if proj_size > 0 else hidden_size
        self._flat_weights_names, self._all_weights = [], []
        for layer in range(num_layers):
            for direction in range(num_dirs):
                layer_input = input_size if layer == 0 else real_hidden * num_dirs
                params = [empty(gates * hidden_size, layer_input, dtype=dtype),
                          empty(gates * hidden_size, real_hidden, dtype=dtype)]
                names = ["weight_ih_l{}{}", "weight_hh_l{}{}"]
                if bias:
                    params += [empty(gates * hidden_size, dtype=dtype), empty(gates * hidden_size, dtype=dtype)]
                    names += ["bias_ih_l{}{}", "bias_hh_l{}{}"]
                if proj_size > 0:
                    params.append(empty(proj_size, hidden_size, dtype=dtype))
                    names.append("weight_hr_l{}{}")
                names = [n.format(layer, "_reverse" if direction == 1 else "") for n in names]
                for name, p in zip(names, params):
                    setattr(self, name, Parameter(p))
                self._flat_weights_names.extend(names)
                self._all_weights.append(names)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            init.uniform_(weight, -stdv, stdv)

    @property
    def _flat_weights(self) -> list:
        return [getattr(self, name) for name in self._flat_weights_names]

    @property
    def all_weights(self) -> list:
        """The parameters per layer and direction: ``[[weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0], ...]``."""
        return [[getattr(self, name) for name in names] for names in self._all_weights]

    def flatten_parameters(self) -> None:
        """A no-op (kept for PyTorch code that calls it).

        NOTE: PyTorch copies the weights into one contiguous cuDNN buffer here; on numpy there is nothing to do."""

    # ------------------------------------------------------------------ PyTorch's checks
    def check_input(self, input: Tensor, batch_sizes) -> None:  # noqa: A002 - PyTorch's name
        weight_dtype = self._flat_weights[0].dtype
        if input.dtype is not weight_dtype:
            raise ValueError(f"RNN input dtype ({input.dtype}) does not match weight dtype ({weight_dtype}). "
                             f"Convert input: input.to({weight_dtype}), or convert model: model.to({input.dtype})")
        expected = 2 if batch_sizes is not None else 3
        if batch_sizes is None and input.dim() != expected:
            raise RuntimeError(f"input must have {expected} dimensions, got {input.dim()}")
        if self.input_size != input.shape[-1]:
            raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected {self.input_size}, got "
                               f"{input.shape[-1]}")

    def _expected_hidden_size(self, batch: int, cell: bool = False) -> tuple:
        size = self.proj_size if self.proj_size > 0 and not cell else self.hidden_size
        return (self.num_layers * (2 if self.bidirectional else 1), batch, size)

    @staticmethod
    def check_hidden_size(hx: Tensor, expected_hidden_size: tuple, msg: str = "Expected hidden size {}, got {}"):
        if tuple(hx.shape) != tuple(expected_hidden_size):
            raise RuntimeError(msg.format(tuple(expected_hidden_size), list(hx.shape)))

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size != 0:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s

    # ------------------------------------------------------------------ forward
    def forward(self, input, hx=None):  # noqa: A002 - PyTorch's name
        lstm = self.mode == "LSTM"
        name = {"RNN_TANH": "RNN", "RNN_RELU": "RNN"}.get(self.mode, self.mode)
        packed = isinstance(input, PackedSequence)
        if packed:
            x, lengths = input._padded_form()
            sorted_indices, unsorted_indices = input.sorted_indices, input.unsorted_indices
            batch_first, is_batched = False, True
            self.check_input(x, lengths)
            if hx is not None and sorted_indices is not None:
                hx = _permute_hidden(hx, sorted_indices)
        else:
            x, lengths, sorted_indices, unsorted_indices = input, None, None, None
            batch_first = self.batch_first
            if x.dim() not in (2, 3):
                raise ValueError(f"{name}: Expected input to be 2D or 3D, got {x.dim()}D "
                                 f"{'tensor ' if name == 'RNN' else ''}instead")
            is_batched = x.dim() == 3
            if hx is not None:
                dims = 3 if is_batched else 2
                parts = hx if lstm else (hx,)
                if any(h.dim() != dims for h in parts):
                    what = "batched 3-D" if is_batched else "unbatched 2-D"
                    got = f"({parts[0].dim()}-D, {parts[1].dim()}-D) tensors" if lstm else f"{hx.dim()}-D tensor"
                    raise RuntimeError(f"For {what} input, hx {'and cx ' if lstm else ''}should also be {dims}-D "
                                       f"but got {got}")
                if not is_batched:
                    hx = tuple(h.unsqueeze(1) for h in hx) if lstm else hx.unsqueeze(1)
            if not is_batched:
                x = x.unsqueeze(0 if batch_first else 1)
            self.check_input(x, None)
        batch = x.shape[0] if batch_first else x.shape[1]
        if hx is None:
            h0 = zeros(*self._expected_hidden_size(batch), dtype=x.dtype)
            c0 = zeros(*self._expected_hidden_size(batch, cell=True), dtype=x.dtype) if lstm else None
        elif lstm:
            h0, c0 = hx
            self.check_hidden_size(h0, self._expected_hidden_size(batch), "Expected hidden[0] size {}, got {}")
            self.check_hidden_size(c0, self._expected_hidden_size(batch, cell=True),
                                   "Expected hidden[1] size {}, got {}")
        else:
            h0, c0 = hx, None
            self.check_hidden_size(h0, self._expected_hidden_size(batch))
        output, h_n, c_n = _run_layers(self, x, batch_first, h0, c0, lengths)
        hidden = (h_n, c_n) if lstm else h_n
        if packed:
            output = PackedSequence._from_padded(output, lengths, sorted_indices, unsorted_indices)
            return output, _permute_hidden(hidden, unsorted_indices)
        if not is_batched:
            output = output.squeeze(0 if batch_first else 1)
            hidden = (h_n.squeeze(1), c_n.squeeze(1)) if lstm else h_n.squeeze(1)
        return output, hidden


def _permute_hidden(hx, permutation):
    if permutation is None:
        return hx
    if isinstance(hx, tuple):
        return tuple(h.index_select(1, permutation) for h in hx)
    return hx.index_select(1, permutation)


class RNN(RNNBase):
    """An Elman RNN, h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) (or relu), over (T, B, input_size)
    input (or (B, T, ...) with `batch_first`, or unbatched (T, input_size)), returning (output, h_n).

    >>> import tracegrad as tg
    >>> rnn = tg.nn.RNN(3, 5, nonlinearity="relu", bidirectional=True)
    >>> out, h_n = rnn(tg.ones(7, 3))
    >>> out.shape, h_n.shape
    (tracegrad.Size([7, 10]), tracegrad.Size([2, 5]))
    """

    def __init__(self, *args, **kwargs):
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if len(args) > 3:
            self.nonlinearity = args[3]
            args = args[:3] + args[4:]
        else:
            self.nonlinearity = kwargs.pop("nonlinearity", "tanh")
        if self.nonlinearity == "tanh":
            mode = "RNN_TANH"
        elif self.nonlinearity == "relu":
            mode = "RNN_RELU"
        else:
            raise ValueError(f"Unknown nonlinearity '{self.nonlinearity}'. Select from 'tanh' or 'relu'.")
        super().__init__(mode, *args, **kwargs)


class LSTM(RNNBase):
    """A long short-term memory network, PyTorch's equations (gates i, f, g, o in that order in the weights), with
    an optional projection of h (`proj_size`); returns (output, (h_n, c_n)).

    >>> import tracegrad as tg
    >>> lstm = tg.nn.LSTM(3, 5, proj_size=2)
    >>> out, (h, c) = lstm(tg.ones(4, 6, 3))
    >>> out.shape, h.shape, c.shape
    (tracegrad.Size([4, 6, 2]), tracegrad.Size([1, 6, 2]), tracegrad.Size([1, 6, 5]))
    """

    def __init__(self, *args, **kwargs):
        super().__init__("LSTM", *args, **kwargs)


class GRU(RNNBase):
    """A gated recurrent unit network, PyTorch's equations (gates r, z, n; n = tanh(W_in x + b_in + r * (W_hn h +
    b_hn))); returns (output, h_n).

    >>> import tracegrad as tg
    >>> gru = tg.nn.GRU(3, 5, num_layers=2, batch_first=True)
    >>> out, h_n = gru(tg.ones(2, 4, 3))
    >>> out.shape, h_n.shape
    (tracegrad.Size([2, 4, 5]), tracegrad.Size([2, 2, 5]))
    """

    def __init__(self, *args, **kwargs):
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        super().__init__("GRU", *args, **kwargs)


# ---------------------------------------------------------------------------------------- cells
class RNNCellBase(Module):
    """The base of the cells: ``weight_ih`` (chunks * hidden, input), ``weight_hh`` (chunks * hidden, hidden),
    ``bias_ih``, ``bias_hh``, uniform in +-1/sqrt(hidden_size) in that order."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool, num_chunks: int, device=None,
                 dtype=None) -> None:
        super().__init__()
        devices.check(device, f"nn.{type(self).__name__}")
        self.input_size, self.hidden_size, self.bias, self._chunks = input_size, hidden_size, bias, num_chunks
        self.weight_ih = Parameter(empty(num_chunks * hidden_size, input_size, dtype=dtype))
        self.weight_hh = Parameter(empty(num_chunks * hidden_size, hidden_size, dtype=dtype))
        if bias:
            self.bias_ih = Parameter(empty(num_chunks * hidden_size, dtype=dtype))
            self.bias_hh = Parameter(empty(num_chunks * hidden_size, dtype=dtype))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            init.uniform_(weight, -stdv, stdv)

    def _prepare(self, input: Tensor, hx, states: int):  # noqa: A002 - PyTorch's name
        """PyTorch's checks and batching: (input (B, I), [h (B, H), ...], is_batched)."""
        name = type(self).__name__
        if input.dim() not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.dim()}D instead")
        if hx is not None:
            parts = tuple(hx) if states == 2 else (hx,)
            for i, h in enumerate(parts):
                if h.dim() not in (1, 2):
                    what = f"hx[{i}]" if states == 2 else "hidden"
                    raise ValueError(f"{name}: Expected {what} to be 1D or 2D, got {h.dim()}D instead")
        is_batched = input.dim() == 2
        if not is_batched:
            input = input.unsqueeze(0)  # noqa: A001
        if hx is None:
            parts = (zeros(input.shape[0], self.hidden_size, dtype=input.dtype),) * states
        elif not is_batched:
            parts = tuple(h.unsqueeze(0) for h in parts)
        if input.shape[1] != self.input_size:
            raise RuntimeError(f"input has inconsistent input_size: got {input.shape[1]} expected {self.input_size}")
        for i, h in enumerate(parts):
            if input.shape[0] != h.shape[0]:
                raise RuntimeError(f"Input batch size {input.shape[0]} doesn't match hidden{i} batch size "
                                   f"{h.shape[0]}")
            if h.shape[1] != self.hidden_size:
                raise RuntimeError(f"hidden{i} has inconsistent hidden_size: got {h.shape[1]}, expected "
                                   f"{self.hidden_size}")
        return input, parts, is_batched

    def _projections(self, x: Tensor, h: Tensor) -> tuple:
        xs = _gates(F.linear(x, self.weight_ih, self.bias_ih), self._chunks)
        hs = _gates(F.linear(h, self.weight_hh, self.bias_hh), self._chunks)
        return xs, hs


class RNNCell(RNNCellBase):
    """One step of an Elman RNN: h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh) (or relu).

    >>> import tracegrad as tg
    >>> tg.nn.RNNCell(3, 4)(tg.ones(2, 3)).shape
    tracegrad.Size([2, 4])
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 device=None, dtype=None) -> None:
        super().__init__(input_size, hidden_size, bias, num_chunks=1, device=device, dtype=dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:  # noqa: A002 - PyTorch's name
        x, (h,), is_batched = self._prepare(input, hx, 1)
        if self.nonlinearity not in ("tanh", "relu"):
            raise RuntimeError(f"Unknown nonlinearity: {self.nonlinearity}")
        out = _rnn_step(*self._projections(x, h), self.nonlinearity == "relu")
        return out if is_batched else out.squeeze(0)


class LSTMCell(RNNCellBase):
    """One LSTM step: (h, c) -> (h', c'), gates i, f, g, o as in PyTorch.

    >>> import tracegrad as tg
    >>> h, c = tg.nn.LSTMCell(3, 4)(tg.ones(3))
    >>> h.shape, c.shape
    (tracegrad.Size([4]), tracegrad.Size([4]))
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__(input_size, hidden_size, bias, num_chunks=4, device=device, dtype=dtype)

    def forward(self, input: Tensor, hx=None) -> tuple:  # noqa: A002 - PyTorch's name
        x, (h, c), is_batched = self._prepare(input, hx, 2)
        h, c = _lstm_step(*self._projections(x, h), c)
        return (h, c) if is_batched else (h.squeeze(0), c.squeeze(0))


class GRUCell(RNNCellBase):
    """One GRU step, PyTorch's equations (n = tanh(W_in x + b_in + r * (W_hn h + b_hn))).

    >>> import tracegrad as tg
    >>> tg.nn.GRUCell(3, 4)(tg.ones(2, 3), tg.zeros(2, 4)).shape
    tracegrad.Size([2, 4])
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__(input_size, hidden_size, bias, num_chunks=3, device=device, dtype=dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:  # noqa: A002 - PyTorch's name
        x, (h,), is_batched = self._prepare(input, hx, 1)
        out = _gru_step(*self._projections(x, h), h, None)
        return out if is_batched else out.squeeze(0)

