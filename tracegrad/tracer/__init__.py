"""Tracing Python functions into the IR: `compile`, `trace`, `grad`, `value_and_grad`, `explain`."""
from .api import CompiledFunction, Explanation, compile, grad, trace, value_and_grad  # noqa: A004
from .context import TraceError, Tracer


def explain(fn, *args, **kwargs) -> Explanation:
    """`compile(fn).explain(*args)`: the IR, backward, guards, saved tensors and retraces, without running."""
    cf = fn if isinstance(fn, CompiledFunction) else CompiledFunction(fn)
    return cf.explain(*args, **kwargs)


__all__ = ["CompiledFunction", "Explanation", "TraceError", "Tracer", "compile", "explain", "grad", "trace",
           "value_and_grad"]
