"""Attention as in PyTorch: `F.scaled_dot_product_attention`, `F.multi_head_attention_forward` and
`nn.MultiheadAttention`, with PyTorch's arguments, parameter names, initialization and error messages.

Everything is composed of registry ops (matmul, where, amax, exp, sum, div, dropout), so it traces under
`tracegrad.compile`; the scale, the mask and the softmax are elementwise ops and two reductions over one
(..., L, S) score tensor, which the numba backend fuses.

>>> import tracegrad as tg
>>> _ = tg.manual_seed(0)
>>> mha = tg.nn.MultiheadAttention(8, 2, batch_first=True)
>>> out, weights = mha(tg.randn(3, 5, 8), tg.randn(3, 4, 8), tg.randn(3, 4, 8))
>>> out.shape, weights.shape
(tracegrad.Size([3, 5, 8]), tracegrad.Size([3, 5, 4]))
"""
from __future__ import annotations

import math
import warnings

from .. import devices, dtypes
from .._tensor import Tensor
from ..creation import empty, ones, zeros
from ..ops import functions as T
from ..ops.shapes import broadcast_shapes, fmt
from . import init
from .functional import dropout, linear, pad
from .layers import Linear
from .module import Module
from .parameter import Parameter

__all__ = ["scaled_dot_product_attention", "multi_head_attention_forward", "MultiheadAttention",
           "NonDynamicallyQuantizableLinear"]

_NEG_INF = float("-inf")
# dtypes as PyTorch's C++ messages name them
_CPP_NAMES = {"float32": "float", "float64": "double", "float16": "c10::Half", "int64": "long int", "int32": "int",
              "int16": "short int", "int8": "signed char", "uint8": "unsigned char", "bool": "bool"}


def _cpp(dtype) -> str:
    return _CPP_NAMES.get(dtype.name, dtype.name)


# ---------------------------------------------------------------- the attention core
def _softmax(scores: Tensor, safe: bool) -> Tensor:
    """Softmax over the last dim; with `safe`, a row whose scores are all -inf gives zeros (PyTorch's
    `_safe_softmax`, which scaled_dot_product_attention uses) where softmax gives nan."""
    if not safe:
        return T.softmax(scores, -1)
    # NOTE: a row that is all -inf is shifted by a finite number (the dtype's lowest), so its exps are 0, and divided
    # by the smallest normal number instead of its sum 0: 0, with a zero gradient (zeroing softmax's nan afterwards
    # would leave nan gradients: nan * 0). A row with a finite score has a sum >= 1, so both maximums change
    # nothing there. They are taken on the (expanded) full-size scores, so the numba backend computes them inside
    # the softmax's two loops instead of in two loops of their own.
    info = dtypes.finfo(scores.dtype)
    shape = tuple(scores.shape)
    m = T.amax(scores.detach(), -1, keepdim=True).expand(shape)
    e = T.exp(scores - T.maximum(m, info.min))
    return e / T.maximum(T.sum(e, -1, keepdim=True).expand(shape), info.tiny)


def _attend(q: Tensor, k: Tensor, v: Tensor, keep, bias, dropout_p: float, scale: float, safe: bool):
    """softmax(q @ k^T * scale + bias, -inf where `keep` is False), with dropout, @ v: (output, weights)."""
    # NOTE: the scale multiplies the scores (not q and k, as PyTorch's math kernel does): with the mask and the
    # softmax it makes one elementwise chain over the scores, which the numba backend fuses
    scores = T.matmul(q, k.transpose(-2, -1)) * scale
    if bias is not None:
        scores = scores + bias
    if keep is not None:
        scores = T.where(keep, scores, _NEG_INF)
    weights = _softmax(scores, safe)
    if dropout_p > 0.0:
        weights = dropout(weights, dropout_p)
    return T.matmul(weights, v), weights


