"""Matrix products in generated kernels: one BLAS call, cheap to compile.

``np.dot`` inside an ``@njit`` function costs numba 0.15-0.35 s of typing and lowering per operand-layout
combination (it is an overload that compiles several helper functions), most of a small training step's
compile time. `gemm_into` is an intrinsic: typing it is a signature check and lowering it is a handful of
instructions around one BLAS call: numpy's own ``cblas_sgemm``/``cblas_dgemm`` where numpy bundles them
(`codegen.numpy_blas`), so a compiled matmul runs what numpy's ``@`` runs, else numba's BLAS wrapper
(``numba_xxgemm``, scipy's BLAS, what ``np.dot`` in numba calls). Its operands may be row-major or
column-major with any leading dimension (a transposed view or a slice costs no copy); an operand BLAS can't
read as it is (a broadcast, stride 0) makes it return False, and the generated code calls it again on
contiguous copies.

>>> import numpy as np
>>> from numba import njit
>>> @njit
... def mm(a, b):
...     out = np.empty((a.shape[0], b.shape[1]), a.dtype)
...     if not gemm_into(a, b, out):
...         gemm_into(np.ascontiguousarray(a), np.ascontiguousarray(b), out)
...     return out
>>> a = np.arange(6, dtype=np.float32).reshape(2, 3)
>>> mm(a, a.T).tolist(), mm(a.T, a)[0].tolist()
([[5.0, 14.0], [14.0, 50.0]], [9.0, 12.0, 15.0])
"""
from __future__ import annotations

from llvmlite import binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic

from .codegen import numpy_blas

_NUMPY_BLAS = numpy_blas()
if _NUMPY_BLAS is not None:  # NOTE: registered before any cached kernel that calls them is loaded
    llvm.add_symbol("tracegrad_numpy_sgemm", _NUMPY_BLAS[0])
    llvm.add_symbol("tracegrad_numpy_dgemm", _NUMPY_BLAS[1])
else:
    # NOTE: imported only here: numba.np.linalg and scipy's BLAS took a quarter of a second of every warm load
    from numba.np.linalg import ensure_blas
    ensure_blas()  # loads scipy's BLAS into numba's helper library (what np.dot does first)

_I8 = ir.IntType(8)
_VOID_P = _I8.as_pointer()


def _operand(builder, intp, arr, itemsize):
    """How BLAS reads a 2-D operand: (readable, row-major, leading dimension, data pointer). A dimension of
    size 1 may have any stride (numpy calls such arrays contiguous, broadcast or not)."""
    rows, cols = cgutils.unpack_tuple(builder, arr.shape, 2)
    s0, s1 = cgutils.unpack_tuple(builder, arr.strides, 2)
    one, zero = ir.Constant(intp, 1), ir.Constant(intp, 0)

    def at_least_one(v):
        return builder.select(builder.icmp_signed(">", v, one), v, one)

    def layout(inner, inner_stride, outer, outer_stride):
        """Readable with unit steps along `inner` and whole lines `outer_stride` apart, and its ld."""
        unit = builder.or_(builder.icmp_signed("<=", inner, one), builder.icmp_signed("==", inner_stride, itemsize))
        line = builder.mul(at_least_one(inner), itemsize)
        whole = builder.and_(builder.icmp_signed(">=", outer_stride, line),
                             builder.icmp_signed("==", builder.srem(outer_stride, itemsize), zero))
        single = builder.icmp_signed("<=", outer, one)
        ld = builder.select(single, at_least_one(inner), builder.sdiv(outer_stride, itemsize))
        return builder.and_(unit, builder.or_(single, whole)), ld

    row_ok, row_ld = layout(cols, s1, rows, s0)
    col_ok, col_ld = layout(rows, s0, cols, s1)
    ld = builder.select(row_ok, row_ld, col_ld)
    return builder.or_(row_ok, col_ok), row_ok, ld, builder.bitcast(arr.data, _VOID_P)


def _numpy_gemm(builder, intp, dtype, alpha, beta, x, y, m, n, k, z, ldc, context) -> None:
    """numpy's ``cblas_?gemm`` in row-major order: an operand stored column-major is the transpose of a row-major
    one with the same leading dimension."""
    i32 = ir.IntType(32)
    real = context.get_value_type(dtype)
    fnty = ir.FunctionType(ir.VoidType(), [i32, i32, i32, intp, intp, intp, real, _VOID_P, intp, _VOID_P, intp,
                                           real, _VOID_P, intp])
    name = "tracegrad_numpy_sgemm" if dtype == types.float32 else "tracegrad_numpy_dgemm"
    fn = cgutils.get_or_insert_function(builder.module, fnty, name)
    notrans, trans = ir.Constant(i32, 111), ir.Constant(i32, 112)  # CblasNoTrans, CblasTrans
    (x_rows, x_ld, x_data), (y_rows, y_ld, y_data) = x, y
    builder.call(fn, (ir.Constant(i32, 101), builder.select(x_rows, notrans, trans),  # CblasRowMajor
                      builder.select(y_rows, notrans, trans), m, n, k, alpha, x_data, x_ld, y_data, y_ld, beta,
                      builder.bitcast(z.data, _VOID_P), ldc))


