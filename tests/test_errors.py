"""Every user-facing error: PyTorch's exception class, a message naming the op and shapes/dtypes."""
import re

import numpy as np
import pytest

import tracegrad as tg


def _leaf():
    return tg.ones(2, requires_grad=True)


def _second_backward():
    x = _leaf()
    y = (x * x).sum()
    y.backward()
    y.backward()


def _modified_saved():
    x = _leaf()
    y = x.exp()
    y.add_(1)  # exp saved its output for backward
    y.sum().backward()


def _modified_saved_by_another_op():
    x = _leaf()
    y = x.exp()
    z = y * _leaf()  # mul saved y for the other operand's gradient
    y.add_(1)
    z.sum().backward()


def _modified_saved_input():
    x = _leaf()
    b = x * 1
    c = b * b
    b.mul_(2)
    c.sum().backward()


def _inplace_on_view_with_grad():
    b = _leaf() * 1
    b[0:1].mul_(2)


ERRORS = [
    ("broadcast", lambda: tg.ones(2, 3) + tg.ones(4), RuntimeError,
     "add: shapes [2, 3] and [4] are not broadcastable: the size of tensor a (3) must match the size of tensor b (4) "
     "at non-singleton dimension 1"),
    ("broadcast_where", lambda: tg.where(tg.ones(2) > 0, tg.ones(3), 0.0), RuntimeError,
     "where: shapes [2] and [3] are not broadcastable"),
    ("matmul_2d", lambda: tg.ones(2, 3) @ tg.ones(4, 5), RuntimeError,
     "matmul: mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)"),
    ("matmul_batched", lambda: tg.ones(7, 2, 3) @ tg.ones(4, 5), RuntimeError,
     "matmul: shapes [7, 2, 3] and [4, 5] cannot be multiplied: the last dim of the first (3) must equal the "
     "second-to-last dim of the second (4)"),
    ("matmul_vector", lambda: tg.ones(3) @ tg.ones(4), RuntimeError,
     "matmul: shapes [3] and [4] cannot be multiplied"),
    ("matmul_dtype", lambda: tg.ones(2, 2) @ tg.ones(2, 2, dtype=tg.float64), RuntimeError,
     "matmul: expected both operands to have the same dtype, but got: tracegrad.float32 != tracegrad.float64"),
    ("matmul_0d", lambda: tg.tensor(1.0) @ tg.ones(2), RuntimeError,
     "both arguments to matmul need to be at least 1D, but they are 0D and 1D"),
    ("backward_no_grad", lambda: tg.ones(2).sum().backward(), RuntimeError,
     "element 0 of tensors does not require grad and does not have a grad_fn"),
    ("backward_non_scalar", lambda: (_leaf() * 2).backward(), RuntimeError,
     "grad can be implicitly created only for scalar outputs (output 0 has shape [2]"),
    ("backward_gradient_count", lambda: tg.autograd.backward([_leaf() * 2, _leaf() * 3], [tg.ones(2)]),
     RuntimeError, "Mismatch in number of gradients: got 1 gradients for 2 outputs"),
    ("backward_gradient_shape", lambda: (_leaf() * 2).backward(tg.ones(3)), RuntimeError,
     "Mismatch in shape: grad_output[0] has a shape of [3] and output[0] has a shape of [2]."),
    ("second_backward", _second_backward, RuntimeError,
     "Trying to backward through the graph a second time"),
    ("inplace_leaf", lambda: _leaf().add_(1), RuntimeError,
     "add_: a leaf Variable that requires grad is being used in an in-place operation."),
    ("inplace_leaf_operator", lambda: _leaf().__imul__(2), RuntimeError,
     "mul_: a leaf Variable that requires grad is being used in an in-place operation."),
    ("setitem_leaf", lambda: _leaf().__setitem__(0, 1.0), RuntimeError,
     "setitem: a leaf Variable that requires grad is being used in an in-place operation."),
    ("modified_saved_output", _modified_saved, RuntimeError,
     "one of the variables needed for gradient computation has been modified by an inplace operation: "
     "[tracegrad.FloatTensor [2]], which is output 0 of ExpBackward0, is at version 1; expected version 0 instead "
     "(it was saved by ExpBackward0)"),
    ("modified_saved_by_another_op", _modified_saved_by_another_op, RuntimeError,
     "[tracegrad.FloatTensor [2]], which is output 0 of ExpBackward0, is at version 1; expected version 0 instead "
     "(it was saved by MulBackward0)"),
    ("modified_saved_input", _modified_saved_input, RuntimeError,
     "is at version 1; expected version 0 instead (it was saved by MulBackward0)"),
    ("int_requires_grad", lambda: tg.tensor([1, 2], requires_grad=True), RuntimeError,
     "only Tensors of floating point dtype can require gradients (got a tensor of dtype tracegrad.int64)"),
    ("int_requires_grad_", lambda: tg.tensor([True]).requires_grad_(), RuntimeError,
     "only Tensors of floating point dtype can require gradients (got a tensor of dtype tracegrad.bool)"),
    ("index_out_of_range", lambda: tg.ones(3, 4)[5], IndexError,
     "index: index 5 is out of bounds for dimension 0 with size 3 (tensor of shape [3, 4])"),
    ("index_out_of_range_dim1", lambda: tg.ones(3, 4)[0, -5], IndexError,
     "index -5 is out of bounds for dimension 1 with size 4"),
    ("setitem_out_of_range", lambda: tg.ones(3).__setitem__(3, 1.0), IndexError,
     "index 3 is out of bounds for dimension 0 with size 3"),
    ("setitem_shape", lambda: tg.ones(3, 2).__setitem__(slice(None), tg.ones(3)), RuntimeError,
     "index_put: shape mismatch: value tensor of shape [3] cannot be broadcast to indexing result of shape [3, 2]"),
    ("setitem_int_and_array_with_grad", lambda: (_leaf() * 1).reshape(1, 2).__setitem__((0, tg.tensor([1])), 5.0),
     RuntimeError, "setitem: an index mixing integers and index tensors is not supported while recording gradients"),
    ("index_float", lambda: tg.ones(3)[tg.tensor([0.0])], IndexError,
     "tensors used as indices must be long, int or bool tensors (got tracegrad.float32)"),
    ("grad_unused", lambda: tg.autograd.grad((_leaf() * 2).sum(), [_leaf()]), RuntimeError,
     "The differentiated Tensor at index 0 appears to not have been used in the graph. Set allow_unused=True"),
    ("grad_input_no_grad", lambda: tg.autograd.grad((_leaf() * 2).sum(), [tg.ones(2)]), RuntimeError,
     "One of the differentiated Tensors does not require grad"),
    ("reshape", lambda: tg.ones(2, 3).reshape(4, 2), RuntimeError,
     "reshape: shape '[4, 2]' is invalid for input of size 6"),
    ("reshape_infer", lambda: tg.ones(2, 3).view(-1, 4), RuntimeError,
     "reshape: shape '[-1, 4]' is invalid for input of size 6"),
    ("expand", lambda: tg.ones(2, 3).expand(4, 3), RuntimeError,
     "expand: the expanded size of the tensor must match the existing size at non-singleton dimensions: "
     "cannot expand [2, 3] to [4, 3]"),
    ("cat", lambda: tg.cat([tg.ones(2, 3), tg.ones(2, 4)]), RuntimeError,
     "cat: sizes of tensors must match except in dimension 0: got shapes [2, 3] and [2, 4]"),
    ("stack", lambda: tg.stack([tg.ones(2), tg.ones(3)]), RuntimeError,
     "stack expects each tensor to be equal size, but got [2] at entry 0 and [3] at entry 1"),
    ("dim_range", lambda: tg.ones(2, 3).sum(2), IndexError,
     "sum: Dimension out of range (expected to be in range of [-2, 1], but got 2)"),
    ("softmax_dim", lambda: tg.ones(2, 3).softmax(-3), IndexError,
     "softmax: Dimension out of range (expected to be in range of [-2, 1], but got -3)"),
    ("mean_int", lambda: tg.tensor([1, 2]).mean(), RuntimeError,
     "mean(): could not infer output dtype. Input dtype must be either a floating point or complex dtype. "
     "Got: tracegrad.int64"),
    ("neg_bool", lambda: -tg.tensor([True]), RuntimeError,
     "neg: Negation, the `-` operator, on a bool tensor is not supported."),
    ("sub_bool", lambda: tg.tensor([True]) - tg.tensor([False]), RuntimeError,
     "sub: Subtraction, the `-` operator, with two bool tensors is not supported."),
    ("where_condition", lambda: tg.where(tg.ones(2), 1.0, 0.0), RuntimeError,
     "where: expected condition to be a bool tensor, but got a tensor with dtype tracegrad.float32"),
    ("inplace_cast", lambda: tg.tensor([1, 2]).add_(1.5), RuntimeError,
     "add_: result type tracegrad.float32 can't be cast to the desired output type tracegrad.int64"),
    ("inplace_broadcast", lambda: tg.ones(3).add_(tg.ones(2, 3)), RuntimeError,
     "add_: output with shape [3] doesn't match the broadcast shape [2, 3]"),
    ("inplace_expanded", lambda: tg.ones(3, 1).expand(3, 4).mul_(2), RuntimeError,
     "mul_: unsupported operation: more than one element of the written-to tensor refers to a single memory "
     "location"),
    ("inplace_view_with_grad", _inplace_on_view_with_grad, RuntimeError,
     "mul_: in-place modification of a view (or of a tensor with views) is not supported while recording "
     "gradients"),
    ("requires_grad_false_non_leaf", lambda: (_leaf() * 2).requires_grad_(False), RuntimeError,
     "you can only change requires_grad flags of leaf variables."),
    ("numpy_requires_grad", lambda: _leaf().numpy(), RuntimeError,
     "Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead."),
    ("item_many", lambda: tg.ones(3).item(), RuntimeError,
     "a Tensor with 3 elements cannot be converted to Scalar"),
    ("bool_many", lambda: bool(tg.ones(3)), RuntimeError,
     "Boolean value of Tensor with 3 elements is ambiguous"),
    ("grad_assign_shape", lambda: setattr(_leaf(), "grad", tg.ones(3)), RuntimeError,
     "assigned grad has data of a different size: [3] (tensor has [2])"),
    ("hook_no_grad", lambda: tg.ones(2).register_hook(print), RuntimeError,
     "cannot register a hook on a tensor that doesn't require gradient"),
    ("retain_grad_no_grad", lambda: tg.ones(2).retain_grad(), RuntimeError,
     "can't retain_grad on Tensor that has requires_grad=False"),
    ("clamp_none", lambda: tg.ones(2).clamp(), RuntimeError,
     "clamp: At least one of 'min' or 'max' must not be None"),
    ("negative_size", lambda: tg.zeros(2, -1), RuntimeError,
     "Trying to create tensor with negative dimension -1: [2, -1]"),
    ("ragged", lambda: tg.tensor([[1.0, 2.0], [3.0]]), ValueError,
     "tensor: expected a rectangular nested sequence of numbers"),
    ("unsupported_numpy_dtype", lambda: tg.from_numpy(np.ones(2, np.uint16)), TypeError,
     "numpy dtype uint16 is not supported by tracegrad; supported: bool, uint8, int8, int16, int32, int64, float16, "
     "float32, float64"),
    ("bitwise_float", lambda: tg.ones(2) & tg.ones(2), TypeError,
     "bitwise_and: not implemented for floating tensors (tracegrad.float32)"),
    ("gradcheck_float32", lambda: tg.autograd.gradcheck(lambda t: t * 2, (_leaf(),)), ValueError,
     "gradcheck: input 0 is tracegrad.float32; use float64 inputs for finite differences"),
    ("trace_not_a_matrix", lambda: tg.trace(tg.ones(3)), RuntimeError,
     "trace: expected a matrix, but got tensor with dim 1 (shape [3])"),
    ("linear_dtype", lambda: tg.nn.functional.linear(tg.ones(2, 3, dtype=tg.float64), tg.ones(4, 3)), RuntimeError,
     "linear: expected input, weight and bias to have the same dtype, but got tracegrad.float64, tracegrad.float32"),
    ("addmm_shapes", lambda: tg.addmm(tg.ones(3), tg.ones(2, 4), tg.ones(3, 3)), RuntimeError,
     "addmm: mat1 and mat2 shapes cannot be multiplied (2x4 and 3x3)"),
]


