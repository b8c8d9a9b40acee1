"""Utilities for training `nn` modules, as in `torch.nn.utils`: gradient clipping and parameters <-> vector.

>>> import tracegrad as tg
>>> w = tg.zeros(2, requires_grad=True)
>>> w.grad = tg.tensor([30.0, 40.0])
>>> tg.nn.utils.clip_grad_norm_([w], max_norm=5.0)
tensor(50.)
>>> w.grad
tensor([3.0000, 4.0000])
"""
from . import rnn  # the rnn block: packed and padded sequences
from .clip_grad import clip_grad_norm, clip_grad_norm_, clip_grad_value_, clip_grads_with_norm_, get_total_norm
from .convert_parameters import parameters_to_vector, vector_to_parameters

__all__ = ["clip_grad_norm", "clip_grad_norm_", "clip_grad_value_", "clip_grads_with_norm_", "get_total_norm",
           "parameters_to_vector", "vector_to_parameters", "rnn"]