def _numba_gemm(builder, intp, dtype, alpha, beta, x, y, m, n, k, z, ldc, context) -> None:
    """numba's ``numba_xxgemm`` (scipy's BLAS): column-major, so row-major ``out = x @ y`` is computed as
    column-major ``out.T = y.T @ x.T``, and a row-major operand read column-major is its transpose."""
    from numba.np.linalg import check_blas_return, get_blas_kind
    fnty = ir.FunctionType(ir.IntType(32), [_I8, _I8, _I8, intp, intp, intp, _VOID_P, _VOID_P, intp, _VOID_P, intp,
                                            _VOID_P, _VOID_P, intp])
    fn = cgutils.get_or_insert_function(builder.module, fnty, "numba_xxgemm")
    notrans, trans = ir.Constant(_I8, ord("n")), ir.Constant(_I8, ord("t"))
    (x_rows, x_ld, x_data), (y_rows, y_ld, y_data) = x, y
    res = builder.call(fn, (ir.Constant(_I8, ord(get_blas_kind(dtype))), builder.select(y_rows, notrans, trans),
                            builder.select(x_rows, notrans, trans), n, m, k,
                            builder.bitcast(cgutils.alloca_once_value(builder, alpha), _VOID_P), y_data, y_ld,
                            x_data, x_ld, builder.bitcast(cgutils.alloca_once_value(builder, beta), _VOID_P),
                            builder.bitcast(z.data, _VOID_P), ldc))
    check_blas_return(context, builder, res)


@intrinsic
def gemm_into(typingctx, a, b, out):
    """``out[:] = a @ b`` for 2-D float32/float64 arrays (`out` C-contiguous); False if `a` or `b` has strides
    BLAS can't read (nothing is written then)."""
    arrays = (a, b, out)
    if not all(isinstance(t, types.Array) and t.ndim == 2 for t in arrays):
        raise TypingError("gemm_into: 2-D arrays expected")
    if not (a.dtype == b.dtype == out.dtype and a.dtype in (types.float32, types.float64)):
        raise TypingError("gemm_into: operands of one float dtype expected")
    if out.layout != "C":
        raise TypingError("gemm_into: a C-contiguous output expected")

    def codegen(context, builder, sig, args):
        intp = context.get_value_type(types.intp)
        dtype = sig.args[0].dtype
        itemsize = ir.Constant(intp, context.get_abi_sizeof(context.get_value_type(dtype)))
        x, y, z = (context.make_array(t)(context, builder, v) for t, v in zip(sig.args, args))
        m, k = cgutils.unpack_tuple(builder, x.shape, 2)
        n = cgutils.unpack_tuple(builder, y.shape, 2)[1]
        x_ok, x_rows, x_ld, x_data = _operand(builder, intp, x, itemsize)
        y_ok, y_rows, y_ld, y_data = _operand(builder, intp, y, itemsize)
        zero = ir.Constant(intp, 0)
        empty = builder.or_(builder.icmp_signed("==", m, zero), builder.icmp_signed("==", n, zero))
        no_terms = builder.icmp_signed("==", k, zero)
        ok = builder.or_(builder.or_(empty, no_terms), builder.and_(x_ok, y_ok))
        with builder.if_then(builder.and_(ok, builder.not_(empty))):
            with builder.if_else(no_terms) as (sum_of_none, terms):
                with sum_of_none:  # a sum of no products: zeros
                    cgutils.memset(builder, z.data, builder.mul(builder.mul(m, n), itemsize), 0)
                with terms:
                    alpha, beta = context.get_constant(dtype, 1.0), context.get_constant(dtype, 0.0)
                    ldc = builder.sdiv(cgutils.unpack_tuple(builder, z.strides, 2)[0], itemsize)
                    ldc = builder.select(builder.icmp_signed(">", ldc, ir.Constant(intp, 1)), ldc, ir.Constant(intp, 1))
                    gemm = _numpy_gemm if _NUMPY_BLAS is not None else _numba_gemm
                    gemm(builder, intp, dtype, alpha, beta, (x_rows, x_ld, x_data), (y_rows, y_ld, y_data), m, n, k,
                         z, ldc, context)
        return ok

    return types.boolean(a, b, out), codegen


__all__ = ["gemm_into"]
