"""The eager layer's one link to the tracer: `TRACER` is None in eager mode, the active tracer while tracing.

The eager code calls `TRACER`'s hooks at the few places where tracing must see something (an op
applied, a tensor created or written in place, a traced value turned into a Python value, a backward
call); it never imports the tracer.
"""
TRACER = None


class SymbolicScalar:
    """Base of the Python numbers a traced function computes whose value may change from call to call.

    `Tensor.item()` and an optimizer's hyperparameters give such numbers while tracing (`tracer/scalars.py`
    defines them). The eager layer only needs to recognise them: `python_type` is the Python type they stand
    for (PyTorch's promotion treats them as that kind of Python scalar), and `as_operand(dtype)` gives the
    0-dim tensor of `dtype` they become when they meet a tensor.
    """

    __slots__ = ()
    python_type: type = float

    def as_operand(self, dtype):
        raise NotImplementedError