def _check_mask_broadcasts(scores_shape: tuple, mask_shape: tuple) -> None:
    """The mask is added to the scores in place in PyTorch: it must broadcast to their shape, with its messages."""
    n = max(len(scores_shape), len(mask_shape))
    a = (1,) * (n - len(scores_shape)) + tuple(scores_shape)
    b = (1,) * (n - len(mask_shape)) + tuple(mask_shape)
    for i in reversed(range(n)):
        if a[i] != b[i] and a[i] != 1 and b[i] != 1:
            raise RuntimeError(f"The size of tensor a ({a[i]}) must match the size of tensor b ({b[i]}) at "
                               f"non-singleton dimension {i}")
    out = tuple(max(x, y) for x, y in zip(a, b))
    if out != tuple(scores_shape):
        raise RuntimeError(f"output with shape {fmt(scores_shape)} doesn't match the broadcast shape {fmt(out)}")


def _repeat_heads(x: Tensor, n: int) -> Tensor:
    """Each head (dim -3) repeated n times in place: ``x.repeat_interleave(n, -3)``, as an expand and a reshape."""
    if n == 1:
        return x
    *batch, h, s, e = x.shape
    return x.unsqueeze(-3).expand(*batch, h, n, s, e).reshape(*batch, h * n, s, e)


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None,
                                 dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
                                 enable_gqa: bool = False) -> Tensor:
    """softmax(query @ key^T * scale + mask) @ value over the last two dims, any leading (broadcast) batch dims.

    `attn_mask` is a bool mask (True takes part) or a float mask added to the scores, broadcast to (..., L, S);
    `is_causal` masks the upper-left causal triangle (combined with `attn_mask` if both are given, as PyTorch's
    CPU kernel does); `scale` defaults to 1/sqrt(E); `dropout_p` drops attention weights (always: pass 0.0 in
    eval); `enable_gqa` repeats each key/value head for a group of query heads. A query row that may attend to
    nothing gives zeros.

    >>> import tracegrad as tg
    >>> import tracegrad.nn.functional as F
    >>> q = k = tg.zeros(3, 2)                # equal scores: each position averages the values it may see
    >>> F.scaled_dot_product_attention(q, k, tg.tensor([[1.0], [2.0], [3.0]]), is_causal=True)
    tensor([[1.0000],
            [1.5000],
            [2.0000]])
    """
    if min(query.ndim, key.ndim, value.ndim) < 2:
        raise RuntimeError(f"Expected query, key, and value to all be  at least 2 dimensional, but got query.dim: "
                           f"{query.ndim} key.dim: {key.ndim} and value.dim: {value.ndim} instead.")
    if not (query.dtype is key.dtype is value.dtype):
        raise RuntimeError(f"Expected query, key, and value to have the same dtype, but got query.dtype: "
                           f"{_cpp(query.dtype)} key.dtype: {_cpp(key.dtype)} and value.dtype: {_cpp(value.dtype)} "
                           f"instead.")
    if attn_mask is not None and attn_mask.dtype is not dtypes.bool_ and attn_mask.dtype is not query.dtype:
        raise RuntimeError(f"Expected attn_mask dtype to be bool or float or to match query dtype, but got "
                           f"attn_mask.dtype: {_cpp(attn_mask.dtype)} and  query.dtype: {_cpp(query.dtype)} instead.")
    if not 0.0 <= dropout_p <= 1.0:
        raise RuntimeError(f"dropout probability has to be between 0 and 1, but got {dropout_p}")
    if enable_gqa:
        hq, hk, hv = query.shape[-3], key.shape[-3], value.shape[-3]
        if hq % hk or hq % hv:
            raise RuntimeError(f"Number of heads in key and value must divide the number of heads in query "
                               f"({hq}), but got {hk} and {hv}")
        key, value = _repeat_heads(key, hq // hk), _repeat_heads(value, hq // hv)
    tgt_len, src_len = query.shape[-2], key.shape[-2]
    batch = broadcast_shapes("scaled_dot_product_attention", query.shape[:-2], key.shape[:-2], value.shape[:-2])
    for (want, got) in ((query.shape[-1], key.shape[-1]), (src_len, value.shape[-2])):
        if want != got:  # PyTorch's math kernel multiplies as bmm, with the batch dims flattened
            raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: "
                               f"[{math.prod(batch)}, {want}] but got: [{math.prod(batch)}, {got}].")
    keep = ones(tgt_len, src_len, dtype=dtypes.bool_).tril() if is_causal else None
    bias = None
    if attn_mask is not None:
        _check_mask_broadcasts(batch + (tgt_len, src_len), tuple(attn_mask.shape))
        if attn_mask.dtype is dtypes.bool_:
            keep = attn_mask if keep is None else T.logical_and(keep, attn_mask)
        else:
            bias = attn_mask
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    return _attend(query, key, value, keep, bias, dropout_p, scale, safe=attn_mask is not None)[0]


