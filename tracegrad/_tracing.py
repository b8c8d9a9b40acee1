"""The eager layer's one link to the tracer: `TRACER` is None in eager mode, the active tracer while tracing.

The eager code calls `TRACER`'s hooks at the few places where tracing must see something (an op
applied, a tensor created or written in place, a traced value turned into a Python value, a backward
call); it never imports the tracer.
"""
TRACER = None