@pytest.mark.parametrize("name,fn,cls,message", ERRORS, ids=[e[0] for e in ERRORS])
def test_error_class_and_message(name, fn, cls, message):
    with pytest.raises(cls, match=re.escape(message)):
        fn()


@pytest.mark.parametrize("fn", [
    lambda x: x.add_(tg.ones(2, 3)),
    lambda x: x.mul_(tg.ones(4)),
    lambda x: x.add_(1.5),
    lambda x: x.__setitem__(slice(None), tg.ones(2)),
    lambda x: x.__setitem__(5, 1),
], ids=["broadcast", "shape", "cast", "setitem_shape", "setitem_index"])
def test_a_failed_in_place_op_leaves_the_tensor_untouched(fn):
    x = tg.tensor([1, 2, 3])
    with pytest.raises((RuntimeError, IndexError)):
        fn(x)
    assert x.tolist() == [1, 2, 3] and x._version == 0


def test_a_failed_in_place_op_on_a_non_leaf_keeps_its_graph():
    x = _leaf()
    y = x * 2
    node = y.grad_fn
    with pytest.raises(RuntimeError):
        y.add_(tg.ones(3))
    assert y.grad_fn is node and y._version == 0
    y.sum().backward()
    assert x.grad.tolist() == [2.0, 2.0]


def test_eager_errors_point_at_the_users_line():
    """The traceback of an eager error ends in tracegrad but passes through the user's line."""
    import traceback
    try:
        tg.ones(2, 3) @ tg.ones(4, 5)  # the user's line
    except RuntimeError as e:
        frames = traceback.extract_tb(e.__traceback__)
    assert frames[0].filename == __file__ and "the user's line" in frames[0].line
