"""Grad mode: `no_grad`, `enable_grad`, `set_grad_enabled`, `inference_mode`, as context managers and decorators.

>>> import tracegrad as tg
>>> x = tg.ones(2, requires_grad=True)
>>> with tg.no_grad():
...     (x * 2).requires_grad
False
"""
from __future__ import annotations

import functools
import threading


class _State(threading.local):
    enabled = True
    inference = False


STATE = _State()


def is_grad_enabled() -> bool:
    return STATE.enabled


def is_inference_mode_enabled() -> bool:
    """Whether this thread is in `inference_mode`."""
    return STATE.inference


class _GradMode:
    """Base of the three grad-mode switches; usable as `with` block or as decorator."""

    mode = True

    def __enter__(self):
        self._prev = STATE.enabled
        STATE.enabled = self.mode

    def __exit__(self, *exc):
        STATE.enabled = self._prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with type(self)():  # a fresh switch per call, so recursion and threads nest correctly
                return fn(*args, **kwargs)
        return wrapper


class no_grad(_GradMode):  # noqa: N801 - PyTorch's name
    """Disable gradient recording: results of ops don't require grad."""

    mode = False


class enable_grad(_GradMode):  # noqa: N801
    """Enable gradient recording inside a `no_grad` region."""

    mode = True


class set_grad_enabled(_GradMode):  # noqa: N801
    """Set grad mode to `mode`; as a plain call it switches it at once (like PyTorch)."""

    def __init__(self, mode: bool):
        self.mode = bool(mode)
        self._prev = STATE.enabled
        STATE.enabled = self.mode

    def __enter__(self):
        pass  # already switched in __init__

    def __exit__(self, *exc):
        STATE.enabled = self._prev
        return False

    def __call__(self, fn):
        STATE.enabled = self._prev  # the decorator form must not switch the mode at decoration time
        mode = self.mode

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)
        return wrapper


class inference_mode(_GradMode):  # noqa: N801
    """As ``torch.inference_mode(mode=True)``: `no_grad`, and tensors made inside are inference tensors
    (``t.is_inference()``), which autograd may not save for backward later, nor may they be set to require grad
    outside inference mode (RuntimeError, as in PyTorch; use ``t.clone()`` to get a normal tensor).
    ``inference_mode(False)`` leaves inference mode and enables grad. This thread only; also a decorator
    (``@inference_mode()`` or ``@inference_mode``).

    >>> import tracegrad as tg
    >>> w = tg.ones(2, requires_grad=True)
    >>> with tg.inference_mode():
    ...     y = w * 2
    >>> y.requires_grad, y.is_inference()
    (False, True)
    >>> w * y
    Traceback (most recent call last):
      ...
    RuntimeError: Inference tensors cannot be saved for backward. ...
    """

    def __new__(cls, mode=True):
        if isinstance(mode, bool):
            return super().__new__(cls)
        return cls()(mode)  # the bare decorator: `@inference_mode`

    def __init__(self, mode: bool = True):
        self.mode = mode

    def __enter__(self):
        self._prev = (STATE.enabled, STATE.inference)
        STATE.enabled, STATE.inference = not self.mode, self.mode

    def __exit__(self, *exc):
        STATE.enabled, STATE.inference = self._prev
        return False

    def __call__(self, fn):
        mode = self.mode

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with inference_mode(mode):
                return fn(*args, **kwargs)
        return wrapper
