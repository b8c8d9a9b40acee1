"""`tracegrad.jit`: the graph tracer, where PyTorch keeps its own (`torch.jit.trace`).

`trace(fn, *example_args)` runs `fn` once under the tracer and returns the IR graph it recorded (before the
simplification passes; `tracegrad.compile` is what runs graphs). Unlike `torch.jit.trace(fn, example_inputs)`,
the example arguments are passed as they are passed to `fn`, and the result is a `tracegrad.Graph`, not a
callable. `tracegrad.trace` is the matrix trace, as `torch.trace`.

>>> import tracegrad as tg
>>> print(tg.jit.trace(lambda a, b: a * b + 1.0, tg.ones(2), tg.ones(2)))
graph <lambda>(a:f32[2], b:f32[2]) {
  c0:f32[] = const 1.0
  %0:f32[2] = mul a, b
  %1:f32[2] = add %0, c0
  return %1
}
"""
from .tracer import trace

__all__ = ["trace"]
