"""``python -m tracegrad.fuzz --programs N --backend interpret|numba --seed S [--profile quick|long]``."""
from .runner import main

raise SystemExit(main())
