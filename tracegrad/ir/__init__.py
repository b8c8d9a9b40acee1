"""The graph IR shared by the tracer, the compiler passes and the runtime."""
from .graph import Graph, Guard, Node, Value
from .verify import GraphError, verify

__all__ = ["Graph", "Guard", "GraphError", "Node", "Value", "verify"]
