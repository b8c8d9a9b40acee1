"""The training benchmark suite (tracegrad/bench/training.py); also python -m tracegrad bench --suite training."""
from tracegrad.bench.training import main

if __name__ == "__main__":
    main()