# ---------------------------------------------------------------- multi-head attention, PyTorch's functional form
def _none_or_dtype(input):  # noqa: A002 - PyTorch's name
    if input is None:
        return None
    if isinstance(input, Tensor):
        return input.dtype
    raise RuntimeError("input to _none_or_dtype() must be None or torch.Tensor")


def _canonical_mask(mask, mask_name: str, other_type, other_name: str, target_type, check_other: bool = True):
    """A bool mask (True: masked out) as a float mask of `target_type` (-inf and 0); a float mask as it is."""
    if mask is None:
        return None
    is_float = mask.is_floating_point()
    if mask.dtype is not dtypes.bool_ and not is_float:
        raise AssertionError(f"only bool and floating types of {mask_name} are supported")
    if check_other and other_type is not None and mask.dtype is not other_type:
        warnings.warn(f"Support for mismatched {mask_name} and {other_name} is deprecated. Use same type for both "
                      f"instead.", stacklevel=2)
    if not is_float:
        np_dtype = target_type.np
        mask = T.where(mask, T._const(_NEG_INF, np_dtype), T._const(0.0, np_dtype))
    return mask


def _mha_shape_check(query, key, value, key_padding_mask, attn_mask, num_heads) -> bool:
    """Whether the input is batched (3-D query) or not (2-D), with PyTorch's checks of the other ranks."""
    if query.dim() == 3:
        if key.dim() != 3 or value.dim() != 3:
            raise AssertionError(f"For batched (3-D) `query`, expected `key` and `value` to be 3-D but found "
                                 f"{key.dim()}-D and {value.dim()}-D tensors respectively")
        if key_padding_mask is not None and key_padding_mask.dim() != 2:
            raise AssertionError(f"For batched (3-D) `query`, expected `key_padding_mask` to be `None` or 2-D but "
                                 f"found {key_padding_mask.dim()}-D tensor instead")
        if attn_mask is not None and attn_mask.dim() not in (2, 3):
            raise AssertionError(f"For batched (3-D) `query`, expected `attn_mask` to be `None`, 2-D or 3-D but "
                                 f"found {attn_mask.dim()}-D tensor instead")
        return True
    if query.dim() == 2:
        if key.dim() != 2 or value.dim() != 2:
            raise AssertionError(f"For unbatched (2-D) `query`, expected `key` and `value` to be 2-D but found "
                                 f"{key.dim()}-D and {value.dim()}-D tensors respectively")
        if key_padding_mask is not None and key_padding_mask.dim() != 1:
            raise AssertionError(f"For unbatched (2-D) `query`, expected `key_padding_mask` to be `None` or 1-D but "
                                 f"found {key_padding_mask.dim()}-D tensor instead")
        if attn_mask is not None:
            if attn_mask.dim() not in (2, 3):
                raise AssertionError(f"For unbatched (2-D) `query`, expected `attn_mask` to be `None`, 2-D or 3-D "
                                     f"but found {attn_mask.dim()}-D tensor instead")
            expected = (num_heads, query.shape[0], key.shape[0])
            if attn_mask.dim() == 3 and tuple(attn_mask.shape) != expected:
                raise AssertionError(f"Expected `attn_mask` shape to be {expected} but got {attn_mask.shape}")
        return False
    raise AssertionError(f"query should be unbatched 2D or batched 3D tensor but received {query.dim()}-D query "
                         f"tensor")


