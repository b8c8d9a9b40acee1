"""Running compiled graphs: the interpreter, compiled variants, and compiled regions inside eager autograd."""
from .interpreter import GuardError, Program

__all__ = ["GuardError", "Program"]
