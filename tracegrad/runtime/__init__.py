"""Running compiled graphs: the interpreter, compiled variants, and compiled regions inside eager autograd."""
from .interpreter import GuardFailed, Program

__all__ = ["GuardFailed", "Program"]