def _in_projection_packed(q, k, v, w, b=None):
    """q, k and v projected by one packed (3E, E) weight: one matmul for self-attention, two when k is v."""
    e = q.shape[-1]
    if k is v:
        if q is k:
            return linear(q, w, b).chunk(3, -1)
        w_q, w_kv = w.split([e, e * 2])
        b_q, b_kv = (None, None) if b is None else b.split([e, e * 2])
        return (linear(q, w_q, b_q), *linear(k, w_kv, b_kv).chunk(2, -1))
    w_q, w_k, w_v = w.chunk(3)
    b_q, b_k, b_v = (None,) * 3 if b is None else b.chunk(3)
    return linear(q, w_q, b_q), linear(k, w_k, b_k), linear(v, w_v, b_v)


def _in_projection(q, k, v, w_q, w_k, w_v, b_q=None, b_k=None, b_v=None):
    """q, k and v projected by separate weights (kdim or vdim differs from embed_dim)."""
    eq, ek, ev = q.shape[-1], k.shape[-1], v.shape[-1]
    for what, w, want in (("query", w_q, (eq, eq)), ("key", w_k, (eq, ek)), ("value", w_v, (eq, ev))):
        if tuple(w.shape) != want:
            raise AssertionError(f"expecting {what} weights shape of {want}, but got {w.shape}")
    for what, b in (("query", b_q), ("key", b_k), ("value", b_v)):
        if b is not None and tuple(b.shape) != (eq,):
            raise AssertionError(f"expecting {what} bias shape of {(eq,)}, but got {b.shape}")
    return linear(q, w_q, b_q), linear(k, w_k, b_k), linear(v, w_v, b_v)


def _split_heads(x, static, name: str, heads: int, head_dim: int):
    """(S, N, E) -> (N * num_heads, S, head_dim), or the given `static` keys/values after PyTorch's checks."""
    if static is None:
        return x.reshape(x.shape[0], heads, head_dim).transpose(0, 1)
    if static.size(0) != heads:
        raise AssertionError(f"expecting {name}.size(0) of {heads}, but got {static.size(0)}")
    if static.size(2) != head_dim:
        raise AssertionError(f"expecting {name}.size(2) of {head_dim}, but got {static.size(2)}")
    return static


