"""Warnings that point at the user's line (tracegrad ignores RuntimeWarnings raised *in* its own modules:
numpy's overflow warnings while it computes, see `_tensor.py`)."""
import os
import sys
import warnings

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def warn_user(message: str, category=RuntimeWarning) -> None:
    """`warnings.warn`, attributed to the innermost frame outside tracegrad (the user's code)."""
    level, frame = 1, sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level + 1 if frame is not None else 2)
