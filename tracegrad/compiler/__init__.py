"""Compiler passes over the IR: the autodiff pass and the simplification pipeline."""
from .autodiff import backward_pass
from .passes import (
    DEFAULT_PASSES,
    algebraic_simplification,
    common_subexpression_elimination,
    constant_folding,
    dead_code_elimination,
    run_pipeline,
)

__all__ = ["DEFAULT_PASSES", "algebraic_simplification", "backward_pass", "common_subexpression_elimination",
           "constant_folding", "dead_code_elimination", "run_pipeline"]