def multi_head_attention_forward(query, key, value, embed_dim_to_check: int, num_heads: int, in_proj_weight,
                                 in_proj_bias, bias_k, bias_v, add_zero_attn: bool, dropout_p: float,
                                 out_proj_weight, out_proj_bias, training: bool = True, key_padding_mask=None,
                                 need_weights: bool = True, attn_mask=None, use_separate_proj_weight: bool = False,
                                 q_proj_weight=None, k_proj_weight=None, v_proj_weight=None, static_k=None,
                                 static_v=None, average_attn_weights: bool = True, is_causal: bool = False):
    """`nn.MultiheadAttention`'s computation on (L, N, E) or unbatched (L, E) inputs: (output, weights or None).

    Bool masks are True where attention is *not* allowed (the opposite of scaled_dot_product_attention's).

    >>> import tracegrad as tg
    >>> import tracegrad.nn.functional as F
    >>> x = tg.ones(2, 1, 4)
    >>> out, w = F.multi_head_attention_forward(x, x, x, 4, 2, tg.ones(12, 4), None, None, None, False, 0.0,
    ...                                         tg.eye(4), None)
    >>> out.shape, w
    (tracegrad.Size([2, 1, 4]), tensor([[[0.5000, 0.5000],
             [0.5000, 0.5000]]]))
    """
    is_batched = _mha_shape_check(query, key, value, key_padding_mask, attn_mask, num_heads)
    if not is_batched:
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
    tgt_len, bsz, embed_dim = query.shape
    src_len = key.shape[0]
    key_padding_mask = _canonical_mask(key_padding_mask, "key_padding_mask", _none_or_dtype(attn_mask), "attn_mask",
                                       query.dtype)
    if is_causal and attn_mask is None:
        raise RuntimeError("Need attn_mask if specifying the is_causal hint. You may use the Transformer module "
                           "method `generate_square_subsequent_mask` to create this mask.")
    if is_causal and key_padding_mask is None and not need_weights:
        attn_mask = None  # NOTE: as PyTorch: the hint replaces the mask, which is taken to be causal
    else:
        attn_mask = _canonical_mask(attn_mask, "attn_mask", None, "", query.dtype, check_other=False)
        if key_padding_mask is not None:
            is_causal = False  # the merged mask is not causal any more
    if embed_dim != embed_dim_to_check:
        raise AssertionError(f"was expecting embedding dimension of {embed_dim_to_check}, but got {embed_dim}")
    head_dim = embed_dim // num_heads
    if head_dim * num_heads != embed_dim:
        raise AssertionError(f"embed_dim {embed_dim} not divisible by num_heads {num_heads}")
    if use_separate_proj_weight:
        if key.shape[:2] != value.shape[:2]:
            raise AssertionError(f"key's sequence and batch dims {key.shape[:2]} do not match value's "
                                 f"{value.shape[:2]}")
    elif key.shape != value.shape:
        raise AssertionError(f"key shape {key.shape} does not match value shape {value.shape}")

    # ---- in-projection
    if not use_separate_proj_weight:
        if in_proj_weight is None:
            raise AssertionError("use_separate_proj_weight is False but in_proj_weight is None")
        q, k, v = _in_projection_packed(query, key, value, in_proj_weight, in_proj_bias)
    else:
        for name, w in (("q", q_proj_weight), ("k", k_proj_weight), ("v", v_proj_weight)):
            if w is None:
                raise AssertionError(f"use_separate_proj_weight is True but {name}_proj_weight is None")
        b_q, b_k, b_v = (None,) * 3 if in_proj_bias is None else in_proj_bias.chunk(3)
        q, k, v = _in_projection(query, key, value, q_proj_weight, k_proj_weight, v_proj_weight, b_q, b_k, b_v)

    # ---- the attention mask as (1 or N * num_heads, L, S)
    if attn_mask is not None:
        if attn_mask.dim() == 2:
            if tuple(attn_mask.shape) != (tgt_len, src_len):
                raise RuntimeError(f"The shape of the 2D attn_mask is {attn_mask.shape}, but should be "
                                   f"{(tgt_len, src_len)}.")
            attn_mask = attn_mask.unsqueeze(0)
        elif attn_mask.dim() == 3:
            if tuple(attn_mask.shape) != (bsz * num_heads, tgt_len, src_len):
                raise RuntimeError(f"The shape of the 3D attn_mask is {attn_mask.shape}, but should be "
                                   f"{(bsz * num_heads, tgt_len, src_len)}.")
        else:
            raise RuntimeError(f"attn_mask's dimension {attn_mask.dim()} is not supported")

    # ---- a learned bias key and value appended to the sequence
    if bias_k is not None and bias_v is not None:
        if static_k is not None:
            raise AssertionError("bias cannot be added to static key.")
        if static_v is not None:
            raise AssertionError("bias cannot be added to static value.")
        k = T.cat([k, bias_k.repeat(1, bsz, 1)])
        v = T.cat([v, bias_v.repeat(1, bsz, 1)])
        if attn_mask is not None:
            attn_mask = pad(attn_mask, (0, 1))
        if key_padding_mask is not None:
            key_padding_mask = pad(key_padding_mask, (0, 1))
    elif bias_k is not None:
        raise AssertionError("bias_k is set but bias_v is None")
    elif bias_v is not None:
        raise AssertionError("bias_v is set but bias_k is None")

    # ---- heads: (L, N, E) -> (N * num_heads, L, head_dim)
    q = q.reshape(tgt_len, bsz * num_heads, head_dim).transpose(0, 1)
    k = _split_heads(k, static_k, "static_k", bsz * num_heads, head_dim)
    v = _split_heads(v, static_v, "static_v", bsz * num_heads, head_dim)
    if add_zero_attn:
        k = T.cat([k, zeros(bsz * num_heads, 1, head_dim, dtype=k.dtype)], dim=1)
        v = T.cat([v, zeros(bsz * num_heads, 1, head_dim, dtype=v.dtype)], dim=1)
        if attn_mask is not None:
            attn_mask = pad(attn_mask, (0, 1))
        if key_padding_mask is not None:
            key_padding_mask = pad(key_padding_mask, (0, 1))
    src_len = k.shape[1]

    # ---- the key padding mask merged into the attention mask
    if key_padding_mask is not None:
        for i, want in ((0, bsz), (1, src_len)):
            if key_padding_mask.shape[i] != want:
                raise AssertionError(f"Expected key_padded_mask.shape[{i}] to be {want}, but got "
                                     f"{key_padding_mask.shape[i]}")
        key_padding_mask = (key_padding_mask.reshape(bsz, 1, 1, src_len).expand(-1, num_heads, -1, -1)
                            .reshape(bsz * num_heads, 1, src_len))
        attn_mask = key_padding_mask if attn_mask is None else attn_mask + key_padding_mask
    if not training:
        dropout_p = 0.0

    if need_weights:
        # NOTE: PyTorch computes softmax here (a row that may attend to nothing is nan) and scaled_dot_product_attention
        # below (zeros there)
        out, weights = _attend(q, k, v, None, attn_mask, dropout_p, math.sqrt(1.0 / float(head_dim)), safe=False)
    else:
        keep = ones(tgt_len, src_len, dtype=dtypes.bool_).tril() if is_causal and attn_mask is None else None
        out, weights = _attend(q, k, v, keep, attn_mask, dropout_p, 1.0 / math.sqrt(head_dim),
                               safe=attn_mask is not None)
    out = out.transpose(0, 1).reshape(tgt_len * bsz, embed_dim)
    out = linear(out, out_proj_weight, out_proj_bias).reshape(tgt_len, bsz, -1)
    if not need_weights:
        return (out if is_batched else out.squeeze(1)), None
    weights = weights.reshape(bsz, num_heads, tgt_len, src_len)
    if average_attn_weights:
        weights = weights.mean(dim=1)
    if not is_batched:
        out, weights = out.squeeze(1), weights.squeeze(0)
    return out, weights


# ---------------------------------------------------------------- the module
class NonDynamicallyQuantizableLinear(Linear):
    """`nn.Linear` under PyTorch's name for MultiheadAttention's `out_proj` (its quantization tools skip it)."""


class MultiheadAttention(Module):
    """Multi-head attention (Attention Is All You Need) with PyTorch's parameters: a packed `in_proj_weight`
    (3E, E) and `in_proj_bias`, or `q_proj_weight`, `k_proj_weight`, `v_proj_weight` when kdim or vdim differ
    from embed_dim; `out_proj`; `bias_k`, `bias_v` with add_bias_kv. Seeded, it starts from PyTorch's weights.

    forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True, is_causal=False) returns (output, weights averaged over heads, or per head,
    or None). Bool masks are True where attention is *not* allowed.

    >>> import tracegrad as tg
    >>> mha = tg.nn.MultiheadAttention(4, 2)
    >>> sorted(mha.state_dict())
    ['in_proj_bias', 'in_proj_weight', 'out_proj.bias', 'out_proj.weight']
    >>> x = tg.randn(5, 3, 4)
    >>> out, w = mha(x, x, x, need_weights=False)
    >>> out.shape, w
    (tracegrad.Size([5, 3, 4]), None)
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim: int | None = None,
                 vdim: int | None = None, batch_first: bool = False, device=None, dtype=None):
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"embed_dim and num_heads must be greater than 0, got embed_dim={embed_dim} and "
                             f"num_heads={num_heads} instead")
        devices.check(device, "nn.MultiheadAttention")
        super().__init__()
        self.embed_dim = embed_dim
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.num_heads, self.dropout, self.batch_first = num_heads, dropout, batch_first
        self.head_dim = embed_dim // num_heads
        if self.head_dim * num_heads != self.embed_dim:
            raise AssertionError("embed_dim must be divisible by num_heads")
        if not self._qkv_same_embed_dim:
            self.q_proj_weight = Parameter(empty(embed_dim, embed_dim, dtype=dtype))
            self.k_proj_weight = Parameter(empty(embed_dim, self.kdim, dtype=dtype))
            self.v_proj_weight = Parameter(empty(embed_dim, self.vdim, dtype=dtype))
            self.register_parameter("in_proj_weight", None)
        else:
            self.in_proj_weight = Parameter(empty(3 * embed_dim, embed_dim, dtype=dtype))
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        if bias:
            self.in_proj_bias = Parameter(empty(3 * embed_dim, dtype=dtype))
        else:
            self.register_parameter("in_proj_bias", None)
        # NOTE: built here, before _reset_parameters, as in PyTorch: its own initialization draws first
        self.out_proj = NonDynamicallyQuantizableLinear(embed_dim, embed_dim, bias=bias, dtype=dtype)
        if add_bias_kv:
            self.bias_k = Parameter(empty(1, 1, embed_dim, dtype=dtype))
            self.bias_v = Parameter(empty(1, 1, embed_dim, dtype=dtype))
        else:
            self.bias_k = self.bias_v = None
        self.add_zero_attn = add_zero_attn
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            init.xavier_uniform_(self.q_proj_weight)
            init.xavier_uniform_(self.k_proj_weight)
            init.xavier_uniform_(self.v_proj_weight)
        if self.in_proj_bias is not None:
            init.constant_(self.in_proj_bias, 0.0)
            init.constant_(self.out_proj.bias, 0.0)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
        if self.bias_v is not None:
            init.xavier_normal_(self.bias_v)

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Tensor | None = None,
                need_weights: bool = True, attn_mask: Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False):
        # NOTE: PyTorch's fast path (inference on batch_first self-attention, nested tensors) computes what this
        # path computes, within round-off; tracegrad has this path only
        is_batched = query.dim() == 3
        key_padding_mask = _canonical_mask(key_padding_mask, "key_padding_mask", _none_or_dtype(attn_mask),
                                           "attn_mask", query.dtype)
        attn_mask = _canonical_mask(attn_mask, "attn_mask", None, "", query.dtype, check_other=False)
        if self.batch_first and is_batched:
            # the transposes keep `query is key is value` (self-attention projects with one matmul)
            if key is value:
                if query is key:
                    query = key = value = query.transpose(1, 0)
                else:
                    query, key = (x.transpose(1, 0) for x in (query, key))
                    value = key
            else:
                query, key, value = (x.transpose(1, 0) for x in (query, key, value))
        separate = {} if self._qkv_same_embed_dim else {
            "use_separate_proj_weight": True, "q_proj_weight": self.q_proj_weight,
            "k_proj_weight": self.k_proj_weight, "v_proj_weight": self.v_proj_weight}
        out, weights = multi_head_attention_forward(
            query, key, value, self.embed_dim, self.num_heads, self.in_proj_weight, self.in_proj_bias, self.bias_k,
            self.bias_v, self.add_zero_attn, self.dropout, self.out_proj.weight, self.out_proj.bias,
            training=self.training, key_padding_mask=key_padding_mask, need_weights=need_weights,
            attn_mask=attn_mask, average_attn_weights=average_attn_weights, is_causal=is_causal, **separate)
        if self.batch_first and is_batched:
            return out.transpose(1, 0), weights
        return out, weights
